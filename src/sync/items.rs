//! [`Items`]: where a [`Queue`](super::Queue) keeps its items, and so the order they come back
//! out in. asyncio's `Queue`, `LifoQueue` and `PriorityQueue` differ only in this (their `_put`
//! and `_get`); the queue's waiting, bounds and cancellation rules (`queue.rs`) are the same for
//! all three. The min-heap behind the priority order, [`Heap`], lives here too.
//!
//! Invariants:
//!
//! - `Items` only stores: it never wakes anyone and knows nothing of waiters or bounds. `len` is
//!   the number of items stored, no more (an item handed to a waiting getter is counted by the
//!   queue, not here).
//! - `pop` gives back, of the items stored, the oldest (`Fifo`), the newest (`Lifo`), or one no
//!   greater than any other (`Priority`); `None` exactly when `len` is 0.
//! - [`Heap`] keeps `items[i] <= items[2i + 1]` and `items[i] <= items[2i + 2]` (under its `<`)
//!   between calls, and changes it only with the steps of Python's `heapq` (`heappush`,
//!   `heappop`), so it makes the same comparisons: items that compare equal come out in the order
//!   asyncio gives them, not in the order they were put.
//! - [`Heap`] compares only with `<`, through a function pointer taken from `T: Ord` when it is
//!   made, so the code that stores items needs no `Ord` bound.
//! - Only a FIFO queue hands an item straight to a waiting getter, so only `Fifo` ever has one
//!   given back (`unget`); it goes back to the head, where it was the oldest.

use std::collections::VecDeque;

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
    /// True for a FIFO queue with no item: the only case where a put may hand its item over.
    #[inline]
    pub(super) fn fifo_and_empty(&self) -> bool {
        matches!(self, Items::Fifo(items) if items.is_empty())
    }

    /// Puts back the item a getter was handed and did not take: it was the oldest.
    pub(super) fn unget(&mut self, item: T) {
        match self {
            Items::Fifo(items) => items.push_front(item),
            // Only a FIFO queue hands items over.
            Items::Lifo(_) | Items::Priority(_) => self.push(item),
        }
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        match self {
            Items::Fifo(items) => items.len(),
            Items::Lifo(items) => items.len(),
            Items::Priority(items) => items.len(),
        }
    }

    #[inline]
    pub(super) fn push(&mut self, item: T) {
        match self {
            Items::Fifo(items) => items.push_back(item),
            Items::Lifo(items) => items.push(item),
            Items::Priority(items) => items.push(item),
        }
    }

    #[inline]
    pub(super) fn pop(&mut self) -> Option<T> {
        match self {
            Items::Fifo(items) => items.pop_front(),
            Items::Lifo(items) => items.pop(),
            Items::Priority(items) => items.pop(),
        }
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
    pub(super) fn new() -> Heap<T>
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
