//! Coordination between tasks of one loop: [`Queue`], [`Event`], [`Lock`], [`Semaphore`],
//! [`Condition`] (asyncio's `queues.py` and `locks.py`).
//!
//! They are for tasks on one loop: cheap `Clone` handles that share their state through an
//! `Rc`, with no atomics and no locks (a single thread cannot race with itself).
//!
//! # Waiters
//!
//! Every primitive keeps its waiting tasks in a `WaitList`: first come, first served. A waiter
//! is *woken* when it is chosen (asyncio: its future is done) and runs one iteration later. The
//! dangerous moment is in between: a task woken, then cancelled before it ran. asyncio's rules,
//! kept here in each waiting future's `Drop`:
//!
//! - a `Queue` getter (or putter) woken and then cancelled passes the wake-up on to the next one,
//!   so the item (or the free slot) is not lost;
//! - a `Lock` waiter woken and then cancelled wakes the next waiter if the lock is still free;
//! - a `Semaphore` permit is handed to the woken waiter; if it is cancelled, the permit goes back
//!   and on to the next waiter;
//! - `Lock` and `Semaphore` never let a newcomer take the lock or a permit while tasks are
//!   waiting for it (no barging); a `Queue` getter re-checks for an item when it runs, as in
//!   asyncio.
//!
//! The alternative, futures-intrusive's linked lists of waiters, avoids the slab but needs
//! `unsafe`; a slab with a FIFO of keys gives O(1) enqueue, wake and removal without it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use slab::Slab;

/// A FIFO of waiting tasks.
#[derive(Default)]
struct WaitList {
    /// The waiters, by key.
    waiters: Slab<Waiter>,
    /// Keys in arrival order, with the sequence number that tells a reused key apart; entries of
    /// removed waiters are skipped lazily.
    order: VecDeque<(usize, u64)>,
    next_seq: u64,
}

struct Waiter {
    seq: u64,
    /// Chosen to proceed (asyncio: its future is done); it runs soon.
    woken: bool,
    waker: Waker,
}

/// A waiter's place in a [`WaitList`].
type Ticket = (usize, u64);

/// Returns true if the waiter's task has a cancellation pending: asyncio's waiter future would
/// be cancelled (done) already, so it no longer competes for an item, a permit or the lock.
fn cancelled(waiter: &Waiter) -> bool {
    crate::waker::key_of(&waiter.waker)
        .is_some_and(|key| crate::context::with_running(|core| core.cancel_requested(key)).unwrap_or(false))
}

impl WaitList {
    fn push(&mut self, waker: &Waker) -> Ticket {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = self.waiters.insert(Waiter { seq, woken: false, waker: waker.clone() });
        self.order.push_back((key, seq));
        (key, seq)
    }

    fn get(&mut self, (key, seq): Ticket) -> Option<&mut Waiter> {
        self.waiters.get_mut(key).filter(|w| w.seq == seq)
    }

    /// Returns true if the waiter was woken; else refreshes its waker.
    fn poll(&mut self, ticket: Ticket, waker: &Waker) -> bool {
        match self.get(ticket) {
            Some(w) if w.woken => true,
            Some(w) => {
                if !w.waker.will_wake(waker) {
                    w.waker = waker.clone();
                }
                false
            }
            None => true,
        }
    }

    /// For a waiter that has a ticket: returns true (and leaves the list, clearing the ticket) if
    /// it was woken; else refreshes its waker and returns false.
    fn take_turn(&mut self, ticket: &mut Option<Ticket>, waker: &Waker) -> bool {
        let t = ticket.expect("a waiter with a ticket");
        if !self.poll(t, waker) {
            return false;
        }
        self.remove(t);
        *ticket = None;
        true
    }

    /// Removes a waiter; returns whether it had been woken.
    fn remove(&mut self, ticket: Ticket) -> Option<bool> {
        let woken = self.get(ticket)?.woken;
        self.waiters.remove(ticket.0);
        // Entries of removed waiters leave `order` lazily, at the front; waiters that give up
        // behind a long-lived first one (timeouts) would pile up, so compact when mostly stale.
        if self.order.len() > 2 * self.waiters.len() + 32 {
            let waiters = &self.waiters;
            self.order.retain(|&(key, seq)| waiters.get(key).is_some_and(|w| w.seq == seq));
        }
        Some(woken)
    }

    /// Returns the first live waiter, dropping stale entries.
    fn front(&mut self) -> Option<Ticket> {
        while let Some(&(key, seq)) = self.order.front() {
            if self.waiters.get(key).is_some_and(|w| w.seq == seq) {
                return Some((key, seq));
            }
            self.order.pop_front();
        }
        None
    }

