//! A `Task` is a `Future<Output = Result<T, TaskError>>`, so the ecosystem's combinators take it
//! (issue 12 s1): futures' `join_all`, `FuturesUnordered` and `select!`. What dropping a handle
//! a combinator polled does (it detaches), `Task::detach`, and `AbortHandle`.
//!
//! Cancelling a task that awaits several tasks at once (a `join_all`) cancels only it: its future
//! is dropped, which drops the handles, which detaches their tasks. CPython 3.11, for contrast
//! (three children sleeping 1 s, the awaiting task cancelled after its first step):
//!
//! ```text
//! gather  ['c0 cancelled', 'c1 cancelled', 'c2 cancelled', 'outer cancelled']
//! direct  ['c0 cancelled', 'outer cancelled', 'c1 finished', 'c2 finished']   (await c0; await c1; ...)
//! wait    ['outer cancelled', 'c0 finished', 'c1 finished', 'c2 finished']
//! ```
//!
//! aioloop's `gather` and a direct `.await` do what asyncio's do (tests/gather.rs, tests/tasks.rs);
//! `join_all` of tasks does what asyncio's `wait` does.

mod util;

use std::cell::Cell;
use std::future::Future as _;
use std::rc::Rc;
use std::time::Duration;

use aioloop::{sleep, spawn, Task, TaskError, TaskState};
use futures::future::{join_all, FusedFuture};
use futures::stream::{FuturesUnordered, StreamExt};
use util::{ms, vloop, Log};

/// A task body that sleeps `d`, logs `name finished` and returns `v`; if its future is dropped
/// before that (cancelled), it logs `name dropped`.
async fn worker<T>(log: Log, name: &'static str, d: Duration, v: T) -> T {
    let guard = log.on_drop(format!("{name} dropped"));
    sleep(d).await;
    guard.defuse();
    log.push(format!("{name} finished"));
    v
}

#[test]
fn join_all_takes_tasks_and_gives_their_outcomes_in_order() {
    let mut lp = vloop();
    let log = Log::new();
    let t0 = lp.time();
    let l = log.clone();
    let outcomes = lp.run_until_complete(async move {
        let tasks: Vec<Task<u64>> =
            [30u64, 10, 20].into_iter().map(|d| spawn(worker(l.clone(), "w", ms(d), d))).collect();
        join_all(tasks).await
    });
    let values: Vec<u64> = outcomes.into_iter().map(Result::unwrap).collect();
    assert_eq!(values, [30, 10, 20]);
    assert_eq!(lp.time() - t0, ms(30), "the tasks ran concurrently");
}

#[test]
fn futures_unordered_gives_tasks_in_finishing_order() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let order = lp.run_until_complete(async move {
        let tasks = [30u64, 10, 20].map(|d| spawn(worker(l.clone(), "w", ms(d), d)));
        let mut pending = FuturesUnordered::from_iter(tasks);
        let mut order = vec![];
        while let Some(r) = pending.next().await {
            order.push(r.unwrap());
        }
        order
    });
    assert_eq!(order, [10, 20, 30]);
}

#[test]
fn select_takes_tasks_and_the_loser_stays_usable() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let (first, second) = lp.run_until_complete(async move {
        let mut slow = spawn(worker(l.clone(), "slow", ms(20), "slow"));
        let mut fast = spawn(worker(l.clone(), "fast", ms(10), "fast"));
        let first = futures::select! {
            r = slow => r.unwrap(),
            r = fast => r.unwrap(),
        };
        // `fast` is terminated (its outcome was taken); `slow`, borrowed by select!, is not.
        assert!(fast.is_terminated() && !slow.is_terminated());
        let second = (&mut slow).await.unwrap();
        assert!(slow.is_terminated());
        (first, second)
    });
    assert_eq!((first, second), ("fast", "slow"));
    assert_eq!(log.get(), ["fast finished", "slow finished"]);
}

