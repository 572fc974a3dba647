//! Unix signals on the loop: asyncio's [`EventLoop::add_signal_handler`](crate::EventLoop::add_signal_handler), tokio's [`Signal`] and
//! [`ctrl_c`], and [`Builder::dump_on_signal`](crate::Builder::dump_on_signal).
//!
//! A signal handler may run at any instruction of any thread, so aioloop's does almost nothing:
//! it counts the delivery and rings a doorbell (see `hub.rs`). A process-wide *signal thread*
//! wakes on the doorbell and hands each delivery to every loop that listens to that signal,
//! through the loop's inbox (the path of [`LoopHandle::call_soon_threadsafe`](crate::LoopHandle)).
//! The loop then runs the callbacks, on its own thread, as ordinary callbacks: a callback may
//! spawn, cancel, stop the loop or print, which no code inside a real signal handler may do.
//!
//! # Invariants
//! - Each loop that listens to a signal gets each delivery, whatever thread it runs on and
//!   whichever thread the kernel interrupted; deliveries that arrive close together may be
//!   coalesced into one (the kernel coalesces a signal that is already pending, too).
//! - Listening never replaces another library's handler: aioloop registers through
//!   `signal-hook-registry`, which chains to the handler installed before it. Once installed,
//!   aioloop's handler stays for the life of the process; when no listener is left, a signal
//!   whose disposition was the default one performs its default action again (a second Ctrl-C
//!   after the `ctrl_c()` listener is gone still terminates the program).
//! - A callback that panics is reported to the loop's exception handler ("Exception in
//!   callback"); the loop and the handler's registration go on.
//!
//! Production note: asyncio allows signal handlers on the main thread only (its wakeup fd is
//! per process); tokio delivers through a driver in each runtime. Here any loop on any thread may
//! listen, at the cost of one idle thread per process, started with the first listener.
//!
//! # Examples
//!
//! A server's shutdown switch (examples/graceful_shutdown.rs has the whole server):
//!
//! ```
//! use aioloop::signal::{raise_signal, SIGINT, SIGTERM};
//! aioloop::run(async {
//!     let stop = aioloop::sync::Event::new();
//!     for sig in [SIGINT, SIGTERM] {
//!         let stop = stop.clone();
//!         aioloop::add_signal_handler(sig, move || stop.set()).unwrap();
//!     }
//!     raise_signal(SIGTERM).unwrap(); // as `kill <pid>` would
//!     stop.wait().await; // ... stop accepting, drain, return
//! });
//! ```

mod hub;
mod mask;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::runtime::{Core, OsState};

pub(crate) use hub::{adopt_orphan, orphans, Subscriber};
pub(crate) use mask::{reset_mask_in_child, thread_blocks_signals};

/// Interrupt from the keyboard (Ctrl-C).
pub const SIGINT: i32 = libc::SIGINT;
/// Termination request (the default signal of `kill` and of service managers).
pub const SIGTERM: i32 = libc::SIGTERM;
/// Hangup: the terminal went away; daemons use it to reload their configuration.
pub const SIGHUP: i32 = libc::SIGHUP;
/// Quit from the keyboard (Ctrl-\); [`Builder::dump_on_signal`](crate::Builder::dump_on_signal)'s conventional signal.
pub const SIGQUIT: i32 = libc::SIGQUIT;
/// User-defined signal 1.
pub const SIGUSR1: i32 = libc::SIGUSR1;
/// User-defined signal 2.
pub const SIGUSR2: i32 = libc::SIGUSR2;
/// A child process stopped or exited.
pub const SIGCHLD: i32 = libc::SIGCHLD;
/// The terminal window changed size.
pub const SIGWINCH: i32 = libc::SIGWINCH;
/// A timer set with `alarm(2)` expired.
pub const SIGALRM: i32 = libc::SIGALRM;

