//! One loop per core: [`PerCore`] starts N threads, each running its own [`EventLoop`] (pinned to
//! a CPU where the OS allows), runs a future made by the same factory on each, and joins them.
//!
//! An `EventLoop` is single-threaded by design: its tasks are `!Send` and share state through
//! `Rc` and `Cell`. To use several cores, run several loops that share nothing, and let the
//! kernel split the work between them: each loop binds its own listener on the same port with
//! [`TcpListenOptions::reuse_port`](crate::net::TcpListenOptions::reuse_port), and the kernel
//! hands each incoming connection to one of them. This is the model of glommio, monoio and
//! seastar ("thread per core"), as opposed to tokio's multi-threaded runtime, where one scheduler
//! moves `Send` tasks between worker threads.
//!
//! ```text
//!                      ┌── thread 0 (CPU 0): EventLoop ── listener :8080 ── its connections
//!  PerCore::new(2) ────┤
//!     .spawn(factory)  └── thread 1 (CPU 1): EventLoop ── listener :8080 ── its connections
//!                            (SO_REUSEPORT: the kernel picks a listener per connection)
//! ```
//!
//! # Invariants
//! - A loop's future is created on its own thread, inside its running loop (the factory is
//!   called there), so it may hold sockets, `Rc`s and `Task`s; only the factory itself and the
//!   outputs cross threads.
//! - Nothing escapes as a panic: a panic in the factory, in a loop's future or in the loop itself
//!   is that loop's outcome, [`TaskError::Panicked`], and the other loops go on.
//! - Every thread is joined: by [`Loops::join`], or by dropping [`Loops`] (which cancels first).
//! - Either every loop starts or none does: the threads create their loops first and run the
//!   factory only once all of them succeeded, so a setup failure is one `io::Error` and no user
//!   code has run.
//!
//! Production note: glommio and monoio also give each loop its own io_uring and allocate memory
//! per core (NUMA); seastar shards data by core and passes messages between them. Here the loops
//! talk only through the [`LoopHandle`]s of [`Loops::handle`], or through ordinary `Send` types.

use std::fmt;
use std::future::{poll_fn, Future, IntoFuture};
use std::io;
use std::pin::pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use crate::{Builder, EventLoop, LoopHandle, TaskError};

/// Starts one [`EventLoop`] per thread, typically one per CPU, each running a future made by the
/// same factory (glommio's `LocalExecutorPoolBuilder`, monoio's thread-per-core model).
///
/// # Examples
///
/// Two loops, each serving its own share of the connections to one port:
///
/// ```
/// use std::io::Read;
/// use std::net::SocketAddr;
/// use std::sync::{mpsc, Arc, Mutex};
/// use aioloop::net::{TcpListenOptions, TcpListener};
/// use aioloop::PerCore;
/// use futures_lite::AsyncWriteExt;
///
/// // The first loop to bind picks a free port; the other one binds the same port.
/// let port: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
/// let (bound_tx, bound) = mpsc::channel();
/// let loops = PerCore::new(2).spawn(move |i| {
///     let (port, bound_tx) = (port.clone(), bound_tx.clone());
///     async move {
///         let listener = {
///             let mut port = port.lock().unwrap();
///             let addr = port.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
///             let l = TcpListener::bind_with(addr, TcpListenOptions::new().reuse_port(true))?;
///             *port = Some(l.local_addr()?);
///             l
///         };
///         bound_tx.send(listener.local_addr()?).unwrap();
///         loop {
///             let (mut conn, _) = listener.accept().await?;
///             conn.write_all(format!("loop {i}").as_bytes()).await?;
///         }
///         #[allow(unreachable_code)]
///         Ok::<(), std::io::Error>(())
///     }
/// })?;
/// let addr = bound.recv().unwrap();
/// assert_eq!(bound.recv().unwrap(), addr); // both listen on it
/// let mut reply = String::new();
/// std::net::TcpStream::connect(addr)?.read_to_string(&mut reply)?;
/// assert!(reply == "loop 0" || reply == "loop 1");
/// loops.cancel(); // the servers would run on
/// for outcome in loops.join() {
///     assert!(outcome.unwrap_err().is_cancelled());
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PerCore {
    /// How many loops (threads) to start.
    loops: usize,
    /// Pin loop `i` to the `i`th CPU this process may run on (modulo their number).
    pin: bool,
    /// How each loop is created.
    builder: Builder,
}

