//! How a [`Waker`] becomes "push this task onto the ready queue".
//!
//! # A waker is a number
//!
//! Every task lives in one slot of its loop's slab (see [`task`](crate::task)). Its waker carries
//! a 64-bit **task key** and nothing else:
//!
//! ```text
//!  63        52 51                      26 25                       0
//! +------------+--------------------------+--------------------------+
//! | loop slot  | generation (task id bits) |     slab index           |
//! +------------+--------------------------+--------------------------+
//! ```
//!
//! - *slab index*: where the task lives in its loop;
//! - *generation*: the low 26 bits of the task's id, so a waker kept after its task finished and
//!   its slot was reused by another task does nothing (the loop compares the bits with the id of
//!   the task now in that slot);
//! - *loop slot*: which loop, as registered in [`remote`](crate::remote)'s process-wide registry.
//!
//! Cloning a waker copies the number; dropping it does nothing; so a task needs no allocation for
//! its waker, and no atomic reference count is touched on the hot path.
//!
//! # Why a single-threaded loop still needs `Send + Sync` wakers
//!
//! `std::task::Waker` is `Send + Sync` by contract: any future may hand its waker to another
//! thread (a blocking pool, a channel fed by a thread, a timer thread). So waking has two paths:
//!
//! - **on the loop's own thread while it runs** (the common case: a task woken by a timer, another
//!   task, a local channel): a thread-local check finds the running loop and pushes the key onto
//!   its ready queue directly: no lock, no atomic;
//! - **from anywhere else**: the key goes to the loop's inbox and the loop's poller is notified,
//!   which wakes the loop even while it is blocked.
//!
//! The alternative, used by tokio and async-task, is to make the task allocation itself the waker
//! (an atomically reference-counted header). It gives wakers that can never be stale, at the cost of
//! atomic increments on every clone and much more `unsafe`. STYLE.md suggests `std::task::Wake` on
//! an `Arc`; that would cost a second allocation per task. The numeric waker needs one `unsafe` call
//! (`Waker::from_raw`) whose contract is easy to check: the data pointer is never dereferenced.
//!
//! Production note: 26 index bits cap a loop at 67,108,864 live tasks, 12 slot bits cap a process at
//! 4,096 live loops, and generations repeat after 2^26 tasks went through one slot, at which point
//! a stale waker could cause one spurious poll (which every `Future` must tolerate).

use std::task::{RawWaker, RawWakerVTable, Waker};

use crate::remote::Remote;

/// Bits of the slab index in a task key.
pub(crate) const INDEX_BITS: u32 = 26;
/// Bits of the generation in a task key.
pub(crate) const GEN_BITS: u32 = 26;
/// The largest number of tasks alive at once on one loop.
pub(crate) const MAX_TASKS: usize = 1 << INDEX_BITS;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

/// A task's identity inside the process: loop slot, generation and slab index, packed in a `u64`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct TaskKey(pub(crate) u64);

impl TaskKey {
    /// Packs a key; `id` is the task's id, of which the low bits become the generation.
    pub(crate) fn new(slot: u16, index: usize, id: u64) -> TaskKey {
        debug_assert!(index < MAX_TASKS);
        TaskKey(((slot as u64) << (INDEX_BITS + GEN_BITS)) | ((id & GEN_MASK) << INDEX_BITS) | index as u64)
    }

    /// Returns the slab index.
    pub(crate) fn index(self) -> usize {
        (self.0 & INDEX_MASK) as usize
    }

    /// Returns true if this key names the task with id `id` (and not an older tenant of the slot).
    pub(crate) fn matches(self, id: u64) -> bool {
        (self.0 >> INDEX_BITS) & GEN_MASK == id & GEN_MASK
    }

    /// Returns the loop slot.
    pub(crate) fn slot(self) -> u16 {
        (self.0 >> (INDEX_BITS + GEN_BITS)) as u16
    }
}

/// The waker's vtable: every function treats the data pointer as a plain number.
static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop);

fn clone(data: *const ()) -> RawWaker {
    RawWaker::new(data, &VTABLE)
}

fn wake(data: *const ()) {
    wake_key(TaskKey(data.addr() as u64));
}

fn drop(_: *const ()) {}

/// Returns the waker of the task with this key.
pub(crate) fn waker_for(key: TaskKey) -> Waker {
    let raw = RawWaker::new(std::ptr::without_provenance(key.0 as usize), &VTABLE);
    // SAFETY: `RawWaker`'s contract is that the vtable functions are safe to call with `data`
    // from any thread and that `clone` returns a waker with the same behaviour. `data` is a
    // number that no function ever dereferences, `clone` copies it, `drop` does nothing, and
    // `wake` only reaches thread-local state or the mutex-protected registry and inbox.
    unsafe { Waker::from_raw(raw) }
}

/// Returns the task key inside `waker` if it is one of ours.
pub(crate) fn key_of(waker: &Waker) -> Option<TaskKey> {
    std::ptr::eq(waker.vtable(), &VTABLE).then(|| TaskKey(waker.data().addr() as u64))
}

/// Wakes the task with this key: directly if its loop runs on this thread, else via the inbox.
pub(crate) fn wake_key(key: TaskKey) {
    if !crate::context::wake_on_running_loop(key) {
        wake_from_outside(key);
    }
}

/// The other path of [`wake_key`], out of line: inlined, it makes every wake on the loop's own
/// thread save and restore registers it only needs here.
#[cold]
#[inline(never)]
fn wake_from_outside(key: TaskKey) {
    Remote::wake_from_outside(key.slot(), key.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trip() {
        let k = TaskKey::new(4095, MAX_TASKS - 1, (1 << 40) + 7);
        assert_eq!(k.slot(), 4095);
        assert_eq!(k.index(), MAX_TASKS - 1);
        assert!(k.matches(7 + (1 << 40)));
        assert!(!k.matches(8));
        let w = waker_for(k);
        assert_eq!(w.data().addr() as u64, k.0);
        assert!(w.will_wake(&w.clone()));
        assert!(!w.will_wake(&waker_for(TaskKey::new(4095, 0, 7))));
    }
}
