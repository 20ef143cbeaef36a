//! `InstancePool`: the engine-wide fixed pool of return-probe instances.
//!
//! An instance records one tracked call: which probe (index and generation),
//! the real return address, the frame identity and the per-instance data.
//! Free instances form a lock-free stack (Treiber stack with a 32-bit tag
//! against ABA); a taken instance belongs to exactly one task, which links it
//! into its own LIFO through `prev`.

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::cell::UnsafeCell;

/// What one tracked call records (everything but its data).
#[derive(Clone, Copy)]
pub(crate) struct Instance {
    pub(crate) probe: u32,
    pub(crate) generation: u32,
    pub(crate) real_ret: usize,
    pub(crate) frame: usize,
    pub(crate) trampoline: usize,
    pub(crate) addr: usize,
    /// Returns into a user space (a uretprobe), not into the kernel.
    pub(crate) user: bool,
}

impl Instance {
    const EMPTY: Self = Self {
        probe: 0,
        generation: 0,
        real_ret: 0,
        frame: 0,
        trampoline: 0,
        addr: 0,
        user: false,
    };
}

struct Cell<const D: usize> {
    /// Next free (free list) or next older instance of the owning task
    /// (index + 1; 0: none).
    link: AtomicU32,
    /// Read by unwinders while a return handler holds `data`: kept in its
    /// own cell so the two never alias.
    meta: UnsafeCell<Instance>,
    data: UnsafeCell<[u8; D]>,
}

/// See the module documentation.
pub(crate) struct InstancePool<const I: usize, const D: usize> {
    /// Tagged head of the free stack: `tag << 32 | (index + 1)`.
    free: AtomicU64,
    cells: [Cell<D>; I],
    initialised: AtomicU32,
}

// SAFETY: `meta` and `data` of a cell are accessed only by the holder of
// that cell: a cell is on the free stack (touched by nobody) or owned by
// one task (or by the CPU running `alloc`/`release` for it). Ownership
// moves through the atomic free stack with Acquire/Release ordering.
// `meta` is read by copy through raw pointers, so a read (an unwinder
// called from a return handler) never overlaps a reference to `data`.
unsafe impl<const I: usize, const D: usize> Sync for InstancePool<I, D> {}

impl<const I: usize, const D: usize> InstancePool<I, D> {
    pub(crate) const fn new() -> Self {
        Self {
            free: AtomicU64::new(0),
            cells: [const {
                Cell {
                    link: AtomicU32::new(0),
                    meta: UnsafeCell::new(Instance::EMPTY),
                    data: UnsafeCell::new([0; D]),
                }
            }; I],
            initialised: AtomicU32::new(0),
        }
    }

    /// Under loom: [`Self::new`], its atomics created now (see `sync`).
    #[cfg(all(test, loom))]
    pub(crate) fn new_loom() -> Self {
        let p = Self::new();
        p.free.touch();
        p.initialised.touch();
        p.cells.iter().for_each(|c| c.link.touch());
        p
    }

    /// Put every cell on the free stack (once, at engine start-up; the
    /// registration lock is held).
    pub(crate) fn init(&self) {
        if self.initialised.swap(1, Ordering::AcqRel) == 1 {
            return;
        }
        for i in 0..I {
            let next = if i + 1 < I { i as u32 + 2 } else { 0 };
            self.cells[i].link.store(next, Ordering::Relaxed);
        }
        let head = if I > 0 { 1 } else { 0 };
        self.free.store(head, Ordering::Release);
    }

