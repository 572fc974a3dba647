//! The replay behind the exports: each task's events become a lane of state segments (ready,
//! running, waiting on something) through a small state machine, and a few formatting helpers
//! shared by the text listing, the JSON and the SVG.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Trace, TraceEvent, TraceKind};
use crate::runtime::task::TaskId;
use crate::runtime::task::WaitingOn;

/// Formats loop time as seconds with milliseconds: `6.000s`.
pub(super) fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

// ===== Replaying events into lanes =====

/// What a task waits on, as a color class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    Timer,
    Io,
    Task,
    Gather,
    /// The tasks of a `wait`, `as_completed` or `shield`.
    Tasks,
    Other,
}

/// What a task is doing during a segment of its lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// In the ready queue.
    Ready,
    /// Being polled.
    Running,
    /// Parked until a wake.
    Waiting(Wait),
}

impl State {
    /// Returns the state's name in the exports.
    pub(super) fn label(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Running => "poll",
            State::Waiting(Wait::Timer) => "waiting on timer",
            State::Waiting(Wait::Io) => "waiting on I/O",
            State::Waiting(Wait::Task) => "waiting on task",
            State::Waiting(Wait::Gather) => "waiting on gather",
            State::Waiting(Wait::Tasks) => "waiting on tasks",
            State::Waiting(Wait::Other) => "waiting on something else",
        }
    }
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Finish {
    Done,
    Cancelled,
    Panicked,
}

impl Finish {
    pub(super) fn label(self) -> &'static str {
        match self {
            Finish::Done => "done",
            Finish::Cancelled => "cancelled",
            Finish::Panicked => "panicked",
        }
    }
}

/// A stretch of time a task spent in one state.
#[derive(Debug, Clone)]
pub(super) struct Segment {
    pub(super) start: Duration,
    pub(super) end: Duration,
    pub(super) state: State,
    /// What it waited on, for a waiting segment (`describe_wait` text).
    pub(super) on: Option<String>,
}

/// One task's life, replayed from its events.
#[derive(Debug)]
pub(super) struct Lane {
    pub(super) task: TaskId,
    pub(super) name: String,
    /// Closed segments, in time order; they do not overlap.
    pub(super) segments: Vec<Segment>,
    /// The open segment: its state, since when, and what it waits on.
    pub(super) current: Option<(State, Duration, Option<String>)>,
    /// True if the task was woken while it was being polled: the poll's `Pending` leaves it ready.
    pub(super) woken_in_poll: bool,
    /// Loop times at which timers the task waited on were due (no duplicates in a row).
    pub(super) deadlines: Vec<Duration>,
    /// When it was spawned and woken.
    pub(super) spawned: Option<Duration>,
    pub(super) wakes: Vec<Duration>,
    /// When and how it ended.
    pub(super) finish: Option<(Duration, Finish)>,
}

impl Lane {
    pub(super) fn new(task: TaskId, name: String) -> Lane {
        Lane {
            task,
            name,
            segments: Vec::new(),
            current: None,
            woken_in_poll: false,
            deadlines: Vec::new(),
            spawned: None,
            wakes: Vec::new(),
            finish: None,
        }
    }

    /// Ends the open segment at `at` and opens one in `state` (or none).
    pub(super) fn enter(&mut self, next: Option<(State, Option<String>)>, at: Duration) {
        if let Some((state, start, on)) = self.current.take() {
            self.segments.push(Segment { start, end: at, state, on });
        }
        self.current = next.map(|(state, on)| (state, at, on));
    }

