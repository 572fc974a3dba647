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
//!          │                    (a long batch looks ahead: lookahead.rs)        │
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
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

pub(crate) mod callbacks;
pub(crate) mod clock;
pub(crate) mod cross_thread;
pub(crate) mod dump;
pub(crate) mod exception;
pub(crate) mod lookahead;
#[cfg(loom)]
pub(crate) mod loom_atomics;
pub(crate) mod members;
#[allow(unsafe_code)]
pub(crate) mod reactor;
pub(crate) mod readiness;
pub(crate) mod ready;
pub(crate) mod recorder;
pub(crate) mod running;
pub(crate) mod stats;
pub(crate) mod task;
pub(crate) mod timeout_clock;
pub(crate) mod timer;
#[allow(unsafe_code)]
pub(crate) mod waker;

use self::clock::{duration_ns, Clock};
use self::cross_thread::Remote;
pub(crate) use self::ready::{Next, Runnable};
use self::stats::Stats;
use self::task::{Status, TaskId};
use self::timer::{Due, TimerHeap};
use self::waker::TaskKey;
use crate::runtime::callbacks::{Action, HandleRecord};

/// The longest the loop sleeps in one go (asyncio's `MAXIMUM_SELECT_TIMEOUT`, one day): a timer
/// further away than that is looked at again after a day.
const MAX_SLEEP: Duration = Duration::from_secs(24 * 3600);

/// While tasks keep the ready queue busy and I/O sources are registered, one iteration in this
/// many asks the poller for I/O (with a zero timeout) instead of every iteration, because a
/// zero-timeout wait costs several syscalls. tokio's `event_interval` is the same number, but
/// counts task polls rather than iterations. The book's chapter 3 (docs/src/anatomy.md) says why that is fair.
const IO_POLL_INTERVAL: u32 = 61;

/// When the loop closes, this many of its pending tasks are reported one by one ("Task was
/// destroyed but it is pending!"); the others in one line that counts them.
const DESTROYED_PENDING_REPORTS: usize = 10;

/// Buffers (queues, slabs, the timer heap) larger than this many entries are given back once
/// a burst drained; smaller ones are kept for reuse.
const BURST: usize = 4096;

/// Replaces a buffer that is empty but sized for more than [`BURST`] entries with a new one
/// (a slab can only be dropped whole: its keys are indices).
pub(crate) fn give_back<T: Default>(buf: &RefCell<T>, is_empty: impl Fn(&T) -> bool, capacity: impl Fn(&T) -> usize) {
    let mut buf = buf.borrow_mut();
    if is_empty(&buf) && capacity(&buf) > BURST {
        let old = std::mem::take(&mut *buf);
        drop(buf);
        drop(old);
    }
}

/// An entry of the ready queue: a task step, or a handle (a callback, a timer's action, a combinator's count).
/// Per-loop state of a part that lives outside the engine (the OS integration: signals, the
/// SIGCHLD backend's children), kept by [`Core`] so that it lives and closes with the loop,
/// without the engine depending on the part.
pub(crate) trait OsState: std::any::Any {
    /// The loop closes: drop callbacks, give up process-wide registrations.
    fn close(&self, core: &Core);
    /// `self` as `Any`, to get the concrete type back.
    fn into_any(self: Rc<Self>) -> Rc<dyn std::any::Any>;
}

