//! The poller: where the loop sleeps when nothing is ready (asyncio's `selector`).
//!
//! The loop blocks in [`Reactor::wait`] with the next timer's deadline as timeout, and other
//! threads interrupt that sleep with [`Reactor::notify`] (asyncio's self-pipe). On a real
//! machine this is a [`polling::Poller`] (epoll on Linux, kqueue on the BSDs and macOS).
//!
//! # Invariants
//! - `wait` returns when a registered source is ready, when `notify` was called (before or
//!   during the wait: a notification is never lost), or when the timeout passes; it may also
//!   return early for no reason (a signal: `EINTR`), which the loop treats as a spurious wakeup.
//! - Under Miri, which cannot run `epoll`, the reactor is a fake made of a mutex and a condvar
//!   that only knows `notify`; the loop's tests run on virtual time there, so nothing is lost.
//!
//! - Every registered file descriptor is owned by a [`Registration`], which deletes it from the
//!   poller before it closes it: `polling::Poller::add` requires exactly that, and it is the one
//!   `unsafe` call of the crate besides the waker's `Waker::from_raw`.
//!
//! Sockets are registered *edge-triggered* (the poller reports a change of readiness once, and
//! [`io`](crate::io) caches it until an operation says `WouldBlock`), except the descriptors of
//! asyncio's `add_reader`/`add_writer`, which are level-triggered as in asyncio's selector loop.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::cross_thread::Remote;

/// A direction of readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
}

/// A readiness event: which registration, readable, writable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IoEvent {
    pub(crate) key: usize,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

/// How a registration reports readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Once per change of readiness (sockets of `Async`).
    Edge,
    /// At every wait while ready (asyncio's `add_reader`/`add_writer`).
    Level,
}

/// The OS poller, or a condvar stand-in under Miri.
pub(crate) struct Reactor {
    /// What the loop blocks in.
    backend: Backend,
    /// The process that created it. After a `fork` the child shares the parent's epoll
    /// instance: it must neither wait on it nor delete the parent's registrations from it.
    pid: u32,
}

enum Backend {
    /// epoll/kqueue through the `polling` crate; `events` is only touched by the loop's thread.
    /// (`poller` is `None` only while a forked child drops the reactor.)
    #[cfg_attr(miri, allow(dead_code))]
    Os { poller: Option<polling::Poller>, events: Mutex<polling::Events> },
    /// A flag and a condvar: `notify` sets the flag, `wait` sleeps until it is set or the timeout passes.
    #[cfg_attr(not(miri), allow(dead_code))]
    Fake { notified: Mutex<bool>, cond: Condvar },
}

impl Drop for Reactor {
    fn drop(&mut self) {
        // In a forked child, dropping the `Poller` would delete its notification and timer
        // descriptors from the epoll instance the parent still uses. Leak it instead: the child's
        // copies of those few descriptors close when the child exits or execs.
        if self.forked() {
            if let Backend::Os { poller, .. } = &mut self.backend {
                std::mem::forget(poller.take());
            }
        }
    }
}

impl Reactor {
    /// Creates the poller (an epoll instance and its notification descriptor on Linux).
    pub(crate) fn new() -> io::Result<Reactor> {
        #[cfg(not(miri))]
        let backend = Backend::Os { poller: Some(polling::Poller::new()?), events: Mutex::new(polling::Events::new()) };
        #[cfg(miri)]
        let backend = Backend::Fake { notified: Mutex::new(false), cond: Condvar::new() };
        Ok(Reactor { backend, pid: std::process::id() })
    }

    /// Returns true in a child forked after the reactor was created (one `getpid`).
    pub(crate) fn forked(&self) -> bool {
        std::process::id() != self.pid
    }

