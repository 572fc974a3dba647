//! Ports the two programs of seed `001_248d928f422d19d8.txt` ("Python协程和Go协程的对比"), and the
//! three remarks the seed makes about the Go one.
//!
//! Part 1, the Python program: `get_channel_user_info(url)` prints `request start`, awaits a
//! 1 s sleep standing for a call to a third-party service, and prints `request succ`; `main`
//! runs three of them with `loop.run_until_complete(asyncio.wait(tasks))`. The three overlap:
//! cost 1 s. (As written, the seed passes coroutines to `asyncio.wait`, which Python 3.11
//! refuses with `TypeError: Passing coroutines is forbidden, use tasks explicitly.`; wrapped in
//! tasks, CPython 3.11 prints the lines below in this order.)
//!
//! Part 2, the Go program:
//!
//! ```go
//! func main() {
//!    go func() { fmt.Println("i am a goroutine") }()
//!    select {}
//! }
//! ```
//!
//! A detached task plays the goroutine: nobody awaits it, and it still runs, but only once
//! `main` gives the loop's thread back (Go starts a goroutine on another thread at once; the
//! seed's second remark about Python: a coroutine runs only inside a running event loop). Then
//! `select {}` blocks forever with nothing left to run. Go notices and stops the program with
//! `fatal error: all goroutines are asleep - deadlock!`; an aioloop loop would sleep in its
//! poller forever, since a socket or another thread could still wake it. The port shows the
//! loop's state at that point (`EventLoop::stats()`: nothing ready, no timer) instead of hanging.
//!
//! Part 3, the seed's first remark: when `main` returns, the goroutines it started end with it.
//! Here too: `asyncio.run` (and `aioloop::run`) cancel the tasks left when `main` returns, and
//! this part does the same by hand after listing them with `EventLoop::tasks()`. The detached
//! task's first step still runs: it was queued before `main` returned, and the loop stops only
//! after the next iteration, as in asyncio (CPython 3.11 prints `main returns`, `side task
//! starts`, `side task cancelled`). Its destructor plays `except CancelledError:`.
//!
//! Part 4, the seed's second remark: a goroutine returns nothing to `main`; to talk, it needs a
//! channel. A task returns its value through its handle, and a `Queue` is the channel.
//!
//! Run with: `cargo run --example user_info` (1 s of real time), or
//! `cargo run --example user_info -- --fast` (virtual time: the same lines, at once).

use std::time::Duration;

use aioloop::sync::Queue;
use aioloop::{EventLoop, ReturnWhen, WaitingOn};

/// The seed's `get_channel_user_info(url)`.
async fn get_channel_user_info(url: &'static str) {
    println!("request start  {url}");
    // Stands for a call to a third-party service.
    aioloop::sleep(Duration::from_secs(1)).await;
    println!("request succ  {url}");
}

/// Part 1: three requests, then `asyncio.wait(tasks)`.
fn part1(fast: bool) {
    let mut lp = EventLoop::builder().virtual_time(fast).build().expect("create the event loop");
    let start = lp.time();
    lp.run_until_complete(async {
        let tasks: Vec<_> = ["baidu", "bytedance", "weixin"]
            .into_iter()
            .map(|url| aioloop::spawn(get_channel_user_info(url)))
            .collect();
        aioloop::wait(tasks, None, ReturnWhen::AllCompleted).await;
    });
    println!("cost {}s", (lp.time() - start).as_secs());
    lp.close();
}

/// Part 2: `go func() { ... }()` then `select {}`.
fn part2() {
    let mut lp = EventLoop::new().expect("create the event loop");
    lp.run_until_complete(async {
        // `go func() { fmt.Println("i am a goroutine") }()`: spawned, and the handle dropped.
        drop(aioloop::spawn(async { println!("i am a goroutine") }));
        println!("main: spawned the task; it has not run yet");
        // Give the thread back for one iteration: the detached task runs now.
        aioloop::yield_now().await;
        println!("main: after one yield");
    });
    // `select {}`: what is left that could ever run?
    let s = lp.stats();
    println!("select {{}}: {} tasks alive, {} ready, {} timers", s.tasks, s.ready, s.timers);
    println!("nothing can wake the loop but I/O or another thread: run_forever() would sleep forever");
    lp.close();
}

/// Prints `side task cancelled` if the side task is dropped before it finished.
struct CancelGuard;

impl Drop for CancelGuard {
    fn drop(&mut self) {
        println!("side task cancelled");
    }
}

/// Part 3: `main` returns while its detached task still waits.
#[allow(clippy::async_yields_async)] // the main future returns the side task's handle, not its outcome
fn part3(fast: bool) {
    let mut lp = EventLoop::builder().virtual_time(fast).build().expect("create the event loop");
    let side = lp.run_until_complete(async {
        let side = aioloop::spawn(async {
            let guard = CancelGuard;
            println!("side task starts");
            aioloop::sleep(Duration::from_secs(1)).await;
            println!("side task done");
            std::mem::forget(guard);
        });
        side.set_name("side");
        println!("main returns");
        side // kept only for the shutdown below
    });
    for t in lp.tasks().tasks {
        println!("left when main returned: {}, waiting on {}", t.name, kind(&t.waiting_on));
    }
    // `asyncio.run`'s shutdown, which `aioloop::run` does too: cancel what is left and run the
    // loop until it has finished.
    side.cancel();
    let outcome = lp.run_until_complete(side);
    println!("the side task ended: {outcome:?}");
    lp.close();
}

/// The kind of thing a task waits on, without the instant of a timer.
fn kind(w: &WaitingOn) -> &'static str {
    match w {
        WaitingOn::Timer(_) => "a timer",
        WaitingOn::Nothing => "nothing (it is ready)",
        _ => "something else",
    }
}

/// Part 4: a task's value comes back through its handle, or through a queue (a channel).
fn part4() {
    aioloop::run(async {
        let answer = aioloop::spawn(async { 6 * 7 }).await.expect("the task neither fails nor is cancelled");
        println!("through the handle: {answer}");
        let channel = Queue::new(1);
        let tx = channel.clone();
        drop(aioloop::spawn(async move { tx.put("sent over a queue").await }));
        println!("through a queue: {}", channel.get().await);
    });
}

fn main() {
    let fast = std::env::args().any(|a| a == "--fast");
    println!("--- part 1: three requests with asyncio.wait ---");
    part1(fast);
    println!("--- part 2: go func() {{ ... }}(); select {{}} ---");
    part2();
    println!("--- part 3: main returns first ---");
    part3(fast);
    println!("--- part 4: results back to main ---");
    part4();
}
