//! Loom models of the cross-thread wake-up protocol of `src/runtime/cross_thread.rs`: no lost wakeup, and no
//! task scheduled twice; and of a wake from another thread racing its task's completion: a stale
//! key does nothing, to the finished task or to the next tenant of its slab slot.
//!
//! Built only with `--cfg loom`, in a target directory of its own so that the shared `target/`
//! is not rebuilt:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=/work/target-loom LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test --release --test loom_wake -- --test-threads=1
//! ```
//!
//! (about 80 s to build from nothing on two cores, 10 s to rebuild aioloop, 0.2 s to run; with
//! `LOOM_MAX_PREEMPTIONS=3` 1 s, with 4 5 s, all passing; with no bound the seven models on the
//! stand-in loop take 33 s, and the two on a real task table more than ten minutes (not run to
//! the end)). One test thread: the loop registry of `runtime/cross_thread.rs` is a std `RwLock` that loom does not
//! see, and a waker holds its read lock across the inbox's (loom) lock; two models running on two
//! test threads can then block each other for real inside loom's scheduler.
//!
//! What runs here is the production code of the remote half (`Remote::push`, `push_job`,
//! `notify`, `has_pending`, `clear_notified`, `drain`, the real task `Waker` and `LoopHandle`),
//! built with loom's mutex (the `cfg(loom)` imports at the top of `src/runtime/cross_thread.rs`) and with its
//! `SeqCst` atomics as values behind loom mutexes (`ScAtomic` in `src/runtime/loom_atomics.rs`: loom's own
//! atomics model `SeqCst` as `AcqRel` and gave false deadlocks here). Two more things are
//! stand-ins, as they must be under loom:
//!
//! - the poller: `polling::Poller` blocks in `epoll_wait`, which loom cannot schedule, so in the
//!   loom build `Remote::notify` also sets a sticky flag (`src/runtime/loom_atomics.rs`, `Park`) that the
//!   loop below sleeps on, with `Poller::notify`'s semantics (a notification sent while nobody
//!   waits ends the next wait at once);
//! - the loop: [`Loop::run_once`] is `Core::run_once` (`src/runtime/mod.rs`) as far as the remote
//!   half is concerned, with no timers and no sockets, so phase 3 either skips the poller
//!   (`Timeout::Zero`, and then `notified` is *not* cleared, as in `poll_io`) or sleeps in it with
//!   no timeout (`Timeout::Forever`) and clears `notified` when it returns. Keep it in step with
//!   `compute_timeout`, `poll_io` and `drain_inbox` there.
//!
//! The last two models (`a_late_wake_...`) run on a real task table instead of the stand-in
//! [`Loop`]'s set of keys: [`CoreLoop`] drives a real loop core (`TaskLoop` in src/loom_shim.rs),
//! so spawning, `Core::wake_local` (with its generation check), `Core::run_task` (the poll,
//! `finish_task`, the removal of a detached task's entry) and the slab's reuse of a freed slot
//! are the production code; only the order of the phases is this file's, as above.
//!
//! A lost wakeup shows up as a deadlock: the loop sleeps with no notification coming and the
//! other threads are done, which loom reports as a failure ("deadlock").
//!
//! Plant check (done by hand in a scratch copy of the tree, not in the tree):
//!
//! - with the two statements of `Remote::push` swapped (`notify()` before
//!   `pending.store(true)`), six of these models deadlock (four on the stand-in loop, both
//!   `a_late_wake_...` models): the loop wakes on the notification, drains before the store,
//!   clears `notified`, finds nothing pending and sleeps for ever;
//! - with this file's `run_once` draining *before* it clears `notified` and not reading
//!   `has_pending` before it sleeps, three deadlock (a wake that lands between the drain and the
//!   clear does not notify, and nothing else looks at the inbox). Either change alone is caught by
//!   the other safeguard, and all models pass: the check before sleeping is what makes the
//!   order of "clear, then drain" forgiving.

