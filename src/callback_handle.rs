//! The public handles of `call_soon`, `call_later` and `call_at` (asyncio's `Handle` and
//! `TimerHandle`): each names a record of the loop's callbacks (src/runtime/callbacks.rs, where
//! the records, their invariants and how the loop runs them are told).

use std::rc::Rc;
use std::time::Instant;

use crate::runtime::callbacks::{Action, HandleKey};
use crate::runtime::Core;

/// A callback scheduled with [`EventLoop::call_soon`](crate::EventLoop::call_soon).
///
/// Dropping the handle does not cancel the callback.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// let mut lp = aioloop::EventLoop::new().unwrap();
/// let ran = Rc::new(Cell::new(false));
/// let r = ran.clone();
/// let h = lp.call_soon(move || r.set(true));
/// h.cancel();
/// lp.run_until_complete(aioloop::yield_now());
/// assert!(!ran.get());
/// assert!(h.is_cancelled());
/// ```
pub struct Handle {
    core: Rc<Core>,
    key: HandleKey,
    cancelled: std::cell::Cell<bool>,
}

impl Handle {
    pub(crate) fn new(core: &Rc<Core>, key: HandleKey) -> Handle {
        Handle { core: core.clone(), key, cancelled: std::cell::Cell::new(false) }
    }

    /// Cancels the callback if it has not run yet (its closure is dropped now).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// lp.call_soon(|| unreachable!()).cancel();
    /// ```
    pub fn cancel(&self) {
        if self.core.cancel_handle(self.key) {
            self.cancelled.set(true);
        }
    }

    /// Returns true if [`cancel`](Self::cancel) cancelled the callback before it ran.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// let h = lp.call_soon(|| {});
    /// assert!(!h.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("cancelled", &self.is_cancelled()).finish()
    }
}

/// A callback scheduled at a time with [`EventLoop::call_later`](crate::EventLoop::call_later)
/// or [`EventLoop::call_at`](crate::EventLoop::call_at).
///
/// Dropping the handle does not cancel the callback.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let h = lp.call_later(Duration::from_secs(1), || {});
/// assert_eq!(h.when() - lp.time(), Duration::from_secs(1));
/// h.cancel();
/// ```
pub struct TimerHandle {
    handle: Handle,
    deadline: u64,
}

impl TimerHandle {
    pub(crate) fn new(core: &Rc<Core>, deadline: u64, action: Action) -> TimerHandle {
        TimerHandle { handle: Handle::new(core, core.call_at_action(deadline, None, action)), deadline }
    }

    /// Cancels the callback if it has not run yet. The heap entry stays behind as a tombstone
    /// until it reaches the head or the heap is compacted.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// lp.call_later(Duration::from_secs(1), || unreachable!()).cancel();
    /// ```
    pub fn cancel(&self) {
        self.handle.cancel();
    }

    /// Returns true if [`cancel`](Self::cancel) cancelled the callback before it ran.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// let h = lp.call_later(Duration::from_secs(1), || {});
    /// h.cancel();
    /// assert!(h.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.handle.is_cancelled()
    }

    /// Returns when the callback is scheduled to run, in loop time.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.time();
    /// assert_eq!(lp.call_at(t, || {}).when(), t);
    /// ```
    pub fn when(&self) -> Instant {
        self.handle.core.clock.instant(self.deadline)
    }
}

impl std::fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerHandle").field("when", &self.when()).field("cancelled", &self.is_cancelled()).finish()
    }
}
