//! Loom build only (`RUSTFLAGS="--cfg loom"`): what tests/loom_wake.rs needs to drive the real
//! cross-thread wake-up code of [`remote`](crate::runtime::cross_thread) under loom.
//!
//! The OS poller cannot run under loom, so the loom build gives [`Remote`] a `Park` as well (runtime/loom_atomics.rs), a
//! mutex-and-condvar flag that [`Remote::notify`] sets and that the test's loop sleeps on. It is
//! sticky, like `polling::Poller::notify` (a notification sent while nobody waits ends the next
//! wait at once), and it is the only thing here that is not the production code: the inbox, the
//! `pending`/`notified`/`stop` flags, the wakers and [`LoopHandle`] are the real ones, with
//! loom's mutex, and the atomics as values behind loom mutexes, which is exactly `SeqCst`'s
//! semantics (loom's own atomics give false alarms here: see `ScAtomic` in runtime/loom_atomics.rs).
//!
//! [`TaskLoop`] goes one step further for the models of a wake racing a task's completion: it
//! holds a real loop core (the task table, the ready queue and the remote half of
//! `src/runtime/`), so that spawning, waking (`Core::wake_local`, with its stale-key check),
//! running a task's step (`Core::run_task`: the poll, `finish_task`, the removal of a detached
//! task's entry) and reusing its slab slot are the production code; only the sequencing of the
//! phases is the test's, as with [`LoopSide`].
//!
//! Not part of the crate's API: nothing here exists outside the loom build.

#![cfg(loom)]
#![doc(hidden)]

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;

use crate::loop_handle::LoopHandle;
use crate::runtime::cross_thread::Remote;
use crate::runtime::waker::{waker_for, TaskKey};
use crate::runtime::{Core, Next};
use crate::{Task, TaskState};

/// Callbacks sent from other threads (`call_soon_threadsafe`), as a drain hands them out.
pub type Jobs = Vec<Box<dyn FnOnce() + Send>>;

/// A loop's remote half, registered like a real loop's, with the calls its loop makes.
///
/// Create it inside `loom::model`; dropping it unregisters it.
pub struct LoopSide {
    remote: Arc<Remote>,
}

impl std::fmt::Debug for LoopSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopSide").field("slot", &self.remote.slot()).finish()
    }
}

impl Default for LoopSide {
    fn default() -> Self {
        Self::new()
    }
}

impl LoopSide {
    /// Registers a new remote half (as `EventLoop::new` does).
    pub fn new() -> LoopSide {
        LoopSide { remote: Remote::register().expect("register a loop") }
    }

    /// The handle other threads use: `call_soon_threadsafe`, `stop`.
    pub fn handle(&self) -> LoopHandle {
        LoopHandle::new(self.remote.clone())
    }

    /// The key of task `index` (id `id`) of this loop, as its waker carries it.
    pub fn key(&self, index: usize, id: u64) -> u64 {
        TaskKey::new(self.remote.slot(), index, id).0
    }

    /// The real waker of that task: woken on a thread with no running loop, it goes to the inbox.
    pub fn waker(&self, index: usize, id: u64) -> Waker {
        waker_for(TaskKey::new(self.remote.slot(), index, id))
    }

    /// Phase 2's question: did other threads queue anything not drained yet?
    pub fn has_pending(&self) -> bool {
        self.remote.has_pending()
    }

    /// Phase 2 reads the stop flag too.
    pub fn stop_requested(&self) -> bool {
        self.remote.stop_requested()
    }

    /// After an iteration: takes the stop request (`run_until_stopped`).
    pub fn take_stop(&self) -> bool {
        self.remote.take_stop()
    }

    /// Phase 3 with nothing to do and no timers: sleep in the "poller" until notified.
    pub fn sleep_in_poller(&self) {
        self.remote.park.wait();
    }

    /// Phase 3, after the poller returned: the next remote wake must notify again.
    pub fn clear_notified(&self) {
        self.remote.clear_notified();
    }

