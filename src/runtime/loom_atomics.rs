//! Loom build only (`RUSTFLAGS="--cfg loom"`): the stand-ins that the cross-thread half
//! ([`cross_thread`](super::cross_thread)) uses under loom: linearizable atomics ([`ScAtomic`])
//! and the poller's stand-in ([`Park`]). The harness that drives them, for tests/loom_wake.rs,
//! is the crate's `loom_shim` module.

#![cfg(loom)]

use std::sync::atomic::{Ordering, Ordering::SeqCst};
use std::sync::PoisonError;

use loom::sync::{Condvar, Mutex};

/// An atomic for the loom build: a value behind a loom mutex, each access one critical section.
///
/// Every atomic of `cross_thread.rs` is used with `SeqCst`, whose promise is that all those accesses
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
    pub(crate) fn wait(&self) {
        let mut notified = self.notified.lock().unwrap_or_else(PoisonError::into_inner);
        while !*notified {
            notified = self.cond.wait(notified).unwrap_or_else(PoisonError::into_inner);
        }
        *notified = false;
    }
}
