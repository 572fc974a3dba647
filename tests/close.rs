//! Closing and cancelling with destructors that re-enter the loop (reliability checklist items
//! 9-11, 13, 15): no `BorrowMutError`, every future dropped exactly once, no hang.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use aioloop::{EventLoop, Task};

fn vloop() -> EventLoop {
    EventLoop::builder().virtual_time(true).build().unwrap()
}

/// Counts its drops.
struct DropCount(Rc<Cell<u32>>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A destructor that uses the running loop every way it can.
struct Meddler {
    victim: Rc<RefCell<Option<Task<()>>>>,
    waker: Rc<RefCell<Option<Waker>>>,
    spawned: Rc<Cell<u32>>,
}

impl Drop for Meddler {
    fn drop(&mut self) {
        if let Some(v) = self.victim.borrow().as_ref() {
            v.cancel();
        }
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
        if let Ok(t) = aioloop::try_spawn(async {}) {
            drop(t);
            self.spawned.set(self.spawned.get() + 1);
        }
        if aioloop::try_spawn(async {}).is_ok() {
            let h = aioloop::call_later(Duration::from_secs(1), || {});
            drop(h);
            drop(aioloop::spawn(aioloop::sleep(Duration::from_secs(1))));
        }
    }
}

#[test]
fn destructors_that_spawn_cancel_wake_and_set_timers_during_cancellation() {
    let mut lp = vloop();
    let victim_drops = Rc::new(Cell::new(0));
    let vd = victim_drops.clone();
    let victim = lp.spawn(async move {
        let _d = DropCount(vd);
        aioloop::sleep(Duration::from_secs(100)).await;
    });
    let victim_slot = Rc::new(RefCell::new(Some(victim)));
    let spawned = Rc::new(Cell::new(0));
    let m = Meddler { victim: victim_slot.clone(), waker: Rc::default(), spawned: spawned.clone() };
    let meddler = lp.spawn(async move {
        let _m = m;
        aioloop::sleep(Duration::from_secs(100)).await;
    });
    lp.run_until_complete(aioloop::yield_now());
    // (a) cancelled from a task.
    lp.run_until_complete(async move {
        meddler.cancel();
        aioloop::yield_now().await;
        aioloop::yield_now().await;
        assert!(meddler.is_cancelled());
    });
    assert_eq!(spawned.get(), 1);
    lp.run_until_complete(aioloop::yield_now());
    assert!(victim_slot.borrow().as_ref().unwrap().is_cancelled());
    assert_eq!(victim_drops.get(), 1);
}

#[test]
fn closing_the_loop_runs_reentrant_destructors_and_terminates() {
    let mut lp = vloop();
    let spawned = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    for _ in 0..if cfg!(miri) { 10 } else { 100 } {
        let m = Meddler { victim: Rc::default(), waker: Rc::default(), spawned: spawned.clone() };
        let d = DropCount(drops.clone());
        lp.spawn(async move {
            let _m = m;
            let _d = d;
            aioloop::sleep(Duration::from_secs(100)).await;
        });
    }
    lp.run_until_complete(aioloop::yield_now());
    // (b) by closing: the destructors run with no loop running, so try_spawn fails; they still
    // cancel and wake without a BorrowMutError.
    lp.close();
    assert_eq!(drops.get(), if cfg!(miri) { 10 } else { 100 });
}

#[test]
fn closing_drops_every_pending_future_exactly_once_even_when_they_wake_each_other() {
    let mut lp = vloop();
    // Every destructor wakes every task: n² wakes, so Miri gets a smaller n.
    let n = if cfg!(miri) { 20 } else { 1000 };
    let counters: Vec<Rc<Cell<u32>>> = (0..n).map(|_| Rc::default()).collect();
    let wakers: Rc<RefCell<Vec<Waker>>> = Rc::default();
    let mutex = Arc::new(Mutex::new(()));
    struct Neighbourly {
        count: DropCount,
        wakers: Rc<RefCell<Vec<Waker>>>,
        mutex: Arc<Mutex<()>>,
    }
    impl Drop for Neighbourly {
        fn drop(&mut self) {
            let _g = self.mutex.lock().unwrap();
            let ws: Vec<Waker> = self.wakers.borrow().clone();
            for w in ws {
                w.wake();
            }
            let _ = &self.count;
        }
    }
    for c in &counters {
        let n = Neighbourly { count: DropCount(c.clone()), wakers: wakers.clone(), mutex: mutex.clone() };
        let ws = wakers.clone();
        lp.spawn(async move {
            let _n = n;
            std::future::poll_fn(|cx| {
                ws.borrow_mut().push(cx.waker().clone());
                std::task::Poll::<()>::Pending
            })
            .await
        });
    }
    lp.run_until_complete(aioloop::yield_now());
    drop(lp);
    assert!(counters.iter().all(|c| c.get() == 1));
}

#[test]
fn cancel_and_outcome_matrix() {
    // {ok, panic on run, panic on drop} x {cancel never, immediately, after first poll, after
    // finishing} x {handle kept, dropped}: the outcome is always defined, the future is dropped
    // once, and the loop survives.
    #[derive(Clone, Copy, Debug)]
    enum Body {
        Ok,
        PanicOnRun,
        PanicOnDrop,
    }
    #[derive(Clone, Copy, Debug)]
    enum Cancel {
        Never,
        Immediately,
        AfterFirstPoll,
        AfterFinish,
    }
    struct Bomb(bool, Rc<Cell<u32>>);
    impl Drop for Bomb {
        fn drop(&mut self) {
            self.1.set(self.1.get() + 1);
            if self.0 {
                panic!("bomb");
            }
        }
    }
    for body in [Body::Ok, Body::PanicOnRun, Body::PanicOnDrop] {
        for cancel in [Cancel::Never, Cancel::Immediately, Cancel::AfterFirstPoll, Cancel::AfterFinish] {
            for keep in [true, false] {
                let mut lp = vloop();
                let drops = Rc::new(Cell::new(0));
                let d = drops.clone();
                let t = lp.spawn(async move {
                    let _b = Bomb(matches!(body, Body::PanicOnDrop), d);
                    aioloop::yield_now().await;
                    if matches!(body, Body::PanicOnRun) {
                        panic!("run");
                    }
                    5
                });
                match cancel {
                    Cancel::Immediately => assert!(t.cancel()),
                    Cancel::AfterFirstPoll => {
                        lp.stop();
                        lp.run_forever(); // exactly one iteration: the task's first step
                        assert!(t.cancel());
                    }
                    Cancel::AfterFinish => {
                        lp.run_until_complete(aioloop::sleep(Duration::from_secs(1)));
                        assert!(!t.cancel());
                    }
                    Cancel::Never => {}
                }
                let ctx = format!("{body:?} {cancel:?} keep={keep}");
                if keep {
                    let r = lp.run_until_complete(t);
                    let cancelled_in_time = matches!(cancel, Cancel::Immediately | Cancel::AfterFirstPoll);
                    match (body, cancelled_in_time) {
                        // Cancelled before its first step: the body (and its bomb) never ran.
                        (_, true) if matches!(cancel, Cancel::Immediately) => {
                            assert!(r.unwrap_err().is_cancelled(), "{ctx}")
                        }
                        (Body::PanicOnDrop, _) => assert!(r.unwrap_err().is_panic(), "{ctx}"),
                        (_, true) => assert!(r.unwrap_err().is_cancelled(), "{ctx}"),
                        (Body::Ok, false) => assert_eq!(r.unwrap(), 5, "{ctx}"),
                        (Body::PanicOnRun, false) => assert!(r.unwrap_err().is_panic(), "{ctx}"),
                    }
                } else {
                    drop(t);
                    lp.run_until_complete(aioloop::sleep(Duration::from_secs(1)));
                }
                // A task cancelled before its first step never runs its body: no guard to drop.
                let expected_drops = u32::from(!matches!(cancel, Cancel::Immediately));
                assert_eq!(drops.get(), expected_drops, "{ctx}");
                assert_eq!(lp.stats().tasks, 0, "{ctx}");
                assert_eq!(lp.run_until_complete(async { 1 }), 1, "{ctx}");
            }
        }
    }
}

#[test]
fn two_tasks_awaiting_each_other_are_freed_when_the_loop_closes() {
    let mut lp = vloop();
    let drops = Rc::new(Cell::new(0));
    let slot_a: Rc<RefCell<Option<Task<()>>>> = Rc::default();
    let slot_b: Rc<RefCell<Option<Task<()>>>> = Rc::default();
    let (sa, sb, d1, d2) = (slot_a.clone(), slot_b.clone(), drops.clone(), drops.clone());
    let a = lp.spawn(async move {
        let _d = DropCount(d1);
        aioloop::yield_now().await;
        let b = sb.borrow_mut().take().unwrap();
        let _ = b.await;
    });
    let b = lp.spawn(async move {
        let _d = DropCount(d2);
        aioloop::yield_now().await;
        let a = sa.borrow_mut().take().unwrap();
        let _ = a.await;
    });
    *slot_a.borrow_mut() = Some(a);
    *slot_b.borrow_mut() = Some(b);
    lp.run_until_complete(async {
        aioloop::yield_now().await;
        aioloop::yield_now().await;
    });
    lp.close();
    assert_eq!(drops.get(), 2);
}

/// One report: message and task name.
type Report = (String, Option<String>);

/// Installs a handler that records every report.
fn record(lp: &EventLoop) -> Rc<RefCell<Vec<Report>>> {
    let log = Rc::new(RefCell::new(vec![]));
    let l = log.clone();
    lp.set_exception_handler(move |ctx| {
        l.borrow_mut().push((ctx.message.to_string(), ctx.task.as_ref().map(|t| t.name.clone())));
    });
    log
}

/// Spawns `n` tasks named `t0`, `t1`... that sleep for a minute (each counts its drop), and
/// runs them to their sleep.
fn sleepers(lp: &mut EventLoop, n: usize, drops: &Rc<Cell<u32>>) {
    for i in 0..n {
        let d = DropCount(drops.clone());
        let t = lp.spawn(async move {
            let _d = d;
            aioloop::sleep(Duration::from_secs(60)).await;
        });
        t.set_name(format!("t{i}"));
    }
    lp.run_until_complete(aioloop::yield_now());
}

const DESTROYED: &str = "Task was destroyed but it is pending!";

/// Issue 12 s4: closing a loop with many pending tasks reports the first 10 as asyncio does,
/// then one report (with no task) that counts the others; every future is still dropped.
#[test]
fn closing_with_many_pending_tasks_reports_ten_then_how_many_more() {
    let mut lp = vloop();
    let log = record(&lp);
    let drops = Rc::new(Cell::new(0));
    sleepers(&mut lp, 1000, &drops);
    lp.close();
    assert_eq!(drops.get(), 1000);
    let log = log.borrow();
    let expected: Vec<Report> = (0..10)
        .map(|i| (DESTROYED.to_string(), Some(format!("t{i}"))))
        .chain([("990 more tasks were destroyed but pending (not reported one by one)".to_string(), None)])
        .collect();
    assert_eq!(*log, expected);
}

#[test]
fn closing_with_ten_pending_tasks_reports_each_and_with_eleven_counts_one_more() {
    for (n, summary) in [(10, None), (11, Some("1 more task was destroyed but pending (not reported one by one)"))] {
        let mut lp = vloop();
        let log = record(&lp);
        let drops = Rc::new(Cell::new(0));
        sleepers(&mut lp, n, &drops);
        lp.close();
        let log = log.borrow();
        assert_eq!(log.iter().filter(|(m, t)| m == DESTROYED && t.is_some()).count(), 10, "n = {n}");
        assert_eq!(log.len(), 10 + usize::from(summary.is_some()), "n = {n}");
        assert_eq!(log.last().filter(|(_, t)| t.is_none()).map(|(m, _)| m.as_str()), summary, "n = {n}");
    }
}

/// With the default handler, 100,000 pending tasks print 11 lines on stderr, not 100,000.
#[test]
#[cfg_attr(miri, ignore = "runs a child process")]
fn closing_with_a_hundred_thousand_pending_tasks_prints_eleven_lines() {
    if std::env::var_os("AIOLOOP_CLOSE_CHILD").is_some() {
        let mut lp = vloop();
        for _ in 0..100_000 {
            lp.spawn(aioloop::sleep(Duration::from_secs(60)));
        }
        lp.run_until_complete(aioloop::yield_now());
        drop(lp);
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "closing_with_a_hundred_thousand_pending_tasks_prints_eleven_lines", "--nocapture"])
        .env("AIOLOOP_CLOSE_CHILD", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("aioloop: ")).collect();
    assert_eq!(lines.len(), 11, "{stderr}");
    assert!(lines[..10]
        .iter()
        .all(|l| l.starts_with("aioloop: Task was destroyed but it is pending!: <Task name=Task-")));
    assert_eq!(lines[10], "aioloop: 99990 more tasks were destroyed but pending (not reported one by one)");
}
