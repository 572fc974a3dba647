//! The timer heap (asyncio's `_scheduled`): timers by `(deadline, seq)`, cancelled ones left
//! behind as counted tombstones. It is a *bucketed* heap: the timers whose deadlines fall in the
//! same millisecond share one bucket, and a 4-ary min-heap orders the buckets.
//!
//! ```text
//!  heap of buckets, by millisecond        bucket of 1042 ms: entries at stable positions
//!  ┌─────────┐                            ┌───────────────────────────────────────────────┐
//!  │ 1042 ms ├───────────────────────────▶│ 0  +730_112 ns  seq 7  Waiting    Wake(task)   │
//!  ├─────────┤                            │ 1  +118_000 ns  seq 9  Cancelled  (tombstone)  │
//!  │ 1043 ms ├──▶ bucket, unsorted        │ 2  +118_000 ns  seq 4  Waiting    Index(3)     │
//!  │ 1590 ms ├──▶ bucket, unsorted        │ 3  (free)                                     │
//!  └─────────┘                            │ order (the head bucket only): 2, 1, 0          │
//!                                         └───────────────────────────────────────────────┘
//! ```
//!
//! The parts, one file each: this file, the heap of buckets ([`TimerHeap`]: push, pop the due
//! entries, cancel, compact); `bucket.rs`, one millisecond's entries at stable positions and
//! their firing order; `entry.rs`, one timer's 20-byte entry and what its bits mean;
//! `quad_heap.rs`, the 4-ary min-heap that orders the buckets.
//!
//! # Invariants
//! - Timers fire in `(deadline, seq)` order. `seq` grows with every scheduled handle, so timers
//!   with equal deadlines fire in the order they were created. (CPython's `heapq` compares only
//!   the deadline and leaves ties unordered; FIFO is a strict refinement of it.) Buckets cover
//!   disjoint milliseconds, so the heap's order of buckets, and within the head bucket the
//!   order of `(deadline, seq)`, is that order.
//! - A bucket is *sorted* once, when it is first looked at as the head (the earliest
//!   millisecond): from then on `order` lists its entries in the heap in firing order, and a
//!   push into it is inserted in its place. Until then a bucket is only appended to.
//! - A bucket is in the heap while it holds an entry waiting or a tombstone (or, until the next
//!   compaction, when a compaction emptied it: an empty bucket leaves when it reaches the head),
//!   and the heap holds one bucket per millisecond, the one `by_ms` maps it to.
//! - An entry keeps its position in its bucket until it is freed, so a timer's [`TimerKey`]
//!   (bucket, position) finds it in O(1) to cancel it or to change its waker. A key is checked
//!   against the timer's `seq`: a slot reused by a later timer does not match.
//! - A sleep's entry holds its waker (a task's as the task's key, any other in
//!   [`TimerHeap::wakers`]): firing it queues a `Runnable::timer` entry naming the entry, which wakes
//!   the task when it runs, with no handle record in between. Callbacks and timeouts keep their
//!   handle record (the entry holds its index), since their handles cancel through it.
//! - Cancelling a sleep marks its entry `Cancelled` at once; a record's entry is found cancelled
//!   lazily (its record is gone). Either way the entry stays as a *tombstone*, counted in
//!   [`cancelled`](TimerHeap::cancelled), until it reaches the head or the heap is compacted:
//!   asyncio's rule rebuilds the heap when it holds more than 100 entries of which more than
//!   half are cancelled. asyncio checks the rule once per iteration; here the cancel that breaks
//!   it also rebuilds the heap, so a task that creates and cancels a million timers within one
//!   poll does not pile up a million tombstones.
//! - A fired sleep's entry stays (`Queued`) until its ready-queue entry runs, so that cancelling
//!   the sleep in between (`Revoked`) still stops the wake-up, as cancelling a handle does; a
//!   bucket is reused only once it holds nothing waiting and nothing queued.
//! - Deadlines are nanoseconds since the loop's epoch (`u64`: 584 years), so a far-future deadline
//!   saturates instead of overflowing. An entry keeps the nanoseconds past its bucket's
//!   millisecond (20 bits), which keeps it at 20 bytes (see [`Entry`] for its layout).
//!
//! # Why buckets
//!
//! A plain heap of a million timers is 20 levels deep (10 for the 4-ary heap this replaced), and
//! a pop walks them all: once the heap outgrows the cache, that is a cache miss per level, and a
//! second heap's worth of misses when each entry points to a handle record elsewhere. With one
//! bucket per millisecond, a million sleeps spread over a second make a heap of a thousand
//! buckets, which stays in the cache; a push appends to its bucket's tail (found by millisecond
//! in a hash map), and a bucket is sorted once, when it becomes the head, by a sort of plain
//! integers (offset and position) in cached memory; its entries then fire in that order. That
//! is O(log b) comparisons per timer for a bucket of `b` timers, like a pop of a heap of `b`, so
//! the cost per timer grows with the timers *per millisecond*, not with all the timers pending.
//!
//! The alternatives: async-io's `BTreeMap<(Instant, id), Waker>` cancels eagerly in O(log n) but
//! allocates a tree node per timer and walks a deep tree for a million of them; tokio's
//! hierarchical timing wheel inserts and fires in O(1) at millisecond resolution, and cascades
//! timers from coarse slots to finer ones as they approach. The bucketed heap keeps nanosecond
//! deadlines and asyncio's exact order, and stays what the design asks for: a heap.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::task::Waker;

