//! The loop core: CPython's `test_base_events.py` (rows L1..L18 of
//! /work/shared/asyncio-semantics.md §5.1), the iteration rules of §1.4 and the
//! `run_forever`/`stop`/`run_until_complete`/`asyncio.run` rules of §1.5-§1.6 (§6.2 rules 1-4,
//! 14-16).
//!
//! Rows not ported: L12 (I/O callbacks: no I/O API yet), L13 (no debug mode), L15/L16 (no
//! `BaseException`), L17/L18 (prevented by the type system: callbacks are closures, the loop is
//! `!Send`). Everything about ordering runs on virtual time; the few real-time tests (L6, L7, L11,
//! cross-thread wakes) wait less than 50 ms in total.

mod util;

use std::cell::RefCell;
use std::future::{poll_fn, IntoFuture};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::task::Poll;
use std::time::{Duration, Instant};

use aioloop::{EventLoop, TaskError, TaskState, TimerHandle};
use util::{catch_panic, run_once, vloop, Log};

const SEC: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Returns a callback that spawns a task logging `entry`: the closest public equivalent of a
/// callback that does `loop.call_soon(...)` (a task's first step is queued like a callback).
fn spawns(log: &Log, first: &str, entry: &str) -> impl FnOnce() + 'static {
    let log = log.clone();
    let (first, entry) = (first.to_string(), entry.to_string());
    move || {
        log.push(first);
        let log = log.clone();
        aioloop::spawn(async move { log.push(entry) });
    }
}

// ---------------------------------------------------------------------------------------------
// L1-L5: close, call_soon, call_later, call_at
// ---------------------------------------------------------------------------------------------

/// L1 (test_close): closing drops every pending task and callback without running it. `close`
/// takes the loop by value, so "run after close" and "close twice" cannot even be written.
#[test]
fn l1_close_drops_pending_tasks_and_callbacks_without_running_them() {
    let mut lp = vloop();
    let log = Log::new();
    let sleeping = {
        let log = log.clone();
        lp.spawn(async move {
            let _g = log.on_drop("sleeping task dropped");
            log.push("sleeping task started");
            aioloop::sleep(SEC * 60).await;
            log.push("sleeping task finished");
        })
    };
    run_once(&mut lp);
    assert_eq!(log.take(), ["sleeping task started"]);

    let guard = log.on_drop("unstarted task dropped");
    let unstarted = {
        let log = log.clone();
        lp.spawn(async move {
            let _g = guard;
            log.push("unstarted task ran");
        })
    };
    let (g, l) = (log.on_drop("callback dropped"), log.clone());
    lp.call_soon(move || {
        drop(g);
        l.push("callback ran");
    });
    let (g, l) = (log.on_drop("timer dropped"), log.clone());
    lp.call_later(SEC, move || {
        drop(g);
        l.push("timer ran");
    });

    lp.close();
    let mut dropped = log.get();
    dropped.sort();
    assert_eq!(dropped, ["callback dropped", "sleeping task dropped", "timer dropped", "unstarted task dropped"]);
    assert_eq!(sleeping.state(), TaskState::Cancelled);
    assert_eq!(unstarted.state(), TaskState::Cancelled);
    // A handle outlives its loop: awaiting it reports the cancellation.
    assert!(matches!(futures_lite::future::block_on(sleeping.into_future()), Err(TaskError::Cancelled)));
}

/// L1: dropping the loop closes it, like `close()`.
#[test]
fn l1_dropping_the_loop_closes_it() {
    let lp = vloop();
    let log = Log::new();
    let guard = log.on_drop("task dropped");
    let t = lp.spawn(async move {
        let _g = guard;
    });
    drop(lp);
    assert_eq!(log.get(), ["task dropped"]);
    assert!(t.is_cancelled());
}

/// L3 (test_call_soon): a `call_soon` callback goes to the ready queue, not the timer heap, runs
/// in the next iteration, and callbacks run in the order they were registered.
#[test]
fn l3_call_soon_queues_in_ready_not_in_timer_heap() {
    let mut lp = vloop();
    let log = Log::new();
    let _a = lp.call_soon(log.cb("a"));
    let _b = lp.call_soon(log.cb("b"));
    let s = lp.stats();
    assert_eq!((s.ready, s.timers), (2, 0));
    assert!(log.is_empty(), "call_soon never runs the callback synchronously");
    run_once(&mut lp);
    assert_eq!(log.get(), ["a", "b"]);
    assert_eq!(lp.stats().ready, 0);
}

