//! Wakers: stale wakers on reused slots, identity, wakes from other threads while the loop is
//! blocked, wake storms, wakes during a task's own poll, wakers that outlive their loop
//! (reliability checklist items 1-7).

// `waker.clone().wake()` is deliberate here: it exercises the vtable's `clone` and by-value `wake`.
#![allow(clippy::waker_clone_wake)]

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use aioloop::EventLoop;

fn vloop() -> EventLoop {
    EventLoop::builder().virtual_time(true).build().unwrap()
}

/// A future that stores its waker in `slot`, counts its polls, and completes when `done` is set.
async fn parked(slot: Rc<RefCell<Option<Waker>>>, polls: Rc<Cell<u32>>, done: Rc<Cell<bool>>) {
    poll_fn(|cx| {
        polls.set(polls.get() + 1);
        *slot.borrow_mut() = Some(cx.waker().clone());
        if done.get() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

#[test]
fn stale_waker_of_a_finished_task_does_not_wake_the_slots_new_tenant() {
    let mut lp = vloop();
    let a_slot = Rc::new(RefCell::new(None));
    let b_polls = Rc::new(Cell::new(0));
    let (a_s, b_p) = (a_slot.clone(), b_polls.clone());
    lp.run_until_complete(async move {
        // Task A records its waker and finishes; it is detached, so its slab slot is freed as
        // soon as it finishes, during the first iteration.
        drop(aioloop::spawn(parked(a_s.clone(), Rc::default(), Rc::new(Cell::new(true)))));
        aioloop::yield_now().await;
        let stale = a_s.borrow_mut().take().expect("A ran");
        // Task B is the next task inserted: the slab hands it A's freed slot (LIFO free list).
        let b = aioloop::spawn(parked(Rc::default(), b_p.clone(), Rc::default()));
        aioloop::yield_now().await;
        assert_eq!(b_p.get(), 1);
        // The stale waker must not poll B, by value, by reference, or through a clone.
        stale.wake_by_ref();
        stale.clone().wake();
        stale.wake();
        aioloop::yield_now().await;
        aioloop::yield_now().await;
        assert_eq!(b_p.get(), 1, "a stale waker polled another task");
        assert!(!b.is_done());
    });
    assert_eq!(b_polls.get(), 1);
}

#[test]
fn wakers_of_the_same_task_will_wake_each_other_and_no_other() {
    let mut lp = vloop();
    let seen: Rc<RefCell<Vec<Waker>>> = Rc::default();
    let s = seen.clone();
    let a = lp.spawn(async move {
        for _ in 0..2 {
            poll_fn(|cx| {
                s.borrow_mut().push(cx.waker().clone());
                Poll::Ready(())
            })
            .await;
            aioloop::yield_now().await;
        }
    });
    let s = seen.clone();
    let b = lp.spawn(async move {
        poll_fn(|cx| {
            s.borrow_mut().push(cx.waker().clone());
            Poll::Ready(())
        })
        .await
    });
    lp.run_until_complete(async {
        a.await.unwrap();
        b.await.unwrap();
    });
    let w = seen.borrow();
    // w[0] and w[1]: task A in two different polls; w[2]: task B.
    assert_eq!(w.len(), 3);
    let (a1, b1, a2) = (&w[0], &w[1], &w[2]);
    assert!(a1.will_wake(a2) || a1.will_wake(b1), "a task's wakers must be recognised as the same");
    let (first_a, second_a, other) = if a1.will_wake(a2) { (a1, a2, b1) } else { (a1, b1, a2) };
    assert!(first_a.will_wake(&second_a.clone()));
    assert!(!first_a.will_wake(other));
}

#[test]
#[cfg_attr(miri, ignore = "real threads and real time: slow under Miri")]
fn wake_from_another_thread_while_the_loop_is_blocked() {
    // No timers and nothing ready: the loop blocks in the poller with no timeout. Each round a
    // thread wakes the task after a random-ish delay of 0-100 µs; a lost wakeup would hang, so a
    // watchdog aborts the test after 20 s.
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = finished.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(20));
        if !f.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("lost wakeup: the loop never woke up");
            std::process::abort();
        }
    });
    let mut lp = EventLoop::new().unwrap();
    let rounds = 300u64;
    let completed = lp.run_until_complete(async move {
        let mut completed = 0;
        for round in 0..rounds {
            let slot: Arc<Mutex<(bool, Option<Waker>)>> = Arc::default();
            let s = slot.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_micros((round * 37) % 100));
                let mut g = s.lock().unwrap();
                g.0 = true;
                if let Some(w) = g.1.take() {
                    w.wake();
                }
            });
            poll_fn(|cx| {
                let mut g = slot.lock().unwrap();
                if g.0 {
                    Poll::Ready(())
                } else {
                    g.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
            t.join().unwrap();
            completed += 1;
        }
        completed
    });
    finished.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(completed, rounds);
}

