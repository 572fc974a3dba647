//! The part of a loop that other threads can touch: its inbox, its stop flag and its poller.
//!
//! Everything else in a loop is single-threaded (`Rc`, `RefCell`, no atomics). A waker may be
//! woken from any thread, and [`LoopHandle`](crate::LoopHandle) may stop the loop from any
//! thread, so those paths go through this `Sync` half, held in an `Arc`:
//!
//! - **the inbox** (asyncio's `call_soon_threadsafe` queue): task keys woken from other threads,
//!   drained by the loop at the start of every iteration;
//! - **the registry**: a process-wide table from a loop's *slot* (the top bits of every task key,
//!   see [`waker`](crate::runtime::waker)) to its `Remote`, so that a waker, which is only a number, can find
//!   its loop from any thread.
//!
//! # The wake-up protocol (no lost wakeups)
//!
//! A remote waker pushes its key into the inbox, sets `pending`, then calls `Poller::notify` unless
//! `notified` was already set. The loop never blocks while `pending` is set, clears `notified`
//! after each return from the poller and only then reads `pending`. Every push is therefore either
//! seen by the loop before it blocks, or followed by a notify that interrupts (or pre-empts) the
//! block. All four flag operations are `SeqCst`, so the two threads agree on one order.
//!
//! A key is queued in the inbox at most once until the loop drains it (the `queued` set), so a
//! storm of wakes from other threads costs memory for one entry per task, not one per wake.

use std::collections::HashSet;
use std::io;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, PoisonError, RwLock};

// The loom build (tests/loom_wake.rs) checks the protocol with loom's atomics and mutex (the
// atomics wrapped so that loom models `SeqCst` as such); every other build uses the standard
// library's. The registry stays a std lock: it is a `static`.
#[cfg(loom)]
use super::loom_atomics::{AtomicBool, AtomicUsize};
#[cfg(loom)]
use loom::sync::Mutex;
#[cfg(not(loom))]
use std::sync::{
    atomic::{AtomicBool, AtomicUsize},
    Mutex,
};

use crate::runtime::reactor::Reactor;

/// How many loops may be alive at once in one process (the slot field of a task key is 12 bits).
pub(crate) const MAX_LOOPS: usize = 1 << 12;

/// A callback sent from another thread (`LoopHandle::call_soon_threadsafe`).
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// The cross-thread half of one event loop.
pub(crate) struct Remote {
    /// Task keys woken from other threads, and the set that keeps each key in it once.
    inbox: Mutex<Inbox>,
    /// Set when the loop closed: no more callbacks are accepted.
    closed: AtomicBool,
    /// `run_in_executor` jobs submitted by this loop and not finished yet: virtual time does not
    /// jump while one runs, since its result may arrive at any real moment.
    jobs_in_flight: AtomicUsize,
    /// Set when the inbox is not empty; read by the loop without taking the lock.
    pending: AtomicBool,
    /// Set when a notification is already on its way to the poller; saves redundant syscalls.
    notified: AtomicBool,
    /// Set by `stop()` (from any thread); read and cleared by the loop after each iteration.
    stop: AtomicBool,
    /// The poller the loop sleeps in.
    reactor: Reactor,
    /// This loop's index in the registry.
    slot: u16,
    /// Loom build only: the stand-in for the poller that loom can see (`notify` sets it).
    #[cfg(loom)]
    pub(crate) park: super::loom_atomics::Park,
}

#[derive(Default)]
struct Inbox {
    keys: Vec<u64>,
    queued: HashSet<u64>,
    /// Callbacks from other threads, in the order they were sent.
    jobs: Vec<Job>,
}

/// The registry: slot → loop. A vacant slot (`None`) makes a stale waker a no-op.
static REGISTRY: RwLock<Vec<Option<Arc<Remote>>>> = RwLock::new(Vec::new());

impl Remote {
    /// Creates a loop's remote half and registers it in a free slot.
    pub(crate) fn register() -> io::Result<Arc<Remote>> {
        let reactor = Reactor::new()?;
        let mut reg = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
        let slot = match reg.iter().position(Option::is_none) {
            Some(i) => i,
            None if reg.len() < MAX_LOOPS => {
                reg.push(None);
                reg.len() - 1
            }
            None => {
                return Err(io::Error::other(format!(
                    "too many event loops alive in this process (the limit is {MAX_LOOPS})"
                )));
            }
        };
        let remote = Arc::new(Remote {
            inbox: Mutex::new(Inbox::default()),
            closed: AtomicBool::new(false),
            jobs_in_flight: AtomicUsize::new(0),
            pending: AtomicBool::new(false),
            notified: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            reactor,
            slot: slot as u16,
            #[cfg(loom)]
            park: super::loom_atomics::Park::default(),
        });
        reg[slot] = Some(remote.clone());
        Ok(remote)
    }

