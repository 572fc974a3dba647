//! The event loop: the ready queue, the waiting set, the timer heap and the poller, and
//! `run_once`, one iteration of asyncio's `BaseEventLoop._run_once`.
//!
//! # One iteration
//!
//! ```text
//!          ┌──────────────────────────── run_once ─────────────────────────────┐
//!          │ 1 purge_timers     drop cancelled timers at the heap's head         │
//!          │ 2 compute_timeout  0 if anything is ready, else the next deadline  │
//!          │ 3 poll_io          sleep in the poller (or jump virtual time)      │
//!          │ 4 drain_inbox      queue tasks woken by other threads              │
//!          │ 5 fire_due_timers  move expired timers to the ready queue's tail   │
//!          │ 6 run_ready        run exactly the entries ready *now* ("ntodo")   │
//!          └────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! # Invariants
//! - Only `run_ready` runs user code (task polls, callbacks, the actions of timers): "this is
//!   the only place where callbacks are actually *called*" (CPython). What it schedules while
//!   running goes to the tail of the ready queue and runs in the next iteration.
//! - No `RefCell` borrow of the loop's structures is held while user code runs, so a task may
//!   spawn, cancel, wake, set timers or drop anything from anywhere.
//! - The loop blocks only when nothing is ready, no stop was requested and no wake from another
//!   thread is pending; then it blocks until the head timer's deadline, so it never spins.
//! - The future given to `run_until_complete` is an ordinary task entry (the *main task*) that
//!   goes through the ready queue like every other; only its future lives on the caller's stack.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::{Future, IntoFuture};
use std::io;
use std::panic::resume_unwind;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::clock::{duration_ns, Clock};
use crate::handle::{Action, Handle, HandleRecord, TimerHandle};
use crate::join::Task;
use crate::remote::Remote;
use crate::task::{Status, TaskEntry};
use crate::threadsafe::LoopHandle;
use crate::timer::{Due, TimerHeap, TimerKey};
use crate::waker::TaskKey;

/// The longest the loop sleeps in one go (asyncio's `MAXIMUM_SELECT_TIMEOUT`, one day): a timer
/// further away than that is looked at again after a day.
const MAX_SLEEP: Duration = Duration::from_secs(24 * 3600);

/// While tasks keep the ready queue busy and I/O sources are registered, one iteration in this
/// many asks the poller for I/O (with a zero timeout) instead of every iteration, because a
/// zero-timeout wait costs several syscalls. tokio's `event_interval` is the same number, but
/// counts task polls rather than iterations. See docs/architecture.md for why that is fair.
const IO_POLL_INTERVAL: u32 = 61;

/// Buffers (queues, slabs, the timer heap) larger than this many entries are given back once
/// a burst drained; smaller ones are kept for reuse.
const BURST: usize = 4096;

/// Replaces a buffer that is empty but sized for more than [`BURST`] entries with a new one
/// (a slab can only be dropped whole: its keys are indices).
fn give_back<T: Default>(buf: &RefCell<T>, is_empty: impl Fn(&T) -> bool, capacity: impl Fn(&T) -> usize) {
    let mut buf = buf.borrow_mut();
    if is_empty(&buf) && capacity(&buf) > BURST {
        let old = std::mem::take(&mut *buf);
        drop(buf);
        drop(old);
    }
}

/// An entry of the ready queue: a task step, or a handle (a callback, a timer's action, a combinator's count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runnable {
    /// Poll this task (or drop its future if it was cancelled).
    Task(TaskKey),
    /// Run the handle record at `index`, if it still has this `seq` (else it was cancelled).
    Handle { index: u32, seq: u64 },
    /// Wake the task of the sleep whose timer entry this is (unless the sleep was cancelled).
    Timer(TimerKey),
}

/// How long phase 3 may sleep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timeout {
    /// Do not sleep: something is ready, a stop was requested, or another thread woke a task.
    Zero,
    /// Sleep until this loop time (ns), the head timer's deadline.
    Until(u64),
    /// Sleep until an I/O event or a notification from another thread.
    Forever,
}

