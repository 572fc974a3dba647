//! `as_completed`: asyncio's `asyncio.as_completed` oracle (spec §3.7, rows T26-T28 of §5.2 and
//! A1), on virtual time.
//!
//! asyncio's `as_completed(fs, timeout=t)` is `as_completed(tasks).with_timeout(t)` here (or
//! `next()` wrapped in `timeout_at(deadline)`, which leaves the stream usable afterwards).
//! T28's duplicate collapsing does not port (a `Task` is not `Clone`); its "each member exactly
//! once" does.
//!
//! Iteration counts are those of `EventLoop::run_until_complete(main)`, compared with
//! `loop.run_until_complete(main())` on CPython 3.12.1 (counted by wrapping `loop._run_once`).

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use aioloop::{as_completed, sleep, spawn, timeout_at, yield_now, TimeoutError};
use util::{after, fail, ms, run_counted, vloop as new_loop};

// T26 test_as_completed: outcomes come in completion order, each when its task finishes.
#[test]
fn t26_outcomes_come_in_completion_order() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let got = lp.run_until_complete(async move {
        let a = spawn(after(ms(100), "a"));
        let b = spawn(after(ms(50), "b"));
        let c = spawn(after(ms(150), "c"));
        let mut s = as_completed([a, b, c]);
        let mut got = vec![];
        while let Some(r) = s.next().await {
            got.push((r.unwrap(), aioloop::now() - t0));
        }
        got
    });
    assert_eq!(got, [("b", ms(50)), ("a", ms(100)), ("c", ms(150))]);
}

// T26 with plain futures (spawned) and failures: a panic and a cancellation are outcomes too.
#[test]
fn t26_failures_are_outcomes_in_completion_order() {
    let mut lp = new_loop();
    let got = lp.run_until_complete(async {
        let cancelled = spawn(after(ms(10), 0));
        cancelled.cancel();
        let failing = spawn(async {
            sleep(ms(20)).await;
            fail("boom")
        });
        let ok = spawn(after(ms(30), 3));
        let mut s = as_completed([ok, failing, cancelled]);
        let mut got = vec![];
        while let Some(r) = s.next().await {
            got.push(match r {
                Ok(v) => v.to_string(),
                Err(e) => e.to_string(),
            });
        }
        got
    });
    assert_eq!(got, ["task was cancelled", "task panicked: boom", "3"]);
}

// T27 test_as_completed_with_timeout / A1: with a deadline of 0.12 the first outcome is 'a', the
// second wait times out at 0.12; `b` is not cancelled and is still delivered afterwards.
#[test]
fn t27_timeout_around_next_leaves_the_remaining_tasks_running() {
    let mut lp = new_loop();
    let t0 = lp.time();
    lp.run_until_complete(async move {
        let a = spawn(after(ms(100), "a"));
        let b = spawn(after(ms(150), "b"));
        let deadline = aioloop::now() + ms(120);
        let mut s = as_completed([a, b]);
        let first = timeout_at(deadline, s.next()).await;
        assert_eq!(first.unwrap().unwrap().unwrap(), "a");
        let second = timeout_at(deadline, s.next()).await;
        assert!(matches!(second, Err(TimeoutError)));
        assert_eq!(aioloop::now() - t0, ms(120));
        assert_eq!(s.remaining(), 1);
        assert_eq!(s.next().await.unwrap().unwrap(), "b", "b was not cancelled");
        assert_eq!(aioloop::now() - t0, ms(150));
    });
}

// A1: dropping the stream after a timeout leaves the remaining tasks running to completion.
#[test]
fn a1_dropping_the_stream_leaves_the_remaining_tasks_running() {
    let mut lp = new_loop();
    let finished = Rc::new(RefCell::new(vec![]));
    let f = finished.clone();
    lp.run_until_complete(async move {
        let tasks: Vec<_> = [100u64, 150]
            .map(|d| {
                let f = f.clone();
                spawn(async move {
                    sleep(ms(d)).await;
                    f.borrow_mut().push(d);
                })
            })
            .into_iter()
            .collect();
        let deadline = aioloop::now() + ms(120);
        let mut s = as_completed(tasks);
        assert!(timeout_at(deadline, s.next()).await.is_ok());
        assert!(timeout_at(deadline, s.next()).await.is_err());
    });
    assert_eq!(*finished.borrow(), [100]);
    lp.run_until_complete(sleep(Duration::from_secs(1)));
    assert_eq!(*finished.borrow(), [100, 150]);
}

