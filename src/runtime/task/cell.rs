//! The task cell: one allocation holding a task's header and its future, later its output.
//!
//! # Layout
//!
//! ```text
//!   task table (slab)             one allocation per task (malloc)
//!  ┌──────────────────┐          ┌────────────────────────────────────────────┐
//!  │ TaskCell: 16 B   │─────────►│ Header: 16 B    │ Stage<F>                 │
//!  │ (data + vtable)  │          │ id, status,     │ Running { future }       │
//!  └──────────────────┘          │ 7 flags         │ / Finished { output }    │
//!                                │                 │ / Gone                   │
//!                                └────────────────────────────────────────────┘
//! ```
//!
//! The table's entry is the cell's (fat) pointer: its data half points at the allocation, its
//! vtable half is the compiler's vtable of [`StageOps`] for this future's type, the only
//! type-erased part (poll, drop the future, hand out the output, free). A parked task therefore
//! costs the slab 16 bytes and malloc one chunk of `16 + size_of::<Stage<F>>()` bytes (plus
//! malloc's 8-byte size word): for a zero-sized future, 16 + 32 = 48 bytes, where a boxed future
//! in a `Vec` costs 16 + 0 (a box of a zero-sized value allocates nothing) and the same future
//! with its 16-byte header in any executor at least 16 + 32.
//!
//! The joiner and the await link (few tasks have one at a time) stay in the task table's side
//! table, so that they cost the tasks that use them, not every parked task.
//!
//! # Why the waker is still a number
//!
//! async-task and tokio make this allocation the waker too: an atomic reference count in the
//! header keeps the cell alive while a waker exists, so a late wake finds freed memory never.
//! Here a waker names its task by key (src/runtime/waker.rs) and the table maps the key to the
//! cell, so a cell has exactly one owner, its table entry, and no reference count at all: a
//! stale waker, a waker woken on another thread after its task finished, or one that outlives
//! the loop finds no entry (or one whose id does not match) and does nothing.
//!
//! # Invariants (what the `unsafe` below relies on)
//! 1. A [`TaskCell`] is the only owner of its allocation: made by [`TaskCell::new`] in memory
//!    from the cell arena (src/runtime/task/arena.rs), given back by its `Drop` with the same
//!    layout on the same thread, never copied.
//! 2. The header and the stage are disjoint fields, reached through raw-pointer projections
//!    (`addr_of!`), never through a reference to the whole allocation: a `&mut Header` from the
//!    table (a wake, a cancel, a status change) and the `&mut` stage of the poll running at the
//!    same time never overlap.
//! 3. A cell is not freed while its stage is being polled or dropped through [`StagePtr`]: the
//!    loop polls a task only while its status is `Running`, and no path removes a task's entry
//!    while it is `Running` ([`Core::remove_task`](crate::runtime::Core::remove_task) asserts
//!    it). A task's own handle, dropped during its poll, only detaches it.
//! 4. The stage is always a valid [`Stage`]: dropping the future in place, even if its
//!    destructor panics, leaves [`Stage::Gone`] behind, so the cell's `Drop` never drops
//!    anything twice.

use std::alloc::Layout;
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::ptr::{addr_of, addr_of_mut, NonNull};
use std::task::{Context, Poll};

use super::arena::{alloc, dealloc};
use super::Status;

/// What the loop keeps about every task, next to its future: 16 bytes.
pub(crate) struct Header {
    /// The task id; its low bits are the generation in the task's key.
    pub(crate) id: u64,
    /// Where the task is in its life.
    pub(crate) status: Status,
    /// The task has an [`Extra`](super::Extra) in the table's side table (a joiner, or an
    /// await link).
    pub(crate) has_extra: bool,
    /// Its `Extra` holds an await link (so a poll, which clears the link, need not look when it
    /// only holds a joiner).
    pub(crate) awaits: bool,
    /// The task is in the ready queue.
    pub(crate) scheduled: bool,
    /// `cancel()` was called and the task has not run since (asyncio's `_must_cancel`).
    pub(crate) cancel_requested: bool,
    /// No handle refers to the task any more: the loop removes the entry when it finishes.
    pub(crate) detached: bool,
    /// A panic outcome must not be reported as never retrieved (`cancel()` was called on it).
    pub(crate) quiet: bool,
    /// The main task of `run_until_complete` (its future lives on the caller's stack; the cell
    /// holds none).
    pub(crate) is_main: bool,
}