use slab::Slab;

use crate::runtime::waker::TaskKey;

mod bucket;
mod entry;
mod quad_heap;

use bucket::{free_slot, Bucket};
use entry::{Entry, Stage, Wake, What};
use quad_heap::{Node, QuadHeap};

/// Heaps smaller than this are never rebuilt (asyncio's `_MIN_SCHEDULED_TIMER_HANDLES`).
pub(crate) const MIN_ENTRIES_FOR_COMPACTION: usize = 100;

/// Nanoseconds per bucket: one millisecond.
const BUCKET_NS: u64 = 1_000_000;

/// No free slot (the end of a bucket's free list).
const NONE: u32 = u32::MAX;

/// Where a timer's entry is: its bucket and its position in the bucket (each below 2^31, so
/// that a key fits a ready-queue entry with its tag: src/runtime/ready.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    bucket: u32,
    pos: u32,
}

/// The limit of a bucket number and of a position in a bucket.
const KEY_LIMIT: u32 = 1 << 31;

impl TimerKey {
    /// The key in 62 bits.
    #[inline(always)]
    pub(crate) fn to_bits(self) -> u64 {
        (u64::from(self.bucket) << 31) | u64::from(self.pos)
    }

    /// The key of [`to_bits`](Self::to_bits).
    #[inline(always)]
    pub(crate) fn from_bits(bits: u64) -> TimerKey {
        TimerKey { bucket: (bits >> 31) as u32 & (KEY_LIMIT - 1), pos: bits as u32 & (KEY_LIMIT - 1) }
    }
}

/// A timer that reached its deadline, as [`TimerHeap::pop_due`] gives it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// A sleep: queue `Runnable::timer(key)`, which takes the waker with
    /// [`take_queued`](TimerHeap::take_queued).
    Wake(TimerKey),
    /// A handle record (`index`, `seq`): queue it like a `call_soon` handle.
    Record(u32, u64),
}

/// A waiting timer as the task dump sees it.
pub(crate) enum Waiting<'a> {
    /// A sleep that wakes this task (of this loop or another).
    Task(TaskKey),
    /// A sleep that wakes this waker (one that is not a task's).
    Wake(&'a Waker),
    /// A handle record (`index`, `seq`), maybe cancelled already.
    Record(u32, u64),
}

/// Hashes a millisecond with one multiplication (Fibonacci hashing); no SipHash needed.
#[derive(Default)]
struct MsHasher(u64);

impl std::hash::Hasher for MsHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The bucketed heap and its tombstone count.
#[derive(Default)]
pub(crate) struct TimerHeap {
    /// The buckets in the heap, earliest millisecond on top.
    heap: QuadHeap,
    /// Every bucket, by index: in the heap, waiting for queued entries to run, or spare.
    buckets: Vec<Bucket>,
    /// The bucket in the heap for each millisecond, and stale mappings to buckets that have left
    /// the heap since (checked with [`Bucket::holds`]; removing them one by one as buckets leave
    /// would cost a hash-map removal per bucket, so they are overwritten or pruned in bulk).
    by_ms: HashMap<u64, u32, BuildHasherDefault<MsHasher>>,
    /// Buckets free for reuse, their buffers kept.
    spare: Vec<u32>,
    /// Buckets free for reuse whose buffers were given back.
    bare: Vec<u32>,
    /// Entries in the heap, tombstones included.
    len: usize,
    /// How many entries are believed to be tombstones (asyncio's `_timer_cancelled_count`).
    cancelled: usize,
    /// Entries `Queued` or `Revoked` in all buckets.
    queued: usize,
    /// The buffer a bucket is sorted in.
    scratch: Vec<u64>,
    /// The largest `order` buffer of the buckets that left the heap, for the next bucket to be
    /// sorted. Only a head bucket is sorted, and usually one at a time, so one buffer serves
    /// them in turn: a spare bucket keeping its own would hold 4 bytes per timer it ever held
    /// (4 MB after a million sleeps have fired, until the loop goes idle).
    spare_order: VecDeque<u32>,
    /// The wakers of sleeps polled with a waker that is not a task's (their entries hold the
    /// index; a task's waker is its key, kept in the entry itself).
    wakers: Slab<Waker>,
}

