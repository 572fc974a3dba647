//! Model-based property tests: random programs of tasks run on aioloop (virtual time) and on a
//! small reference model of asyncio's event loop written below; every task must end the same way
//! (value, cancelled, panicked), at the same virtual time, after the same number of polls, and
//! the tasks must finish in the same order.
//!
//! A program is the main task's list of operations: spawn a task with a script, cancel a task,
//! drop a task's handle, sleep, yield, or wake itself from another thread. A script is a few
//! steps (sleep, yield, await a task, `wait` with or without a timeout and with any
//! `ReturnWhen`, `gather` or `gather_settled`, cancel a task, a wake from another thread: a
//! `Waker` woken on a std thread, or `LoopHandle::call_soon_threadsafe`) and then a return or a
//! panic. A task's value is the list of what its steps observed, so a difference in what an
//! `await`, a `wait` or a `gather` returned shows up in the comparison too.
//!
//! The model is asyncio 3.12's `_run_once` (asyncio-semantics.md 1.4) with futures and done
//! callbacks: a FIFO ready queue, timers by `(deadline, seq)`, a task woken in one iteration runs
//! in the next, `wait`'s and `gather`'s callbacks as in `tasks.py`. Where aioloop differs from
//! asyncio by design (docs/architecture.md, "Deliberate differences"), the model does what
//! aioloop does, and the comment there says so: cancellation is a drop (the scripts never catch
//! it), and wakes from other threads join the ready queue when the loop drains its inbox.
//!
//! The model itself is checked against CPython 3.11: `the_model_agrees_with_cpython` (ignored by
//! default, needs python3) runs 2,000 random programs through tests/model_cpython.py.
//!
//! `PROPTEST_CASES` sets the number of programs (default 2,000, about 2 s in a debug build; 4
//! under Miri) and `PROPTEST_RNG_SEED` which ones (fixed by default).

mod util;

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aioloop::{LoopHandle, ReturnWhen, Task, TaskError, TaskId, TaskState};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------------------------

/// Virtual seconds.
type Secs = u64;

/// The main task's last step: long enough for every other task to have finished.
const HORIZON: Secs = 10_000;

/// `wait`'s `return_when`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    First,
    FirstPanic,
    All,
}

/// How a task has itself woken from another thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wake {
    /// A std thread calls the task's `Waker` `times` times (joined before the task's step ends);
    /// with `also_local` the task also wakes itself on the loop's thread.
    Waker { times: u8, also_local: bool },
    /// A std thread sends a callback with `LoopHandle::call_soon_threadsafe`; the callback, on the
    /// loop's thread, completes what the task waits for.
    CallSoonThreadsafe,
}

/// One step of a task. Tasks are numbered in spawn order; 0 is the main task, the only one that
/// spawns or drops handles. A task's handle belongs to one owner at a time: the main task until
/// it spawns a script that uses it (or drops it). The main task cancels through handles it
/// keeps; a script's `Cancel` uses a handle it was given, and drops it afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// `sleep(d)`; `sleep(0)` yields for one iteration, like asyncio's.
    Sleep(Secs),
    Yield,
    /// `task.await`.
    Await(usize),
    /// `wait(tasks, timeout, when)`; then cancel the pending ones if `cancel_pending`.
    Wait {
        tasks: Vec<usize>,
        timeout: Option<Secs>,
        when: When,
        cancel_pending: bool,
    },
    /// `gather(tasks)`, or `gather_settled(tasks)`.
    Gather {
        tasks: Vec<usize>,
        settled: bool,
    },
    ThreadWake(Wake),
    Spawn(usize),
    Cancel(usize),
    DropHandle(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct TaskDef {
    steps: Vec<Step>,
    /// Ends with a panic instead of returning.
    panics: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Program {
    /// `tasks[0]` is the main task.
    tasks: Vec<TaskDef>,
}

/// A generated step: task references are indices into the handles the main task holds when
/// the script is spawned, taken modulo their number, so every program is valid and shrinks well.
#[derive(Clone, Debug)]
enum RawStep {
    Sleep(u8),
    Yield,
    Await(u8),
    Wait(Vec<u8>, Option<u8>, When, bool),
    Gather(Vec<u8>, bool),
    ThreadWake(Wake),
    Cancel(u8),
}

#[derive(Clone, Debug)]
enum RawOp {
    Spawn(Vec<RawStep>, bool),
    Cancel(u8),
    Drop(u8),
    Step(RawStep),
}

/// Takes the handle that `r` names out of `held` (none if the main task holds none).
fn take(r: u8, held: &mut Vec<usize>) -> Option<usize> {
    (!held.is_empty()).then(|| held.remove(r as usize % held.len()))
}

fn take_all(rs: &[u8], held: &mut Vec<usize>) -> Vec<usize> {
    rs.iter().filter_map(|&r| take(r, held)).collect()
}

fn resolve(raw: &RawStep, held: &mut Vec<usize>) -> Option<Step> {
    Some(match raw {
        RawStep::Sleep(d) => Step::Sleep(*d as Secs),
        RawStep::Yield => Step::Yield,
        RawStep::Await(r) => Step::Await(take(*r, held)?),
        RawStep::Wait(rs, timeout, when, cancel_pending) => {
            let tasks = take_all(rs, held);
            if tasks.is_empty() {
                return None; // asyncio raises ValueError on an empty wait
            }
            Step::Wait { tasks, timeout: timeout.map(Secs::from), when: *when, cancel_pending: *cancel_pending }
        }
        RawStep::Gather(rs, settled) => {
            let tasks = take_all(rs, held);
            if tasks.is_empty() {
                return None;
            }
            Step::Gather { tasks, settled: *settled }
        }
        RawStep::ThreadWake(w) => Step::ThreadWake(*w),
        RawStep::Cancel(r) => Step::Cancel(take(*r, held)?),
    })
}

/// Turns generated operations into a program whose every reference is to a handle its owner holds.
fn normalize(ops: &[RawOp]) -> Program {
    let mut tasks = vec![TaskDef { steps: vec![], panics: false }];
    let mut held: Vec<usize> = Vec::new();
    let mut main = Vec::new();
    for op in ops {
        match op {
            RawOp::Spawn(raw, panics) => {
                let steps = raw.iter().filter_map(|s| resolve(s, &mut held)).collect();
                let id = tasks.len();
                tasks.push(TaskDef { steps, panics: *panics });
                held.push(id);
                main.push(Step::Spawn(id));
            }
            RawOp::Cancel(r) if !held.is_empty() => main.push(Step::Cancel(held[*r as usize % held.len()])),
            RawOp::Drop(r) => main.extend(take(*r, &mut held).map(Step::DropHandle)),
            RawOp::Cancel(_) => {}
            RawOp::Step(s) => main.extend(resolve(s, &mut held)),
        }
    }
    main.push(Step::Sleep(HORIZON));
    tasks[0].steps = main;
    Program { tasks }
}

fn arb_when() -> impl Strategy<Value = When> {
    prop_oneof![Just(When::First), Just(When::FirstPanic), Just(When::All)]
}

fn arb_wake() -> impl Strategy<Value = Wake> {
    prop_oneof![
        3 => (1u8..=3, any::<bool>()).prop_map(|(times, also_local)| Wake::Waker { times, also_local }),
        2 => Just(Wake::CallSoonThreadsafe),
    ]
}

fn arb_refs() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0u8..8, 1..=3)
}