impl PerCore {
    /// Prepares `loops` loops, pinned, created with the default [`Builder`]. Use
    /// [`std::thread::available_parallelism`] for one per CPU.
    ///
    /// # Examples
    ///
    /// ```
    /// let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    /// let outcomes = aioloop::PerCore::new(cpus).run(|i| async move { i * 10 })?;
    /// assert_eq!(outcomes.into_iter().map(Result::unwrap).collect::<Vec<_>>(), (0..cpus).map(|i| i * 10).collect::<Vec<_>>());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(loops: usize) -> PerCore {
        PerCore { loops, pin: true, builder: Builder::default() }
    }

    /// Pins loop `i`'s thread to the `i`th CPU of those this process may run on (its affinity
    /// mask, so `taskset -c 2,3` gives CPUs 2 and 3), wrapping around when there are more loops
    /// than CPUs. Default: on. Pinning keeps a loop's caches warm and makes its load visible per
    /// CPU; turn it off when other work shares the machine and the scheduler should move threads.
    ///
    /// Pinning uses `sched_setaffinity` and exists on Linux only; elsewhere (and where the call
    /// fails, for example in a restricted container) the threads run unpinned and
    /// [`Loops::cpu`] says `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// let loops = aioloop::PerCore::new(2).pin(false).spawn(|_| async {})?;
    /// assert_eq!(loops.cpu(0), None);
    /// loops.join();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pin(mut self, on: bool) -> PerCore {
        self.pin = on;
        self
    }

    /// Creates every loop with this [`Builder`] (debug mode, for example).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = aioloop::EventLoop::builder().debug(true);
    /// let outcomes = aioloop::PerCore::new(2).loop_builder(builder).run(|_| async { 1 })?;
    /// assert_eq!(outcomes.len(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn loop_builder(mut self, builder: Builder) -> PerCore {
        self.builder = builder;
        self
    }

    /// Starts the loops and returns at once; loop `i` runs `factory(i)` as its main task.
    ///
    /// The factory is called on loop `i`'s thread, inside the running loop, so the future (and
    /// the factory's own body) may create sockets and spawn tasks. Each loop runs until its
    /// future completes, then cancels the tasks it left (as [`run`](crate::run) does) and
    /// closes.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the number of loops is 0; the OS's error if a thread cannot be started
    /// or a loop cannot be created (out of file descriptors, for example). In both cases every
    /// thread already started is joined first, and no factory has run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let loops = aioloop::PerCore::new(2).spawn(|i| async move {
    ///     aioloop::sleep(Duration::from_millis(10)).await;
    ///     format!("loop {i} on {:?}", std::thread::current().name().unwrap())
    /// })?;
    /// assert_eq!(loops.len(), 2);
    /// let outcomes: Vec<String> = loops.join().into_iter().map(Result::unwrap).collect();
    /// assert_eq!(outcomes, ["loop 0 on \"aioloop-loop-0\"", "loop 1 on \"aioloop-loop-1\""]);
    ///
    /// let err = aioloop::PerCore::new(0).spawn(|_| async {}).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<F, Fut>(self, factory: F) -> io::Result<Loops<Fut::Output>>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        if self.loops == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "PerCore needs at least one loop, got 0"));
        }
        let cpus = if self.pin { allowed_cpus() } else { Vec::new() };
        let factory = Arc::new(factory);
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut starting = Vec::with_capacity(self.loops);
        // Step 1: start the threads; each creates its loop and reports.
        for index in 0..self.loops {
            let (go_tx, go_rx) = mpsc::channel();
            let stop = Arc::new(StopSignal::default());
            let setup = LoopSetup {
                index,
                cpu: (!cpus.is_empty()).then(|| cpus[index % cpus.len()]),
                builder: self.builder.clone(),
                ready: ready_tx.clone(),
                go: go_rx,
                stop: stop.clone(),
            };
            let factory = factory.clone();
            let spawned =
                std::thread::Builder::new().name(format!("aioloop-loop-{index}")).spawn(move || setup.run(factory));
            match spawned {
                Ok(thread) => starting.push(Starting { go: go_tx, stop, thread }),
                Err(e) => {
                    abort(starting);
                    return Err(io::Error::new(e.kind(), format!("cannot start the thread of loop {index}: {e}")));
                }
            }
        }
        drop(ready_tx);
        // Step 2: collect every loop's handle and CPU, or the first failure.
        let mut ready: Vec<Option<Started>> = (0..self.loops).map(|_| None).collect();
        let mut failure = None;
        for _ in 0..self.loops {
            match ready_rx.recv() {
                Ok((index, Ok(r))) => ready[index] = Some(r),
                Ok((index, Err(e))) => {
                    let e = io::Error::new(e.kind(), format!("cannot create the event loop of loop {index}: {e}"));
                    failure.get_or_insert(e);
                }
                // Every sender is gone: a thread ended without reporting (it panicked).
                Err(_) => {
                    failure.get_or_insert(io::Error::other("a loop's thread ended while creating its loop"));
                    break;
                }
            }
        }
        if let Some(e) = failure {
            abort(starting);
            return Err(e);
        }
        // Step 3: every loop exists; let them run their factories.
        let mut loops = Vec::with_capacity(self.loops);
        for (Starting { go, stop, thread }, started) in starting.into_iter().zip(ready) {
            let Started { handle, cpu } = started.expect("every loop reported");
            let _ = go.send(true);
            loops.push(LoopThread { handle, cpu, stop, thread: Some(thread) });
        }
        Ok(Loops { loops })
    }

    /// Starts the loops (as [`spawn`](Self::spawn) does) and waits for all of them; returns
    /// each loop's outcome, in loop order.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn). A loop that panicked is not an error of `run`: its outcome is
    /// [`TaskError::Panicked`].
    ///
    /// # Examples
    ///
    /// ```
    /// let outcomes = aioloop::PerCore::new(2).run(|i| async move {
    ///     if i == 1 {
    ///         panic!("loop {i} failed");
    ///     }
    ///     i
    /// })?;
    /// assert_eq!(outcomes[0].as_ref().unwrap(), &0);
    /// assert_eq!(outcomes[1].as_ref().unwrap_err().to_string(), "task panicked: loop 1 failed");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run<F, Fut>(self, factory: F) -> io::Result<Vec<Result<Fut::Output, TaskError>>>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        Ok(self.spawn(factory)?.join())
    }
}

