//! The kernel side of the engine: `KernelServices` for this machine, the
//! engine itself, the tasks and their probe state.
//!
//! - Memory is identity-mapped (see [`crate::mmu`]), so reads and writes
//!   are plain copies, bounded to the kernel image or the user region so a
//!   bad address is a `MemoryFault`, not a crash (`SCTLR_EL1.SPAN` keeps
//!   PAN off, so the kernel reaches EL0 pages from its trap handlers).
//! - Text patching writes one aligned 32-bit word with a single store
//!   while every other CPU is parked ([`crate::smp::stop_machine`]: `brk`
//!   over an arbitrary instruction is outside the CMODX set), then cleans
//!   and invalidates the line to the point of unification (`dc cvau`,
//!   `dsb ish`, `ic ivau`, `dsb ish`, `isb`); `sync_icache` repeats that
//!   and has every other CPU run `isb`.
//! - Slot pages come from a static executable area after the kernel text,
//!   and for the user space from the user region (EL0 executes there).
//! - Detour pages (jump-optimised probes) come from the `.detours` area
//!   link.ld reserves right after the text, handed out only when the whole
//!   page lies within the asked reach of the probe (`b`: ±128 MiB); a freed
//!   page is zeroed again (`udf #0`), so a stale detour can never run.
//! - A grace period is every other busy CPU answering a request at a
//!   quiescent point (an idle CPU is quiescent: see [`crate::smp`]), which
//!   an interrupt taken in a displaced instruction, a detour or the trap
//!   text is not; user tasks here run to completion before the kernel goes
//!   on, so none can be stopped inside a user slot.

use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use probe_core::{KernelServices, Space, Symbol, TaskState, TextPatchError};
use probe_hal::MemoryFault;
use probe_hal_aarch64::Aarch64;

use crate::smp::CPUS;

/// The probe engine: 64 probes, 32 return instances, 8 slot pages.
pub type ProbeEngine = probe_core::Engine<Aarch64, spin::Mutex<()>, Kernel, 64, 32, CPUS, 8, 64>;

/// The engine, shared by every CPU.
pub static ENGINE: ProbeEngine = ProbeEngine::new(Kernel);

/// The address-space id of the (only) user program.
pub const USER_ASID: usize = 1;
/// The user task's number; tasks `0..CPUS` are the CPUs' kernel tasks.
pub const USER_TASK: usize = CPUS;
/// Slot page size.
pub const PAGE: usize = 4096;

/// Probe state of every task.
static TASKS: [TaskState<Aarch64>; CPUS + 1] = [const { TaskState::new() }; CPUS + 1];
/// The task each CPU runs.
static CURRENT: [AtomicUsize; CPUS] = {
    let mut c = [const { AtomicUsize::new(0) }; CPUS];
    let mut i = 0;
    while i < CPUS {
        c[i] = AtomicUsize::new(i);
        i += 1;
    }
    c
};

/// The probe state of task `task`.
pub fn task(task: usize) -> &'static TaskState<Aarch64> {
    &TASKS[task]
}

/// Make this CPU run `task` (the user task while a user program runs, its
/// own kernel task otherwise).
pub fn switch_to(task: usize) {
    CURRENT[crate::sysreg::cpu_id()].store(task, Ordering::Release);
}

/// The task this CPU runs.
pub fn current_task() -> usize {
    CURRENT[crate::sysreg::cpu_id().min(CPUS - 1)].load(Ordering::Acquire)
}

/// The address of a linker-script symbol.
macro_rules! linker_addr {
    ($name:ident) => {{
        extern "C" {
            static $name: u8;
        }
        core::ptr::addr_of!($name) as usize
    }};
}
pub(crate) use linker_addr;

/// The kernel image (text, data, bss, stacks).
pub fn kernel_image() -> Range<usize> {
    linker_addr!(__kernel_start)..linker_addr!(__kernel_end)
}

/// The user region (text, slot pages, data and stack).
pub fn user_region() -> Range<usize> {
    linker_addr!(__user_start)..linker_addr!(__user_end)
}

/// The static area kernel slot pages come from.
pub fn kernel_slot_area() -> Range<usize> {
    linker_addr!(__kernel_slots_start)..linker_addr!(__kernel_slots_end)
}

/// The part of the user region user slot pages come from.
pub fn user_slot_area() -> Range<usize> {
    linker_addr!(__user_slots_start)..linker_addr!(__user_slots_end)
}

fn region(space: Space) -> Option<Range<usize>> {
    match space {
        Space::Kernel => Some(kernel_image()),
        Space::User(USER_ASID) => Some(user_region()),
        Space::User(_) => None,
    }
}

/// `addr..addr + len` lies inside `space`'s memory.
fn check(space: Space, addr: usize, len: usize) -> Result<(), MemoryFault> {
    let r = region(space).ok_or(MemoryFault { addr })?;
    match addr.checked_add(len) {
        Some(end) if addr >= r.start && end <= r.end => Ok(()),
        _ => Err(MemoryFault { addr }),
    }
}

