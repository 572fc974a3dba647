//! The public face of the loop: [`EventLoop`] and its [`Builder`]. Each method hands its work
//! to the engine (`runtime::Core`, in src/runtime/): this file holds no loop state of its own.
//!
//! # Invariants
//! - An `EventLoop` owns its `Core` for the loop's whole life; dropping it closes the loop
//!   (every task's future and every callback dropped, the poller unregistered).
//! - Running (`run_until_complete`, `run_forever`) makes the loop this thread's running loop
//!   for exactly that long.

use std::cell::Cell;
use std::future::{Future, IntoFuture};
use std::io;
use std::panic::resume_unwind;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::callback_handle::{Handle, TimerHandle};
use crate::loop_handle::LoopHandle;
use crate::runtime::callbacks::Action;
use crate::runtime::stats::Stats;
use crate::runtime::task::Status;
use crate::runtime::{Core, DebugMode, MainTask};
use crate::task::Task;

/// A single-threaded, asyncio-style event loop: one OS thread runs many tasks.
///
/// It holds the ready queue, the waiting set of parked tasks, the timer heap and the poller;
/// each iteration is asyncio's `_run_once` (see the [crate documentation](crate)).
///
/// Dropping the loop closes it, like [`close`](Self::close).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use aioloop::EventLoop;
///
/// let mut lp = EventLoop::new()?;
/// let answer = lp.run_until_complete(async {
///     let t = aioloop::spawn(async {
///         aioloop::sleep(Duration::from_millis(10)).await;
///         42
///     });
///     t.await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct EventLoop {
    /// (crate-visible for the `impl EventLoop` blocks of other modules: src/signal)
    pub(crate) core: Rc<Core>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("tasks", &self.core.tasks.len())
            .field("ready", &self.core.stats().ready)
            .field("timers", &self.core.stats().timers)
            .field("virtual_time", &self.core.clock.is_virtual())
            .finish()
    }
}

/// Configures an [`EventLoop`] before creating it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build()?;
/// let t0 = lp.time();
/// lp.run_until_complete(aioloop::sleep(Duration::from_secs(3600)));
/// assert_eq!(lp.time() - t0, Duration::from_secs(3600)); // instantly, on virtual time
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    virtual_time: bool,
    trace: bool,
    debug: Option<bool>,
    slow_callback_duration: Option<Duration>,
    dump_on_signal: Option<i32>,
}

impl Builder {
    /// Runs the loop on virtual time: the clock stands still while tasks run and jumps to the
    /// next timer's deadline whenever the loop would otherwise sleep with nothing ready and no
    /// I/O source registered. Programs behave as in real time, only faster (asyncio's `TestLoop`,
    /// tokio's paused clock). Default: false.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// assert!(format!("{lp:?}").contains("virtual_time: true"));
    /// ```
    pub fn virtual_time(mut self, on: bool) -> Builder {
        self.virtual_time = on;
        self
    }

