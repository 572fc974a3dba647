//! [`gather`](crate::gather) and [`gather_settled`](crate::gather_settled): wait for all, in
//! order; the first failure ends a `gather` (its members are cancelled if the awaiting task is).

use crate::error::TaskError;
use crate::runtime::members::WakeWhen;
use crate::task::IntoTask;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{into_tasks, Members};

/// Waits for tasks running concurrently and returns their values in argument order (asyncio's
/// `gather`).
///
/// The first member that fails (panics, or is cancelled) completes the gather with that error;
/// the other members keep running. Dropping a gather that has not completed cancels all its
/// members (so cancelling the task that awaits it cancels them). `gather` of nothing gives
/// `Ok(vec![])`.
///
/// The members are [`Task`](crate::Task)s, each used as itself; spawn plain futures first
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
