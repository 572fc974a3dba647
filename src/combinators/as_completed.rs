//! [`as_completed`](crate::as_completed): the outcomes in the order the tasks finish, with an
//! optional overall deadline.

use crate::callback_handle::TimerHandle;
use crate::error::{TaskError, TimeoutError};
use crate::runtime::callbacks::Action;
use crate::runtime::members::WakeWhen;
use crate::task::IntoTask;
use futures_core::Stream;
use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{into_tasks, Members};

/// Returns the outcomes of tasks in the order they finish (asyncio's `as_completed`), as a
/// [`Stream`]; [`AsCompleted::next`] awaits the next one.
///
/// Dropping it leaves the remaining tasks running. For an overall deadline (asyncio's
/// `as_completed(fs, timeout=...)`), see [`AsCompleted::with_timeout`]. Spawn plain futures
/// first, as for [`gather`](crate::gather).
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

impl<T> Unpin for AsCompleted<T> {}

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
