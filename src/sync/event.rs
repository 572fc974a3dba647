//! [`Event`]: a flag tasks wait for (asyncio's `locks.Event`).
//!
//! `set` wakes every waiter not woken yet, in the order they began to wait; a waiter woken stays
//! woken even if `clear` comes before it runs (asyncio: its future is done), so `set(); clear()`
//! in one callback still releases everyone who was waiting. A waiter that leaves removes itself
//! from the list at once (the `Drop` of [`EventWait`]); nothing is passed on, since a `set`
//! wakes all.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::{Ticket, WaitList};

/// A flag tasks can wait for (asyncio's `Event`): [`set`](Event::set) wakes every waiter.
///
/// # Examples
///
/// ```
/// use aioloop::sync::Event;
/// aioloop::run(async {
///     let ev = Event::new();
///     let e = ev.clone();
///     let waiter = aioloop::spawn(async move {
///         e.wait().await;
///         "woken"
///     });
///     aioloop::yield_now().await;
///     ev.set();
///     assert_eq!(waiter.await.unwrap(), "woken");
/// });
/// ```
#[derive(Clone, Default)]
pub struct Event {
    inner: Rc<EventInner>,
}

#[derive(Default)]
struct EventInner {
    set: Cell<bool>,
    waiters: RefCell<WaitList>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").field("set", &self.is_set()).finish()
    }
}

impl Event {
    /// Creates an event that is not set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!aioloop::sync::Event::new().is_set());
    /// ```
    pub fn new() -> Event {
        Event::default()
    }

    /// Returns true if the event is set.
    ///
    /// # Examples
    ///
    /// ```
    /// let ev = aioloop::sync::Event::new();
    /// ev.set();
    /// assert!(ev.is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.inner.set.get()
    }

    /// Sets the event and wakes every task waiting for it (they resume in the order they began
    /// to wait, in the next iteration).
    ///
    /// # Examples
    ///
    /// See [`Event`].
    pub fn set(&self) {
        if !self.inner.set.replace(true) {
            let wakers = self.inner.waiters.borrow_mut().wake_all();
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    /// Clears the event: later [`wait`](Self::wait)s block until it is set again.
    ///
    /// # Examples
    ///
    /// ```
    /// let ev = aioloop::sync::Event::new();
    /// ev.set();
    /// ev.clear();
    /// assert!(!ev.is_set());
    /// ```
    pub fn clear(&self) {
        self.inner.set.set(false);
    }

    /// Waits until the event is set (at once, without yielding, if it is set already).
    ///
    /// # Examples
    ///
    /// See [`Event`].
    pub fn wait(&self) -> EventWait<'_> {
        EventWait { event: self, ticket: None }
    }
}

/// The future of [`Event::wait`].
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let ev = aioloop::sync::Event::new();
///     ev.set();
///     let w: aioloop::sync::EventWait<'_> = ev.wait();
///     w.await;
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct EventWait<'a> {
    event: &'a Event,
    ticket: Option<Ticket>,
}

impl fmt::Debug for EventWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWait").field("waiting", &self.ticket.is_some()).finish()
    }
}

impl Future for EventWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &self.event.inner;
        match self.ticket {
            None if inner.set.get() => Poll::Ready(()),
            None => {
                let t = inner.waiters.borrow_mut().push(cx.waker());
                self.ticket = Some(t);
                Poll::Pending
            }
            Some(_) => {
                let this = &mut *self;
                if this.event.inner.waiters.borrow_mut().take_turn(&mut this.ticket, cx.waker()) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.event.inner.waiters.borrow_mut().remove(t);
        }
    }
}
