//! `timeout` / `timeout_at`: asyncio's `asyncio.timeout` oracle (spec §3.4, rows O1-O12 of §5.5,
//! rule 12 of §6.2), on virtual time.
//!
//! asyncio's `cm` is a `TimeoutHandle` here (from `timeout_with`, inside the body, or
//! `Timeout::handle`): `when()`, `reschedule()`, `expired()`; `cm.expired()` is also the
//! `Err(TimeoutError)`, and `cm.when()` also `Timeout::deadline()`. Rows that do not port: O13
//! (exception chaining) and O14 (code that runs during cancellation). O12's state errors are made
//! impossible by the types except "polled after it completed", "used outside a task", and
//! `reschedule` on an expired or finished timeout, which panic with asyncio's messages.
//!
//! Iteration counts are those of `EventLoop::run_until_complete(main)`, compared with
//! `loop.run_until_complete(main())` on CPython 3.12.1 (counted by wrapping `loop._run_once`).

mod util;

use std::cell::Cell;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use aioloop::{sleep, spawn, timeout, timeout_at, timeout_with, yield_now, EventLoop, TimeoutError, TimeoutHandle};
use util::{fail, ms, run_counted, vloop as new_loop, Log};

/// Live (not cancelled) entries of the timer heap.
fn live_timers(lp: &EventLoop) -> usize {
    let s = lp.stats();
    s.timers - s.cancelled_timers
}

// O1 test_timeout_basic: `timeout(0.01)` around `sleep(10)` → TimeoutError at 0.01.
#[test]
fn o1_timeout_expires_around_a_long_sleep() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let r = lp.run_until_complete(async {
        let t = timeout(ms(10), sleep(Duration::from_secs(10)));
        assert_eq!(t.deadline(), Some(aioloop::now() + ms(10)));
        t.await
    });
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(lp.time() - t0, ms(10));
    assert_eq!(live_timers(&lp), 0, "the inner sleep's timer was dropped with it");
}

// O2 test_timeout_at_basic: `timeout_at(deadline)` → TimeoutError at the deadline; `when()` is
// the deadline.
#[test]
fn o2_timeout_at_expires_at_its_deadline() {
    let mut lp = new_loop();
    let deadline = lp.time() + ms(10);
    let t = timeout_at(deadline, sleep(Duration::from_secs(10)));
    assert_eq!(t.deadline(), Some(deadline));
    let r = lp.run_until_complete(t);
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(lp.time(), deadline);
}

// O3 test_timeout_not_called: no expiry → the value, the deadline still ahead, its timer removed.
#[test]
fn o3_a_body_finishing_in_time_gives_its_value() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let r = lp.run_until_complete(async {
        let t = timeout(Duration::from_secs(10), async {
            sleep(ms(10)).await;
            "value"
        });
        let when = t.deadline().unwrap();
        let r = t.await;
        assert!(when > aioloop::now());
        r
    });
    assert_eq!(r, Ok("value"));
    assert_eq!(lp.time() - t0, ms(10));
    assert_eq!(live_timers(&lp), 0, "the 10 s timer is cancelled");
    lp.run_until_complete(yield_now());
    assert_eq!(lp.stats().timers, 0);
}

// O4 test_timeout_disabled / test_timeout_at_disabled: no deadline (`Duration::MAX`) never expires.
#[test]
fn o4_an_unbounded_timeout_never_expires() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let r = lp.run_until_complete(async {
        timeout(Duration::MAX, async {
            sleep(Duration::from_secs(100_000)).await;
            1
        })
        .await
    });
    assert_eq!(r, Ok(1));
    assert_eq!(lp.time() - t0, Duration::from_secs(100_000));
}

// O5 test_timeout_zero: deadline 0 → TimeoutError at once around `sleep(10)`; `t0 <= when <= t1`.
#[test]
fn o5_zero_deadline_interrupts_a_long_sleep() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let when = lp.run_until_complete(async {
        let t = timeout(Duration::ZERO, sleep(Duration::from_secs(10)));
        let when = t.deadline().unwrap();
        assert_eq!(t.await, Err(TimeoutError));
        when
    });
    let t1 = lp.time();
    assert_eq!(t1, t0);
    assert!(t0 <= when && when <= t1);
}

