//! The handle of a task, [`Task`], and the futures that await it: [`Join`] (`task.await`) and
//! [`JoinRef`] (`(&mut task).await`); with the traits that let combinators take tasks or plain
//! futures ([`IntoTask`]) and let [`wait_for`](crate::wait_for) tell them apart ([`Awaitable`]).
//!
//! # Invariants
//! - A handle refers to its task's slab entry by key; the entry stays in the slab until the
//!   handle has taken the outcome or been dropped (then the task is *detached*: the loop removes
//!   its entry when it finishes).
//! - Polling a handle that finds the task pending records the running task as awaiting it (the
//!   `awaiting` link of [`task`](crate::task)), so that cancelling the awaiter cancels the task;
//!   the record is cleared when the handle's future is dropped or completes.

use std::cell::Cell;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::error::TaskError;
use crate::runtime::Core;
use crate::task::{JoinSlot, Link, Status, TaskId, TaskState};
use crate::waker::TaskKey;

/// A handle to a spawned task: await it for its outcome, or cancel it.
///
/// `task.await` gives `Result<T, TaskError>`: `Ok` with the task's value, `Err(Cancelled)` if it
/// was cancelled, `Err(Panicked(payload))` if it panicked. Awaiting a finished task returns at
/// once, without a loop iteration.
///
/// Dropping the handle *detaches* the task: it keeps running and the loop owns it (asyncio keeps
/// tasks alive the same way as long as the loop references them). Use [`Task::cancel`] to stop it.
///
/// `Task` implements [`IntoFuture`], not `Future`, so that [`gather`](crate::gather) can accept
/// either tasks or plain futures; `&mut Task` can be awaited too, which leaves the handle usable
/// afterwards (for example to check [`is_cancelled`](Task::is_cancelled) after a timeout).
///
/// Cancelling the task that awaits a `Task` cancels the awaited task as well (asyncio's
/// propagation down the await chain); [`shield`](crate::shield) stops that propagation.
///
/// # Panics
///
/// Awaiting a task panics (so the awaiting task ends with [`TaskError::Panicked`]) if the task
/// awaits itself ("Task cannot await on itself", asyncio's message), if it is awaited from a task
/// of another loop (its own loop cannot run meanwhile, so it would never finish), or if its
/// outcome was already taken by an earlier await.
///
/// # Examples
///
/// ```
/// let mut lp = aioloop::EventLoop::new().unwrap();
/// let n = lp.run_until_complete(async {
///     let t = aioloop::spawn(async { 40 + 2 });
///     t.await.unwrap()
/// });
/// assert_eq!(n, 42);
/// ```
pub struct Task<T> {
    core: Rc<Core>,
    key: TaskKey,
    id: u64,
    /// The final state, once the outcome was taken and the entry removed.
    finished: Cell<Option<TaskState>>,
    /// The task that awaits this one (its `awaiting` link points here), while polled pending.
    linker: Cell<Option<TaskKey>>,
    _output: PhantomData<fn() -> T>,
}

impl<T> Task<T> {
    pub(crate) fn new(core: Rc<Core>, key: TaskKey, id: u64) -> Task<T> {
        Task { core, key, id, finished: Cell::new(None), linker: Cell::new(None), _output: PhantomData }
    }

    pub(crate) fn key(&self) -> TaskKey {
        self.key
    }

    pub(crate) fn core(&self) -> &Rc<Core> {
        &self.core
    }

    /// Requests the task's cancellation; returns false only if it already finished.
    ///
    /// The task becomes [`Cancelled`](TaskState::Cancelled) the next time the loop runs it: its
    /// future is dropped instead of polled, so its destructors are its cleanup. A task that has
    /// not started yet never runs its body. Calling `cancel` again before that returns true again.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let mut t = lp.spawn(aioloop::sleep(Duration::from_secs(10)));
    /// assert!(t.cancel());
    /// assert!(t.cancel()); // still a request: true again
    /// let r = lp.run_until_complete(&mut t);
    /// assert!(r.unwrap_err().is_cancelled());
    /// assert!(!t.cancel()); // finished: false
    /// ```
    pub fn cancel(&self) -> bool {
        self.finished.get().is_none() && self.core.cancel_task(self.key)
    }

