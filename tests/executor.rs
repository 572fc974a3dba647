//! `run_in_executor`: blocking work on the pool, awaited from the loop (reliability checklist
//! item 37, and the virtual-time rule of item 25).
//!
//! Jobs that must still be running at a given moment wait on a channel the test controls, not
//! on a sleep, so the ordering does not depend on timing; the few real-time bounds are generous.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use aioloop::{EventLoop, TaskError};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// Waits (real time, on the loop) until `flag` is set, at most `limit`; returns whether it was.
async fn wait_for_flag(flag: &AtomicBool, limit: Duration) -> bool {
    let start = Instant::now();
    while !flag.load(SeqCst) {
        if start.elapsed() > limit {
            return false;
        }
        aioloop::sleep(ms(2)).await;
    }
    true
}

#[test]
#[cfg_attr(miri, ignore = "real threads")]
fn run_in_executor_returns_the_result_computed_on_another_thread() {
    let loop_thread = thread::current().id();
    let (v, job_thread) = aioloop::run(async {
        aioloop::run_in_executor(|| {
            thread::sleep(ms(5));
            (6 * 7, thread::current().id())
        })
        .await
        .unwrap()
    });
    assert_eq!(v, 42);
    assert_ne!(job_thread, loop_thread, "the job ran on a pool thread");
}

#[test]
#[cfg_attr(miri, ignore = "real threads")]
fn the_loop_keeps_running_tasks_while_a_job_blocks() {
    let (release, gate) = mpsc::channel::<()>();
    let ticks = aioloop::run(async move {
        let job = aioloop::run_in_executor(move || gate.recv().unwrap());
        let ticker = aioloop::spawn(async {
            let mut ticks = 0;
            for _ in 0..5 {
                aioloop::sleep(ms(1)).await;
                ticks += 1;
            }
            ticks
        });
        let ticks = ticker.await.unwrap();
        release.send(()).unwrap();
        job.await.unwrap();
        ticks
    });
    assert_eq!(ticks, 5, "the ticker finished while the job was blocked");
}

#[test]
#[cfg_attr(miri, ignore = "real threads")]
fn a_panicking_job_gives_panicked_with_its_payload_and_the_pool_survives() {
    let (err, after) = aioloop::run(async {
        let err = aioloop::run_in_executor(|| -> u8 { panic!("job failed: {}", 7) }).await.unwrap_err();
        let after = aioloop::run_in_executor(|| 1).await;
        (err, after)
    });
    match err {
        TaskError::Panicked(payload) => {
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            assert_eq!(text, Some("job failed: 7"));
        }
        TaskError::Cancelled => panic!("expected Panicked"),
    }
    assert_eq!(after.unwrap(), 1, "the pool still runs jobs after a panic");
}

/// Cancelling the task that awaits a job lets the job run to its end, on the pool, and drops
/// its result there; the loop goes on meanwhile.
#[test]
#[cfg_attr(miri, ignore = "real threads")]
fn cancelling_the_awaiting_task_lets_the_job_finish_and_discards_its_result() {
    let (release, gate) = mpsc::channel::<()>();
    let started = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let result_dropped = Arc::new(AtomicBool::new(false));
    let (s, f, rd) = (started.clone(), finished.clone(), result_dropped.clone());
    let mut lp = EventLoop::new().unwrap();
    let outcome = lp.run_until_complete(async move {
        let waiter = aioloop::spawn(async move {
            let r = aioloop::run_in_executor(move || {
                s.store(true, SeqCst);
                gate.recv().unwrap();
                thread::sleep(ms(20));
                f.store(true, SeqCst);
                SetOnDrop(rd) // the result: dropped if nobody takes it
            })
            .await;
            panic!("the cancelled task must not see the result ({})", r.is_ok());
        });
        assert!(wait_for_flag(&started, Duration::from_secs(10)).await, "the job started");
        waiter.cancel();
        let outcome = waiter.await;
        release.send(()).unwrap();
        outcome
    });
    assert!(outcome.unwrap_err().is_cancelled());
    // The loop goes on; the job finishes on its own and its result is dropped.
    let (done, dropped) = lp.run_until_complete(async {
        let done = wait_for_flag(&finished, Duration::from_secs(10)).await;
        let dropped = wait_for_flag(&result_dropped, Duration::from_secs(10)).await;
        (done, dropped)
    });
    assert!(done, "the job ran to its end after its awaiter was cancelled");
    assert!(dropped, "the job's result was dropped");
}

