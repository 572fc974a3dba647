//! The trace recorder: a picture of every run.
//!
//! With tracing on ([`Builder::trace`](crate::Builder::trace)), the loop tells a [`Recorder`]
//! each step of each task's life: spawned, polled, parked on something, woken, and how it ended.
//! [`EventLoop::trace`](crate::EventLoop::trace) hands back a [`Trace`], a snapshot of those
//! events, which prints as a text listing and exports to two formats:
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

#[cfg(test)]
mod fixtures;
mod svg;

/// Everything a loop recorded about its tasks, from [`EventLoop::trace`](crate::EventLoop::trace).
///
/// Its `Display` lists one event per line (`  6.000s Task-4 cancelled`); [`to_chrome_json`]
/// and [`to_svg`] draw it; [`save`] writes either, by the file's extension.
///
/// # Examples
///
/// The phase program of `examples/phase.rs` on virtual time: the phase still sleeping when the
/// 6 s timeout of `wait` expires is cancelled.
///
/// ```
/// use std::time::Duration;
/// use aioloop::{ReturnWhen, TraceKind};
///
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build().unwrap();
/// let slow = lp.run_until_complete(async {
///     let phases: Vec<_> = (0..3).map(|i| aioloop::spawn(aioloop::sleep(Duration::from_secs(5 * i)))).collect();
///     let slow = phases[2].id();
///     let (_, pending) = aioloop::wait(phases, Some(Duration::from_secs(6)), ReturnWhen::AllCompleted).await;
///     pending.iter().for_each(|t| { t.cancel(); });
///     slow
/// });
/// let trace = lp.trace();
/// let last = trace.events().iter().filter(|e| e.task == slow).last().unwrap();
/// assert_eq!((last.at, &last.kind), (Duration::from_secs(6), &TraceKind::Cancelled));
/// assert!(trace.to_string().contains(&format!("  6.000s Task-{slow} cancelled\n")));
/// # let dir = std::env::temp_dir().join(format!("aioloop-doc-trace-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let path = dir.join("phase.svg");
/// trace.save(&path).unwrap(); // a timeline; "phase.json" would open in Perfetto
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
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
    /// Where each run added with [`append`](Trace::append) begins.
    runs: Vec<Duration>,
}

