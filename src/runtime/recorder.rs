//! The trace recorder's engine side: with tracing on, the loop appends a [`TraceEvent`] for each
//! step of each task's life (a `Vec::push`; one branch on the hot path when tracing is off).
//! The public [`Trace`](crate::Trace) (src/trace/) replays a snapshot of these events.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::runtime::task::TaskId;
use crate::runtime::task::WaitingOn;

/// One step of one task's life, at a moment of loop time.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build().unwrap();
/// let t = lp.spawn(aioloop::sleep(Duration::from_millis(1500)));
/// let id = t.id();
/// lp.run_until_complete(t).unwrap();
/// let trace = lp.trace();
/// let done = trace.events().iter().find(|e| e.task == id && e.kind == aioloop::TraceKind::Done).unwrap();
/// assert_eq!(done.at, Duration::from_millis(1500));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct TraceEvent {
    /// Loop time since the loop was built (virtual time on a virtual-time loop).
    pub at: Duration,
    /// The task.
    pub task: TaskId,
    /// What happened.
    pub kind: TraceKind,
}

/// What happened to a task, in a [`TraceEvent`].
///
/// # Examples
///
/// A task that sleeps is spawned, polled, parked on its timer, woken when the timer fires,
/// polled again, and done:
///
/// ```
/// use std::time::Duration;
/// use aioloop::{TraceKind, WaitingOn};
///
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build().unwrap();
/// let t = lp.spawn(aioloop::sleep(Duration::from_secs(2)));
/// let id = t.id();
/// lp.run_until_complete(t).unwrap();
/// let trace = lp.trace();
/// let kinds: Vec<&TraceKind> = trace.events().iter().filter(|e| e.task == id).map(|e| &e.kind).collect();
/// assert!(matches!(kinds[0], TraceKind::Spawned { name } if *name == format!("Task-{id}")));
/// assert_eq!(kinds[1], &TraceKind::Polled);
/// let TraceKind::Parked(WaitingOn::Timer(due)) = kinds[2] else { panic!("{trace}") };
/// assert_eq!(*due - trace.start(), Duration::from_secs(2));
/// assert_eq!(kinds[3..], [&TraceKind::Woken, &TraceKind::Polled, &TraceKind::Done]);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum TraceKind {
    /// The task was created (and queued to run).
    Spawned {
        /// Its name then: `Task-<id>`, or the name it was given.
        name: String,
    },
    /// A poll of the task began.
    Polled,
    /// The poll returned `Pending`; the task now waits on this.
    Parked(WaitingOn),
    /// The task was put on the ready queue (by a waker, a timer, I/O, or a cancellation).
    Woken,
    /// The task completed.
    Done,
    /// The task was cancelled: its future was dropped before it completed.
    Cancelled,
    /// The task panicked.
    Panicked,
}

/// The loop's recorder: appends events as they happen (see the module docs).
#[derive(Debug)]
pub(crate) struct Recorder {
    /// The instant loop time 0 stands for.
    start: Instant,
    /// The events so far, in order.
    events: Vec<TraceEvent>,
    /// Names given after spawning (`Task::set_name`), which no event carries.
    renames: BTreeMap<TaskId, String>,
}

impl Recorder {
    /// Creates an empty recorder whose loop time 0 is `start`.
    pub(crate) fn new(start: Instant) -> Recorder {
        Recorder { start, events: Vec::new(), renames: BTreeMap::new() }
    }

    /// Records that `kind` happened to `task` at `now` (an instant of the loop's clock).
    pub(crate) fn record(&mut self, now: Instant, task: TaskId, kind: TraceKind) {
        let at = now.saturating_duration_since(self.start);
        self.events.push(TraceEvent { at, task, kind });
    }

    /// Records that `task` is now called `name` (`Task::set_name`).
    pub(crate) fn rename(&mut self, task: TaskId, name: &str) {
        self.renames.insert(task, name.to_string());
    }

    /// The instant loop time 0 stands for.
    pub(crate) fn start(&self) -> Instant {
        self.start
    }

    /// The events so far, in order.
    pub(crate) fn events(&self) -> &[TraceEvent] {
        &self.events
    }

    /// The names given after spawning, by task.
    pub(crate) fn renames(&self) -> &BTreeMap<TaskId, String> {
        &self.renames
    }
}
