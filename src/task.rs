//! Tasks: a future the loop owns and polls, its states, and cancellation (the handle a user
//! holds, [`Task`], is in `join.rs`).
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
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use crate::group::Group;
use crate::join::Task;
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
    /// Returns true if what this names has finished (a task; every member of a gather).
    pub(crate) fn finished(&self, core: &Core) -> bool {
        match self {
            Link::Task(t) => core.status_of(*t).is_none_or(|s| s.is_finished()),
            Link::Group(g) => g.outer_done(),
        }
    }

    /// Cancels what this names; returns true if there is something to wait for (it finishes
    /// later and wakes whoever awaits it).
    pub(crate) fn cancel(&self, core: &Core) -> bool {
        match self {
            Link::Task(t) => core.cancel_task(*t),
            Link::Group(g) => g.cancel_members(core),
        }
    }

    /// Returns true if both name the same task or the same group.
    pub(crate) fn same(&self, other: &Link) -> bool {
        match (self, other) {
            (Link::Task(a), Link::Task(b)) => a == b,
            (Link::Group(a), Link::Group(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// A task's slab entry: 32 bytes, the slab's own tag included (a test checks it), because a
/// million parked tasks are a million of these.
pub(crate) struct TaskEntry {
    /// The future (or its output once done). `None` while the loop polls it, after it finished
    /// without a value to keep, and always for the main task of `run_until_complete`, whose future
    /// lives on the caller's stack.
    pub(crate) cell: Option<Pin<Box<dyn TaskCell>>>,
    /// The task id; its low bits are the generation in the task's key.
    pub(crate) id: u64,
    /// The task has an [`Extra`] in `Core::extras` (a joiner, or an await link).
    pub(crate) has_extra: bool,
    /// Its `Extra` holds an await link (so a poll, which clears the link, need not look when it
    /// only holds a joiner).
    pub(crate) awaits: bool,
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

/// The parts of a task that few tasks use at a time, kept out of the slab in `Core::extras`
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

/// The side table of [`Extra`]s, by slab index.
pub(crate) type Extras = std::collections::HashMap<usize, Extra, std::hash::BuildHasherDefault<IndexHasher>>;

/// Hashes a slab index with one multiplication (Fibonacci hashing): the keys are small
/// distinct integers, which need no SipHash.
#[derive(Default)]
pub(crate) struct IndexHasher(u64);

impl std::hash::Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Returns task `index`'s extra part, creating it.
pub(crate) fn extra_mut<'a>(extras: &'a mut Extras, e: &mut TaskEntry, index: usize) -> &'a mut Extra {
    e.has_extra = true;
    extras.entry(index).or_default()
}

/// Returns task `index`'s extra part, if it has one.
pub(crate) fn extra_of<'a>(extras: &'a Extras, e: &TaskEntry, index: usize) -> Option<&'a Extra> {
    if e.has_extra {
        extras.get(&index)
    } else {
        None
    }
}

/// Removes task `index`'s extra part and returns it (to be dropped outside the borrows).
pub(crate) fn take_extra(extras: &mut Extras, e: &mut TaskEntry, index: usize) -> Option<Extra> {
    e.awaits = false;
    if std::mem::take(&mut e.has_extra) {
        extras.remove(&index)
    } else {
        None
    }
}

/// Changes task `index`'s extra part with `f` if it has one, and removes it if it is left empty;
/// returns what `f` returned and the removed part (to be dropped outside the borrows).
fn update_extra<R>(
    extras: &mut Extras,
    e: &mut TaskEntry,
    index: usize,
    f: impl FnOnce(&mut Extra) -> R,
) -> Option<(R, Option<Extra>)> {
    if !e.has_extra {
        return None;
    }
    let x = extras.get_mut(&index)?;
    let r = f(x);
    let emptied = if x.is_empty() { take_extra(extras, e, index) } else { None };
    Some((r, emptied))
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
    #[track_caller]
    pub(crate) fn spawn<F>(self: &Rc<Self>, fut: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.spawn_at(fut, std::panic::Location::caller())
    }

    /// Spawns a task whose spawn location (for debug mode's reports) is `at`.
    pub(crate) fn spawn_at<F>(self: &Rc<Self>, fut: F, at: &'static std::panic::Location<'static>) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let cell: Pin<Box<dyn TaskCell>> = Box::pin(Stage::Running { fut });
        if self.closed.get() {
            // asyncio refuses `create_task` on a closed loop; here the task is born cancelled,
            // which is what a spawn from a destructor running during `close()` needs.
            let (key, id) = self.insert_task(None, false, Status::Cancelled);
            drop(cell);
            return Task::new(self.clone(), key, id);
        }
        let (key, id) = self.insert_task(Some(cell), false, Status::Idle);
        self.note_spawn_location(id, at);
        Task::new(self.clone(), key, id)
    }

    /// Inserts a task entry and, unless it is born finished, queues its first step; returns the
    /// task's key and id.
    pub(crate) fn insert_task(
        &self,
        cell: Option<Pin<Box<dyn TaskCell>>>,
        is_main: bool,
        status: Status,
    ) -> (TaskKey, u64) {
        let id = next_task_id();
        let mut tasks = self.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let index = entry.key();
        assert!(index < MAX_TASKS, "aioloop: more than {MAX_TASKS} live tasks on one loop");
        let key = TaskKey::new(self.remote.slot, index, id);
        debug_assert!(!self.extras.borrow().contains_key(&index), "a stale Extra for a reused slab index");
        let pending = status == Status::Idle;
        entry.insert(TaskEntry {
            cell,
            id,
            has_extra: false,
            awaits: false,
            status,
            scheduled: pending,
            cancel_requested: false,
            detached: false,
            quiet: false,
            is_main,
        });
        drop(tasks);
        self.trace_event(id, || crate::TraceKind::Spawned { name: self.task_name(id) });
        if pending {
            self.ready.borrow_mut().push_back(crate::runtime::Runnable::Task(key));
        }
        (key, id)
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
                self.trace_task(key, || crate::TraceKind::Woken);
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
                let extras = self.extras.borrow();
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
                        if !already {
                            note_cancel_pending(true);
                        }
                        if e.status != Status::Idle || e.scheduled || (already && !first) {
                            // Running or queued: its future is dropped at its next run. Already
                            // requested: a walk through it is under way.
                            Next::InFlight
                        } else {
                            Next::Follow(extra_of(&extras, e, cur.index()).and_then(|x| x.awaiting.clone()))
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
        let (cell, cancel, is_main, stale) = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(e) = tasks.get_mut(key.index()) else { return };
            if !key.matches(e.id) || e.status.is_finished() {
                return;
            }
            e.scheduled = false;
            e.status = Status::Running;
            // The await link is set anew by whatever the task awaits in this poll.
            let stale = if e.awaits {
                e.awaits = false;
                update_extra(&mut self.extras.borrow_mut(), e, key.index(), |x| x.awaiting.take())
            } else {
                None
            };
            (e.cell.take(), e.cancel_requested, e.is_main, stale)
        };
        drop(stale);
        if !cancel {
            self.trace_task(key, || crate::TraceKind::Polled);
        }
        self.current.set(Some(key));
        // Builder::dump_on_signal (checklist 54 a): publish which task is polled and since when,
        // for the signal thread to name a task that never yields. When it is off: one field test each.
        self.os.poll_started(self, key);
        let step = if is_main {
            self.step_main(key, cancel, main)
        } else {
            Self::step(key, cell.expect("a pending task has its future"), cancel)
        };
        self.os.poll_ended();
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
        self.trace_task(key, || crate::TraceKind::Parked(self.waiting_on(key)));
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
            if e.cancel_requested {
                note_cancel_pending(false);
                if status == Status::Done {
                    // Cancellation beats completion: the value is discarded (asyncio T12).
                    status = Status::Cancelled;
                }
            }
            e.status = status;
            e.scheduled = false;
            let join = match take_extra(&mut self.extras.borrow_mut(), e, key.index()) {
                Some(extra) => extra.join,
                None => JoinSlot::Empty,
            };
            let id = e.id;
            if status != Status::Done {
                // Nothing to keep; the output (if any) is discarded below, outside the borrow.
            } else if !e.detached {
                e.cell = cell.take();
            }
            if e.detached {
                let removed = tasks.remove(key.index());
                // (A quiet payload is still dropped below, inside `contain`.)
                let report = payload.map(|p| (p, !removed.quiet));
                (join, Some(removed), id, report, is_main)
            } else {
                if let Some(p) = payload {
                    self.panics.borrow_mut().insert(id, p);
                }
                (join, None, id, None, is_main)
            }
        };
        self.trace_event(id, || match status {
            Status::Done => crate::TraceKind::Done,
            Status::Panicked => crate::TraceKind::Panicked,
            _ => crate::TraceKind::Cancelled,
        });
        if is_main {
            // asyncio stops `run_until_complete` from a done-callback: one iteration later.
            self.call_soon_action(crate::handle::Action::Stop);
        }
        let detached = removed.is_some();
        // User code from here on: destructors of the output, foreign wakers. A panic there is
        // reported and contained, like a panicking callback.
        self.contain(move || {
            drop(cell);
            drop(removed);
        });
        if let Some((p, loud)) = report {
            if loud {
                self.report_unretrieved(id, &*p);
            }
            // The payload is user data too: its destructor may panic.
            self.contain(move || drop(p));
        }
        if detached {
            crate::task::take_by_id(&self.names, id);
        }
        self.forget_spawn_location(id);
        match join {
            JoinSlot::Empty => {}
            JoinSlot::Waker(w) => self.contain(move || w.wake()),
            JoinSlot::Group(group, member) => {
                self.call_soon_action(crate::handle::Action::Member(group, member, status));
            }
        }
    }

    /// Reports the panic of a task whose outcome nobody will ever read (asyncio's
    /// "Task exception was never retrieved"), on one line of stderr.
    pub(crate) fn report_unretrieved(&self, id: u64, payload: &(dyn Any + Send)) {
        self.report(&crate::exception::ExceptionContext {
            message: "Task exception was never retrieved",
            task: Some(self.task_info(id)),
            panic: Some(payload),
        });
    }

    pub(crate) fn task_name(&self, id: u64) -> String {
        self.names.borrow().get(&id).cloned().unwrap_or_else(|| format!("Task-{id}"))
    }

    /// Returns true if the task's cancellation was requested and it has not run since (asyncio:
    /// the future it waits on is cancelled already).
    pub(crate) fn cancel_requested(&self, key: TaskKey) -> bool {
        self.tasks.borrow().get(key.index()).filter(|e| key.matches(e.id)).is_some_and(|e| e.cancel_requested)
    }

    /// Returns a task's status, or `None` if the key is stale.
    pub(crate) fn status_of(&self, key: TaskKey) -> Option<Status> {
        self.tasks.borrow().get(key.index()).filter(|e| key.matches(e.id)).map(|e| e.status)
    }

    /// Makes `group` the joiner of a task (member `member`); a finished task reports at once.
    pub(crate) fn join_group(&self, key: TaskKey, group: &Rc<Group>, member: u32) {
        group.add_member(key);
        let (finished, old) = {
            let mut tasks = self.tasks.borrow_mut();
            let e = &mut tasks[key.index()];
            if e.status.is_finished() {
                (Some(e.status), JoinSlot::Empty)
            } else {
                let mut extras = self.extras.borrow_mut();
                let x = extra_mut(&mut extras, e, key.index());
                (None, std::mem::replace(&mut x.join, JoinSlot::Group(group.clone(), member)))
            }
        };
        drop(old);
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
        let slot = self.update_extra_of(key, |x| std::mem::take(&mut x.join));
        drop(slot);
    }

    /// [`update_extra`] for task `key` (nothing if the key is stale); the old values are
    /// returned to be dropped by the caller, outside the borrows.
    pub(crate) fn update_extra_of<R>(
        &self,
        key: TaskKey,
        f: impl FnOnce(&mut Extra) -> R,
    ) -> Option<(R, Option<Extra>)> {
        let mut tasks = self.tasks.borrow_mut();
        let e = tasks.get_mut(key.index()).filter(|e| key.matches(e.id))?;
        update_extra(&mut self.extras.borrow_mut(), e, key.index(), f)
    }

    /// Sets task `key`'s joiner to a waker (a handle awaited from `cx`), unless it already
    /// wakes the same task; returns the replaced joiner.
    pub(crate) fn set_join_waker(&self, e: &mut TaskEntry, index: usize, waker: &std::task::Waker) -> JoinSlot {
        let mut extras = self.extras.borrow_mut();
        let x = extra_mut(&mut extras, e, index);
        if matches!(&x.join, JoinSlot::Waker(w) if w.will_wake(waker)) {
            JoinSlot::Empty
        } else {
            std::mem::replace(&mut x.join, JoinSlot::Waker(waker.clone()))
        }
    }

    /// Records that the running task is awaiting `link` (for cancellation propagation); returns
    /// the running task, to [`unlink`](Self::unlink) it later.
    pub(crate) fn set_awaiting_of_current(&self, link: Link) -> Option<TaskKey> {
        let cur = self.current.get()?;
        self.last_linked.set(Some(cur));
        let old = {
            let mut tasks = self.tasks.borrow_mut();
            let e = tasks.get_mut(cur.index())?;
            e.awaits = true;
            extra_mut(&mut self.extras.borrow_mut(), e, cur.index()).awaiting.replace(link)
        };
        drop(old);
        Some(cur)
    }

    /// Returns true if the running task may have an awaiting link: false only when none was set
    /// during its current poll (a poll starts without one), which costs no lookup.
    pub(crate) fn current_may_await(&self) -> bool {
        let cur = self.current.get();
        cur.is_some() && self.last_linked.get() == cur
    }

    /// Takes the running task's awaiting link (to see what a sub-future links during its poll).
    pub(crate) fn take_awaiting_of_current(&self) -> Option<Link> {
        let cur = self.current.get()?;
        self.update_extra_of(cur, |x| x.awaiting.take()).and_then(|(link, _)| link)
    }

    /// Sets the running task's awaiting link.
    pub(crate) fn restore_awaiting_of_current(&self, link: Option<Link>) {
        let Some(cur) = self.current.get() else { return };
        match link {
            Some(link) => {
                self.set_awaiting_of_current(link);
            }
            None => drop(self.update_extra_of(cur, |x| x.awaiting.take())),
        }
    }

    /// Clears `task`'s awaiting link if it is still `link` (the future that set it is gone, so a
    /// later cancellation must not follow it).
    pub(crate) fn unlink(&self, task: TaskKey, link: &Link) {
        let stale = self.update_extra_of(task, |x| x.awaiting.take_if(|l| l.same(link)));
        drop(stale);
    }
}

