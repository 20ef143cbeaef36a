//! The kernel services the engine needs, for this ring-0 kernel on two
//! CPUs, and the engine itself.
//!
//! - memory: the identity map, read and written directly; addresses outside
//!   it are refused rather than faulted on;
//! - text: mapped read-only, written with CR0.WP cleared and interrupts
//!   masked, with the other CPU stopped in its IPI handler meanwhile
//!   ("stop machine", [`crate::smp::stop_others`]), which serialises before
//!   it runs on;
//! - instruction fetch: x86 keeps it coherent with stores on the same CPU
//!   once a serialising instruction has run (Intel SDM Vol. 3A §8.1.3), so
//!   `sync_icache` is a `cpuid` here, and an IPI to the other CPU when it
//!   has not serialised since the last write;
//! - slot pages: a static executable area inside the kernel text, well
//!   within ±2 GiB of every probed instruction;
//! - detour pages (jump-optimised probes): a static `int3`-filled 64 KiB
//!   area in the text next to the slots (linker section `.detours`), handed
//!   out a page at a time when the whole page is within the asked reach;
//!   written by the engine through `write_text` like any text;
//! - CPUs: `cpu_id` reads the per-CPU data at `gs:0` ([`crate::percpu`]);
//!   tasks: no scheduler, CPU `i` always runs kernel task `i` ([`TASKS`]);
//! - grace period: probes run their handlers and steps with interrupts
//!   masked, so an IPI that the other CPU takes outside every slot and the
//!   trap text proves it has left them ([`crate::smp::wait_quiescent_others`]);
//!   this CPU, registering, is outside them anyway. Boosted slots (run with
//!   interrupts as they were) are covered too: an IPI landing in one is no
//!   quiescent point, and the IPI is sent again;
//! - symbols: the probed test functions ([`crate::symbols`]); blacklist:
//!   the exception and interrupt entries, and the boot code.

use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::ops::Range;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use probe_core::{Engine, KernelServices, Space, Symbol, TaskState, TextPatchError};
use probe_hal::MemoryFault;
use probe_hal_x86_64::X86_64;

use crate::boot::{MAPPED_END, MAPPED_START};
use crate::smp::{self, MAX_CPUS};
use crate::{cpu, entry, percpu, symbols};

/// The engine of this kernel: up to 32 probes, [`INSTANCES`] return
/// instances in flight, two CPUs, 4 slot pages, 16 bytes of per-instance
/// data.
pub type KernelEngine =
    Engine<X86_64, spin::Mutex<()>, Ring0, 32, INSTANCES, MAX_CPUS, SLOT_PAGES, 16>;

/// Return instances the engine holds.
pub const INSTANCES: usize = 16;

/// The engine.
pub static ENGINE: KernelEngine = KernelEngine::new(Ring0);

/// The probe state of each CPU's kernel task (no scheduler: CPU `i` always
/// runs task `i`).
pub static TASKS: [TaskState<X86_64>; MAX_CPUS] = [const { TaskState::new() }; MAX_CPUS];

/// Slot pages the kernel can give.
pub const SLOT_PAGES: usize = 4;
const PAGE: usize = 4096;

global_asm!(
    // Filled with int3: a jump into an unused slot traps at once.
    ".pushsection .xq_slots, \"ax\", @progbits",
    ".p2align 12",
    ".global xq_slot_area",
    "xq_slot_area:",
    ".fill {len}, 1, 0xcc",
    ".popsection",
    len = const SLOT_PAGES * PAGE,
);

extern "C" {
    fn xq_slot_area();
}

fn slot_area() -> Range<usize> {
    let start = xq_slot_area as *const () as usize;
    start..start + SLOT_PAGES * PAGE
}

/// Whether `addr` lies in the slot area.
pub fn in_slot_area(addr: usize) -> bool {
    slot_area().contains(&addr)
}

/// Pages of the detour area (64 KiB).
pub const DETOUR_PAGES: usize = 16;