// O5 test_timeout_zero_sleep_zero, rule 12: the body runs until its first suspension, which is
// interrupted even if it is a `sleep(0)`.
#[test]
fn o5_zero_deadline_polls_the_body_once_then_expires_at_its_first_pending() {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    let r = lp.run_until_complete(timeout(Duration::ZERO, async move {
        l.push("prefix");
        yield_now().await;
        l.push("after the yield");
    }));
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(log.get(), ["prefix"]);
}

// O5 test_timeout_in_the_past_sleep_zero: a deadline 11 s in the past → TimeoutError around
// `sleep(0)`; `t0 - 11 <= when <= t1`.
#[test]
fn o5_deadline_in_the_past_interrupts_sleep_zero() {
    let mut lp = new_loop();
    lp.run_until_complete(sleep(Duration::from_secs(20)));
    let t0 = lp.time();
    let when = t0 - Duration::from_secs(11);
    let t = timeout_at(when, sleep(Duration::ZERO));
    assert_eq!(t.deadline(), Some(when));
    assert_eq!(lp.run_until_complete(t), Err(TimeoutError));
    assert_eq!(lp.time(), t0);
}

// X2 (spec §3.4): a body that never suspends completes normally even with an expired deadline.
#[test]
fn o5_a_body_that_never_suspends_beats_an_expired_deadline() {
    let mut lp = new_loop();
    let r = lp.run_until_complete(timeout(Duration::ZERO, async { 5 }));
    assert_eq!(r, Ok(5));
}

// O5, timing. CPython 3.12.1: `timeout(0)` around `sleep(0)` takes 3 iterations.
#[test]
fn o5_zero_deadline_around_sleep_zero_takes_one_iteration() {
    let mut lp = new_loop();
    let (r, iters) = run_counted(&mut lp, timeout(Duration::ZERO, yield_now()));
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(iters, 3);
}

// O5, timing (spec §3.2: "`timeout(0)` around `sleep(1)` takes 2"): `_on_timeout` is queued with
// `call_soon` and cancels the sleep, whose wakeup is queued again. CPython 3.12.1: 4 iterations,
// and a task that was spawned before and yields once has finished by then.
#[test]
fn o5_zero_deadline_around_a_sleep_takes_two_iterations() {
    let mut lp = new_loop();
    let (other_done, iters) = run_counted(&mut lp, async {
        let other = spawn(async {
            yield_now().await;
        });
        let r = timeout(Duration::ZERO, sleep(Duration::from_secs(1))).await;
        assert_eq!(r, Err(TimeoutError));
        other.is_done()
    });
    assert!(other_done);
    assert_eq!(iters, 4);
}

// O6 test_foreign_exception_passed: an error of the body passes through; it is not a timeout.
#[test]
fn o6_an_error_of_the_body_passes_through() {
    let mut lp = new_loop();
    let r = lp.run_until_complete(timeout(ms(10), async { Err::<(), _>("KeyError") }));
    assert_eq!(r, Ok(Err("KeyError")));
    assert_eq!(live_timers(&lp), 0);
}

// O6 with a panic: the task fails with the body's panic, not with a timeout, and the timer goes.
#[test]
fn o6_a_panic_in_the_body_fails_the_task() {
    let mut lp = new_loop();
    let t = lp.spawn(async {
        timeout(ms(10), async {
            yield_now().await;
            fail("KeyError")
        })
        .await
    });
    let err = lp.run_until_complete(t).unwrap_err();
    assert_eq!(err.to_string(), "task panicked: KeyError");
    assert_eq!(live_timers(&lp), 0);
}

// O7 test_foreign_cancel_doesnt_timeout_if_not_expired: the task is cancelled inside an
// unexpired `timeout(10)` → it ends Cancelled (its future dropped), not with a TimeoutError.
#[test]
fn o7_foreign_cancel_is_a_cancellation_not_a_timeout() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let log = Log::new();
    let l = log.clone();
    let mut task = lp.spawn(async move {
        let r = timeout(Duration::from_secs(10), sleep(Duration::from_secs(10))).await;
        l.push(format!("timeout returned {r:?}"));
    });
    lp.run_until_complete(yield_now());
    assert!(task.cancel());
    assert!(lp.run_until_complete(&mut task).unwrap_err().is_cancelled());
    assert!(task.is_cancelled());
    assert!(log.get().is_empty(), "the code after the timeout never ran");
    assert_eq!(lp.time(), t0);
    assert_eq!(live_timers(&lp), 0, "both timers went with the task");
}

