//! Readiness: how a socket becomes a woken task ([`Async`]), and asyncio's low-level
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

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::callback_handle::Action;
use crate::runtime::reactor::{IoEvent, Mode, Registration};
use crate::runtime::Core;

/// A direction of readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
}

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
pub(crate) struct IoEntry {
    /// Cached readiness per direction (`Dir` index): set by events, cleared by `WouldBlock`.
    ready: [bool; 2],
    /// Tasks waiting for each direction.
    waiters: [Vec<Waker>; 2],
    /// asyncio-style callbacks (level-triggered registrations only).
    callbacks: [Option<IoCallback>; 2],
    /// Sequence numbers of the callbacks, so a run queued for a removed one is skipped.
    callback_seq: [u64; 2],
    /// The registered descriptor's number (for the task dump).
    pub(crate) fd: RawFd,
}

impl IoEntry {
    /// Returns the direction a task with this waker waits for, if it waits here.
    pub(crate) fn waits(&self, task: &dyn Fn(&Waker) -> bool) -> Option<Dir> {
        [Dir::Read, Dir::Write].into_iter().find(|&d| self.waiters[d as usize].iter().any(task))
    }
}

/// The level-triggered registrations of `add_reader`/`add_writer`, by the user's descriptor.
#[derive(Default)]
pub(crate) struct FdCallbacks {
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
                let mut io = self.io.borrow_mut();
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
        self.io.borrow().len()
    }

    fn io_insert(&self, fd: RawFd) -> usize {
        self.io.borrow_mut().insert(IoEntry { fd, ..IoEntry::default() })
    }

    fn io_remove(&self, key: usize) {
        let entry = self.io.borrow_mut().try_remove(key);
        drop(entry); // wakers and callbacks may run destructors: no borrow held
    }

    /// Returns `Ready(Ok)` if the direction is (believed) ready, else parks `waker` on it; or
    /// `Ready(Err)` if no wake could ever come (see [`check_can_wait`](Self::check_can_wait)).
    fn poll_ready(&self, key: usize, dir: Dir, waker: &Waker) -> Poll<io::Result<()>> {
        let d = dir as usize;
        if self.io.borrow().get(key).is_some_and(|entry| entry.ready[d]) {
            return Poll::Ready(Ok(()));
        }
        // Only on the way to parking: the path that succeeds at once reads no thread-local.
        if let Err(e) = self.check_can_wait() {
            return Poll::Ready(Err(e));
        }
        let mut io = self.io.borrow_mut();
        let entry = io.get_mut(key).expect("a registered source has an entry");
        let waiters = &mut entry.waiters[d];
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            // Tasks cancelled while waiting here left their wakers behind; drop those of
            // finished tasks first, so a socket that stays unready (a peer that never reads)
            // holds no more wakers than it has live waiters.
            if !waiters.is_empty() {
                waiters.retain(|w| {
                    crate::runtime::waker::key_of(w).is_none_or(|k| {
                        k.slot() != self.remote.slot || self.status_of(k).is_some_and(|s| !s.is_finished())
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
    fn check_can_wait(&self) -> io::Result<()> {
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
    fn clear_ready(&self, key: usize, dir: Dir) {
        if let Some(entry) = self.io.borrow_mut().get_mut(key) {
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
            let io = self.io.borrow();
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
        let stale = self.fd_callbacks.borrow().by_fd.get(&raw).is_some_and(|(_, reg)| !same_file(reg.get_ref(), fd));
        if stale {
            let removed = self.fd_callbacks.borrow_mut().by_fd.remove(&raw);
            if let Some((key, reg)) = removed {
                drop(reg);
                self.io_remove(key);
            }
        }
        let mut fds = self.fd_callbacks.borrow_mut();
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
            let mut io = self.io.borrow_mut();
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
        let mut fds = self.fd_callbacks.borrow_mut();
        let Some(&(key, _)) = fds.by_fd.get(&fd) else { return false };
        let (old, others) = {
            let mut io = self.io.borrow_mut();
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
        let regs: Vec<_> = self.fd_callbacks.borrow_mut().by_fd.drain().map(|(_, r)| r).collect();
        for (key, reg) in regs {
            drop(reg);
            self.io_remove(key);
        }
    }
}

/// Explains the poller's refusal of a descriptor it cannot poll: epoll's `EPERM` means a regular
/// file or a directory (always ready, so polling them means nothing). The kind stays the OS's.
fn unpollable(e: io::Error) -> io::Error {
    if e.raw_os_error() != Some(rustix::io::Errno::PERM.raw_os_error()) {
        return e;
    }
    io::Error::new(
        e.kind(),
        format!(
            "{e}: a regular file or a directory cannot be polled (it is always ready); \
             use aioloop::fs for files, or aioloop::to_thread for other blocking calls"
        ),
    )
}

/// Returns true if both descriptors refer to the same file (device and inode).
fn same_file(a: impl AsFd, b: impl AsFd) -> bool {
    match (rustix::fs::fstat(a), rustix::fs::fstat(b)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// An I/O object (a socket, a pipe: anything with a file descriptor) driven by the running loop:
/// operations that would block park the task until the poller reports readiness.
///
/// `Async` registers the descriptor with the loop once, edge-triggered, and remembers readiness
/// until an operation returns `WouldBlock`, so a readiness event is never lost. It is deregistered
/// when dropped, before the descriptor is closed. The `net` types are built on it; use it
/// directly for other descriptors (pipes, terminals, eventfds...). Where `&T` implements
/// `Read`/`Write`, `Async<T>` and `&Async<T>` are futures-io `AsyncRead`/`AsyncWrite`, so the
/// extension traits of `futures-lite` or `futures-util` read and write it.
///
/// A task waits on it only inside the loop it was created in: used after that loop was
/// dropped, from another loop, or outside any loop, an operation that would wait fails at once
/// with an `io::Error` saying which (one that succeeds at once still does).
///
/// # Examples
///
/// A pipe read without blocking the loop:
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
///
/// aioloop::run(async {
///     let (a, mut b) = UnixStream::pair().unwrap();
///     let a = aioloop::Async::new(a).unwrap();
///     aioloop::spawn(async move { b.write_all(b"ping").unwrap() });
///     let mut buf = [0; 4];
///     let n = a.read_with(|mut s| s.read(&mut buf)).await.unwrap();
///     assert_eq!(&buf[..n], b"ping");
/// });
/// ```
pub struct Async<T: AsFd> {
    /// The object, registered with the loop's poller (deregistered when dropped); `None` only
    /// after `into_inner`.
    reg: Option<Registration<T>>,
    /// The loop it belongs to.
    core: Rc<Core>,
    /// Its entry in the loop's `io` slab (and its key in the poller).
    key: usize,
}

impl<T: AsFd> Async<T> {
    /// Puts `io` in non-blocking mode and registers it with the running loop.
    ///
    /// # Errors
    ///
    /// If no loop is running on this thread (create I/O objects inside the loop, for example in
    /// the future given to `run_until_complete`), or if the descriptor cannot be made
    /// non-blocking or registered. A regular file or a directory is `PermissionDenied` (epoll's
    /// `EPERM`) with a message that points to [`aioloop::fs`](crate::fs): files are read and
    /// written on the executor pool, not polled.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     assert!(aioloop::Async::new(a).is_ok());
    /// });
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// assert!(aioloop::Async::new(a).is_err()); // no running loop
    /// ```
    pub fn new(io: T) -> io::Result<Async<T>> {
        let core = crate::runtime::running::with_running(Rc::clone).ok_or_else(|| {
            io::Error::other("no running event loop: create I/O objects inside the loop (in a task or the future given to run_until_complete)")
        })?;
        // kqueue accepts regular files (always ready): refuse them as epoll does.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        if rustix::fs::fstat(io.as_fd()).is_ok_and(|st| {
            matches!(
                rustix::fs::FileType::from_raw_mode(st.st_mode),
                rustix::fs::FileType::RegularFile | rustix::fs::FileType::Directory
            )
        }) {
            return Err(unpollable(rustix::io::Errno::PERM.into()));
        }
        rustix::io::ioctl_fionbio(io.as_fd(), true)?;
        let key = core.io_insert(io.as_fd().as_raw_fd());
        match Registration::new(core.remote.clone(), io, key, Mode::Edge) {
            Ok(reg) => Ok(Async { reg: Some(reg), core, key }),
            Err(e) => {
                core.io_remove(key);
                Err(unpollable(e))
            }
        }
    }

    /// Returns a reference to the inner object.
    ///
    /// There is no `get_mut`: replacing or closing the descriptor while it is registered would
    /// break the poller's bookkeeping. Use [`into_inner`](Self::into_inner) to take it back.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let a = aioloop::Async::new(a).unwrap();
    ///     assert!(a.get_ref().peer_addr().is_ok());
    /// });
    /// ```
    pub fn get_ref(&self) -> &T {
        self.reg.as_ref().expect("registered until into_inner").get_ref()
    }

    /// Deregisters the object and returns it (still in non-blocking mode).
    ///
    /// # Errors
    ///
    /// If the poller refuses to delete the descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let std_stream = aioloop::Async::new(a).unwrap().into_inner().unwrap();
    ///     # drop(std_stream);
    /// });
    /// ```
    pub fn into_inner(mut self) -> io::Result<T> {
        // `Drop` then removes the entry.
        self.reg.take().expect("registered until into_inner").into_inner()
    }

    /// Waits until the object is readable (or a read would not block: EOF and errors count).
    ///
    /// # Errors
    ///
    /// If it would have to wait while the object's loop is closed, or is not the loop running on
    /// this thread, or no loop runs: no readiness event could reach it there, so it fails at
    /// once with an error saying which, instead of waiting forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// aioloop::run(async {
    ///     let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let a = aioloop::Async::new(a).unwrap();
    ///     b.write_all(b"x").unwrap();
    ///     a.readable().await.unwrap();
    /// });
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Waits until the object is writable.
    ///
    /// # Errors
    ///
    /// If it would have to wait while the object's loop is closed, or is not the loop running on
    /// this thread, or no loop runs: no readiness event could reach it there, so it fails at
    /// once with an error saying which, instead of waiting forever.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     aioloop::Async::new(a).unwrap().writable().await.unwrap();
    /// });
    /// ```
    pub async fn writable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_writable(cx)).await
    }

    /// Polls for readability (see [`readable`](Self::readable), and its errors).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::Poll;
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let a = aioloop::Async::new(a).unwrap();
    ///     let polled = std::future::poll_fn(|cx| Poll::Ready(a.poll_readable(cx))).await;
    ///     assert!(polled.is_pending()); // nothing to read yet
    /// });
    /// ```
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.core.poll_ready(self.key, Dir::Read, cx.waker())
    }

    /// Polls for writability (see [`writable`](Self::writable), and its errors).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::Poll;
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let a = aioloop::Async::new(a).unwrap();
    ///     a.writable().await.unwrap();
    ///     let polled = std::future::poll_fn(|cx| Poll::Ready(a.poll_writable(cx))).await;
    ///     assert!(polled.is_ready());
    /// });
    /// ```
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.core.poll_ready(self.key, Dir::Write, cx.waker())
    }

    /// Runs a non-blocking read operation until it does not return `WouldBlock`, waiting for
    /// readability in between.
    ///
    /// # Errors
    ///
    /// What `op` returns other than `WouldBlock`. If `op` would block while the object's loop is
    /// closed, or is not the loop running on this thread, or no loop runs, it fails at once with
    /// an error saying which (no readiness event could reach it there) instead of waiting
    /// forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// aioloop::run(async {
    ///     let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let a = aioloop::Async::new(a).unwrap();
    ///     b.write_all(b"hi").unwrap();
    ///     let mut buf = [0; 2];
    ///     a.read_with(|mut s| s.read_exact(&mut buf)).await.unwrap();
    ///     assert_eq!(&buf, b"hi");
    /// });
    /// ```
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_op(cx, Dir::Read, &mut op)).await
    }

    /// Runs a non-blocking write operation until it does not return `WouldBlock`, waiting for
    /// writability in between.
    ///
    /// # Errors
    ///
    /// What `op` returns other than `WouldBlock`. If `op` would block while the object's loop is
    /// closed, or is not the loop running on this thread, or no loop runs, it fails at once with
    /// an error saying which (no readiness event could reach it there) instead of waiting
    /// forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// aioloop::run(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    ///     let a = aioloop::Async::new(a).unwrap();
    ///     let n = a.write_with(|mut s| s.write(b"hello")).await.unwrap();
    ///     assert_eq!(n, 5);
    /// });
    /// ```
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_op(cx, Dir::Write, &mut op)).await
    }

    /// Returns an error unless the object's loop is open and running on this thread (where a
    /// task waiting on it can be woken).
    pub(crate) fn check_can_wait(&self) -> io::Result<()> {
        self.core.check_can_wait()
    }

    /// Tries `op`; on `WouldBlock` forgets the direction's readiness and parks until it returns.
    pub(crate) fn poll_op<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Dir,
        op: &mut impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.core.clear_ready(self.key, dir);
                    match self.core.poll_ready(self.key, dir, cx.waker()) {
                        Poll::Pending => return Poll::Pending,
                        // The loop is closed, or not the one running here: no wake would come.
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        // An event arrived in between (impossible on one thread, kept for safety).
                        Poll::Ready(Ok(())) => {}
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                res => return Poll::Ready(res),
            }
        }
    }
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        // `reg` (a field) is dropped after this: it deletes the descriptor from the poller and
        // then closes it. The entry goes now, with the wakers of anyone still waiting.
        self.core.io_remove(self.key);
    }
}