/// An empty trace, to [`append`](Trace::append) runs to.
///
/// # Examples
///
/// ```
/// let trace = aioloop::Trace::default();
/// assert!(trace.events().is_empty());
/// assert_eq!(trace.to_string(), "");
/// ```
impl Default for Trace {
    fn default() -> Trace {
        Trace::empty(Instant::now())
    }
}

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
    pub(crate) fn from_events(start: Instant, events: Vec<TraceEvent>) -> Trace {
        let mut names = BTreeMap::new();
        for e in &events {
            if let TraceKind::Spawned { name } = &e.kind {
                names.insert(e.task, name.clone());
            }
        }
        Trace { start, events, names, runs: Vec::new() }
    }

    /// Returns an empty trace (a loop built without tracing).
    pub(crate) fn empty(start: Instant) -> Trace {
        Trace::from_events(start, Vec::new())
    }

    /// Returns the events, in the order they happened (`at` never decreases).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build().unwrap();
    /// lp.run_until_complete(aioloop::yield_now());
    /// let trace = lp.trace();
    /// assert!(!trace.events().is_empty());
    /// assert!(trace.events().windows(2).all(|w| w[0].at <= w[1].at));
    /// ```
    pub fn events(&self) -> &[TraceEvent] {
        &self.events
    }

    /// Returns the instant loop time 0 stands for: `deadline - trace.start()` is the loop time of
    /// a [`WaitingOn::Timer`] deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use aioloop::{TraceKind, WaitingOn};
    ///
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build().unwrap();
    /// lp.run_until_complete(aioloop::sleep(Duration::from_secs(3)));
    /// let trace = lp.trace();
    /// let due = trace.events().iter().find_map(|e| match e.kind {
    ///     TraceKind::Parked(WaitingOn::Timer(at)) => Some(at),
    ///     _ => None,
    /// });
    /// assert_eq!(due.map(|at| at - trace.start()), Some(Duration::from_secs(3)));
    /// ```
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Returns a task's name: the latest one it had, or `Task-<id>` for a task the trace never
    /// saw spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build().unwrap();
    /// let t = lp.spawn(async {});
    /// t.set_name("fetcher");
    /// let id = t.id();
    /// lp.run_until_complete(t).unwrap();
    /// assert_eq!(lp.trace().name(id), "fetcher");
    /// ```
    pub fn name(&self, task: TaskId) -> String {
        self.names.get(&task).cloned().unwrap_or_else(|| format!("Task-{task}"))
    }

    /// Appends the trace of a later run (of another loop), shifted to begin where this one ends,
    /// to picture several runs one after the other.
    ///
    /// Each loop's time starts at zero, so without the shift the runs would overlap. The SVG
    /// marks where each appended run begins with a dashed line.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut trace = aioloop::Trace::default();
    /// for secs in [1, 2] {
    ///     let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build().unwrap();
    ///     lp.run_until_complete(aioloop::sleep(Duration::from_secs(secs)));
    ///     trace.append(lp.trace());
    /// }
    /// // The second run's sleep ends 2 s after the first run's ended, at 3 s.
    /// assert_eq!(trace.events().last().unwrap().at, Duration::from_secs(3));
    /// ```
    pub fn append(&mut self, later: Trace) {
        if self.events.is_empty() {
            // Nothing to come after (an empty or default trace): the later run is the first.
            *self = later;
            return;
        }
        let offset = self.end();
        self.runs.push(offset);
        self.runs.extend(later.runs.iter().map(|r| offset + *r));
        // Timer deadlines are instants of the later loop's clock: move them onto this one's.
        let moved = |at: Instant| self.start + offset + at.saturating_duration_since(later.start);
        for mut e in later.events {
            e.at += offset;
            if let TraceKind::Parked(WaitingOn::Timer(due) | WaitingOn::Tasks { timeout: Some(due), .. }) = &mut e.kind
            {
                *due = moved(*due);
            }
            self.events.push(e);
        }
        self.names.extend(later.names);
    }

    /// Returns the loop times where runs added with [`append`](Trace::append) begin.
    fn runs(&self) -> &[Duration] {
        &self.runs
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
    /// tasks`, `waiting on something else`), and instant events when it was spawned, woken, and finished, and where
    /// a timer it waited on was due. Timestamps are microseconds of loop time.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build().unwrap();
    /// let t = lp.spawn(async {});
    /// t.set_name("worker");
    /// lp.run_until_complete(t).unwrap();
    /// let json = lp.trace().to_chrome_json();
    /// assert!(json.starts_with(r#"{"displayTimeUnit":"ms","traceEvents":["#));
    /// assert!(json.contains(r#""name":"thread_name""#) && json.contains(r#""args":{"name":"worker"}"#));
    /// ```
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
    /// (a timer, I/O, another task, a gather, the tasks of a `wait`, something else). A small tick shows where each
    /// timer the task waited on was due, even one it never reached. A green dot ends a task that
    /// completed, a red ✕ one that was cancelled, a magenta diamond one that panicked. Hovering
    /// over a segment shows its times. A legend explains the colors.
    ///
    /// A trace of more than 100 tasks draws 100 of them, evenly spaced in spawn order, and says
    /// so; the JSON export ([`to_chrome_json`](Self::to_chrome_json)) keeps every task.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build().unwrap();
    /// let t = lp.spawn(aioloop::sleep(Duration::from_secs(2)));
    /// t.set_name("sleeper");
    /// lp.run_until_complete(t).unwrap();
    /// let svg = lp.trace().to_svg();
    /// assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    /// assert!(svg.contains(">sleeper</text>") && svg.contains("sleeper: timer due at 2.000s"));
    /// ```
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
    /// ```
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build().unwrap();
    /// lp.run_until_complete(aioloop::yield_now());
    /// let trace = lp.trace();
    /// let dir = std::env::temp_dir().join(format!("aioloop-doc-save-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// trace.save(dir.join("run.svg")).unwrap();
    /// trace.save(dir.join("run.json")).unwrap();
    /// let err = trace.save(dir.join("run.png")).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
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
            WaitingOn::Tasks { count, timeout } => {
                let tasks = if *count == 1 { "1 task".to_string() } else { format!("{count} tasks") };
                match timeout {
                    Some(at) => format!("{tasks} or a timer due at {}", secs(self.offset(*at))),
                    None => tasks,
                }
            }
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
    /// The tasks of a `wait`, `as_completed` or `shield`.
    Tasks,
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
            State::Waiting(Wait::Tasks) => "waiting on tasks",
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

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

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
    fn append_shifts_a_later_run_after_this_one() {
        let mut both = phase_trace();
        let later = renumbered(phase_trace(), 4);
        let deadline = |t: &Trace| {
            t.events().iter().rev().find_map(|e| match e.kind {
                TraceKind::Parked(WaitingOn::Timer(due)) => Some(due - t.start()),
                _ => None,
            })
        };
        assert_eq!(deadline(&later), Some(Duration::from_secs(10)));
        both.append(later);
        assert_eq!(both.events().len(), 46);
        assert!(both.events().windows(2).all(|w| w[0].at <= w[1].at), "still in time order");
        let last = both.events().last().unwrap();
        assert_eq!((last.at, &last.kind), (Duration::from_secs(12), &TraceKind::Cancelled));
        assert_eq!(deadline(&both), Some(Duration::from_secs(16)), "the later run's 10 s timer, 6 s later");
        assert_eq!(both.runs(), [Duration::from_secs(6)]);
        let mut first = Trace::default();
        first.append(phase_trace());
        assert_eq!(first.runs(), [], "appended to nothing, a run is the first");
        assert_eq!(first.to_string(), phase_trace().to_string());
        let mut three = phase_trace();
        three.append(renumbered(both, 8));
        assert_eq!(three.runs(), [Duration::from_secs(6), Duration::from_secs(12)]);
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
