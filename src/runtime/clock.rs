//! The loop's clock: real monotonic time, or virtual time that jumps to the next timer.
//!
//! Loop time is kept as nanoseconds since the clock's *origin* in a `u64`: additions saturate,
//! so `sleep(Duration::MAX)` is a deadline about 511 years away rather than an overflow panic.
//!
//! The origin is [`ORIGIN_BEFORE_START`] (2^61 ns, about 73 years) before the loop was created,
//! not the creation itself, so that an `Instant` from before the loop existed still converts
//! exactly: asyncio's `call_at(when)` with a `when` in the past runs the past deadlines in
//! deadline order, and `TimerHandle.when()` reports the time asked for. Only instants more than
//! 73 years before the loop's creation are clamped to the origin. (The trace's timestamps count
//! from the loop's creation, [`Clock::start`], not from the origin.)
//!
//! Under virtual time (asyncio's `TestLoop`, tokio's paused clock) the clock stands still while
//! tasks run and jumps to the next timer's deadline when the loop would otherwise block with
//! nothing ready and no I/O source registered. Programs behave as in real time, only faster, and
//! tests about ordering and timeouts become deterministic.
//!
//! # Invariants
//! - `ns_of(instant(ns)) == ns` for every loop time `ns` a loop can reach, and
//!   `instant(ns_of(i)) == i` for every `i` no earlier than the origin: conversions are exact to
//!   the nanosecond, so a deadline given as an `Instant` is the one reported back.
//! - Loop time never goes backwards; virtual time starts at the loop's creation.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How far before the loop's creation loop time 0 lies (2^61 ns, about 73 years), or less on a
/// platform whose `Instant` cannot go back that far.
pub(crate) const ORIGIN_BEFORE_START: Duration = Duration::from_nanos(1 << 61);

/// Real or virtual loop time.
pub(crate) struct Clock {
    /// The `Instant` that loop time 0 stands for: [`ORIGIN_BEFORE_START`] before `start`.
    origin: Instant,
    /// The `Instant` the loop was created at (the trace's time 0).
    start: Instant,
    /// `Some(now)` under virtual time; `None` reads the OS's monotonic clock.
    virtual_now: Option<Cell<u64>>,
}

/// Converts a duration to nanoseconds, saturating at `u64::MAX`.
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Clock {
    /// Creates a clock whose current time is the loop's creation, now.
    pub(crate) fn new(virtual_time: bool) -> Clock {
        let start = Instant::now();
        // Go back as far as the platform's `Instant` allows, up to ORIGIN_BEFORE_START (Linux,
        // macOS and the BSDs count from boot in a signed number of seconds: no limit in practice).
        let mut back = ORIGIN_BEFORE_START;
        let origin = loop {
            match start.checked_sub(back) {
                Some(origin) => break origin,
                None => back /= 2,
            }
        };
        let virtual_now = virtual_time.then(|| Cell::new(duration_ns(back)));
        Clock { origin, start, virtual_now }
    }

    /// Returns the `Instant` the loop was created at.
    pub(crate) fn start(&self) -> Instant {
        self.start
    }

    /// Returns true under virtual time.
    pub(crate) fn is_virtual(&self) -> bool {
        self.virtual_now.is_some()
    }

    /// Returns loop time in nanoseconds.
    pub(crate) fn now_ns(&self) -> u64 {
        match &self.virtual_now {
            Some(now) => now.get(),
            None => duration_ns(self.origin.elapsed()),
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
        self.origin.checked_add(d).unwrap_or_else(|| {
            // Far beyond anything a program can wait for; keep the largest representable value
            // by halving until it fits.
            let mut d = d;
            loop {
                d /= 2;
                if let Some(i) = self.origin.checked_add(d) {
                    return i;
                }
            }
        })
    }

    /// Converts an `Instant` to loop time; instants before the origin (73 years before the
    /// loop's creation) become 0.
    pub(crate) fn ns_of(&self, instant: Instant) -> u64 {
        duration_ns(instant.saturating_duration_since(self.origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_before_the_loops_creation_convert_exactly_and_keep_their_order() {
        for virtual_time in [false, true] {
            let clock = Clock::new(virtual_time);
            let start = clock.start();
            let earlier = [Duration::from_nanos(1), Duration::from_secs(3), Duration::from_secs(3600 * 24 * 365)];
            let mut last = u64::MAX;
            for back in earlier {
                let at = start - back;
                let ns = clock.ns_of(at);
                assert!(ns < last, "an earlier instant must give an earlier loop time");
                last = ns;
                assert_eq!(clock.instant(ns), at, "the instant asked for comes back");
            }
            assert!(clock.ns_of(start) <= clock.now_ns());
            assert_eq!(clock.instant(clock.ns_of(start)), start);
        }
    }

    #[test]
    fn virtual_time_starts_at_the_loops_creation() {
        let clock = Clock::new(true);
        assert_eq!(clock.instant(clock.now_ns()), clock.start());
        clock.advance_to(clock.now_ns() + 5);
        assert_eq!(clock.instant(clock.now_ns()), clock.start() + Duration::from_nanos(5));
    }
}
