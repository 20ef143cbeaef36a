//! System registers and barriers this kernel uses (Arm ARM D19/D24).

use core::arch::asm;

/// This CPU's number: `MPIDR_EL1.Aff0` (QEMU `virt` numbers CPUs 0, 1, …).
#[link_section = ".text.kernel_trap"]
pub fn cpu_id() -> usize {
    let mpidr: usize;
    // SAFETY: reading MPIDR_EL1 has no side effect.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack, preserves_flags)) };
    mpidr & 0xff
}

/// Make `addr..addr + len` (already written) visible to instruction fetch
/// on every CPU of the inner-shareable domain: `dc cvau` per line, `dsb
/// ish`, `ic ivau` per line, `dsb ish`, `isb` (Arm ARM B2.4.4, "Concurrent
/// modification and execution of instructions"). The `ic ivau` is broadcast;
/// other CPUs still need a context synchronisation (`isb`) before they run
/// the new bytes, which [`crate::smp`] asks for.
#[link_section = ".text.kernel_trap"]
pub fn sync_icache_range(addr: usize, len: usize) {
    let line = 64;
    let start = addr & !(line - 1);
    let end = addr + len;
    // SAFETY: cache maintenance by virtual address on mapped memory (the
    // callers checked the range); it changes no data.
    unsafe {
        let mut a = start;
        while a < end {
            asm!("dc cvau, {}", in(reg) a, options(nostack, preserves_flags));
            a += line;
        }
        asm!("dsb ish", options(nostack, preserves_flags));
        let mut a = start;
        while a < end {
            asm!("ic ivau, {}", in(reg) a, options(nostack, preserves_flags));
            a += line;
        }
        asm!("dsb ish", "isb", options(nostack, preserves_flags));
    }
}

/// A context synchronisation on this CPU (`isb`): fetch sees what the
/// broadcast maintenance made visible.
#[link_section = ".text.kernel_trap"]
pub fn isb() {
    // SAFETY: a barrier.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}