    /// This loop's index in the registry (the slot field of its task keys).
    pub(crate) fn slot(&self) -> u16 {
        self.slot
    }

    /// The poller the loop sleeps in.
    pub(crate) fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// Asks the loop to stop after the iteration in progress (from any thread; the caller
    /// notifies the poller if the loop may be asleep).
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, SeqCst);
    }

    /// Returns true if a stop was requested and not taken yet.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(SeqCst)
    }

    /// Takes a requested stop: returns true if one was requested, and clears it.
    pub(crate) fn take_stop(&self) -> bool {
        self.stop.swap(false, SeqCst)
    }

    /// A job that may wake a task of this loop at any real moment started (`run_in_executor`,
    /// a name lookup, a child's exit watcher): virtual time does not jump until it finishes.
    pub(crate) fn job_started(&self) {
        self.jobs_in_flight.fetch_add(1, SeqCst);
    }

    /// A job counted by [`job_started`](Self::job_started) finished (after waking its task).
    pub(crate) fn job_finished(&self) {
        self.jobs_in_flight.fetch_sub(1, SeqCst);
    }

    /// How many jobs counted by [`job_started`](Self::job_started) have not finished.
    pub(crate) fn jobs_in_flight(&self) -> usize {
        self.jobs_in_flight.load(SeqCst)
    }

    /// Queues a callback from another thread; gives it back if the loop is closed.
    pub(crate) fn push_job(&self, job: Job) -> Result<(), Job> {
        {
            let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
            if self.closed.load(SeqCst) {
                return Err(job);
            }
            inbox.jobs.push(job);
        }
        self.pending.store(true, SeqCst);
        self.notify();
        Ok(())
    }

    /// Marks the loop closed and returns the callbacks it will never run.
    pub(crate) fn close(&self) -> Vec<Job> {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        self.closed.store(true, SeqCst);
        std::mem::take(&mut inbox.jobs)
    }

    /// Removes this loop from the registry: from now on its wakers do nothing.
    pub(crate) fn unregister(&self) {
        let mut reg = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = reg.get_mut(self.slot as usize) {
            if entry.as_ref().is_some_and(|r| std::ptr::eq(&**r, self)) {
                *entry = None;
            }
        }
    }

    /// Queues a wake-up coming from another thread (or from outside the running loop).
    pub(crate) fn wake_from_outside(slot: u16, key: u64) {
        let reg = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(Some(remote)) = reg.get(slot as usize) {
            remote.push(key);
        }
    }

    fn push(&self, key: u64) {
        {
            let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
            if !inbox.queued.insert(key) {
                return;
            }
            inbox.keys.push(key);
        }
        self.pending.store(true, SeqCst);
        self.notify();
    }

    /// Interrupts the loop's sleep in the poller (at most one notification in flight).
    pub(crate) fn notify(&self) {
        if !self.notified.swap(true, SeqCst) {
            #[cfg(loom)]
            self.park.notify();
            // A failing notify means the eventfd is gone, which only happens once the loop is
            // closed; there is nobody left to wake.
            let _ = self.reactor.notify();
        }
    }

    /// Returns true if other threads queued wake-ups the loop has not drained yet.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(SeqCst)
    }

    /// Called by the loop after each return from the poller: the next remote wake must notify again.
    pub(crate) fn clear_notified(&self) {
        self.notified.store(false, SeqCst);
    }

    /// Takes every key and callback queued from other threads.
    /// Gives back the inbox's buffers if a burst of wakes (a million, from outside the loop)
    /// left them large and they are empty now; called when the loop is about to go idle.
    pub(crate) fn release_memory(&self, large: usize) {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        if inbox.keys.is_empty() && inbox.keys.capacity() > large {
            inbox.keys = Vec::new();
        }
        if inbox.queued.is_empty() && inbox.queued.capacity() > large {
            inbox.queued = HashSet::new();
        }
    }

    pub(crate) fn drain(&self, keys: &mut Vec<u64>, jobs: &mut Vec<Job>) {
        // A plain load first: this runs every iteration, and a swap is a locked instruction.
        if self.pending.load(SeqCst) && self.pending.swap(false, SeqCst) {
            let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
            inbox.queued.clear();
            keys.append(&mut inbox.keys);
            jobs.append(&mut inbox.jobs);
        }
    }
}