/// Sends `signum` to this process (`kill(getpid(), signum)`; Python's `os.kill(os.getpid(), sig)`):
/// any thread that does not block it may take it.
///
/// # Errors
///
/// `InvalidInput` for 0, negative numbers and numbers past the platform's last signal; the OS's
/// error if `kill(2)` fails.
///
/// # Examples
///
/// ```
/// use aioloop::signal::{raise_signal, Signal, SIGUSR1};
/// aioloop::run(async {
///     let mut usr1 = Signal::new(SIGUSR1).unwrap();
///     raise_signal(SIGUSR1).unwrap();
///     usr1.recv().await;
/// });
/// assert!(raise_signal(0).is_err());
/// ```
pub fn raise_signal(signum: i32) -> io::Result<()> {
    let last = hub::last_signal();
    if signum <= 0 || signum > last {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid signal number {signum} (valid numbers are 1 to {last})"),
        ));
    }
    // SAFETY: `kill(2)` with this process's pid and a checked signal number; no memory involved.
    if unsafe { libc::kill(libc::getpid(), signum) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A callback of `add_signal_handler`, shared so that it can run while the table is changed.
type Callback = Rc<RefCell<Box<dyn FnMut()>>>;

/// What a [`Signal`] shares with its loop: a delivery arrived, and who waits for it.
#[derive(Default)]
struct StreamState {
    pending: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// A loop's signal listeners, and the children its SIGCHLD backend watches (the loop's
/// [`OsState`], reached with [`of`]).
#[derive(Default)]
pub(crate) struct LoopSignals {
    /// The loop's entry in the process-wide table, created with its first listener.
    sub: RefCell<Option<Arc<Subscriber>>>,
    /// `add_signal_handler` callbacks (one per signal, as in asyncio).
    handlers: RefCell<HashMap<i32, Callback>>,
    /// Live [`Signal`]s, by signal.
    streams: RefCell<HashMap<i32, Vec<Rc<StreamState>>>>,
    /// The `dump_on_signal` signal (0: none).
    dump: Cell<i32>,
    /// The children of the SIGCHLD backend (src/process), checked after each SIGCHLD.
    children: RefCell<Option<Rc<dyn Children>>>,
}

/// What the signal module asks of the children a loop's SIGCHLD backend watches: implemented
/// by src/process (its `Watched`), so that this module needs nothing from that one.
pub(crate) trait Children {
    /// The SIGCHLD pass: check every watched child, wake the tasks of those that exited.
    fn reap(&self, core: &Core);
}

impl LoopSignals {
    /// Makes `children` the ones checked after each SIGCHLD (the process module, at its first
    /// child on the SIGCHLD backend).
    pub(crate) fn watch_children(&self, children: Rc<dyn Children>) {
        *self.children.borrow_mut() = Some(children);
    }

    /// The SIGCHLD pass over the watched children, if any.
    fn reap_children(&self, core: &Core) {
        let children = self.children.borrow().clone();
        if let Some(children) = children {
            children.reap(core);
        }
    }

    /// Returns the loop's entry in the process-wide table, creating it.
    pub(crate) fn subscriber(&self, core: &Core) -> io::Result<Arc<Subscriber>> {
        if core.is_closed() {
            return Err(io::Error::other("Event loop is closed"));
        }
        if let Some(sub) = &*self.sub.borrow() {
            return Ok(sub.clone());
        }
        let sub = Subscriber::subscribe(core.remote.clone())?;
        *self.sub.borrow_mut() = Some(sub.clone());
        Ok(sub)
    }

    /// Adds a listener of `signum` on this loop; returns the checked signal number.
    pub(crate) fn listen(&self, core: &Core, signum: i32) -> io::Result<usize> {
        let sig = hub::validate(signum)?;
        self.subscriber(core)?.listen(sig)?;
        Ok(sig)
    }

    /// Removes a listener of `sig`.
    pub(crate) fn unlisten(&self, sig: usize) {
        if let Some(sub) = &*self.sub.borrow() {
            sub.unlisten(sig);
        }
    }

    fn add_handler(&self, core: &Core, signum: i32, f: Box<dyn FnMut()>) -> io::Result<()> {
        let replaced = self.handlers.borrow().contains_key(&signum);
        if !replaced {
            self.listen(core, signum)?;
        } else {
            hub::validate(signum)?;
        }
        let old = self.handlers.borrow_mut().insert(signum, Rc::new(RefCell::new(f)));
        core.contain(move || drop(old));
        Ok(())
    }

    fn remove_handler(&self, core: &Core, signum: i32) -> bool {
        let old = self.handlers.borrow_mut().remove(&signum);
        let removed = old.is_some();
        if removed {
            self.unlisten(signum as usize);
        }
        core.contain(move || drop(old));
        removed
    }

    /// Runs on the loop's thread (a job sent by the signal thread): `sigs` were delivered;
    /// `recheck`: check the SIGCHLD backend's children even without a SIGCHLD.
    pub(crate) fn deliver(&self, core: &Rc<Core>, sigs: &[i32], recheck: bool) {
        if recheck && !sigs.contains(&SIGCHLD) {
            self.reap_children(core);
        }
        for &sig in sigs {
            if sig == SIGCHLD {
                self.reap_children(core);
            }
            if sig == self.dump.get() {
                eprintln!(
                    "aioloop: signal {sig}: task dump of the loop on thread {}\n{}",
                    std::thread::current().name().unwrap_or("<unnamed>"),
                    core.dump()
                );
            }
            let callback = self.handlers.borrow().get(&sig).cloned();
            if let Some(cb) = callback {
                // A handler that replaced or removed itself still finishes this call.
                if let Ok(mut f) = cb.try_borrow_mut() {
                    core.contain(|| (*f)());
                }
            }
            let streams = self.streams.borrow().get(&sig).cloned().unwrap_or_default();
            for s in streams {
                s.pending.set(true);
                let waker = s.waker.borrow_mut().take();
                if let Some(w) = waker {
                    core.contain(move || w.wake());
                }
            }
        }
    }

    /// `Builder::dump_on_signal`: on `signum`, print the task dump; publish each task poll.
    pub(crate) fn enable_dump(&self, core: &Core, signum: i32) -> io::Result<()> {
        let sig = hub::validate(signum)?;
        let sub = self.subscriber(core)?;
        sub.set_dump_signal(sig)?;
        self.dump.set(signum);
        core.set_poll_probe(sub);
        Ok(())
    }
}

impl OsState for LoopSignals {
    /// The loop closes: drops the callbacks and streams' wakers, and gives up every listener.
    fn close(&self, core: &Core) {
        let handlers = std::mem::take(&mut *self.handlers.borrow_mut());
        core.contain(move || drop(handlers));
        let streams = std::mem::take(&mut *self.streams.borrow_mut());
        core.contain(move || drop(streams));
        let children = self.children.borrow_mut().take();
        drop(children);
        if let Some(sub) = self.sub.borrow_mut().take() {
            sub.unsubscribe();
        }
    }

    fn into_any(self: Rc<Self>) -> Rc<dyn std::any::Any> {
        self
    }
}

/// The signal state of the loop `core`.
pub(crate) fn of(core: &Core) -> Rc<LoopSignals> {
    core.os_state::<LoopSignals>()
}

/// `EventLoop::add_signal_handler`: runs `callback` on the loop `core` at each `signum`.
pub(crate) fn add_handler(core: &Core, signum: i32, callback: Box<dyn FnMut()>) -> io::Result<()> {
    of(core).add_handler(core, signum, callback)
}

/// `EventLoop::remove_signal_handler`.
pub(crate) fn remove_handler(core: &Core, signum: i32) -> bool {
    of(core).remove_handler(core, signum)
}

/// `Builder::dump_on_signal`: on `signum`, the loop prints its task dump.
pub(crate) fn enable_dump(core: &Core, signum: i32) -> io::Result<()> {
    of(core).enable_dump(core, signum)
}

/// [`EventLoop::add_signal_handler`](crate::EventLoop::add_signal_handler) on the running loop.
///
/// # Errors
///
/// As [`EventLoop::add_signal_handler`](crate::EventLoop::add_signal_handler).
///
/// # Panics
///
/// "no running event loop" outside a running loop.
///
/// # Examples
///
/// ```
/// use aioloop::signal::{raise_signal, SIGUSR2};
/// aioloop::run(async {
///     let got = aioloop::sync::Event::new();
///     let g = got.clone();
///     aioloop::add_signal_handler(SIGUSR2, move || g.set()).unwrap();
///     raise_signal(SIGUSR2).unwrap();
///     got.wait().await;
///     assert!(aioloop::remove_signal_handler(SIGUSR2));
/// });
/// ```
#[track_caller]
pub fn add_signal_handler(signum: i32, callback: impl FnMut() + 'static) -> io::Result<()> {
    let core = crate::runtime::running::current();
    of(&core).add_handler(&core, signum, Box::new(callback))
}

/// [`EventLoop::remove_signal_handler`](crate::EventLoop::remove_signal_handler) on the running loop.
///
/// # Panics
///
/// "no running event loop" outside a running loop.
///
/// # Examples
///
/// See [`add_signal_handler`].
#[track_caller]
pub fn remove_signal_handler(signum: i32) -> bool {
    let core = crate::runtime::running::current();
    of(&core).remove_handler(&core, signum)
}

/// The deliveries of one signal to the running loop, as a stream (tokio's `signal::unix::Signal`).
///
/// It listens from [`new`](Self::new) until it is dropped: a delivery that arrives while nobody
/// awaits [`recv`](Self::recv) is kept (as one, however many arrived) for the next `recv`.
/// `Unpin`; a [`Stream`](futures_core::Stream) of `()` that never ends.
///
/// # Examples
///
/// ```
/// use aioloop::signal::{raise_signal, Signal, SIGUSR1};
/// aioloop::run(async {
///     let mut usr1 = Signal::new(SIGUSR1).unwrap();
///     for _ in 0..3 {
///         raise_signal(SIGUSR1).unwrap();
///         usr1.recv().await; // one delivery each time
///     }
/// });
/// ```
pub struct Signal {
    signum: i32,
    core: Rc<Core>,
    state: Rc<StreamState>,
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal").field("signum", &self.signum).field("pending", &self.state.pending.get()).finish()
    }
}

impl Signal {
    /// Starts listening to `signum` on the running loop.
    ///
    /// # Errors
    ///
    /// If no loop is running on this thread, and as [`EventLoop::add_signal_handler`](crate::EventLoop::add_signal_handler).
    ///
    /// # Examples
    ///
    /// ```
    /// use aioloop::signal::{Signal, SIGHUP};
    /// assert!(Signal::new(SIGHUP).is_err()); // no running loop
    /// aioloop::run(async {
    ///     assert!(Signal::new(SIGHUP).is_ok());
    ///     assert_eq!(Signal::new(0).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    /// });
    /// ```
    pub fn new(signum: i32) -> io::Result<Signal> {
        let core = crate::runtime::running::with_running(Rc::clone).ok_or_else(|| {
            io::Error::other("no running event loop: create a Signal inside the loop (in a task or the future given to run_until_complete)")
        })?;
        of(&core).listen(&core, signum)?;
        let state = Rc::new(StreamState::default());
        of(&core).streams.borrow_mut().entry(signum).or_default().push(state.clone());
        Ok(Signal { signum, core, state })
    }

    /// Returns the signal's number.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let s = aioloop::signal::Signal::new(aioloop::signal::SIGWINCH).unwrap();
    ///     assert_eq!(s.signum(), aioloop::signal::SIGWINCH);
    /// });
    /// ```
    pub fn signum(&self) -> i32 {
        self.signum
    }

    /// Waits for the next delivery (or returns at once if one arrived since the last `recv`).
    ///
    /// # Cancellation
    ///
    /// Dropping the future loses nothing: the delivery stays for the next `recv`.
    ///
    /// # Examples
    ///
    /// See [`Signal`].
    pub async fn recv(&mut self) {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery (see [`recv`](Self::recv)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::Poll;
    /// aioloop::run(async {
    ///     let mut s = aioloop::signal::Signal::new(aioloop::signal::SIGUSR2).unwrap();
    ///     let polled = std::future::poll_fn(|cx| Poll::Ready(s.poll_recv(cx))).await;
    ///     assert!(polled.is_pending()); // nothing delivered yet
    /// });
    /// ```
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.pending.replace(false) {
            return Poll::Ready(());
        }
        let mut w = self.state.waker.borrow_mut();
        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *w = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl futures_core::Stream for Signal {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.get_mut().poll_recv(cx).map(Some)
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        let signals = of(&self.core);
        let mut streams = signals.streams.borrow_mut();
        if let Some(list) = streams.get_mut(&self.signum) {
            let before = list.len();
            list.retain(|s| !Rc::ptr_eq(s, &self.state));
            if list.len() < before {
                of(&self.core).unlisten(self.signum as usize);
            }
            if list.is_empty() {
                streams.remove(&self.signum);
            }
        }
    }
}

/// Completes at the next SIGINT (Ctrl-C) (tokio's `signal::ctrl_c`).
///
/// It listens from the call if a loop is running then, else from its first poll; once it
/// completes and is dropped, and no other listener of SIGINT is left, Ctrl-C terminates the
/// program again.
///
/// # Errors
///
/// The future's output is an error if it is polled outside a running loop or the listener
/// cannot be set up (see [`EventLoop::add_signal_handler`](crate::EventLoop::add_signal_handler)).
///
/// # Examples
///
/// ```no_run
/// aioloop::run(async {
///     println!("press Ctrl-C to stop");
///     aioloop::signal::ctrl_c().await.unwrap();
///     println!("stopping");
/// });
/// ```
pub fn ctrl_c() -> CtrlC {
    let signal = crate::runtime::running::is_running().then(|| Signal::new(SIGINT).map_err(Some));
    CtrlC { signal }
}

/// The future of [`ctrl_c`].
///
/// # Examples
///
/// See [`ctrl_c`].
#[must_use = "futures do nothing unless awaited (the listener is set up already, though)"]
pub struct CtrlC {
    /// The listener, or the error creating it (`None` once reported); `None` before the first
    /// poll if no loop ran when `ctrl_c` was called.
    signal: Option<Result<Signal, Option<io::Error>>>,
}

impl fmt::Debug for CtrlC {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CtrlC").field("listening", &matches!(self.signal, Some(Ok(_)))).finish()
    }
}

impl Future for CtrlC {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let signal = this.signal.get_or_insert_with(|| Signal::new(SIGINT).map_err(Some));
        match signal {
            Ok(s) => s.poll_recv(cx).map(Ok),
            Err(e) => Poll::Ready(Err(e.take().unwrap_or_else(|| io::Error::other("ctrl_c() polled after it failed")))),
        }
    }
}

/// Test hook for checklist item 49: fills the signal doorbell until its writes fail with
/// `EAGAIN`, with the signal thread held off, runs `f` (which raises signals: their doorbell
/// bytes are lost), then lets the thread go; returns how many bytes filled the doorbell. Not
/// part of the API.
#[doc(hidden)]
pub fn __with_doorbell_full(f: impl FnOnce()) -> io::Result<usize> {
    hub::with_doorbell_full(f)
}

/// Test hook: waits until the signal thread is not in the middle of a dispatch, which may hold
/// a dropped loop's poller descriptors for its duration. Not part of the API.
#[doc(hidden)]
pub fn __settle() {
    hub::settle()
}

/// Test hook: how many children dropped before they exited still wait to be reaped by the
/// signal thread. Not part of the API.
#[doc(hidden)]
pub fn __orphans() -> usize {
    orphans()
}
