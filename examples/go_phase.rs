//! Ports the three Go programs of seed `000_acc3b2743b322c5e.txt` ("golang 线程-协程：多对多关系",
//! Go's M:N goroutines), which redo the seed's asyncio `phase(i)` program with goroutines:
//!
//! 1. `go phase(i, &wg)` for three phases that sleep `5 * i` seconds, then `wg.Wait()`: every
//!    phase finishes; cost 10 s. The port spawns three tasks and waits on a small `WaitGroup`
//!    built from a counter and an [`aioloop::sync::Event`] (Go's `Add`, `Done`, `Wait`).
//! 2. The same with `time.Sleep(6 * time.Second)` in place of `wg.Wait()`: phase 2 is still
//!    asleep when `main` returns, and Go ends the process, goroutine and all, without a word;
//!    cost 6 s. In the port, `main` returning leaves phase 2 pending, and closing the loop drops
//!    its future: its destructors run, so a guard can say `phase 2 dropped, unfinished`, which
//!    a Go program cannot (a goroutine killed at exit runs no deferred call). Closing a loop with
//!    a pending task also reports `Task was destroyed but it is pending!` on stderr, as asyncio
//!    does.
//! 3. Each goroutine prints the id of the OS thread it runs on (the seed uses Windows'
//!    `GetCurrentThreadId`); Go's scheduler spread the three over three threads. One aioloop
//!    loop runs every task on its one thread, so the port gets Go's picture only by running a
//!    loop per thread: each phase runs on a loop of its own, on a thread of its own
//!    ("thread-per-core", 1:N on each of N threads). Main sleeps 10 s, as in the seed.
//!
//! The seed's typos (`waiteing`, `mexiting main`) are not kept. Go starts the three goroutines
//! in an order its scheduler picks (the seed's output shows 2, 1, 0); tasks start in the order
//! they were spawned.
//!
//! Run with: `cargo run --example go_phase` (26 s of real time), or
//! `cargo run --example go_phase -- --fast` (virtual time: the same lines, at once; in part 3
//! the three threads' lines may interleave differently from run to run).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aioloop::sync::Event;
use aioloop::EventLoop;

/// Go's `sync.WaitGroup` for the tasks of one loop: a count and an event set when it reaches 0.
#[derive(Clone, Default)]
struct WaitGroup {
    count: Rc<Cell<usize>>,
    zero: Event,
}

impl WaitGroup {
    /// `wg.Add(n)`.
    fn add(&self, n: usize) {
        self.count.set(self.count.get() + n);
    }

    /// A wait group that counts `n` already (`wg.Add(n)` on a new one).
    fn with_count(self, n: usize) -> WaitGroup {
        self.add(n);
        self
    }

    /// `wg.Done()`.
    fn done(&self) {
        let left = self.count.get().checked_sub(1).expect("negative WaitGroup counter");
        self.count.set(left);
        if left == 0 {
            self.zero.set();
        }
    }

    /// `wg.Wait()`.
    async fn wait(&self) {
        if self.count.get() > 0 {
            self.zero.wait().await;
        }
    }
}

/// Prints `phase n dropped, unfinished` if the phase's future is dropped before it finished.
struct Unfinished(u64);

impl Drop for Unfinished {
    fn drop(&mut self) {
        println!("phase {} dropped, unfinished", self.0);
    }
}

/// The seed's `phase(n, wg)`.
async fn phase(n: u64, wg: WaitGroup) {
    let guard = Unfinished(n);
    println!("in phase {n}, waiting {} s", 5 * n);
    aioloop::sleep(Duration::from_secs(5 * n)).await;
    println!("phase {n} result");
    std::mem::forget(guard); // finished: nothing to report
    wg.done();
}

/// Part 1: `wg.Wait()`.
async fn wait_group_main(num: u64) {
    let wg = WaitGroup::default();
    wg.add(num as usize);
    for i in 0..num {
        // `go phase(i, &wg)`: a detached task; nobody awaits its handle.
        drop(aioloop::spawn(phase(i, wg.clone())));
    }
    wg.wait().await;
    println!("exiting main");
}

/// Part 2: `time.Sleep(6 * time.Second)` instead of `wg.Wait()`.
async fn sleep_main(num: u64) {
    let wg = WaitGroup::default();
    wg.add(num as usize);
    for i in 0..num {
        drop(aioloop::spawn(phase(i, wg.clone())));
    }
    aioloop::sleep(Duration::from_secs(6)).await;
    println!("exiting main");
}

/// Runs `main` on a new loop, closes the loop (dropping what is left) and prints the cost in
/// whole seconds of loop time.
fn timed(fast: bool, main: impl std::future::Future<Output = ()>) {
    let mut lp = EventLoop::builder().virtual_time(fast).build().expect("create the event loop");
    let start = lp.time();
    lp.run_until_complete(main);
    let cost = lp.time() - start;
    lp.close();
    println!("cost {}s", cost.as_secs());
}

/// Part 3: each phase on its own thread, on a loop of its own; main sleeps 10 s on its loop.
fn thread_per_phase(fast: bool, num: u64) {
    println!("main thread {:?}", std::thread::current().id());
    let mut lp = EventLoop::builder().virtual_time(fast).build().expect("create the event loop");
    let start = lp.time();
    let threads: Vec<_> = (0..num)
        .map(|n| {
            std::thread::spawn(move || {
                let mut lp = EventLoop::builder().virtual_time(fast).build().expect("create the event loop");
                lp.run_until_complete(async move {
                    println!("goroutine {n} runs on thread {:?}", std::thread::current().id());
                    phase(n, WaitGroup::default().with_count(1)).await;
                });
            })
        })
        .collect();
    lp.run_until_complete(aioloop::sleep(Duration::from_secs(10)));
    // On real time every thread has finished by now; on virtual time (`--fast`) the main loop's
    // 10 s pass at once, so wait for the threads here, where Go's sleep would have.
    for t in threads {
        t.join().expect("a phase thread does not panic");
    }
    println!("exiting main");
    println!("cost {}s", (lp.time() - start).as_secs());
}

fn main() {
    let fast = std::env::args().any(|a| a == "--fast");
    println!("--- part 1: go phase(i, &wg) for 3 phases, then wg.Wait() ---");
    timed(fast, wait_group_main(3));
    println!("--- part 2: time.Sleep(6 s) instead of wg.Wait() ---");
    timed(fast, sleep_main(3));
    println!("--- part 3: one loop per thread, as Go spreads goroutines over threads ---");
    thread_per_phase(fast, 3);
}