    /// Applies one event of this lane's task.
    pub(super) fn apply(&mut self, e: &TraceEvent, trace: &Trace) {
        let at = e.at;
        match &e.kind {
            TraceKind::Spawned { .. } => {
                self.spawned = Some(at);
                self.enter(Some((State::Ready, None)), at);
            }
            TraceKind::Polled => {
                self.woken_in_poll = false;
                self.enter(Some((State::Running, None)), at);
            }
            TraceKind::Parked(on) => {
                if let WaitingOn::Timer(due) | WaitingOn::Tasks { timeout: Some(due), .. } = on {
                    let due = trace.offset(*due);
                    if self.deadlines.last() != Some(&due) {
                        self.deadlines.push(due);
                    }
                }
                let wait = match on {
                    WaitingOn::Nothing => None,
                    WaitingOn::Timer(_) => Some(Wait::Timer),
                    WaitingOn::Io { .. } => Some(Wait::Io),
                    WaitingOn::Task(_) => Some(Wait::Task),
                    WaitingOn::Gather(_) => Some(Wait::Gather),
                    WaitingOn::Tasks { .. } => Some(Wait::Tasks),
                    WaitingOn::Other => Some(Wait::Other),
                };
                match wait {
                    Some(w) if !self.woken_in_poll => {
                        self.enter(Some((State::Waiting(w), Some(trace.describe_wait(on)))), at)
                    }
                    _ => self.enter(Some((State::Ready, None)), at),
                }
            }
            TraceKind::Woken => {
                self.wakes.push(at);
                match self.current {
                    Some((State::Running, ..)) => self.woken_in_poll = true,
                    Some((State::Ready, ..)) => {}
                    _ => self.enter(Some((State::Ready, None)), at),
                }
            }
            TraceKind::Done => self.end(at, Finish::Done),
            TraceKind::Cancelled => self.end(at, Finish::Cancelled),
            TraceKind::Panicked => self.end(at, Finish::Panicked),
        }
    }

    pub(super) fn end(&mut self, at: Duration, how: Finish) {
        self.enter(None, at);
        self.finish = Some((at, how));
    }

    /// Closes the open segment at the end of the trace (the task was still alive).
    pub(super) fn close(&mut self, end: Duration) {
        self.enter(None, end);
    }

    /// Appends this lane's Chrome trace events to `out`, one per line.
    pub(super) fn write_chrome(&self, out: &mut String) {
        let tid = self.task.as_u64();
        let mut name = String::new();
        json_string(&mut name, &self.name);
        // Metadata: the track's name, and tracks in task-id order.
        out.push_str(",\n");
        let _ = write!(out, r#"{{"name":"thread_name","ph":"M","pid":1,"tid":{tid},"args":{{"name":{name}}}}}"#);
        out.push_str(",\n");
        let _ =
            write!(out, r#"{{"name":"thread_sort_index","ph":"M","pid":1,"tid":{tid},"args":{{"sort_index":{tid}}}}}"#);
        for s in &self.segments {
            // Polls are slices even when they take no time (virtual time); an empty ready or
            // waiting stretch is not worth a slice.
            if s.state != State::Running && s.end == s.start {
                continue;
            }
            let cat = if s.state == State::Running { "poll" } else { "state" };
            let (name, ts, dur) = (s.state.label(), micros(s.start), micros(s.end - s.start));
            out.push_str(",\n");
            let _ =
                write!(out, r#"{{"name":"{name}","cat":"{cat}","ph":"X","pid":1,"tid":{tid},"ts":{ts},"dur":{dur}"#);
            if let Some(on) = &s.on {
                out.push_str(",\"args\":{\"on\":");
                json_string(out, on);
                out.push('}');
            }
            out.push('}');
        }
        let mut instant = |name: &str, at: Duration| {
            let ts = micros(at);
            out.push_str(",\n");
            let _ = write!(out, r#"{{"name":"{name}","cat":"task","ph":"i","s":"t","pid":1,"tid":{tid},"ts":{ts}}}"#);
        };
        if let Some(at) = self.spawned {
            instant("spawned", at);
        }
        for &at in &self.wakes {
            instant("woken", at);
        }
        for &at in &self.deadlines {
            instant("timer due", at);
        }
        if let Some((at, how)) = self.finish {
            instant(how.label(), at);
        }
    }
}

// ===== JSON =====

/// Formats a duration as microseconds with nanosecond digits (`6000000.000`), exactly.
pub(super) fn micros(d: Duration) -> String {
    let ns = d.as_nanos();
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

/// Appends `s` as a JSON string literal: quotes, backslashes and control characters escaped;
/// other characters as UTF-8, except U+2028 and U+2029, escaped for JavaScript's sake.
pub(super) fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
