//! Per-CPU data through the GS base: each CPU points `IA32_GS_BASE` at its
//! own [`PerCpu`], so [`cpu_id`] is one `gs`-relative load, callable from
//! the trap path (no lock, no MMIO). There is no user mode, hence no
//! `swapgs`: the GS base is set once per CPU and never changes.

use core::arch::asm;

use crate::cpu::wrmsr;
use crate::smp::MAX_CPUS;

/// The MSR holding the GS segment base.
const IA32_GS_BASE: u32 = 0xc000_0101;

/// What one CPU finds at `gs:0`.
#[repr(C, align(64))]
pub struct PerCpu {
    /// This CPU's index (0: the boot CPU). Must stay the first field:
    /// [`cpu_id`] reads it at offset 0.
    id: usize,
}

static PER_CPU: [PerCpu; MAX_CPUS] = {
    let mut all = [const { PerCpu { id: 0 } }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        all[i].id = i;
        i += 1;
    }
    all
};

/// Point this CPU's GS base at the per-CPU data of CPU `cpu`. Call first
/// thing on each CPU, before anything may trap (every trap asks the
/// engine, which asks [`cpu_id`]).
pub fn install(cpu: usize) {
    let data = &PER_CPU[cpu] as *const PerCpu as u64;
    // SAFETY: IA32_GS_BASE exists on every x86_64 CPU; nothing in the
    // kernel uses GS except `cpu_id`, which expects exactly this value.
    unsafe { wrmsr(IA32_GS_BASE, data) };
}

/// This CPU's index.
#[inline(always)]
pub fn cpu_id() -> usize {
    let id: usize;
    // SAFETY: `install` pointed the GS base at a static `PerCpu` whose
    // first field is the id; it never changes for this CPU.
    unsafe {
        asm!(
            "mov {}, gs:[0]",
            out(reg) id,
            options(nostack, preserves_flags, readonly, pure)
        )
    };
    id
}
