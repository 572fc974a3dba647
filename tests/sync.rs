//! `aioloop::sync`: asyncio's `Queue`, `Event`, `Lock`, `Semaphore` and `Condition` (spec §3.9),
//! on virtual time.
//!
//! The rule under test: waiters are woken in FIFO order with no barging; a waiter that is
//! cancelled never loses an item, a permit or a notification (a `get()` cancelled after it was
//! woken passes the item on to the next getter).
//!
//! Most tests drive the loop one iteration at a time (`step`, asyncio's `test_utils.run_once`)
//! and compare what was logged in each iteration with a CPython program written the same way:
//! tasks made with `loop.create_task`, actions run from `loop.call_soon` callbacks, one
//! iteration per `loop.stop(); loop.run_forever()`. The Python for each test is in its comment
//! with the output it printed on CPython 3.11.7 (3.12.1 and 3.13.0 print the same unless a comment
//! says otherwise), in this harness:
//!
//! ```python
//! import asyncio
//! loop = asyncio.new_event_loop(); asyncio.set_event_loop(loop); log = []
//! def step():
//!     loop.stop(); loop.run_forever()
//!     r = log[:]; log.clear(); return r
//! def steps(n): return [step() for _ in range(n)]
//! def spawn(c): return loop.create_task(c)
//! def soon(f): loop.call_soon(f)
//! async def guard_cancel(name, coro):      # logs "<name> cancelled" when cancelled
//!     try: return await coro
//!     except asyncio.CancelledError: log.append(f"{name} cancelled"); raise
//!
//! # The task bodies the comments use (`q`, `lock`, `sem`, `ev`, `cond` are the test's); each logs
//! # "<n> cancelled" if it is cancelled before it is done.
//! def getter(q, n):
//!     async def body(): v = await q.get(); log.append(f"{n} got {v}")
//!     return guard_cancel(n, body())
//! def putter(n):
//!     async def body(): await q.put(n); log.append(f"{n} put")
//!     return guard_cancel(n, body())
//! def lock_waiter(n):
//!     async def body(): await lock.acquire(); log.append(f"{n} locked"); lock.release()
//!     return guard_cancel(n, body())
//! def holder(n):                           # keeps its permit
//!     async def body(): await sem.acquire(); log.append(f"{n} in")
//!     return guard_cancel(n, body())
//! def releaser(n):
//!     async def body(): await sem.acquire(); log.append(f"{n} in"); sem.release()
//!     return guard_cancel(n, body())
//! def ev_waiter(n):
//!     async def body(): await ev.wait(); log.append(f"{n} woke")
//!     return guard_cancel(n, body())
//! def cond_waiter(n):
//!     async def body():
//!         async with cond:
//!             await cond.wait(); log.append(f"{n} woke locked={cond.locked()}")
//!     return guard_cancel(n, body())
//! async def notifier(k):                   # k: a count, or "all"
//!     async with cond:
//!         if k == "all": cond.notify_all()
//!         else: cond.notify(k)
//! ```
//!
//! A lock or semaphore that a test starts out holding is taken in Python with
//! `loop.run_until_complete(lock.acquire())` before the tasks are made, and in Rust with
//! `try_lock()` / `try_acquire()`. Python prints booleans as `True`/`False`; the Rust tests log
//! them as `true`/`false`.
//!
//! "Cancelled before it is woken" cancels the waiting task in one iteration; "woken then
//! cancelled" cancels it in the same callback that released the lock (put the item, notified),
//! so it is cancelled before it ran. A cancelled task's future is dropped when the loop would
//! next run it, one iteration later, as asyncio throws `CancelledError` into it then.

mod util;

use std::cell::RefCell;
use std::fmt::Display;
use std::future::Future;
use std::rc::Rc;

use aioloop::sync::{
    BoundedSemaphore, Condition, Event, LifoQueue, Lock, Permit, PriorityQueue, Queue, QueueEmpty, QueueFull,
    Semaphore, TooManyReleases, TooManyTaskDone,
};
use aioloop::{yield_now, EventLoop, Task};
use futures_lite::StreamExt;
use util::{run_once, vloop, Log};

/// Runs `n` iterations of the loop; returns what was logged in each.
fn steps(lp: &mut EventLoop, log: &Log, n: usize) -> Vec<Vec<String>> {
    (0..n)
        .map(|_| {
            run_once(lp);
            log.take()
        })
        .collect()
}

/// Runs `f` in a callback of the next iteration (asyncio's `loop.call_soon`).
fn soon(lp: &EventLoop, f: impl FnOnce() + 'static) {
    lp.call_soon(f);
}

/// A task handle that callbacks can share.
fn shared<T>(t: Task<T>) -> Rc<Task<T>> {
    Rc::new(t)
}

/// A task body: `q.get()`, then logs `"<name> got <item>"`; logs `"<name> cancelled"` if dropped
/// before that.
fn getter<T: Display + 'static>(q: &Queue<T>, name: &'static str, log: &Log) -> impl Future<Output = ()> + 'static {
    let (q, log) = (q.clone(), log.clone());
    async move {
        let cancelled = log.on_drop(format!("{name} cancelled"));
        let v = q.get().await;
        log.push(format!("{name} got {v}"));
        cancelled.defuse();
    }
}

/// A task body: `q.put(item)`, then logs `"<name> put"`; logs `"<name> cancelled"` if dropped
/// before that.
fn putter(q: &Queue<&'static str>, name: &'static str, log: &Log) -> impl Future<Output = ()> + 'static {
    let (q, log) = (q.clone(), log.clone());
    async move {
        let cancelled = log.on_drop(format!("{name} cancelled"));
        q.put(name).await;
        log.push(format!("{name} put"));
        cancelled.defuse();
    }
}

// ===== Queue =====

// asyncio Q1: a bounded(1) queue interleaves put0, get0, put1, get1, put2, get2.
//
//     q = asyncio.Queue(1)
//     async def producer():
//         for i in range(3):
//             await q.put(i); log.append(f"put{i}")
//     async def consumer():
//         for _ in range(3):
//             v = await q.get(); log.append(f"get{v}")
//     spawn(producer()); spawn(consumer())
//     print(steps(6))
//     # [['put0', 'get0'], ['put1'], ['get1'], ['put2'], ['get2'], []]
//
// As one `run_until_complete(main())` that awaits the producer, then the consumer, CPython
// prints the six lines in 7 iterations (counted by wrapping `loop._run_once`).
#[test]
fn queue_bounded_one_interleaves_puts_and_gets() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(1);
    let (pq, plog) = (q.clone(), log.clone());
    lp.spawn(async move {
        for i in 0..3 {
            pq.put(i).await;
            plog.push(format!("put{i}"));
        }
    });
    let (cq, clog) = (q.clone(), log.clone());
    lp.spawn(async move {
        for _ in 0..3 {
            let v = cq.get().await;
            clog.push(format!("get{v}"));
        }
    });
    assert_eq!(
        steps(&mut lp, &log, 6),
        [vec!["put0", "get0"], vec!["put1"], vec!["get1"], vec!["put2"], vec!["get2"], vec![]]
    );

    // The same through `run_until_complete`, counting iterations.
    let mut lp = vloop();
    let i0 = lp.stats().iterations;
    let order = lp.run_until_complete(async {
        let (q, log) = (Queue::new(1), Log::new());
        let (pq, plog) = (q.clone(), log.clone());
        let p = aioloop::spawn(async move {
            for i in 0..3 {
                pq.put(i).await;
                plog.push(format!("put{i}"));
            }
        });
        let (cq, clog) = (q.clone(), log.clone());
        let c = aioloop::spawn(async move {
            for _ in 0..3 {
                let v = cq.get().await;
                clog.push(format!("get{v}"));
            }
        });
        p.await.unwrap();
        c.await.unwrap();
        log.get()
    });
    assert_eq!(order, ["put0", "get0", "put1", "get1", "put2", "get2"]);
    assert_eq!(lp.stats().iterations - i0, 7, "CPython 3.11.7 takes 7 iterations");
}

#[test]
fn queue_nowait_errors_give_the_item_back() {
    let q = Queue::new(1);
    assert_eq!((q.maxsize(), q.qsize(), q.empty(), q.full()), (1, 0, true, false));
    assert_eq!(q.get_nowait(), Err(QueueEmpty));
    assert_eq!(q.put_nowait("a"), Ok(()));
    assert_eq!((q.qsize(), q.empty(), q.full()), (1, false, true));
    // asyncio raises QueueFull and the item stays with the caller; here it comes back in the error.
    assert_eq!(q.put_nowait("b"), Err(QueueFull("b")));
    assert_eq!(q.qsize(), 1, "the refused item was not added");
    assert_eq!(q.get_nowait(), Ok("a"));
    assert_eq!(q.get_nowait(), Err(QueueEmpty));
    assert_eq!(QueueFull("b").to_string(), "queue is full");
    assert_eq!(QueueEmpty.to_string(), "queue is empty");
}

// maxsize 0 is unbounded: `full()` is never true and `put` never waits.
//
//     async def main():
//         q = asyncio.Queue(0)
//         for i in range(10_000): await q.put(i)
//         return q.qsize(), q.full()
//     # run_until_complete(main()) -> (10000, False) in 2 iterations (main returns in the first;
//     # the loop stops after the next one)
#[test]
fn queue_maxsize_zero_is_unbounded() {
    let mut lp = vloop();
    let i0 = lp.stats().iterations;
    let q = lp.run_until_complete(async {
        let q = Queue::new(0);
        for i in 0..10_000 {
            q.put(i).await;
            assert!(!q.full());
        }
        q
    });
    assert_eq!(lp.stats().iterations - i0, 2, "no put waited (CPython 3.11.7: 2 iterations)");
    assert_eq!((q.qsize(), q.maxsize(), q.full()), (10_000, 0, false));
    assert_eq!(q.put_nowait(10_000), Ok(()));
    assert_eq!(q.get_nowait(), Ok(0), "FIFO");
}

// Waiting getters take items in the order they began to wait.
//
//     q = asyncio.Queue()
//     for n in "abc": spawn(getter(q, n))
//     out = [step()]
//     soon(lambda: [q.put_nowait(i) for i in range(3)])
//     print(out + steps(2))
//     # [[], [], ['a got 0', 'b got 1', 'c got 2']]
#[test]
fn queue_getters_are_served_in_fifo_order() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(0);
    for name in ["a", "b", "c"] {
        lp.spawn(getter(&q, name, &log));
    }
    let mut out = steps(&mut lp, &log, 1);
    let q2 = q.clone();
    soon(&lp, move || (0..3).for_each(|i| q2.put_nowait(i).unwrap()));
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec![], vec!["a got 0", "b got 1", "c got 2"]]);
}

// Waiting putters put in the order they began to wait.
//
//     q = asyncio.Queue(1); q.put_nowait("x")
//     for n in "abc": spawn(putter(n))
//     out = [step()]
//     async def consumer():
//         for _ in range(4):
//             v = await q.get(); log.append(f"got {v}")
//     spawn(consumer())
//     print(out + steps(8))
//     # [[], ['got x'], ['a put'], ['got a'], ['b put'], ['got b'], ['c put'], ['got c'], []]
#[test]
fn queue_putters_are_served_in_fifo_order() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(1);
    q.put_nowait("x").unwrap();
    for name in ["a", "b", "c"] {
        lp.spawn(putter(&q, name, &log));
    }
    let mut out = steps(&mut lp, &log, 1);
    let (cq, clog) = (q.clone(), log.clone());
    lp.spawn(async move {
        for _ in 0..4 {
            let v = cq.get().await;
            clog.push(format!("got {v}"));
        }
    });
    out.extend(steps(&mut lp, &log, 8));
    assert_eq!(
        out,
        [
            vec![],
            vec!["got x"],
            vec!["a put"],
            vec!["got a"],
            vec!["b put"],
            vec!["got b"],
            vec!["c put"],
            vec!["got c"],
            vec![]
        ]
    );
}