fn arb_script_step() -> impl Strategy<Value = RawStep> {
    prop_oneof![
        4 => (0u8..=4).prop_map(RawStep::Sleep),
        1 => Just(RawStep::Yield),
        3 => (0u8..8).prop_map(RawStep::Await),
        3 => (arb_refs(), prop::option::of(0u8..=4), arb_when(), any::<bool>())
            .prop_map(|(r, t, w, c)| RawStep::Wait(r, t, w, c)),
        3 => (arb_refs(), any::<bool>()).prop_map(|(r, s)| RawStep::Gather(r, s)),
        1 => arb_wake().prop_map(RawStep::ThreadWake),
        1 => (0u8..8).prop_map(RawStep::Cancel),
    ]
}

fn arb_op() -> impl Strategy<Value = RawOp> {
    prop_oneof![
        6 => (prop::collection::vec(arb_script_step(), 0..=4), prop::bool::weighted(0.2))
            .prop_map(|(s, p)| RawOp::Spawn(s, p)),
        3 => (0u8..8).prop_map(RawOp::Cancel),
        1 => (0u8..8).prop_map(RawOp::Drop),
        2 => (0u8..=3).prop_map(|d| RawOp::Step(RawStep::Sleep(d))),
        1 => Just(RawOp::Step(RawStep::Yield)),
        1 => arb_wake().prop_map(|w| RawOp::Step(RawStep::ThreadWake(w))),
    ]
}

fn arb_program() -> impl Strategy<Value = Vec<RawOp>> {
    prop::collection::vec(arb_op(), 1..=12)
}

// ---------------------------------------------------------------------------------------------
// What a run produces
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Cancelled,
    Panicked,
}

/// What one step of a script saw. Every task's value is its own number.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Obs {
    Awaited(Result<usize, Failure>),
    /// The tasks in `done`, in argument order.
    Waited(Vec<usize>),
    Gathered(Result<Vec<usize>, Failure>),
    Settled(Vec<Result<usize, Failure>>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Completed(Vec<Obs>),
    Cancelled,
    Panicked,
}

/// How a task ended: recorded in the step in which it ended, so the list is in completion order.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    task: usize,
    outcome: Outcome,
    /// Virtual time since the start, in seconds.
    at: Secs,
    /// Times the task's future was polled (a cancelled task's last step drops it unpolled).
    polls: u32,
}

// ---------------------------------------------------------------------------------------------
// The reference model: asyncio's loop, futures and callbacks, on virtual time
// ---------------------------------------------------------------------------------------------

/// A callback in the ready queue (asyncio's `Handle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cb {
    /// A task's `__step` (also its `__wakeup`, which steps at once).
    Step(usize),
    /// Sets a plain future's result unless it is done (sleep timers, `_release_waiter`, a
    /// `call_soon_threadsafe` callback).
    SetResult(usize),
    /// `wait`'s `_on_completion(child)`.
    WaitDone(usize, usize),
    /// `gather`'s `_done_callback(child)`.
    GatherDone(usize, usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FutState {
    Pending,
    Done,
    Cancelled,
}

struct MFut {
    state: FutState,
    callbacks: Vec<Cb>,
}

/// What a suspended task waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    /// Created, first step queued.
    Start,
    /// `sleep(0)`: its next step is queued.
    Yield,
    /// `sleep(d)`: the future its timer completes.
    Sleep {
        fut: usize,
        timer: u64,
    },
    Task(usize),
    Wait(usize),
    Gather(usize),
    /// A key in the inbox (a `Waker` woken from another thread).
    Remote,
    /// A future a `call_soon_threadsafe` callback completes.
    Threadsafe(usize),
}

struct MTask {
    def: TaskDef,
    pc: usize,
    obs: Vec<Obs>,
    outcome: Option<Outcome>,
    /// The step is in the ready queue (a `Waker` wake of a queued task does nothing).
    scheduled: bool,
    /// `cancel()` was called: the next step ends the task `Cancelled`.
    cancel_requested: bool,
    waiting: Waiting,
    /// Done callbacks: run (`call_soon`) when the task finishes, in registration order.
    callbacks: Vec<Cb>,
    polls: u32,
}

struct MWait {
    children: Vec<usize>,
    when: When,
    left: usize,
    timer: Option<u64>,
    waiter: usize,
    cancel_pending: bool,
}

struct MGather {
    children: Vec<usize>,
    settled: bool,
    finished: usize,
    cancel_requested: bool,
    result: Option<Obs>,
    callbacks: Vec<Cb>,
}

enum InboxEntry {
    Key(usize),
    Job(Cb),
}

