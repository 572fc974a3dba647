//! The cell arena: where task cells get their memory.
//!
//! # Why not malloc
//!
//! A spawned task needs one allocation, its cell (src/runtime/task/cell.rs), freed when it
//! finishes. Through the global allocator that pair cost a spawn about 300 of its 920
//! instructions (callgrind, `bench spawn`): glibc's thread cache holds only 7 chunks per size,
//! so a burst of tasks goes through its slower paths both ways. Go's runtime keeps finished
//! goroutine structures on a per-P free list (`gfput`/`gfget`) for the same reason. Here each
//! thread keeps, per size class, a free list of cells and a chunk to carve new ones from:
//!
//! ```text
//!   class 4 (40 B):  free ──► cell ──► cell ──► null      (a freed cell holds the next one)
//!                    next ─┐                    end ─┐
//!   chunk (16 KiB):  [cell][cell][cell][cell]...[    ·    ]   carved from the front
//! ```
//!
//! - **alloc**: pop the free list, else carve the next cell of the newest chunk, else take a
//!   new chunk from the global allocator: a dozen instructions, not a few hundred.
//! - **free**: push on the free list (last freed, first reused: the cell is still in cache).
//! - Cells up to [`MAX_SIZE`] bytes with an alignment up to [`MAX_ALIGN`] come from here (32
//!   size classes, 8 bytes apart); larger or more aligned ones, which are rare, go to the
//!   global allocator.
//!
//! # Memory
//!
//! A cell costs its size rounded up to 8 bytes and nothing else (malloc adds a size word and
//! rounds to 16: a 40-byte cell takes 48 bytes there).
//! All of it goes back to the global allocator when the thread's last cell is freed (the end of
//! a burst, and of every `run_until_complete`, whose main task has a cell: the same moment the
//! task table gives its slab back), so an idle thread holds none, and a leak checker that counts
//! a thread's bytes sees the arena come and go with its tasks. The price is a chunk's malloc and
//! free per run of a loop that has no other task. Until then a class's freed cells are reused
//! only by cells of the same class: a burst of one size followed by a burst of another holds
//! both, where malloc could reuse the first for the second.
//!
//! # Invariants (what the `unsafe` below relies on)
//! 1. Every cell handed out lies inside one chunk of this thread's arena, at a multiple of its
//!    class's size from the chunk's start, and the pointer is derived from the chunk's own
//!    pointer (strict provenance: Miri checks it).
//! 2. A cell is on its class's free list, in the uncarved end of a chunk, or handed out: never
//!    two of these at once. A cell on the free list holds the next one's pointer in its first
//!    word (every class is a multiple of 8 bytes, and its cells are aligned to 8).
//! 3. Chunks are freed only when no cell is handed out (`live == 0`), and then every free list
//!    and carving pointer is reset with them; at thread exit with cells still out (a loop kept
//!    in another thread-local, dropped after this one), the chunks are leaked instead, and those
//!    cells' frees do nothing.
//! 4. Cells never leave their thread (a cell is owned by a `!Send` task table), so a cell is
//!    freed to the arena it came from. Once the thread's arena is gone (thread exit), a new cell
//!    comes from the global allocator and is leaked when freed: "gone" never turns back into
//!    "alive", so a cell always knows where it came from without a tag.

use std::alloc::{self, Layout};
use std::cell::{Cell, RefCell};
use std::ptr::{self, NonNull};

/// The size-class step, in bytes: a cell's size is rounded up to a multiple of it.
pub(crate) const GRAIN: usize = 8;
/// The largest alignment served, in bytes: chunks are aligned to it, and a layout aligned to
/// it has a size that is a multiple of it, so its class's cells all are aligned too.
pub(crate) const MAX_ALIGN: usize = 16;
/// The largest cell served by the arena, in bytes.
pub(crate) const MAX_SIZE: usize = 256;
/// Number of size classes: 8, 16, 24, ..., 256 bytes.
const CLASSES: usize = MAX_SIZE / GRAIN;
/// Bytes per chunk.
const CHUNK: usize = 16 * 1024;

/// One size class: its free list and the carving position in its newest chunk.
struct Class {
    /// The last freed cell, which holds the next one (null: empty).
    free: Cell<*mut u8>,
    /// The next uncarved cell of the newest chunk.
    next: Cell<*mut u8>,
    /// The end of the newest chunk's carvable part (`next == end`: nothing left to carve).
    end: Cell<*mut u8>,
}