// T28 (the portable part): every member is delivered exactly once, then the stream ends.
#[test]
fn t28_each_member_is_delivered_exactly_once() {
    let mut lp = new_loop();
    lp.run_until_complete(async {
        let mut s = as_completed((1..=3u64).map(|i| spawn(after(ms(10 * (4 - i)), i))));
        assert_eq!(s.remaining(), 3);
        assert_eq!(futures_core::Stream::size_hint(&s), (3, Some(3)));
        let mut got = vec![];
        while let Some(r) = s.next().await {
            got.push(r.unwrap());
            assert_eq!(s.remaining(), 3 - got.len());
        }
        assert_eq!(got, [3, 2, 1]);
        assert!(s.next().await.is_none());
        assert!(s.next().await.is_none());
    });
}

// `AsCompleted` is a `Stream` (asyncio 3.13: an async iterator).
#[test]
fn as_completed_is_a_stream() {
    use futures_lite::StreamExt;
    let mut lp = new_loop();
    let got: Vec<u64> = lp.run_until_complete(async {
        let s = as_completed([30u64, 10, 20].map(|d| spawn(after(ms(d), d))));
        StreamExt::map(s, Result::unwrap).collect().await
    });
    assert_eq!(got, [10, 20, 30]);
}

// Rule 6: an outcome arrives two iterations after its task finished. CPython 3.12.1: a fresh task
// that returns at once, consumed with `as_completed`: 5 iterations; two tasks sleeping 1 s and
// 2 s: 11.
#[test]
fn outcomes_arrive_two_iterations_after_the_task_finished() {
    let mut lp = new_loop();
    let (v, iters) = run_counted(&mut lp, async {
        let mut s = as_completed([spawn(async { 1 })]);
        s.next().await.unwrap().unwrap()
    });
    assert_eq!(v, 1);
    assert_eq!(iters, 5);
    let (v, iters) = run_counted(&mut lp, async {
        let mut s = as_completed([1, 2].map(|i| spawn(after(Duration::from_secs(i), i))));
        let mut v = vec![];
        while let Some(r) = s.next().await {
            v.push(r.unwrap());
        }
        v
    });
    assert_eq!(v, [1, 2]);
    assert_eq!(iters, 11);
}

// Rule 6 for members that finished before `as_completed` was called: asyncio still delivers
// them through done-callbacks. CPython 3.12.1: spawn, two `sleep(0)`, `as_completed([t])`: 6
// iterations.
#[test]
fn finished_members_still_take_two_iterations() {
    let mut lp = new_loop();
    let (v, iters) = run_counted(&mut lp, async {
        let t = spawn(async { 1 });
        yield_now().await;
        yield_now().await;
        let mut s = as_completed([t]);
        s.next().await.unwrap().unwrap()
    });
    assert_eq!(v, 1);
    assert_eq!(iters, 6);
}

/// Drains a stream with a deadline: (ms since `t0`, the value, or the error's name).
async fn drain_timed<T: std::fmt::Display + 'static>(
    s: &mut aioloop::AsCompletedTimeout<T>,
    t0: std::time::Instant,
) -> Vec<(u64, String)> {
    let mut out = vec![];
    while let Some(r) = s.next().await {
        let what = match r {
            Ok(Ok(v)) => v.to_string(),
            Ok(Err(e)) if e.is_panic() => "panicked".to_string(),
            Ok(Err(_)) => "cancelled".to_string(),
            Err(TimeoutError) => "TimeoutError".to_string(),
        };
        out.push(((aioloop::now() - t0).as_millis() as u64, what));
    }
    out
}

/// The pairs of `drain_timed`, from literals.
fn timed(expected: &[(u64, &str)]) -> Vec<(u64, String)> {
    expected.iter().map(|&(t, w)| (t, w.to_string())).collect()
}

// `as_completed(fs, timeout=0.15)` on tasks finishing at 0.3, 0.1, 0.2. CPython 3.11.7 (real
// time, hence the extra millisecond):
//   A [(101, 'a'), (151, 'TimeoutError'), (151, 'TimeoutError')] cancelled: [False, False, False]
//   A later ['c', 'a', 'b']
#[test]
fn with_timeout_gives_what_finished_then_a_timeout_for_each_task_left() {
    let mut lp = new_loop();
    let tasks = [(300, "c"), (100, "a"), (200, "b")].map(|(d, v)| lp.spawn(after(ms(d), v)));
    let aborts: Vec<_> = tasks.iter().map(aioloop::Task::abort_handle).collect();
    let t0 = lp.time();
    let got = lp.run_until_complete(async move {
        let mut s = as_completed(tasks).with_timeout(ms(150));
        assert_eq!(s.remaining(), 3);
        drain_timed(&mut s, t0).await
    });
    assert_eq!(got, timed(&[(100, "a"), (150, "TimeoutError"), (150, "TimeoutError")]));
    assert!(aborts.iter().filter(|a| a.is_done()).count() == 1, "the two late tasks run on");
    lp.run_until_complete(sleep(ms(300)));
    assert!(aborts.iter().all(|a| a.is_done() && !a.cancel()), "finished, not cancelled");
}

