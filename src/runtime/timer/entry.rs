//! One timer's entry in its bucket: 20 bytes, packed (seq, offset, stage, what it fires), and
//! the enums its bits decode into.

use std::task::Waker;

use slab::Slab;

use crate::runtime::waker::{key_of, waker_for, TaskKey};

/// One timer in a bucket: 20 bytes (a test checks it), since a million sleeping tasks hold a
/// million of them.
///
/// The layout, and why: a million sleeps are a million entries, and every byte of one is a
/// megabyte of the `sleeps` benchmark's peak. With the `Waker` itself in the entry (16 bytes),
/// the stage in a byte of its own and 8-byte alignment, an entry was 32 bytes. Now:
///
/// - `seq` (8 bytes), which must stay whole: it orders equal deadlines and tells a reused slot
///   apart.
/// - `meta` (4): the deadline's offset into its millisecond (under 10^6 < 2^20, so 20 bits),
///   the [`Stage`] (3 bits) and which kind of [`What`] `data` holds (2 bits).
/// - `data` (8): what it fires. A task's waker is a number, its [`TaskKey`] (see
///   [`waker`](crate::runtime::waker)), so a sleep polled by a task keeps that number and no
///   `Waker`; any other waker (a combinator's, another executor's) goes to
///   [`TimerHeap::wakers`](super::TimerHeap::wakers) and the entry keeps its index; a handle record's entry keeps the
///   record's index.
///
/// `repr(packed(4))` drops the alignment from 8 to 4, so that 20 bytes are not padded to 24:
/// `seq` is only ever read and written by value (the compiler refuses a reference to it), and
/// the rest is 4-aligned. The entry is read through [`stage`](Self::stage) and
/// [`what`](Self::what), which decode the bits into the enums.
#[repr(C, packed(4))]
pub(super) struct Entry {
    /// Creation order; breaks ties between equal deadlines and tells a reused slot apart.
    pub(super) seq: u64,
    /// The deadline's nanoseconds past its bucket's millisecond (the low [`SUB_NS_BITS`] bits),
    /// the [`Stage`] (the next [`STAGE_BITS`]) and the kind of `data` (the two above).
    pub(super) meta: u32,
    /// What it fires, as [`what`](Self::what) decodes it.
    pub(super) data: [u32; 2],
}

/// Bits of [`Entry::meta`] that hold the deadline's offset into its millisecond.
pub(super) const SUB_NS_BITS: u32 = 20;
pub(super) const SUB_NS_MASK: u32 = (1 << SUB_NS_BITS) - 1;
/// Bits of [`Entry::meta`] that hold the stage, above the offset.
pub(super) const STAGE_BITS: u32 = 3;
pub(super) const STAGE_MASK: u32 = ((1 << STAGE_BITS) - 1) << SUB_NS_BITS;
/// Where the kind of [`Entry::data`] starts in [`Entry::meta`].
pub(super) const KIND_SHIFT: u32 = SUB_NS_BITS + STAGE_BITS;
/// The kinds of [`Entry::data`]: a record's index (or a free slot's next one), a task's key, an
/// index into [`TimerHeap::wakers`](super::TimerHeap::wakers).
pub(super) const KIND_INDEX: u32 = 0;
pub(super) const KIND_TASK: u32 = 1;
pub(super) const KIND_OTHER: u32 = 2;

impl Entry {
    #[inline]
    pub(super) fn new(seq: u64, sub_ns: u32, stage: Stage, what: What) -> Entry {
        debug_assert!(sub_ns <= SUB_NS_MASK);
        let (kind, data) = what.encode();
        Entry { seq, meta: sub_ns | (stage as u32) << SUB_NS_BITS | kind << KIND_SHIFT, data }
    }

    /// The deadline's nanoseconds past its bucket's millisecond.
    #[inline]
    pub(super) fn sub_ns(&self) -> u32 {
        self.meta & SUB_NS_MASK
    }

    /// Where the entry is in its life.
    #[inline]
    pub(super) fn stage(&self) -> Stage {
        const STAGES: [Stage; 1 << STAGE_BITS] = [
            Stage::Waiting,
            Stage::Cancelled,
            Stage::Queued,
            Stage::Revoked,
            Stage::Free,
            Stage::Free,
            Stage::Free,
            Stage::Free,
        ];
        STAGES[((self.meta & STAGE_MASK) >> SUB_NS_BITS) as usize]
    }

    #[inline]
    pub(super) fn set_stage(&mut self, stage: Stage) {
        self.meta = self.meta & !STAGE_MASK | (stage as u32) << SUB_NS_BITS;
    }

    /// Returns true if it holds a record's index (or a free slot's next one), not a wake-up:
    /// [`what`](Self::what) is `What::Index`.
    #[inline]
    pub(super) fn holds_index(&self) -> bool {
        self.meta >> KIND_SHIFT == KIND_INDEX
    }