#![cfg(loom)]

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use aioloop::loom_shim::{LoopSide, TaskLoop};
use aioloop::{Task, TaskState};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::thread;

/// The loop's single-threaded side: the ready queue with its "scheduled" flag per task
/// (`TaskEntry::scheduled` and `wake_local` in `src/runtime/task/`: mod.rs and steps.rs).
struct Loop {
    side: LoopSide,
    ready: VecDeque<u64>,
    scheduled: HashSet<u64>,
    /// Task steps run so far, in order.
    ran: Vec<u64>,
    /// Callbacks from other threads run so far.
    jobs_run: usize,
}

impl Loop {
    fn new() -> Loop {
        Loop { side: LoopSide::new(), ready: VecDeque::new(), scheduled: HashSet::new(), ran: Vec::new(), jobs_run: 0 }
    }

    /// `wake_local`: queue the task unless it is queued already.
    fn wake_local(&mut self, key: u64) {
        if self.scheduled.insert(key) {
            self.ready.push_back(key);
        }
    }

    /// One iteration, phases 2, 3, 4 and 6 of `Core::run_once`; returns true if a stop was taken.
    fn run_once(&mut self) -> bool {
        // 2. compute_timeout: zero if anything is ready, a stop was requested or the inbox is
        //    not empty; otherwise (no timers) forever.
        let zero = !self.ready.is_empty() || self.side.stop_requested() || self.side.has_pending();
        // 3. poll_io: Zero with no sockets returns at once; Forever sleeps in the poller and
        //    clears `notified` after it returns.
        if !zero {
            self.side.sleep_in_poller();
            self.side.clear_notified();
        }
        // 4. drain_inbox: keys are woken locally, callbacks join the ready queue after them.
        let (keys, jobs) = self.side.drain();
        let distinct: HashSet<u64> = keys.iter().copied().collect();
        assert_eq!(distinct.len(), keys.len(), "a key was queued twice in the inbox: {keys:?}");
        for key in keys {
            self.wake_local(key);
        }
        // 6. run_ready: each queued task once, then the callbacks.
        for _ in 0..self.ready.len() {
            let key = self.ready.pop_front().expect("counted");
            assert!(self.scheduled.remove(&key), "a task ran that was not scheduled");
            self.ran.push(key);
        }
        for job in jobs {
            job();
            self.jobs_run += 1;
        }
        // After the iteration: `run_until_stopped` takes the stop request.
        self.side.take_stop()
    }

    /// Runs iterations until `done` holds (a lost wakeup makes this sleep for ever).
    fn run_until(&mut self, mut done: impl FnMut(&Loop) -> bool) {
        while !done(self) {
            self.run_once();
        }
    }

    fn times_ran(&self, key: u64) -> usize {
        self.ran.iter().filter(|&&k| k == key).count()
    }
}

/// The smallest case: one wake from another thread while the loop may be about to sleep.
#[test]
fn a_wake_from_another_thread_is_never_lost() {
    loom::model(|| {
        let mut lp = Loop::new();
        let key = lp.side.key(1, 1);
        let waker = lp.side.waker(1, 1);
        let t = thread::spawn(move || waker.wake());
        lp.run_until(|lp| lp.times_ran(key) == 1);
        t.join().unwrap();
        // Nothing is left behind: the one wake gave exactly one step.
        lp.run_once_without_sleeping();
        assert_eq!(lp.ran, [key]);
    });
}

/// Two threads wake the same task at about the same time: it is woken, and never queued twice.
#[test]
fn two_wakes_of_one_task_schedule_it_once_per_iteration() {
    loom::model(|| {
        let mut lp = Loop::new();
        let key = lp.side.key(3, 7);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let waker = lp.side.waker(3, 7);
                thread::spawn(move || waker.wake_by_ref())
            })
            .collect();
        lp.run_until(|lp| lp.times_ran(key) >= 1);
        for t in threads {
            t.join().unwrap();
        }
        lp.run_once_without_sleeping();
        // One step per wake at most: a second step only if the second wake came after the
        // first step's drain (a new wake, which the task must see).
        let n = lp.times_ran(key);
        assert!((1..=2).contains(&n), "ran {n} times for two wakes");
    });
}

