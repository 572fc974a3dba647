//! [`Queue`]: a FIFO of items between tasks (asyncio's `queues.Queue`), bounded or not.
//!
//! Invariant: an item stays in `items` until a `get` takes it. A woken getter does not own an
//! item: it re-checks when it runs (as asyncio's `get` loops on `while self.empty()`), so a
//! newcomer may take the item first and the getter then waits again, at the end of the line. A
//! woken getter (putter) dropped before it ran passes its wake-up on while an item (a free slot)
//! remains, so nothing is lost to a cancelled waiter.
//!
//! # The fast path: one waiting getter
//!
//! The common case, a consumer waiting on an empty queue for the next item, needs none of the
//! wait list's machinery. A getter that begins to wait while no other getter waits takes the
//! `lone` slot instead of a slab entry and an arrival-order entry; a put that finds it waiting
//! (and a FIFO queue empty) hands the item into that slot and wakes it, without touching the
//! deque, and the getter takes it from there when it runs. Nothing a user can observe changes:
//!
//! - the lone getter is always the first in line: a getter uses the slot only if the wait list
//!   holds nobody, and later getters queue in the list behind it;
//! - an item handed over still counts as in the queue (`qsize`, `empty`, `full`), and it is
//!   the oldest one (it was handed over only to an empty queue; later puts go behind it), so
//!   `get_nowait` takes it first, as asyncio's `get_nowait` takes the head of its deque from
//!   under a woken getter; that getter then finds its slot empty and looks again, as asyncio's
//!   `get` re-checks `empty()` when it runs;
//! - a lone getter whose task has a cancellation pending is passed over, as by `wake_next`;
//!   dropped after the hand-off (cancelled before it ran), it puts the item back at the head of
//!   the queue and passes the wake-up on, as a woken getter in the list does;
//! - a LIFO or priority queue never hands over (which item a getter gets depends on what is
//!   in the queue when it runs); its lone getter is woken without an item and takes one when
//!   it runs, as a getter in the list would.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::items::Items;
use super::{wake, Event, Ticket, WaitList};

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
    items: RefCell<Items<T>>,
    /// 0: unbounded.
    maxsize: usize,
    /// The first waiting getter, when it began to wait with nobody in `getters` (see "The fast
    /// path" above). Invariant: every getter in `getters` began to wait after it.
    lone: RefCell<Lone<T>>,
    /// Getters waiting behind the lone one.
    getters: RefCell<WaitList>,
    putters: RefCell<WaitList>,
    /// Items put and not yet marked done.
    unfinished: Cell<usize>,
    /// Set while `unfinished` is 0.
    finished: Event,
}

/// The lone getter's slot.
enum Lone<T> {
    /// Nobody in it.
    Empty,
    /// A getter waits in it, not woken yet.
    Waiting(Waker),
    /// Its getter was woken without an item (or the item handed to it was taken by another
    /// getter): when it runs it looks at the queue again.
    Woken,
    /// Its getter was woken with this item, the oldest in the queue: it takes it when it runs.
    Handed(T),
}

