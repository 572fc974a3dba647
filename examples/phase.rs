//! Ports seed `000_acc3b2743b322c5e.txt`: the `phase(i)` program of "python 协程 eventloop
//! 线程-协程：一对多关系" (Python's 1:N event loop against Go's M:N goroutines).
//!
//! Three phases sleep `5 * i` seconds. Part 1 waits for all of them (cost 10 s). Part 2 waits
//! with a 6 s timeout, finds `2 completed and 1 pending`, cancels the pending phase and exits
//! after 6 s. Every phase prints the thread it runs on: the same thread as `main`, which is the
//! point of a 1:N event loop (the seed's Go version shows goroutines on several threads).
//!
//! Cancelling a task drops its future, so a phase's cleanup is a destructor: the `Canceled`
//! guard below prints `phase 2 canceled`, after `exiting main`, exactly where asyncio's
//! `except CancelledError: print(...)` variant of the program prints it.
//!
//! Run with: `cargo run --example phase` (16 s of real time), or
//! `cargo run --example phase -- --fast` (virtual time: the same lines and costs, at once).
//! Add `--trace phase.svg` to save a timeline of both parts, one after the other (or
//! `--trace phase.json` for Perfetto): `--trace docs/src/phase.svg` redraws the book's picture.

use std::time::Duration;

use aioloop::{EventLoop, ReturnWhen, Trace};

/// Prints `phase i canceled` if the phase is dropped before it finished.
struct Canceled {
    phase: u64,
    finished: bool,
}

impl Drop for Canceled {
    fn drop(&mut self) {
        if !self.finished {
            println!("phase {} canceled", self.phase);
        }
    }
}

async fn phase(i: u64) -> String {
    let mut guard = Canceled { phase: i, finished: false };
    println!("in phase {i}, waiting {}s (thread {:?})", 5 * i, std::thread::current().id());
    aioloop::sleep(Duration::from_secs(5 * i)).await;
    println!("done with phase {i}");
    guard.finished = true;
    format!("phase {i} result")
}

/// Names a task (asyncio's `create_task(coro, name=...)`): the name labels its row in a
/// `--trace` picture.
fn named<T>(name: String, task: aioloop::Task<T>) -> aioloop::Task<T> {
    task.set_name(name);
    task
}

/// Part 1: `await asyncio.wait(phases)`: every phase completes.
async fn wait_all(num_phases: u64) {
    println!("starting main (thread {:?})", std::thread::current().id());
    let phases: Vec<_> = (0..num_phases).map(|i| named(format!("phase {i}"), aioloop::spawn(phase(i)))).collect();
    println!("waiting for phases to complete");
    let (done, _) = aioloop::wait(phases, None, ReturnWhen::AllCompleted).await;
    for task in done {
        // A finished task gives its outcome at once, without a loop iteration.
        println!("{}", task.await.unwrap());
    }
    println!("exiting main");
}

/// Part 2: `await asyncio.wait(phases, timeout=6)`, then cancel what is pending.
async fn wait_with_timeout(num_phases: u64) {
    println!("starting main (thread {:?})", std::thread::current().id());
    let phases: Vec<_> = (0..num_phases).map(|i| named(format!("phase {i}"), aioloop::spawn(phase(i)))).collect();
    println!("waiting for phases to complete");
    let (completed, pending) = aioloop::wait(phases, Some(Duration::from_secs(6)), ReturnWhen::AllCompleted).await;
    println!("{} completed and {} pending", completed.len(), pending.len());
    if !pending.is_empty() {
        println!("canceling tasks");
        for t in &pending {
            t.cancel();
        }
    }
    println!("exiting main");
}

/// Runs `main` on a new loop, closes the loop and prints the cost in whole seconds of loop time
/// (the seed's `(b - a).seconds`). Returns the run's trace if `tracing`.
fn timed(fast: bool, tracing: bool, main: impl std::future::Future<Output = ()>) -> Option<Trace> {
    let mut lp = EventLoop::builder().virtual_time(fast).trace(tracing).build().expect("cannot create the event loop");
    let start = lp.time();
    lp.run_until_complete(async {
        // asyncio's `asyncio.current_task().set_name("main")`: labels main's row in a picture.
        aioloop::set_current_task_name("main");
        main.await
    });
    let cost = lp.time() - start;
    let trace = tracing.then(|| lp.trace());
    lp.close();
    println!("cost {}s", cost.as_secs());
    trace
}

fn main() {
    let fast = std::env::args().any(|a| a == "--fast");
    let trace_to = trace_path();
    println!("main thread {:?}", std::thread::current().id());
    println!("--- part 1: wait for all phases ---");
    let part1 = timed(fast, trace_to.is_some(), wait_all(3));
    println!("--- part 2: wait with a 6 s timeout, then cancel ---");
    let part2 = timed(fast, trace_to.is_some(), wait_with_timeout(3));
    if let (Some(path), Some(mut trace), Some(part2)) = (trace_to, part1, part2) {
        trace.append(part2);
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