/// Slot pages in use, one bit per page of each area.
static KERNEL_PAGES: AtomicU32 = AtomicU32::new(0);
static USER_PAGES: AtomicU32 = AtomicU32::new(0);
/// The last slot page handed out for the user space (for the checks).
static LAST_USER_PAGE: AtomicUsize = AtomicUsize::new(0);
/// Grace periods and instruction-fetch syncs the engine asked for.
static GRACE_PERIODS: AtomicU64 = AtomicU64::new(0);
static ICACHE_SYNCS: AtomicU64 = AtomicU64::new(0);

/// The last page given out for user slots.
pub fn last_user_slot_page() -> usize {
    LAST_USER_PAGE.load(Ordering::Acquire)
}

/// Grace periods and icache syncs so far.
pub fn sync_counts() -> (u64, u64) {
    (
        GRACE_PERIODS.load(Ordering::Relaxed),
        ICACHE_SYNCS.load(Ordering::Relaxed),
    )
}

/// Slot pages held: (kernel, user).
pub fn pages_held() -> (u32, u32) {
    (
        KERNEL_PAGES.load(Ordering::Acquire).count_ones(),
        USER_PAGES.load(Ordering::Acquire).count_ones(),
    )
}

fn slot_pages(space: Space) -> Option<(&'static AtomicU32, Range<usize>)> {
    match space {
        Space::Kernel => Some((&KERNEL_PAGES, kernel_slot_area())),
        Space::User(USER_ASID) => Some((&USER_PAGES, user_slot_area())),
        Space::User(_) => None,
    }
}

/// Ranges no probe may go on: the boot code, the exception vectors with
/// the Rust trap path, the return trampoline and the detour area.
static BLACKLIST: spin::Once<[Range<usize>; 4]> = spin::Once::new();

/// The detour area (link.ld's `.detours`, right after the text).
pub fn detour_area() -> Range<usize> {
    linker_addr!(__detours_start)..linker_addr!(__detours_end)
}

/// Pages of the detour area.
pub const DETOUR_PAGES: usize = 4;

/// The detour pages handed out, and counters for the checks.
pub struct DetourPages {
    /// One bit per page of `.detours`.
    pub used: AtomicUsize,
    /// Pages handed out since boot.
    pub allocs: AtomicUsize,
    /// Requests with no free page in reach.
    pub out_of_reach: AtomicUsize,
    /// Refuse every request (a check's "no detour memory").
    pub refuse: AtomicBool,
}

/// See [`DetourPages`].
pub static DETOURS: DetourPages = DetourPages {
    used: AtomicUsize::new(0),
    allocs: AtomicUsize::new(0),
    out_of_reach: AtomicUsize::new(0),
    refuse: AtomicBool::new(false),
};

/// The engine's view of this kernel.
pub struct Kernel;

impl KernelServices<Aarch64> for Kernel {
    fn cpu_id(&self) -> usize {
        crate::sysreg::cpu_id()
    }

    fn with_current_task<R>(&self, f: impl FnOnce(&TaskState<Aarch64>) -> R) -> Option<R> {
        Some(f(&TASKS[current_task()]))
    }

    fn current_space(&self) -> usize {
        if current_task() == USER_TASK {
            USER_ASID
        } else {
            0
        }
    }

    fn read(&self, space: Space, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        check(space, addr, buf.len())?;
        // SAFETY: `check` bounded the range to the kernel image or the user
        // region, which the identity map covers for the whole run (EL1 may
        // read user pages: PAN stays off); `buf` is a distinct Rust buffer.
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write_data(&self, space: Space, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
        check(space, addr, data.len())?;
        // SAFETY: as in `read`; the engine writes only the probed context's
        // data (a stack slot) on its behalf.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
        Ok(())
    }

    fn write_text(&self, space: Space, addr: usize, bytes: &[u8]) -> Result<(), TextPatchError> {
        check(space, addr, bytes.len()).map_err(|_| TextPatchError)?;
        crate::smp::stop_machine(|| {
            if bytes.len() == 4 && addr.is_multiple_of(4) {
                let word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                // SAFETY: an aligned word inside mapped memory (checked
                // above), written with one single-copy-atomic store while
                // every other CPU is parked.
                unsafe { AtomicU32::from_ptr(addr as *mut u32).store(word, Ordering::Release) };
            } else {
                for (i, b) in bytes.iter().enumerate() {
                    // SAFETY: inside mapped memory (checked above). Only
                    // slots no CPU can execute yet are written byte by byte.
                    unsafe { core::ptr::write_volatile((addr + i) as *mut u8, *b) };
                }
            }
            crate::sysreg::sync_icache_range(addr, bytes.len());
        });
        Ok(())
    }

    fn sync_icache(&self, space: Space, addr: usize, len: usize) {
        ICACHE_SYNCS.fetch_add(1, Ordering::Relaxed);
        if check(space, addr, len).is_ok() {
            crate::sysreg::sync_icache_range(addr, len);
            crate::smp::request(crate::smp::Request::Icache);
        }
    }

    fn alloc_slot_page(&self, space: Space, _near: usize) -> Option<usize> {
        let (bits, area) = slot_pages(space)?;
        let pages = (area.end - area.start) / PAGE;
        let mut cur = bits.load(Ordering::Acquire);
        loop {
            let free = (0..pages).find(|&i| cur & (1 << i) == 0)?;
            match bits.compare_exchange(cur, cur | (1 << free), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let page = area.start + free * PAGE;
                    if let Space::User(_) = space {
                        LAST_USER_PAGE.store(page, Ordering::Release);
                    }
                    return Some(page);
                }
                Err(now) => cur = now,
            }
        }
    }