/// The loop's state. Shared (`Rc`) by the [`EventLoop`], its [`Task`] handles, its callback
/// handles, and the thread-local "running loop" while it runs.
pub(crate) struct Core {
    /// The ready queue (asyncio's `_ready`): what runs in the current or next iteration.
    pub(crate) ready: RefCell<VecDeque<Runnable>>,
    /// Every live task, by slab index. Those not in `ready` form the waiting set.
    pub(crate) tasks: RefCell<Slab<TaskEntry>>,
    /// The joiners and await links of the tasks that have one, by slab index (kept out of the
    /// slab so a task entry stays 32 bytes).
    pub(crate) extras: RefCell<crate::task::Extras>,
    /// Callback records (asyncio's `Handle`s): `call_soon` callbacks, timers' actions, combinator counts.
    pub(crate) handles: RefCell<Slab<HandleRecord>>,
    /// The timer heap (asyncio's `_scheduled`), entries pointing into `handles`.
    pub(crate) timers: RefCell<TimerHeap>,
    /// Real or virtual time.
    pub(crate) clock: Clock,
    /// When the timeouts of the last few iterations were created, at the latest.
    pub(crate) timeout_clock: crate::timeout::TimeoutClock,
    /// The thread-safe half: inbox, stop flag, poller.
    pub(crate) remote: Arc<Remote>,
    /// The task being polled right now (asyncio's `current_task()`).
    pub(crate) current: Cell<Option<TaskKey>>,
    /// The task whose awaiting link was set last (`set_awaiting_of_current`): while it is not
    /// the running task, the running task has none (`current_may_await`).
    pub(crate) last_linked: Cell<Option<TaskKey>>,
    /// The next handle sequence number (orders equal timer deadlines; detects stale handles).
    pub(crate) next_seq: Cell<u64>,
    /// Set by `close()`: spawned tasks are born cancelled, the loop cannot run again.
    pub(crate) closed: Cell<bool>,
    /// Panic payloads of finished tasks, by task id, until a handle takes them.
    pub(crate) panics: RefCell<HashMap<u64, Box<dyn std::any::Any + Send>>>,
    /// Names given with `Task::set_name`, by task id.
    pub(crate) names: RefCell<HashMap<u64, String>>,
    /// Registered I/O sources (sockets of `Async`, descriptors of `add_reader`): cached
    /// readiness and the tasks waiting on each.
    pub(crate) io: RefCell<Slab<crate::io::IoEntry>>,
    /// The registrations of `add_reader`/`add_writer`, by descriptor.
    pub(crate) fd_callbacks: RefCell<crate::io::FdCallbacks>,
    /// Scratch buffer for the poller's events.
    io_events: RefCell<Vec<crate::reactor::IoEvent>>,
    /// Iterations since the poller was last asked for I/O.
    ticks_since_io: Cell<u32>,
    /// Counters for [`EventLoop::stats`] (iterations apart: counted every iteration, so kept
    /// in a cell of their own).
    stats: Cell<Stats>,
    pub(crate) iterations: Cell<u64>,
    /// The exception handler (`None`: the default, one line on stderr).
    pub(crate) exception_handler: RefCell<Option<crate::exception::Handler>>,
    /// Debug mode: slow steps are reported, and tasks remember where they were spawned.
    debug: Option<DebugMode>,
    /// Trace recording (`Builder::trace`): every task's life, for `EventLoop::trace`. `None`
    /// when off, and then each hook costs one branch.
    pub(crate) tracer: Option<RefCell<crate::trace::Recorder>>,
    /// Scratch buffer for keys drained from the inbox.
    inbox_scratch: RefCell<Vec<u64>>,
    /// Signal listeners and the children of the SIGCHLD backend (src/signal, src/process).
    pub(crate) os: crate::signal::LoopSignals,
    /// A burst of wakes came through the inbox: its buffers may be large (see
    /// `release_burst_memory`).
    remote_burst: Cell<bool>,
}

impl Core {
    fn new(virtual_time: bool, debug: Option<DebugMode>, trace: bool) -> io::Result<Rc<Core>> {
        let clock = Clock::new(virtual_time);
        // The trace counts from the loop's creation (loop time 0 lies 73 years earlier: clock.rs).
        let tracer = trace.then(|| RefCell::new(crate::trace::Recorder::new(clock.start())));
        Ok(Rc::new(Core {
            ready: RefCell::new(VecDeque::new()),
            tasks: RefCell::new(Slab::new()),
            extras: RefCell::default(),
            handles: RefCell::new(Slab::new()),
            timers: RefCell::new(TimerHeap::default()),
            clock,
            timeout_clock: crate::timeout::TimeoutClock::default(),
            tracer,
            remote: Remote::register()?,
            current: Cell::new(None),
            last_linked: Cell::new(None),
            next_seq: Cell::new(0),
            closed: Cell::new(false),
            panics: RefCell::new(HashMap::new()),
            names: RefCell::new(HashMap::new()),
            io: RefCell::new(Slab::new()),
            fd_callbacks: RefCell::default(),
            io_events: RefCell::new(Vec::new()),
            ticks_since_io: Cell::new(0),
            stats: Cell::new(Stats::default()),
            iterations: Cell::new(0),
            exception_handler: RefCell::new(None),
            debug,
            inbox_scratch: RefCell::new(Vec::new()),
            remote_burst: Cell::new(false),
            os: crate::signal::LoopSignals::default(),
        }))
    }

    /// Runs one iteration of the loop (asyncio's `_run_once`).
    pub(crate) fn run_once(&self, main: &mut Option<Pin<&mut dyn Future<Output = ()>>>) {
        self.iterations.set(self.iterations.get() + 1);
        // 1. Forget cancelled timers at the head of the heap, so the timeout below is right.
        self.purge_timers();
        // 2. Decide how long we may sleep: not at all if anything is ready.
        let timeout = self.compute_timeout();
        // 3. Sleep in the poller until I/O, a notification or the timeout (virtual time: jump).
        self.poll_io(timeout);
        // 4. Tasks woken from other threads join the ready queue (after what was already there).
        self.drain_inbox();
        // 5. Timers that expired join it too, measured with the clock read *after* the sleep.
        self.fire_due_timers();
        // 6. Run what is ready now; whatever this schedules waits for the next iteration.
        self.run_ready(main);
        // When timeouts were created in this iteration, note when it ended (their deadlines
        // count from no later than this; see timeout.rs).
        if let Some(epoch) = crate::context::end_iteration() {
            self.timeout_clock.record(epoch, self.clock.now_ns());
        }
    }

    fn purge_timers(&self) {
        let mut timers = self.timers.borrow_mut();
        if timers.len() > 0 {
            let handles = self.handles.borrow();
            timers.purge(|index, seq| record_is_live(&handles, index, seq));
        }
    }

    fn compute_timeout(&self) -> Timeout {
        if !self.ready.borrow().is_empty() || self.remote.stop.load(SeqCst) || self.remote.has_pending() {
            return Timeout::Zero;
        }
        match self.timers.borrow_mut().next_deadline() {
            Some(deadline) if deadline <= self.clock.now_ns() => Timeout::Zero,
            Some(deadline) => Timeout::Until(deadline),
            None => Timeout::Forever,
        }
    }

