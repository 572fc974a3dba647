//! The loop's clock: real monotonic time, or virtual time that jumps to the next timer.
//!
//! Loop time is kept as nanoseconds since the loop's *epoch* (the `Instant` it was created at),
//! in a `u64`: additions saturate, so `sleep(Duration::MAX)` is a deadline 584 years away rather
//! than an overflow panic.
//!
//! Under virtual time (asyncio's `TestLoop`, tokio's paused clock) the clock stands still while
//! tasks run and jumps to the next timer's deadline when the loop would otherwise block with
//! nothing ready and no I/O source registered. Programs behave as in real time, only faster, and
//! tests about ordering and timeouts become deterministic.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Real or virtual loop time.
pub(crate) struct Clock {
    /// The `Instant` that loop time 0 stands for.
    epoch: Instant,
    /// `Some(now)` under virtual time; `None` reads the OS's monotonic clock.
    virtual_now: Option<Cell<u64>>,
}

/// Converts a duration to nanoseconds, saturating at `u64::MAX`.
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Clock {
    /// Creates a clock whose time 0 is now.
    pub(crate) fn new(virtual_time: bool) -> Clock {
        Clock { epoch: Instant::now(), virtual_now: virtual_time.then(|| Cell::new(0)) }
    }

    /// Returns true under virtual time.
    pub(crate) fn is_virtual(&self) -> bool {
        self.virtual_now.is_some()
    }

    /// Returns loop time in nanoseconds.
    pub(crate) fn now_ns(&self) -> u64 {
        match &self.virtual_now {
            Some(now) => now.get(),
            None => duration_ns(self.epoch.elapsed()),
        }
    }

    /// Moves virtual time forward to `ns` (never backwards).
    pub(crate) fn advance_to(&self, ns: u64) {
        if let Some(now) = &self.virtual_now {
            now.set(now.get().max(ns));
        }
    }

    /// Converts loop time to an `Instant`.
    pub(crate) fn instant(&self, ns: u64) -> Instant {
        let d = Duration::from_nanos(ns);
        self.epoch.checked_add(d).unwrap_or_else(|| {
            // Far beyond anything a program can wait for; keep the largest representable value
            // by halving until it fits.
            let mut d = d;
            loop {
                d /= 2;
                if let Some(i) = self.epoch.checked_add(d) {
                    return i;
                }
            }
        })
    }

    /// Converts an `Instant` to loop time; instants before the epoch become 0.
    pub(crate) fn ns_of(&self, instant: Instant) -> u64 {
        duration_ns(instant.saturating_duration_since(self.epoch))
    }
}