/// A handle that a combinator polled and then dropped detaches its task: the task runs to
/// completion, is not cancelled, and its value is dropped by the loop.
#[test]
fn a_task_dropped_by_a_combinator_after_polling_it_detaches() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let winner = lp.run_until_complete(async move {
        let slow = spawn(worker(l.clone(), "loser", ms(50), "loser"));
        let fast = spawn(worker(l.clone(), "winner", ms(10), "winner"));
        // Both handles are moved into the race and polled; the loser's handle is dropped with it.
        futures_lite::future::or(slow, fast).await.unwrap()
    });
    assert_eq!(winner, "winner");
    assert_eq!(log.get(), ["winner finished"]);
    lp.run_until_complete(sleep(ms(100)));
    assert_eq!(log.get(), ["winner finished", "loser finished"], "the dropped handle's task ran on");
}

#[test]
fn detach_leaves_the_task_running() {
    let mut lp = vloop();
    let log = Log::new();
    let t = lp.spawn(worker(log.clone(), "detached", ms(10), ()));
    t.detach();
    lp.run_until_complete(sleep(ms(20)));
    assert_eq!(log.get(), ["detached finished"]);
    assert_eq!(lp.stats().tasks, 0, "a detached task's entry goes when it finishes");
}

#[test]
fn a_panic_in_a_joined_task_is_a_task_error() {
    let mut lp = vloop();
    let outcomes = lp.run_until_complete(async {
        let ok = spawn(async { 1 });
        let bad = spawn(async {
            sleep(ms(1)).await;
            panic!("bad task");
        });
        join_all([ok, bad]).await
    });
    assert_eq!(*outcomes[0].as_ref().unwrap(), 1);
    match &outcomes[1] {
        Err(e @ TaskError::Panicked(_)) => assert_eq!(e.to_string(), "task panicked: bad task"),
        other => panic!("expected a panic, got {other:?}"),
    }
}

/// Cancelling a task while it awaits `join_all` of three pending tasks cancels only it: the three
/// finish later, none is cancelled (asyncio's `wait`, not its `gather`). Awaiting one task
/// directly still passes the cancellation on (asyncio's propagation down the await chain).
#[test]
fn cancelling_a_task_awaiting_join_all_cancels_only_it() {
    let mut lp = vloop();
    let log = Log::new();
    let kids: Vec<Task<()>> =
        (0..3).map(|i| lp.spawn(worker(log.clone(), ["c0", "c1", "c2"][i], ms(1000), ()))).collect();
    let aborts: Vec<_> = kids.iter().map(Task::abort_handle).collect();
    let mut outer = lp.spawn(async move {
        join_all(kids).await;
    });
    lp.run_until_complete(aioloop::yield_now()); // the outer task polled all three
    assert!(outer.cancel());
    assert!(lp.run_until_complete(&mut outer).unwrap_err().is_cancelled());
    assert!(log.is_empty(), "no child was cancelled: {:?}", log.get());
    assert!(aborts.iter().all(|a| !a.is_done()));
    lp.run_until_complete(sleep(ms(2000)));
    assert_eq!(log.get(), ["c0 finished", "c1 finished", "c2 finished"]);

    // The contrast: a task awaiting one task directly passes the cancellation on to it.
    let log = Log::new();
    let c0 = lp.spawn(worker(log.clone(), "c0", ms(1000), ()));
    let mut outer = lp.spawn(async move {
        let _ = c0.await;
    });
    lp.run_until_complete(aioloop::yield_now());
    outer.cancel();
    assert!(lp.run_until_complete(&mut outer).unwrap_err().is_cancelled());
    assert_eq!(log.get(), ["c0 dropped"]);
}

/// A timeout around `join_all` of tasks drops it when the deadline passes: the tasks are detached,
/// not cancelled, and the timeout does not wait for them.
#[test]
fn a_timeout_around_join_all_detaches_the_tasks() {
    let mut lp = vloop();
    let log = Log::new();
    let t0 = lp.time();
    let l = log.clone();
    let r = lp.run_until_complete(async move {
        let tasks = [100u64, 200].map(|d| spawn(worker(l.clone(), "w", ms(d), d)));
        aioloop::timeout(ms(50), join_all(tasks)).await
    });
    assert!(r.is_err());
    assert_eq!(lp.time() - t0, ms(50));
    lp.run_until_complete(sleep(ms(200)));
    assert_eq!(log.get(), ["w finished", "w finished"]);
}

