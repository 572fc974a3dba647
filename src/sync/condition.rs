//! [`Condition`]: a condition variable over a [`Lock`] (asyncio's `locks.Condition`).
//!
//! A waiter registers for a notification *before* it releases the lock, so a `notify` between
//! the two is not missed; once notified, it waits for the lock again. A waiter that leaves after
//! it was notified (cancelled while waiting for the notification or for the lock) passes the
//! notification on to the next waiter (asyncio 3.13, CPython gh-112202).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::{wake, Lock, LockGuard, Ticket, WaitList};

/// A condition variable over a [`Lock`] (asyncio's `Condition`): tasks holding the lock
/// [`wait`](Condition::wait) for a [`notify`](Condition::notify) and get the lock back.
///
/// # Examples
///
/// ```
/// use aioloop::sync::{Condition, Lock};
/// aioloop::run(async {
///     let cond = Condition::new(Lock::new(false));
///     let c = cond.clone();
///     let waiter = aioloop::spawn(async move {
///         let mut ready = c.lock().lock().await;
///         while !*ready {
///             ready = c.wait(ready).await;
///         }
///     });
///     aioloop::yield_now().await;
///     *cond.lock().lock().await = true;
///     cond.notify_all();
///     waiter.await.unwrap();
/// });
/// ```
pub struct Condition<T> {
    lock: Lock<T>,
    waiters: Rc<RefCell<WaitList>>,
}

impl<T> Clone for Condition<T> {
    fn clone(&self) -> Self {
        Condition { lock: self.lock.clone(), waiters: self.waiters.clone() }
    }
}

impl<T> fmt::Debug for Condition<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition").field("lock", &self.lock).finish()
    }
}

impl<T> Condition<T> {
    /// Creates a condition over `lock`.
    ///
    /// # Examples
    ///
    /// See [`Condition`].
    pub fn new(lock: Lock<T>) -> Condition<T> {
        Condition { lock, waiters: Rc::default() }
    }

    /// Returns the lock.
    ///
    /// # Examples
    ///
    /// See [`Condition`].
    pub fn lock(&self) -> &Lock<T> {
        &self.lock
    }

    /// Releases the lock (`guard`), waits for a notification, then waits for the lock again and
    /// returns its guard (asyncio's `wait()`). Spurious returns are possible: re-check the
    /// condition in a loop.
    ///
    /// # Cancellation
    ///
    /// A waiter cancelled after it was notified passes the notification on to the next waiter.
    ///
    /// # Examples
    ///
    /// See [`Condition`].
    pub async fn wait(&self, guard: LockGuard<T>) -> LockGuard<T> {
        let mut w = CondWait { list: &self.waiters, ticket: None };
        // Register before releasing, so a notify between the two is not missed.
        std::future::poll_fn(|cx| {
            w.ticket = Some(self.waiters.borrow_mut().push(cx.waker()));
            Poll::Ready(())
        })
        .await;
        drop(guard);
        (&mut w).await;
        // Notified. Cancelled while waiting for the lock again, the notification goes on to the
        // next waiter (asyncio 3.13's `Condition.wait`).
        let mut pass_on = PassOn(Some(self));
        let guard = self.lock.lock().await;
        pass_on.0 = None;
        guard
    }

    /// Waits until `predicate` holds for the guarded value, and returns the guard with the lock
    /// held (asyncio's `wait_for`): checks it at once, without waiting, then after each
    /// notification, as a loop around [`wait`](Self::wait) would.
    ///
    /// # Cancellation
    ///
    /// As [`wait`](Self::wait): a waiter cancelled after it was notified passes the notification
    /// on to the next waiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use aioloop::sync::{Condition, Lock};
    /// aioloop::run(async {
    ///     let cond = Condition::new(Lock::new(0));
    ///     let c = cond.clone();
    ///     let waiter = aioloop::spawn(async move {
    ///         let g = c.lock().lock().await;
    ///         *c.wait_for(g, |n| *n >= 3).await
    ///     });
    ///     for _ in 0..3 {
    ///         aioloop::yield_now().await;
    ///         *cond.lock().lock().await += 1;
    ///         cond.notify_all();
    ///     }
    ///     assert_eq!(waiter.await.unwrap(), 3);
    /// });
    /// ```
    pub async fn wait_for(&self, mut guard: LockGuard<T>, mut predicate: impl FnMut(&T) -> bool) -> LockGuard<T> {
        while !predicate(&guard) {
            guard = self.wait(guard).await;
        }
        guard
    }

    /// Wakes up to `n` tasks waiting on the condition (in FIFO order).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = aioloop::sync::Condition::new(aioloop::sync::Lock::new(()));
    /// c.notify(1); // nobody waits: nothing happens
    /// ```
    pub fn notify(&self, n: usize) {
        for _ in 0..n {
            let next = self.waiters.borrow_mut().wake_next();
            match next {
                Some(w) => w.wake(),
                None => break,
            }
        }
    }

    /// Wakes every task waiting on the condition.
    ///
    /// # Examples
    ///
    /// See [`Condition`].
    pub fn notify_all(&self) {
        let wakers = self.waiters.borrow_mut().wake_all();
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Passes a notification on if dropped armed (the waiter was cancelled before it got the lock).
struct PassOn<'a, T>(Option<&'a Condition<T>>);

impl<T> Drop for PassOn<'_, T> {
    fn drop(&mut self) {
        if let Some(cond) = self.0 {
            cond.notify(1);
        }
    }
}

/// A task waiting for a notification of a [`Condition`].
struct CondWait<'a> {
    list: &'a RefCell<WaitList>,
    ticket: Option<Ticket>,
}

impl Future for &mut CondWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut **self;
        if this.ticket.is_none() || this.list.borrow_mut().take_turn(&mut this.ticket, cx.waker()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for CondWait<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            let woken = self.list.borrow_mut().remove(t);
            if woken == Some(true) {
                let next = self.list.borrow_mut().wake_next();
                wake(next);
            }
        }
    }
}
