//! `wait`: asyncio's `asyncio.wait` oracle (spec §3.2, rows T15-T25 and T36 of §5.2, rules 6
//! and 10 of §6.2), on virtual time.
//!
//! Rows that do not port: T16 (`wait([c, c, d])` collapses duplicates) and most of T17 (bad
//! `return_when`, `wait(fut)`, `wait(coro)`): a `Task` is not `Clone` and `ReturnWhen` is an enum,
//! so the types rule them out. T17's "empty input is an error" is replaced by the documented
//! "two empty vectors at once".
//!
//! Iteration counts are those of `EventLoop::run_until_complete(main)`, compared with
//! `loop.run_until_complete(main())` on CPython 3.12.1 (counted by wrapping `loop._run_once`);
//! both take 2 iterations for a future that completes at its first poll.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use aioloop::{sleep, spawn, wait, yield_now, EventLoop, ReturnWhen, Task, TaskId, TaskState};
use util::{after, fail, ms, run_counted, vloop as new_loop};

/// The ids of `tasks`, sorted (asyncio returns sets).
fn ids<T>(tasks: &[Task<T>]) -> Vec<TaskId> {
    let mut v: Vec<TaskId> = tasks.iter().map(Task::id).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<TaskId>) -> Vec<TaskId> {
    v.sort();
    v
}

/// Live (not cancelled) entries of the timer heap.
fn live_timers(lp: &EventLoop) -> usize {
    let s = lp.stats();
    s.timers - s.cancelled_timers
}

// T15 test_wait: `wait([b, a])` with sleeps 0.1/0.15 → done = {a, b}, pending = ∅, at 0.15; the
// done tasks give their values.
#[test]
fn t15_all_completed_returns_every_task_done_at_the_last_finish() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(after(ms(100), "a"));
    let b = lp.spawn(after(ms(150), "b"));
    let want = sorted(vec![a.id(), b.id()]);
    let (done, pending) = lp.run_until_complete(wait([b, a], None, ReturnWhen::AllCompleted));
    assert_eq!(ids(&done), want);
    assert!(pending.is_empty());
    assert_eq!(lp.time() - t0, ms(150));
    let mut values: Vec<&str> = done.into_iter().map(|t| lp.run_until_complete(t).unwrap()).collect();
    values.sort();
    assert_eq!(values, ["a", "b"]);
}

// T15, second half: waiting again on the (finished) tasks takes no virtual time.
#[test]
fn t15_waiting_again_on_finished_tasks_takes_no_time() {
    let mut lp = new_loop();
    let a = lp.spawn(after(ms(100), 1));
    let b = lp.spawn(after(ms(150), 2));
    let (done, _) = lp.run_until_complete(wait([b, a], None, ReturnWhen::AllCompleted));
    let want = ids(&done);
    let t1 = lp.time();
    let (done, pending) = lp.run_until_complete(wait(done, None, ReturnWhen::AllCompleted));
    assert_eq!(lp.time(), t1);
    assert_eq!(ids(&done), want);
    assert!(pending.is_empty());
}

// Spec §3.2 [X1], rule 6: "even if every future is already done, `wait` takes 2 iterations".
// CPython 3.12.1: spawn a task that returns, `sleep(0)` twice, `wait([a])`: 6 iterations
// (2 + 2 yields + 2 for `wait`).
#[test]
fn x1_wait_on_finished_tasks_still_takes_two_iterations() {
    let mut lp = new_loop();
    let (n_done, iters) = run_counted(&mut lp, async {
        let a = spawn(async { 1 });
        yield_now().await;
        yield_now().await;
        assert!(a.is_done());
        let (done, pending) = wait([a], None, ReturnWhen::AllCompleted).await;
        assert!(pending.is_empty());
        done.len()
    });
    assert_eq!(n_done, 1);
    assert_eq!(iters, 6);
}