global_asm!(
    // Filled with int3, as the slots: a jump into an unused detour traps.
    ".pushsection .xq_detours, \"ax\", @progbits",
    ".p2align 12",
    ".global xq_detour_area",
    "xq_detour_area:",
    ".fill {len}, 1, 0xcc",
    ".popsection",
    len = const DETOUR_PAGES * PAGE,
);

extern "C" {
    fn xq_detour_area();
}

/// The detour area.
pub fn detour_area() -> Range<usize> {
    let start = xq_detour_area as *const () as usize;
    start..start + DETOUR_PAGES * PAGE
}

/// Bit `i`: detour page `i` is handed out.
static DETOUR_USED: AtomicU64 = AtomicU64::new(0);
/// Detour pages handed out and given back since boot, and requests
/// refused because no free page was within reach.
static DETOUR_ALLOCS: AtomicU64 = AtomicU64::new(0);
static DETOUR_FREES: AtomicU64 = AtomicU64::new(0);
static DETOUR_OUT_OF_REACH: AtomicU64 = AtomicU64::new(0);
/// While set, `alloc_detour_page` answers `None` (a check of the refusal).
static REFUSE_DETOURS: AtomicBool = AtomicBool::new(false);

/// Make `alloc_detour_page` answer `None` (or work again).
pub fn refuse_detours(refuse: bool) {
    REFUSE_DETOURS.store(refuse, Ordering::SeqCst);
}

/// Detour pages held now, handed out and given back since boot.
pub fn detour_page_counts() -> (u32, u64, u64) {
    (
        DETOUR_USED.load(Ordering::SeqCst).count_ones(),
        DETOUR_ALLOCS.load(Ordering::SeqCst),
        DETOUR_FREES.load(Ordering::SeqCst),
    )
}

/// Bit `i`: slot page `i` is handed out.
static PAGES_USED: AtomicU8 = AtomicU8::new(0);
/// Slot pages handed out and given back since boot.
static PAGE_ALLOCS: AtomicU64 = AtomicU64::new(0);
static PAGE_FREES: AtomicU64 = AtomicU64::new(0);
/// Grace periods asked for since boot.
static GRACE_PERIODS: AtomicU64 = AtomicU64::new(0);

/// Slot pages handed out and given back since boot.
pub fn page_counts() -> (u64, u64) {
    (
        PAGE_ALLOCS.load(Ordering::SeqCst),
        PAGE_FREES.load(Ordering::SeqCst),
    )
}

/// Grace periods asked for since boot.
pub fn grace_periods() -> u64 {
    GRACE_PERIODS.load(Ordering::SeqCst)
}

/// Whether `addr` lies in the engine's trap path (`probe_trap_text`: the
/// engine's trap entry points and the return trampoline).
pub fn in_trap_text(addr: usize) -> bool {
    (&raw const __start_probe_trap_text as usize..&raw const __stop_probe_trap_text as usize)
        .contains(&addr)
}

/// Ranges that must never be probed, set once by [`init`]: the exception
/// entries (a breakpoint there would trap inside the trap path) and the
/// boot code (ran once, with paging off).
struct Blacklist(UnsafeCell<[Range<usize>; 2]>);

// SAFETY: written once by `init`, on the boot CPU, before the engine is
// used and before the second CPU starts; only read afterwards.
unsafe impl Sync for Blacklist {}

static BLACKLIST: Blacklist = Blacklist(UnsafeCell::new([0..0, 0..0]));

extern "C" {
    static __image_start: u8;
    static __text_start: u8;
    static __entry_start: u8;
    static __entry_end: u8;
    static __start_probe_trap_text: u8;
    static __stop_probe_trap_text: u8;
}

/// Record the addresses the services need. Call once, before registering.
pub fn init() {
    let entries = &raw const __entry_start as usize..&raw const __entry_end as usize;
    let boot = &raw const __image_start as usize..&raw const __text_start as usize;
    debug_assert!(entries.contains(&entry::int3_entry()));
    // SAFETY: see `Blacklist`: this is the one write, before any reader.
    unsafe { *BLACKLIST.0.get() = [entries, boot] };
}

