//! [`TimeoutHandle`]: asyncio's `Timeout` object (`when()`, `reschedule()`, `expired()`), and what
//! a [`Timeout`](super::Timeout) shares with its handles once one is asked for.
//!
//! # Invariants
//! - The handles and the timeout share one [`Shared`] behind a mutex (so that the timeout stays
//!   `Send`, and a handle may move the deadline from another thread); a timeout without handles
//!   has none and pays nothing for them.
//! - A move is recorded here (`moved`) and applied by the timeout ([`apply_move`]): when its body
//!   suspends (a move made inside the body), or at its next poll (one made elsewhere, which wakes
//!   the timeout's task), unless the timer fired first: the expiry stands.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;
use std::time::Instant;

use super::Deadline;
use crate::runtime::Core;
use crate::time::TimerSlot;

/// What a [`Timeout`](super::Timeout) shares with its [`TimeoutHandle`]s: behind a mutex so that the timeout
/// stays `Send`, and allocated only when a handle is asked for.
#[derive(Default)]
pub(super) struct Shared {
    /// The deadline (`None`: none, or not fixed yet), as set or last moved.
    pub(super) deadline: Option<Instant>,
    /// A handle moved the deadline and the timeout has not applied the move yet.
    moved: bool,
    /// Where the timeout is in its life (asyncio's `_State`).
    phase: Phase,
    /// The timeout is polling its body: a move made there is applied when the poll returns.
    in_body: bool,
    /// The waker of the timeout's last poll: a move made elsewhere wakes it to re-arm its timer.
    waker: Option<std::task::Waker>,
}

/// A timeout's life, as its handles see it (asyncio's `_State`, from `ENTERED` on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Phase {
    /// Running its body.
    #[default]
    Entered,
    /// The deadline passed; what the body awaited is being cancelled.
    Expiring,
    /// It ended with `Err(TimeoutError)`.
    Expired,
    /// Its body completed in time.
    Finished,
}

/// Locks a timeout's shared state, ignoring poisoning (no code panics while holding it).
pub(super) fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A handle to a running [`timeout`](super::timeout()): reads its deadline, moves or removes it, and tells
/// whether the timeout expired (asyncio's `Timeout` object: `when()`, `reschedule()`,
/// `expired()`). From [`timeout_with`](super::timeout_with) (inside the body) or [`Timeout::handle`](super::Timeout::handle).
///
/// A move made inside the timeout's body takes effect when the body suspends; one made
/// elsewhere (another task, a callback, another thread) wakes the timeout's task, which re-arms
/// its timer (and polls its body once more). A deadline already passed ends the body at its
/// next suspension.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let (r, cm) = lp.run_until_complete(async {
///     let mut keep = None;
///     let r = aioloop::timeout_with(Duration::from_secs(10), |cm| {
///         keep = Some(cm.clone());
///         async move {
///             cm.reschedule(Some(aioloop::now() + Duration::from_millis(50))); // less time
///             aioloop::sleep(Duration::from_secs(1)).await;
///         }
///     })
///     .await;
///     (r, keep.unwrap())
/// });
/// assert!(r.is_err());
/// assert!(cm.expired());
/// ```
#[derive(Clone)]
pub struct TimeoutHandle(pub(super) Arc<Mutex<Shared>>);

impl TimeoutHandle {
    /// Returns the deadline in loop time, or `None` if there is none (asyncio's `when()`); a
    /// relative deadline created outside a running loop is fixed at the timeout's first poll.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// lp.run_until_complete(async {
    ///     let t0 = aioloop::now(); // virtual time: the same instant as the timeout's call
    ///     let mut t = aioloop::timeout(Duration::from_secs(2), async {});
    ///     assert_eq!(t.handle().when(), Some(t0 + Duration::from_secs(2)));
    ///     assert_eq!(aioloop::timeout(None, async {}).handle().when(), None);
    /// });
    /// ```
    pub fn when(&self) -> Option<Instant> {
        lock(&self.0).deadline
    }

