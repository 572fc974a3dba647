//! Waiting on many tasks: [`gather`], [`gather_settled`], [`wait`], [`as_completed`] (with an
//! overall deadline: [`AsCompleted::with_timeout`]), and [`shield`] against cancellation.
//!
//! Each combinator owns the [`Task`] handles it waits on and registers itself as their joiner
//! through one shared [`Group`](crate::group): a finished member costs O(1), not a scan of all
//! members, and the combinator resumes two iterations after the member that satisfied its
//! condition finished, as asyncio's done-callbacks make it.
//!
//! # Invariants
//! - [`wait`] and [`as_completed`] never cancel anything; dropping them detaches the tasks.
//! - Cancelling the task that awaits a [`gather`] cancels its members, and the task finishes
//!   after them (asyncio's cancellation of a `_GatheringFuture`). A gather dropped before it
//!   completed cancels its members too. Once it has completed (first failure, or all done) the
//!   members still running are left alone, and their failures are not reported as unretrieved.
//! - Members that already finished when `gather` is first polled are collected without a loop
//!   iteration (asyncio 3.12); `wait`, `as_completed` and `shield` still take two iterations.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;

use crate::error::{TaskError, TimeoutError};
use crate::group::{Group, WakeWhen};
use crate::handle::{Action, TimerHandle};
use crate::join::{IntoTask, Task};
use crate::runtime::Core;
use crate::task::Link;
use crate::time::{PastDue, TimerSlot};

/// The members of a combinator and their group.
struct Members<T> {
    /// The handles; `None` once the member's outcome was taken.
    tasks: Vec<Option<Task<T>>>,
    /// The group the members report to.
    group: Rc<Group>,
    /// The loop (absent when there are no members).
    core: Option<Rc<Core>>,
    /// The members are registered with the group.
    registered: bool,
    /// Members whose outcome was not taken yet.
    left: usize,
    /// The task whose `awaiting` link points at this group (gather only).
    linker: Option<crate::waker::TaskKey>,
}

impl<T: 'static> Members<T> {
    fn new(tasks: Vec<Task<T>>, wake_when: WakeWhen) -> Members<T> {
        let core = tasks.first().map(|t| t.core().clone());
        let left = tasks.len();
        let group = Rc::new(Group::new(wake_when));
        Members { tasks: tasks.into_iter().map(Some).collect(), group, core, registered: false, left, linker: None }
    }

    /// Registers every member with the group (finished ones report at once, for the next iteration).
    fn register(&mut self) {
        if self.registered {
            return;
        }
        self.registered = true;
        if let Some(core) = &self.core {
            for (i, t) in self.tasks.iter().enumerate() {
                if let Some(t) = t {
                    core.join_group(t.key(), &self.group, i as u32);
                }
            }
        }
    }

    /// Takes the outcome of a finished member.
    fn take(&mut self, i: usize) -> Option<Result<T, TaskError>> {
        let mut task = self.tasks[i].take()?;
        let mut cx = Context::from_waker(Waker::noop());
        match task.poll_outcome(&mut cx, false) {
            Poll::Ready(r) => {
                self.left -= 1;
                Some(r)
            }
            Poll::Pending => {
                self.tasks[i] = Some(task);
                None
            }
        }
    }

    /// Returns the next member that finished (in finishing order), registering `cx` for more.
    fn poll_next_done(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, Result<T, TaskError>)>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.group.register(cx.waker());
        if !self.registered {
            // Members that already finished report through a `Member` handle: even they are
            // returned two iterations from now, as asyncio's done-callbacks would.
            self.register();
            return Poll::Pending;
        }
        loop {
            let next = self.group.done.borrow_mut().pop_front();
            match next {
                Some(i) => {
                    if let Some(r) = self.take(i as usize) {
                        return Poll::Ready(Some((i as usize, r)));
                    }
                }
                None => return Poll::Pending,
            }
        }
    }

    /// Records the running task as awaiting this group (cancelling it cancels the members).
    fn link(&mut self) {
        if let Some(core) = &self.core {
            self.linker = core.set_awaiting_of_current(Link::Group(self.group.clone()));
        }
    }

    /// Leaves the members to themselves: no joiner, no link, and no "never retrieved" report
    /// for a failure nobody will look at.
    fn release(&mut self) {
        if let Some(core) = &self.core {
            if let Some(linker) = self.linker.take() {
                core.unlink(linker, &Link::Group(self.group.clone()));
            }
            for t in self.tasks.iter().flatten() {
                if self.registered {
                    core.clear_join(t.key());
                }
            }
        }
        self.registered = false;
    }

    fn quiet_all(&self) {
        if let Some(core) = &self.core {
            for t in self.tasks.iter().flatten() {
                core.set_quiet(t.key());
            }
        }
    }
}