struct Model {
    now: Secs,
    ready: VecDeque<Cb>,
    /// `(deadline, seq)`; a timer whose seq is not in `timer_cbs` was cancelled.
    timers: BinaryHeap<Reverse<(Secs, u64)>>,
    timer_cbs: HashMap<u64, Cb>,
    seq: u64,
    inbox: Vec<InboxEntry>,
    tasks: Vec<MTask>,
    futs: Vec<MFut>,
    waits: Vec<MWait>,
    gathers: Vec<MGather>,
    log: Vec<Record>,
}

impl Model {
    fn run(program: &Program) -> Vec<Record> {
        let mut m = Model {
            now: 0,
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            timer_cbs: HashMap::new(),
            seq: 0,
            inbox: Vec::new(),
            tasks: program
                .tasks
                .iter()
                .map(|def| MTask {
                    def: def.clone(),
                    pc: 0,
                    obs: vec![],
                    outcome: None,
                    scheduled: false,
                    cancel_requested: false,
                    waiting: Waiting::Start,
                    callbacks: vec![],
                    polls: 0,
                })
                .collect(),
            futs: Vec::new(),
            waits: Vec::new(),
            gathers: Vec::new(),
            log: Vec::new(),
        };
        m.schedule(0); // run_until_complete(main)
        while m.tasks[0].outcome.is_none() {
            m.run_once();
        }
        m.log
    }