// O7 with a task awaited inside the timeout: the cancellation still reaches it (rule 9).
#[test]
fn o7_foreign_cancel_reaches_a_task_awaited_inside_the_timeout() {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    let mut task = lp.spawn(async move {
        let l2 = l.clone();
        let inner = spawn(async move {
            let _f = l2.on_drop(format!("{} finally", "inner"));
            sleep(Duration::from_secs(10)).await;
        });
        let _f = l.on_drop(format!("{} finally", "outer"));
        let _ = timeout(Duration::from_secs(10), inner).await;
    });
    lp.run_until_complete(yield_now());
    lp.run_until_complete(yield_now());
    task.cancel();
    assert!(lp.run_until_complete(&mut task).unwrap_err().is_cancelled());
    assert_eq!(log.get(), ["inner finally", "outer finally"]);
}

// O8 test_outer_task_is_not_cancelled: after a handled TimeoutError the task goes on and
// completes normally.
#[test]
fn o8_the_task_is_not_cancelled_after_a_handled_timeout() {
    let mut lp = new_loop();
    let mut task = lp.spawn(async {
        let r = timeout(ms(1), sleep(Duration::from_secs(10))).await;
        assert_eq!(r, Err(TimeoutError));
        sleep(ms(10)).await;
        "finished"
    });
    assert_eq!(lp.run_until_complete(&mut task).unwrap(), "finished");
    assert!(task.is_done() && !task.is_cancelled());
}

// O9 test_nested_timeouts: two timeouts with the same deadline expire together; only the
// outermost reports (the inner one is cancelled: the code after it never runs).
#[test]
fn o9_nested_timeouts_expiring_together_report_the_outermost() {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    let deadline = lp.time() + ms(10);
    let r = lp.run_until_complete(timeout_at(deadline, async move {
        let inner = timeout_at(deadline, sleep(Duration::from_secs(10))).await;
        l.push(format!("inner returned {inner:?}"));
    }));
    assert_eq!(r, Err(TimeoutError));
    assert!(log.get().is_empty());
    assert_eq!(lp.time(), deadline);
}

// O9 test_nested_timeouts_loop_busy (both deadlines already passed when the body first
// suspends; here: created, then 1 s passes). CPython 3.12.1: ['prefix', 'inner
// CancelledError', 'outer TimeoutError'].
#[test]
fn o9_nested_timeouts_both_past_report_the_outermost() {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_until_complete(async move {
        let outer_deadline = aioloop::now() + ms(100);
        let inner_deadline = aioloop::now() + ms(10);
        sleep(Duration::from_secs(1)).await;
        let l2 = l.clone();
        let r = timeout_at(outer_deadline, async move {
            let inner = timeout_at(inner_deadline, async {
                l2.push("prefix");
                sleep(Duration::from_secs(1)).await;
                l2.push("body end");
            })
            .await;
            l2.push(format!("inner returned {inner:?}"));
        })
        .await;
        assert_eq!(r, Err(TimeoutError));
        l.push("outer TimeoutError");
    });
    assert_eq!(log.get(), ["prefix", "outer TimeoutError"]);
}

// O9 test_nested_timeouts_concurrent: the outer deadline comes first → the outer reports.
#[test]
fn o9_an_outer_deadline_before_the_inner_one_reports_the_outer() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let r = lp.run_until_complete(timeout(ms(2), async { timeout(ms(100), sleep(Duration::from_secs(1))).await }));
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(lp.time() - t0, ms(2));
}

// O9, the other order: the inner expires first and reports; the outer interrupts what follows.
// CPython 3.12.1: ['inner TimeoutError', 'outer TimeoutError'].
#[test]
fn o9_an_inner_deadline_first_reports_the_inner_then_the_outer() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let log = Log::new();
    let l = log.clone();
    let r = lp.run_until_complete(timeout(Duration::from_secs(1), async move {
        let inner = timeout(ms(100), sleep(Duration::from_secs(10))).await;
        assert_eq!(inner, Err(TimeoutError));
        l.push(format!("inner TimeoutError at {:?}", aioloop::now() - t0));
        sleep(Duration::from_secs(10)).await;
        l.push("not reached");
    }));
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(log.get(), ["inner TimeoutError at 100ms"]);
    assert_eq!(lp.time() - t0, Duration::from_secs(1));
}

