//! Return probes: redirecting a function's return, and the kernel-mode
//! trampoline it returns into.
//!
//! At a function entry the return address is in `ra` (x1, psABI), so
//! [`hijack_return`] swaps it for the trampoline and the function's own
//! `ret` lands there. The stack pointer is the same at entry and at that
//! `ret`, so it identifies the frame.
//!
//! The kernel trampoline (riscv64 builds only) saves every general register
//! into a [`PtRegs`](crate::PtRegs) on the stack, calls
//! [`probe_hal::rethook::dispatch_return`] through an `extern "C"` function,
//! restores every register from the frame (handlers may change the return
//! value), and jumps to the real return address with `ra` set to it, as the
//! unprobed `ret` would have left it. Floating-point registers are not
//! saved: as in Linux, return handlers must not use floating point (a
//! function returning a float keeps it in fa0/fa1 only if they do not).
//! `status`, `badaddr` and `cause` of that frame are 0 (a return is not a
//! trap); `epc` and `ra` hold the trampoline address until the engine sets
//! the real return address.

use probe_hal::{DataAccess, MemoryFault, Registers};

/// Register x1, `ra`.
const RA: usize = 1;

/// Replace the return address (`ra`) with `trampoline`; returns the old one.
pub fn hijack_return<R: Registers + ?Sized>(
    regs: &mut R,
    _mem: &dyn DataAccess,
    trampoline: usize,
) -> Result<usize, MemoryFault> {
    let real = regs.gpr(RA);
    regs.set_gpr(RA, trampoline);
    Ok(real)
}

/// The frame identity: the stack pointer (equal at entry and at return).
pub fn frame_id<R: Registers + ?Sized>(regs: &R) -> usize {
    regs.sp()
}

/// The address of the kernel-mode return trampoline.
#[cfg(target_arch = "riscv64")]
pub fn kernel_trampoline() -> Option<usize> {
    extern "C" {
        fn hal_riscv64_return_trampoline();
    }
    Some(hal_riscv64_return_trampoline as *const () as usize)
}

/// No trampoline code exists on other hosts (the crate builds there for its
/// tests only).
#[cfg(not(target_arch = "riscv64"))]
pub fn kernel_trampoline() -> Option<usize> {
    None
}

/// Called by the trampoline with the frame it built on its stack; returns
/// the address to resume at.
#[cfg(target_arch = "riscv64")]
#[link_section = "probe_trap_text"]
extern "C" fn on_return(frame: &mut crate::PtRegs) -> usize {
    // SAFETY: the trampoline cleared sstatus.SIE before calling (return
    // handlers run masked, like trap handlers) and runs on behalf of the
    // task whose return it caught.
    unsafe { probe_hal::rethook::dispatch_return(frame) }
}

// The frame is a PtRegs (288 bytes, a multiple of 16 as the psABI wants for
// sp): word 0 epc, word n register x<n>, words 32-35 the CSR images. The
// offsets are checked against PtRegs in regs.rs's layout test.
#[cfg(target_arch = "riscv64")]
core::arch::global_asm!(
    // In the engine's trap-path section: no probe inside the trampoline.
    ".pushsection probe_trap_text, \"ax\", @progbits",
    ".globl hal_riscv64_return_trampoline",
    ".type hal_riscv64_return_trampoline, @function",
    ".p2align 2",
    "hal_riscv64_return_trampoline:",
    "addi sp, sp, -288",
    "sd ra, 0(sp)",
    "sd ra, 8(sp)",
    "sd gp, 24(sp)",
    "sd tp, 32(sp)",
    "sd t0, 40(sp)",
    "sd t1, 48(sp)",
    "sd t2, 56(sp)",
    "sd s0, 64(sp)",
    "sd s1, 72(sp)",
    "sd a0, 80(sp)",
    "sd a1, 88(sp)",
    "sd a2, 96(sp)",
    "sd a3, 104(sp)",
    "sd a4, 112(sp)",
    "sd a5, 120(sp)",
    "sd a6, 128(sp)",
    "sd a7, 136(sp)",
    "sd s2, 144(sp)",
    "sd s3, 152(sp)",
    "sd s4, 160(sp)",
    "sd s5, 168(sp)",
    "sd s6, 176(sp)",
    "sd s7, 184(sp)",
    "sd s8, 192(sp)",
    "sd s9, 200(sp)",
    "sd s10, 208(sp)",
    "sd s11, 216(sp)",
    "sd t3, 224(sp)",
    "sd t4, 232(sp)",
    "sd t5, 240(sp)",
    "sd t6, 248(sp)",
    // Return handlers run with interrupts masked, like trap handlers: clear
    // sstatus.SIE (bit 1) and keep the old sstatus as the frame's status.
    "csrrci t0, sstatus, 2",
    "sd t0, 256(sp)",
    "sd zero, 264(sp)",
    "sd zero, 272(sp)",
    "sd zero, 280(sp)",
    "addi t0, sp, 288",
    "sd t0, 16(sp)",
    "mv a0, sp",
    "call {on_return}",
    // a0: the real return address.
    "mv ra, a0",
    // Interrupts back as they were (only SIE is restored).
    "ld t0, 256(sp)",
    "andi t0, t0, 2",
    "csrs sstatus, t0",
    "ld gp, 24(sp)",
    "ld tp, 32(sp)",
    "ld t0, 40(sp)",
    "ld t1, 48(sp)",
    "ld t2, 56(sp)",
    "ld s0, 64(sp)",
    "ld s1, 72(sp)",
    "ld a0, 80(sp)",
    "ld a1, 88(sp)",
    "ld a2, 96(sp)",
    "ld a3, 104(sp)",
    "ld a4, 112(sp)",
    "ld a5, 120(sp)",
    "ld a6, 128(sp)",
    "ld a7, 136(sp)",
    "ld s2, 144(sp)",
    "ld s3, 152(sp)",
    "ld s4, 160(sp)",
    "ld s5, 168(sp)",
    "ld s6, 176(sp)",
    "ld s7, 184(sp)",
    "ld s8, 192(sp)",
    "ld s9, 200(sp)",
    "ld s10, 208(sp)",
    "ld s11, 216(sp)",
    "ld t3, 224(sp)",
    "ld t4, 232(sp)",
    "ld t5, 240(sp)",
    "ld t6, 248(sp)",
    "ld sp, 16(sp)",
    "jr ra",
    ".size hal_riscv64_return_trampoline, . - hal_riscv64_return_trampoline",
    ".popsection",
    on_return = sym on_return,
);