impl Header {
    /// A header for a new task.
    pub(crate) fn new(id: u64, status: Status, is_main: bool, scheduled: bool) -> Header {
        Header {
            id,
            status,
            has_extra: false,
            awaits: false,
            scheduled,
            cancel_requested: false,
            detached: false,
            quiet: false,
            is_main,
        }
    }
}

/// The allocation: the header, then the future's stage (unsized in the table's view).
struct Boxed<S: ?Sized> {
    header: Header,
    stage: S,
}

/// A task's future, then its output.
pub(crate) enum Stage<F: Future> {
    /// Not finished: the future (pinned: the allocation never moves).
    Running(F),
    /// Completed with this output, until a handle takes it.
    Finished(Option<F::Output>),
    /// No future and no output: dropped (cancelled, panicked, or the output was taken), or never
    /// had one (the main task, whose future is on the caller's stack; a task born cancelled).
    Gone,
}

/// The type-erased operations on a [`Stage`]: the cell's vtable.
pub(crate) trait StageOps {
    /// Polls the future; on completion drops it and keeps the output in place. A finished or
    /// gone stage is `Ready` at once.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
    /// Drops the future (or the output) in place, leaving [`Stage::Gone`] even if a destructor
    /// panics (the panic goes on to the caller).
    fn drop_in_place(self: Pin<&mut Self>);
    /// Moves the output into `out`, which must be an `Option<F::Output>`.
    fn take_output(self: Pin<&mut Self>, out: &mut dyn Any);
    /// Returns true if the stage still holds the future.
    fn has_future(&self) -> bool;
    /// Returns true if dropping the stage runs no code (nothing left, or an output without
    /// drop glue): no user destructor can panic in it.
    fn drop_is_trivial(&self) -> bool;
}

impl<F: Future> StageOps for Stage<F>
where
    F::Output: 'static,
{
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: the future is never moved out of the stage: it is polled pinned and dropped in
        // place; only the output (not pinned) and `Gone` are written over it.
        let this = unsafe { self.get_unchecked_mut() };
        let Stage::Running(fut) = this else { return Poll::Ready(()) };
        // SAFETY: `this` is pinned (it lives in the cell's allocation, which never moves), so its
        // future is too (structural pinning: `Stage` never moves a `Running` future).
        let out = match unsafe { Pin::new_unchecked(fut) }.poll(cx) {
            Poll::Ready(out) => out,
            Poll::Pending => return Poll::Pending,
        };
        // The future goes, the output stays: if the future's destructor panics, the output is
        // kept all the same (and dropped later by the loop, where a panic is contained), as
        // an assignment would keep it.
        replace(this, Stage::Finished(Some(out)));
        Poll::Ready(())
    }

    fn drop_in_place(self: Pin<&mut Self>) {
        // SAFETY: dropping in place is allowed for pinned data; nothing is moved.
        replace(unsafe { self.get_unchecked_mut() }, Stage::Gone);
    }

    fn take_output(self: Pin<&mut Self>, out: &mut dyn Any) {
        // SAFETY: only the (unpinned) output is moved out; a `Running` stage is left alone.
        let this = unsafe { self.get_unchecked_mut() };
        if let (Stage::Finished(value), Some(slot)) = (this, out.downcast_mut::<Option<F::Output>>()) {
            *slot = value.take();
        }
    }

    fn has_future(&self) -> bool {
        matches!(self, Stage::Running(_))
    }

    fn drop_is_trivial(&self) -> bool {
        match self {
            Stage::Running(_) => !std::mem::needs_drop::<F>(),
            Stage::Finished(out) => out.is_none() || !std::mem::needs_drop::<F::Output>(),
            Stage::Gone => true,
        }
    }
}