// A getter cancelled before it is woken leaves the line; the next item goes to the next getter.
//
//     q = asyncio.Queue()
//     a = spawn(getter(q, "a")); b = spawn(getter(q, "b"))
//     out = [step()]
//     soon(lambda: a.cancel())
//     out += [step()]
//     soon(lambda: q.put_nowait(1))
//     print(out + steps(3), q.qsize())
//     # [[], [], ['a cancelled'], ['b got 1'], []] 0
#[test]
fn queue_getter_cancelled_before_it_is_woken_leaves_the_line() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(0);
    let a = shared(lp.spawn(getter(&q, "a", &log)));
    let b = lp.spawn(getter(&q, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let a2 = a.clone();
    soon(&lp, move || assert!(a2.cancel()));
    out.extend(steps(&mut lp, &log, 1));
    let q2 = q.clone();
    soon(&lp, move || q2.put_nowait(1).unwrap());
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec!["b got 1"], vec![]]);
    assert!(a.is_cancelled() && b.is_done());
    assert_eq!(q.qsize(), 0);
}

// The issue's case: a getter woken by a put, then cancelled before it ran, passes the item on.
//
//     q = asyncio.Queue()
//     a = spawn(getter(q, "a")); b = spawn(getter(q, "b"))
//     out = [step()]
//     def cb(): q.put_nowait(1); a.cancel()
//     soon(cb)
//     print(out + steps(4), q.qsize())
//     # [[], [], ['a cancelled'], ['b got 1'], []] 0
#[test]
fn queue_getter_woken_then_cancelled_passes_the_item_on() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(0);
    let a = shared(lp.spawn(getter(&q, "a", &log)));
    let b = lp.spawn(getter(&q, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (q2, a2) = (q.clone(), a.clone());
    soon(&lp, move || {
        q2.put_nowait(1).unwrap(); // wakes a
        assert!(a2.cancel()); // before a ran
    });
    out.extend(steps(&mut lp, &log, 4));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec!["b got 1"], vec![]]);
    assert!(a.is_cancelled() && b.is_done());
    assert_eq!(q.qsize(), 0, "the item was taken, by b");
}

// A woken getter cancelled with no other getter leaves the item in the queue.
#[test]
fn queue_lone_getter_woken_then_cancelled_leaves_the_item_in_the_queue() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(0);
    let a = shared(lp.spawn(getter(&q, "a", &log)));
    steps(&mut lp, &log, 1);
    let (q2, a2) = (q.clone(), a.clone());
    soon(&lp, move || {
        q2.put_nowait(7).unwrap();
        a2.cancel();
    });
    assert_eq!(steps(&mut lp, &log, 3), [vec![], vec!["a cancelled"], vec![]]);
    assert_eq!(q.get_nowait(), Ok(7));
}

// Cancelled, then an item put in the same callback: asyncio cancels the getter's future at once,
// so put_nowait skips it and wakes b, which gets the item in the next iteration. Here the
// cancellation is a request until a's task runs, but the put sees it (a's waker names its task)
// and skips a too. (Under a foreign waker it cannot: see "Foreign wakers" below.)
//
//     a = spawn(getter("a")); spawn(getter("b"))
//     out = [step()]
//     def cb(): a.cancel(); q.put_nowait(1)
//     soon(cb); out += steps(3)
//     # [[], [], ['a cancelled', 'b got 1'], []]
#[test]
fn queue_put_skips_a_getter_already_cancelled() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(0);
    let a = shared(lp.spawn(getter(&q, "a", &log)));
    lp.spawn(getter(&q, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (q2, a2) = (q.clone(), a.clone());
    soon(&lp, move || {
        a2.cancel();
        q2.put_nowait(1).unwrap();
    });
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled", "b got 1"], vec![]]);
}

// Two items wake two getters; the first is cancelled: its item goes to the third getter.
//
//     ts = [spawn(getter(q, n)) for n in "abc"]
//     out = [step()]
//     def cb(): q.put_nowait(1); q.put_nowait(2); ts[0].cancel()
//     soon(cb)
//     print(out + steps(4), q.qsize())
//     # [[], [], ['a cancelled', 'b got 1'], ['c got 2'], []] 0
#[test]
fn queue_two_woken_getters_first_cancelled_third_gets_the_item() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(0);
    let a = shared(lp.spawn(getter(&q, "a", &log)));
    lp.spawn(getter(&q, "b", &log));
    lp.spawn(getter(&q, "c", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (q2, a2) = (q.clone(), a.clone());
    soon(&lp, move || {
        q2.put_nowait(1).unwrap();
        q2.put_nowait(2).unwrap();
        a2.cancel();
    });
    out.extend(steps(&mut lp, &log, 4));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled", "b got 1"], vec!["c got 2"], vec![]]);
    assert_eq!(q.qsize(), 0);
}

// A putter woken by a free slot, then cancelled, passes the slot on to the next putter.
//
//     q = asyncio.Queue(1); q.put_nowait("x")
//     a = spawn(putter("a")); b = spawn(putter("b"))
//     out = [step()]
//     def cb(): log.append("took " + q.get_nowait()); a.cancel()
//     soon(cb)
//     print(out + steps(4), list(q._queue))
//     # [[], ['took x'], ['a cancelled'], ['b put'], []] ['b']
#[test]
fn queue_putter_woken_then_cancelled_passes_the_slot_on() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(1);
    q.put_nowait("x").unwrap();
    let a = shared(lp.spawn(putter(&q, "a", &log)));
    lp.spawn(putter(&q, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (q2, a2, log2) = (q.clone(), a.clone(), log.clone());
    soon(&lp, move || {
        log2.push(format!("took {}", q2.get_nowait().unwrap())); // wakes a
        a2.cancel();
    });
    out.extend(steps(&mut lp, &log, 4));
    assert_eq!(out, [vec![], vec!["took x"], vec!["a cancelled"], vec!["b put"], vec![]]);
    assert_eq!(q.get_nowait(), Ok("b"));
    assert_eq!(q.get_nowait(), Err(QueueEmpty), "a's item was never put");
}

// A woken getter re-checks: the task that woke it can take the item back with get_nowait; the
// getter then waits again, at the end of the line (asyncio appends a new getter future).
//
//     a = spawn(getter(q, "a")); b = spawn(getter(q, "b"))
//     out = [step()]
//     def cb(): q.put_nowait("x"); log.append("main took " + q.get_nowait())
//     soon(cb); out += steps(2)
//     soon(lambda: q.put_nowait("y")); out += steps(2)
//     soon(lambda: q.put_nowait("z")); out += steps(2)
//     # [[], ['main took x'], [], [], ['b got y'], [], ['a got z']]
#[test]
fn queue_woken_getter_rechecks_and_waits_again_behind_the_others() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(0);
    let a = lp.spawn(getter(&q, "a", &log));
    lp.spawn(getter(&q, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (q2, log2) = (q.clone(), log.clone());
    soon(&lp, move || {
        q2.put_nowait("x").unwrap(); // wakes a
        log2.push(format!("main took {}", q2.get_nowait().unwrap()));
    });
    out.extend(steps(&mut lp, &log, 2));
    assert!(!a.is_done(), "a found the queue empty and waits again");
    for item in ["y", "z"] {
        let q2 = q.clone();
        soon(&lp, move || q2.put_nowait(item).unwrap());
        out.extend(steps(&mut lp, &log, 2));
    }
    assert_eq!(out, [vec![], vec!["main took x"], vec![], vec![], vec!["b got y"], vec![], vec!["a got z"]]);
}

// A Queue, unlike a Lock, lets a newcomer's get() take an item before the woken getter runs.
//
//     a = spawn(getter(q, "a"))
//     out = [step()]
//     async def newcomer():
//         await asyncio.sleep(0)
//         v = await q.get(); log.append(f"c got {v}")
//     spawn(newcomer())
//     soon(lambda: q.put_nowait("x")); out += steps(3)
//     soon(lambda: q.put_nowait("y")); out += steps(2)
//     # [[], [], ['c got x'], [], [], ['a got y']]
#[test]
fn queue_newcomer_get_takes_the_item_before_the_woken_getter() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(0);
    lp.spawn(getter(&q, "a", &log));
    let mut out = steps(&mut lp, &log, 1);
    let newcomer = getter(&q, "c", &log);
    lp.spawn(async move {
        yield_now().await; // runs again next iteration, before the getter the put wakes
        newcomer.await;
    });
    let q2 = q.clone();
    soon(&lp, move || q2.put_nowait("x").unwrap());
    out.extend(steps(&mut lp, &log, 3));
    let q2 = q.clone();
    soon(&lp, move || q2.put_nowait("y").unwrap());
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec![], vec!["c got x"], vec![], vec![], vec!["a got y"]]);
}

// join() waits until every item put was marked done; one task_done too many is an error.
//
//     q = asyncio.Queue()
//     for v in "abc": q.put_nowait(v)
//     async def joiner(): await q.join(); log.append("joined")
//     spawn(joiner()); out = [step()]
//     def two():
//         for _ in range(2): q.get_nowait(); q.task_done()
//     soon(two); out += steps(2)
//     def last(): q.get_nowait(); q.task_done(); log.append("last task_done")
//     soon(last); out += steps(2)
//     def extra():
//         try: q.task_done()
//         except ValueError as e: log.append(f"ValueError: {e}")
//     soon(extra); out += steps(1)
//     spawn(joiner()); out += steps(1)
//     # [[], [], [], ['last task_done'], ['joined'],
//     #  ['ValueError: task_done() called too many times'], ['joined']]
#[test]
fn queue_join_waits_for_every_task_done() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(0);
    for v in ["a", "b", "c"] {
        q.put_nowait(v).unwrap();
    }
    let joiner = |q: &Queue<&'static str>, log: &Log| {
        let (q, log) = (q.clone(), log.clone());
        async move {
            q.join().await;
            log.push("joined");
        }
    };
    lp.spawn(joiner(&q, &log));
    let mut out = steps(&mut lp, &log, 1);
    let q2 = q.clone();
    soon(&lp, move || {
        for _ in 0..2 {
            q2.get_nowait().unwrap();
            q2.task_done().unwrap();
        }
    });
    out.extend(steps(&mut lp, &log, 2));
    let (q2, log2) = (q.clone(), log.clone());
    soon(&lp, move || {
        q2.get_nowait().unwrap();
        q2.task_done().unwrap();
        log2.push("last task_done");
    });
    out.extend(steps(&mut lp, &log, 2));
    let (q2, log2) = (q.clone(), log.clone());
    soon(&lp, move || {
        let err = q2.task_done().unwrap_err();
        assert_eq!(err, TooManyTaskDone);
        log2.push(format!("ValueError: {err}"));
    });
    out.extend(steps(&mut lp, &log, 1));
    // Nothing unfinished: join returns in the joiner's first step.
    lp.spawn(joiner(&q, &log));
    out.extend(steps(&mut lp, &log, 1));
    assert_eq!(
        out,
        [
            vec![],
            vec![],
            vec![],
            vec!["last task_done"],
            vec!["joined"],
            vec!["ValueError: task_done() called too many times"],
            vec!["joined"]
        ]
    );
}

