//! Phase 6's look-ahead: while a long ready queue runs, ask the CPU for the memory of the entry
//! a few places ahead, so that its cache misses overlap the steps before it.
//!
//! # Why
//!
//! A burst of due timers (four million sleeps spread over a second, a loop that fell behind)
//! fills the ready queue with entries whose tasks are scattered over hundreds of megabytes, in
//! deadline order, which is random in memory. Each step then waits twice on main memory: for
//! the task's slot in the task table, then for its cell's header, which the slot points to.
//! `perf` put 60 % of the 4M-sleeps workload on those two loads, once when a fired sleep wakes
//! its task and again when the task runs one iteration later (the batch between the two is far
//! larger than the cache).
//!
//! # What it does
//!
//! When phase 6 starts with at least [`MIN_BATCH`] entries and [`MIN_TASKS`] tasks are live,
//! each step first looks ahead, in two stages, since the two loads depend on each other: it
//! prefetches the task-table slot of the entry `2 * DISTANCE` places ahead, and reads the (by
//! now fetched) slot of the entry [`DISTANCE`] places ahead to prefetch the first two cache
//! lines of its cell. The task is the one the entry steps or, for a fired sleep, the one its
//! timer entry will wake (the timer entries of a batch lie together, in cache).
//!
//! A prefetch is only a hint: it changes no state and cannot fault, so a stale key (or an entry
//! that a cancel revokes before it runs) costs one wasted fetch, never a wrong step.
//!
//! Other batches skip it (phase 6 picks one of two loops per batch): their tasks are usually in
//! cache already, and the look-ahead's own loads would only cost. So does a batch that steps
//! its tasks in the order of their slots (a burst of tasks spawned in a row): the CPU's own
//! prefetcher streams sequential memory in.
//!
//! The prefetch itself is [`TaskCell::prefetch`](crate::runtime::task::TaskCell::prefetch); it
//! is a no-op on targets other than x86-64 with SSE, and under Miri (stable Rust has no
//! portable prefetch).

use crate::runtime::ready::{Next, Runnable};
use crate::runtime::waker::TaskKey;
use crate::runtime::Core;

/// How many places ahead of the running entry the look-ahead looks: about the time of a main
/// memory access in short steps.
pub(crate) const DISTANCE: usize = 6;

/// The shortest batch (ntodo) that runs with the look-ahead.
pub(crate) const MIN_BATCH: usize = 256;

/// How far apart the two entries are that [`Core::batch_in_slot_order`] compares.
const SAMPLE: usize = 64;

/// The fewest live tasks with which a batch runs with the look-ahead: below it, the cells of
/// all tasks (64 to a few hundred bytes each) fit in a core's L2 cache, so they are there
/// already, and the look-ahead (about 50 instructions a step) would only cost.
pub(crate) const MIN_TASKS: usize = 8192;

impl Core {
    /// Returns true if a batch of `ntodo` steps should run with the look-ahead: a long batch,
    /// with more tasks live than the caches hold, that does not step its tasks in the order of
    /// their slots.
    #[inline(always)]
    pub(crate) fn wants_look_ahead(&self, ntodo: usize) -> bool {
        ntodo >= MIN_BATCH && self.tasks.len() >= MIN_TASKS && !self.batch_in_slot_order()
    }

    /// Returns true if the batch at the front of the ready queue looks like it steps tasks in
    /// the order of their slots: its first entry and the one [`SAMPLE`] places later step tasks
    /// `SAMPLE` slots apart (up or down). That is a burst of tasks spawned in a row (their slots,
    /// and their cells in the arena, follow each other), which the CPU's own prefetcher streams
    /// in; the look-ahead would only add its instructions (measured: 52 a step, 2-3 % of the
    /// `spawn` benchmark's time). A batch in deadline or readiness order fails the test.
    fn batch_in_slot_order(&self) -> bool {
        let slot = self.remote.slot();
        let ready = self.ready.borrow();
        match (ready.front().map(|e| e.next(slot)), ready.get(SAMPLE).map(|e| e.next(slot))) {
            // (Descending too: a burst reusing slots freed last-in, first-out.)
            (Some(Next::Task(first)), Some(Next::Task(later))) => later.index().abs_diff(first.index()) == SAMPLE,
            _ => false,
        }
    }