/// Drops the stage's value in place and writes `new` there, even if a destructor panics (the
/// panic then goes on, with `new` in place): the stage is never left dropped, so nothing is
/// dropped twice (invariant 4). The old value is not moved: a pinned future may be replaced so.
fn replace<F: Future>(stage: &mut Stage<F>, new: Stage<F>) {
    /// Writes its stage when dropped: on the way out, or on the unwind of a panicking destructor.
    struct Refill<F: Future>(*mut Stage<F>, Option<Stage<F>>);
    impl<F: Future> Drop for Refill<F> {
        fn drop(&mut self) {
            if let Some(new) = self.1.take() {
                // SAFETY: the pointer is the stage dropped in place just before (valid for
                // writes, its old value gone), so it is overwritten without a second drop.
                unsafe { std::ptr::write(self.0, new) }
            }
        }
    }
    let stage: *mut Stage<F> = stage;
    let refill = Refill(stage, Some(new));
    // SAFETY: `stage` is valid (it came from a `&mut`) and, by `Refill`, is written again
    // right after, panic or not, before anything can read it.
    unsafe { std::ptr::drop_in_place(stage) };
    drop(refill);
}

/// A task's cell: header and stage in one allocation, owned by the task table's entry (see the
/// module's invariants).
pub(crate) struct TaskCell(NonNull<Boxed<dyn StageOps>>);

/// A raw handle on a cell's stage, for the loop to poll or drop the future without holding a
/// borrow of the table while user code runs (invariant 3: the cell outlives it).
#[derive(Clone, Copy)]
pub(crate) struct StagePtr(NonNull<dyn StageOps>);

impl TaskCell {
    /// Allocates a cell for `fut`.
    #[inline(always)]
    pub(crate) fn new<F>(header: Header, fut: F) -> TaskCell
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        TaskCell::with_stage(header, Stage::Running(fut))
    }

    /// Allocates a cell with no future (the main task; a task born cancelled).
    pub(crate) fn empty(header: Header) -> TaskCell {
        TaskCell::with_stage(header, Stage::<std::future::Pending<()>>::Gone)
    }

    /// Allocates a cell holding `stage`, from the cell arena (src/runtime/task/arena.rs).
    #[inline(always)]
    fn with_stage<F>(header: Header, stage: Stage<F>) -> TaskCell
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let p = alloc(Layout::new::<Boxed<Stage<F>>>()).cast::<Boxed<Stage<F>>>();
        // SAFETY: `p` is fresh memory of this layout (size and alignment), written once before
        // anything reads it; from here on the cell owns it (invariant 1).
        unsafe { p.as_ptr().write(Boxed { header, stage }) };
        let p: NonNull<Boxed<dyn StageOps>> = p;
        TaskCell(p)
    }

    /// The stage, to poll or drop in place without a borrow of the table (invariant 3).
    #[inline]
    pub(crate) fn stage(&self) -> StagePtr {
        let p = self.0.as_ptr();
        // SAFETY: `p` points to a live allocation (invariant 1); the projection creates no
        // reference, so it does not touch the header (invariant 2).
        StagePtr(unsafe { NonNull::new_unchecked(addr_of_mut!((*p).stage)) })
    }

    /// Returns true if dropping the cell runs no user code (see [`StageOps::drop_is_trivial`]).
    #[inline]
    pub(crate) fn drop_is_trivial(&self) -> bool {
        // SAFETY: `&self` shares the owner (invariant 1) and no poll runs on a cell whose
        // owner is at hand (invariant 3), so the stage is not borrowed mutably meanwhile.
        unsafe { (*self.stage().0.as_ptr()).drop_is_trivial() }
    }

    /// Moves the output of a finished task into `out` (an `Option<F::Output>`).
    pub(crate) fn take_output(&mut self, out: &mut dyn Any) {
        // SAFETY: `&mut self` is the unique owner (invariant 1) and no poll runs on a finished
        // task's stage, so this is the only reference to the stage; it never moves (pinned).
        unsafe { Pin::new_unchecked(&mut *self.stage().0.as_ptr()) }.take_output(out)
    }
}

impl StagePtr {
    /// Polls the task's future.
    ///
    /// # Safety
    /// The cell is alive and nothing else touches its stage during the call (invariant 3).
    #[inline(always)]
    pub(crate) unsafe fn poll(self, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: by the caller's contract; the stage never moves (pinned in the allocation).
        unsafe { Pin::new_unchecked(&mut *self.0.as_ptr()) }.poll(cx)
    }

    /// Drops the task's future in place (a cancellation), leaving `Gone`.
    ///
    /// # Safety
    /// As for [`poll`](Self::poll).
    pub(crate) unsafe fn drop_in_place(self) {
        // SAFETY: by the caller's contract; dropping in place is allowed for pinned data.
        unsafe { Pin::new_unchecked(&mut *self.0.as_ptr()) }.drop_in_place()
    }