// Items taken but not marked done keep join() waiting; a put after join() started counts too.
#[test]
fn queue_join_counts_items_put_while_it_waits() {
    let mut lp = vloop();
    let t0 = lp.time();
    let log = Log::new();
    let log2 = log.clone();
    lp.run_until_complete(async move {
        let q = Queue::new(0);
        q.put_nowait(1).unwrap();
        let worker = {
            let (q, log) = (q.clone(), log2.clone());
            aioloop::spawn(async move {
                loop {
                    let v = q.get().await;
                    aioloop::sleep(std::time::Duration::from_secs(1)).await;
                    if v == 1 {
                        q.put_nowait(2).unwrap(); // more work, found while processing item 1
                    }
                    log.push(format!("done {v}"));
                    q.task_done().unwrap();
                }
            })
        };
        q.join().await;
        log2.push("joined");
        worker.cancel();
    });
    assert_eq!(log.get(), ["done 1", "done 2", "joined"]);
    assert_eq!(lp.time() - t0, std::time::Duration::from_secs(2));
}

// stream() yields items as get() would, waiting for more when the queue is empty.
#[test]
fn queue_stream_yields_items_and_waits_for_more() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(0);
    q.put_nowait(1).unwrap();
    q.put_nowait(2).unwrap();
    let (sq, slog) = (q.clone(), log.clone());
    let consumer = lp.spawn(async move {
        let mut items = sq.stream();
        while let Some(v) = items.next().await {
            slog.push(format!("got {v}"));
            if v == 3 {
                break;
            }
        }
    });
    let mut out = steps(&mut lp, &log, 1);
    let q2 = q.clone();
    soon(&lp, move || q2.put_nowait(3).unwrap());
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec!["got 1", "got 2"], vec![], vec!["got 3"]]);
    assert!(consumer.is_done());
}

// A stream woken for an item and then cancelled passes the item on, as a get() does.
#[test]
fn queue_stream_woken_then_cancelled_passes_the_item_on() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(0);
    let (sq, slog) = (q.clone(), log.clone());
    let a = shared(lp.spawn(async move {
        let cancelled = slog.on_drop("a cancelled");
        let v = sq.stream().next().await;
        slog.push(format!("a got {v:?}"));
        cancelled.defuse();
    }));
    lp.spawn(getter(&q, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (q2, a2) = (q.clone(), a.clone());
    soon(&lp, move || {
        q2.put_nowait(1).unwrap(); // wakes the stream, the first getter
        a2.cancel();
    });
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec!["b got 1"]]);
}

// ----- The fast path: an item handed straight to the one waiting getter -----
//
// These pin what the hand-off must not change: a handed item still counts as in the queue, stays
// the oldest, goes back to the head if its getter is cancelled, and can be taken from under the
// getter; and a ping-pong takes asyncio's iterations.

// A handed item counts: the queue is full while the woken getter has not run.
//
//     q = asyncio.Queue(1)
//     a = spawn(getter(q, "a")); out = [step()]
//     def cb():
//         q.put_nowait(1); log.append(f"qsize={q.qsize()} full={q.full()} empty={q.empty()}")
//         try: q.put_nowait(2)
//         except asyncio.QueueFull: log.append("QueueFull")
//     soon(cb); out += steps(2)
//     # [[], ['qsize=1 full=True empty=False', 'QueueFull'], ['a got 1']]
#[test]
fn queue_item_handed_to_a_waiting_getter_still_counts_until_it_runs() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(1);
    lp.spawn(getter(&q, "a", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (q2, log2) = (q.clone(), log.clone());
    soon(&lp, move || {
        q2.put_nowait(1).unwrap();
        log2.push(format!("qsize={} full={} empty={}", q2.qsize(), q2.full(), q2.empty()));
        if let Err(QueueFull(_)) = q2.put_nowait(2) {
            log2.push("QueueFull");
        }
    });
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec!["qsize=1 full=true empty=false", "QueueFull"], vec!["a got 1"]]);
    assert_eq!(q.qsize(), 0);
}

// The getter is cancelled after the hand-off and after two more puts: its item goes back to the
// head, so the order stays 1, 2, 3.
//
//     q = asyncio.Queue()
//     a = spawn(getter(q, "a")); out = [step()]
//     def cb():
//         for i in (1, 2, 3): q.put_nowait(i)
//         a.cancel()
//     soon(cb); out += steps(2)
//     out.append([q.get_nowait() for _ in range(3)])
//     # [[], [], ['a cancelled'], [1, 2, 3]]
#[test]
fn queue_item_handed_to_a_getter_cancelled_before_it_ran_goes_back_to_the_head() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(0);
    let a = shared(lp.spawn(getter(&q, "a", &log)));
    let mut out = steps(&mut lp, &log, 1);
    let (q2, a2) = (q.clone(), a.clone());
    soon(&lp, move || {
        (1..=3).for_each(|i| q2.put_nowait(i).unwrap());
        assert!(a2.cancel());
    });
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"]]);
    assert_eq!([q.get_nowait(), q.get_nowait(), q.get_nowait()], [Ok(1), Ok(2), Ok(3)]);
}

// The item handed to a is taken from under it; a is then cancelled: nothing is passed on (the
// queue is empty), and the next put goes to b.
//
//     a = spawn(getter(q, "a")); b = spawn(getter(q, "b")); out = [step()]
//     def cb(): q.put_nowait(1); log.append(f"main took {q.get_nowait()}"); a.cancel()
//     soon(cb); out += steps(2)
//     soon(lambda: q.put_nowait(2)); out += steps(2)
//     # [[], ['main took 1'], ['a cancelled'], [], ['b got 2']] 0
#[test]
fn queue_item_taken_from_under_a_woken_getter_then_cancelled() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = Queue::new(0);
    let a = shared(lp.spawn(getter(&q, "a", &log)));
    lp.spawn(getter(&q, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (q2, a2, log2) = (q.clone(), a.clone(), log.clone());
    soon(&lp, move || {
        q2.put_nowait(1).unwrap();
        log2.push(format!("main took {}", q2.get_nowait().unwrap()));
        a2.cancel();
    });
    out.extend(steps(&mut lp, &log, 2));
    let q2 = q.clone();
    soon(&lp, move || q2.put_nowait(2).unwrap());
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec!["main took 1"], vec!["a cancelled"], vec![], vec!["b got 2"]]);
    assert_eq!(q.qsize(), 0);
}

// A ping-pong through two queues, the benchmark's workload: every item arrives, in order, in
// asyncio's number of iterations.
//
//     async def main():
//         ping, pong = asyncio.Queue(), asyncio.Queue()
//         async def echo():
//             for _ in range(100):
//                 v = await ping.get(); await pong.put(v + 1)
//         t = asyncio.create_task(echo())
//         got = []
//         for i in range(100):
//             await ping.put(i); got.append(await pong.get())
//         await t
//         return got == [i + 1 for i in range(100)]
//     # run_until_complete(main()) -> True, in 202 iterations (counted by wrapping `_run_once`)
#[test]
fn queue_ping_pong_keeps_order_and_asyncio_iterations() {
    let mut lp = vloop();
    let i0 = lp.stats().iterations;
    let ok = lp.run_until_complete(async {
        let (ping, pong) = (Queue::new(0), Queue::new(0));
        let (p2, q2) = (ping.clone(), pong.clone());
        let echo = aioloop::spawn(async move {
            for _ in 0..100 {
                let v: u32 = p2.get().await;
                q2.put(v + 1).await;
            }
        });
        let mut got = Vec::new();
        for i in 0..100 {
            ping.put(i).await;
            got.push(pong.get().await);
        }
        echo.await.unwrap();
        got == (1..=100).collect::<Vec<_>>()
    });
    assert!(ok);
    assert_eq!(lp.stats().iterations - i0, 202, "CPython 3.11.7 takes 202 iterations");
}

// ===== LifoQueue and PriorityQueue =====

// A LIFO queue's getters take the newest item when they run, not when they are woken.
//
//     q = asyncio.LifoQueue()
//     for n in "abc": spawn(getter(q, n))
//     out = [step()]
//     soon(lambda: [q.put_nowait(i) for i in range(3)])
//     out += steps(2)
//     for i in range(3): q.put_nowait(i)
//     out.append([q.get_nowait() for _ in range(3)])
//     # [[], [], ['a got 2', 'b got 1', 'c got 0'], [2, 1, 0]]
#[test]
fn lifo_queue_getters_take_the_newest_item_at_their_turn() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = LifoQueue::new(0);
    for name in ["a", "b", "c"] {
        lp.spawn(getter(&q, name, &log));
    }
    let mut out = steps(&mut lp, &log, 1);
    let q2 = q.clone();
    soon(&lp, move || (0..3).for_each(|i| q2.put_nowait(i).unwrap()));
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec![], vec!["a got 2", "b got 1", "c got 0"]]);
    (0..3).for_each(|i| q.put_nowait(i).unwrap());
    assert_eq!([q.get_nowait(), q.get_nowait(), q.get_nowait()], [Ok(2), Ok(1), Ok(0)]);
    assert_eq!(format!("{q:?}"), "LifoQueue { qsize: 0, maxsize: 0 }");
}

// A bounded LIFO queue: put waits while full; a freed slot goes to the first waiting putter.
//
//     q = asyncio.LifoQueue(2); q.put_nowait("x"); q.put_nowait("y")
//     for n in "ab": spawn(putter(n))
//     out = [step()]
//     def take(): log.append("took " + q.get_nowait())
//     soon(take); out += steps(2)
//     soon(take); out += steps(2)
//     out.append(list(q._queue))
//     # [[], ['took y'], ['a put'], ['took a'], ['b put'], ['x', 'b']]
#[test]
fn lifo_queue_bounded_put_waits_for_a_free_slot() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = LifoQueue::new(2);
    q.put_nowait("x").unwrap();
    q.put_nowait("y").unwrap();
    for name in ["a", "b"] {
        lp.spawn(putter(&q, name, &log));
    }
    let mut out = steps(&mut lp, &log, 1);
    for _ in 0..2 {
        let (q2, log2) = (q.clone(), log.clone());
        soon(&lp, move || log2.push(format!("took {}", q2.get_nowait().unwrap())));
        out.extend(steps(&mut lp, &log, 2));
    }
    assert_eq!(out, [vec![], vec!["took y"], vec!["a put"], vec!["took a"], vec!["b put"]]);
    assert_eq!([q.get_nowait(), q.get_nowait()], [Ok("b"), Ok("x")]);
}

/// An item ordered by its priority only: items of equal priority compare equal, so their
/// order out of the queue is the heap's.
#[derive(Debug)]
struct Job(u8, &'static str);

impl PartialEq for Job {
    fn eq(&self, other: &Job) -> bool {
        self.0 == other.0
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Job) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Job {
    fn cmp(&self, other: &Job) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

// A priority queue gives the smallest item first; items that compare equal come out in the
// order Python's heapq gives them (the same steps, so the same comparisons).
//
//     @functools.total_ordering
//     class It:                           # compares by p only
//         def __init__(s, p, name): s.p, s.name = p, name
//         def __lt__(s, o): return s.p < o.p
//         def __eq__(s, o): return s.p == o.p
//         def __repr__(s): return f"{s.p}{s.name}"
//     q = asyncio.PriorityQueue()
//     items = [(3,'a'),(1,'b'),(2,'c'),(1,'d'),(3,'e'),(1,'f'),(2,'g'),(0,'h'),(1,'i'),(2,'j')]
//     for p, n in items: q.put_nowait(It(p, n))
//     got = [repr(q.get_nowait()) for _ in range(4)]
//     for p, n in [(1,'k'),(0,'l'),(1,'m')]: q.put_nowait(It(p, n))
//     got += [repr(q.get_nowait()) for _ in range(q.qsize())]
//     # ['0h', '1f', '1b', '1d', '0l', '1k', '1i', '1m', '2g', '2c', '2j', '3a', '3e']
#[test]
fn priority_queue_gives_the_smallest_first_and_ties_in_heapq_order() {
    let q = PriorityQueue::new(0);
    let items = [(3, "a"), (1, "b"), (2, "c"), (1, "d"), (3, "e"), (1, "f"), (2, "g"), (0, "h"), (1, "i"), (2, "j")];
    for (p, n) in items {
        q.put_nowait(Job(p, n)).unwrap();
    }
    let show = |j: Job| format!("{}{}", j.0, j.1);
    let mut got: Vec<String> = (0..4).map(|_| show(q.get_nowait().unwrap())).collect();
    for (p, n) in [(1, "k"), (0, "l"), (1, "m")] {
        q.put_nowait(Job(p, n)).unwrap();
    }
    got.extend((0..q.qsize()).map(|_| show(q.get_nowait().unwrap())));
    assert_eq!(got, ["0h", "1f", "1b", "1d", "0l", "1k", "1i", "1m", "2g", "2c", "2j", "3a", "3e"]);
    assert_eq!(q.get_nowait().unwrap_err(), QueueEmpty);
}

// Waiting getters of a priority queue: each takes the smallest item at its turn.
//
//     q = asyncio.PriorityQueue()
//     for n in "abc": spawn(getter(q, n))
//     out = [step()]
//     soon(lambda: [q.put_nowait(i) for i in (5, 1, 3)])
//     out += steps(2)
//     # [[], [], ['a got 1', 'b got 3', 'c got 5']]
#[test]
fn priority_queue_getters_take_the_smallest_item_at_their_turn() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = PriorityQueue::new(0);
    for name in ["a", "b", "c"] {
        lp.spawn(getter(&q, name, &log));
    }
    let mut out = steps(&mut lp, &log, 1);
    let q2 = q.clone();
    soon(&lp, move || [5, 1, 3].into_iter().for_each(|i| q2.put_nowait(i).unwrap()));
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec![], vec!["a got 1", "b got 3", "c got 5"]]);
}