    /// `_run_once`, with aioloop's phase 4 (the inbox) between the poll and the timers.
    fn run_once(&mut self) {
        while let Some(&Reverse((_, seq))) = self.timers.peek() {
            if self.timer_cbs.contains_key(&seq) {
                break;
            }
            self.timers.pop();
        }
        if self.ready.is_empty() && self.inbox.is_empty() {
            // Virtual time: nothing can run before the next deadline, so go there.
            let Some(&Reverse((deadline, _))) = self.timers.peek() else { panic!("the model deadlocked") };
            self.now = self.now.max(deadline);
        }
        // Wakes from other threads join the ready queue in phase 4, after what is already there:
        // keys first, then callbacks (`drain_inbox`). asyncio's `call_soon_threadsafe` appends at
        // the moment of the call instead; aioloop's order is the one asyncio gives when the other
        // thread's call lands just before the loop polls, which a real thread may always do.
        let (keys, jobs): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.inbox).into_iter().partition(|e| matches!(e, InboxEntry::Key(_)));
        for entry in keys.into_iter().chain(jobs) {
            match entry {
                InboxEntry::Key(t) => self.schedule(t),
                InboxEntry::Job(cb) => self.ready.push_back(cb),
            }
        }
        while let Some(&Reverse((deadline, seq))) = self.timers.peek() {
            if deadline > self.now {
                break;
            }
            self.timers.pop();
            if let Some(cb) = self.timer_cbs.remove(&seq) {
                self.ready.push_back(cb);
            }
        }
        for _ in 0..self.ready.len() {
            let cb = self.ready.pop_front().expect("counted");
            self.run_cb(cb);
        }
    }

    fn call_later(&mut self, delay: Secs, cb: Cb) -> u64 {
        self.seq += 1;
        self.timers.push(Reverse((self.now + delay, self.seq)));
        self.timer_cbs.insert(self.seq, cb);
        self.seq
    }

    /// Queues a task's step unless it is queued already (or finished).
    fn schedule(&mut self, t: usize) {
        let task = &mut self.tasks[t];
        if !task.scheduled && task.outcome.is_none() {
            task.scheduled = true;
            self.ready.push_back(Cb::Step(t));
        }
    }

    /// A done callback fires: `call_soon(cb)` (a task's wakeup goes through `schedule`).
    fn fire(&mut self, cb: Cb) {
        match cb {
            Cb::Step(t) => self.schedule(t),
            other => self.ready.push_back(other),
        }
    }

    fn new_fut(&mut self) -> usize {
        self.futs.push(MFut { state: FutState::Pending, callbacks: vec![] });
        self.futs.len() - 1
    }

    fn complete_fut(&mut self, f: usize, state: FutState) -> bool {
        if self.futs[f].state != FutState::Pending {
            return false;
        }
        self.futs[f].state = state;
        for cb in std::mem::take(&mut self.futs[f].callbacks) {
            self.fire(cb);
        }
        true
    }

    fn run_cb(&mut self, cb: Cb) {
        match cb {
            Cb::Step(t) => self.step(t),
            Cb::SetResult(f) => {
                self.complete_fut(f, FutState::Done);
            }
            Cb::WaitDone(w, child) => {
                let wait = &mut self.waits[w];
                wait.left -= 1;
                let panicked = self.tasks[child].outcome == Some(Outcome::Panicked);
                if wait.left == 0 || wait.when == When::First || (wait.when == When::FirstPanic && panicked) {
                    if let Some(timer) = wait.timer {
                        self.timer_cbs.remove(&timer);
                    }
                    let waiter = wait.waiter;
                    self.complete_fut(waiter, FutState::Done);
                }
            }
            Cb::GatherDone(g, child) => self.gather_done(g, child),
        }
    }

    fn failure(&self, t: usize) -> Option<Failure> {
        match self.tasks[t].outcome {
            Some(Outcome::Cancelled) => Some(Failure::Cancelled),
            Some(Outcome::Panicked) => Some(Failure::Panicked),
            _ => None,
        }
    }

    fn result_of(&self, t: usize) -> Result<usize, Failure> {
        self.failure(t).map_or(Ok(t), Err)
    }

    /// `gather`'s `_done_callback` (3.12).
    fn gather_done(&mut self, g: usize, child: usize) {
        self.gathers[g].finished += 1;
        if self.gathers[g].result.is_some() {
            return;
        }
        let gather = &self.gathers[g];
        let result = if let (false, Some(f)) = (gather.settled, self.failure(child)) {
            Obs::Gathered(Err(f))
        } else if gather.finished < gather.children.len() {
            return;
        } else if gather.cancel_requested {
            Obs::Gathered(Err(Failure::Cancelled)) // raised even with return_exceptions=True
        } else if gather.settled {
            Obs::Settled(gather.children.iter().map(|&c| self.result_of(c)).collect())
        } else {
            Obs::Gathered(Ok(gather.children.clone()))
        };
        self.gathers[g].result = Some(result);
        for cb in std::mem::take(&mut self.gathers[g].callbacks) {
            self.fire(cb);
        }
    }

    /// `Task.cancel()`: a request, delivered at the task's next step.
    ///
    /// As in asyncio, it is passed down to what the task waits for: a task it awaits (and so on
    /// down the chain), every child of a gather, or the future of a sleep or a `wait`, which is
    /// cancelled and so wakes the task at once. The task's next step then ends it `Cancelled`:
    /// in asyncio because the scripts re-raise `CancelledError` whenever their own task is being
    /// cancelled, in aioloop because cancelling is dropping the future (section 7: it cannot be
    /// caught or refused).
    fn cancel(&mut self, t: usize) -> bool {
        if self.tasks[t].outcome.is_some() {
            return false;
        }
        self.tasks[t].cancel_requested = true;
        match self.tasks[t].waiting {
            Waiting::Task(u) => {
                self.cancel(u);
            }
            Waiting::Gather(g) if self.gathers[g].result.is_none() => {
                let mut any = false;
                for c in self.gathers[g].children.clone() {
                    any |= self.cancel(c);
                }
                self.gathers[g].cancel_requested |= any;
            }
            Waiting::Sleep { fut, .. } | Waiting::Threadsafe(fut) => {
                self.complete_fut(fut, FutState::Cancelled);
            }
            Waiting::Wait(w) => {
                let waiter = self.waits[w].waiter;
                self.complete_fut(waiter, FutState::Cancelled);
            }
            // A `Waker` wake is in the inbox: aioloop queues the task now (its future is to be
            // dropped), and the inbox's wake finds it queued.
            Waiting::Remote => self.schedule(t),
            Waiting::Start | Waiting::Yield | Waiting::Gather(_) => {}
        }
        true
    }

    fn finish(&mut self, t: usize, outcome: Outcome) {
        let task = &mut self.tasks[t];
        task.outcome = Some(outcome.clone());
        self.log.push(Record { task: t, outcome, at: self.now, polls: task.polls });
        for cb in std::mem::take(&mut task.callbacks) {
            self.fire(cb);
        }
    }

    /// What a task does when its step ends the way it waited: cancel its timers, unregister
    /// `wait`'s callbacks (both `finally` blocks in asyncio, destructors in aioloop).
    fn leave(&mut self, t: usize) {
        match self.tasks[t].waiting {
            Waiting::Sleep { timer, .. } => {
                self.timer_cbs.remove(&timer);
            }
            Waiting::Wait(w) => {
                if let Some(timer) = self.waits[w].timer {
                    self.timer_cbs.remove(&timer);
                }
                for c in self.waits[w].children.clone() {
                    self.tasks[c].callbacks.retain(|cb| !matches!(cb, Cb::WaitDone(w2, _) if *w2 == w));
                }
            }
            _ => {}
        }
    }

    fn step(&mut self, t: usize) {
        self.tasks[t].scheduled = false;
        if self.tasks[t].outcome.is_some() {
            return;
        }
        self.leave(t);
        if self.tasks[t].cancel_requested {
            return self.finish(t, Outcome::Cancelled);
        }
        self.tasks[t].polls += 1;
        // Resume: the step that suspended sees its result.
        let waiting = std::mem::replace(&mut self.tasks[t].waiting, Waiting::Start);
        let seen = match waiting {
            Waiting::Start => None,
            Waiting::Yield | Waiting::Sleep { .. } | Waiting::Remote | Waiting::Threadsafe(_) => Some(None),
            Waiting::Task(u) => Some(Some(Obs::Awaited(self.result_of(u)))),
            Waiting::Gather(g) => Some(self.gathers[g].result.clone()),
            Waiting::Wait(w) => {
                let children = self.waits[w].children.clone();
                let (done, pending): (Vec<usize>, Vec<usize>) =
                    children.into_iter().partition(|&c| self.tasks[c].outcome.is_some());
                if self.waits[w].cancel_pending {
                    for &c in &pending {
                        self.cancel(c);
                    }
                }
                Some(Some(Obs::Waited(done)))
            }
        };
        if let Some(obs) = seen {
            self.tasks[t].obs.extend(obs);
            self.tasks[t].pc += 1;
        }
        self.advance(t);
    }

    /// Runs the task's steps until one suspends or the script ends.
    fn advance(&mut self, t: usize) {
        loop {
            let task = &self.tasks[t];
            let Some(step) = task.def.steps.get(task.pc).cloned() else {
                let outcome = if task.def.panics { Outcome::Panicked } else { Outcome::Completed(task.obs.clone()) };
                return self.finish(t, outcome);
            };
            let waiting = match step {
                Step::Sleep(0) | Step::Yield => {
                    self.schedule(t);
                    Waiting::Yield
                }
                Step::Sleep(d) => {
                    let fut = self.new_fut();
                    let timer = self.call_later(d, Cb::SetResult(fut));
                    self.futs[fut].callbacks.push(Cb::Step(t));
                    Waiting::Sleep { fut, timer }
                }
                Step::Await(u) if self.tasks[u].outcome.is_some() => {
                    // Awaiting a finished task does not suspend.
                    let obs = Obs::Awaited(self.result_of(u));
                    self.tasks[t].obs.push(obs);
                    self.tasks[t].pc += 1;
                    continue;
                }
                Step::Await(u) => {
                    self.tasks[u].callbacks.push(Cb::Step(t));
                    Waiting::Task(u)
                }
                Step::Wait { tasks, timeout, when, cancel_pending } => {
                    // `_wait`: the timeout's timer, then a done callback on every child (one that
                    // is done already is called soon), then `await waiter`: two iterations at least.
                    let waiter = self.new_fut();
                    let w = self.waits.len();
                    let timer = timeout.map(|d| self.call_later(d, Cb::SetResult(waiter)));
                    for &c in &tasks {
                        if self.tasks[c].outcome.is_some() {
                            self.ready.push_back(Cb::WaitDone(w, c));
                        } else {
                            self.tasks[c].callbacks.push(Cb::WaitDone(w, c));
                        }
                    }
                    self.waits.push(MWait { left: tasks.len(), children: tasks, when, timer, waiter, cancel_pending });
                    self.futs[waiter].callbacks.push(Cb::Step(t));
                    Waiting::Wait(w)
                }
                Step::Gather { tasks, settled } => {
                    // 3.12's `gather`: children done already are processed at once, so a gather
                    // of finished tasks (or with a finished failure) does not suspend.
                    let g = self.gathers.len();
                    self.gathers.push(MGather {
                        children: tasks.clone(),
                        settled,
                        finished: 0,
                        cancel_requested: false,
                        result: None,
                        callbacks: vec![],
                    });
                    let (done, pending): (Vec<usize>, Vec<usize>) =
                        tasks.into_iter().partition(|&c| self.tasks[c].outcome.is_some());
                    for c in pending {
                        self.tasks[c].callbacks.push(Cb::GatherDone(g, c));
                    }
                    for c in done {
                        self.gather_done(g, c);
                    }
                    if let Some(obs) = self.gathers[g].result.clone() {
                        self.tasks[t].obs.push(obs);
                        self.tasks[t].pc += 1;
                        continue;
                    }
                    self.gathers[g].callbacks.push(Cb::Step(t));
                    Waiting::Gather(g)
                }
                Step::ThreadWake(Wake::Waker { times, also_local }) => {
                    for _ in 0..times {
                        self.inbox.push(InboxEntry::Key(t));
                    }
                    if also_local {
                        self.schedule(t);
                    }
                    Waiting::Remote
                }
                Step::ThreadWake(Wake::CallSoonThreadsafe) => {
                    let fut = self.new_fut();
                    self.inbox.push(InboxEntry::Job(Cb::SetResult(fut)));
                    self.futs[fut].callbacks.push(Cb::Step(t));
                    Waiting::Threadsafe(fut)
                }
                Step::Spawn(u) => {
                    self.schedule(u);
                    self.tasks[t].pc += 1;
                    continue;
                }
                Step::Cancel(u) => {
                    self.cancel(u);
                    self.tasks[t].pc += 1;
                    continue;
                }
                Step::DropHandle(_) => {
                    // Detaches the task: it runs on (asyncio keeps tasks alive the same way).
                    self.tasks[t].pc += 1;
                    continue;
                }
            };
            self.tasks[t].waiting = waiting;
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The same program on aioloop
// ---------------------------------------------------------------------------------------------

struct Shared {
    start: Instant,
    log: RefCell<Vec<Record>>,
    ids: RefCell<HashMap<TaskId, usize>>,
    handle: LoopHandle,
}

/// Records how its task ended: dropped unfinished means cancelled.
struct Recorder {
    shared: Rc<Shared>,
    task: usize,
    polls: Rc<Cell<u32>>,
    done: bool,
}

impl Recorder {
    fn record(&mut self, outcome: Outcome) {
        self.done = true;
        let at = aioloop::now() - self.shared.start;
        assert_eq!(at.subsec_nanos(), 0, "virtual time moves in whole seconds here");
        let record = Record { task: self.task, outcome, at: at.as_secs(), polls: self.polls.get() };
        self.shared.log.borrow_mut().push(record);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.done {
            self.record(Outcome::Cancelled);
        }
    }
}

/// Counts the polls of the future it wraps.
struct Counted<F> {
    polls: Rc<Cell<u32>>,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.set(self.polls.get() + 1);
        self.fut.as_mut().poll(cx)
    }
}

/// Suspends once; another thread (joined before the poll returns) arranges the wake-up.
struct ThreadWake {
    wake: Wake,
    handle: LoopHandle,
    started: bool,
    fired: Arc<AtomicBool>,
}

impl Future for ThreadWake {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.started {
            self.started = true;
            let waker = cx.waker().clone();
            match self.wake {
                Wake::Waker { times, also_local } => {
                    std::thread::spawn(move || (0..times).for_each(|_| waker.wake_by_ref()))
                        .join()
                        .expect("the waking thread");
                    if also_local {
                        cx.waker().wake_by_ref();
                    }
                }
                Wake::CallSoonThreadsafe => {
                    let (handle, fired) = (self.handle.clone(), self.fired.clone());
                    std::thread::spawn(move || {
                        handle
                            .call_soon_threadsafe(move || {
                                fired.store(true, SeqCst);
                                waker.wake();
                            })
                            .expect("the loop is open")
                    })
                    .join()
                    .expect("the sending thread");
                }
            }
            return Poll::Pending;
        }
        match self.wake {
            Wake::Waker { .. } => Poll::Ready(()),
            Wake::CallSoonThreadsafe if self.fired.load(SeqCst) => Poll::Ready(()),
            Wake::CallSoonThreadsafe => Poll::Pending,
        }
    }
}