/// A loop's thread, started but waiting for the go.
struct Starting<T> {
    /// Sends the go (`true`) or the abort (`false`).
    go: mpsc::Sender<bool>,
    /// Cancels the loop's main task once it runs.
    stop: Arc<StopSignal>,
    /// The thread.
    thread: JoinHandle<Result<T, TaskError>>,
}

/// What a thread reports once its loop exists.
struct Started {
    /// The loop's handle.
    handle: LoopHandle,
    /// The CPU the thread is pinned to, if it is.
    cpu: Option<usize>,
}

/// Tells the threads started so far not to run, and joins them.
fn abort<T>(starting: Vec<Starting<T>>) {
    for s in &starting {
        let _ = s.go.send(false);
    }
    for s in starting {
        let _ = s.thread.join();
    }
}

/// The loops started by [`PerCore::spawn`]: their handles, their CPUs, and a way to cancel and
/// join them.
///
/// Dropping it without [`join`](Self::join) cancels every loop and joins the threads.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let loops = aioloop::PerCore::new(2).spawn(|_| aioloop::sleep(Duration::from_secs(3600)))?;
/// loops.cancel();
/// assert!(loops.join().iter().all(|o| o.as_ref().unwrap_err().is_cancelled()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Loops<T> {
    /// One entry per loop, in loop order.
    loops: Vec<LoopThread<T>>,
}

