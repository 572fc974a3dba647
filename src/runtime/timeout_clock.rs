//! When the timeouts of the last few iterations were created, at the latest: what lets a timeout
//! created in a running loop leave its deadline unworked until needed (see `timeout.rs`), and
//! still never have it earlier than asyncio's `loop.time() + delay` at the call.
//!
//! # Invariants
//! - The loop reads its clock at the end of each iteration in which a timeout was created (once,
//!   however many were; the thread's running loop notes it: `running::note_timeout`), and keeps
//!   the last [`TimeoutClock::KEPT`] readings, by timeout epoch (the thread's count of such
//!   iterations, `running::end_iteration`).
//! - [`TimeoutClock::created_by`] never gives a time earlier than the end of the iteration that
//!   created the timeouts of the epoch asked about: the end of that iteration, or of the earliest
//!   later one kept (epochs only move on, so a later epoch ended later).

use std::cell::Cell;

/// The loop time at the end of the last few iterations in which a timeout was created.
#[derive(Default)]
pub(crate) struct TimeoutClock {
    /// `(epoch, loop time at the end of the iteration)`, the latest at `next - 1` (a ring).
    ends: Cell<[(u32, u64); TimeoutClock::KEPT]>,
    /// Where the next reading goes in `ends`.
    next: Cell<usize>,
    /// `ends` holds at least one reading.
    any: Cell<bool>,
}

impl TimeoutClock {
    const KEPT: usize = 4;

    /// Records the end of the iteration in which the timeouts of `epoch` were created: loop
    /// time `now`.
    pub(crate) fn record(&self, epoch: u32, now: u64) {
        let mut ends = self.ends.get();
        ends[self.next.get()] = (epoch, now);
        self.ends.set(ends);
        self.next.set((self.next.get() + 1) % Self::KEPT);
        self.any.set(true);
    }

    /// Returns a loop time no earlier than the creation of a timeout of `epoch`: the end of the
    /// iteration that created it, or of the earliest later one kept (if the ring has moved on
    /// since, or another loop of this thread used the epoch); `None` if none is kept (the
    /// caller reads the clock).
    pub(crate) fn created_by(&self, epoch: u32) -> Option<u64> {
        if !self.any.get() {
            return None;
        }
        self.ends
            .get()
            .into_iter()
            .filter(|&(e, _)| e.wrapping_sub(epoch) < u32::MAX / 2)
            .min_by_key(|&(e, _)| e.wrapping_sub(epoch))
            .map(|(_, ns)| ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_of_an_earlier_epoch_is_its_end_or_a_later_one() {
        let c = TimeoutClock::default();
        assert_eq!(c.created_by(3), None);
        c.record(5, 50);
        c.record(8, 80);
        assert_eq!(c.created_by(5), Some(50));
        assert_eq!(c.created_by(6), Some(80), "a later end, never an earlier one");
        assert_eq!(c.created_by(8), Some(80));
        for i in 9..14 {
            c.record(i, u64::from(i) * 10);
        }
        assert_eq!(c.created_by(5), Some(100), "5 and 8 are gone: the earliest kept");
        assert_eq!(c.created_by(20), None, "none kept at or after it");
    }
}
