//! The trace recorder's engine side: with tracing on, the loop appends a [`TraceEvent`] for each
//! step of each task's life (a `Vec::push`; one branch on the hot path when tracing is off).
//! The public [`Trace`](crate::Trace) (src/trace/) replays a snapshot of these events.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::runtime::task::TaskId;
use crate::trace::{TraceEvent, TraceKind};

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
