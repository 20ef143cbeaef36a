//! Boot: every CPU of `-smp N` starts at `_start` at once, in direct
//! address mode. Each one enables the FPU, sets up the mapping windows and
//! switches to mapped mode; then it reads its CPU id (CSR 0x20). CPU 0
//! clears `.bss`, takes its stack and runs the kernel; every other CPU
//! parks, touching neither a stack nor `.bss`, until CPU 0 releases it
//! ([`release_secondaries`]), and CPUs beyond [`crate::smp::CPUS`] park
//! forever.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::csr;
use crate::smp::CPUS;

/// Bytes of kernel stack per CPU.
pub const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stacks([[u8; STACK_SIZE]; CPUS]);

/// One stack per CPU (in `.bss`: CPU 0 clears it before anyone uses it).
static mut STACKS: Stacks = Stacks([[0; STACK_SIZE]; CPUS]);

/// Non-zero once CPU 0 lets the other CPUs run.
static RELEASE: AtomicUsize = AtomicUsize::new(0);

/// `CRMD` after boot: PLV0, interrupts off, mapped mode (DA = 0, PG = 1).
const CRMD_MAPPED: usize = csr::CRMD_PG;

core::arch::global_asm!(
    ".pushsection .text.boot, \"ax\"",
    ".globl _start",
    ".p2align 2",
    "_start:",
    // The target is hard-float: turn the FPU on before any compiled code.
    "li.w $t0, 1",
    "csrwr $t0, {euen}",
    // Mapping windows, then mapped mode (the pc stays valid: DMW0 maps
    // the low window one to one).
    "li.d $t0, {dmw0}",
    "csrwr $t0, {dmw0_csr}",
    "li.d $t0, {dmw1}",
    "csrwr $t0, {dmw1_csr}",
    "li.d $t0, {crmd}",
    "csrwr $t0, {crmd_csr}",
    "csrrd $t0, {cpuid}",
    "andi $t0, $t0, 0x1ff",
    "bnez $t0, 20f",
    // CPU 0: clear .bss, take stack 0, run the kernel.
    "la.pcrel $t1, __bss_start",
    "la.pcrel $t2, __bss_end",
    "10:",
    "bgeu $t1, $t2, 11f",
    "st.d $zero, $t1, 0",
    "addi.d $t1, $t1, 8",
    "b 10b",
    "11:",
    "la.pcrel $sp, {stacks}",
    "li.d $t1, {stack_size}",
    "add.d $sp, $sp, $t1",
    "move $a0, $zero",
    "bl {kmain}",
    "12:",
    "b 12b",
    // Other CPUs: park until released (no stack, no .bss writes).
    "20:",
    "li.d $t1, {cpus}",
    "bgeu $t0, $t1, 29f",
    "la.pcrel $t1, {release}",
    "21:",
    "ld.d $t2, $t1, 0",
    "beqz $t2, 21b",
    "dbar 0",
    "la.pcrel $sp, {stacks}",
    "li.d $t1, {stack_size}",
    "addi.d $t2, $t0, 1",
    "mul.d $t1, $t1, $t2",
    "add.d $sp, $sp, $t1",
    "move $a0, $t0",
    "bl {secondary}",
    "29:",
    "b 29b",
    ".popsection",
    euen = const csr::EUEN,
    dmw0 = const csr::DMW0_IDENTITY,
    dmw0_csr = const csr::DMW0,
    dmw1 = const csr::DMW1_UNCACHED,
    dmw1_csr = const csr::DMW1,
    crmd = const CRMD_MAPPED,
    crmd_csr = const csr::CRMD,
    cpuid = const csr::CPUID,
    stacks = sym STACKS,
    stack_size = const STACK_SIZE,
    cpus = const CPUS,
    release = sym RELEASE,
    kmain = sym kmain,
    secondary = sym secondary_main,
);

/// The top of CPU `cpu`'s kernel stack.
pub fn stack_top(cpu: usize) -> usize {
    let base = core::ptr::addr_of!(STACKS) as usize;
    base + (cpu + 1) * STACK_SIZE
}

/// Let the parked CPUs run [`secondary_main`].
pub fn release_secondaries() {
    RELEASE.store(1, Ordering::Release);
}

extern "C" fn kmain(cpu: usize) -> ! {
    crate::trap::init_cpu(cpu);
    crate::console::init_log();
    crate::println!("loongarch64-qemu: probe engine checks on CPU {cpu}");
    crate::kernel::init();
    release_secondaries();
    crate::smp::wait_online(CPUS);
    crate::checks::run_all()
}

extern "C" fn secondary_main(cpu: usize) -> ! {
    crate::trap::init_cpu(cpu);
    crate::smp::secondary_loop(cpu)
}