impl<T> Drop for Members<T> {
    fn drop(&mut self) {
        self.group.unregister();
        if let Some(core) = &self.core {
            if let Some(linker) = self.linker.take() {
                core.unlink(linker, &Link::Group(self.group.clone()));
            }
            if self.registered {
                for t in self.tasks.iter().flatten() {
                    core.clear_join(t.key());
                }
            }
        }
    }
}

fn into_tasks<I>(items: I) -> Vec<Task<<I::Item as IntoTask>::Output>>
where
    I: IntoIterator,
    I::Item: IntoTask,
{
    items.into_iter().map(IntoTask::into_task).collect()
}

/// Waits for tasks running concurrently and returns their values in argument order (asyncio's
/// `gather`).
///
/// The first member that fails (panics, or is cancelled) completes the gather with that error;
/// the other members keep running. Dropping a gather that has not completed cancels all its
/// members (so cancelling the task that awaits it cancels them). `gather` of nothing gives
/// `Ok(vec![])`.
///
/// The members are [`Task`]s, each used as itself; spawn plain futures first
/// (`futs.map(aioloop::spawn)`), as asyncio's `gather` wraps each coroutine in a task (see
/// [`IntoTask`]).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let v = lp.run_until_complete(async {
///     aioloop::gather((1..=3u64).map(|i| {
///         aioloop::spawn(async move {
///             aioloop::sleep(Duration::from_secs(4 - i)).await; // finish in reverse order
///             i * 10
///         })
///     }))
///     .await
/// });
/// assert_eq!(v.unwrap(), [10, 20, 30]);
/// ```
pub fn gather<I>(items: I) -> Gather<<I::Item as IntoTask>::Output>
where
    I: IntoIterator,
    I::Item: IntoTask,
    <I::Item as IntoTask>::Output: 'static,
{
    let tasks = into_tasks(items);
    let n = tasks.len();
    Gather {
        members: Members::new(tasks, WakeWhen::FirstFailure),
        results: (0..n).map(|_| None).collect(),
        done: false,
    }
}

/// The future of [`gather`].
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let g: aioloop::Gather<i32> = aioloop::gather((1..=2).map(|i| aioloop::spawn(async move { i })));
///     assert_eq!(g.await.unwrap(), [1, 2]);
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Gather<T> {
    members: Members<T>,
    results: Vec<Option<T>>,
    done: bool,
}

impl<T> std::fmt::Debug for Gather<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gather").field("members", &self.results.len()).field("left", &self.members.left).finish()
    }
}

// The values are never pinned: they are moved out when the gather completes.
impl<T> Unpin for Gather<T> {}
impl<T> Unpin for GatherSettled<T> {}
impl<T> Unpin for AsCompleted<T> {}

impl<T: 'static> Gather<T> {
    fn complete(&mut self) -> Vec<T> {
        self.done = true;
        self.members.release();
        std::mem::take(&mut self.results).into_iter().map(|v| v.expect("every member has a value")).collect()
    }

    /// The first failure completes the gather; the others keep running, unobserved.
    fn complete_early(&mut self, e: TaskError) -> TaskError {
        self.done = true;
        self.members.release();
        self.members.quiet_all();
        e
    }

    /// Collects members that finished before the first poll, without an iteration (asyncio 3.12).
    fn take_finished(&mut self) -> Option<TaskError> {
        for i in 0..self.members.tasks.len() {
            let finished = self.members.tasks[i].as_ref().is_some_and(|t| t.is_done());
            if finished {
                match self.members.take(i) {
                    Some(Ok(v)) => self.results[i] = Some(v),
                    Some(Err(e)) => return Some(e),
                    None => {}
                }
            }
        }
        None
    }
}