// The user-visible side of the same rule: the split is made when `wait` resumes, two iterations
// after it was called, so a task that finishes in the meantime is in `done` too. CPython 3.12.1:
// `a` finished, `b` fresh (returns at its first step), FIRST_COMPLETED → done = {a, b}.
#[test]
fn x4_first_completed_with_a_finished_member_resumes_late_enough_to_see_others() {
    let mut lp = new_loop();
    let (n, iters) = run_counted(&mut lp, async {
        let a = spawn(async { 1 });
        yield_now().await;
        yield_now().await;
        let b = spawn(async { 2 });
        let (done, pending) = wait([a, b], None, ReturnWhen::FirstCompleted).await;
        (done.len(), pending.len())
    });
    assert_eq!(n, (2, 0));
    assert_eq!(iters, 6);
}

// Rule 6: `wait` resumes two iterations after the member finished (its done-callback, then the
// waiter's wakeup). CPython 3.12.1: a fresh task that returns at once → 5 iterations (main
// suspends in 1, the task finishes in 2, `_on_completion` in 3, main resumes in 4, stop in 5).
#[test]
fn wait_resumes_two_iterations_after_the_member_finished() {
    let mut lp = new_loop();
    let (v, iters) = run_counted(&mut lp, async {
        let a = spawn(async { 7 });
        let (done, pending) = wait([a], None, ReturnWhen::AllCompleted).await;
        assert!(pending.is_empty());
        done.into_iter().next().unwrap().await.unwrap()
    });
    assert_eq!(v, 7);
    assert_eq!(iters, 5);
}

// T17 (documented deviation): asyncio raises ValueError for an empty set; aioloop returns two
// empty vectors at its first poll.
#[test]
fn t17_wait_of_nothing_returns_two_empty_vecs_at_once() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let ((done, pending), iters) = run_counted(&mut lp, wait(Vec::<Task<()>>::new(), None, ReturnWhen::AllCompleted));
    assert!(done.is_empty() && pending.is_empty());
    assert_eq!(iters, 2, "no iteration beyond run_until_complete's own two");
    assert_eq!(lp.time(), t0);
    let (done, pending) = lp.run_until_complete(wait(Vec::<Task<()>>::new(), Some(ms(5)), ReturnWhen::FirstCompleted));
    assert!(done.is_empty() && pending.is_empty());
    assert_eq!(lp.time(), t0, "an empty wait does not wait for its timeout");
}

// T18 test_wait_first_completed: sleeps 10 s / 0.1 s → done {b}, pending {a} at 0.1; `a` is
// neither done nor cancelled, and finishes later (W1: wait never cancels).
#[test]
fn t18_first_completed_returns_the_first_and_leaves_the_other_running() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(after(Duration::from_secs(10), "a"));
    let b = lp.spawn(after(ms(100), "b"));
    let (a_id, b_id) = (a.id(), b.id());
    let (done, pending) = lp.run_until_complete(wait([b, a], None, ReturnWhen::FirstCompleted));
    assert_eq!(ids(&done), [b_id]);
    assert_eq!(ids(&pending), [a_id]);
    assert_eq!(lp.time() - t0, ms(100));
    let a = pending.into_iter().next().unwrap();
    assert_eq!(a.state(), TaskState::Pending);
    assert!(!a.is_done() && !a.is_cancelled());
    assert_eq!(lp.run_until_complete(a).unwrap(), "a");
    assert_eq!(lp.time() - t0, Duration::from_secs(10));
}

// T19 test_wait_really_done: coro1 yields once, coro2 twice; FIRST_COMPLETED → done = {a, b}
// (the split is made when `wait` resumes). CPython 3.12.1: 5 iterations.
#[test]
fn t19_done_is_computed_when_wait_resumes() {
    let mut lp = new_loop();
    let a = lp.spawn(async {
        yield_now().await;
    });
    let b = lp.spawn(async {
        yield_now().await;
        yield_now().await;
    });
    let want = sorted(vec![a.id(), b.id()]);
    let ((done, pending), iters) = run_counted(&mut lp, wait([b, a], None, ReturnWhen::FirstCompleted));
    assert_eq!(ids(&done), want);
    assert!(pending.is_empty());
    assert_eq!(iters, 5);
    for t in done {
        assert!(lp.run_until_complete(t).is_ok());
    }
}

