//! Tasks: a future the loop owns and polls, its states, and cancellation (the handle a user
//! holds, [`Task`](crate::Task), is in `src/task.rs`).
//!
//! # Where a task lives
//!
//! Every task is one allocation, its *cell* ([`TaskCell`], src/runtime/task/cell.rs): a 16-byte
//! header (id, status, flags) and the future, later its output, in place. The loop's slab holds
//! the cell's pointer; the key of that slab entry ([`TaskKey`]) is the task's waker. Whom to
//! tell when the task finishes (its *join slot*) and what it awaits are kept in a side table for
//! the few tasks that have them ([`Extra`]). Tasks that are in the slab but not in the ready
//! queue are asyncio's "waiting" tasks: parked until some waker names them.
//!
//! # States (asyncio's, as the seeds name them)
//!
//! ```text
//!   spawn ──► Pending ──(loop polls it)──► Running ──Ready──► Done (value or panic)
//!              ▲   │                          │
//!              └───┼────────Pending───────────┘
//!                  └──(next run after cancel(): the future is dropped)──► Cancelled
//! ```
//!
//! # Invariants
//! - A task is in the ready queue at most once (`scheduled`); a wake while it is queued, or of a
//!   finished task, or with a stale key, does nothing.
//! - `cancel()` is a request (asyncio's `_must_cancel`): the task becomes `Cancelled` the next time
//!   the loop runs it, by dropping its future instead of polling it. A task that cancels itself and
//!   then completes in the same poll ends `Cancelled`.
//! - Cancelling a task that is awaiting another task (through [`Task`]'s future, recorded in
//!   `awaiting` during the poll) cancels that one first; the outer one finishes after it.
//! - A task's future is dropped exactly once, with no `RefCell` borrow of the loop held, so its
//!   `Drop` may spawn, cancel or wake other tasks.
//! - The entry stays in the slab after the task finished only while a [`Task`] handle may still
//!   read its outcome; a detached task's entry is removed when it finishes.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::task::Waker;
use std::time::Instant;

use crate::runtime::members::Group;
use crate::runtime::waker::TaskKey;

// The task cell (one allocation per task) and the steps that poll it through a raw pointer:
// the only `unsafe` of the task module, with the arena their memory comes from.
#[allow(unsafe_code)]
mod arena;
#[allow(unsafe_code)]
mod cell;
mod slots;
#[allow(unsafe_code)]
mod steps;
mod table;

pub(crate) use cell::{Header, StagePtr, TaskCell};
pub(crate) use slots::Slots;

pub(crate) use steps::any_cancel_pending;
pub(crate) use table::{extra_of, Removal, Removed, TaskTable};

/// The public state of a task: the four states the seeds name.
///
/// # Examples
///
/// ```
/// use aioloop::{EventLoop, TaskState};
///
/// let mut lp = EventLoop::new().unwrap();
/// let t = lp.spawn(async { 1 });
/// assert_eq!(t.state(), TaskState::Pending);
/// lp.run_until_complete(aioloop::yield_now());
/// assert_eq!(t.state(), TaskState::Done);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Waiting to run: in the ready queue, or parked until a waker names it.
    Pending,
    /// Being polled right now (only observable from inside the task).
    Running,
    /// Finished with a value or a panic.
    Done,
    /// Cancelled: its future was dropped before it completed.
    Cancelled,
}

/// A task's unique id (asyncio names tasks `Task-<id>`).
///
/// # Examples
///
/// ```
/// let lp = aioloop::EventLoop::new().unwrap();
/// let a = lp.spawn(async {});
/// let b = lp.spawn(async {});
/// assert_ne!(a.id(), b.id());
/// assert_eq!(a.name(), format!("Task-{}", a.id()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// Returns the id as a number.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// assert!(lp.spawn(async {}).id().as_u64() > 0);
    /// ```
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f) // honours width and alignment
    }
}

/// Returns a fresh task id: unique in the process, increasing on each thread.
fn next_task_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    const BLOCK: u64 = 1024;
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        /// The ids this thread may hand out: `[next, end)`.
        static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    RANGE.with(|r| {
        let (mut next, mut end) = r.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, Relaxed);
            end = next + BLOCK;
        }
        r.set((next + 1, end));
        next
    })
}

