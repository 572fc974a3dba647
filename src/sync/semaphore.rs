//! [`Semaphore`]: a counter of permits (asyncio's `locks.Semaphore`).
//!
//! Invariant: `value` counts the permits that are free and not promised to anyone. A release
//! with a waiter not woken yet hands the permit to it directly (the count goes up and down
//! again), so a woken waiter owns a permit before it runs, and a newcomer cannot take it. A woken
//! waiter dropped before it ran gives its permit back, to the next waiter.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{wake, Ticket, WaitList};

/// A counter of permits (asyncio's `Semaphore`): [`acquire`](Semaphore::acquire) waits for a
/// permit, dropping the [`Permit`] gives it back.
///
/// Waiters get permits in FIFO order; a released permit is handed to the first waiter directly,
/// so a newcomer never takes it while others wait.
///
/// # Examples
///
/// At most 2 of 6 tasks in the critical section at once:
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use aioloop::sync::Semaphore;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let peak = lp.run_until_complete(async {
///     let sem = Semaphore::new(2);
///     let (now, peak) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
///     let tasks: Vec<_> = (0..6)
///         .map(|_| {
///             let (sem, now, peak) = (sem.clone(), now.clone(), peak.clone());
///             aioloop::spawn(async move {
///                 let _permit = sem.acquire().await;
///                 now.set(now.get() + 1);
///                 peak.set(peak.get().max(now.get()));
///                 aioloop::sleep(Duration::from_secs(1)).await;
///                 now.set(now.get() - 1);
///             })
///         })
///         .collect();
///     for t in tasks {
///         t.await.unwrap();
///     }
///     peak.get()
/// });
/// assert_eq!(peak, 2);
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Rc<SemInner>,
}

struct SemInner {
    /// Free permits, not promised to a woken waiter.
    value: Cell<usize>,
    waiters: RefCell<WaitList>,
    /// Permits taken out of circulation by [`Permit::forget`] (a [`BoundedSemaphore`]'s
    /// `release` may give back only these).
    ///
    /// [`BoundedSemaphore`]: super::BoundedSemaphore
    forgotten: Cell<usize>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("available", &self.available_permits()).finish()
    }
}

impl Semaphore {
    /// Creates a semaphore with `permits` permits.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(aioloop::sync::Semaphore::new(3).available_permits(), 3);
    /// ```
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            inner: Rc::new(SemInner {
                value: Cell::new(permits),
                waiters: RefCell::default(),
                forgotten: Cell::new(0),
            }),
        }
    }

    /// Returns how many permits are free.
    ///
    /// # Examples
    ///
    /// See [`new`](Self::new).
    pub fn available_permits(&self) -> usize {
        self.inner.value.get()
    }

    /// Returns true if [`acquire`](Self::acquire) would wait (asyncio's `locked()`: no permit,
    /// or tasks already waiting).
    ///
    /// # Examples
    ///
    /// ```
    /// let s = aioloop::sync::Semaphore::new(1);
    /// let p = s.try_acquire().unwrap();
    /// assert!(s.is_locked());
    /// drop(p);
    /// assert!(!s.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.inner.value.get() == 0 || !self.inner.waiters.borrow().is_empty()
    }

    /// Waits for a permit (FIFO). Takes one at once, without yielding, if one is free and nobody
    /// waits.
    ///
    /// # Cancellation
    ///
    /// A waiter cancelled after a permit was handed to it gives the permit back, to the next
    /// waiter: no permit is ever lost.
    ///
    /// # Examples
    ///
    /// See [`Semaphore`].
    pub fn acquire(&self) -> SemaphoreAcquire<'_> {
        SemaphoreAcquire { sem: self, ticket: None }
    }

    /// Takes a permit if one is free and nobody waits.
    ///
    /// # Examples
    ///
    /// See [`is_locked`](Self::is_locked).
    pub fn try_acquire(&self) -> Option<Permit> {
        if self.is_locked() {
            return None;
        }
        self.inner.value.set(self.inner.value.get() - 1);
        Some(Permit::new(self))
    }

    /// Adds a permit (without a [`Permit`] to drop), handing it to the first waiter if any.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = aioloop::sync::Semaphore::new(0);
    /// s.add_permits(2);
    /// assert_eq!(s.available_permits(), 2);
    /// ```
    pub fn add_permits(&self, n: usize) {
        for _ in 0..n {
            self.release();
        }
    }

    /// asyncio's `release()`: one permit more; the first waiter not woken yet gets it.
    pub(super) fn release(&self) {
        let inner = &self.inner;
        inner.value.set(inner.value.get() + 1);
        let next = inner.waiters.borrow_mut().wake_next();
        if next.is_some() {
            inner.value.set(inner.value.get() - 1); // taken on the waiter's behalf
        }
        wake(next);
    }
}