// T20 test_wait_first_exception: `b` panics at once, `a` sleeps 10 s → done {b}, pending {a},
// no time passed; `wait` itself does not fail.
#[test]
fn t20_first_exception_returns_at_the_first_panic() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(after(Duration::from_secs(10), 1));
    let b = lp.spawn(async { fail("b failed") });
    let (a_id, b_id) = (a.id(), b.id());
    let (done, pending) = lp.run_until_complete(wait([b, a], None, ReturnWhen::FirstException));
    assert_eq!(ids(&done), [b_id]);
    assert_eq!(ids(&pending), [a_id]);
    assert_eq!(lp.time(), t0);
    let err = lp.run_until_complete(done.into_iter().next().unwrap()).unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.to_string(), "task panicked: b failed");
    assert!(!pending[0].is_done());
}

// T21 test_wait_first_exception_in_wait: `b` panics after 0.01 s → `wait` returns at 0.01 with
// done {b}, pending {a}.
#[test]
fn t21_first_exception_waits_for_a_later_panic() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(after(Duration::from_secs(10), ()));
    let b = lp.spawn(async {
        sleep(ms(10)).await;
        fail("late failure")
    });
    let (a_id, b_id) = (a.id(), b.id());
    let (done, pending) = lp.run_until_complete(wait([a, b], None, ReturnWhen::FirstException));
    assert_eq!(ids(&done), [b_id]);
    assert_eq!(ids(&pending), [a_id]);
    assert_eq!(lp.time() - t0, ms(10));
}

// T22 test_wait_with_exception: ALL_COMPLETED with one failing task → both done at 0.15, `wait`
// does not fail, exactly one of them panicked.
#[test]
fn t22_all_completed_with_a_panic_returns_both_without_failing() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(async {
        sleep(ms(100)).await;
        fail("a failed")
    });
    let b = lp.spawn(after(ms(150), ()));
    let (done, pending) = lp.run_until_complete(wait([b, a], None, ReturnWhen::AllCompleted));
    assert_eq!(done.len(), 2);
    assert!(pending.is_empty());
    assert_eq!(lp.time() - t0, ms(150));
    let outcomes: Vec<_> = done.into_iter().map(|t| lp.run_until_complete(t)).collect();
    assert_eq!(outcomes.iter().filter(|r| r.as_ref().is_err_and(|e| e.is_panic())).count(), 1);
    assert_eq!(outcomes.iter().filter(|r| r.is_ok()).count(), 1);
}

// T23 test_wait_with_timeout: timeout 0.11, sleeps 0.1/0.15 → done {a}, pending {b} at 0.11;
// nothing cancelled, `b` finishes at 0.15 (W1).
#[test]
fn t23_timeout_splits_done_and_pending_and_cancels_nothing() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(after(ms(100), "a"));
    let b = lp.spawn(after(ms(150), "b"));
    let (a_id, b_id) = (a.id(), b.id());
    let (done, pending) = lp.run_until_complete(wait([a, b], Some(ms(110)), ReturnWhen::AllCompleted));
    assert_eq!(ids(&done), [a_id]);
    assert_eq!(ids(&pending), [b_id]);
    assert_eq!(lp.time() - t0, ms(110));
    let b = pending.into_iter().next().unwrap();
    assert!(!b.is_cancelled());
    assert_eq!(lp.run_until_complete(b).unwrap(), "b");
    assert_eq!(lp.time() - t0, ms(150));
}

// T24 test_wait_concurrent_complete: `a`'s sleep and the wait's timeout both expire at 0.1
// (the task's timer was set first) → done {a}, pending {b}.
#[test]
fn t24_member_and_timeout_expiring_together_counts_the_member_as_done() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(after(ms(100), ()));
    let b = lp.spawn(after(ms(150), ()));
    let (a_id, b_id) = (a.id(), b.id());
    let (done, pending) = lp.run_until_complete(wait([a, b], Some(ms(100)), ReturnWhen::AllCompleted));
    assert_eq!(ids(&done), [a_id]);
    assert_eq!(ids(&pending), [b_id]);
    assert_eq!(lp.time() - t0, ms(100));
}

