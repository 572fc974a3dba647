//! Periodic ticks: [`interval`], [`interval_at`], [`Interval`], [`MissedTickBehavior`] (tokio's
//! `interval`, which asyncio lacks: there a periodic task is `while True: await sleep(p)`,
//! which drifts by the time each round takes).
//!
//! An `Interval` is a deadline and a [`Sleep`](crate::Sleep) until it: `tick()` waits for the
//! deadline, returns it, and moves it one period on. The deadlines are computed from the first
//! one by adding the period, never from the time a tick was taken, so ticks do not drift; what
//! happens after a tick was taken late is the [`MissedTickBehavior`].
//!
//! # Invariants
//! - A tick never completes before its deadline (a [`Sleep`](crate::Sleep) never does), and
//!   `tick()` returns that deadline, not the time it completed.
//! - A tick whose deadline has passed completes at once, without a timer or a yield: the first
//!   tick, and each catch-up tick of [`MissedTickBehavior::Burst`].
//! - A tick taken at most `MISSED_AFTER` (5 ms) after its deadline counts as on time (a timer on a
//!   busy loop fires a little late; that is not a missed tick, tokio's 5 ms rule). On virtual
//!   time timers fire exactly at their deadline, so every deadline is `start + k × period`.
//!
//! # Implementation
//!
//! Built on the crate's sleep: one [`sleep_until`](crate::sleep_until) per tick that has to
//! wait, dropped when the tick completes (or when the `Interval` is dropped, which cancels its
//! timer). tokio resets one timer entry in place; a `Sleep` here is a timer-heap entry that costs
//! no allocation, so creating one per tick is as cheap.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::time::Sleep;

/// How late a tick may be taken and still count as on time (tokio's threshold).
const MISSED_AFTER: Duration = Duration::from_millis(5);

/// What an [`Interval`] does after a tick was taken late (more than 5 ms after its deadline:
/// the task was busy, or did not call `tick` for a while). tokio's enum, with the same meanings.
///
/// With a period of 10 s, first tick at 0 s, and the tick of 10 s taken only at 25 s:
///
/// | behavior | ticks returned | deadlines after that |
/// |---|---|---|
/// | `Burst` | 10 s, then 20 s at once | 30 s, 40 s, ... (the original schedule) |
/// | `Delay` (default) | 10 s | 35 s, 45 s, ... (a period after the late tick) |
/// | `Skip` | 10 s | 30 s, 40 s, ... (the next deadline of the original schedule still ahead) |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use aioloop::MissedTickBehavior;
///
/// let secs = Duration::from_secs;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// for (behavior, expected) in [
///     (MissedTickBehavior::Burst, [0, 10, 20, 30]),
///     (MissedTickBehavior::Delay, [0, 10, 35, 45]),
///     (MissedTickBehavior::Skip, [0, 10, 30, 40]),
/// ] {
///     let ticks = lp.run_until_complete(async move {
///         let start = aioloop::now();
///         let mut interval = aioloop::interval(secs(10));
///         interval.set_missed_tick_behavior(behavior);
///         let mut ticks = vec![];
///         ticks.push(interval.tick().await - start); // at once
///         aioloop::sleep(secs(25)).await; // busy: the tick of 10 s is late
///         for _ in 0..3 {
///             ticks.push(interval.tick().await - start);
///         }
///         ticks
///     });
///     assert_eq!(ticks, expected.map(secs), "{behavior:?}");
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Catch up: the missed ticks complete at once, one per `tick()`, until the schedule is
    /// on time again; the schedule itself does not move.
    Burst,
    /// Start again from the late tick: the next deadline is one period after it was taken,
    /// and every later one moves with it.
    #[default]
    Delay,
    /// Drop the missed ticks: the next deadline is the first of the original schedule that
    /// is still ahead.
    Skip,
}

impl MissedTickBehavior {
    /// Returns the deadline after `deadline`, a tick taken late, at `now`.
    fn next(self, deadline: Instant, now: Instant, period: Duration) -> Instant {
        match self {
            MissedTickBehavior::Burst => later(deadline, period),
            MissedTickBehavior::Delay => later(now, period),
            MissedTickBehavior::Skip => {
                // The first `deadline + k × period` after `now`.
                let late = now.saturating_duration_since(deadline).as_nanos();
                let into_period = u64::try_from(late % period.as_nanos()).unwrap_or(u64::MAX);
                later(now, period - Duration::from_nanos(into_period))
            }
        }
    }
}

/// Returns `at + d`, or, past what an `Instant` can hold, the latest instant it can (a period of
/// centuries never ticks a second time; it must not panic either).
fn later(at: Instant, d: Duration) -> Instant {
    let mut d = d;
    loop {
        match at.checked_add(d) {
            Some(t) => return t,
            None => d /= 2,
        }
    }
}

/// Returns an [`Interval`] that ticks every `period`, the first tick at once (tokio's
/// `interval`).
///
/// The schedule starts now, in the running loop's time; created outside a running loop, it
/// starts at the first `tick`.
///
/// # Panics
///
/// If `period` is zero: "interval: the period must be greater than zero" (as tokio's).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let start = lp.time();
/// let ticks = lp.run_until_complete(async {
///     let mut interval = aioloop::interval(Duration::from_millis(100));
///     let mut ticks = vec![];
///     for _ in 0..3 {
///         ticks.push(interval.tick().await); // the tick's deadline
///     }
///     ticks
/// });
/// let ms = Duration::from_millis;
/// assert_eq!(ticks, [start, start + ms(100), start + ms(200)]);
/// assert_eq!(lp.time(), start + ms(200)); // the first tick took no time
/// ```
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    let start = crate::runtime::running::with_running(|core| core.clock.instant(core.clock.now_ns()));
    new_interval(start, period)
}

