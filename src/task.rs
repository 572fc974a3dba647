//! The handle of a task, [`Task`]: a future of the task's outcome, and the way to cancel,
//! name or detach the task; [`AbortHandle`], a cloneable right to cancel it; and [`IntoTask`],
//! what the combinators take.
//!
//! # Invariants
//! - A handle refers to its task's table entry (its cell) by key; the entry stays until the
//!   handle has taken the outcome or been dropped (then the task is *detached*: the loop removes
//!   its entry when it finishes). An [`AbortHandle`] holds the key only: it never keeps an entry
//!   alive, and a stale key (the slot reused by another task) is told apart by its generation.
//! - Polling a handle that finds the task pending records the running task as awaiting it (the
//!   `awaiting` link of [`task`](crate::runtime::task)), so that cancelling the awaiter cancels the task;
//!   the record is cleared when the handle is dropped or completes, and at the awaiter's next
//!   step. A step that polls several pending handles (a `join_all`, a `select!`) awaits none of
//!   them in particular: its link says so (`Link::Several`), and cancelling it cancels only it.
//!
//! # Why the combinators take tasks, not any future
//!
//! `Task<T>` is a `Future<Output = Result<T, TaskError>>`, so that the ecosystem's combinators
//! (`join_all`, `FuturesUnordered`, `select!`) take it. A blanket `IntoTask for F: Future` would
//! then cover `Task` too, with `Output = Result<T, TaskError>`: `gather([task])` would give
//! `Vec<Result<T, _>>` through a wrapper task. Stable Rust has no specialization to prefer a
//! `Task`'s own impl, so [`IntoTask`] is implemented by `Task` alone, and a plain future is
//! spawned by the caller (`aioloop::spawn(fut)`, asyncio's `ensure_future` made explicit): a task
//! given to [`gather`](crate::gather) is used as itself, with asyncio's iteration counts.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::error::TaskError;
use crate::runtime::task::{JoinSlot, Link, Removal, Removed, Status, TaskId, TaskState};
use crate::runtime::waker::TaskKey;
use crate::runtime::Core;

/// A handle to a spawned task: await it for its outcome, or cancel it.
///
/// `Task<T>` is a [`Future`] of `Result<T, TaskError>`: `Ok` with the task's value,
/// `Err(Cancelled)` if it was cancelled, `Err(Panicked(payload))` if it panicked. Awaiting a
/// finished task returns at once, without a loop iteration. `(&mut task).await` leaves the handle
/// usable afterwards (for example to check [`is_cancelled`](Task::is_cancelled) after a timeout).
/// Being a future, a `Task` goes straight into the ecosystem's combinators: `join_all`,
/// `FuturesUnordered`, `select!` (it is a `FusedFuture`).
///
/// Dropping the handle *detaches* the task: it keeps running and the loop owns it (asyncio keeps
/// tasks alive the same way as long as the loop references them); [`detach`](Task::detach) says
/// so in words. That holds for a handle a combinator polled too: a `join_all` or a `select!` that
/// is dropped (finished with another branch, or its task cancelled) drops its handles, and the
/// tasks they name run to completion on their own. Use [`Task::cancel`], or an
/// [`AbortHandle`] from [`abort_handle`](Task::abort_handle), to stop a task.
///
/// Cancelling the task that awaits a `Task` cancels the awaited task as well (asyncio's
/// propagation down the await chain); [`shield`](crate::shield) stops that propagation. A task
/// that polls several pending handles in one step (a `join_all`, a `select!`) awaits none of
/// them in particular: cancelling it cancels only it, and its handles, dropped with its future,
/// detach their tasks. The record that a task awaits this one is cleared when this handle is
/// dropped or completes, and at the awaiting task's next step; a `&mut Task` has no destructor,
/// so one polled and then given up within a step (the losing side of a race, the handle kept)
/// still counts as awaited until that next step.
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
///
/// A `Task` in futures-lite's `zip`, a combinator that knows nothing of aioloop:
///
/// ```
/// use futures_lite::future::zip;
/// let mut lp = aioloop::EventLoop::new().unwrap();
/// let (a, b) = lp.run_until_complete(async {
///     zip(aioloop::spawn(async { 1 }), aioloop::spawn(async { 2 })).await
/// });
/// assert_eq!((a.unwrap(), b.unwrap()), (1, 2));
/// ```
pub struct Task<T> {
    core: Rc<Core>,
    key: TaskKey,
    id: u64,
    /// Two things in one word, so that a handle is 32 bytes (a million joined tasks keep a
    /// million handles): the final state, once the outcome was taken and the entry removed,
    /// and the task that awaits this one (its `awaiting` link points here) while polled
    /// pending. See [`Marks`].
    marks: Cell<Marks>,
    _output: PhantomData<fn() -> T>,
}