/// What a task is waiting for, as far as the loop can tell.
///
/// # Examples
///
/// See [`TaskDump`](crate::TaskDump).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitingOn {
    /// It is in the ready queue, or running.
    Nothing,
    /// A timer (a `sleep`, a timeout) due at this instant.
    Timer(Instant),
    /// A socket or other descriptor becoming readable (`false`) or writable (`true`).
    Io {
        /// The descriptor's number.
        fd: i32,
        /// Waiting to write rather than to read.
        write: bool,
    },
    /// Another task, through its handle.
    Task(TaskId),
    /// The members of a `gather` (how many).
    Gather(usize),
    /// Tasks of a [`wait`](crate::wait), [`as_completed`](crate::as_completed) or
    /// [`shield`](crate::shield) (how many of them are still running), and the timer that ends
    /// the wait early, if the task has one (the `timeout` of `wait`, or a `sleep` or `timeout`
    /// around it): whichever comes first wakes the task.
    ///
    /// # Examples
    ///
    /// A task inside `wait`, with a 2 s timeout, for three tasks that sleep 1, 2 and 3 s:
    ///
    /// ```
    /// use std::time::Duration;
    /// use aioloop::{ReturnWhen, WaitingOn};
    ///
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let start = lp.time();
    /// let waiter = lp.spawn(async {
    ///     let sleepers: Vec<_> = (1..=3).map(|i| aioloop::spawn(aioloop::sleep(Duration::from_secs(i)))).collect();
    ///     aioloop::wait(sleepers, Some(Duration::from_secs(2)), ReturnWhen::AllCompleted).await
    /// });
    /// lp.run_until_complete(aioloop::yield_now()); // the waiter runs once and parks in `wait`
    /// let dump = lp.tasks();
    /// let snapshot = dump.tasks.iter().find(|t| t.id == waiter.id()).unwrap();
    /// let timeout = Some(start + Duration::from_secs(2));
    /// assert_eq!(snapshot.waiting_on, WaitingOn::Tasks { count: 3, timeout });
    /// assert!(dump.to_string().contains("3 tasks or timer in 2.000s"));
    /// ```
    Tasks {
        /// How many of the tasks have not finished.
        count: usize,
        /// When the task's earliest timer is due, if it has one.
        timeout: Option<Instant>,
    },
    /// Something the loop does not track (a channel, a lock, a foreign future).
    Other,
}

/// Where a task is in its life (internal: `Done` splits by outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Not finished and not being polled.
    Idle,
    /// Being polled (its future is out of the slab, in the loop's hands).
    Running,
    /// Finished with a value (held in the entry until a handle takes it).
    Done,
    /// Finished with a panic (payload in the task table's `panics` until a handle takes it).
    Panicked,
    /// Cancelled.
    Cancelled,
}

impl Status {
    pub(crate) fn is_finished(self) -> bool {
        matches!(self, Status::Done | Status::Panicked | Status::Cancelled)
    }

    pub(crate) fn public(self) -> TaskState {
        match self {
            Status::Idle => TaskState::Pending,
            Status::Running => TaskState::Running,
            Status::Done | Status::Panicked => TaskState::Done,
            Status::Cancelled => TaskState::Cancelled,
        }
    }
}

/// Whom to tell when a task finishes.
#[derive(Default)]
pub(crate) enum JoinSlot {
    /// Nobody is waiting.
    #[default]
    Empty,
    /// The waker of whoever polled the task's handle last.
    Waker(Waker),
    /// A combinator (`wait`, `gather`, `as_completed`) waiting on many tasks: this is member `u32`.
    Group(Rc<Group>, u32),
}

/// What a task is awaiting, as far as cancellation is concerned (asyncio's `_fut_waiter`):
/// cancelling the task cancels this first, and the task finishes after it.
#[derive(Clone)]
pub(crate) enum Link {
    /// Another task, through its [`Task`] handle.
    Task(TaskKey),
    /// The members of a `gather`.
    Group(Rc<Group>),
    /// Several tasks or gathers found pending in one step (a `join_all`, a `select!`): the task
    /// awaits none of them in particular, so cancelling it cancels only it (dropping its future
    /// drops their handles, which detaches them; asyncio's `wait` leaves its tasks alone too).
    Several,
}

impl Link {
    /// Returns true if what this names has finished (a task; every member of a gather;
    /// [`Several`](Link::Several): nothing in particular to wait for, the future that awaited
    /// them is dropped with their handles).
    pub(crate) fn finished(&self, core: &crate::runtime::Core) -> bool {
        match self {
            Link::Task(t) => core.status_of(*t).is_none_or(|s| s.is_finished()),
            Link::Group(g) => g.outer_done(),
            Link::Several => true,
        }
    }

    /// Cancels what this names; returns true if there is something to wait for (it finishes
    /// later and wakes whoever awaits it).
    pub(crate) fn cancel(&self, core: &crate::runtime::Core) -> bool {
        match self {
            Link::Task(t) => core.cancel_task(*t),
            Link::Group(g) => g.cancel_members(core),
            Link::Several => false,
        }
    }

    /// Returns true if both name the same task or the same group.
    pub(crate) fn same(&self, other: &Link) -> bool {
        match (self, other) {
            (Link::Task(a), Link::Task(b)) => a == b,
            (Link::Group(a), Link::Group(b)) => Rc::ptr_eq(a, b),
            (Link::Several, Link::Several) => true,
            _ => false,
        }
    }

    /// Returns the link of a step that awaited `self` and then `other`: `other` if they are the
    /// same, else [`Link::Several`].
    fn and(self, other: Link) -> Link {
        if self.same(&other) {
            other
        } else {
            Link::Several
        }
    }
}

/// The parts of a task that few tasks use at a time, kept out of the cell in the task table's `extras`
/// (by slab index) so the entry stays small.
///
/// Invariant: a finished task has none (`finish_task` takes it), so removing a finished entry
/// needs no lookup here.
#[derive(Default)]
pub(crate) struct Extra {
    /// Whom to tell when the task finishes.
    pub(crate) join: JoinSlot,
    /// What this task was awaiting at its last poll (a task's handle found pending, or a
    /// gather): where a cancellation of this task propagates (asyncio's `_fut_waiter`). Cleared
    /// at each poll, and when the future that set it is dropped.
    pub(crate) awaiting: Option<Link>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        matches!(self.join, JoinSlot::Empty) && self.awaiting.is_none()
    }
}
