//! The task cell: one allocation holding a task's header and its future, later its output.
//!
//! # Layout
//!
//! ```text
//!   task table (slots.rs)         one allocation per task (the cell arena)
//!  ┌──────────────────┐          ┌──────────────────────────────────────────────┐
//!  │ TaskCell: 16 B   │─────────►│ Header: 15 B, and   │ Stage<F>: a union of   │
//!  │ (data + vtable)  │          │ holds: 1 B          │ the future, then its   │
//!  └──────────────────┘          │ (id, status, flags) │ output (Some or None)  │
//!                                └──────────────────────────────────────────────┘
//! ```
//!
//! The table's entry is the cell's (fat) pointer: its data half points at the allocation, its
//! vtable half is the compiler's vtable of [`StageOps`] for this future's type, the only
//! type-erased part (poll, drop the future, hand out the output, free). A parked task therefore
//! costs the table 16 bytes and the arena 16 bytes plus the larger of the future and
//! `Option<F::Output>`, rounded up to 8 (or to the stage's alignment, if larger): for the
//! `spawn` benchmark's 16-byte `async` block, a 32-byte cell, the size of the floor's boxed
//! future (16 bytes and malloc's size word, rounded to 16).
//!
//! Which of the two the stage holds is a byte beside the header (`holds`), not an enum's tag: a
//! future made by an `async` block exposes no spare bit for an enum's tag to use, so an enum
//! around it adds a whole word after any future whose size is a multiple of 8 (that `async`
//! block in an enum of three variants made a 40-byte cell).
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
//! 2. The header, `holds` and the stage are disjoint fields, reached through raw-pointer
//!    projections (`addr_of!`), never through a reference to the whole allocation: a
//!    `&mut Header` from the table (a wake, a cancel, a status change) and the `&mut` stage of
//!    the poll running at the same time never overlap.
//! 3. A cell is not freed while its stage is being polled or dropped through [`StagePtr`]: the
//!    loop polls a task only while its status is `Running`, and no path removes a task's entry
//!    while it is `Running` ([`Core::remove_task`](crate::runtime::Core::remove_task) asserts
//!    it). A task's own handle, dropped during its poll, only detaches it.
//! 4. The stage always holds a value, the future or the output: dropping the future in place,
//!    even if its destructor panics, leaves an output behind (`None` for a cancellation), so
//!    the cell's `Drop` never drops anything twice.
//! 5. The cell's `holds` byte says which field of the stage holds that value. It is not part of
//!    the [`Header`] the table reads and changes, and only this module reads or writes it: a
//!    stage operation is told it and never writes it; the wrapper that called it writes
//!    `holds` after the operation's borrow of the stage is over, through the cell's own pointer
//!    (invariant 2), when the operation reports that the future is gone: on return, or on the
//!    unwind of a destructor that panicked after it (the output is in place then too).

use std::alloc::Layout;
use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::ptr::{addr_of, addr_of_mut, NonNull};
use std::task::{Context, Poll};

use super::arena::{alloc, dealloc};
use super::Status;

/// What the loop keeps about every task, next to its future: 15 bytes (packed, so that the
/// cell's [`Holds`] byte fits beside it in 16). The task table reads and changes it through
/// [`TaskCell`]'s `Deref`/`DerefMut`; `holds` is not part of it, so no change to a header, not
/// even replacing it whole, can make `holds` lie (invariant 5). (Packed: nothing takes a
/// reference to `id`, the one field aligned to more than a byte; the compiler refuses one.)
#[repr(C, packed)]
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
    /// [`MAIN`] and [`QUIET`]: rarely read, so they share a byte.
    marks: u8,
}

/// [`Header::marks`]: the main task of `run_until_complete` (its future lives on the caller's
/// stack; the cell holds none).
const MAIN: u8 = 1;
/// [`Header::marks`]: a panic outcome must not be reported as never retrieved (`cancel()` was
/// called on it).
const QUIET: u8 = 2;