fn mapped(addr: usize, len: usize) -> bool {
    addr >= MAPPED_START && addr.checked_add(len).is_some_and(|end| end <= MAPPED_END)
}

/// Read one byte of kernel memory (text included) without creating a
/// reference to memory the engine may patch.
pub fn peek(addr: usize) -> u8 {
    assert!(mapped(addr, 1), "peek at unmapped {addr:#x}");
    // SAFETY: the address is identity-mapped (checked above) and readable.
    unsafe { ptr::read_volatile(addr as *const u8) }
}

/// The kernel's services (state lives in statics: a task per CPU).
pub struct Ring0;

impl KernelServices<X86_64> for Ring0 {
    fn cpu_id(&self) -> usize {
        percpu::cpu_id()
    }

    fn with_current_task<R>(&self, f: impl FnOnce(&TaskState<X86_64>) -> R) -> Option<R> {
        Some(f(&TASKS[percpu::cpu_id()]))
    }

    fn current_space(&self) -> usize {
        // No user space in this kernel.
        0
    }

    fn read(&self, space: Space, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        if space != Space::Kernel || !mapped(addr, buf.len()) {
            return Err(MemoryFault { addr });
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: the range is identity-mapped and readable; `buf` is a
            // distinct Rust buffer. Volatile: the bytes may be text the
            // engine patches, which Rust must not assume unchanged.
            *b = unsafe { ptr::read_volatile((addr + i) as *const u8) };
        }
        Ok(())
    }