impl TimerHeap {
    /// Schedules a sleep's wake-up; returns where its entry is.
    pub(crate) fn push_wake(&mut self, deadline: u64, seq: u64, waker: Waker) -> TimerKey {
        let wake = Wake::from_waker(waker, &mut self.wakers);
        self.push(deadline, seq, What::Wake(wake))
    }

    /// [`push_wake`](Self::push_wake) with a borrowed waker (a task's is not even cloned).
    #[inline]
    pub(crate) fn push_wake_by_ref(&mut self, deadline: u64, seq: u64, waker: &Waker) -> TimerKey {
        let wake = Wake::new(waker, &mut self.wakers);
        self.push(deadline, seq, What::Wake(wake))
    }

    /// Schedules handle record `index` (with sequence number `seq`).
    pub(crate) fn push_record(&mut self, deadline: u64, seq: u64, index: u32) {
        self.push(deadline, seq, What::Index(index));
    }

    fn push(&mut self, deadline: u64, seq: u64, what: What) -> TimerKey {
        let ms = deadline / BUCKET_NS;
        let sub_ns = (deadline % BUCKET_NS) as u32;
        // The map may name a bucket that has left the heap since (see `by_ms`).
        let bucket = match self.by_ms.get(&ms) {
            Some(&b) if self.buckets[b as usize].holds(ms) => b,
            _ => self.new_bucket(ms),
        };
        let b = &mut self.buckets[bucket as usize];
        // (Checked before anything changes. 2^31 entries in one millisecond's bucket would take
        // 40 GiB; a free slot's position is below the entries' count.)
        assert!(b.entries.len < KEY_LIMIT, "aioloop: more than 2^31 timers due in one millisecond");
        let pos = b.alloc(Entry::new(seq, sub_ns, Stage::Waiting, what));
        b.waiting += 1;
        b.idle = false;
        if b.sorted {
            // Usually the latest (a later seq): appended; a past deadline goes in its place.
            let at = b.order.partition_point(|&p| b.key(p) < (sub_ns, seq));
            b.order.insert(at, pos);
        }
        self.len += 1;
        TimerKey { bucket, pos }
    }

    /// Takes a spare bucket (or a new one) for millisecond `ms` and puts it in the heap.
    fn new_bucket(&mut self, ms: u64) -> u32 {
        let bucket = match self.spare.pop().or_else(|| self.bare.pop()) {
            Some(b) => b,
            None => {
                let bucket = self.buckets.len();
                assert!(bucket < KEY_LIMIT as usize, "aioloop: more than 2^31 timer buckets");
                self.buckets.push(Bucket::default());
                bucket as u32
            }
        };
        self.buckets[bucket as usize].reset(ms);
        if self.by_ms.len() > 2 * self.heap.0.len() + 64 {
            // Mostly stale: forget the buckets that have left the heap.
            let buckets = &self.buckets;
            self.by_ms.retain(|&ms, b| buckets[*b as usize].holds(ms));
        }
        self.by_ms.insert(ms, bucket);
        self.heap.push(Node { ms, bucket });
        bucket
    }

    /// Returns how many entries the heap holds, tombstones included.
    pub(crate) fn len(&self) -> usize {
        self.len
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
        self.len > MIN_ENTRIES_FOR_COMPACTION && self.cancelled * 2 > self.len
    }

    /// Returns the entry at `key` if it is the timer with sequence number `seq`.
    #[inline]
    fn entry_mut(&mut self, key: TimerKey, seq: u64) -> Option<&mut Entry> {
        let e = self.buckets.get_mut(key.bucket as usize)?.entries.get_mut(key.pos)?;
        (e.seq == seq && e.stage() != Stage::Free).then_some(e)
    }

    /// Returns true if the sleep at `key` has not fired yet, or fired and its wake-up has not
    /// run yet.
    pub(crate) fn is_pending(&self, key: TimerKey, seq: u64) -> bool {
        let Some(b) = self.buckets.get(key.bucket as usize) else { return false };
        if key.pos >= b.entries.len {
            return false;
        }
        let e = b.entries.at(key.pos);
        e.seq == seq && Self::wakes(e)
    }

    /// The entry is a sleep's that has not fired yet, or fired and its wake-up has not run yet
    /// (a free slot is neither).
    fn wakes(e: &Entry) -> bool {
        matches!((e.stage(), e.what()), (Stage::Waiting | Stage::Queued, What::Wake(_)))
    }