    /// Returns true if no waiter competes: none, or only cancelled ones not woken yet (asyncio's
    /// `all(w.cancelled() for w in waiters)`).
    fn is_empty(&self) -> bool {
        self.waiters.iter().all(|(_, w)| !w.woken && cancelled(w))
    }

    /// asyncio's `_wake_up_first` (Lock): wakes the first waiter unless it is woken already.
    fn wake_first(&mut self) -> Option<Waker> {
        let ticket = self.front()?;
        let w = self.get(ticket).expect("front is live");
        // A woken first waiter will take the lock; a cancelled one will pass it on when its task
        // runs (asyncio: "a waiter that is done will wake up later on").
        if w.woken || cancelled(w) {
            return None;
        }
        w.woken = true;
        Some(w.waker.clone())
    }

    /// asyncio's `_wakeup_next` / `_wake_up_next`: wakes the first waiter not woken yet. Only
    /// woken waiters that have not run yet are passed over, so this is O(1) in practice.
    fn wake_next(&mut self) -> Option<Waker> {
        self.front()?;
        for &(key, seq) in &self.order {
            if let Some(w) = self.waiters.get_mut(key).filter(|w| w.seq == seq) {
                if !w.woken && !cancelled(w) {
                    w.woken = true;
                    return Some(w.waker.clone());
                }
            }
        }
        None
    }

    /// Wakes every waiter not woken yet, in the order they began to wait (Event,
    /// `Condition::notify_all`).
    fn wake_all(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for &(key, seq) in &self.order {
            if let Some(w) = self.waiters.get_mut(key).filter(|w| w.seq == seq) {
                if !w.woken {
                    w.woken = true;
                    wakers.push(w.waker.clone());
                }
            }
        }
        wakers
    }
}

/// Wakes outside any borrow.
fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

// ===== Event =====

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

// ===== Lock =====

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

// ===== Semaphore =====

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
    value: Cell<usize>,
    waiters: RefCell<WaitList>,
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
        Semaphore { inner: Rc::new(SemInner { value: Cell::new(permits), waiters: RefCell::default() }) }
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
        Some(Permit { sem: self.clone() })
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
    fn release(&self) {
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
                Poll::Ready(Permit { sem: self.sem.clone() })
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

/// A permit of a [`Semaphore`]; dropping it gives the permit back.
///
/// # Examples
///
/// See [`Semaphore`].
pub struct Permit {
    sem: Semaphore,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.sem.release();
    }
}

// ===== Queue =====

/// A FIFO queue between tasks (asyncio's `Queue`), bounded or not.
///
/// [`put`](Queue::put) waits while the queue is full, [`get`](Queue::get) while it is empty;
/// both wake their waiters in FIFO order. [`task_done`](Queue::task_done) and
/// [`join`](Queue::join) count items as processed. [`stream`](Queue::stream) gives the receiving
/// side as a [`futures_core::Stream`].
///
/// # Examples
///
/// ```
/// use aioloop::sync::Queue;
/// aioloop::run(async {
///     let q = Queue::new(1); // bounded: put waits for get
///     let producer = {
///         let q = q.clone();
///         aioloop::spawn(async move {
///             for i in 0..3 {
///                 q.put(i).await;
///             }
///         })
///     };
///     let mut got = vec![];
///     for _ in 0..3 {
///         got.push(q.get().await);
///     }
///     producer.await.unwrap();
///     assert_eq!(got, [0, 1, 2]);
/// });
/// ```
pub struct Queue<T> {
    inner: Rc<QueueInner<T>>,
}

struct QueueInner<T> {
    items: RefCell<VecDeque<T>>,
    /// 0: unbounded.
    maxsize: usize,
    getters: RefCell<WaitList>,
    putters: RefCell<WaitList>,
    /// Items put and not yet marked done.
    unfinished: Cell<usize>,
    /// Set while `unfinished` is 0.
    finished: Event,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue { inner: self.inner.clone() }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("qsize", &self.qsize()).field("maxsize", &self.inner.maxsize).finish()
    }
}

/// [`Queue::put_nowait`] on a full queue; gives the item back.
///
/// # Examples
///
/// ```
/// let q = aioloop::sync::Queue::new(1);
/// q.put_nowait('a').unwrap();
/// let aioloop::sync::QueueFull(item) = q.put_nowait('b').unwrap_err();
/// assert_eq!(item, 'b');
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull<T>(pub T);

impl<T> fmt::Display for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("queue is full")
    }
}

impl<T: fmt::Debug> std::error::Error for QueueFull<T> {}

