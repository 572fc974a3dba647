//! [`Lock`]: mutual exclusion around a value (asyncio's `locks.Lock`, with the value inside).
//!
//! Invariants: `locked` is true exactly while a [`LockGuard`] is alive, and the value sits in
//! the lock exactly while it is not locked (the guard holds it meanwhile). A waiter is woken only
//! by a release (or by the drop of a woken waiter that gave up), and only the first one; the lock
//! is taken by that woken waiter, or at once by a newcomer when no waiter competes (no barging).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{wake, Ticket, WaitList};

/// A mutual-exclusion lock guarding a value (asyncio's `Lock`, with the value inside, as Rust
/// locks have): [`lock`](Lock::lock) waits its turn and gives a guard that derefs to the value.
///
/// Waiters get the lock in FIFO order, and a newcomer never takes it while others wait.
///
/// # Examples
///
/// ```
/// use aioloop::sync::Lock;
/// aioloop::run(async {
///     let counter = Lock::new(0);
///     let tasks: Vec<_> = (0..10)
///         .map(|_| {
///             let c = counter.clone();
///             aioloop::spawn(async move {
///                 let mut g = c.lock().await;
///                 let v = *g;
///                 aioloop::yield_now().await; // holding the lock across an await
///                 *g = v + 1;
///             })
///         })
///         .collect();
///     for t in tasks {
///         t.await.unwrap();
///     }
///     assert_eq!(*counter.lock().await, 10);
/// });
/// ```
pub struct Lock<T> {
    inner: Rc<LockInner<T>>,
}

struct LockInner<T> {
    /// The value, while nobody holds the lock (a guard holds it meanwhile).
    value: Cell<Option<T>>,
    locked: Cell<bool>,
    waiters: RefCell<WaitList>,
}

impl<T> Clone for Lock<T> {
    fn clone(&self) -> Self {
        Lock { inner: self.inner.clone() }
    }
}

impl<T> fmt::Debug for Lock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").field("locked", &self.is_locked()).finish()
    }
}

impl<T> Lock<T> {
    /// Creates an unlocked lock guarding `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = aioloop::sync::Lock::new(vec![1]);
    /// assert!(!l.is_locked());
    /// ```
    pub fn new(value: T) -> Lock<T> {
        Lock {
            inner: Rc::new(LockInner {
                value: Cell::new(Some(value)),
                locked: Cell::new(false),
                waiters: RefCell::default(),
            }),
        }
    }

    /// Returns true if a guard is alive.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let l = aioloop::sync::Lock::new(());
    ///     let g = l.lock().await;
    ///     assert!(l.is_locked());
    ///     drop(g);
    ///     assert!(!l.is_locked());
    /// });
    /// ```
    pub fn is_locked(&self) -> bool {
        self.inner.locked.get()
    }

    /// Waits for the lock and returns a guard; dropping the guard releases the lock and wakes
    /// the next waiter. Takes it at once, without yielding, if it is free and nobody waits.
    ///
    /// # Cancellation
    ///
    /// A waiter cancelled after it was woken wakes the next one: the lock is never lost.
    ///
    /// # Examples
    ///
    /// See [`Lock`].
    pub fn lock(&self) -> Acquire<'_, T> {
        Acquire { lock: self, ticket: None }
    }

    /// Takes the lock if it is free and nobody waits for it.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = aioloop::sync::Lock::new(5);
    /// let g = l.try_lock().unwrap();
    /// assert_eq!(*g, 5);
    /// assert!(l.try_lock().is_none());
    /// ```
    pub fn try_lock(&self) -> Option<LockGuard<T>> {
        let inner = &self.inner;
        if inner.locked.get() || !inner.waiters.borrow().is_empty() {
            return None;
        }
        Some(self.take())
    }

    fn take(&self) -> LockGuard<T> {
        self.inner.locked.set(true);
        let value = self.inner.value.take().expect("an unlocked lock holds its value");
        LockGuard { lock: self.clone(), value: Some(value) }
    }
}

/// The future of [`Lock::lock`].
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let l = aioloop::sync::Lock::new(1);
///     let a: aioloop::sync::Acquire<'_, i32> = l.lock();
///     assert_eq!(*a.await, 1);
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Acquire<'a, T> {
    lock: &'a Lock<T>,
    ticket: Option<Ticket>,
}

impl<T> fmt::Debug for Acquire<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire").field("waiting", &self.ticket.is_some()).finish()
    }
}

impl<T> Future for Acquire<'_, T> {
    type Output = LockGuard<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LockGuard<T>> {
        let inner = &self.lock.inner;
        match self.ticket {
            None => {
                if !inner.locked.get() && inner.waiters.borrow().is_empty() {
                    return Poll::Ready(self.lock.take());
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
                // Woken: the lock was released for us (asyncio: the waiter future is done).
                if inner.locked.get() {
                    // Cannot happen without barging, which `lock` prevents; wait again.
                    let t = inner.waiters.borrow_mut().push(cx.waker());
                    self.ticket = Some(t);
                    return Poll::Pending;
                }
                Poll::Ready(self.lock.take())
            }
        }
    }
}

impl<T> Drop for Acquire<'_, T> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            let inner = &self.lock.inner;
            inner.waiters.borrow_mut().remove(t);
            // Cancelled: if the lock is free, the first waiter may take it (asyncio's
            // `_wake_up_first` in the `except CancelledError` of `acquire`).
            if !inner.locked.get() {
                let next = inner.waiters.borrow_mut().wake_first();
                wake(next);
            }
        }
    }
}

/// Holds a [`Lock`] and its value; dropping it releases the lock.
///
/// # Examples
///
/// See [`Lock`].
pub struct LockGuard<T> {
    lock: Lock<T>,
    value: Option<T>,
}

impl<T> Deref for LockGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_ref().expect("held until dropped")
    }
}

impl<T> DerefMut for LockGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_mut().expect("held until dropped")
    }
}

impl<T: fmt::Debug> fmt::Debug for LockGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LockGuard").field(&**self).finish()
    }
}

impl<T> Drop for LockGuard<T> {
    fn drop(&mut self) {
        let inner = &self.lock.inner;
        inner.value.set(self.value.take());
        inner.locked.set(false);
        let next = inner.waiters.borrow_mut().wake_first();
        wake(next);
    }
}