#[test]
#[cfg_attr(miri, ignore = "400,000 wakes from real threads: slow under Miri")]
fn wake_storm_from_four_threads_queues_the_task_once_per_iteration() {
    let mut lp = EventLoop::new().unwrap();
    let polls = Rc::new(Cell::new(0u64));
    let waker_slot: Arc<Mutex<Option<Waker>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p, ws, st) = (polls.clone(), waker_slot.clone(), stop.clone());
    let task = lp.spawn(poll_fn(move |cx| {
        p.set(p.get() + 1);
        *ws.lock().unwrap() = Some(cx.waker().clone());
        if st.load(std::sync::atomic::Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
    lp.run_until_complete(aioloop::yield_now());
    let waker = waker_slot.lock().unwrap().clone().unwrap();
    let before = lp.stats().iterations;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let w = waker.clone();
            std::thread::spawn(move || {
                for _ in 0..100_000 {
                    w.wake_by_ref();
                }
            })
        })
        .collect();
    let s = stop.clone();
    let joiner = std::thread::spawn(move || {
        for t in threads {
            t.join().unwrap();
        }
        s.store(true, std::sync::atomic::Ordering::SeqCst);
        waker.wake(); // the last wake, after the flag: the task must see it
    });
    lp.run_until_complete(task).unwrap();
    joiner.join().unwrap();
    let iterations = lp.stats().iterations - before;
    // Deduplication: never more than one poll of the task per iteration.
    assert!(polls.get() - 1 <= iterations, "{} polls in {iterations} iterations", polls.get() - 1);
    assert!(polls.get() >= 2);
}

#[test]
fn a_task_that_wakes_itself_during_its_poll_runs_once_per_iteration() {
    let mut lp = vloop();
    let polls = Rc::new(Cell::new(0u32));
    let p = polls.clone();
    let n = 10;
    let t = lp.spawn(poll_fn(move |cx| {
        p.set(p.get() + 1);
        if p.get() > n {
            return Poll::Ready(());
        }
        // Several wakes in one poll still queue the task once.
        cx.waker().wake_by_ref();
        cx.waker().wake_by_ref();
        Poll::Pending
    }));
    let before = lp.stats().iterations;
    lp.run_until_complete(t).unwrap();
    assert_eq!(polls.get(), n + 1);
    // N+1 polls in N+1 iterations, plus the main task's own: one more iteration to resume it
    // and one for the stop.
    let iterations = lp.stats().iterations - before;
    assert_eq!(iterations, u64::from(n) + 1 + 2);
}

#[test]
fn wakers_outliving_their_loop_do_nothing() {
    let slot = Rc::new(RefCell::new(None));
    let waker = {
        let mut lp = vloop();
        lp.spawn(parked(slot.clone(), Rc::default(), Rc::default()));
        lp.run_until_complete(aioloop::yield_now());
        let w: Waker = slot.borrow_mut().take().unwrap();
        lp.close();
        w
    };
    // From this thread, then from another: wake, wake_by_ref, clone, drop.
    waker.wake_by_ref();
    waker.clone().wake();
    let w2 = waker.clone();
    std::thread::spawn(move || {
        w2.wake_by_ref();
        w2.clone().wake();
        drop(w2);
    })
    .join()
    .unwrap();
    drop(waker);
    // A new loop (possibly in the same registry slot) is not disturbed by the old wakers.
    let mut lp = vloop();
    assert_eq!(lp.run_until_complete(async { 5 }), 5);
}

#[test]
fn wake_never_runs_user_code_inline() {
    // A destructor holding a std Mutex wakes a task whose poll locks the same mutex: if wake()
    // polled the task inline this would deadlock (or panic); it must only queue it.
    let mut lp = vloop();
    let m = Rc::new(Mutex::new(0));
    let waker_slot = Rc::new(RefCell::new(None::<Waker>));
    let (m2, ws) = (m.clone(), waker_slot.clone());
    let sleeper = lp.spawn(poll_fn(move |cx| {
        let mut g = m2.try_lock().expect("the mutex must be free when the task runs");
        *g += 1;
        if *g >= 2 {
            Poll::Ready(())
        } else {
            *ws.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }));
    lp.run_until_complete(aioloop::yield_now());
    struct WakeUnderLock(Rc<Mutex<i32>>, Rc<RefCell<Option<Waker>>>);
    impl Drop for WakeUnderLock {
        fn drop(&mut self) {
            let _g = self.0.lock().unwrap();
            self.1.borrow_mut().take().unwrap().wake();
        }
    }
    drop(WakeUnderLock(m.clone(), waker_slot.clone()));
    lp.run_until_complete(sleeper).unwrap();
    assert_eq!(*m.lock().unwrap(), 2);
}
