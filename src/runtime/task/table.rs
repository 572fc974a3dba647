//! The task table: every live task's entry, and the side tables few tasks use (joiners and
//! await links, panic payloads, names), kept together so that one type owns what a task leaves
//! behind, and one path ([`Core::remove_task`]) removes all of it.

use std::any::Any;
use std::cell::{Ref, RefCell, RefMut};
use std::collections::HashMap;
use std::rc::Rc;

use super::*;
use crate::runtime::members::Group;
use crate::runtime::waker::TaskKey;
use crate::runtime::Core;

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
pub(crate) fn extra_mut<'a>(extras: &'a mut Extras, e: &mut Header, index: usize) -> &'a mut Extra {
    e.has_extra = true;
    extras.entry(index).or_default()
}

/// Returns task `index`'s extra part, if it has one.
pub(crate) fn extra_of<'a>(extras: &'a Extras, e: &Header, index: usize) -> Option<&'a Extra> {
    if e.has_extra {
        extras.get(&index)
    } else {
        None
    }
}

/// Removes task `index`'s extra part and returns it (to be dropped outside the borrows).
pub(crate) fn take_extra(extras: &mut Extras, e: &mut Header, index: usize) -> Option<Extra> {
    e.awaits = false;
    if std::mem::take(&mut e.has_extra) {
        extras.remove(&index)
    } else {
        None
    }
}

/// Changes task `index`'s extra part with `f` if it has one, and removes it if it is left empty;
/// returns what `f` returned and the removed part (to be dropped outside the borrows).
pub(crate) fn update_extra<R>(
    extras: &mut Extras,
    e: &mut Header,
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

/// The task table: one part of the loop, owned by [`Core`] as its `tasks` field.
///
/// # Invariants
/// - An entry is in `entries` from `insert_task` until [`Core::remove_task`], the one path that
///   takes it out, and with it its [`Extra`] and its panic payload (and its name, unless a
///   handle may still ask for it). Code elsewhere reads and changes entries through
///   [`entries`](Self::entries) / [`entries_mut`](Self::entries_mut), never removes one.
/// - A task has an `Extra` only while `has_extra` says so; a finished task has none.
/// - A panic payload is kept (by task id) only for a finished task whose handle may still take
///   it; a detached task's payload is reported or dropped when it finishes.
#[derive(Default)]
pub(crate) struct TaskTable {
    /// Every live task, by slab index (the index in its key).
    entries: RefCell<Slots>,
    /// The joiners and await links of the tasks that have one, by slab index (kept out of the
    /// cells, so a parked task's cell stays small).
    extras: RefCell<Extras>,
    /// Panic payloads of finished tasks, by task id, until a handle takes them.
    panics: RefCell<HashMap<u64, Box<dyn Any + Send>>>,
    /// Names given with `Task::set_name`, by task id.
    names: RefCell<HashMap<u64, String>>,
}

impl TaskTable {
    /// The entries, to read.
    #[inline]
    pub(crate) fn entries(&self) -> Ref<'_, Slots> {
        self.entries.borrow()
    }

    /// The entries, to change (not to remove one: [`Core::remove_task`] does that).
    #[inline]
    pub(crate) fn entries_mut(&self) -> RefMut<'_, Slots> {
        self.entries.borrow_mut()
    }

    /// The side table of extras, to read.
    #[inline]
    pub(crate) fn extras(&self) -> Ref<'_, Extras> {
        self.extras.borrow()
    }

    /// The side table of extras, to change.
    #[inline]
    pub(crate) fn extras_mut(&self) -> RefMut<'_, Extras> {
        self.extras.borrow_mut()
    }

    /// How many tasks are in the table (waiting, ready, or finished with an outcome to take).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// The id of the live task with `key`, if the key is not stale.
    #[inline]
    pub(crate) fn id_of(&self, key: TaskKey) -> Option<u64> {
        self.entries.borrow().get(key.index()).filter(|e| key.matches(e.id)).map(|e| e.id)
    }

    /// Keeps a finished task's panic payload for its handle.
    #[inline]
    pub(crate) fn keep_panic(&self, id: u64, payload: Box<dyn Any + Send>) {
        self.panics.borrow_mut().insert(id, payload);
    }

    /// Names task `id`.
    pub(crate) fn set_name(&self, id: u64, name: String) {
        self.names.borrow_mut().insert(id, name);
    }

    /// Task `id`'s name: the one it was given, or `Task-<id>`.
    pub(crate) fn name(&self, id: u64) -> String {
        self.names.borrow().get(&id).cloned().unwrap_or_else(|| format!("Task-{id}"))
    }

    /// Forgets task `id`'s name (its handle, which could still ask for it, is gone).
    #[inline]
    pub(crate) fn forget_name(&self, id: u64) {
        take_by_id(&self.names, id);
    }

    /// Drops the extra part of a task whose entry was just removed (out of line: rare).
    #[cold]
    #[inline(never)]
    fn drop_extra(&self, entry: &mut TaskCell, index: usize) {
        let extra = take_extra(&mut self.extras.borrow_mut(), entry, index);
        drop(extra);
    }

    /// After a burst: gives back the slab's buffer if it is empty, and the extras' if they are
    /// mostly empty (see `Core::release_burst_memory`).
    pub(crate) fn release_memory(&self, burst: usize) {
        crate::runtime::give_back(&self.entries, Slots::is_empty, Slots::capacity);
        let mut extras = self.extras.borrow_mut();
        if extras.capacity() > burst && extras.len() < extras.capacity() / 8 {
            let keep = extras.len() * 2;
            extras.shrink_to(keep);
        }
    }
}

