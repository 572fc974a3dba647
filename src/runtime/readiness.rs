//! Readiness: how a socket becomes a woken task ([`Async`](crate::Async)), and asyncio's low-level
//! `add_reader`/`add_writer` callbacks.
//!
//! # From the kernel to a task
//!
//! ```text
//!  kernel: bytes arrive on fd 7 ──► epoll reports (key 3, readable)     phase 3, poll_io
//!  loop:   io[3].readable = true; wake io[3].readers ──► ready queue    phase 3, dispatch_io
//!  task:   read_with(|s| s.read(buf)) ──► Ok(n)                         phase 6, run_ready
//!          ... read again ──► WouldBlock: readable = false; park in io[3].readers
//! ```
//!
//! Each registered source has an entry in the loop's `io` slab: its cached readiness and the
//! wakers of the tasks waiting to read and to write (a reader and a writer waiting on the same
//! socket are both woken, each by its own direction).
//!
//! # Invariants
//! - Sockets are registered edge-triggered, once, for both directions. The poller reports a
//!   direction when it *becomes* ready; the entry keeps `readable`/`writable` set until an
//!   operation returns `WouldBlock`, so a readiness reported while nobody was waiting is not lost.
//! - An operation is always tried first; a task parks only after `WouldBlock`, and the flag it
//!   clears can only be set again by a later event, which wakes it: no lost wakeup, no spin.
//! - Events are only processed by the loop (phase 3), never during a task's poll, so "try, then
//!   park" needs no lock.
//! - A task parks on a source only if the source's loop is open and is the one running on this
//!   thread; anywhere else no event could ever wake it, so the operation fails at once with an
//!   `io::Error` that says why (the loop was closed, another loop runs, no loop runs). The check
//!   reads a thread-local, so it is made only on the way to parking: an operation that succeeds
//!   at once (data buffered, room to write) does not pay for it, and still succeeds.
//! - asyncio's callbacks (`add_reader`) register a `dup` of the descriptor, level-triggered, and
//!   run from the ready queue (phase 6) once per call into the poller that finds the descriptor
//!   ready: every iteration while the loop is otherwise idle, every 61st while tasks keep it busy.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::runtime::callbacks::Action;
use slab::Slab;

use crate::runtime::reactor::Dir;
use crate::runtime::reactor::{IoEvent, Mode, Registration};
use crate::runtime::Core;

/// A callback of `add_reader`/`add_writer`, with a number that tells a re-added one apart.
///
/// The closure is shared (`Rc`) so that it can run without a borrow of the loop's `io` slab
/// while it stays registered: asyncio's `remove_reader(fd)` inside that reader's own callback
/// returns true and removes it, and the closure is dropped only once it has returned.
struct IoCallback {
    seq: u64,
    f: Rc<RefCell<Box<dyn FnMut()>>>,
}

/// The loop's record of one registered source.
#[derive(Default)]
struct IoEntry {
    /// Cached readiness per direction (`Dir` index): set by events, cleared by `WouldBlock`.
    ready: [bool; 2],
    /// Tasks waiting for each direction.
    waiters: [Vec<Waker>; 2],
    /// asyncio-style callbacks (level-triggered registrations only).
    callbacks: [Option<IoCallback>; 2],
    /// Sequence numbers of the callbacks, so a run queued for a removed one is skipped.
    callback_seq: [u64; 2],
    /// The registered descriptor's number (for the task dump).
    fd: RawFd,
}

impl IoEntry {
    /// Returns the direction a task with this waker waits for, if it waits here.
    fn waits(&self, task: &dyn Fn(&Waker) -> bool) -> Option<Dir> {
        [Dir::Read, Dir::Write].into_iter().find(|&d| self.waiters[d as usize].iter().any(task))
    }
}