    fn poll_io(&self, timeout: Timeout) {
        let sources = self.io_sources();
        let wait = match timeout {
            // Busy: skip the syscalls unless sockets are registered and it is their turn.
            Timeout::Zero if sources == 0 || self.ticks_since_io.get() + 1 < IO_POLL_INTERVAL => {
                self.ticks_since_io.set(self.ticks_since_io.get() + 1);
                return;
            }
            Timeout::Zero => Some(Duration::ZERO),
            // Virtual time: nothing can happen before the next deadline, so go there at once,
            // unless a socket or an executor job can still produce something in real time.
            Timeout::Until(deadline) if self.clock.is_virtual() && sources == 0 && self.jobs_in_flight() == 0 => {
                // Re-check the inbox *after* reading the job count: a job wakes its task before
                // it stops counting, so a job seen finished here has its wake visible here.
                if !self.remote.has_pending() {
                    self.clock.advance_to(deadline);
                }
                return;
            }
            Timeout::Until(deadline) => {
                Some(Duration::from_nanos(deadline.saturating_sub(self.clock.now_ns())).min(MAX_SLEEP))
            }
            Timeout::Forever => None,
        };
        self.ticks_since_io.set(0);
        self.bump(|s| {
            s.polls += 1;
            s.last_poll_timeout = wait;
        });
        let mut events = std::mem::take(&mut *self.io_events.borrow_mut());
        let started = Instant::now();
        if let Err(e) = self.remote.reactor.wait(wait, &mut events) {
            panic!("aioloop: waiting in the poller failed: {e}");
        }
        if let (Timeout::Until(deadline), true) = (timeout, self.clock.is_virtual()) {
            // Virtual time that had to wait in real time (sockets or jobs were live): if the
            // whole wait passed, so did the virtual deadline.
            if wait.is_some_and(|w| started.elapsed() >= w) {
                self.clock.advance_to(deadline);
            }
        }
        self.remote.clear_notified();
        // Ready sockets wake their tasks (asyncio's `_process_events`): they join the ready queue
        // after what was already there, before the timers of phase 5.
        self.dispatch_io(&mut events);
        *self.io_events.borrow_mut() = events;
    }

    fn drain_inbox(&self) {
        if !self.remote.has_pending() {
            return;
        }
        let mut keys = std::mem::take(&mut *self.inbox_scratch.borrow_mut());
        let mut jobs = Vec::new();
        self.remote.drain(&mut keys, &mut jobs);
        if keys.len() > BURST {
            self.remote_burst.set(true);
        }
        for key in keys.drain(..) {
            self.wake_local(TaskKey(key));
        }
        // Callbacks from other threads run in phase 6 like `call_soon` ones (asyncio's
        // `call_soon_threadsafe` appends to `_ready` too).
        for job in jobs {
            self.call_soon_action(Action::Callback(job));
        }
        *self.inbox_scratch.borrow_mut() = keys;
    }

    fn fire_due_timers(&self) {
        if self.timers.borrow().len() == 0 {
            return;
        }
        let now = self.clock.now_ns();
        // No user code runs here: the borrows can be held for the whole batch.
        let mut handles = self.handles.borrow_mut();
        let mut timers = self.timers.borrow_mut();
        let mut ready = self.ready.borrow_mut();
        while let Some(due) = timers.pop_due(now, |index, seq| record_is_live(&handles, index, seq)) {
            ready.push_back(match due {
                Due::Wake(key) => Runnable::Timer(key),
                Due::Record(index, seq) => {
                    handles[index as usize].in_heap = false;
                    Runnable::Handle { index, seq }
                }
            });
        }
    }

    fn run_ready(&self, main: &mut Option<Pin<&mut dyn Future<Output = ()>>>) {
        // The "ntodo" rule: count first, then run exactly that many.
        let ntodo = self.ready.borrow().len();
        for _ in 0..ntodo {
            let Some(next) = self.ready.borrow_mut().pop_front() else { break };
            // Debug mode: name the step before it runs (a task may finish in it).
            let debug = self.debug.as_ref().map(|d| (self.describe(next), Instant::now(), d.slow_callback_duration));
            match next {
                Runnable::Task(key) => self.run_task(key, main),
                Runnable::Handle { index, seq } => self.run_handle(index, seq),
                Runnable::Timer(key) => self.run_timer(key),
            }
            if let Some((what, started, threshold)) = debug {
                self.report_slow(&what, started.elapsed(), threshold);
            }
        }
        // Housekeeping: the ready queue's buffer after a drained burst (a length check), the
        // rest when the loop is about to go idle (nothing ready), never on the busy path.
        let mut ready = self.ready.borrow_mut();
        let idle = ready.is_empty();
        if ready.capacity() > BURST && ready.len() < ready.capacity() / 8 {
            let keep = (ready.len() * 2).max(1024);
            ready.shrink_to(keep);
        }
        drop(ready);
        if idle {
            self.release_burst_memory();
        }
    }

    /// A burst (a million tasks spawned, a million timers set) leaves the ready queue, the task
    /// and handle slabs and the timer heap with buffers sized for it; give them back once the
    /// burst has drained, rather than hold the peak for the loop's life. A slab can only be
    /// dropped whole, when it is empty (its keys are indices); stale keys into it stay harmless,
    /// since every lookup checks the generation or sequence number.
    pub(crate) fn release_burst_memory(&self) {
        give_back(&self.tasks, Slab::is_empty, Slab::capacity);
        give_back(&self.io, Slab::is_empty, Slab::capacity);
        give_back(&self.handles, Slab::is_empty, Slab::capacity);
        give_back(&self.io_events, Vec::is_empty, Vec::capacity);
        give_back(&self.inbox_scratch, Vec::is_empty, Vec::capacity);
        let mut extras = self.extras.borrow_mut();
        if extras.capacity() > BURST && extras.len() < extras.capacity() / 8 {
            let keep = extras.len() * 2;
            extras.shrink_to(keep);
        }
        drop(extras);
        self.timers.borrow_mut().release_memory(BURST);
        // Only after a burst: locking the inbox is not free.
        if self.remote_burst.replace(false) {
            self.remote.release_memory(BURST);
        }
    }

    /// Debug mode: reports a step that held the loop at least `threshold` (asyncio's
    /// "Executing <Handle ...> took 0.150 seconds"). Measured in real time, even under virtual
    /// time: a blocking call stalls the thread, not the virtual clock.
    fn report_slow(&self, what: &str, took: Duration, threshold: Duration) {
        if took < threshold {
            return;
        }
        let message = format!("Executing {what} took {:.3} seconds", took.as_secs_f64());
        self.report(&crate::exception::ExceptionContext { message: &message, task: None, panic: None });
    }

