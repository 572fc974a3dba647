//! A bucket: the timers of one millisecond, at stable positions in segments that never move,
//! with a free list and, once it is the head, their firing order.

use std::collections::VecDeque;

use super::entry::{Entry, Stage, What};
use super::{BUCKET_NS, NONE};

/// A bucket's entries, at stable positions, in segments that are never moved: segment `k`
/// holds `4 << k` entries (positions `4 * (2^k - 1)` on), allocated at its full size when the
/// first of them is pushed. Segment 0 (`first`) is kept apart, so that the first four
/// positions, all that a bucket of a few timers uses, are found as in a `Vec`.
///
/// Why not a `Vec`: a `Vec` that doubles copies its entries to a new buffer and frees the old
/// one, and when a thousand buckets grow at once (a million sleeps spread over a second) the
/// freed buffers are holes between the new ones that the next, larger buffers do not fit in:
/// about 3.5 MB of the `sleeps` benchmark's peak (1M sleeps: 169,420 -> 165,800 KiB) was such
/// holes. A segment's unused tail is never written, so it costs address space, not resident
/// memory; the price, past the first four positions, is a `leading_zeros` and one more load
/// per lookup.
#[derive(Default)]
pub(super) struct Entries {
    /// Segment 0: room for exactly 4 entries (once one was pushed).
    pub(super) first: Vec<Entry>,
    /// Segments 1 on (segment `k` at index `k - 1`), each with room for exactly `4 << k`
    /// entries; all full but the last one used.
    pub(super) rest: Vec<Vec<Entry>>,
    /// Entries pushed since the last `clear`.
    pub(super) len: u32,
}

/// Entries in segment 0, [`Entries::first`].
pub(super) const FIRST: u32 = 4;

impl Entries {
    /// The index in `rest` and the offset of position `pos`, which is past `first`.
    #[inline]
    pub(super) fn locate(pos: u32) -> (usize, usize) {
        debug_assert!(pos >= FIRST);
        let q = u64::from(pos) + u64::from(FIRST);
        let top = 63 - q.leading_zeros(); // at least 3: segment `top - 2`, in `rest[top - 3]`
        ((top - 3) as usize, (q - (1 << top)) as usize)
    }

    /// The entry at `pos`, if there is one.
    #[inline]
    pub(super) fn get_mut(&mut self, pos: u32) -> Option<&mut Entry> {
        if pos >= self.len {
            return None;
        }
        Some(self.at_mut(pos))
    }

    /// The entry at `pos`, if there is one.
    #[inline]
    pub(super) fn get(&self, pos: u32) -> Option<&Entry> {
        if pos >= self.len {
            return None;
        }
        Some(self.at(pos))
    }

    /// The entry at `pos`, which must be there.
    #[inline]
    pub(super) fn at(&self, pos: u32) -> &Entry {
        if pos < FIRST {
            return &self.first[pos as usize];
        }
        let (seg, off) = Self::locate(pos);
        &self.rest[seg][off]
    }

    /// The entry at `pos`, which must be there.
    #[inline]
    pub(super) fn at_mut(&mut self, pos: u32) -> &mut Entry {
        if pos < FIRST {
            return &mut self.first[pos as usize];
        }
        let (seg, off) = Self::locate(pos);
        &mut self.rest[seg][off]
    }

    /// Calls `f` with every entry and its position, in order of position.
    #[inline]
    pub(super) fn for_each(&self, mut f: impl FnMut(u32, &Entry)) {
        let mut pos = 0;
        for e in &self.first {
            f(pos, e);
            pos += 1;
        }
        if pos < self.len {
            for seg in &self.rest {
                for e in seg {
                    f(pos, e);
                    pos += 1;
                }
            }
        }
    }

    /// [`for_each`](Self::for_each), with the entries mutable.
    #[inline]
    pub(super) fn for_each_mut(&mut self, mut f: impl FnMut(u32, &mut Entry)) {
        let mut pos = 0;
        for e in &mut self.first {
            f(pos, e);
            pos += 1;
        }
        if pos < self.len {
            for seg in &mut self.rest {
                for e in seg {
                    f(pos, e);
                    pos += 1;
                }
            }
        }
    }

    /// Appends an entry; returns its position.
    #[inline]
    pub(super) fn push(&mut self, entry: Entry) -> u32 {
        let pos = self.len;
        if pos < FIRST {
            if self.first.capacity() == 0 {
                self.first.reserve_exact(FIRST as usize);
            }
            self.first.push(entry);
        } else {
            let (seg, _) = Self::locate(pos);
            if seg == self.rest.len() {
                self.rest.push(Vec::with_capacity((FIRST as usize) << (seg + 1)));
            }
            self.rest[seg].push(entry);
        }
        self.len = pos.checked_add(1).expect("aioloop: more than 2^32 timers in one millisecond");
        pos
    }

    /// Removes every entry, keeping the segments.
    #[inline]
    pub(super) fn clear(&mut self) {
        self.first.clear();
        for seg in &mut self.rest {
            seg.clear();
        }
        self.len = 0;
    }

    /// Room for this many entries.
    #[inline]
    pub(super) fn capacity(&self) -> usize {
        self.first.capacity() + self.rest.iter().map(Vec::capacity).sum::<usize>()
    }
}

impl std::ops::Index<usize> for Entries {
    type Output = Entry;