/// The loop's I/O registrations: one part of the loop, owned by [`Core`] as its `io` field.
///
/// Invariants: an entry exists in `entries` from `io_insert` until `io_remove`, and its key is
/// the key the poller reports for it; every `add_reader`/`add_writer` registration in
/// `callbacks` has its entry; `events` is the poller's scratch buffer, empty between polls.
#[derive(Default)]
pub(crate) struct IoSources {
    /// Registered sources by key (`Async` sockets and pipes, descriptors of `add_reader`).
    entries: RefCell<Slab<IoEntry>>,
    /// The registrations of `add_reader`/`add_writer`, by descriptor.
    callbacks: RefCell<FdCallbacks>,
    /// Scratch buffer for the poller's events.
    events: RefCell<Vec<IoEvent>>,
    /// Iterations since the poller was last asked for I/O while the loop was busy.
    busy_ticks: Cell<u32>,
}

impl IoSources {
    /// How many sources are registered.
    pub(crate) fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// A busy iteration (something is ready): returns true if sources are registered and it is
    /// their turn to be polled (every `interval`-th busy iteration), counting it otherwise.
    pub(crate) fn busy_turn(&self, interval: u32) -> bool {
        let ticks = self.busy_ticks.get().saturating_add(1);
        if self.len() == 0 || ticks < interval {
            self.busy_ticks.set(ticks);
            return false;
        }
        true
    }

    /// Takes the events buffer for a poll (restart the busy count: the poller is asked now).
    pub(crate) fn take_events(&self) -> Vec<IoEvent> {
        self.busy_ticks.set(0);
        std::mem::take(&mut *self.events.borrow_mut())
    }

    /// Gives the (drained) events buffer back after a poll.
    pub(crate) fn put_events(&self, events: Vec<IoEvent>) {
        *self.events.borrow_mut() = events;
    }

    /// After a burst: drops the slab and the buffer if they are empty (see
    /// `Core::release_burst_memory`).
    pub(crate) fn release_memory(&self) {
        super::give_back(&self.entries, Slab::is_empty, Slab::capacity);
        super::give_back(&self.events, Vec::is_empty, Vec::capacity);
    }

    /// The registered descriptor and direction the task whose waker `is_task` recognises
    /// waits on, if any (for the task dump).
    pub(crate) fn waited_by(&self, is_task: &dyn Fn(&Waker) -> bool) -> Option<(RawFd, Dir)> {
        let entries = self.entries.borrow();
        entries.iter().find_map(|(_, entry)| entry.waits(is_task).map(|d| (entry.fd, d)))
    }
}

/// The level-triggered registrations of `add_reader`/`add_writer`, by the user's descriptor.
#[derive(Default)]
struct FdCallbacks {
    /// user's fd → (slab key, registration of our dup of it).
    by_fd: HashMap<RawFd, (usize, Registration<OwnedFd>)>,
    next_seq: u64,
}

impl Core {
    /// Phase 3, after the poller returned: records readiness and wakes the waiting tasks.
    pub(crate) fn dispatch_io(&self, events: &mut Vec<IoEvent>) {
        for ev in events.drain(..) {
            let mut wake: Vec<Waker> = Vec::new();
            let mut callbacks: [Option<u64>; 2] = [None, None];
            {
                let mut io = self.io.entries.borrow_mut();
                let Some(entry) = io.get_mut(ev.key) else { continue };
                for (dir, on) in [(Dir::Read, ev.readable), (Dir::Write, ev.writable)] {
                    if !on {
                        continue;
                    }
                    let d = dir as usize;
                    entry.ready[d] = true;
                    wake.append(&mut entry.waiters[d]);
                    if entry.callbacks[d].is_some() {
                        callbacks[d] = Some(entry.callback_seq[d]);
                    }
                }
            }
            for (d, seq) in callbacks.into_iter().enumerate() {
                if let Some(seq) = seq {
                    let dir = if d == 0 { Dir::Read } else { Dir::Write };
                    self.call_soon_action(Action::Io(ev.key, dir, seq));
                }
            }
            for w in wake {
                self.contain(move || w.wake());
            }
        }
    }

    /// Returns how many sources are registered (virtual time never jumps while any is).
    pub(crate) fn io_sources(&self) -> usize {
        self.io.len()
    }

    /// The descriptor and direction the task `key` waits on, if any (for the task dump).
    pub(crate) fn io_waited_by(&self, key: crate::runtime::waker::TaskKey) -> Option<(RawFd, Dir)> {
        self.io.waited_by(&|w| crate::runtime::waker::key_of(w) == Some(key))
    }