// O11 test_repr_active / test_repr_finished (PART: Debug): an active timeout shows its deadline;
// a finished one says so.
#[test]
fn o11_debug_shows_the_state() {
    let mut lp = new_loop();
    let at = lp.time() + Duration::from_secs(5);
    let mut t = pin!(timeout_at(at, sleep(ms(1))));
    let active = format!("{t:?}");
    assert!(active.contains("active"), "{active}");
    assert!(active.contains(&format!("{at:?}")), "{active}");
    assert_eq!(lp.run_until_complete(&mut t), Ok(()));
    let done = format!("{t:?}");
    assert!(done.contains("finished"), "{done}");
}

// O12 test_timeout_finished (PART): using a finished timeout again is refused.
#[test]
#[should_panic(expected = "polled after it completed")]
fn o12_a_finished_timeout_cannot_be_polled_again() {
    let mut lp = new_loop();
    let mut t = pin!(timeout(ms(10), async { 1 }));
    assert_eq!(lp.run_until_complete(&mut t), Ok(1));
    let _ = lp.run_until_complete(&mut t);
}

// O12 test_timeout_without_task (PART): outside a running loop it is refused.
#[test]
#[should_panic(expected = "no running event loop")]
fn o12_a_timeout_outside_a_running_loop_panics() {
    let _ = futures_lite::future::block_on(timeout(ms(10), async { 1 }));
}

// X2 (spec §3.4): the deadline is fixed when `timeout()` is called inside a running loop, not
// when it is first awaited.
#[test]
fn deadline_is_fixed_when_the_timeout_is_created() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let r = lp.run_until_complete(async {
        let t = timeout(Duration::from_secs(1), sleep(Duration::from_secs(10)));
        sleep(ms(500)).await;
        t.await
    });
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(lp.time() - t0, Duration::from_secs(1));
}

// Documented: outside a running loop the deadline is fixed at the first poll.
#[test]
fn deadline_of_a_timeout_created_outside_the_loop_counts_from_its_first_poll() {
    let mut lp = new_loop();
    let t = timeout(Duration::from_secs(1), sleep(Duration::from_secs(10)));
    assert_eq!(t.deadline(), None);
    lp.run_until_complete(sleep(Duration::from_secs(5)));
    let t0 = lp.time();
    assert_eq!(lp.run_until_complete(t), Err(TimeoutError));
    assert_eq!(lp.time() - t0, Duration::from_secs(1));
}

// Documented: a timeout around a task cancels it and returns once the task has finished.
#[test]
fn timeout_around_a_task_returns_after_the_task_was_cancelled() {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    let cancelled = Rc::new(Cell::new(false));
    let c = cancelled.clone();
    lp.run_until_complete(async move {
        let l2 = l.clone();
        let mut t = spawn(async move {
            let _f = l2.on_drop(format!("{} finally", "task"));
            sleep(Duration::from_secs(10)).await;
        });
        let r = timeout(ms(100), &mut t).await;
        assert!(r.is_err());
        c.set(t.is_cancelled());
        l.push("timeout returned");
    });
    assert!(cancelled.get());
    assert_eq!(log.get(), ["task finally", "timeout returned"]);
}

// Timing of an expiry around a timer-based sleep. CPython 3.12.1: `timeout(1)` around
// `sleep(100)`: 4 iterations, at 1 s.
#[test]
fn expiry_takes_the_iterations_of_asyncio() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let (r, iters) = run_counted(&mut lp, timeout(Duration::from_secs(1), sleep(Duration::from_secs(100))));
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(iters, 4);
    assert_eq!(lp.time() - t0, Duration::from_secs(1));
}

// Issue 12 s5: `timeout(None)`, and asyncio's `Timeout.when()`, `reschedule()` and `expired()`.
// CPython 3.11.7 runs the same programs (real time, hence the extra millisecond):
//   1 when None
//   1 done at 100 expired False
//   2 when + 300
//   2 body finished at 201
//   2 expired False
//   3 TimeoutError at 50 expired True
//   4 when None
//   4 done at 100 expired False
//   5 ['still running', 'TimeoutError at 0']
//   6 expired: Cannot change state of expired Timeout
//   6 finished: Cannot change state of finished Timeout
//   7 TimeoutError at 201 expired True
//   8 finished at 301

