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
//! 1. Every cell handed out lies inside one chunk of this thread's arena, after the chunk's
//!    16-byte header, at a multiple of its class's size from the first cell, and its pointer is
//!    derived from the chunk's own pointer (strict provenance: Miri checks it).
//! 2. A cell is on its class's free list, in the uncarved end of a chunk, or handed out: never
//!    two of these at once. A cell on the free list holds the next one's pointer in its first
//!    word (every class is a multiple of 8 bytes, and its cells are aligned to 8).
//! 3. Chunks are freed only when no cell is handed out (`live == 0`), and then every free list
//!    and carving pointer is reset with them.
//! 4. Cells never leave their thread (a cell is owned by a `!Send` task table), so a cell is
//!    freed to the arena it came from; and the arena is never destroyed, even at thread exit
//!    (it has no destructor, so its thread-local is a plain one: a loop kept in another
//!    thread-local and dropped at thread exit still frees its cells here, and the last one gives
//!    the chunks back). That takes thread-locals that live as long as their thread, which std
//!    gives on the targets in [`ENABLED`]; elsewhere (thread-locals kept under an OS key, which
//!    may come back empty after their destructor ran) the arena is off and cells come from the
//!    global allocator.

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::ptr::{self, NonNull};

/// The size-class step, in bytes: a cell's size is rounded up to a multiple of it.
pub(crate) const GRAIN: usize = 8;
/// The largest alignment served, in bytes: chunks and their first cells are aligned to it, and
/// a class for a layout aligned to it is a multiple of it, so all its cells are aligned too.
pub(crate) const MAX_ALIGN: usize = 16;
/// The largest cell served by the arena, in bytes.
pub(crate) const MAX_SIZE: usize = 256;
/// Number of size classes: 8, 16, 24, ..., 256 bytes.
const CLASSES: usize = MAX_SIZE / GRAIN;
/// Bytes per chunk.
const CHUNK: usize = 16 * 1024;
/// A chunk's header: the previous chunk's pointer (the chunks form a list), padded so that the
/// first cell is aligned to [`MAX_ALIGN`].
const HEADER: usize = 16;

/// Whether cells come from the arena: on the targets whose thread-locals live as long as their
/// thread (invariant 4), and not when built with `--cfg aioloop_malloc_cells` (CI's
/// AddressSanitizer step, so that ASan sees each cell as an allocation of its own and catches a
/// use after free; Miri checks the arena itself).
const ENABLED: bool = cfg!(all(
    not(aioloop_malloc_cells),
    any(
        target_os = "linux",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    )
));

/// One size class: its free list and the carving position in its newest chunk.
struct Class {
    /// The last freed cell, which holds the next one (null: empty).
    free: Cell<*mut u8>,
    /// The next uncarved cell of the newest chunk.
    next: Cell<*mut u8>,
    /// The end of the newest chunk's carvable part (`next == end`: nothing left to carve).
    end: Cell<*mut u8>,
}

/// A thread's cells (see the module docs). No field has drop glue, and the type has no
/// destructor: its thread-local is never destroyed (invariant 4).
struct Arena {
    classes: [Class; CLASSES],
    /// The newest chunk (null: none); each chunk's header holds the one before it.
    chunks: Cell<*mut u8>,
    /// Cells handed out and not yet freed.
    live: Cell<usize>,
}

thread_local! {
    static ARENA: Arena = const {
        Arena {
            classes: [const { Class { free: Cell::new(ptr::null_mut()), next: Cell::new(ptr::null_mut()), end: Cell::new(ptr::null_mut()) } }; CLASSES],
            chunks: Cell::new(ptr::null_mut()),
            live: Cell::new(0),
        }
    };
}

/// Returns the class of a layout the arena serves, or `None` (too large, or over-aligned, or
/// the arena is off).
#[inline(always)]
fn class_of(layout: Layout) -> Option<usize> {
    if !ENABLED {
        return None;
    }
    // A multiple of the alignment, and at least the alignment: a class of such sizes holds
    // cells aligned as the layout asks (a 16-aligned one lands in a class of 16-byte multiples).
    let size = layout.pad_to_align().size().max(layout.align());
    (size <= MAX_SIZE && layout.align() <= MAX_ALIGN).then(|| (size - 1) / GRAIN)
}

fn chunk_layout() -> Layout {
    // (Constant and valid: 16 KiB aligned to 16.)
    Layout::from_size_align(CHUNK, MAX_ALIGN).expect("a valid chunk layout")
}

/// Allocates memory for a cell of `layout`.
///
/// # Panics
/// If `layout` has a zero size (a cell has a header: never; the layouts are constants, so the
/// check folds away).
#[inline(always)]
pub(crate) fn alloc(layout: Layout) -> NonNull<u8> {
    assert!(layout.size() > 0, "aioloop: a zero-sized cell");
    match class_of(layout) {
        Some(class) => ARENA.with(|a| a.alloc(class)),
        None => global_alloc(layout),
    }
}

