//! `interval`: ticks at `start + k × period`, never early, no drift, tokio's missed-tick
//! behaviors, a `Stream`, cancellation, and the zero period (issue 12 section 4). All on virtual
//! time (and under Miri) except one real-time check that ticks are never early.

mod util;

use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

use aioloop::{EventLoop, Interval, MissedTickBehavior};
use futures_lite::StreamExt;
use util::{catch_panic, ms, vloop};

/// Takes `n` ticks; returns each tick's deadline and the loop time when it completed, both
/// relative to `origin`.
async fn take_ticks(interval: &mut Interval, n: usize, origin: Instant) -> Vec<(Duration, Duration)> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let deadline = interval.tick().await;
        out.push((deadline - origin, aioloop::now() - origin));
    }
    out
}

#[test]
fn the_first_tick_completes_at_once_at_the_start() {
    let mut lp = vloop();
    let start = lp.time();
    let (_, empty) = util::run_counted(&mut lp, async {}); // the iterations of a future that is ready at once
    let iterations = lp.stats().iterations;
    let (first, ready_at_first_poll) = lp.run_until_complete(async {
        let mut interval = aioloop::interval(Duration::from_secs(3600));
        let polled = poll_fn(|cx| Poll::Ready(interval.poll_tick(cx))).await;
        (polled, poll_fn(|cx| Poll::Ready(interval.poll_tick(cx))).await.is_ready())
    });
    assert_eq!(first, Poll::Ready(start), "the first tick is ready at its first poll");
    assert!(!ready_at_first_poll, "the second one waits an hour");
    assert_eq!(lp.time(), start);
    assert_eq!(lp.stats().iterations - iterations, empty, "no iteration went by");
}

/// 10,000 ticks of an awkward period (1 ms + 7 ns): tick `k` is due at exactly
/// `start + k × period` and completes exactly then: no drift, never early.
#[test]
fn ten_thousand_ticks_do_not_drift_and_are_never_early() {
    const N: u32 = if cfg!(miri) { 300 } else { 10_000 };
    let period = Duration::from_nanos(1_000_007);
    let mut lp = vloop();
    let start = lp.time();
    let ticks = lp.run_until_complete(async move {
        let mut interval = aioloop::interval(period);
        take_ticks(&mut interval, N as usize, start).await
    });
    for (k, &(deadline, completed)) in ticks.iter().enumerate() {
        assert_eq!(deadline, period * k as u32, "tick {k} drifted");
        assert_eq!(completed, deadline, "tick {k} completed early or late");
    }
    assert_eq!(lp.time() - start, period * (N - 1));
    util::assert_quiescent(&lp);
}

/// tokio's three behaviors after a late tick, with a period of 10 s and the tick of 10 s taken
/// at 25 s (the table of `MissedTickBehavior`'s docs), and `Delay` as the default.
#[test]
fn missed_ticks_burst_delay_or_skip_as_tokio() {
    let secs = Duration::from_secs;
    let run = |behavior: Option<MissedTickBehavior>| {
        let mut lp = vloop();
        let start = lp.time();
        lp.run_until_complete(async move {
            let mut interval = aioloop::interval(secs(10));
            if let Some(b) = behavior {
                interval.set_missed_tick_behavior(b);
            }
            let mut ticks = take_ticks(&mut interval, 1, start).await;
            aioloop::sleep(secs(25)).await;
            ticks.extend(take_ticks(&mut interval, 4, start).await);
            ticks
        })
    };
    let pair = |d: u64, c: u64| (secs(d), secs(c));
    // Burst: the missed tick of 20 s completes at once, at 25 s; then the original schedule.
    assert_eq!(
        run(Some(MissedTickBehavior::Burst)),
        [pair(0, 0), pair(10, 25), pair(20, 25), pair(30, 30), pair(40, 40)]
    );
    // Delay: a period after the late tick was taken, and every later one moves with it.
    let delayed = [pair(0, 0), pair(10, 25), pair(35, 35), pair(45, 45), pair(55, 55)];
    assert_eq!(run(Some(MissedTickBehavior::Delay)), delayed);
    assert_eq!(run(None), delayed, "Delay is the default");
    // Skip: the next deadline of the original schedule still ahead.
    assert_eq!(
        run(Some(MissedTickBehavior::Skip)),
        [pair(0, 0), pair(10, 25), pair(30, 30), pair(40, 40), pair(50, 50)]
    );
    assert_eq!(aioloop::interval(secs(1)).missed_tick_behavior(), MissedTickBehavior::Delay);
}

/// A tick taken at most 5 ms late is on time (a busy loop's timer fires a little late, which
/// is not a missed tick: tokio's rule); 6 ms late is a missed tick. `Skip` lands back on the
/// original schedule even when the lateness is a whole number of periods.
#[test]
fn lateness_up_to_five_milliseconds_is_not_a_missed_tick() {
    let run = |late: Duration, behavior: MissedTickBehavior| {
        let mut lp = vloop();
        let start = lp.time();
        lp.run_until_complete(async move {
            let mut interval = aioloop::interval(ms(100));
            interval.set_missed_tick_behavior(behavior);
            interval.tick().await;
            aioloop::sleep(ms(100) + late).await;
            interval.tick().await;
            interval.tick().await - start
        })
    };
    assert_eq!(run(ms(5), MissedTickBehavior::Delay), ms(200), "5 ms late: on schedule");
    assert_eq!(run(ms(6), MissedTickBehavior::Delay), ms(206), "6 ms late: delayed");
    assert_eq!(run(ms(6), MissedTickBehavior::Skip), ms(200));
    assert_eq!(run(ms(300), MissedTickBehavior::Skip), ms(500), "three periods late: skips to the next one");
}

