//! The ready queue's entries (asyncio's `_ready`): what phase 6 of an iteration runs, in order.
//!
//! The queue itself is `Core::ready`, a `VecDeque` of [`Runnable`]s: FIFO, one queue for task
//! steps, callbacks and fired sleeps alike, so that they run in the order they became ready, as
//! asyncio's handles do. An entry is 8 bytes, because a burst fills the queue with one entry
//! per task (a million spawned tasks, a million sleeps due at once): a tag in the low 2 bits,
//! the rest naming what to run.
//!
//! ```text
//!  63                                                       2 1 0
//! +----------------------------------------------------------+---+
//! | task key without its loop slot (generation, slab index)   | 0 |  a task's step
//! | handle record's slab index                                | 1 |  a callback (call_soon, a timer's action)
//! | timer entry (bucket, position)                            | 2 |  a fired sleep: wake its task
//! +----------------------------------------------------------+---+
//! ```
//!
//! # Invariants
//! - Every entry names something of this loop: a task key's loop slot is the loop's own (it is
//!   put back when the entry is read), and every index is this loop's.
//! - A handle record named by an entry stays in the handle slab until that entry runs: a
//!   cancelled one is left as a tombstone (`callbacks.rs`), so the index alone names it and no
//!   sequence number is needed here. A task's step and a timer's entry are checked when they
//!   run (the key's generation; the entry's stage), so a stale one does nothing.

use crate::runtime::timer::TimerKey;
use crate::runtime::waker::{TaskKey, GEN_BITS, INDEX_BITS};

/// One entry of the ready queue (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Runnable(u64);

/// What a [`Runnable`] names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Next {
    /// Poll this task (or drop its future if it was cancelled).
    Task(TaskKey),
    /// Run the handle record at this index (a tombstone, if it was cancelled, does nothing).
    Handle(u32),
    /// Wake the task of the sleep whose timer entry this is (unless the sleep was cancelled).
    Timer(TimerKey),
}

const TAG: u64 = 0b11;
const TASK: u64 = 0;
const HANDLE: u64 = 1;
const TIMER: u64 = 2;
/// A task key's bits below its loop slot.
const KEY_BITS: u64 = (1 << (INDEX_BITS + GEN_BITS)) - 1;

impl Runnable {
    /// A step of task `key` (of the loop whose queue this goes to).
    #[inline(always)]
    pub(crate) fn task(key: TaskKey) -> Runnable {
        Runnable(((key.0 & KEY_BITS) << 2) | TASK)
    }

    /// The handle record at `index`.
    #[inline(always)]
    pub(crate) fn handle(index: u32) -> Runnable {
        Runnable((u64::from(index) << 2) | HANDLE)
    }

    /// The fired sleep whose timer entry is `key`.
    #[inline(always)]
    pub(crate) fn timer(key: TimerKey) -> Runnable {
        Runnable((key.to_bits() << 2) | TIMER)
    }

    /// What this names, on the loop in registry slot `slot` (the queue's own loop).
    #[inline(always)]
    pub(crate) fn next(self, slot: u16) -> Next {
        let bits = self.0 >> 2;
        match self.0 & TAG {
            TASK => Next::Task(TaskKey((u64::from(slot) << (INDEX_BITS + GEN_BITS)) | bits)),
            HANDLE => Next::Handle(bits as u32),
            _ => Next::Timer(TimerKey::from_bits(bits)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::waker::MAX_TASKS;

    #[test]
    fn an_entry_is_8_bytes_and_names_what_it_was_made_from() {
        assert_eq!(std::mem::size_of::<Runnable>(), 8);
        for (slot, index, id) in [(0, 0, 1), (4095, MAX_TASKS - 1, (1 << 40) + 12345), (7, 3, u64::MAX)] {
            let key = TaskKey::new(slot, index, id);
            assert_eq!(Runnable::task(key).next(slot), Next::Task(key));
        }
        for index in [0, 1, u32::MAX] {
            assert_eq!(Runnable::handle(index).next(9), Next::Handle(index));
        }
        for (bucket, pos) in [(0, 0), (1, 2), ((1 << 31) - 1, (1 << 31) - 1)] {
            let key = TimerKey::from_bits((bucket << 31) | pos);
            assert_eq!(key.to_bits(), (bucket << 31) | pos);
            assert_eq!(Runnable::timer(key).next(9), Next::Timer(key));
        }
    }
}