// T25 test_wait_with_iterator_of_tasks: any iterator of tasks is accepted.
#[test]
fn t25_accepts_an_iterator_of_tasks() {
    let mut lp = new_loop();
    let tasks = vec![lp.spawn(after(ms(100), 1)), lp.spawn(after(ms(150), 2))];
    let want = ids(&tasks);
    let iter = tasks.into_iter().rev();
    let (done, pending) = lp.run_until_complete(wait(iter, None, ReturnWhen::AllCompleted));
    assert_eq!(ids(&done), want);
    assert!(pending.is_empty());
}

// Spec §3.2 [W3]: FIRST_EXCEPTION with no failure behaves like ALL_COMPLETED.
#[test]
fn first_exception_without_a_panic_waits_for_all() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(after(ms(100), ()));
    let b = lp.spawn(after(ms(200), ()));
    let (done, pending) = lp.run_until_complete(wait([a, b], None, ReturnWhen::FirstException));
    assert_eq!(done.len(), 2);
    assert!(pending.is_empty());
    assert_eq!(lp.time() - t0, ms(200));
}

// Rule 10: a cancelled member is done but is not an "exception": FIRST_EXCEPTION keeps waiting,
// and the cancelled task is in `done`.
#[test]
fn cancelled_member_is_done_but_not_an_exception() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(after(Duration::from_secs(10), ()));
    let b = lp.spawn(after(ms(200), ()));
    let (a_id, b_id) = (a.id(), b.id());
    a.cancel();
    let (done, pending) = lp.run_until_complete(wait([a, b], None, ReturnWhen::FirstException));
    assert_eq!(ids(&done), sorted(vec![a_id, b_id]));
    assert!(pending.is_empty());
    assert_eq!(lp.time() - t0, ms(200), "the cancellation did not end the wait");
    let a = done.into_iter().find(|t| t.id() == a_id).unwrap();
    assert!(a.is_cancelled());
    assert!(lp.run_until_complete(a).unwrap_err().is_cancelled());
}

// A cancelled member is "completed" for FIRST_COMPLETED.
#[test]
fn cancelled_member_ends_a_first_completed_wait() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(after(Duration::from_secs(10), ()));
    let b = lp.spawn(after(Duration::from_secs(20), ()));
    let (a_id, b_id) = (a.id(), b.id());
    lp.run_until_complete(yield_now()); // both started and sleeping
    a.cancel();
    let (done, pending) = lp.run_until_complete(wait([a, b], None, ReturnWhen::FirstCompleted));
    assert_eq!(ids(&done), [a_id]);
    assert_eq!(ids(&pending), [b_id]);
    assert!(done[0].is_cancelled());
    assert_eq!(lp.time(), t0);
}

// Rule 10: a wait that returns early removes its timeout timer.
#[test]
fn wait_cancels_its_timer_when_it_returns_before_the_timeout() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(after(ms(100), ()));
    let (done, _) = lp.run_until_complete(wait([a], Some(Duration::from_secs(100)), ReturnWhen::FirstCompleted));
    assert_eq!(done.len(), 1);
    assert_eq!(live_timers(&lp), 0, "the 100 s timeout timer is cancelled");
    lp.run_until_complete(yield_now());
    assert_eq!(lp.stats().timers, 0, "and purged from the heap's head");
    assert_eq!(lp.time() - t0, ms(100));
}

