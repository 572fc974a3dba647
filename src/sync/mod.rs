//! Coordination between tasks of one loop: [`Queue`], [`Event`], [`Lock`], [`Semaphore`],
//! [`Condition`] (asyncio's `queues.py` and `locks.py`).
//!
//! They are for tasks on one loop: cheap `Clone` handles that share their state through an
//! `Rc`, with no atomics and no locks (a single thread cannot race with itself).
//!
//! # Waiters
//!
//! Every primitive keeps its waiting tasks in a `WaitList`: first come, first served. A waiter
//! is *woken* when it is chosen (asyncio: its future is done) and runs one iteration later. The
//! dangerous moment is in between: a task woken, then cancelled before it ran. asyncio's rules,
//! kept here in each waiting future's `Drop`:
//!
//! - a `Queue` getter (or putter) woken and then cancelled passes the wake-up on to the next one,
//!   so the item (or the free slot) is not lost;
//! - a `Lock` waiter woken and then cancelled wakes the next waiter if the lock is still free;
//! - a `Semaphore` permit is handed to the woken waiter; if it is cancelled, the permit goes back
//!   and on to the next waiter;
//! - `Lock` and `Semaphore` never let a newcomer take the lock or a permit while tasks are
//!   waiting for it (no barging); a `Queue` getter re-checks for an item when it runs, as in
//!   asyncio.
//!
//! # A waiter whose task is cancelled
//!
//! Cancelling a task is a request until the loop next runs it (then its future is dropped), but
//! asyncio cancels the waiter's future at once, so a release, a put or a notify in between skips
//! that waiter. aioloop does the same by asking, at each such choice, whether the waiter's task
//! has a cancellation pending (`cancelled`). It can ask only through the waker the waiter was
//! last polled with, and it answers yes exactly when all of these hold:
//!
//! 1. that waker is an aioloop task waker (`waker::key_of` recognises its vtable);
//! 2. a loop is running on this thread;
//! 3. that loop's task table holds, at the waker's slab index, a task whose id matches the
//!    waker's generation, and `cancel()` was called on it (`Core::cancel_requested`). The loop
//!    slot in the waker is not compared, so a waiter of another loop of this thread matches only
//!    a task whose id agrees with its own in the low 26 bits (ids are unique in the process).
//!
//! While no task of this thread's loops has a cancellation pending (a per-thread count kept by
//! the task module), the answer is no without looking anything up: the common case costs a load.
//!
//! Under a **foreign waker** (the waiter polled inside a combinator that gives each future a
//! waker of its own, such as futures' `FuturesUnordered`, or with a hand-made `Context`), and
//! for any choice made while no loop runs on this thread (a release between two
//! `run_until_complete` calls), the answer is always no: the waiter competes like any other
//! until its task runs and drops it. What a user sees:
//!
//! - a `Semaphore` release, a `Queue` put (or get, for putters) and a `Condition` notify choose
//!   it (`wake_next`): the permit, the wake-up or the notification goes to it, and its `Drop`
//!   passes it on when its task runs, so the next waiter gets it **one iteration later** than
//!   under the task's own waker (and asyncio). Nothing is lost.
//! - a `Lock` release wakes it (`wake_first`) rather than leaving the lock free, so until its
//!   task runs, `try_lock` is refused and a newcomer's `lock()` queues; its drop then hands the
//!   lock on. The same holds for `Semaphore::try_acquire` and `is_locked` (`is_empty`).
//! - `Event::set` and `Condition::notify_all` wake every waiter anyway: no difference.
//!
//! tests/sync.rs checks each case under both kinds of waker ("Foreign wakers").
//!
//! # Why a slab
//!
//! The alternative, futures-intrusive's linked lists of waiters, avoids the slab but needs
//! `unsafe`; a slab with a FIFO of keys gives O(1) enqueue, wake and removal without it.
//!
//! # Reading this module
//!
//! | file | concept |
//! |---|---|
//! | `mod.rs` | the shared wait list (`WaitList`): FIFO waiters, who is woken, who is cancelled |
//! | `event.rs` | [`Event`] |
//! | `lock.rs` | [`Lock`] and its [`LockGuard`] |
//! | `semaphore.rs` | [`Semaphore`] and its [`Permit`] |
//! | `queue.rs` | [`Queue`], its errors and its [`QueueStream`] |
//! | `items.rs` | where a queue keeps its items (FIFO, LIFO, or `heapq`'s min-heap): the order they come back out in |
//! | `condition.rs` | [`Condition`] |

use std::collections::VecDeque;
use std::task::Waker;

use slab::Slab;

mod barrier;
mod bounded_semaphore;
mod condition;
mod event;
mod items;
mod lifo_queue;
mod lock;
mod priority_queue;
mod queue;
mod semaphore;

pub use barrier::{Barrier, BarrierWait, BrokenBarrier};
pub use bounded_semaphore::{BoundedSemaphore, TooManyReleases};
pub use condition::Condition;
pub use event::{Event, EventWait};
pub use lifo_queue::LifoQueue;
pub use lock::{Acquire, Lock, LockGuard};
pub use priority_queue::PriorityQueue;
pub use queue::{Queue, QueueEmpty, QueueFull, QueueStream, TooManyTaskDone};
pub use semaphore::{Permit, Semaphore, SemaphoreAcquire};

