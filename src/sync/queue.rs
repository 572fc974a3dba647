//! [`Queue`]: a FIFO of items between tasks (asyncio's `queues.Queue`), bounded or not.
//!
//! Invariant: an item stays in `items` until a `get` takes it. A woken getter does not own an
//! item: it re-checks when it runs (as asyncio's `get` loops on `while self.empty()`), so a
//! newcomer may take the item first and the getter then waits again, at the end of the line. A
//! woken getter (putter) dropped before it ran passes its wake-up on while an item (a free slot)
//! remains, so nothing is lost to a cancelled waiter.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::priority_queue::Heap;
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
    getters: RefCell<WaitList>,
    putters: RefCell<WaitList>,
    /// Items put and not yet marked done.
    unfinished: Cell<usize>,
    /// Set while `unfinished` is 0.
    finished: Event,
}

/// A queue's items, in the order they come back out: asyncio's `Queue`, `LifoQueue` and
/// `PriorityQueue` differ only in this (their `_put` and `_get`).
pub(super) enum Items<T> {
    /// First in, first out.
    Fifo(VecDeque<T>),
    /// Last in, first out.
    Lifo(Vec<T>),
    /// Smallest first.
    Priority(Heap<T>),
}

impl<T> Items<T> {
    fn len(&self) -> usize {
        match self {
            Items::Fifo(items) => items.len(),
            Items::Lifo(items) => items.len(),
            Items::Priority(items) => items.len(),
        }
    }

    fn push(&mut self, item: T) {
        match self {
            Items::Fifo(items) => items.push_back(item),
            Items::Lifo(items) => items.push(item),
            Items::Priority(items) => items.push(item),
        }
    }

    fn pop(&mut self) -> Option<T> {
        match self {
            Items::Fifo(items) => items.pop_front(),
            Items::Lifo(items) => items.pop(),
            Items::Priority(items) => items.pop(),
        }
    }
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
        self.inner.items.borrow_mut().push(item);
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
        let item = self.inner.items.borrow_mut().pop().ok_or(QueueEmpty)?;
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