/// Runs `body` under `timeout_with(delay, ..)` and returns its outcome, the handle, and the
/// milliseconds the loop's clock advanced.
fn with_handle<F: std::future::Future + 'static>(
    lp: &mut EventLoop,
    delay: Option<Duration>,
    body: impl FnOnce(TimeoutHandle) -> F,
) -> (Result<F::Output, TimeoutError>, TimeoutHandle, u128) {
    let t0 = lp.time();
    let mut keep = None;
    let t = timeout_with(delay, |cm| {
        keep = Some(cm.clone());
        body(cm)
    });
    let r = lp.run_until_complete(t);
    (r, keep.unwrap(), (lp.time() - t0).as_millis())
}

// 1 (O4): `timeout(None)` has no deadline and never expires.
#[test]
fn timeout_none_never_expires_and_has_no_deadline() {
    let mut lp = new_loop();
    let (r, cm, took) = with_handle(&mut lp, None, |cm| async move {
        assert_eq!(cm.when(), None);
        sleep(ms(100)).await;
    });
    assert!(r.is_ok());
    assert_eq!(took, 100);
    assert!(!cm.expired());
    assert_eq!(live_timers(&lp), 0);
    assert_eq!(timeout(None, async {}).deadline(), None);
}

// 2 (O10): moved later from inside the body: the body finishes in time.
#[test]
fn reschedule_later_from_inside_the_body() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let (r, cm, took) = with_handle(&mut lp, Some(ms(100)), |cm| async move {
        cm.reschedule(Some(aioloop::now() + ms(300)));
        sleep(ms(200)).await;
        "body finished"
    });
    assert_eq!(r, Ok("body finished"));
    assert_eq!(took, 200);
    assert_eq!(cm.when(), Some(t0 + ms(300)));
    assert!(!cm.expired());
}

// 3 (O10): moved earlier from inside the body: it expires then.
#[test]
fn reschedule_earlier_from_inside_the_body() {
    let mut lp = new_loop();
    let (r, cm, took) = with_handle(&mut lp, Some(Duration::from_secs(10)), |cm| async move {
        cm.reschedule(Some(aioloop::now() + ms(50)));
        sleep(Duration::from_secs(1)).await;
    });
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(took, 50);
    assert!(cm.expired());
    assert_eq!(live_timers(&lp), 0);
}

// 4 (O10): the deadline removed: no expiry.
#[test]
fn reschedule_none_removes_the_deadline() {
    let mut lp = new_loop();
    let (r, cm, took) = with_handle(&mut lp, Some(ms(50)), |cm| async move {
        cm.reschedule(None);
        assert_eq!(cm.when(), None);
        sleep(ms(100)).await;
    });
    assert!(r.is_ok());
    assert_eq!(took, 100);
    assert!(!cm.expired());
}

// 5: a deadline moved into the past ends the body at its next suspension, even a `sleep(0)`.
#[test]
fn reschedule_into_the_past_interrupts_at_the_next_suspension() {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    let (r, cm, took) = with_handle(&mut lp, Some(Duration::from_secs(10)), |cm| async move {
        cm.reschedule(Some(aioloop::now() - Duration::from_secs(1)));
        l.push("still running");
        yield_now().await;
        l.push("never");
    });
    assert_eq!(r, Err(TimeoutError));
    assert_eq!(took, 0);
    assert_eq!(log.get(), ["still running"]);
    assert!(cm.expired());
}

// 6 (O12): rescheduling an expired or finished timeout is refused with asyncio's messages.
#[test]
fn reschedule_after_the_end_panics_with_asyncios_message() {
    let mut lp = new_loop();
    let (r, expired, _) = with_handle(&mut lp, Some(ms(10)), |_| sleep(ms(20)));
    assert!(r.is_err());
    let (r, finished, _) = with_handle(&mut lp, Some(ms(10)), |_| async {});
    assert!(r.is_ok());
    let at = Some(lp.time());
    let e = util::catch_panic(|| expired.reschedule(at)).unwrap_err();
    assert_eq!(e, "Cannot change state of expired Timeout");
    let e = util::catch_panic(|| finished.reschedule(at)).unwrap_err();
    assert_eq!(e, "Cannot change state of finished Timeout");
}