/// L3 ("Exception in callback"): a panicking callback is reported and the loop goes on with the
/// rest of the iteration.
#[test]
fn l3_a_panicking_callback_does_not_stop_the_loop() {
    let mut lp = vloop();
    let log = Log::new();
    lp.call_soon(log.cb("before"));
    lp.call_soon(|| panic!("callback boom"));
    lp.call_soon(log.cb("after"));
    run_once(&mut lp);
    assert_eq!(log.get(), ["before", "after"]);
    assert_eq!(lp.run_until_complete(async { 3 }), 3);
}

/// L2 (test__add_callback_cancelled_handle): a cancelled callback never runs, and its closure is
/// dropped when it is cancelled; cancelling after it ran changes nothing.
#[test]
fn l2_cancelled_callback_never_runs() {
    let mut lp = vloop();
    let log = Log::new();
    let (g, l) = (log.on_drop("closure dropped"), log.clone());
    let h = lp.call_soon(move || {
        drop(g);
        l.push("ran");
    });
    h.cancel();
    assert!(h.is_cancelled());
    assert_eq!(log.get(), ["closure dropped"]);
    run_once(&mut lp);
    assert_eq!(log.take(), ["closure dropped"]);

    let h2 = lp.call_soon(log.cb("b"));
    run_once(&mut lp);
    h2.cancel();
    assert!(!h2.is_cancelled(), "a callback that already ran was not cancelled");
    assert_eq!(log.get(), ["b"]);
}

/// L4 (test_call_later): `call_later(10 s)` puts a handle in the timer heap, not in the ready
/// queue, with `when() == time() + 10 s`; it runs when (and not before) the deadline is reached.
#[test]
fn l4_call_later_goes_to_the_timer_heap() {
    let mut lp = vloop();
    let log = Log::new();
    let t0 = lp.time();
    let h = lp.call_later(SEC * 10, log.cb("timer"));
    assert_eq!(h.when(), t0 + SEC * 10);
    let s = lp.stats();
    assert_eq!((s.ready, s.timers), (0, 1));

    lp.run_until_complete(aioloop::sleep_until(t0 + SEC * 10 - Duration::from_nanos(1)));
    assert!(log.is_empty(), "a timer never fires before its deadline");
    lp.run_until_complete(aioloop::sleep_until(t0 + SEC * 10));
    assert_eq!(log.get(), ["timer"]);
    assert_eq!(lp.time() - t0, SEC * 10);
}

/// L5 (test_call_later_negative_delays): `Duration` is unsigned, so the port uses `call_at` with
/// past instants: both run in the next iteration, earliest deadline first (`['b', 'a']`).
#[test]
fn l5_timers_in_the_past_run_in_the_next_iteration_in_deadline_order() {
    let mut lp = vloop();
    // Move the clock away from the loop's epoch, so that instants in the past are distinct.
    lp.run_until_complete(aioloop::sleep(SEC * 10));
    let now = lp.time();
    let log = Log::new();
    lp.call_at(now - SEC, log.cb("a"));
    lp.call_at(now - SEC * 2, log.cb("b"));
    run_once(&mut lp);
    assert_eq!(log.get(), ["b", "a"]);
    assert_eq!(lp.time(), now, "past timers do not move the clock");
}

/// L6 (test_time_and_call_at), virtual time: `call_at(time() + 0.1, stop)` makes `run_forever`
/// return at exactly that time.
#[test]
fn l6_call_at_stops_run_forever_at_the_deadline_virtual() {
    let mut lp = vloop();
    let when = lp.time() + ms(100);
    let h = lp.handle();
    lp.call_at(when, move || h.stop());
    lp.run_forever();
    assert_eq!(lp.time(), when);
}

