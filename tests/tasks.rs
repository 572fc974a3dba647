//! Tasks and cancellation: CPython's `test_tasks.py` (rows T1..T46 of
//! /work/shared/asyncio-semantics.md §5.2) and the task rules of §2 and §6.2 (rules 5-9, 17, 18).
//!
//! The Rust mapping: cancellation drops the task's future the next time the loop would run it,
//! so `finally` blocks become `Drop` guards, and awaiting a cancelled task gives
//! `Err(TaskError::Cancelled)` as a value.
//!
//! Rows not ported here: T4 (no cancel message), T9/T10/T33 (a dropped future cannot catch its
//! cancellation), T46 (a task cannot name its own handle while awaiting it); T15-T28 (`wait`,
//! `as_completed`) and T37-T40, T43, T44 (`shield`, `gather`) live with the combinators' tests.

mod util;

use std::cell::{Cell, RefCell};
use std::future::{pending, poll_fn, Future};
use std::rc::Rc;
use std::time::Duration;

use aioloop::{EventLoop, Task, TaskError, TaskState};
use util::{catch_panic, panic_text, run_once, vloop, Defer, DropCounter, Log};

const SEC: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A task handle several futures can reach: one awaits it with [`join`](Shared::join) while
/// others cancel it or read its state (the `RefCell` is borrowed only during a poll).
struct Shared<T>(Rc<RefCell<Option<Task<T>>>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T: 'static> Shared<T> {
    fn new(task: Task<T>) -> Shared<T> {
        Shared(Rc::new(RefCell::new(Some(task))))
    }

    /// An empty slot, for a task that needs its own handle.
    fn empty() -> Shared<T> {
        Shared(Rc::default())
    }

    fn set(&self, task: Task<T>) {
        *self.0.borrow_mut() = Some(task);
    }

    fn with<R>(&self, f: impl FnOnce(&Task<T>) -> R) -> R {
        f(self.0.borrow().as_ref().expect("the task was set"))
    }

    fn cancel(&self) -> bool {
        self.with(Task::cancel)
    }

    fn state(&self) -> TaskState {
        self.with(Task::state)
    }

    /// Awaits the task (as `(&mut task).await`, so cancellation propagates to it).
    fn join(&self) -> impl Future<Output = Result<T, TaskError>> + 'static {
        let slot = self.0.clone();
        poll_fn(move |cx| {
            let mut slot = slot.borrow_mut();
            slot.as_mut().expect("the task was set").poll_join(cx)
        })
    }
}

/// Panics when dropped.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

fn is_cancelled<T>(r: &Result<T, TaskError>) -> bool {
    matches!(r, Err(TaskError::Cancelled))
}

// ---------------------------------------------------------------------------------------------
// Basics, lazy start, detach
// ---------------------------------------------------------------------------------------------

/// T1 (test_task_basics): an outer task awaits an inner coroutine (42) and an inner task (1000).
#[test]
fn t1_outer_awaits_inner_coroutine_and_inner_task() {
    async fn inner1() -> i32 {
        42
    }
    async fn inner2() -> i32 {
        aioloop::yield_now().await;
        1000
    }
    let mut lp = vloop();
    let outer = lp.spawn(async { inner1().await + aioloop::spawn(inner2()).await.unwrap() });
    assert_eq!(lp.run_until_complete(outer).unwrap(), 1042);
}

/// Rule 5 / §4.2 (the workers program): `spawn` only queues the first step, so `before await`
/// comes before both workers start; the workers sleep concurrently (2 s in all, not 3 s), and
/// the run takes the 9 iterations of CPython's trace (`trace_workers.txt`).
#[test]
fn lazy_start_workers_program() {
    let mut lp = vloop();
    let log = Log::new();
    let t0 = lp.time();
    let at = move |what: &str| format!("{what} {}", (aioloop::now() - t0).as_secs());
    let worker = |name: &'static str, secs: u64| {
        let log = log.clone();
        async move {
            log.push(at(&format!("{name} start")));
            aioloop::sleep(SEC * secs as u32).await;
            log.push(at(&format!("{name} done")));
        }
    };
    let (w1, w2) = (worker("worker_1", 1), worker("worker_2", 2));
    let l = log.clone();
    let it = lp.stats().iterations;
    lp.run_until_complete(async move {
        let task1 = aioloop::spawn(w1);
        let task2 = aioloop::spawn(w2);
        l.push(at("before await"));
        task1.await.unwrap();
        l.push(at("awaited worker_1"));
        task2.await.unwrap();
        l.push(at("awaited worker_2"));
    });
    assert_eq!(
        log.get(),
        [
            "before await 0",
            "worker_1 start 0",
            "worker_2 start 0",
            "worker_1 done 1",
            "awaited worker_1 1",
            "worker_2 done 2",
            "awaited worker_2 2"
        ]
    );
    assert_eq!(lp.time() - t0, SEC * 2);
    assert_eq!(lp.stats().iterations - it, 9);
}

/// Dropping a handle detaches the task: it keeps running. A finished task's outcome is kept
/// while a handle can still read it, and freed with the handle.
#[test]
fn dropping_the_handle_detaches_the_task() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    drop(lp.spawn(async move {
        aioloop::sleep(SEC).await;
        l.push("detached task finished");
    }));
    let kept = lp.spawn(async { 5 });
    lp.run_until_complete(aioloop::sleep(SEC * 2));
    assert_eq!(log.get(), ["detached task finished"]);
    assert_eq!(lp.stats().tasks, 1, "only the finished task with a live handle is left");
    assert_eq!(kept.state(), TaskState::Done);
    drop(kept);
    assert_eq!(lp.stats().tasks, 0);
}