/// Where a waiting getter is registered.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum GetterAt {
    /// Not waiting.
    Nowhere,
    /// In the queue's lone slot.
    Lone,
    /// In the wait list.
    List(Ticket),
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
        Queue::with_items(maxsize, Items::Fifo(VecDeque::new()))
    }

    /// Creates a queue that gives its items back in the order `items` keeps.
    pub(super) fn with_items(maxsize: usize, items: Items<T>) -> Queue<T> {
        let finished = Event::new();
        finished.set();
        Queue {
            inner: Rc::new(QueueInner {
                items: RefCell::new(items),
                maxsize,
                lone: RefCell::new(Lone::Empty),
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
        let handed = matches!(*self.inner.lone.borrow(), Lone::Handed(_));
        self.inner.items.borrow().len() + usize::from(handed)
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
    #[inline]
    pub fn put_nowait(&self, item: T) -> Result<(), QueueFull<T>> {
        if self.full() {
            return Err(QueueFull(item));
        }
        let inner = &*self.inner;
        inner.unfinished.set(inner.unfinished.get() + 1);
        inner.finished.clear();
        // The first in line is the lone getter, if it waits and its task is not cancelled.
        let lone_waker = {
            let mut lone = inner.lone.borrow_mut();
            match &*lone {
                Lone::Waiting(waker) if !super::task_cancelled(waker) => {
                    let mut items = inner.items.borrow_mut();
                    let Lone::Waiting(waker) = std::mem::replace(&mut *lone, Lone::Woken) else { unreachable!() };
                    if items.fifo_and_empty() {
                        *lone = Lone::Handed(item); // the fast path: no deque, no wait list
                    } else {
                        items.push(item);
                    }
                    Some(waker)
                }
                _ => {
                    inner.items.borrow_mut().push(item);
                    None
                }
            }
        };
        match lone_waker {
            Some(waker) => waker.wake(),
            None => wake(inner.getters.borrow_mut().wake_next()),
        }
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
    #[inline]
    pub fn get_nowait(&self) -> Result<T, QueueEmpty> {
        let inner = &*self.inner;
        // An item handed to the lone getter is the oldest: take it from under it (the getter
        // looks again when it runs, as asyncio's woken getter re-checks `empty()`).
        let handed = {
            let mut lone = inner.lone.borrow_mut();
            match &*lone {
                Lone::Handed(_) => match std::mem::replace(&mut *lone, Lone::Woken) {
                    Lone::Handed(item) => Some(item),
                    _ => unreachable!("matched just above"),
                },
                _ => None,
            }
        };
        let item = match handed {
            Some(item) => item,
            None => inner.items.borrow_mut().pop().ok_or(QueueEmpty)?,
        };
        self.item_taken();
        Ok(item)
    }

    /// An item left the queue: the first waiting putter may put (asyncio's
    /// `_wakeup_next(self._putters)`).
    #[inline]
    fn item_taken(&self) {
        if self.inner.maxsize == 0 {
            return; // unbounded: no putter ever waits
        }
        let next = self.inner.putters.borrow_mut().wake_next();
        wake(next);
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
            PutWait { queue: self, ticket: None }.await;
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
            if let Some(item) = (GetWait { queue: self, at: GetterAt::Nowhere }).await {
                return item;
            }
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
        QueueStream { queue: self.clone(), at: GetterAt::Nowhere }
    }

    /// Registers a getter that found the queue empty: in the lone slot if nobody else waits,
    /// else at the end of the wait list.
    #[inline]
    fn start_waiting(&self, at: &mut GetterAt, waker: &Waker) {
        let inner = &*self.inner;
        let mut lone = inner.lone.borrow_mut();
        let mut getters = inner.getters.borrow_mut();
        *at = if matches!(*lone, Lone::Empty) && !getters.has_waiters() {
            *lone = Lone::Waiting(waker.clone());
            GetterAt::Lone
        } else {
            GetterAt::List(getters.push(waker))
        };
    }

    /// Polls a registered getter: `Ready(Some(item))` if it was handed an item,
    /// `Ready(None)` if it was woken without one (it must look at the queue again); either way
    /// it is no longer registered.
    #[inline]
    fn poll_waiting(&self, at: &mut GetterAt, waker: &Waker) -> Poll<Option<T>> {
        let inner = &*self.inner;
        match *at {
            GetterAt::Nowhere => Poll::Ready(None),
            // (`replace` releases the borrow at once: a waker dropped here runs no code under it.)
            GetterAt::Lone => match inner.lone.replace(Lone::Empty) {
                Lone::Waiting(w) => {
                    let w = if w.will_wake(waker) { w } else { waker.clone() };
                    *inner.lone.borrow_mut() = Lone::Waiting(w);
                    Poll::Pending
                }
                Lone::Handed(item) => {
                    *at = GetterAt::Nowhere;
                    self.item_taken();
                    Poll::Ready(Some(item))
                }
                Lone::Woken | Lone::Empty => {
                    *at = GetterAt::Nowhere;
                    Poll::Ready(None)
                }
            },
            GetterAt::List(ticket) => {
                let mut t = Some(ticket);
                if inner.getters.borrow_mut().take_turn(&mut t, waker) {
                    *at = GetterAt::Nowhere;
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                }
            }
        }
    }

    /// A registered getter leaves before it took an item (its future was dropped): an item
    /// handed to it goes back to the head of the queue, and a wake-up it got passes on to the
    /// next getter while an item remains (asyncio's `get` cancellation handler).
    #[inline]
    fn stop_waiting(&self, at: &mut GetterAt) {
        let inner = &*self.inner;
        let woken = match std::mem::replace(at, GetterAt::Nowhere) {
            GetterAt::Nowhere => return,
            GetterAt::Lone => match inner.lone.replace(Lone::Empty) {
                Lone::Handed(item) => {
                    inner.items.borrow_mut().unget(item);
                    true
                }
                Lone::Woken => true,
                Lone::Waiting(_) | Lone::Empty => false,
            },
            GetterAt::List(ticket) => inner.getters.borrow_mut().remove(ticket) == Some(true),
        };
        if woken && !self.empty() {
            let next = inner.getters.borrow_mut().wake_next();
            wake(next);
        }
    }
}

/// A putter waiting for a free slot in a [`Queue`].
struct PutWait<'a, T> {
    queue: &'a Queue<T>,
    ticket: Option<Ticket>,
}

impl<T> Future for PutWait<'_, T> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let putters = &this.queue.inner.putters;
        if this.ticket.is_none() {
            this.ticket = Some(putters.borrow_mut().push(cx.waker()));
            return Poll::Pending;
        }
        if putters.borrow_mut().take_turn(&mut this.ticket, cx.waker()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl<T> Drop for PutWait<'_, T> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            let putters = &self.queue.inner.putters;
            let woken = putters.borrow_mut().remove(t);
            // Cancelled after being woken: pass the wake-up on, so the free slot reaches the
            // next putter (asyncio's `put` cancellation handler).
            if woken == Some(true) && !self.queue.full() {
                let next = putters.borrow_mut().wake_next();
                wake(next);
            }
        }
    }
}

/// A getter waiting for an item of a [`Queue`]: `Some(item)` if one was handed to it, `None`
/// if it must look at the queue again.
struct GetWait<'a, T> {
    queue: &'a Queue<T>,
    at: GetterAt,
}

impl<T> Future for GetWait<'_, T> {
    type Output = Option<T>;
    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        if this.at == GetterAt::Nowhere {
            this.queue.start_waiting(&mut this.at, cx.waker());
            return Poll::Pending;
        }
        this.queue.poll_waiting(&mut this.at, cx.waker())
    }
}

impl<T> Drop for GetWait<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.queue.stop_waiting(&mut self.at);
    }
}

/// The stream of [`Queue::stream`].
///
/// # Examples
///
/// See [`Queue::stream`].
pub struct QueueStream<T> {
    queue: Queue<T>,
    at: GetterAt,
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
        if this.at != GetterAt::Nowhere {
            match this.queue.poll_waiting(&mut this.at, cx.waker()) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(item)) => return Poll::Ready(Some(item)),
                Poll::Ready(None) => {}
            }
        }
        match this.queue.get_nowait() {
            Ok(item) => Poll::Ready(Some(item)),
            Err(QueueEmpty) => {
                this.queue.start_waiting(&mut this.at, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for QueueStream<T> {
    fn drop(&mut self) {
        self.queue.stop_waiting(&mut self.at);
    }
}
