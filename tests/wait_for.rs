//! `wait_for`: asyncio 3.12's `asyncio.wait_for` oracle (spec §3.3, rows W1-W9 of §5.4, rule 11
//! of §6.2), on virtual time.
//!
//! Rows that do not port: W10-W12 (an inner coroutine that swallows its cancellation, or raises
//! from `finally`): cancellation here is dropping the future. A negative timeout (W3's `-1`) has
//! no `Duration`; zero stands for both. "No timeout" (W5's `None`) is `Duration::MAX`.
//!
//! Iteration counts are those of `EventLoop::run_until_complete(main)`, compared with
//! `loop.run_until_complete(main())` on CPython 3.12.1 (counted by wrapping `loop._run_once`).
//! "finally" blocks are `Drop` guards.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aioloop::{gather, sleep, spawn, wait_for, yield_now, EventLoop, TimeoutError};
use util::{fail, ms, run_counted, vloop as new_loop, Log};

/// Live (not cancelled) entries of the timer heap.
fn live_timers(lp: &EventLoop) -> usize {
    let s = lp.stats();
    s.timers - s.cancelled_timers
}

/// True for `Err(TimeoutError)` (a task's `Result<T, TaskError>` inside is not `PartialEq`).
fn timed_out<T>(r: &Result<T, TimeoutError>) -> bool {
    matches!(r, Err(TimeoutError))
}

/// A task body that sleeps `d` inside a `finally` named `name`, then returns `name`.
async fn guarded_sleep(log: Log, name: &'static str, d: Duration) -> &'static str {
    let _f = log.on_drop(format!("{} finally", name));
    sleep(d).await;
    name
}

// W1 test_wait_for_timeout_less_then_0_or_0_future_done: a finished task with timeout 0 gives
// its result, without an iteration (CPython 3.12.1: spawn, two `sleep(0)`, `wait_for(t, 0)`:
// 4 iterations).
#[test]
fn w1_zero_timeout_on_a_finished_task_gives_its_result() {
    let mut lp = new_loop();
    let (r, iters) = run_counted(&mut lp, async {
        let mut t = spawn(async { "done" });
        yield_now().await;
        yield_now().await;
        assert!(t.is_done());
        wait_for(&mut t, Duration::ZERO).await
    });
    assert_eq!(r.unwrap().unwrap(), "done");
    assert_eq!(iters, 4);
}

// W1 with finished tasks that failed: their outcome is returned as is, it is not a timeout.
#[test]
fn w1_zero_timeout_on_a_failed_or_cancelled_task_gives_its_outcome() {
    let mut lp = new_loop();
    let failed = lp.spawn(async { fail("boom") });
    let cancelled = lp.spawn(async {});
    cancelled.cancel();
    lp.run_until_complete(yield_now());
    let r = lp.run_until_complete(wait_for(failed, Duration::ZERO));
    assert_eq!(r.unwrap().unwrap_err().to_string(), "task panicked: boom");
    let r = lp.run_until_complete(wait_for(cancelled, Duration::ZERO));
    assert!(r.unwrap().unwrap_err().is_cancelled());
}

// W2 test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started: `wait_for(foo(), 0)` →
// TimeoutError and `foo` never started.
#[test]
fn w2_zero_timeout_never_starts_a_plain_future() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let started = Rc::new(Cell::new(false));
    let s = started.clone();
    let r = lp.run_until_complete(async move {
        wait_for(
            async move {
                s.set(true);
                "never"
            },
            Duration::ZERO,
        )
        .await
    });
    assert_eq!(r, Err(TimeoutError));
    assert!(!started.get());
    assert_eq!(lp.time(), t0);
}