/// §2.6: a task is named `Task-<id>` until renamed.
#[test]
fn task_names() {
    let lp = vloop();
    let a = lp.spawn(async {});
    let b = lp.spawn(async {});
    assert_ne!(a.id(), b.id());
    assert_eq!(a.name(), format!("Task-{}", a.id()));
    b.set_name("fetcher");
    assert_eq!(b.name(), "fetcher");
}

// ---------------------------------------------------------------------------------------------
// Latency: what costs an iteration (rule 6)
// ---------------------------------------------------------------------------------------------

/// Rule 6: a task that completes in iteration N resumes its awaiter in iteration N + 1.
#[test]
fn a_wakeup_costs_one_iteration() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let b = lp.spawn(async move {
        aioloop::yield_now().await;
        l.push("b done");
        5
    });
    let l = log.clone();
    lp.spawn(async move {
        let v = b.await.unwrap();
        l.push(format!("a resumed with {v}"));
    });
    run_once(&mut lp); // b yields, a waits for b
    assert!(log.is_empty());
    run_once(&mut lp); // b finishes
    assert_eq!(log.get(), ["b done"]);
    run_once(&mut lp); // a resumes
    assert_eq!(log.get(), ["b done", "a resumed with 5"]);
}

/// Rule 6, X1: awaiting a task that already finished does not suspend at all.
#[test]
fn awaiting_a_finished_task_costs_no_iteration() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let b = lp.spawn(async move {
        l.push("b done");
        5
    });
    let l = log.clone();
    lp.spawn(async move {
        aioloop::yield_now().await;
        l.push("a awaits b");
        let v = b.await.unwrap();
        l.push(format!("a got {v}"));
    });
    run_once(&mut lp);
    assert_eq!(log.get(), ["b done"]);
    run_once(&mut lp);
    assert_eq!(log.get(), ["b done", "a awaits b", "a got 5"]);
}

/// T45 (test_sleep_zero): work queued before `sleep(0)` has run when it returns (the port queues
/// a task where CPython does `call_soon(inc_result, 1)`).
#[test]
fn t45_yield_now_runs_after_what_was_already_ready() {
    let mut lp = vloop();
    let ran = lp.run_until_complete(async {
        let result = Rc::new(Cell::new(0));
        let r = result.clone();
        drop(aioloop::spawn(async move { r.set(r.get() + 1) }));
        assert_eq!(result.get(), 0);
        aioloop::yield_now().await;
        result.get()
    });
    assert_eq!(ran, 1);
}

/// §3.1: `sleep(0)` (and a deadline in the past) is a bare yield: one iteration, no timer.
#[test]
fn sleep_zero_is_one_iteration_without_a_timer() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    lp.spawn(async move {
        aioloop::sleep(Duration::ZERO).await;
        l.push("after sleep(0)");
        aioloop::sleep_until(aioloop::now() - Duration::from_nanos(1)).await;
        l.push("after sleep_until(past)");
    });
    run_once(&mut lp);
    assert!(log.is_empty());
    assert_eq!(lp.stats().timers, 0);
    run_once(&mut lp);
    assert_eq!(log.get(), ["after sleep(0)"]);
    run_once(&mut lp);
    assert_eq!(log.get(), ["after sleep(0)", "after sleep_until(past)"]);
    assert_eq!(lp.stats().timers, 0);
}

/// T29 (test_sleep): `sleep(dt/2)` twice then return 'yeah', at virtual time 0.1 exactly.
#[test]
fn t29_sleeps_add_up_on_virtual_time() {
    let mut lp = vloop();
    let t0 = lp.time();
    let v = lp.run_until_complete(async {
        aioloop::sleep(ms(50)).await;
        aioloop::sleep(ms(50)).await;
        "yeah"
    });
    assert_eq!(v, "yeah");
    assert_eq!(lp.time() - t0, ms(100));
}

// ---------------------------------------------------------------------------------------------
// cancel(): a request, delivered at the next step (rule 7)
// ---------------------------------------------------------------------------------------------

/// T2 (test_cancelling): `cancel()` returns true, also when repeated; the task is not finished
/// until the loop runs it; then it is cancelled and `cancel()` returns false.
#[test]
fn t2_cancel_is_a_request() {
    let mut lp = vloop();
    let mut t = lp.spawn(aioloop::sleep(SEC * 10));
    run_once(&mut lp);
    let t0 = lp.time();
    assert!(t.cancel());
    assert!(t.cancel());
    assert_eq!(t.state(), TaskState::Pending);
    assert!(!t.is_done() && !t.is_cancelled());
    assert!(is_cancelled(&lp.run_until_complete(&mut t)));
    assert!(t.is_done() && t.is_cancelled());
    assert!(!t.cancel());
    assert_eq!(lp.time(), t0, "cancelling does not wait for the sleep");
}

/// T3 (test_cancel): `call_soon(t.cancel)` on a task sleeping 10 s → cancelled at once;
/// `cancel()` afterwards returns false.
#[test]
fn t3_cancel_from_a_callback() {
    let mut lp = vloop();
    let t = Rc::new(lp.spawn(aioloop::sleep(SEC * 10)));
    let t2 = t.clone();
    lp.call_soon(move || assert!(t2.cancel()));
    let t0 = lp.time();
    lp.run_until_complete(async {
        while !t.is_done() {
            aioloop::yield_now().await;
        }
    });
    assert!(t.is_done() && t.is_cancelled());
    assert!(!t.cancel());
    assert_eq!(lp.time(), t0);
    let t = Rc::try_unwrap(t).expect("the callback released its clone");
    assert!(is_cancelled(&lp.run_until_complete(t)));
}