    /// Phase 4: takes the woken keys and the callbacks sent from other threads.
    pub fn drain(&self) -> (Vec<u64>, Jobs) {
        let (mut keys, mut jobs) = (Vec::new(), Vec::new());
        self.remote.drain(&mut keys, &mut jobs);
        (keys, jobs)
    }
}

impl Drop for LoopSide {
    fn drop(&mut self) {
        self.remote.unregister();
    }
}

/// A real loop core driven phase by phase: its task table and ready queue are the production
/// ones, its remote half is a [`LoopSide`] (registered like a real loop's).
///
/// Create it inside `loom::model`, on the model's main thread (the loop's thread), and run no
/// real loop on that thread meanwhile: loom's threads share the OS thread, so a "running loop"
/// set here would be seen by the wakers of the other model threads. Dropping it unregisters the
/// loop; its remaining tasks are dropped with it, unreported.
pub struct TaskLoop {
    core: Rc<Core>,
    side: LoopSide,
}

impl std::fmt::Debug for TaskLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskLoop").field("side", &self.side).field("tasks", &self.core.tasks.len()).finish()
    }
}

impl Default for TaskLoop {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskLoop {
    /// A new loop core on real time, without debug mode or tracing (`EventLoop::new`'s).
    pub fn new() -> TaskLoop {
        let core = Core::new(false, None, false).expect("create a loop core");
        let side = LoopSide { remote: core.remote.clone() };
        TaskLoop { core, side }
    }

    /// The remote half: the flags of phases 2 and 3, the stand-in poller, the raw drain.
    pub fn side(&self) -> &LoopSide {
        &self.side
    }

    /// Spawns a task (`Core::spawn`): inserted in the table and queued for its first step.
    pub fn spawn<F: Future<Output = ()> + 'static>(&self, fut: F) -> Task<()> {
        self.core.spawn(fut)
    }

    /// The key of a task, as its waker carries it.
    pub fn key<T>(&self, task: &Task<T>) -> u64 {
        task.key().0
    }

    /// The slab index in a key.
    pub fn index(key: u64) -> usize {
        TaskKey(key).index()
    }

    /// The state of the task with `key`; `None` if the key is stale (its entry was removed, and
    /// maybe its slot reused).
    pub fn state(&self, key: u64) -> Option<TaskState> {
        self.core.status_of(TaskKey(key)).map(|s| s.public())
    }

    /// The tasks in the ready queue, in order.
    pub fn ready(&self) -> Vec<u64> {
        self.core
            .ready
            .borrow()
            .iter()
            .map(|r| match r.next(self.core.remote.slot()) {
                Next::Task(key) => key.0,
                other => panic!("only tasks are queued in these models, found {other:?}"),
            })
            .collect()
    }

    /// Phase 4 (`Core::drain_inbox`, which is private to the runtime): takes what other threads
    /// queued, and wakes each key with the loop's own `Core::wake_local`. Returns the keys
    /// drained and the callbacks (which these models do not send).
    pub fn drain_inbox(&self) -> (Vec<u64>, Jobs) {
        let (keys, jobs) = self.side.drain();
        for &key in &keys {
            self.core.wake_local(TaskKey(key));
        }
        (keys, jobs)
    }

    /// Phase 6 (`Core::run_ready`, private to the runtime) for task steps: counts the ready
    /// queue, then runs that many steps with `Core::run_task` (what a step queues waits for the
    /// next iteration). Returns the keys it took from the queue.
    pub fn run_ready(&self) -> Vec<u64> {
        let ntodo = self.core.ready.borrow().len();
        let mut ran = Vec::with_capacity(ntodo);
        for _ in 0..ntodo {
            let Some(entry) = self.core.ready.borrow_mut().pop_front() else { break };
            match entry.next(self.core.remote.slot()) {
                Next::Task(key) => {
                    ran.push(key.0);
                    self.core.run_task(key, &mut None);
                }
                other => panic!("only tasks are queued in these models, found {other:?}"),
            }
        }
        ran
    }
}