    /// Debug mode: names a ready-queue entry for a slow-step report.
    fn describe(&self, step: Runnable) -> String {
        match step {
            Runnable::Task(key) => {
                let id = self.tasks.borrow().get(key.index()).filter(|e| key.matches(e.id)).map(|e| e.id);
                id.map_or_else(|| "<Task finished>".to_string(), |id| self.task_info(id).to_string())
            }
            Runnable::Handle { .. } | Runnable::Timer(_) => "<Handle callback>".to_string(),
        }
    }

    /// Panics in a child process forked after the loop was created (documented on the `run_*`
    /// methods): waiting on the parent's epoll instance would steal the parent's events.
    fn check_not_forked(&self) {
        if self.remote.reactor.forked() {
            panic!(
                "aioloop: this event loop was created before a fork and belongs to the parent process; \
                 build a new EventLoop in the child"
            );
        }
    }

    /// Records a trace event for task `id` at the current loop time, if tracing is on: when it
    /// is off, one test of a field that the branch predictor learns at once, the recording
    /// itself kept out of line.
    #[inline(always)]
    pub(crate) fn trace_event(&self, id: u64, kind: impl FnOnce() -> crate::TraceKind) {
        if let Some(tracer) = &self.tracer {
            self.record_event(tracer, id, kind);
        }
    }

    /// [`trace_event`](Self::trace_event) for the task with `key`, whose id is looked up only
    /// when tracing is on (so the hot paths need not carry it).
    #[inline(always)]
    pub(crate) fn trace_task(&self, key: TaskKey, kind: impl FnOnce() -> crate::TraceKind) {
        if let Some(tracer) = &self.tracer {
            self.record_task_event(tracer, key, kind);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_task_event(
        &self,
        tracer: &RefCell<crate::trace::Recorder>,
        key: TaskKey,
        kind: impl FnOnce() -> crate::TraceKind,
    ) {
        let id = self.tasks.borrow().get(key.index()).filter(|e| key.matches(e.id)).map(|e| e.id);
        if let Some(id) = id {
            self.record_event(tracer, id, kind);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_event(&self, tracer: &RefCell<crate::trace::Recorder>, id: u64, kind: impl FnOnce() -> crate::TraceKind) {
        let now = self.clock.instant(self.clock.now_ns());
        let kind = kind();
        tracer.borrow_mut().record(now, crate::TaskId(id), kind);
    }

    /// Debug mode: records where a task is spawned.
    pub(crate) fn note_spawn_location(&self, id: u64, at: &'static std::panic::Location<'static>) {
        if let Some(d) = &self.debug {
            d.spawned_at.borrow_mut().insert(id, at);
        }
    }

    /// Debug mode: where a task was spawned.
    pub(crate) fn spawn_location(&self, id: u64) -> Option<&'static std::panic::Location<'static>> {
        self.debug.as_ref().and_then(|d| d.spawned_at.borrow().get(&id).copied())
    }

    /// Debug mode: forgets a finished task's spawn location.
    pub(crate) fn forget_spawn_location(&self, id: u64) {
        if let Some(d) = &self.debug {
            d.spawned_at.borrow_mut().remove(&id);
        }
    }

    /// Runs iterations until a stop is requested (then clears the request).
    fn run_until_stopped(&self, main: &mut Option<Pin<&mut dyn Future<Output = ()>>>) {
        loop {
            self.run_once(main);
            if self.remote.stop.swap(false, SeqCst) {
                break;
            }
        }
    }

    /// Drops every task's future and every callback, then unregisters the loop. Idempotent.
    ///
    /// Destructors may spawn (the new tasks are born cancelled), cancel, wake or schedule: each
    /// round drops what the previous round left, until nothing is left.
    pub(crate) fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        loop {
            let doomed: Vec<_> = {
                let mut tasks = self.tasks.borrow_mut();
                let slot = self.remote.slot;
                tasks
                    .iter_mut()
                    .filter(|(_, e)| !e.status.is_finished() && !e.is_main)
                    .map(|(i, e)| {
                        e.status = Status::Running;
                        (TaskKey::new(slot, i, e.id), e.cell.take())
                    })
                    .collect()
            };
            if doomed.is_empty() {
                break;
            }
            for (key, cell) in doomed {
                if cell.is_some() {
                    let id = self.tasks.borrow()[key.index()].id;
                    self.report(&crate::exception::ExceptionContext {
                        message: "Task was destroyed but it is pending!",
                        task: Some(self.task_info(id)),
                        panic: None,
                    });
                }
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(cell)));
                match outcome {
                    Ok(()) => self.finish_task(key, Status::Cancelled, None, None),
                    Err(p) => self.finish_task(key, Status::Panicked, None, Some(p)),
                }
            }
        }
        loop {
            let records: Vec<HandleRecord> = self.handles.borrow_mut().drain().collect();
            if records.is_empty() {
                break;
            }
            for r in records {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(r)));
            }
        }
        self.clear_fd_callbacks();
        // Signal callbacks go, and the signal thread stops sending this loop deliveries.
        self.os.close(self);
        // Callbacks other threads sent and the loop will never run (their destructors run here,
        // which resolves the handles of `LoopHandle::spawn` as cancelled).
        for job in self.remote.close() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(job)));
        }
        self.ready.borrow_mut().clear();
        self.timers.borrow_mut().clear();
        self.remote.unregister();
    }

    fn jobs_in_flight(&self) -> usize {
        self.remote.jobs_in_flight.load(SeqCst)
    }

    fn bump(&self, f: impl FnOnce(&mut Stats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Returns the deadline `d` from now, in loop time.
    pub(crate) fn deadline_after(&self, d: Duration) -> u64 {
        self.clock.now_ns().saturating_add(duration_ns(d))
    }
}

/// Returns true if handle record `index` is still the one with sequence number `seq` and still
/// scheduled in the timer heap (a cancelled one is a tombstone there).
pub(crate) fn record_is_live(handles: &Slab<HandleRecord>, index: u32, seq: u64) -> bool {
    handles.get(index as usize).is_some_and(|r| r.seq == seq && r.in_heap)
}

/// A single-threaded, asyncio-style event loop: one OS thread runs many tasks.
///
/// It holds the ready queue, the waiting set of parked tasks, the timer heap and the poller;
/// each iteration is asyncio's `_run_once` (see the [crate documentation](crate)).
///
/// Dropping the loop closes it, like [`close`](Self::close).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use aioloop::EventLoop;
///
/// let mut lp = EventLoop::new()?;
/// let answer = lp.run_until_complete(async {
///     let t = aioloop::spawn(async {
///         aioloop::sleep(Duration::from_millis(10)).await;
///         42
///     });
///     t.await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct EventLoop {
    /// (crate-visible for the `impl EventLoop` blocks of other modules: src/signal)
    pub(crate) core: Rc<Core>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("tasks", &self.core.tasks.borrow().len())
            .field("ready", &self.core.ready.borrow().len())
            .field("timers", &self.core.timers.borrow().len())
            .field("virtual_time", &self.core.clock.is_virtual())
            .finish()
    }
}