/// As a `Stream` (`Unpin`, never ending) it yields the same deadlines as `tick`; created outside
/// a loop, it starts at its first poll; `interval_at` starts where it is told.
#[test]
fn an_interval_is_an_unpin_stream_of_deadlines() {
    fn unpin_stream(_: &(impl futures_core::Stream<Item = Instant> + Unpin)) {}
    let mut lp = vloop();
    let created_outside = aioloop::interval(ms(250));
    unpin_stream(&created_outside);
    assert_eq!(futures_core::Stream::size_hint(&created_outside), (usize::MAX, None));
    lp.run_until_complete(aioloop::sleep(Duration::from_secs(7)));
    let start = lp.time();
    let ticks: Vec<Instant> = lp.run_until_complete(created_outside.take(4).collect());
    assert_eq!(ticks, [0, 250, 500, 750].map(|m| start + ms(m)), "starts at the first poll");

    let at = lp.time() + Duration::from_secs(60);
    let ticks: Vec<Instant> = lp.run_until_complete(aioloop::interval_at(at, ms(1)).take(2).collect());
    assert_eq!(ticks, [at, at + ms(1)]);
    assert_eq!(lp.time(), at + ms(1));
}

/// Dropping a `tick()` in progress loses no tick, and cancels its timer; `reset` restarts the
/// schedule a period from now; dropping the interval leaves no timer behind.
#[test]
fn a_dropped_tick_loses_nothing_and_reset_restarts_the_schedule() {
    let mut lp = vloop();
    let start = lp.time();
    lp.run_until_complete(async move {
        let mut interval = aioloop::interval(ms(100));
        assert_eq!(interval.tick().await, start);
        assert!(aioloop::timeout(ms(30), interval.tick()).await.is_err(), "cancelled at 30 ms");
        assert_eq!(interval.tick().await, start + ms(100), "the same tick, at its deadline");
        assert_eq!(aioloop::now(), start + ms(100));
        aioloop::sleep(ms(40)).await;
        interval.reset();
        assert_eq!(interval.tick().await, start + ms(240));
        assert_eq!(interval.period(), ms(100));
        // A tick in progress, then the interval dropped: its timer goes with it.
        assert!(aioloop::timeout(ms(1), interval.tick()).await.is_err());
        drop(interval);
    });
    util::assert_quiescent(&lp);
}

#[test]
fn a_zero_period_is_a_documented_panic() {
    let message = catch_panic(|| aioloop::interval(Duration::ZERO)).unwrap_err();
    assert!(message.contains("period must be greater than zero"), "{message}");
    let message = catch_panic(|| aioloop::interval_at(Instant::now(), Duration::ZERO)).unwrap_err();
    assert!(message.contains("period must be greater than zero"), "{message}");
}

/// A period too long for an `Instant` (`Duration::MAX`) ticks once and then waits, without an
/// overflow panic; the next tick can still be cancelled.
#[test]
fn a_far_future_period_does_not_overflow() {
    let mut lp = vloop();
    let start = lp.time();
    lp.run_until_complete(async move {
        let mut interval = aioloop::interval(Duration::MAX);
        for behavior in [MissedTickBehavior::Burst, MissedTickBehavior::Delay, MissedTickBehavior::Skip] {
            interval.set_missed_tick_behavior(behavior);
        }
        assert_eq!(interval.tick().await, start);
        assert!(aioloop::timeout(Duration::from_secs(3600), interval.tick()).await.is_err());
    });
    util::assert_quiescent(&lp);
}

/// Real time: every tick completes at or after its deadline, and the deadlines stay on the
/// schedule (20 ticks of 10 ms; a tick late by more than 5 ms would move the rest, so the test
/// only requires the schedule when none was).
#[test]
#[cfg_attr(miri, ignore = "real time")]
fn on_real_time_ticks_are_never_early() {
    let mut lp = EventLoop::new().unwrap();
    let ticks = lp.run_until_complete(async {
        let mut interval = aioloop::interval(ms(10));
        let mut ticks = Vec::new();
        for _ in 0..20 {
            let deadline = interval.tick().await;
            ticks.push((deadline, Instant::now()));
        }
        ticks
    });
    for (k, &(deadline, completed)) in ticks.iter().enumerate() {
        assert!(completed >= deadline, "tick {k} completed {:?} early", deadline - completed);
        if k > 0 {
            let gap = deadline - ticks[k - 1].0;
            assert!(gap >= ms(10), "tick {k} came {gap:?} after the previous one");
        }
    }
}

/// Checklist 19 ("far future"), real time: `interval(Duration::MAX)` ticks once at once, then
/// never within a 50 ms run, without a panic; the loop sleeps in the poller meanwhile rather than
/// spinning, and the pending tick can be cancelled.
#[test]
#[cfg_attr(miri, ignore = "real time")]
fn item_19_an_interval_of_duration_max_on_real_time() {
    let mut lp = EventLoop::new().unwrap();
    let polls = lp.stats().polls;
    let waited = lp.run_until_complete(async {
        let mut interval = aioloop::interval(Duration::MAX);
        interval.tick().await;
        let t0 = Instant::now();
        assert!(aioloop::timeout(ms(50), interval.tick()).await.is_err(), "a second tick within 50 ms");
        t0.elapsed()
    });
    assert!(waited >= ms(50));
    let polls = lp.stats().polls - polls;
    assert!(polls <= 5, "the loop spun: {polls} calls into the poller in 50 ms");
    util::assert_quiescent(&lp);
}