/// Why a task's entry leaves the table ([`Core::remove_task`]): each situation does the same
/// bookkeeping, and differs only in what is reported and whether the name stays.
pub(crate) enum Removal {
    /// A detached task finished (nobody holds a handle): its panic, with the payload in hand,
    /// is reported as never retrieved unless it was marked quiet.
    Detached(Option<Box<dyn Any + Send>>),
    /// A handle took the outcome: nothing is reported; the name stays while the handle lives.
    Taken,
    /// The handle of a finished task whose outcome nobody took was dropped: a panic is reported
    /// as never retrieved unless it was marked quiet.
    HandleDropped,
    /// The main task of `run_until_complete` ended (its caller resumes a panic).
    Main,
}

/// What [`Core::remove_task`] took out of the table, to be dropped by the caller outside the
/// borrows (the output's destructor and the payload's are user code).
pub(crate) struct Removed {
    /// The task's final status.
    pub(crate) status: Status,
    /// The task's cell, holding the output of a task that completed with a value (freed when
    /// dropped: drop it outside the borrows).
    pub(crate) cell: TaskCell,
    /// The panic payload, if the task panicked.
    pub(crate) payload: Option<Box<dyn Any + Send>>,
}

impl Core {
    /// Removes the finished task `key` from the table: the one removal path. It takes the entry,
    /// its extra, its panic payload (reported as never retrieved when `why` says so, by the
    /// task's name) and its name (unless a handle keeps asking for it), and gives buffers back
    /// once the table is empty.
    #[inline(always)]
    pub(crate) fn remove_task(&self, key: TaskKey, why: Removal) -> Removed {
        let mut entry = {
            let mut entries = self.tasks.entries.borrow_mut();
            // The cell goes with the entry: never while its stage is being polled (cell.rs's
            // invariant 3; a main task's stage is empty, its future on the caller's stack).
            // Checked before the entry leaves the table, so that the panic leaves the cell in it.
            let e = &entries[key.index()];
            assert!(e.status != Status::Running || e.is_main(), "aioloop: a running task was removed");
            entries.remove(key.index())
        };
        if entry.has_extra {
            // (A finished task has none; a main task unwinding may have one.)
            self.tasks.drop_extra(&mut entry, key.index());
        }
        let id = entry.id;
        let (status, quiet) = (entry.status, entry.quiet());
        let (payload, report, keep_name) = match why {
            Removal::Detached(p) => (p, true, false),
            Removal::Taken => (take_by_id(&self.tasks.panics, id), false, true),
            Removal::HandleDropped => (take_by_id(&self.tasks.panics, id), true, false),
            Removal::Main => (take_by_id(&self.tasks.panics, id), false, false),
        };
        let payload = match payload {
            Some(p) if report && !quiet => {
                self.report_unretrieved(id, &*p);
                // Reported: the payload is dropped by the caller (its destructor is user code).
                Some(p)
            }
            p => p,
        };
        if !keep_name {
            self.tasks.forget_name(id);
        }
        if self.tasks.entries.borrow().is_empty() {
            self.release_burst_memory();
        }
        Removed { status, cell: entry, payload }
    }

    pub(crate) fn report_unretrieved(&self, id: u64, payload: &(dyn Any + Send)) {
        self.report(&crate::runtime::exception::ExceptionContext {
            message: "Task exception was never retrieved",
            task: Some(self.task_info(id)),
            panic: Some(payload),
        });
    }

    /// Names a task (for reports, dumps and the trace).
    pub(crate) fn set_task_name(&self, id: u64, name: String) {
        if let Some(tracer) = &self.tracer {
            tracer.borrow_mut().rename(TaskId(id), &name);
        }
        self.tasks.set_name(id, name);
    }

    pub(crate) fn task_name(&self, id: u64) -> String {
        self.tasks.name(id)
    }