/// A thread's cells (see the module docs).
struct Arena {
    classes: [Class; CLASSES],
    /// Every chunk, to free them.
    chunks: RefCell<Vec<NonNull<u8>>>,
    /// Cells handed out and not yet freed.
    live: Cell<usize>,
}

thread_local! {
    static ARENA: Arena = const {
        Arena {
            classes: [const { Class { free: Cell::new(ptr::null_mut()), next: Cell::new(ptr::null_mut()), end: Cell::new(ptr::null_mut()) } }; CLASSES],
            chunks: RefCell::new(Vec::new()),
            live: Cell::new(0),
        }
    };
}

/// Returns the class of a layout the arena serves, or `None` (too large, or over-aligned; or
/// always, built with `--cfg aioloop_malloc_cells`: CI's AddressSanitizer step, so that ASan
/// sees each cell as an allocation of its own and catches a use after free).
#[inline(always)]
fn class_of(layout: Layout) -> Option<usize> {
    if cfg!(aioloop_malloc_cells) {
        return None;
    }
    if layout.size() <= MAX_SIZE && layout.align() <= MAX_ALIGN {
        // (A zero size has no cell of its own here: it shares the smallest class. A size is a
        // multiple of its alignment, so a 16-aligned layout lands in a class of 16-byte
        // multiples, whose cells are 16-aligned in a 16-aligned chunk.)
        Some(layout.size().saturating_sub(1) / GRAIN)
    } else {
        None
    }
}

fn chunk_layout() -> Layout {
    // (Constant and valid: 16 KiB aligned to 16.)
    Layout::from_size_align(CHUNK, MAX_ALIGN).expect("a valid chunk layout")
}

/// Allocates memory for a cell of `layout` (never zero-sized: a cell has a header).
#[inline(always)]
pub(crate) fn alloc(layout: Layout) -> NonNull<u8> {
    debug_assert!(layout.size() > 0);
    if let Some(class) = class_of(layout) {
        if let Ok(Some(p)) = ARENA.try_with(|a| a.alloc(class)) {
            return p;
        }
    }
    global_alloc(layout)
}

/// Frees a cell of `layout` that [`alloc`] returned, on this thread.
///
/// # Safety
/// `p` came from [`alloc`] with the same `layout`, on this thread, and is not used afterwards.
#[inline(always)]
pub(crate) unsafe fn dealloc(p: NonNull<u8>, layout: Layout) {
    match class_of(layout) {
        Some(class) => {
            // SAFETY: by the caller's contract, `p` is a handed-out cell of `class` of this
            // thread's arena (invariant 4). With the arena gone, the cell is leaked.
            let _ = ARENA.try_with(|a| unsafe { a.free(class, p) });
        }
        // SAFETY: by the caller's contract, `p` came from `global_alloc(layout)`.
        None => unsafe { alloc::dealloc(p.as_ptr(), layout) },
    }
}

/// The global allocator's memory for a cell the arena does not serve.
#[cold]
#[inline(never)]
fn global_alloc(layout: Layout) -> NonNull<u8> {
    // SAFETY: `layout` has a non-zero size (a cell has a header).
    let p = unsafe { alloc::alloc(layout) };
    NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(layout))
}

/// Cells handed out on this thread (for tests).
#[cfg(all(test, not(aioloop_malloc_cells)))]
fn live() -> usize {
    ARENA.with(|a| a.live.get())
}

/// Chunks held on this thread (for tests).
#[cfg(all(test, not(aioloop_malloc_cells)))]
fn chunks() -> usize {
    ARENA.with(|a| a.chunks.borrow().len())
}

impl Arena {
    /// A cell of `class`; `None` only if this thread's arena cannot grow (never: a failed chunk
    /// allocation aborts, as `Box::new` does).
    #[inline(always)]
    fn alloc(&self, class: usize) -> Option<NonNull<u8>> {
        let c = &self.classes[class];
        let head = c.free.get();
        let p = if !head.is_null() {
            // SAFETY: `head` is a free cell of this class (invariant 2), whose first word holds
            // the next free cell; it is aligned to 8 and at least 8 bytes long.
            c.free.set(unsafe { head.cast::<*mut u8>().read() });
            head
        } else {
            let next = c.next.get();
            if next != c.end.get() {
                // SAFETY: `next` and `next + size` lie within the newest chunk of this class
                // (`end` is a whole number of cells from the chunk's start: invariant 1).
                c.next.set(unsafe { next.add((class + 1) * GRAIN) });
                next
            } else {
                self.grow(class)
            }
        };
        self.live.set(self.live.get() + 1);
        NonNull::new(p)
    }

