//! A task's steps, from spawn to finish: inserting it, waking it, running one step (a poll, or
//! the drop of a cancelled future), parking it, cancelling it, and recording its outcome.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::table::{take_extra, update_extra, Removal};
use super::*;
use crate::runtime::waker::{waker_for, TaskKey, MAX_TASKS};
use crate::runtime::Core;
use crate::task::Task;

/// What one step of a task (one poll, or the drop of a cancelled future) ended in.
enum Step {
    /// The future returned `Pending` (it stays in its cell).
    Pending,
    /// The task finished with this status (a value stays in the cell), and a panic's payload.
    Finished(Status, Option<Box<dyn Any + Send>>),
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
    #[inline(always)]
    pub(crate) fn spawn_at<F>(self: &Rc<Self>, fut: F, at: &'static std::panic::Location<'static>) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.closed.get() {
            // asyncio refuses `create_task` on a closed loop; here the task is born cancelled,
            // which is what a spawn from a destructor running during `close()` needs.
            let (key, id) = self.insert_task(TaskCell::empty, Status::Cancelled);
            drop(fut);
            return Task::new(self.clone(), key, id);
        }
        let (key, id) = self.insert_task(|header| TaskCell::new(header, fut), Status::Idle);
        self.note_spawn_location(id, at);
        Task::new(self.clone(), key, id)
    }

    /// Spawns a task and runs its first step now, before returning (asyncio 3.12's eager tasks,
    /// `eager_task_factory`): a task that finishes in that step never enters the ready queue.
    ///
    /// The step runs as the loop would run it (a panic is the task's outcome, `current_task()`
    /// names the new task), nested in whatever called this: the spawning task, if any, is the
    /// current task again afterwards (asyncio's `_swap_current_task`). On a closed loop the task
    /// is born cancelled, as with `spawn`.
    pub(crate) fn spawn_eager_at<F>(
        self: &Rc<Self>,
        fut: F,
        at: &'static std::panic::Location<'static>,
    ) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.closed.get() {
            return self.spawn_at(fut, at);
        }
        let (key, id) = self.insert_task_as(|header| TaskCell::new(header, fut), Status::Idle, false);
        self.note_spawn_location(id, at);
        let task = Task::new(self.clone(), key, id);
        let spawner = self.current.get();
        // The spawner's poll goes on after the new task's step: so does its `current_may_await`.
        let linked = self.last_linked.get();
        self.run_first_step(key);
        self.current.set(spawner);
        self.last_linked.set(linked);
        if let Some(spawner) = spawner {
            // Builder::dump_on_signal: the spawner's poll goes on (its clock restarts here).
            self.probe_poll_started(spawner);
        }
        task
    }

    /// Inserts a task, its cell made by `make` from its header, and, unless it is born finished,
    /// queues its first step; returns the task's key and id.
    #[inline(always)]
    pub(crate) fn insert_task(&self, make: impl FnOnce(Header) -> TaskCell, status: Status) -> (TaskKey, u64) {
        self.insert_task_as(make, status, true)
    }

    /// Inserts the main task of `run_until_complete` (queued; its future stays with the caller).
    pub(crate) fn insert_main_task(&self) -> TaskKey {
        self.insert_task(
            |mut header| {
                header.set_main();
                TaskCell::empty(header)
            },
            Status::Idle,
        )
        .0
    }

    /// [`insert_task`](Self::insert_task); `queue` false leaves a pending task out of the ready
    /// queue (its first step is run by the caller).
    #[inline(always)]
    pub(crate) fn insert_task_as(
        &self,
        make: impl FnOnce(Header) -> TaskCell,
        status: Status,
        queue: bool,
    ) -> (TaskKey, u64) {
        let id = next_task_id();
        let mut tasks = self.tasks.entries_mut();
        let index = tasks.vacant_key();
        assert!(index < MAX_TASKS, "aioloop: more than {MAX_TASKS} live tasks on one loop");
        let key = TaskKey::new(self.remote.slot(), index, id);
        debug_assert!(!self.tasks.extras().contains_key(&index), "a stale Extra for a reused slab index");
        let pending = status == Status::Idle && queue;
        tasks.insert(make(Header::new(id, status, false, pending)));
        drop(tasks);
        self.trace_event(id, || crate::runtime::recorder::TraceKind::Spawned { name: self.task_name(id) });
        if pending {
            self.ready.borrow_mut().push_back(crate::runtime::Runnable::task(key));
        }
        (key, id)
    }

    /// Wakes a task of this loop from the loop's own thread: queues it unless it is queued,
    /// finished, or the key is stale.
    pub(crate) fn wake_local(&self, key: TaskKey) {
        let mut tasks = self.tasks.entries_mut();
        if let Some(e) = tasks.get_mut(key.index()) {
            if key.matches(e.id) && !e.scheduled && !e.status.is_finished() {
                e.scheduled = true;
                drop(tasks);
                self.ready.borrow_mut().push_back(crate::runtime::Runnable::task(key));
                self.trace_task(key, || crate::runtime::recorder::TraceKind::Woken);
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
                let mut tasks = self.tasks.entries_mut();
                let extras = self.tasks.extras();
                match tasks.get_mut(cur.index()).filter(|e| cur.matches(e.id)) {
                    None => Next::Finished,
                    Some(e) if e.status.is_finished() => {
                        if first {
                            // Cancelling a failed task counts as looking at its failure (asyncio T42).
                            e.set_quiet();
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

    /// An eager task's first step, run by `spawn_eager` (out of line: the loop's phase 6 has
    /// its own inlined copy of [`run_task`](Self::run_task)).
    #[inline(never)]
    fn run_first_step(&self, key: TaskKey) {
        self.run_task(key, &mut None);
    }

    /// Runs one step of a task: polls it, or drops its future if its cancellation was requested.
    ///
    /// `main` is the future of `run_until_complete`, polled when `key` is the main task.
    /// Inlined into phase 6, its hot caller; an eager spawn calls it through
    /// [`run_first_step`](Self::run_first_step).
    #[inline(always)]
    pub(crate) fn run_task(&self, key: TaskKey, main: &mut Option<Pin<&mut dyn Future<Output = ()>>>) {
        let (stage, cancel, is_main, stale) = {
            let mut tasks = self.tasks.entries_mut();
            let Some(e) = tasks.get_mut(key.index()) else { return };
            if !key.matches(e.id) || e.status.is_finished() {
                return;
            }
            e.scheduled = false;
            e.status = Status::Running;
            // The await link is set anew by whatever the task awaits in this poll.
            let stale = if e.awaits {
                e.awaits = false;
                update_extra(&mut self.tasks.extras_mut(), e, key.index(), |x| x.awaiting.take())
            } else {
                None
            };
            (e.stage(), e.cancel_requested, e.is_main(), stale)
        };
        if stale.is_some() {
            drop(stale);
        } else {
            // Nothing to drop. (Measured: `if let Some(x) = stale { drop(x) }` costs a yield 13
            // more instructions, 285 -> 298, callgrind: the compiler keeps the drop glue.)
            std::mem::forget(stale);
        }
        if !cancel {
            self.trace_task(key, || crate::runtime::recorder::TraceKind::Polled);
        }
        self.current.set(Some(key));
        // Builder::dump_on_signal (checklist 54 a): publish which task is polled and since when,
        // for the signal thread to name a task that never yields. When it is off: one field test each.
        self.probe_poll_started(key);
        let step = if is_main {
            self.step_main(key, cancel, main)
        } else {
            // SAFETY: the task is `Running` now, so its cell stays in the table until this step
            // ends (no path removes a running task: cell.rs's invariant 3), and only this step
            // touches its stage.
            unsafe { Self::step(key, stage, cancel) }
        };
        self.probe_poll_ended();
        self.current.set(None);
        match step {
            Step::Pending => self.park(key),
            Step::Finished(status, payload) => self.finish_task(key, status, payload),
        }
    }

    /// Polls the task's future in its cell, or drops it in place when `cancel`.
    ///
    /// # Safety
    /// The cell of `stage` stays alive during the call and nothing else touches its stage (the
    /// task is `Running`: cell.rs's invariant 3).
    #[inline(always)]
    unsafe fn step(key: TaskKey, stage: StagePtr, cancel: bool) -> Step {
        if cancel {
            // Cancellation is dropping the future; a panicking destructor makes it a panic.
            // SAFETY: by this function's contract.
            return match catch_unwind(AssertUnwindSafe(|| unsafe { stage.drop_in_place() })) {
                Ok(()) => Step::Finished(Status::Cancelled, None),
                Err(p) => Step::Finished(Status::Panicked, Some(p)),
            };
        }
        let waker = waker_for(key);
        let mut cx = Context::from_waker(&waker);
        // SAFETY: by this function's contract.
        match catch_unwind(AssertUnwindSafe(|| unsafe { stage.poll(&mut cx) })) {
            Ok(Poll::Pending) => Step::Pending,
            Ok(Poll::Ready(())) => Step::Finished(Status::Done, None),
            Err(p) => {
                // The future is in an unknown state; drop it (its destructor may panic too: that
                // second panic's payload is dropped with `drop_payload`, nothing unwinds out).
                // SAFETY: by this function's contract.
                crate::runtime::exception::ignore_panic(|| unsafe { stage.drop_in_place() });
                Step::Finished(Status::Panicked, Some(p))
            }
        }
    }

    fn step_main(&self, key: TaskKey, cancel: bool, main: &mut Option<Pin<&mut dyn Future<Output = ()>>>) -> Step {
        let Some(fut) = main.as_mut() else {
            // The caller of `run_until_complete` is gone (it unwound); nothing to poll.
            return Step::Finished(Status::Cancelled, None);
        };
        if cancel {
            *main = None;
            return Step::Finished(Status::Cancelled, None);
        }
        let waker = waker_for(key);
        let mut cx = Context::from_waker(&waker);
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => Step::Pending,
            Ok(Poll::Ready(())) => Step::Finished(Status::Done, None),
            Err(p) => Step::Finished(Status::Panicked, Some(p)),
        }
    }

    /// Drops the future of a task that `close()` marked `Running` (it is not polled any more)
    /// and finishes it as cancelled, or as panicked if the destructor panics; `destroyed(id)`
    /// is called first if it still had a future (it is reported as destroyed while pending).
    pub(crate) fn destroy_pending_task(&self, key: TaskKey, destroyed: impl FnOnce(u64)) {
        let (stage, id) = {
            let tasks = self.tasks.entries();
            let e = &tasks[key.index()];
            debug_assert_eq!(e.status, Status::Running);
            (e.stage(), e.id)
        };
        // SAFETY: the task is `Running`, so no path removes its cell (cell.rs's invariant 3),
        // and nothing polls it: this is the only user of its stage.
        if unsafe { stage.has_future() } {
            destroyed(id);
        }
        // SAFETY: as above; no borrow of the table is held while the destructor runs.
        match catch_unwind(AssertUnwindSafe(|| unsafe { stage.drop_in_place() })) {
            Ok(()) => self.finish_task(key, Status::Cancelled, None),
            Err(p) => self.finish_task(key, Status::Panicked, Some(p)),
        }
    }

    /// Puts a task that returned `Pending` back among the waiting (or, if it cancelled itself
    /// while running, propagates the cancellation and queues it so its future gets dropped).
    #[inline(always)]
    fn park(&self, key: TaskKey) {
        let cancel = {
            let mut tasks = self.tasks.entries_mut();
            let e = &mut tasks[key.index()];
            e.status = Status::Idle;
            e.cancel_requested && !e.scheduled
        };
        self.trace_task(key, || crate::runtime::recorder::TraceKind::Parked(self.waiting_on(key)));
        if cancel {
            self.cancel_task(key);
        }
    }

    /// Cancellation beats completion (asyncio T12): a task whose cancellation was requested
    /// and that completed in the same step loses its value, dropped here, and finishes
    /// cancelled. The task is still `Running` while the value is dropped, so nothing removes its
    /// cell meanwhile (cell.rs's invariant 3), whatever the value's destructor does; a panic
    /// there is reported and contained.
    #[cold]
    #[inline(never)]
    fn discard_output_and_cancel(&self, key: TaskKey) {
        let stage = {
            let tasks = self.tasks.entries();
            let e = &tasks[key.index()];
            debug_assert_eq!(e.status, Status::Running);
            e.stage()
        };
        // SAFETY: as said above; no borrow of the table is held while the destructor runs.
        self.contain(|| unsafe { stage.drop_in_place() });
        self.finish_task(key, Status::Cancelled, None);
    }

    /// Records a task's outcome, frees what nobody can read any more, and tells its joiner.
    pub(crate) fn finish_task(&self, key: TaskKey, status: Status, payload: Option<Box<dyn Any + Send>>) {
        let (join, id, detached, is_main) = {
            let mut tasks = self.tasks.entries_mut();
            let e = &mut tasks[key.index()];
            let is_main = e.is_main();
            if e.cancel_requested {
                if status == Status::Done {
                    // Cancellation beats completion: the value is discarded (asyncio T12).
                    drop(tasks);
                    return self.discard_output_and_cancel(key);
                }
                note_cancel_pending(false);
            }
            e.status = status;
            e.scheduled = false;
            let join = if e.has_extra {
                take_extra(&mut self.tasks.extras_mut(), e, key.index()).map_or(JoinSlot::Empty, |x| x.join)
            } else {
                JoinSlot::Empty
            };
            // (A value stays in the cell for the handle; a detached task's cell goes below.)
            (join, e.id, e.detached, is_main)
        };
        // Nobody can read a detached task's outcome: its entry goes now, and a panic is
        // reported; what is left to drop is dropped below, with the output.
        let leftover = if detached {
            let removed = self.remove_task(key, Removal::Detached(payload));
            if removed.payload.is_none() && removed.cell.drop_is_trivial() {
                // No user code to contain (the usual case: a value without drop glue). Dropped
                // here, in registers: moved into `contain`'s closure, the cell's two words would
                // be stored and read back as one, which stalls the CPU's store forwarding.
                drop(removed);
                None
            } else {
                Some((removed.cell, removed.payload))
            }
        } else {
            if let Some(p) = payload {
                self.tasks.keep_panic(id, p);
            }
            None
        };
        self.trace_event(id, || match status {
            Status::Done => crate::runtime::recorder::TraceKind::Done,
            Status::Panicked => crate::runtime::recorder::TraceKind::Panicked,
            _ => crate::runtime::recorder::TraceKind::Cancelled,
        });
        if is_main {
            // asyncio stops `run_until_complete` from a done-callback: one iteration later.
            self.call_soon_action(crate::runtime::callbacks::Action::Stop);
        }
        // User code from here on: destructors of the output and of a panic's payload, foreign
        // wakers. A panic there is reported and contained, like a panicking callback.
        if let Some(leftover) = leftover {
            self.contain(move || drop(leftover));
        }
        self.forget_spawn_location(id);
        match join {
            JoinSlot::Empty => {}
            JoinSlot::Waker(w) => self.contain(move || w.wake()),
            JoinSlot::Group(group, member) => {
                self.call_soon_action(crate::runtime::callbacks::Action::Member(group, member, status));
            }
        }
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
    // (Saturating: a decrement always follows its increment on this thread, but an underflow
    // here must never be a panic on the loop's hot path.)
    CANCELS_PENDING.with(|c| c.set(if requested { c.get() + 1 } else { c.get().saturating_sub(1) }));
}

/// Returns true if some task of a loop of this thread may have a cancellation pending.
#[inline]
pub(crate) fn any_cancel_pending() -> bool {
    CANCELS_PENDING.with(|c| c.get() > 0)
}
