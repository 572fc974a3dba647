//! Timers: far-future and past deadlines, never firing early, never spinning, equal deadlines
//! in insertion order, tombstone compaction (reliability checklist items 19-23, spec L5-L9).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use aioloop::EventLoop;

fn vloop() -> EventLoop {
    EventLoop::builder().virtual_time(true).build().unwrap()
}

#[test]
fn far_future_sleeps_neither_panic_nor_fire_and_can_be_cancelled() {
    let mut lp = EventLoop::new().unwrap();
    let t0 = lp.time();
    let forever = lp.spawn(aioloop::sleep(Duration::MAX));
    let secs = lp.spawn(aioloop::sleep(Duration::from_secs(u64::MAX / 10)));
    let years = lp.spawn(aioloop::sleep_until(t0 + Duration::from_secs(5 * 365 * 24 * 3600)));
    // A short real sleep beside them completes; the far ones do not fire.
    lp.run_until_complete(aioloop::sleep(Duration::from_millis(20)));
    for t in [&forever, &secs, &years] {
        assert!(!t.is_done());
        assert!(t.cancel());
    }
    lp.run_until_complete(aioloop::yield_now());
    for t in [&forever, &secs, &years] {
        assert!(t.is_cancelled());
    }
    assert_eq!(lp.stats().tasks, 3, "handles still hold the outcomes");
}

#[test]
fn a_loop_with_only_a_far_timer_blocks_with_a_bounded_timeout() {
    // With only a `Duration::MAX` timer the loop sleeps in the poller, at most a day at a time
    // (asyncio's MAXIMUM_SELECT_TIMEOUT), until another thread stops it.
    let mut lp = EventLoop::new().unwrap();
    lp.spawn(aioloop::sleep(Duration::MAX));
    let h = lp.handle();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        h.stop();
    });
    let start = Instant::now();
    lp.run_forever();
    stopper.join().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(30));
    let stats = lp.stats();
    assert_eq!(stats.last_poll_timeout, Some(Duration::from_secs(24 * 3600)));
    assert!(stats.polls <= 3, "the loop spun: {} polls", stats.polls);
}

#[test]
fn virtual_time_jumps_to_a_far_deadline_without_overflow() {
    let mut lp = vloop();
    let t0 = lp.time();
    let r = lp.run_until_complete(aioloop::timeout(Duration::from_secs(1), aioloop::sleep(Duration::MAX)));
    assert!(r.is_err());
    assert_eq!(lp.time() - t0, Duration::from_secs(1));
    // sleep(Duration::MAX) on virtual time completes, 584 years later, without panicking.
    lp.run_until_complete(aioloop::sleep(Duration::MAX));
    assert!(lp.time() - t0 > Duration::from_secs(500 * 365 * 24 * 3600));
}