    /// Returns the task's state.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.spawn(async {});
    /// t.cancel();
    /// lp.run_until_complete(aioloop::yield_now());
    /// assert_eq!(t.state(), aioloop::TaskState::Cancelled);
    /// ```
    pub fn state(&self) -> TaskState {
        match self.finished.get() {
            Some(s) => s,
            None => self.core.status_of(self.key).map_or(TaskState::Cancelled, Status::public),
        }
    }

    /// Returns true if the task finished: with a value, a panic, or cancelled (asyncio's `done()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.spawn(async {});
    /// assert!(!t.is_done());
    /// lp.run_until_complete(aioloop::yield_now());
    /// assert!(t.is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        matches!(self.state(), TaskState::Done | TaskState::Cancelled)
    }

    /// Returns true if the task was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.spawn(async {});
    /// t.cancel();
    /// assert!(!t.is_cancelled()); // a request: it takes effect when the loop runs the task
    /// lp.run_until_complete(aioloop::yield_now());
    /// assert!(t.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.state() == TaskState::Cancelled
    }

    /// Returns the task's id.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.spawn(async { aioloop::current_task() });
    /// let id = t.id();
    /// assert_eq!(lp.run_until_complete(t).unwrap(), Some(id));
    /// ```
    pub fn id(&self) -> TaskId {
        TaskId(self.id)
    }

    /// Returns the task's name: the one given with [`set_name`](Self::set_name), or `Task-<id>`.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.spawn(async {});
    /// t.set_name("fetcher");
    /// assert_eq!(t.name(), "fetcher");
    /// ```
    pub fn name(&self) -> String {
        self.core.task_name(self.id)
    }

    /// Names the task (shown in reports about it).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.spawn(async {});
    /// t.set_name(format!("worker-{}", 1));
    /// assert_eq!(t.name(), "worker-1");
    /// ```
    pub fn set_name(&self, name: impl Into<String>) {
        let name = name.into();
        if let Some(tracer) = &self.core.tracer {
            tracer.borrow_mut().rename(crate::TaskId(self.id), &name);
        }
        self.core.names.borrow_mut().insert(self.id, name);
    }

    /// Clears the awaiting link this handle's poll set in the task that awaits it.
    fn unlink(&self) {
        if let Some(linker) = self.linker.take() {
            self.core.unlink(linker, &Link::Task(self.key));
        }
    }

    /// Panics if the running task is this task (it would wait for itself forever) or runs on
    /// another loop (this task's loop cannot run meanwhile).
    fn check_awaiter(&self) {
        let foreign = crate::context::with_running(|running| !Rc::ptr_eq(running, &self.core)).unwrap_or(false);
        assert!(!foreign, "aioloop: a Task was awaited from a loop other than the one it belongs to");
        assert!(self.core.current.get() != Some(self.key), "Task cannot await on itself");
    }

    /// Polls for the task's outcome: what `task.await` does, for hand-written futures (such as
    /// a `poll_fn` that awaits a handle shared through an `Rc<RefCell<..>>`).
    ///
    /// Like `.await`, a pending poll records the running task as awaiting this one, so that
    /// cancelling the running task cancels this one too; the record lasts until the running
    /// task's next poll or until this handle is dropped.
    ///
    /// # Panics
    ///
    /// If the task's outcome was already returned; if the running task is this task ("Task
    /// cannot await on itself"); if called from a task of another loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::RefCell, future::poll_fn, rc::Rc};
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let shared = Rc::new(RefCell::new(lp.spawn(async { 7 })));
    /// let s = shared.clone();
    /// let v = lp.run_until_complete(poll_fn(move |cx| s.borrow_mut().poll_join(cx)));
    /// assert_eq!(v.unwrap(), 7);
    /// assert!(shared.borrow().is_done());
    /// ```
    pub fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>>
    where
        T: 'static,
    {
        self.poll_outcome(cx, true)
    }

    /// Polls for the outcome; `link` records the running task as awaiting this one.
    pub(crate) fn poll_outcome(&mut self, cx: &mut Context<'_>, link: bool) -> Poll<Result<T, TaskError>>
    where
        T: 'static,
    {
        assert!(self.finished.get().is_none(), "aioloop: a `Task` was polled after it completed");
        if link {
            self.check_awaiter();
        }
        let mut tasks = self.core.tasks.borrow_mut();
        let e = &mut tasks[self.key.index()];
        match e.status {
            Status::Idle | Status::Running => {
                let old = self.core.set_join_waker(e, self.key.index(), cx.waker());
                drop(tasks);
                drop(old);
                if link {
                    self.linker.set(self.core.set_awaiting_of_current(Link::Task(self.key)));
                }
                Poll::Pending
            }
            status => {
                let mut out: Option<T> = None;
                if let Some(cell) = e.cell.as_mut() {
                    cell.as_mut().take_output(&mut out);
                }
                let removed = tasks.remove(self.key.index());
                let emptied = tasks.is_empty();
                drop(tasks);
                if emptied {
                    self.core.release_burst_memory();
                }
                self.unlink();
                self.finished.set(Some(status.public()));
                let payload = crate::task::take_by_id(&self.core.panics, removed.id);
                drop(removed);
                Poll::Ready(match (status, out, payload) {
                    (Status::Done, Some(v), _) => Ok(v),
                    (Status::Panicked, _, Some(p)) => Err(TaskError::Panicked(p)),
                    _ => Err(TaskError::Cancelled),
                })
            }
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.unlink();
        if self.finished.get().is_some() {
            crate::task::take_by_id(&self.core.names, self.id);
            return;
        }
        let (removed, old_join) = {
            let mut tasks = self.core.tasks.borrow_mut();
            match tasks.get_mut(self.key.index()) {
                Some(e) if self.key.matches(e.id) && !e.status.is_finished() => {
                    // Detach: the loop owns the task now, and removes it when it finishes. A
                    // waker left by this handle has nobody to wake any more.
                    e.detached = true;
                    drop(tasks);
                    let old = self.core.update_extra_of(self.key, |x| match x.join {
                        JoinSlot::Waker(_) => std::mem::take(&mut x.join),
                        _ => JoinSlot::Empty,
                    });
                    (None, old)
                }
                Some(e) if self.key.matches(e.id) => (Some(tasks.remove(self.key.index())), None),
                _ => (None, None),
            }
        };
        drop(old_join);
        if let Some(entry) = removed {
            if self.core.tasks.borrow().is_empty() {
                self.core.release_burst_memory();
            }
            let payload = crate::task::take_by_id(&self.core.panics, self.id);
            if let Some(p) = payload {
                if !entry.quiet {
                    // Before the name is forgotten: the report names the task by it.
                    self.core.report_unretrieved(self.id, &*p);
                }
            }
            crate::task::take_by_id(&self.core.names, self.id);
            drop(entry);
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("id", &self.id).field("name", &self.name()).field("state", &self.state()).finish()
    }
}

/// The future of `task.await`: the task's outcome.
///
/// # Examples
///
/// ```
/// use std::future::IntoFuture;
/// let mut lp = aioloop::EventLoop::new().unwrap();
/// let t = lp.spawn(async { 7 });
/// let join: aioloop::Join<i32> = t.into_future();
/// assert_eq!(join.task().name(), format!("Task-{}", join.task().id()));
/// assert_eq!(lp.run_until_complete(join).unwrap(), 7);
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Join<T>(Task<T>);

impl<T> Join<T> {
    /// Returns the task being awaited.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::IntoFuture;
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// let join = lp.spawn(async {}).into_future();
    /// assert!(!join.task().is_done());
    /// ```
    pub fn task(&self) -> &Task<T> {
        &self.0
    }
}

impl<T: 'static> Future for Join<T> {
    type Output = Result<T, TaskError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.poll_outcome(cx, true)
    }
}