    /// Returns true if the stage still holds the future.
    ///
    /// # Safety
    /// The cell is alive and no poll of it is running.
    pub(crate) unsafe fn has_future(self) -> bool {
        // SAFETY: by the caller's contract.
        unsafe { (*self.0.as_ptr()).has_future() }
    }
}

impl TaskCell {
    /// Asks the CPU to bring the cell's first two cache lines (its header and the start of its
    /// future) into its caches: a hint for phase 6's look-ahead (src/runtime/lookahead.rs).
    #[inline(always)]
    pub(crate) fn prefetch(&self) {
        let p = self.0.as_ptr().cast::<u8>().cast_const();
        prefetch(p);
        prefetch(p.wrapping_add(64));
    }
}

/// Asks the CPU to bring the cache line at `p` into its caches. It reads nothing and changes
/// nothing, so any address will do, even a dangling one; on targets other than x86-64 (and
/// under Miri) it is a no-op.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `_mm_prefetch` is unsafe only because it is a `target_feature(sse)` function,
    // and SSE is part of the baseline of every x86-64 target. A prefetch never faults and has
    // no effect but on the caches, so any address is fine.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = p;
}

impl std::ops::Deref for TaskCell {
    type Target = Header;

    #[inline(always)]
    fn deref(&self) -> &Header {
        // SAFETY: the allocation is alive (invariant 1); the projection reaches the header alone
        // (invariant 2), and `&self` shares the owner, so no `&mut Header` exists meanwhile.
        unsafe { &*addr_of!((*self.0.as_ptr()).header) }
    }
}

impl std::ops::DerefMut for TaskCell {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut Header {
        // SAFETY: as for `deref`; `&mut self` is the unique owner, so this is the only reference
        // to the header.
        unsafe { &mut *addr_of_mut!((*self.0.as_ptr()).header) }
    }
}

impl Drop for TaskCell {
    fn drop(&mut self) {
        /// Gives the memory back after the stage's destructor, even if that panics.
        struct Free(NonNull<u8>, Layout);
        impl Drop for Free {
            #[inline(always)]
            fn drop(&mut self) {
                // SAFETY: the memory came from `alloc(self.1)` in `with_stage`, on this thread
                // (a cell is `!Send`), and its value was just dropped: nothing uses it again.
                unsafe { dealloc(self.0, self.1) }
            }
        }
        let p = self.0.as_ptr();
        // SAFETY: the cell is alive and `&mut self` is its only owner (invariant 1), so a
        // reference to the whole allocation aliases nothing; it is used only for the layout.
        let layout = Layout::for_value(unsafe { &*p });
        let free = Free(self.0.cast(), layout);
        // SAFETY: the value was written in `with_stage` and is dropped once, here (invariant 1);
        // nothing polls it any more (invariant 3). The stage's destructor (a future's or an
        // output's: user code) runs here, so callers drop cells outside borrows.
        unsafe { std::ptr::drop_in_place(p) };
        drop(free);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn a_table_entry_is_16_bytes_and_a_parked_cell_24() {
        #[allow(dead_code)]
        enum SlabEntry {
            Vacant(usize),
            Occupied(TaskCell),
        }
        assert_eq!(std::mem::size_of::<SlabEntry>(), 16);
        assert_eq!(std::mem::size_of::<Header>(), 16);
        assert_eq!(std::mem::size_of::<Boxed<Stage<std::future::Pending<()>>>>(), 24);
    }

    struct Noisy(Rc<Cell<u32>>, bool);
    impl Drop for Noisy {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
            if self.1 {
                panic!("destructor panics");
            }
        }
    }

    fn waker() -> std::task::Waker {
        std::task::Waker::noop().clone()
    }