/// A snapshot of the loop's anatomy and counters, from [`EventLoop::stats`].
///
/// # Examples
///
/// ```
/// let lp = aioloop::EventLoop::new().unwrap();
/// lp.spawn(async {});
/// assert_eq!(lp.stats().tasks, 1);
/// assert_eq!(lp.stats().ready, 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Tasks alive in the slab (waiting, ready, or finished with an outcome not yet taken).
    pub tasks: usize,
    /// Entries in the ready queue (task steps and callbacks).
    pub ready: usize,
    /// Entries in the timer heap, cancelled ones (tombstones) included.
    pub timers: usize,
    /// Entries of the timer heap counted as cancelled.
    pub cancelled_timers: usize,
    /// Iterations (`run_once` calls) since the loop was created.
    pub iterations: u64,
    /// Times the loop called into the poller (each may block).
    pub polls: u64,
    /// The timeout of the last call into the poller (`None`: block until woken).
    pub last_poll_timeout: Option<Duration>,
}

/// Debug mode's settings and records.
pub(crate) struct DebugMode {
    /// A step that takes at least this long is reported (asyncio's `slow_callback_duration`).
    slow_callback_duration: Duration,
    /// Where each live task was spawned.
    spawned_at: RefCell<HashMap<u64, &'static std::panic::Location<'static>>>,
}

/// Configures an [`EventLoop`] before creating it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build()?;
/// let t0 = lp.time();
/// lp.run_until_complete(aioloop::sleep(Duration::from_secs(3600)));
/// assert_eq!(lp.time() - t0, Duration::from_secs(3600)); // instantly, on virtual time
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    virtual_time: bool,
    trace: bool,
    debug: Option<bool>,
    slow_callback_duration: Option<Duration>,
    dump_on_signal: Option<i32>,
}

impl Builder {
    /// Runs the loop on virtual time: the clock stands still while tasks run and jumps to the
    /// next timer's deadline whenever the loop would otherwise sleep with nothing ready and no
    /// I/O source registered. Programs behave as in real time, only faster (asyncio's `TestLoop`,
    /// tokio's paused clock). Default: false.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// assert!(format!("{lp:?}").contains("virtual_time: true"));
    /// ```
    pub fn virtual_time(mut self, on: bool) -> Builder {
        self.virtual_time = on;
        self
    }