/// L6, real time: `run_forever` returns no earlier than the deadline (20 ms here).
#[test]
fn l6_call_at_stops_run_forever_at_the_deadline_real() {
    let mut lp = EventLoop::new().unwrap();
    let start = Instant::now();
    let when = lp.time() + ms(20);
    let h = lp.handle();
    lp.call_at(when, move || h.stop());
    lp.run_forever();
    assert!(lp.time() >= when);
    assert!(start.elapsed() >= ms(20), "returned after {:?}", start.elapsed());
}

/// L7 (test__run_once): the cancelled head timer (+5 s) is dropped before the poll timeout is
/// computed, so the loop blocks for the live timer's ~10 s; the heap is left with that one timer.
/// Real time: another thread stops the loop a few ms into its sleep.
#[test]
fn l7_poll_timeout_comes_from_the_first_live_timer() {
    let mut lp = EventLoop::new().unwrap();
    let dead = lp.call_later(SEC * 5, || panic!("a cancelled timer ran"));
    dead.cancel();
    let _live = lp.call_later(SEC * 10, || panic!("the test stops the loop long before"));
    let s = lp.stats();
    assert_eq!((s.timers, s.cancelled_timers), (2, 1));
    for attempt in 1..=5u32 {
        let polls = lp.stats().polls;
        // Iteration 1 runs this callback, iteration 2 blocks; the stop comes a little later.
        let (tx, rx) = mpsc::channel::<()>();
        lp.call_soon(move || tx.send(()).unwrap());
        let h = lp.handle();
        let stopper = std::thread::spawn(move || {
            rx.recv().unwrap();
            std::thread::sleep(ms(3) * attempt);
            h.stop();
        });
        lp.run_forever();
        stopper.join().unwrap();
        let s = lp.stats();
        if s.polls == polls {
            continue; // The stop arrived before the loop blocked (a slow machine): try again.
        }
        let timeout = s.last_poll_timeout.expect("the loop blocked with a timeout");
        assert!(timeout > ms(9500) && timeout < ms(10500), "blocked with timeout {timeout:?}");
        assert_eq!((s.timers, s.cancelled_timers), (1, 0));
        return;
    }
    panic!("the loop never blocked in its poller");
}

/// L8 (test__run_once_schedule_handle): an expired timer whose callback schedules more work: after
/// one iteration the callback ran and exactly the new entry is left in the ready queue.
#[test]
fn l8_work_scheduled_by_a_timer_callback_waits_for_the_next_iteration() {
    let mut lp = vloop();
    let log = Log::new();
    lp.call_at(lp.time(), spawns(&log, "timer", "scheduled"));
    run_once(&mut lp);
    assert_eq!(log.get(), ["timer"]);
    assert_eq!(lp.stats().ready, 1);
    run_once(&mut lp);
    assert_eq!(log.get(), ["timer", "scheduled"]);
}

// ---------------------------------------------------------------------------------------------
// L9: lazy cancellation in the timer heap (white-box, with `stats()`)
// ---------------------------------------------------------------------------------------------

fn timers_and_cancelled(lp: &EventLoop) -> (usize, usize) {
    let s = lp.stats();
    (s.timers, s.cancelled_timers)
}

/// L9 (test__run_once_cancelled_event_cleanup): a cancelled timer at the head is removed (and
/// uncounted) by the next iteration.
#[test]
fn l9_cancelled_head_timer_is_removed_by_the_next_iteration() {
    let mut lp = vloop();
    let _live = lp.call_later(SEC * 100, || {});
    lp.call_later(SEC, || {}).cancel();
    assert_eq!(timers_and_cancelled(&lp), (2, 1));
    run_once(&mut lp);
    assert_eq!(timers_and_cancelled(&lp), (1, 0));
}

/// L9: a cancelled timer behind a live head stays in the heap as a tombstone.
#[test]
fn l9_cancelled_timer_behind_a_live_head_stays() {
    let mut lp = vloop();
    let _live = lp.call_later(SEC, || {});
    lp.call_later(SEC * 100, || {}).cancel();
    run_once(&mut lp);
    assert_eq!(timers_and_cancelled(&lp), (2, 1));
}