/// T5 (test_cancel_with_message_before_starting_task), rule 5: a task cancelled before its first
/// step never runs its body; its future is still dropped.
#[test]
fn t5_task_cancelled_before_its_first_step_never_runs() {
    let mut lp = vloop();
    let log = Log::new();
    let (g, l) = (log.on_drop("future dropped"), log.clone());
    let mut t = lp.spawn(async move {
        let _g = g;
        l.push("body ran");
    });
    assert!(t.cancel());
    assert!(is_cancelled(&lp.run_until_complete(&mut t)));
    assert_eq!(log.get(), ["future dropped"]);
    assert!(t.is_cancelled());

    // Same when the cancel comes from another task in the iteration that spawned it.
    let l = log.clone();
    let r = lp.run_until_complete(async move {
        let t = aioloop::spawn(async move { l.push("second body ran") });
        t.cancel();
        t.await
    });
    assert!(is_cancelled(&r));
    assert_eq!(log.get(), ["future dropped"]);
}

/// T6 (test_cancel_yield): a task that yields twice, cancelled after one iteration, is cancelled
/// at its first yield.
#[test]
fn t6_cancel_between_yields() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let mut t = lp.spawn(async move {
        l.push("start");
        aioloop::yield_now().await;
        l.push("after first yield");
        aioloop::yield_now().await;
        l.push("after second yield");
    });
    run_once(&mut lp);
    assert!(t.cancel());
    assert!(is_cancelled(&lp.run_until_complete(&mut t)));
    assert_eq!(log.get(), ["start"]);
    assert!(t.is_cancelled());
    assert!(!t.cancel());
}

/// T11 (test_cancel_current_task): a task cancels itself and then sleeps 100 s: the sleep is
/// interrupted at once, nothing after it runs, and `cancel()` then returns false.
#[test]
fn t11_self_cancel_then_await_is_cancelled_at_once() {
    let mut lp = vloop();
    let log = Log::new();
    let me: Shared<()> = Shared::empty();
    let (m, l) = (me.clone(), log.clone());
    me.set(lp.spawn(async move {
        assert!(m.cancel());
        assert_eq!(m.state(), TaskState::Running, "still running: cancel() is a request");
        l.push("cancelled myself");
        aioloop::sleep(SEC * 100).await;
        l.push("slept");
    }));
    let t0 = lp.time();
    assert!(is_cancelled(&lp.run_until_complete(me.join())));
    assert_eq!(log.get(), ["cancelled myself"]);
    assert_eq!(me.state(), TaskState::Cancelled);
    assert!(!me.cancel());
    assert_eq!(lp.time(), t0);
    assert_eq!(lp.stats().timers, 0, "the dropped sleep's timer is gone");
}

/// T12 (test_cancel_at_end), rule 8, C4: a task that cancels itself and then returns 12 in the
/// same step ends cancelled; the value is discarded (dropped).
#[test]
fn t12_self_cancel_then_return_discards_the_value() {
    let mut lp = vloop();
    let log = Log::new();
    let me: Shared<(u32, util::LogOnDrop)> = Shared::empty();
    let (m, l) = (me.clone(), log.clone());
    me.set(lp.spawn(async move {
        m.cancel();
        (12, l.on_drop("value dropped"))
    }));
    assert!(is_cancelled(&lp.run_until_complete(me.join())));
    assert_eq!(me.state(), TaskState::Cancelled);
    assert_eq!(log.get(), ["value dropped"]);
}

/// T13 (test_cancel_awaited_task, bpo-34872): a task cancels itself, then awaits a nested task
/// blocked on a future that never completes: the nested task and its future are cancelled
/// (dropped) first, then the task.
#[test]
fn t13_self_cancel_then_await_a_nested_task_cancels_both() {
    let mut lp = vloop();
    let log = Log::new();
    let me: Shared<()> = Shared::empty();
    let nested: Shared<()> = Shared::empty();
    let (m, n, l) = (me.clone(), nested.clone(), log.clone());
    me.set(lp.spawn(async move {
        let _g = l.on_drop("task dropped");
        let l2 = l.clone();
        n.set(aioloop::spawn(async move {
            let _g = l2.on_drop("nested future dropped");
            pending::<()>().await
        }));
        aioloop::yield_now().await; // let the nested task start
        m.cancel();
        let _ = n.join().await;
        l.push("unreachable");
    }));
    assert!(is_cancelled(&lp.run_until_complete(me.join())));
    assert_eq!(me.state(), TaskState::Cancelled);
    assert_eq!(nested.state(), TaskState::Cancelled);
    assert_eq!(log.get(), ["nested future dropped", "task dropped"]);
}

/// T14 (test_stop_while_run_in_complete): `stop()` from inside the task makes
/// `run_until_complete(t)` panic; the task is not done, `x == 2`, and it can be resumed later.
/// CPython's TestLoop reports time 0.3 because it advances to the next timer eagerly; a loop
/// that only moves time when it would block is at 0.2.
#[test]
fn t14_stop_inside_the_task_then_resume() {
    let (mut lp, mut t, x) = t14_setup();
    let t0 = lp.time();
    let r = catch_panic(|| lp.run_until_complete(&mut t));
    assert_eq!(r.unwrap_err(), "Event loop stopped before Future completed.");
    assert!(!t.is_done());
    assert_eq!(x.get(), 2);
    assert_eq!(lp.time() - t0, ms(200));
    lp.run_until_complete(&mut t).unwrap();
    assert_eq!(x.get(), 10);
    assert_eq!(lp.time() - t0, ms(1000));
}