    /// Creates the loop.
    ///
    /// # Errors
    ///
    /// Fails if the OS poller cannot be created (for example `EMFILE`: too many open files), or if
    /// 4,096 loops are already alive in this process.
    ///
    /// # Examples
    ///
    /// ```
    /// let _lp = aioloop::EventLoop::builder().build()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn build(self) -> io::Result<EventLoop> {
        let debug_on = self.debug.unwrap_or_else(|| std::env::var_os("AIOLOOP_DEBUG").is_some_and(|v| v == "1"));
        let debug = debug_on.then(|| DebugMode {
            slow_callback_duration: self.slow_callback_duration.unwrap_or(Duration::from_millis(100)),
            spawned_at: RefCell::default(),
        });
        let lp = EventLoop { core: Core::new(self.virtual_time, debug, self.trace)? };
        if let Some(signum) = self.dump_on_signal {
            lp.core.os.enable_dump(&lp.core, signum)?;
        }
        Ok(lp)
    }

    /// Turns debug mode on or off (asyncio's debug mode; default: on if the environment variable
    /// `AIOLOOP_DEBUG` is `1`). In debug mode a task step or callback that holds the loop at
    /// least [`slow_callback_duration`](Self::slow_callback_duration) (100 ms by default, real
    /// time) is reported to the exception handler as
    /// `Executing <Task name=Task-3 id=3 spawned at src/main.rs:12:5> took 0.250 seconds`, and
    /// tasks remember where they were spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    /// let mut lp = aioloop::EventLoop::builder().debug(true).slow_callback_duration(Duration::ZERO).build()?;
    /// let reports = Rc::new(RefCell::new(vec![]));
    /// let r = reports.clone();
    /// lp.set_exception_handler(move |ctx| r.borrow_mut().push(ctx.message.to_string()));
    /// lp.spawn(async {});
    /// lp.run_until_complete(aioloop::yield_now());
    /// // With a threshold of zero, every step is reported, with where its task was spawned.
    /// assert!(reports.borrow().iter().any(|m| m.starts_with("Executing <Task name=Task-") && m.contains(".rs:")));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn debug(mut self, on: bool) -> Builder {
        self.debug = Some(on);
        self
    }

    /// Records every task's life (spawned, each poll, what it then waits on, woken, how it
    /// finished) with loop timestamps, for [`EventLoop::trace`] to export as Chrome trace-event
    /// JSON or an SVG timeline. Default: off, and then it costs one branch per event.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use aioloop::TraceKind;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build()?;
    /// let t = lp.spawn(aioloop::sleep(Duration::from_secs(2)));
    /// lp.run_until_complete(async { t.await.unwrap() });
    /// let trace = lp.trace();
    /// let done = trace.events().iter().find(|e| e.kind == TraceKind::Done).unwrap();
    /// assert_eq!(done.at, Duration::from_secs(2)); // the sleeping task, at 2 s of loop time
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn trace(mut self, on: bool) -> Builder {
        self.trace = on;
        self
    }

    /// Prints the loop's task dump ([`EventLoop::tasks`]: each task, its state, where it was
    /// spawned in debug mode, and what it waits for) to stderr each time the process receives
    /// `signum`, and keeps running: [`SIGQUIT`](crate::signal::SIGQUIT) by convention (Ctrl-\\),
    /// as Go's runtime dumps its goroutines. The way to see where a stuck server is stuck:
    /// `kill -QUIT <pid>`.
    ///
    /// If the loop itself is stuck in a task that never yields, it cannot print its dump; the
    /// process-wide signal thread then prints which task the loop has been polling, and for how
    /// long (the loop publishes each poll's task and start time in two atomics while this option
    /// is on; off, that costs a test of one field before and after each poll).
    ///
    /// # Errors
    ///
    /// [`build`](Self::build) fails with `InvalidInput` for a signal that cannot be caught
    /// (see [`EventLoop::add_signal_handler`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use aioloop::signal::{raise_signal, SIGQUIT};
    /// let mut lp = aioloop::EventLoop::builder().debug(true).dump_on_signal(SIGQUIT).build()?;
    /// lp.run_until_complete(async {
    ///     raise_signal(SIGQUIT).unwrap(); // stderr: "aioloop: signal 3: task dump of the loop ..."
    ///     aioloop::sleep(std::time::Duration::from_millis(50)).await;
    /// });
    /// assert!(aioloop::EventLoop::builder().dump_on_signal(9).build().is_err()); // SIGKILL
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn dump_on_signal(mut self, signum: i32) -> Builder {
        self.dump_on_signal = Some(signum);
        self
    }

    /// Sets debug mode's threshold for slow steps (default 100 ms).
    ///
    /// # Examples
    ///
    /// See [`debug`](Self::debug).
    pub fn slow_callback_duration(mut self, threshold: Duration) -> Builder {
        self.slow_callback_duration = Some(threshold);
        self
    }
}