/// [`Queue::get_nowait`] on an empty queue.
///
/// # Examples
///
/// ```
/// let q = aioloop::sync::Queue::<u8>::new(0);
/// assert_eq!(q.get_nowait(), Err(aioloop::sync::QueueEmpty));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueEmpty;

impl fmt::Display for QueueEmpty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("queue is empty")
    }
}

impl std::error::Error for QueueEmpty {}

/// [`Queue::task_done`] called more times than items were put (asyncio's `ValueError`).
///
/// # Examples
///
/// ```
/// let q = aioloop::sync::Queue::<u8>::new(0);
/// assert!(q.task_done().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TooManyTaskDone;

impl fmt::Display for TooManyTaskDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called too many times")
    }
}

impl std::error::Error for TooManyTaskDone {}

impl<T> Queue<T> {
    /// Creates a queue holding at most `maxsize` items; 0 means unbounded (as in asyncio).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = aioloop::sync::Queue::<i32>::new(0);
    /// assert!(q.empty() && !q.full());
    /// ```
    pub fn new(maxsize: usize) -> Queue<T> {
        let finished = Event::new();
        finished.set();
        Queue {
            inner: Rc::new(QueueInner {
                items: RefCell::new(VecDeque::new()),
                maxsize,
                getters: RefCell::default(),
                putters: RefCell::default(),
                unfinished: Cell::new(0),
                finished,
            }),
        }
    }

    /// Returns the number of items in the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = aioloop::sync::Queue::new(0);
    /// q.put_nowait(1).unwrap();
    /// assert_eq!(q.qsize(), 1);
    /// ```
    pub fn qsize(&self) -> usize {
        self.inner.items.borrow().len()
    }

    /// Returns the bound given to [`new`](Self::new) (0: unbounded).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(aioloop::sync::Queue::<()>::new(8).maxsize(), 8);
    /// ```
    pub fn maxsize(&self) -> usize {
        self.inner.maxsize
    }

