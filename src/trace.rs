//! The trace recorder: a picture of every run.
//!
//! With tracing on (`Builder::trace`), the loop tells a [`Recorder`] each step of each task's
//! life: spawned, polled, parked on something, woken, and how it ended. `EventLoop::trace` hands
//! back a [`Trace`], a snapshot of those events, which prints as a text listing and exports to two
//! formats:
//!
//! - [`Trace::to_chrome_json`]: Chrome's trace-event JSON, which Perfetto (ui.perfetto.dev) and
//!   `chrome://tracing` open: one track per task, a slice per poll and per state;
//! - [`Trace::to_svg`]: a self-contained SVG timeline, one row per task, for a book or a README.
//!
//! # Implementation
//!
//! Recording is a `Vec::push` of a small [`TraceEvent`]: the loop's hot path pays one branch when
//! tracing is off and one push when it is on. Nothing is derived while the program runs. The
//! exports replay the events once, task by task, through a small state machine (`Lane`):
//!
//! ```text
//!   Spawned ──► ready ──Polled──► running ──Parked(on)──► waiting on `on` ──Woken──► ready ...
//!                                    │  (Woken during the poll, or Parked(Nothing): ready again)
//!                                    └──Done / Cancelled / Panicked──► finished
//! ```
//!
//! The alternative, keeping open spans in each task's entry and closing them as states change,
//! would put the exporters' work on the hot path and lose the global order of events, which the
//! text listing shows.
//!
//! Production note: tokio's `tokio-console` streams similar task events to a separate process
//! over gRPC and keeps only aggregates for long runs; this recorder keeps every event in memory,
//! which suits programs that run for seconds, not servers that run for weeks.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::dump::WaitingOn;
use crate::task::TaskId;

/// Everything a loop recorded about its tasks, from `EventLoop::trace`.
///
/// Its `Display` lists one event per line (`  6.000s Task-4 cancelled`); [`to_chrome_json`]
/// and [`to_svg`] draw it; [`save`] writes either, by the file's extension.
///
/// [`to_chrome_json`]: Trace::to_chrome_json
/// [`to_svg`]: Trace::to_svg
/// [`save`]: Trace::save
#[derive(Debug, Clone)]
pub struct Trace {
    /// The instant loop time 0 stands for (when the loop was built).
    start: Instant,
    /// The events, in the order they happened (so `at` never decreases).
    events: Vec<TraceEvent>,
    /// Each task's latest name: the one it was spawned with, or the one it was renamed to.
    names: BTreeMap<TaskId, String>,
}

/// One step of one task's life, at a moment of loop time.
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
// Until the loop's hooks call the recorder, only the tests do.
#[allow(dead_code)]
#[derive(Debug)]
pub(crate) struct Recorder {
    /// The instant loop time 0 stands for.
    start: Instant,
    /// The events so far, in order.
    events: Vec<TraceEvent>,
    /// Names given after spawning (`Task::set_name`), which no event carries.
    renames: BTreeMap<TaskId, String>,
}

#[allow(dead_code)]
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

    /// Returns a snapshot of what was recorded so far.
    pub(crate) fn trace(&self) -> Trace {
        let mut trace = Trace::from_events(self.start, self.events.clone());
        for (task, name) in &self.renames {
            trace.names.insert(*task, name.clone());
        }
        trace
    }
}

impl Trace {
    /// Builds a trace from events in the order they happened; names come from their `Spawned`.
    #[allow(dead_code)]
    pub(crate) fn from_events(start: Instant, events: Vec<TraceEvent>) -> Trace {
        let mut names = BTreeMap::new();
        for e in &events {
            if let TraceKind::Spawned { name } = &e.kind {
                names.insert(e.task, name.clone());
            }
        }
        Trace { start, events, names }
    }

    /// Returns an empty trace (a loop built without tracing).
    #[allow(dead_code)]
    pub(crate) fn empty(start: Instant) -> Trace {
        Trace::from_events(start, Vec::new())
    }

    /// Returns the events, in the order they happened (`at` never decreases).
    ///
    /// # Examples
    ///
    /// See [`Trace`].
    pub fn events(&self) -> &[TraceEvent] {
        &self.events
    }

    /// Returns the instant loop time 0 stands for: `deadline - trace.start()` is the loop time of
    /// a [`WaitingOn::Timer`] deadline.
    ///
    /// # Examples
    ///
    /// See [`Trace`].
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Returns a task's name: the latest one it had, or `Task-<id>` for a task the trace never
    /// saw spawned.
    ///
    /// # Examples
    ///
    /// See [`Trace`].
    pub fn name(&self, task: TaskId) -> String {
        self.names.get(&task).cloned().unwrap_or_else(|| format!("Task-{task}"))
    }

    /// Returns loop time when the last event happened (zero for an empty trace).
    fn end(&self) -> Duration {
        self.events.last().map_or(Duration::ZERO, |e| e.at)
    }