    /// Creates the loop.
    ///
    /// # Errors
    ///
    /// Fails if the OS poller cannot be created (for example `EMFILE`: too many open files), or if
    /// 4,096 loops are already alive in this process.
    ///
    /// # Examples
    ///
    /// ```
    /// let _lp = aioloop::EventLoop::builder().build()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn build(self) -> io::Result<EventLoop> {
        let debug_on = self.debug.unwrap_or_else(|| std::env::var_os("AIOLOOP_DEBUG").is_some_and(|v| v == "1"));
        let debug = debug_on.then(|| DebugMode::new(self.slow_callback_duration.unwrap_or(Duration::from_millis(100))));
        let lp = EventLoop { core: Core::new(self.virtual_time, debug, self.trace)? };
        if let Some(signum) = self.dump_on_signal {
            crate::signal::enable_dump(&lp.core, signum)?;
        }
        Ok(lp)
    }

    /// Turns debug mode on or off (asyncio's debug mode; default: on if the environment variable
    /// `AIOLOOP_DEBUG` is `1`). In debug mode a task step or callback that holds the loop at
    /// least [`slow_callback_duration`](Self::slow_callback_duration) (100 ms by default, real
    /// time) is reported to the exception handler as
    /// `Executing <Task name=Task-3 id=3 spawned at src/main.rs:12:5> took 0.250 seconds`, and
    /// tasks remember where they were spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    /// let mut lp = aioloop::EventLoop::builder().debug(true).slow_callback_duration(Duration::ZERO).build()?;
    /// let reports = Rc::new(RefCell::new(vec![]));
    /// let r = reports.clone();
    /// lp.set_exception_handler(move |ctx| r.borrow_mut().push(ctx.message.to_string()));
    /// lp.spawn(async {});
    /// lp.run_until_complete(aioloop::yield_now());
    /// // With a threshold of zero, every step is reported, with where its task was spawned.
    /// assert!(reports.borrow().iter().any(|m| m.starts_with("Executing <Task name=Task-") && m.contains(".rs:")));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn debug(mut self, on: bool) -> Builder {
        self.debug = Some(on);
        self
    }

    /// Records every task's life (spawned, each poll, what it then waits on, woken, how it
    /// finished) with loop timestamps, for [`EventLoop::trace`] to export as Chrome trace-event
    /// JSON or an SVG timeline. Default: off, and then it costs one branch per event.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use aioloop::TraceKind;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build()?;
    /// let t = lp.spawn(aioloop::sleep(Duration::from_secs(2)));
    /// lp.run_until_complete(async { t.await.unwrap() });
    /// let trace = lp.trace();
    /// let done = trace.events().iter().find(|e| e.kind == TraceKind::Done).unwrap();
    /// assert_eq!(done.at, Duration::from_secs(2)); // the sleeping task, at 2 s of loop time
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn trace(mut self, on: bool) -> Builder {
        self.trace = on;
        self
    }

    /// Prints the loop's task dump ([`EventLoop::tasks`]: each task, its state, where it was
    /// spawned in debug mode, and what it waits for) to stderr each time the process receives
    /// `signum`, and keeps running: [`SIGQUIT`](crate::signal::SIGQUIT) by convention (Ctrl-\\),
    /// as Go's runtime dumps its goroutines. The way to see where a stuck server is stuck:
    /// `kill -QUIT <pid>`.
    ///
    /// If the loop itself is stuck in a task that never yields, it cannot print its dump; the
    /// process-wide signal thread then prints which task the loop has been polling, and for how
    /// long (the loop publishes each poll's task and start time in two atomics while this option
    /// is on; off, that costs a test of one field before and after each poll).
    ///
    /// # Errors
    ///
    /// [`build`](Self::build) fails with `InvalidInput` for a signal that cannot be caught
    /// (see [`EventLoop::add_signal_handler`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use aioloop::signal::{raise_signal, SIGQUIT};
    /// let mut lp = aioloop::EventLoop::builder().debug(true).dump_on_signal(SIGQUIT).build()?;
    /// lp.run_until_complete(async {
    ///     raise_signal(SIGQUIT).unwrap(); // stderr: "aioloop: signal 3: task dump of the loop ..."
    ///     aioloop::sleep(std::time::Duration::from_millis(50)).await;
    /// });
    /// assert!(aioloop::EventLoop::builder().dump_on_signal(9).build().is_err()); // SIGKILL
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn dump_on_signal(mut self, signum: i32) -> Builder {
        self.dump_on_signal = Some(signum);
        self
    }

    /// Sets debug mode's threshold for slow steps (default 100 ms).
    ///
    /// # Examples
    ///
    /// See [`debug`](Self::debug).
    pub fn slow_callback_duration(mut self, threshold: Duration) -> Builder {
        self.slow_callback_duration = Some(threshold);
        self
    }
}

