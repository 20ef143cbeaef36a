//! What the engine needs from this kernel ([`KernelServices`]), and the
//! engine itself.
//!
//! - Memory: direct physical access (no paging), checked against the
//!   regions S-mode may touch: all RAM except the PMP-denied page for the
//!   kernel, the user region for the user task's address space.
//! - Text patching: every write is made with the other hart stopped at a
//!   quiescent point ("stop machine", as Linux's riscv `patch_text` does),
//!   aligned 2- and 4-byte pieces as one store, the rest byte by byte. A
//!   naturally aligned store alone would be single-copy atomic, but under
//!   QEMU's multi-threaded TCG the other hart kept running a translation of
//!   the old bytes made while the store happened (a stale `jal` into a
//!   freed detour; see README.md).
//! - `sync_icache`: `fence.i` here; the other hart executes its `fence.i`
//!   when `write_text` releases it.
//! - Slot pages: static pools, kernel pages in the kernel image and user
//!   pages in the user region.
//! - Detour pages (jump-optimised probes): the `.detours` area link.ld
//!   reserves right after `.text`, handed out only when the whole page lies
//!   within the asked reach of the probe (`jal`: ±1 MiB); a freed page is
//!   zeroed again (`c.unimp`), so a stale detour can never run.
//! - Text writes and jump optimisation: the engine writes a jump over a
//!   breakpoint in at most two pieces (the jump's tail at `addr + 2`, then
//!   its head over a `c.ebreak`; or the 4-byte `jal` over an `ebreak`,
//!   which is not one atomic store at 2 mod 4); each piece, like every
//!   detour, is written with the other hart stopped, so every write is
//!   safe for it.
//! - `synchronize`: the other hart passed a quiescent point
//!   ([`smp::quiescent_point`], which refuses to count when called from a
//!   displaced region, a detour or the trap text). There is no preemption
//!   and quiescent points are voluntary, so no hart is ever stopped inside a
//!   slot, a displaced region or a detour: the grace period covers what
//!   Linux's RCU-tasks covers. User tasks need
//!   no wait: the only one runs on hart 0 inside `user::run`, never while
//!   hart 0 registers, so it is never stopped inside a user slot then.
//! - Symbols: the test-function table; the blacklist: the kernel's trap
//!   path (`kernel_trap_text`).

use core::cell::UnsafeCell;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use probe_core::{Engine, KernelServices, Space, Symbol, TaskState, TextPatchError};
use probe_hal::MemoryFault;
use probe_hal_riscv64::Riscv64;

use super::layout::{self, MAX_HARTS};
use super::lock::RegistrationLock;
use super::{slots, smp, symbols, tasks, trap, user};

/// Probes (and probed addresses) the engine holds.
pub const PROBES: usize = 128;
/// Return-probe instances in flight, over all tasks.
pub const INSTANCES: usize = 32;
/// Slot pages the engine may hold at once.
pub const SLOT_PAGES: usize = 8;

/// The engine type of this kernel.
pub type KernelEngine =
    Engine<Riscv64, RegistrationLock, Kernel, PROBES, INSTANCES, MAX_HARTS, SLOT_PAGES, 64>;

/// The engine.
pub static ENGINE: KernelEngine = Engine::new(Kernel::new());

/// Counters of the services' work, for the checks.
pub struct PatchStats {
    /// `write_text` calls.
    pub text_writes: AtomicUsize,
    /// Of those, written with the other hart stopped.
    pub stopped_writes: AtomicUsize,
    /// `sync_icache` calls that reached another hart.
    pub remote_syncs: AtomicUsize,
    /// Grace periods that waited for another hart.
    pub remote_grace_periods: AtomicUsize,
}

/// See [`PatchStats`].
pub static STATS: PatchStats = PatchStats {
    text_writes: AtomicUsize::new(0),
    stopped_writes: AtomicUsize::new(0),
    remote_syncs: AtomicUsize::new(0),
    remote_grace_periods: AtomicUsize::new(0),
};

/// Pages in link.ld's `.detours`.
pub const DETOUR_PAGES: usize = 4;

/// The detour pages handed out, and counters for the checks.
pub struct DetourPages {
    /// One bit per page of `.detours`.
    pub used: AtomicUsize,
    /// Pages handed out since boot.
    pub allocs: AtomicUsize,
    /// Pages given back since boot.
    pub frees: AtomicUsize,
    /// Requests with no free page in reach.
    pub out_of_reach: AtomicUsize,
    /// Refuse every request (a check's "no detour memory").
    pub refuse: AtomicBool,
}

/// See [`DetourPages`].
pub static DETOURS: DetourPages = DetourPages {
    used: AtomicUsize::new(0),
    allocs: AtomicUsize::new(0),
    frees: AtomicUsize::new(0),
    out_of_reach: AtomicUsize::new(0),
    refuse: AtomicBool::new(false),
};