/// The future of [`Semaphore::acquire`].
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let s = aioloop::sync::Semaphore::new(1);
///     let a: aioloop::sync::SemaphoreAcquire<'_> = s.acquire();
///     let _permit = a.await;
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct SemaphoreAcquire<'a> {
    sem: &'a Semaphore,
    ticket: Option<Ticket>,
}

impl fmt::Debug for SemaphoreAcquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreAcquire").field("waiting", &self.ticket.is_some()).finish()
    }
}

impl Future for SemaphoreAcquire<'_> {
    type Output = Permit;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let inner = &self.sem.inner;
        match self.ticket {
            None => {
                if let Some(p) = self.sem.try_acquire() {
                    return Poll::Ready(p);
                }
                let t = inner.waiters.borrow_mut().push(cx.waker());
                self.ticket = Some(t);
                Poll::Pending
            }
            Some(_) => {
                let this = &mut *self;
                if !inner.waiters.borrow_mut().take_turn(&mut this.ticket, cx.waker()) {
                    return Poll::Pending;
                }
                // Woken: a permit was handed to us. If more are free (several released at
                // once), the next waiter gets one too (asyncio's `if self._value > 0:
                // self._wake_up_next()`).
                if inner.value.get() > 0 {
                    let next = inner.waiters.borrow_mut().wake_next();
                    if next.is_some() {
                        inner.value.set(inner.value.get() - 1);
                    }
                    wake(next);
                }
                Poll::Ready(Permit::new(self.sem))
            }
        }
    }
}

impl Drop for SemaphoreAcquire<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            let woken = self.sem.inner.waiters.borrow_mut().remove(t);
            if woken == Some(true) {
                // Cancelled holding a handed-over permit: give it back, to the next waiter.
                self.sem.release();
            }
        }
    }
}

/// A permit of a [`Semaphore`] (or a [`BoundedSemaphore`](super::BoundedSemaphore)); dropping
/// it gives the permit back.
///
/// # Examples
///
/// See [`Semaphore`].
pub struct Permit {
    /// `None` once forgotten.
    sem: Option<Semaphore>,
}

impl Permit {
    pub(super) fn new(sem: &Semaphore) -> Permit {
        Permit { sem: Some(sem.clone()) }
    }

    /// Keeps the permit taken without a guard (asyncio's `acquire()` without a `release()`
    /// yet): a [`Semaphore`] has one permit less for good, unless
    /// [`add_permits`](Semaphore::add_permits) adds it back; a
    /// [`BoundedSemaphore`](super::BoundedSemaphore) takes it back with
    /// [`release`](super::BoundedSemaphore::release).
    ///
    /// # Examples
    ///
    /// ```
    /// let s = aioloop::sync::Semaphore::new(2);
    /// s.try_acquire().unwrap().forget();
    /// assert_eq!(s.available_permits(), 1);
    /// ```
    pub fn forget(mut self) {
        if let Some(sem) = self.sem.take() {
            sem.inner.forgotten.set(sem.inner.forgotten.get() + 1);
        }
    }
}

impl Semaphore {
    /// Takes back one permit forgotten with [`Permit::forget`]; returns false if there is none.
    pub(super) fn take_forgotten(&self) -> bool {
        let n = self.inner.forgotten.get();
        self.inner.forgotten.set(n.saturating_sub(1));
        n > 0
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(sem) = self.sem.take() {
            sem.release();
        }
    }
}