fn failure_of(e: &TaskError) -> Failure {
    if e.is_cancelled() {
        Failure::Cancelled
    } else {
        Failure::Panicked
    }
}

fn secs(d: Secs) -> Duration {
    Duration::from_secs(d)
}

/// Runs one script step that suspends or observes (not the main task's own operations).
async fn run_step(shared: &Shared, step: Step, handles: &mut HashMap<usize, Task<usize>>) -> Option<Obs> {
    let mut take = |i: &usize| handles.remove(i).expect("the script owns the handle");
    match step {
        Step::Sleep(d) => aioloop::sleep(secs(d)).await,
        Step::Yield => aioloop::yield_now().await,
        Step::Await(u) => return Some(Obs::Awaited(take(&u).await.map_err(|e| failure_of(&e)))),
        Step::Wait { tasks, timeout, when, cancel_pending } => {
            let tasks: Vec<_> = tasks.iter().map(take).collect();
            let when = match when {
                When::First => ReturnWhen::FirstCompleted,
                When::FirstPanic => ReturnWhen::FirstException,
                When::All => ReturnWhen::AllCompleted,
            };
            let (done, pending) = aioloop::wait(tasks, timeout.map(secs), when).await;
            if cancel_pending {
                pending.iter().for_each(|t| {
                    t.cancel();
                });
            }
            let ids = shared.ids.borrow();
            // `done` is in argument order, as the model lists it.
            return Some(Obs::Waited(done.iter().map(|t| ids[&t.id()]).collect()));
        }
        Step::Gather { tasks, settled: false } => {
            let tasks: Vec<_> = tasks.iter().map(take).collect();
            return Some(Obs::Gathered(aioloop::gather(tasks).await.map_err(|e| failure_of(&e))));
        }
        Step::Gather { tasks, settled: true } => {
            let tasks: Vec<_> = tasks.iter().map(take).collect();
            let out = aioloop::gather_settled(tasks).await;
            return Some(Obs::Settled(out.into_iter().map(|r| r.map_err(|e| failure_of(&e))).collect()));
        }
        Step::ThreadWake(wake) => {
            ThreadWake { wake, handle: shared.handle.clone(), started: false, fired: Arc::new(AtomicBool::new(false)) }
                .await
        }
        Step::Cancel(u) => {
            take(&u).cancel();
        }
        Step::Spawn(_) | Step::DropHandle(_) => unreachable!("main-task operations"),
    }
    None
}

