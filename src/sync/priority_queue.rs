//! [`PriorityQueue`]: a [`Queue`] that gives back its smallest item first (asyncio's
//! `queues.PriorityQueue`).
//!
//! The items live in a binary min-heap in a `Vec`, kept with the same steps as Python's `heapq`
//! (`heappush`: append, then move the item up while it is smaller than its parent; `heappop`:
//! move the last item to the root, take the hole down to a leaf along the smaller children, then
//! move the item up). The same steps make the same comparisons, so items that compare equal come
//! out in the order asyncio gives them, not in the order they were put: a program that needs
//! FIFO order among equal priorities puts `(priority, sequence, item)`, as asyncio's docs advise.
//!
//! Only `<` is used, through a function pointer taken from `T: Ord` when the queue is made, so
//! the queue's other code needs no `Ord` bound.

use std::fmt;
use std::ops::Deref;

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
        PriorityQueue { queue: Queue::with_items(maxsize, super::queue::Items::Priority(Heap::new())) }
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

/// A binary min-heap kept with `heapq`'s steps.
pub(super) struct Heap<T> {
    /// The heap: `items[i] <= items[2i + 1]` and `items[i] <= items[2i + 2]`.
    items: Vec<T>,
    /// `T`'s `<`.
    less: fn(&T, &T) -> bool,
}

impl<T> Heap<T> {
    fn new() -> Heap<T>
    where
        T: Ord,
    {
        Heap { items: Vec::new(), less: |a, b| a < b }
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// `heappush`.
    pub(super) fn push(&mut self, item: T) {
        self.items.push(item);
        self.move_up(0, self.items.len() - 1);
    }

    /// `heappop`.
    pub(super) fn pop(&mut self) -> Option<T> {
        let last = self.items.pop()?;
        if self.items.is_empty() {
            return Some(last);
        }
        let root = std::mem::replace(&mut self.items[0], last);
        self.move_down(0);
        Some(root)
    }

    /// `heapq._siftdown`: moves the item at `pos` towards the root (not past `start`) while it is
    /// smaller than its parent.
    fn move_up(&mut self, start: usize, mut pos: usize) {
        while pos > start {
            let parent = (pos - 1) / 2;
            if !(self.less)(&self.items[pos], &self.items[parent]) {
                break;
            }
            self.items.swap(pos, parent);
            pos = parent;
        }
    }

    /// `heapq._siftup`: takes the item at `pos` down to a leaf, always along the smaller child
    /// (the right one when the left is not smaller), then back up to its place. Fewer
    /// comparisons than stopping on the way down, and the order `heapq` gives equal items.
    fn move_down(&mut self, start: usize) {
        let (end, mut pos) = (self.items.len(), start);
        let mut child = 2 * pos + 1;
        while child < end {
            let right = child + 1;
            if right < end && !(self.less)(&self.items[child], &self.items[right]) {
                child = right;
            }
            self.items.swap(pos, child);
            pos = child;
            child = 2 * pos + 1;
        }
        self.move_up(start, pos);
    }
}
