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
    /// The same moment read from `CLOCK_MONOTONIC` directly (ns), read just *after* `epoch`, so
    /// loop time read through it is never ahead of loop time computed from an `Instant`: a
    /// timer converted from an `Instant` fires at or after it, never early.
    epoch_raw: u64,
    /// `Some(now)` under virtual time; `None` reads the OS's monotonic clock.
    virtual_now: Option<Cell<u64>>,
}

/// Reads `CLOCK_MONOTONIC` (the clock `Instant` uses on Linux) in nanoseconds: the loop reads
/// the time in every iteration and for every timer, and this skips the `Instant` arithmetic.
#[cfg(all(target_os = "linux", not(miri)))]
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64)
}

/// Elsewhere (where `Instant` may use another clock) and under Miri (which cannot make the raw
/// call), through `Instant`, from a base fixed on first use.
#[cfg(not(all(target_os = "linux", not(miri))))]
fn monotonic_ns() -> u64 {
    thread_local! {
        static BASE: Instant = Instant::now();
    }
    BASE.with(|b| duration_ns(b.elapsed()))
}

/// Converts a duration to nanoseconds, saturating at `u64::MAX`.
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Clock {
    /// Creates a clock whose time 0 is now.
    pub(crate) fn new(virtual_time: bool) -> Clock {
        let epoch = Instant::now();
        Clock { epoch, epoch_raw: monotonic_ns(), virtual_now: virtual_time.then(|| Cell::new(0)) }
    }

    /// Returns true under virtual time.
    pub(crate) fn is_virtual(&self) -> bool {
        self.virtual_now.is_some()
    }

    /// Returns loop time in nanoseconds.
    pub(crate) fn now_ns(&self) -> u64 {
        match &self.virtual_now {
            Some(now) => now.get(),
            None => monotonic_ns().saturating_sub(self.epoch_raw),
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