/// The future of `(&mut task).await`: the task's outcome, leaving the handle usable.
///
/// # Examples
///
/// ```
/// let mut lp = aioloop::EventLoop::new().unwrap();
/// let mut t = lp.spawn(async { 7 });
/// assert_eq!(lp.run_until_complete(&mut t).unwrap(), 7);
/// assert!(t.is_done());
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct JoinRef<'a, T>(&'a mut Task<T>);

impl<T> Drop for JoinRef<'_, T> {
    fn drop(&mut self) {
        self.0.unlink();
    }
}

impl<T: 'static> Future for JoinRef<'_, T> {
    type Output = Result<T, TaskError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.poll_outcome(cx, true)
    }
}

impl<T: 'static> IntoFuture for Task<T> {
    type Output = Result<T, TaskError>;
    type IntoFuture = Join<T>;
    fn into_future(self) -> Join<T> {
        Join(self)
    }
}

impl<'a, T: 'static> IntoFuture for &'a mut Task<T> {
    type Output = Result<T, TaskError>;
    type IntoFuture = JoinRef<'a, T>;
    fn into_future(self) -> JoinRef<'a, T> {
        JoinRef(self)
    }
}

/// Something [`gather`](crate::gather) and friends can wait on: a [`Task`], or a `'static`
/// future, which they spawn as a task (asyncio's `ensure_future`).
///
/// # Examples
///
/// ```
/// use aioloop::IntoTask;
/// let mut lp = aioloop::EventLoop::new().unwrap();
/// lp.run_until_complete(async {
///     let t = async { 1 }.into_task(); // spawned
///     let u = aioloop::spawn(async { 2 }).into_task(); // already a task
///     assert_eq!(t.await.unwrap() + u.await.unwrap(), 3);
/// });
/// ```
pub trait IntoTask {
    /// The task's value.
    type Output;
    /// Returns the task, spawning it on the running loop if it is a plain future.
    ///
    /// # Panics
    ///
    /// A plain future panics with "no running event loop" outside a running loop.
    fn into_task(self) -> Task<Self::Output>;
}