impl<T: 'static> Future for Gather<T> {
    type Output = Result<Vec<T>, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        assert!(!this.done, "aioloop: a `Gather` was polled after it completed");
        if !this.members.registered {
            if let Some(e) = this.take_finished() {
                return Poll::Ready(Err(this.complete_early(e)));
            }
            if this.members.left == 0 {
                return Poll::Ready(Ok(this.complete()));
            }
        }
        loop {
            match this.members.poll_next_done(cx) {
                Poll::Ready(Some((i, Ok(v)))) => this.results[i] = Some(v),
                Poll::Ready(Some((_, Err(e)))) => return Poll::Ready(Err(this.complete_early(e))),
                Poll::Ready(None) => return Poll::Ready(Ok(this.complete())),
                Poll::Pending => {
                    this.members.link();
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<T> Drop for Gather<T> {
    fn drop(&mut self) {
        // A gather whose outcome was decided (a member failed) is done in asyncio's sense:
        // dropping its waiter then leaves the other members running.
        if !self.done && !self.members.group.outer_done() {
            for t in self.members.tasks.iter().flatten() {
                t.cancel();
            }
        }
    }
}

/// Like [`gather`], but waits for every member and returns each outcome, failures included
/// (asyncio's `gather(..., return_exceptions=True)`).
///
/// # Examples
///
/// ```
/// let out = aioloop::run(async {
///     let ok = aioloop::spawn(async { 1 });
///     let bad = aioloop::spawn(async { panic!("no") });
///     aioloop::gather_settled([ok, bad]).await
/// });
/// assert_eq!(out[0].as_ref().unwrap(), &1);
/// assert!(out[1].as_ref().unwrap_err().is_panic());
/// ```
pub fn gather_settled<I>(items: I) -> GatherSettled<<I::Item as IntoTask>::Output>
where
    I: IntoIterator,
    I::Item: IntoTask,
    <I::Item as IntoTask>::Output: 'static,
{
    let tasks = into_tasks(items);
    let n = tasks.len();
    GatherSettled {
        members: Members::new(tasks, WakeWhen::AllFinished),
        results: (0..n).map(|_| None).collect(),
        done: false,
    }
}

/// The future of [`gather_settled`].
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let g: aioloop::GatherSettled<i32> = aioloop::gather_settled(vec![aioloop::spawn(async { 1 })]);
///     assert_eq!(g.await[0].as_ref().unwrap(), &1);
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct GatherSettled<T> {
    members: Members<T>,
    results: Vec<Option<Result<T, TaskError>>>,
    done: bool,
}

impl<T> std::fmt::Debug for GatherSettled<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatherSettled").field("members", &self.results.len()).field("left", &self.members.left).finish()
    }
}

impl<T: 'static> Future for GatherSettled<T> {
    type Output = Vec<Result<T, TaskError>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        assert!(!this.done, "aioloop: a `GatherSettled` was polled after it completed");
        if !this.members.registered {
            for i in 0..this.members.tasks.len() {
                if this.members.tasks[i].as_ref().is_some_and(|t| t.is_done()) {
                    this.results[i] = this.members.take(i);
                }
            }
        }
        loop {
            match this.members.poll_next_done(cx) {
                Poll::Ready(Some((i, r))) => this.results[i] = Some(r),
                Poll::Ready(None) => {
                    this.done = true;
                    this.members.release();
                    let results = std::mem::take(&mut this.results);
                    return Poll::Ready(results.into_iter().map(|r| r.expect("every member has an outcome")).collect());
                }
                Poll::Pending => {
                    this.members.link();
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<T> Drop for GatherSettled<T> {
    fn drop(&mut self) {
        if !self.done {
            for t in self.members.tasks.iter().flatten() {
                t.cancel();
            }
        }
    }
}

/// When [`wait`] returns.
///
/// # Examples
///
/// ```
/// assert_ne!(aioloop::ReturnWhen::FirstCompleted, aioloop::ReturnWhen::AllCompleted);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnWhen {
    /// As soon as any task finishes (or is cancelled).
    FirstCompleted,
    /// As soon as any task panics, or when all have finished.
    FirstException,
    /// When every task has finished.
    AllCompleted,
}

/// Waits for tasks until `return_when` holds or `timeout` passes, and returns them split into
/// `(done, pending)` (asyncio's `asyncio.wait`).
///
/// `wait` never cancels anything and never fails: on timeout the pending tasks keep running.
/// The split is made when `wait` resumes, so `done` may hold more tasks than the one that
/// triggered the return. A cancelled task counts as done; for `FirstException` only a panic is an
/// "exception". Unlike asyncio (which raises `ValueError`), an empty input returns at once with
/// two empty vectors.
///
/// # Examples
///
/// The seeds' `phase` program, on virtual time:
///
/// ```
/// use std::time::Duration;
/// use aioloop::ReturnWhen;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// lp.run_until_complete(async {
///     let phases: Vec<_> = (0..3u64)
///         .map(|i| aioloop::spawn(aioloop::sleep(Duration::from_secs(5 * i))))
///         .collect();
///     let (done, pending) = aioloop::wait(phases, Some(Duration::from_secs(6)), ReturnWhen::AllCompleted).await;
///     assert_eq!((done.len(), pending.len()), (2, 1));
///     for t in &pending {
///         t.cancel();
///     }
/// });
/// ```
pub fn wait<T, I>(tasks: I, timeout: Option<Duration>, return_when: ReturnWhen) -> Wait<T>
where
    I: IntoIterator<Item = Task<T>>,
    T: 'static,
{
    let tasks: Vec<Task<T>> = tasks.into_iter().collect();
    let wake_when = match return_when {
        ReturnWhen::FirstCompleted => WakeWhen::AnyFinished,
        ReturnWhen::FirstException => WakeWhen::FirstPanic,
        ReturnWhen::AllCompleted => WakeWhen::AllFinished,
    };
    Wait {
        tasks,
        group: Rc::new(Group::new(wake_when)),
        timeout,
        timer: None,
        return_when,
        registered: false,
        finished: 0,
        triggered: false,
    }
}

/// The future of [`wait`]: `(done, pending)`.
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let w: aioloop::Wait<()> = aioloop::wait(vec![], None, aioloop::ReturnWhen::AllCompleted);
///     let (done, pending) = w.await;
///     assert!(done.is_empty() && pending.is_empty());
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Wait<T> {
    tasks: Vec<Task<T>>,
    group: Rc<Group>,
    timeout: Option<Duration>,
    timer: Option<TimerSlot>,
    return_when: ReturnWhen,
    registered: bool,
    /// Members whose finishing was reported to the group.
    finished: usize,
    /// The return condition held (a member finished or panicked, per `return_when`).
    triggered: bool,
}

impl<T> std::fmt::Debug for Wait<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wait").field("tasks", &self.tasks.len()).field("return_when", &self.return_when).finish()
    }
}

impl<T: 'static> Future for Wait<T> {
    type Output = (Vec<Task<T>>, Vec<Task<T>>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.tasks.is_empty() {
            return Poll::Ready((Vec::new(), Vec::new()));
        }
        let core = this.tasks[0].core().clone();
        this.group.register(cx.waker());
        if !this.registered {
            // Register and wait, even for members that already finished: asyncio's `wait`
            // resumes two iterations later in every case.
            this.registered = true;
            for (i, t) in this.tasks.iter().enumerate() {
                core.join_group(t.key(), &this.group, i as u32);
            }
            if let Some(d) = this.timeout {
                // A real timer even for a zero timeout: it fires next iteration, like call_later(0).
                let mut timer = TimerSlot::new(&core, core.deadline_after(d), PastDue::Heap);
                timer.poll_fired(cx);
                this.timer = Some(timer);
            }
            return Poll::Pending;
        }
        loop {
            let Some(i) = this.group.done.borrow_mut().pop_front() else { break };
            this.finished += 1;
            let panicked = core.status_of(this.tasks[i as usize].key()) == Some(crate::task::Status::Panicked);
            match this.return_when {
                ReturnWhen::FirstCompleted => this.triggered = true,
                ReturnWhen::FirstException if panicked => this.triggered = true,
                _ => {}
            }
        }
        let timed_out = this.timer.as_mut().is_some_and(|t| t.poll_fired(cx));
        if !(this.triggered || timed_out || this.finished == this.tasks.len()) {
            return Poll::Pending;
        }
        // Cancel the timer and unregister before splitting: `done` and `pending` are computed
        // now, when `wait` resumes, so `done` may hold more than the task that woke it.
        this.timer = None;
        for t in &this.tasks {
            core.clear_join(t.key());
        }
        // A member callback queued before now (a member finished in the last iteration) must
        // not wake the task again: asyncio's `_on_completion` does nothing once `wait` returned.
        this.group.unregister();
        this.registered = false;
        let (done, pending) = std::mem::take(&mut this.tasks).into_iter().partition(|t| t.is_done());
        Poll::Ready((done, pending))
    }
}