// W2, timing, a documented difference: CPython 3.12 wraps the coroutine in a task, cancels it
// and waits for that cancellation (3 iterations, so a task spawned just before has run when the
// TimeoutError arrives; 5 iterations in all). aioloop never creates that task: a plain future
// with a zero timeout is simply not started, and `wait_for` returns at once, without yielding.
#[test]
fn w2_zero_timeout_on_a_plain_future_returns_without_yielding() {
    let mut lp = new_loop();
    let ran = Rc::new(Cell::new(false));
    let r2 = ran.clone();
    let (seen, iters) = run_counted(&mut lp, async move {
        let r3 = r2.clone();
        let _other = spawn(async move { r3.set(true) });
        let r = wait_for(async {}, Duration::ZERO).await;
        assert_eq!(r, Err(TimeoutError));
        r2.get()
    });
    assert!(!seen, "wait_for(future, 0) yielded to the loop");
    assert!(ran.get());
    assert_eq!(iters, 2);
}

// W3 test_wait_for_timeout_less_then_0_or_0: a running task, timeout 0 → TimeoutError, the task
// cancelled and its `finally` ran, no time passed. CPython 3.12.1: `wait_for` itself takes 3
// iterations (cancel, the task's step, the wakeup).
#[test]
fn w3_zero_timeout_cancels_a_running_task_and_its_cleanup_ran() {
    let mut lp = new_loop();
    let log = Log::new();
    let mut t = lp.spawn(guarded_sleep(log.clone(), "foo", Duration::from_secs(10)));
    lp.run_until_complete(yield_now()); // foo is running (asleep)
    assert!(log.get().is_empty());
    let t0 = lp.time();
    let i0 = lp.stats().iterations;
    let r = lp.run_until_complete(async {
        let i1 = aioloop::now();
        let r = wait_for(&mut t, Duration::ZERO).await;
        assert_eq!(aioloop::now(), i1);
        r
    });
    assert_eq!(r.unwrap_err(), TimeoutError);
    assert!(t.is_cancelled());
    assert_eq!(log.get(), ["foo finally"]);
    assert_eq!(lp.time(), t0);
    assert_eq!(lp.stats().iterations - i0, 2 + 3);
}

// W4 test_wait_for: timeout 0.1 on a long task → TimeoutError at 0.1, the task cancelled, its
// cleanup done before `wait_for` returned.
#[test]
fn w4_timeout_cancels_the_task_at_the_deadline_and_waits_for_it() {
    let mut lp = new_loop();
    let log = Log::new();
    let t0 = lp.time();
    let l = log.clone();
    let (r, cancelled) = lp.run_until_complete(async move {
        let mut t = spawn(guarded_sleep(l.clone(), "foo", Duration::from_secs(10)));
        let r = wait_for(&mut t, ms(100)).await;
        l.push("wait_for returned");
        (r, t.is_cancelled())
    });
    assert!(timed_out(&r));
    assert!(cancelled, "the task is finished (cancelled) when wait_for returns");
    assert_eq!(log.get(), ["foo finally", "wait_for returned"]);
    assert_eq!(lp.time() - t0, ms(100));
}

// W4 with a plain future (3.12: it runs inside the caller's task): dropped at the deadline.
#[test]
fn w4_timeout_drops_a_plain_future_at_the_deadline() {
    let mut lp = new_loop();
    let log = Log::new();
    let t0 = lp.time();
    let l = log.clone();
    let r = lp.run_until_complete(async move {
        let r = wait_for(guarded_sleep(l.clone(), "foo", Duration::from_secs(10)), ms(100)).await;
        l.push("wait_for returned");
        r
    });
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(log.get(), ["foo finally", "wait_for returned"]);
    assert_eq!(lp.time() - t0, ms(100));
    assert_eq!(live_timers(&lp), 0, "the inner sleep's timer went with it");
}

// W5 test_wait_for_blocking: no timeout (`None`; here `Duration::MAX`) is a plain await.
#[test]
fn w5_no_timeout_is_a_plain_await() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let r = lp.run_until_complete(async {
        let t = spawn(async {
            sleep(Duration::from_secs(3600)).await;
            "done"
        });
        wait_for(t, Duration::MAX).await
    });
    assert_eq!(r.unwrap().unwrap(), "done");
    assert_eq!(lp.time() - t0, Duration::from_secs(3600));
}

