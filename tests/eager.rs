//! `spawn_eager`: asyncio 3.12's eager tasks (`loop.set_task_factory(asyncio.eager_task_factory)`,
//! issue 12 s5), on virtual time.
//!
//! CPython 3.12's `Task.__init__` runs `__eager_start` when the loop is running: it swaps the new
//! task in as the current task (`_swap_current_task`), registers it as an eager task (so
//! `all_tasks()` lists it), runs its first step synchronously inside `create_task`, swaps the
//! previous current task back, and registers the task as a normal one only if it is not done.
//! The 3.12 docs: "If the coroutine returns or raises without blocking, the task will be
//! finished eagerly and will skip scheduling to the event loop." python3 here is 3.11, which has
//! no eager tasks: each test below names the rule of 3.12's `tasks.py` it checks.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use aioloop::{current_task, sleep, spawn, spawn_eager, yield_now, TaskState, WaitingOn};
use util::{catch_panic, ms, run_counted, vloop, Log};

/// The first step runs inside `spawn_eager`, before it returns; a lazily spawned task's first
/// step waits for the loop (asyncio: `create_task` only schedules it).
#[test]
fn the_first_step_runs_before_spawn_eager_returns() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    lp.run_until_complete(async move {
        let (l1, l2) = (l.clone(), l.clone());
        let eager = spawn_eager(async move {
            l1.push("eager: first step");
            yield_now().await;
            l1.push("eager: second step");
        });
        l.push("spawn_eager returned");
        let lazy = spawn(async move { l2.push("lazy: first step") });
        l.push("spawn returned");
        let _ = eager.await;
        let _ = lazy.await;
    });
    assert_eq!(
        log.get(),
        ["eager: first step", "spawn_eager returned", "spawn returned", "eager: second step", "lazy: first step"]
    );
}

/// A task that finishes in its first step is done when `spawn_eager` returns and never goes
/// through the ready queue: awaiting it costs no iteration. The same program with `spawn` takes
/// two more (the task's step, then the awaiter's wake-up).
#[test]
fn a_task_finished_in_its_first_step_never_enters_the_ready_queue() {
    let mut lp = vloop();
    let (v, eager_iters) = run_counted(&mut lp, async {
        let t = spawn_eager(async { 7 });
        assert!(t.is_done());
        assert_eq!(t.state(), TaskState::Done);
        t.await.unwrap()
    });
    assert_eq!(v, 7);
    let (v, lazy_iters) = run_counted(&mut lp, async {
        let t = spawn(async { 7 });
        assert!(!t.is_done());
        t.await.unwrap()
    });
    assert_eq!(v, 7);
    assert_eq!((eager_iters, lazy_iters), (2, 4));
    assert_eq!(lp.stats().tasks, 0);
}

/// During the eager step `current_task()` is the new task, and afterwards the spawner again
/// (`_swap_current_task` both ways); `all_tasks()` lists the eager task while its step runs
/// (`_register_eager_task`), with its default name, running; it is not listed once it finished
/// in that step.
#[test]
fn current_task_and_all_tasks_during_and_after_the_eager_step() {
    let mut lp = vloop();
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    lp.run_until_complete(async move {
        let spawner = current_task().unwrap();
        let t = spawn_eager(async move {
            let me = current_task().unwrap();
            let dump = aioloop::all_tasks();
            let entry = dump.tasks.iter().find(|t| t.id == me).cloned().expect("listed during its step");
            let spawner_listed = dump.tasks.iter().any(|t| t.id == spawner);
            *s.borrow_mut() = Some((me, entry, spawner_listed));
        });
        assert_eq!(current_task(), Some(spawner), "the spawner is current again");
        let (me, entry, spawner_listed) = seen.borrow_mut().take().unwrap();
        assert_eq!(me, t.id());
        assert_eq!(entry.name, format!("Task-{}", t.id()));
        assert_eq!(entry.state, TaskState::Running);
        assert!(spawner_listed);
        assert!(t.is_done());
        assert!(aioloop::all_tasks().tasks.iter().all(|e| e.id != t.id()), "done: no longer listed");
    });
}

/// An eager task that suspends is a normal task from then on: listed as waiting on its timer,
/// woken by it, named with `set_name`.
#[test]
fn an_eager_task_that_suspends_goes_on_as_a_normal_task() {
    let mut lp = vloop();
    let t0 = lp.time();
    let out = lp.run_until_complete(async {
        let t = spawn_eager(async {
            sleep(Duration::from_secs(2)).await;
            "woke"
        });
        t.set_name("sleeper");
        let dump = aioloop::all_tasks();
        let entry = dump.tasks.iter().find(|e| e.id == t.id()).unwrap();
        assert_eq!(entry.name, "sleeper");
        assert!(matches!(entry.waiting_on, WaitingOn::Timer(_)));
        t.await.unwrap()
    });
    assert_eq!(out, "woke");
    assert_eq!(lp.time() - t0, Duration::from_secs(2));
}