// A priority queue shares Queue's cancellation rule: a getter woken and then cancelled passes
// the item on (the queue_getter_woken_then_cancelled_passes_the_item_on scenario).
#[test]
fn priority_queue_getter_woken_then_cancelled_passes_the_item_on() {
    let (mut lp, log) = (vloop(), Log::new());
    let q = PriorityQueue::new(0);
    let a = shared(lp.spawn(getter(&q, "a", &log)));
    lp.spawn(getter(&q, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (q2, a2) = (q.clone(), a.clone());
    soon(&lp, move || {
        q2.put_nowait(1).unwrap();
        assert!(a2.cancel());
    });
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec!["b got 1"]]);
    assert_eq!(q.qsize(), 0);
}

// ===== Lock =====

/// A task body: locks, logs `"<name> locked"`, unlocks; logs `"<name> cancelled"` if dropped
/// before it got the lock.
fn locker(lock: &Lock<Vec<&'static str>>, name: &'static str, log: &Log) -> impl Future<Output = ()> + 'static {
    let (lock, log) = (lock.clone(), log.clone());
    async move {
        let cancelled = log.on_drop(format!("{name} cancelled"));
        let mut g = lock.lock().await;
        g.push(name);
        log.push(format!("{name} locked"));
        cancelled.defuse();
    }
}

// asyncio Q1: waiters get the lock in FIFO order [0, 1, 2, 3].
//
//     lock = asyncio.Lock(); loop.run_until_complete(lock.acquire())
//     async def w(i):
//         async with lock: log.append(str(i))
//     for i in range(4): spawn(w(i))
//     out = [step()]
//     soon(lock.release)
//     print(out + steps(5))
//     # [[], [], ['0'], ['1'], ['2'], ['3']]
#[test]
fn lock_waiters_get_it_in_fifo_order() {
    let (mut lp, log) = (vloop(), Log::new());
    let lock = Lock::new(Vec::new());
    let g = lock.try_lock().unwrap();
    for i in 0..4 {
        let (lock, log) = (lock.clone(), log.clone());
        lp.spawn(async move {
            let mut order = lock.lock().await;
            order.push(i);
            log.push(i.to_string());
        });
    }
    let mut out = steps(&mut lp, &log, 1);
    assert!(lock.is_locked());
    soon(&lp, move || drop(g));
    out.extend(steps(&mut lp, &log, 5));
    assert_eq!(out, [vec![], vec![], vec!["0"], vec!["1"], vec!["2"], vec!["3"]]);
    assert_eq!(*lock.try_lock().unwrap(), [0, 1, 2, 3], "the guard gives the value");
    assert!(!lock.is_locked());
}

// No barging: between the release and the woken waiter's turn the lock is unlocked, yet a
// newcomer's try_lock fails and its lock() queues behind every waiter.
//
//     lock = asyncio.Lock(); loop.run_until_complete(lock.acquire())
//     spawn(lock_waiter("a")); spawn(lock_waiter("b"))
//     out = [step()]
//     async def newcomer():
//         await asyncio.sleep(0)
//         await lock_waiter("c")      # acquire; log "<n> locked"; release
//     spawn(newcomer())
//     def rel(): lock.release(); log.append(f"released: locked={lock.locked()}")
//     soon(rel)
//     print(out + steps(5))
//     # [[], ['released: locked=False'], ['a locked'], ['b locked'], ['c locked'], []]
//
// asyncio has no try_lock; its acquire() takes the lock at once only if it is unlocked and
// every waiter is cancelled, which is what `try_lock` checks too. The Rust newcomer logs its
// try_lock (`c try_lock: refused`) before it calls lock(); the rest is CPython's output.
#[test]
fn lock_newcomer_does_not_barge_past_a_woken_waiter() {
    let (mut lp, log) = (vloop(), Log::new());
    let lock = Lock::new(Vec::new());
    let g = lock.try_lock().unwrap();
    lp.spawn(locker(&lock, "a", &log));
    lp.spawn(locker(&lock, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (nlock, nlog) = (lock.clone(), log.clone());
    let newcomer = locker(&lock, "c", &log);
    lp.spawn(async move {
        yield_now().await; // runs next iteration, before the waiter the release wakes
        nlog.push(format!("c try_lock: {}", if nlock.try_lock().is_some() { "taken" } else { "refused" }));
        newcomer.await;
    });
    let (lock2, log2) = (lock.clone(), log.clone());
    soon(&lp, move || {
        drop(g);
        log2.push(format!("released: locked={}", lock2.is_locked()));
        assert!(lock2.try_lock().is_none(), "a is woken and has not run yet");
    });
    out.extend(steps(&mut lp, &log, 5));
    assert_eq!(
        out,
        [
            vec![],
            vec!["released: locked=false"],
            vec!["c try_lock: refused", "a locked"],
            vec!["b locked"],
            vec!["c locked"],
            vec![]
        ]
    );
    assert_eq!(*lock.try_lock().unwrap(), ["a", "b", "c"]);
}

// A waiter cancelled before it is woken leaves the line; the release goes to the next one.
//
//     a = spawn(lock_waiter("a")); spawn(lock_waiter("b"))
//     out = [step()]
//     soon(a.cancel); out += [step()]
//     soon(lock.release); out += steps(2)
//     print(out, lock.locked())
//     # [[], [], ['a cancelled'], ['b locked']] False
#[test]
fn lock_waiter_cancelled_before_it_is_woken_leaves_the_line() {
    let (mut lp, log) = (vloop(), Log::new());
    let lock = Lock::new(Vec::new());
    let g = lock.try_lock().unwrap();
    let a = shared(lp.spawn(locker(&lock, "a", &log)));
    lp.spawn(locker(&lock, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let a2 = a.clone();
    soon(&lp, move || assert!(a2.cancel()));
    out.extend(steps(&mut lp, &log, 1));
    soon(&lp, move || drop(g));
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec!["b locked"]]);
    assert!(!lock.is_locked());
    assert_eq!(*lock.try_lock().unwrap(), ["b"]);
}

// Cancelled, then released in the same callback: the first waiter is still in the line (the
// cancellation is only a request until it runs), so the release wakes it, and its drop passes
// the lock on. asyncio gets there the other way round (the cancelled future is skipped, then the
// cancelled task wakes the next waiter); the user sees the same iterations.
//
//     def cb(): a.cancel(); lock.release()
//     soon(cb)
//     print(out + steps(3), lock.locked())
//     # [[], [], ['a cancelled'], ['b locked']] False
#[test]
fn lock_waiter_cancelled_then_released_in_the_same_iteration() {
    let (mut lp, log) = (vloop(), Log::new());
    let lock = Lock::new(Vec::new());
    let g = lock.try_lock().unwrap();
    let a = shared(lp.spawn(locker(&lock, "a", &log)));
    lp.spawn(locker(&lock, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let a2 = a.clone();
    soon(&lp, move || {
        a2.cancel();
        drop(g);
    });
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec!["b locked"]]);
    assert_eq!(*lock.try_lock().unwrap(), ["b"]);
}

// A waiter whose task is cancelled does not hold a newcomer back: asyncio's acquire() takes a
// free lock at once when every waiter is cancelled (`all(w.cancelled() for w in self._waiters)`).
// Here the cancelled waiter stays in the line until its task runs and drops it, but the release
// and the newcomer's lock() see that its task is cancelled and pass it by, as asyncio does.
//
//     a = spawn(lock_waiter("a"))
//     out = [step()]
//     async def newcomer():
//         await asyncio.sleep(0)
//         await lock_waiter("c")
//     spawn(newcomer())
//     def cb(): a.cancel(); lock.release()
//     soon(cb); out += steps(4)
//     # [[], [], ['c locked', 'a cancelled'], [], []]
#[test]
fn lock_newcomer_is_not_held_back_by_a_cancelled_waiter() {
    let (mut lp, log) = (vloop(), Log::new());
    let lock = Lock::new(Vec::new());
    let g = lock.try_lock().unwrap();
    let a = shared(lp.spawn(locker(&lock, "a", &log)));
    let mut out = steps(&mut lp, &log, 1);
    let newcomer = locker(&lock, "c", &log);
    lp.spawn(async move {
        yield_now().await;
        newcomer.await;
    });
    let a2 = a.clone();
    soon(&lp, move || {
        a2.cancel();
        drop(g);
    });
    out.extend(steps(&mut lp, &log, 4));
    assert_eq!(out, [vec![], vec![], vec!["c locked", "a cancelled"], vec![], vec![]]);
}

// The issue's case for Lock: woken by the release, cancelled before it ran: the lock goes on.
//
//     def cb(): lock.release(); a.cancel()
//     soon(cb)
//     print(out + steps(3), lock.locked())
//     # [[], [], ['a cancelled'], ['b locked']] False
#[test]
fn lock_waiter_woken_then_cancelled_passes_the_lock_on() {
    let (mut lp, log) = (vloop(), Log::new());
    let lock = Lock::new(Vec::new());
    let g = lock.try_lock().unwrap();
    let a = shared(lp.spawn(locker(&lock, "a", &log)));
    lp.spawn(locker(&lock, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let a2 = a.clone();
    soon(&lp, move || {
        drop(g); // wakes a
        a2.cancel();
    });
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec!["b locked"]]);
    assert_eq!(*lock.try_lock().unwrap(), ["b"]);
}

// Woken then cancelled with nobody behind it: the lock is free, not lost.
//
//     a = spawn(lock_waiter("a")); out = [step()]
//     def cb(): lock.release(); a.cancel()
//     soon(cb); out += steps(2)
//     out.append(f"locked={lock.locked()}")
//     spawn(lock_waiter("c")); out += steps(1)
//     # [[], [], ['a cancelled'], 'locked=False', ['c locked']]
#[test]
fn lock_lone_waiter_woken_then_cancelled_leaves_the_lock_free() {
    let (mut lp, log) = (vloop(), Log::new());
    let lock = Lock::new(Vec::new());
    let g = lock.try_lock().unwrap();
    let a = shared(lp.spawn(locker(&lock, "a", &log)));
    let mut out = steps(&mut lp, &log, 1);
    let a2 = a.clone();
    soon(&lp, move || {
        drop(g);
        a2.cancel();
    });
    out.extend(steps(&mut lp, &log, 2));
    assert!(!lock.is_locked());
    lp.spawn(locker(&lock, "c", &log));
    out.extend(steps(&mut lp, &log, 1));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec!["c locked"]]);
}

