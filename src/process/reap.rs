//! How a child's exit reaches the loop, and who collects its status (reaps it) so that no zombie
//! is left: a pidfd where the kernel has one, SIGCHLD otherwise; orphans go to the signal thread.
//!
//! # The two backends
//!
//! - **pidfd** (Linux 5.3 and later): right after the spawn, `pidfd_open(pid)` gives a descriptor
//!   that becomes readable when the child exits. It is registered with the loop's poller like a
//!   socket; the waiting task wakes on it and collects the status with `waitpid(pid, WNOHANG)`.
//!   `kill` signals through the pidfd (`pidfd_send_signal`), which can never reach another
//!   process that reused the number.
//! - **SIGCHLD** (macOS, the BSDs; Linux when pidfd is missing or refused): the loop keeps a list
//!   of its running children and listens to SIGCHLD; on each delivery it checks *every* child of
//!   the list with `waitpid(pid, WNOHANG)`, since several exits can raise one SIGCHLD. It never
//!   calls `waitpid(-1)`, which would steal the statuses of children that other code (the
//!   standard library, another loop, another library) waits for.
//!
//! `AIOLOOP_PROCESS_BACKEND=sigchld` forces the second one (CI runs the process tests with both).
//! If `pidfd_open` fails with `ENOSYS` (an old kernel), the whole process uses SIGCHLD from then
//! on; any other failure (`EPERM` from a container's seccomp profile, `EMFILE`) falls back for
//! that child only.
//!
//! # Invariants
//! - Every child is reaped exactly once, by `std::process::Child::try_wait` (which caches the
//!   status): by the task that awaits it, by the SIGCHLD pass, or, once nothing can wait for it
//!   any more (its `Child` and `Wait` futures were dropped), by the signal thread's orphan list.
//! - After a child was reaped, `kill` sends nothing (the number may belong to another process).
//! - A loop's virtual time never jumps past a child's exit: a pidfd is an I/O source (virtual
//!   time does not jump while one is registered), and a child of the SIGCHLD backend counts
//!   as a job in flight until its exit was seen.
//! - Besides each SIGCHLD, the signal thread re-checks the SIGCHLD backend's children and the
//!   orphans every second, in case another library replaced the SIGCHLD handler without chaining
//!   or set SIGCHLD to `SIG_IGN` (then the kernel reaps the child itself and `wait` reports that
//!   its status was collected elsewhere).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::OwnedFd;
use std::process::ExitStatus;
use std::rc::{Rc, Weak};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use crate::runtime::cross_thread::Remote;
use crate::runtime::reactor::Dir;
use crate::runtime::Core;
use crate::Async;

/// Which way a child's exit is noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// A pidfd registered with the poller.
    Pidfd,
    /// The loop's SIGCHLD pass.
    Sigchld,
}

/// `pidfd_open` said `ENOSYS`: this kernel has no pidfds, for the whole process.
static PIDFD_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Test hook: `pidfd_open` fails with this errno on this thread.
    static PIDFD_FAULT: Cell<Option<i32>> = const { Cell::new(None) };
    /// Test hook: the setup after the OS spawn fails on this thread.
    static SETUP_FAULT: Cell<bool> = const { Cell::new(false) };
    /// Test hook: signals sent to children by this thread.
    static SIGNALS_SENT: Cell<u64> = const { Cell::new(0) };
}

/// Returns the backend new children use.
pub(crate) fn backend() -> Backend {
    static FORCED: OnceLock<bool> = OnceLock::new();
    let forced = *FORCED.get_or_init(|| std::env::var("AIOLOOP_PROCESS_BACKEND").is_ok_and(|v| v == "sigchld"));
    if cfg!(any(target_os = "linux", target_os = "android")) && !forced && !PIDFD_UNSUPPORTED.load(SeqCst) {
        Backend::Pidfd
    } else {
        Backend::Sigchld
    }
}

/// Test hook: the setup step that follows a successful OS spawn fails if it is set.
pub(crate) fn setup_fault() -> io::Result<()> {
    if SETUP_FAULT.get() {
        return Err(io::Error::other("injected failure of the setup after the spawn (test hook)"));
    }
    Ok(())
}

pub(crate) fn set_pidfd_fault(errno: Option<i32>) {
    PIDFD_FAULT.set(errno);
}

pub(crate) fn set_setup_fault(on: bool) {
    SETUP_FAULT.set(on);
}

pub(crate) fn signals_sent() -> u64 {
    SIGNALS_SENT.get()
}

/// Opens a pidfd for `pid` and registers it with the running loop; `Err` means: use SIGCHLD.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn open_pidfd(pid: u32) -> io::Result<Async<OwnedFd>> {
    let opened = match PIDFD_FAULT.get() {
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
        None => rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| io::Error::other("pid 0")).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).map_err(io::Error::from)
        }),
    };
    let fd = opened.inspect_err(|e| {
        // Only "the kernel has no such call" is true of every later child too.
        if e.raw_os_error() == Some(libc::ENOSYS) {
            PIDFD_UNSUPPORTED.store(true, SeqCst);
        }
    })?;
    Async::new(fd)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn open_pidfd(_pid: u32) -> io::Result<Async<OwnedFd>> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// How the exit of one child is noticed.
