//! The measured system: a real `probe_core::Engine` over an RWX mapping
//! that holds two copies of a small function (one probed, one not), the
//! engine's slot pages and its detour page. The engine is installed as the
//! optimised-hit hook and optimises the probe itself.

use core::arch::{asm, global_asm};
use std::sync::atomic::{AtomicUsize, Ordering};

use probe_core::{
    KernelServices, Kprobe, Optimization, PreAction, ProbeContext, ProbeId, Space, Symbol,
    TaskState, TextPatchError,
};
use probe_hal::{MemoryFault, Registers};
use probe_hal_x86_64::X86_64;

global_asm!(
    ".pushsection .text.engine_bench_opt_victim, \"ax\", @progbits",
    ".p2align 4",
    // victim(rdi, rsi) = rdi + rsi, with a frame: the probe at its entry
    // displaces `push rbp; mov rbp, rsp; mov rax, rdi` (7 bytes, 3
    // instructions), as a kprobe on a kernel function's entry would.
    ".globl engine_bench_opt_victim",
    "engine_bench_opt_victim:",
    "push rbp",
    "mov rbp, rsp",
    "mov rax, rdi",
    "add rax, rsi",
    "pop rbp",
    "ret",
    ".globl engine_bench_opt_victim_end",
    "engine_bench_opt_victim_end:",
    ".popsection",
);

extern "C" {
    fn engine_bench_opt_victim();
    fn engine_bench_opt_victim_end();
}

/// Page size of the synthetic kernel.
pub const PAGE: usize = 4096;
/// Bytes of the RWX mapping.
const MAP_LEN: usize = 16 * PAGE;
/// Offsets in the mapping: the probed copy, the unprobed copy, the slot
/// pages (pages 1 to 4), the detour page (page 8).
const PROBED_AT: usize = 0;
const UNPROBED_AT: usize = 0x100;
const FIRST_SLOT_PAGE: usize = 1;
const SLOT_PAGES: usize = 4;
const DETOUR_PAGE: usize = 8;

/// Capacities as in the breakpoint benchmark (`benches/engine/ours.rs`).
pub type OptEngine = probe_core::Engine<X86_64, spin::Mutex<()>, OptServices, 1024, 256, 4, 64, 64>;

/// The engine, static as in a kernel (its address is the hook's).
pub static ENGINE: OptEngine = OptEngine::new(OptServices::new());

static TASK: TaskState<X86_64> = TaskState::new();

/// Kernel services over the mapping: one CPU, one task, text writes are
/// plain stores (the only thread writes before it executes), nothing to
/// wait for. The grace period "covers" kernel slots (required for
/// optimisation), and detours do not mask interrupts (`cli` faults in user
/// mode; the detour then has a `nop` of the same length instead: the same
/// instruction count).
pub struct OptServices {
    base: AtomicUsize,
    slot_pages: AtomicUsize,
    detour_pages: AtomicUsize,
}

impl OptServices {
    const fn new() -> Self {
        Self {
            base: AtomicUsize::new(0),
            slot_pages: AtomicUsize::new(0),
            detour_pages: AtomicUsize::new(0),
        }
    }

    fn base(&self) -> usize {
        self.base.load(Ordering::Relaxed)
    }

    fn inside(&self, addr: usize, len: usize) -> bool {
        let base = self.base();
        base != 0 && addr >= base && addr.checked_add(len).is_some_and(|e| e <= base + MAP_LEN)
    }
}

impl KernelServices<X86_64> for OptServices {
    fn cpu_id(&self) -> usize {
        0
    }

    fn with_current_task<R>(&self, f: impl FnOnce(&TaskState<X86_64>) -> R) -> Option<R> {
        Some(f(&TASK))
    }

    fn current_space(&self) -> usize {
        0
    }