    fn free_slot_page(&self, space: Space, page: usize) {
        if let Some((bits, area)) = slot_pages(space) {
            if area.contains(&page) {
                bits.fetch_and(!(1 << ((page - area.start) / PAGE)), Ordering::AcqRel);
            }
        }
    }

    fn slot_page_size(&self) -> usize {
        PAGE
    }

    fn synchronize(&self) {
        GRACE_PERIODS.fetch_add(1, Ordering::Relaxed);
        crate::smp::request(crate::smp::Request::Grace);
    }

    fn lookup_symbol(&self, name: &str) -> Option<Symbol> {
        crate::testfns::symbols()
            .into_iter()
            .find(|s| s.name == name)
            .map(|s| Symbol {
                addr: s.start,
                size: s.end - s.start,
            })
    }

    fn symbol_containing(&self, space: Space, addr: usize) -> Option<Symbol> {
        if space != Space::Kernel {
            return None;
        }
        crate::testfns::symbols()
            .into_iter()
            .find(|s| (s.start..s.end).contains(&addr))
            .map(|s| Symbol {
                addr: s.start,
                size: s.end - s.start,
            })
    }

    fn may_fault(&self, addr: usize) -> bool {
        crate::fixup::lookup(addr).is_some()
    }

    fn kernel_slots_covered_by_grace_period(&self) -> bool {
        // A grace period waits for every busy CPU to pass a quiescent point
        // outside displaced instructions, detours and the trap text
        // (`smp::kicked` refuses to answer in them; there is no
        // preemption). aarch64 slots are never boosted, so this changes
        // nothing for them; it lets the engine optimise.
        true
    }

    fn alloc_detour_page(&self, near: usize, reach: usize) -> Option<usize> {
        if DETOURS.refuse.load(Ordering::SeqCst) {
            return None;
        }
        let area = detour_area();
        let in_reach =
            |base: usize| near.abs_diff(base) <= reach && near.abs_diff(base + PAGE) <= reach;
        let used = DETOURS.used.load(Ordering::SeqCst);
        let Some(i) =
            (0..DETOUR_PAGES).find(|&i| used & (1 << i) == 0 && in_reach(area.start + i * PAGE))
        else {
            DETOURS.out_of_reach.fetch_add(1, Ordering::SeqCst);
            return None;
        };
        // Registration is serialised by the engine's lock.
        DETOURS.used.fetch_or(1 << i, Ordering::SeqCst);
        DETOURS.allocs.fetch_add(1, Ordering::SeqCst);
        Some(area.start + i * PAGE)
    }

    fn free_detour_page(&self, page: usize) {
        let area = detour_area();
        assert!(
            area.contains(&page) && (page - area.start).is_multiple_of(PAGE),
            "free_detour_page({page:#x}): not a detour page"
        );
        let i = (page - area.start) / PAGE;
        assert!(
            DETOURS.used.load(Ordering::SeqCst) & (1 << i) != 0,
            "detour page {page:#x} freed twice"
        );
        // No CPU runs in it any more (the engine frees after a grace
        // period): back to `udf #0`.
        let _ = self.write_text(Space::Kernel, page, &[0; PAGE]);
        DETOURS.used.fetch_and(!(1 << i), Ordering::SeqCst);
    }

    fn blacklist(&self) -> &[Range<usize>] {
        BLACKLIST.get().map_or(&[], |b| &b[..])
    }
}

/// Boot-time set-up on CPU 0, before the other CPUs run: the blacklist,
/// the return hook the kernel return trampoline calls and the opt hook
/// detours call (jump optimisation switched off until the optimised
/// checks).
pub fn init() {
    BLACKLIST.call_once(|| {
        [
            linker_addr!(__kernel_start)..crate::trap::entry_range().start,
            crate::trap::entry_range(),
            probe_hal_aarch64::rethook::trampoline_range().unwrap_or(0..0),
            detour_area(),
        ]
    });
    if probe_hal::rethook::set_return_hook(&ENGINE).is_err() {
        crate::println!("the return hook was already installed");
    }
    // Detours call back into the engine; optimisation stays off except in
    // the optimised checks (the others count breakpoint traps and steps).
    if probe_hal::opthook::set_opt_hook(&ENGINE).is_err() {
        crate::println!("the opt hook was already installed");
    }
    if ENGINE.set_optimization(false).is_err() {
        crate::println!("switching jump optimisation off failed");
    }
}