// The guard derefs to the value; changes made under the lock stay; the lock is free again
// when the guard is dropped.
#[test]
fn lock_guard_gives_the_value_and_unlocks_on_drop() {
    let lock = Lock::new(String::from("a"));
    {
        let mut g = lock.try_lock().unwrap();
        g.push('b');
        assert!(lock.is_locked());
        assert!(lock.try_lock().is_none());
        assert_eq!(format!("{g:?}"), r#"LockGuard("ab")"#);
    }
    assert!(!lock.is_locked());
    let mut lp = vloop();
    let v = lp.run_until_complete(async { lock.lock().await.clone() });
    assert_eq!(v, "ab");
}

// ===== Semaphore =====

// Two permits: two tasks in at a time, the others in FIFO order.
//
//     sem = asyncio.Semaphore(2)
//     async def w(n):
//         async with sem:
//             log.append(f"{n} in"); await asyncio.sleep(0); log.append(f"{n} out")
//     for n in "abcde": spawn(w(n))
//     print(steps(7))
//     # [['a in', 'b in'], ['a out', 'b out'], ['c in', 'd in'], ['c out', 'd out'], ['e in'],
//     #  ['e out'], []]
#[test]
fn semaphore_admits_permits_tasks_in_fifo_order() {
    let (mut lp, log) = (vloop(), Log::new());
    let sem = Semaphore::new(2);
    for name in ["a", "b", "c", "d", "e"] {
        let (sem, log) = (sem.clone(), log.clone());
        lp.spawn(async move {
            let permit = sem.acquire().await;
            log.push(format!("{name} in"));
            yield_now().await;
            log.push(format!("{name} out"));
            drop(permit);
        });
    }
    assert_eq!(
        steps(&mut lp, &log, 7),
        [
            vec!["a in", "b in"],
            vec!["a out", "b out"],
            vec!["c in", "d in"],
            vec!["c out", "d out"],
            vec!["e in"],
            vec!["e out"],
            vec![]
        ]
    );
    assert_eq!(sem.available_permits(), 2);
}

/// A task body: acquires a permit and keeps it in `held`; logs `"<name> in"`, or
/// `"<name> cancelled"` if dropped before.
fn holder(sem: &Semaphore, held: &Rc<RefCell<Vec<Permit>>>, name: &'static str, log: &Log) -> impl Future<Output = ()> {
    let (sem, held, log) = (sem.clone(), held.clone(), log.clone());
    async move {
        let cancelled = log.on_drop(format!("{name} cancelled"));
        let p = sem.acquire().await;
        held.borrow_mut().push(p);
        log.push(format!("{name} in"));
        cancelled.defuse();
    }
}

fn sem_state(sem: &Semaphore) -> String {
    format!("value={} locked={}", sem.available_permits(), sem.is_locked())
}

// add_permits(n) is n releases: each permit goes straight to the next waiter, in order.
//
//     sem = asyncio.Semaphore(0)
//     for n in "abc": spawn(holder(n))      # acquire, log "<n> in", never release
//     out = [step()]
//     def add2(): sem.release(); sem.release(); log.append(f"value={sem._value} locked={sem.locked()}")
//     soon(add2); out += steps(2)
//     soon(add2); out += steps(2)
//     out.append(f"value={sem._value} locked={sem.locked()}")
//     # [[], ['value=0 locked=True'], ['a in', 'b in'], ['value=1 locked=True'], ['c in'],
//     #  'value=1 locked=False']
#[test]
fn semaphore_add_permits_hands_them_to_waiters_in_order() {
    let (mut lp, log) = (vloop(), Log::new());
    let held = Rc::new(RefCell::new(Vec::new()));
    let sem = Semaphore::new(0);
    for name in ["a", "b", "c"] {
        lp.spawn(holder(&sem, &held, name, &log));
    }
    let mut out = steps(&mut lp, &log, 1);
    for _ in 0..2 {
        let (sem2, log2) = (sem.clone(), log.clone());
        soon(&lp, move || {
            sem2.add_permits(2);
            log2.push(sem_state(&sem2));
        });
        out.extend(steps(&mut lp, &log, 2));
    }
    assert_eq!(
        out,
        [vec![], vec!["value=0 locked=true"], vec!["a in", "b in"], vec!["value=1 locked=true"], vec!["c in"]]
    );
    assert_eq!(sem_state(&sem), "value=1 locked=false");
    assert_eq!(held.borrow().len(), 3);
    held.borrow_mut().clear();
    assert_eq!(sem.available_permits(), 4, "dropping the permits gives them back");
}

// No barging: a released permit is handed to the first waiter, so a newcomer finds none.
//
//     sem = asyncio.Semaphore(1); loop.run_until_complete(sem.acquire())
//     spawn(releaser("a"))                  # acquire, log "<n> in", release
//     out = [step()]
//     async def newcomer():
//         await asyncio.sleep(0)
//         log.append(f"c sees locked={sem.locked()}")
//         await releaser("c")
//     spawn(newcomer())
//     def rel(): sem.release(); log.append(f"released: value={sem._value} locked={sem.locked()}")
//     soon(rel); out += steps(4)
//     out.append(f"value={sem._value}")
//     # [[], ['released: value=0 locked=True'], ['c sees locked=True', 'a in'], ['c in'], [],
//     #  'value=1']
//
// The Rust newcomer also logs what its try_acquire got.
#[test]
fn semaphore_newcomer_does_not_barge_past_a_woken_waiter() {
    let (mut lp, log) = (vloop(), Log::new());
    let sem = Semaphore::new(1);
    let p = sem.try_acquire().unwrap();
    let releaser = |name: &'static str| {
        let (sem, log) = (sem.clone(), log.clone());
        async move {
            let _permit = sem.acquire().await;
            log.push(format!("{name} in"));
        }
    };
    lp.spawn(releaser("a"));
    let mut out = steps(&mut lp, &log, 1);
    let (nsem, nlog, newcomer) = (sem.clone(), log.clone(), releaser("c"));
    lp.spawn(async move {
        yield_now().await;
        let taken = nsem.try_acquire().is_some();
        nlog.push(format!(
            "c sees locked={} try_acquire={}",
            nsem.is_locked(),
            if taken { "taken" } else { "refused" }
        ));
        newcomer.await;
    });
    let (sem2, log2) = (sem.clone(), log.clone());
    soon(&lp, move || {
        drop(p);
        log2.push(format!("released: {}", sem_state(&sem2)));
    });
    out.extend(steps(&mut lp, &log, 4));
    assert_eq!(
        out,
        [
            vec![],
            vec!["released: value=0 locked=true"],
            vec!["c sees locked=true try_acquire=refused", "a in"],
            vec!["c in"],
            vec![]
        ]
    );
    assert_eq!(sem.available_permits(), 1);
}

// A waiter cancelled before it is woken leaves the line; the next permit goes to the next one.
//
//     sem = asyncio.Semaphore(0)
//     a = spawn(holder("a")); spawn(holder("b")); out = [step()]
//     soon(a.cancel); out += [step()]
//     soon(sem.release); out += steps(2)
//     out.append(f"value={sem._value}")
//     # [[], [], ['a cancelled'], ['b in'], 'value=0']
#[test]
fn semaphore_waiter_cancelled_before_it_is_woken_leaves_the_line() {
    let (mut lp, log) = (vloop(), Log::new());
    let held = Rc::new(RefCell::new(Vec::new()));
    let sem = Semaphore::new(0);
    let a = shared(lp.spawn(holder(&sem, &held, "a", &log)));
    lp.spawn(holder(&sem, &held, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let a2 = a.clone();
    soon(&lp, move || assert!(a2.cancel()));
    out.extend(steps(&mut lp, &log, 1));
    let sem2 = sem.clone();
    soon(&lp, move || sem2.add_permits(1));
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec!["b in"]]);
    assert_eq!(sem.available_permits(), 0);
}

// The issue's case for Semaphore: the permit handed to a woken waiter that is then cancelled
// goes on to the next waiter.
//
//     def cb(): sem.release(); log.append(f"value={sem._value}"); a.cancel()
//     soon(cb); out += steps(3)
//     out.append(f"value={sem._value}")
//     # [[], ['value=0'], ['a cancelled'], ['b in'], 'value=0']
#[test]
fn semaphore_waiter_woken_then_cancelled_passes_the_permit_on() {
    let (mut lp, log) = (vloop(), Log::new());
    let held = Rc::new(RefCell::new(Vec::new()));
    let sem = Semaphore::new(0);
    let a = shared(lp.spawn(holder(&sem, &held, "a", &log)));
    lp.spawn(holder(&sem, &held, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (sem2, a2, log2) = (sem.clone(), a.clone(), log.clone());
    soon(&lp, move || {
        sem2.add_permits(1); // handed to a
        log2.push(format!("value={}", sem2.available_permits()));
        a2.cancel();
    });
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec!["value=0"], vec!["a cancelled"], vec!["b in"]]);
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(held.borrow().len(), 1);
}

// Cancelled, then a permit released in the same callback: asyncio hands the permit past the
// cancelled waiter to b at once; so does aioloop, which sees a's cancellation through a's
// waker. (Under a foreign waker it cannot: see "Foreign wakers" below.)
//
//     sem = asyncio.Semaphore(0)
//     a = spawn(holder("a")); spawn(holder("b"))
//     out = [step()]
//     def cb(): a.cancel(); sem.release()
//     soon(cb); out += steps(3)
//     # [[], [], ['a cancelled', 'b in'], []]
#[test]
fn semaphore_release_skips_a_waiter_already_cancelled() {
    let (mut lp, log) = (vloop(), Log::new());
    let held = Rc::new(RefCell::new(Vec::new()));
    let sem = Semaphore::new(0);
    let a = shared(lp.spawn(holder(&sem, &held, "a", &log)));
    lp.spawn(holder(&sem, &held, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (sem2, a2) = (sem.clone(), a.clone());
    soon(&lp, move || {
        a2.cancel();
        sem2.add_permits(1);
    });
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled", "b in"], vec![]]);
}

// Woken then cancelled with nobody behind it: the permit comes back.
//
//     a = spawn(holder("a")); out = [step()]
//     def cb(): sem.release(); a.cancel()
//     soon(cb); out += steps(2)
//     out.append(f"value={sem._value} locked={sem.locked()}")
//     # [[], [], ['a cancelled'], 'value=1 locked=False']
#[test]
fn semaphore_lone_waiter_woken_then_cancelled_returns_the_permit() {
    let (mut lp, log) = (vloop(), Log::new());
    let held = Rc::new(RefCell::new(Vec::new()));
    let sem = Semaphore::new(0);
    let a = shared(lp.spawn(holder(&sem, &held, "a", &log)));
    let mut out = steps(&mut lp, &log, 1);
    let (sem2, a2) = (sem.clone(), a.clone());
    soon(&lp, move || {
        sem2.add_permits(1);
        a2.cancel();
    });
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"]]);
    assert_eq!(sem_state(&sem), "value=1 locked=false");
    assert!(sem.try_acquire().is_some());
}

// A permit freed while the only waiter is already woken stays free; a newcomer that queues
// behind that woken waiter must still get it. asyncio's acquire(), after it took its permit,
// wakes the next waiter if permits are left (`if self._value > 0: self._wake_up_next()`).
//
//     sem = asyncio.Semaphore(2)
//     loop.run_until_complete(sem.acquire()); loop.run_until_complete(sem.acquire())
//     spawn(holder("a")); out = [step()]
//     async def newcomer():
//         await asyncio.sleep(0)
//         await holder("c")
//     spawn(newcomer())
//     def rel(): sem.release(); sem.release(); log.append(f"released twice: value={sem._value}")
//     soon(rel); out += steps(3)
//     out.append(f"value={sem._value}")
//     # [[], ['released twice: value=1'], ['a in'], ['c in'], 'value=0']
#[test]
fn semaphore_permit_left_over_after_a_woken_waiter_goes_to_the_next() {
    let (mut lp, log) = (vloop(), Log::new());
    let held = Rc::new(RefCell::new(Vec::new()));
    let sem = Semaphore::new(2);
    let (p1, p2) = (sem.try_acquire().unwrap(), sem.try_acquire().unwrap());
    lp.spawn(holder(&sem, &held, "a", &log));
    let mut out = steps(&mut lp, &log, 1);
    let newcomer = holder(&sem, &held, "c", &log);
    lp.spawn(async move {
        yield_now().await;
        newcomer.await;
    });
    let (sem2, log2) = (sem.clone(), log.clone());
    soon(&lp, move || {
        drop(p1); // handed to a
        drop(p2); // nobody left to hand it to: free
        log2.push(format!("released twice: value={}", sem2.available_permits()));
    });
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec!["released twice: value=1"], vec!["a in"], vec!["c in"]]);
    assert_eq!(sem.available_permits(), 0);
}