/// Frees a cell of `layout` that [`alloc`] returned, on this thread.
///
/// # Safety
/// `p` came from [`alloc`] with the same `layout`, on this thread, and is not used afterwards.
#[inline(always)]
pub(crate) unsafe fn dealloc(p: NonNull<u8>, layout: Layout) {
    match class_of(layout) {
        // SAFETY: by the caller's contract, `p` is a handed-out cell of `class` of this
        // thread's arena (invariant 4).
        Some(class) => ARENA.with(|a| unsafe { a.free(class, p) }),
        // SAFETY: by the caller's contract, `p` came from `global_alloc(layout)`.
        None => unsafe { alloc::dealloc(p.as_ptr(), layout) },
    }
}

/// The global allocator's memory for a cell the arena does not serve.
#[cold]
#[inline(never)]
fn global_alloc(layout: Layout) -> NonNull<u8> {
    // SAFETY: `layout` has a non-zero size (checked by `alloc`).
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
    ARENA.with(|a| {
        let (mut n, mut chunk) = (0, a.chunks.get());
        while !chunk.is_null() {
            n += 1;
            // SAFETY: a chunk's header holds the previous chunk (invariant 1's layout).
            chunk = unsafe { chunk.cast::<*mut u8>().read() };
        }
        n
    })
}

impl Arena {
    /// A cell of `class`.
    #[inline(always)]
    fn alloc(&self, class: usize) -> NonNull<u8> {
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
                // (`end` is a whole number of cells from its first cell: invariant 1).
                c.next.set(unsafe { next.add((class + 1) * GRAIN) });
                next
            } else {
                self.grow(class)
            }
        };
        self.live.set(self.live.get() + 1);
        // SAFETY: a cell pointer is never null (it points into a chunk).
        unsafe { NonNull::new_unchecked(p) }
    }

    /// Takes a new chunk for `class` and carves its first cell.
    #[cold]
    #[inline(never)]
    fn grow(&self, class: usize) -> *mut u8 {
        let layout = chunk_layout();
        // SAFETY: the chunk layout has a non-zero size.
        let chunk = unsafe { alloc::alloc(layout) };
        if chunk.is_null() {
            alloc::handle_alloc_error(layout);
        }
        // SAFETY: the header is the chunk's first 16 bytes, aligned to 16: it holds the list.
        unsafe { chunk.cast::<*mut u8>().write(self.chunks.get()) };
        self.chunks.set(chunk);
        let size = (class + 1) * GRAIN;
        let cells = (CHUNK - HEADER) / size;
        let c = &self.classes[class];
        // SAFETY: every offset is within the chunk (`HEADER + cells * size <= CHUNK`), and
        // derived from its pointer (invariant 1).
        unsafe {
            let first = chunk.add(HEADER);
            c.next.set(first.add(size));
            c.end.set(first.add(cells * size));
            first
        }
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
        debug_assert!(self.live.get() > 0, "a cell freed that this arena did not hand out");
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
        let mut chunk = self.chunks.replace(ptr::null_mut());
        while !chunk.is_null() {
            // SAFETY: `chunk` came from `alloc::alloc(chunk_layout())` in `grow`, its header
            // holds the previous chunk, no cell in it is handed out (`live == 0`), and nothing
            // points into it any more (the classes were reset above).
            unsafe {
                let prev = chunk.cast::<*mut u8>().read();
                alloc::dealloc(chunk, chunk_layout());
                chunk = prev;
            }
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

    /// A cell freed by a thread-local's destructor at thread exit (a loop kept in a
    /// thread-local) goes back to the arena, which is never destroyed, and the last one gives
    /// the chunks back (under Miri, its leak check confirms that nothing is left).
    #[test]
    fn cells_freed_at_thread_exit_go_back_to_the_arena() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        static AFTER: AtomicUsize = AtomicUsize::new(usize::MAX);
        struct Late(Option<NonNull<u8>>);
        impl Drop for Late {
            fn drop(&mut self) {
                if let Some(p) = self.0.take() {
                    // SAFETY: `p` came from `alloc(layout(48))` on this thread: 48 writable bytes.
                    unsafe { p.as_ptr().write_bytes(7, 48) };
                    // SAFETY: as above; not used again.
                    unsafe { dealloc(p, layout(48)) };
                }
                AFTER.store(live() + chunks(), SeqCst);
            }
        }
        thread_local! {
            static LATE: std::cell::RefCell<Late> = const { std::cell::RefCell::new(Late(None)) };
        }
        std::thread::spawn(|| {
            let p = alloc(layout(48));
            LATE.with(|l| l.borrow_mut().0 = Some(p));
        })
        .join()
        .unwrap();
        assert_eq!(AFTER.load(SeqCst), 0, "no cell and no chunk left at thread exit");
    }
}
