//! The loop's callback records (asyncio's `Handle`s; the public handles are in
//! src/callback_handle.rs).
//!
//! A *handle record* is something the loop runs from its ready queue that is not a task step:
//! a user callback, the action of a `call_later` timer, a timeout's expiry, the count of a
//! combinator's finished member (how combinators keep asyncio's iteration counts), or the stop
//! request that ends `run_until_complete`. Records live in a slab; the timer heap refers to them
//! by `(index, seq)`, the ready queue by index alone (its entries are 8 bytes:
//! runtime/ready.rs). (A sleep's timer has no record: its heap entry holds the task's waker; see
//! runtime/timer/mod.rs.)
//!
//! # Invariants
//! - Cancelling a handle drops its callback at once. A record in the timer heap is removed, and
//!   the heap entry left behind no longer matches its `seq` and is skipped; a record in the ready
//!   queue stays as a tombstone ([`Action::Cancelled`], `seq` [`CANCELLED`]) until its entry
//!   runs, which removes it and does nothing (a skipped entry still counts as one of the
//!   iteration's "ntodo" slots, as in asyncio). So a queued record's index is never reused
//!   before its entry runs.
//! - A record runs at most once: running removes it first, then calls it with no borrow held.
//! - A panicking callback is reported ("Exception in callback") and the loop goes on.

use std::task::Waker;

use crate::runtime::{Core, Runnable};

/// What a handle record does when it runs.
pub(crate) enum Action {
    /// A user callback.
    Callback(Box<dyn FnOnce()>),
    /// Wake this waker (the timer of a sleep or of `wait`).
    Wake(Waker),
    /// Stop the loop (scheduled when the main task of `run_until_complete` finishes).
    Stop,
    /// A timeout's deadline (asyncio's `Timeout._on_timeout`): cancel what the timed-out future
    /// awaits, if anything, then wake its task (or let that cancellation wake it).
    Expire(Waker, Option<crate::runtime::task::Link>),
    /// Run the `add_reader` (or `add_writer`) callback of I/O source `usize`, if it is still the
    /// one with this sequence number.
    Io(usize, crate::runtime::reactor::Dir, u64),
    /// Tell a combinator's group that a member finished (asyncio's done-callback of a child).
    Member(std::rc::Rc<crate::runtime::members::Group>, u32, crate::runtime::task::Status),
    /// Nothing: a record cancelled while its ready-queue entry waits (a tombstone, removed when
    /// that entry runs; its `seq` is [`CANCELLED`]).
    Cancelled,
}

/// The `seq` of a tombstone (no record is ever given it: sequence numbers count from 0).
pub(crate) const CANCELLED: u64 = u64::MAX;

/// A record in the handle slab.
pub(crate) struct HandleRecord {
    /// Unique per record; a heap entry with another `seq` is stale ([`CANCELLED`]: a tombstone).
    pub(crate) seq: u64,
    /// The record is (still) scheduled in the timer heap.
    pub(crate) in_heap: bool,
    /// What to do.
    pub(crate) action: Action,
}

impl HandleRecord {
    /// Returns the waker this record wakes, if any (for the task dump).
    pub(crate) fn waker(&self) -> Option<&Waker> {
        match &self.action {
            Action::Wake(w) | Action::Expire(w, _) => Some(w),
            _ => None,
        }
    }
}

/// Identifies a record: slab index and sequence number.
///
/// (A sleep's timer has no record: its heap entry holds the task's waker; see
/// [`timer`](crate::runtime::timer).)
pub(crate) type HandleKey = (u32, u64);

impl Core {
    fn insert_handle(&self, in_heap: bool, seq: Option<u64>, action: Action) -> HandleKey {
        let seq = seq.unwrap_or_else(|| self.take_seq());
        let index = self.handles.borrow_mut().insert(HandleRecord { seq, in_heap, action });
        (u32::try_from(index).expect("aioloop: more than 2^32 pending callbacks"), seq)
    }

    /// Takes the next handle sequence number.
    pub(crate) fn take_seq(&self) -> u64 {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        seq
    }

    /// Queues an action for the next iteration (asyncio's `call_soon`).
    pub(crate) fn call_soon_action(&self, action: Action) -> HandleKey {
        let (index, seq) = self.insert_handle(false, None, action);
        self.ready.borrow_mut().push_back(Runnable::handle(index));
        (index, seq)
    }