impl EventLoop {
    /// Creates a loop on real time.
    ///
    /// # Errors
    ///
    /// Fails if the OS poller cannot be created (for example `EMFILE`: too many open files), or if
    /// 4,096 loops are already alive in this process.
    ///
    /// # Examples
    ///
    /// ```
    /// let _lp = aioloop::EventLoop::new()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<EventLoop> {
        Builder::default().build()
    }

    /// Returns a [`Builder`] to configure a loop (virtual time).
    ///
    /// # Examples
    ///
    /// ```
    /// let _lp = aioloop::EventLoop::builder().virtual_time(true).build()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Runs the loop until `fut` completes and returns its output.
    ///
    /// `fut` runs as the loop's *main task*: it goes through the ready queue like any task, so it
    /// sees [`current_task`](crate::current_task) and can be woken from anywhere. It need not be
    /// `'static` or `Send`. As in asyncio, the loop stops at the end of the iteration *after* the
    /// one in which `fut` completed, so whatever that completion made ready still runs.
    ///
    /// Tasks that are still pending afterwards stay in the loop; the next `run_*` call resumes
    /// them, [`close`](Self::close) drops them.
    ///
    /// # Panics
    ///
    /// - If `fut` panics, the panic resumes here (after the loop stopped).
    /// - "Event loop stopped before Future completed." if [`stop`](Self::stop) was called before
    ///   `fut` completed (`fut` is dropped; spawned tasks stay in the loop).
    /// - "Cannot run the event loop while another loop is running" if a loop is already running
    ///   on this thread.
    /// - In a child process forked after the loop was created: the loop's poller is the
    ///   parent's, so the child must build its own loop (asyncio and libuv check the pid too).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let s = String::from("borrowed");
    /// let n = lp.run_until_complete(async { s.len() }); // non-'static is fine
    /// assert_eq!(n, 8);
    /// ```
    pub fn run_until_complete<F: IntoFuture>(&mut self, fut: F) -> F::Output {
        self.core.check_not_forked();
        let out = Cell::new(None);
        let fut = fut.into_future();
        let mut wrapper = pin!(Some(async {
            out.set(Some(fut.await));
        }));
        let key = self.core.insert_main_task();
        let main_task = MainTask::new(&self.core, key);
        let guard = crate::runtime::running::enter(&self.core);
        {
            let mut main: Option<Pin<&mut dyn Future<Output = ()>>> =
                wrapper.as_mut().as_pin_mut().map(|f| f as Pin<&mut dyn Future<Output = ()>>);
            self.core.run_until_stopped(&mut main);
        }
        // A future stopped before it completed is dropped while the loop is still entered, so
        // its destructors can reach the loop (cancel their timers, spawn, wake).
        wrapper.set(None);
        drop(guard);
        let (status, payload) = main_task.finish();
        match status {
            Status::Done => out.take().expect("the main task stored its output"),
            Status::Panicked => resume_unwind(payload.expect("a panicked task has a payload")),
            _ => panic!("Event loop stopped before Future completed."),
        }
    }

    /// Runs the loop until [`stop`](Self::stop) is called (from a task, a callback, or another
    /// thread through a [`LoopHandle`]).
    ///
    /// `stop()` lets the current iteration finish; a `stop()` before `run_forever` makes it run
    /// exactly one iteration.
    ///
    /// # Panics
    ///
    /// "Cannot run the event loop while another loop is running" if a loop is already running on
    /// this thread; in a child process forked after the loop was created, as
    /// [`run_until_complete`](Self::run_until_complete).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let h = lp.handle();
    /// lp.call_later(Duration::from_millis(5), move || h.stop());
    /// lp.run_forever();
    /// ```
    pub fn run_forever(&mut self) {
        self.core.check_not_forked();
        let _guard = crate::runtime::running::enter(&self.core);
        self.core.run_until_stopped(&mut None);
    }

    /// Asks the loop to stop after the iteration in progress (asyncio's `loop.stop()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// lp.stop();
    /// lp.run_forever(); // one iteration, then returns
    /// ```
    pub fn stop(&self) {
        self.core.remote.request_stop();
    }

    /// Closes the loop: drops every remaining task's future (cancelling it) and every pending
    /// callback, without running them. Dropping the loop does the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.spawn(aioloop::sleep(Duration::from_secs(60)));
    /// lp.close();
    /// assert!(t.is_cancelled());
    /// ```
    pub fn close(self) {
        drop(self);
    }

    /// Returns the loop's current time (virtual under virtual time).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// assert!(lp.time() <= std::time::Instant::now());
    /// ```
    pub fn time(&self) -> Instant {
        self.core.clock.instant(self.core.clock.now_ns())
    }

    /// Spawns a task on this loop (asyncio's `loop.create_task`). It starts when the loop runs.
    ///
    /// # Panics
    ///
    /// If more than 67,108,864 tasks are alive on this loop.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.spawn(async { 1 + 1 });
    /// assert_eq!(lp.run_until_complete(t).unwrap(), 2);
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.core.spawn(fut)
    }

    /// Schedules `f` to run in the next iteration, after what is already ready (FIFO).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let log = Rc::new(RefCell::new(vec![]));
    /// let l = log.clone();
    /// lp.call_soon(move || l.borrow_mut().push("a"));
    /// lp.run_until_complete(aioloop::yield_now());
    /// assert_eq!(*log.borrow(), ["a"]);
    /// ```
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> Handle {
        Handle::new(&self.core, self.core.call_soon_action(Action::Callback(Box::new(f))))
    }

    /// Schedules `f` to run `delay` from now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let h = lp.call_later(Duration::from_secs(5), || println!("never"));
    /// h.cancel();
    /// ```
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> TimerHandle {
        let deadline = self.core.deadline_after(delay);
        TimerHandle::new(&self.core, deadline, Action::Callback(Box::new(f)))
    }

    /// Schedules `f` to run at `when` (loop time; a past instant runs in the next iteration).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let h = lp.call_at(lp.time() + Duration::from_secs(1), || {});
    /// assert_eq!(h.when(), lp.time() + Duration::from_secs(1));
    /// ```
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> TimerHandle {
        let deadline = self.core.clock.ns_of(when);
        TimerHandle::new(&self.core, deadline, Action::Callback(Box::new(f)))
    }

    /// Runs `callback` whenever the loop finds `fd` readable (asyncio's `add_reader`), until
    /// [`remove_reader`](Self::remove_reader): at most once per iteration; in every iteration
    /// while the loop is otherwise idle, and at least every 61 iterations while tasks keep it
    /// busy (see docs/src/anatomy.md). Replaces a previous reader callback of the same
    /// descriptor. Inside a callback, the free functions [`remove_reader`](crate::remove_reader)
    /// and friends reach the running loop.
    ///
    /// The loop registers a duplicate of `fd` (level-triggered, as asyncio's selector does), so
    /// closing `fd` without removing the callback cannot corrupt the poller; the callback keeps
    /// firing while the file is readable through the duplicate. This is the teaching API; tasks
    /// should use [`Async`](crate::Async) or the [`net`](crate::net) types.
    ///
    /// # Errors
    ///
    /// If the descriptor cannot be duplicated or registered (for example a regular file).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, io::Write, os::fd::AsRawFd, rc::Rc};
    /// let mut lp = aioloop::EventLoop::new()?;
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    /// let fired = Rc::new(Cell::new(0));
    /// let (f, h) = (fired.clone(), lp.handle());
    /// lp.add_reader(&a, move || {
    ///     f.set(f.get() + 1);
    ///     h.stop();
    /// })?;
    /// b.write_all(b"x")?;
    /// lp.run_forever(); // the callback stops the loop
    /// assert_eq!(fired.get(), 1);
    /// assert!(lp.remove_reader(a.as_raw_fd()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_reader(&self, fd: impl std::os::fd::AsFd, callback: impl FnMut() + 'static) -> io::Result<()> {
        self.core.add_fd_callback(fd.as_fd(), crate::runtime::reactor::Dir::Read, Box::new(callback))
    }

    /// Stops the reader callback of `fd`; returns true if there was one (asyncio's `remove_reader`).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// assert!(!lp.remove_reader(0));
    /// ```
    pub fn remove_reader(&self, fd: impl std::os::fd::AsRawFd) -> bool {
        self.core.remove_fd_callback(fd.as_raw_fd(), crate::runtime::reactor::Dir::Read)
    }

    /// Runs `callback` whenever the loop finds `fd` writable (asyncio's `add_writer`), until
    /// [`remove_writer`](Self::remove_writer); see [`add_reader`](Self::add_reader).
    ///
    /// # Errors
    ///
    /// If the descriptor cannot be duplicated or registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// let mut lp = aioloop::EventLoop::new()?;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let h = lp.handle();
    /// lp.add_writer(&a, move || h.stop())?; // an empty socket buffer is writable at once
    /// lp.run_forever();
    /// assert!(lp.remove_writer(a.as_raw_fd()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_writer(&self, fd: impl std::os::fd::AsFd, callback: impl FnMut() + 'static) -> io::Result<()> {
        self.core.add_fd_callback(fd.as_fd(), crate::runtime::reactor::Dir::Write, Box::new(callback))
    }

    /// Stops the writer callback of `fd`; returns true if there was one (asyncio's `remove_writer`).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// assert!(!lp.remove_writer(1));
    /// ```
    pub fn remove_writer(&self, fd: impl std::os::fd::AsRawFd) -> bool {
        self.core.remove_fd_callback(fd.as_raw_fd(), crate::runtime::reactor::Dir::Write)
    }

    /// Returns what the loop recorded of its tasks' lives so far, if it was built with
    /// [`Builder::trace`] (otherwise an empty trace). Save it with
    /// [`Trace::save`](crate::Trace::save) as `.json` (Perfetto, chrome://tracing) or `.svg`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build()?;
    /// lp.run_until_complete(aioloop::sleep(Duration::from_secs(1)));
    /// let trace = lp.trace();
    /// assert!(trace.to_string().contains("1.000s"));
    /// assert!(trace.to_svg().starts_with("<svg"));
    /// assert!(aioloop::EventLoop::new()?.trace().events().is_empty()); // not recording
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn trace(&self) -> crate::Trace {
        match self.core.recorder() {
            Some(r) => crate::Trace::recorded(&r),
            None => crate::Trace::empty(self.core.clock.start()), // the loop's creation (runtime/clock.rs)
        }
    }

    /// Returns every unfinished task, with its state, spawn location (debug mode) and what it
    /// waits for; `Display` prints it as a table (asyncio's `all_tasks()` and task reprs).
    ///
    /// # Examples
    ///
    /// See [`TaskDump`](crate::TaskDump).
    pub fn tasks(&self) -> crate::TaskDump {
        self.core.dump()
    }

    /// Replaces the loop's exception handler (asyncio's `set_exception_handler`): it receives
    /// what the loop cannot hand to a task, such as the panic of a detached task, a panicking
    /// callback, or a task still pending when the loop closes. The default,
    /// [`default_exception_handler`](crate::default_exception_handler), prints one line on
    /// stderr; a handler may call it too.
    ///
    /// # Examples
    ///
    /// See [`ExceptionContext`](crate::ExceptionContext).
    pub fn set_exception_handler(&self, handler: impl Fn(&crate::ExceptionContext<'_>) + 'static) {
        self.core.set_exception_handler(Some(Rc::new(handler)));
    }

    /// Restores the default exception handler.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// lp.set_exception_handler(|_| {});
    /// lp.reset_exception_handler();
    /// ```
    pub fn reset_exception_handler(&self) {
        self.core.set_exception_handler(None);
    }

    /// Returns a thread-safe handle to this loop (`Send + Sync + Clone`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let h = lp.handle();
    /// std::thread::spawn(move || h.stop()).join().unwrap();
    /// lp.run_forever(); // returns: the stop was requested from another thread
    /// ```
    pub fn handle(&self) -> LoopHandle {
        LoopHandle::new(self.core.remote.clone())
    }

    /// Returns the loop's current anatomy: task, ready-queue and timer-heap sizes, and counters
    /// of iterations and poller calls (for tests, teaching and debugging).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// lp.run_until_complete(aioloop::sleep(Duration::from_secs(1)));
    /// assert_eq!(lp.stats().polls, 0); // virtual time jumped instead of sleeping
    /// ```
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// Cancels every unfinished task and runs the loop until they are all finished (the first
    /// half of `asyncio.run`'s shutdown). Tasks their destructors spawn are left for `close`.
    pub(crate) fn cancel_all_tasks(&mut self) {
        self.core.cancel_all_tasks();
    }
}