enum Exit {
    /// The pidfd, registered with the loop (`None` once the child was reaped).
    Pidfd(RefCell<Option<Async<OwnedFd>>>),
    /// The loop's SIGCHLD pass wakes this waker.
    Sigchld(RefCell<Option<Waker>>),
}

/// A child process as the loop sees it: shared by its [`Child`](crate::process::Child) and the
/// [`Wait`](crate::process::Wait) futures; the last one dropped hands a running child to the
/// orphan reaper (killing it first with `kill_on_drop`).
pub(crate) struct Inner {
    /// The loop's thread-safe half, while the child counts as one of its jobs in flight (SIGCHLD
    /// backend, until the exit is seen): held no longer, since it owns the loop's poller.
    counted: RefCell<Option<Arc<Remote>>>,
    pid: u32,
    /// The standard library's handle; `None` only while `drop` hands it over.
    std: RefCell<Option<std::process::Child>>,
    exit: Exit,
    /// The status was collected (or someone else collected it): nothing more to wait for or signal.
    done: Cell<bool>,
    kill_on_drop: bool,
}

impl Inner {
    /// Wraps a spawned child: opens its pidfd or puts it on the loop's SIGCHLD list.
    pub(crate) fn new(core: &Rc<Core>, child: std::process::Child, kill_on_drop: bool) -> Rc<Inner> {
        let pid = child.id();
        let pidfd = match backend() {
            Backend::Pidfd => open_pidfd(pid).ok(),
            Backend::Sigchld => None,
        };
        let exit = match pidfd {
            Some(fd) => Exit::Pidfd(RefCell::new(Some(fd))),
            None => Exit::Sigchld(RefCell::new(None)),
        };
        let inner = Rc::new(Inner {
            counted: RefCell::new(None),
            pid,
            std: RefCell::new(Some(child)),
            exit,
            done: Cell::new(false),
            kill_on_drop,
        });
        if matches!(inner.exit, Exit::Sigchld(_)) {
            core.remote.job_started();
            *inner.counted.borrow_mut() = Some(core.remote.clone());
            Watched::of(core).add(core, &inner);
            // An exit before the loop listened to SIGCHLD raised no delivery for it: look once.
            let _ = inner.try_wait();
        }
        inner
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn backend(&self) -> Backend {
        match self.exit {
            Exit::Pidfd(_) => Backend::Pidfd,
            Exit::Sigchld(_) => Backend::Sigchld,
        }
    }

    /// `waitpid(pid, WNOHANG)` through the standard library (which caches the status).
    pub(crate) fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        let polled = self.std.borrow_mut().as_mut().expect("present until dropped").try_wait();
        match polled {
            Ok(None) => Ok(None),
            Ok(Some(status)) => {
                self.finish();
                Ok(Some(status))
            }
            Err(e) => {
                self.finish();
                Err(self.explain(e))
            }
        }
    }

    /// The exit was seen: stop counting as a job in flight; give the pidfd back when possible.
    fn finish(&self) {
        self.done.set(true);
        self.uncount();
        self.release_pidfd();
    }

    /// Stops counting as one of the loop's jobs in flight.
    fn uncount(&self) {
        if let Some(remote) = self.counted.borrow_mut().take() {
            remote.job_finished();
        }
    }

    fn release_pidfd(&self) {
        if let Exit::Pidfd(fd) = &self.exit {
            // Inside `poll_exit` the pidfd is borrowed: that poll releases it after.
            if let Ok(mut fd) = fd.try_borrow_mut() {
                drop(fd.take());
            }
        }
    }

    /// Says what happened when the status is gone (`ECHILD`).
    fn explain(&self, e: io::Error) -> io::Error {
        if e.raw_os_error() == Some(libc::ECHILD) {
            io::Error::other(format!(
                "the exit status of child {} was collected by someone else (a waitpid elsewhere in \
                 this process, or SIGCHLD set to SIG_IGN): {e}",
                self.pid
            ))
        } else {
            e
        }
    }

    /// Polls for the exit (the `Wait` future).
    pub(crate) fn poll_exit(&self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        match &self.exit {
            Exit::Pidfd(fd) => {
                let polled = match fd.borrow().as_ref() {
                    Some(pidfd) => pidfd.poll_op(cx, Dir::Read, &mut |_| match self.try_wait() {
                        Ok(Some(status)) => Ok(status),
                        Ok(None) => Err(io::ErrorKind::WouldBlock.into()),
                        Err(e) => Err(e),
                    }),
                    // Reaped already: the cached status (or the same error again).
                    None => Poll::Ready(self.try_wait().and_then(|s| s.ok_or_else(|| io::Error::other("no status")))),
                };
                if polled.is_ready() {
                    self.release_pidfd();
                }
                polled
            }
            Exit::Sigchld(waker) => match self.try_wait() {
                Ok(Some(status)) => Poll::Ready(Ok(status)),
                Err(e) => Poll::Ready(Err(e)),
                Ok(None) => {
                    let mut w = waker.borrow_mut();
                    if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *w = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
            },
        }
    }

    /// Sends SIGKILL, unless the child was reaped already (`ESRCH`, asyncio's
    /// `ProcessLookupError`: the number may belong to another process now).
    pub(crate) fn kill(&self) -> io::Result<()> {
        if self.done.get() {
            return Err(already_exited());
        }
        SIGNALS_SENT.set(SIGNALS_SENT.get() + 1);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Exit::Pidfd(fd) = &self.exit {
            if let Some(pidfd) = fd.borrow().as_ref() {
                return rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL)
                    .map_err(io::Error::from);
            }
        }
        self.std.borrow_mut().as_mut().expect("present until dropped").kill()
    }
}