/// Returns an [`Interval`] whose first tick is at `start` (then every `period`; tokio's
/// `interval_at`). A `start` in the past ticks at once, and what follows depends on the
/// [`MissedTickBehavior`], as for any late tick.
///
/// # Panics
///
/// If `period` is zero, as [`interval`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let start = lp.time() + Duration::from_secs(60);
/// let first = lp.run_until_complete(async move {
///     aioloop::interval_at(start, Duration::from_secs(1)).tick().await
/// });
/// assert_eq!(first, start);
/// assert_eq!(lp.time(), start);
/// ```
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    new_interval(Some(start), period)
}

#[track_caller]
fn new_interval(start: Option<Instant>, period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval: the period must be greater than zero");
    Interval { period, next: start, missed: MissedTickBehavior::default(), sleep: None }
}

/// Ticks every period: from [`interval`] or [`interval_at`]. `tick().await` returns each
/// tick's deadline; as a [`Stream`](futures_core::Stream) (`Unpin`, never ending) it yields the
/// same deadlines.
///
/// Dropping an `Interval`, or the future of a `tick()` in progress, cancels its timer; a
/// dropped `tick()` loses no tick (the next `tick()` completes at the same deadline).
///
/// # Examples
///
/// As a stream, with futures-lite's `StreamExt`:
///
/// ```
/// use std::time::Duration;
/// use futures_lite::StreamExt;
///
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let start = lp.time();
/// let ticks: Vec<_> = lp.run_until_complete(aioloop::interval(Duration::from_secs(2)).take(3).collect());
/// assert_eq!(ticks, [0, 2, 4].map(|s| start + Duration::from_secs(s)));
/// ```
#[derive(Debug)]
#[must_use = "an interval does nothing unless ticked"]
pub struct Interval {
    /// The time between two deadlines.
    period: Duration,
    /// The next tick's deadline; `None` until the first tick of an interval created outside a
    /// running loop (it then starts at that tick).
    next: Option<Instant>,
    /// What a late tick does to the deadlines after it.
    missed: MissedTickBehavior,
    /// The sleep until `next`, while a tick waits for it.
    sleep: Option<Sleep>,
}

impl Interval {
    /// Waits for the next tick and returns its deadline (which is when it was due, not when it
    /// completed; never later than it completed).
    ///
    /// # Cancellation
    ///
    /// Dropping the future loses nothing: the next `tick()` completes for the same deadline.
    ///
    /// # Panics
    ///
    /// As [`sleep`](crate::sleep): outside a running loop ("no running event loop"), or on
    /// another loop than the one whose timer it waits on.
    ///
    /// # Examples
    ///
    /// See [`interval`].
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick (see [`tick`](Self::tick)): `Ready(deadline)` once it is due.
    ///
    /// # Panics
    ///
    /// As [`tick`](Self::tick).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::Poll;
    /// use std::time::Duration;
    ///
    /// aioloop::run(async {
    ///     let mut interval = aioloop::interval(Duration::from_secs(60));
    ///     let first = std::future::poll_fn(|cx| Poll::Ready(interval.poll_tick(cx))).await;
    ///     assert!(first.is_ready()); // the first tick is due at once
    ///     let second = std::future::poll_fn(|cx| Poll::Ready(interval.poll_tick(cx))).await;
    ///     assert!(second.is_pending());
    /// });
    /// ```
    #[track_caller]
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        let mut now = crate::now();
        let deadline = *self.next.get_or_insert(now);
        if deadline > now {
            let sleep = self.sleep.get_or_insert_with(|| crate::sleep_until(deadline));
            if Pin::new(sleep).poll(cx).is_pending() {
                return Poll::Pending;
            }
            now = crate::now();
        }
        self.sleep = None;
        let next = if now.saturating_duration_since(deadline) > MISSED_AFTER {
            self.missed.next(deadline, now, self.period)
        } else {
            later(deadline, self.period)
        };
        self.next = Some(next);
        Poll::Ready(deadline)
    }

    /// Restarts the schedule: the next tick is one period from now (tokio's `reset`).
    ///
    /// # Panics
    ///
    /// Outside a running loop ("no running event loop").
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let start = lp.time();
    /// let next = lp.run_until_complete(async {
    ///     let mut interval = aioloop::interval(Duration::from_secs(10));
    ///     interval.tick().await; // at 0 s
    ///     aioloop::sleep(Duration::from_secs(3)).await;
    ///     interval.reset(); // the next tick: 10 s from now
    ///     interval.tick().await
    /// });
    /// assert_eq!(next, start + Duration::from_secs(13));
    /// ```
    #[track_caller]
    pub fn reset(&mut self) {
        self.next = Some(later(crate::now(), self.period));
        self.sleep = None;
    }

    /// Returns what the interval does after a late tick.
    ///
    /// # Examples
    ///
    /// ```
    /// let i = aioloop::interval(std::time::Duration::from_secs(1));
    /// assert_eq!(i.missed_tick_behavior(), aioloop::MissedTickBehavior::Delay);
    /// ```
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets what the interval does after a late tick (default: [`MissedTickBehavior::Delay`]).
    ///
    /// # Examples
    ///
    /// See [`MissedTickBehavior`].
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }

    /// Returns the period.
    ///
    /// # Examples
    ///
    /// ```
    /// let i = aioloop::interval(std::time::Duration::from_secs(1));
    /// assert_eq!(i.period(), std::time::Duration::from_secs(1));
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl futures_core::Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}
