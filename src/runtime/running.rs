//! The loop running on this thread (asyncio's `get_running_loop()`): set while a loop runs,
//! read by the free functions of [`context`](crate::context) and by wakers woken on this thread.
//!
//! # Invariants
//! - At most one loop runs on a thread at a time; running a second one inside the first fails
//!   with asyncio's message.
//! - The thread-local is set only while a loop runs (`run_until_complete`, `run_forever`), so
//!   a waker woken on this thread at that moment reaches the ready queue without a lock.
//! - Beside it, while a loop runs, the thread keeps that loop's slot and iteration in a plain
//!   `Cell` ([`Iteration`]), for a timeout to note where it is created without looking the loop
//!   up (see `timeout.rs` and [`TimeoutClock`](super::timeout_clock::TimeoutClock)).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::Core;

thread_local! {
    /// The loop running on this thread, if any.
    static RUNNING: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
    /// The running loop's iteration, for a timeout to note without looking the loop up (a
    /// plain `Cell`: reading it costs a load, where `RUNNING` costs a borrow and a check).
    static ITERATION: Cell<Option<Iteration>> = const { Cell::new(None) };
}

/// Where the loop running on this thread is: what a timeout created now records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Iteration {
    /// The loop's registry slot.
    pub(crate) slot: u16,
    /// The iteration running (or about to run), modulo 2^32.
    pub(crate) number: u32,
    /// A timeout was created in this iteration.
    timeout_created: bool,
}

/// Returns the running loop's slot and iteration, and notes that a timeout is being created in
/// it; `None` if no loop runs on this thread.
#[inline]
pub(crate) fn note_timeout() -> Option<Iteration> {
    ITERATION.with(|i| {
        let mut it = i.get()?;
        if !it.timeout_created {
            it.timeout_created = true;
            i.set(Some(it));
        }
        Some(it)
    })
}

/// The loop begins iteration `number` (modulo 2^32).
pub(crate) fn begin_iteration(number: u32) {
    ITERATION.with(|i| {
        if let Some(it) = i.get() {
            i.set(Some(Iteration { number, ..it }));
        }
    });
}

/// The loop ends an iteration: returns true if a timeout was created in it.
pub(crate) fn end_iteration() -> bool {
    ITERATION.with(|i| match i.get() {
        Some(it) if it.timeout_created => {
            i.set(Some(Iteration { timeout_created: false, ..it }));
            true
        }
        _ => false,
    })
}

/// Marks a loop as running on this thread until dropped.
pub(crate) struct EnterGuard(());

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
    let number = core.iterations.get().wrapping_add(1) as u32; // the next to run
    ITERATION.with(|i| i.set(Some(Iteration { slot: core.remote.slot(), number, timeout_created: false })));
    EnterGuard(())
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        ITERATION.with(|i| i.set(None));
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

/// Returns the running loop.
///
/// # Panics
///
/// "no running event loop" if no loop is running on this thread.
#[track_caller]
pub(crate) fn current() -> Rc<Core> {
    match with_running(Rc::clone) {
        Some(core) => core,
        None => panic!("no running event loop"),
    }
}
