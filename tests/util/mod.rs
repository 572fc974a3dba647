//! Shared helpers for the integration tests: a virtual-time loop, an event log, drop guards,
//! and a way to catch a panic's message.
//!
//! Every test file that needs them declares `mod util;`. Keep this small and generic: helpers
//! for one concept belong in that concept's test file.

// Each test file is its own crate and uses only some of these helpers.
#![allow(dead_code)]

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use std::future::IntoFuture;
use std::time::Duration;

use aioloop::EventLoop;

/// Returns a loop on virtual time (asyncio's `TestLoop`): timers fire at once, in deadline order.
pub fn vloop() -> EventLoop {
    EventLoop::builder().virtual_time(true).build().expect("create a virtual-time loop")
}

/// Runs exactly one iteration of the loop (asyncio's `test_utils.run_once`: `stop()` before
/// `run_forever()` makes it run one iteration without blocking).
pub fn run_once(lp: &mut EventLoop) {
    lp.stop();
    lp.run_forever();
}

/// A shared, append-only record of what happened, in order. Clones share the same record.
#[derive(Clone, Default, Debug)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    /// Returns an empty log.
    pub fn new() -> Log {
        Log::default()
    }

    /// Appends an entry.
    pub fn push(&self, entry: impl Into<String>) {
        self.0.borrow_mut().push(entry.into());
    }

    /// Returns a copy of the entries so far.
    pub fn get(&self) -> Vec<String> {
        self.0.borrow().clone()
    }

    /// Returns the entries so far and empties the log.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }

    /// Returns the number of entries.
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    /// Returns true if nothing was logged.
    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    /// Returns a guard that appends `entry` when it is dropped (a Rust "finally" block).
    pub fn on_drop(&self, entry: impl Into<String>) -> LogOnDrop {
        LogOnDrop { log: self.clone(), entry: Some(entry.into()) }
    }

    /// Returns a callback that appends `entry` (for `call_soon`, `call_later`, ...).
    pub fn cb(&self, entry: impl Into<String>) -> impl FnOnce() + 'static {
        let log = self.clone();
        let entry = entry.into();
        move || log.push(entry)
    }
}

/// Appends its entry to a [`Log`] when dropped; [`defuse`](LogOnDrop::defuse) cancels that.
#[derive(Debug)]
pub struct LogOnDrop {
    log: Log,
    entry: Option<String>,
}

impl LogOnDrop {
    /// Drops the guard without logging (the "normal exit" path of a try/finally-like guard).
    pub fn defuse(mut self) {
        self.entry = None;
    }
}

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        if let Some(e) = self.entry.take() {
            self.log.push(e);
        }
    }
}

/// Runs its closure when dropped (a "finally" block that can do anything).
pub struct Defer<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Counts how many of its guards were dropped. Clones share the count.
#[derive(Clone, Default, Debug)]
pub struct DropCounter(Rc<Cell<usize>>);

impl DropCounter {
    /// Returns a counter at zero.
    pub fn new() -> DropCounter {
        DropCounter::default()
    }

    /// Returns a guard that increments the count when dropped.
    pub fn guard(&self) -> DropGuard {
        DropGuard(self.0.clone())
    }

    /// Returns how many guards were dropped so far.
    pub fn count(&self) -> usize {
        self.0.get()
    }
}

/// Increments its [`DropCounter`] when dropped.
#[derive(Debug)]
pub struct DropGuard(Rc<Cell<usize>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Returns the text of a panic payload (`&str` or `String`), or `"<non-string payload>"`.
pub fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".to_string()
    }
}

/// Runs `f`; returns its value, or the message it panicked with.
pub fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_text(&*p))
}

/// Returns `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `fut` to completion and returns its output and the loop iterations it took.
pub fn run_counted<F: IntoFuture>(lp: &mut EventLoop, fut: F) -> (F::Output, u64) {
    let i0 = lp.stats().iterations;
    let out = lp.run_until_complete(fut);
    (out, lp.stats().iterations - i0)
}

/// Panics without running the panic hook (keeps test output quiet).
pub fn fail(msg: &'static str) -> ! {
    std::panic::resume_unwind(Box::new(msg))
}

/// A task body: sleeps `d`, then returns `v`.
pub async fn after<T>(d: Duration, v: T) -> T {
    aioloop::sleep(d).await;
    v
}

/// A global allocator that counts the bytes allocated minus the bytes freed, per thread and in
/// total, for tests that check memory returns to its baseline. A test file installs it with
/// `#[global_allocator] static ALLOC: util::CountingAlloc = util::CountingAlloc;` and reads
/// [`thread_net_bytes`] (robust against tests running in parallel on other threads) or
/// [`total_net_bytes`].
pub struct CountingAlloc;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread (memory freed here that another thread
    /// allocated makes it go down: sum the threads that share objects).
    static THREAD_NET: Cell<isize> = const { Cell::new(0) };
}

static TOTAL_NET: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

fn count_bytes(delta: isize) {
    TOTAL_NET.fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
    // `try_with`: the allocator may run while this thread's locals are being destroyed.
    let _ = THREAD_NET.try_with(|n| n.set(n.get() + delta));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees are ours; the counting touches only an atomic and a `const` thread-local `Cell`
// without destructor, neither of which allocates.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl).
        let p = unsafe { std::alloc::System.alloc(layout) };
        if !p.is_null() {
            count_bytes(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl).
        let p = unsafe { std::alloc::System.alloc_zeroed(layout) };
        if !p.is_null() {
            count_bytes(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { std::alloc::System.dealloc(ptr, layout) };
        count_bytes(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl).
        let p = unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count_bytes(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Returns the bytes this thread allocated minus those it freed, under [`CountingAlloc`].
pub fn thread_net_bytes() -> isize {
    THREAD_NET.with(Cell::get)
}

/// Returns the bytes the whole process allocated minus those it freed, under [`CountingAlloc`].
pub fn total_net_bytes() -> isize {
    TOTAL_NET.load(std::sync::atomic::Ordering::Relaxed)
}

/// Asserts that a loop holds nothing: no task, nothing ready, no timer (the checklist's
/// `debug_assert_quiescent`, as far as [`EventLoop::stats`] can see).
#[track_caller]
pub fn assert_quiescent(lp: &EventLoop) {
    let s = lp.stats();
    assert_eq!((s.tasks, s.ready, s.timers), (0, 0, 0), "the loop is not quiescent: {s:?}");
}