/// The kernel's side of the engine.
pub struct Kernel {
    blacklist_ready: AtomicBool,
    blacklist: UnsafeCell<Range<usize>>,
}

// SAFETY: `blacklist` is written once by `init` on hart 0 before
// `blacklist_ready` is set (Release) and before any probe is registered,
// and only read after `blacklist_ready` is seen (Acquire).
unsafe impl Sync for Kernel {}

impl Kernel {
    const fn new() -> Self {
        Self {
            blacklist_ready: AtomicBool::new(false),
            blacklist: UnsafeCell::new(0..0),
        }
    }

    /// Fill in what needs link-time addresses (once, on hart 0, before the
    /// secondary hart starts and before anything is registered).
    pub fn init(&self) {
        assert!(!self.blacklist_ready.load(Ordering::Acquire));
        // SAFETY: see the `Sync` impl: nobody reads before `ready` is set.
        unsafe { *self.blacklist.get() = layout::kernel_trap_text() };
        self.blacklist_ready.store(true, Ordering::Release);
    }
}

/// Whether the kernel may access `addr..addr+len` of `space`.
#[link_section = "kernel_trap_text"]
fn accessible(space: Space, addr: usize, len: usize) -> bool {
    match space {
        Space::Kernel => {
            layout::contains(&layout::ram(), addr, len)
                && !layout::overlaps(&layout::denied(), addr, len)
        }
        Space::User(asid) => asid == user::ASID && layout::contains(&layout::user(), addr, len),
    }
}

impl KernelServices<Riscv64> for Kernel {
    #[link_section = "kernel_trap_text"]
    fn cpu_id(&self) -> usize {
        trap::hart_id()
    }

    #[link_section = "kernel_trap_text"]
    fn with_current_task<R>(&self, f: impl FnOnce(&TaskState<Riscv64>) -> R) -> Option<R> {
        Some(f(tasks::current()))
    }

    #[link_section = "kernel_trap_text"]
    fn current_space(&self) -> usize {
        tasks::current_asid()
    }

    #[link_section = "kernel_trap_text"]
    fn read(&self, space: Space, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        if !accessible(space, addr, buf.len()) {
            return Err(MemoryFault { addr });
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `accessible` checked the range: RAM that S-mode may
            // read. Volatile: text may change under another hart's patching.
            *b = unsafe { core::ptr::read_volatile((addr + i) as *const u8) };
        }
        Ok(())
    }

    #[link_section = "kernel_trap_text"]
    fn write_data(&self, space: Space, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
        if !accessible(space, addr, data.len()) {
            return Err(MemoryFault { addr });
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: `accessible` checked the range: RAM that S-mode may
            // write.
            unsafe { core::ptr::write_volatile((addr + i) as *mut u8, *b) };
        }
        Ok(())
    }

    fn write_text(&self, space: Space, addr: usize, bytes: &[u8]) -> Result<(), TextPatchError> {
        if !accessible(space, addr, bytes.len()) {
            return Err(TextPatchError);
        }
        STATS.text_writes.fetch_add(1, Ordering::Relaxed);
        // Text has no write protection without paging; `accessible` checked
        // the range. Every write is made with the other hart stopped at a
        // quiescent point ("stop machine", as Linux's riscv `patch_text`
        // does for every write): a naturally aligned 2- or 4-byte store
        // would be single-copy atomic for the hardware, but QEMU's
        // multi-threaded TCG can keep a translation of the old bytes that
        // the other hart made while the store happened (seen here: a stale
        // `jal` into a detour freed 170 quiescent points earlier, with the
        // text reading `ebreak`). A stopped hart translates nothing.
        let stop = smp::stop_others();
        if smp::others_online() > 0 {
            STATS.stopped_writes.fetch_add(1, Ordering::Relaxed);
        }
        match bytes.len() {
            2 if addr % 2 == 0 => {
                let v = u16::from_le_bytes([bytes[0], bytes[1]]);
                // SAFETY: see above; `addr` is 2-byte aligned.
                unsafe { core::ptr::write_volatile(addr as *mut u16, v) }
            }
            4 if addr % 4 == 0 => {
                let v = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                // SAFETY: see above; `addr` is 4-byte aligned.
                unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
            }
            _ => {
                // Aligned doublewords where possible: under QEMU every store
                // into a page holding translated code invalidates
                // translations, so fewer stores make detours and page
                // wipes much cheaper.
                let mut i = 0;
                while i < bytes.len() {
                    let at = addr + i;
                    if at % 8 == 0 && i + 8 <= bytes.len() {
                        let mut w = [0u8; 8];
                        w.copy_from_slice(&bytes[i..i + 8]);
                        // SAFETY: checked by `accessible`; `at` is 8-byte
                        // aligned; the other harts are stopped outside any
                        // text.
                        unsafe { core::ptr::write_volatile(at as *mut u64, u64::from_le_bytes(w)) };
                        i += 8;
                    } else {
                        // SAFETY: as above.
                        unsafe { core::ptr::write_volatile(at as *mut u8, bytes[i]) };
                        i += 1;
                    }
                }
            }
        }
        smp::fence_i();
        if smp::others_online() > 0 {
            // The released hart executes `fence.i` before anything else.
            STATS.remote_syncs.fetch_add(1, Ordering::Relaxed);
        }
        drop(stop);
        Ok(())
    }

