//! A std thread feeds work to an event loop running on the main thread, through a
//! [`LoopHandle`]: asyncio's `call_soon_threadsafe` and `run_coroutine_threadsafe`. Seed
//! `000_acc3b2743b322c5e.txt` ("线程-协程：一对多关系") is about one thread running many coroutines;
//! this is how *other* threads hand it work without touching its single-threaded state.
//!
//! The `feeder` thread, step by step, waiting for each step's result before the next:
//!
//! 1. `call_soon_threadsafe`: a callback runs on the loop's thread and sends its result back
//!    over a std channel (a callback is how an asyncio program answers a thread, too);
//! 2. `spawn`: a `Send` future becomes a task of the loop; the thread awaits its [`RemoteTask`]
//!    with a small `block_on` (park the thread; the task's completion unparks it);
//! 3. `spawn_with`: a closure sent to the loop makes a future that is *not* `Send` (it shares an
//!    `Rc` with tasks it spawns) on the loop's thread;
//! 4. `RemoteTask::cancel` from the thread: the task's future is dropped on the loop's thread,
//!    and the thread's `block_on` gets `Err(Cancelled)`;
//! 5. `stop`: the thread is done, so the loop's `run_forever` returns, and `main` joins it.
//!
//! Every line names the thread that printed it: `loop:` lines come from `main`, `feeder:` lines
//! from `feeder`. The output is the same on every run: each step's loop side prints before its
//! result reaches the thread.
//!
//! Run with: `cargo run --example threadsafe`

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use aioloop::{EventLoop, LoopHandle, TaskError};

/// Runs a future to completion on the current thread, parking it while the future is pending.
///
/// A `RemoteTask`'s waker may be called from the loop's thread; it unparks this one.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        // A wake before this park makes it return at once; a spurious return polls again.
        thread::park();
    }
}

/// The name of the current thread.
fn me() -> String {
    thread::current().name().unwrap_or("unnamed").to_string()
}

/// Stops the loop when dropped: when the feeder is done, and also if it panics.
struct StopOnDrop(LoopHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        println!("feeder: done on thread {}; stopping the loop", me());
        self.0.stop();
    }
}

/// Prints a line when the 60 s sleep of step 4 is dropped before it finished.
struct Cancelled;

impl Drop for Cancelled {
    fn drop(&mut self) {
        println!("loop: the 60 s sleep was dropped (cancelled) on thread {}", me());
    }
}

/// The feeder thread's program.
fn feed(h: LoopHandle) {
    let _stop = StopOnDrop(h.clone());
    println!("feeder: started on thread {}", me());

    println!("--- 1. call_soon_threadsafe, the result sent back over a channel ---");
    let (tx, rx) = mpsc::channel();
    h.call_soon_threadsafe(move || {
        println!("loop: the callback runs on thread {}", me());
        let _ = tx.send((1..=100).sum::<u32>());
    })
    .expect("the loop is running");
    println!("feeder: got {} back on thread {}", rx.recv().expect("the callback sends"), me());

    println!("--- 2. spawn a Send future, block_on its RemoteTask ---");
    let task = h.spawn(async {
        println!("loop: square(7) runs on thread {}, sleeps 20 ms", me());
        aioloop::sleep(Duration::from_millis(20)).await;
        7 * 7
    });
    println!("feeder: square(7) = {:?} on thread {}", block_on(task), me());

    println!("--- 3. spawn_with: a future that is not Send, made on the loop's thread ---");
    let task = h.spawn_with(|| {
        println!("loop: the closure makes the future on thread {}", me());
        let count = Rc::new(Cell::new(0)); // `Rc` is not `Send`: it stays on the loop's thread
        async move {
            let tasks = (1..=3).map(|i| {
                let count = count.clone();
                aioloop::spawn(async move {
                    aioloop::sleep(Duration::from_millis(10 * i)).await;
                    count.set(count.get() + i);
                    println!("loop: task {i} adds {i} on thread {}", me());
                })
            });
            aioloop::gather(tasks.collect::<Vec<_>>()).await.expect("the tasks neither panic nor are cancelled");
            count.get()
        }
    });
    println!("feeder: the three tasks added up to {:?} on thread {}", block_on(task), me());

    println!("--- 4. cancel a RemoteTask from the thread ---");
    let (started_tx, started) = mpsc::channel();
    let task = h.spawn(async move {
        let _guard = Cancelled;
        println!("loop: a 60 s sleep starts on thread {}", me());
        let _ = started_tx.send(());
        aioloop::sleep(Duration::from_secs(60)).await;
    });
    // Cancel once the sleep has started (a task may be cancelled before it starts, too).
    started.recv().expect("the task starts");
    println!("feeder: cancelling it on thread {}", me());
    let requested = task.cancel();
    match block_on(task) {
        Err(TaskError::Cancelled) => println!("feeder: cancel() returned {requested}; the task ended Cancelled"),
        other => println!("feeder: unexpected outcome {other:?}"),
    }
}

fn main() {
    let mut lp = match EventLoop::new() {
        Ok(lp) => lp,
        Err(e) => {
            eprintln!("threadsafe: cannot create the event loop: {e}");
            std::process::exit(1);
        }
    };
    println!("main: the loop runs on thread {}", me());
    let h = lp.handle();
    let feeder = thread::Builder::new().name("feeder".into()).spawn(move || feed(h));
    let feeder = match feeder {
        Ok(f) => f,
        Err(e) => {
            eprintln!("threadsafe: cannot start the feeder thread: {e}");
            std::process::exit(1);
        }
    };
    // Runs until the feeder calls `stop()`; the feeder's requests run in here, on this thread.
    lp.run_forever();
    println!("main: the loop stopped; joining the feeder");
    if feeder.join().is_err() {
        eprintln!("threadsafe: the feeder thread panicked");
        std::process::exit(1);
    }
    lp.close();
    println!("main: done");
}