#[test]
fn zero_past_and_now_deadlines_fire_in_the_next_iterations_without_polling() {
    const N: usize = if cfg!(miri) { 30 } else { 1000 };
    let mut lp = EventLoop::new().unwrap();
    let fired = Rc::new(RefCell::new(0));
    let polls_before = lp.stats().polls;
    lp.run_until_complete(async {
        let now = aioloop::now();
        let mut tasks = vec![];
        for i in 0..N {
            let f = fired.clone();
            let at = match i % 3 {
                0 => now,
                1 => now - Duration::from_secs(1),
                _ => now + Duration::ZERO,
            };
            tasks.push(aioloop::spawn(async move {
                aioloop::sleep(Duration::ZERO).await;
                aioloop::sleep_until(at).await;
                *f.borrow_mut() += 1;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(*fired.borrow(), N);
    // Everything was ready or already due: the loop never needed the poller.
    assert_eq!(lp.stats().polls, polls_before);
}

#[test]
fn sleep_zero_takes_exactly_one_iteration() {
    let mut lp = vloop();
    // A main task that completes at once takes 2 iterations (run, then the stop callback).
    let before = lp.stats().iterations;
    lp.run_until_complete(async {});
    let ready = lp.stats().iterations - before;
    let before = lp.stats().iterations;
    lp.run_until_complete(aioloop::sleep(Duration::ZERO));
    assert_eq!(lp.stats().iterations - before, ready + 1);
}

#[test]
fn sleep_zero_runs_after_callbacks_already_queued() {
    // asyncio's test_sleep_zero (T45): a callback call_soon'ed before `await sleep(0)` has run
    // when the sleep returns.
    let mut lp = vloop();
    let x = Rc::new(RefCell::new(0));
    let x2 = x.clone();
    let seen = lp.run_until_complete(async move {
        let x3 = x2.clone();
        aioloop::call_soon(move || *x3.borrow_mut() += 1);
        aioloop::sleep(Duration::ZERO).await;
        let v = *x2.borrow();
        v
    });
    assert_eq!(seen, 1);
    assert_eq!(*x.borrow(), 1);
}

#[test]
#[cfg_attr(miri, ignore = "real time")]
fn sleeps_never_end_early_and_the_loop_does_not_spin() {
    let mut lp = EventLoop::new().unwrap();
    for (d, n) in [(Duration::from_micros(100), 100u32), (Duration::from_micros(3100), 10)] {
        let before = lp.stats();
        let elapsed = lp.run_until_complete(async move {
            let mut shortest = Duration::MAX;
            for _ in 0..n {
                let t = Instant::now();
                aioloop::sleep(d).await;
                shortest = shortest.min(t.elapsed());
            }
            shortest
        });
        assert!(elapsed >= d, "a {d:?} sleep ended after {elapsed:?}");
        let after = lp.stats();
        // Each sleep: one iteration to register, one blocked in the poller, one to resume; a
        // spinning loop would make thousands.
        let per_sleep = (after.iterations - before.iterations) as f64 / f64::from(n);
        assert!(per_sleep <= 4.0, "{per_sleep} iterations per {d:?} sleep");
        assert!(
            (after.polls - before.polls) <= u64::from(n) * 2,
            "{} polls for {n} sleeps",
            after.polls - before.polls
        );
    }
}

#[test]
fn equal_deadlines_fire_in_insertion_order() {
    let mut lp = vloop();
    let n = if cfg!(miri) { 200 } else { 10_000 };
    let order = Rc::new(RefCell::new(Vec::with_capacity(n)));
    let at = lp.time() + Duration::from_secs(1);
    for i in 0..n {
        let o = order.clone();
        lp.call_at(at, move || o.borrow_mut().push(i));
    }
    lp.run_until_complete(aioloop::sleep(Duration::from_secs(2)));
    assert_eq!(*order.borrow(), (0..n).collect::<Vec<_>>());
}

#[test]
fn cancelled_timers_are_compacted_away() {
    let mut lp = vloop();
    let n = if cfg!(miri) { 1_000 } else { 100_000 };
    let handles: Vec<_> = (0..n).map(|i| lp.call_later(Duration::from_secs(10 + i), || {})).collect();
    let mut pending = n as usize;
    let mut largest_heap = 0;
    for (i, h) in handles.iter().enumerate() {
        if i % 100 != 0 {
            h.cancel();
            pending -= 1;
        }
        // asyncio's rule holds at every moment, not only between iterations: the cancel that
        // makes the heap more than half tombstones (beyond 100 entries) rebuilds it.
        let stats = lp.stats();
        assert_eq!(stats.timers - stats.cancelled_timers, pending);
        assert!(stats.timers <= 100 || stats.cancelled_timers * 2 <= stats.timers, "{stats:?}");
        largest_heap = largest_heap.max(stats.timers);
    }
    let live = n / 100;
    assert_eq!(largest_heap, n as usize);
    assert!(lp.stats().timers < 2 * live as usize + 100, "{:?}", lp.stats());
    // An iteration changes nothing: the head is live and the rule is not broken.
    let before = lp.stats();
    lp.stop();
    lp.run_forever();
    assert_eq!((lp.stats().timers, lp.stats().cancelled_timers), (before.timers, before.cancelled_timers));
    // Cancelling live timers until more than half are tombstones rebuilds the heap at once (if
    // it holds more than 100 entries: with Miri's smaller n it may not).
    if before.timers > 100 {
        let more = (before.timers - 2 * before.cancelled_timers) / 2 + 1;
        let mut kept = handles.iter().step_by(100).skip(1);
        for h in kept.by_ref().take(more - 1) {
            h.cancel();
        }
        assert_eq!(lp.stats().cancelled_timers, before.cancelled_timers + more - 1);
        kept.next().unwrap().cancel();
        assert_eq!(lp.stats().cancelled_timers, 0);
        assert_eq!(lp.stats().timers, live as usize - more);
    }
}

#[test]
fn a_sleep_dropped_early_leaves_a_tombstone_that_is_counted() {
    let mut lp = vloop();
    let t = lp.spawn(aioloop::sleep(Duration::from_secs(10)));
    lp.run_until_complete(aioloop::yield_now());
    assert_eq!((lp.stats().timers, lp.stats().cancelled_timers), (1, 0));
    t.cancel();
    lp.run_until_complete(aioloop::yield_now());
    assert!(t.is_cancelled());
    // The cancelled head is purged at the start of the next iteration.
    lp.run_until_complete(aioloop::yield_now());
    assert_eq!((lp.stats().timers, lp.stats().cancelled_timers), (0, 0));
}

#[test]
fn call_at_in_the_past_runs_in_deadline_order_next_iteration() {
    // asyncio's test_call_later_negative_delays: call_later(-1, a), call_later(-2, b) -> b, a.
    let mut lp = vloop();
    lp.run_until_complete(aioloop::sleep(Duration::from_secs(5)));
    let log = Rc::new(RefCell::new(vec![]));
    let now = lp.time();
    let (l1, l2) = (log.clone(), log.clone());
    lp.call_at(now - Duration::from_secs(1), move || l1.borrow_mut().push("a"));
    lp.call_at(now - Duration::from_secs(2), move || l2.borrow_mut().push("b"));
    lp.stop();
    lp.run_forever();
    assert_eq!(*log.borrow(), ["b", "a"]);
}

/// A sleep shared by the task that waits on it and the test that resets it.
type SharedSleep = Rc<RefCell<std::pin::Pin<Box<aioloop::Sleep>>>>;

fn wait_on(lp: &mut EventLoop, sleep: &SharedSleep) -> aioloop::Task<Instant> {
    let s = sleep.clone();
    lp.spawn(async move {
        std::future::poll_fn(|cx| std::future::Future::poll(s.borrow_mut().as_mut(), cx)).await;
        aioloop::now()
    })
}

/// Resets the sleep from inside the running loop, as a task (or hyper) would.
fn reset(lp: &mut EventLoop, sleep: &SharedSleep, at: Instant) {
    lp.run_until_complete(async { sleep.borrow_mut().as_mut().reset(at) });
}

/// When the waiter woke; a bound of 100 s turns a lost wake-up into a failure, not a hang.
fn woken_at(lp: &mut EventLoop, waiter: aioloop::Task<Instant>) -> Instant {
    let bounded = aioloop::timeout(Duration::from_secs(100), waiter);
    lp.run_until_complete(bounded).expect("the sleep's task was woken").unwrap()
}

fn live_timers(lp: &EventLoop) -> usize {
    lp.stats().timers - lp.stats().cancelled_timers
}

#[test]
fn sleep_reset_moves_a_waiting_sleep_earlier_and_the_task_wakes_then() {
    let mut lp = vloop();
    let t0 = lp.time();
    let s: SharedSleep = Rc::new(RefCell::new(Box::pin(aioloop::sleep_until(t0 + Duration::from_secs(10)))));
    let waiter = wait_on(&mut lp, &s);
    lp.run_until_complete(aioloop::sleep(Duration::from_secs(1)));
    // The task is parked on the 10 s timer; nobody polls the sleep after the reset.
    reset(&mut lp, &s, t0 + Duration::from_secs(3));
    assert_eq!(s.borrow().deadline(), Some(t0 + Duration::from_secs(3)));
    assert_eq!(live_timers(&lp), 1, "the 10 s timer is cancelled, not left beside the new one");
    assert_eq!(woken_at(&mut lp, waiter), t0 + Duration::from_secs(3));
    assert_eq!(lp.time(), t0 + Duration::from_secs(3));
}

#[test]
fn sleep_reset_moves_a_waiting_sleep_later_and_the_old_deadline_does_not_end_it() {
    let mut lp = vloop();
    let t0 = lp.time();
    let s: SharedSleep = Rc::new(RefCell::new(Box::pin(aioloop::sleep_until(t0 + Duration::from_secs(2)))));
    let waiter = wait_on(&mut lp, &s);
    lp.run_until_complete(aioloop::sleep(Duration::from_secs(1)));
    reset(&mut lp, &s, t0 + Duration::from_secs(5));
    lp.run_until_complete(aioloop::sleep_until(t0 + Duration::from_millis(4999)));
    assert!(!waiter.is_done(), "still asleep past the old 2 s deadline");
    assert_eq!(woken_at(&mut lp, waiter), t0 + Duration::from_secs(5));
}

#[test]
fn sleep_reset_after_completion_waits_again_and_before_the_first_poll_sets_the_deadline() {
    let mut lp = vloop();
    let t0 = lp.time();
    // Before the first poll: a 60 s sleep becomes a 4 s one.
    let s: SharedSleep = Rc::new(RefCell::new(Box::pin(aioloop::sleep(Duration::from_secs(60)))));
    reset(&mut lp, &s, t0 + Duration::from_secs(4));
    let waiter = wait_on(&mut lp, &s);
    assert_eq!(woken_at(&mut lp, waiter), t0 + Duration::from_secs(4));
    // Completed, then moved later: it waits again, until the new deadline.
    reset(&mut lp, &s, t0 + Duration::from_secs(9));
    let waiter = wait_on(&mut lp, &s);
    assert_eq!(woken_at(&mut lp, waiter), t0 + Duration::from_secs(9));
    // Moved into the past while waiting: it ends at the next iteration, at the same time.
    reset(&mut lp, &s, t0 + Duration::from_secs(100));
    let waiter = wait_on(&mut lp, &s);
    lp.run_until_complete(aioloop::yield_now());
    assert!(!waiter.is_done());
    reset(&mut lp, &s, t0);
    assert_eq!(woken_at(&mut lp, waiter), t0 + Duration::from_secs(9));
    assert_eq!(live_timers(&lp), 0);
}