/// Two threads wake two tasks: both notifications race on the `notified` flag; neither is lost.
#[test]
fn wakes_of_two_tasks_from_two_threads_are_both_seen() {
    loom::model(|| {
        let mut lp = Loop::new();
        let (k1, k2) = (lp.side.key(1, 1), lp.side.key(2, 2));
        let (w1, w2) = (lp.side.waker(1, 1), lp.side.waker(2, 2));
        let t1 = thread::spawn(move || w1.wake());
        let t2 = thread::spawn(move || w2.wake());
        lp.run_until(|lp| lp.times_ran(k1) == 1 && lp.times_ran(k2) == 1);
        t1.join().unwrap();
        t2.join().unwrap();
    });
}

/// A second wake sent after the loop handled the first: `notified` must have been re-armed.
#[test]
fn wakes_sent_one_after_another_are_all_seen() {
    loom::model(|| {
        let mut lp = Loop::new();
        let (k1, k2) = (lp.side.key(1, 1), lp.side.key(2, 2));
        let (w1, w2) = (lp.side.waker(1, 1), lp.side.waker(2, 2));
        let first_seen = Arc::new(AtomicBool::new(false));
        let seen = first_seen.clone();
        let t = thread::spawn(move || {
            w1.wake();
            while !seen.load(SeqCst) {
                thread::yield_now();
            }
            w2.wake();
        });
        lp.run_until(|lp| lp.times_ran(k1) == 1);
        first_seen.store(true, SeqCst);
        lp.run_until(|lp| lp.times_ran(k2) == 1);
        t.join().unwrap();
    });
}

/// `call_soon_threadsafe` from another thread: the callback runs on the loop, exactly once.
#[test]
fn a_callback_from_another_thread_runs_once() {
    loom::model(|| {
        let mut lp = Loop::new();
        let h = lp.side.handle();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let t = thread::spawn(move || {
            h.call_soon_threadsafe(move || {
                c.fetch_add(1, SeqCst);
            })
            .expect("the loop is open");
        });
        lp.run_until(|lp| lp.jobs_run == 1);
        t.join().unwrap();
        lp.run_once_without_sleeping();
        assert_eq!(calls.load(SeqCst), 1);
        assert_eq!(lp.jobs_run, 1);
    });
}

/// `LoopHandle::stop` from another thread wakes a loop that sleeps with nothing to do.
#[test]
fn a_stop_from_another_thread_ends_a_sleeping_loop() {
    loom::model(|| {
        let mut lp = Loop::new();
        let h = lp.side.handle();
        let t = thread::spawn(move || h.stop());
        while !lp.run_once() {}
        t.join().unwrap();
    });
}

/// A wake racing with a stop: the loop stops, and the wake is still delivered afterwards.
#[test]
fn a_wake_racing_with_a_stop_is_kept() {
    loom::model(|| {
        let mut lp = Loop::new();
        let key = lp.side.key(5, 5);
        let waker = lp.side.waker(5, 5);
        let h = lp.side.handle();
        let t1 = thread::spawn(move || waker.wake());
        let t2 = thread::spawn(move || h.stop());
        while !lp.run_once() {}
        t1.join().unwrap();
        t2.join().unwrap();
        // The next run of the loop picks the wake up if the stopped iteration did not.
        lp.run_until(|lp| lp.times_ran(key) == 1);
    });
}

impl Loop {
    /// One iteration that must not sleep: every wake was sent and joined, so if the inbox held
    /// anything, `has_pending` says so; otherwise there is nothing more to run.
    fn run_once_without_sleeping(&mut self) {
        if self.ready.is_empty() && !self.side.has_pending() && !self.side.stop_requested() {
            return;
        }
        self.run_once();
    }
}

