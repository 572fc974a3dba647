//! The loop's counters, read through [`EventLoop::stats`](crate::EventLoop::stats).

use std::time::Duration;

/// A snapshot of the loop's anatomy and counters, from [`EventLoop::stats`](crate::EventLoop::stats).
///
/// # Examples
///
/// ```
/// let lp = aioloop::EventLoop::new().unwrap();
/// lp.spawn(async {});
/// assert_eq!(lp.stats().tasks, 1);
/// assert_eq!(lp.stats().ready, 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Tasks alive in the slab (waiting, ready, or finished with an outcome not yet taken).
    pub tasks: usize,
    /// Entries in the ready queue (task steps and callbacks).
    pub ready: usize,
    /// Entries in the timer heap, cancelled ones (tombstones) included.
    pub timers: usize,
    /// Entries of the timer heap counted as cancelled.
    pub cancelled_timers: usize,
    /// Iterations (`run_once` calls) since the loop was created.
    pub iterations: u64,
    /// Times the loop called into the poller (each may block).
    pub polls: u64,
    /// The timeout of the last call into the poller (`None`: block until woken).
    pub last_poll_timeout: Option<Duration>,
}
