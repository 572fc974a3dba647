//! Loom build only (`RUSTFLAGS="--cfg loom"`): what tests/loom_wake.rs needs to drive the real
//! cross-thread wake-up code of [`remote`](crate::runtime::cross_thread) under loom.
//!
//! The OS poller cannot run under loom, so the loom build gives [`Remote`] a [`Park`] as well, a
//! mutex-and-condvar flag that [`Remote::notify`] sets and that the test's loop sleeps on. It is
//! sticky, like `polling::Poller::notify` (a notification sent while nobody waits ends the next
//! wait at once), and it is the only thing here that is not the production code: the inbox, the
//! `pending`/`notified`/`stop` flags, the wakers and [`LoopHandle`] are the real ones, with
//! loom's mutex, and the atomics as values behind loom mutexes, which is exactly `SeqCst`'s
//! semantics (loom's own atomics give false alarms here: see [`ScAtomic`]).
//!
//! Not part of the crate's API: nothing here exists outside the loom build.

#![cfg(loom)]
#![doc(hidden)]

use std::sync::{Arc, PoisonError};
use std::task::Waker;

use loom::sync::{Condvar, Mutex};
use std::sync::atomic::{Ordering, Ordering::SeqCst};

use crate::loop_handle::LoopHandle;
use crate::runtime::cross_thread::Remote;
use crate::runtime::waker::{waker_for, TaskKey};

/// An atomic for the loom build: a value behind a loom mutex, each access one critical section.
///
/// Every atomic of `remote.rs` is used with `SeqCst`, whose promise is that all those accesses
/// happen in one total order, as if interleaved. Loom 0.7 models a `SeqCst` access as `AcqRel`
/// (a documented limitation, tokio-rs/loom#180) and, worse, lets a read-modify-write such as
/// `swap` read a value older than one a later load of the same thread already had to see
/// (checked with a three-line model: a `swap` that reads the initial value, a `store` by
/// another thread handed over through a mutex, then a load that still reads the `swap`'s value,
/// which C11's coherence rules forbid). Both give false alarms. A value behind a mutex is
/// linearizable, so the accesses of all of them together interleave in one order: `SeqCst`'s
/// semantics exactly, with loom still choosing where each thread is preempted.
pub(crate) struct ScAtomic<T>(Mutex<T>);

/// `AtomicBool` for the loom build (see [`ScAtomic`]).
pub(crate) type AtomicBool = ScAtomic<bool>;
/// `AtomicUsize` for the loom build (see [`ScAtomic`]).
pub(crate) type AtomicUsize = ScAtomic<usize>;

impl<T: Copy> ScAtomic<T> {
    pub(crate) fn new(v: T) -> ScAtomic<T> {
        ScAtomic(Mutex::new(v))
    }
    fn with<R>(&self, order: Ordering, f: impl FnOnce(&mut T) -> R) -> R {
        assert_eq!(order, SeqCst, "remote.rs uses SeqCst only; this stand-in models nothing weaker");
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
    pub(crate) fn load(&self, order: Ordering) -> T {
        self.with(order, |v| *v)
    }
    pub(crate) fn store(&self, new: T, order: Ordering) {
        self.with(order, |v| *v = new)
    }
    pub(crate) fn swap(&self, new: T, order: Ordering) -> T {
        self.with(order, |v| std::mem::replace(v, new))
    }
}

impl ScAtomic<usize> {
    pub(crate) fn fetch_add(&self, n: usize, order: Ordering) -> usize {
        self.with(order, |v| std::mem::replace(v, *v + n))
    }
    pub(crate) fn fetch_sub(&self, n: usize, order: Ordering) -> usize {
        self.with(order, |v| std::mem::replace(v, *v - n))
    }
}

/// The poller's stand-in: `notify` sets the flag, `wait` sleeps until it is set and clears it.
#[derive(Default)]
pub(crate) struct Park {
    notified: Mutex<bool>,
    cond: Condvar,
}

impl Park {
    /// Ends the current wait, or the next one if nobody waits (`Poller::notify`).
    pub(crate) fn notify(&self) {
        *self.notified.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cond.notify_one();
    }

    /// Sleeps until notified (`Poller::wait` with no timeout and no sources).
    fn wait(&self) {
        let mut notified = self.notified.lock().unwrap_or_else(PoisonError::into_inner);
        while !*notified {
            notified = self.cond.wait(notified).unwrap_or_else(PoisonError::into_inner);
        }
        *notified = false;
    }
}

/// A loop's remote half, registered like a real loop's, with the calls its loop makes.
///
/// Create it inside `loom::model`; dropping it unregisters it.
pub struct LoopSide {
    remote: Arc<Remote>,
}

impl std::fmt::Debug for LoopSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopSide").field("slot", &self.remote.slot).finish()
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
        TaskKey::new(self.remote.slot, index, id).0
    }

    /// The real waker of that task: woken on a thread with no running loop, it goes to the inbox.
    pub fn waker(&self, index: usize, id: u64) -> Waker {
        waker_for(TaskKey::new(self.remote.slot, index, id))
    }

    /// Phase 2's question: did other threads queue anything not drained yet?
    pub fn has_pending(&self) -> bool {
        self.remote.has_pending()
    }

    /// Phase 2 reads the stop flag too.
    pub fn stop_requested(&self) -> bool {
        self.remote.stop.load(SeqCst)
    }

    /// After an iteration: takes the stop request (`run_until_stopped`).
    pub fn take_stop(&self) -> bool {
        self.remote.stop.swap(false, SeqCst)
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
