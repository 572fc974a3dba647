//! The running loop of this thread (asyncio's `get_running_loop()`), and the free functions that
//! use it: [`spawn`], [`try_spawn`], [`now`], [`current_task`], [`call_soon`], [`call_later`],
//! [`call_at`], [`run`].
//!
//! # Invariants
//! - At most one loop runs on a thread at a time; running a second one inside the first fails
//!   with asyncio's message.
//! - The thread-local is set only while a loop runs (`run_until_complete`, `run_forever`), so
//!   a waker woken on this thread at that moment reaches the ready queue without a lock.

use std::cell::{Cell, RefCell};
use std::future::{Future, IntoFuture};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::error::NoRunningLoop;
use crate::handle::{Action, Handle, TimerHandle};
use crate::join::Task;
use crate::runtime::{Core, EventLoop};
use crate::task::TaskId;
use crate::waker::TaskKey;

thread_local! {
    /// The loop running on this thread, if any.
    static RUNNING: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
    /// What a timeout created on this thread records of the running loop, without looking the
    /// loop up (a plain `Cell`: reading it costs a load, where `RUNNING` costs a borrow).
    static TIMEOUTS: Cell<Timeouts> = const { Cell::new(Timeouts { slot: None, epoch: 0, created: false }) };
}

/// The timeouts of this thread's running loop (see `timeout.rs`).
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    /// The running loop's registry slot; `None` while no loop runs on this thread.
    slot: Option<u16>,
    /// Moves on at the end of each iteration in which a timeout was created: a timeout is
    /// *fresh* (first polled in the iteration that created it) while it has not.
    epoch: u32,
    /// A timeout was created since `epoch` last moved on.
    created: bool,
}

/// Notes that a timeout is being created; returns the running loop's slot and the epoch the
/// timeout belongs to, or `None` if no loop runs on this thread.
#[inline]
pub(crate) fn note_timeout() -> Option<(u16, u32)> {
    TIMEOUTS.with(|t| {
        let mut now = t.get();
        let slot = now.slot?;
        if !now.created {
            now.created = true;
            t.set(now);
        }
        Some((slot, now.epoch))
    })
}

/// Returns the current timeout epoch: a timeout of an earlier one was created in an iteration
/// that has ended.
#[inline]
pub(crate) fn timeout_epoch() -> u32 {
    TIMEOUTS.with(|t| t.get().epoch)
}

/// The loop ends an iteration: if a timeout was created in it, moves the epoch on and returns
/// the epoch of those timeouts.
#[inline]
pub(crate) fn end_iteration() -> Option<u32> {
    TIMEOUTS.with(|t| {
        let now = t.get();
        if !now.created {
            return None;
        }
        t.set(Timeouts { epoch: now.epoch.wrapping_add(1), created: false, ..now });
        Some(now.epoch)
    })
}

/// Sets (or, with `None`, clears) the running loop of this thread for its timeouts. Timeouts
/// created while the loop was not iterating (its destructors at close) are never fresh.
fn set_timeout_loop(slot: Option<u16>) {
    TIMEOUTS.with(|t| {
        let now = t.get();
        let epoch = if now.created { now.epoch.wrapping_add(1) } else { now.epoch };
        t.set(Timeouts { slot, epoch, created: false });
    });
}

/// Marks a loop as running on this thread until dropped.
pub(crate) struct EnterGuard(());

/// Makes `core` this thread's running loop.
///
/// # Panics
///
/// If a loop is already running on this thread.
pub(crate) fn enter(core: &Rc<Core>) -> EnterGuard {
    RUNNING.with(|r| {
        let mut r = r.borrow_mut();
        assert!(r.is_none(), "Cannot run the event loop while another loop is running");
        *r = Some(core.clone());
    });
    set_timeout_loop(Some(core.remote.slot));
    EnterGuard(())
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        set_timeout_loop(None);
        let core = RUNNING.with(|r| r.borrow_mut().take());
        drop(core);
    }
}

/// Returns true if a loop is running on this thread.
pub(crate) fn is_running() -> bool {
    RUNNING.try_with(|r| r.try_borrow().is_ok_and(|r| r.is_some())).unwrap_or(false)
}

/// Calls `f` with the running loop, if any.
pub(crate) fn with_running<R>(f: impl FnOnce(&Rc<Core>) -> R) -> Option<R> {
    RUNNING.try_with(|r| r.try_borrow().ok().and_then(|r| r.as_ref().map(f))).ok().flatten()
}

/// Returns the running loop.
///
/// # Panics
///
/// "no running event loop" if no loop is running on this thread.
#[track_caller]
pub(crate) fn current() -> Rc<Core> {
    match with_running(Rc::clone) {
        Some(core) => core,
        None => panic!("no running event loop"),
    }
}

