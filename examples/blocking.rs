//! Ports the central warning of seeds `004_5b2975e6746989ca.txt` ("经验分享": know which step of a
//! task blocks, and make that step asynchronous) and `001_248d928f422d19d8.txt` (one thread runs
//! every coroutine): a task that calls a blocking function stalls the whole loop.
//!
//! Two tasks share one loop. The `ticker` should tick every 100 ms, eight times; at 250 ms the
//! `blocker` waits 500 ms, in three ways:
//!
//! 1. `std::thread::sleep(500 ms)`, the seed's `time.sleep`: the loop's only thread sleeps, so no
//!    timer fires and no other task runs until it returns. Tick 3 comes about 450 ms late and
//!    ticks 4 to 7 never happen. Debug mode (`EventLoop::builder().debug(true)`) names the
//!    culprit: `Executing <Task name=blocker id=.. spawned at examples/blocking.rs:LINE:COL> took
//!    0.501 seconds`. The default exception handler prints that line on stderr, prefixed
//!    `aioloop: `; this example installs a handler that prints the same line on stdout, so it
//!    shows up in order with the ticks.
//! 2. Fix (a), `aioloop::sleep(500 ms).await`: the blocker waits *in* the loop, which runs the
//!    ticker meanwhile. Every tick is on time, and debug mode has nothing to report.
//! 3. Fix (b), for work that really blocks (a synchronous library, a file system call, heavy
//!    computation): `run_in_executor(|| std::thread::sleep(500 ms)).await` sends it to a pool
//!    thread and awaits the result, so the loop's thread stays free. Every tick is on time.
//!
//! The ticker aims at fixed instants (100 ms, 200 ms, ...): when it wakes up late, it reports how
//! late it is and which ticks it missed, then aims at the next instant still ahead (tokio's
//! `MissedTickBehavior::Skip`). Each part ends with a summary line:
//! `ticker: ticked 8 of 8 times, missed 0, worst lateness 1 ms`.
//!
//! Real time only (about 2.5 s): virtual time cannot skip a blocking call, which stalls the
//! thread, not the loop's clock.
//!
//! Run with: `cargo run --example blocking`

use std::time::{Duration, Instant};

use aioloop::EventLoop;

/// The ticker's period.
const PERIOD: Duration = Duration::from_millis(100);
/// How many ticks the ticker aims at.
const TICKS: u32 = 8;
/// When the blocker starts to wait, after the start.
const BLOCK_AT: Duration = Duration::from_millis(250);
/// How long the blocker waits.
const BLOCK_FOR: Duration = Duration::from_millis(500);

/// How the blocker waits.
#[derive(Clone, Copy, Debug)]
enum Wait {
    /// `std::thread::sleep` on the loop's thread: the mistake.
    ThreadSleep,
    /// `aioloop::sleep`: fix (a).
    LoopSleep,
    /// `std::thread::sleep` on an executor thread: fix (b).
    Executor,
}

/// How well the ticker kept its rhythm.
#[derive(Debug, Default)]
struct Rhythm {
    ticks: u32,
    missed: u32,
    worst_late: Duration,
}

/// Seconds since `start`, as `0.123s`.
fn at(start: Instant) -> String {
    format!("{:.3}s", (aioloop::now() - start).as_secs_f64())
}

/// Aims at a tick every `PERIOD` after `start`, `TICKS` times, and reports how late each one is.
async fn ticker(start: Instant) -> Rhythm {
    let mut rhythm = Rhythm::default();
    let mut tick = 1;
    while tick <= TICKS {
        let due = start + PERIOD * tick;
        aioloop::sleep_until(due).await;
        let now = aioloop::now();
        let late = now - due;
        // The tick whose instant the clock has reached: the ones between `tick` and it passed
        // while the loop could not run the ticker.
        let reached = u32::try_from((now - start).as_nanos() / PERIOD.as_nanos()).unwrap_or(u32::MAX).min(TICKS);
        let missed = reached - tick;
        rhythm.ticks += 1;
        rhythm.missed += missed;
        rhythm.worst_late = rhythm.worst_late.max(late);
        match missed {
            0 => println!("ticker: tick {tick} at {}, {} ms late", at(start), late.as_millis()),
            1 => println!("ticker: tick {tick} at {}, {} ms late: missed tick {reached}", at(start), late.as_millis()),
            _ => println!(
                "ticker: tick {tick} at {}, {} ms late: missed ticks {} to {reached}",
                at(start),
                late.as_millis(),
                tick + 1
            ),
        }
        tick = reached + 1;
    }
    rhythm
}

/// Waits `BLOCK_AT` politely, then waits `BLOCK_FOR` the way `how` says.
async fn blocker(how: Wait, start: Instant) {
    aioloop::sleep(BLOCK_AT).await;
    match how {
        Wait::ThreadSleep => {
            println!("blocker: std::thread::sleep(500 ms) at {}: the loop's thread stops", at(start));
            std::thread::sleep(BLOCK_FOR);
            println!("blocker: back at {}", at(start));
        }
        Wait::LoopSleep => {
            println!("blocker: aioloop::sleep(500 ms) at {}: the loop runs on", at(start));
            aioloop::sleep(BLOCK_FOR).await;
            println!("blocker: back at {}", at(start));
        }
        Wait::Executor => {
            println!("blocker: run_in_executor(std::thread::sleep(500 ms)) at {}: the loop runs on", at(start));
            let thread = aioloop::run_in_executor(|| {
                std::thread::sleep(BLOCK_FOR);
                std::thread::current().name().unwrap_or("unnamed").to_string()
            })
            .await
            .expect("the blocking job does not panic");
            println!("blocker: back at {} (it slept on thread {thread})", at(start));
        }
    }
}

/// Runs the ticker and the blocker on a new loop in debug mode and prints the ticker's summary.
fn part(title: &str, how: Wait) {
    println!("--- {title} ---");
    let mut lp = EventLoop::builder().debug(true).build().expect("cannot create the event loop");
    // The default handler prints `aioloop: <report>` on stderr; print it on stdout instead, so
    // that it appears in order with the ticks.
    lp.set_exception_handler(|ctx| println!("aioloop: {ctx}"));
    let rhythm = lp.run_until_complete(async move {
        let start = aioloop::now();
        let ticker = aioloop::spawn(ticker(start));
        ticker.set_name("ticker");
        let blocker = aioloop::spawn(blocker(how, start));
        blocker.set_name("blocker");
        blocker.await.expect("the blocker is neither cancelled nor panicking");
        ticker.await.expect("the ticker is neither cancelled nor panicking")
    });
    lp.close();
    println!(
        "ticker: ticked {} of {TICKS} times, missed {}, worst lateness {} ms",
        rhythm.ticks,
        rhythm.missed,
        rhythm.worst_late.as_millis()
    );
}

fn main() {
    let started = Instant::now();
    part("1. the blocker calls std::thread::sleep(500 ms): the whole loop stalls", Wait::ThreadSleep);
    part("2. fix (a): the blocker awaits aioloop::sleep(500 ms) instead", Wait::LoopSleep);
    part("3. fix (b): the blocker awaits run_in_executor(|| std::thread::sleep(500 ms))", Wait::Executor);
    println!("total {:.1}s of real time", started.elapsed().as_secs_f64());
}
