//! Tasks: a future the loop owns and polls, its states, its handle [`Task`], and cancellation.
//!
//! # Where a task lives
//!
//! Every task is one entry of the loop's slab ([`TaskEntry`]): its future (boxed once: the only
//! allocation a task makes), its status and flags, and whom to tell when it finishes (its *join
//! slot*). The key of that entry ([`TaskKey`]) is the task's waker. Tasks that are in the slab but
//! not in the ready queue are asyncio's "waiting" tasks: parked until some waker names them.
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

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use crate::error::{panic_message, TaskError};
use crate::group::Group;
use crate::runtime::Core;
use crate::waker::{waker_for, TaskKey, MAX_TASKS};

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
        write!(f, "{}", self.0)
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

/// Where a task is in its life (internal: `Done` splits by outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Not finished and not being polled.
    Idle,
    /// Being polled (its future is out of the slab, in the loop's hands).
    Running,
    /// Finished with a value (held in the entry until a handle takes it).
    Done,
    /// Finished with a panic (payload in `Core::panics` until a handle takes it).
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
}

impl Link {
    /// Returns true if both name the same task or the same group.
    pub(crate) fn same(&self, other: &Link) -> bool {
        match (self, other) {
            (Link::Task(a), Link::Task(b)) => a == b,
            (Link::Group(a), Link::Group(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// A task's slab entry.
pub(crate) struct TaskEntry {
    /// The future (or its output once done). `None` while the loop polls it, after it finished
    /// without a value to keep, and always for the main task of `run_until_complete`, whose future
    /// lives on the caller's stack.
    pub(crate) cell: Option<Pin<Box<dyn TaskCell>>>,
    /// Whom to tell when the task finishes.
    pub(crate) join: JoinSlot,
    /// The task id; its low bits are the generation in the task's key.
    pub(crate) id: u64,
    /// What this task was awaiting at its last poll (a task's handle found pending, or a
    /// gather): where a cancellation of this task propagates (asyncio's `_fut_waiter`). Cleared
    /// at each poll, and when the future that set it is dropped.
    pub(crate) awaiting: Option<Link>,
    /// Where the task is in its life.
    pub(crate) status: Status,
    /// The task is in the ready queue.
    pub(crate) scheduled: bool,
    /// `cancel()` was called and the task has not run since (asyncio's `_must_cancel`).
    pub(crate) cancel_requested: bool,
    /// No handle refers to the task any more: the loop removes the entry when it finishes.
    pub(crate) detached: bool,
    /// A panic outcome must not be reported as never retrieved (`cancel()` was called on it).
    pub(crate) quiet: bool,
    /// The main task of `run_until_complete`.
    pub(crate) is_main: bool,
}

/// A type-erased task future: polls it, drops it, or hands out its output.
pub(crate) trait TaskCell {
    /// Polls the future; on completion stores the output in place and drops the future.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
    /// Moves the stored output into `out`, which must be an `Option<Output>`.
    fn take_output(self: Pin<&mut Self>, out: &mut dyn Any);
}

pin_project! {
    /// A task's future, then its output.
    #[project = StageProj]
    pub(crate) enum Stage<F: Future> {
        Running { #[pin] fut: F },
        Finished { out: Option<F::Output> },
    }
}

impl<F: Future> TaskCell for Stage<F>
where
    F::Output: 'static,
{
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let out = match self.as_mut().project() {
            StageProj::Running { fut } => match fut.poll(cx) {
                Poll::Ready(out) => out,
                Poll::Pending => return Poll::Pending,
            },
            StageProj::Finished { .. } => return Poll::Ready(()),
        };
        // Drops the future in place (allowed for pinned data) and keeps the output.
        self.set(Stage::Finished { out: Some(out) });
        Poll::Ready(())
    }

    fn take_output(self: Pin<&mut Self>, out: &mut dyn Any) {
        if let (StageProj::Finished { out: value }, Some(slot)) =
            (self.project(), out.downcast_mut::<Option<F::Output>>())
        {
            *slot = value.take();
        }
    }
}

/// What one step of a task (one poll, or the drop of a cancelled future) ended in.
enum Step {
    /// The future returned `Pending`; here it is, to go back into the entry (`None`: the main task,
    /// whose future stays on the caller's stack).
    Pending(Option<Pin<Box<dyn TaskCell>>>),
    Finished(Status, Option<Pin<Box<dyn TaskCell>>>, Option<Box<dyn Any + Send>>),
}

impl Core {
    /// Spawns a `'static` future as a task and queues its first step.
    pub(crate) fn spawn<F>(self: &Rc<Self>, fut: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let cell: Pin<Box<dyn TaskCell>> = Box::pin(Stage::Running { fut });
        if self.closed.get() {
            // asyncio refuses `create_task` on a closed loop; here the task is born cancelled,
            // which is what a spawn from a destructor running during `close()` needs.
            let key = self.insert_task(None, false, Status::Cancelled);
            drop(cell);
            return Task::new(self.clone(), key);
        }
        let key = self.insert_task(Some(cell), false, Status::Idle);
        Task::new(self.clone(), key)
    }

    /// Inserts a task entry and, unless it is born finished, queues its first step.
    pub(crate) fn insert_task(&self, cell: Option<Pin<Box<dyn TaskCell>>>, is_main: bool, status: Status) -> TaskKey {
        let id = next_task_id();
        let mut tasks = self.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let index = entry.key();
        assert!(index < MAX_TASKS, "aioloop: more than {MAX_TASKS} live tasks on one loop");
        let key = TaskKey::new(self.remote.slot, index, id);
        let pending = status == Status::Idle;
        entry.insert(TaskEntry {
            cell,
            join: JoinSlot::Empty,
            id,
            awaiting: None,
            status,
            scheduled: pending,
            cancel_requested: false,
            detached: false,
            quiet: false,
            is_main,
        });
        drop(tasks);
        if pending {
            self.ready.borrow_mut().push_back(crate::runtime::Runnable::Task(key));
        }
        key
    }

    /// Wakes a task of this loop from the loop's own thread: queues it unless it is queued,
    /// finished, or the key is stale.
    pub(crate) fn wake_local(&self, key: TaskKey) {
        let mut tasks = self.tasks.borrow_mut();
        if let Some(e) = tasks.get_mut(key.index()) {
            if key.matches(e.id) && !e.scheduled && !e.status.is_finished() {
                e.scheduled = true;
                drop(tasks);
                self.ready.borrow_mut().push_back(crate::runtime::Runnable::Task(key));
            }
        }
    }

    /// Requests the cancellation of a task (asyncio's `Task.cancel()`); returns false if it is
    /// already finished (or the key is stale).
    ///
    /// The request walks down the await chain (`awaiting` links): every task on it is marked,
    /// and only the innermost one that is waiting is queued, so the chain unwinds from the inside
    /// out, each task woken by the one it awaits. The walk is a loop with a visited set, so a
    /// cycle of tasks awaiting each other, or a very long chain, cannot overflow the stack.
    pub(crate) fn cancel_task(&self, key: TaskKey) -> bool {
        enum Next {
            Finished,
            InFlight,
            Follow(Option<Link>),
        }
        let mut visited: std::collections::HashSet<TaskKey> = std::collections::HashSet::new();
        let mut prev: Option<TaskKey> = None;
        let mut cur = key;
        loop {
            let first = cur == key;
            let next = {
                let mut tasks = self.tasks.borrow_mut();
                match tasks.get_mut(cur.index()).filter(|e| cur.matches(e.id)) {
                    None => Next::Finished,
                    Some(e) if e.status.is_finished() => {
                        if first {
                            // Cancelling a failed task counts as looking at its failure (asyncio T42).
                            e.quiet = true;
                        }
                        Next::Finished
                    }
                    Some(e) => {
                        let already = std::mem::replace(&mut e.cancel_requested, true);
                        if e.status != Status::Idle || e.scheduled || (already && !first) {
                            // Running or queued: its future is dropped at its next run. Already
                            // requested: a walk through it is under way.
                            Next::InFlight
                        } else {
                            Next::Follow(e.awaiting.clone())
                        }
                    }
                }
            };
            match next {
                Next::Finished if first => return false,
                Next::Finished => {
                    // The awaited task is done already: the awaiter must run to be dropped.
                    self.wake_local(prev.expect("not the first step"));
                    return true;
                }
                Next::InFlight => return true,
                Next::Follow(Some(Link::Task(inner))) if inner != cur && !visited.contains(&inner) => {
                    visited.insert(cur);
                    prev = Some(cur);
                    cur = inner;
                }
                Next::Follow(Some(Link::Group(group))) => {
                    if !group.cancel_members(self) {
                        self.wake_local(cur);
                    }
                    return true;
                }
                Next::Follow(_) => {
                    // Nothing (more) to wait for, or a cycle: drop this one now.
                    self.wake_local(cur);
                    return true;
                }
            }
        }
    }

    /// Runs one step of a task: polls it, or drops its future if its cancellation was requested.
    ///
    /// `main` is the future of `run_until_complete`, polled when `key` is the main task.
    pub(crate) fn run_task(&self, key: TaskKey, main: &mut Option<Pin<&mut dyn Future<Output = ()>>>) {
        let (cell, cancel, is_main) = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(e) = tasks.get_mut(key.index()) else { return };
            if !key.matches(e.id) || e.status.is_finished() {
                return;
            }
            e.scheduled = false;
            e.awaiting = None;
            e.status = Status::Running;
            (e.cell.take(), e.cancel_requested, e.is_main)
        };
        self.current.set(Some(key));
        let step = if is_main {
            self.step_main(key, cancel, main)
        } else {
            Self::step(key, cell.expect("a pending task has its future"), cancel)
        };
        self.current.set(None);
        match step {
            Step::Pending(cell) => self.park(key, cell),
            Step::Finished(status, cell, payload) => self.finish_task(key, status, cell, payload),
        }
    }

    fn step(key: TaskKey, mut cell: Pin<Box<dyn TaskCell>>, cancel: bool) -> Step {
        if cancel {
            // Cancellation is dropping the future; a panicking destructor makes it a panic.
            return match catch_unwind(AssertUnwindSafe(move || drop(cell))) {
                Ok(()) => Step::Finished(Status::Cancelled, None, None),
                Err(p) => Step::Finished(Status::Panicked, None, Some(p)),
            };
        }
        let waker = waker_for(key);
        let mut cx = Context::from_waker(&waker);
        match catch_unwind(AssertUnwindSafe(|| cell.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => Step::Pending(Some(cell)),
            Ok(Poll::Ready(())) => Step::Finished(Status::Done, Some(cell), None),
            Err(p) => {
                // The future is in an unknown state; drop it (its destructor may panic too).
                let _ = catch_unwind(AssertUnwindSafe(move || drop(cell)));
                Step::Finished(Status::Panicked, None, Some(p))
            }
        }
    }

    fn step_main(&self, key: TaskKey, cancel: bool, main: &mut Option<Pin<&mut dyn Future<Output = ()>>>) -> Step {
        let Some(fut) = main.as_mut() else {
            // The caller of `run_until_complete` is gone (it unwound); nothing to poll.
            return Step::Finished(Status::Cancelled, None, None);
        };
        if cancel {
            *main = None;
            return Step::Finished(Status::Cancelled, None, None);
        }
        let waker = waker_for(key);
        let mut cx = Context::from_waker(&waker);
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => Step::Pending(None),
            Ok(Poll::Ready(())) => Step::Finished(Status::Done, None, None),
            Err(p) => Step::Finished(Status::Panicked, None, Some(p)),
        }
    }

    /// Puts a task that returned `Pending` back among the waiting (or, if it cancelled itself
    /// while running, propagates the cancellation and queues it so its future gets dropped).
    fn park(&self, key: TaskKey, cell: Option<Pin<Box<dyn TaskCell>>>) {
        let cancel = {
            let mut tasks = self.tasks.borrow_mut();
            let e = &mut tasks[key.index()];
            e.status = Status::Idle;
            if !e.is_main {
                e.cell = cell;
            }
            e.cancel_requested && !e.scheduled
        };
        if cancel {
            self.cancel_task(key);
        }
    }

    /// Records a task's outcome, frees what nobody can read any more, and tells its joiner.
    pub(crate) fn finish_task(
        &self,
        key: TaskKey,
        mut status: Status,
        mut cell: Option<Pin<Box<dyn TaskCell>>>,
        payload: Option<Box<dyn Any + Send>>,
    ) {
        let (join, removed, id, report, is_main) = {
            let mut tasks = self.tasks.borrow_mut();
            let e = &mut tasks[key.index()];
            let is_main = e.is_main;
            if status == Status::Done && e.cancel_requested {
                // Cancellation beats completion: the value is discarded (asyncio T12).
                status = Status::Cancelled;
            }
            e.status = status;
            e.scheduled = false;
            e.awaiting = None;
            let join = std::mem::take(&mut e.join);
            let id = e.id;
            if status != Status::Done {
                // Nothing to keep; the output (if any) is discarded below, outside the borrow.
            } else if !e.detached {
                e.cell = cell.take();
            }
            if e.detached {
                let removed = tasks.remove(key.index());
                let report = if removed.quiet { None } else { payload };
                (join, Some(removed), id, report, is_main)
            } else {
                if let Some(p) = payload {
                    self.panics.borrow_mut().insert(id, p);
                }
                (join, None, id, None, is_main)
            }
        };
        if is_main {
            // asyncio stops `run_until_complete` from a done-callback: one iteration later.
            self.call_soon_action(crate::handle::Action::Stop);
        }
        let detached = removed.is_some();
        // User code from here on: destructors of the output, foreign wakers. A panic there is
        // reported and contained, like a panicking callback.
        contain("the destructor of a task's output", move || {
            drop(cell);
            drop(removed);
        });
        if let Some(p) = report {
            self.report_unretrieved(id, &*p);
        }
        if detached {
            crate::task::take_by_id(&self.names, id);
        }
        match join {
            JoinSlot::Empty => {}
            JoinSlot::Waker(w) => contain("a waker", move || w.wake()),
            JoinSlot::Group(group, member) => {
                self.call_soon_action(crate::handle::Action::Member(group, member, status));
            }
        }
    }

    /// Reports the panic of a task whose outcome nobody will ever read (asyncio's
    /// "Task exception was never retrieved"), on one line of stderr.
    pub(crate) fn report_unretrieved(&self, id: u64, payload: &(dyn Any + Send)) {
        let name = self.task_name(id);
        eprintln!(
            "aioloop: Task exception was never retrieved: <Task {name} id={id}> panicked: {}",
            panic_message(payload)
        );
    }

    pub(crate) fn task_name(&self, id: u64) -> String {
        self.names.borrow().get(&id).cloned().unwrap_or_else(|| format!("Task-{id}"))
    }

    /// Returns a task's status, or `None` if the key is stale.
    pub(crate) fn status_of(&self, key: TaskKey) -> Option<Status> {
        self.tasks.borrow().get(key.index()).filter(|e| key.matches(e.id)).map(|e| e.status)
    }

    /// Makes `group` the joiner of a task (member `member`); a finished task reports at once.
    pub(crate) fn join_group(&self, key: TaskKey, group: &Rc<Group>, member: u32) {
        group.add_member(key);
        let finished = {
            let mut tasks = self.tasks.borrow_mut();
            let e = &mut tasks[key.index()];
            if e.status.is_finished() {
                Some(e.status)
            } else {
                e.join = JoinSlot::Group(group.clone(), member);
                None
            }
        };
        if let Some(status) = finished {
            self.call_soon_action(crate::handle::Action::Member(group.clone(), member, status));
        }
    }

    /// Marks a task's failure as seen by someone (no "never retrieved" report).
    pub(crate) fn set_quiet(&self, key: TaskKey) {
        if let Some(e) = self.tasks.borrow_mut().get_mut(key.index()).filter(|e| key.matches(e.id)) {
            e.quiet = true;
        }
    }

    /// Forgets a task's joiner (a combinator finished or was dropped).
    pub(crate) fn clear_join(&self, key: TaskKey) {
        let slot = self
            .tasks
            .borrow_mut()
            .get_mut(key.index())
            .filter(|e| key.matches(e.id))
            .map(|e| std::mem::take(&mut e.join));
        drop(slot);
    }

    /// Records that the running task is awaiting `link` (for cancellation propagation); returns
    /// the running task, to [`unlink`](Self::unlink) it later.
    pub(crate) fn set_awaiting_of_current(&self, link: Link) -> Option<TaskKey> {
        let cur = self.current.get()?;
        self.tasks.borrow_mut().get_mut(cur.index())?.awaiting = Some(link);
        Some(cur)
    }

    /// Takes the running task's awaiting link (to see what a sub-future links during its poll).
    pub(crate) fn take_awaiting_of_current(&self) -> Option<Link> {
        let cur = self.current.get()?;
        self.tasks.borrow_mut().get_mut(cur.index()).and_then(|e| e.awaiting.take())
    }

    /// Sets the running task's awaiting link.
    pub(crate) fn restore_awaiting_of_current(&self, link: Option<Link>) {
        if let Some(cur) = self.current.get() {
            if let Some(e) = self.tasks.borrow_mut().get_mut(cur.index()) {
                e.awaiting = link;
            }
        }
    }

    /// Clears `task`'s awaiting link if it is still `link` (the future that set it is gone, so a
    /// later cancellation must not follow it).
    pub(crate) fn unlink(&self, task: TaskKey, link: &Link) {
        let stale = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(task.index()).filter(|e| task.matches(e.id)) {
                Some(e) if e.awaiting.as_ref().is_some_and(|l| l.same(link)) => e.awaiting.take(),
                _ => None,
            }
        };
        drop(stale);
    }
}

/// Removes `id` from one of the loop's side tables (task names, panic payloads); most of the time
/// the table is empty, and the lookup costs nothing.
pub(crate) fn take_by_id<V>(table: &std::cell::RefCell<std::collections::HashMap<u64, V>>, id: u64) -> Option<V> {
    let mut table = table.borrow_mut();
    if table.is_empty() {
        None
    } else {
        table.remove(&id)
    }
}

/// Runs `f`, reporting a panic on stderr instead of unwinding into the loop.
pub(crate) fn contain(what: &str, f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        eprintln!("aioloop: Exception in {what}: panicked: {}", panic_message(&*p));
    }
}

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
    pub(crate) fn new(core: Rc<Core>, key: TaskKey) -> Task<T> {
        let id = core.tasks.borrow()[key.index()].id;
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
        self.core.names.borrow_mut().insert(self.id, name.into());
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
                if !matches!(&e.join, JoinSlot::Waker(w) if w.will_wake(cx.waker())) {
                    e.join = JoinSlot::Waker(cx.waker().clone());
                }
                drop(tasks);
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
                drop(tasks);
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
        let removed = {
            let mut tasks = self.core.tasks.borrow_mut();
            match tasks.get_mut(self.key.index()) {
                Some(e) if self.key.matches(e.id) && !e.status.is_finished() => {
                    // Detach: the loop owns the task now, and removes it when it finishes.
                    e.detached = true;
                    if matches!(e.join, JoinSlot::Waker(_)) {
                        e.join = JoinSlot::Empty;
                    }
                    None
                }
                Some(e) if self.key.matches(e.id) => Some(tasks.remove(self.key.index())),
                _ => None,
            }
        };
        if let Some(entry) = removed {
            crate::task::take_by_id(&self.core.names, self.id);
            let payload = crate::task::take_by_id(&self.core.panics, self.id);
            if let Some(p) = payload {
                if !entry.quiet {
                    self.core.report_unretrieved(self.id, &*p);
                }
            }
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
