//! Talking to a loop from other threads: `LoopHandle::call_soon_threadsafe`, `spawn`,
//! `spawn_with`, `stop`, and `RemoteTask` (reliability checklist item 2).
//!
//! A lost wake-up shows up as a hang, so the tests that wait on one run under a watchdog thread
//! that aborts the process with a message after 60 s.

use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use aioloop::{EventLoop, LoopClosed, TaskError};
use futures_lite::future::block_on;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Aborts the process if not disarmed within `limit`: turns a lost wake-up into a failure.
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn arm(what: &'static str, limit: Duration) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        thread::spawn(move || {
            let start = Instant::now();
            while !d.load(SeqCst) {
                if start.elapsed() > limit {
                    eprintln!("watchdog: {what} did not finish within {limit:?} (a lost wake-up?)");
                    std::process::abort();
                }
                thread::sleep(ms(20));
            }
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// A one-shot flag a task can await, completed from any thread.
#[derive(Default)]
struct Oneshot(Mutex<(bool, Option<Waker>)>);

impl Oneshot {
    fn complete(&self) {
        let waker = {
            let mut s = self.0.lock().unwrap();
            s.0 = true;
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            let mut s = self.0.lock().unwrap();
            if s.0 {
                Poll::Ready(())
            } else {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// A tiny xorshift generator for the random delays.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Checklist 2: the loop is idle (no timers, no I/O: it blocks in the poller with no timeout);
/// another thread, after a random 0-100 µs pause, sends a callback that completes the oneshot
/// the main task awaits. 10,000 rounds; a lost wake-up would hang (the watchdog aborts).
#[test]
#[cfg_attr(miri, ignore = "real threads and the OS poller; 10,000 rounds")]
fn call_soon_threadsafe_wakes_a_blocked_loop_ten_thousand_times() {
    const ROUNDS: u32 = 10_000;
    let _watchdog = Watchdog::arm("10,000 call_soon_threadsafe rounds", Duration::from_secs(60));
    let mut lp = EventLoop::new().unwrap();
    let h = lp.handle();
    let (tx, rx) = mpsc::channel::<Arc<Oneshot>>();
    let sender = thread::spawn(move || {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut sent = 0u32;
        for shot in rx {
            let pause = Duration::from_nanos(xorshift(&mut seed) % 100_000);
            let start = Instant::now();
            while start.elapsed() < pause {
                std::hint::spin_loop();
            }
            h.call_soon_threadsafe(move || shot.complete()).unwrap();
            sent += 1;
        }
        sent
    });
    let before = lp.stats();
    let completed = lp.run_until_complete(async {
        for round in 0..ROUNDS {
            let shot = Arc::new(Oneshot::default());
            tx.send(shot.clone()).unwrap();
            shot.wait().await;
            let _ = round;
        }
        drop(tx);
        ROUNDS
    });
    assert_eq!(completed, ROUNDS);
    assert_eq!(sender.join().unwrap(), ROUNDS);
    let after = lp.stats();
    // The loop really slept in the poller without a timeout at least some of the time.
    assert!(after.polls > before.polls, "the loop never blocked in the poller");
    assert!(after.iterations - before.iterations >= u64::from(ROUNDS));
}

#[test]
#[cfg_attr(miri, ignore = "real threads and the OS poller")]
fn call_soon_threadsafe_runs_callbacks_on_the_loop_thread_in_order() {
    let _watchdog = Watchdog::arm("ordered callbacks", Duration::from_secs(60));
    let mut lp = EventLoop::new().unwrap();
    let h = lp.handle();
    let loop_thread = thread::current().id();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let sender = thread::spawn(move || {
        for i in 0..100 {
            let s = s.clone();
            h.call_soon_threadsafe(move || {
                assert_eq!(thread::current().id(), loop_thread, "callbacks run on the loop's thread");
                s.lock().unwrap().push(i);
            })
            .unwrap();
        }
        let h2 = h.clone();
        h.call_soon_threadsafe(move || h2.stop()).unwrap();
    });
    lp.run_forever();
    sender.join().unwrap();
    assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<_>>());
}

#[test]
#[cfg_attr(miri, ignore = "real threads and the OS poller")]
fn a_call_from_another_thread_wakes_a_loop_sleeping_on_a_far_timer() {
    let _watchdog = Watchdog::arm("wake from a long sleep", Duration::from_secs(60));
    let mut lp = EventLoop::new().unwrap();
    let h = lp.handle();
    let far = lp.call_later(Duration::from_secs(3600), || panic!("the far timer must not fire"));
    let t = thread::spawn(move || {
        thread::sleep(ms(20));
        let h2 = h.clone();
        h.call_soon_threadsafe(move || h2.stop()).unwrap();
    });
    let start = Instant::now();
    lp.run_forever();
    let waited = start.elapsed();
    t.join().unwrap();
    assert!(waited < Duration::from_secs(10), "woken promptly, not at the timer: {waited:?}");
    let last = lp.stats().last_poll_timeout.expect("the loop slept with the timer's timeout");
    assert!(last > Duration::from_secs(3000), "it was sleeping until the far timer: {last:?}");
    far.cancel();
}

#[test]
#[cfg_attr(miri, ignore = "real threads and the OS poller")]
fn stop_from_another_thread_wakes_a_loop_blocked_forever() {
    let _watchdog = Watchdog::arm("stop from another thread", Duration::from_secs(60));
    let mut lp = EventLoop::new().unwrap();
    let h = lp.handle();
    let t = thread::spawn(move || {
        thread::sleep(ms(20));
        h.stop();
    });
    let start = Instant::now();
    lp.run_forever();
    let waited = start.elapsed();
    t.join().unwrap();
    assert!(waited >= ms(15), "run_forever returned before the stop: {waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    let stats = lp.stats();
    assert_eq!(stats.last_poll_timeout, None, "the loop was blocked with no timeout");
    assert!(stats.iterations <= 3, "no spinning while blocked: {} iterations", stats.iterations);
}

#[test]
#[cfg_attr(miri, ignore = "real threads and the OS poller")]
fn spawn_from_another_thread_is_awaited_there_with_block_on() {
    let _watchdog = Watchdog::arm("spawn from another thread", Duration::from_secs(60));
    let mut lp = EventLoop::new().unwrap();
    let h = lp.handle();
    let loop_thread = thread::current().id();
    let worker = thread::spawn(move || {
        let t = h.spawn(async move {
            aioloop::sleep(ms(10)).await;
            assert_eq!(thread::current().id(), loop_thread, "the future runs on the loop's thread");
            6 * 7
        });
        assert!(!t.is_done());
        let v = block_on(t).unwrap();
        // A panicking one reports the panic.
        let p = block_on(h.spawn(async { panic!("remote boom") })).unwrap_err();
        h.stop();
        (v, p)
    });
    lp.run_forever();
    let (v, p) = worker.join().unwrap();
    assert_eq!(v, 42);
    match p {
        TaskError::Panicked(payload) => assert_eq!(*payload.downcast::<&str>().unwrap(), "remote boom"),
        TaskError::Cancelled => panic!("expected a panic"),
    }
}

#[test]
#[cfg_attr(miri, ignore = "real threads and the OS poller")]
fn a_remote_task_can_be_awaited_from_another_loop() {
    let _watchdog = Watchdog::arm("await a remote task from another loop", Duration::from_secs(60));
    let mut lp = EventLoop::new().unwrap();
    let h = lp.handle();
    let other = thread::spawn(move || {
        let v = aioloop::run(async {
            let t = h.spawn(async {
                aioloop::sleep(ms(5)).await;
                "from loop A"
            });
            t.await.unwrap()
        });
        h.stop();
        v
    });
    lp.run_forever();
    assert_eq!(other.join().unwrap(), "from loop A");
}

#[test]
#[cfg_attr(miri, ignore = "real threads and the OS poller")]
fn remote_task_cancel_from_another_thread_cancels_the_task() {
    let _watchdog = Watchdog::arm("remote cancel", Duration::from_secs(60));
    let mut lp = EventLoop::new().unwrap();
    let h = lp.handle();
    let started = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let (s, d) = (started.clone(), dropped.clone());
    let worker = thread::spawn(move || {
        struct SetOnDrop(Arc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, SeqCst);
            }
        }
        let guard = SetOnDrop(d);
        let t = h.spawn(async move {
            let _guard = guard;
            s.store(true, SeqCst);
            std::future::pending::<u32>().await
        });
        while !started.load(SeqCst) {
            thread::sleep(ms(1));
        }
        assert!(t.cancel(), "a running task can be cancelled");
        let outcome = block_on(t);
        h.stop();
        outcome
    });
    lp.run_forever();
    let outcome = worker.join().unwrap();
    assert!(outcome.unwrap_err().is_cancelled());
    assert!(dropped.load(SeqCst), "the cancelled future was dropped");
}

/// Cancelled from another thread before the loop ran the callback that creates the task: the
/// handle resolves to `Cancelled` and, as with `Task::cancel` on a task that has not started,
/// the future never runs.
#[test]
#[cfg_attr(miri, ignore = "real threads and the OS poller")]
fn remote_task_cancelled_before_the_loop_created_it_never_runs() {
    let mut lp = EventLoop::new().unwrap();
    let h = lp.handle();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let early = thread::spawn(move || {
        let t = h.spawn(async move { r.store(true, SeqCst) });
        assert!(t.cancel());
        t
    })
    .join()
    .unwrap();
    let outcome = lp.run_until_complete(async {
        aioloop::sleep(ms(5)).await;
        early.await
    });
    assert!(outcome.unwrap_err().is_cancelled());
    assert!(!ran.load(SeqCst), "a task cancelled before it started must never run");
}

#[test]
#[cfg_attr(miri, ignore = "real threads and the OS poller")]
fn remote_task_cancel_after_it_finished_returns_false_and_keeps_the_value() {
    let mut lp = EventLoop::new().unwrap();
    let t = lp.handle().spawn(async { 5 });
    lp.run_until_complete(aioloop::sleep(ms(2)));
    assert!(t.is_done());
    assert!(!t.cancel(), "cancelling a finished task does nothing");
    let v = thread::spawn(move || block_on(t)).join().unwrap();
    assert_eq!(v.unwrap(), 5);
}

#[test]
#[cfg_attr(miri, ignore = "real threads and the OS poller")]
fn spawn_with_runs_a_non_send_future_built_on_the_loop_thread() {
    let _watchdog = Watchdog::arm("spawn_with", Duration::from_secs(60));
    let mut lp = EventLoop::new().unwrap();
    let h = lp.handle();
    let worker = thread::spawn(move || {
        let t = h.spawn_with(|| {
            let local = Rc::new(21); // !Send: created on the loop's thread
            let task = aioloop::spawn(async { 2 }); // a Task handle is !Send too
            async move {
                aioloop::sleep(ms(2)).await;
                *local * task.await.unwrap()
            }
        });
        let v = block_on(t).unwrap();
        h.stop();
        v
    });
    lp.run_forever();
    assert_eq!(worker.join().unwrap(), 42);
}

#[test]
#[cfg_attr(miri, ignore = "real threads and the OS poller")]
fn a_closed_loop_refuses_work_with_loop_closed() {
    let lp = EventLoop::new().unwrap();
    let h = lp.handle();
    lp.close();
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    struct CountDrop(Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let guard = CountDrop(d);
    let err = h
        .call_soon_threadsafe(move || {
            let _g = guard;
            panic!("must never run");
        })
        .unwrap_err();
    assert_eq!(err, LoopClosed);
    assert_eq!(err.to_string(), "Event loop is closed");
    assert_eq!(dropped.load(SeqCst), 1, "the refused callback was dropped");
    // From another thread, too; spawn resolves to Cancelled at once.
    let outcome = thread::spawn(move || {
        assert_eq!(h.call_soon_threadsafe(|| {}), Err(LoopClosed));
        h.stop(); // harmless
        block_on(h.spawn(async { 1 }))
    })
    .join()
    .unwrap();
    assert!(outcome.unwrap_err().is_cancelled());
}

#[test]
#[cfg_attr(miri, ignore = "real threads and the OS poller")]
fn remote_tasks_resolve_to_cancelled_when_their_loop_closes() {
    let _watchdog = Watchdog::arm("remote tasks on a closing loop", Duration::from_secs(60));
    let mut lp = EventLoop::new().unwrap();
    let h = lp.handle();
    let drops = Arc::new(AtomicUsize::new(0));
    struct CountDrop(Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    // One that started and is pending, one whose creation the loop never ran.
    let d = CountDrop(drops.clone());
    let started = h.spawn(async move {
        let _d = d;
        aioloop::sleep(Duration::from_secs(3600)).await;
    });
    lp.run_until_complete(aioloop::sleep(ms(2)));
    assert!(!started.is_done());
    let d = CountDrop(drops.clone());
    let never_ran = h.spawn(async move {
        let _d = d;
        panic!("must never run");
    });
    // Awaited from another thread while the loop closes.
    let waiter = thread::spawn(move || (block_on(started), block_on(never_ran)));
    thread::sleep(ms(10));
    lp.close();
    let (a, b) = waiter.join().unwrap();
    assert!(a.unwrap_err().is_cancelled());
    assert!(b.unwrap_err().is_cancelled());
    assert_eq!(drops.load(SeqCst), 2, "both futures were dropped");
}

/// A task's own waker, sent to another thread and woken there while the loop is blocked.
#[test]
#[cfg_attr(miri, ignore = "real threads and the OS poller")]
fn a_waker_woken_from_another_thread_resumes_its_task() {
    let _watchdog = Watchdog::arm("cross-thread waker", Duration::from_secs(60));
    let polls = aioloop::run(async {
        let shot = Arc::new(Oneshot::default());
        let s = shot.clone();
        let t = thread::spawn(move || {
            thread::sleep(ms(10));
            s.complete(); // wakes the task's waker from this thread
        });
        let mut polls = 0;
        poll_fn(|cx| {
            polls += 1;
            let mut st = shot.0.lock().unwrap();
            if st.0 {
                Poll::Ready(())
            } else {
                st.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        t.join().unwrap();
        polls
    });
    assert_eq!(polls, 2, "polled once to park, once after the wake");
}
