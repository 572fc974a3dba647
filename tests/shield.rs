//! `shield`: asyncio's `asyncio.shield` oracle (spec §3.5, rows T37-T40 of §5.2, rule 9 of
//! §6.2), on virtual time.
//!
//! asyncio's "cancelling the outer future" is cancelling the task that awaits the shield (or
//! dropping the `Shield`, for example by a timeout around it); "cancelling the inner" is
//! `Shield::task().cancel()`.
//!
//! Iteration counts are those of `EventLoop::run_until_complete(main)`, compared with
//! `loop.run_until_complete(main())` on CPython 3.12.1 (counted by wrapping `loop._run_once`).

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use aioloop::{gather, shield, sleep, spawn, timeout, yield_now, TaskError, TaskState};
use util::{after, fail, ms, run_counted, vloop as new_loop};

// T37 test_shield_result: the shield gives the inner task's value.
#[test]
fn t37_shield_passes_the_value_through() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let v = lp.run_until_complete(async { shield(spawn(after(ms(100), 42))).await });
    assert_eq!(v.unwrap(), 42);
    assert_eq!(lp.time() - t0, ms(100));
}

// T37 test_shield_exception: the shield gives the inner task's failure.
#[test]
fn t37_shield_passes_a_panic_through() {
    let mut lp = new_loop();
    let r = lp.run_until_complete(async {
        shield(spawn(async {
            sleep(ms(10)).await;
            fail("inner failed")
        }))
        .await
    });
    assert_eq!(r.unwrap_err().to_string(), "task panicked: inner failed");
}

// T37 test_shield_shortcut: the shield of a finished task gives its outcome without an
// iteration (CPython 3.12.1: spawn, two `sleep(0)`, `await shield(t)`: 4 iterations).
#[test]
fn t37_shield_of_a_finished_task_gives_its_outcome_at_once() {
    let mut lp = new_loop();
    let (v, iters) = run_counted(&mut lp, async {
        let t = spawn(async { 42 });
        yield_now().await;
        yield_now().await;
        assert!(t.is_done());
        shield(t).await
    });
    assert_eq!(v.unwrap(), 42);
    assert_eq!(iters, 4);
}

// T38 test_shield_cancel_inner: cancelling the inner task cancels the shield: its awaiter gets
// `Err(Cancelled)` (and, not being cancelled itself, goes on).
#[test]
fn t38_cancelling_the_inner_task_cancels_the_shield() {
    let mut lp = new_loop();
    let mut outer = lp.spawn(async {
        let s = shield(spawn(after(Duration::from_secs(10), 1)));
        yield_now().await;
        assert!(s.task().cancel());
        let r = s.await;
        assert!(matches!(r, Err(TaskError::Cancelled)));
        "went on"
    });
    assert_eq!(lp.run_until_complete(&mut outer).unwrap(), "went on");
    assert_eq!(outer.state(), TaskState::Done);
}

// T39 test_shield_effect: cancelling the task that awaits the shield cancels it at once
// (`proof += 100` never runs) while the inner task runs to completion (`proof == 1`).
#[test]
fn t39_cancelling_the_awaiting_task_leaves_the_inner_task_running() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let proof = Rc::new(Cell::new(0));
    let p = proof.clone();
    let mut f = lp.spawn(async move {
        let p2 = p.clone();
        let _ = shield(spawn(async move {
            sleep(ms(100)).await;
            p2.set(p2.get() + 1);
        }))
        .await;
        p.set(p.get() + 100);
    });
    lp.run_until_complete(yield_now());
    assert!(f.cancel());
    assert!(lp.run_until_complete(&mut f).unwrap_err().is_cancelled());
    assert!(f.is_cancelled());
    assert_eq!(lp.time(), t0, "the awaiting task did not wait for the inner one");
    assert_eq!(proof.get(), 0);
    lp.run_until_complete(sleep(ms(200)));
    assert_eq!(proof.get(), 1);
}

// T39 test_shield_cancel_outer, with the shield dropped by a timeout around it (the usual idiom):
// the timeout reports, the inner task is not cancelled and finishes.
#[test]
fn t39_a_timeout_around_a_shield_leaves_the_inner_task_running() {
    let mut lp = new_loop();
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    let r = lp.run_until_complete(async move {
        let inner = spawn(async move {
            sleep(Duration::from_secs(1)).await;
            f.set(true);
        });
        timeout(ms(100), shield(inner)).await
    });
    assert!(r.is_err());
    assert!(!finished.get());
    lp.run_until_complete(sleep(Duration::from_secs(2)));
    assert!(finished.get());
}

// The shielded task is spawned by `shield` itself: dropping the unawaited shield detaches it.
#[test]
fn a_shielded_future_runs_even_if_the_shield_is_dropped() {
    let mut lp = new_loop();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    lp.run_until_complete(async move {
        let s = shield(spawn(async move { r.set(true) }));
        drop(s);
        yield_now().await;
    });
    assert!(ran.get());
}

// T40 test_shield_gather: cancelling the task awaiting `shield(gather(c1, c2))` does not cancel
// the gather, which completes with `[1, 2]`.
#[test]
fn t40_cancelling_a_shielded_gather_leaves_the_gather_running() {
    let mut lp = new_loop();
    let result = Rc::new(RefCell::new(None));
    let res = result.clone();
    let parent = lp.spawn(async move {
        let r = gather([spawn(after(ms(100), 1)), spawn(after(ms(200), 2))]).await;
        *res.borrow_mut() = Some(r.unwrap());
    });
    let mut outer = lp.spawn(shield(parent));
    lp.run_until_complete(yield_now());
    assert!(outer.cancel());
    assert!(lp.run_until_complete(&mut outer).unwrap_err().is_cancelled());
    assert!(outer.is_cancelled());
    assert!(result.borrow().is_none());
    lp.run_until_complete(sleep(Duration::from_secs(1)));
    assert_eq!(*result.borrow(), Some(vec![1, 2]));
}

// Rule 6 / the combinators' "two iterations after a member finished": asyncio's shield copies
// the inner's outcome to its outer future in a done-callback, whose own done-callback wakes the
// awaiter. CPython 3.12.1: a fresh task that returns at once, `await shield(t)`: 5 iterations
// (a plain `await t` takes 4).
#[test]
fn shield_resumes_two_iterations_after_the_inner_finished() {
    let mut lp = new_loop();
    let (v, iters) = run_counted(&mut lp, async { shield(spawn(async { 1 })).await });
    assert_eq!(v.unwrap(), 1);
    assert_eq!(iters, 5);
}