/// Schedules a live head timer (+1 s) and `n - 1` timers behind it, and cancels `cancel` of those.
fn heap_with(lp: &EventLoop, n: usize, cancel: usize) -> Vec<TimerHandle> {
    let mut hs = vec![lp.call_later(SEC, || {})];
    hs.extend((1..n).map(|i| lp.call_later(SEC * 100 + ms(i as u64), || {})));
    hs[1..=cancel].iter().for_each(TimerHandle::cancel);
    hs
}

/// L9: once the heap holds more than 100 timers of which more than half are cancelled, the next
/// iteration removes every cancelled one.
#[test]
fn l9_mostly_cancelled_heap_is_compacted() {
    let mut lp = vloop();
    let _hs = heap_with(&lp, 101, 51);
    // asyncio rebuilds at the start of the next iteration; aioloop already at the cancel that
    // broke the rule (so a task cancelling timers in one long poll stays small): same state by
    // the time anything can run.
    assert_eq!(timers_and_cancelled(&lp), (50, 0));
    run_once(&mut lp);
    assert_eq!(timers_and_cancelled(&lp), (50, 0));
}

/// L9: the thresholds are strict: 100 timers (99 cancelled), or 101 timers (50 cancelled), are
/// not compacted; one more cancellation tips the second case over.
#[test]
fn l9_compaction_thresholds_are_strict() {
    let mut lp = vloop();
    let _hs = heap_with(&lp, 100, 99);
    run_once(&mut lp);
    assert_eq!(timers_and_cancelled(&lp), (100, 99));

    let mut lp = vloop();
    let hs = heap_with(&lp, 101, 50);
    run_once(&mut lp);
    assert_eq!(timers_and_cancelled(&lp), (101, 50));
    hs[51].cancel();
    run_once(&mut lp);
    assert_eq!(timers_and_cancelled(&lp), (50, 0));
}

// ---------------------------------------------------------------------------------------------
// L10, L11 and stop(): run_forever
// ---------------------------------------------------------------------------------------------

/// L10 (test_run_once): `call_soon(cb); call_soon(stop); run_forever()` runs `cb` exactly once.
#[test]
fn l10_call_soon_stop_runs_one_iteration() {
    let mut lp = vloop();
    let count = Rc::new(std::cell::Cell::new(0));
    let c = count.clone();
    lp.call_soon(move || c.set(c.get() + 1));
    let h = lp.handle();
    lp.call_soon(move || h.stop());
    let it = lp.stats().iterations;
    lp.run_forever();
    assert_eq!(count.get(), 1);
    assert_eq!(lp.stats().iterations - it, 1);
    run_once(&mut lp);
    assert_eq!(count.get(), 1);
}

/// L11 (test_run_forever_pre_stopped) and E2: `stop(); run_forever()` runs exactly one iteration
/// without blocking (real time: a timer 10 s away is not waited for); what the pre-scheduled
/// callback schedules stays in the ready queue.
#[test]
fn l11_stop_before_run_forever_runs_exactly_one_iteration_without_blocking() {
    let mut lp = EventLoop::new().unwrap();
    let log = Log::new();
    let _t = lp.call_later(SEC * 10, log.cb("timer"));
    lp.call_soon(spawns(&log, "pre-scheduled", "scheduled by it"));
    let before = lp.stats();
    let start = Instant::now();
    lp.stop();
    lp.stop(); // a flag, not a counter
    lp.run_forever();
    let after = lp.stats();
    assert!(start.elapsed() < SEC, "run_forever blocked for {:?}", start.elapsed());
    assert_eq!(after.iterations - before.iterations, 1);
    assert!(after.polls == before.polls || after.last_poll_timeout == Some(Duration::ZERO));
    assert_eq!(log.get(), ["pre-scheduled"]);
    assert_eq!(after.ready, 1);
    run_once(&mut lp);
    assert_eq!(log.get(), ["pre-scheduled", "scheduled by it"]);
}

/// stop() (§1.5): the iteration in progress completes, including callbacks queued after the one
/// that called `stop()`; what that iteration scheduled stays for the next run. CPython 3.11:
/// `call_soon(a); call_soon(stop); call_soon(b)` → `['a', 'b']`.
#[test]
fn stop_lets_the_current_iteration_finish() {
    let mut lp = vloop();
    let log = Log::new();
    lp.call_soon(spawns(&log, "a", "c"));
    let h = lp.handle();
    lp.call_soon(move || h.stop());
    lp.call_soon(log.cb("b"));
    lp.run_forever();
    assert_eq!(log.get(), ["a", "b"]);
    assert_eq!(lp.stats().ready, 1);
    run_once(&mut lp);
    assert_eq!(log.get(), ["a", "b", "c"]);
}