// W6 test_wait_for_race_condition: the result arrives at 0.1, the timeout is 0.2 → 'ok' at 0.1,
// and the timeout's timer is gone.
#[test]
fn w6_a_result_before_the_deadline_wins() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let r = lp.run_until_complete(async {
        let t = spawn(async {
            sleep(ms(100)).await;
            "ok"
        });
        wait_for(t, ms(200)).await
    });
    assert_eq!(r.unwrap().unwrap(), "ok");
    assert_eq!(lp.time() - t0, ms(100));
    assert_eq!(live_timers(&lp), 0);
    lp.run_until_complete(sleep(Duration::from_secs(1)));
    assert_eq!(lp.time() - t0, ms(1100));
}

/// W7 (`_test_cancel_wait_for`, Python issue #23219): cancelling the task that runs
/// `wait_for(task, timeout)` cancels the inner task too; the inner one finishes first (C1).
fn cancel_the_caller_of_wait_for(timeout: Duration) {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    let inner = lp.spawn(async move {
        let _f = l.on_drop(format!("{} finally", "blocking_coroutine"));
        std::future::pending::<()>().await;
    });
    let l = log.clone();
    let mut waiter = lp.spawn(async move {
        let _f = l.on_drop(format!("{} finally", "wait"));
        wait_for(inner, timeout).await
    });
    lp.run_until_complete(yield_now()); // both started
    assert!(waiter.cancel());
    assert!(lp.run_until_complete(&mut waiter).unwrap_err().is_cancelled());
    assert!(waiter.is_cancelled());
    assert_eq!(log.get(), ["blocking_coroutine finally", "wait finally"]);
}

// W7 test_cancel_wait_for (timeout 60 s).
#[test]
fn w7_cancelling_the_caller_cancels_the_inner_task() {
    cancel_the_caller_of_wait_for(Duration::from_secs(60));
}

// W7 test_cancel_blocking_wait_for (timeout None).
#[test]
fn w7_cancelling_the_caller_cancels_the_inner_task_without_timeout() {
    cancel_the_caller_of_wait_for(Duration::MAX);
}

// W8 test_wait_for_issue86296 (3.12 behaviour): the inner completes in the iteration in which the
// caller is cancelled → the caller ends Cancelled, the code after `wait_for` never runs, the inner
// has its result.
#[test]
#[allow(clippy::async_yields_async)] // returns the task's handle
fn w8_caller_cancelled_as_the_inner_completes_stays_cancelled() {
    let mut lp = new_loop();
    let inner_done = Rc::new(Cell::new(false));
    let reached_end = Rc::new(Cell::new(false));
    let (d, e) = (inner_done.clone(), reached_end.clone());
    let mut task = lp.run_until_complete(async move {
        let inner = spawn(async move {
            d.set(true);
            "done"
        });
        let task = spawn(async move {
            let r = wait_for(inner, Duration::from_secs(100)).await;
            assert_eq!(r.unwrap().unwrap(), "done");
            sleep(Duration::from_secs(1)).await;
            e.set(true);
        });
        assert!(!task.is_done());
        yield_now().await; // run the task
        task.cancel();
        task
    });
    assert!(lp.run_until_complete(&mut task).unwrap_err().is_cancelled());
    assert!(task.is_cancelled());
    assert!(inner_done.get());
    assert!(!reached_end.get());
}

// W9 test_wait_for_waits_for_task_cancellation (PART: drop cleanup is synchronous, no chaining):
// when the inner task is itself awaiting a task, both are finished (innermost first) before the
// TimeoutError arrives. CPython 3.12.1: ['b finally', 'a finally', 'TimeoutError'].
#[test]
fn w9_timeout_arrives_after_the_whole_await_chain_finished() {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    let t0 = lp.time();
    lp.run_until_complete(async move {
        let l2 = l.clone();
        let mut a = spawn(async move {
            let _f = l2.clone().on_drop(format!("{} finally", "a"));
            spawn(guarded_sleep(l2, "b", Duration::from_secs(10))).await
        });
        let r = wait_for(&mut a, ms(100)).await;
        assert!(timed_out(&r));
        assert!(a.is_cancelled());
        l.push("TimeoutError");
    });
    assert_eq!(log.get(), ["b finally", "a finally", "TimeoutError"]);
    assert_eq!(lp.time() - t0, ms(100));
}