// The deadline passes while nobody awaits: what finished before it is still returned, in
// finishing order, when the stream is read later. CPython 3.11.7 (`list(as_completed(...,
// timeout=0.3))` at 0, awaited from 0.4; tasks finishing at 0.1, 0.2, 0.5):
//   B [(401, 'x'), (401, 'y'), (401, 'TimeoutError')]
#[test]
fn with_timeout_read_after_the_deadline_still_gives_what_finished_before_it() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let got = lp.run_until_complete(async move {
        let tasks = [(100, "x"), (200, "y"), (500, "z")].map(|(d, v)| spawn(after(ms(d), v)));
        let mut s = as_completed(tasks).with_timeout(ms(300));
        sleep(ms(400)).await;
        drain_timed(&mut s, t0).await
    });
    assert_eq!(got, timed(&[(400, "x"), (400, "y"), (400, "TimeoutError")]));
}

// The deadline counts from the call: a task finishing after it, but before the stream is first
// read, is a timeout (asyncio 3.13's as_completed, an object that starts its timer when created).
#[test]
fn with_timeout_counts_from_the_call_not_from_the_first_read() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let got = lp.run_until_complete(async move {
        let tasks = [(100, "x"), (250, "late")].map(|(d, v)| spawn(after(ms(d), v)));
        let mut s = as_completed(tasks).with_timeout(ms(200));
        sleep(ms(300)).await;
        drain_timed(&mut s, t0).await
    });
    assert_eq!(got, timed(&[(300, "x"), (300, "TimeoutError")]));
}

// Everything in time: the stream ends with the last task and leaves no timer behind. CPython
// 3.11.7 (timeout 1 s, tasks finishing at 0.1 and 0.05):
//   C [(50, 'q'), (101, 'p')]
#[test]
fn with_timeout_all_in_time_ends_with_the_last_task_and_cancels_its_timer() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let got = lp.run_until_complete(async move {
        let tasks = [(100, "p"), (50, "q")].map(|(d, v)| spawn(after(ms(d), v)));
        drain_timed(&mut as_completed(tasks).with_timeout(ms(1000)), t0).await
    });
    assert_eq!(got, timed(&[(50, "q"), (100, "p")]));
    let stats = lp.stats();
    assert_eq!(stats.timers - stats.cancelled_timers, 0, "the deadline's timer is cancelled");
    assert_eq!(lp.time() - t0, ms(100));
}

// A failure before the deadline is an outcome; the slow task is not cancelled. CPython 3.11.7
// (a task raising at 0.05, another sleeping 1 s, timeout 0.5):
//   D [(50, 'ValueError'), (501, 'TimeoutError')] slow cancelled: False
#[test]
fn with_timeout_a_failure_is_an_outcome_and_the_slow_task_is_not_cancelled() {
    let mut lp = new_loop();
    let slow = lp.spawn(after(ms(1000), "slow"));
    let slow_abort = slow.abort_handle();
    let t0 = lp.time();
    let got = lp.run_until_complete(async move {
        let bad = spawn(async {
            sleep(ms(50)).await;
            fail("boom")
        });
        drain_timed(&mut as_completed([bad, slow]).with_timeout(ms(500)), t0).await
    });
    assert_eq!(got, timed(&[(50, "panicked"), (500, "TimeoutError")]));
    assert!(!slow_abort.is_done());
    lp.run_until_complete(sleep(ms(600)));
    assert!(slow_abort.is_done() && !slow_abort.cancel());
}

// A zero timeout: the deadline's callback runs before a task that needs one more step. CPython
// 3.11.7 (a task doing `sleep(0)` then returning, timeout 0):
//   E [(0, 'TimeoutError')]
#[test]
fn with_a_zero_timeout_a_task_that_is_not_done_times_out() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let got = lp.run_until_complete(async move {
        let t = spawn(async {
            yield_now().await;
            "z"
        });
        drain_timed(&mut as_completed([t]).with_timeout(Duration::ZERO), t0).await
    });
    assert_eq!(got, timed(&[(0, "TimeoutError")]));
}

// `AsCompletedTimeout` is a `Stream` too, and of nothing it ends at once.
#[test]
fn with_timeout_is_a_stream_and_empty_ends_at_once() {
    use futures_lite::StreamExt;
    let mut lp = new_loop();
    let got: Vec<_> = lp.run_until_complete(async {
        let tasks = [20u64, 10].map(|d| spawn(after(ms(d), d)));
        StreamExt::map(as_completed(tasks).with_timeout(ms(15)), |r| r.map(|o| o.unwrap())).collect().await
    });
    assert_eq!(got, [Ok(10), Err(TimeoutError)]);
    let none = lp.run_until_complete(async {
        as_completed(Vec::<aioloop::Task<u8>>::new()).with_timeout(ms(15)).next().await.is_none()
    });
    assert!(none);
}