/// stop() (§1.5): the flag is reset when `run_forever` returns, so the next `run_forever` runs
/// until its own stop.
#[test]
fn stop_flag_is_reset_when_run_forever_returns() {
    let mut lp = vloop();
    run_once(&mut lp);
    let t0 = lp.time();
    let h = lp.handle();
    lp.call_later(SEC, move || h.stop());
    lp.run_forever();
    assert_eq!(lp.time() - t0, SEC);
}

/// stop() from a task ends `run_forever` after that iteration.
#[test]
fn stop_from_a_task() {
    let mut lp = vloop();
    let h = lp.handle();
    let t = lp.spawn(async move {
        aioloop::sleep(SEC).await;
        h.stop();
        7
    });
    lp.run_forever();
    assert_eq!(t.state(), TaskState::Done);
    assert_eq!(lp.run_until_complete(t).unwrap(), 7);
}

/// `LoopHandle::stop` from another thread wakes a loop blocked with nothing to do (no timers:
/// asyncio's `select(None)`, interrupted by the self-pipe).
#[test]
fn stop_from_another_thread_wakes_a_blocked_loop() {
    let mut lp = EventLoop::new().unwrap();
    let h = lp.handle();
    let start = Instant::now();
    let th = std::thread::spawn(move || {
        std::thread::sleep(ms(5));
        h.stop();
    });
    lp.run_forever();
    th.join().unwrap();
    assert!(start.elapsed() < SEC * 5);
    assert_eq!(lp.stats().last_poll_timeout, None, "the loop blocked without a timeout");
}

/// Phase 4 (drain_inbox): a waker woken on another thread reaches a loop blocked with no timers.
#[test]
fn wake_from_another_thread_reaches_a_blocked_loop() {
    let mut lp = EventLoop::new().unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let mut helper = None;
    let start = Instant::now();
    let v = lp.run_until_complete(poll_fn(|cx| {
        if flag.load(SeqCst) {
            return Poll::Ready(7);
        }
        if helper.is_none() {
            let (w, f) = (cx.waker().clone(), flag.clone());
            helper = Some(std::thread::spawn(move || {
                std::thread::sleep(ms(5));
                f.store(true, SeqCst);
                w.wake();
            }));
        }
        Poll::Pending
    }));
    helper.unwrap().join().unwrap();
    assert_eq!(v, 7);
    assert!(start.elapsed() < SEC * 5);
}

// ---------------------------------------------------------------------------------------------
// The iteration rules (§1.4, §6.2 rules 1-4)
// ---------------------------------------------------------------------------------------------

/// Rule 1, E1 (the ntodo rule): `call_soon(a); call_soon(b)` where `a` schedules `c` → `a`, `b` run
/// in iteration 1 and `c` in iteration 2.
#[test]
fn e1_work_scheduled_during_an_iteration_runs_in_the_next() {
    let mut lp = vloop();
    let log = Log::new();
    lp.call_soon(spawns(&log, "a", "c"));
    lp.call_soon(log.cb("b"));
    run_once(&mut lp);
    assert_eq!(log.get(), ["a", "b"]);
    run_once(&mut lp);
    assert_eq!(log.get(), ["a", "b", "c"]);
}

/// Rule 1 with tasks: a task that yields (`sleep(0)`) goes behind everything already ready and
/// costs exactly one iteration per yield.
#[test]
fn e1_a_yielding_task_runs_once_per_iteration() {
    let mut lp = vloop();
    let log = Log::new();
    for name in ["x", "y"] {
        let log = log.clone();
        lp.spawn(async move {
            for i in 0..3 {
                log.push(format!("{name}{i}"));
                aioloop::yield_now().await;
            }
        });
    }
    for expected in [["x0", "y0"], ["x1", "y1"], ["x2", "y2"]] {
        run_once(&mut lp);
        assert_eq!(log.take(), expected);
    }
}