/// Which field of a cell's [`Stage`] is there: kept in the header, so that the stage is exactly
/// as large as the larger of the future and its output.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Holds {
    /// The future (pinned: the allocation never moves).
    Future,
    /// The output, `Some` until a handle takes it; `None` once the future was dropped without
    /// one (cancelled, panicked), or for a cell that never had a future (the main task's, a task
    /// born cancelled).
    Output,
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
            marks: if is_main { MAIN } else { 0 },
        }
    }

    /// The main task of `run_until_complete`.
    #[inline(always)]
    pub(crate) fn is_main(&self) -> bool {
        self.marks & MAIN != 0
    }

    /// Makes this the header of the main task of `run_until_complete`.
    #[inline(always)]
    pub(crate) fn set_main(&mut self) {
        self.marks |= MAIN;
    }

    /// A panic outcome must not be reported as never retrieved.
    #[inline(always)]
    pub(crate) fn quiet(&self) -> bool {
        self.marks & QUIET != 0
    }

    /// Marks a panic outcome as seen (`cancel()` was called on the task).
    #[inline(always)]
    pub(crate) fn set_quiet(&mut self) {
        self.marks |= QUIET;
    }
}

/// The allocation: the header and what the stage holds (16 bytes together), then the future's
/// stage (unsized in the table's view).
struct Boxed<S: ?Sized> {
    header: Header,
    /// What the stage holds (invariant 5). Only this module reads or writes it.
    holds: Holds,
    stage: S,
}

/// A task's future, then its output, in the same bytes: which one is there is the header's
/// [`Holds`] (invariant 5). An enum here would add its own tag, a whole word after a future
/// whose size is a multiple of 8 (an `async` block exposes no spare bit for it to use).
pub(crate) union Stage<F: Future> {
    future: ManuallyDrop<F>,
    output: ManuallyDrop<Option<F::Output>>,
}

