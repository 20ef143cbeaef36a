//! Boot: QEMU starts only CPU 0, at `_start`, at EL1 with the MMU off. It
//! enables FP/SIMD (`CPACR_EL1.FPEN`: compiled copies use SIMD registers),
//! clears `.bss`, takes its stack and runs [`kmain`], which installs the
//! exception vectors, builds the page tables and turns the MMU on. CPU 1 is
//! started by PSCI `CPU_ON` (`hvc #0`) at `_secondary` with its number as
//! context, and does the same for itself.

use crate::smp::CPUS;

/// Bytes of kernel stack per CPU.
pub const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stacks([[u8; STACK_SIZE]; CPUS]);

/// One stack per CPU (in `.bss`: CPU 0 clears it before anyone uses it).
static mut STACKS: Stacks = Stacks([[0; STACK_SIZE]; CPUS]);

/// PSCI 0.2 `CPU_ON` (SMC64 calling convention function id).
const PSCI_CPU_ON: usize = 0xc400_0003;

core::arch::global_asm!(
    ".pushsection .text.boot, \"ax\"",
    ".globl _start",
    ".p2align 2",
    "_start:",
    "mov x9, #(3 << 20)",
    "msr cpacr_el1, x9",
    "isb",
    "adrp x9, __bss_start",
    "add x9, x9, :lo12:__bss_start",
    "adrp x10, __bss_end",
    "add x10, x10, :lo12:__bss_end",
    "1:",
    "cmp x9, x10",
    "b.hs 2f",
    "str xzr, [x9], #8",
    "b 1b",
    "2:",
    "adrp x9, {stacks}",
    "add x9, x9, :lo12:{stacks}",
    "mov x10, #{stack_size}",
    "add sp, x9, x10",
    "mov x0, #0",
    "bl {kmain}",
    "3:",
    "wfe",
    "b 3b",
    // A CPU started by PSCI CPU_ON: x0 = its number (the context).
    ".globl _secondary",
    "_secondary:",
    "mov x9, #(3 << 20)",
    "msr cpacr_el1, x9",
    "isb",
    "adrp x9, {stacks}",
    "add x9, x9, :lo12:{stacks}",
    "mov x10, #{stack_size}",
    "add x11, x0, #1",
    "madd x9, x10, x11, x9",
    "mov sp, x9",
    "bl {secondary}",
    "4:",
    "wfe",
    "b 4b",
    ".popsection",
    stacks = sym STACKS,
    stack_size = const STACK_SIZE,
    kmain = sym kmain,
    secondary = sym secondary_main,
);

extern "C" {
    fn _secondary();
}

/// Start CPU `cpu` at `_secondary` through PSCI; returns PSCI's status
/// (0: success).
fn cpu_on(cpu: usize) -> isize {
    let ret: isize;
    // SAFETY: the PSCI firmware of QEMU's `virt` machine (conduit `hvc`)
    // starts the CPU with MPIDR affinity `cpu` at the physical address of
    // `_secondary` (identity-mapped) with `cpu` in x0; the call clobbers
    // x0-x3 only.
    unsafe {
        core::arch::asm!(
            "hvc #0",
            inout("x0") PSCI_CPU_ON => ret,
            inout("x1") cpu => _,
            inout("x2") _secondary as *const () as usize => _,
            inout("x3") cpu => _,
            options(nostack)
        );
    }
    ret
}

extern "C" fn kmain(cpu: usize) -> ! {
    crate::trap::init_cpu();
    crate::mmu::build();
    crate::mmu::enable();
    crate::console::init_log();
    crate::println!("aarch64-qemu: probe engine checks on CPU {cpu} (EL1, MMU on)");
    crate::kernel::init();
    crate::gic::init_distributor();
    crate::gic::init_cpu();
    for c in 1..CPUS {
        let status = cpu_on(c);
        if status != 0 {
            crate::println!("PSCI CPU_ON of CPU {c} returned {status}");
        }
    }
    crate::smp::wait_online(CPUS);
    crate::checks::run_all()
}

extern "C" fn secondary_main(cpu: usize) -> ! {
    crate::trap::init_cpu();
    crate::mmu::enable();
    crate::gic::init_cpu();
    crate::smp::secondary_loop(cpu)
}