/// Rule 2, C8: inside one iteration, what was already ready runs first, then the expired timers
/// in deadline order (not creation order); what they schedule waits for the next iteration.
#[test]
fn c8_leftover_ready_runs_before_expired_timers() {
    let mut lp = vloop();
    lp.run_until_complete(aioloop::sleep(SEC * 10));
    let now = lp.time();
    let log = Log::new();
    lp.call_at(now - SEC, spawns(&log, "t2", "scheduled by t2"));
    lp.call_at(now - SEC * 2, log.cb("t1"));
    lp.call_soon(log.cb("ready-before"));
    run_once(&mut lp);
    assert_eq!(log.get(), ["ready-before", "t1", "t2"]);
    run_once(&mut lp);
    assert_eq!(log.get(), ["ready-before", "t1", "t2", "scheduled by t2"]);
}

/// Rule 20: CPython leaves equal deadlines unordered (`[0, 4, 3, 6, 5, 2, 1, 7]` observed);
/// aioloop documents FIFO (`(deadline, seq)`, timer.rs), a strict refinement.
#[test]
fn timers_with_equal_deadlines_fire_in_creation_order() {
    let mut lp = vloop();
    let log = Log::new();
    let when = lp.time() + SEC;
    for i in 0..8 {
        lp.call_at(when, log.cb(i.to_string()));
    }
    lp.run_until_complete(aioloop::sleep(SEC * 2));
    assert_eq!(log.get(), ["0", "1", "2", "3", "4", "5", "6", "7"]);
}

/// Rule 4: a timer cancelled after it expired but before it ran (by an earlier callback of the
/// same iteration) is skipped.
#[test]
fn timer_cancelled_by_an_earlier_callback_of_the_same_iteration_is_skipped() {
    let mut lp = vloop();
    let log = Log::new();
    let when = lp.time() + SEC;
    let victim: Rc<RefCell<Option<TimerHandle>>> = Rc::default();
    let (v, l) = (victim.clone(), log.clone());
    lp.call_at(when, move || {
        l.push("first");
        v.borrow().as_ref().unwrap().cancel();
    });
    *victim.borrow_mut() = Some(lp.call_at(when, log.cb("second")));
    lp.run_until_complete(aioloop::sleep(SEC * 2));
    assert_eq!(log.get(), ["first"]);
    assert!(victim.borrow().as_ref().unwrap().is_cancelled());
}

// ---------------------------------------------------------------------------------------------
// run_until_complete (§1.5, rule 15)
// ---------------------------------------------------------------------------------------------

/// Rule 15: the loop stops at the end of the iteration after the main future completed, so work
/// made ready by then still runs (its first step), and nothing later. CPython 3.11:
/// `['main returns', 'x step1', 'ruc returned']`.
#[test]
fn run_until_complete_stops_one_iteration_after_the_future_completed() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let it = lp.stats().iterations;
    lp.run_until_complete(async move {
        let l2 = l.clone();
        aioloop::spawn(async move {
            l2.push("x step 1");
            aioloop::yield_now().await;
            l2.push("x step 2");
        });
        l.push("main returns");
    });
    log.push("run_until_complete returned");
    assert_eq!(log.take(), ["main returns", "x step 1", "run_until_complete returned"]);
    assert_eq!(lp.stats().iterations - it, 2);
    // The rest of the task runs on the next run.
    lp.run_until_complete(aioloop::yield_now());
    assert_eq!(log.get(), ["x step 2"]);
}

/// Rule 15 / §4.1 (`phases_ruc.py`): a task cancelled by the main future just before it returns
/// is dropped in the last iteration, after main returned and before `run_until_complete` returns
/// (`exiting main`, then `phase 2 canceled`).
#[test]
#[allow(clippy::async_yields_async)] // returns the task's handle
fn task_cancelled_as_main_returns_is_dropped_before_run_until_complete_returns() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let t = lp.spawn(async move {
        let _g = l.on_drop("phase 2 canceled");
        aioloop::sleep(SEC * 10).await;
    });
    run_once(&mut lp);
    let l = log.clone();
    let t = lp.run_until_complete(async move {
        t.cancel();
        l.push("exiting main");
        t
    });
    log.push("run_until_complete returned");
    assert_eq!(log.get(), ["exiting main", "phase 2 canceled", "run_until_complete returned"]);
    assert!(t.is_cancelled());
}