/// A handle's final state and its awaiter, packed: bits 0-2 the final state (0: not taken),
/// bit 3 "has an awaiter", bits 12-63 the awaiter's key without its loop slot (the awaiter
/// runs on the handle's own loop: `set_awaiting_of_current` names that loop's running task).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
struct Marks(u64);

// The awaiter's key, without its loop slot, fills the bits above `Marks::SHIFT`.
const _: () = assert!(crate::runtime::waker::INDEX_BITS + crate::runtime::waker::GEN_BITS == 64 - Marks::SHIFT);

impl Marks {
    const STATE: u64 = 0b111;
    const LINKED: u64 = 0b1000;
    const SHIFT: u32 = 12;
    /// The bits of a key below its loop slot (generation and index).
    const KEY_BITS: u64 = (1 << (crate::runtime::waker::INDEX_BITS + crate::runtime::waker::GEN_BITS)) - 1;

    fn finished(self) -> Option<TaskState> {
        match self.0 & Self::STATE {
            0 => None,
            1 => Some(TaskState::Pending),
            2 => Some(TaskState::Running),
            3 => Some(TaskState::Done),
            _ => Some(TaskState::Cancelled),
        }
    }

    fn with_finished(self, state: TaskState) -> Marks {
        let bits = match state {
            TaskState::Pending => 1,
            TaskState::Running => 2,
            TaskState::Done => 3,
            TaskState::Cancelled => 4,
        };
        Marks((self.0 & !Self::STATE) | bits)
    }

    /// The awaiter, on the loop in registry slot `slot`.
    fn linker(self, slot: u16) -> Option<TaskKey> {
        (self.0 & Self::LINKED != 0).then_some(TaskKey(((slot as u64) << (64 - Self::SHIFT)) | (self.0 >> Self::SHIFT)))
    }

    fn with_linker(self, linker: Option<TaskKey>) -> Marks {
        let state = self.0 & Self::STATE;
        match linker {
            Some(key) => Marks(state | Self::LINKED | ((key.0 & Self::KEY_BITS) << Self::SHIFT)),
            None => Marks(state),
        }
    }
}

impl<T> Task<T> {
    pub(crate) fn new(core: Rc<Core>, key: TaskKey, id: u64) -> Task<T> {
        Task { core, key, id, marks: Cell::new(Marks::default()), _output: PhantomData }
    }

    /// The final state, once the outcome was taken.
    #[inline]
    fn finished(&self) -> Option<TaskState> {
        self.marks.get().finished()
    }

    /// Takes the awaiter recorded by a pending poll.
    #[inline]
    fn take_linker(&self) -> Option<TaskKey> {
        let marks = self.marks.get();
        let linker = marks.linker(self.core.remote.slot());
        if linker.is_some() {
            self.marks.set(marks.with_linker(None));
        }
        linker
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
        self.finished().is_none() && self.core.cancel_task(self.key)
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
        match self.finished() {
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
        self.core.set_task_name(self.id, name.into());
    }

    /// Detaches the task: it keeps running, the loop owns it and drops its output when it
    /// finishes. This is what dropping the handle does; `detach` says so in words (in smol,
    /// dropping a task cancels it; here it never does).
    ///
    /// A panic of a detached task is reported to the loop's exception handler ("Task exception
    /// was never retrieved"), since nobody can read it any more.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let ran = Rc::new(Cell::new(false));
    /// let r = ran.clone();
    /// lp.spawn(async move { r.set(true) }).detach();
    /// lp.run_until_complete(aioloop::yield_now());
    /// assert!(ran.get()); // detached, not cancelled
    /// ```
    pub fn detach(self) {
        drop(self);
    }

    /// Returns a handle that can cancel the task and tell whether it finished, from anywhere on
    /// the loop's thread: a callback, or another task than the one awaiting this handle.
    ///
    /// An [`AbortHandle`] does not keep the task's outcome alive and cannot await it; it may be
    /// cloned freely.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let t = lp.spawn(aioloop::sleep(Duration::from_secs(60)));
    /// let abort = t.abort_handle();
    /// lp.call_later(Duration::from_secs(1), move || {
    ///     abort.cancel();
    /// });
    /// assert!(lp.run_until_complete(t).unwrap_err().is_cancelled());
    /// ```
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle { core: self.core.clone(), key: self.key }
    }