// Rule 10: the timer is removed when the waiting task is cancelled too.
#[test]
fn wait_cancels_its_timer_when_its_task_is_cancelled() {
    let mut lp = new_loop();
    let w = lp.spawn(async {
        let a = spawn(after(Duration::from_secs(50), ()));
        wait([a], Some(Duration::from_secs(100)), ReturnWhen::AllCompleted).await
    });
    lp.run_until_complete(yield_now());
    lp.run_until_complete(yield_now());
    assert_eq!(live_timers(&lp), 2, "the member's sleep and the wait's timeout");
    w.cancel();
    lp.run_until_complete(yield_now());
    assert!(w.is_cancelled());
    assert_eq!(live_timers(&lp), 1, "only the member's sleep is left: it keeps running");
}

// T36 test_yield_wait_does_not_shield_cancel: cancelling the task inside `wait` cancels it
// (proof += 100 never runs) while the member keeps running and finishes later (proof == 1).
#[test]
fn t36_cancelling_the_waiting_task_leaves_the_members_running() {
    let mut lp = new_loop();
    let proof = Rc::new(Cell::new(0));
    let p = proof.clone();
    let mut outer = lp.spawn(async move {
        let p2 = p.clone();
        let inner = spawn(async move {
            sleep(ms(100)).await;
            p2.set(p2.get() + 1);
        });
        let _ = wait([inner], None, ReturnWhen::AllCompleted).await;
        p.set(p.get() + 100);
    });
    lp.run_until_complete(yield_now());
    assert!(outer.cancel());
    assert!(lp.run_until_complete(&mut outer).unwrap_err().is_cancelled());
    assert!(outer.is_cancelled());
    assert_eq!(proof.get(), 0);
    lp.run_until_complete(sleep(ms(200)));
    assert_eq!(proof.get(), 1);
}

// Rule 10: dropping a pending `wait` (here by a timeout around it) detaches its tasks: they run on.
#[test]
fn dropping_a_wait_leaves_its_tasks_running() {
    let mut lp = new_loop();
    let finished = Rc::new(RefCell::new(Vec::new()));
    let f = finished.clone();
    lp.run_until_complete(async move {
        let tasks: Vec<_> = (1..=2u64)
            .map(|i| {
                let f = f.clone();
                spawn(async move {
                    sleep(Duration::from_secs(i)).await;
                    f.borrow_mut().push(i);
                })
            })
            .collect();
        let r = aioloop::timeout(ms(500), wait(tasks, None, ReturnWhen::AllCompleted)).await;
        assert!(r.is_err());
    });
    assert!(finished.borrow().is_empty());
    lp.run_until_complete(sleep(Duration::from_secs(3)));
    assert_eq!(*finished.borrow(), [1, 2]);
}

// Spec §3.2 [exp7]: `wait(fs, timeout=0)` takes 2 iterations (the 0-delay timer fires in the next
// iteration, then the task wakes), so a member that finishes in between is done. CPython 3.12.1:
// a task that does `sleep(0)` once then returns, `wait([a], timeout=0)` → done = {a}, 4 iterations.
#[test]
fn zero_timeout_expires_two_iterations_later() {
    let mut lp = new_loop();
    let (split, iters) = run_counted(&mut lp, async {
        let a = spawn(async {
            yield_now().await;
        });
        let (done, pending) = wait([a], Some(Duration::ZERO), ReturnWhen::AllCompleted).await;
        (done.len(), pending.len())
    });
    assert_eq!(split, (1, 0));
    assert_eq!(iters, 4);
}

// A zero timeout never waits for time to pass and cancels nothing.
#[test]
fn zero_timeout_returns_pending_tasks_without_cancelling_them() {
    let mut lp = new_loop();
    let t0 = lp.time();
    let a = lp.spawn(after(Duration::from_secs(1), "a"));
    let (done, pending) = lp.run_until_complete(wait([a], Some(Duration::ZERO), ReturnWhen::AllCompleted));
    assert!(done.is_empty());
    assert_eq!(pending.len(), 1);
    assert_eq!(lp.time(), t0);
    assert_eq!(lp.run_until_complete(pending.into_iter().next().unwrap()).unwrap(), "a");
}