    fn read(&self, _: Space, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        if !self.inside(addr, buf.len()) {
            return Err(MemoryFault { addr });
        }
        // SAFETY: inside our mapping (checked), which lives for the process.
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write_data(&self, _: Space, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
        self.write_text(Space::Kernel, addr, data)
            .map_err(|_| MemoryFault { addr })
    }

    fn write_text(&self, _: Space, addr: usize, bytes: &[u8]) -> Result<(), TextPatchError> {
        if !self.inside(addr, bytes.len()) {
            return Err(TextPatchError);
        }
        // SAFETY: inside our writable mapping (checked); the benchmark is
        // single-threaded, so no thread executes these bytes meanwhile.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
        Ok(())
    }

    fn alloc_slot_page(&self, _: Space, _near: usize) -> Option<usize> {
        let n = self.slot_pages.fetch_add(1, Ordering::Relaxed);
        (n < SLOT_PAGES).then(|| self.base() + (FIRST_SLOT_PAGE + n) * PAGE)
    }

    fn free_slot_page(&self, _: Space, _: usize) {}

    fn slot_page_size(&self) -> usize {
        PAGE
    }

    fn alloc_detour_page(&self, near: usize, reach: usize) -> Option<usize> {
        if self.detour_pages.fetch_add(1, Ordering::Relaxed) > 0 {
            return None;
        }
        let page = self.base() + DETOUR_PAGE * PAGE;
        (page.abs_diff(near) + PAGE <= reach).then_some(page)
    }

    fn detours_mask_interrupts(&self) -> bool {
        false
    }

    fn synchronize(&self) {}

    fn kernel_slots_covered_by_grace_period(&self) -> bool {
        true
    }

    fn symbol_containing(&self, _: Space, addr: usize) -> Option<Symbol> {
        let size = victim_len();
        [PROBED_AT, UNPROBED_AT]
            .into_iter()
            .map(|off| Symbol {
                addr: self.base() + off,
                size,
            })
            .find(|s| addr >= s.addr && addr < s.addr + s.size)
    }
}

/// Bytes of the victim function.
pub fn victim_len() -> usize {
    engine_bench_opt_victim_end as *const () as usize
        - engine_bench_opt_victim as *const () as usize
}

/// The probe's pre-handler: empty (its body is not the engine's cost).
#[inline(never)]
pub fn empty_pre(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    PreAction::Continue
}

fn syscall6(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: a Linux x86_64 system call (mmap here); the kernel clobbers
    // rcx and r11 only.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a[0], in("rsi") a[1],
             in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// An anonymous RWX mapping, at `hint` if the kernel agrees.
fn map_rwx(hint: usize) -> Option<usize> {
    const PROT_RWX: usize = 7;
    const MAP_PRIVATE_ANON: usize = 0x02 | 0x20;
    let r = syscall6(
        9,
        [hint, MAP_LEN, PROT_RWX, MAP_PRIVATE_ANON, usize::MAX, 0],
    );
    (r > 0).then_some(r as usize)
}

/// Map within 1 GiB of this binary's text if possible (the detour then
/// calls its entry with `call rel32`, as a kernel's detour area next to
/// its text does), else anywhere (`movabs rax; call rax`: the same number
/// of instructions).
fn map_near_text() -> usize {
    let text = probe_hal::opthook::dispatch_optimized as *const () as usize;
    for k in 1..64usize {
        for hint in [text + k * (16 << 20), text.wrapping_sub(k * (16 << 20))] {
            let hint = hint & !(PAGE - 1);
            if let Some(m) = map_rwx(hint) {
                if m.abs_diff(text) < 1 << 30 {
                    return m;
                }
                syscall6(11, [m, MAP_LEN, 0, 0, 0, 0]);
            }
        }
    }
    map_rwx(0).expect("an RWX mapping")
}

/// The measured setup.
pub struct Setup {
    /// The optimised copy of the victim.
    pub probed: usize,
    /// The copy nobody probes.
    pub unprobed: usize,
    /// The probe.
    pub id: ProbeId,
}

/// The function at `addr` as the victim's type.
pub fn as_fn(addr: usize) -> extern "C" fn(usize, usize) -> usize {
    // SAFETY: `addr` is a copy of the victim, a C-ABI function of two
    // integers returning one.
    unsafe { core::mem::transmute::<usize, extern "C" fn(usize, usize) -> usize>(addr) }
}

/// Map, copy the victim twice, install the engine as the hook, register a
/// kprobe with an empty pre-handler at the probed copy's entry, and check
/// that the engine optimised it.
pub fn setup() -> Setup {
    let base = map_near_text();
    let len = victim_len();
    for off in [PROBED_AT, UNPROBED_AT] {
        // SAFETY: the victim is `len` bytes of readable text; the mapping
        // is ours, writable and large enough.
        unsafe {
            core::ptr::copy_nonoverlapping(
                engine_bench_opt_victim as *const u8,
                (base + off) as *mut u8,
                len,
            )
        };
    }
    ENGINE.services().base.store(base, Ordering::Relaxed);
    probe_hal::opthook::set_opt_hook(&ENGINE).expect("the optimised-hit hook, once");
    let (probed, unprobed) = (base + PROBED_AT, base + UNPROBED_AT);
    let id = ENGINE
        .register_kprobe(&Kprobe::at(probed).pre(empty_pre))
        .expect("a kprobe at the copy's entry");
    let info = ENGINE.info(id).expect("its info");
    assert_eq!(
        info.optimization,
        Optimization::Optimized,
        "the engine optimised the probe"
    );
    // SAFETY: reading our own mapping.
    let first = unsafe { *(probed as *const u8) };
    assert_eq!(first, 0xe9, "a jmp rel32 at the probe");
    Setup {
        probed,
        unprobed,
        id,
    }
}

impl Setup {
    /// The detour the probe's jump reaches.
    pub fn detour(&self) -> usize {
        // SAFETY: reading the jump's rel32 in our own mapping.
        let rel = unsafe { core::ptr::read_unaligned((self.probed + 1) as *const i32) };
        (self.probed + 5).wrapping_add(rel as isize as usize)
    }

    /// Hits counted by the engine so far.
    pub fn hits(&self) -> u64 {
        ENGINE.info(self.id).expect("its info").hits
    }
}