impl<T> Drop for Wait<T> {
    fn drop(&mut self) {
        if self.registered {
            if let Some(core) = self.tasks.first().map(|t| t.core().clone()) {
                for t in &self.tasks {
                    core.clear_join(t.key());
                }
            }
        }
    }
}

/// Returns the outcomes of tasks in the order they finish (asyncio's `as_completed`), as a
/// [`Stream`]; [`AsCompleted::next`] awaits the next one.
///
/// Dropping it leaves the remaining tasks running. For an overall deadline (asyncio's
/// `as_completed(fs, timeout=...)`), see [`AsCompleted::with_timeout`]. Spawn plain futures
/// first, as for [`gather`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let order = lp.run_until_complete(async {
///     let mut s = aioloop::as_completed([3u64, 1, 2].map(|i| {
///         aioloop::spawn(async move {
///             aioloop::sleep(Duration::from_secs(i)).await;
///             i
///         })
///     }));
///     let mut order = vec![];
///     while let Some(r) = s.next().await {
///         order.push(r.unwrap());
///     }
///     order
/// });
/// assert_eq!(order, [1, 2, 3]);
/// ```
pub fn as_completed<I>(items: I) -> AsCompleted<<I::Item as IntoTask>::Output>
where
    I: IntoIterator,
    I::Item: IntoTask,
    <I::Item as IntoTask>::Output: 'static,
{
    AsCompleted { members: Members::new(into_tasks(items), WakeWhen::EachFinished) }
}