/// asyncio: one task awaits a worker, and another task (or a callback) cancels the worker. The
/// awaiting task gets the cancellation as a value and goes on; it was not cancelled itself.
#[test]
fn an_abort_handle_cancels_a_task_that_another_task_awaits() {
    let mut lp = vloop();
    let log = Log::new();
    let victim = lp.spawn(worker(log.clone(), "victim", ms(1000), 7));
    let abort = victim.abort_handle();
    let l = log.clone();
    let awaiter = lp.spawn(async move {
        let r = victim.await;
        l.push(format!("awaiter got {r:?}"));
        "awaiter went on"
    });
    let a2 = abort.clone();
    lp.spawn(async move {
        sleep(ms(10)).await;
        assert!(a2.cancel());
    })
    .detach();
    assert_eq!(lp.run_until_complete(awaiter).unwrap(), "awaiter went on");
    assert_eq!(log.get(), ["victim dropped", "awaiter got Err(Cancelled)"]);
    assert!(abort.is_done());
    assert!(!abort.cancel(), "finished: false");

    // From a callback, on a task nobody awaits.
    let t = lp.spawn(sleep(ms(1000)));
    let abort = t.abort_handle();
    lp.call_later(ms(5), move || {
        abort.cancel();
    });
    let r = lp.run_until_complete(t);
    assert!(r.unwrap_err().is_cancelled());
}

#[test]
fn abort_handle_is_done_follows_the_task_after_its_handle_is_gone() {
    let mut lp = vloop();
    let t = lp.spawn(sleep(ms(10)));
    let abort = t.abort_handle();
    assert!(!abort.is_done());
    lp.run_until_complete(aioloop::yield_now());
    assert!(!abort.is_done(), "asleep");
    drop(t); // detached: the entry goes when the task finishes
    lp.run_until_complete(sleep(ms(20)));
    assert!(abort.is_done());
    // The slot is reused by a new task: the old handle does not see (or cancel) it.
    let fresh = lp.spawn(sleep(ms(10)));
    assert!(abort.is_done());
    assert!(!abort.cancel());
    assert_eq!(fresh.state(), TaskState::Pending);
    assert!(lp.run_until_complete(fresh).is_ok());

    // The outcome taken by the handle: done, and cancel refused.
    let t = lp.spawn(async { 5 });
    let abort = t.abort_handle();
    assert_eq!(lp.run_until_complete(t).unwrap(), 5);
    assert!(abort.is_done());
    assert!(!abort.cancel());
}

#[test]
fn a_hundred_thousand_abort_handles_of_one_task() {
    let mut lp = vloop();
    let t = lp.spawn(sleep(ms(1000)));
    let first = t.abort_handle();
    let handles: Vec<_> = (0..100_000).map(|_| first.clone()).collect();
    assert!(handles.iter().all(|h| !h.is_done()));
    assert!(handles[99_999].cancel());
    assert!(lp.run_until_complete(t).unwrap_err().is_cancelled());
    assert!(handles.iter().all(|h| h.is_done() && !h.cancel()));
    drop(handles);
    assert!(first.is_done());
}

/// A `Task` is a plain `Future`: `Pin::new(&mut task).poll(cx)` works, and after its outcome was
/// taken it reports itself terminated, so `select!` never polls it again.
#[test]
fn a_task_is_a_fused_future() {
    let mut lp = vloop();
    let polled = Rc::new(Cell::new(0u32));
    let p = polled.clone();
    let mut t = lp.spawn(async move {
        p.set(p.get() + 1);
        3
    });
    assert!(!t.is_terminated());
    let v = lp.run_until_complete(std::future::poll_fn(|cx| std::pin::Pin::new(&mut t).poll(cx)));
    assert_eq!(v.unwrap(), 3);
    assert!(t.is_terminated());
    assert_eq!(polled.get(), 1);
}