// ---------------------------------------------------------------------------------------------
// A wake from another thread racing the completion of its task, on a real task table.

/// What a task's future shares with the model: how often it was polled, and the waker of its
/// last poll (which the model hands to another thread, as a future that gives its waker to a
/// thread does).
#[derive(Default)]
struct Probe {
    polls: Cell<usize>,
    waker: RefCell<Option<Waker>>,
}

/// A task's future: counts its polls in `probe`, leaves its waker there, and completes at poll
/// `ready_at` (never, if `None`).
struct Probed {
    probe: Rc<Probe>,
    ready_at: Option<usize>,
}

impl Future for Probed {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let polls = self.probe.polls.get() + 1;
        self.probe.polls.set(polls);
        *self.probe.waker.borrow_mut() = Some(cx.waker().clone());
        if self.ready_at == Some(polls) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// [`Loop`] on a real task table ([`TaskLoop`]): the same phases, with the production
/// `wake_local` (phase 4) and `run_task` (phase 6), and a check of the ready queue after each
/// drain.
struct CoreLoop {
    tl: TaskLoop,
}

impl CoreLoop {
    fn new() -> CoreLoop {
        CoreLoop { tl: TaskLoop::new() }
    }

    fn spawn(&self, ready_at: Option<usize>) -> (Task<()>, Rc<Probe>) {
        let probe = Rc::new(Probe::default());
        let task = self.tl.spawn(Probed { probe: probe.clone(), ready_at });
        (task, probe)
    }

    /// One iteration, phases 2, 3, 4 and 6 of `Core::run_once` (as [`Loop::run_once`]).
    fn run_once(&self) {
        let side = self.tl.side();
        let zero = !self.tl.ready().is_empty() || side.stop_requested() || side.has_pending();
        if !zero {
            side.sleep_in_poller();
            side.clear_notified();
        }
        self.drain_and_run();
    }

    /// One iteration that does not sleep, as when something else is ready (`Timeout::Zero`, no
    /// sockets: the poller is skipped and `notified` stays set).
    fn run_once_busy(&self) {
        self.drain_and_run();
    }

    fn drain_and_run(&self) {
        let (keys, jobs) = self.tl.drain_inbox();
        assert!(jobs.is_empty(), "these models send no callbacks");
        let distinct: HashSet<u64> = keys.iter().copied().collect();
        assert_eq!(distinct.len(), keys.len(), "a key was queued twice in the inbox: {keys:?}");
        // Whatever is queued now names a live task waiting for its step, once.
        let ready = self.tl.ready();
        let distinct: HashSet<u64> = ready.iter().copied().collect();
        assert_eq!(distinct.len(), ready.len(), "a task is in the ready queue twice: {ready:?}");
        for &key in &ready {
            assert_eq!(
                self.tl.state(key),
                Some(TaskState::Pending),
                "key {key:#x} was scheduled, but it names no waiting task (stale, or finished)"
            );
        }
        self.tl.run_ready();
    }

    fn run_until(&self, done: impl Fn() -> bool) {
        while !done() {
            self.run_once();
        }
    }