/// The stream of [`as_completed`].
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let mut s: aioloop::AsCompleted<u8> = aioloop::as_completed(vec![aioloop::spawn(async { 1u8 })]);
///     assert_eq!(s.next().await.unwrap().unwrap(), 1);
///     assert!(s.next().await.is_none());
/// });
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct AsCompleted<T> {
    members: Members<T>,
}

impl<T> std::fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompleted").field("left", &self.members.left).finish()
    }
}

impl<T: 'static> AsCompleted<T> {
    /// Waits for the next task to finish and returns its outcome; `None` when all were returned.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let mut s = aioloop::as_completed(vec![aioloop::spawn(async { 'x' })]);
    ///     assert_eq!(s.next().await.unwrap().unwrap(), 'x');
    /// });
    /// ```
    pub async fn next(&mut self) -> Option<Result<T, TaskError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Returns how many outcomes are still to come.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let s = aioloop::as_completed((0..2).map(|i| aioloop::spawn(async move { i })));
    ///     assert_eq!(s.remaining(), 2);
    /// });
    /// ```
    pub fn remaining(&self) -> usize {
        self.members.left
    }

    /// Gives the stream an overall deadline, `timeout` from now (asyncio's
    /// `as_completed(fs, timeout=...)`): outcomes of tasks that finished before the deadline
    /// come as `Ok(outcome)`, in finishing order, even when taken after it; then each task still
    /// running at the deadline gives one `Err(TimeoutError)`, at once, and the stream ends.
    ///
    /// The tasks still running are not cancelled (asyncio's either); dropping the stream detaches
    /// them. The deadline counts from this call, as in asyncio 3.13, whose `as_completed` is an
    /// object that starts its timer when it is created (3.11's generator starts it at the first
    /// iteration, the same moment in `for f in as_completed(...)`). Finishing order is watched
    /// from this call on too, so a task that finishes before the deadline counts even if the
    /// stream is first polled after it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use aioloop::TimeoutError;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let got = lp.run_until_complete(async {
    ///     let tasks = [3u64, 1, 2].map(|s| {
    ///         aioloop::spawn(async move {
    ///             aioloop::sleep(Duration::from_secs(s)).await;
    ///             s
    ///         })
    ///     });
    ///     let mut s = aioloop::as_completed(tasks).with_timeout(Duration::from_millis(1500));
    ///     let mut got = vec![];
    ///     while let Some(r) = s.next().await {
    ///         got.push(r.map(|outcome| outcome.unwrap()));
    ///     }
    ///     got
    /// });
    /// assert_eq!(got, [Ok(1), Err(TimeoutError), Err(TimeoutError)]);
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> AsCompletedTimeout<T> {
        let cutoff: Rc<Cell<Option<usize>>> = Rc::default();
        let timer = self.members.core.clone().map(|core| {
            // Finishing order is recorded from now on (asyncio adds its done-callbacks here).
            self.members.register();
            let deadline = core.deadline_after(timeout);
            let (group, cut) = (self.members.group.clone(), cutoff.clone());
            // asyncio's `_on_timeout`: what finished so far is returned, the rest time out.
            let on_timeout = move || {
                cut.set(Some(group.done.borrow().len()));
                group.wake_combinator();
            };
            TimerHandle::new(&core, deadline, Action::Callback(Box::new(on_timeout)))
        });
        AsCompletedTimeout { members: self.members, cutoff, timer, released: false }
    }
}