/// Closing the loop does not wait for jobs in flight; they finish later, harmlessly.
#[test]
#[cfg_attr(miri, ignore = "real threads")]
#[allow(clippy::async_yields_async)] // returns the task's handle
fn closing_the_loop_does_not_wait_for_jobs_in_flight() {
    let (release, gate) = mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let result_dropped = Arc::new(AtomicBool::new(false));
    let (f, rd) = (finished.clone(), result_dropped.clone());
    let mut lp = EventLoop::new().unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let waiter = lp.run_until_complete(async move {
        let waiter = aioloop::spawn(async move {
            aioloop::run_in_executor(move || {
                s.store(true, SeqCst);
                // Blocks until released, or for 500 ms at most if close() wrongly waited for it.
                let _ = gate.recv_timeout(ms(500));
                f.store(true, SeqCst);
                SetOnDrop(rd)
            })
            .await
        });
        assert!(wait_for_flag(&started, Duration::from_secs(10)).await);
        waiter
    });
    let start = Instant::now();
    lp.close();
    let took = start.elapsed();
    assert!(!finished.load(SeqCst), "close() returned while the job was still blocked");
    assert!(took < ms(400), "close() took {took:?}");
    assert!(waiter.is_cancelled(), "the awaiting task was cancelled by close()");
    release.send(()).unwrap();
    // The job completes after its loop is gone: no panic, its result is dropped, and the pool
    // keeps working for other loops.
    let start = Instant::now();
    while !result_dropped.load(SeqCst) {
        assert!(start.elapsed() < Duration::from_secs(10), "the job never finished");
        thread::sleep(ms(2));
    }
    assert!(finished.load(SeqCst));
    assert_eq!(aioloop::run(async { aioloop::run_in_executor(|| 3).await }).unwrap(), 3);
}