    /// Returns true if the sleep at `key` is pending (see [`is_pending`](Self::is_pending)), and
    /// makes it wake `waker` (unless it wakes the same task already).
    pub(crate) fn poll_pending(&mut self, key: TimerKey, seq: u64, waker: &Waker) -> bool {
        let wakers = &mut self.wakers;
        let Some(b) = self.buckets.get_mut(key.bucket as usize) else { return false };
        let Some(e) = b.entries.get_mut(key.pos).filter(|e| e.seq == seq && Self::wakes(e)) else { return false };
        if let What::Wake(w) = e.what() {
            if !w.will_wake(waker, wakers) {
                // The new one is cloned, then the old one dropped, as `*w = waker.clone()` did.
                e.set_what(What::Wake(Wake::new(waker, wakers)));
                drop(w.into_waker(wakers));
            }
        }
        true
    }

    /// Cancels the sleep at `key`: a waiting one becomes a counted tombstone, a fired one's
    /// wake-up is revoked. Returns the waker it held, if it was pending; the caller checks
    /// [`needs_compaction`](Self::needs_compaction) and compacts.
    pub(crate) fn cancel(&mut self, key: TimerKey, seq: u64) -> Option<Waker> {
        let wake = self.cancel_wake(key, seq)?;
        Some(wake.into_waker(&mut self.wakers))
    }

    /// [`cancel`](Self::cancel), for a sleep that is dropped: `None` if nothing was pending,
    /// else the waker it held if that is not a task's (to be dropped outside the loop's
    /// borrows); a task's waker is a number, and none is made for it.
    #[inline]
    pub(crate) fn cancel_dropped(&mut self, key: TimerKey, seq: u64) -> Option<Option<Waker>> {
        match self.cancel_wake(key, seq)? {
            Wake::Task(_) => Some(None),
            other => Some(Some(other.into_waker(&mut self.wakers))),
        }
    }

    /// [`cancel`](Self::cancel), giving back whom the entry would have woken.
    #[inline]
    fn cancel_wake(&mut self, key: TimerKey, seq: u64) -> Option<Wake> {
        let e = self.entry_mut(key, seq)?;
        let stage = match e.stage() {
            Stage::Waiting if !e.holds_index() => Stage::Cancelled,
            Stage::Queued => Stage::Revoked,
            _ => return None,
        };
        e.set_stage(stage);
        let what = e.replace_what(What::Index(NONE));
        if stage == Stage::Cancelled {
            self.cancelled += 1;
        }
        match what {
            What::Wake(w) => Some(w),
            What::Index(_) => unreachable!("a sleep's entry holds a waker"),
        }
    }

    /// Returns true if the heap is mostly tombstones (asyncio's rule; see the module docs).
    pub(crate) fn wants_compaction(&self) -> bool {
        self.needs_compaction()
    }

    /// The task that the fired sleep with entry `key` will wake when its ready entry runs, if
    /// that is one of this process's tasks (a look-ahead's peek: nothing changes).
    #[inline]
    pub(crate) fn queued_task(&self, key: TimerKey) -> Option<TaskKey> {
        let e = self.buckets.get(key.bucket as usize)?.entries.get(key.pos)?;
        match (e.stage(), e.what()) {
            (Stage::Queued, What::Wake(Wake::Task(task))) => Some(task),
            _ => None,
        }
    }

    /// Takes the waker of a fired sleep when its `Runnable::timer` entry runs (`None`: revoked), and
    /// frees its slot.
    pub(crate) fn take_queued(&mut self, key: TimerKey) -> Option<Waker> {
        let b = &mut self.buckets[key.bucket as usize];
        debug_assert!(matches!(b.entries.at(key.pos).stage(), Stage::Queued | Stage::Revoked));
        let waker = match b.release(key.pos) {
            What::Wake(w) => Some(w.into_waker(&mut self.wakers)),
            What::Index(_) => None, // revoked
        };
        b.queued -= 1;
        self.queued -= 1;
        if b.queued == 0 && !b.in_heap {
            self.spare.push(key.bucket);
        }
        waker
    }