/// The type-erased operations on a [`Stage`]: the cell's vtable. Each is told what the stage
/// holds; none writes `holds` (the wrappers on [`StagePtr`] and [`TaskCell`] do).
pub(crate) trait StageOps {
    /// Polls the future (if `holds` is `Future`; anything else is `Ready` at once). On
    /// completion it sets `done`, then drops the future and writes the output in its place;
    /// the output is written even if the future's destructor panics (the panic goes on).
    ///
    /// # Safety
    /// `holds` is what the stage holds.
    unsafe fn poll(self: Pin<&mut Self>, holds: Holds, done: &Cell<bool>, cx: &mut Context<'_>) -> Poll<()>;
    /// Drops what the stage holds in place and writes `None` as its output. For a future it
    /// first sets `done`; `None` is written even if a destructor panics (the panic goes on).
    ///
    /// # Safety
    /// As for `poll`.
    unsafe fn drop_in_place(self: Pin<&mut Self>, holds: Holds, done: &Cell<bool>);
    /// Moves the output into `out`, which must be an `Option<F::Output>` (nothing if the stage
    /// holds the future).
    ///
    /// # Safety
    /// As for `poll`.
    unsafe fn take_output(self: Pin<&mut Self>, holds: Holds, out: &mut dyn Any);
    /// Returns true if dropping what the stage holds runs no code (no output left, or a value
    /// without drop glue): no user destructor can panic in it.
    ///
    /// # Safety
    /// As for `poll`.
    unsafe fn drop_is_trivial(&self, holds: Holds) -> bool;
    /// Drops what the stage holds, for good (the cell is being freed).
    ///
    /// # Safety
    /// As for `poll`; the stage is not used again.
    unsafe fn drop_value(self: Pin<&mut Self>, holds: Holds);
}

impl<F: Future> StageOps for Stage<F>
where
    F::Output: 'static,
{
    unsafe fn poll(self: Pin<&mut Self>, holds: Holds, done: &Cell<bool>, cx: &mut Context<'_>) -> Poll<()> {
        if holds != Holds::Future {
            return Poll::Ready(());
        }
        // SAFETY: the future is never moved out of the stage: it is polled pinned and dropped in
        // place; only the output (not pinned) is written over it.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: the stage holds the future (the caller's contract), pinned in the allocation,
        // which never moves (structural pinning: nothing moves a future out of a stage).
        let fut = unsafe { Pin::new_unchecked(&mut *this.future) };
        let out = match fut.poll(cx) {
            Poll::Ready(out) => out,
            Poll::Pending => return Poll::Pending,
        };
        done.set(true);
        // SAFETY: the stage holds the future, dropped once here; the output takes its place,
        // even if the destructor panics.
        unsafe { replace_future(this, Some(out)) };
        Poll::Ready(())
    }

    unsafe fn drop_in_place(self: Pin<&mut Self>, holds: Holds, done: &Cell<bool>) {
        // SAFETY: dropping in place is allowed for pinned data; nothing is moved.
        let this = unsafe { self.get_unchecked_mut() };
        match holds {
            Holds::Future => {
                done.set(true);
                // SAFETY: the stage holds the future (the caller's contract).
                unsafe { replace_future(this, None) }
            }
            Holds::Output => {
                // (`take` first: if the output's destructor panics, `None` is in place already.)
                // SAFETY: the stage holds the output (the caller's contract).
                let out = unsafe { (*this.output).take() };
                drop(out);
            }
        }
    }

    unsafe fn take_output(self: Pin<&mut Self>, holds: Holds, out: &mut dyn Any) {
        // SAFETY: only the (unpinned) output is moved out; a future is left alone.
        let this = unsafe { self.get_unchecked_mut() };
        if let (Holds::Output, Some(slot)) = (holds, out.downcast_mut::<Option<F::Output>>()) {
            // SAFETY: the stage holds the output (the caller's contract).
            *slot = unsafe { (*this.output).take() };
        }
    }

    unsafe fn drop_is_trivial(&self, holds: Holds) -> bool {
        match holds {
            Holds::Future => !std::mem::needs_drop::<F>(),
            // SAFETY: the stage holds the output (the caller's contract).
            Holds::Output => !std::mem::needs_drop::<F::Output>() || unsafe { self.output.is_none() },
        }
    }

    unsafe fn drop_value(self: Pin<&mut Self>, holds: Holds) {
        // SAFETY: dropping in place is allowed for pinned data; the stage is not used again.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: the field dropped is the one the stage holds (the caller's contract).
        unsafe {
            match holds {
                Holds::Future => ManuallyDrop::drop(&mut this.future),
                Holds::Output => ManuallyDrop::drop(&mut this.output),
            }
        }
    }
}

/// Drops the future in `stage` in place and writes `output` there, even if the future's
/// destructor panics (the panic then goes on, with the output in place): the stage is never
/// left without a value, so nothing is dropped twice. The future is not moved: a pinned future
/// may be replaced so.
///
/// # Safety
/// `stage` holds the future.
unsafe fn replace_future<F: Future>(stage: &mut Stage<F>, output: Option<F::Output>) {
    /// Writes the output when dropped: on the way out, or on the unwind of a panicking
    /// destructor.
    struct Refill<F: Future>(*mut Stage<F>, Option<Option<F::Output>>);
    impl<F: Future> Drop for Refill<F> {
        fn drop(&mut self) {
            if let Some(output) = self.1.take() {
                // SAFETY: the pointer is the stage whose future was dropped in place just
                // before (valid for writes, its old value gone), so it is overwritten without a
                // second drop.
                unsafe { addr_of_mut!((*self.0).output).write(ManuallyDrop::new(output)) }
            }
        }
    }
    let stage: *mut Stage<F> = stage;
    let refill = Refill(stage, Some(output));
    // SAFETY: the stage holds the future (the caller's contract), valid since it came from a
    // `&mut`; by `Refill`, its bytes are written again right after, panic or not, before
    // anything can read them.
    unsafe { ManuallyDrop::drop(&mut (*stage).future) };
    drop(refill);
}

/// A task's cell: header and stage in one allocation, owned by the task table's entry (see the
/// module's invariants).
pub(crate) struct TaskCell(NonNull<Boxed<dyn StageOps>>);

/// A raw handle on a cell, for the loop to poll or drop the future without holding a borrow of
/// the table while user code runs (invariant 3: the cell outlives it).
#[derive(Clone, Copy)]
pub(crate) struct StagePtr(NonNull<Boxed<dyn StageOps>>);

impl TaskCell {
    /// Allocates a cell for `fut`.
    #[inline(always)]
    pub(crate) fn new<F>(header: Header, fut: F) -> TaskCell
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        TaskCell::with_stage(header, Holds::Future, Stage { future: ManuallyDrop::new(fut) })
    }