    /// Take a free instance; `None` when the pool is empty.
    #[link_section = "probe_trap_text"]
    pub(crate) fn alloc(&self) -> Option<u32> {
        let mut cur = self.free.load(Ordering::Acquire);
        loop {
            let idx = (cur & 0xffff_ffff) as u32;
            if idx == 0 {
                return None;
            }
            let next = self.cells[idx as usize - 1].link.load(Ordering::Relaxed);
            let tag = (cur >> 32).wrapping_add(1);
            let new = (tag << 32) | next as u64;
            match self
                .free
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.cells[idx as usize - 1]
                        .link
                        .store(0, Ordering::Relaxed);
                    return Some(idx - 1);
                }
                Err(seen) => cur = seen,
            }
        }
    }

    /// Return instance `i` to the pool.
    #[link_section = "probe_trap_text"]
    pub(crate) fn release(&self, i: u32) {
        let mut cur = self.free.load(Ordering::Acquire);
        loop {
            self.cells[i as usize]
                .link
                .store((cur & 0xffff_ffff) as u32, Ordering::Relaxed);
            let tag = (cur >> 32).wrapping_add(1);
            let new = (tag << 32) | (i as u64 + 1);
            match self
                .free
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }

    /// What instance `i` records.
    ///
    /// # Safety
    /// The caller owns instance `i` (took it from `alloc` and has not
    /// released it, or found it on a task's list while that task is the
    /// current one or cannot run).
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    pub(crate) unsafe fn meta(&self, i: u32) -> Instance {
        // SAFETY: a copy through a raw pointer; the owner does not write
        // `meta` while it reads it (it is the owner).
        unsafe { self.cells[i as usize].meta.get().read() }
    }

    /// Record `meta` in instance `i`.
    ///
    /// # Safety
    /// As for [`Self::meta`], and no copy of it is being read.
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    pub(crate) unsafe fn set_meta(&self, i: u32, meta: Instance) {
        // SAFETY: the caller owns the instance.
        unsafe { self.cells[i as usize].meta.get().write(meta) };
    }

    /// The first `len` bytes (at most `D`) of instance `i`'s data.
    ///
    /// # Safety
    /// As for [`Self::meta`], and no other reference to this data exists
    /// while the returned one lives.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    pub(crate) unsafe fn data(&self, i: u32, len: usize) -> &mut [u8] {
        // SAFETY: exclusive ownership is the caller's promise.
        let data = unsafe { &mut *self.cells[i as usize].data.get() };
        &mut data[..len.min(D)]
    }

    /// Zero the first `len` bytes of instance `i`'s data with word stores
    /// the compiler cannot turn into a `memset` call (a function the
    /// kernel may probe: the trap path must not call it).
    ///
    /// # Safety
    /// As for [`Self::data`].
    #[link_section = "probe_trap_text"]
    pub(crate) unsafe fn zero_data(&self, i: u32, len: usize) {
        let base = self.cells[i as usize].data.get() as *mut u8;
        let len = len.min(D);
        let mut at = 0;
        while at < len {
            // SAFETY: `at < len <= D`: inside the cell's data, owned by the
            // caller; volatile keeps each store a store.
            unsafe { core::ptr::write_volatile(base.add(at), 0) };
            at += 1;
        }
    }

    /// The older instance linked after `i` on its task's list (index + 1).
    #[link_section = "probe_trap_text"]
    pub(crate) fn prev(&self, i: u32) -> u32 {
        self.cells[i as usize].link.load(Ordering::Acquire)
    }

    /// Link instance `i` in front of `older` (index + 1) on a task's list.
    #[link_section = "probe_trap_text"]
    pub(crate) fn set_prev(&self, i: u32, older: u32) {
        self.cells[i as usize].link.store(older, Ordering::Release)
    }

    /// Free instances (walks the free stack; diagnostics and tests only,
    /// with no concurrent alloc/release).
    pub(crate) fn free_count(&self) -> usize {
        self.chain_len((self.free.load(Ordering::Acquire) & 0xffff_ffff) as u32)
    }

    /// Length of the list starting at `head` (index + 1).
    pub(crate) fn chain_len(&self, mut head: u32) -> usize {
        let mut n = 0;
        while head != 0 && n <= I {
            n += 1;
            head = self.cells[head as usize - 1].link.load(Ordering::Acquire);
        }
        n
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn alloc_until_empty_then_release() {
        let p = InstancePool::<3, 8>::new();
        p.init();
        assert_eq!(p.free_count(), 3);
        let a = p.alloc().unwrap();
        let b = p.alloc().unwrap();
        let c = p.alloc().unwrap();
        assert_eq!(p.alloc(), None);
        assert_eq!(p.free_count(), 0);
        let mut seen = [a, b, c];
        seen.sort();
        assert_eq!(seen, [0, 1, 2]);
        p.release(b);
        assert_eq!(p.free_count(), 1);
        assert_eq!(p.alloc(), Some(b));
        p.release(a);
        p.release(c);
        p.release(b);
        assert_eq!(p.free_count(), 3);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // 80,000 operations: too slow under Miri
    fn concurrent_alloc_release_never_hands_out_one_cell_twice() {
        use std::sync::atomic::AtomicBool;
        static POOL: InstancePool<16, 8> = InstancePool::new();
        static OWNED: [AtomicBool; 16] = [const { AtomicBool::new(false) }; 16];
        POOL.init();
        let threads: std::vec::Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..20_000 {
                        if let Some(i) = POOL.alloc() {
                            assert!(!OWNED[i as usize].swap(true, Ordering::AcqRel));
                            OWNED[i as usize].store(false, Ordering::Release);
                            POOL.release(i);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(POOL.free_count(), 16);
    }
}

/// Exhaustive interleavings (`RUSTFLAGS="--cfg loom"`) of the free stack:
/// CPUs taking and giving back instances, and a task's release walking its
/// list while another CPU takes and gives back instances.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use loom::thread;

    const I: usize = 3;

    /// Who holds each instance: set by whoever takes it, cleared before it
    /// is given back. Taking one that is still held is the bug.
    struct Owners([AtomicBool; I]);

    impl Owners {
        fn new() -> Self {
            Self(core::array::from_fn(|_| AtomicBool::new(false)))
        }

        fn take(&self, i: u32) {
            assert!(
                !self.0[i as usize].swap(true, Ordering::AcqRel),
                "instance {i} handed out twice"
            );
        }

        fn give(&self, i: u32) {
            assert!(self.0[i as usize].swap(false, Ordering::AcqRel));
        }
    }

    struct Fixture {
        pool: InstancePool<I, 8>,
        owners: Owners,
    }

    fn fixture() -> Arc<Fixture> {
        let f = Arc::new(Fixture {
            pool: InstancePool::new_loom(),
            owners: Owners::new(),
        });
        f.pool.init();
        f
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = None;
        b.check(f);
    }

    /// Take one (recording it, as `prepare_return` does), give it back.
    fn take_and_give(f: &Fixture, tag: usize) -> bool {
        let Some(i) = f.pool.alloc() else {
            return false;
        };
        f.owners.take(i);
        // SAFETY: `i` was just taken from the pool: this thread owns it.
        unsafe {
            f.pool.set_meta(
                i,
                Instance {
                    frame: tag,
                    ..Instance::EMPTY
                },
            );
            assert_eq!(f.pool.meta(i).frame, tag);
        }
        f.owners.give(i);
        f.pool.release(i);
        true
    }

    /// Two CPUs take and give back concurrently, one of them twice (the
    /// tag on the free stack's head is what keeps the second round from an
    /// ABA): no instance is ever held twice, none is lost.
    #[test]
    fn loom_alloc_release_concurrently() {
        model(|| {
            let f = fixture();
            let other = {
                let f = f.clone();
                thread::spawn(move || {
                    assert!(take_and_give(&f, 1));
                })
            };
            // Hold one while taking another, then give both back.
            let held = f.pool.alloc().unwrap();
            f.owners.take(held);
            assert!(take_and_give(&f, 2));
            f.owners.give(held);
            f.pool.release(held);
            other.join().unwrap();
            assert_eq!(f.pool.free_count(), I);
        });
    }

    /// A stopped task holding two instances (linked newest first through
    /// `prev`, as `prepare_return` links them) is released as
    /// `drop_task_state` releases it (read the older link, then give the
    /// instance back) while another CPU takes and gives back instances:
    /// the walk never follows a link rewritten by the free stack, and the
    /// other CPU never gets an instance the task still holds.
    #[test]
    fn loom_task_release_against_alloc_release() {
        model(|| {
            let f = fixture();
            let older = f.pool.alloc().unwrap();
            let newer = f.pool.alloc().unwrap();
            f.owners.take(older);
            f.owners.take(newer);
            f.pool.set_prev(older, 0);
            f.pool.set_prev(newer, older + 1);
            let head = newer + 1;

            let cpu = {
                let f = f.clone();
                thread::spawn(move || {
                    // The one free instance, then whatever the release
                    // gave back meanwhile.
                    assert!(take_and_give(&f, 1));
                    take_and_give(&f, 2);
                })
            };
            let mut cur = head;
            let mut released = 0;
            while cur != 0 {
                let i = cur - 1;
                let next = f.pool.prev(i);
                f.owners.give(i);
                f.pool.release(i);
                released += 1;
                cur = next;
            }
            assert_eq!(released, 2);
            cpu.join().unwrap();
            assert_eq!(f.pool.free_count(), I);
        });
    }
}
