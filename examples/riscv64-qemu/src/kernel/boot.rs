//! M-mode start-up: what firmware would do, reduced to what this kernel
//! needs.
//!
//! QEMU starts every hart at 0x8000_0000 in M-mode (`-bios none`). Each hart
//! takes its own stack; hart 0 clears `.bss` and goes on, the others wait in
//! a park loop until [`release_secondary`]. Then each hart, in
//! [`m_setup`]: delegates the breakpoint, fault and user-ecall exceptions and
//! the supervisor interrupts to S-mode (`medeleg`, `mideleg`), lets S-mode
//! read the clock (`mcounteren`), programs PMP so that S and U mode reach
//! all memory except one denied page (entry 0, no permissions, wins over
//! entry 1, all memory with RWX), turns translation off (`satp` = 0) and
//! enables the FPU (`mstatus.FS`), and `mret`s into
//! [`super::s_main`] in S-mode with a0 = hart id. Traps that still reach
//! M-mode (an S-mode `ecall`, or anything not delegated) are fatal.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

use super::console::print_unlocked;
use super::exit;
use super::layout::{self, HART_STACK_SIZE, MAX_HARTS, PAGE_SIZE};

/// Non-zero once hart 0 lets the secondary hart start.
static RELEASE: AtomicU64 = AtomicU64::new(0);

/// The page S and U mode may not access (PMP entry 0).
#[repr(C, align(4096))]
struct DeniedPage([u8; PAGE_SIZE]);

#[used]
#[link_section = ".denied"]
static DENIED_PAGE: DeniedPage = DeniedPage([0; PAGE_SIZE]);

// Exceptions handled in S-mode (privileged manual, table 3.6): instruction
// address misaligned (0), instruction access fault (1), illegal instruction
// (2), breakpoint (3), load address misaligned (4), load access fault (5),
// store address misaligned (6), store access fault (7), ecall from U-mode
// (8), instruction page fault (12), load page fault (13), store page fault
// (15).
const MEDELEG: usize = 0xb1ff;
/// Supervisor software, timer and external interrupts.
const MIDELEG: usize = (1 << 1) | (1 << 5) | (1 << 9);
/// `mcounteren`: S-mode may read cycle, time and instret.
const MCOUNTEREN: usize = 0b111;

const MSTATUS_MPP_MASK: usize = 0b11 << 11;
const MSTATUS_MPP_S: usize = 0b01 << 11;
const MSTATUS_MPIE: usize = 1 << 7;
const MSTATUS_FS_MASK: usize = 0b11 << 13;
const MSTATUS_FS_INITIAL: usize = 0b01 << 13;

/// PMP address-matching mode NAPOT (privileged manual §3.7.1).
const PMP_NAPOT: usize = 0b11 << 3;
/// PMP permission bits R, W, X.
const PMP_RWX: usize = 0b111;
/// pmpcfg0: entry 0 NAPOT with no permission, entry 1 NAPOT with RWX.
const PMPCFG0: usize = PMP_NAPOT | ((PMP_NAPOT | PMP_RWX) << 8);

global_asm!(
    ".pushsection .text.boot, \"ax\", @progbits",
    // Module-level assembly is assembled for the base ISA only: name the
    // extensions the kernel runs with.
    ".option push",
    ".option arch, +m, +a, +f, +d, +c",
    ".globl _start",
    "_start:",
    "csrr t0, mhartid",
    "li t1, {max_harts}",
    // Harts beyond MAX_HARTS never run.
    "bgeu t0, t1, 9f",
    "mv tp, t0",
    "la sp, __stacks_end",
    "li t1, {stack_size}",
    "mul t2, t0, t1",
    "sub sp, sp, t2",
    "bnez t0, 2f",
    // Hart 0: clear .bss.
    "la t0, __bss_start",
    "la t1, __bss_end",
    "1:",
    "bgeu t0, t1, 3f",
    "sd zero, 0(t0)",
    "addi t0, t0, 8",
    "j 1b",
    // Other harts: park until released.
    "2:",
    "la t0, {release}",
    "4:",
    "ld t1, 0(t0)",
    "beqz t1, 4b",
    "fence r, rw",
    "3:",
    "mv a0, tp",
    "call {m_setup}",
    "9:",
    "wfi",
    "j 9b",
    ".option pop",
    ".popsection",
    max_harts = const MAX_HARTS,
    stack_size = const HART_STACK_SIZE,
    release = sym RELEASE,
    m_setup = sym m_setup,
);

global_asm!(
    ".pushsection .text.m_trap, \"ax\", @progbits",
    ".p2align 2",
    "m_trap:",
    "csrr a0, mcause",
    "csrr a1, mepc",
    "csrr a2, mtval",
    "call {fatal}",
    "1: j 1b",
    ".popsection",
    fatal = sym m_fatal,
);

extern "C" {
    fn m_trap();
}

/// Let the parked secondary hart start (it runs [`m_setup`] itself).
pub fn release_secondary() {
    RELEASE.store(1, Ordering::Release);
}

/// The NAPOT `pmpaddr` value of a power-of-two, size-aligned range.
fn napot(range: core::ops::Range<usize>) -> usize {
    let size = range.end - range.start;
    assert!(size.is_power_of_two() && size >= 8 && range.start % size == 0);
    (range.start >> 2) | ((size >> 3) - 1)
}

/// Per-hart M-mode set-up; ends in S-mode at `s_main(hart)`.
extern "C" fn m_setup(hart: usize) -> ! {
    let denied = napot(layout::denied());
    // SAFETY: M-mode at boot, before anything runs in S-mode on this hart:
    // these CSR writes set up delegation, counters, PMP and translation as
    // the module documentation describes. `m_trap` is 4-byte aligned code
    // that never returns.
    unsafe {
        asm!("csrw mtvec, {}", in(reg) m_trap as *const () as usize);
        asm!("csrw medeleg, {}", in(reg) MEDELEG);
        asm!("csrw mideleg, {}", in(reg) MIDELEG);
        asm!("csrw mie, zero");
        asm!("csrw mcounteren, {}", in(reg) MCOUNTEREN);
        asm!("csrw pmpaddr0, {}", in(reg) denied);
        asm!("csrw pmpaddr1, {}", in(reg) usize::MAX);
        asm!("csrw pmpcfg0, {}", in(reg) PMPCFG0);
        asm!("csrw satp, zero");
        asm!("sfence.vma");
    }
    let mut mstatus: usize;
    // SAFETY: reading mstatus has no side effect.
    unsafe { asm!("csrr {}, mstatus", out(reg) mstatus) };
    mstatus &= !(MSTATUS_MPP_MASK | MSTATUS_MPIE | MSTATUS_FS_MASK);
    mstatus |= MSTATUS_MPP_S | MSTATUS_FS_INITIAL;
    let entry = super::s_main as *const () as usize;
    // SAFETY: mstatus.MPP = S and mepc = s_main: `mret` continues in S-mode
    // at s_main(a0 = hart) on this hart's stack, with interrupts off.
    unsafe {
        asm!("csrw mstatus, {}", in(reg) mstatus);
        asm!("csrw mepc, {}", in(reg) entry);
        asm!("mret", in("a0") hart, options(noreturn));
    }
}

/// A trap reached M-mode: nothing here handles one.
extern "C" fn m_fatal(cause: usize, epc: usize, tval: usize) -> ! {
    print_unlocked(format_args!(
        "\nFATAL: M-mode trap: mcause {cause:#x}, mepc {epc:#x}, mtval {tval:#x}\n"
    ));
    exit::fail(0x4d)
}