    /// Allocates a cell with no future (the main task; a task born cancelled).
    pub(crate) fn empty(header: Header) -> TaskCell {
        TaskCell::with_stage(
            header,
            Holds::Output,
            Stage::<std::future::Pending<()>> { output: ManuallyDrop::new(None) },
        )
    }

    /// Allocates a cell holding `stage` (which holds `holds`), from the cell arena
    /// (src/runtime/task/arena.rs).
    #[inline(always)]
    fn with_stage<F>(header: Header, holds: Holds, stage: Stage<F>) -> TaskCell
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let p = alloc(Layout::new::<Boxed<Stage<F>>>()).cast::<Boxed<Stage<F>>>();
        // SAFETY: `p` is fresh memory of this layout (size and alignment), written once before
        // anything reads it; from here on the cell owns it (invariant 1).
        unsafe { p.as_ptr().write(Boxed { header, holds, stage }) };
        let p: NonNull<Boxed<dyn StageOps>> = p;
        TaskCell(p)
    }

    /// The stage, to poll or drop in place without a borrow of the table (invariant 3).
    #[inline]
    pub(crate) fn stage(&self) -> StagePtr {
        StagePtr(self.0)
    }

    /// Returns true if dropping the cell runs no user code (see [`StageOps::drop_is_trivial`]).
    #[inline]
    pub(crate) fn drop_is_trivial(&self) -> bool {
        let p = self.0.as_ptr();
        // SAFETY: `&self` shares the owner (invariant 1) and no poll runs on a cell whose owner
        // is at hand (invariant 3), so neither part is borrowed mutably meanwhile; `holds` is
        // what the stage holds (invariant 5).
        unsafe { (*addr_of!((*p).stage)).drop_is_trivial(*addr_of!((*p).holds)) }
    }

    /// Moves the output of a finished task into `out` (an `Option<F::Output>`).
    pub(crate) fn take_output(&mut self, out: &mut dyn Any) {
        let p = self.0.as_ptr();
        // SAFETY: `&mut self` is the unique owner (invariant 1) and no poll runs on a finished
        // task's stage, so this is the only reference to the stage; it never moves (pinned);
        // `holds` is what it holds (invariant 5), and taking the output leaves an output.
        unsafe {
            let holds = *addr_of!((*p).holds);
            Pin::new_unchecked(&mut *addr_of_mut!((*p).stage)).take_output(holds, out)
        }
    }
}

/// Sets the header's [`Holds`] to `Output` when dropped, if `done` says that the stage's
/// operation got that far: on the way out of it, or on the unwind of a destructor that
/// panicked after the future was gone (the output is in place then too).
struct MarkOutput<'a> {
    cell: *mut Boxed<dyn StageOps>,
    done: &'a Cell<bool>,
}

impl Drop for MarkOutput<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.done.get() {
            // SAFETY: the cell is alive (the wrapper's contract: invariant 3); the pointer is
            // derived from the cell's own and reaches the header's `holds` alone, and the
            // stage's operation, whose borrow of the stage is over, wrote the output (invariant 5).
            unsafe { addr_of_mut!((*self.cell).holds).write(Holds::Output) }
        }
    }
}

impl StagePtr {
    /// What the stage holds.
    ///
    /// # Safety
    /// The cell is alive and no `&mut Header` to it is in use.
    #[inline(always)]
    unsafe fn holds(self) -> Holds {
        // SAFETY: by the caller's contract; a read through the cell's own pointer.
        unsafe { *addr_of!((*self.0.as_ptr()).holds) }
    }

    /// Polls the task's future.
    ///
    /// # Safety
    /// The cell is alive and nothing else touches its stage during the call (invariant 3), and
    /// no `&mut Header` to it is in use at the call and at its return.
    #[inline(always)]
    pub(crate) unsafe fn poll(self, cx: &mut Context<'_>) -> Poll<()> {
        let p = self.0.as_ptr();
        let done = Cell::new(false);
        let _mark = MarkOutput { cell: p, done: &done };
        // SAFETY: by the caller's contract; `holds` is what the stage holds (invariant 5), and
        // the stage never moves (pinned in the allocation). The header is not touched meanwhile
        // (invariant 2): `_mark` writes it after the stage's borrow ends.
        unsafe {
            let holds = self.holds();
            Pin::new_unchecked(&mut *addr_of_mut!((*p).stage)).poll(holds, &done, cx)
        }
    }

