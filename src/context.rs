//! The free functions on this thread's running loop (asyncio's module-level API): [`spawn`],
//! [`spawn_eager`], [`try_spawn`], [`now`], [`current_task`], [`set_current_task_name`],
//! [`call_soon`], [`call_later`], [`call_at`], [`run`]. The running-loop thread-local itself lives
//! beside the engine, in `runtime/running.rs`.

use std::future::{Future, IntoFuture};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::callback_handle::{Handle, TimerHandle};
use crate::error::NoRunningLoop;
use crate::event_loop::EventLoop;
use crate::runtime::callbacks::Action;
use crate::runtime::running::{current, is_running, with_running};
use crate::runtime::task::TaskId;
use crate::task::Task;

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
#[inline(always)]
pub fn spawn<F>(fut: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let at = std::panic::Location::caller();
    // The future goes in through an `Option` the closure takes it from, not moved into the
    // closure: measured, the move made a spawn ~6 % slower (the future copied once more).
    let mut fut = Some(fut);
    crate::runtime::running::with_current(|core| core.spawn_at(fut.take().expect("called once"), at))
}

/// Spawns a task on the running loop and runs its first step at once, before returning
/// (asyncio 3.12's `eager_task_factory`).
///
/// The caller waits while the task runs up to its first suspension, exactly as a step the
/// loop runs: [`current_task`] names the new task meanwhile, a panic becomes its
/// [`TaskError::Panicked`](crate::TaskError::Panicked), and afterwards the caller's task is the
/// current one again. A task that finishes in that step is done when `spawn_eager` returns and
/// never enters the ready queue, which saves the queue's round trip and a loop iteration
/// (asyncio's reason for eager tasks: results that are often ready at once, such as cache
/// hits). A task that suspends goes on like any other: it is woken by what it waits for, and
/// can be cancelled.
///
/// Each eager step runs on the caller's stack: an eager task that spawns an eager task, and so
/// on, nests that deep (as asyncio's eager tasks recurse).
///
/// # Panics
///
/// "no running event loop" outside a running loop, as [`spawn`]; on a closed loop the task is
/// born cancelled, as with `spawn`.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// let log = Rc::new(RefCell::new(vec![]));
/// let l = log.clone();
/// aioloop::run(async move {
///     let l2 = l.clone();
///     let t = aioloop::spawn_eager(async move {
///         l2.borrow_mut().push("eager step");
///         42
///     });
///     l.borrow_mut().push("spawn_eager returned");
///     assert!(t.is_done()); // finished in its first step, without a loop iteration
///     assert_eq!(t.await.unwrap(), 42);
/// });
/// assert_eq!(*log.borrow(), ["eager step", "spawn_eager returned"]);
/// ```
#[track_caller]
pub fn spawn_eager<F>(fut: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let at = std::panic::Location::caller();
    // The loop is taken out of the thread-local before the step runs, which may use it too.
    match with_running(Rc::clone) {
        Some(core) => core.spawn_eager_at(fut, at),
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
    current().add_fd_callback(fd.as_fd(), crate::runtime::reactor::Dir::Read, Box::new(callback))
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
    current().remove_fd_callback(fd.as_raw_fd(), crate::runtime::reactor::Dir::Read)
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
    current().add_fd_callback(fd.as_fd(), crate::runtime::reactor::Dir::Write, Box::new(callback))
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
    current().remove_fd_callback(fd.as_raw_fd(), crate::runtime::reactor::Dir::Write)
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
        let key = core.current_task()?;
        core.tasks.id_of(key).map(TaskId)
    })
    .flatten()
}

/// Names the task being polled on this thread's running loop (asyncio's
/// `asyncio.current_task().set_name(name)`), as [`Task::set_name`] does through a handle.
///
/// This is how the main task of [`EventLoop::run_until_complete`] or [`run`], which has no
/// handle, gets a name in task dumps, exception reports and traces.
///
/// # Panics
///
/// "no running task" outside a task of a running loop.
///
/// # Examples
///
/// ```
/// let mut lp = aioloop::EventLoop::builder().trace(true).build().unwrap();
/// let id = lp.run_until_complete(async {
///     aioloop::set_current_task_name("main");
///     aioloop::current_task().unwrap()
/// });
/// assert_eq!(lp.trace().name(id), "main");
/// ```
#[track_caller]
pub fn set_current_task_name(name: impl Into<String>) {
    let named = with_running(|core| {
        let key = core.current_task()?;
        let id = core.tasks.id_of(key)?;
        core.set_task_name(id, name.into());
        Some(())
    });
    if named.flatten().is_none() {
        panic!("no running task");
    }
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
