//! Structured concurrency: [`TaskGroup`] (asyncio 3.11's `TaskGroup`, trio's nursery).
//!
//! A group owns the tasks spawned through it: [`join`](TaskGroup::join) waits for all of them,
//! the first failure (a panic) cancels the others, and no child outlives the group: dropping the
//! group, or the future of `join` (because the task awaiting it was cancelled), cancels every
//! child still running.
//!
//! # How it learns of failures
//!
//! Each child's future is wrapped: the wrapper polls it inside `catch_unwind`, records a panic's
//! message in the group, cancels the siblings, and then resumes the panic, so the child's own
//! [`Task`] handle still ends with [`TaskError::Panicked`](crate::TaskError::Panicked) and its
//! payload. A child that is
//! cancelled (explicitly, or by the group) is not a failure (asyncio's K2).
//!
//! # A finished group
//!
//! Once [`join`](TaskGroup::join) has been polled (asyncio's `_exiting`: the body reached its
//! end) and no child is left, the group is *finished*: it owns nothing and will never be joined
//! again, so [`spawn`](TaskGroup::spawn) refuses a new child with a panic, as asyncio's
//! `create_task` raises `RuntimeError("TaskGroup ... is finished")`, rather than start a child no
//! one owns. A panic, not a child born cancelled (what a group that is *aborting* gives, because
//! a failure elsewhere may abort it at any moment): spawning on a finished group is a mistake in
//! the program, the same at every run, and asyncio reports it at the call. Children spawned while
//! `join` waits for others are still welcome (asyncio's K7).
//!
//! Production note: asyncio's group also cancels the *body* (the code between `async with` and
//! the end of the block) at its current `await` when a child fails. With drop-based
//! cancellation the body cannot be interrupted without losing the group itself, so here the
//! body runs until it reaches `join`, which then returns the error at once.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use crate::error::panic_message;
use crate::runtime::task::TaskId;
use crate::runtime::waker::TaskKey;
use crate::task::Task;

/// A group of tasks that are joined together and fail together (asyncio's `TaskGroup`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use aioloop::TaskGroup;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// lp.run_until_complete(async {
///     let group = TaskGroup::new();
///     let a = group.spawn(async { 1 });
///     let b = group.spawn(async {
///         aioloop::sleep(Duration::from_secs(1)).await;
///         2
///     });
///     group.join().await.unwrap();
///     assert_eq!(a.await.unwrap() + b.await.unwrap(), 3);
///
///     // The first failure cancels the siblings, and join reports every failure.
///     let group = TaskGroup::new();
///     let sibling = group.spawn(aioloop::sleep(Duration::from_secs(60)));
///     group.spawn(async { panic!("bad") });
///     let err = group.join().await.unwrap_err();
///     assert_eq!(err.failures().len(), 1);
///     assert_eq!(err.failures()[0].message, "bad");
///     assert!(sibling.is_cancelled());
/// });
/// ```
pub struct TaskGroup {
    inner: Rc<GroupState>,
}

#[derive(Default)]
struct GroupState {
    /// Children still running, by key.
    running: RefCell<Vec<TaskKey>>,
    /// Failures so far, in the order they happened.
    failures: RefCell<Vec<Failure>>,
    /// A child failed or the group was abandoned: the others were cancelled, and new children
    /// are born cancelled (asyncio's "TaskGroup is shutting down").
    aborting: Cell<bool>,
    /// `join` has been polled (asyncio's `_exiting`): with no child left, the group is finished.
    exiting: Cell<bool>,
    /// The task awaiting `join`.
    joiner: RefCell<Option<Waker>>,
}

/// One failure of a [`TaskGroup`]'s child.
///
/// # Examples
///
/// See [`TaskGroup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The child.
    pub task: TaskId,
    /// Its panic message (`<non-string panic payload>` for other payloads; the payload itself
    /// stays with the child's `Task` handle).
    pub message: String,
}

/// What [`TaskGroup::join`] returns when children failed: every failure (asyncio's
/// `ExceptionGroup`).
///
/// # Examples
///
/// See [`TaskGroup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupError {
    failures: Vec<Failure>,
}

impl GroupError {
    /// Returns the failures, in the order they happened.
    ///
    /// # Examples
    ///
    /// See [`TaskGroup`].
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unhandled errors in a TaskGroup ({} sub-exception{})",
            self.failures.len(),
            if self.failures.len() == 1 { "" } else { "s" }
        )?;
        for failure in &self.failures {
            write!(f, "; Task-{} panicked: {}", failure.task, failure.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for GroupError {}

impl fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("running", &self.inner.running.borrow().len())
            .field("failures", &self.inner.failures.borrow().len())
            .finish()
    }
}

impl Default for TaskGroup {
    fn default() -> Self {
        TaskGroup::new()
    }
}

impl GroupState {
    /// Cancels every child still running (first failure, or the group abandoned).
    fn abort(&self) {
        self.aborting.set(true);
        let running: Vec<TaskKey> = self.running.borrow().clone();
        if let Some(core) = crate::runtime::running::with_running(Rc::clone) {
            for key in running {
                core.cancel_task(key);
            }
        }
    }

    /// A child finished (or was dropped); wakes `join` when the last one is gone.
    fn child_done(&self, key: TaskKey) {
        let last = {
            let mut running = self.running.borrow_mut();
            running.retain(|&k| k != key);
            running.is_empty()
        };
        if last {
            let joiner = self.joiner.borrow().clone();
            if let Some(w) = joiner {
                w.wake();
            }
        }
    }
}