/// One running loop, seen from outside its thread.
struct LoopThread<T> {
    /// Its loop's thread-safe handle.
    handle: LoopHandle,
    /// The CPU its thread is pinned to, if it is.
    cpu: Option<usize>,
    /// Cancels its main task.
    stop: Arc<StopSignal>,
    /// Its thread; `None` once joined.
    thread: Option<JoinHandle<Result<T, TaskError>>>,
}

impl<T> fmt::Debug for Loops<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpus: Vec<_> = self.loops.iter().map(|l| l.cpu).collect();
        f.debug_struct("Loops").field("cpus", &cpus).field("finished", &self.is_finished()).finish()
    }
}

impl<T> Loops<T> {
    /// Returns the number of loops.
    ///
    /// # Examples
    ///
    /// See [`PerCore::spawn`].
    pub fn len(&self) -> usize {
        self.loops.len()
    }

    /// Returns false: [`PerCore::spawn`] starts at least one loop.
    ///
    /// # Examples
    ///
    /// ```
    /// let loops = aioloop::PerCore::new(1).spawn(|_| async {})?;
    /// assert!(!loops.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.loops.is_empty()
    }

    /// Returns loop `i`'s handle, to reach it from any thread: [`LoopHandle::spawn_with`] runs a
    /// future on it, [`LoopHandle::call_soon_threadsafe`] a callback.
    ///
    /// # Panics
    ///
    /// If `i` is not below [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let loops = aioloop::PerCore::new(2).spawn(|_| aioloop::sleep(Duration::from_secs(3600)))?;
    /// let on_loop_1 = loops.handle(1).spawn_with(|| async { std::thread::current().name().unwrap().to_string() });
    /// assert_eq!(futures_lite::future::block_on(on_loop_1).unwrap(), "aioloop-loop-1");
    /// drop(loops); // cancels and joins
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handle(&self, i: usize) -> &LoopHandle {
        &self.loops[i].handle
    }

    /// Returns the CPU loop `i`'s thread is pinned to (`None`: not pinned; see
    /// [`PerCore::pin`]).
    ///
    /// # Panics
    ///
    /// If `i` is not below [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// let loops = aioloop::PerCore::new(1).spawn(|_| async { std::thread::current().id() })?;
    /// if let Some(cpu) = loops.cpu(0) {
    ///     println!("loop 0 runs on CPU {cpu}");
    /// }
    /// loops.join();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cpu(&self, i: usize) -> Option<usize> {
        self.loops[i].cpu
    }

    /// Cancels every loop's main task (from any thread): each loop then cancels its other tasks
    /// and closes, and [`join`](Self::join) gives [`TaskError::Cancelled`] for the loops that had
    /// not finished yet.
    ///
    /// # Examples
    ///
    /// See [`Loops`].
    pub fn cancel(&self) {
        for l in &self.loops {
            l.stop.request();
        }
    }

    /// Returns true once every loop has finished.
    ///
    /// # Examples
    ///
    /// ```
    /// let loops = aioloop::PerCore::new(2).spawn(|_| async {})?;
    /// while !loops.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// assert!(loops.join().iter().all(Result::is_ok));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_finished(&self) -> bool {
        self.loops.iter().all(|l| l.thread.as_ref().is_none_or(JoinHandle::is_finished))
    }

    /// Waits for every loop to finish and returns their outcomes, in loop order: the output of
    /// the loop's future, [`TaskError::Panicked`] if it (or its loop) panicked, or
    /// [`TaskError::Cancelled`] if it was cancelled.
    ///
    /// # Examples
    ///
    /// See [`PerCore::spawn`].
    pub fn join(mut self) -> Vec<Result<T, TaskError>> {
        self.loops.iter_mut().map(LoopThread::join).collect()
    }
}

impl<T> LoopThread<T> {
    /// Joins the thread and returns its outcome (a panic that escaped the loop is `Panicked`).
    fn join(&mut self) -> Result<T, TaskError> {
        let thread = self.thread.take().expect("joined once");
        thread.join().unwrap_or_else(|payload| Err(TaskError::Panicked(payload)))
    }
}