/// T14: the task left pending by the aborted run is cancelled by `cancel()` and a new run.
#[test]
fn t14_stop_inside_the_task_then_cancel() {
    let (mut lp, mut t, x) = t14_setup();
    let r = catch_panic(|| lp.run_until_complete(&mut t));
    assert_eq!(r.unwrap_err(), "Event loop stopped before Future completed.");
    assert!(t.cancel());
    assert!(is_cancelled(&lp.run_until_complete(&mut t)));
    assert_eq!(x.get(), 2);
}

fn t14_setup() -> (EventLoop, Task<()>, Rc<Cell<u32>>) {
    let lp = vloop();
    let x = Rc::new(Cell::new(0));
    let (h, x2) = (lp.handle(), x.clone());
    let t = lp.spawn(async move {
        while x2.get() < 10 {
            aioloop::sleep(ms(100)).await;
            x2.set(x2.get() + 1);
            if x2.get() == 2 {
                h.stop();
            }
        }
    });
    (lp, t, x)
}

/// T30 (test_sleep_cancel): cancelling a task inside `sleep(10)` cancels the sleep's timer: it
/// becomes a tombstone, then leaves the heap, and the clock never moves to it.
#[test]
fn t30_cancelling_a_sleeping_task_cancels_its_timer() {
    let mut lp = vloop();
    let t = lp.spawn(aioloop::sleep(SEC * 10));
    run_once(&mut lp);
    assert_eq!((lp.stats().timers, lp.stats().cancelled_timers), (1, 0));
    let t0 = lp.time();
    t.cancel();
    run_once(&mut lp); // the task's future (and its sleep) is dropped
    assert!(t.is_cancelled());
    assert_eq!((lp.stats().timers, lp.stats().cancelled_timers), (1, 1));
    run_once(&mut lp); // the tombstone at the head is purged
    assert_eq!((lp.stats().timers, lp.stats().cancelled_timers), (0, 0));
    lp.run_until_complete(aioloop::yield_now());
    assert_eq!(lp.time(), t0);
}

/// T31 (test_task_cancel_sleeping_task), rule 17, C7: `call_later(0.1, sleeper.cancel)`; the
/// awaiter gets `Err(Cancelled)` as a value at time 0.1, and is not cancelled itself.
#[test]
fn t31_awaiter_sees_the_cancellation_as_a_value() {
    let mut lp = vloop();
    let sleeper = Shared::new(lp.spawn(aioloop::sleep(SEC * 5000)));
    let s = sleeper.clone();
    lp.call_later(ms(100), move || assert!(s.cancel()));
    let t0 = lp.time();
    let waiter = lp.spawn({
        let sleeper = sleeper.clone();
        async move {
            match sleeper.join().await {
                Err(TaskError::Cancelled) => "cancelled",
                _ => "not cancelled",
            }
        }
    });
    let mut waiter = waiter;
    assert_eq!(lp.run_until_complete(&mut waiter).unwrap(), "cancelled");
    assert_eq!(lp.time() - t0, ms(100));
    assert_eq!(waiter.state(), TaskState::Done);
    assert_eq!(sleeper.state(), TaskState::Cancelled);
}

/// Rule 17: a task that returns its child's `Err(Cancelled)` finished normally (with that
/// value); it was not cancelled.
#[test]
#[allow(clippy::redundant_async_block)] // a task that awaits its child, as the asyncio test's coroutine does
fn t7_returning_a_childs_cancellation_is_not_being_cancelled() {
    let mut lp = vloop();
    let child = lp.spawn(pending::<()>());
    child.cancel();
    let mut parent = lp.spawn(async move { child.await });
    let r = lp.run_until_complete(&mut parent);
    assert!(matches!(r, Ok(Err(TaskError::Cancelled))));
    assert_eq!(parent.state(), TaskState::Done);
}

/// T8 (test_cancel_both_task_and_inner_future): the awaited task and the awaiting task are both
/// cancelled in the same iteration → both end cancelled.
#[test]
fn t8_cancel_task_and_awaited_task_in_the_same_iteration() {
    let mut lp = vloop();
    let inner = Shared::new(lp.spawn(aioloop::sleep(SEC * 10)));
    let i = inner.clone();
    let mut outer = lp.spawn(async move { i.join().await });
    run_once(&mut lp);
    assert!(inner.cancel());
    assert!(outer.cancel());
    assert!(is_cancelled(&lp.run_until_complete(&mut outer)));
    assert!(outer.is_cancelled());
    assert_eq!(inner.state(), TaskState::Cancelled);
}

/// T32 (test_task_cancel_waiter_future): cancelling a task that waits on a future drops that
/// future (asyncio cancels it) and the task ends cancelled.
#[test]
fn t32_cancel_drops_the_future_the_task_awaits() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let mut t = lp.spawn(async move {
        let fut = async {
            let _g = l.on_drop("awaited future dropped");
            pending::<()>().await
        };
        fut.await
    });
    run_once(&mut lp);
    assert!(log.is_empty());
    t.cancel();
    assert!(is_cancelled(&lp.run_until_complete(&mut t)));
    assert_eq!(log.get(), ["awaited future dropped"]);
}