    /// Returns the loop time of an instant (a timer's deadline).
    fn offset(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.start)
    }

    /// Replays the events into one lane per task, in order of first appearance.
    fn lanes(&self) -> Vec<Lane> {
        let mut lanes: Vec<Lane> = Vec::new();
        let mut index: HashMap<TaskId, usize> = HashMap::new();
        for e in &self.events {
            let i = *index.entry(e.task).or_insert_with(|| {
                lanes.push(Lane::new(e.task, self.name(e.task)));
                lanes.len() - 1
            });
            lanes[i].apply(e, self);
        }
        let end = self.end();
        for lane in &mut lanes {
            lane.close(end);
        }
        lanes
    }

    /// Writes the trace in Chrome's trace-event format, which Perfetto (ui.perfetto.dev) and
    /// `chrome://tracing` open.
    ///
    /// Each task is a thread track (`tid` = task id, named after the task). On it, a `poll` slice
    /// for each poll, a slice for each stretch of time the task was ready or waiting (`waiting
    /// on timer`, `waiting on I/O`, `waiting on task`, `waiting on gather`, `waiting on
    /// something else`), and instant events when it was spawned, woken, and finished, and where
    /// a timer it waited on was due. Timestamps are microseconds of loop time.
    ///
    /// # Examples
    ///
    /// See [`Trace`].
    pub fn to_chrome_json(&self) -> String {
        let mut out = String::from("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
        out.push_str(r#"{"name":"process_name","ph":"M","pid":1,"tid":0,"args":{"name":"aioloop"}}"#);
        for lane in self.lanes() {
            lane.write_chrome(&mut out);
        }
        out.push_str("\n]}\n");
        out
    }

    /// Draws the trace as a self-contained SVG timeline.
    ///
    /// One row per task, labelled with its name, along a time axis in seconds. A row is colored
    /// by what the task was doing: ready (queued), running (a poll: a thin dark mark, which is
    /// all a poll is on virtual time), or waiting, with a color for each thing it can wait on
    /// (a timer, I/O, another task, a gather, something else). A small tick shows where each
    /// timer the task waited on was due, even one it never reached. A green dot ends a task that
    /// completed, a red ✕ one that was cancelled, a magenta diamond one that panicked. Hovering
    /// over a segment shows its times. A legend explains the colors.
    ///
    /// A trace of more than 100 tasks draws 100 of them, evenly spaced in spawn order, and says
    /// so; the JSON export ([`to_chrome_json`](Self::to_chrome_json)) keeps every task.
    ///
    /// # Examples
    ///
    /// See [`Trace`].
    pub fn to_svg(&self) -> String {
        svg::render(self)
    }

    /// Writes the trace to a file, in the format its extension names: `.json` for
    /// [`to_chrome_json`](Self::to_chrome_json), `.svg` for [`to_svg`](Self::to_svg).
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] for any other extension (nothing is written), or the error
    /// of writing the file.
    ///
    /// # Examples
    ///
    /// See [`Trace`].
    pub fn save(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let text = if ext.eq_ignore_ascii_case("json") {
            self.to_chrome_json()
        } else if ext.eq_ignore_ascii_case("svg") {
            self.to_svg()
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot save a trace to {}: name a .json file (Chrome trace-event JSON, for Perfetto) \
                     or a .svg file (a timeline picture)",
                    path.display()
                ),
            ));
        };
        std::fs::write(path, text)
    }

    /// Describes what a task waits on, for the listing and the pictures.
    fn describe_wait(&self, on: &WaitingOn) -> String {
        match on {
            WaitingOn::Nothing => "nothing".to_string(),
            WaitingOn::Timer(at) => format!("a timer due at {}", secs(self.offset(*at))),
            WaitingOn::Io { fd, write: false } => format!("fd {fd} readable"),
            WaitingOn::Io { fd, write: true } => format!("fd {fd} writable"),
            WaitingOn::Task(id) => self.name(*id),
            WaitingOn::Gather(n) => format!("a gather of {n}"),
            WaitingOn::Other => "something else".to_string(),
        }
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.events {
            let what = match &e.kind {
                TraceKind::Spawned { .. } => "spawned".to_string(),
                TraceKind::Polled => "polled".to_string(),
                TraceKind::Parked(WaitingOn::Nothing) => "yields (still ready)".to_string(),
                TraceKind::Parked(on) => format!("waits on {}", self.describe_wait(on)),
                TraceKind::Woken => "woken".to_string(),
                TraceKind::Done => "done".to_string(),
                TraceKind::Cancelled => "cancelled".to_string(),
                TraceKind::Panicked => "panicked".to_string(),
            };
            writeln!(f, "{:7.3}s {} {}", e.at.as_secs_f64(), self.name(e.task), what)?;
        }
        Ok(())
    }
}

/// Formats loop time as seconds with milliseconds: `6.000s`.
fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

// ===== Replaying events into lanes =====

/// What a task waits on, as a color class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Timer,
    Io,
    Task,
    Gather,
    Other,
}

/// What a task is doing during a segment of its lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the ready queue.
    Ready,
    /// Being polled.
    Running,
    /// Parked until a wake.
    Waiting(Wait),
}

impl State {
    /// Returns the state's name in the exports.
    fn label(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Running => "poll",
            State::Waiting(Wait::Timer) => "waiting on timer",
            State::Waiting(Wait::Io) => "waiting on I/O",
            State::Waiting(Wait::Task) => "waiting on task",
            State::Waiting(Wait::Gather) => "waiting on gather",
            State::Waiting(Wait::Other) => "waiting on something else",
        }
    }
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    Done,
    Cancelled,
    Panicked,
}

impl Finish {
    fn label(self) -> &'static str {
        match self {
            Finish::Done => "done",
            Finish::Cancelled => "cancelled",
            Finish::Panicked => "panicked",
        }
    }
}

/// A stretch of time a task spent in one state.
#[derive(Debug, Clone)]
struct Segment {
    start: Duration,
    end: Duration,
    state: State,
    /// What it waited on, for a waiting segment (`describe_wait` text).
    on: Option<String>,
}

/// One task's life, replayed from its events.
#[derive(Debug)]
struct Lane {
    task: TaskId,
    name: String,
    /// Closed segments, in time order; they do not overlap.
    segments: Vec<Segment>,
    /// The open segment: its state, since when, and what it waits on.
    current: Option<(State, Duration, Option<String>)>,
    /// True if the task was woken while it was being polled: the poll's `Pending` leaves it ready.
    woken_in_poll: bool,
    /// Loop times at which timers the task waited on were due (no duplicates in a row).
    deadlines: Vec<Duration>,
    /// When it was spawned and woken.
    spawned: Option<Duration>,
    wakes: Vec<Duration>,
    /// When and how it ended.
    finish: Option<(Duration, Finish)>,
}