/// Spec §4.1: the "three phases" program (sleeps `5*i` s, wait timeout 6 s) with the PyMOTW v2
/// cleanup line. Returns its output lines, the virtual time it took and its iterations.
fn phases_program() -> (Vec<String>, Duration, u64) {
    struct Canceled(Rc<RefCell<Vec<String>>>, u64, bool);
    impl Drop for Canceled {
        fn drop(&mut self) {
            if !self.2 {
                self.0.borrow_mut().push(format!("phase {} canceled", self.1));
            }
        }
    }
    let out = Rc::new(RefCell::new(Vec::<String>::new()));
    let mut lp = new_loop();
    let t0 = lp.time();
    let o = out.clone();
    let ((), iters) = run_counted(&mut lp, async move {
        let say = |s: String| o.borrow_mut().push(s);
        say("starting main".into());
        let phases: Vec<Task<String>> = (0..3u64)
            .map(|i| {
                let o = o.clone();
                spawn(async move {
                    o.borrow_mut().push(format!("in phase {i}"));
                    let mut guard = Canceled(o.clone(), i, false);
                    sleep(Duration::from_secs(5 * i)).await;
                    guard.2 = true;
                    o.borrow_mut().push(format!("done with phase {i}"));
                    format!("phase {i} result")
                })
            })
            .collect();
        say("waiting for phases to complete".into());
        let (completed, pending) = wait(phases, Some(Duration::from_secs(6)), ReturnWhen::AllCompleted).await;
        say(format!("{} completed and {} pending", completed.len(), pending.len()));
        if !pending.is_empty() {
            say("canceling tasks".into());
            for t in &pending {
                t.cancel();
            }
        }
        say("exiting main".into());
    });
    let dt = lp.time() - t0;
    let lines = out.borrow().clone();
    (lines, dt, iters)
}

// Spec §4.1: CPython 3.11/3.12/3.13 print exactly these lines, at 6.0 s; "phase 2 canceled"
// comes after "exiting main".
#[test]
fn phases_program_prints_what_cpython_prints() {
    let (lines, dt, _) = phases_program();
    assert_eq!(
        lines,
        [
            "starting main",
            "waiting for phases to complete",
            "in phase 0",
            "in phase 1",
            "in phase 2",
            "done with phase 0",
            "done with phase 1",
            "2 completed and 1 pending",
            "canceling tasks",
            "exiting main",
            "phase 2 canceled",
        ]
    );
    assert_eq!(dt, Duration::from_secs(6));
}

// Spec §4.1's iteration trace: the `run_until_complete` part is 10 iterations (CPython 3.12.1
// counts 10 too). A member finishing while the return condition does not hold yet only runs
// `_on_completion` (counter - 1); the waiting task is not resumed.
#[test]
fn phases_program_takes_the_iterations_of_the_cpython_trace() {
    let (_, _, iters) = phases_program();
    assert_eq!(iters, 10);
}

/// A future that counts its polls.
struct CountPolls<F> {
    inner: std::pin::Pin<Box<F>>,
    polls: Rc<Cell<u32>>,
}

impl<F: std::future::Future> std::future::Future for CountPolls<F> {
    type Output = F::Output;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        self.polls.set(self.polls.get() + 1);
        self.inner.as_mut().poll(cx)
    }
}

// The same rule seen from the waiting task: under ALL_COMPLETED with members finishing at 1 s and
// 2 s, asyncio steps the waiting task twice (start, final resume). CPython 3.12.1: 10 iterations.
#[test]
fn all_completed_resumes_the_waiting_task_only_when_all_are_done() {
    let mut lp = new_loop();
    let polls = Rc::new(Cell::new(0));
    let fut = CountPolls {
        inner: Box::pin(async {
            let tasks = [1, 2].map(|i| spawn(after(Duration::from_secs(i), i)));
            wait(tasks, None, ReturnWhen::AllCompleted).await.0.len()
        }),
        polls: polls.clone(),
    };
    let (n, iters) = run_counted(&mut lp, fut);
    assert_eq!(n, 2);
    assert_eq!(polls.get(), 2);
    assert_eq!(iters, 10);
}
