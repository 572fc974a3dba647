//! The loop running on this thread (asyncio's `get_running_loop()`): set while a loop runs,
//! read by the free functions of [`context`](crate::context) and by wakers woken on this thread.
//!
//! # Invariants
//! - At most one loop runs on a thread at a time; running a second one inside the first fails
//!   with asyncio's message.
//! - The thread-local is set only while a loop runs (`run_until_complete`, `run_forever`), so
//!   a waker woken on this thread at that moment reaches the ready queue without a lock.

use std::cell::RefCell;
use std::rc::Rc;

use super::Core;

thread_local! {
    /// The loop running on this thread, if any.
    static RUNNING: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
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
    EnterGuard(())
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
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