    /// Rebuilds the heap without its tombstones (O(n); amortised O(1) per cancel, since it takes
    /// as many cancels as there are live entries to trigger it again). `is_live` says whether
    /// handle record (`index`, `seq`) is still scheduled.
    pub(crate) fn compact(&mut self, is_live: impl Fn(u32, u64) -> bool) {
        let mut len = 0;
        for bucket in self.heap.0.iter().map(|n| n.bucket) {
            let b = &mut self.buckets[bucket as usize];
            let (free, waiting) = (&mut b.free, &mut b.waiting);
            b.entries.for_each_mut(|pos, e| {
                let dead = match e.stage() {
                    Stage::Cancelled => true,
                    Stage::Waiting if e.holds_index() => !is_live(e.data[0], e.seq),
                    _ => false,
                };
                if dead {
                    free_slot(e, pos, free);
                    *waiting -= 1;
                }
            });
            if b.sorted {
                let entries = &b.entries;
                b.order.retain(|&p| entries.at(p).stage().is_waiting());
            }
            len += b.waiting as usize;
        }
        // A bucket left empty stays in the heap until the next compaction, in case more timers
        // come for its millisecond (a program that creates and cancels timers at the same few
        // offsets from now fills the same buckets again); one still empty then leaves, so empty
        // buckets are no more than the entries of the last compaction. The heap is rebuilt.
        let buckets = &mut self.buckets;
        let spare = &mut self.spare;
        let spare_order = &mut self.spare_order;
        self.heap.retain(|n| {
            let b = &mut buckets[n.bucket as usize];
            if b.waiting > 0 || !std::mem::replace(&mut b.idle, true) {
                return true;
            }
            b.in_heap = false;
            b.give_order(spare_order);
            if b.queued == 0 {
                spare.push(n.bucket);
            }
            false
        });
        self.len = len;
        self.cancelled = 0;
    }

    /// Phase 1 of an iteration: rebuild the heap if it is mostly tombstones, else drop the
    /// tombstones at its head, so that the head (if any) is live.
    pub(crate) fn purge(&mut self, is_live: impl Fn(u32, u64) -> bool) {
        if self.needs_compaction() {
            self.compact(is_live);
            return;
        }
        while let Some((bucket, pos)) = self.head() {
            let e = self.buckets[bucket as usize].entries.at(pos);
            let live = match (e.stage(), e.what()) {
                (Stage::Cancelled, _) => false,
                (_, What::Index(index)) => is_live(index, e.seq),
                (_, What::Wake(_)) => true,
            };
            if live {
                break;
            }
            self.buckets[bucket as usize].release(pos);
            self.pop_head();
            self.cancelled = self.cancelled.saturating_sub(1);
        }
    }

    /// Returns the head entry: its bucket and position. Removes the empty buckets a compaction
    /// left at the head first, and sorts the head bucket if it just became the head.
    fn head(&mut self) -> Option<(u32, u32)> {
        loop {
            let n = self.heap.peek()?;
            let b = &mut self.buckets[n.bucket as usize];
            if b.waiting > 0 {
                if !b.sorted {
                    if b.order.capacity() == 0 {
                        b.order = std::mem::take(&mut self.spare_order);
                    }
                    b.sort(&mut self.scratch);
                }
                let pos = *b.order.front().expect("a bucket in the heap has an entry in its order");
                return Some((n.bucket, pos));
            }
            b.in_heap = false;
            b.give_order(&mut self.spare_order);
            if b.queued == 0 {
                self.spare.push(n.bucket);
            }
            self.heap.pop();
        }
    }

    /// Takes the head entry out of the heap's order (the caller has changed or freed its slot).
    fn pop_head(&mut self) {
        let n = self.heap.peek().expect("a head");
        let b = &mut self.buckets[n.bucket as usize];
        b.order.pop_front();
        b.waiting -= 1;
        self.len -= 1;
        if b.waiting == 0 {
            // The bucket's last entry: it leaves the heap, and is reused once no queued entry
            // refers to it.
            b.in_heap = false;
            b.give_order(&mut self.spare_order);
            let spare = b.queued == 0;
            self.heap.pop();
            if spare {
                self.spare.push(n.bucket);
            }
        }
    }

    /// Returns the earliest deadline (the head may be a tombstone unless `purge` just ran).
    pub(crate) fn next_deadline(&mut self) -> Option<u64> {
        let (bucket, pos) = self.head()?;
        Some(self.buckets[bucket as usize].deadline(pos))
    }

    /// Pops the next live entry whose deadline is at or before `now`, dropping tombstones on the
    /// way. A sleep's entry stays in its bucket, `Queued`, until [`take_queued`](Self::take_queued).
    pub(crate) fn pop_due(&mut self, now: u64, is_live: impl Fn(u32, u64) -> bool) -> Option<Due> {
        while let Some((bucket, pos)) = self.head() {
            let b = &mut self.buckets[bucket as usize];
            let e = b.entries.at_mut(pos);
            if b.ms * BUCKET_NS + u64::from(e.sub_ns()) > now {
                return None;
            }
            let due = match (e.stage(), e.what()) {
                (Stage::Waiting, What::Wake(_)) => {
                    e.set_stage(Stage::Queued);
                    b.queued += 1;
                    self.queued += 1;
                    Some(Due::Wake(TimerKey { bucket, pos }))
                }
                (Stage::Waiting, What::Index(index)) => {
                    let seq = e.seq;
                    free_slot(e, pos, &mut b.free);
                    is_live(index, seq).then_some(Due::Record(index, seq))
                }
                _ => {
                    free_slot(e, pos, &mut b.free);
                    None
                }
            };
            self.pop_head();
            match due {
                Some(due) => return Some(due),
                // Unlike CPython, which forgets to, count the tombstone as gone.
                None => self.cancelled = self.cancelled.saturating_sub(1),
            }
        }
        None
    }