impl TaskGroup {
    /// Creates an empty group.
    ///
    /// # Examples
    ///
    /// See [`TaskGroup`].
    pub fn new() -> TaskGroup {
        TaskGroup { inner: Rc::default() }
    }

    /// Spawns a child on the running loop. Its handle works like any [`Task`]'s (dropping it
    /// does not detach the child from the group). A child spawned while the group is aborting
    /// (the iteration after a failure, and later) is cancelled before its first step, as
    /// asyncio refuses it.
    ///
    /// # Panics
    ///
    /// - "TaskGroup is finished ..." if the group is finished: its [`join`](Self::join) was
    ///   polled and no child is left (asyncio's `RuntimeError`). `fut` is dropped without being
    ///   polled. A group is joined once; spawn the next children on a new group.
    /// - "no running event loop" outside a running loop.
    ///
    /// ```should_panic
    /// use aioloop::TaskGroup;
    /// aioloop::run(async {
    ///     let group = TaskGroup::new();
    ///     group.spawn(async {});
    ///     group.join().await.unwrap();
    ///     group.spawn(async {}); // panics: the group is finished
    /// });
    /// ```
    ///
    /// # Examples
    ///
    /// See [`TaskGroup`].
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.inner.exiting.get() && self.inner.running.borrow().is_empty() {
            panic!("TaskGroup is finished: its join() saw every child finish; spawn on a new group");
        }
        let core = crate::runtime::running::current();
        let child = Child { fut, group: self.inner.clone(), key: Rc::new(Cell::new(None)), done: false };
        let key_slot = child.key.clone();
        let task = core.spawn_at(child, std::panic::Location::caller());
        key_slot.set(Some(task.key()));
        self.inner.running.borrow_mut().push(task.key());
        if self.inner.aborting.get() {
            task.cancel();
        }
        task
    }

    /// Waits until every child finished; returns the failures (panics) if there were any.
    ///
    /// Children may be added while `join` waits (asyncio's K7). The first failure cancels the
    /// other children; `join` returns once they have all finished. From then on (from the
    /// moment `join` has been polled and no child is left) the group is finished:
    /// [`spawn`](Self::spawn) panics.
    ///
    /// # Cancellation
    ///
    /// Dropping the future (for example because the task awaiting it was cancelled) cancels
    /// every child still running.
    ///
    /// # Examples
    ///
    /// See [`TaskGroup`].
    pub fn join(&self) -> GroupJoin<'_> {
        GroupJoin { group: self, done: false }
    }
}

impl Drop for TaskGroup {
    fn drop(&mut self) {
        // No child outlives its group.
        if !self.inner.running.borrow().is_empty() {
            self.inner.abort();
        }
    }
}

/// The future of [`TaskGroup::join`].
///
/// # Examples
///
/// See [`TaskGroup`].
#[must_use = "futures do nothing unless awaited"]
pub struct GroupJoin<'a> {
    group: &'a TaskGroup,
    done: bool,
}

impl fmt::Debug for GroupJoin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupJoin").field("group", self.group).finish()
    }
}

impl Future for GroupJoin<'_> {
    type Output = Result<(), GroupError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &self.group.inner;
        inner.exiting.set(true);
        if !inner.running.borrow().is_empty() {
            let mut joiner = inner.joiner.borrow_mut();
            if !joiner.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *joiner = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        self.done = true;
        let failures = std::mem::take(&mut *inner.failures.borrow_mut());
        Poll::Ready(if failures.is_empty() { Ok(()) } else { Err(GroupError { failures }) })
    }
}

impl Drop for GroupJoin<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.group.inner.joiner.borrow_mut().take();
            self.group.inner.abort();
        }
    }
}

pin_project! {
    /// A child's future: records its panic in the group, and tells the group when it is gone.
    struct Child<F> {
        #[pin]
        fut: F,
        group: Rc<GroupState>,
        key: Rc<Cell<Option<TaskKey>>>,
        done: bool,
    }

    impl<F> PinnedDrop for Child<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                // Cancelled (by the group, explicitly, or with the loop): not a failure.
                if let Some(key) = this.key.get() {
                    this.group.child_done(key);
                }
            }
        }
    }
}

impl<F: Future> Future for Child<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let fut = this.fut;
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => {
                *this.done = true;
                if let Some(key) = this.key.get() {
                    this.group.child_done(key);
                }
                Poll::Ready(out)
            }
            Err(payload) => {
                *this.done = true;
                let id = crate::context::current_task().map_or(0, TaskId::as_u64);
                this.group
                    .failures
                    .borrow_mut()
                    .push(Failure { task: TaskId(id), message: panic_message(&*payload).to_string() });
                // Abort in the next iteration, like asyncio's `_on_task_done` callback: siblings
                // already running in this iteration still finish (and may fail too).
                if let Some(core) = crate::runtime::running::with_running(Rc::clone) {
                    let group = this.group.clone();
                    core.call_soon_action(crate::runtime::callbacks::Action::Callback(Box::new(move || {
                        if !group.aborting.get() {
                            group.abort();
                        }
                    })));
                }
                if let Some(key) = this.key.get() {
                    // The group reports it (in `GroupError`): not "never retrieved".
                    if let Some(core) = crate::runtime::running::with_running(Rc::clone) {
                        core.set_quiet(key);
                    }
                    this.group.child_done(key);
                }
                // The child's own handle still gets the panic, with its payload.
                resume_unwind(payload)
            }
        }
    }
}
