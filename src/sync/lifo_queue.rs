//! [`LifoQueue`]: a [`Queue`] that gives back its newest item first (asyncio's
//! `queues.LifoQueue`): a stack, with `Queue`'s waiting, bounds and cancellation rules.
//!
//! A getter takes the newest item *when it runs*, not when it is woken: three getters woken by
//! three puts in one callback take them newest first.

use std::fmt;
use std::ops::Deref;

use super::items::Items;
use super::Queue;

/// A last-in, first-out queue between tasks (asyncio's `LifoQueue`): [`get`](Queue::get) returns
/// the item put last. Everything else is [`Queue`]'s (it derefs to one, as asyncio's class
/// derives from `Queue`): bounded or not, FIFO waiters, `task_done`/`join`, `stream`.
///
/// # Examples
///
/// ```
/// use aioloop::sync::LifoQueue;
/// aioloop::run(async {
///     let q = LifoQueue::new(0);
///     for i in 0..3 {
///         q.put(i).await;
///     }
///     assert_eq!(q.get().await, 2);
///     assert_eq!(q.get().await, 1);
///     assert_eq!(q.get().await, 0);
/// });
/// ```
pub struct LifoQueue<T> {
    queue: Queue<T>,
}

impl<T> LifoQueue<T> {
    /// Creates a LIFO queue holding at most `maxsize` items; 0 means unbounded.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = aioloop::sync::LifoQueue::new(2);
    /// q.put_nowait('a').unwrap();
    /// q.put_nowait('b').unwrap();
    /// assert!(q.full());
    /// assert_eq!(q.get_nowait(), Ok('b'));
    /// ```
    pub fn new(maxsize: usize) -> LifoQueue<T> {
        LifoQueue { queue: Queue::with_items(maxsize, Items::Lifo(Vec::new())) }
    }
}

impl<T> Deref for LifoQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> Clone for LifoQueue<T> {
    fn clone(&self) -> Self {
        LifoQueue { queue: self.queue.clone() }
    }
}

impl<T> fmt::Debug for LifoQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LifoQueue").field("qsize", &self.qsize()).field("maxsize", &self.maxsize()).finish()
    }
}
