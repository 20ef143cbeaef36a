//! Pages for out-of-line slots: a static pool in the kernel image for
//! kprobes (`.kslots`) and one in the user region for uprobes
//! (`.user_data.slots`). Without paging, both are executable as they are
//! (PMP grants RWX).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use super::layout::PAGE_SIZE;

/// `N` page-aligned pages.
#[repr(C, align(4096))]
pub struct Pages<const N: usize>(UnsafeCell<[[u8; PAGE_SIZE]; N]>);

// SAFETY: the pages are only written through raw pointers by the text
// patching services (serialised by the engine's registration lock) and
// executed; Rust never references their contents.
unsafe impl<const N: usize> Sync for Pages<N> {}

impl<const N: usize> Pages<N> {
    /// Zeroed pages.
    pub const fn new() -> Self {
        Self(UnsafeCell::new([[0; PAGE_SIZE]; N]))
    }

    fn base(&self) -> usize {
        self.0.get() as usize
    }
}

/// A pool handing out the pages of a [`Pages`].
pub struct SlotPool<const N: usize> {
    pages: &'static Pages<N>,
    used: AtomicU32,
    /// Pages handed out so far (for the checks).
    allocations: AtomicUsize,
    /// The last page handed out.
    last: AtomicUsize,
}

impl<const N: usize> SlotPool<N> {
    /// A pool over `pages`.
    pub const fn new(pages: &'static Pages<N>) -> Self {
        assert!(N <= 32);
        Self {
            pages,
            used: AtomicU32::new(0),
            allocations: AtomicUsize::new(0),
            last: AtomicUsize::new(0),
        }
    }

    /// A free page, if any.
    pub fn alloc(&self) -> Option<usize> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let i = (0..N).find(|&i| used & (1 << i) == 0)?;
            match self.used.compare_exchange(
                used,
                used | (1 << i),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let page = self.pages.base() + i * PAGE_SIZE;
                    self.allocations.fetch_add(1, Ordering::Relaxed);
                    self.last.store(page, Ordering::Relaxed);
                    return Some(page);
                }
                Err(now) => used = now,
            }
        }
    }

    /// Give back `page` (from [`Self::alloc`]).
    pub fn free(&self, page: usize) {
        let i = (page - self.pages.base()) / PAGE_SIZE;
        assert!(i < N && page % PAGE_SIZE == 0, "not a page of this pool");
        self.used.fetch_and(!(1 << i), Ordering::AcqRel);
    }

    /// Pages currently handed out.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Acquire).count_ones() as usize
    }

    /// Pages handed out since boot, and the last one.
    pub fn history(&self) -> (usize, usize) {
        (
            self.allocations.load(Ordering::Relaxed),
            self.last.load(Ordering::Relaxed),
        )
    }

    /// The pool's address range.
    pub fn range(&self) -> core::ops::Range<usize> {
        self.pages.base()..self.pages.base() + N * PAGE_SIZE
    }
}

#[link_section = ".kslots"]
static KERNEL_PAGES: Pages<4> = Pages::new();

#[link_section = ".user_data.slots"]
static USER_PAGES: Pages<2> = Pages::new();

/// Slot pages for kprobes.
pub static KERNEL: SlotPool<4> = SlotPool::new(&KERNEL_PAGES);
/// Slot pages for uprobes (in the user region).
pub static USER: SlotPool<2> = SlotPool::new(&USER_PAGES);