impl<T> Drop for Loops<T> {
    fn drop(&mut self) {
        self.cancel();
        for l in self.loops.iter_mut().filter(|l| l.thread.is_some()) {
            drop(l.join());
        }
    }
}

/// What a loop's thread needs to start.
struct LoopSetup {
    /// The loop's number, given to the factory.
    index: usize,
    /// The CPU to pin the thread to, if any.
    cpu: Option<usize>,
    /// How to create the loop.
    builder: Builder,
    /// Where the thread reports its loop (or why it could not create one).
    ready: mpsc::Sender<(usize, io::Result<Started>)>,
    /// `true`: run the factory; `false` (or the sender gone): another loop failed, return.
    go: mpsc::Receiver<bool>,
    /// Set by [`Loops::cancel`].
    stop: Arc<StopSignal>,
}

impl LoopSetup {
    /// The thread's body: pin, create the loop, report, wait for the go, run the factory's
    /// future as a task until it finishes or is cancelled, then shut the loop down.
    fn run<F, Fut>(self, factory: Arc<F>) -> Result<Fut::Output, TaskError>
    where
        F: Fn(usize) -> Fut + 'static,
        Fut: Future + 'static,
    {
        let LoopSetup { index, cpu, builder, ready, go, stop } = self;
        let cpu = cpu.filter(|&c| pin_current_thread(c).is_ok());
        let mut lp = match builder.build() {
            Ok(lp) => lp,
            Err(e) => {
                let _ = ready.send((index, Err(e)));
                return Err(TaskError::Cancelled);
            }
        };
        let _ = ready.send((index, Ok(Started { handle: lp.handle(), cpu })));
        // Dropped now, so that `spawn` sees the channel close if another thread dies unreported.
        drop(ready);
        if go.recv() != Ok(true) {
            return Err(TaskError::Cancelled);
        }
        let outcome = lp.run_until_complete(async {
            // A task, so that a panic in the factory or in its future is caught as a value.
            let mut task = crate::spawn(async move { factory(index).await });
            let finished = {
                let mut join = pin!((&mut task).into_future());
                poll_fn(|cx| match join.as_mut().poll(cx) {
                    Poll::Ready(outcome) => Poll::Ready(Some(outcome)),
                    Poll::Pending => stop.poll_requested(cx).map(|()| None),
                })
                .await
            };
            match finished {
                Some(outcome) => outcome,
                None => {
                    task.cancel();
                    task.await
                }
            }
        });
        shut_down(lp);
        outcome
    }
}

/// `asyncio.run`'s ending: cancels the tasks left over (running their destructors in the loop),
/// then closes the loop.
fn shut_down(mut lp: EventLoop) {
    lp.cancel_all_tasks();
    lp.close();
}

/// A cancellation request from another thread: a flag and the waker of the loop's main task.
#[derive(Default)]
struct StopSignal {
    /// `(requested, waker to wake when it is)`, under one lock so that no request is missed.
    state: Mutex<(bool, Option<Waker>)>,
}

impl StopSignal {
    /// Requests the stop and wakes the waiting loop (from any thread).
    fn request(&self) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.0 = true;
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Returns `Ready` once a stop was requested; else remembers `cx`'s waker.
    fn poll_requested(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.0 {
            return Poll::Ready(());
        }
        if !s.1.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.1 = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Returns the CPUs the calling thread may run on, in increasing order (empty if unknown).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn allowed_cpus() -> Vec<usize> {
    use rustix::thread::{sched_getaffinity, CpuSet};
    match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Returns the CPUs the calling thread may run on: unknown outside Linux.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

/// Pins the calling thread to one CPU.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn pin_current_thread(cpu: usize) -> io::Result<()> {
    use rustix::thread::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set)?;
    Ok(())
}

/// Pins the calling thread to one CPU: unsupported outside Linux (macOS has only affinity
/// hints; the BSDs have `cpuset_setaffinity`, which this crate does not call).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn pin_current_thread(_cpu: usize) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "pinning threads to CPUs is implemented on Linux only"))
}