// ---------------------------------------------------------------------------------------------
// Cancellation vs completion, and propagation (rules 8, 9)
// ---------------------------------------------------------------------------------------------

/// Rule 8, C3: the awaited task completes, and the awaiter is cancelled before it resumed (same
/// iteration): the awaiter ends cancelled and never sees the result; the awaited task keeps it.
/// CPython 3.11: `a.cancelled() == True`, `b.result() == 5`.
#[test]
fn c3_cancellation_beats_completion() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let b = Shared::new(lp.spawn(async move {
        aioloop::yield_now().await;
        l.push("b returns");
        5
    }));
    let (b2, l) = (b.clone(), log.clone());
    let a = Shared::new(lp.spawn(async move {
        let r = b2.join().await;
        l.push("a resumed");
        r
    }));
    let (a2, l) = (a.clone(), log.clone());
    lp.spawn(async move {
        aioloop::yield_now().await;
        l.push("c cancels a");
        assert!(a2.cancel());
    });
    assert!(is_cancelled(&lp.run_until_complete(a.join())));
    assert_eq!(log.get(), ["b returns", "c cancels a"]);
    assert_eq!(a.state(), TaskState::Cancelled);
    assert_eq!(b.state(), TaskState::Done);
    assert_eq!(lp.run_until_complete(b.join()).unwrap(), 5);
}

/// Rule 9, C1 (test_cancel_awaited_task): cancelling a task cancels the task it awaits,
/// recursively; the innermost finishes first, then each awaiter in turn.
#[test]
fn c1_cancel_propagates_down_the_await_chain() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let inner = lp.spawn(async move {
        let _g = l.on_drop("inner dropped");
        pending::<()>().await
    });
    let l = log.clone();
    let mut middle = lp.spawn(async move {
        let _g = l.on_drop("middle dropped");
        inner.await
    });
    let l = log.clone();
    let mut outer = lp.spawn(async move {
        let _g = l.on_drop("outer dropped");
        (&mut middle).await.ok();
        l.push("outer resumed");
    });
    run_once(&mut lp);
    assert!(outer.cancel());
    assert!(is_cancelled(&lp.run_until_complete(&mut outer)));
    assert_eq!(log.get(), ["inner dropped", "middle dropped", "outer dropped"]);
}

/// Rule 9: cancellation reaches the awaited task also when the task awaits it inside a nested
/// future (CPython's `await` chain through coroutines).
#[test]
fn cancel_propagates_through_nested_futures() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let inner = Shared::new(lp.spawn(async move {
        let _g = l.on_drop("inner dropped");
        pending::<()>().await
    }));
    let i = inner.clone();
    let mut outer = lp.spawn(async move {
        async fn helper(i: Shared<()>) -> Result<(), TaskError> {
            aioloop::yield_now().await;
            i.join().await
        }
        helper(i).await
    });
    run_once(&mut lp);
    run_once(&mut lp);
    outer.cancel();
    assert!(is_cancelled(&lp.run_until_complete(&mut outer)));
    assert_eq!(inner.state(), TaskState::Cancelled);
    assert_eq!(log.get(), ["inner dropped"]);
}

/// Rule 9 does not reach tasks the cancelled task merely created: a detached task it spawned
/// keeps running.
#[test]
fn cancel_does_not_reach_tasks_that_are_not_awaited() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let mut t = lp.spawn(async move {
        let l2 = l.clone();
        drop(aioloop::spawn(async move {
            aioloop::sleep(SEC).await;
            l2.push("spawned task finished");
        }));
        pending::<()>().await
    });
    run_once(&mut lp);
    t.cancel();
    assert!(is_cancelled(&lp.run_until_complete(&mut t)));
    lp.run_until_complete(aioloop::sleep(SEC * 2));
    assert_eq!(log.get(), ["spawned task finished"]);
}

/// Rule 9 seen from the other side (CPython 3.11: `['b cancels a', 'a cancelled']`, both
/// cancelled): a task that cancels the task awaiting it is cancelled too, at its next suspension.
#[test]
fn a_task_that_cancels_its_awaiter_is_cancelled_too() {
    let mut lp = vloop();
    let log = Log::new();
    let a: Shared<u32> = Shared::empty();
    let (a2, l) = (a.clone(), log.clone());
    let b = Shared::new(lp.spawn(async move {
        aioloop::yield_now().await;
        l.push("b cancels a");
        assert!(a2.cancel());
        aioloop::yield_now().await;
        l.push("b continues");
        1
    }));
    let (b2, l) = (b.clone(), log.clone());
    a.set(lp.spawn(async move {
        let _g = l.on_drop("a cancelled");
        b2.join().await.unwrap()
    }));
    assert!(is_cancelled(&lp.run_until_complete(a.join())));
    assert_eq!(log.get(), ["b cancels a", "a cancelled"]);
    assert_eq!(b.state(), TaskState::Cancelled);
}