    /// Schedules an action at a loop time (asyncio's `call_at`), in the order of `seq` among
    /// equal deadlines if one was taken earlier with [`take_seq`](Self::take_seq).
    pub(crate) fn call_at_action(&self, deadline: u64, seq: Option<u64>, action: Action) -> HandleKey {
        let (index, seq) = self.insert_handle(true, seq, action);
        self.timers.borrow_mut().push_record(deadline, seq, index);
        (index, seq)
    }

    /// Returns true if the record has neither run nor been cancelled.
    pub(crate) fn handle_pending(&self, (index, seq): HandleKey) -> bool {
        self.handles.borrow().get(index as usize).is_some_and(|r| r.seq == seq)
    }

    /// Makes a pending `Wake` or `Expire` record wake `waker` (a task polled from a new context);
    /// returns false if the record has run or was cancelled.
    pub(crate) fn set_handle_waker(&self, (index, seq): HandleKey, waker: &Waker) -> bool {
        let mut handles = self.handles.borrow_mut();
        let Some(r) = handles.get_mut(index as usize).filter(|r| r.seq == seq) else { return false };
        if let Action::Wake(w) | Action::Expire(w, _) = &mut r.action {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
        }
        true
    }

    /// Records what a pending `Expire` record must cancel when it runs.
    pub(crate) fn set_handle_link(&self, (index, seq): HandleKey, link: Option<crate::runtime::task::Link>) {
        let mut handles = self.handles.borrow_mut();
        if let Some(r) = handles.get_mut(index as usize).filter(|r| r.seq == seq) {
            if let Action::Expire(_, l) = &mut r.action {
                *l = link;
            }
        }
    }

    /// Cancels a record; returns true if it was still pending.
    pub(crate) fn cancel_handle(&self, (index, seq): HandleKey) -> bool {
        let removed = {
            let mut handles = self.handles.borrow_mut();
            match handles.get_mut(index as usize) {
                Some(r) if r.seq == seq && r.in_heap => Some(handles.remove(index as usize)),
                Some(r) if r.seq == seq => {
                    // In the ready queue, whose entry names it by index alone: a tombstone stays
                    // until that entry runs (src/runtime/ready.rs's invariant).
                    r.seq = CANCELLED;
                    let action = std::mem::replace(&mut r.action, Action::Cancelled);
                    Some(HandleRecord { seq, in_heap: false, action })
                }
                _ => None,
            }
        };
        match removed {
            Some(r) => {
                if r.in_heap {
                    let mut timers = self.timers.borrow_mut();
                    if timers.note_cancelled() {
                        // Mostly tombstones: rebuild now rather than at the next iteration, so a
                        // task that creates and cancels timers in one long poll stays small.
                        let handles = self.handles.borrow();
                        timers.compact(|index, seq| crate::runtime::record_is_live(&handles, index, seq));
                    }
                }
                drop(r); // may run a closure's destructors: no borrow held
                true
            }
            None => false,
        }
    }

    /// Runs a record from the ready queue (skipped if it was cancelled).
    pub(crate) fn run_handle(&self, index: u32) {
        // The record is there: a queued one is removed only here (or by `close`, which empties
        // the queue too); a cancelled one is a tombstone.
        let Some(record) = self.handles.borrow_mut().try_remove(index as usize) else {
            debug_assert!(false, "a queued handle record is in the slab");
            return;
        };
        match record.action {
            Action::Cancelled => {}
            Action::Callback(f) => {
                self.contain(f);
            }
            Action::Wake(w) => self.contain(move || w.wake()),
            Action::Stop => self.remote.request_stop(),
            Action::Member(group, member, status) => group.member_finished(self, member, status),
            Action::Io(key, dir, seq) => self.run_io_callback(key, dir, seq),
            Action::Expire(waker, link) => {
                // When the awaited task (or gather) finishes cancelling, it wakes the timed-out
                // task itself; only if there is nothing to cancel is the task woken now.
                if !link.is_some_and(|l| l.cancel(self)) {
                    self.contain(move || waker.wake());
                }
            }
        }
    }
}