    /// Clears the awaiting link this handle's poll set in the task that awaits it.
    fn unlink(&self) {
        if let Some(linker) = self.take_linker() {
            self.core.unlink(linker, &Link::Task(self.key));
        }
    }

    /// Panics if the running task is this task (it would wait for itself forever) or runs on
    /// another loop (this task's loop cannot run meanwhile).
    fn check_awaiter(&self) {
        // (The core is alive, so its registry slot names it alone.)
        let foreign = crate::runtime::running::running_slot().is_some_and(|s| s != self.core.remote.slot());
        assert!(!foreign, "aioloop: a Task was awaited from a loop other than the one it belongs to");
        assert!(self.core.current_task() != Some(self.key), "Task cannot await on itself");
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
        assert!(self.finished().is_none(), "aioloop: a `Task` was polled after it completed");
        if link {
            self.check_awaiter();
        }
        let mut tasks = self.core.tasks.entries_mut();
        let e = &mut tasks[self.key.index()];
        match e.status {
            Status::Idle | Status::Running => {
                let old = self.core.set_join_waker(e, self.key.index(), cx.waker());
                drop(tasks);
                drop(old);
                if link {
                    let linker = self.core.set_awaiting_of_current(Link::Task(self.key));
                    self.marks.set(self.marks.get().with_linker(linker));
                }
                Poll::Pending
            }
            status => {
                drop(tasks);
                let Removed { mut cell, payload, .. } = self.core.remove_task(self.key, Removal::Taken);
                let mut out: Option<T> = None;
                if status == Status::Done {
                    cell.take_output(&mut out);
                }
                drop(cell); // the output is out: only the emptied cell's memory goes
                self.unlink();
                self.marks.set(self.marks.get().with_finished(status.public()));
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
        if self.finished().is_some() {
            // The outcome was taken (and the entry removed then); the name was kept for us.
            self.core.tasks.forget_name(self.id);
            return;
        }
        let (finished, old_join) = {
            let mut tasks = self.core.tasks.entries_mut();
            match tasks.get_mut(self.key.index()) {
                Some(e) if self.key.matches(e.id) && !e.status.is_finished() => {
                    // Detach: the loop owns the task now, and removes it when it finishes. A
                    // waker left by this handle has nobody to wake any more.
                    e.detached = true;
                    let has_extra = e.has_extra;
                    drop(tasks);
                    // (Most detached tasks were never awaited: no extra, no second lookup.)
                    let old = has_extra
                        .then(|| {
                            self.core.update_extra_of(self.key, |x| match x.join {
                                JoinSlot::Waker(_) => std::mem::take(&mut x.join),
                                _ => JoinSlot::Empty,
                            })
                        })
                        .flatten();
                    (false, old)
                }
                Some(e) if self.key.matches(e.id) => (true, None),
                _ => (false, None),
            }
        };
        drop(old_join);
        if finished {
            // Finished, outcome never taken: a panic is reported as never retrieved.
            let removed = self.core.remove_task(self.key, Removal::HandleDropped);
            drop(removed);
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("id", &self.id).field("name", &self.name()).field("state", &self.state()).finish()
    }
}

impl<T: 'static> Future for Task<T> {
    type Output = Result<T, TaskError>;

    /// Polls for the task's outcome ([`poll_join`](Task::poll_join)).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_outcome(cx, true)
    }
}

/// `select!` polls only the futures that are not terminated: a `Task` is once its outcome was
/// returned.
impl<T: 'static> futures_core::FusedFuture for Task<T> {
    fn is_terminated(&self) -> bool {
        self.finished().is_some()
    }
}

/// A cloneable right to cancel a task and to see whether it finished (tokio's `AbortHandle`),
/// from [`Task::abort_handle`].
///
/// It names the task by its key and keeps nothing of it alive: once the task finished (and even
/// once its entry is gone), [`cancel`](AbortHandle::cancel) returns false and
/// [`is_done`](AbortHandle::is_done) true. It belongs to the loop's thread, like the `Task`.
///
/// # Examples
///
/// A task awaits a worker; a third one cancels the worker through an abort handle, and the
/// awaiter gets `Err(Cancelled)`:
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let worker = lp.spawn(aioloop::sleep(Duration::from_secs(60)));
/// let abort = worker.abort_handle();
/// let awaiter = lp.spawn(worker);
/// lp.spawn(async move {
///     aioloop::sleep(Duration::from_secs(1)).await;
///     assert!(abort.cancel());
/// });
/// assert!(lp.run_until_complete(awaiter).unwrap().unwrap_err().is_cancelled());
/// ```
#[derive(Clone)]
pub struct AbortHandle {
    core: Rc<Core>,
    key: TaskKey,
}