/// Told about each task poll while set (`dump_on_signal`: the signal thread reports a task that
/// never yields). Implemented by the signal module's process-wide subscriber.
pub(crate) trait PollProbe: Send + Sync {
    /// Task `id` is being polled from now.
    fn poll_started(&self, id: u64);
    /// The poll ended.
    fn poll_ended(&self);
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
    /// Every live task (src/runtime/task/table.rs). Those not in `ready` form the waiting set.
    pub(crate) tasks: task::TaskTable,
    /// Callback records (asyncio's `Handle`s): `call_soon` callbacks, timers' actions, combinator counts.
    pub(crate) handles: RefCell<Slab<HandleRecord>>,
    /// The timer heap (asyncio's `_scheduled`), entries pointing into `handles`.
    pub(crate) timers: RefCell<TimerHeap>,
    /// Real or virtual time.
    pub(crate) clock: Clock,
    /// When the timeouts of the last few iterations were created, at the latest.
    pub(crate) timeout_clock: timeout_clock::TimeoutClock,
    /// The thread-safe half: inbox, stop flag, poller.
    pub(crate) remote: Arc<Remote>,
    /// The task being polled right now (asyncio's `current_task()`).
    current: Cell<Option<TaskKey>>,
    /// The task whose await link was set last (`set_awaiting_of_current`): while it is not the
    /// running task, the running task has none (`current_may_await`).
    last_linked: Cell<Option<TaskKey>>,
    /// The next handle sequence number (orders equal timer deadlines; detects stale handles).
    pub(crate) next_seq: Cell<u64>,
    /// Set by `close()`: spawned tasks are born cancelled, the loop cannot run again.
    closed: Cell<bool>,
    /// Registered I/O sources (sockets of `Async`, descriptors of `add_reader`): cached
    /// readiness and the tasks waiting on each (src/runtime/readiness.rs).
    io: readiness::IoSources,
    /// Counters for [`EventLoop::stats`] (iterations apart: counted every iteration, so kept
    /// in a cell of their own).
    stats: Cell<Stats>,
    /// Iterations (`run_once` calls) since the loop was created.
    pub(crate) iterations: Cell<u64>,
    /// The exception handler (`None`: the default, one line on stderr).
    exception_handler: RefCell<Option<crate::runtime::exception::Handler>>,
    /// Debug mode: slow steps are reported, and tasks remember where they were spawned.
    debug: Option<DebugMode>,
    /// Trace recording (`Builder::trace`): every task's life, for `EventLoop::trace`. `None`
    /// when off, and then each hook costs one branch.
    tracer: Option<RefCell<crate::runtime::recorder::Recorder>>,
    /// Scratch buffer for keys drained from the inbox.
    inbox_scratch: RefCell<Vec<u64>>,
    /// The OS integration's per-loop states (the signal listeners of src/signal, the children
    /// of src/process's SIGCHLD backend), one per type, each made by its first use; the engine
    /// only closes them.
    os: RefCell<Vec<Rc<dyn OsState>>>,
    /// `dump_on_signal`'s watch of the task being polled; one field test per poll when unset.
    probe: std::cell::OnceCell<Arc<dyn PollProbe>>,
    /// A burst of wakes came through the inbox: its buffers may be large (see
    /// `release_burst_memory`).
    remote_burst: Cell<bool>,
}