    /// Returns true if the task's cancellation was requested and it has not run since (asyncio:
    /// the future it waits on is cancelled already).
    pub(crate) fn cancel_requested(&self, key: TaskKey) -> bool {
        self.tasks.entries().get(key.index()).filter(|e| key.matches(e.id)).is_some_and(|e| e.cancel_requested)
    }

    /// Returns a task's status, or `None` if the key is stale.
    pub(crate) fn status_of(&self, key: TaskKey) -> Option<Status> {
        self.tasks.entries().get(key.index()).filter(|e| key.matches(e.id)).map(|e| e.status)
    }

    /// Makes `group` the joiner of a task (member `member`); a finished task reports at once.
    pub(crate) fn join_group(&self, key: TaskKey, group: &Rc<Group>, member: u32) {
        group.add_member(key);
        let (finished, old) = {
            let mut tasks = self.tasks.entries_mut();
            let e = &mut tasks[key.index()];
            if e.status.is_finished() {
                (Some(e.status), JoinSlot::Empty)
            } else {
                let mut extras = self.tasks.extras_mut();
                let x = extra_mut(&mut extras, e, key.index());
                (None, std::mem::replace(&mut x.join, JoinSlot::Group(group.clone(), member)))
            }
        };
        drop(old);
        if let Some(status) = finished {
            self.call_soon_action(crate::runtime::callbacks::Action::Member(group.clone(), member, status));
        }
    }

    /// Marks a task's failure as seen by someone (no "never retrieved" report).
    pub(crate) fn set_quiet(&self, key: TaskKey) {
        if let Some(e) = self.tasks.entries_mut().get_mut(key.index()).filter(|e| key.matches(e.id)) {
            e.set_quiet();
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
        let mut tasks = self.tasks.entries_mut();
        let e = tasks.get_mut(key.index()).filter(|e| key.matches(e.id))?;
        update_extra(&mut self.tasks.extras_mut(), e, key.index(), f)
    }

    /// Sets task `key`'s joiner to a waker (a handle awaited from `cx`), unless it already
    /// wakes the same task; returns the replaced joiner.
    pub(crate) fn set_join_waker(&self, e: &mut Header, index: usize, waker: &std::task::Waker) -> JoinSlot {
        let mut extras = self.tasks.extras_mut();
        let x = extra_mut(&mut extras, e, index);
        if matches!(&x.join, JoinSlot::Waker(w) if w.will_wake(waker)) {
            JoinSlot::Empty
        } else {
            std::mem::replace(&mut x.join, JoinSlot::Waker(waker.clone()))
        }
    }

    /// Records that the running task is awaiting `link` (for cancellation propagation); returns
    /// the running task, to [`unlink`](Self::unlink) it later. A link set earlier in the same
    /// step to something else makes it [`Link::Several`] (links are cleared at each step).
    pub(crate) fn set_awaiting_of_current(&self, link: Link) -> Option<TaskKey> {
        let cur = self.current.get()?;
        self.last_linked.set(Some(cur));
        let old = {
            let mut tasks = self.tasks.entries_mut();
            let e = tasks.get_mut(cur.index())?;
            e.awaits = true;
            let mut extras = self.tasks.extras_mut();
            let x = extra_mut(&mut extras, e, cur.index());
            let link = match x.awaiting.take() {
                Some(old) => old.and(link),
                None => link,
            };
            x.awaiting.replace(link)
        };
        drop(old);
        Some(cur)
    }

    /// Returns true if the running task may have an await link: false only when none was set
    /// during its current poll (a poll starts without one: `run_task` clears it), which costs no
    /// lookup.
    #[inline]
    pub(crate) fn current_may_await(&self) -> bool {
        let cur = self.current.get();
        cur.is_some() && self.last_linked.get() == cur
    }

    /// Takes the running task's awaiting link (to see what a sub-future links during its poll).
    pub(crate) fn take_awaiting_of_current(&self) -> Option<Link> {
        let cur = self.current.get()?;
        self.update_extra_of(cur, |x| x.awaiting.take()).and_then(|(link, _)| link)
    }

    /// Clears `task`'s awaiting link if it is still `link` (the future that set it is gone, so a
    /// later cancellation must not follow it).
    pub(crate) fn unlink(&self, task: TaskKey, link: &Link) {
        let stale = self.update_extra_of(task, |x| x.awaiting.take_if(|l| l.same(link)));
        drop(stale);
    }
}

/// Removes `id` from one of the task table's side tables (names, panic payloads); most loops
/// name no task and see no panic, and then this is one test.
fn take_by_id<V>(table: &std::cell::RefCell<std::collections::HashMap<u64, V>>, id: u64) -> Option<V> {
    let mut table = table.borrow_mut();
    if table.is_empty() {
        None
    } else {
        table.remove(&id)
    }
}