/// The body of task `index`: its steps, then a return or a panic.
///
/// The recorder is an argument, so that it lives in the future from the start: a task cancelled
/// before its first step is dropped unpolled, and the recorder records that.
async fn script(
    mut rec: Recorder,
    shared: Rc<Shared>,
    program: Rc<Program>,
    index: usize,
    mut handles: HashMap<usize, Task<usize>>,
) -> usize {
    let def = &program.tasks[index];
    let mut obs = Vec::new();
    for step in def.steps.clone() {
        obs.extend(run_step(&shared, step, &mut handles).await);
    }
    if def.panics {
        rec.record(Outcome::Panicked);
        util::fail("planned panic");
    }
    rec.record(Outcome::Completed(obs));
    index
}

/// Spawns task `index` with its script, handing it the handles its steps use.
fn spawn_task(
    shared: &Rc<Shared>,
    program: &Rc<Program>,
    index: usize,
    held: &mut BTreeMap<usize, Task<usize>>,
) -> Task<usize> {
    let mut handles = HashMap::new();
    for step in &program.tasks[index].steps {
        let used: &[usize] = match step {
            Step::Await(u) | Step::Cancel(u) => std::slice::from_ref(u),
            Step::Wait { tasks, .. } | Step::Gather { tasks, .. } => tasks,
            _ => &[],
        };
        for u in used {
            handles.insert(*u, held.remove(u).expect("the main task holds the handle"));
        }
    }
    let polls = Rc::new(Cell::new(0));
    let rec = Recorder { shared: shared.clone(), task: index, polls: polls.clone(), done: false };
    let body = script(rec, shared.clone(), program.clone(), index, handles);
    let task = aioloop::spawn(Counted { polls, fut: Box::pin(body) });
    shared.ids.borrow_mut().insert(task.id(), index);
    task
}

/// The main task: its operations, then the final long sleep; returns the handles it still holds.
async fn main_task(shared: Rc<Shared>, program: Rc<Program>, polls: Rc<Cell<u32>>) -> BTreeMap<usize, Task<usize>> {
    let mut rec = Recorder { shared: shared.clone(), task: 0, polls, done: false };
    let mut held = BTreeMap::new();
    for step in program.tasks[0].steps.clone() {
        match step {
            Step::Spawn(u) => {
                let task = spawn_task(&shared, &program, u, &mut held);
                held.insert(u, task);
            }
            Step::Cancel(u) => {
                held[&u].cancel();
            }
            Step::DropHandle(u) => drop(held.remove(&u)),
            other => {
                run_step(&shared, other, &mut HashMap::new()).await;
            }
        }
    }
    rec.record(Outcome::Completed(vec![]));
    held
}

fn run_aioloop(program: &Program) -> Vec<Record> {
    let mut lp = util::vloop();
    lp.set_exception_handler(|_| {}); // the planned panics are not news
    let shared = Rc::new(Shared {
        start: lp.time(),
        log: RefCell::new(Vec::new()),
        ids: RefCell::new(HashMap::new()),
        handle: lp.handle(),
    });
    let program = Rc::new(program.clone());
    let polls = Rc::new(Cell::new(0));
    let main = Counted { polls: polls.clone(), fut: Box::pin(main_task(shared.clone(), program.clone(), polls)) };
    let held = lp.run_until_complete(main);
    // The handles the main task kept agree with the records.
    let log = shared.log.borrow().clone();
    for (u, task) in &held {
        let record = log.iter().find(|r| r.task == *u).expect("every task finished before the main task");
        let expected = match record.outcome {
            Outcome::Cancelled => TaskState::Cancelled,
            _ => TaskState::Done,
        };
        assert_eq!(task.state(), expected, "task {u}'s handle disagrees with its record {record:?}");
    }
    log
}

// ---------------------------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------------------------