    /// After every thread was joined: whatever their wakes left in the inbox is drained and run;
    /// nothing can make the loop sleep any more.
    fn run_once_without_sleeping(&self) {
        let side = self.tl.side();
        if !self.tl.ready().is_empty() || side.has_pending() {
            self.run_once();
        }
    }
}

/// A waker woken from another thread, once while its task waits and once more while the loop
/// runs the task's last step: the task finishes, its detached entry is removed, and a new task
/// takes its slab slot (same index, new generation) and is woken by a third thread.
///
/// The late wake of the old key does nothing, wherever it lands: coalesced with the first one in
/// the inbox, drained while the old task is still queued, drained after its slot was freed, or
/// after the new tenant moved in (`wake_local` compares the key's generation with the entry's
/// id). So the old task is polled exactly twice (its spawn and the first wake), the new one exactly
/// twice (its spawn and its own wake, which is never lost), and no stale key is ever in the ready
/// queue.
///
/// Plant check (by hand, in a scratch copy): with `TaskKey::matches` always true, the late wake
/// is taken for the new tenant and polls it a third time; with only `wake_local`'s generation
/// check removed, the stale key lands in the ready queue (and `run_task`'s own check keeps the
/// new tenant from being polled): this model fails either way. (With `wake_local`'s
/// `!e.scheduled` removed it passes: no key here is woken while its task is queued, except the
/// stale one, which the generation check stops first.)
#[test]
fn a_late_wake_leaves_the_new_tenant_of_the_finished_tasks_slot_alone() {
    loom::model(|| {
        let lp = CoreLoop::new();
        let (a, probe_a) = lp.spawn(Some(2));
        let key_a = lp.tl.key(&a);
        drop(a); // detached: its entry is removed when it finishes
        lp.run_until(|| probe_a.polls.get() == 1);
        let waker_a = probe_a.waker.borrow_mut().take().expect("A left its waker");
        let t1 = thread::spawn(move || {
            waker_a.wake_by_ref(); // A goes on ...
            waker_a.wake(); // ... and this one may land while A finishes, or after
        });
        lp.run_until(|| probe_a.polls.get() == 2);
        assert_eq!(lp.tl.state(key_a), None, "a finished detached task leaves the table");
        let (b, probe_b) = lp.spawn(None);
        let key_b = lp.tl.key(&b);
        assert_eq!(TaskLoop::index(key_b), TaskLoop::index(key_a), "B reuses A's slot");
        assert_ne!(key_b, key_a, "with a new generation");
        lp.run_until(|| probe_b.polls.get() == 1);
        let waker_b = probe_b.waker.borrow_mut().take().expect("B left its waker");
        let t2 = thread::spawn(move || waker_b.wake());
        lp.run_until(|| probe_b.polls.get() == 2); // B's own wake is never lost
        t1.join().unwrap();
        t2.join().unwrap();
        lp.run_once_without_sleeping();
        assert_eq!(probe_a.polls.get(), 2, "A was polled after it finished");
        assert_eq!(probe_b.polls.get(), 2, "B was polled for a wake that was not its own");
        assert_eq!(lp.tl.state(key_b), Some(TaskState::Pending));
        assert!(lp.tl.ready().is_empty());
        drop(b);
    });
}

/// As above, but the finished task's entry stays (its handle may still take the outcome), then
/// goes (the handle is dropped) and the slot stays empty: the late wake may be drained against a
/// finished entry or a vacant slot, and does nothing in either case: the finished task is never
/// queued again, never polled again, and the loop sleeps with nothing left to do.
///
/// Plant check (by hand, in a scratch copy): with `wake_local`'s `!e.status.is_finished()`
/// removed, the late wake queues the finished task and this model fails.
#[test]
fn a_late_wake_of_a_finished_task_does_nothing_while_its_entry_stays_or_after_it_goes() {
    loom::model(|| {
        let lp = CoreLoop::new();
        let (a, probe_a) = lp.spawn(Some(2));
        let key_a = lp.tl.key(&a);
        lp.run_until(|| probe_a.polls.get() == 1);
        let waker_a = probe_a.waker.borrow_mut().take().expect("A left its waker");
        let t = thread::spawn(move || {
            waker_a.wake_by_ref();
            waker_a.wake();
        });
        lp.run_until(|| probe_a.polls.get() == 2);
        assert_eq!(lp.tl.state(key_a), Some(TaskState::Done), "the handle keeps the entry");
        lp.run_once_busy(); // the late wake may be drained against the finished entry ...
        drop(a); // (the outcome was never taken: the entry goes with the handle)
        assert_eq!(lp.tl.state(key_a), None);
        lp.run_once_busy(); // ... or against the vacant slot
        t.join().unwrap();
        lp.run_once_without_sleeping();
        assert_eq!(probe_a.polls.get(), 2, "A was polled after it finished");
        assert!(lp.tl.ready().is_empty());
    });
}