    /// Returns true if the queue holds no item (asyncio's `empty()`).
    ///
    /// # Examples
    ///
    /// See [`new`](Self::new).
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Returns true if a bounded queue holds `maxsize` items (asyncio's `full()`).
    ///
    /// # Examples
    ///
    /// See [`put_nowait`](Self::put_nowait).
    pub fn full(&self) -> bool {
        self.inner.maxsize > 0 && self.qsize() >= self.inner.maxsize
    }

    /// Puts an item without waiting, waking the first waiting getter.
    ///
    /// # Errors
    ///
    /// [`QueueFull`], holding the item, if the queue is full.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = aioloop::sync::Queue::new(1);
    /// assert!(q.put_nowait(1).is_ok());
    /// assert!(q.full());
    /// assert_eq!(q.put_nowait(2), Err(aioloop::sync::QueueFull(2)));
    /// ```
    pub fn put_nowait(&self, item: T) -> Result<(), QueueFull<T>> {
        if self.full() {
            return Err(QueueFull(item));
        }
        self.inner.items.borrow_mut().push_back(item);
        self.inner.unfinished.set(self.inner.unfinished.get() + 1);
        self.inner.finished.clear();
        let next = self.inner.getters.borrow_mut().wake_next();
        wake(next);
        Ok(())
    }

    /// Takes an item without waiting, waking the first waiting putter.
    ///
    /// # Errors
    ///
    /// [`QueueEmpty`] if the queue is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = aioloop::sync::Queue::new(0);
    /// q.put_nowait("x").unwrap();
    /// assert_eq!(q.get_nowait(), Ok("x"));
    /// ```
    pub fn get_nowait(&self) -> Result<T, QueueEmpty> {
        let item = self.inner.items.borrow_mut().pop_front().ok_or(QueueEmpty)?;
        let next = self.inner.putters.borrow_mut().wake_next();
        wake(next);
        Ok(item)
    }

    /// Puts an item, waiting while the queue is full.
    ///
    /// # Cancellation
    ///
    /// The item is not put if the future is dropped before it completes; a putter woken (a
    /// slot freed for it) and then cancelled wakes the next putter.
    ///
    /// # Examples
    ///
    /// See [`Queue`].
    pub async fn put(&self, mut item: T) {
        loop {
            match self.put_nowait(item) {
                Ok(()) => return,
                Err(QueueFull(it)) => item = it,
            }
            QueueWait { list: &self.inner.putters, queue: self, getter: false, ticket: None }.await;
        }
    }

    /// Takes an item, waiting while the queue is empty.
    ///
    /// # Cancellation
    ///
    /// No item is lost: a getter woken and then cancelled before it took the item wakes the
    /// next getter, which finds the item.
    ///
    /// # Examples
    ///
    /// See [`Queue`].
    pub async fn get(&self) -> T {
        loop {
            if let Ok(item) = self.get_nowait() {
                return item;
            }
            QueueWait { list: &self.inner.getters, queue: self, getter: true, ticket: None }.await;
        }
    }

    /// Marks an item taken with [`get`](Self::get) as processed (for [`join`](Self::join)).
    ///
    /// # Errors
    ///
    /// [`TooManyTaskDone`] if called more times than items were put.
    ///
    /// # Examples
    ///
    /// See [`join`](Self::join).
    pub fn task_done(&self) -> Result<(), TooManyTaskDone> {
        let n = self.inner.unfinished.get();
        if n == 0 {
            return Err(TooManyTaskDone);
        }
        self.inner.unfinished.set(n - 1);
        if n == 1 {
            self.inner.finished.set();
        }
        Ok(())
    }

    /// Waits until every item put has been marked done with [`task_done`](Self::task_done).
    ///
    /// # Examples
    ///
    /// ```
    /// use aioloop::sync::Queue;
    /// aioloop::run(async {
    ///     let q = Queue::new(0);
    ///     for i in 0..3 {
    ///         q.put_nowait(i).unwrap();
    ///     }
    ///     let worker = {
    ///         let q = q.clone();
    ///         aioloop::spawn(async move {
    ///             loop {
    ///                 let _item = q.get().await;
    ///                 q.task_done().unwrap();
    ///             }
    ///         })
    ///     };
    ///     q.join().await;
    ///     worker.cancel();
    /// });
    /// ```
    pub async fn join(&self) {
        if self.inner.unfinished.get() > 0 {
            self.inner.finished.wait().await;
        }
    }

    /// Returns the receiving side as a [`futures_core::Stream`] that yields items as
    /// [`get`](Self::get) would (it never ends: a queue has no closing).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_lite::StreamExt;
    /// aioloop::run(async {
    ///     let q = aioloop::sync::Queue::new(0);
    ///     q.put_nowait(1).unwrap();
    ///     q.put_nowait(2).unwrap();
    ///     let two: Vec<i32> = q.stream().take(2).collect().await;
    ///     assert_eq!(two, [1, 2]);
    /// });
    /// ```
    pub fn stream(&self) -> QueueStream<T> {
        QueueStream { queue: self.clone(), ticket: None }
    }
}

/// A putter or getter waiting for its turn in a [`Queue`].
struct QueueWait<'a, T> {
    list: &'a RefCell<WaitList>,
    queue: &'a Queue<T>,
    getter: bool,
    ticket: Option<Ticket>,
}

impl<T> Future for QueueWait<'_, T> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.ticket {
            None => {
                let t = self.list.borrow_mut().push(cx.waker());
                self.ticket = Some(t);
                Poll::Pending
            }
            Some(_) => {
                let this = &mut *self;
                if this.list.borrow_mut().take_turn(&mut this.ticket, cx.waker()) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<T> Drop for QueueWait<'_, T> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            let woken = self.list.borrow_mut().remove(t);
            // Cancelled after being woken: pass the wake-up on, so the item (or the free slot)
            // reaches the next waiter (asyncio's `get`/`put` cancellation handlers).
            let still_there = if self.getter { !self.queue.empty() } else { !self.queue.full() };
            if woken == Some(true) && still_there {
                let next = self.list.borrow_mut().wake_next();
                wake(next);
            }
        }
    }
}

/// The stream of [`Queue::stream`].
///
/// # Examples
///
/// See [`Queue::stream`].
pub struct QueueStream<T> {
    queue: Queue<T>,
    ticket: Option<Ticket>,
}

impl<T> fmt::Debug for QueueStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueStream").field("queue", &self.queue).finish()
    }
}

impl<T> futures_core::Stream for QueueStream<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        let inner = &this.queue.inner;
        if this.ticket.is_some() && !inner.getters.borrow_mut().take_turn(&mut this.ticket, cx.waker()) {
            return Poll::Pending;
        }
        match this.queue.get_nowait() {
            Ok(item) => Poll::Ready(Some(item)),
            Err(QueueEmpty) => {
                this.ticket = Some(inner.getters.borrow_mut().push(cx.waker()));
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for QueueStream<T> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            let inner = &self.queue.inner;
            let woken = inner.getters.borrow_mut().remove(t);
            if woken == Some(true) && !self.queue.empty() {
                let next = inner.getters.borrow_mut().wake_next();
                wake(next);
            }
        }
    }
}

// ===== Condition =====

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