/// Signals (src/signal): asyncio's `add_signal_handler` and `remove_signal_handler`.
impl EventLoop {
    /// Runs `callback` on the loop's thread each time the process receives `signum` (asyncio's
    /// `loop.add_signal_handler`); replaces this loop's previous callback for `signum`.
    ///
    /// The callback is an ordinary callback of the loop, never run inside the signal handler:
    /// it may spawn tasks, stop the loop, allocate or print. Deliveries that arrive close
    /// together may be coalesced into one call. Every loop of the process that listens to
    /// `signum` gets each delivery, on whatever thread it runs (asyncio allows the main thread
    /// only). Another library's handler of the same signal keeps running (aioloop chains to it).
    ///
    /// Once the last listener of a signal is gone ([`remove_signal_handler`](Self::remove_signal_handler),
    /// a dropped [`Signal`](crate::signal::Signal), the loop closed), the signal does what it did before aioloop listened:
    /// its default action (SIGINT and SIGTERM terminate the process again), or the handler another
    /// library installed first.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for 0, a negative number, a number past the platform's last signal, and
    /// SIGKILL, SIGSTOP, SIGILL, SIGFPE or SIGSEGV (nothing is registered then); "Event loop is
    /// closed" from a destructor that runs while the loop closes; the OS's error if the
    /// process-wide signal thread cannot start.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use aioloop::signal::{raise_signal, SIGUSR1};
    /// let mut lp = aioloop::EventLoop::new()?;
    /// let calls = Rc::new(Cell::new(0));
    /// let (c, h) = (calls.clone(), lp.handle());
    /// lp.add_signal_handler(SIGUSR1, move || {
    ///     c.set(c.get() + 1);
    ///     h.stop();
    /// })?;
    /// raise_signal(SIGUSR1)?;
    /// lp.run_forever(); // the callback stops the loop
    /// assert_eq!(calls.get(), 1);
    /// assert!(lp.remove_signal_handler(SIGUSR1));
    /// assert_eq!(lp.add_signal_handler(9, || {}).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_signal_handler(&self, signum: i32, callback: impl FnMut() + 'static) -> io::Result<()> {
        crate::signal::add_handler(&self.core, signum, Box::new(callback))
    }

    /// Removes this loop's callback for `signum`; returns true if there was one (asyncio's
    /// `loop.remove_signal_handler`).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// assert!(!lp.remove_signal_handler(aioloop::signal::SIGHUP));
    /// ```
    pub fn remove_signal_handler(&self, signum: i32) -> bool {
        crate::signal::remove_handler(&self.core, signum)
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.core.close();
    }
}