/// Wakes `key` if its loop is the one running on this thread; returns false otherwise.
pub(crate) fn wake_on_running_loop(key: TaskKey) -> bool {
    with_running(|core| {
        if core.remote.slot == key.slot() {
            core.wake_local(key);
            true
        } else {
            false
        }
    })
    .unwrap_or(false)
}

/// Spawns a task on the running loop (asyncio's `asyncio.create_task`).
///
/// The task starts lazily: `spawn` only queues its first step, and the caller keeps running
/// until it awaits something. Dropping the returned [`Task`] detaches the task.
///
/// # Panics
///
/// "no running event loop" outside a running loop (use [`try_spawn`] to get an error instead, or
/// [`EventLoop::spawn`]); and if more than 67,108,864 tasks are alive on the loop.
///
/// # Examples
///
/// ```
/// let out = aioloop::run(async {
///     let t = aioloop::spawn(async { "hello" });
///     t.await.unwrap()
/// });
/// assert_eq!(out, "hello");
/// ```
#[track_caller]
pub fn spawn<F>(fut: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let at = std::panic::Location::caller();
    let mut fut = Some(fut);
    match with_running(|core| core.spawn_at(fut.take().expect("called once"), at)) {
        Some(task) => task,
        None => panic!("no running event loop"),
    }
}

/// Spawns a task on the running loop, or returns [`NoRunningLoop`] if there is none.
///
/// # Examples
///
/// ```
/// assert!(aioloop::try_spawn(async {}).is_err());
/// aioloop::run(async { assert!(aioloop::try_spawn(async {}).is_ok()) });
/// ```
#[track_caller]
pub fn try_spawn<F>(fut: F) -> Result<Task<F::Output>, NoRunningLoop>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let at = std::panic::Location::caller();
    with_running(|core| core.spawn_at(fut, at)).ok_or(NoRunningLoop)
}

/// Returns the running loop's time (virtual under virtual time; asyncio's `loop.time()`).
///
/// # Panics
///
/// "no running event loop" outside a running loop.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// lp.run_until_complete(async {
///     let t0 = aioloop::now();
///     aioloop::sleep(Duration::from_secs(2)).await;
///     assert_eq!(aioloop::now() - t0, Duration::from_secs(2));
/// });
/// ```
#[track_caller]
pub fn now() -> Instant {
    let core = current();
    core.clock.instant(core.clock.now_ns())
}

/// Schedules `f` on the running loop for the next iteration (asyncio's
/// `get_running_loop().call_soon(f)`); see [`EventLoop::call_soon`].
///
/// # Panics
///
/// "no running event loop" outside a running loop.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// aioloop::run(async {
///     let ran = Rc::new(Cell::new(false));
///     let r = ran.clone();
///     aioloop::call_soon(move || r.set(true));
///     aioloop::yield_now().await; // callbacks queued before the yield run first
///     assert!(ran.get());
/// });
/// ```
#[track_caller]
pub fn call_soon(f: impl FnOnce() + 'static) -> Handle {
    let core = current();
    Handle::new(&core, core.call_soon_action(Action::Callback(Box::new(f))))
}

/// Schedules `f` on the running loop `delay` from now; see [`EventLoop::call_later`].
///
/// # Panics
///
/// "no running event loop" outside a running loop.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// aioloop::run(async {
///     let h = aioloop::call_later(Duration::from_secs(60), || unreachable!());
///     h.cancel();
/// });
/// ```
#[track_caller]
pub fn call_later(delay: Duration, f: impl FnOnce() + 'static) -> TimerHandle {
    let core = current();
    let deadline = core.deadline_after(delay);
    TimerHandle::new(&core, deadline, Action::Callback(Box::new(f)))
}

/// Schedules `f` on the running loop at `when` (loop time); see [`EventLoop::call_at`].
///
/// # Panics
///
/// "no running event loop" outside a running loop.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// aioloop::run(async {
///     let h = aioloop::call_at(aioloop::now() + Duration::from_secs(1), || {});
///     h.cancel();
/// });
/// ```
#[track_caller]
pub fn call_at(when: Instant, f: impl FnOnce() + 'static) -> TimerHandle {
    let core = current();
    let deadline = core.clock.ns_of(when);
    TimerHandle::new(&core, deadline, Action::Callback(Box::new(f)))
}