    /// What it fires.
    #[inline]
    pub(super) fn what(&self) -> What {
        let [lo, hi] = self.data;
        match self.meta >> KIND_SHIFT {
            KIND_TASK => What::Wake(Wake::Task(TaskKey(u64::from(lo) | u64::from(hi) << 32))),
            KIND_OTHER => What::Wake(Wake::Other(lo)),
            _ => What::Index(lo),
        }
    }

    /// Makes it fire `what`.
    #[inline]
    pub(super) fn set_what(&mut self, what: What) {
        let (kind, data) = what.encode();
        self.meta = self.meta & (SUB_NS_MASK | STAGE_MASK) | kind << KIND_SHIFT;
        self.data = data;
    }

    /// Makes it fire `what`; returns what it fired.
    #[inline]
    pub(super) fn replace_what(&mut self, what: What) -> What {
        let old = self.what();
        self.set_what(what);
        old
    }
}

/// An entry's life: `Waiting`, then `Queued` until its wake-up runs (a sleep) or freed at once
/// (a record); `Cancelled` or `Revoked` in between if it is cancelled; `Free` at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    /// In the heap, waiting for its deadline.
    Waiting = 0,
    /// A sleep cancelled while waiting: in the heap as a tombstone, counted, until it reaches
    /// the head or the heap is compacted. (A cancelled record stays `Waiting`: it is found
    /// dead lazily, its record being gone.)
    Cancelled = 1,
    /// A sleep that fired: its `Runnable::timer` entry waits in the ready queue and will wake `what`.
    Queued = 2,
    /// A sleep that fired and was cancelled before its `Runnable::timer` entry ran, which does nothing.
    Revoked = 3,
    /// An empty slot; `what` holds the next free one (or [`NONE`](super::NONE)).
    Free = 4,
}

impl Stage {
    /// In the heap: waiting for its deadline, or a tombstone.
    #[inline]
    pub(super) fn is_waiting(self) -> bool {
        matches!(self, Stage::Waiting | Stage::Cancelled)
    }
}

/// What an entry fires: a sleep's wake-up, or a handle record's index (stored in
/// [`Entry::data`], its kind in [`Entry::meta`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum What {
    /// Wake this (a sleep).
    Wake(Wake),
    /// Run handle record `u32`, if the record (with this entry's `seq`) still exists: callbacks
    /// and timeouts cancel through their record. Also the next free slot of a `Free` entry, and
    /// [`NONE`](super::NONE) once a cancelled sleep gave its waker back.
    Index(u32),
}

impl What {
    /// The kind and data an entry stores for it.
    #[inline]
    pub(super) fn encode(self) -> (u32, [u32; 2]) {
        match self {
            What::Wake(Wake::Task(key)) => (KIND_TASK, [key.0 as u32, (key.0 >> 32) as u32]),
            What::Wake(Wake::Other(i)) => (KIND_OTHER, [i, 0]),
            What::Index(i) => (KIND_INDEX, [i, 0]),
        }
    }
}

/// Whom a sleep's entry wakes: a task, by its key (its waker is that number), or any other
/// waker, kept in [`TimerHeap::wakers`](super::TimerHeap::wakers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wake {
    /// The task with this key.
    Task(TaskKey),
    /// The waker at this index of [`TimerHeap::wakers`](super::TimerHeap::wakers).
    Other(u32),
}

impl Wake {
    /// Takes `waker` in: a task's waker as its key, any other one into `wakers` (cloned).
    #[inline]
    pub(super) fn new(waker: &Waker, wakers: &mut Slab<Waker>) -> Wake {
        match key_of(waker) {
            Some(key) => Wake::Task(key),
            None => Wake::Other(Self::keep(waker.clone(), wakers)),
        }
    }

    /// [`new`](Self::new) for an owned waker.
    #[inline]
    pub(super) fn from_waker(waker: Waker, wakers: &mut Slab<Waker>) -> Wake {
        match key_of(&waker) {
            Some(key) => Wake::Task(key),
            None => Wake::Other(Self::keep(waker, wakers)),
        }
    }

    #[inline]
    pub(super) fn keep(waker: Waker, wakers: &mut Slab<Waker>) -> u32 {
        u32::try_from(wakers.insert(waker)).expect("aioloop: more than 2^32 sleeps with foreign wakers")
    }

    /// Returns true if this wakes the same task as `waker` ([`Waker::will_wake`]).
    #[inline]
    pub(super) fn will_wake(self, waker: &Waker, wakers: &Slab<Waker>) -> bool {
        match self {
            Wake::Task(key) => key_of(waker) == Some(key),
            Wake::Other(i) => wakers[i as usize].will_wake(waker),
        }
    }

    /// Gives the waker back (a task's is made from its key), taking it out of `wakers`.
    #[inline]
    pub(super) fn into_waker(self, wakers: &mut Slab<Waker>) -> Waker {
        match self {
            Wake::Task(key) => waker_for(key),
            Wake::Other(i) => wakers.remove(i as usize),
        }
    }
}