impl<T: 'static> Stream for AsCompleted<T> {
    type Item = Result<T, TaskError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.members.poll_next_done(cx).map(|o| o.map(|(_, r)| r))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.members.left, Some(self.members.left))
    }
}

/// The stream of [`AsCompleted::with_timeout`]: `Ok(outcome)` for each task that finished before
/// the deadline, then `Err(TimeoutError)` for each task still running at it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// aioloop::run(async {
///     let t = aioloop::spawn(aioloop::sleep(Duration::from_secs(60)));
///     let mut s: aioloop::AsCompletedTimeout<()> =
///         aioloop::as_completed([t]).with_timeout(Duration::from_millis(10));
///     assert_eq!(s.remaining(), 1);
///     assert_eq!(s.next().await.unwrap().unwrap_err(), aioloop::TimeoutError);
///     assert!(s.next().await.is_none());
/// });
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct AsCompletedTimeout<T> {
    members: Members<T>,
    /// Set by the deadline's callback: how many finished members were queued (not returned yet)
    /// when it ran; counts down as they are returned. `None` before the deadline.
    cutoff: Rc<Cell<Option<usize>>>,
    /// The deadline's callback (`None` without members).
    timer: Option<TimerHandle>,
    /// The members no longer report to the group (the deadline passed).
    released: bool,
}

impl<T> std::fmt::Debug for AsCompletedTimeout<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompletedTimeout")
            .field("left", &self.members.left)
            .field("expired", &self.cutoff.get().is_some())
            .finish()
    }
}

impl<T: 'static> AsCompletedTimeout<T> {
    /// Waits for the next outcome: `Ok` with a task's outcome, `Err(TimeoutError)` for a task
    /// the deadline left running; `None` when every task was accounted for.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// aioloop::run(async {
    ///     let mut s = aioloop::as_completed([aioloop::spawn(async { 'x' })]).with_timeout(Duration::from_secs(1));
    ///     assert_eq!(s.next().await.unwrap().unwrap().unwrap(), 'x');
    ///     assert!(s.next().await.is_none());
    /// });
    /// ```
    pub async fn next(&mut self) -> Option<Result<Result<T, TaskError>, TimeoutError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Returns how many items are still to come.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// aioloop::run(async {
    ///     let tasks = (0..2).map(|i| aioloop::spawn(async move { i }));
    ///     let s = aioloop::as_completed(tasks).with_timeout(Duration::from_secs(1));
    ///     assert_eq!(s.remaining(), 2);
    /// });
    /// ```
    pub fn remaining(&self) -> usize {
        self.members.left
    }

    /// Cancels the deadline's callback (everything was returned).
    fn stop_timer(&mut self) {
        if let Some(t) = self.timer.take() {
            t.cancel();
        }
    }
}