// ===== BoundedSemaphore =====

// A release past the initial count is an error and changes nothing.
//
//     sem = asyncio.BoundedSemaphore(2); out = []
//     try: sem.release()
//     except ValueError as e: out.append(f"ValueError: {e}")
//     out.append(f"value={sem._value}")
//     loop.run_until_complete(sem.acquire()); out.append(f"value={sem._value}")
//     sem.release(); out.append(f"value={sem._value}")
//     try: sem.release()
//     except ValueError as e: out.append(f"ValueError: {e}")
//     # ['ValueError: BoundedSemaphore released too many times', 'value=2', 'value=1', 'value=2',
//     #  'ValueError: BoundedSemaphore released too many times']
#[test]
fn bounded_semaphore_release_past_the_initial_count_is_an_error() {
    let mut out = Vec::new();
    let sem = BoundedSemaphore::new(2);
    let release = |out: &mut Vec<String>| {
        if let Err(e) = sem.release() {
            out.push(format!("ValueError: {e}"));
        }
    };
    release(&mut out);
    out.push(format!("value={}", sem.available_permits()));
    let mut lp = vloop();
    lp.run_until_complete(async { sem.acquire().await.forget() }); // asyncio's bare acquire()
    out.push(format!("value={}", sem.available_permits()));
    release(&mut out);
    out.push(format!("value={}", sem.available_permits()));
    release(&mut out);
    assert_eq!(
        out,
        [
            "ValueError: BoundedSemaphore released too many times",
            "value=2",
            "value=1",
            "value=2",
            "ValueError: BoundedSemaphore released too many times"
        ]
    );
    assert_eq!(TooManyReleases.to_string(), "BoundedSemaphore released too many times");
}

// asyncio compares the free count with the bound, which misses a permit promised to a woken
// waiter: there, a second release lets a second task in past a bound of 1. Here a release is
// accepted only for a permit that is out without a guard (forgotten), so the second release is
// the error and b keeps waiting.
//
//     sem = asyncio.BoundedSemaphore(1); loop.run_until_complete(sem.acquire())
//     for n in "ab": spawn(holder(n))       # with sem = this semaphore
//     out = [step()]
//     def rel():
//         sem.release(); log.append(f"released value={sem._value} locked={sem.locked()}")
//         try: sem.release(); log.append(f"again value={sem._value}")
//         except ValueError as e: log.append(f"ValueError: {e}")
//     soon(rel); out += steps(2)
//     # [[], ['released value=0 locked=True', 'again value=0'], ['a in', 'b in']]   (asyncio)
#[test]
fn bounded_semaphore_refuses_a_release_while_the_permit_is_promised_to_a_waiter() {
    let (mut lp, log) = (vloop(), Log::new());
    let sem = BoundedSemaphore::new(1);
    sem.try_acquire().unwrap().forget();
    let held = Rc::new(RefCell::new(Vec::new()));
    for name in ["a", "b"] {
        let (sem, held, log) = (sem.clone(), held.clone(), log.clone());
        lp.spawn(async move {
            let permit = sem.acquire().await;
            held.borrow_mut().push(permit);
            log.push(format!("{name} in"));
        });
    }
    let mut out = steps(&mut lp, &log, 1);
    let (sem2, log2) = (sem.clone(), log.clone());
    soon(&lp, move || {
        sem2.release().unwrap();
        log2.push(format!("released value={} locked={}", sem2.available_permits(), sem2.is_locked()));
        match sem2.release() {
            Ok(()) => log2.push(format!("again value={}", sem2.available_permits())),
            Err(e) => log2.push(format!("ValueError: {e}")),
        }
    });
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(
        out,
        [
            vec![],
            vec!["released value=0 locked=true", "ValueError: BoundedSemaphore released too many times"],
            vec!["a in"]
        ]
    );
    // a's permit, dropped, goes to b: guards never break the bound.
    held.borrow_mut().clear();
    assert_eq!(steps(&mut lp, &log, 1), [vec!["b in"]]);
    held.borrow_mut().clear();
    assert_eq!((sem.available_permits(), sem.release()), (1, Err(TooManyReleases)));
}

// Waiters are served in FIFO order and a permit handed to a woken waiter that is then
// cancelled goes on, as with Semaphore (semaphore_waiter_woken_then_cancelled_passes_the_permit_on).
//
//     sem = asyncio.BoundedSemaphore(1); loop.run_until_complete(sem.acquire())
//     a = spawn(holder("a")); spawn(holder("b")); out = [step()]
//     def cb(): sem.release(); log.append(f"value={sem._value}"); a.cancel()
//     soon(cb); out += steps(3)
//     # [[], ['value=0'], ['a cancelled'], ['b in']]
#[test]
fn bounded_semaphore_passes_a_cancelled_waiters_permit_on() {
    let (mut lp, log) = (vloop(), Log::new());
    let sem = BoundedSemaphore::new(1);
    sem.try_acquire().unwrap().forget();
    let held = Rc::new(RefCell::new(Vec::new()));
    let waiter = |name: &'static str| {
        let (sem, held, log) = (sem.clone(), held.clone(), log.clone());
        async move {
            let cancelled = log.on_drop(format!("{name} cancelled"));
            let permit = sem.acquire().await;
            held.borrow_mut().push(permit);
            log.push(format!("{name} in"));
            cancelled.defuse();
        }
    };
    let a = shared(lp.spawn(waiter("a")));
    lp.spawn(waiter("b"));
    let mut out = steps(&mut lp, &log, 1);
    let (sem2, a2, log2) = (sem.clone(), a.clone(), log.clone());
    soon(&lp, move || {
        sem2.release().unwrap();
        log2.push(format!("value={}", sem2.available_permits()));
        a2.cancel();
    });
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec!["value=0"], vec!["a cancelled"], vec!["b in"]]);
    assert_eq!(sem.release(), Err(TooManyReleases), "b holds the only permit, with a guard");
}

// ===== Event =====

fn event_waiter(ev: &Event, name: &'static str, log: &Log) -> impl Future<Output = ()> {
    let (ev, log) = (ev.clone(), log.clone());
    async move {
        let cancelled = log.on_drop(format!("{name} cancelled"));
        ev.wait().await;
        log.push(format!("{name} woke"));
        cancelled.defuse();
    }
}

// set() wakes every waiter; they resume in the next iteration, in the order they began to wait.
//
//     ev = asyncio.Event()
//     for n in "abc": spawn(ev_waiter(n))
//     out = [step()]
//     soon(ev.set); out += steps(2)
//     # [[], [], ['a woke', 'b woke', 'c woke']]
#[test]
fn event_set_wakes_every_waiter_in_wait_order() {
    let (mut lp, log) = (vloop(), Log::new());
    let ev = Event::new();
    for name in ["a", "b", "c"] {
        lp.spawn(event_waiter(&ev, name, &log));
    }
    let mut out = steps(&mut lp, &log, 1);
    let ev2 = ev.clone();
    soon(&lp, move || ev2.set());
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec![], vec!["a woke", "b woke", "c woke"]]);
    assert!(ev.is_set());
}

// wait() on a set event returns at once, without yielding.
//
//     ev = asyncio.Event(); ev.set()
//     async def w(): log.append("before"); await ev.wait(); log.append("after")
//     spawn(w()); print(steps(1))
//     # [['before', 'after']]
#[test]
fn event_wait_returns_at_once_when_set() {
    let (mut lp, log) = (vloop(), Log::new());
    let ev = Event::new();
    ev.set();
    let (ev2, log2) = (ev.clone(), log.clone());
    lp.spawn(async move {
        log2.push("before");
        ev2.wait().await;
        log2.push("after");
    });
    assert_eq!(steps(&mut lp, &log, 1), [vec!["before", "after"]]);
}

// clear() does not take back a wake-up already given: set(); clear() in one callback still wakes
// the waiters. Later waiters block until the next set().
//
//     for n in "ab": spawn(ev_waiter(n))
//     out = [step()]
//     def cb(): ev.set(); ev.clear(); log.append(f"is_set={ev.is_set()}")
//     soon(cb); out += steps(2)
//     spawn(ev_waiter("c")); out += steps(1)
//     soon(ev.set); out += steps(2)
//     # [[], ['is_set=False'], ['a woke', 'b woke'], [], [], ['c woke']]
#[test]
fn event_clear_blocks_later_waiters_only() {
    let (mut lp, log) = (vloop(), Log::new());
    let ev = Event::new();
    lp.spawn(event_waiter(&ev, "a", &log));
    lp.spawn(event_waiter(&ev, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (ev2, log2) = (ev.clone(), log.clone());
    soon(&lp, move || {
        ev2.set();
        ev2.clear();
        log2.push(format!("is_set={}", ev2.is_set()));
    });
    out.extend(steps(&mut lp, &log, 2));
    lp.spawn(event_waiter(&ev, "c", &log));
    out.extend(steps(&mut lp, &log, 1));
    let ev2 = ev.clone();
    soon(&lp, move || ev2.set());
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec!["is_set=false"], vec!["a woke", "b woke"], vec![], vec![], vec!["c woke"]]);
}

// A cancelled waiter leaves; set() wakes the others, still in the order they began to wait,
// including one that began after the cancelled one left.
//
//     ts = {n: spawn(ev_waiter(n)) for n in "abc"}
//     out = [step()]
//     soon(ts["b"].cancel); out += steps(2)
//     spawn(ev_waiter("d")); out += steps(1)
//     soon(ev.set); out += steps(2)
//     # [[], [], ['b cancelled'], [], [], ['a woke', 'c woke', 'd woke']]
#[test]
fn event_cancelled_waiter_leaves_and_set_keeps_wait_order() {
    let (mut lp, log) = (vloop(), Log::new());
    let ev = Event::new();
    lp.spawn(event_waiter(&ev, "a", &log));
    let b = shared(lp.spawn(event_waiter(&ev, "b", &log)));
    lp.spawn(event_waiter(&ev, "c", &log));
    let mut out = steps(&mut lp, &log, 1);
    let b2 = b.clone();
    soon(&lp, move || assert!(b2.cancel()));
    out.extend(steps(&mut lp, &log, 2));
    lp.spawn(event_waiter(&ev, "d", &log));
    out.extend(steps(&mut lp, &log, 1));
    let ev2 = ev.clone();
    soon(&lp, move || ev2.set());
    out.extend(steps(&mut lp, &log, 2));
    assert_eq!(out, [vec![], vec![], vec!["b cancelled"], vec![], vec![], vec!["a woke", "c woke", "d woke"]]);
}

// ===== Condition =====

