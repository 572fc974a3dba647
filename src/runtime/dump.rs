//! The task dump: every live task, its state, where it was spawned, and what it waits for
//! (asyncio's `all_tasks()` and the repr of each task), printed as a table.
//!
//! What a task waits for is read off the loop's own structures: the timer heap (a record whose
//! action wakes the task), the I/O slab (a source whose waiters include the task), the task's
//! await link (another task, or a gather), and the groups of `wait`, `as_completed` and `shield`
//! (a group whose waker is the task, found through the members that have it as their joiner). A
//! task parked on something else (a channel, a foreign future) shows as waiting on "something
//! else". Building a dump scans those structures: it is a debugging aid, not for hot paths. With
//! tracing on, each park scans them too, for that one task.

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::runtime::task::{JoinSlot, Link, TaskCell, TaskId, TaskState, WaitingOn};
use crate::runtime::timer::Waiting;
use crate::runtime::waker::{key_of, TaskKey};
use crate::runtime::Core;

/// One task of a [`TaskDump`].
///
/// # Examples
///
/// See [`TaskDump`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSnapshot {
    /// The task's id.
    pub id: TaskId,
    /// Its name.
    pub name: String,
    /// Its state (`Pending`, or `Running` for the task taking the dump).
    pub state: TaskState,
    /// Where it was spawned (debug mode only).
    pub spawned_at: Option<&'static Location<'static>>,
    /// What it waits for.
    pub waiting_on: WaitingOn,
}

/// Every unfinished task of a loop, from [`EventLoop::tasks`](crate::EventLoop::tasks) or
/// [`all_tasks`](crate::all_tasks); its `Display` is a table.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use aioloop::WaitingOn;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).debug(true).build().unwrap();
/// let sleeper = lp.spawn(aioloop::sleep(Duration::from_secs(5)));
/// sleeper.set_name("sleeper");
/// lp.run_until_complete(aioloop::yield_now());
/// let dump = lp.tasks();
/// let t = dump.tasks.iter().find(|t| t.name == "sleeper").unwrap();
/// assert!(matches!(t.waiting_on, WaitingOn::Timer(_)));
/// let table = dump.to_string();
/// assert!(table.contains("sleeper") && table.contains("timer in 5.000s"));
/// ```
#[derive(Debug, Clone)]
pub struct TaskDump {
    /// The tasks, by id.
    pub tasks: Vec<TaskSnapshot>,
    /// The loop's time when the dump was taken.
    pub now: Instant,
}

impl Core {
    /// Takes a dump of every unfinished task.
    pub(crate) fn dump(&self) -> TaskDump {
        let now = self.clock.instant(self.clock.now_ns());
        let slot = self.remote.slot();
        let timers = self.timer_waits();
        let groups = self.group_waits();
        let tasks = self.tasks.entries();
        let mut out: Vec<TaskSnapshot> = tasks
            .iter()
            .filter(|(_, e)| !e.status.is_finished())
            .map(|(index, e)| TaskSnapshot {
                id: TaskId(e.id),
                name: self.task_name(e.id),
                state: e.status.public(),
                spawned_at: self.spawn_location(e.id),
                waiting_on: self.classify(&tasks, &timers, &groups, TaskKey::new(slot, index, e.id), e),
            })
            .collect();
        out.sort_by_key(|t| t.id);
        TaskDump { tasks: out, now }
    }

    /// What one task waits for (for the trace, when it parks); `Nothing` for a stale key.
    pub(crate) fn waiting_on(&self, key: TaskKey) -> WaitingOn {
        let timers = self.timer_waits();
        let groups = self.group_waits();
        let tasks = self.tasks.entries();
        match tasks.get(key.index()).filter(|e| key.matches(e.id)) {
            Some(e) => self.classify(&tasks, &timers, &groups, key, e),
            None => WaitingOn::Nothing,
        }
    }

    /// Which tasks wait on a timer, and until when (a scan of the heap).
    fn timer_waits(&self) -> Vec<(TaskKey, u64)> {
        let handles = self.handles.borrow();
        let mut waits = vec![];
        self.timers.borrow().for_each_waiting(|deadline, what| {
            let key = match what {
                Waiting::Task(key) => Some(key),
                Waiting::Wake(w) => key_of(w),
                Waiting::Record(index, seq) => handles
                    .get(index as usize)
                    .filter(|r| r.seq == seq && r.in_heap)
                    .and_then(|r| r.waker())
                    .and_then(key_of),
            };
            if let Some(key) = key {
                waits.push((key, deadline));
            }
        });
        waits
    }