    pub(crate) fn io_insert(&self, fd: RawFd) -> usize {
        self.io.entries.borrow_mut().insert(IoEntry { fd, ..IoEntry::default() })
    }

    pub(crate) fn io_remove(&self, key: usize) {
        let entry = self.io.entries.borrow_mut().try_remove(key);
        drop(entry); // wakers and callbacks may run destructors: no borrow held
    }

    /// Returns `Ready(Ok)` if the direction is (believed) ready, else parks `waker` on it; or
    /// `Ready(Err)` if no wake could ever come (see [`check_can_wait`](Self::check_can_wait)).
    pub(crate) fn poll_ready(&self, key: usize, dir: Dir, waker: &Waker) -> Poll<io::Result<()>> {
        let d = dir as usize;
        if self.io.entries.borrow().get(key).is_some_and(|entry| entry.ready[d]) {
            return Poll::Ready(Ok(()));
        }
        // Only on the way to parking: the path that succeeds at once reads no thread-local.
        if let Err(e) = self.check_can_wait() {
            return Poll::Ready(Err(e));
        }
        let mut io = self.io.entries.borrow_mut();
        let entry = io.get_mut(key).expect("a registered source has an entry");
        let waiters = &mut entry.waiters[d];
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            // Tasks cancelled while waiting here left their wakers behind; drop those of
            // finished tasks first, so a socket that stays unready (a peer that never reads)
            // holds no more wakers than it has live waiters.
            if !waiters.is_empty() {
                waiters.retain(|w| {
                    crate::runtime::waker::key_of(w).is_none_or(|k| {
                        k.slot() != self.remote.slot() || self.status_of(k).is_some_and(|s| !s.is_finished())
                    })
                });
            }
            waiters.push(waker.clone());
        }
        Poll::Pending
    }

    /// Returns an error unless this loop is open and is the one running on this thread: only
    /// then can the poller's events reach a task parked on one of its sources. Parked anywhere
    /// else (after the loop was dropped, on another loop, outside any loop), it would wait
    /// forever.
    pub(crate) fn check_can_wait(&self) -> io::Result<()> {
        if self.closed.get() {
            return Err(io::Error::other(
                "the event loop of this I/O object was closed: it cannot wait for readiness any more \
                 (an I/O object cannot outlive its loop; create it in the loop that uses it)",
            ));
        }
        match crate::runtime::running::with_running(|running| std::ptr::eq(Rc::as_ptr(running), self)) {
            Some(true) => Ok(()),
            Some(false) => Err(io::Error::other(
                "this I/O object belongs to another event loop than the one running on this thread: \
                 it can only wait for readiness in the loop it was created in",
            )),
            None => Err(io::Error::other(
                "no running event loop: an I/O object can only wait for readiness inside its loop \
                 (in a task or the future given to run_until_complete)",
            )),
        }
    }

    /// Forgets a direction's readiness after `WouldBlock`.
    pub(crate) fn clear_ready(&self, key: usize, dir: Dir) {
        if let Some(entry) = self.io.entries.borrow_mut().get_mut(key) {
            entry.ready[dir as usize] = false;
        }
    }

    /// Runs an `add_reader`/`add_writer` callback (a handle queued by `dispatch_io`).
    ///
    /// The callback stays registered while it runs (a shared reference to it runs, with no
    /// borrow held), so inside it `remove_reader` of its own descriptor finds it and returns true
    /// (asyncio), and removing the *other* direction leaves it registered.
    pub(crate) fn run_io_callback(&self, key: usize, dir: Dir, seq: u64) {
        let d = dir as usize;
        let f = {
            let io = self.io.entries.borrow();
            match io.get(key).and_then(|e| e.callbacks[d].as_ref()) {
                Some(cb) if cb.seq == seq => Rc::clone(&cb.f),
                _ => return,
            }
        };
        // A callback never runs inside itself (callbacks run from the ready queue only, and a
        // loop cannot be run from inside one), so the borrow is free; `try_` keeps it a no-op
        // if that ever changes.
        if let Ok(mut f) = f.try_borrow_mut() {
            self.contain(&mut *f);
        }
        // If the callback removed or replaced itself, this was the last reference: it is
        // dropped now, after it returned (a destructor that panics is reported, as a callback).
        self.contain(move || drop(f));
    }

    /// asyncio's `add_reader`/`add_writer`: runs `f` once per poll that finds `fd` ready.
    pub(crate) fn add_fd_callback(
        self: &Rc<Self>,
        fd: BorrowedFd<'_>,
        dir: Dir,
        f: Box<dyn FnMut()>,
    ) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        // The same number may now name another file: the old one was closed without
        // `remove_reader` and the number reused. Its registration (a dup of the old file) is
        // stale: drop it, with its callbacks, and register the new file.
        let stale = self.io.callbacks.borrow().by_fd.get(&raw).is_some_and(|(_, reg)| !same_file(reg.get_ref(), fd));
        if stale {
            let removed = self.io.callbacks.borrow_mut().by_fd.remove(&raw);
            if let Some((key, reg)) = removed {
                drop(reg);
                self.io_remove(key);
            }
        }
        let mut fds = self.io.callbacks.borrow_mut();
        fds.next_seq += 1;
        let seq = fds.next_seq;
        let key = match fds.by_fd.get(&raw) {
            Some((key, _)) => *key,
            None => {
                let key = self.io_insert(raw);
                // A dup the loop owns, so the registration can be deleted before it is closed
                // whatever the caller does with its own descriptor.
                let dup = fd.try_clone_to_owned()?;
                let reg = match Registration::new(self.remote.clone(), dup, key, Mode::Level) {
                    Ok(reg) => reg,
                    Err(e) => {
                        self.io_remove(key);
                        return Err(e);
                    }
                };
                fds.by_fd.insert(raw, (key, reg));
                key
            }
        };
        let old = {
            let mut io = self.io.entries.borrow_mut();
            let e = io.get_mut(key).expect("registered");
            e.callback_seq[dir as usize] = seq;
            let old = e.callbacks[dir as usize].replace(IoCallback { seq, f: Rc::new(RefCell::new(f)) });
            let interest = (e.callbacks[0].is_some(), e.callbacks[1].is_some());
            drop(io);
            fds.by_fd[&raw].1.set_interest(key, interest.0, interest.1, Mode::Level)?;
            old
        };
        drop(fds);
        drop(old);
        Ok(())
    }

    /// asyncio's `remove_reader`/`remove_writer`: returns true if a callback was registered.
    pub(crate) fn remove_fd_callback(&self, fd: RawFd, dir: Dir) -> bool {
        let mut fds = self.io.callbacks.borrow_mut();
        let Some(&(key, _)) = fds.by_fd.get(&fd) else { return false };
        let (old, others) = {
            let mut io = self.io.entries.borrow_mut();
            let e = io.get_mut(key).expect("registered");
            let old = e.callbacks[dir as usize].take();
            e.callback_seq[dir as usize] = u64::MAX;
            (old, (e.callbacks[0].is_some(), e.callbacks[1].is_some()))
        };
        let removed = old.is_some();
        let dropped = if others == (false, false) {
            fds.by_fd.remove(&fd).map(|(_, reg)| reg)
        } else {
            let _ = fds.by_fd[&fd].1.set_interest(key, others.0, others.1, Mode::Level);
            None
        };
        drop(fds);
        if dropped.is_some() {
            drop(dropped); // deletes our dup from the poller, then closes it
            self.io_remove(key);
        }
        drop(old);
        removed
    }

    /// Drops every `add_reader`/`add_writer` registration (when the loop closes).
    pub(crate) fn clear_fd_callbacks(&self) {
        let regs: Vec<_> = self.io.callbacks.borrow_mut().by_fd.drain().map(|(_, r)| r).collect();
        for (key, reg) in regs {
            drop(reg);
            self.io_remove(key);
        }
    }
}

/// Returns true if both descriptors refer to the same file (device and inode).
fn same_file(a: impl AsFd, b: impl AsFd) -> bool {
    match (rustix::fs::fstat(a), rustix::fs::fstat(b)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}
