//! [`PriorityQueue`]: a [`Queue`] that gives back its smallest item first (asyncio's
//! `queues.PriorityQueue`).
//!
//! The items live in a binary min-heap in a `Vec` (`Heap`, in `items.rs`), kept with the same
//! steps as Python's `heapq` (`heappush`: append, then move the item up while it is smaller than
//! its parent; `heappop`: move the last item to the root, take the hole down to a leaf along the
//! smaller children, then move the item up). The same steps make the same comparisons, so items
//! that compare equal come out in the order asyncio gives them, not in the order they were put: a
//! program that needs FIFO order among equal priorities puts `(priority, sequence, item)`, as
//! asyncio's docs advise.
//!
//! Only `<` is used, through a function pointer taken from `T: Ord` when the queue is made, so
//! the queue's other code needs no `Ord` bound.

use std::fmt;
use std::ops::Deref;

use super::items::{Heap, Items};
use super::Queue;

/// A priority queue between tasks (asyncio's `PriorityQueue`): [`get`](Queue::get) returns the
/// smallest item. Everything else is [`Queue`]'s (it derefs to one, as asyncio's class derives
/// from `Queue`): bounded or not, FIFO waiters, `task_done`/`join`, `stream`.
///
/// Items that compare equal come out in `heapq`'s order, which is not the order they were put.
///
/// # Examples
///
/// ```
/// use aioloop::sync::PriorityQueue;
/// aioloop::run(async {
///     let q = PriorityQueue::new(0);
///     for job in [(2, "write"), (0, "urgent"), (1, "read")] {
///         q.put(job).await;
///     }
///     assert_eq!(q.get().await, (0, "urgent"));
///     assert_eq!(q.get().await, (1, "read"));
///     assert_eq!(q.get().await, (2, "write"));
/// });
/// ```
pub struct PriorityQueue<T> {
    queue: Queue<T>,
}

impl<T: Ord> PriorityQueue<T> {
    /// Creates a priority queue holding at most `maxsize` items; 0 means unbounded.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = aioloop::sync::PriorityQueue::new(2);
    /// q.put_nowait(5).unwrap();
    /// q.put_nowait(3).unwrap();
    /// assert!(q.full());
    /// assert_eq!(q.get_nowait(), Ok(3));
    /// ```
    pub fn new(maxsize: usize) -> PriorityQueue<T> {
        PriorityQueue { queue: Queue::with_items(maxsize, Items::Priority(Heap::new())) }
    }
}

impl<T> Deref for PriorityQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> Clone for PriorityQueue<T> {
    fn clone(&self) -> Self {
        PriorityQueue { queue: self.queue.clone() }
    }
}

impl<T> fmt::Debug for PriorityQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriorityQueue").field("qsize", &self.qsize()).field("maxsize", &self.maxsize()).finish()
    }
}