    fn sync_icache(&self, _space: Space, _addr: usize, _len: usize) {
        // Text is only ever written by `write_text` (the engine calls this
        // right after it), which stops the other hart: released, that hart
        // executes `fence.i` before it runs anything else (counted there as
        // a remote sync). Here only the local `fence.i` is left to do.
        smp::fence_i();
    }

    fn alloc_slot_page(&self, space: Space, _near: usize) -> Option<usize> {
        match space {
            Space::Kernel => slots::KERNEL.alloc(),
            Space::User(asid) if asid == user::ASID => slots::USER.alloc(),
            Space::User(_) => None,
        }
    }

    fn free_slot_page(&self, space: Space, page: usize) {
        match space {
            Space::Kernel => slots::KERNEL.free(page),
            Space::User(_) => slots::USER.free(page),
        }
    }

    fn synchronize(&self) {
        if smp::others_online() > 0 {
            STATS.remote_grace_periods.fetch_add(1, Ordering::Relaxed);
        }
        smp::wait_quiescent_others();
    }

    fn may_fault(&self, addr: usize) -> bool {
        // An instruction with a fix-up: its fault resumes elsewhere in the
        // function, possibly inside a displaced region.
        super::fixup::lookup(addr).is_some()
    }

    fn kernel_slots_covered_by_grace_period(&self) -> bool {
        // See the module documentation: voluntary quiescent points only.
        true
    }

    fn alloc_detour_page(&self, near: usize, reach: usize) -> Option<usize> {
        if DETOURS.refuse.load(Ordering::SeqCst) {
            return None;
        }
        let area = layout::detours();
        let in_reach = |base: usize| {
            near.abs_diff(base) <= reach && near.abs_diff(base + layout::PAGE_SIZE) <= reach
        };
        let used = DETOURS.used.load(Ordering::SeqCst);
        let Some(i) = (0..DETOUR_PAGES)
            .find(|&i| used & (1 << i) == 0 && in_reach(area.start + i * layout::PAGE_SIZE))
        else {
            DETOURS.out_of_reach.fetch_add(1, Ordering::SeqCst);
            return None;
        };
        // Registration is serialised by the engine's lock.
        DETOURS.used.fetch_or(1 << i, Ordering::SeqCst);
        DETOURS.allocs.fetch_add(1, Ordering::SeqCst);
        Some(area.start + i * layout::PAGE_SIZE)
    }

    fn free_detour_page(&self, page: usize) {
        let area = layout::detours();
        assert!(
            area.contains(&page) && (page - area.start) % layout::PAGE_SIZE == 0,
            "free_detour_page({page:#x}): not a detour page"
        );
        let i = (page - area.start) / layout::PAGE_SIZE;
        assert!(
            DETOURS.used.load(Ordering::SeqCst) & (1 << i) != 0,
            "detour page {page:#x} freed twice"
        );
        // No hart runs in it any more (the engine frees after a grace
        // period): back to c.unimp.
        let _ = self.write_text(Space::Kernel, page, &[0; layout::PAGE_SIZE]);
        self.sync_icache(Space::Kernel, page, layout::PAGE_SIZE);
        DETOURS.used.fetch_and(!(1 << i), Ordering::SeqCst);
        DETOURS.frees.fetch_add(1, Ordering::SeqCst);
    }

    fn lookup_symbol(&self, name: &str) -> Option<Symbol> {
        symbols::find(name)
            .filter(|f| !f.is_user())
            .map(|f| f.symbol())
    }

    fn symbol_containing(&self, space: Space, addr: usize) -> Option<Symbol> {
        symbols::containing(addr, space != Space::Kernel).map(|f| f.symbol())
    }

    fn blacklist(&self) -> &[Range<usize>] {
        if !self.blacklist_ready.load(Ordering::Acquire) {
            return &[];
        }
        // SAFETY: written once before `blacklist_ready` (see `Sync`).
        core::slice::from_ref(unsafe { &*self.blacklist.get() })
    }
}