    fn write_data(&self, space: Space, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
        if space != Space::Kernel || !mapped(addr, data.len()) {
            return Err(MemoryFault { addr });
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: the range is mapped and writable (data and stacks lie
            // outside the read-only text); the engine writes a probed
            // context's stack below its stack pointer, which nothing else
            // uses while the context is stopped in the trap.
            unsafe { ptr::write_volatile((addr + i) as *mut u8, *b) };
        }
        Ok(())
    }

    fn write_text(&self, space: Space, addr: usize, bytes: &[u8]) -> Result<(), TextPatchError> {
        if space != Space::Kernel || !mapped(addr, bytes.len()) {
            return Err(TextPatchError);
        }
        // The other CPU spins in its IPI handler, interrupts masked, until
        // the guard drops; it then serialises before it runs on.
        let stop = smp::stop_others();
        if stop.any() {
            smp::STATS.stopped_writes.fetch_add(1, Ordering::Relaxed);
            if in_slot_area(addr) {
                smp::STATS.slot_writes.fetch_add(1, Ordering::Relaxed);
            }
        }
        cpu::with_write_protect_off(|| {
            for (i, b) in bytes.iter().enumerate() {
                // SAFETY: the range is mapped; CR0.WP is clear, so ring 0
                // may write it although text is read-only; interrupts are
                // masked here and the other CPU is stopped outside the
                // text, so no one executes these bytes while they change.
                unsafe { ptr::write_volatile((addr + i) as *mut u8, *b) };
            }
        });
        smp::text_written();
        cpu::serialize();
        drop(stop);
        Ok(())
    }

    fn sync_icache(&self, _space: Space, _addr: usize, _len: usize) {
        // Stores already done: a serialising instruction on every CPU makes
        // instruction fetch see them (the other CPU usually did it already,
        // leaving the stop of `write_text`).
        smp::serialize_everywhere();
    }

    fn alloc_slot_page(&self, space: Space, near: usize) -> Option<usize> {
        // All of this kernel is within 1 GiB: any page is near enough.
        let _ = near;
        if space != Space::Kernel {
            return None;
        }
        let used = PAGES_USED.load(Ordering::SeqCst);
        let i = (0..SLOT_PAGES).find(|i| used & (1 << i) == 0)?;
        PAGES_USED.fetch_or(1 << i, Ordering::SeqCst);
        PAGE_ALLOCS.fetch_add(1, Ordering::SeqCst);
        Some(slot_area().start + i * PAGE)
    }

    fn free_slot_page(&self, space: Space, page: usize) {
        let area = slot_area();
        assert!(
            space == Space::Kernel && area.contains(&page) && (page - area.start) % PAGE == 0,
            "free_slot_page({space:?}, {page:#x}): not a slot page of ours"
        );
        let i = (page - area.start) / PAGE;
        assert!(
            PAGES_USED.load(Ordering::SeqCst) & (1 << i) != 0,
            "slot page {page:#x} freed twice"
        );
        // Back to all-int3, so stale slot bytes can never run.
        let _ = self.write_text(space, page, &[0xcc; PAGE]);
        self.sync_icache(space, page, PAGE);
        PAGES_USED.fetch_and(!(1 << i), Ordering::SeqCst);
        PAGE_FREES.fetch_add(1, Ordering::SeqCst);
    }

    fn alloc_detour_page(&self, near: usize, reach: usize) -> Option<usize> {
        if REFUSE_DETOURS.load(Ordering::SeqCst) {
            return None;
        }
        let area = detour_area();
        let used = DETOUR_USED.load(Ordering::SeqCst);
        let in_reach =
            |base: usize| near.abs_diff(base) <= reach && near.abs_diff(base + PAGE) <= reach;
        let Some(i) =
            (0..DETOUR_PAGES).find(|&i| used & (1 << i) == 0 && in_reach(area.start + i * PAGE))
        else {
            DETOUR_OUT_OF_REACH.fetch_add(1, Ordering::SeqCst);
            return None;
        };
        // Registration is serialised by the engine's lock: no race on the
        // bit between the load and this.
        DETOUR_USED.fetch_or(1 << i, Ordering::SeqCst);
        DETOUR_ALLOCS.fetch_add(1, Ordering::SeqCst);
        Some(area.start + i * PAGE)
    }

    fn free_detour_page(&self, page: usize) {
        let area = detour_area();
        assert!(
            area.contains(&page) && (page - area.start) % PAGE == 0,
            "free_detour_page({page:#x}): not a detour page of ours"
        );
        let i = (page - area.start) / PAGE;
        assert!(
            DETOUR_USED.load(Ordering::SeqCst) & (1 << i) != 0,
            "detour page {page:#x} freed twice"
        );
        // Back to all-int3 (the engine gives it back after a grace period:
        // no CPU runs in it), so a stale detour can never run.
        let _ = self.write_text(Space::Kernel, page, &[0xcc; PAGE]);
        self.sync_icache(Space::Kernel, page, PAGE);
        DETOUR_USED.fetch_and(!(1 << i), Ordering::SeqCst);
        DETOUR_FREES.fetch_add(1, Ordering::SeqCst);
    }

    fn detours_mask_interrupts(&self) -> bool {
        // Ring 0: the detour's `cli` masks interrupts around the handlers,
        // as the breakpoint gate does.
        true
    }

    fn synchronize(&self) {
        // See the module documentation.
        GRACE_PERIODS.fetch_add(1, Ordering::SeqCst);
        smp::wait_quiescent_others();
    }

    fn kernel_slots_covered_by_grace_period(&self) -> bool {
        // No preemption, and the grace period does not accept an IPI taken
        // inside a slot, the trap text, a displaced region whose jump is
        // changing or in place, or a detour (`smp::quiescent_at`): no CPU
        // is inside one when it returns.
        true
    }

    fn lookup_symbol(&self, name: &str) -> Option<Symbol> {
        symbols::lookup(name)
    }

    fn symbol_containing(&self, space: Space, addr: usize) -> Option<Symbol> {
        match space {
            Space::Kernel => symbols::containing(addr),
            Space::User(_) => None,
        }
    }

    fn may_fault(&self, addr: usize) -> bool {
        // An instruction with an exception-table entry is never boosted, so
        // its fault always reaches the fix-up at the probe address.
        crate::extable::fixup(addr).is_some()
    }

    fn blacklist(&self) -> &[Range<usize>] {
        // SAFETY: see `Blacklist`: written once before the engine runs.
        unsafe { &*BLACKLIST.0.get() }
    }
}