impl Core {
    pub(crate) fn new(virtual_time: bool, debug: Option<DebugMode>, trace: bool) -> io::Result<Rc<Core>> {
        let clock = Clock::new(virtual_time);
        // The trace counts from the loop's creation (loop time 0 lies 73 years earlier: runtime/clock.rs).
        let tracer = trace.then(|| RefCell::new(crate::runtime::recorder::Recorder::new(clock.start())));
        Ok(Rc::new(Core {
            ready: RefCell::new(VecDeque::new()),
            tasks: task::TaskTable::default(),
            handles: RefCell::new(Slab::new()),
            timers: RefCell::new(TimerHeap::default()),
            clock,
            timeout_clock: timeout_clock::TimeoutClock::default(),
            tracer,
            remote: Remote::register()?,
            current: Cell::new(None),
            last_linked: Cell::new(None),
            next_seq: Cell::new(0),
            closed: Cell::new(false),
            io: readiness::IoSources::default(),
            stats: Cell::new(Stats::default()),
            iterations: Cell::new(0),
            exception_handler: RefCell::new(None),
            debug,
            inbox_scratch: RefCell::new(Vec::new()),
            remote_burst: Cell::new(false),
            os: RefCell::new(Vec::new()),
            probe: std::cell::OnceCell::new(),
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
        if let Some(epoch) = running::end_iteration() {
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
        if !self.ready.borrow().is_empty() || self.remote.stop_requested() || self.remote.has_pending() {
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
            Timeout::Zero if !self.io.busy_turn(IO_POLL_INTERVAL) => return,
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
        self.bump(|s| {
            s.polls += 1;
            s.last_poll_timeout = wait;
        });
        let mut events = self.io.take_events();
        let started = Instant::now();
        if let Err(e) = self.remote.reactor().wait(wait, &mut events) {
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
        self.io.put_events(events);
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
                Due::Wake(key) => Runnable::timer(key),
                Due::Record(index, _) => {
                    handles[index as usize].in_heap = false;
                    Runnable::handle(index)
                }
            });
        }
    }

    fn run_ready(&self, main: &mut Option<Pin<&mut dyn Future<Output = ()>>>) {
        // The "ntodo" rule: count first, then run exactly that many.
        let ntodo = self.ready.borrow().len();
        if self.wants_look_ahead(ntodo) {
            self.run_steps_ahead(ntodo, main);
        } else {
            self.run_steps::<false>(ntodo, main);
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

    /// Runs the first `ntodo` entries of the ready queue, each [looking
    /// ahead](lookahead) first if `AHEAD`.
    #[inline(always)]
    fn run_steps<const AHEAD: bool>(&self, ntodo: usize, main: &mut Option<Pin<&mut dyn Future<Output = ()>>>) {
        let slot = self.remote.slot();
        for _ in 0..ntodo {
            if AHEAD {
                self.look_ahead(slot);
            }
            let Some(entry) = self.ready.borrow_mut().pop_front() else { break };
            // Debug mode: name the step before it runs (a task may finish in it).
            let debug = self.debug.as_ref().map(|d| (self.describe(entry), Instant::now(), d.slow_callback_duration));
            match entry.next(slot) {
                Next::Task(key) => self.run_task(key, main),
                Next::Handle(index) => self.run_handle(index),
                Next::Timer(key) => self.run_timer(key),
            }
            if let Some((what, started, threshold)) = debug {
                self.report_slow(&what, started.elapsed(), threshold);
            }
        }
    }

    /// [`run_steps`](Self::run_steps) with the look-ahead, out of line: the common short
    /// batch's loop stays small.
    #[inline(never)]
    fn run_steps_ahead(&self, ntodo: usize, main: &mut Option<Pin<&mut dyn Future<Output = ()>>>) {
        #[cfg(test)]
        lookahead::BATCHES_AHEAD.set(lookahead::BATCHES_AHEAD.get() + 1);
        self.run_steps::<true>(ntodo, main);
    }

    /// A burst (a million tasks spawned, a million timers set) leaves the ready queue, the task
    /// and handle slabs and the timer heap with buffers sized for it; give them back once the
    /// burst has drained, rather than hold the peak for the loop's life. A slab can only be
    /// dropped whole, when it is empty (its keys are indices); stale keys into it stay harmless,
    /// since every lookup checks the generation or sequence number.
    pub(crate) fn release_burst_memory(&self) {
        self.tasks.release_memory(BURST);
        self.io.release_memory();
        give_back(&self.handles, Slab::is_empty, Slab::capacity);
        give_back(&self.inbox_scratch, Vec::is_empty, Vec::capacity);
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
        self.report(&crate::runtime::exception::ExceptionContext { message: &message, task: None, panic: None });
    }

    /// Debug mode: names a ready-queue entry for a slow-step report.
    fn describe(&self, step: Runnable) -> String {
        match step.next(self.remote.slot()) {
            Next::Task(key) => {
                let id = self.tasks.id_of(key);
                id.map_or_else(|| "<Task finished>".to_string(), |id| self.task_info(id).to_string())
            }
            Next::Handle(_) | Next::Timer(_) => "<Handle callback>".to_string(),
        }
    }

    /// Panics in a child process forked after the loop was created (documented on the `run_*`
    /// methods): waiting on the parent's epoll instance would steal the parent's events.
    pub(crate) fn check_not_forked(&self) {
        if self.remote.reactor().forked() {
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
    pub(crate) fn trace_event(&self, id: u64, kind: impl FnOnce() -> crate::runtime::recorder::TraceKind) {
        if let Some(tracer) = &self.tracer {
            self.record_event(tracer, id, kind);
        }
    }

    /// [`trace_event`](Self::trace_event) for the task with `key`, whose id is looked up only
    /// when tracing is on (so the hot paths need not carry it).
    #[inline(always)]
    pub(crate) fn trace_task(&self, key: TaskKey, kind: impl FnOnce() -> crate::runtime::recorder::TraceKind) {
        if let Some(tracer) = &self.tracer {
            self.record_task_event(tracer, key, kind);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_task_event(
        &self,
        tracer: &RefCell<crate::runtime::recorder::Recorder>,
        key: TaskKey,
        kind: impl FnOnce() -> crate::runtime::recorder::TraceKind,
    ) {
        let id = self.tasks.id_of(key);
        if let Some(id) = id {
            self.record_event(tracer, id, kind);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_event(
        &self,
        tracer: &RefCell<crate::runtime::recorder::Recorder>,
        id: u64,
        kind: impl FnOnce() -> crate::runtime::recorder::TraceKind,
    ) {
        let now = self.clock.instant(self.clock.now_ns());
        let kind = kind();
        tracer.borrow_mut().record(now, TaskId(id), kind);
    }

    /// Debug mode: records where a task is spawned.
    #[inline(always)]
    pub(crate) fn note_spawn_location(&self, id: u64, at: &'static std::panic::Location<'static>) {
        if let Some(d) = &self.debug {
            d.note_spawn_location(id, at);
        }
    }

    /// Debug mode: where a task was spawned.
    pub(crate) fn spawn_location(&self, id: u64) -> Option<&'static std::panic::Location<'static>> {
        self.debug.as_ref().and_then(|d| d.spawned_at.borrow().get(&id).copied())
    }

    /// Debug mode: forgets a finished task's spawn location.
    #[inline(always)]
    pub(crate) fn forget_spawn_location(&self, id: u64) {
        if let Some(d) = &self.debug {
            d.forget_spawn_location(id);
        }
    }

    /// Runs iterations until a stop is requested (then clears the request).
    pub(crate) fn run_until_stopped(&self, main: &mut Option<Pin<&mut dyn Future<Output = ()>>>) {
        loop {
            self.run_once(main);
            if self.remote.take_stop() {
                break;
            }
        }
    }

    /// Drops every task's future and every callback, then unregisters the loop. Idempotent.
    ///
    /// Destructors may spawn (the new tasks are born cancelled), cancel, wake or schedule: each
    /// round drops what the previous round left, until nothing is left.
    ///
    /// Each pending task is reported as asyncio reports it ("Task was destroyed but it is
    /// pending!"), the first [`DESTROYED_PENDING_REPORTS`] of them; the rest are counted and
    /// reported in one line at the end, so that a million pending tasks do not print a million.
    pub(crate) fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        // Pending tasks destroyed so far.
        let mut destroyed = 0usize;
        loop {
            let doomed: Vec<_> = {
                let mut tasks = self.tasks.entries_mut();
                let slot = self.remote.slot();
                tasks
                    .iter_mut()
                    .filter(|(_, e)| !e.status.is_finished() && !e.is_main())
                    .map(|(i, e)| {
                        // Running: its cell stays in the table until its future is dropped
                        // below (task/cell.rs's invariant 3).
                        e.status = Status::Running;
                        TaskKey::new(slot, i, e.id)
                    })
                    .collect()
            };
            if doomed.is_empty() {
                break;
            }
            for key in doomed {
                self.destroy_pending_task(key, |id| {
                    destroyed += 1;
                    if destroyed <= DESTROYED_PENDING_REPORTS {
                        self.report(&crate::runtime::exception::ExceptionContext {
                            message: "Task was destroyed but it is pending!",
                            task: Some(self.task_info(id)),
                            panic: None,
                        });
                    }
                });
            }
        }
        if let Some(more) = destroyed.checked_sub(DESTROYED_PENDING_REPORTS).filter(|&n| n > 0) {
            let tasks = if more == 1 { "task was" } else { "tasks were" };
            self.report(&crate::runtime::exception::ExceptionContext {
                message: &format!("{more} more {tasks} destroyed but pending (not reported one by one)"),
                task: None,
                panic: None,
            });
        }
        loop {
            let records: Vec<HandleRecord> = self.handles.borrow_mut().drain().collect();
            if records.is_empty() {
                break;
            }
            for r in records {
                exception::ignore_panic(move || drop(r));
            }
        }
        self.clear_fd_callbacks();
        // Signal callbacks go, and the signal thread stops sending this loop deliveries.
        let states = std::mem::take(&mut *self.os.borrow_mut());
        for state in states {
            state.close(self);
        }
        // Callbacks other threads sent and the loop will never run (their destructors run here,
        // which resolves the handles of `LoopHandle::spawn` as cancelled).
        for job in self.remote.close() {
            exception::ignore_panic(move || drop(job));
        }
        self.ready.borrow_mut().clear();
        self.timers.borrow_mut().clear();
        self.remote.unregister();
    }

    fn jobs_in_flight(&self) -> usize {
        self.remote.jobs_in_flight()
    }

    fn bump(&self, f: impl FnOnce(&mut Stats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// The task being polled right now (asyncio's `current_task()`).
    pub(crate) fn current_task(&self) -> Option<TaskKey> {
        self.current.get()
    }

    /// Returns true once the loop was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// The trace recorder, if tracing is on.
    pub(crate) fn recorder(&self) -> Option<std::cell::Ref<'_, recorder::Recorder>> {
        self.tracer.as_ref().map(RefCell::borrow)
    }

    /// The loop's anatomy and counters now (for [`EventLoop::stats`](crate::EventLoop::stats)).
    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.stats.get();
        s.iterations = self.iterations.get();
        s.tasks = self.tasks.len();
        s.ready = self.ready.borrow().len();
        let timers = self.timers.borrow();
        s.timers = timers.len();
        s.cancelled_timers = timers.cancelled();
        s
    }

    /// Cancels every unfinished task and runs the loop until they are all finished (the first
    /// half of `asyncio.run`'s shutdown). Tasks their destructors spawn are left for `close`.
    pub(crate) fn cancel_all_tasks(self: &Rc<Self>) {
        let keys: Vec<TaskKey> = {
            let slot = self.remote.slot();
            let tasks = self.tasks.entries();
            tasks.iter().filter(|(_, e)| !e.status.is_finished()).map(|(i, e)| TaskKey::new(slot, i, e.id)).collect()
        };
        for &k in &keys {
            self.cancel_task(k);
        }
        let _guard = running::enter(self);
        while keys.iter().any(|&k| self.status_of(k).is_some_and(|s| !s.is_finished())) {
            self.run_once(&mut None);
        }
        self.remote.take_stop();
    }

    /// The loop's state of type `T` (made with `T::default()` by its first use; a closed loop
    /// hands out a fresh one that nothing will close, as everything it could hold is refused).
    pub(crate) fn os_state<T: OsState + Default>(&self) -> Rc<T> {
        let found = self.os.borrow().iter().find_map(|s| s.clone().into_any().downcast::<T>().ok());
        found.unwrap_or_else(|| {
            let state = Rc::new(T::default());
            if !self.closed.get() {
                self.os.borrow_mut().push(state.clone());
            }
            state
        })
    }

    /// Sets the probe told about each task poll (once; later calls keep the first).
    pub(crate) fn set_poll_probe(&self, probe: Arc<dyn PollProbe>) {
        let _ = self.probe.set(probe);
    }

    /// Tells the probe, if any, that the task with `key` is being polled.
    #[inline(always)]
    pub(crate) fn probe_poll_started(&self, key: TaskKey) {
        if let Some(probe) = self.probe.get() {
            let id = self.tasks.entries().get(key.index()).map_or(0, |e| e.id);
            probe.poll_started(id);
        }
    }

    /// Tells the probe, if any, that the poll ended.
    #[inline(always)]
    pub(crate) fn probe_poll_ended(&self) {
        if let Some(probe) = self.probe.get() {
            probe.poll_ended();
        }
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

/// Debug mode's settings and records.
pub(crate) struct DebugMode {
    /// A step that takes at least this long is reported (asyncio's `slow_callback_duration`).
    slow_callback_duration: Duration,
    /// Where each live task was spawned.
    spawned_at: RefCell<HashMap<u64, &'static std::panic::Location<'static>>>,
}

impl DebugMode {
    /// Debug mode reporting steps that take at least `slow_callback_duration`.
    pub(crate) fn new(slow_callback_duration: Duration) -> DebugMode {
        DebugMode { slow_callback_duration, spawned_at: RefCell::default() }
    }

    /// Records where task `id` was spawned (out of line: the spawn path only tests for debug mode).
    #[inline(never)]
    fn note_spawn_location(&self, id: u64, at: &'static std::panic::Location<'static>) {
        self.spawned_at.borrow_mut().insert(id, at);
    }

    /// Forgets where task `id` was spawned.
    #[inline(never)]
    fn forget_spawn_location(&self, id: u64) {
        self.spawned_at.borrow_mut().remove(&id);
    }
}

/// The main task's table entry, removed when `run_until_complete` returns or unwinds.
pub(crate) struct MainTask<'a> {
    core: &'a Rc<Core>,
    key: TaskKey,
}

impl<'a> MainTask<'a> {
    /// Takes charge of the main task's entry `key` (made by `insert_task` with `is_main`).
    pub(crate) fn new(core: &'a Rc<Core>, key: TaskKey) -> MainTask<'a> {
        MainTask { core, key }
    }

    /// Removes the entry; returns how the main task ended, and its panic's payload.
    pub(crate) fn finish(self) -> (Status, Option<Box<dyn std::any::Any + Send>>) {
        let removed = self.core.remove_task(self.key, task::Removal::Main);
        std::mem::forget(self);
        (removed.status, removed.payload)
    }
}

impl Drop for MainTask<'_> {
    /// `run_until_complete` unwinds (a panic in a destructor it ran): the entry goes all the same.
    fn drop(&mut self) {
        if self.core.tasks.id_of(self.key).is_some() {
            drop(self.core.remove_task(self.key, task::Removal::Main));
        }
    }
}