// Rule 9/11 with a gather inside: asyncio cancels the gather's children and waits for them
// before raising TimeoutError. CPython 3.12.1, `wait_for(gather(child(1), child(2)), 0.1)`:
// ['child1 finally', 'child2 finally', 'TimeoutError'].
#[test]
fn w9_timeout_around_a_gather_waits_for_its_members() {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_until_complete(async move {
        let children = [
            guarded_sleep(l.clone(), "child1", Duration::from_secs(10)),
            guarded_sleep(l.clone(), "child2", Duration::from_secs(10)),
        ];
        let r = wait_for(gather(children.map(spawn)), ms(100)).await;
        assert_eq!(r.unwrap_err(), TimeoutError);
        l.push("TimeoutError");
    });
    assert_eq!(log.get(), ["child1 finally", "child2 finally", "TimeoutError"]);
}

// 3.12: a plain future runs inside the caller's task, with no extra iteration (CPython 3.12.1,
// `wait_for(coro(), 10)` of a coroutine that returns at once: 2 iterations).
#[test]
fn plain_future_runs_inline_in_the_callers_task() {
    let mut lp = new_loop();
    let (r, iters) = run_counted(&mut lp, async {
        let me = aioloop::current_task();
        wait_for(async move { aioloop::current_task() == me }, Duration::from_secs(10)).await
    });
    assert_eq!(r, Ok(true));
    assert_eq!(iters, 2);
}

// A task that finishes in time: its outcome inside the Ok. CPython 3.12.1: a fresh task that
// returns at once, `wait_for(t, 10)`: 4 iterations (the same as a plain `await t`).
#[test]
fn task_finishing_in_time_gives_its_outcome_like_a_plain_await() {
    let mut lp = new_loop();
    let (r, iters) = run_counted(&mut lp, async { wait_for(spawn(async { 1 }), Duration::from_secs(10)).await });
    assert_eq!(r.unwrap().unwrap(), 1);
    assert_eq!(iters, 4);
}

// A task that panics in time: the panic is its outcome, not a timeout (like W11's "other
// exceptions propagate").
#[test]
fn task_panicking_in_time_is_not_a_timeout() {
    let mut lp = new_loop();
    let r = lp.run_until_complete(async {
        let t = spawn(async {
            sleep(ms(10)).await;
            fail("inner failed")
        });
        wait_for(t, Duration::from_secs(10)).await
    });
    assert_eq!(r.unwrap().unwrap_err().to_string(), "task panicked: inner failed");
}

// Timing of a task timeout. CPython 3.12.1 (`async with timeout()` around `await task`): the
// timer's callback cancels the caller, which cancels the inner task in that same iteration; the
// inner's step runs in the next one and the caller resumes after it: 6 iterations in all.
#[test]
fn task_timeout_cancels_the_inner_task_in_the_iteration_the_timer_fires() {
    let mut lp = new_loop();
    let (cancelled, iters) = run_counted(&mut lp, async {
        let mut t = spawn(sleep(Duration::from_secs(100)));
        let r = wait_for(&mut t, Duration::from_secs(1)).await;
        assert!(timed_out(&r));
        t.is_cancelled()
    });
    assert!(cancelled);
    assert_eq!(iters, 6);
}

// Timing of a plain-future timeout. CPython 3.12.1: 4 iterations, at the deadline.
#[test]
fn plain_future_timeout_takes_the_iterations_of_asyncio() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let (r, iters) = run_counted(&mut lp, wait_for(sleep(Duration::from_secs(100)), Duration::from_secs(1)));
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(iters, 4);
    assert_eq!(lp.time() - t0, Duration::from_secs(1));
}

// A timeout of a task awaited by value also cancels it: its cleanup ran when Err arrives.
#[test]
fn task_by_value_is_cancelled_on_timeout() {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_until_complete(async move {
        let t = spawn(guarded_sleep(l.clone(), "t", Duration::from_secs(10)));
        assert!(timed_out(&wait_for(t, ms(50)).await));
        l.push("returned");
    });
    assert_eq!(log.get(), ["t finally", "returned"]);
    assert_eq!(lp.stats().tasks, 0, "nothing left in the loop");
}
