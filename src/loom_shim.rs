//! Loom build only (`RUSTFLAGS="--cfg loom"`): what tests/loom_wake.rs needs to drive the real
//! cross-thread wake-up code of [`remote`](crate::runtime::cross_thread) under loom.
//!
//! The OS poller cannot run under loom, so the loom build gives [`Remote`] a `Park` as well (runtime/loom_atomics.rs), a
//! mutex-and-condvar flag that [`Remote::notify`] sets and that the test's loop sleeps on. It is
//! sticky, like `polling::Poller::notify` (a notification sent while nobody waits ends the next
//! wait at once), and it is the only thing here that is not the production code: the inbox, the
//! `pending`/`notified`/`stop` flags, the wakers and [`LoopHandle`] are the real ones, with
//! loom's mutex, and the atomics as values behind loom mutexes, which is exactly `SeqCst`'s
//! semantics (loom's own atomics give false alarms here: see `ScAtomic` in runtime/loom_atomics.rs).
//!
//! Not part of the crate's API: nothing here exists outside the loom build.

#![cfg(loom)]
#![doc(hidden)]

use std::sync::Arc;
use std::task::Waker;

use crate::loop_handle::LoopHandle;
use crate::runtime::cross_thread::Remote;
use crate::runtime::waker::{waker_for, TaskKey};

/// A loop's remote half, registered like a real loop's, with the calls its loop makes.
///
/// Create it inside `loom::model`; dropping it unregisters it.
pub struct LoopSide {
    remote: Arc<Remote>,
}

impl std::fmt::Debug for LoopSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopSide").field("slot", &self.remote.slot()).finish()
    }
}

impl Default for LoopSide {
    fn default() -> Self {
        Self::new()
    }
}

impl LoopSide {
    /// Registers a new remote half (as `EventLoop::new` does).
    pub fn new() -> LoopSide {
        LoopSide { remote: Remote::register().expect("register a loop") }
    }

    /// The handle other threads use: `call_soon_threadsafe`, `stop`.
    pub fn handle(&self) -> LoopHandle {
        LoopHandle::new(self.remote.clone())
    }

    /// The key of task `index` (id `id`) of this loop, as its waker carries it.
    pub fn key(&self, index: usize, id: u64) -> u64 {
        TaskKey::new(self.remote.slot(), index, id).0
    }

    /// The real waker of that task: woken on a thread with no running loop, it goes to the inbox.
    pub fn waker(&self, index: usize, id: u64) -> Waker {
        waker_for(TaskKey::new(self.remote.slot(), index, id))
    }

    /// Phase 2's question: did other threads queue anything not drained yet?
    pub fn has_pending(&self) -> bool {
        self.remote.has_pending()
    }

    /// Phase 2 reads the stop flag too.
    pub fn stop_requested(&self) -> bool {
        self.remote.stop_requested()
    }

    /// After an iteration: takes the stop request (`run_until_stopped`).
    pub fn take_stop(&self) -> bool {
        self.remote.take_stop()
    }

    /// Phase 3 with nothing to do and no timers: sleep in the "poller" until notified.
    pub fn sleep_in_poller(&self) {
        self.remote.park.wait();
    }

    /// Phase 3, after the poller returned: the next remote wake must notify again.
    pub fn clear_notified(&self) {
        self.remote.clear_notified();
    }

    /// Phase 4: takes the woken keys and the callbacks sent from other threads.
    pub fn drain(&self) -> (Vec<u64>, Vec<Box<dyn FnOnce() + Send>>) {
        let (mut keys, mut jobs) = (Vec::new(), Vec::new());
        self.remote.drain(&mut keys, &mut jobs);
        (keys, jobs)
    }
}

impl Drop for LoopSide {
    fn drop(&mut self) {
        self.remote.unregister();
    }
}