/// A task body: takes the lock, waits on `cond`, logs `"<name> woke locked=<is_locked>"` while
/// holding the lock again, unlocks; logs `"<name> cancelled"` if dropped before.
fn cond_waiter(cond: &Condition<()>, name: &'static str, log: &Log) -> impl Future<Output = ()> {
    let (cond, log) = (cond.clone(), log.clone());
    async move {
        let cancelled = log.on_drop(format!("{name} cancelled"));
        let g = cond.lock().lock().await;
        let g = cond.wait(g).await;
        log.push(format!("{name} woke locked={}", cond.lock().is_locked()));
        drop(g);
        cancelled.defuse();
    }
}

/// A task body: takes the lock, notifies `n` waiters (all if `None`), unlocks.
fn notifier(cond: &Condition<()>, n: Option<usize>) -> impl Future<Output = ()> {
    let cond = cond.clone();
    async move {
        let _g = cond.lock().lock().await;
        match n {
            Some(n) => cond.notify(n),
            None => cond.notify_all(),
        }
    }
}

// notify(n) wakes the n first waiters in FIFO order; each returns holding the lock.
//
//     cond = asyncio.Condition()
//     for n in "abcd": spawn(cond_waiter(n))
//     out = [step()]
//     spawn(notifier(1)); out += steps(3)
//     spawn(notifier(2)); out += steps(3)
//     spawn(notifier(1)); out += steps(3)
//     # [[], [], ['a woke locked=True'], [], [], ['b woke locked=True', 'c woke locked=True'],
//     #  [], [], ['d woke locked=True'], []]
#[test]
fn condition_notify_wakes_waiters_in_fifo_order() {
    let (mut lp, log) = (vloop(), Log::new());
    let cond = Condition::new(Lock::new(()));
    for name in ["a", "b", "c", "d"] {
        lp.spawn(cond_waiter(&cond, name, &log));
    }
    let mut out = steps(&mut lp, &log, 1);
    for n in [1, 2, 1] {
        lp.spawn(notifier(&cond, Some(n)));
        out.extend(steps(&mut lp, &log, 3));
    }
    assert_eq!(
        out,
        [
            vec![],
            vec![],
            vec!["a woke locked=true"],
            vec![],
            vec![],
            vec!["b woke locked=true", "c woke locked=true"],
            vec![],
            vec![],
            vec!["d woke locked=true"],
            vec![]
        ]
    );
    assert!(!cond.lock().is_locked());
}

// notify_all() wakes every waiter; they take the lock one after the other, in wait order.
//
//     for n in "abc": spawn(cond_waiter(n))
//     out = [step()]
//     spawn(notifier("all")); out += steps(3)
//     # [[], [], ['a woke locked=True', 'b woke locked=True', 'c woke locked=True'], []]
#[test]
fn condition_notify_all_wakes_every_waiter_in_order() {
    let (mut lp, log) = (vloop(), Log::new());
    let cond = Condition::new(Lock::new(()));
    for name in ["a", "b", "c"] {
        lp.spawn(cond_waiter(&cond, name, &log));
    }
    let mut out = steps(&mut lp, &log, 1);
    lp.spawn(notifier(&cond, None));
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec![], vec!["a woke locked=true", "b woke locked=true", "c woke locked=true"], vec![]]);
}

// wait() returns only once it holds the lock again: a notifier that keeps the lock across an
// await holds the woken waiters back until it unlocks.
//
//     for n in "ab": spawn(cond_waiter(n))
//     out = [step()]
//     async def notifier():
//         async with cond:
//             cond.notify_all(); log.append("notified")
//             await asyncio.sleep(0)
//             log.append("notifier releases")
//     spawn(notifier()); out += steps(5)
//     # [[], ['notified'], ['notifier releases'], ['a woke locked=True'], ['b woke locked=True'], []]
#[test]
fn condition_wait_reacquires_the_lock() {
    let (mut lp, log) = (vloop(), Log::new());
    let cond = Condition::new(Lock::new(()));
    lp.spawn(cond_waiter(&cond, "a", &log));
    lp.spawn(cond_waiter(&cond, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (ncond, nlog) = (cond.clone(), log.clone());
    lp.spawn(async move {
        let g = ncond.lock().lock().await;
        ncond.notify_all();
        nlog.push("notified");
        yield_now().await;
        nlog.push("notifier releases");
        drop(g);
    });
    out.extend(steps(&mut lp, &log, 5));
    assert_eq!(
        out,
        [
            vec![],
            vec!["notified"],
            vec!["notifier releases"],
            vec!["a woke locked=true"],
            vec!["b woke locked=true"],
            vec![]
        ]
    );
}

// A waiter cancelled before it is notified leaves; notify(1) goes to the next one.
//
//     ts = {n: spawn(cond_waiter(n)) for n in "ab"}
//     out = [step()]
//     soon(ts["a"].cancel); out += steps(2)
//     spawn(notifier(1)); out += steps(3)
//     # 3.11.7, 3.12.1: [[], [], ['a cancelled'], [], ['b woke locked=True'], []]
//     # 3.13.0:         [[], [], ['a cancelled'], ['b woke locked=True'], [], []]
//
// 3.13's wait() calls notify(1) whenever it raises, even if it was never notified (a spurious
// wake-up, which the condition-variable contract allows); aioloop, like 3.11, passes on only a
// notification it received.
#[test]
fn condition_waiter_cancelled_before_notify_leaves_the_line() {
    let (mut lp, log) = (vloop(), Log::new());
    let cond = Condition::new(Lock::new(()));
    let a = shared(lp.spawn(cond_waiter(&cond, "a", &log)));
    lp.spawn(cond_waiter(&cond, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let a2 = a.clone();
    soon(&lp, move || assert!(a2.cancel()));
    out.extend(steps(&mut lp, &log, 2));
    lp.spawn(notifier(&cond, Some(1)));
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec![], vec!["b woke locked=true"], vec![]]);
}

// The issue's case for Condition: notified, then cancelled before it ran: the notification goes
// to the next waiter (only one is woken: c still waits).
//
//     ts = {n: spawn(cond_waiter(n)) for n in "abc"}
//     out = [step()]
//     async def notifier():
//         async with cond: cond.notify(1); ts["a"].cancel()
//     spawn(notifier()); out += steps(4)
//     # 3.13.0:         [[], [], ['a cancelled'], ['b woke locked=True'], []]
//     # 3.11.7, 3.12.1: [[], [], ['a cancelled'], [], []]   (the notification is lost,
//     #                  CPython gh-112202, fixed in 3.13)
#[test]
fn condition_waiter_notified_then_cancelled_passes_the_notification_on() {
    let (mut lp, log) = (vloop(), Log::new());
    let cond = Condition::new(Lock::new(()));
    let a = shared(lp.spawn(cond_waiter(&cond, "a", &log)));
    lp.spawn(cond_waiter(&cond, "b", &log));
    let c = lp.spawn(cond_waiter(&cond, "c", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (ncond, a2) = (cond.clone(), a.clone());
    lp.spawn(async move {
        let _g = ncond.lock().lock().await;
        ncond.notify(1);
        a2.cancel();
    });
    out.extend(steps(&mut lp, &log, 4));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec!["b woke locked=true"], vec![]]);
    assert!(!c.is_done(), "one notification wakes one waiter");
}

// Notified, ran, and cancelled while it waits to re-take the lock: the docs' rule ("a waiter
// cancelled after it was notified passes the notification on") and 3.13 both give the
// notification to the next waiter.
//
//     ts = {n: spawn(cond_waiter(n)) for n in "ab"}
//     out = [step()]
//     async def notifier():
//         async with cond:
//             cond.notify(1); log.append("notified")
//             await asyncio.sleep(0)   # a runs and waits for the lock
//             ts["a"].cancel()
//             await asyncio.sleep(0)
//             log.append("notifier releases")
//     spawn(notifier()); out += steps(6)
//     # 3.13.0: [[], ['notified'], [], ['notifier releases'], ['a cancelled'],
//     #          ['b woke locked=True'], []]
//     # 3.11.7, 3.12.1: the same without 'b woke' (lost).
//
// In 3.13 the cancelled waiter first re-takes the lock (one iteration more); an aioloop task is
// dropped at once, so b wakes one iteration earlier.
#[test]
fn condition_waiter_cancelled_while_relocking_passes_the_notification_on() {
    let (mut lp, log) = (vloop(), Log::new());
    let cond = Condition::new(Lock::new(()));
    let a = shared(lp.spawn(cond_waiter(&cond, "a", &log)));
    lp.spawn(cond_waiter(&cond, "b", &log));
    let mut out = steps(&mut lp, &log, 1);
    let (ncond, nlog, a2) = (cond.clone(), log.clone(), a.clone());
    lp.spawn(async move {
        let g = ncond.lock().lock().await;
        ncond.notify(1);
        nlog.push("notified");
        yield_now().await; // a runs and waits for the lock
        a2.cancel();
        yield_now().await;
        nlog.push("notifier releases");
        drop(g);
    });
    out.extend(steps(&mut lp, &log, 5));
    assert_eq!(
        out,
        [
            vec![],
            vec!["notified"],
            vec![],
            vec!["a cancelled", "notifier releases"],
            vec!["b woke locked=true"],
            vec![]
        ]
    );
}

// notify_all() wakes in wait order also after a waiter left and another took its place.
//
//     ts = {n: spawn(cond_waiter(n)) for n in "abc"}
//     out = [step()]
//     soon(ts["b"].cancel); out += steps(2)
//     spawn(cond_waiter("d")); out += steps(1)
//     spawn(notifier("all")); out += steps(3)
//     # 3.11.7, 3.12.1: [[], [], ['b cancelled'], [], [], ['a woke locked=True',
//     #                  'c woke locked=True', 'd woke locked=True'], []]
//     # (3.13.0 wakes a spuriously when b is cancelled; c and d then wake in the same order.)
#[test]
fn condition_notify_all_keeps_wait_order_after_a_waiter_left() {
    let (mut lp, log) = (vloop(), Log::new());
    let cond = Condition::new(Lock::new(()));
    lp.spawn(cond_waiter(&cond, "a", &log));
    let b = shared(lp.spawn(cond_waiter(&cond, "b", &log)));
    lp.spawn(cond_waiter(&cond, "c", &log));
    let mut out = steps(&mut lp, &log, 1);
    let b2 = b.clone();
    soon(&lp, move || assert!(b2.cancel()));
    out.extend(steps(&mut lp, &log, 2));
    lp.spawn(cond_waiter(&cond, "d", &log));
    out.extend(steps(&mut lp, &log, 1));
    lp.spawn(notifier(&cond, None));
    out.extend(steps(&mut lp, &log, 3));
    assert_eq!(
        out,
        [
            vec![],
            vec![],
            vec!["b cancelled"],
            vec![],
            vec![],
            vec!["a woke locked=true", "c woke locked=true", "d woke locked=true"],
            vec![]
        ]
    );
}

// wait_for checks the predicate at once (no wait when it holds), then after each notification,
// holding the lock each time.
//
//     cond = asyncio.Condition(); val = [0]
//     async def waiter(n, k):
//         async with cond:
//             log.append(f"{n} checks")
//             await cond.wait_for(lambda: (log.append(f"{n} pred {val[0]}"), val[0] >= k)[1])
//             log.append(f"{n} done locked={cond.locked()}")
//     spawn(waiter("a", 0)); out = [step()]
//     spawn(waiter("b", 2)); out += [step()]
//     async def bump():
//         async with cond:
//             val[0] += 1; cond.notify_all(); log.append(f"bumped {val[0]}")
//     for _ in range(2):
//         spawn(bump()); out += steps(2)
//     # [['a checks', 'a pred 0', 'a done locked=True'], ['b checks', 'b pred 0'], ['bumped 1'],
//     #  ['b pred 1'], ['bumped 2'], ['b pred 2', 'b done locked=True']]
#[test]
fn condition_wait_for_checks_at_once_then_after_each_notification() {
    let (mut lp, log) = (vloop(), Log::new());
    let cond = Condition::new(Lock::new(0));
    let waiter = |name: &'static str, k: i32| {
        let (cond, log) = (cond.clone(), log.clone());
        async move {
            let g = cond.lock().lock().await;
            log.push(format!("{name} checks"));
            let g = cond
                .wait_for(g, |v| {
                    log.push(format!("{name} pred {v}"));
                    *v >= k
                })
                .await;
            log.push(format!("{name} done locked={}", cond.lock().is_locked()));
            drop(g);
        }
    };
    lp.spawn(waiter("a", 0));
    let mut out = steps(&mut lp, &log, 1);
    lp.spawn(waiter("b", 2));
    out.extend(steps(&mut lp, &log, 1));
    for _ in 0..2 {
        let (cond2, log2) = (cond.clone(), log.clone());
        lp.spawn(async move {
            let mut g = cond2.lock().lock().await;
            *g += 1;
            cond2.notify_all();
            log2.push(format!("bumped {}", *g));
        });
        out.extend(steps(&mut lp, &log, 2));
    }
    assert_eq!(
        out,
        [
            vec!["a checks", "a pred 0", "a done locked=true"],
            vec!["b checks", "b pred 0"],
            vec!["bumped 1"],
            vec!["b pred 1"],
            vec!["bumped 2"],
            vec!["b pred 2", "b done locked=true"]
        ]
    );
}

// A wait_for notified and then cancelled passes the notification on, as wait() does (3.13's
// behaviour; 3.11 and 3.12 lose it, CPython gh-112202).
//
//     cond = asyncio.Condition(); val = [0]
//     def cw(n, k):
//         async def body():
//             async with cond:
//                 await cond.wait_for(lambda: val[0] >= k); log.append(f"{n} done")
//         return guard_cancel(n, body())
//     a = spawn(cw("a", 1)); spawn(cw("b", 1)); out = [step()]
//     async def setv():
//         async with cond: val[0] = 1; cond.notify(1); a.cancel()
//     spawn(setv()); out += steps(3)
//     # 3.11.7: [[], [], ['a cancelled'], []]   (b is never notified)
#[test]
fn condition_wait_for_notified_then_cancelled_passes_the_notification_on() {
    let (mut lp, log) = (vloop(), Log::new());
    let cond = Condition::new(Lock::new(0));
    let waiter = |name: &'static str| {
        let (cond, log) = (cond.clone(), log.clone());
        async move {
            let cancelled = log.on_drop(format!("{name} cancelled"));
            let g = cond.lock().lock().await;
            let _g = cond.wait_for(g, |v| *v >= 1).await;
            log.push(format!("{name} done"));
            cancelled.defuse();
        }
    };
    let a = shared(lp.spawn(waiter("a")));
    lp.spawn(waiter("b"));
    let mut out = steps(&mut lp, &log, 1);
    let (cond2, a2) = (cond.clone(), a.clone());
    lp.spawn(async move {
        *cond2.lock().lock().await = 1;
        cond2.notify(1);
        a2.cancel();
    });
    out.extend(steps(&mut lp, &log, 4));
    assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec!["b done"], vec![]]);
}

