//! The timer heap: a min-heap of `(deadline, seq, handle index)` with lazy cancellation
//! (asyncio's `_scheduled`).
//!
//! # Invariants
//! - Entries are ordered by `(deadline, seq)`. `seq` grows with every scheduled handle, so timers
//!   with equal deadlines fire in the order they were created. (CPython's `heapq` compares only the
//!   deadline and leaves ties unordered; FIFO is a strict refinement of it.)
//! - Cancelling a timer does not touch the heap: the loop removes the timer's record from the
//!   handle slab and calls [`TimerHeap::note_cancelled`]. The entry stays behind as a *tombstone*,
//!   recognised because its record is gone (or its `seq` no longer matches).
//! - Tombstones are dropped when they reach the head, and the whole heap is rebuilt when it holds
//!   more than 100 entries of which more than half are cancelled: asyncio's rule, so a program that
//!   creates and cancels timeouts in a loop keeps the heap near its live size. asyncio checks the
//!   rule once per iteration; here the cancel that breaks it also rebuilds the heap, so a task that
//!   creates and cancels a million timers within one poll does not pile up a million tombstones.
//! - Deadlines are nanoseconds since the loop's epoch (`u64`: 584 years), so a far-future deadline
//!   saturates instead of overflowing.
//!
//! The alternative, async-io's `BTreeMap<(Instant, id), Waker>`, cancels eagerly in O(log n) but
//! allocates a tree node per timer; a heap in a `Vec` allocates nothing once warmed up, which is
//! what makes a timer's create+cancel cheap. tokio uses a hierarchical timing wheel (O(1) insert,
//! millisecond resolution); a heap keeps nanosecond deadlines and is simpler to read.
//!
//! The heap is 4-ary rather than binary (each node has four children): with a million timers a
//! pop walks 10 levels instead of 20, and a node's children share one or two cache lines, which
//! is where a pop's time goes once the heap outgrows the cache. The order is the same.

/// Heaps smaller than this are never rebuilt (asyncio's `_MIN_SCHEDULED_TIMER_HANDLES`).
pub(crate) const MIN_ENTRIES_FOR_COMPACTION: usize = 100;

/// One scheduled timer: when, in which order, and which handle record it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerEntry {
    /// Deadline in nanoseconds of loop time.
    pub(crate) deadline: u64,
    /// Creation order; breaks ties between equal deadlines.
    pub(crate) seq: u64,
    /// Index of the handle record in the loop's handle slab.
    pub(crate) index: u32,
}

/// The min-heap and its tombstone count.
#[derive(Default)]
pub(crate) struct TimerHeap {
    /// The entries, earliest on top.
    heap: QuadHeap,
    /// How many entries are believed to be tombstones (asyncio's `_timer_cancelled_count`).
    cancelled: usize,
}

impl TimerHeap {
    /// Schedules an entry.
    pub(crate) fn push(&mut self, entry: TimerEntry) {
        self.heap.push(entry);
    }

    /// Returns how many entries the heap holds, tombstones included.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Returns how many entries are counted as tombstones.
    pub(crate) fn cancelled(&self) -> usize {
        self.cancelled
    }

    /// Records that a timer still in the heap was cancelled; returns true if the heap is now
    /// mostly tombstones and should be [compacted](Self::compact).
    pub(crate) fn note_cancelled(&mut self) -> bool {
        self.cancelled += 1;
        self.needs_compaction()
    }

    /// asyncio's rule: more than 100 entries, more than half of them cancelled.
    fn needs_compaction(&self) -> bool {
        let len = self.heap.len();
        len > MIN_ENTRIES_FOR_COMPACTION && self.cancelled * 2 > len
    }

    /// Rebuilds the heap without its tombstones (O(n); amortised O(1) per cancel, since it takes
    /// as many cancels as there are live entries to trigger it again).
    pub(crate) fn compact(&mut self, is_live: impl Fn(&TimerEntry) -> bool) {
        self.heap.retain(is_live);
        self.cancelled = 0;
    }

    /// Phase 1 of an iteration: rebuild the heap if it is mostly tombstones, else drop the
    /// tombstones at its head, so that the head (if any) is live.
    pub(crate) fn purge(&mut self, is_live: impl Fn(&TimerEntry) -> bool) {
        if self.needs_compaction() {
            self.compact(is_live);
        } else {
            while let Some(head) = self.heap.peek() {
                if is_live(head) {
                    break;
                }
                self.heap.pop();
                self.cancelled = self.cancelled.saturating_sub(1);
            }
        }
    }

    /// Returns the earliest deadline (the head may be a tombstone unless `purge` just ran).
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|e| e.deadline)
    }

    /// Pops the next live entry whose deadline is at or before `now`, dropping tombstones on the way.
    pub(crate) fn pop_due(&mut self, now: u64, is_live: impl Fn(&TimerEntry) -> bool) -> Option<TimerEntry> {
        while let Some(head) = self.heap.peek() {
            if head.deadline > now {
                return None;
            }
            let head = self.heap.pop().expect("peeked");
            if is_live(&head) {
                return Some(head);
            }
            // Unlike CPython, which forgets to, count the tombstone as gone.
            self.cancelled = self.cancelled.saturating_sub(1);
        }
        None
    }

    /// Returns every entry, in no particular order (for the task dump).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &TimerEntry> {
        self.heap.0.iter()
    }

    /// Gives back most of the buffer if it is larger than `large` entries and at most an
    /// eighth full (after a burst of timers).
    pub(crate) fn release_memory(&mut self, large: usize) {
        let v = &mut self.heap.0;
        if v.capacity() > large && v.len() < v.capacity() / 8 {
            v.shrink_to((v.len() * 2).max(64));
        }
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) {
        self.heap.0.clear();
        self.cancelled = 0;
    }
}

