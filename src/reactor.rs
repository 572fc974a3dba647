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
//! Production note: this file is where the I/O issue registers sockets (`Poller::add`, the one
//! `unsafe` call of the crate besides the waker's `Waker::from_raw`).

use std::io;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// The OS poller, or a condvar stand-in under Miri.
pub(crate) struct Reactor {
    /// What the loop blocks in.
    backend: Backend,
}

enum Backend {
    /// epoll/kqueue through the `polling` crate; `events` is only touched by the loop's thread.
    #[cfg_attr(miri, allow(dead_code))]
    Os { poller: polling::Poller, events: Mutex<polling::Events> },
    /// A flag and a condvar: `notify` sets the flag, `wait` sleeps until it is set or the timeout passes.
    #[cfg_attr(not(miri), allow(dead_code))]
    Fake { notified: Mutex<bool>, cond: Condvar },
}

impl Reactor {
    /// Creates the poller (an epoll instance and its notification descriptor on Linux).
    pub(crate) fn new() -> io::Result<Reactor> {
        #[cfg(not(miri))]
        let backend = Backend::Os { poller: polling::Poller::new()?, events: Mutex::new(polling::Events::new()) };
        #[cfg(miri)]
        let backend = Backend::Fake { notified: Mutex::new(false), cond: Condvar::new() };
        Ok(Reactor { backend })
    }

    /// Blocks until an event, a notification or the timeout (`None`: no timeout).
    ///
    /// `EINTR` is reported as `Ok`: to the loop it is just an early return.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.backend {
            Backend::Os { poller, events } => {
                let mut events = events.lock().unwrap_or_else(PoisonError::into_inner);
                events.clear();
                match poller.wait(&mut events, timeout) {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
                    Err(e) => Err(e),
                }
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
            Backend::Os { poller, .. } => poller.notify(),
            Backend::Fake { notified, cond } => {
                *notified.lock().unwrap_or_else(PoisonError::into_inner) = true;
                cond.notify_one();
                Ok(())
            }
        }
    }

    /// Returns how many I/O sources are registered. Virtual time only jumps when there are none,
    /// because a socket can become ready at any real moment.
    pub(crate) fn sources(&self) -> usize {
        0
    }
}
