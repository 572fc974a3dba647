//! Waiting on many tasks: [`gather`], [`gather_settled`], [`wait`], [`as_completed`] (with an
//! overall deadline: [`AsCompleted::with_timeout`]), and [`shield`] against cancellation.
//!
//! Each combinator owns the [`Task`] handles it waits on and registers itself as their joiner
//! through one shared [`Group`](crate::runtime::members): a finished member costs O(1), not a scan of all
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

use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::error::TaskError;
use crate::runtime::members::{Group, WakeWhen};
use crate::runtime::task::Link;
use crate::runtime::Core;
use crate::task::{IntoTask, Task};

mod as_completed;
mod gather;
mod shield;
mod wait;

pub use as_completed::{as_completed, AsCompleted, AsCompletedTimeout};
pub use gather::{gather, gather_settled, Gather, GatherSettled};
pub use shield::{shield, Shield};
pub use wait::{wait, ReturnWhen, Wait};

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
    linker: Option<crate::runtime::waker::TaskKey>,
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