impl<T: 'static> Stream for AsCompletedTimeout<T> {
    type Item = Result<Result<T, TaskError>, TimeoutError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(cutoff) = this.cutoff.get() else {
            // Before the deadline: as `as_completed`.
            return match this.members.poll_next_done(cx) {
                Poll::Ready(Some((_, r))) => Poll::Ready(Some(Ok(r))),
                Poll::Ready(None) => {
                    this.stop_timer();
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            };
        };
        if !this.released {
            // Members that finish from now on are timed out: they report nowhere.
            this.released = true;
            this.members.release();
        }
        if this.members.left == 0 {
            return Poll::Ready(None);
        }
        // First what had finished when the deadline passed, in finishing order (asyncio's
        // queue holds them before the `None`s of the timeout).
        if cutoff > 0 {
            let next = this.members.group.done.borrow_mut().pop_front();
            this.cutoff.set(Some(cutoff - 1));
            if let Some(r) = next.and_then(|i| this.members.take(i as usize)) {
                return Poll::Ready(Some(Ok(r)));
            }
        }
        this.members.left -= 1;
        Poll::Ready(Some(Err(TimeoutError)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.members.left, Some(self.members.left))
    }
}

impl<T> Drop for AsCompletedTimeout<T> {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            t.cancel();
        }
    }
}

/// Awaits a task without passing cancellation on to it (asyncio's `shield`): if the task
/// awaiting the shield is cancelled, the shielded task keeps running. Spawn a plain future
/// first, as for [`gather`] (asyncio's `shield(coro)` wraps it in a task too).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
/// let inner = lp.spawn(async {
///     aioloop::sleep(Duration::from_secs(1)).await;
///     "inner finished"
/// });
/// let outer = lp.spawn(aioloop::shield(inner));
/// lp.run_until_complete(aioloop::yield_now());
/// outer.cancel();
/// lp.run_until_complete(aioloop::yield_now());
/// assert!(outer.is_cancelled());
/// // The inner task was detached, not cancelled: it keeps running and finishes.
/// ```
pub fn shield<A: IntoTask>(aw: A) -> Shield<A::Output> {
    Shield { task: aw.into_task(), group: Rc::new(Group::new(WakeWhen::AllFinished)), registered: false }
}

/// The future of [`shield`]: the shielded task's outcome.
///
/// # Examples
///
/// ```
/// aioloop::run(async {
///     let s: aioloop::Shield<i32> = aioloop::shield(aioloop::spawn(async { 3 }));
///     assert_eq!(s.await.unwrap(), 3);
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Shield<T> {
    task: Task<T>,
    group: Rc<Group>,
    registered: bool,
}

impl<T> Shield<T> {
    /// Returns the shielded task.
    ///
    /// # Examples
    ///
    /// ```
    /// aioloop::run(async {
    ///     let s = aioloop::shield(aioloop::spawn(async { 3 }));
    ///     assert!(!s.task().is_done());
    /// });
    /// ```
    pub fn task(&self) -> &Task<T> {
        &self.task
    }
}

impl<T> std::fmt::Debug for Shield<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shield").field("task", &self.task).finish()
    }
}

impl<T: 'static> Future for Shield<T> {
    type Output = Result<T, TaskError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // A finished task is returned at once (asyncio returns the inner future itself).
        // Otherwise the shield waits through a group, so it resumes two iterations after the
        // inner task finished, like asyncio's outer future; and it never sets the awaiting
        // link, so the awaiting task's cancellation does not reach the inner task.
        if this.registered {
            this.group.register(cx.waker());
            if this.group.done.borrow_mut().pop_front().is_none() {
                return Poll::Pending;
            }
        } else if !this.task.is_done() {
            this.registered = true;
            this.group.register(cx.waker());
            this.task.core().join_group(this.task.key(), &this.group, 0);
            return Poll::Pending;
        }
        this.task.poll_outcome(&mut Context::from_waker(Waker::noop()), false)
    }
}

impl<T> Drop for Shield<T> {
    fn drop(&mut self) {
        if self.registered {
            self.task.core().clear_join(self.task.key());
        }
    }
}