/// The error of `kill` on a child already reaped.
fn already_exited() -> io::Error {
    io::Error::from_raw_os_error(libc::ESRCH)
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.uncount();
        if self.done.get() {
            return;
        }
        let Some(mut child) = self.std.get_mut().take() else { return };
        if !matches!(child.try_wait(), Ok(None)) {
            return; // it had exited: reaped just now (or gone)
        }
        if self.kill_on_drop {
            SIGNALS_SENT.set(SIGNALS_SENT.get() + 1);
            let sent = match &self.exit {
                #[cfg(any(target_os = "linux", target_os = "android"))]
                Exit::Pidfd(fd) => match fd.borrow().as_ref() {
                    Some(pidfd) => rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL)
                        .map_err(io::Error::from),
                    None => child.kill(),
                },
                _ => child.kill(),
            };
            drop(sent); // it may have exited meanwhile; it is reaped below either way
        }
        if let Err(child) = crate::signal::adopt_orphan(child) {
            // No signal thread (it could not start): a thread of its own waits for it.
            let waiter = std::thread::Builder::new().name("aioloop-reaper".into()).spawn(move || {
                let mut child = child;
                let _ = child.wait();
            });
            if let Err(e) = waiter {
                eprintln!("aioloop: child {} cannot be reaped (no thread can wait for it): {e}", self.pid);
            }
        }
    }
}

/// The children a loop's SIGCHLD pass checks: the loop's OS state of the process module, which
/// the signal module reaches through its [`Children`](crate::signal::Children) trait.
#[derive(Default)]
pub(crate) struct Watched {
    children: RefCell<Vec<Weak<Inner>>>,
}

impl crate::runtime::OsState for Watched {
    /// The loop closes: forget the list (the `Child` handles still own their processes).
    fn close(&self, _core: &Core) {
        let list = std::mem::take(&mut *self.children.borrow_mut());
        drop(list);
    }

    fn into_any(self: Rc<Self>) -> Rc<dyn std::any::Any> {
        self
    }
}

impl crate::signal::Children for Watched {
    fn reap(&self, core: &Core) {
        Watched::reap(self, core);
    }
}

impl Watched {
    /// The loop `core`'s watched children, which the signal module checks after each SIGCHLD.
    pub(crate) fn of(core: &Core) -> Rc<Watched> {
        let watched = core.os_state::<Watched>();
        crate::signal::of(core).watch_children(watched.clone());
        watched
    }

    /// Adds a child; the first one makes the loop listen to SIGCHLD.
    fn add(&self, core: &Core, child: &Rc<Inner>) {
        let first = self.children.borrow().is_empty();
        self.children.borrow_mut().push(Rc::downgrade(child));
        if first {
            match crate::signal::of(core).listen(core, libc::SIGCHLD) {
                Ok(_) => {
                    if let Ok(sub) = crate::signal::of(core).subscriber(core) {
                        sub.children_changed(true);
                    }
                }
                // The loop is closing (or no thread can start): the orphan reaper takes the child
                // when its `Child` is dropped; a task awaiting it re-checks on each poll.
                Err(e) => eprintln!("aioloop: cannot listen to SIGCHLD for child {}: {e}", child.pid),
            }
        }
    }

    /// The SIGCHLD pass: checks every child of the list (one SIGCHLD may stand for many exits)
    /// and wakes the tasks waiting for those that exited.
    pub(crate) fn reap(&self, core: &Core) {
        let children: Vec<Rc<Inner>> = self.children.borrow().iter().filter_map(Weak::upgrade).collect();
        let mut wake = Vec::new();
        for child in &children {
            if !child.done.get() && matches!(child.try_wait(), Ok(None)) {
                continue;
            }
            if let Exit::Sigchld(w) = &child.exit {
                wake.extend(w.borrow_mut().take());
            }
        }
        let emptied = {
            let mut list = self.children.borrow_mut();
            let before = list.len();
            list.retain(|w| w.upgrade().is_some_and(|c| !c.done.get()));
            before > 0 && list.is_empty()
        };
        drop(children);
        if emptied {
            self.stop_listening(core);
        }
        for w in wake {
            core.contain(move || w.wake());
        }
    }

    fn stop_listening(&self, core: &Core) {
        crate::signal::of(core).unlisten(libc::SIGCHLD as usize);
        if let Ok(sub) = crate::signal::of(core).subscriber(core) {
            sub.children_changed(false);
        }
    }
}
