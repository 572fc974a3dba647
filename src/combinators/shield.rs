//! [`shield`](crate::shield): awaiting a task without passing a cancellation on to it.

use crate::error::TaskError;
use crate::runtime::members::{Group, WakeWhen};
use crate::task::{IntoTask, Task};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Awaits a task without passing cancellation on to it (asyncio's `shield`): if the task
/// awaiting the shield is cancelled, the shielded task keeps running. Spawn a plain future
/// first, as for [`gather`](crate::gather) (asyncio's `shield(coro)` wraps it in a task too).
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
