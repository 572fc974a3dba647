//! [`BoundedSemaphore`]: a [`Semaphore`] that never holds more permits than it started with
//! (asyncio's `locks.BoundedSemaphore`).
//!
//! Invariant: free permits + permits promised to woken waiters + live [`Permit`]s + forgotten
//! permits = the initial count. A `Permit` gives its permit back when dropped, which can never
//! break the bound; [`release`](BoundedSemaphore::release), the only other way in, is accepted
//! only for a permit that was [`forget`](Permit::forget)-ten.
//!
//! asyncio checks the free count against the bound instead (`if self._value >= self._bound_value:
//! raise ValueError`), which misses permits promised to woken waiters: with a bound of 1, a
//! release that wakes a waiter followed by a second release is accepted there and lets two tasks
//! in. Here the second release is the error.

use std::fmt;

use super::{Permit, Semaphore, SemaphoreAcquire};

/// A semaphore whose permits cannot grow past the initial count (asyncio's `BoundedSemaphore`):
/// [`Semaphore`]'s API, and [`release`](Self::release) returns an error instead of adding a
/// permit that was never taken.
///
/// # Examples
///
/// Taking a permit by hand and giving it back, asyncio's `acquire()` / `release()`:
///
/// ```
/// use aioloop::sync::{BoundedSemaphore, TooManyReleases};
/// aioloop::run(async {
///     let sem = BoundedSemaphore::new(1);
///     sem.acquire().await.forget(); // held without a guard
///     assert!(sem.is_locked());
///     assert_eq!(sem.release(), Ok(()));
///     assert_eq!(sem.release(), Err(TooManyReleases)); // past the initial count
///     assert_eq!(sem.available_permits(), 1);
/// });
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    sem: Semaphore,
    bound: usize,
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("available", &self.available_permits())
            .field("bound", &self.bound)
            .finish()
    }
}

/// [`BoundedSemaphore::release`] with no permit to give back (asyncio's `ValueError`).
///
/// # Examples
///
/// ```
/// let sem = aioloop::sync::BoundedSemaphore::new(3);
/// let err = sem.release().unwrap_err();
/// assert_eq!(err.to_string(), "BoundedSemaphore released too many times");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TooManyReleases;

impl fmt::Display for TooManyReleases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoundedSemaphore released too many times")
    }
}

impl std::error::Error for TooManyReleases {}

impl BoundedSemaphore {
    /// Creates a semaphore with `permits` permits, which is also its bound.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(aioloop::sync::BoundedSemaphore::new(3).available_permits(), 3);
    /// ```
    pub fn new(permits: usize) -> BoundedSemaphore {
        BoundedSemaphore { sem: Semaphore::new(permits), bound: permits }
    }

    /// Returns how many permits are free.
    ///
    /// # Examples
    ///
    /// See [`new`](Self::new).
    pub fn available_permits(&self) -> usize {
        self.sem.available_permits()
    }

    /// Returns true if [`acquire`](Self::acquire) would wait (no permit, or tasks already
    /// waiting), as [`Semaphore::is_locked`].
    ///
    /// # Examples
    ///
    /// See [`BoundedSemaphore`].
    pub fn is_locked(&self) -> bool {
        self.sem.is_locked()
    }

    /// Waits for a permit (FIFO), as [`Semaphore::acquire`]; dropping the [`Permit`] gives it
    /// back.
    ///
    /// # Cancellation
    ///
    /// As [`Semaphore::acquire`]: a permit handed to a waiter that is then cancelled goes on to
    /// the next waiter.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let sem = aioloop::sync::BoundedSemaphore::new(1);
    ///     let permit = sem.acquire().await;
    ///     assert!(sem.try_acquire().is_none());
    ///     drop(permit);
    ///     assert!(sem.try_acquire().is_some());
    /// });
    /// ```
    pub fn acquire(&self) -> SemaphoreAcquire<'_> {
        self.sem.acquire()
    }

    /// Takes a permit if one is free and nobody waits.
    ///
    /// # Examples
    ///
    /// See [`acquire`](Self::acquire).
    pub fn try_acquire(&self) -> Option<Permit> {
        self.sem.try_acquire()
    }

    /// Gives back a permit taken with [`Permit::forget`] (asyncio's `release()`); the first
    /// waiter gets it, as when a `Permit` is dropped.
    ///
    /// # Errors
    ///
    /// [`TooManyReleases`] if no permit is out without a guard: the release would take the
    /// semaphore past its initial count. Nothing changes then.
    ///
    /// # Examples
    ///
    /// See [`BoundedSemaphore`].
    pub fn release(&self) -> Result<(), TooManyReleases> {
        if !self.sem.take_forgotten() {
            return Err(TooManyReleases);
        }
        self.sem.release();
        Ok(())
    }
}