/// A 4-ary min-heap in a `Vec`: the children of node `i` are `4i + 1 ..= 4i + 4`.
#[derive(Default)]
struct QuadHeap(Vec<TimerEntry>);

impl QuadHeap {
    const ARITY: usize = 4;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn peek(&self) -> Option<&TimerEntry> {
        self.0.first()
    }

    fn push(&mut self, entry: TimerEntry) {
        self.0.push(entry);
        self.sift_up(self.0.len() - 1);
    }

    fn pop(&mut self) -> Option<TimerEntry> {
        let last = self.0.pop()?;
        if self.0.is_empty() {
            return Some(last);
        }
        let top = std::mem::replace(&mut self.0[0], last);
        self.sift_down(0);
        Some(top)
    }

    /// Keeps the entries `keep` accepts and restores the heap order (O(n)).
    fn retain(&mut self, keep: impl Fn(&TimerEntry) -> bool) {
        self.0.retain(|e| keep(e));
        if self.0.len() > 1 {
            for i in (0..=(self.0.len() - 2) / Self::ARITY).rev() {
                self.sift_down(i);
            }
        }
    }

    /// Moves the entry at `i` up while it is earlier than its parent.
    fn sift_up(&mut self, mut i: usize) {
        let entry = self.0[i];
        while i > 0 {
            let parent = (i - 1) / Self::ARITY;
            if self.0[parent] <= entry {
                break;
            }
            self.0[i] = self.0[parent];
            i = parent;
        }
        self.0[i] = entry;
    }

    /// Moves the entry at `i` down while a child is earlier.
    fn sift_down(&mut self, mut i: usize) {
        let len = self.0.len();
        let entry = self.0[i];
        loop {
            let first = i * Self::ARITY + 1;
            if first >= len {
                break;
            }
            let end = (first + Self::ARITY).min(len);
            let mut min = first;
            for c in first + 1..end {
                if self.0[c] < self.0[min] {
                    min = c;
                }
            }
            if entry <= self.0[min] {
                break;
            }
            self.0[i] = self.0[min];
            i = min;
        }
        self.0[i] = entry;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashSet;

    fn e(deadline: u64, seq: u64) -> TimerEntry {
        TimerEntry { deadline, seq, index: seq as u32 }
    }

    #[test]
    fn equal_deadlines_pop_in_insertion_order() {
        let mut h = TimerHeap::default();
        for seq in [3, 1, 4, 0, 2] {
            h.push(e(10, seq));
        }
        let order: Vec<u64> = std::iter::from_fn(|| h.pop_due(10, |_| true)).map(|t| t.seq).collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn pops_in_order_whatever_the_pushes_and_retains() {
        // A pseudo-random mix of deadlines (many equal), a retain, more pushes: pops come out
        // sorted by (deadline, seq), as from a sorted list.
        let mut h = TimerHeap::default();
        let mut all = vec![];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let n = if cfg!(miri) { 200 } else { 5_000 };
        for seq in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let entry = e(x % 97, seq);
            h.push(entry);
            all.push(entry);
        }
        h.heap.retain(|t| t.seq % 3 != 0);
        all.retain(|t| t.seq % 3 != 0);
        for seq in n..n + 100 {
            h.push(e(seq % 13, seq));
            all.push(e(seq % 13, seq));
        }
        all.sort();
        let popped: Vec<TimerEntry> = std::iter::from_fn(|| h.pop_due(u64::MAX, |_| true)).collect();
        assert_eq!(popped, all);
    }

    #[test]
    fn never_pops_before_the_deadline() {
        let mut h = TimerHeap::default();
        h.push(e(10, 0));
        assert_eq!(h.pop_due(9, |_| true), None);
        assert_eq!(h.pop_due(10, |_| true).map(|t| t.seq), Some(0));
    }

    #[test]
    fn compaction_follows_asyncio_thresholds() {
        // 101 entries, 51 cancelled: > 100 and > 50 %, rebuilt; 100 entries, 100 cancelled: not.
        let dead = RefCell::new(HashSet::new());
        let live = |t: &TimerEntry| !dead.borrow().contains(&t.seq);
        let mut h = TimerHeap::default();
        for seq in 0..101 {
            h.push(e(1000 + seq, seq));
        }
        for seq in 50..101 {
            dead.borrow_mut().insert(seq);
            let _ = h.note_cancelled();
        }
        h.purge(live);
        assert_eq!((h.len(), h.cancelled()), (50, 0));

        let mut h = TimerHeap::default();
        dead.borrow_mut().clear();
        for seq in 0..100 {
            h.push(e(1000 + seq, seq));
        }
        for seq in 1..100 {
            dead.borrow_mut().insert(seq);
            let _ = h.note_cancelled();
        }
        h.purge(live);
        // Not rebuilt (only 100 entries); the head is live, so nothing is popped.
        assert_eq!((h.len(), h.cancelled()), (100, 99));
        // Cancelling the head makes purge pop tombstones until a live head (none is left).
        dead.borrow_mut().insert(0);
        let _ = h.note_cancelled();
        h.purge(live);
        assert_eq!((h.len(), h.cancelled()), (0, 0));
    }
}