    /// Blocks until an event, a notification or the timeout (`None`: no timeout), and appends
    /// the readiness events to `out`.
    ///
    /// `EINTR` is reported as `Ok`: to the loop it is just an early return.
    pub(crate) fn wait(&self, timeout: Option<Duration>, out: &mut Vec<IoEvent>) -> io::Result<()> {
        match &self.backend {
            Backend::Os { poller: None, .. } => Err(gone()),
            Backend::Os { poller: Some(poller), events } => {
                let mut events = events.lock().unwrap_or_else(PoisonError::into_inner);
                events.clear();
                match poller.wait(&mut events, timeout) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                    Err(e) => return Err(e),
                }
                out.extend(events.iter().map(|e| IoEvent { key: e.key, readable: e.readable, writable: e.writable }));
                Ok(())
            }
            Backend::Fake { notified, cond } => {
                let mut flag = notified.lock().unwrap_or_else(PoisonError::into_inner);
                if !*flag {
                    flag = match timeout {
                        Some(t) => cond.wait_timeout(flag, t).unwrap_or_else(PoisonError::into_inner).0,
                        None => cond.wait(flag).unwrap_or_else(PoisonError::into_inner),
                    };
                }
                *flag = false;
                Ok(())
            }
        }
    }

    /// Wakes the loop from [`wait`](Self::wait), now or at its next call. Callable from any thread.
    pub(crate) fn notify(&self) -> io::Result<()> {
        match &self.backend {
            Backend::Os { poller: Some(poller), .. } => poller.notify(),
            Backend::Os { poller: None, .. } => Err(gone()),
            Backend::Fake { notified, cond } => {
                *notified.lock().unwrap_or_else(PoisonError::into_inner) = true;
                cond.notify_one();
                Ok(())
            }
        }
    }

    fn poller(&self) -> io::Result<&polling::Poller> {
        match &self.backend {
            Backend::Os { poller: Some(poller), .. } => Ok(poller),
            Backend::Os { poller: None, .. } => Err(gone()),
            Backend::Fake { .. } => {
                Err(io::Error::new(io::ErrorKind::Unsupported, "sockets cannot be polled under Miri"))
            }
        }
    }
}

/// The error for a poller already given up (a forked child dropping its inherited loop).
fn gone() -> io::Error {
    io::Error::other("the poller was released")
}

fn interest(key: usize, read: bool, write: bool) -> polling::Event {
    match (read, write) {
        (true, true) => polling::Event::all(key),
        (true, false) => polling::Event::readable(key),
        (false, true) => polling::Event::writable(key),
        (false, false) => polling::Event::none(key),
    }
}

fn poll_mode(mode: Mode) -> polling::PollMode {
    match mode {
        Mode::Edge => polling::PollMode::Edge,
        Mode::Level => polling::PollMode::Level,
    }
}

/// An I/O object registered with a loop's poller.
///
/// # Invariant
///
/// From [`new`](Self::new) until it is dropped (or [`into_inner`](Self::into_inner) returns),
/// `io`'s descriptor is in the poller; it is deleted from the poller *before* `io` is dropped.
/// Nothing hands out `&mut T`, so the descriptor cannot be replaced or closed behind our back.
pub(crate) struct Registration<T: AsFd> {
    /// The registered object; `None` only inside `into_inner` and `drop`.
    io: Option<T>,
    /// The loop's cross-thread half, which owns the poller it is registered with.
    remote: Arc<Remote>,
}

impl<T: AsFd> Registration<T> {
    /// Registers `io` with the poller under `key`, interested in reading and writing.
    pub(crate) fn new(remote: Arc<Remote>, io: T, key: usize, mode: Mode) -> io::Result<Registration<T>> {
        let poller = remote.reactor().poller()?;
        // SAFETY: `polling::Poller::add` requires the source to be deleted from the poller before
        // it is closed. The `Registration` owns `io` from here on, never lends it mutably, and
        // deletes it from the poller in `into_inner` and `drop` before dropping it (the type's
        // invariant).
        unsafe { poller.add_with_mode(io.as_fd().as_raw_fd(), interest(key, true, true), poll_mode(mode))? };
        Ok(Registration { io: Some(io), remote })
    }

    /// Returns the registered object.
    pub(crate) fn get_ref(&self) -> &T {
        self.io.as_ref().expect("present until dropped")
    }

    /// Changes what the poller reports (level-triggered callbacks of `add_reader`/`add_writer`).
    pub(crate) fn set_interest(&self, key: usize, read: bool, write: bool, mode: Mode) -> io::Result<()> {
        self.remote.reactor().poller()?.modify_with_mode(self.get_ref(), interest(key, read, write), poll_mode(mode))
    }

    /// Deletes the registration and gives the object back.
    pub(crate) fn into_inner(mut self) -> io::Result<T> {
        let io = self.io.take().expect("present until dropped");
        let deleted = self.remote.reactor().poller().and_then(|p| p.delete(&io));
        deleted.map(|()| io)
    }
}

impl<T: AsFd> Drop for Registration<T> {
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            // Deleted before `io` closes its descriptor (the invariant). A failure here means the
            // poller itself is gone; the descriptor is closed right after either way.
            // In a forked child the epoll instance is the parent's: deleting would take the
            // parent's registration of the same socket with it. Closing the child's copy of
            // the descriptor leaves the parent's registration alone.
            if let Some(p) = self.remote.reactor().poller().ok().filter(|_| !self.remote.reactor().forked()) {
                let _ = p.delete(&io);
            }
            drop(io);
        }
    }
}