impl EventLoop {
    /// Creates a loop on real time.
    ///
    /// # Errors
    ///
    /// Fails if the OS poller cannot be created (for example `EMFILE`: too many open files), or if
    /// 4,096 loops are already alive in this process.
    ///
    /// # Examples
    ///
    /// ```
    /// let _lp = aioloop::EventLoop::new()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<EventLoop> {
        Builder::default().build()
    }

    /// Returns a [`Builder`] to configure a loop (virtual time).
    ///
    /// # Examples
    ///
    /// ```
    /// let _lp = aioloop::EventLoop::builder().virtual_time(true).build()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Runs the loop until `fut` completes and returns its output.
    ///
    /// `fut` runs as the loop's *main task*: it goes through the ready queue like any task, so it
    /// sees [`current_task`](crate::current_task) and can be woken from anywhere. It need not be
    /// `'static` or `Send`. As in asyncio, the loop stops at the end of the iteration *after* the
    /// one in which `fut` completed, so whatever that completion made ready still runs.
    ///
    /// Tasks that are still pending afterwards stay in the loop; the next `run_*` call resumes
    /// them, [`close`](Self::close) drops them.
    ///
    /// # Panics
    ///
    /// - If `fut` panics, the panic resumes here (after the loop stopped).
    /// - "Event loop stopped before Future completed." if [`stop`](Self::stop) was called before
    ///   `fut` completed (`fut` is dropped; spawned tasks stay in the loop).
    /// - "Cannot run the event loop while another loop is running" if a loop is already running
    ///   on this thread.
    /// - In a child process forked after the loop was created: the loop's poller is the
    ///   parent's, so the child must build its own loop (asyncio and libuv check the pid too).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let s = String::from("borrowed");
    /// let n = lp.run_until_complete(async { s.len() }); // non-'static is fine
    /// assert_eq!(n, 8);
    /// ```
    pub fn run_until_complete<F: IntoFuture>(&mut self, fut: F) -> F::Output {
        self.core.check_not_forked();
        let out = Cell::new(None);
        let fut = fut.into_future();
        let mut wrapper = pin!(Some(async {
            out.set(Some(fut.await));
        }));
        let (key, _) = self.core.insert_task(None, true, Status::Idle);
        let main_task = MainTask { core: &self.core, key };
        let guard = crate::context::enter(&self.core);
        {
            let mut main: Option<Pin<&mut dyn Future<Output = ()>>> =
                wrapper.as_mut().as_pin_mut().map(|f| f as Pin<&mut dyn Future<Output = ()>>);
            self.core.run_until_stopped(&mut main);
        }
        // A future stopped before it completed is dropped while the loop is still entered, so
        // its destructors can reach the loop (cancel their timers, spawn, wake).
        wrapper.set(None);
        drop(guard);
        let (status, payload) = main_task.finish();
        match status {
            Status::Done => out.take().expect("the main task stored its output"),
            Status::Panicked => resume_unwind(payload.expect("a panicked task has a payload")),
            _ => panic!("Event loop stopped before Future completed."),
        }
    }

    /// Runs the loop until [`stop`](Self::stop) is called (from a task, a callback, or another
    /// thread through a [`LoopHandle`]).
    ///
    /// `stop()` lets the current iteration finish; a `stop()` before `run_forever` makes it run
    /// exactly one iteration.
    ///
    /// # Panics
    ///
    /// "Cannot run the event loop while another loop is running" if a loop is already running on
    /// this thread; in a child process forked after the loop was created, as
    /// [`run_until_complete`](Self::run_until_complete).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let h = lp.handle();
    /// lp.call_later(Duration::from_millis(5), move || h.stop());
    /// lp.run_forever();
    /// ```
    pub fn run_forever(&mut self) {
        self.core.check_not_forked();
        let _guard = crate::context::enter(&self.core);
        self.core.run_until_stopped(&mut None);
    }

    /// Asks the loop to stop after the iteration in progress (asyncio's `loop.stop()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// lp.stop();
    /// lp.run_forever(); // one iteration, then returns
    /// ```
    pub fn stop(&self) {
        self.core.remote.stop.store(true, SeqCst);
    }

    /// Closes the loop: drops every remaining task's future (cancelling it) and every pending
    /// callback, without running them. Dropping the loop does the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.spawn(aioloop::sleep(Duration::from_secs(60)));
    /// lp.close();
    /// assert!(t.is_cancelled());
    /// ```
    pub fn close(self) {
        drop(self);
    }

    /// Returns the loop's current time (virtual under virtual time).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// assert!(lp.time() <= std::time::Instant::now());
    /// ```
    pub fn time(&self) -> Instant {
        self.core.clock.instant(self.core.clock.now_ns())
    }

    /// Spawns a task on this loop (asyncio's `loop.create_task`). It starts when the loop runs.
    ///
    /// # Panics
    ///
    /// If more than 67,108,864 tasks are alive on this loop.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let t = lp.spawn(async { 1 + 1 });
    /// assert_eq!(lp.run_until_complete(t).unwrap(), 2);
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.core.spawn(fut)
    }

    /// Schedules `f` to run in the next iteration, after what is already ready (FIFO).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let log = Rc::new(RefCell::new(vec![]));
    /// let l = log.clone();
    /// lp.call_soon(move || l.borrow_mut().push("a"));
    /// lp.run_until_complete(aioloop::yield_now());
    /// assert_eq!(*log.borrow(), ["a"]);
    /// ```
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> Handle {
        Handle::new(&self.core, self.core.call_soon_action(Action::Callback(Box::new(f))))
    }

    /// Schedules `f` to run `delay` from now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let h = lp.call_later(Duration::from_secs(5), || println!("never"));
    /// h.cancel();
    /// ```
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> TimerHandle {
        let deadline = self.core.deadline_after(delay);
        TimerHandle::new(&self.core, deadline, Action::Callback(Box::new(f)))
    }

    /// Schedules `f` to run at `when` (loop time; a past instant runs in the next iteration).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// let h = lp.call_at(lp.time() + Duration::from_secs(1), || {});
    /// assert_eq!(h.when(), lp.time() + Duration::from_secs(1));
    /// ```
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> TimerHandle {
        let deadline = self.core.clock.ns_of(when);
        TimerHandle::new(&self.core, deadline, Action::Callback(Box::new(f)))
    }

    /// Runs `callback` whenever the loop finds `fd` readable (asyncio's `add_reader`), until
    /// [`remove_reader`](Self::remove_reader): at most once per iteration; in every iteration
    /// while the loop is otherwise idle, and at least every 61 iterations while tasks keep it
    /// busy (see docs/architecture.md). Replaces a previous reader callback of the same
    /// descriptor. Inside a callback, the free functions [`remove_reader`](crate::remove_reader)
    /// and friends reach the running loop.
    ///
    /// The loop registers a duplicate of `fd` (level-triggered, as asyncio's selector does), so
    /// closing `fd` without removing the callback cannot corrupt the poller; the callback keeps
    /// firing while the file is readable through the duplicate. This is the teaching API; tasks
    /// should use [`Async`](crate::Async) or the [`net`](crate::net) types.
    ///
    /// # Errors
    ///
    /// If the descriptor cannot be duplicated or registered (for example a regular file).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, io::Write, os::fd::AsRawFd, rc::Rc};
    /// let mut lp = aioloop::EventLoop::new()?;
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    /// let fired = Rc::new(Cell::new(0));
    /// let (f, h) = (fired.clone(), lp.handle());
    /// lp.add_reader(&a, move || {
    ///     f.set(f.get() + 1);
    ///     h.stop();
    /// })?;
    /// b.write_all(b"x")?;
    /// lp.run_forever(); // the callback stops the loop
    /// assert_eq!(fired.get(), 1);
    /// assert!(lp.remove_reader(a.as_raw_fd()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_reader(&self, fd: impl std::os::fd::AsFd, callback: impl FnMut() + 'static) -> io::Result<()> {
        self.core.add_fd_callback(fd.as_fd(), crate::io::Dir::Read, Box::new(callback))
    }

    /// Stops the reader callback of `fd`; returns true if there was one (asyncio's `remove_reader`).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// assert!(!lp.remove_reader(0));
    /// ```
    pub fn remove_reader(&self, fd: impl std::os::fd::AsRawFd) -> bool {
        self.core.remove_fd_callback(fd.as_raw_fd(), crate::io::Dir::Read)
    }

    /// Runs `callback` whenever the loop finds `fd` writable (asyncio's `add_writer`), until
    /// [`remove_writer`](Self::remove_writer); see [`add_reader`](Self::add_reader).
    ///
    /// # Errors
    ///
    /// If the descriptor cannot be duplicated or registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// let mut lp = aioloop::EventLoop::new()?;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let h = lp.handle();
    /// lp.add_writer(&a, move || h.stop())?; // an empty socket buffer is writable at once
    /// lp.run_forever();
    /// assert!(lp.remove_writer(a.as_raw_fd()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_writer(&self, fd: impl std::os::fd::AsFd, callback: impl FnMut() + 'static) -> io::Result<()> {
        self.core.add_fd_callback(fd.as_fd(), crate::io::Dir::Write, Box::new(callback))
    }

    /// Stops the writer callback of `fd`; returns true if there was one (asyncio's `remove_writer`).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// assert!(!lp.remove_writer(1));
    /// ```
    pub fn remove_writer(&self, fd: impl std::os::fd::AsRawFd) -> bool {
        self.core.remove_fd_callback(fd.as_raw_fd(), crate::io::Dir::Write)
    }

    /// Returns what the loop recorded of its tasks' lives so far, if it was built with
    /// [`Builder::trace`] (otherwise an empty trace). Save it with
    /// [`Trace::save`](crate::Trace::save) as `.json` (Perfetto, chrome://tracing) or `.svg`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).trace(true).build()?;
    /// lp.run_until_complete(aioloop::sleep(Duration::from_secs(1)));
    /// let trace = lp.trace();
    /// assert!(trace.to_string().contains("1.000s"));
    /// assert!(trace.to_svg().starts_with("<svg"));
    /// assert!(aioloop::EventLoop::new()?.trace().events().is_empty()); // not recording
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn trace(&self) -> crate::Trace {
        match &self.core.tracer {
            Some(r) => r.borrow().trace(),
            None => crate::Trace::empty(self.core.clock.start()), // the loop's creation (clock.rs)
        }
    }

    /// Returns every unfinished task, with its state, spawn location (debug mode) and what it
    /// waits for; `Display` prints it as a table (asyncio's `all_tasks()` and task reprs).
    ///
    /// # Examples
    ///
    /// See [`TaskDump`](crate::TaskDump).
    pub fn tasks(&self) -> crate::TaskDump {
        self.core.dump()
    }

    /// Replaces the loop's exception handler (asyncio's `set_exception_handler`): it receives
    /// what the loop cannot hand to a task, such as the panic of a detached task, a panicking
    /// callback, or a task still pending when the loop closes. The default,
    /// [`default_exception_handler`](crate::default_exception_handler), prints one line on
    /// stderr; a handler may call it too.
    ///
    /// # Examples
    ///
    /// See [`ExceptionContext`](crate::ExceptionContext).
    pub fn set_exception_handler(&self, handler: impl Fn(&crate::ExceptionContext<'_>) + 'static) {
        *self.core.exception_handler.borrow_mut() = Some(Rc::new(handler));
    }

    /// Restores the default exception handler.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = aioloop::EventLoop::new().unwrap();
    /// lp.set_exception_handler(|_| {});
    /// lp.reset_exception_handler();
    /// ```
    pub fn reset_exception_handler(&self) {
        let old = self.core.exception_handler.borrow_mut().take();
        drop(old);
    }

    /// Returns a thread-safe handle to this loop (`Send + Sync + Clone`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lp = aioloop::EventLoop::new().unwrap();
    /// let h = lp.handle();
    /// std::thread::spawn(move || h.stop()).join().unwrap();
    /// lp.run_forever(); // returns: the stop was requested from another thread
    /// ```
    pub fn handle(&self) -> LoopHandle {
        LoopHandle::new(self.core.remote.clone())
    }

    /// Returns the loop's current anatomy: task, ready-queue and timer-heap sizes, and counters
    /// of iterations and poller calls (for tests, teaching and debugging).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    /// lp.run_until_complete(aioloop::sleep(Duration::from_secs(1)));
    /// assert_eq!(lp.stats().polls, 0); // virtual time jumped instead of sleeping
    /// ```
    pub fn stats(&self) -> Stats {
        let mut s = self.core.stats.get();
        s.iterations = self.core.iterations.get();
        s.tasks = self.core.tasks.borrow().len();
        s.ready = self.core.ready.borrow().len();
        let timers = self.core.timers.borrow();
        s.timers = timers.len();
        s.cancelled_timers = timers.cancelled();
        s
    }

    /// Cancels every unfinished task and runs the loop until they are all finished (the first
    /// half of `asyncio.run`'s shutdown). Tasks their destructors spawn are left for `close`.
    pub(crate) fn cancel_all_tasks(&mut self) {
        let keys: Vec<TaskKey> = {
            let slot = self.core.remote.slot;
            let tasks = self.core.tasks.borrow();
            tasks.iter().filter(|(_, e)| !e.status.is_finished()).map(|(i, e)| TaskKey::new(slot, i, e.id)).collect()
        };
        for &k in &keys {
            self.core.cancel_task(k);
        }
        let _guard = crate::context::enter(&self.core);
        while keys.iter().any(|&k| self.core.status_of(k).is_some_and(|s| !s.is_finished())) {
            self.core.run_once(&mut None);
        }
        self.core.remote.stop.store(false, SeqCst);
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.core.close();
    }
}

/// The main task's slab entry, removed when `run_until_complete` returns or unwinds.
struct MainTask<'a> {
    core: &'a Rc<Core>,
    key: TaskKey,
}

impl MainTask<'_> {
    fn finish(self) -> (Status, Option<Box<dyn std::any::Any + Send>>) {
        let mut entry = self.core.tasks.borrow_mut().remove(self.key.index());
        let extra = crate::task::take_extra(&mut self.core.extras.borrow_mut(), &mut entry, self.key.index());
        drop(extra);
        if self.core.tasks.borrow().is_empty() {
            self.core.release_burst_memory();
        }
        let payload = crate::task::take_by_id(&self.core.panics, entry.id);
        std::mem::forget(self);
        (entry.status, payload)
    }
}

impl Drop for MainTask<'_> {
    fn drop(&mut self) {
        let mut tasks = self.core.tasks.borrow_mut();
        if tasks.get(self.key.index()).is_some_and(|e| self.key.matches(e.id)) {
            let mut entry = tasks.remove(self.key.index());
            drop(tasks);
            let extra = crate::task::take_extra(&mut self.core.extras.borrow_mut(), &mut entry, self.key.index());
            drop(extra);
            crate::task::take_by_id(&self.core.panics, entry.id);
        }
    }
}