/// Checklist 14, rule 8: a task whose sleep expires in the same iteration as a callback that
/// cancels it ends cancelled, whichever of the two timers comes first (CPython 3.11: cancelled
/// in both orders; the sleeper never resumes).
#[test]
fn cancel_and_timer_expiry_in_the_same_iteration_cancel() {
    for cancel_first in [true, false] {
        let mut lp = vloop();
        let log = Log::new();
        let when = lp.time() + SEC;
        let l = log.clone();
        let t = Rc::new(lp.spawn(async move {
            aioloop::sleep_until(when).await;
            l.push("sleeper resumed");
        }));
        let t2 = t.clone();
        let cancel = move || assert!(t2.cancel());
        if cancel_first {
            lp.call_at(when, cancel);
            run_once(&mut lp); // the sleep's timer is created after the cancelling one
        } else {
            run_once(&mut lp);
            lp.call_at(when, cancel);
        }
        lp.run_until_complete(aioloop::sleep(SEC * 2));
        assert!(t.is_cancelled(), "cancel_first = {cancel_first}");
        assert!(log.is_empty(), "cancel_first = {cancel_first}");
    }
}

/// Checklist 10: the cleanup of a cancelled task may spawn a task and cancel another (CPython:
/// a `finally` block doing `create_task(...)` and `other.cancel()`); both take effect.
#[test]
fn cleanup_of_a_cancelled_task_may_spawn_and_cancel() {
    let mut lp = vloop();
    let log = Log::new();
    let target = Rc::new(lp.spawn(aioloop::sleep(SEC * 10)));
    let (tg, l) = (target.clone(), log.clone());
    let mut dying = lp.spawn(async move {
        let _g = Defer(move || {
            let l2 = l.clone();
            drop(aioloop::spawn(async move { l2.push("spawned by cleanup ran") }));
            assert!(tg.cancel());
            l.push("cleanup ran");
        });
        aioloop::sleep(SEC * 10).await;
    });
    run_once(&mut lp);
    dying.cancel();
    assert!(is_cancelled(&lp.run_until_complete(&mut dying)));
    lp.run_until_complete(aioloop::yield_now());
    assert_eq!(log.get(), ["cleanup ran", "spawned by cleanup ran"]);
    assert!(target.is_cancelled());
}

/// Checklist 10/11: closing the loop while destructors cancel and wake other pending tasks still
/// drops every task exactly once and terminates.
#[test]
fn close_with_destructors_that_cancel_and_wake_other_tasks() {
    let mut lp = vloop();
    let drops = DropCounter::new();
    let victims: Vec<Rc<Task<()>>> = (0..10)
        .map(|_| {
            let g = drops.guard();
            Rc::new(lp.spawn(async move {
                let _g = g;
                pending::<()>().await
            }))
        })
        .collect();
    for v in &victims {
        let (v, g) = (v.clone(), drops.guard());
        lp.spawn(async move {
            let _g = g;
            let _c = Defer(move || {
                v.cancel();
            });
            pending::<()>().await
        });
    }
    run_once(&mut lp);
    lp.close();
    assert_eq!(drops.count(), 20);
    assert!(victims.iter().all(|v| v.is_cancelled()));
}

// ---------------------------------------------------------------------------------------------
// Bugs found while porting (each fixed in src/; these tests keep them fixed)
// ---------------------------------------------------------------------------------------------

/// T46 (test_task_awaits_on_itself), PART: CPython raises "Task cannot await on itself". A task
/// awaiting its own handle must end with an error rather than wait forever.
#[test]
fn t46_a_task_awaiting_its_own_handle_fails() {
    let mut lp = vloop();
    let me: Shared<u32> = Shared::empty();
    let m = me.clone();
    me.set(lp.spawn(async move { m.join().await.unwrap_or(0) + 1 }));
    lp.run_until_complete(aioloop::sleep(SEC));
    assert!(me.with(Task::is_done), "the self-awaiting task is still pending");
    assert!(lp.run_until_complete(me.join()).unwrap_err().is_panic());
}

/// T46 / rule 9: cancelling a task that awaits its own handle, or one of two tasks that await
/// each other, must not overflow the stack (it aborts the process today: `cancel_task` follows
/// the `awaiting` links around the cycle forever). Runs in a child process, which would abort.
#[test]
#[cfg_attr(miri, ignore = "runs a child process")]
fn cancelling_a_cycle_of_awaiting_tasks_terminates() {
    stderr_of("self-await-cancel");
    stderr_of("mutual-await-cancel");
}

fn self_await_cancel_scenario() {
    let mut lp = vloop();
    let me: Shared<u32> = Shared::empty();
    let m = me.clone();
    me.set(lp.spawn(async move { m.join().await.unwrap_or(0) }));
    run_once(&mut lp);
    me.cancel();
    lp.run_until_complete(aioloop::sleep(SEC));
    assert!(me.with(Task::is_done));
}

fn mutual_await_cancel_scenario() {
    let mut lp = vloop();
    let (a, b): (Shared<u32>, Shared<u32>) = (Shared::empty(), Shared::empty());
    let (a2, b2) = (a.clone(), b.clone());
    a.set(lp.spawn(async move { b2.join().await.unwrap_or(0) }));
    b.set(lp.spawn(async move { a2.join().await.unwrap_or(0) }));
    run_once(&mut lp);
    assert!(a.cancel());
    lp.run_until_complete(aioloop::sleep(SEC));
    assert_eq!(a.state(), TaskState::Cancelled);
    assert_eq!(b.state(), TaskState::Cancelled);
}

