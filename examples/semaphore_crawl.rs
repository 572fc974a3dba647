//! Ports the use case of seed `001_248d928f422d19d8.txt`, "客户端使用协程批量发送大量请求，压测等，如快速
//! 发送10w个请求" (a client sends many requests with coroutines, say 100,000 quickly), with
//! asyncio's usual guard: a semaphore that keeps at most 1,000 requests in flight.
//!
//! The asyncio program it follows:
//!
//! ```python
//! async def request(i, sem):
//!     try:
//!         await asyncio.sleep(request_time(i))   # the request
//!     finally:
//!         sem.release()
//!
//! sem = asyncio.Semaphore(1000)
//! for i in range(100_000):
//!     await sem.acquire()                        # waits while 1,000 are in flight
//!     asyncio.create_task(request(i, sem))
//! for _ in range(1000):
//!     await sem.acquire()                        # every permit back: every request done
//! ```
//!
//! The sender takes a permit *before* it spawns a request and hands it to the request, which
//! gives it back when it finishes: at most 1,000 request tasks exist at any time, and only the
//! sender ever waits in the semaphore. (The other common form, `gather` over 100,000 coroutines
//! that each run `async with sem:`, keeps the same limit but creates every task at once, 99,000
//! of them waiting in the semaphore's queue.)
//!
//! A request "takes" 10 to 100 ms (a sleep), a different time for each index but the same on
//! every run (a hash of the index, no random numbers). A line every 10,000 finished requests
//! shows the progress; the summary shows that 1,000 requests were in flight at the peak and never
//! more, and how close the total comes to the ideal, the sum of the request times divided by
//! 1,000.
//!
//! By default the loop runs on virtual time: the program takes about 5.6 s of loop time and much
//! less real time, and prints the same loop times on every run. With `--real` it spends the 5.6 s.
//!
//! Run with: `cargo run --example semaphore_crawl` (virtual time), or
//! `cargo run --example semaphore_crawl -- --real` (real time, about 6 s).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use aioloop::sync::{Permit, Semaphore};
use aioloop::EventLoop;

/// How many requests to send.
const REQUESTS: u64 = 100_000;
/// How many may be in flight at once.
const LIMIT: usize = 1_000;
/// A progress line every this many finished requests.
const REPORT_EVERY: u64 = 10_000;

/// How long request `i` takes: 10 to 100 ms, from a hash of `i` (splitmix64's finalizer).
fn request_time(i: u64) -> Duration {
    let mut x = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    Duration::from_millis(10 + x % 91)
}

/// What the requests count together (one thread: plain `Cell`s suffice).
#[derive(Debug, Default)]
struct Counters {
    in_flight: Cell<usize>,
    peak: Cell<usize>,
    done: Cell<u64>,
}

/// One request: it holds a permit from before it starts until it finishes.
async fn request(i: u64, permit: Permit, counters: Rc<Counters>, start: Instant) {
    counters.in_flight.set(counters.in_flight.get() + 1);
    counters.peak.set(counters.peak.get().max(counters.in_flight.get()));
    aioloop::sleep(request_time(i)).await;
    counters.in_flight.set(counters.in_flight.get() - 1);
    // The producer waits for this permit, if it waits for one: it can start the next request.
    drop(permit);
    let done = counters.done.get() + 1;
    counters.done.set(done);
    if done % REPORT_EVERY == 0 {
        let at = (aioloop::now() - start).as_secs_f64();
        println!("{done:>7} done at {at:.3}s");
    }
}

/// Sends every request: takes a permit (waiting while `LIMIT` requests hold one), then spawns a
/// request that holds it. Returns when every permit is back, which means every request is done.
async fn send_all(counters: Rc<Counters>, start: Instant) {
    let sem = Semaphore::new(LIMIT);
    for i in 0..REQUESTS {
        let permit = sem.acquire().await;
        // Detached: the permits, not the handles, tell when the requests are done.
        drop(aioloop::spawn(request(i, permit, counters.clone(), start)));
    }
    let mut all = Vec::with_capacity(LIMIT);
    for _ in 0..LIMIT {
        all.push(sem.acquire().await);
    }
}

fn main() {
    let real = std::env::args().any(|a| a == "--real");
    let kind = if real { "real" } else { "virtual" };
    let mut lp = EventLoop::builder().virtual_time(!real).build().expect("cannot create the event loop");
    let counters = Rc::new(Counters::default());
    println!("{REQUESTS} requests of 10 to 100 ms, at most {LIMIT} in flight, on {kind} time");

    let wall = Instant::now();
    let start = lp.time();
    lp.run_until_complete(send_all(counters.clone(), start));
    let total = lp.time() - start;
    let real_time = wall.elapsed();
    lp.close();

    let ideal: Duration = (0..REQUESTS).map(request_time).sum::<Duration>() / LIMIT as u32;
    println!("requests done: {}", counters.done.get());
    println!("peak in flight: {}", counters.peak.get());
    println!(
        "total {kind} time: {:.3}s (ideal: sum of request times / {LIMIT} = {:.3}s)",
        total.as_secs_f64(),
        ideal.as_secs_f64()
    );
    println!("real time: {:.3}s", real_time.as_secs_f64());
}