impl<F> IntoTask for F
where
    F: Future + 'static,
    F::Output: 'static,
{
    type Output = F::Output;
    fn into_task(self) -> Task<F::Output> {
        crate::context::spawn(self)
    }
}

impl<T> IntoTask for Task<T> {
    type Output = T;
    fn into_task(self) -> Task<T> {
        self
    }
}

/// Something [`wait_for`](crate::wait_for) can wait on: any future (run inside the caller's task,
/// as in asyncio 3.12), a [`Task`] or a `&mut Task`.
///
/// The difference shows with a zero timeout: a finished task gives its value, while a plain
/// future is never started (asyncio's `wait_for(coro, 0)`).
///
/// # Examples
///
/// ```
/// use aioloop::Awaitable;
/// fn is_task<A: Awaitable>(_: &A) -> bool { A::IS_TASK }
/// let lp = aioloop::EventLoop::new().unwrap();
/// assert!(is_task(&lp.spawn(async { 1 })));
/// assert!(!is_task(&async { 1 }));
/// ```
pub trait Awaitable {
    /// What awaiting it gives.
    type Output;
    /// The future that gives it.
    type Future: Future<Output = Self::Output>;
    /// True for tasks, whose handle can be polled without running anything.
    const IS_TASK: bool = false;
    /// Returns the future.
    fn into_awaitable(self) -> Self::Future;
}

impl<F: Future> Awaitable for F {
    type Output = F::Output;
    type Future = F;
    fn into_awaitable(self) -> F {
        self
    }
}

impl<T: 'static> Awaitable for Task<T> {
    type Output = Result<T, TaskError>;
    type Future = Join<T>;
    const IS_TASK: bool = true;
    fn into_awaitable(self) -> Join<T> {
        Join(self)
    }
}

impl<'a, T: 'static> Awaitable for &'a mut Task<T> {
    type Output = Result<T, TaskError>;
    type Future = JoinRef<'a, T>;
    const IS_TASK: bool = true;
    fn into_awaitable(self) -> JoinRef<'a, T> {
        JoinRef(self)
    }
}
