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