/// A FIFO of waiting tasks.
#[derive(Default)]
struct WaitList {
    /// The waiters, by key.
    waiters: Slab<Waiter>,
    /// Keys in arrival order, with the sequence number that tells a reused key apart; entries of
    /// removed waiters are skipped lazily.
    order: VecDeque<(usize, u64)>,
    next_seq: u64,
}

struct Waiter {
    seq: u64,
    /// Chosen to proceed (asyncio: its future is done); it runs soon.
    woken: bool,
    waker: Waker,
}

/// A waiter's place in a [`WaitList`].
type Ticket = (usize, u64);

/// Returns true if the waiter's task has a cancellation pending: asyncio's waiter future would
/// be cancelled (done) already, so it no longer competes for an item, a permit or the lock.
/// Always false under a foreign waker (see the module docs, "A waiter whose task is cancelled").
fn cancelled(waiter: &Waiter) -> bool {
    task_cancelled(&waiter.waker)
}

/// Returns true if the task this waker wakes has a cancellation pending (see [`cancelled`]).
#[inline]
fn task_cancelled(waker: &Waker) -> bool {
    // Usually no task has a cancellation pending: then nothing needs looking up.
    crate::runtime::task::any_cancel_pending()
        && crate::runtime::waker::key_of(waker).is_some_and(|key| {
            crate::runtime::running::with_running(|core| core.cancel_requested(key)).unwrap_or(false)
        })
}

impl WaitList {
    fn push(&mut self, waker: &Waker) -> Ticket {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = self.waiters.insert(Waiter { seq, woken: false, waker: waker.clone() });
        self.order.push_back((key, seq));
        (key, seq)
    }

    fn get(&mut self, (key, seq): Ticket) -> Option<&mut Waiter> {
        self.waiters.get_mut(key).filter(|w| w.seq == seq)
    }

    /// Returns true if the waiter was woken; else refreshes its waker.
    fn poll(&mut self, ticket: Ticket, waker: &Waker) -> bool {
        match self.get(ticket) {
            Some(w) if w.woken => true,
            Some(w) => {
                if !w.waker.will_wake(waker) {
                    w.waker = waker.clone();
                }
                false
            }
            None => true,
        }
    }

    /// For a waiter that has a ticket: returns true (and leaves the list, clearing the ticket) if
    /// it was woken; else refreshes its waker and returns false.
    fn take_turn(&mut self, ticket: &mut Option<Ticket>, waker: &Waker) -> bool {
        let t = ticket.expect("a waiter with a ticket");
        if !self.poll(t, waker) {
            return false;
        }
        self.remove(t);
        *ticket = None;
        true
    }

    /// Removes a waiter; returns whether it had been woken.
    fn remove(&mut self, ticket: Ticket) -> Option<bool> {
        let woken = self.get(ticket)?.woken;
        self.waiters.remove(ticket.0);
        // Entries of removed waiters leave `order` lazily, at the front; waiters that give up
        // behind a long-lived first one (timeouts) would pile up, so compact when mostly stale.
        if self.order.len() > 2 * self.waiters.len() + 32 {
            let waiters = &self.waiters;
            self.order.retain(|&(key, seq)| waiters.get(key).is_some_and(|w| w.seq == seq));
        }
        Some(woken)
    }

    /// Returns true if anyone waits in the list (woken or not, cancelled or not).
    #[inline]
    fn has_waiters(&self) -> bool {
        !self.waiters.is_empty()
    }

    /// Returns the first live waiter, dropping stale entries.
    fn front(&mut self) -> Option<Ticket> {
        while let Some(&(key, seq)) = self.order.front() {
            if self.waiters.get(key).is_some_and(|w| w.seq == seq) {
                return Some((key, seq));
            }
            self.order.pop_front();
        }
        None
    }

    /// Returns true if no waiter competes: none, or only cancelled ones not woken yet (asyncio's
    /// `all(w.cancelled() for w in waiters)`).
    fn is_empty(&self) -> bool {
        self.waiters.iter().all(|(_, w)| !w.woken && cancelled(w))
    }

    /// asyncio's `_wake_up_first` (Lock): wakes the first waiter unless it is woken already.
    fn wake_first(&mut self) -> Option<Waker> {
        let ticket = self.front()?;
        let w = self.get(ticket).expect("front is live");
        // A woken first waiter will take the lock; a cancelled one will pass it on when its task
        // runs (asyncio: "a waiter that is done will wake up later on").
        if w.woken || cancelled(w) {
            return None;
        }
        w.woken = true;
        Some(w.waker.clone())
    }

    /// asyncio's `_wakeup_next` / `_wake_up_next`: wakes the first waiter not woken yet. Only
    /// woken waiters that have not run yet are passed over, so this is O(1) in practice.
    fn wake_next(&mut self) -> Option<Waker> {
        self.front()?;
        for &(key, seq) in &self.order {
            if let Some(w) = self.waiters.get_mut(key).filter(|w| w.seq == seq) {
                if !w.woken && !cancelled(w) {
                    w.woken = true;
                    return Some(w.waker.clone());
                }
            }
        }
        None
    }

    /// Wakes every waiter not woken yet, in the order they began to wait (Event,
    /// `Condition::notify_all`).
    fn wake_all(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for &(key, seq) in &self.order {
            if let Some(w) = self.waiters.get_mut(key).filter(|w| w.seq == seq) {
                if !w.woken {
                    w.woken = true;
                    wakers.push(w.waker.clone());
                }
            }
        }
        wakers
    }
}

/// Wakes outside any borrow.
fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}