// 7: a deadline set from another task on a `timeout(None)` that is waiting: it expires then.
#[test]
fn a_deadline_set_from_another_task_on_a_waiting_timeout() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let mut t = timeout(None, sleep(Duration::from_secs(1)));
    let cm = t.handle();
    let waiting = lp.spawn(t);
    lp.run_until_complete(sleep(ms(100)));
    cm.reschedule(Some(lp.time() + ms(100)));
    assert_eq!(lp.run_until_complete(waiting).unwrap(), Err(TimeoutError));
    assert_eq!(lp.time() - t0, ms(200));
    assert!(cm.expired());
    assert_eq!(live_timers(&lp), 0);
}

// 8: a deadline moved later from another task before it passed: the body finishes.
#[test]
fn a_deadline_moved_later_from_another_task() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let mut t = timeout(ms(200), async {
        sleep(ms(300)).await;
        "finished"
    });
    let cm = t.handle();
    let waiting = lp.spawn(t);
    lp.run_until_complete(sleep(ms(100)));
    cm.reschedule(Some(lp.time() + ms(500)));
    assert_eq!(lp.run_until_complete(waiting).unwrap(), Ok("finished"));
    assert_eq!(lp.time() - t0, ms(300));
    assert!(!cm.expired());
    assert_eq!(live_timers(&lp), 0, "the moved timer was cancelled");
}

// `timeout_at(None, ..)` has no deadline either; `Timeout::handle` reports a fixed deadline.
#[test]
fn timeout_at_none_and_when_of_a_fixed_deadline() {
    let mut lp = new_loop();
    let at = lp.time() + ms(10);
    let mut t = timeout_at(at, sleep(ms(20)));
    assert_eq!(t.handle().when(), Some(at));
    assert!(lp.run_until_complete(t).is_err());
    assert!(lp.run_until_complete(timeout_at(None, sleep(ms(20)))).is_ok());
}

// A deadline moved into the past from elsewhere ends the waiting body before it runs again.
#[test]
fn a_deadline_moved_into_the_past_from_elsewhere_ends_the_body_where_it_waits() {
    let mut lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    let t0 = lp.time();
    let mut t = timeout(None, async move {
        loop {
            sleep(ms(30)).await;
            l.push("woke");
        }
    });
    let cm = t.handle();
    let waiting = lp.spawn(t);
    lp.run_until_complete(sleep(ms(40)));
    cm.reschedule(Some(lp.time() - ms(1)));
    assert_eq!(lp.run_until_complete(waiting).unwrap(), Err(TimeoutError));
    assert_eq!(lp.time() - t0, ms(40));
    assert_eq!(log.get(), ["woke"]);
    assert!(cm.expired());
}

// A handle is `Send`: another thread sets the deadline of a timeout the loop waits on, and wakes it.
#[test]
fn a_deadline_set_from_another_thread_wakes_the_loop() {
    let mut lp = EventLoop::new().unwrap();
    let mut t = timeout(None, sleep(Duration::from_secs(30)));
    let cm = t.handle();
    let started = std::time::Instant::now();
    let setter = std::thread::spawn(move || {
        std::thread::sleep(ms(20));
        cm.reschedule(Some(std::time::Instant::now()));
        cm
    });
    assert_eq!(lp.run_until_complete(t), Err(TimeoutError));
    assert!(started.elapsed() < Duration::from_secs(10), "woken by the move, not by the sleep");
    assert!(setter.join().unwrap().expired());
}

// The lazy deadline (a timeout created in a running loop reads no clock until needed) under a
// handle: asked for in a later iteration, it still counts from the creation (asyncio's
// `loop.time() + delay` at the call), and a move from the body is applied on top of it.
#[test]
fn a_lazy_deadline_asked_for_later_by_a_handle_counts_from_the_creation() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let r = lp.run_until_complete(async move {
        let mut t = timeout(Duration::from_secs(1), sleep(Duration::from_secs(10)));
        sleep(ms(400)).await;
        let cm = t.handle();
        assert_eq!(cm.when(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.deadline(), Some(t0 + Duration::from_secs(1)));
        cm.reschedule(Some(t0 + ms(700)));
        let r = t.await;
        (r, cm.expired(), aioloop::now() - t0)
    });
    assert_eq!(r, (Err(TimeoutError), true, ms(700)));
}