impl Lane {
    fn new(task: TaskId, name: String) -> Lane {
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
    fn enter(&mut self, next: Option<(State, Option<String>)>, at: Duration) {
        if let Some((state, start, on)) = self.current.take() {
            self.segments.push(Segment { start, end: at, state, on });
        }
        self.current = next.map(|(state, on)| (state, at, on));
    }

    /// Applies one event of this lane's task.
    fn apply(&mut self, e: &TraceEvent, trace: &Trace) {
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
                if let WaitingOn::Timer(due) = on {
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

    fn end(&mut self, at: Duration, how: Finish) {
        self.enter(None, at);
        self.finish = Some((at, how));
    }

    /// Closes the open segment at the end of the trace (the task was still alive).
    fn close(&mut self, end: Duration) {
        self.enter(None, end);
    }

    /// Appends this lane's Chrome trace events to `out`, one per line.
    fn write_chrome(&self, out: &mut String) {
        let tid = self.task.as_u64();
        let mut name = String::new();
        json_string(&mut name, &self.name);
        let _ = write!(
            out,
            ",\n{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":{tid},\"args\":{{\"name\":{name}}}}}"
        );
        let _ = write!(
            out,
            ",\n{{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":{tid},\"args\":{{\"sort_index\":{tid}}}}}"
        );
        for s in &self.segments {
            // Polls are slices even when they take no time (virtual time); an empty ready or
            // waiting stretch is not worth a slice.
            if s.state != State::Running && s.end == s.start {
                continue;
            }
            let cat = if s.state == State::Running { "poll" } else { "state" };
            let _ = write!(
                out,
                ",\n{{\"name\":\"{}\",\"cat\":\"{cat}\",\"ph\":\"X\",\"pid\":1,\"tid\":{tid},\"ts\":{},\"dur\":{}",
                s.state.label(),
                micros(s.start),
                micros(s.end - s.start)
            );
            if let Some(on) = &s.on {
                out.push_str(",\"args\":{\"on\":");
                json_string(out, on);
                out.push('}');
            }
            out.push('}');
        }
        let mut instant = |name: &str, at: Duration| {
            let _ = write!(
                out,
                ",\n{{\"name\":\"{name}\",\"cat\":\"task\",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":{tid},\"ts\":{}}}",
                micros(at)
            );
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
fn micros(d: Duration) -> String {
    let ns = d.as_nanos();
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

/// Appends `s` as a JSON string literal: quotes, backslashes and control characters escaped;
/// other characters as UTF-8, except U+2028 and U+2029, escaped for JavaScript's sake.
fn json_string(out: &mut String, s: &str) {
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

// ===== SVG =====

mod svg {
    //! The SVG timeline: layout constants, the axis, rows, marks and the legend.

    use std::fmt::Write as _;
    use std::time::Duration;

    use super::{secs, Finish, Lane, State, Trace, Wait};

    /// The picture's width in pixels.
    const WIDTH: f64 = 1000.0;
    /// Rows drawn at most; a larger trace draws an evenly spaced sample of its tasks.
    pub(super) const MAX_ROWS: usize = 100;
    /// Characters of a name shown as its row's label.
    const LABEL_CHARS: usize = 24;
    /// Space for the finish marks and timer arrows right of the plot.
    const RIGHT_MARGIN: f64 = 28.0;
    /// Where the rows start.
    const TOP: f64 = 44.0;

    /// Colors: light for waiting (most of a row), strong for what happens at an instant.
    const READY: &str = "#ffd54f";
    const RUNNING: &str = "#212121";
    const TIMER: &str = "#9dc3e6";
    const IO: &str = "#a8d5a2";
    const TASK: &str = "#c9b3e0";
    const GATHER: &str = "#f5b7a5";
    const OTHER: &str = "#cfcfcf";
    const DUE: &str = "#1f4e9a";
    const DONE: &str = "#2e9e44";
    const CANCELLED: &str = "#d62728";
    const PANICKED: &str = "#b8008a";

    fn color(state: State) -> &'static str {
        match state {
            State::Ready => READY,
            State::Running => RUNNING,
            State::Waiting(Wait::Timer) => TIMER,
            State::Waiting(Wait::Io) => IO,
            State::Waiting(Wait::Task) => TASK,
            State::Waiting(Wait::Gather) => GATHER,
            State::Waiting(Wait::Other) => OTHER,
        }
    }

    /// Maps loop time to x.
    struct Scale {
        x0: f64,
        width: f64,
        end: Duration,
    }

    impl Scale {
        fn x(&self, t: Duration) -> f64 {
            self.x0 + self.width * (t.as_secs_f64() / self.end.as_secs_f64()).min(1.0)
        }
    }

    /// Returns a tick step of 1, 2 or 5 × 10^k seconds giving at most about 10 ticks up to `end`.
    fn tick_step(end: f64) -> f64 {
        let raw = end / 10.0;
        let magnitude = 10f64.powi(raw.log10().floor() as i32);
        [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude)
    }

    /// Returns the decimals a tick label of this step needs.
    fn tick_decimals(step: f64) -> usize {
        if step >= 1.0 {
            0
        } else {
            (-step.log10().floor()) as usize
        }
    }

    /// Returns the end of the time axis: past the last event and the timers due soon after it,
    /// rounded up to a tick.
    fn axis_end(trace: &Trace, lanes: &[Lane]) -> Duration {
        let last = trace.end();
        // A deadline shortly after the last event is worth seeing (phase 2's 10 s timer, cut
        // short at 6 s); one a day later would squash the run into a sliver.
        let due = lanes.iter().flat_map(|l| l.deadlines.iter().copied()).filter(|d| *d <= last * 2).max();
        let end = last.max(due.unwrap_or(Duration::ZERO));
        if end.is_zero() {
            return Duration::from_secs(1);
        }
        let step = tick_step(end.as_secs_f64());
        Duration::from_secs_f64((end.as_secs_f64() / step - 1e-9).ceil() * step)
    }

    /// Escapes text for XML content or an attribute; characters XML 1.0 cannot hold become
    /// U+FFFD (controls other than tab and newline, U+FFFE, U+FFFF).
    pub(super) fn xml(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&apos;"),
                '\t' | '\n' => out.push(' '),
                c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
                c => out.push(c),
            }
        }
        out
    }

    /// Shortens a label to `LABEL_CHARS` characters, with an ellipsis.
    fn short(name: &str) -> String {
        if name.chars().count() <= LABEL_CHARS {
            name.to_string()
        } else {
            name.chars().take(LABEL_CHARS - 1).chain(['…']).collect()
        }
    }

    /// Picks the lanes to draw: all, or `MAX_ROWS` evenly spaced ones.
    fn sample(lanes: Vec<Lane>) -> (Vec<Lane>, usize) {
        let total = lanes.len();
        if total <= MAX_ROWS {
            return (lanes, total);
        }
        let keep: Vec<usize> = (0..MAX_ROWS).map(|i| i * total / MAX_ROWS).collect();
        let picked = lanes.into_iter().enumerate().filter(|(i, _)| keep.binary_search(i).is_ok()).map(|(_, l)| l);
        (picked.collect(), total)
    }

    /// Where things go: the time scale and the rows' size.
    struct Layout {
        scale: Scale,
        row_h: f64,
        font: f64,
    }

    pub(super) fn render(trace: &Trace) -> String {
        let lanes = trace.lanes();
        let end = axis_end(trace, &lanes);
        let (lanes, total) = sample(lanes);
        let rows = lanes.len();
        let row_h = match rows {
            0..=20 => 24.0,
            21..=40 => 18.0,
            _ => 12.0,
        };
        let font = if row_h >= 18.0 { 12.0 } else { 9.0 };
        let label_chars = lanes.iter().map(|l| short(&l.name).chars().count()).max().unwrap_or(4).max(4);
        let label_w = (label_chars as f64 * font * 0.62 + 16.0).clamp(60.0, 220.0);
        let layout = Layout { scale: Scale { x0: label_w, width: WIDTH - label_w - RIGHT_MARGIN, end }, row_h, font };
        let axis_y = TOP + rows as f64 * row_h + 6.0;
        let legend_y = axis_y + 52.0;
        let note_y = legend_y + 44.0;
        let height = if total > rows || rows == 0 { note_y + 14.0 } else { legend_y + 34.0 };

        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"#
        );
        out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
        let title = format!(
            "aioloop trace: {total} task{}, {} events, {} of loop time",
            if total == 1 { "" } else { "s" },
            trace.events().len(),
            secs(trace.end())
        );
        let _ = writeln!(out, r#"<text x="12" y="24" font-size="14" font-weight="bold">{}</text>"#, xml(&title));
        // Every other row shaded, under the grid and the bars.
        for i in (1..rows).step_by(2) {
            let y = TOP + i as f64 * row_h;
            let _ = writeln!(out, r##"<rect x="0" y="{y:.1}" width="{WIDTH}" height="{row_h:.1}" fill="#f4f4f4"/>"##);
        }
        axis(&mut out, &layout, TOP - 4.0, axis_y);
        if trace.end() < end && rows > 0 {
            // The axis goes on to show timers due after the run: mark where the run ended.
            let x = layout.scale.x(trace.end());
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{axis_y:.1}" stroke="#888888" stroke-dasharray="4,3"><title>the trace ends at {}</title></line>"##,
                TOP - 8.0,
                secs(trace.end())
            );
        }
        for (i, lane) in lanes.iter().enumerate() {
            row(&mut out, lane, &layout, TOP + i as f64 * row_h);
        }
        legend(&mut out, legend_y);
        let note = if rows == 0 {
            "No events: was the loop built with .trace(true)?".to_string()
        } else if total > rows {
            format!(
                "Showing {rows} of {total} tasks, evenly spaced in spawn order; \
                 the JSON export (Trace::to_chrome_json) has every task."
            )
        } else {
            String::new()
        };
        if !note.is_empty() {
            let _ = writeln!(out, r##"<text x="12" y="{note_y:.1}" fill="#555">{}</text>"##, xml(&note));
        }
        out.push_str("</svg>\n");
        out
    }

    /// Draws the time axis at `bottom`, with grid lines up to `top`.
    fn axis(out: &mut String, layout: &Layout, top: f64, bottom: f64) {
        let (scale, font) = (&layout.scale, layout.font);
        let end = scale.end.as_secs_f64();
        let step = tick_step(end);
        let decimals = tick_decimals(step);
        let x1 = scale.x0 + scale.width;
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{bottom:.1}" x2="{x1:.1}" y2="{bottom:.1}" stroke="#444"/>"##,
            scale.x0
        );
        let ticks = (end / step + 1e-6).floor() as u64;
        for k in 0..=ticks {
            let t = k as f64 * step;
            let x = scale.x(Duration::from_secs_f64(t));
            let _ =
                writeln!(out, r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#e4e4e4"/>"##);
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{:.1}" stroke="#444"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="{font}">{t:.decimals$}s</text>"##,
                bottom + 5.0,
                bottom + 18.0
            );
        }
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="{font}" fill="#555">loop time</text>"##,
            scale.x0 + scale.width / 2.0,
            bottom + 33.0
        );
    }

    /// Returns a timer-deadline tick: a small triangle above the bar and a line through it.
    fn due_tick(x: f64, bar_y: f64, bar_h: f64) -> String {
        format!(
            r#"<path d="M{:.1},{:.1} h6 l-3,4 z M{x:.1},{:.1} v{:.1}" fill="{DUE}" stroke="{DUE}" stroke-width="1.5"/>"#,
            x - 3.0,
            bar_y - 5.0,
            bar_y - 1.0,
            bar_h + 2.0
        )
    }

    /// Returns the mark of a task's end, starting at `x`, centered on `mid`, of radius `r`.
    fn finish_mark(how: Finish, x: f64, mid: f64, r: f64) -> String {
        match how {
            Finish::Done => format!(
                r##"<circle cx="{:.1}" cy="{mid:.1}" r="{:.1}" fill="{DONE}" stroke="#ffffff" stroke-width="1"/>"##,
                x + r * 0.75,
                r * 0.75
            ),
            Finish::Cancelled => format!(
                r#"<path d="M{x:.1},{:.1} l{d:.1},{d:.1} M{x:.1},{:.1} l{d:.1},-{d:.1}" stroke="{CANCELLED}" stroke-width="2.5" stroke-linecap="round"/>"#,
                mid - r,
                mid + r,
                d = 2.0 * r
            ),
            Finish::Panicked => format!(
                r##"<path d="M{:.1},{:.1} l{r:.1},{r:.1} l-{r:.1},{r:.1} l-{r:.1},-{r:.1} z" fill="{PANICKED}" stroke="#ffffff" stroke-width="1"/>"##,
                x + r,
                mid - r
            ),
        }
    }

    /// A run of same-state segments drawn as one rect.
    struct Bar {
        x0: f64,
        x1: f64,
        state: State,
        start: Duration,
        end: Duration,
        /// How many segments it covers.
        count: usize,
        /// What the first one waited on.
        on: Option<String>,
    }

    /// Draws one task's row: its label, ready and waiting bars, polls, timer deadlines and end.
    fn row(out: &mut String, lane: &Lane, layout: &Layout, y: f64) {
        let (scale, h, font) = (&layout.scale, layout.row_h, layout.font);
        let bar_h = (h * 0.6).round();
        let bar_y = y + (h - bar_h) / 2.0;
        let mid = y + h / 2.0;
        let name = xml(&lane.name);
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="{font}"><title>{name} (id {})</title>{}</text>"#,
            scale.x0 - 8.0,
            mid + font * 0.35,
            lane.task,
            xml(&short(&lane.name))
        );
        // Ready and waiting stretches, merged with the previous one when of the same state and
        // less than half a pixel apart: a task that waits on timers again and again is one bar
        // with poll marks on it, and a row costs at most a rect per pixel.
        let mut bars: Vec<Bar> = Vec::new();
        for s in lane.segments.iter().filter(|s| s.state != State::Running) {
            let (x0, x1) = (scale.x(s.start), scale.x(s.end));
            if x1 - x0 < 0.05 {
                continue;
            }
            match bars.last_mut() {
                Some(last) if last.state == s.state && x0 - last.x1 < 0.5 => {
                    last.x1 = x1;
                    last.end = s.end;
                    last.count += 1;
                }
                _ => bars.push(Bar { x0, x1, state: s.state, start: s.start, end: s.end, count: 1, on: s.on.clone() }),
            }
        }
        for b in &bars {
            let what = match (&b.on, b.count) {
                (Some(on), 1) => format!("waiting on {on}"),
                (_, 1) => b.state.label().to_string(),
                (_, n) => format!("{} ({n} times)", b.state.label()),
            };
            let _ = writeln!(
                out,
                r#"<rect x="{:.2}" y="{bar_y:.1}" width="{:.2}" height="{bar_h:.1}" fill="{}"><title>{name}: {}, {} to {}</title></rect>"#,
                b.x0,
                b.x1 - b.x0,
                color(b.state),
                xml(&what),
                secs(b.start),
                secs(b.end)
            );
        }
        // Polls: at least 1.5 px wide, so a zero-length poll (virtual time) stays visible;
        // polls that would overlap share a mark.
        let mut marks: Vec<(f64, f64, usize, Duration, Duration)> = Vec::new();
        for s in lane.segments.iter().filter(|s| s.state == State::Running) {
            let (x0, x1) = (scale.x(s.start) - 0.75, scale.x(s.end).max(scale.x(s.start) + 0.75));
            match marks.last_mut() {
                Some(last) if x0 <= last.1 => {
                    last.1 = last.1.max(x1);
                    last.2 += 1;
                    last.4 = s.end;
                }
                _ => marks.push((x0, x1, 1, s.start, s.end)),
            }
        }
        for (x0, x1, n, start, end) in marks {
            let what = if n == 1 { "poll".to_string() } else { format!("{n} polls") };
            let _ = writeln!(
                out,
                r#"<rect x="{x0:.2}" y="{:.1}" width="{:.2}" height="{:.1}" fill="{RUNNING}"><title>{name}: {what}, {} to {}</title></rect>"#,
                bar_y - 2.0,
                x1 - x0,
                bar_h + 4.0,
                secs(start),
                secs(end)
            );
        }
        // Timer deadlines: a tick, at most one per 3 px; an arrow at the right edge for those
        // past the end of the axis.
        let mut due: Vec<Duration> = lane.deadlines.clone();
        due.sort();
        let mut last_x = f64::NEG_INFINITY;
        let mut later = Vec::new();
        for d in due {
            if d > scale.end {
                later.push(d);
                continue;
            }
            let x = scale.x(d);
            if x - last_x >= 3.0 {
                last_x = x;
                let _ = writeln!(
                    out,
                    "<g><title>{name}: timer due at {}</title>{}</g>",
                    secs(d),
                    due_tick(x, bar_y, bar_h)
                );
            }
        }
        if let (Some(first), Some(last)) = (later.first(), later.last()) {
            let x = scale.x0 + scale.width + 4.0;
            let when = if later.len() == 1 { secs(*first) } else { format!("{} to {}", secs(*first), secs(*last)) };
            let _ = writeln!(
                out,
                r#"<path d="M{x:.1},{:.1} l6,4 l-6,4 z" fill="{DUE}"><title>{name}: timer due at {when}, after the end of the axis</title></path>"#,
                mid - 4.0
            );
        }
        if let Some((at, how)) = lane.finish {
            let r = (bar_h / 2.0).min(6.0);
            let _ = writeln!(
                out,
                "<g><title>{name}: {} at {}</title>{}</g>",
                how.label(),
                secs(at),
                finish_mark(how, scale.x(at) + 1.0, mid, r)
            );
        }
    }

    /// Draws the legend in two lines from `y`: the state colors, then the marks.
    fn legend(out: &mut String, y: f64) {
        let swatches = [
            ("ready", READY),
            ("running (a poll)", RUNNING),
            ("waiting on a timer", TIMER),
            ("on I/O", IO),
            ("on a task", TASK),
            ("on a gather", GATHER),
            ("on something else", OTHER),
        ];
        let mut x = 12.0;
        for (label, fill) in swatches {
            let _ = writeln!(
                out,
                r##"<rect x="{x:.1}" y="{:.1}" width="18" height="11" fill="{fill}" stroke="#888888" stroke-width="0.5"/><text x="{:.1}" y="{y:.1}">{label}</text>"##,
                y - 10.0,
                x + 23.0,
            );
            x += 23.0 + label.chars().count() as f64 * 6.8 + 18.0;
        }
        let y = y + 24.0;
        let mid = y - 4.0;
        let marks = [
            ("timer due", due_tick(21.0, mid - 5.0, 10.0)),
            ("done", finish_mark(Finish::Done, 0.0, mid, 6.0)),
            ("cancelled", finish_mark(Finish::Cancelled, 0.0, mid, 5.0)),
            ("panicked", finish_mark(Finish::Panicked, 0.0, mid, 6.0)),
        ];
        let mut x = 12.0;
        for (label, shape) in marks {
            // The shapes are drawn at x = 0 (the tick at 21) and moved into place.
            let dx = if label == "timer due" { x - 12.0 } else { x + 4.0 };
            let _ = writeln!(
                out,
                r#"<g transform="translate({dx:.1},0)">{shape}</g><text x="{:.1}" y="{y:.1}">{label}</text>"#,
                x + 23.0
            );
            x += 23.0 + label.chars().count() as f64 * 6.8 + 18.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a trace from `(seconds, task, kind)` triples on a loop started at `start`.
    fn trace_of(start: Instant, events: Vec<(f64, u64, TraceKind)>) -> Trace {
        let mut rec = Recorder::new(start);
        for (at, task, kind) in events {
            rec.record(start + Duration::from_secs_f64(at), TaskId(task), kind);
        }
        rec.trace()
    }

    fn spawned(name: &str) -> TraceKind {
        TraceKind::Spawned { name: name.to_string() }
    }

    /// The phase program's part 2, as the hooks should record it: main (task 1) spawns three
    /// phases sleeping 0, 5 and 10 s, waits 6 s, and phase 2 (task 4) is cancelled at 6 s.
    fn phase_trace() -> Trace {
        let start = Instant::now();
        let due = |s: u64| TraceKind::Parked(WaitingOn::Timer(start + Duration::from_secs(s)));
        trace_of(
            start,
            vec![
                (0.0, 1, spawned("Task-1")),
                (0.0, 1, TraceKind::Polled),
                (0.0, 2, spawned("Task-2")),
                (0.0, 3, spawned("Task-3")),
                (0.0, 4, spawned("Task-4")),
                (0.0, 1, TraceKind::Parked(WaitingOn::Gather(3))),
                (0.0, 2, TraceKind::Polled),
                (0.0, 2, due(0)),
                (0.0, 3, TraceKind::Polled),
                (0.0, 3, due(5)),
                (0.0, 4, TraceKind::Polled),
                (0.0, 4, due(10)),
                (0.0, 2, TraceKind::Woken),
                (0.0, 2, TraceKind::Polled),
                (0.0, 2, TraceKind::Done),
                (5.0, 3, TraceKind::Woken),
                (5.0, 3, TraceKind::Polled),
                (5.0, 3, TraceKind::Done),
                (6.0, 1, TraceKind::Woken),
                (6.0, 1, TraceKind::Polled),
                (6.0, 4, TraceKind::Woken),
                (6.0, 1, TraceKind::Done),
                (6.0, 4, TraceKind::Cancelled),
            ],
        )
    }

    // ----- A minimal JSON parser, to check the export is valid JSON -----

    #[derive(Debug, Clone, PartialEq)]
    enum Json {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<Json>),
        Obj(Vec<(String, Json)>),
    }

    impl Json {
        fn get(&self, key: &str) -> Option<&Json> {
            match self {
                Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }
        fn str(&self) -> Option<&str> {
            match self {
                Json::Str(s) => Some(s),
                _ => None,
            }
        }
        fn num(&self) -> Option<f64> {
            match self {
                Json::Num(n) => Some(*n),
                _ => None,
            }
        }
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn parse(text: &str) -> Result<Json, String> {
            let mut p = Parser { s: text.as_bytes(), i: 0 };
            let v = p.value()?;
            p.ws();
            if p.i != p.s.len() {
                return Err(format!("trailing characters at {}", p.i));
            }
            Ok(v)
        }
        fn ws(&mut self) {
            while self.i < self.s.len() && b" \t\r\n".contains(&self.s[self.i]) {
                self.i += 1;
            }
        }
        fn eat(&mut self, b: u8) -> Result<(), String> {
            self.ws();
            if self.s.get(self.i) == Some(&b) {
                self.i += 1;
                Ok(())
            } else {
                Err(format!("expected {:?} at {}", b as char, self.i))
            }
        }
        fn value(&mut self) -> Result<Json, String> {
            self.ws();
            match self.s.get(self.i).copied() {
                Some(b'{') => {
                    self.i += 1;
                    let mut fields = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Json::Obj(fields));
                    }
                    loop {
                        self.ws();
                        let k = self.string()?;
                        self.eat(b':')?;
                        fields.push((k, self.value()?));
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(Json::Obj(fields));
                            }
                            _ => return Err(format!("expected , or }} at {}", self.i)),
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Json::Arr(items));
                    }
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(Json::Arr(items));
                            }
                            _ => return Err(format!("expected , or ] at {}", self.i)),
                        }
                    }
                }
                Some(b'"') => Ok(Json::Str(self.string()?)),
                Some(b't') if self.s[self.i..].starts_with(b"true") => {
                    self.i += 4;
                    Ok(Json::Bool(true))
                }
                Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                    self.i += 5;
                    Ok(Json::Bool(false))
                }
                Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                    self.i += 4;
                    Ok(Json::Null)
                }
                Some(b'-' | b'0'..=b'9') => {
                    let from = self.i;
                    while self.i < self.s.len() && b"+-.eE0123456789".contains(&self.s[self.i]) {
                        self.i += 1;
                    }
                    let text = std::str::from_utf8(&self.s[from..self.i]).unwrap();
                    text.parse().map(Json::Num).map_err(|_| format!("bad number {text:?}"))
                }
                _ => Err(format!("unexpected input at {}", self.i)),
            }
        }
        fn string(&mut self) -> Result<String, String> {
            if self.s.get(self.i) != Some(&b'"') {
                return Err(format!("expected a string at {}", self.i));
            }
            self.i += 1;
            let mut out = String::new();
            loop {
                let rest = std::str::from_utf8(&self.s[self.i..]).map_err(|e| e.to_string())?;
                let c = rest.chars().next().ok_or("unterminated string")?;
                self.i += c.len_utf8();
                match c {
                    '"' => return Ok(out),
                    '\\' => {
                        let e = self.s[self.i];
                        self.i += 1;
                        match e {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'u' => {
                                let hex = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
                                self.i += 4;
                                let code = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                                out.push(char::from_u32(code).ok_or("a surrogate escape")?);
                            }
                            _ => return Err(format!("bad escape at {}", self.i)),
                        }
                    }
                    c if (c as u32) < 0x20 => return Err(format!("raw control character at {}", self.i)),
                    c => out.push(c),
                }
            }
        }
    }

    /// Returns the trace events of a Chrome JSON export, checking its top level.
    fn chrome_events(trace: &Trace) -> Vec<Json> {
        let text = trace.to_chrome_json();
        let doc = Parser::parse(&text).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{text}"));
        match doc.get("traceEvents") {
            Some(Json::Arr(events)) => events.clone(),
            other => panic!("no traceEvents array: {other:?}"),
        }
    }

    // ----- A minimal XML checker: tags balance, text holds no raw markup -----

    /// Checks that `svg` is well-formed: every tag closes in order, attribute values are quoted,
    /// and `&` only starts an entity. Returns the text content, entities decoded.
    fn check_xml(svg: &str) -> Result<String, String> {
        let mut stack: Vec<&str> = Vec::new();
        let mut text = String::new();
        let mut rest = svg;
        while let Some(lt) = rest.find('<') {
            text.push_str(&decode(&rest[..lt])?);
            let gt = rest[lt..].find('>').ok_or("unclosed tag")? + lt;
            let tag = &rest[lt + 1..gt];
            if tag.contains('<') {
                return Err(format!("'<' inside a tag: {tag:?}"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name.trim() => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else {
                let name = tag.split_whitespace().next().ok_or("an empty tag")?.trim_end_matches('/');
                // Attribute values: an even number of quotes, entities valid.
                if tag.matches('"').count() % 2 != 0 {
                    return Err(format!("unbalanced quotes in <{tag}>"));
                }
                decode(tag)?;
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
            rest = &rest[gt + 1..];
        }
        text.push_str(&decode(rest)?);
        if stack.is_empty() {
            Ok(text)
        } else {
            Err(format!("unclosed elements {stack:?}"))
        }
    }

    fn decode(s: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(amp) = rest.find('&') {
            out.push_str(&rest[..amp]);
            let semi = rest[amp..].find(';').ok_or(format!("bare & in {s:?}"))? + amp;
            out.push(match &rest[amp + 1..semi] {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                other => return Err(format!("unknown entity &{other};")),
            });
            rest = &rest[semi + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    // ----- Replay -----

    #[test]
    fn lanes_follow_each_task_through_its_states() {
        let trace = phase_trace();
        let lanes = trace.lanes();
        assert_eq!(lanes.iter().map(|l| l.task.0).collect::<Vec<_>>(), [1, 2, 3, 4], "spawn order");
        let phase2 = &lanes[3];
        let states: Vec<(State, f64, f64)> =
            phase2.segments.iter().map(|s| (s.state, s.start.as_secs_f64(), s.end.as_secs_f64())).collect();
        assert_eq!(
            states,
            [
                (State::Ready, 0.0, 0.0),
                (State::Running, 0.0, 0.0),
                (State::Waiting(Wait::Timer), 0.0, 6.0),
                (State::Ready, 6.0, 6.0)
            ]
        );
        assert_eq!(phase2.deadlines, [Duration::from_secs(10)]);
        assert_eq!(phase2.finish, Some((Duration::from_secs(6), Finish::Cancelled)));
        assert_eq!(lanes[2].finish, Some((Duration::from_secs(5), Finish::Done)));
        assert_eq!(lanes[0].segments[2].state, State::Waiting(Wait::Gather));
        assert_eq!(lanes[0].segments[2].on.as_deref(), Some("a gather of 3"));
    }

    #[test]
    fn a_wake_during_the_poll_leaves_the_task_ready() {
        // yield_now: the task wakes itself, then returns Pending.
        let trace = trace_of(
            Instant::now(),
            vec![
                (0.0, 7, spawned("yielder")),
                (0.0, 7, TraceKind::Polled),
                (0.0, 7, TraceKind::Woken),
                (0.0, 7, TraceKind::Parked(WaitingOn::Other)),
                (1.0, 7, TraceKind::Polled),
                (1.0, 7, TraceKind::Parked(WaitingOn::Other)),
                (2.0, 7, TraceKind::Woken),
                (2.0, 7, TraceKind::Polled),
                (2.0, 7, TraceKind::Panicked),
            ],
        );
        let lane = &trace.lanes()[0];
        let states: Vec<State> = lane.segments.iter().map(|s| s.state).collect();
        use State::*;
        assert_eq!(states, [Ready, Running, Ready, Running, Waiting(Wait::Other), Ready, Running]);
        assert_eq!(lane.segments[2].end, Duration::from_secs(1), "ready from the yield until the next poll");
        assert_eq!(lane.finish, Some((Duration::from_secs(2), Finish::Panicked)));
    }

    #[test]
    fn a_task_still_alive_at_the_end_keeps_its_state_to_the_end() {
        let start = Instant::now();
        let trace = trace_of(
            start,
            vec![
                (0.0, 1, spawned("server")),
                (0.0, 1, TraceKind::Polled),
                (0.0, 1, TraceKind::Parked(WaitingOn::Io { fd: 5, write: false })),
                (3.0, 2, spawned("other")),
            ],
        );
        let lane = &trace.lanes()[0];
        let last = lane.segments.last().unwrap();
        assert_eq!((last.state, last.end), (State::Waiting(Wait::Io), Duration::from_secs(3)));
        assert_eq!(lane.finish, None);
    }

    // ----- Display -----

    #[test]
    fn display_lists_one_event_per_line() {
        let text = phase_trace().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 23);
        assert_eq!(lines[0], "  0.000s Task-1 spawned");
        assert_eq!(lines[5], "  0.000s Task-1 waits on a gather of 3");
        assert_eq!(lines[11], "  0.000s Task-4 waits on a timer due at 10.000s");
        assert_eq!(lines[22], "  6.000s Task-4 cancelled");
    }

    #[test]
    fn renames_apply_to_every_event_of_the_task() {
        let start = Instant::now();
        let mut rec = Recorder::new(start);
        rec.record(start, TaskId(9), spawned("Task-9"));
        rec.rename(TaskId(9), "fetcher");
        rec.record(start + Duration::from_millis(1500), TaskId(9), TraceKind::Done);
        let trace = rec.trace();
        assert_eq!(trace.name(TaskId(9)), "fetcher");
        assert_eq!(trace.name(TaskId(10)), "Task-10", "an unknown task gets the default name");
        assert_eq!(trace.to_string(), "  0.000s fetcher spawned\n  1.500s fetcher done\n");
        assert_eq!(trace.events()[1].at, Duration::from_millis(1500));
    }

    // ----- Chrome JSON -----

    #[test]
    fn chrome_json_has_a_named_track_per_task_and_slices_in_microseconds() {
        let events = chrome_events(&phase_trace());
        let names: Vec<(f64, &str)> = events
            .iter()
            .filter(|e| e.get("name").and_then(Json::str) == Some("thread_name"))
            .map(|e| (e.get("tid").unwrap().num().unwrap(), e.get("args").unwrap().get("name").unwrap().str().unwrap()))
            .collect();
        assert_eq!(names, [(1.0, "Task-1"), (2.0, "Task-2"), (3.0, "Task-3"), (4.0, "Task-4")]);
        let of_4 = |name: &str| -> Vec<&Json> {
            events
                .iter()
                .filter(|e| {
                    e.get("tid").and_then(Json::num) == Some(4.0) && e.get("name").and_then(Json::str) == Some(name)
                })
                .collect()
        };
        let waiting = of_4("waiting on timer");
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].get("ph").and_then(Json::str), Some("X"));
        assert_eq!(waiting[0].get("ts").and_then(Json::num), Some(0.0));
        assert_eq!(waiting[0].get("dur").and_then(Json::num), Some(6_000_000.0));
        assert_eq!(waiting[0].get("args").unwrap().get("on").and_then(Json::str), Some("a timer due at 10.000s"));
        let polls = of_4("poll");
        assert_eq!(polls.len(), 1, "a zero-length poll is still a slice");
        assert_eq!(polls[0].get("dur").and_then(Json::num), Some(0.0));
        let due = of_4("timer due");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].get("ph").and_then(Json::str), Some("i"));
        assert_eq!(due[0].get("ts").and_then(Json::num), Some(10_000_000.0));
        let cancelled = of_4("cancelled");
        assert_eq!(cancelled[0].get("ts").and_then(Json::num), Some(6_000_000.0));
        assert_eq!(of_4("spawned").len(), 1);
        assert_eq!(of_4("woken").len(), 1);
        // Every slice has the fields Perfetto needs.
        for e in &events {
            for key in ["name", "ph", "pid", "tid"] {
                assert!(e.get(key).is_some(), "{key} missing in {e:?}");
            }
        }
    }

    #[test]
    fn chrome_json_keeps_nanoseconds() {
        let trace = trace_of(
            Instant::now(),
            vec![(0.000_001_5, 1, spawned("t")), (0.000_002_25, 1, TraceKind::Polled), (0.000_003, 1, TraceKind::Done)],
        );
        let text = trace.to_chrome_json();
        assert!(text.contains("\"ts\":2.250,\"dur\":0.750"), "{text}");
    }

    #[test]
    fn names_are_escaped_in_json_and_svg() {
        let weird = "say \"hi\"\\\nnew line\ttab \u{1} <b>&amp;</b> ünïcødé 🦀 \u{2028}";
        let trace = trace_of(
            Instant::now(),
            vec![(0.0, 1, spawned(weird)), (0.5, 1, TraceKind::Polled), (1.0, 1, TraceKind::Done)],
        );
        let json = trace.to_chrome_json();
        assert!(!json.contains('\u{1}') && !json.contains('\u{2028}'), "raw control characters in {json}");
        let events = chrome_events(&trace);
        let name = events
            .iter()
            .find(|e| e.get("name").and_then(Json::str) == Some("thread_name"))
            .and_then(|e| e.get("args")?.get("name")?.str().map(str::to_string));
        assert_eq!(name.as_deref(), Some(weird), "the name survives a JSON round trip");

        let svg = trace.to_svg();
        let text = check_xml(&svg).unwrap_or_else(|e| panic!("{e}:\n{svg}"));
        assert!(!svg.contains('\u{1}'), "XML 1.0 cannot hold U+0001");
        assert!(text.contains("say \"hi\"\\ new line tab \u{fffd} <b>&amp;</b> ünïcødé 🦀"), "{text}");
        assert!(text.contains("(id 1)say \"hi\"\\ new line tab …"), "the label, cut to 24 characters: {text}");
    }

    // ----- SVG -----

    #[test]
    fn svg_is_well_formed_with_a_row_per_task_and_marks() {
        let svg = phase_trace().to_svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        let text = check_xml(&svg).unwrap_or_else(|e| panic!("{e}:\n{svg}"));
        for name in ["Task-1", "Task-2", "Task-3", "Task-4"] {
            assert!(text.contains(name), "{name} labels a row");
        }
        // The axis reaches the 10 s deadline of the cancelled phase, in whole seconds.
        for tick in ["0s", "2s", "4s", "6s", "8s", "10s"] {
            assert!(svg.contains(&format!(">{tick}</text>")), "tick {tick}");
        }
        assert!(text.contains("Task-4: timer due at 10.000s"));
        assert!(text.contains("Task-4: cancelled at 6.000s"));
        assert!(svg.contains("stroke=\"#d62728\""), "the cancelled mark's color");
        assert!(text.contains("Task-3: done at 5.000s"));
        assert_eq!(svg.matches("><title>Task-4: poll, 0.000s to 0.000s</title>").count(), 1, "a zero-length poll");
        for label in ["ready", "running (a poll)", "waiting on a timer", "on a gather", "timer due", "panicked"] {
            assert!(text.contains(label), "legend {label}");
        }
    }

    #[test]
    fn zero_length_polls_are_visible_marks() {
        let svg = phase_trace().to_svg();
        let widths: Vec<f64> = svg
            .lines()
            .filter(|l| l.contains("fill=\"#212121\"><title>"))
            .map(|l| {
                let w = l.split("width=\"").nth(1).unwrap();
                w[..w.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert_eq!(widths.len(), 6, "tasks 1 and 3 polled twice, task 2's two polls at 0 s share a mark");
        assert!(widths.iter().all(|&w| w >= 1.5), "{widths:?}");
    }

    #[test]
    fn a_thousand_tasks_draw_a_hundred_rows_and_say_so() {
        let start = Instant::now();
        let mut events = Vec::new();
        for t in 1..=1000u64 {
            let at = t as f64 / 1000.0;
            events.push((at, t, spawned(&format!("w{t}"))));
            events.push((at, t, TraceKind::Polled));
            events.push((at, t, TraceKind::Parked(WaitingOn::Timer(start + Duration::from_secs_f64(at + 1.0)))));
        }
        for t in 1..=1000u64 {
            let at = 1.0 + t as f64 / 1000.0;
            events.push((at, t, TraceKind::Woken));
            events.push((at, t, TraceKind::Polled));
            events.push((at, t, TraceKind::Done));
        }
        let trace = trace_of(start, events);
        let svg = trace.to_svg();
        let text = check_xml(&svg).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("Showing 100 of 1000 tasks"), "{text}");
        assert!(text.contains("aioloop trace: 1000 tasks, 6000 events"));
        let rows = svg.matches("text-anchor=\"end\"").count();
        assert_eq!(rows, 100);
        assert!(svg.len() < 200_000, "{} bytes", svg.len());
        assert_eq!(
            chrome_events(&trace).iter().filter(|e| e.get("name").and_then(Json::str) == Some("thread_name")).count(),
            1000
        );
    }

    #[test]
    fn many_polls_of_one_task_are_merged_per_pixel() {
        let start = Instant::now();
        let mut events = vec![(0.0, 1, spawned("ticker"))];
        for k in 0..100_000u64 {
            let at = k as f64 * 1e-4;
            events.push((at, 1, TraceKind::Polled));
            events.push((at, 1, TraceKind::Parked(WaitingOn::Timer(start + Duration::from_secs_f64(at + 1e-4)))));
            events.push((at + 1e-4, 1, TraceKind::Woken));
        }
        let svg = trace_of(start, events).to_svg();
        check_xml(&svg).unwrap_or_else(|e| panic!("{e}"));
        assert!(svg.lines().count() < 5_000, "{} lines", svg.lines().count());
    }

    #[test]
    fn an_empty_trace_says_how_to_record_one() {
        let trace = Trace::empty(Instant::now());
        assert!(trace.events().is_empty());
        assert_eq!(trace.to_string(), "");
        let text = check_xml(&trace.to_svg()).unwrap();
        assert!(text.contains("No events: was the loop built with .trace(true)?"));
        assert_eq!(chrome_events(&trace).len(), 1, "only the process name");
    }

    #[test]
    fn axis_ticks_are_round_numbers() {
        assert_eq!(svg_ticks(0.0035), ["0.0000s", "0.0005s", "0.0010s"]);
        assert_eq!(svg_ticks(2.0), ["0.0s", "0.2s", "0.4s"]);
        assert_eq!(svg_ticks(16.0), ["0s", "2s", "4s"]);
        assert_eq!(svg_ticks(300.0), ["0s", "50s", "100s"]);
    }

    /// Returns the first three tick labels of a one-task trace ending at `end` seconds.
    fn svg_ticks(end: f64) -> Vec<String> {
        let trace = trace_of(Instant::now(), vec![(0.0, 1, spawned("t")), (end, 1, TraceKind::Done)]);
        let svg = trace.to_svg();
        svg.split("text-anchor=\"middle\" font-size=\"12\">")
            .skip(1)
            .map(|s| s[..s.find('<').unwrap()].to_string())
            .take(3)
            .collect()
    }

    // ----- save -----

    #[test]
    fn save_picks_the_format_by_extension() {
        let dir = std::env::temp_dir().join(format!("aioloop-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let trace = phase_trace();
        trace.save(dir.join("run.json")).unwrap();
        trace.save(dir.join("run.SVG")).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("run.json")).unwrap(), trace.to_chrome_json());
        assert_eq!(std::fs::read_to_string(dir.join("run.SVG")).unwrap(), trace.to_svg());
        for bad in ["run.png", "run"] {
            let err = trace.save(dir.join(bad)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(".json") && err.to_string().contains(".svg"), "{err}");
            assert!(!dir.join(bad).exists(), "nothing is written for {bad}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