    /// Takes a new chunk for `class` and carves its first cell.
    #[cold]
    #[inline(never)]
    fn grow(&self, class: usize) -> *mut u8 {
        let layout = chunk_layout();
        // SAFETY: the chunk layout has a non-zero size.
        let chunk = unsafe { alloc::alloc(layout) };
        let Some(chunk) = NonNull::new(chunk) else { alloc::handle_alloc_error(layout) };
        self.chunks.borrow_mut().push(chunk);
        let size = (class + 1) * GRAIN;
        let cells = CHUNK / size;
        let c = &self.classes[class];
        let base = chunk.as_ptr();
        // SAFETY: both offsets are within the chunk (`cells * size <= CHUNK`), and derived from
        // its pointer (invariant 1).
        unsafe {
            c.next.set(base.add(size));
            c.end.set(base.add(cells * size));
        }
        base
    }

    /// Frees a cell of `class`.
    ///
    /// # Safety
    /// `p` is a cell of `class` handed out by this arena and not freed since.
    #[inline(always)]
    unsafe fn free(&self, class: usize, p: NonNull<u8>) {
        let c = &self.classes[class];
        // SAFETY: `p` is a handed-out cell of this class (aligned to 8, at least 8 bytes), now
        // nobody's: its first word becomes the free list's link (invariant 2).
        unsafe { p.as_ptr().cast::<*mut u8>().write(c.free.get()) };
        c.free.set(p.as_ptr());
        let live = self.live.get() - 1;
        self.live.set(live);
        if live == 0 {
            self.release();
        }
    }