impl<T: AsFd + fmt::Debug> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async").field("io", self.get_ref()).finish()
    }
}

impl<T: AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

/// Reads through `&T`'s `Read` (async-io's impl): a pipe, a terminal or a socket needs no
/// [`read_with`](Async::read_with) closure, and the extension traits of `futures-lite` or
/// `futures-util` (`read`, `read_to_end`, `copy`...) work on it.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use std::os::unix::net::UnixStream;
///
/// aioloop::run(async {
///     let (a, b) = UnixStream::pair()?;
///     let (mut a, mut b) = (aioloop::Async::new(a)?, aioloop::Async::new(b)?);
///     a.write_all(b"ping").await?;
///     drop(a); // end of stream for b
///     let mut got = String::new();
///     b.read_to_string(&mut got).await?;
///     assert_eq!(got, "ping");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl<T: AsFd> futures_io::AsyncRead for Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Read, &mut |mut io: &T| io.read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Read, &mut |mut io: &T| io.read_vectored(bufs))
    }
}

/// Reads through a shared reference, so one task can read while another writes.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// aioloop::run(async {
///     let (a, b) = std::os::unix::net::UnixStream::pair()?;
///     let (a, b) = (aioloop::Async::new(a)?, aioloop::Async::new(b)?);
///     (&a).write_all(b"x").await?;
///     let mut buf = [0; 1];
///     (&b).read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"x");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl<T: AsFd> futures_io::AsyncRead for &Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Read, &mut |mut io: &T| io.read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Read, &mut |mut io: &T| io.read_vectored(bufs))
    }
}

/// Writes through `&T`'s `Write` (async-io's impl). `poll_close` only flushes: the descriptor
/// is closed when the `Async` is dropped (the `net` streams shut their writing side down).
///
/// # Examples
///
/// See the `AsyncRead` impl for `Async<T>` above.
impl<T: AsFd> futures_io::AsyncWrite for Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Write, &mut |mut io: &T| io.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Write, &mut |mut io: &T| io.write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_op(cx, Dir::Write, &mut |mut io: &T| io.flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// Writes through a shared reference, so one task can write while another reads.
///
/// # Examples
///
/// See the `AsyncRead` impl for `&Async<T>` above.
impl<T: AsFd> futures_io::AsyncWrite for &Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Write, &mut |mut io: &T| io.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_op(cx, Dir::Write, &mut |mut io: &T| io.write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_op(cx, Dir::Write, &mut |mut io: &T| io.flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