impl AbortHandle {
    /// Requests the task's cancellation, as [`Task::cancel`] does; returns false only if it
    /// already finished.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.spawn(async { 1 });
    /// let abort = t.abort_handle();
    /// assert_eq!(lp.run_until_complete(t).unwrap(), 1);
    /// assert!(!abort.cancel()); // finished: false
    /// ```
    pub fn cancel(&self) -> bool {
        self.core.cancel_task(self.key)
    }

    /// Returns true if the task finished: with a value, a panic, or cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.spawn(async {});
    /// let abort = t.abort_handle();
    /// assert!(!abort.is_done());
    /// drop(t); // detached: the abort handle still sees it
    /// lp.run_until_complete(aioloop::yield_now());
    /// assert!(abort.is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        self.core.status_of(self.key).is_none_or(Status::is_finished)
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle").field("done", &self.is_done()).finish()
    }
}

/// What [`gather`](crate::gather), [`gather_settled`](crate::gather_settled),
/// [`as_completed`](crate::as_completed) and [`shield`](crate::shield) take: a [`Task`], used
/// as itself (asyncio's `ensure_future` returns a task unchanged: no wrapper task, no extra
/// iteration).
///
/// A plain future is not an `IntoTask`: spawn it first, `aioloop::spawn(fut)`, as asyncio's
/// `gather` wraps a coroutine in a task. (A blanket impl for every future would cover `Task`
/// too, a `Future` of `Result<T, TaskError>`, and stable Rust cannot prefer `Task`'s own impl;
/// see the module's docs.)
///
/// # Examples
///
/// ```
/// use aioloop::IntoTask;
/// let mut lp = aioloop::EventLoop::new().unwrap();
/// lp.run_until_complete(async {
///     let t = aioloop::spawn(async { 2 }).into_task(); // already a task: itself
///     assert_eq!(t.await.unwrap(), 2);
///     // A plain future: spawned by the caller.
///     let v = aioloop::gather((1..=2).map(|i| aioloop::spawn(async move { i }))).await;
///     assert_eq!(v.unwrap(), [1, 2]);
/// });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `Task`",
    label = "a plain future, not a spawned task",
    note = "spawn it first: `aioloop::spawn(fut)` (asyncio's gather wraps a coroutine in a task the same way)"
)]
pub trait IntoTask {
    /// The task's value.
    type Output;
    /// Returns the task.
    fn into_task(self) -> Task<Self::Output>;
}

impl<T> IntoTask for Task<T> {
    type Output = T;
    fn into_task(self) -> Task<T> {
        self
    }
}

/// Returns true if `F` is a [`Task`] or a `&mut Task`: what [`wait_for`](crate::wait_for)
/// treats as a task (with a zero timeout, a finished task gives its outcome and a pending one is
/// cancelled; a plain future is never started).
///
/// Production note: this is a question for specialization, which stable Rust lacks, and
/// `TypeId` needs a `'static` type with its parameter known. The type's name is the one property
/// of a generic `F` that names `Task` whatever its `T`; the comparison is made against
/// `type_name::<Task<()>>()`, so it follows the type wherever it is defined, and the zero-timeout
/// tests of `wait_for` (tests/wait_for.rs, W1 and W3) fail if the compiler ever prints it
/// differently.
pub(crate) fn is_task_handle<F: ?Sized>() -> bool {
    fn base(name: &str) -> &str {
        name.split('<').next().unwrap_or(name)
    }
    let name = std::any::type_name::<F>();
    base(name.strip_prefix("&mut ").unwrap_or(name)) == base(std::any::type_name::<Task<()>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Task<u64>>(), 32);
    }

    #[test]
    fn marks_keep_the_final_state_and_the_awaiter_apart() {
        let key = TaskKey::new(4095, crate::runtime::waker::MAX_TASKS - 1, (1 << 40) + 12345);
        let m = Marks::default();
        assert_eq!((m.finished(), m.linker(4095)), (None, None));
        let m = m.with_linker(Some(key));
        assert_eq!((m.finished(), m.linker(4095)), (None, Some(key)));
        for state in [TaskState::Pending, TaskState::Running, TaskState::Done, TaskState::Cancelled] {
            let m = m.with_finished(state);
            assert_eq!((m.finished(), m.linker(4095)), (Some(state), Some(key)));
            let m = m.with_linker(None);
            assert_eq!((m.finished(), m.linker(4095)), (Some(state), None));
        }
    }
}