/// Rule 9: cancellation goes to what the task awaits *now* (asyncio's `_fut_waiter`). A task that
/// polled another task's handle (here in a race it lost) and now sleeps must not cancel that
/// task, and its own cancellation must not wait for the sleep. An owned handle clears its link
/// when dropped (`detach`); a kept handle, raced through `&mut` (a reference, which has no
/// destructor), clears it at the task's next step, so that case yields before it sleeps.
#[test]
fn cancel_does_not_follow_a_stale_await_link() {
    for detach in [false, true] {
        let mut lp = vloop();
        let log = Log::new();
        let l = log.clone();
        let victim = lp.spawn(async move {
            aioloop::sleep(SEC * 10).await;
            l.push("victim finished");
        });
        let mut outer = lp.spawn(async move {
            let mut victim = victim;
            // The yield wins the race; from then on the victim is not awaited.
            let winner = futures_lite::future::or(
                async {
                    let _ = (&mut victim).await;
                    "victim"
                },
                async {
                    aioloop::yield_now().await;
                    "yield"
                },
            )
            .await;
            assert_eq!(winner, "yield");
            if detach {
                drop(victim);
                aioloop::sleep(SEC * 100).await;
            } else {
                aioloop::yield_now().await;
                aioloop::sleep(SEC * 100).await;
                drop(victim);
            }
        });
        let t0 = lp.time();
        lp.run_until_complete(aioloop::sleep(SEC));
        outer.cancel();
        assert!(is_cancelled(&lp.run_until_complete(&mut outer)));
        assert_eq!(lp.time() - t0, SEC, "detach = {detach}: the cancellation waited for the sleep");
        lp.run_until_complete(aioloop::sleep(SEC * 20));
        assert_eq!(log.get(), ["victim finished"], "detach = {detach}");
    }
}

/// "A panic in user code never kills the loop" (STYLE.md, checklist 13 "output panics on drop"):
/// the loop drops a task's value itself when the task is detached or its value is discarded by
/// a cancellation; a destructor panicking there must not unwind out of `run_until_complete`.
#[test]
fn a_panicking_output_destructor_does_not_kill_the_loop() {
    let mut lp = vloop();
    drop(lp.spawn(async { PanicOnDrop("detached output drop boom") }));
    let me: Shared<PanicOnDrop> = Shared::empty();
    let m = me.clone();
    me.set(lp.spawn(async move {
        m.cancel();
        PanicOnDrop("discarded output drop boom")
    }));
    let bystander = lp.spawn(async {
        aioloop::sleep(SEC).await;
        "bystander done"
    });
    let r = catch_panic(|| lp.run_until_complete(bystander));
    assert_eq!(r.expect("the panic escaped the loop").unwrap(), "bystander done");
    assert_eq!(me.state(), TaskState::Cancelled);
}

// ---------------------------------------------------------------------------------------------
// current_task (T34)
// ---------------------------------------------------------------------------------------------

/// T34 (test_current_task, test_current_task_with_interleaving_tasks): `current_task()` is the
/// task whose step runs; `None` outside a loop and in plain callbacks.
#[test]
fn t34_current_task_is_the_task_being_polled() {
    assert_eq!(aioloop::current_task(), None);
    let mut lp = vloop();
    let task = || async {
        let me = aioloop::current_task().expect("inside a task");
        for _ in 0..3 {
            aioloop::yield_now().await;
            assert_eq!(aioloop::current_task(), Some(me));
        }
        me
    };
    let (t1, t2) = (lp.spawn(task()), lp.spawn(task()));
    let (id1, id2) = (t1.id(), t2.id());
    let in_callback = Rc::new(Cell::new(Some(None)));
    let c = in_callback.clone();
    lp.call_soon(move || c.set(Some(aioloop::current_task())));
    let (main, r1, r2) = lp.run_until_complete(async {
        let main = aioloop::current_task();
        (main, t1.await.unwrap(), t2.await.unwrap())
    });
    assert_eq!((r1, r2), (id1, id2));
    assert!(main.is_some() && main != Some(id1) && main != Some(id2));
    assert_eq!(in_callback.get(), Some(None));
    assert_eq!(aioloop::current_task(), None);
}

/// T34: while a cancelled task's future is dropped, `current_task()` is that task (CPython runs
/// the `finally` block inside the task's step: `current_task() is t` there).
#[test]
fn t34_current_task_during_cancellation_is_the_cancelled_task() {
    let mut lp = vloop();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let mut t = lp.spawn(async move {
        let _g = Defer(move || s.set(Some(aioloop::current_task())));
        pending::<()>().await
    });
    run_once(&mut lp);
    t.cancel();
    let _ = lp.run_until_complete(&mut t);
    assert_eq!(seen.get(), Some(Some(t.id())));
}

// ---------------------------------------------------------------------------------------------
// Panics (rule 18; reliability checklist 12, 16)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct CustomPayload(u32);

/// A task's panic becomes `Err(Panicked(payload))` for its awaiter, whatever the payload type;
/// the other tasks and the loop carry on.
#[test]
fn panics_are_isolated_and_carry_their_payload() {
    let mut lp = vloop();
    let s = lp.spawn(async {
        aioloop::yield_now().await;
        panic!("str boom")
    });
    let string = lp.spawn(async { std::panic::panic_any(String::from("String boom")) });
    let custom = lp.spawn(async { std::panic::panic_any(CustomPayload(7)) });
    let fine = lp.spawn(async {
        aioloop::sleep(SEC).await;
        "fine"
    });
    let (a, b, c, d) = lp.run_until_complete(async { (s.await, string.await, custom.await, fine.await) });
    let a = a.unwrap_err();
    assert_eq!(a.to_string(), "task panicked: str boom");
    assert_eq!(*a.try_into_panic().unwrap().downcast::<&str>().unwrap(), "str boom");
    assert_eq!(*b.unwrap_err().try_into_panic().unwrap().downcast::<String>().unwrap(), "String boom");
    assert_eq!(*c.unwrap_err().try_into_panic().unwrap().downcast::<CustomPayload>().unwrap(), CustomPayload(7));
    assert_eq!(d.unwrap(), "fine");
}