    /// Drops the task's future in place (a cancellation), or its output, leaving `None`.
    ///
    /// # Safety
    /// As for [`poll`](Self::poll).
    pub(crate) unsafe fn drop_in_place(self) {
        let p = self.0.as_ptr();
        let done = Cell::new(false);
        let _mark = MarkOutput { cell: p, done: &done };
        // SAFETY: as in `poll`; dropping in place is allowed for pinned data.
        unsafe {
            let holds = self.holds();
            Pin::new_unchecked(&mut *addr_of_mut!((*p).stage)).drop_in_place(holds, &done)
        }
    }

    /// Returns true if the stage still holds the future.
    ///
    /// # Safety
    /// The cell is alive and no `&mut Header` to it is in use.
    pub(crate) unsafe fn has_future(self) -> bool {
        // SAFETY: by the caller's contract.
        unsafe { self.holds() == Holds::Future }
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
    #[cfg(all(target_arch = "x86_64", target_feature = "sse", not(miri)))]
    // SAFETY: `_mm_prefetch` is unsafe to call only because it is a `target_feature(sse)`
    // function, and this is compiled only where SSE is enabled. A prefetch never faults and
    // has no effect but on the caches, so any address is fine.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse", not(miri))))]
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
        // SAFETY: the stage's value was written in `with_stage` and is dropped once, here
        // (invariant 1), as what `holds` says it is (invariant 5); nothing polls it any more
        // (invariant 3). (The header has no drop glue.) The stage's destructor (a future's or an
        // output's: user code) runs here, so callers drop cells outside borrows.
        unsafe {
            let holds = *addr_of!((*p).holds);
            Pin::new_unchecked(&mut *addr_of_mut!((*p).stage)).drop_value(holds);
        }
        drop(free);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn a_table_entry_is_16_bytes_and_a_cell_the_header_and_the_larger_of_future_and_output() {
        #[allow(dead_code)]
        enum SlabEntry {
            Vacant(usize),
            Occupied(TaskCell),
        }
        assert_eq!(std::mem::size_of::<SlabEntry>(), 16);
        assert_eq!(std::mem::size_of::<Header>(), 15);
        assert_eq!(std::mem::size_of::<Boxed<()>>(), 16);
        // A zero-sized future whose output is `()`: 16 + 1 bytes (`Option<()>`), which the
        // arena serves from its 24-byte class (sizes are rounded up to 8).
        assert_eq!(std::mem::size_of::<Boxed<Stage<std::future::Pending<()>>>>(), 17);
        // An `async` block of 16 bytes (a pointer and its state): no enum tag after it.
        let done = Rc::new(Cell::new(0u32));
        let fut = async move { done.set(done.get() + 1) };
        fn cell_size<F: Future>(_: &F) -> usize {
            std::mem::size_of::<Boxed<Stage<F>>>()
        }
        assert_eq!(std::mem::size_of_val(&fut), 16);
        assert_eq!(cell_size(&fut), 32);
        // An output larger than the future: the stage is the output's size.
        assert_eq!(cell_size(&std::future::ready([0u64; 4])), 16 + 40);
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
    fn a_header_replaced_whole_leaves_what_the_stage_holds_alone() {
        // `holds` is not part of the header the table can change (invariant 5): replacing the
        // header (safe code, through `DerefMut`) cannot make the cell drop its future as an
        // output (review of 2026-12-07; under Miri, a wrong field would be an error).
        let drops = Rc::new(Cell::new(0));
        let noisy = Noisy(drops.clone(), false);
        let mut cell = TaskCell::new(Header::new(1, Status::Idle, false, false), async move {
            let _keep = noisy;
            std::future::pending::<String>().await
        });
        *cell = Header::new(2, Status::Done, true, false);
        assert_eq!({ cell.id }, 2);
        assert!(cell.is_main());
        // SAFETY: the cell is alive and no poll runs.
        assert!(unsafe { cell.stage().has_future() });
        drop(cell);
        assert_eq!(drops.get(), 1, "the future was dropped as a future");
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