    #[inline]
    fn index(&self, pos: usize) -> &Entry {
        self.at(u32::try_from(pos).expect("a position"))
    }
}

/// Frees entry `e`, at position `pos` of its bucket, whose free list starts at `free`; returns
/// what it held.
#[inline]
pub(super) fn free_slot(e: &mut Entry, pos: u32, free: &mut u32) -> What {
    e.set_stage(Stage::Free);
    let old = e.replace_what(What::Index(*free));
    *free = pos;
    old
}

/// The timers of one millisecond.
#[derive(Default)]
pub(super) struct Bucket {
    /// The millisecond of loop time all its deadlines fall in (`deadline / BUCKET_NS`).
    pub(super) ms: u64,
    /// The entries, at stable positions.
    pub(super) entries: Entries,
    /// The first free slot of `entries` (a list through `Stage::Free` entries), or [`NONE`].
    pub(super) free: u32,
    /// Entries in the heap: waiting or tombstones. The bucket is in the heap while this is not 0.
    pub(super) waiting: u32,
    /// Entries `Queued` or `Revoked`: their `Runnable::timer` entry has not run yet. The bucket is not
    /// reused while this is not 0.
    pub(super) queued: u32,
    /// The bucket is in the heap (and `TimerHeap::by_ms` maps its millisecond to it).
    pub(super) in_heap: bool,
    /// `order` is valid: the bucket is, or has been, the head.
    pub(super) sorted: bool,
    /// A compaction found the bucket empty and left it in the heap; the next one removes it
    /// if no timer came for it in between.
    pub(super) idle: bool,
    /// When sorted: the positions of the waiting entries, in firing order. Its buffer goes to
    /// [`TimerHeap::spare_order`](super::TimerHeap::spare_order) when the bucket leaves the heap.
    pub(super) order: VecDeque<u32>,
}

impl Bucket {
    /// Returns true if this is the bucket in the heap for millisecond `ms`.
    #[inline]
    pub(super) fn holds(&self, ms: u64) -> bool {
        self.in_heap && self.ms == ms
    }

    /// The sort key of entry `pos`: its deadline, then its seq.
    #[inline]
    pub(super) fn key(&self, pos: u32) -> (u32, u64) {
        let e = self.entries.at(pos);
        (e.sub_ns(), e.seq)
    }

    /// Returns the deadline of entry `pos`, in nanoseconds of loop time.
    #[inline]
    pub(super) fn deadline(&self, pos: u32) -> u64 {
        self.ms * BUCKET_NS + u64::from(self.entries.at(pos).sub_ns())
    }

    /// Puts an entry in a free slot (or a new one) and returns its position.
    #[inline]
    pub(super) fn alloc(&mut self, entry: Entry) -> u32 {
        if self.free != NONE {
            let pos = self.free;
            let slot = self.entries.at_mut(pos);
            debug_assert!(slot.stage() == Stage::Free && slot.holds_index(), "a free slot holds the next one");
            self.free = slot.data[0];
            *slot = entry;
            pos
        } else {
            self.entries.push(entry)
        }
    }

    /// Frees slot `pos`; returns what it held.
    #[inline]
    pub(super) fn release(&mut self, pos: u32) -> What {
        free_slot(self.entries.at_mut(pos), pos, &mut self.free)
    }

    /// Gives the (empty) `order` buffer of a bucket that leaves the heap to `spare`, if it is
    /// the larger of the two.
    #[inline]
    pub(super) fn give_order(&mut self, spare: &mut VecDeque<u32>) {
        debug_assert!(self.order.is_empty());
        if self.order.capacity() > spare.capacity() {
            *spare = std::mem::take(&mut self.order);
        } else {
            self.order = VecDeque::new();
        }
    }

    /// Builds `order` from the waiting entries, using `scratch` as its buffer.
    ///
    /// The sort compares plain integers: each waiting entry becomes its deadline's offset into
    /// the millisecond (under 2^20 ns) over its position. Positions only break ties between
    /// equal deadlines, where `seq` must decide, so runs of equal deadlines are re-sorted by
    /// `seq` after (they are rare, and short unless many timers share one deadline).
    #[inline]
    pub(super) fn sort(&mut self, scratch: &mut Vec<u64>) {
        scratch.clear();
        self.entries.for_each(|pos, e| {
            if e.stage().is_waiting() {
                scratch.push(u64::from(e.sub_ns()) << 32 | u64::from(pos));
            }
        });
        scratch.sort_unstable();
        let entries = &self.entries;
        let mut run = 0;
        for i in 1..=scratch.len() {
            if i == scratch.len() || scratch[i] >> 32 != scratch[run] >> 32 {
                if i - run > 1 {
                    scratch[run..i].sort_unstable_by_key(|&k| entries.at(k as u32).seq);
                }
                run = i;
            }
        }
        self.order.clear();
        self.order.extend(scratch.iter().map(|&k| k as u32));
        self.sorted = true;
    }

    /// Empties the bucket for reuse, keeping its buffers.
    #[inline]
    pub(super) fn reset(&mut self, ms: u64) {
        self.ms = ms;
        self.entries.clear();
        self.order.clear();
        self.free = NONE;
        self.waiting = 0;
        self.queued = 0;
        self.in_heap = true;
        self.sorted = false;
        self.idle = false;
    }
}