/// A panic in the first step is the task's outcome (`set_exception` in `__step_run_and_handle_result`),
/// not the spawner's: the spawner goes on and reads it as a `TaskError`.
#[test]
fn a_panic_in_the_first_step_is_the_tasks_error() {
    let mut lp = vloop();
    let err = lp.run_until_complete(async {
        let t = spawn_eager(async {
            panic!("eager boom");
        });
        assert!(t.is_done());
        t.await.unwrap_err()
    });
    assert!(err.is_panic());
    assert_eq!(err.to_string(), "task panicked: eager boom");
}

/// An eager task that suspended can be cancelled like any other: its cleanup runs, and awaiting
/// it gives `Cancelled`.
#[test]
fn an_eager_task_can_be_cancelled_before_it_finishes() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    let cancelled = lp.run_until_complete(async move {
        let mut t = spawn_eager(async move {
            let _g = l.on_drop("cleanup");
            sleep(Duration::from_secs(60)).await;
            l.push("never");
        });
        sleep(ms(10)).await;
        assert!(t.cancel());
        (&mut t).await.unwrap_err().is_cancelled()
    });
    assert!(cancelled);
    assert_eq!(log.get(), ["cleanup"]);
}

/// A task that wakes itself in its first step (a `sleep(0)`) is queued once, and its second step
/// runs in the loop's next iteration like any task's.
#[test]
fn a_self_wake_in_the_first_step_queues_the_task_once() {
    let mut lp = vloop();
    let polls = Rc::new(Cell::new(0));
    let p = polls.clone();
    let ((), iters) = run_counted(&mut lp, async move {
        let t = spawn_eager(async move {
            p.set(p.get() + 1);
            yield_now().await;
            p.set(p.get() + 1);
        });
        assert_eq!(t.state(), TaskState::Pending);
        t.await.unwrap();
    });
    assert_eq!(polls.get(), 2);
    // 1: main (the eager first step inside); 2: the task's second step; 3: main wakes; 4: stop.
    assert_eq!(iters, 4);
}

/// Outside a running loop `spawn_eager` fails as `spawn` does.
#[test]
fn outside_a_running_loop_spawn_eager_panics_as_spawn_does() {
    let eager = catch_panic(|| drop(spawn_eager(async {})));
    let lazy = catch_panic(|| drop(spawn(async {})));
    assert_eq!(eager.unwrap_err(), "no running event loop");
    assert_eq!(lazy.unwrap_err(), "no running event loop");
}

/// Eager tasks nest: an eager task that spawns an eager task runs it inside its own first step,
/// and each is the current task during its own step.
#[test]
fn eager_tasks_nest() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    lp.run_until_complete(async move {
        let outer = spawn_eager(async move {
            let me = current_task();
            l.push("outer starts");
            let l2 = l.clone();
            let inner = spawn_eager(async move {
                l2.push("inner runs");
                current_task()
            });
            assert_eq!(current_task(), me, "outer is current again");
            l.push("outer goes on");
            (me, inner.await.unwrap())
        });
        let (outer_id, inner_id) = outer.await.unwrap();
        assert_ne!(outer_id, inner_id);
    });
    assert_eq!(log.get(), ["outer starts", "inner runs", "outer goes on"]);
}

/// From a callback (no current task), the eager step runs inside the callback.
#[test]
fn spawn_eager_from_a_callback() {
    let mut lp = vloop();
    let log = Log::new();
    let l = log.clone();
    lp.call_soon(move || {
        let l2 = l.clone();
        let t = spawn_eager(async move { l2.push("eager step") });
        assert!(t.is_done());
        assert_eq!(current_task(), None);
        l.push("callback goes on");
    });
    lp.run_until_complete(yield_now());
    assert_eq!(log.get(), ["eager step", "callback goes on"]);
}

/// `LoopHandle::spawn_eager`: the task is created on the loop's thread and its first step runs
/// there at once; one that finishes in it resolves the handle without a wrapper task.
#[test]
fn loop_handle_spawn_eager_resolves_from_another_thread() {
    let mut lp = aioloop::EventLoop::new().unwrap();
    let h = lp.handle();
    let worker = std::thread::spawn(move || {
        let now = h.spawn_eager(async { 6 * 7 });
        let later = h.spawn_eager(async {
            yield_now().await;
            "later"
        });
        let a = futures_lite::future::block_on(now).unwrap();
        let b = futures_lite::future::block_on(later).unwrap();
        h.stop();
        (a, b)
    });
    lp.run_forever();
    assert_eq!(worker.join().unwrap(), (42, "later"));
}