/// Runs `program` on both and compares every record, poll counts included: a task polled once
/// more than asyncio steps it (scheduled twice, or woken spuriously) shows up.
fn check(program: &Program) -> Result<(), TestCaseError> {
    let expected = Model::run(program);
    let got = run_aioloop(program);
    prop_assert_eq!(expected.len(), program.tasks.len(), "the model left tasks unfinished: {:?}", expected);
    prop_assert_eq!(&got, &expected, "aioloop (left) and the model (right) differ on\n{:?}", program);
    Ok(())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// 2,000 programs (about 2 s in a debug build), 4 under Miri; `PROPTEST_CASES` sets it.
fn cases() -> u32 {
    if cfg!(miri) {
        return 4;
    }
    env_or("PROPTEST_CASES", 2000)
}

/// The same programs on every run, so that a failure is reproducible (a difference can be rare:
/// `a_stale_wait_callback_does_not_reorder_tasks` showed in about one program in 20,000);
/// `PROPTEST_RNG_SEED=<n>` explores others.
fn seed() -> proptest::test_runner::RngSeed {
    proptest::test_runner::RngSeed::Fixed(env_or("PROPTEST_RNG_SEED", 20_26))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        rng_seed: seed(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn aioloop_runs_random_programs_as_the_asyncio_model_does(ops in arb_program()) {
        check(&normalize(&ops))?;
    }
}

// ---------------------------------------------------------------------------------------------
// The model against CPython (tests/model_cpython.py)
// ---------------------------------------------------------------------------------------------

fn json_list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    format!("[{}]", items.iter().map(f).collect::<Vec<_>>().join(","))
}

fn json_step(step: &Step) -> String {
    let ids = |v: &[usize]| json_list(v, usize::to_string);
    match step {
        Step::Sleep(d) => format!(r#"["sleep",{d}]"#),
        Step::Yield => r#"["yield"]"#.to_string(),
        Step::Await(u) => format!(r#"["await",{u}]"#),
        Step::Wait { tasks, timeout, when, cancel_pending } => {
            let timeout = timeout.map_or("null".to_string(), |t| t.to_string());
            let when = match when {
                When::First => "first",
                When::FirstPanic => "first_panic",
                When::All => "all",
            };
            format!(r#"["wait",{},{timeout},"{when}",{cancel_pending}]"#, ids(tasks))
        }
        Step::Gather { tasks, settled } => format!(r#"["gather",{},{settled}]"#, ids(tasks)),
        Step::ThreadWake(Wake::Waker { times, also_local }) => {
            format!(r#"["thread_wake","waker",{times},{also_local}]"#)
        }
        Step::ThreadWake(Wake::CallSoonThreadsafe) => r#"["thread_wake","threadsafe"]"#.to_string(),
        Step::Spawn(u) => format!(r#"["spawn",{u}]"#),
        Step::Cancel(u) => format!(r#"["cancel",{u}]"#),
        Step::DropHandle(u) => format!(r#"["drop",{u}]"#),
    }
}

fn json_program(program: &Program) -> String {
    json_list(&program.tasks, |t| format!(r#"{{"steps":{},"panics":{}}}"#, json_list(&t.steps, json_step), t.panics))
}

fn json_result(r: &Result<usize, Failure>) -> String {
    match r {
        Ok(u) => u.to_string(),
        Err(Failure::Cancelled) => r#""cancelled""#.to_string(),
        Err(Failure::Panicked) => r#""panicked""#.to_string(),
    }
}

fn json_obs(obs: &Obs) -> String {
    match obs {
        Obs::Awaited(r) => format!(r#"["awaited",{}]"#, json_result(r)),
        Obs::Waited(done) => format!(r#"["waited",{}]"#, json_list(done, usize::to_string)),
        Obs::Gathered(Ok(v)) => format!(r#"["gathered",{}]"#, json_list(v, usize::to_string)),
        Obs::Gathered(Err(e)) => format!(r#"["gathered",{}]"#, json_result(&Err(*e))),
        Obs::Settled(v) => format!(r#"["settled",{}]"#, json_list(v, json_result)),
    }
}

fn json_records(log: &[Record]) -> String {
    json_list(log, |r| {
        let outcome = match &r.outcome {
            Outcome::Completed(obs) => format!(r#"["completed",{}]"#, json_list(obs, json_obs)),
            Outcome::Cancelled => r#"["cancelled"]"#.to_string(),
            Outcome::Panicked => r#"["panicked"]"#.to_string(),
        };
        format!("[{},{outcome},{},{}]", r.task, r.at, r.polls)
    })
}

/// Runs `MODEL_CPYTHON_PROGRAMS` (default 2,000) random programs through the model and through
/// CPython's asyncio (tests/model_cpython.py, with python3 3.11) and compares them: the check
/// that the model is asyncio's semantics, which the property above then holds aioloop to.
#[test]
#[ignore = "needs python3 (3.11); a few seconds: cargo test --test model -- --ignored the_model_agrees_with_cpython"]
fn the_model_agrees_with_cpython() {
    use proptest::strategy::ValueTree;
    let n: usize = std::env::var("MODEL_CPYTHON_PROGRAMS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut lines = String::new();
    for _ in 0..n {
        let ops = arb_program().new_tree(&mut runner).expect("a program").current();
        let program = normalize(&ops);
        let expected = Model::run(&program);
        lines.push_str(&format!(
            "{{\"program\":{},\"expected\":{}}}\n",
            json_program(&program),
            json_records(&expected)
        ));
    }
    let dir = std::env::temp_dir().join(format!("aioloop-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let (script, cases) = (dir.join("model_cpython.py"), dir.join("programs.jsonl"));
    std::fs::write(&script, include_str!("model_cpython.py")).expect("write the harness");
    std::fs::write(&cases, lines).expect("write the programs");
    let out = std::process::Command::new("python3").arg(&script).arg(&cases).output().expect("run python3");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "CPython disagrees with the model:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("{n} passed, 0 failed")), "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// Fixed programs: the model's own sanity, and cases the property found
// ---------------------------------------------------------------------------------------------

fn task(steps: Vec<Step>) -> TaskDef {
    TaskDef { steps, panics: false }
}

fn main_then_horizon(mut steps: Vec<Step>) -> TaskDef {
    steps.push(Step::Sleep(HORIZON));
    task(steps)
}

/// The seeds' `phase` program (asyncio-semantics.md 4.1): three tasks sleep 0, 5 and 10 s; a
/// `wait` with a 6 s timeout returns two done and cancels the third.
#[test]
fn the_model_runs_the_phase_program_as_asyncio_does() {
    let program = Program {
        tasks: vec![
            main_then_horizon(vec![Step::Spawn(1), Step::Spawn(2), Step::Spawn(3), Step::Spawn(4)]),
            task(vec![Step::Sleep(0)]),
            task(vec![Step::Sleep(5)]),
            task(vec![Step::Sleep(10)]),
            task(vec![Step::Wait { tasks: vec![1, 2, 3], timeout: Some(6), when: When::All, cancel_pending: true }]),
        ],
    };
    let log = Model::run(&program);
    let order: Vec<(usize, Secs)> = log.iter().map(|r| (r.task, r.at)).collect();
    // Task 4 (the `wait`) resumes at 6 s and cancels task 3, which is dropped in the next step.
    assert_eq!(order, [(1, 0), (2, 5), (4, 6), (3, 6), (0, HORIZON)]);
    assert_eq!(log[2].outcome, Outcome::Completed(vec![Obs::Waited(vec![1, 2])]));
    assert_eq!(log[3].outcome, Outcome::Cancelled);
    check(&program).unwrap();
}

fn order(log: &[Record]) -> Vec<usize> {
    log.iter().map(|r| r.task).collect()
}

/// Task 6 gathers task 1 (sleeping) and task 5, which awaits 4, which awaits 3, which awaits 2
/// (sleeping); the main task cancels task 6.
fn gather_over_a_chain() -> Program {
    Program {
        tasks: vec![
            main_then_horizon(vec![
                Step::Spawn(1),
                Step::Spawn(2),
                Step::Spawn(3),
                Step::Spawn(4),
                Step::Spawn(5),
                Step::Spawn(6),
                Step::Yield,
                Step::Yield,
                Step::Cancel(6),
            ]),
            task(vec![Step::Sleep(10)]),
            task(vec![Step::Sleep(10)]),
            task(vec![Step::Await(2)]),
            task(vec![Step::Await(3)]),
            task(vec![Step::Await(4)]),
            task(vec![Step::Gather { tasks: vec![1, 5], settled: false }]),
        ],
    }
}

/// CPython 3.11 (the same program with `asyncio.gather`, each task logging its `CancelledError`)
/// prints `[1, 2, 3, 6, 4, 5]`: `_GatheringFuture.cancel()` cancels every child, and the first
/// child that ends cancelled completes the gather (`return_exceptions=False`), so the waiting
/// task ends while the chain under task 5 is still unwinding.
#[test]
fn the_model_ends_a_gather_waiter_at_its_first_cancelled_child() {
    assert_eq!(order(&Model::run(&gather_over_a_chain())), [1, 2, 3, 6, 4, 5, 0]);
}

#[test]
fn aioloop_ends_a_gather_waiter_at_its_first_cancelled_child() {
    // Before ef7707c aioloop gave [1, 2, 3, 4, 5, 6, 0]: it waited for every member.
    check(&gather_over_a_chain()).unwrap();
}

/// Task 3 gathers task 1 (panics at 1 s) and task 2 (sleeps 10 s); the panic completes the
/// gather, and the main task cancels task 3 after that but before task 3 resumed.
fn gather_failed_then_cancelled() -> Program {
    Program {
        tasks: vec![
            main_then_horizon(vec![
                Step::Spawn(1),
                Step::Spawn(2),
                Step::Spawn(3),
                Step::Sleep(1),
                Step::Yield,
                Step::Yield,
                Step::Cancel(3),
            ]),
            TaskDef { steps: vec![Step::Sleep(1)], panics: true },
            task(vec![Step::Sleep(10)]),
            task(vec![Step::Gather { tasks: vec![1, 2], settled: false }]),
        ],
    }
}

/// CPython 3.11 (same program): task 3 ends cancelled at 1 s and task 2 *completes* at 10 s:
/// the gather was done, so cancelling its waiter cancels no child.
#[test]
fn the_model_leaves_the_members_of_a_failed_gather_running() {
    let log = Model::run(&gather_failed_then_cancelled());
    let ends: Vec<(usize, Outcome, Secs)> = log.into_iter().map(|r| (r.task, r.outcome, r.at)).collect();
    assert_eq!(
        ends,
        [
            (1, Outcome::Panicked, 1),
            (3, Outcome::Cancelled, 1),
            (2, Outcome::Completed(vec![]), 10),
            (0, Outcome::Completed(vec![]), HORIZON + 1)
        ]
    );
}

#[test]
fn aioloop_leaves_the_members_of_a_failed_gather_running() {
    // Before ef7707c aioloop cancelled task 2 at 1 s (the gather's drop cancelled its members).
    check(&gather_failed_then_cancelled()).unwrap();
}

/// A case the property found (fixed in d0ea29e): task 4's `wait([2], timeout 0,
/// FIRST_COMPLETED)` returns on its timer while task 2's member callback is queued; that
/// callback used to wake task 4 again during its `sleep(1)`: one poll more than asyncio's steps.
#[test]
fn a_wait_does_not_wake_its_task_after_it_returned() {
    let program = Program {
        tasks: vec![
            main_then_horizon(vec![Step::Spawn(1), Step::Spawn(2), Step::Yield, Step::Spawn(3), Step::Spawn(4)]),
            task(vec![Step::Sleep(0)]),
            task(vec![Step::Gather { tasks: vec![1], settled: false }]),
            task(vec![]),
            task(vec![
                Step::Wait { tasks: vec![2], timeout: Some(0), when: When::First, cancel_pending: false },
                Step::Sleep(1),
            ]),
        ],
    };
    check(&program).unwrap();
}

/// Found by the property (with another seed), the same stale callback (fixed in d0ea29e)
/// changing the order: at 3 s task 2's `wait` returns on its timer while task 1's member callback
/// is queued; task 2 then waits for a `call_soon_threadsafe` callback. In the next iteration the
/// stale callback woke task 2 before task 4's `wait` callback woke task 4, so task 2 (whose
/// callback ran too) ran first; in asyncio (and the model, checked against CPython) task 4
/// finishes before task 2.
#[test]
fn a_stale_wait_callback_does_not_reorder_tasks() {
    let wait = |tasks: Vec<usize>, timeout| Step::Wait { tasks, timeout, when: When::First, cancel_pending: false };
    let program = Program {
        tasks: vec![
            main_then_horizon(vec![Step::Spawn(1), Step::Spawn(2), Step::Spawn(3), Step::Spawn(4)]),
            task(vec![Step::Sleep(3)]),
            task(vec![wait(vec![1], Some(3)), Step::ThreadWake(Wake::CallSoonThreadsafe)]),
            task(vec![wait(vec![2], Some(0))]),
            task(vec![Step::Sleep(3), wait(vec![3], None)]),
        ],
    };
    assert_eq!(order(&Model::run(&program)), [3, 1, 4, 2, 0]);
    check(&program).unwrap(); // aioloop before d0ea29e: [3, 1, 2, 4, 0]
}
