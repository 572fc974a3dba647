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
use std::fmt;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::runtime::recorder::{Recorder, TraceEvent, TraceKind};
use crate::runtime::task::TaskId;
use crate::runtime::task::WaitingOn;

#[cfg(test)]
mod fixtures;
mod lanes;
mod svg;
#[cfg(test)]
mod tests;

use lanes::{secs, Finish, Lane, State, Wait};

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

impl Trace {
    /// A snapshot of what `recorder` has recorded so far.
    pub(crate) fn recorded(recorder: &Recorder) -> Trace {
        let mut trace = Trace::from_events(recorder.start(), recorder.events().to_vec());
        for (task, name) in recorder.renames() {
            trace.names.insert(*task, name.clone());
        }
        trace
    }

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