    #[test]
    fn a_completed_future_is_dropped_once_and_its_output_kept() {
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let noisy = Noisy(drops.clone(), false);
        let mut cell = TaskCell::new(Header::new(1, Status::Idle, false, false), async move {
            let _keep = noisy;
            d.get() + 40
        });
        let w = waker();
        let mut cx = Context::from_waker(&w);
        // SAFETY: the cell is alive and nothing else touches its stage.
        assert_eq!(unsafe { cell.stage().poll(&mut cx) }, Poll::Ready(()));
        assert_eq!(drops.get(), 1);
        let mut out: Option<u32> = None;
        cell.take_output(&mut out);
        assert_eq!(out, Some(40));
        drop(cell);
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn a_panicking_destructor_leaves_gone_and_is_not_run_twice() {
        let drops = Rc::new(Cell::new(0));
        let noisy = Noisy(drops.clone(), true);
        let cell = TaskCell::new(Header::new(1, Status::Idle, false, false), async move {
            let _keep = noisy;
            std::future::pending::<()>().await
        });
        let w = waker();
        let mut cx = Context::from_waker(&w);
        // SAFETY: the cell is alive and nothing else touches its stage.
        assert!(unsafe { cell.stage().poll(&mut cx) }.is_pending());
        let stage = cell.stage();
        // SAFETY: as above.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { stage.drop_in_place() }));
        assert!(r.is_err());
        assert_eq!(drops.get(), 1);
        // SAFETY: as above.
        assert!(!unsafe { stage.has_future() });
        drop(cell);
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn a_completed_future_whose_destructor_panics_keeps_its_output() {
        let drops = Rc::new(Cell::new(0));
        /// Ready at once; its destructor (run once it completed) panics.
        struct Done(Noisy);
        impl Future for Done {
            type Output = Rc<Cell<u32>>;
            fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Rc<Cell<u32>>> {
                Poll::Ready(self.0 .0.clone())
            }
        }
        let cell = TaskCell::new(Header::new(1, Status::Idle, false, false), Done(Noisy(drops.clone(), true)));
        let w = waker();
        let mut cx = Context::from_waker(&w);
        // SAFETY: the cell is alive and nothing else touches its stage.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { cell.stage().poll(&mut cx) }));
        assert!(r.is_err());
        assert_eq!(drops.get(), 1);
        let mut cell = cell;
        let mut out: Option<Rc<Cell<u32>>> = None;
        cell.take_output(&mut out);
        assert!(out.is_some(), "the output survives the future's panicking destructor");
        drop(cell);
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn a_dropped_cell_drops_its_pending_future_or_its_output() {
        let drops = Rc::new(Cell::new(0));
        let noisy = Noisy(drops.clone(), false);
        let cell = TaskCell::new(Header::new(1, Status::Idle, false, false), async move {
            let _keep = noisy;
            std::future::pending::<()>().await
        });
        drop(cell);
        assert_eq!(drops.get(), 1);
        let noisy = Noisy(drops.clone(), false);
        let cell = TaskCell::new(Header::new(2, Status::Idle, false, false), async move { noisy });
        let w = waker();
        let mut cx = Context::from_waker(&w);
        // SAFETY: the cell is alive and nothing else touches its stage.
        assert!(unsafe { cell.stage().poll(&mut cx) }.is_ready());
        assert_eq!(drops.get(), 1, "the output is kept, not dropped");
        drop(cell);
        assert_eq!(drops.get(), 2);
    }

    #[test]
    fn the_header_changes_while_the_stage_is_borrowed_by_a_poll() {
        // A task that wakes (or cancels) itself changes its header through the table while its
        // stage is mutably borrowed by the poll: the two must not overlap (invariant 2; Miri).
        let table: Rc<std::cell::RefCell<Option<TaskCell>>> = Rc::default();
        let t = table.clone();
        let fut = std::future::poll_fn(move |_| {
            let mut table = t.borrow_mut();
            let header = &mut **table.as_mut().unwrap();
            header.scheduled = true;
            Poll::Ready(header.id)
        });
        *table.borrow_mut() = Some(TaskCell::new(Header::new(7, Status::Running, false, false), fut));
        let stage = table.borrow().as_ref().unwrap().stage();
        let w = waker();
        // SAFETY: the cell is alive (in `table`) and only this poll touches its stage.
        assert!(unsafe { stage.poll(&mut Context::from_waker(&w)) }.is_ready());
        let mut cell = table.borrow_mut().take().unwrap(); // (breaks the cycle through the future)
        assert!(cell.scheduled);
        let mut out: Option<u64> = None;
        cell.take_output(&mut out);
        assert_eq!(out, Some(7));
    }
}
