//! Ports seed `004_5b2975e6746989ca.txt`: the `worker_1`/`worker_2` program of its section
//! "深入探索" (digging deeper), which shows in what order `create_task` and `await` interleave.
//!
//! `main` spawns two workers that sleep 1 s and 2 s, prints `before await`, then awaits
//! `worker_1` and `worker_2` in turn. A spawned task starts lazily, at the loop's next
//! iteration, so `before await` comes before both `start` lines; the workers sleep at the same
//! time, so the program takes 2 s (the longer sleep), not 3 s. The output is asyncio's, line for
//! line:
//!
//! ```text
//! before await
//! worker_1 start
//! worker_2 start
//! worker_1 done
//! awaited worker_1
//! worker_2 done
//! awaited worker_2
//! cost 2s
//! ```
//!
//! The seed prints `程序耗时{}s` ("the program took {} s"); this port prints `cost {}s` in whole
//! seconds of loop time.
//!
//! Run with: `cargo run --example workers` (2 s of real time), or
//! `cargo run --example workers -- --fast` (virtual time: the same lines, at once).
//! Add `--trace workers.svg` to save a timeline of the run (or `--trace workers.json` for
//! Perfetto): `--trace docs/src/workers.svg` redraws the book's picture.

use std::time::Duration;

use aioloop::{EventLoop, Trace};

async fn worker_1() {
    println!("worker_1 start");
    aioloop::sleep(Duration::from_secs(1)).await;
    println!("worker_1 done");
}

async fn worker_2() {
    println!("worker_2 start");
    aioloop::sleep(Duration::from_secs(2)).await;
    println!("worker_2 done");
}

/// The seed's `main()`: `create_task` twice, then `await` each task in turn.
async fn run_workers() {
    // asyncio's `asyncio.current_task().set_name("main")`: labels main's row in a picture.
    aioloop::set_current_task_name("main");
    let task1 = aioloop::spawn(worker_1());
    let task2 = aioloop::spawn(worker_2());
    // asyncio's `create_task(coro, name=...)`: the names label the rows of a `--trace` picture.
    task1.set_name("worker_1");
    task2.set_name("worker_2");
    // Neither worker has run yet: spawning only queued their first steps.
    println!("before await");
    task1.await.expect("worker_1 is neither cancelled nor panicking");
    println!("awaited worker_1");
    // worker_2 has been sleeping all along, so this waits 1 s more, not 2 s.
    task2.await.expect("worker_2 is neither cancelled nor panicking");
    println!("awaited worker_2");
}

fn main() {
    let fast = std::env::args().any(|a| a == "--fast");
    let trace_to = trace_path();
    // `asyncio.run(main())`, on a loop we build ourselves so that `--fast` can choose virtual time.
    let mut lp = EventLoop::builder()
        .virtual_time(fast)
        .trace(trace_to.is_some())
        .build()
        .expect("cannot create the event loop");
    let start = lp.time();
    lp.run_until_complete(run_workers());
    let cost = lp.time() - start;
    let trace = lp.trace();
    lp.close();
    println!("cost {}s", cost.as_secs());
    if let Some(path) = trace_to {
        save_trace(&trace, &path);
    }
}

/// Returns the path given after `--trace`, if any (where to save the run's trace: `.svg` or
/// `.json`).
fn trace_path() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--trace")?;
    match args.get(at + 1) {
        Some(path) => Some(path.clone()),
        None => {
            eprintln!("--trace needs a path: a .svg (a timeline) or a .json (for Perfetto)");
            std::process::exit(2);
        }
    }
}

/// Saves `trace` to `path` and says so on stderr (stdout stays the program's own output).
fn save_trace(trace: &Trace, path: &str) {
    if let Err(e) = trace.save(path) {
        eprintln!("cannot save the trace: {e}");
        std::process::exit(1);
    }
    eprintln!("trace saved to {path}");
}