/// Rule 15 (test_stop_while_run_in_complete): a stop before the main future completed makes
/// `run_until_complete` panic with asyncio's message; the future is dropped, the clock did not
/// move, and the loop is usable afterwards (the abandoned sleep's timer is gone).
#[test]
fn run_until_complete_panics_if_the_loop_stops_before_the_future_completed() {
    let mut lp = vloop();
    let log = Log::new();
    let (h, l) = (lp.handle(), log.clone());
    let t0 = lp.time();
    let r = catch_panic(|| {
        lp.run_until_complete(async move {
            let _g = l.on_drop("main future dropped");
            h.stop();
            aioloop::sleep(SEC).await;
            l.push("main finished");
        })
    });
    assert_eq!(r.unwrap_err(), "Event loop stopped before Future completed.");
    assert_eq!(log.get(), ["main future dropped"]);
    assert_eq!(lp.time(), t0);
    assert_eq!(lp.run_until_complete(async { 5 }), 5);
    assert_eq!(lp.time(), t0, "the dropped sleep's timer must not move the clock");
    assert_eq!(lp.stats().timers, 0);
}

/// L15 (test_run_until_complete_loop_orphan_future_close_loop), PART: a panic in the main future
/// resumes out of `run_until_complete` with its payload; the loop and its other tasks are
/// unharmed, and a later `run_until_complete` works.
#[test]
fn a_panic_in_the_main_future_resumes_from_run_until_complete() {
    let mut lp = vloop();
    let bystander = lp.spawn(async {
        aioloop::sleep(SEC).await;
        1
    });
    let r = catch_panic(|| {
        lp.run_until_complete(async {
            aioloop::yield_now().await;
            panic!("main boom");
        })
    });
    assert_eq!(r.unwrap_err(), "main boom");
    assert_eq!(lp.run_until_complete(bystander).unwrap(), 1);
}

/// L14 (test_running_loop_within_a_loop): running a loop inside a running loop panics with
/// asyncio's message; both loops are fine afterwards.
#[test]
fn l14_running_a_loop_inside_a_running_loop_panics() {
    let mut outer = vloop();
    let mut inner = outer.run_until_complete(async {
        let mut inner = vloop();
        let r = catch_panic(|| inner.run_until_complete(async { 1 }));
        assert_eq!(r.unwrap_err(), "Cannot run the event loop while another loop is running");
        let r = catch_panic(|| inner.run_forever());
        assert_eq!(r.unwrap_err(), "Cannot run the event loop while another loop is running");
        aioloop::sleep(SEC).await; // the outer loop still works
        inner
    });
    assert_eq!(inner.run_until_complete(async { 2 }), 2);
    assert_eq!(outer.run_until_complete(async { 3 }), 3);
}

// ---------------------------------------------------------------------------------------------
// aioloop::run (asyncio.run, §1.6, rule 14)
// ---------------------------------------------------------------------------------------------

/// R3 (test_asyncio_run_from_running_loop): `run()` inside a running loop panics.
#[test]
fn r3_run_inside_a_running_loop_panics() {
    let mut lp = vloop();
    let r = lp.run_until_complete(async { catch_panic(|| aioloop::run(async { 1 })) });
    let msg = r.unwrap_err();
    assert!(msg.contains("cannot be called from a running event loop"), "{msg}");
}

/// R1 (test_asyncio_run_cancels_hanging_tasks): `run(main)` returns main's value and cancels the
/// task left over; its cleanup runs after main returned. A task created just before main returns
/// still runs its first step (in the last iteration). CPython 3.11:
/// `['main returns', 'leftover start', 'leftover finally']`.
#[test]
fn r1_run_cancels_leftover_tasks_after_main_returned() {
    let log = Log::new();
    let l = log.clone();
    let (v, leftover) = aioloop::run(async move {
        let l2 = l.clone();
        let t = aioloop::spawn(async move {
            l2.push("leftover start");
            let _g = l2.on_drop("leftover finally");
            aioloop::sleep(SEC * 3600).await;
            l2.push("leftover finished");
        });
        l.push("main returns");
        (123, t)
    });
    assert_eq!(v, 123);
    assert_eq!(log.get(), ["main returns", "leftover start", "leftover finally"]);
    assert!(leftover.is_done() && leftover.is_cancelled());
}