    /// Calls `f` with the deadline of every waiting entry and what it waits to do, in no
    /// particular order (for the task dump).
    pub(crate) fn for_each_waiting(&self, mut f: impl FnMut(u64, Waiting<'_>)) {
        for n in &self.heap.0 {
            let b = &self.buckets[n.bucket as usize];
            b.entries.for_each(|_, e| {
                let deadline = b.ms * BUCKET_NS + u64::from(e.sub_ns());
                match (e.stage(), e.what()) {
                    (Stage::Waiting, What::Wake(Wake::Task(key))) => f(deadline, Waiting::Task(key)),
                    (Stage::Waiting, What::Wake(Wake::Other(i))) => {
                        f(deadline, Waiting::Wake(&self.wakers[i as usize]))
                    }
                    (Stage::Waiting, What::Index(index)) => f(deadline, Waiting::Record(index, e.seq)),
                    _ => {}
                }
            });
        }
    }

    /// Gives the memory of a burst of timers back: everything once the heap is empty and no
    /// fired sleep waits to run (if it held more than a few buckets or room for more than
    /// `large` entries), else the buffers of the spare buckets beyond a few, when there are more
    /// of them than buckets in use.
    pub(crate) fn release_memory(&mut self, large: usize) {
        const KEEP: usize = 64;
        if self.len == 0 && self.queued == 0 {
            let room = |b: &Bucket| b.entries.capacity() + b.order.capacity();
            if self.buckets.len() > KEEP || self.buckets.iter().map(room).sum::<usize>() > large {
                *self = TimerHeap::default();
            }
        } else if self.spare.len() > KEEP.max(self.heap.0.len()) {
            for b in self.spare.drain(KEEP..) {
                self.buckets[b as usize] = Bucket::default();
                self.bare.push(b);
            }
        }
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) {
        *self = TimerHeap::default();
    }
}

#[cfg(test)]
mod tests {
    use super::bucket::Entries;
    use super::entry::SUB_NS_MASK;
    use super::*;
    use crate::runtime::waker::key_of;
    use std::cell::RefCell;
    use std::collections::HashSet;

    /// Pushes handle record `seq` (its index is its seq) at `deadline`.
    fn push(h: &mut TimerHeap, deadline: u64, seq: u64) {
        h.push_record(deadline, seq, seq as u32);
    }

    /// Pops every due entry as `(deadline, seq)`, records and sleeps alike.
    fn drain(h: &mut TimerHeap, now: u64, is_live: impl Fn(u32, u64) -> bool) -> Vec<u64> {
        let mut out = vec![];
        while let Some(due) = h.pop_due(now, &is_live) {
            out.push(match due {
                Due::Record(_, seq) => seq,
                Due::Wake(key) => {
                    let seq = h.buckets[key.bucket as usize].entries[key.pos as usize].seq;
                    assert!(h.take_queued(key).is_some());
                    seq
                }
            });
        }
        out
    }