/// A panicking task is finished (`Done`), not cancelled, and `cancel()` on it returns false.
#[test]
fn a_panicked_task_is_done_and_cannot_be_cancelled() {
    let mut lp = vloop();
    let mut t = lp.spawn(async { panic!("boom") });
    lp.run_until_complete(aioloop::yield_now());
    assert_eq!(t.state(), TaskState::Done);
    assert!(!t.is_cancelled());
    assert!(!t.cancel());
    assert!(lp.run_until_complete(&mut t).unwrap_err().is_panic());
}

/// Checklist 12: a destructor that panics while the task is being cancelled turns the outcome
/// into `Err(Panicked)` with that payload (CPython: an exception raised while handling the
/// cancellation finishes the task with it, not cancelled); the loop keeps running.
#[test]
fn a_panicking_destructor_during_cancellation_gives_panicked() {
    let mut lp = vloop();
    let mut t = lp.spawn(async {
        let _p = PanicOnDrop("drop boom");
        pending::<()>().await
    });
    let other = lp.spawn(async {
        aioloop::sleep(SEC).await;
        1
    });
    run_once(&mut lp);
    t.cancel();
    match lp.run_until_complete(&mut t) {
        Err(TaskError::Panicked(p)) => assert_eq!(panic_text(&*p), "drop boom"),
        other => panic!("expected a panic outcome, got {other:?}"),
    }
    assert!(t.is_done() && !t.is_cancelled());
    assert_eq!(lp.run_until_complete(other).unwrap(), 1);
}

/// T42 (test_tb_logger_not_called_after_cancel), rule 18: a failed task whose outcome nobody
/// reads is reported ("Task exception was never retrieved") when its handle is dropped, or at
/// once if detached; not if the outcome was read, nor after `cancel()` was called on it. Runs
/// each scenario in a child process to read its stderr.
#[test]
#[cfg_attr(miri, ignore = "runs a child process")]
fn t42_never_retrieved_report() {
    const REPORT: &str = "Task exception was never retrieved";
    let unread = stderr_of("unread");
    assert!(unread.contains(REPORT) && unread.contains("unread boom"), "stderr: {unread}");
    let detached = stderr_of("detached");
    assert!(detached.contains(REPORT) && detached.contains("detached boom"), "stderr: {detached}");
    let cancelled = stderr_of("cancelled-after-failure");
    assert!(!cancelled.contains(REPORT), "stderr: {cancelled}");
    let read = stderr_of("read");
    assert!(!read.contains(REPORT), "stderr: {read}");
}

const CHILD_ENV: &str = "AIOLOOP_TASKS_TEST_CHILD";

/// Runs `child_scenario` of this test binary in a child process; returns its stderr.
fn stderr_of(scenario: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child_scenario", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scenario)
        .output()
        .expect("run the test binary");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child scenario {scenario} failed: {stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"), "the child ran no test");
    stderr
}

/// Not a test of its own: the body of the child processes of [`t42_never_retrieved_report`] and
/// [`cancelling_a_cycle_of_awaiting_tasks_terminates`]; does nothing without its variable.
#[test]
fn child_scenario() {
    let Ok(scenario) = std::env::var(CHILD_ENV) else { return };
    match scenario.as_str() {
        "self-await-cancel" => return self_await_cancel_scenario(),
        "mutual-await-cancel" => return mutual_await_cancel_scenario(),
        _ => {}
    }
    let mut lp = vloop();
    if scenario == "detached" {
        drop(lp.spawn(async { panic!("detached boom") }));
        lp.run_until_complete(aioloop::yield_now());
        return;
    }
    let mut t = lp.spawn(async { panic!("unread boom") });
    lp.run_until_complete(aioloop::yield_now());
    assert!(t.is_done());
    match scenario.as_str() {
        "unread" => {}
        "cancelled-after-failure" => assert!(!t.cancel()),
        "read" => assert!(lp.run_until_complete(&mut t).is_err()),
        other => panic!("unknown scenario {other}"),
    }
    drop(t);
}

// ---------------------------------------------------------------------------------------------
// T41: pending tasks when the loop goes away
// ---------------------------------------------------------------------------------------------

/// T41 (test_log_destroyed_pending_task), PART: when the loop is closed, every pending task's
/// future (started or not, with or without a handle) is dropped exactly once, and the handles
/// report `Cancelled`.
#[test]
fn t41_closing_the_loop_drops_each_pending_task_once() {
    let mut lp = vloop();
    let drops = DropCounter::new();
    let mut handles = Vec::new();
    for i in 0..100 {
        let g = drops.guard();
        let t = lp.spawn(async move {
            let _g = g;
            aioloop::sleep(SEC * (i + 1)).await;
        });
        if i % 2 == 0 {
            handles.push(t);
        }
    }
    run_once(&mut lp); // all started
    for i in 0..10 {
        let g = drops.guard();
        lp.spawn(async move {
            let _g = g;
            aioloop::sleep(SEC * i).await;
        });
    }
    assert_eq!(drops.count(), 0);
    lp.close();
    assert_eq!(drops.count(), 110);
    assert!(handles.iter().all(Task::is_cancelled));
}
