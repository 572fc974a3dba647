//! [`wait`](crate::wait): the done and the pending, after a timeout or a [`ReturnWhen`] condition.

use crate::runtime::members::{Group, WakeWhen};
use crate::task::Task;
use crate::time::{PastDue, TimerSlot};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

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
            let panicked = core.status_of(this.tasks[i as usize].key()) == Some(crate::runtime::task::Status::Panicked);
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
