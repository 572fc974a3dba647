//! How a combinator (`wait`, `gather`, `as_completed`, `shield`) learns that its tasks finished.
//!
//! asyncio's combinators attach a done-callback to every child. When a child finishes, the
//! callback runs one iteration later (`call_soon`) and counts; when the combinator's condition
//! holds (all done; the first failure; any one), it completes a future whose own done-callback
//! wakes the waiting task one more iteration later. So the waiting task resumes **two
//! iterations** after the child that satisfied the condition, and **only then**.
//!
//! A [`Group`] reproduces that without a callback allocation per child: it is the *joiner* of
//! every member (the member's `JoinSlot::Group`). When a member finishes, the loop queues a
//! handle (`Action::Member`, no allocation) that runs in the next iteration, like the
//! done-callback: it records the member in `done` and, if the group's [`WakeWhen`] condition now
//! holds, wakes the combinator, which runs one iteration later. Iteration counts are therefore
//! asyncio's, including the iterations in which a callback only counts down.
//!
//! # Invariants
//! - A finished member costs O(1): one handle, one push; never a scan of all members.
//! - A member that had already finished when it joined reports through the same handle, so even
//!   then the combinator resumes two iterations later (asyncio's `wait`).
//! - Cancelling a group (the task awaiting a `gather` was cancelled) cancels every member and
//!   makes the condition "all finished": the awaiting task is dropped after its members, from
//!   the inside out, as asyncio's `_GatheringFuture.cancel()` does.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::task::Waker;

use crate::runtime::task::Status;
use crate::runtime::waker::TaskKey;
use crate::runtime::Core;

/// When a group wakes its combinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WakeWhen {
    /// After each member that finishes (`as_completed`).
    EachFinished,
    /// When every member has finished (`wait(ALL_COMPLETED)`, `gather_settled`, `shield`).
    AllFinished,
    /// When any member finished (`wait(FIRST_COMPLETED)`).
    AnyFinished,
    /// When a member panicked, or all finished (`wait(FIRST_EXCEPTION)`).
    FirstPanic,
    /// When a member panicked or was cancelled, or all finished (`gather`).
    FirstFailure,
}

/// A combinator's record of its members and of which finished, in finishing order.
pub(crate) struct Group {
    /// Members that finished and the combinator has not looked at yet.
    pub(crate) done: RefCell<VecDeque<u32>>,
    /// The combinator's waker.
    waker: RefCell<Option<Waker>>,
    /// Every member's key, in member order (for cancellation).
    members: RefCell<Vec<TaskKey>>,
    /// How many members finished.
    finished: Cell<usize>,
    /// A member panicked.
    panicked: Cell<bool>,
    /// A member panicked or was cancelled.
    failed: Cell<bool>,
    /// The condition for waking the combinator.
    wake_when: Cell<WakeWhen>,
}

impl Group {
    /// Creates an empty group.
    pub(crate) fn new(wake_when: WakeWhen) -> Group {
        Group {
            done: RefCell::default(),
            waker: RefCell::default(),
            members: RefCell::default(),
            finished: Cell::new(0),
            panicked: Cell::new(false),
            failed: Cell::new(false),
            wake_when: Cell::new(wake_when),
        }
    }

    /// Records the combinator's current waker (called at each of its polls).
    pub(crate) fn register(&self, waker: &Waker) {
        let mut w = self.waker.borrow_mut();
        if !w.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *w = Some(waker.clone());
        }
    }

    /// Forgets the combinator's waker (the combinator is gone): members that finish later wake
    /// nobody, as asyncio removes its done-callbacks when `wait` returns.
    pub(crate) fn unregister(&self) {
        let waker = self.waker.borrow_mut().take();
        drop(waker);
    }

    /// Wakes the combinator now, whatever its condition (the deadline of `as_completed`).
    pub(crate) fn wake_combinator(&self) {
        let waker = self.waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Adds a member (its index is its position).
    pub(crate) fn add_member(&self, key: TaskKey) {
        self.members.borrow_mut().push(key);
    }

    /// Returns the task the group wakes (its combinator's task), if its waker is a task's.
    pub(crate) fn waker_key(&self) -> Option<TaskKey> {
        self.waker.borrow().as_ref().and_then(crate::runtime::waker::key_of)
    }

    /// Returns how many members joined the group.
    pub(crate) fn members(&self) -> usize {
        self.members.borrow().len()
    }

    /// Returns true if every member finished.
    pub(crate) fn all_finished(&self) -> bool {
        self.finished.get() == self.members.borrow().len()
    }

    fn condition_holds(&self) -> bool {
        match self.wake_when.get() {
            WakeWhen::EachFinished | WakeWhen::AnyFinished => true,
            WakeWhen::AllFinished => self.all_finished(),
            WakeWhen::FirstPanic => self.panicked.get() || self.all_finished(),
            WakeWhen::FirstFailure => self.failed.get() || self.all_finished(),
        }
    }

    /// Runs in the iteration after a member finished (the done-callback): counts it and wakes
    /// the combinator if its condition now holds.
    pub(crate) fn member_finished(&self, core: &Core, member: u32, status: Status) {
        self.finished.set(self.finished.get() + 1);
        self.panicked.set(self.panicked.get() || status == Status::Panicked);
        self.failed.set(self.failed.get() || status != Status::Done);
        self.done.borrow_mut().push_back(member);
        if self.condition_holds() {
            let waker = self.waker.borrow().clone();
            if let Some(waker) = waker {
                core.contain(move || waker.wake());
            }
        }
    }

    /// Returns true once the combinator's outcome is decided, as asyncio's `_GatheringFuture` is
    /// done: for `gather`, at the first failure (a panic or a cancellation) or when all
    /// finished; for the others, when all finished.
    pub(crate) fn outer_done(&self) -> bool {
        match self.wake_when.get() {
            WakeWhen::FirstFailure => self.failed.get() || self.all_finished(),
            _ => self.all_finished(),
        }
    }

    /// Cancels every member (asyncio's `_GatheringFuture.cancel()`), unless the outcome is
    /// decided already (then, as in asyncio, it cancels nothing). A `gather` is then woken by
    /// the first member that ends cancelled, the others when all have finished. Returns true if
    /// there is something to wait for (a member still running, or one not counted yet).
    pub(crate) fn cancel_members(&self, core: &Core) -> bool {
        if self.outer_done() {
            return false;
        }
        if self.wake_when.get() != WakeWhen::FirstFailure {
            self.wake_when.set(WakeWhen::AllFinished);
        }
        let members: Vec<TaskKey> = self.members.borrow().clone();
        let mut any = false;
        for key in members {
            any |= core.cancel_task(key);
        }
        // Members already finished but not yet counted will be counted by their queued handle.
        any || !self.outer_done()
    }
}