thread_local! {
    /// How many tasks of this thread's loops have had `cancel()` called and have not finished
    /// (a task finishes once after it: its next run drops its future). While none has, no task
    /// of this thread has a cancellation pending, which the sync primitives ask at every wake
    /// (`sync::task_cancelled`): they need not look the loop up. A task that leaves without
    /// finishing (the main task of a `run_until_complete` that unwinds) leaves the count high,
    /// which only costs them that lookup.
    static CANCELS_PENDING: Cell<usize> = const { Cell::new(0) };
}

/// Counts a task whose cancellation was requested (`true`) or that finished after it (`false`).
fn note_cancel_pending(requested: bool) {
    CANCELS_PENDING.with(|c| c.set(if requested { c.get() + 1 } else { c.get() - 1 }));
}

/// Returns true if some task of a loop of this thread may have a cancellation pending.
#[inline]
pub(crate) fn any_cancel_pending() -> bool {
    CANCELS_PENDING.with(|c| c.get() > 0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_entry_is_32_bytes_in_the_slab() {
        // The shape of slab's own entry type (private to the slab crate): the tag fits in a niche
        // of `TaskEntry`, so a parked task costs the slab 32 bytes.
        #[allow(dead_code)]
        enum SlabEntry {
            Vacant(usize),
            Occupied(TaskEntry),
        }
        assert_eq!(std::mem::size_of::<TaskEntry>(), 32);
        assert_eq!(std::mem::size_of::<SlabEntry>(), 32);
    }
}
