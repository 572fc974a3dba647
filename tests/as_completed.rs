//! `as_completed`: asyncio's `asyncio.as_completed` oracle (spec §3.7, rows T26-T28 of §5.2 and
//! A1), on virtual time.
//!
//! asyncio's `as_completed(fs, timeout=t)` is `next()` wrapped in `timeout_at(deadline)` here.
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