    /// Which tasks wait on the members of a group (`wait`, `as_completed`, `shield`, and a
    /// `gather` too), and on how many unfinished members: a scan of the joiners. A member that
    /// finished has no joiner any more, so each group is counted once per unfinished member.
    fn group_waits(&self) -> HashMap<TaskKey, usize> {
        let extras = self.tasks.extras();
        let mut waits = HashMap::new();
        for extra in extras.values() {
            if let JoinSlot::Group(group, _) = &extra.join {
                if let Some(waiter) = group.waker_key() {
                    *waits.entry(waiter).or_insert(0) += 1;
                }
            }
        }
        waits
    }

    /// What task `key` (entry `e`) waits for: a task or gather it awaits, else the tasks of a
    /// `wait` (with its earliest timer), else its earliest timer, else a descriptor, else
    /// something the loop does not track.
    fn classify(
        &self,
        tasks: &crate::runtime::task::Slots,
        timers: &[(TaskKey, u64)],
        groups: &HashMap<TaskKey, usize>,
        key: TaskKey,
        e: &TaskCell,
    ) -> WaitingOn {
        if e.scheduled || e.status.public() == TaskState::Running {
            return WaitingOn::Nothing;
        }
        let extras = self.tasks.extras();
        if let Some(link) = crate::runtime::task::extra_of(&extras, e, key.index()).and_then(|x| x.awaiting.as_ref()) {
            return match link {
                Link::Task(inner) => tasks
                    .get(inner.index())
                    .filter(|i| inner.matches(i.id))
                    .map_or(WaitingOn::Other, |i| WaitingOn::Task(TaskId(i.id))),
                Link::Group(g) => WaitingOn::Gather(g.members()),
                Link::Several => WaitingOn::Other,
            };
        }
        let timer = timers.iter().filter(|(k, _)| *k == key).map(|&(_, d)| self.clock.instant(d)).min();
        if let Some(&count) = groups.get(&key) {
            return WaitingOn::Tasks { count, timeout: timer };
        }
        if let Some(at) = timer {
            return WaitingOn::Timer(at);
        }
        match self.io_waited_by(key) {
            Some((fd, dir)) => WaitingOn::Io { fd, write: dir == crate::runtime::reactor::Dir::Write },
            None => WaitingOn::Other,
        }
    }
}

impl fmt::Display for TaskDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>6}  {:<20} {:<9} {:<28} spawned at", "id", "name", "state", "waiting on")?;
        for t in &self.tasks {
            let state = match t.state {
                TaskState::Pending if t.waiting_on == WaitingOn::Nothing => "ready",
                TaskState::Pending => "waiting",
                TaskState::Running => "running",
                TaskState::Done => "done",
                TaskState::Cancelled => "cancelled",
            };
            let waiting = match &t.waiting_on {
                WaitingOn::Nothing => "-".to_string(),
                WaitingOn::Timer(at) => {
                    format!("timer in {:.3}s", at.saturating_duration_since(self.now).max(Duration::ZERO).as_secs_f64())
                }
                WaitingOn::Io { fd, write: false } => format!("fd {fd} readable"),
                WaitingOn::Io { fd, write: true } => format!("fd {fd} writable"),
                WaitingOn::Task(id) => format!("Task-{id}"),
                WaitingOn::Gather(n) => format!("gather of {n}"),
                WaitingOn::Tasks { count, timeout } => {
                    let tasks = if *count == 1 { "1 task".to_string() } else { format!("{count} tasks") };
                    match timeout {
                        Some(at) => {
                            format!("{tasks} or timer in {:.3}s", at.saturating_duration_since(self.now).as_secs_f64())
                        }
                        None => tasks,
                    }
                }
                WaitingOn::Other => "something else".to_string(),
            };
            let at = t.spawned_at.map_or_else(|| "-".to_string(), |l| l.to_string());
            writeln!(f, "{:>6}  {:<20} {:<9} {:<28} {}", t.id, t.name, state, waiting, at)?;
        }
        Ok(())
    }
}