/// R1, a leftover that was already running: CPython 3.11:
/// `['leftover start', 'main returns', 'leftover finally']`. Detached tasks are cancelled too.
#[test]
fn r1_run_cancels_detached_leftover_tasks() {
    let log = Log::new();
    let l = log.clone();
    let v = aioloop::run(async move {
        let l2 = l.clone();
        drop(aioloop::spawn(async move {
            l2.push("leftover start");
            let _g = l2.on_drop("leftover finally");
            aioloop::sleep(SEC * 3600).await;
        }));
        aioloop::yield_now().await;
        l.push("main returns");
        123
    });
    assert_eq!(v, 123);
    assert_eq!(log.get(), ["leftover start", "main returns", "leftover finally"]);
}

/// Rule 14 ("after main finishes, normally or not, cancel all remaining tasks and run the loop
/// until they are done"). CPython 3.11, main raising ValueError: `['main raises',
/// ('leftover finally, current is leftover', True), ('run raised', 'main boom')]`: the leftover's
/// cleanup runs as a step of the leftover task, inside the loop.
#[test]
fn r1_run_cancels_leftover_tasks_also_when_main_panics() {
    let log = Log::new();
    let l = log.clone();
    let r = catch_panic(move || {
        aioloop::run(async move {
            let l2 = l.clone();
            drop(aioloop::spawn(async move {
                let me = aioloop::current_task();
                let l3 = l2.clone();
                let _g = util::Defer(move || {
                    l3.push(format!("leftover cleanup, current is leftover: {}", aioloop::current_task() == me));
                });
                aioloop::sleep(SEC * 3600).await;
            }));
            aioloop::yield_now().await;
            l.push("main panics");
            panic!("main boom");
        })
    });
    assert_eq!(r.unwrap_err(), "main boom");
    assert_eq!(log.get(), ["main panics", "leftover cleanup, current is leftover: true"]);
}

/// asyncio (tests/asyncio_divergences.py, CPython 3.11.7): `call_at` with deadlines before the
/// loop was created runs them in deadline order, and `when()` reports each time asked for
/// (`when - t0 = -2.0, -3.0, -1.0, 0.0`, run order `a, b, c, now`). aioloop used to clamp them
/// all to the loop's creation, so they tied and ran in creation order.
#[test]
fn call_at_before_the_loops_creation_runs_in_deadline_order_like_asyncio() {
    let mut lp = vloop();
    let t0 = lp.time(); // the loop was just created: virtual time has not moved
    let log = Log::new();
    let mut whens = vec![];
    for (name, back) in [("b", 2), ("a", 3), ("c", 1), ("now", 0)] {
        let when = t0 - SEC * back;
        let h = lp.call_at(when, log.cb(name));
        assert_eq!(h.when(), when, "when() is the time asked for");
        whens.push(h);
    }
    run_once(&mut lp);
    assert_eq!(log.get(), ["a", "b", "c", "now"], "deadline order, as asyncio");
    assert_eq!(lp.time(), t0, "past deadlines do not move the clock");

    // An Instant taken before the loop was built, on real time, and the free function.
    let before = Instant::now();
    let mut lp = EventLoop::new().unwrap();
    let log = Log::new();
    let late = lp.call_at(before, log.cb("before the loop"));
    let early = lp.call_at(before - SEC * 3600, log.cb("an hour before that"));
    assert_eq!((early.when(), late.when()), (before - SEC * 3600, before));
    let l = log.clone();
    lp.run_until_complete(async move {
        let h = aioloop::call_at(before - SEC, move || l.push("a second before it"));
        assert_eq!(h.when(), before - SEC);
        aioloop::sleep_until(before - SEC * 7).await; // a past deadline: yields once
    });
    assert_eq!(log.get(), ["an hour before that", "before the loop", "a second before it"]);
}