    /// Moves the deadline to `when` (loop time), or removes it with `None` (asyncio's
    /// `reschedule()`).
    ///
    /// # Panics
    ///
    /// "Cannot change state of expired Timeout" (or "expiring", "finished"), as asyncio's
    /// `RuntimeError`, once the deadline ended the timeout or its body completed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let r = lp.run_until_complete(aioloop::timeout_with(Duration::from_millis(10), |cm| async move {
    ///     cm.reschedule(None); // no deadline after all
    ///     aioloop::sleep(Duration::from_secs(1)).await;
    ///     cm.expired()
    /// }));
    /// assert_eq!(r, Ok(false));
    /// ```
    pub fn reschedule(&self, when: Option<Instant>) {
        let waker = {
            let mut s = lock(&self.0);
            match s.phase {
                Phase::Entered => {}
                Phase::Expiring => panic!("Cannot change state of expiring Timeout"),
                Phase::Expired => panic!("Cannot change state of expired Timeout"),
                Phase::Finished => panic!("Cannot change state of finished Timeout"),
            }
            s.deadline = when;
            s.moved = true;
            if s.in_body {
                None
            } else {
                s.waker.take()
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Returns true if the deadline ended the timeout (asyncio's `expired()`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let mut t = aioloop::timeout(Duration::from_secs(1), aioloop::sleep(Duration::from_secs(2)));
    /// let cm = t.handle();
    /// assert!(!cm.expired());
    /// assert!(lp.run_until_complete(t).is_err());
    /// assert!(cm.expired());
    /// ```
    pub fn expired(&self) -> bool {
        lock(&self.0).phase == Phase::Expired
    }
}

impl std::fmt::Debug for TimeoutHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.0);
        f.debug_struct("TimeoutHandle").field("when", &s.deadline).field("phase", &s.phase).finish()
    }
}

/// Publishes a deadline the timeout has just fixed (it was lazy, or relative to the first poll),
/// unless a handle moved it meanwhile: the move wins.
pub(super) fn publish(shared: &Mutex<Shared>, at: Instant) {
    let mut s = lock(shared);
    if !s.moved {
        s.deadline = Some(at);
    }
}

/// Applies a deadline moved by a [`TimeoutHandle`] to the timeout's timer (cancelled, and given
/// its new place among equal deadlines, to be armed anew when the body is pending), unless that
/// timer already fired: the expiry stands.
pub(super) fn apply_move(
    shared: &Mutex<Shared>,
    timer: &mut TimerSlot,
    deadline: &std::cell::Cell<Deadline>,
    core: &Core,
) {
    let moved = {
        let mut s = lock(shared);
        if !std::mem::take(&mut s.moved) {
            return;
        }
        s.deadline
    };
    if timer.has_fired() {
        return;
    }
    timer.cancel();
    match moved {
        Some(at) => {
            deadline.set(Deadline::At(at));
            timer.deadline = core.clock.ns_of(at);
            if timer.deadline <= core.clock.now_ns() {
                // Passed already: it counts as fired (asyncio's `reschedule` queues
                // `_on_timeout` at once), so the body goes no further than where it suspends.
                timer.expire_now();
            } else {
                // asyncio's `reschedule` is a new `call_at`: a new place among equal deadlines.
                timer.reserve_seq(core);
            }
        }
        None => deadline.set(Deadline::Never),
    }
}

/// Keeps the waker of the timeout's last poll, for a move made elsewhere to wake.
pub(super) fn keep_waker(shared: &Mutex<Shared>, waker: &Waker) {
    let mut s = lock(shared);
    if !s.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
        s.waker = Some(waker.clone());
    }
}

/// Records a timeout's phase for its handles, if it has any.
#[inline]
pub(super) fn set_phase(shared: Option<&Mutex<Shared>>, phase: Phase) {
    if let Some(sh) = shared {
        lock(sh).phase = phase;
    }
}

/// Records whether a timeout is polling its body, if it has handles.
#[inline]
pub(super) fn set_in_body(shared: Option<&Mutex<Shared>>, in_body: bool) {
    if let Some(sh) = shared {
        lock(sh).in_body = in_body;
    }
}
