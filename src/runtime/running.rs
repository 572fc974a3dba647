//! The loop running on this thread (asyncio's `get_running_loop()`): set while a loop runs,
//! read by the free functions of [`context`](crate::context) and by wakers woken on this thread.
//!
//! # Invariants
//! - At most one loop runs on a thread at a time; running a second one inside the first fails
//!   with asyncio's message.
//! - The thread-local is set only while a loop runs (`run_until_complete`, `run_forever`), so
//!   a waker woken on this thread at that moment reaches the ready queue without a lock.
//! - Beside it, while a loop runs, the thread keeps that loop's slot and its *timeout epoch* in a
//!   plain `Cell` ([`Timeouts`]), for a timeout to note where it is created without looking the
//!   loop up (see `timeout.rs` and [`TimeoutClock`](super::timeout_clock::TimeoutClock)). The
//!   epoch moves on only at the end of an iteration in which a timeout was created (and when a
//!   loop starts or stops running here after one was), so a timeout is first polled in the
//!   iteration that created it exactly when the epoch has not moved since.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::Core;

thread_local! {
    /// The loop running on this thread, if any.
    static RUNNING: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
    /// What a timeout created on this thread records of the running loop, without looking the
    /// loop up (a plain `Cell`: reading it costs a load, where `RUNNING` costs a borrow).
    static TIMEOUTS: Cell<Timeouts> = const { Cell::new(Timeouts { slot: None, epoch: 0, created: false }) };
}

/// The timeouts of this thread's running loop (see `timeout.rs`).
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    /// The running loop's registry slot; `None` while no loop runs on this thread.
    slot: Option<u16>,
    /// Moves on at the end of each iteration in which a timeout was created: a timeout is
    /// *fresh* (first polled in the iteration that created it) while it has not.
    epoch: u32,
    /// A timeout was created since `epoch` last moved on.
    created: bool,
}

/// Notes that a timeout is being created; returns the running loop's slot and the epoch the
/// timeout belongs to, or `None` if no loop runs on this thread.
#[inline]
pub(crate) fn note_timeout() -> Option<(u16, u32)> {
    TIMEOUTS.with(|t| {
        let mut now = t.get();
        let slot = now.slot?;
        if !now.created {
            now.created = true;
            t.set(now);
        }
        Some((slot, now.epoch))
    })
}

/// Returns the current timeout epoch: a timeout of an earlier one was created in an iteration
/// that has ended.
#[inline]
pub(crate) fn timeout_epoch() -> u32 {
    TIMEOUTS.with(|t| t.get().epoch)
}

/// The loop ends an iteration: if a timeout was created in it, moves the epoch on and returns
/// the epoch of those timeouts.
#[inline]
pub(crate) fn end_iteration() -> Option<u32> {
    TIMEOUTS.with(|t| {
        let now = t.get();
        if !now.created {
            return None;
        }
        t.set(Timeouts { epoch: now.epoch.wrapping_add(1), created: false, ..now });
        Some(now.epoch)
    })
}

/// Sets (or, with `None`, clears) the running loop of this thread for its timeouts. Timeouts
/// created while the loop was not iterating (its destructors at close) are never fresh.
fn set_timeout_loop(slot: Option<u16>) {
    TIMEOUTS.with(|t| {
        let now = t.get();
        let epoch = if now.created { now.epoch.wrapping_add(1) } else { now.epoch };
        t.set(Timeouts { slot, epoch, created: false });
    });
}

/// Marks a loop as running on this thread until dropped.
pub(crate) struct EnterGuard(());

/// The registry slot of the loop running on this thread, if any: a load, where
/// [`with_running`] borrows (a live loop's slot names it alone).
#[inline]
pub(crate) fn running_slot() -> Option<u16> {
    TIMEOUTS.try_with(|t| t.get().slot).ok().flatten()
}

/// Makes `core` this thread's running loop.
///
/// # Panics
///
/// If a loop is already running on this thread.
pub(crate) fn enter(core: &Rc<Core>) -> EnterGuard {
    RUNNING.with(|r| {
        let mut r = r.borrow_mut();
        assert!(r.is_none(), "Cannot run the event loop while another loop is running");
        *r = Some(core.clone());
    });
    set_timeout_loop(Some(core.remote.slot()));
    EnterGuard(())
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        set_timeout_loop(None);
        let core = RUNNING.with(|r| r.borrow_mut().take());
        drop(core);
    }
}

/// Returns true if a loop is running on this thread.
pub(crate) fn is_running() -> bool {
    RUNNING.try_with(|r| r.try_borrow().is_ok_and(|r| r.is_some())).unwrap_or(false)
}

/// Calls `f` with the running loop, if any.
pub(crate) fn with_running<R>(f: impl FnOnce(&Rc<Core>) -> R) -> Option<R> {
    RUNNING.try_with(|r| r.try_borrow().ok().and_then(|r| r.as_ref().map(f))).ok().flatten()
}

/// Calls `f` with the running loop.
///
/// # Panics
///
/// "no running event loop" if no loop is running on this thread.
#[inline]
#[track_caller]
pub(crate) fn with_current<R>(f: impl FnOnce(&Rc<Core>) -> R) -> R {
    // (Not `with_running(f)` and a match: the `Option` around a spawn's `Task` costs it ~10 %.
    // After the thread's locals were destroyed this panics with std's message instead.)
    RUNNING.with(|r| match &*r.borrow() {
        Some(core) => f(core),
        None => no_running_loop(),
    })
}

/// Returns the running loop.
///
/// # Panics
///
/// "no running event loop" if no loop is running on this thread.
#[inline]
#[track_caller]
pub(crate) fn current() -> Rc<Core> {
    match with_running(Rc::clone) {
        Some(core) => core,
        None => no_running_loop(),
    }
}

/// [`current`]'s panic, out of line so that the lookup inlines small.
#[cold]
#[inline(never)]
#[track_caller]
fn no_running_loop() -> ! {
    panic!("no running event loop")
}