/// Virtual time does not jump while a job is in flight: a one-hour timeout around a job that
/// takes 50 ms of real time returns the job's result, and the clock moved less than an hour.
#[test]
#[cfg_attr(miri, ignore = "real threads")]
fn virtual_time_does_not_jump_while_a_job_is_in_flight() {
    let mut lp = EventLoop::builder().virtual_time(true).build().unwrap();
    let t0 = lp.time();
    let started = Instant::now();
    let r = lp.run_until_complete(async {
        let job = aioloop::run_in_executor(|| {
            thread::sleep(ms(50));
            "job result"
        });
        aioloop::timeout(Duration::from_secs(3600), job).await
    });
    assert_eq!(r.expect("the timeout must not expire while the job runs").unwrap(), "job result");
    assert!(lp.time() - t0 < Duration::from_secs(3600), "virtual time jumped by {:?}", lp.time() - t0);
    assert!(started.elapsed() >= ms(50));
    // Once no job is in flight, virtual time jumps again.
    let t1 = lp.time();
    let start = Instant::now();
    lp.run_until_complete(aioloop::sleep(Duration::from_secs(3600)));
    assert_eq!(lp.time() - t1, Duration::from_secs(3600));
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// A job whose future is not being awaited still holds virtual time back until it is done (its
/// result may matter to a task that awaits it later): a sleep started meanwhile ends only after
/// the job finished, and at its own virtual deadline.
#[test]
#[cfg_attr(miri, ignore = "real threads")]
fn an_unawaited_job_holds_virtual_time_until_it_finishes() {
    let mut lp = EventLoop::builder().virtual_time(true).build().unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let job_done = Arc::new(AtomicBool::new(false));
    let d = job_done.clone();
    let (slept, done_when_woken, v) = lp.run_until_complete(async move {
        let job = aioloop::run_in_executor(move || {
            gate.recv().unwrap();
            d.store(true, SeqCst);
            9
        });
        let releaser = thread::spawn(move || {
            thread::sleep(ms(30));
            release.send(()).unwrap();
        });
        let before = aioloop::now();
        aioloop::sleep(Duration::from_secs(10)).await; // may not jump while the job runs
        let slept = aioloop::now() - before;
        let done_when_woken = job_done.load(SeqCst);
        releaser.join().unwrap();
        (slept, done_when_woken, job.await.unwrap())
    });
    assert!(done_when_woken, "virtual time jumped to the sleep's deadline while the job was in flight");
    assert_eq!(slept, Duration::from_secs(10), "the sleep still ends at its deadline");
    assert_eq!(v, 9);
}

#[test]
#[cfg_attr(miri, ignore = "real threads")]
fn the_pool_runs_jobs_concurrently() {
    let start = Instant::now();
    let results = aioloop::run(async {
        let jobs: Vec<_> = (0..8u64)
            .map(|i| {
                aioloop::run_in_executor(move || {
                    thread::sleep(ms(100));
                    i
                })
            })
            .collect();
        let mut out = Vec::new();
        for j in jobs {
            out.push(j.await.unwrap());
        }
        out
    });
    let took = start.elapsed();
    assert_eq!(results, (0..8).collect::<Vec<_>>());
    // Serially that is 800 ms; the pool has at least 5 threads (min(32, cpus + 4)).
    assert!(took < ms(600), "8 jobs of 100 ms took {took:?}");
}

/// Virtual time and quick jobs: a job that returns at once, awaited under a one-hour timeout,
/// thousands of times. The timeout must never expire: the job is done long before.
#[test]
#[cfg_attr(miri, ignore = "real threads")]
fn virtual_time_never_jumps_over_a_quick_job() {
    let mut lp = EventLoop::builder().virtual_time(true).build().unwrap();
    let t0 = lp.time();
    let expired = lp.run_until_complete(async {
        let mut expired = 0;
        for i in 0..5_000u32 {
            let job = aioloop::run_in_executor(move || i);
            match aioloop::timeout(Duration::from_secs(3600), job).await {
                Ok(v) => assert_eq!(v.unwrap(), i),
                Err(_) => expired += 1,
            }
        }
        expired
    });
    assert_eq!(expired, 0, "{expired} of 5,000 one-hour timeouts expired around jobs that return at once");
    assert!(lp.time() - t0 < Duration::from_secs(3600), "virtual time jumped by {:?}", lp.time() - t0);
}

#[test]
#[cfg_attr(miri, ignore = "real threads")]
fn to_thread_gives_the_value_itself_computed_on_another_thread() {
    let loop_thread = thread::current().id();
    let (v, job_thread): (u32, _) = aioloop::run(async {
        aioloop::to_thread(|| {
            thread::sleep(ms(5));
            (6 * 7, thread::current().id())
        })
        .await
    });
    assert_eq!(v, 42);
    assert_ne!(job_thread, loop_thread, "the function ran on a pool thread");
}

/// asyncio re-raises the function's exception in the awaiting coroutine; here the panic resumes
/// in the awaiting task, which ends `Panicked` with the function's own payload, while the loop,
/// the other tasks and the pool go on.
#[test]
#[cfg_attr(miri, ignore = "real threads")]
fn a_panic_in_to_thread_resumes_in_the_awaiting_task() {
    let (outcome, other, after) = aioloop::run(async {
        let other = aioloop::spawn(async {
            aioloop::sleep(ms(20)).await;
            "other task done"
        });
        let awaiting = aioloop::spawn(async {
            let v: u8 = aioloop::to_thread(|| panic!("to_thread failed: {}", 9)).await;
            format!("the panic must not be swallowed, got {v}")
        });
        let outcome = awaiting.await;
        (outcome, other.await.unwrap(), aioloop::to_thread(|| 1).await)
    });
    let payload = outcome.unwrap_err().try_into_panic().expect("Panicked, not Cancelled");
    let text = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
    assert_eq!(text, Some("to_thread failed: 9"));
    assert_eq!(other, "other task done");
    assert_eq!(after, 1, "the pool still runs functions after a panic");
}

/// `to_thread` keeps `run_in_executor`'s rules: virtual time does not jump over a function in
/// flight, and the loop's other tasks run while it blocks.
#[test]
#[cfg_attr(miri, ignore = "real threads")]
fn to_thread_holds_virtual_time_and_leaves_the_loop_free() {
    let mut lp = EventLoop::builder().virtual_time(true).build().unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let t0 = lp.time();
    let (v, ticks) = lp.run_until_complete(async move {
        let job = aioloop::spawn(aioloop::to_thread(move || {
            gate.recv().unwrap();
            "released"
        }));
        let mut ticks = 0;
        while ticks < 5 {
            aioloop::yield_now().await;
            ticks += 1;
        }
        release.send(()).unwrap();
        (aioloop::timeout(Duration::from_secs(3600), job).await.expect("not timed out").unwrap(), ticks)
    });
    assert_eq!((v, ticks), ("released", 5));
    assert!(lp.time() - t0 < Duration::from_secs(3600), "virtual time jumped over the function");
}

/// A burst of jobs gets a thread each, up to the pool's size, even when a thread is idle at
/// the time: five jobs that each wait until all five run (the pool has at least five threads)
/// do all run at once. (The pool used to start no thread while any was idle, and a notified
/// thread counts as idle until it wakes: the burst then queued behind one thread.)
#[test]
#[cfg_attr(miri, ignore = "real threads")]
fn a_burst_of_jobs_beside_an_idle_thread_runs_concurrently() {
    let all_ran_together = aioloop::run(async {
        aioloop::run_in_executor(|| ()).await.unwrap(); // a thread, idle from now on
        let started = Arc::new((Mutex::new(0usize), Condvar::new()));
        let jobs: Vec<_> = (0..5)
            .map(|_| {
                let started = started.clone();
                aioloop::run_in_executor(move || {
                    let (count, cv) = &*started;
                    let mut n = count.lock().unwrap();
                    *n += 1;
                    cv.notify_all();
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while *n < 5 {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return false;
                        }
                        n = cv.wait_timeout(n, left).unwrap().0;
                    }
                    true
                })
            })
            .collect();
        let mut all = true;
        for j in jobs {
            all &= j.await.unwrap();
        }
        all
    });
    assert!(all_ran_together, "five jobs submitted together did not all run at once");
}