    /// The last cell was freed: gives every chunk back and resets every class (no cell is handed
    /// out: invariant 3).
    #[cold]
    #[inline(never)]
    fn release(&self) {
        debug_assert_eq!(self.live.get(), 0);
        for c in &self.classes {
            c.free.set(ptr::null_mut());
            c.next.set(ptr::null_mut());
            c.end.set(ptr::null_mut());
        }
        let chunks = std::mem::take(&mut *self.chunks.borrow_mut());
        for chunk in chunks {
            // SAFETY: each chunk came from `alloc::alloc(chunk_layout())` in `grow`, and no cell
            // in it is handed out (`live == 0`), and nothing points into it any more.
            unsafe { alloc::dealloc(chunk.as_ptr(), chunk_layout()) };
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // Thread exit. Cells still handed out (a loop kept in a thread-local that is dropped
        // later) keep their chunks: they are leaked, not freed under those cells (invariant 3).
        if self.live.get() == 0 {
            self.release();
        }
    }
}

#[cfg(all(test, not(aioloop_malloc_cells)))]
mod tests {
    use super::*;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 16).unwrap()
    }

    #[test]
    fn cells_are_aligned_as_their_layout_asks() {
        let mut cells = Vec::new();
        for (size, align) in [(40, 8), (48, 16), (8, 8), (24, 8), (32, 16), (256, 16)] {
            let l = Layout::from_size_align(size, align).unwrap();
            for _ in 0..3 {
                let p = alloc(l);
                assert_eq!(p.as_ptr().addr() % align, 0, "{size} bytes aligned to {align}");
                cells.push((p, l));
            }
        }
        for (p, l) in cells {
            // SAFETY: each came from `alloc(l)` and is not used again.
            unsafe { dealloc(p, l) };
        }
    }

    #[test]
    fn a_freed_cell_is_reused_first_and_classes_do_not_mix() {
        let before = live();
        let a = alloc(layout(48));
        let b = alloc(layout(48));
        let c = alloc(layout(64));
        assert_eq!(live(), before + 3);
        assert_ne!(a, b);
        // SAFETY: `b` came from `alloc(layout(48))` and is not used again.
        unsafe { dealloc(b, layout(48)) };
        assert_eq!(alloc(layout(48)), b, "the last freed cell of the class comes back first");
        let d = alloc(layout(64));
        assert_ne!(d, c);
        for (p, size) in [(a, 48), (b, 48), (c, 64), (d, 64)] {
            // SAFETY: each came from `alloc(layout(size))` and is not used again.
            unsafe { dealloc(p, layout(size)) };
        }
        assert_eq!(live(), before);
    }

    #[test]
    fn cells_are_disjoint_and_writable_across_chunks() {
        // Three chunks' worth of 256-byte cells, each filled with its own number.
        let n = 3 * CHUNK / 256 + 1;
        let cells: Vec<NonNull<u8>> = (0..n).map(|_| alloc(layout(256))).collect();
        for (i, p) in cells.iter().enumerate() {
            // SAFETY: each cell is 256 writable bytes of its own.
            unsafe { p.as_ptr().write_bytes(i as u8, 256) };
        }
        for (i, p) in cells.iter().enumerate() {
            // SAFETY: as above.
            let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), 256) };
            assert!(bytes.iter().all(|&b| b == i as u8), "cell {i} was overwritten");
        }
        for p in cells {
            // SAFETY: each came from `alloc(layout(256))` and is not used again.
            unsafe { dealloc(p, layout(256)) };
        }
    }

    #[test]
    fn the_chunks_go_back_when_the_last_cell_is_freed() {
        std::thread::spawn(|| {
            let n = 3 * CHUNK / 32 + 1;
            let cells: Vec<NonNull<u8>> = (0..n).map(|_| alloc(layout(32))).collect();
            assert_eq!(chunks(), 4);
            for p in &cells[1..] {
                // SAFETY: each came from `alloc(layout(32))` and is not used again.
                unsafe { dealloc(*p, layout(32)) };
            }
            assert_eq!((live(), chunks()), (1, 4), "one cell keeps them all");
            // SAFETY: as above.
            unsafe { dealloc(cells[0], layout(32)) };
            assert_eq!((live(), chunks()), (0, 0));
            // The arena starts over.
            let p = alloc(layout(32));
            assert_eq!((live(), chunks()), (1, 1));
            // SAFETY: as above.
            unsafe { dealloc(p, layout(32)) };
            assert_eq!(chunks(), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn large_and_over_aligned_cells_use_the_global_allocator() {
        let before = live();
        for l in [layout(MAX_SIZE + 16), Layout::from_size_align(64, 64).unwrap()] {
            let p = alloc(l);
            assert_eq!(p.as_ptr().addr() % l.align(), 0);
            assert_eq!(live(), before);
            // SAFETY: `p` came from `alloc(l)` and is not used again.
            unsafe { dealloc(p, l) };
        }
    }

    /// A cell freed after its thread's arena is gone (a loop in a thread-local dropped after
    /// the arena's) is leaked, not written into freed memory; one allocated then comes from the
    /// global allocator. (Leaks on purpose: not under Miri.)
    #[test]
    #[cfg_attr(miri, ignore)]
    fn cells_outliving_the_arena_at_thread_exit_are_leaked() {
        struct Late(Option<NonNull<u8>>);
        impl Drop for Late {
            fn drop(&mut self) {
                if let Some(p) = self.0.take() {
                    // SAFETY: `p` came from `alloc(layout(48))` on this thread: 48 writable bytes.
                    unsafe { p.as_ptr().write_bytes(7, 48) };
                    // SAFETY: as above; not used again.
                    unsafe { dealloc(p, layout(48)) };
                }
                // After the arena's destructor: a fresh cell still works.
                let q = alloc(layout(48));
                // SAFETY: `q` is 48 writable bytes; it came from `alloc(layout(48))`.
                unsafe { q.as_ptr().write_bytes(9, 48) };
                // SAFETY: as above; not used again.
                unsafe { dealloc(q, layout(48)) };
            }
        }
        thread_local! {
            static LATE: std::cell::RefCell<Late> = const { std::cell::RefCell::new(Late(None)) };
        }
        std::thread::spawn(|| {
            // Registered first, so destroyed after the arena (destructors run in reverse).
            LATE.with(|_| {});
            let p = alloc(layout(48));
            LATE.with(|l| l.borrow_mut().0 = Some(p));
        })
        .join()
        .unwrap();
    }
}