    #[test]
    fn an_entry_is_20_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 20);
    }

    #[test]
    fn equal_deadlines_pop_in_insertion_order() {
        let mut h = TimerHeap::default();
        for seq in [3, 1, 4, 0, 2] {
            push(&mut h, 10, seq);
        }
        assert_eq!(drain(&mut h, 10, |_, _| true), [0, 1, 2, 3, 4]);
    }

    /// A pseudo-random sequence (xorshift64).
    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    #[test]
    fn pops_in_order_whatever_the_pushes_and_retains() {
        // A pseudo-random mix of deadlines (many equal), a compaction, more pushes: pops come out
        // sorted by (deadline, seq), as from a sorted list. Once within one millisecond (one
        // bucket), once spread over 29 ms (many buckets), records and sleeps mixed.
        for spread in [1, 300_000] {
            let mut h = TimerHeap::default();
            let mut all = vec![];
            let mut x: u64 = 0x2545_F491_4F6C_DD1D;
            let n = if cfg!(miri) { 200 } else { 5_000 };
            for seq in 0..n {
                let deadline = xorshift(&mut x) % 97 * spread;
                if seq % 2 == 0 {
                    push(&mut h, deadline, seq);
                } else {
                    h.push_wake(deadline, seq, Waker::noop().clone());
                }
                all.push((deadline, seq));
            }
            // Records whose seq is a multiple of 3 are cancelled (their record is gone).
            let live = |_: u32, seq: u64| seq % 3 != 0;
            for _ in all.iter().filter(|&&(_, seq)| seq % 2 == 0 && seq % 3 == 0) {
                let _ = h.note_cancelled();
            }
            h.compact(live);
            all.retain(|&(_, seq)| seq % 2 == 1 || seq % 3 != 0);
            assert_eq!((h.len(), h.cancelled()), (all.len(), 0));
            for seq in n..n + 100 {
                push(&mut h, seq % 13 * spread, seq);
                all.push((seq % 13 * spread, seq));
            }
            all.sort();
            let popped = drain(&mut h, u64::MAX, |_, _| true);
            assert_eq!(popped, all.iter().map(|&(_, seq)| seq).collect::<Vec<_>>());
            assert_eq!((h.len(), h.queued), (0, 0));
        }
    }

    #[test]
    fn never_pops_before_the_deadline() {
        let mut h = TimerHeap::default();
        push(&mut h, 10, 0);
        assert_eq!(h.pop_due(9, |_, _| true), None);
        assert_eq!(h.pop_due(10, |_, _| true), Some(Due::Record(0, 0)));
    }

    #[test]
    fn compaction_follows_asyncio_thresholds() {
        // 101 entries, 51 cancelled: > 100 and > 50 %, rebuilt; 100 entries, 100 cancelled: not.
        let dead = RefCell::new(HashSet::new());
        let live = |_: u32, seq: u64| !dead.borrow().contains(&seq);
        let mut h = TimerHeap::default();
        for seq in 0..101 {
            push(&mut h, 1000 + seq, seq);
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
            push(&mut h, 1000 + seq, seq);
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

    #[test]
    fn a_cancelled_sleep_is_a_counted_tombstone_until_it_reaches_the_head() {
        let mut h = TimerHeap::default();
        let a = h.push_wake(5_000_000, 0, Waker::noop().clone());
        let b = h.push_wake(9_000_000, 1, Waker::noop().clone());
        assert!(h.is_pending(a, 0) && h.is_pending(b, 1));
        assert!(!h.is_pending(a, 1), "a key is checked against its timer's seq");
        assert!(h.cancel(b, 1).is_some());
        assert!(h.cancel(b, 1).is_none(), "cancelled once");
        assert_eq!((h.len(), h.cancelled()), (2, 1));
        h.purge(|_, _| true);
        assert_eq!((h.len(), h.cancelled()), (2, 1), "the head is live: nothing popped");
        assert_eq!(h.pop_due(5_000_000, |_, _| true), Some(Due::Wake(a)));
        assert_eq!((h.len(), h.cancelled()), (1, 1));
        h.purge(|_, _| true);
        assert_eq!((h.len(), h.cancelled(), h.next_deadline()), (0, 0, None));
        assert!(h.is_pending(a, 0), "fired, its wake-up not run yet");
        assert!(h.take_queued(a).is_some());
        assert!(!h.is_pending(a, 0));
    }

    #[test]
    fn a_sleep_cancelled_after_it_fired_is_revoked_not_counted() {
        let mut h = TimerHeap::default();
        let a = h.push_wake(1, 0, Waker::noop().clone());
        assert_eq!(h.pop_due(1, |_, _| true), Some(Due::Wake(a)));
        assert!(h.cancel(a, 0).is_some());
        assert_eq!((h.len(), h.cancelled()), (0, 0));
        assert!(h.take_queued(a).is_none(), "revoked: the wake-up does nothing");
        // The bucket is reused for another millisecond; the old key does not match.
        let b = h.push_wake(7_000_000, 1, Waker::noop().clone());
        assert_eq!(b, a);
        assert!(!h.is_pending(a, 0) && h.is_pending(b, 1));
    }

    #[test]
    fn a_bucket_waits_for_its_queued_entries_before_it_is_reused() {
        let mut h = TimerHeap::default();
        let a = h.push_wake(1, 0, Waker::noop().clone());
        assert_eq!(h.pop_due(1, |_, _| true), Some(Due::Wake(a)));
        // Same millisecond, after the bucket left the heap: a new bucket.
        let b = h.push_wake(2, 1, Waker::noop().clone());
        assert_ne!(a.bucket, b.bucket);
        assert!(h.take_queued(a).is_some());
        assert_eq!(drain(&mut h, 2, |_, _| true), [1]);
        assert_eq!(h.spare.len(), 2);
        h.release_memory(0);
        assert_eq!(h.buckets.len(), 0, "empty: everything given back");
    }

    #[test]
    fn a_past_deadline_pushed_into_the_sorted_head_goes_in_its_place() {
        let mut h = TimerHeap::default();
        for seq in 0..4 {
            push(&mut h, 100 + seq * 10, seq);
        }
        assert_eq!(h.pop_due(100, |_, _| true), Some(Due::Record(0, 0)));
        push(&mut h, 105, 4);
        push(&mut h, 50, 5);
        assert_eq!(h.next_deadline(), Some(50));
        assert_eq!(drain(&mut h, u64::MAX, |_, _| true), [5, 4, 1, 2, 3]);
    }

    #[test]
    fn entries_keep_their_positions_across_segments_and_reuse_them() {
        let mut es = Entries::default();
        let n = if cfg!(miri) { 40 } else { 1_000 };
        for seq in 0..n {
            assert_eq!(es.push(Entry::new(seq, 0, Stage::Waiting, What::Index(0))), seq as u32);
        }
        assert!((0..n as u32).all(|pos| es.at(pos).seq == u64::from(pos)));
        let mut seen = vec![];
        es.for_each(|pos, e| seen.push((pos, e.seq)));
        assert!(seen.into_iter().eq((0..n).map(|seq| (seq as u32, seq))));
        let mut seen = vec![];
        es.for_each_mut(|pos, e| seen.push((pos, e.seq)));
        assert!(seen.into_iter().eq((0..n).map(|seq| (seq as u32, seq))));
        assert!(es.get_mut(n as u32).is_none());
        // Each segment was allocated at its full size, never grown.
        assert_eq!(es.first.capacity(), 4);
        assert!(es.rest.iter().enumerate().all(|(k, seg)| seg.capacity() == 8 << k));
        let room = es.capacity();
        es.clear();
        for seq in 0..n {
            es.push(Entry::new(seq + 7, 0, Stage::Waiting, What::Index(0)));
        }
        assert_eq!(es.capacity(), room, "the segments are reused");
        let last = es.at(n as u32 - 1).seq; // a copy: `seq` is packed, no reference to it
        assert_eq!(last, n + 6);
    }

    #[test]
    fn an_entry_packs_its_offset_stage_and_what() {
        let key = TaskKey(u64::MAX - 5);
        let mut e = Entry::new(u64::MAX, SUB_NS_MASK, Stage::Waiting, What::Wake(Wake::Task(key)));
        assert_eq!(
            (e.seq, e.sub_ns(), e.stage(), e.what()),
            (u64::MAX, SUB_NS_MASK, Stage::Waiting, What::Wake(Wake::Task(key)))
        );
        for stage in [Stage::Cancelled, Stage::Queued, Stage::Revoked, Stage::Free, Stage::Waiting] {
            e.set_stage(stage);
            assert_eq!((e.sub_ns(), e.stage(), e.what()), (SUB_NS_MASK, stage, What::Wake(Wake::Task(key))));
        }
        for what in [What::Index(NONE), What::Wake(Wake::Other(3)), What::Index(0), What::Wake(Wake::Task(TaskKey(1)))]
        {
            e.set_what(what);
            assert_eq!(
                (e.sub_ns(), e.stage(), e.what(), e.holds_index()),
                (SUB_NS_MASK, Stage::Waiting, what, matches!(what, What::Index(_)))
            );
        }
    }

    #[test]
    fn a_tasks_waker_is_kept_as_its_key_and_any_other_beside_the_entries() {
        let task = crate::runtime::waker::waker_for(TaskKey::new(3, 17, 99));
        let other = Waker::noop();
        let mut h = TimerHeap::default();
        let a = h.push_wake_by_ref(5, 0, &task);
        let b = h.push_wake(6, 1, other.clone());
        assert_eq!(h.wakers.len(), 1, "only the waker that is not a task's is kept aside");
        let mut waits = vec![];
        h.for_each_waiting(|deadline, what| {
            waits.push(match what {
                Waiting::Task(key) => (deadline, Some(key)),
                Waiting::Wake(w) => (deadline, key_of(w)),
                Waiting::Record(..) => unreachable!(),
            })
        });
        waits.sort_by_key(|w| w.0);
        assert_eq!(waits, [(5, Some(TaskKey::new(3, 17, 99))), (6, None)]);
        // Polled from the other context, each takes the other's waker.
        assert!(h.poll_pending(a, 0, other) && h.poll_pending(b, 1, &task));
        assert_eq!(h.wakers.len(), 1);
        assert!(h.cancel(a, 0).is_some_and(|w| key_of(&w).is_none()));
        assert!(h.cancel(b, 1).is_some_and(|w| w.will_wake(&task)));
        assert!(h.wakers.is_empty());
        // A dropped sleep's task waker is not made again; another waker is given back to drop.
        let c = h.push_wake_by_ref(7, 2, &task);
        let d = h.push_wake_by_ref(7, 3, other);
        assert!(matches!(h.cancel_dropped(c, 2), Some(None)));
        assert!(matches!(h.cancel_dropped(d, 3), Some(Some(_))));
        assert!(h.cancel_dropped(d, 3).is_none(), "cancelled once");
        assert!(h.wakers.is_empty());
    }
}