    /// The look-ahead of one step (see the module docs): fetches the task-table slot of the
    /// entry `2 * DISTANCE` places from the queue's front, and the cell of the entry `DISTANCE`
    /// places from it, whose slot the step `DISTANCE` earlier fetched.
    #[inline]
    pub(crate) fn look_ahead(&self, slot: u16) {
        let (far, near) = {
            let ready = self.ready.borrow();
            (ready.get(2 * DISTANCE).copied(), ready.get(DISTANCE).copied())
        };
        let tasks = self.tasks.entries();
        if let Some(key) = far.and_then(|e| self.task_to_fetch(e, slot)) {
            tasks.prefetch(key.index());
        }
        if let Some(cell) = near.and_then(|e| self.task_to_fetch(e, slot)).and_then(|key| tasks.get(key.index())) {
            cell.prefetch();
        }
    }

    /// The task whose memory a ready entry's step will touch: the task it steps, or the one a
    /// fired sleep wakes (none for a callback).
    #[inline(always)]
    fn task_to_fetch(&self, entry: Runnable, slot: u16) -> Option<TaskKey> {
        match entry.next(slot) {
            Next::Task(key) => Some(key),
            Next::Timer(timer) => self.timers.borrow().queued_task(timer),
            Next::Handle(_) => None,
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Batches run with the look-ahead on this thread (for the tests to see that it ran).
    pub(crate) static BATCHES_AHEAD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;
    use crate::{EventLoop, TaskState};

    /// The look-ahead changes no step: a batch of 12,000 fired sleeps, a tenth of which a
    /// callback earlier in the same batch cancels (their queued timer entries are revoked while
    /// the look-ahead may already have fetched them), wakes the rest in deadline order, in one
    /// iteration, as without it.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "12,000 tasks take Miri many minutes; the prefetch is a no-op under Miri, and the rest is safe code"
    )]
    fn a_long_batch_runs_in_order_with_revoked_entries_in_it() {
        const N: usize = 12_000;
        const { assert!(N >= MIN_TASKS && N >= MIN_BATCH) };
        let mut lp = EventLoop::builder().virtual_time(true).build().unwrap();
        let t0 = lp.time();
        let woke = Rc::new(RefCell::new(Vec::new()));
        let tasks: Rc<RefCell<Vec<crate::Task<()>>>> = Rc::default();
        let t = tasks.clone();
        // Created before the sleeps, with their deadline: first in the batch.
        lp.call_later(Duration::from_secs(1), move || {
            for (i, task) in t.borrow().iter().enumerate() {
                if i % 10 == 3 {
                    assert!(task.cancel());
                }
            }
        });
        for i in 0..N {
            let woke = woke.clone();
            tasks.borrow_mut().push(lp.spawn(async move {
                crate::sleep(Duration::from_secs(1)).await;
                woke.borrow_mut().push(i);
            }));
        }
        let before = BATCHES_AHEAD.get();
        lp.run_until_complete(crate::sleep(Duration::from_secs(2)));
        assert!(BATCHES_AHEAD.get() > before, "the batches ran with the look-ahead");
        assert_eq!(lp.time() - t0, Duration::from_secs(2));
        let expected: Vec<usize> = (0..N).filter(|i| i % 10 != 3).collect();
        assert_eq!(*woke.borrow(), expected);
        for (i, task) in tasks.borrow().iter().enumerate() {
            let want = if i % 10 == 3 { TaskState::Cancelled } else { TaskState::Done };
            assert_eq!(task.state(), want, "task {i}");
        }
    }
}