/// [`EventLoop::add_reader`] on the running loop (for tasks and callbacks, which cannot reach
/// the `EventLoop` while it runs).
///
/// # Errors
///
/// If the descriptor cannot be duplicated or registered.
///
/// # Panics
///
/// "no running event loop" outside a running loop.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, io::Write, os::fd::AsRawFd, rc::Rc};
/// aioloop::run(async {
///     let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
///     let raw = a.as_raw_fd();
///     let calls = Rc::new(Cell::new(0));
///     let c = calls.clone();
///     aioloop::add_reader(&a, move || {
///         c.set(c.get() + 1);
///         aioloop::remove_reader(raw); // a callback may remove itself
///     })
///     .unwrap();
///     b.write_all(b"x").unwrap();
///     aioloop::sleep(std::time::Duration::from_millis(20)).await;
///     assert_eq!(calls.get(), 1);
/// });
/// ```
#[track_caller]
pub fn add_reader(fd: impl std::os::fd::AsFd, callback: impl FnMut() + 'static) -> std::io::Result<()> {
    current().add_fd_callback(fd.as_fd(), crate::io::Dir::Read, Box::new(callback))
}

/// [`EventLoop::remove_reader`] on the running loop.
///
/// # Panics
///
/// "no running event loop" outside a running loop.
///
/// # Examples
///
/// See [`add_reader`].
#[track_caller]
pub fn remove_reader(fd: impl std::os::fd::AsRawFd) -> bool {
    current().remove_fd_callback(fd.as_raw_fd(), crate::io::Dir::Read)
}

/// [`EventLoop::add_writer`] on the running loop.
///
/// # Errors
///
/// If the descriptor cannot be duplicated or registered.
///
/// # Panics
///
/// "no running event loop" outside a running loop.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsRawFd;
/// aioloop::run(async {
///     let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
///     let raw = a.as_raw_fd();
///     aioloop::add_writer(&a, move || { aioloop::remove_writer(raw); }).unwrap();
///     aioloop::yield_now().await;
/// });
/// ```
#[track_caller]
pub fn add_writer(fd: impl std::os::fd::AsFd, callback: impl FnMut() + 'static) -> std::io::Result<()> {
    current().add_fd_callback(fd.as_fd(), crate::io::Dir::Write, Box::new(callback))
}

/// [`EventLoop::remove_writer`] on the running loop.
///
/// # Panics
///
/// "no running event loop" outside a running loop.
///
/// # Examples
///
/// See [`add_writer`].
#[track_caller]
pub fn remove_writer(fd: impl std::os::fd::AsRawFd) -> bool {
    current().remove_fd_callback(fd.as_raw_fd(), crate::io::Dir::Write)
}

/// Returns every unfinished task of the running loop (asyncio's `asyncio.all_tasks()`), the
/// calling task included; see [`EventLoop::tasks`].
///
/// # Panics
///
/// "no running event loop" outside a running loop.
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let t = aioloop::spawn(aioloop::sleep(std::time::Duration::from_millis(10)));
///     let dump = aioloop::all_tasks();
///     assert_eq!(dump.tasks.len(), 2); // this task and t
///     assert!(dump.tasks.iter().any(|s| s.id == t.id()));
///     println!("{dump}");
/// });
/// ```
#[track_caller]
pub fn all_tasks() -> crate::TaskDump {
    current().dump()
}

/// Returns the id of the task being polled on this thread's running loop, if any.
///
/// # Examples
///
/// ```
/// assert_eq!(aioloop::current_task(), None);
/// aioloop::run(async { assert!(aioloop::current_task().is_some()) });
/// ```
pub fn current_task() -> Option<crate::TaskId> {
    with_running(|core| {
        let key = core.current.get()?;
        core.tasks.borrow().get(key.index()).map(|e| TaskId(e.id))
    })
    .flatten()
}

/// Runs `fut` to completion on a fresh loop, then cancels every task left, runs the loop until
/// they have finished, and closes it (asyncio's `asyncio.run`).
///
/// Tasks left over are cancelled *after* `fut` returned, so their destructors run after it.
///
/// # Panics
///
/// - If called while a loop is running on this thread.
/// - If the loop's poller cannot be created (the OS is out of file descriptors).
/// - If `fut` panics, the panic resumes here.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let v = aioloop::run(async {
///     aioloop::sleep(Duration::from_millis(1)).await;
///     7
/// });
/// assert_eq!(v, 7);
/// ```
pub fn run<F: IntoFuture>(fut: F) -> F::Output {
    assert!(!is_running(), "aioloop::run() cannot be called from a running event loop");
    let mut lp = EventLoop::new().unwrap_or_else(|e| panic!("aioloop::run(): cannot create the event loop: {e}"));
    // asyncio.run's `finally`: the leftover tasks are cancelled inside the loop even when
    // `fut` panicked, then the panic resumes.
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run_until_complete(fut)));
    lp.cancel_all_tasks();
    lp.close();
    out.unwrap_or_else(|p| std::panic::resume_unwind(p))
}