// ===== Foreign wakers =====
//
// A waiter counts as cancelled (asyncio: its future is cancelled already, so a release, a put
// or a notify skips it) only while it can be traced to its task: its last poll's waker must be
// the task's own. Under a foreign waker (a combinator that gives each future its own, such as
// futures' `FuturesUnordered`) the waiter competes until its task runs and drops it; its drop
// then passes on what it was given, so nothing is lost, only one iteration later.

/// Wakes the waker stored in it (the task's), as a combinator's per-future waker does.
struct Forward(std::sync::Mutex<Option<std::task::Waker>>);

impl std::task::Wake for Forward {
    fn wake(self: std::sync::Arc<Self>) {
        if let Some(w) = self.0.lock().unwrap().take() {
            w.wake();
        }
    }
}

/// Polls `fut` under a waker of its own that forwards to the task's waker.
fn under_foreign_waker<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let mut fut = Box::pin(fut);
    let forward = std::sync::Arc::new(Forward(std::sync::Mutex::new(None)));
    let waker = std::task::Waker::from(forward.clone());
    std::future::poll_fn(move |cx| {
        *forward.0.lock().unwrap() = Some(cx.waker().clone());
        fut.as_mut().poll(&mut std::task::Context::from_waker(&waker))
    })
}

// `semaphore_release_skips_a_waiter_already_cancelled`, with a's acquire under a foreign waker:
// the release cannot see that a's task is cancelled, hands the permit to a, and a's drop hands it
// on to b one iteration later than under a's own waker.
#[test]
fn semaphore_release_hands_the_permit_to_a_cancelled_waiter_under_a_foreign_waker() {
    for foreign in [false, true] {
        let (mut lp, log) = (vloop(), Log::new());
        let held = Rc::new(RefCell::new(Vec::new()));
        let sem = Semaphore::new(0);
        let a_body = holder(&sem, &held, "a", &log);
        let a = shared(if foreign { lp.spawn(under_foreign_waker(a_body)) } else { lp.spawn(a_body) });
        lp.spawn(holder(&sem, &held, "b", &log));
        let mut out = steps(&mut lp, &log, 1);
        let (sem2, a2, log2) = (sem.clone(), a.clone(), log.clone());
        soon(&lp, move || {
            a2.cancel();
            sem2.add_permits(1);
            log2.push(sem_state(&sem2));
        });
        out.extend(steps(&mut lp, &log, 3));
        if foreign {
            assert_eq!(out, [vec![], vec!["value=0 locked=true"], vec!["a cancelled"], vec!["b in"]]);
        } else {
            assert_eq!(out, [vec![], vec!["value=0 locked=true"], vec!["a cancelled", "b in"], vec![]]);
        }
        assert_eq!((held.borrow().len(), sem.available_permits()), (1, 0), "foreign={foreign}: b holds the permit");
    }
}

// `lock_newcomer_is_not_held_back_by_a_cancelled_waiter`, with a's lock() under a foreign waker:
// the release wakes a, so a try_lock in the same callback is refused (under a's own waker it
// takes the lock, as asyncio's acquire() does when every waiter is cancelled); a's drop frees the
// lock for the next one.
#[test]
fn lock_release_wakes_a_cancelled_waiter_under_a_foreign_waker() {
    for foreign in [false, true] {
        let (mut lp, log) = (vloop(), Log::new());
        let lock = Lock::new(Vec::new());
        let g = lock.try_lock().unwrap();
        let a_body = locker(&lock, "a", &log);
        let a = shared(if foreign { lp.spawn(under_foreign_waker(a_body)) } else { lp.spawn(a_body) });
        let mut out = steps(&mut lp, &log, 1);
        let (lock2, a2, log2) = (lock.clone(), a.clone(), log.clone());
        soon(&lp, move || {
            a2.cancel();
            drop(g);
            let taken = lock2.try_lock().is_some();
            log2.push(format!("try_lock {}", if taken { "taken" } else { "refused" }));
        });
        out.extend(steps(&mut lp, &log, 2));
        if foreign {
            assert_eq!(out, [vec![], vec!["try_lock refused"], vec!["a cancelled"]]);
        } else {
            assert_eq!(out, [vec![], vec!["try_lock taken"], vec!["a cancelled"]]);
        }
        assert!(lock.try_lock().is_some(), "foreign={foreign}: the lock is free again, not lost");
    }
}

// `queue_put_skips_a_getter_already_cancelled`, with a's get() under a foreign waker: the put
// wakes a, whose drop passes the item on to b one iteration later.
#[test]
fn queue_put_wakes_a_cancelled_getter_under_a_foreign_waker() {
    for foreign in [false, true] {
        let (mut lp, log) = (vloop(), Log::new());
        let q = Queue::new(0);
        let a_body = getter(&q, "a", &log);
        let a = shared(if foreign { lp.spawn(under_foreign_waker(a_body)) } else { lp.spawn(a_body) });
        lp.spawn(getter(&q, "b", &log));
        let mut out = steps(&mut lp, &log, 1);
        let (q2, a2) = (q.clone(), a.clone());
        soon(&lp, move || {
            a2.cancel();
            q2.put_nowait(1).unwrap();
        });
        out.extend(steps(&mut lp, &log, 3));
        if foreign {
            assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec!["b got 1"]]);
        } else {
            assert_eq!(out, [vec![], vec![], vec!["a cancelled", "b got 1"], vec![]]);
        }
    }
}

// The same for a Condition: notify(1) goes to the cancelled waiter a, whose drop passes the
// notification on to b.
#[test]
fn condition_notify_wakes_a_cancelled_waiter_under_a_foreign_waker() {
    for foreign in [false, true] {
        let (mut lp, log) = (vloop(), Log::new());
        let cond = Condition::new(Lock::new(()));
        let a_body = cond_waiter(&cond, "a", &log);
        let a = shared(if foreign { lp.spawn(under_foreign_waker(a_body)) } else { lp.spawn(a_body) });
        lp.spawn(cond_waiter(&cond, "b", &log));
        let mut out = steps(&mut lp, &log, 1);
        let (cond2, a2) = (cond.clone(), a.clone());
        soon(&lp, move || {
            a2.cancel();
            cond2.notify(1);
        });
        out.extend(steps(&mut lp, &log, 3));
        if foreign {
            assert_eq!(out, [vec![], vec![], vec!["a cancelled"], vec!["b woke locked=true"]]);
        } else {
            assert_eq!(out, [vec![], vec![], vec!["a cancelled", "b woke locked=true"], vec![]]);
        }
    }
}

// ===== Memory =====

/// Counts the bytes allocated and not yet freed by the current thread (tests run on several
/// threads at once; each sees only its own allocations).
struct CountingAlloc;

thread_local! {
    static LIVE_BYTES: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

fn add_live(n: isize) {
    let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + n));
}

// SAFETY: every method forwards to `System` with the caller's arguments, so `System`'s
// guarantees are ours; the counting touches a const-initialized thread-local `Cell`, which does
// not allocate.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        add_live(layout.size() as isize);
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        add_live(-(layout.size() as isize));
        // SAFETY: `ptr` came from `System` with this layout (every allocation goes through it).
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        add_live(new_size as isize - layout.size() as isize);
        // SAFETY: as for `dealloc`; `new_size` is the caller's, under `realloc`'s contract.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

// Waiting for an event with a timeout, over and over (a worker checking a shutdown flag), must
// not grow memory: every waiter that leaves must leave nothing behind. asyncio removes the
// waiter's future from the event's deque in `wait()`'s `finally`. (An `Event` never looks at the
// front of its arrival list, where the other primitives drop stale entries lazily, so the list
// must be compacted when waiters leave: without that, 30,000 waits left 491,520 bytes.)
#[test]
#[cfg_attr(miri, ignore = "32,000 timed waits take minutes under Miri")]
fn event_waits_that_time_out_leave_nothing_behind() {
    let mut lp = vloop();
    let grown = lp.run_until_complete(async {
        let ev = Event::new();
        let wait_with_timeout = |n: usize| {
            let ev = ev.clone();
            async move {
                for _ in 0..n {
                    let r = aioloop::timeout(std::time::Duration::from_millis(1), ev.wait()).await;
                    assert!(r.is_err(), "nobody sets the event");
                }
            }
        };
        wait_with_timeout(2_000).await; // warm up: the loop's and the event's buffers settle
        let before = LIVE_BYTES.with(|c| c.get());
        wait_with_timeout(30_000).await;
        LIVE_BYTES.with(|c| c.get()) - before
    });
    assert!(grown < 16 * 1024, "30,000 timed-out waits left {grown} bytes allocated");
}
