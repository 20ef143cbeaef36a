//! The kernel-mode return trampoline.
//!
//! A kretprobe's entry handler replaces the link register `x30` with the
//! trampoline's address ([`crate::Aarch64`]'s `hijack_return`). When the
//! probed function returns (`ret`), the trampoline
//! 1. builds a [`crate::PtRegs`] on the stack holding `x0`-`x30`, with
//!    `sp` = the stack pointer the function returned with, `pc` = the
//!    trampoline's address, `pstate` = NZCV and DAIF, `orig_x0` = `x0` and
//!    `syscallno` = -1, then masks DAIF (return handlers run like trap
//!    handlers);
//! 2. when the target has floating point and Advanced SIMD (the
//!    `aarch64-unknown-none` target does), also saves `q0`-`q7` (the
//!    floating-point and vector return registers, which the Rust handlers
//!    may clobber);
//! 3. calls [`probe_hal::rethook::dispatch_return`] with the frame, which
//!    runs the return handlers and gives the real return address;
//! 4. restores DAIF, reloads `x0`-`x29` (and `q0`-`q7`) from the frame, so a handler's
//!    `set_return_value` takes effect, puts the real return address in
//!    `x30` and returns there.
//!
//! The first instruction is `bti jc` (`hint #38`), a landing pad for every
//! BTYPE, so the trampoline also works from guarded pages reached by
//! `br`/`blr`; a `ret` into it needs none.
//!
//! Pointer authentication: the entry probe runs *before* the function's
//! `paciasp` (a probe on the entry replaces or steps that instruction, which
//! signs whatever `x30` then holds), so the function signs the trampoline's
//! address with its own SP as the modifier; its `autiasp` before `ret`
//! authenticates that same value and the `ret` reaches the trampoline. The
//! real return address never passes through a signing instruction while
//! the trampoline holds its place.
//!
//! Like Linux `arch/arm64/kernel/rethook_trampoline.S`. The trampoline's
//! code range ([`trampoline_range`]) belongs on the kernel's list of
//! addresses that must not be probed. User-mode return probes use a
//! `brk #0x005` in the task's slot area instead ([`crate::Aarch64`]'s
//! `return_breakpoint`).
//!
//! The code exists only when building for `aarch64`; elsewhere
//! [`kernel_trampoline`] is `None` so the crate builds and tests on the host.

#[cfg(target_arch = "aarch64")]
mod imp {
    use crate::regs::PtRegs;

    /// Bytes the trampoline reserves: the frame, plus `q0`-`q7` when
    /// floating point is in use (a multiple of the 16-byte stack alignment).
    const FRAME: usize = crate::regs::PT_SIZE + 128;
    const _: () = assert!(FRAME % 16 == 0 && crate::regs::PT_SIZE == 288);

    /// 1 when the target has the FP/SIMD registers.
    const SAVE_FP: u32 = cfg!(target_feature = "neon") as u32;

    core::arch::global_asm!(
        // In the engine's trap-path section: no probe inside the trampoline.
        ".pushsection probe_trap_text, \"ax\", %progbits",
        ".globl hal_aarch64_rethook_trampoline",
        ".globl hal_aarch64_rethook_trampoline_end",
        ".type hal_aarch64_rethook_trampoline, %function",
        ".p2align 2",
        "hal_aarch64_rethook_trampoline:",
        "hint #38",
        "sub sp, sp, #{frame}",
        "stp x0, x1, [sp, #0]",
        "stp x2, x3, [sp, #16]",
        "stp x4, x5, [sp, #32]",
        "stp x6, x7, [sp, #48]",
        "stp x8, x9, [sp, #64]",
        "stp x10, x11, [sp, #80]",
        "stp x12, x13, [sp, #96]",
        "stp x14, x15, [sp, #112]",
        "stp x16, x17, [sp, #128]",
        "stp x18, x19, [sp, #144]",
        "stp x20, x21, [sp, #160]",
        "stp x22, x23, [sp, #176]",
        "stp x24, x25, [sp, #192]",
        "stp x26, x27, [sp, #208]",
        "stp x28, x29, [sp, #224]",
        "str x30, [sp, #240]",
        "add x9, sp, #{frame}",
        "str x9, [sp, #248]",
        "adr x9, hal_aarch64_rethook_trampoline",
        "str x9, [sp, #256]",
        // Return handlers run with interrupts masked, like trap handlers:
        // keep NZCV and the old DAIF in `pstate`, then mask DAIF.
        "mrs x9, nzcv",
        "mrs x10, daif",
        "orr x9, x9, x10",
        "str x9, [sp, #264]",
        "msr daifset, #0xf",
        "str x0, [sp, #272]",
        "mov x9, #-1",
        "str x9, [sp, #280]",
        ".if {save_fp}",
        "stp q0, q1, [sp, #288]",
        "stp q2, q3, [sp, #320]",
        "stp q4, q5, [sp, #352]",
        "stp q6, q7, [sp, #384]",
        ".endif",
        "mov x0, sp",
        "bl {dispatch}",
        // The real return address becomes x30; DAIF back as it was.
        "mov x30, x0",
        "ldr x9, [sp, #264]",
        "and x9, x9, #0x3c0",
        "msr daif, x9",
        ".if {save_fp}",
        "ldp q0, q1, [sp, #288]",
        "ldp q2, q3, [sp, #320]",
        "ldp q4, q5, [sp, #352]",
        "ldp q6, q7, [sp, #384]",
        ".endif",
        "ldp x0, x1, [sp, #0]",
        "ldp x2, x3, [sp, #16]",
        "ldp x4, x5, [sp, #32]",
        "ldp x6, x7, [sp, #48]",
        "ldp x8, x9, [sp, #64]",
        "ldp x10, x11, [sp, #80]",
        "ldp x12, x13, [sp, #96]",
        "ldp x14, x15, [sp, #112]",
        "ldp x16, x17, [sp, #128]",
        "ldp x18, x19, [sp, #144]",
        "ldp x20, x21, [sp, #160]",
        "ldp x22, x23, [sp, #176]",
        "ldp x24, x25, [sp, #192]",
        "ldp x26, x27, [sp, #208]",
        "ldp x28, x29, [sp, #224]",
        "add sp, sp, #{frame}",
        "ret",
        "hal_aarch64_rethook_trampoline_end:",
        ".size hal_aarch64_rethook_trampoline, . - hal_aarch64_rethook_trampoline",
        ".popsection",
        frame = const FRAME,
        save_fp = const SAVE_FP,
        dispatch = sym rethook_dispatch,
    );

    extern "C" {
        fn hal_aarch64_rethook_trampoline();
        fn hal_aarch64_rethook_trampoline_end();
    }

    /// Called by the trampoline with the frame it built; returns the address
    /// to resume at.
    #[link_section = "probe_trap_text"]
    extern "C" fn rethook_dispatch(frame: *mut PtRegs) -> usize {
        // SAFETY: the trampoline passes the address of the `PtRegs` it just
        // built in its own stack frame; it is aligned, fully initialised, and
        // nothing else refers to it until this function returns.
        let frame = unsafe { &mut *frame };
        frame.pc = start();
        // SAFETY: the trampoline masked DAIF before calling (return handlers
        // run masked, like trap handlers) and runs on behalf of the task
        // whose return it caught.
        unsafe { probe_hal::rethook::dispatch_return(frame) }
    }

    pub(super) fn start() -> usize {
        hal_aarch64_rethook_trampoline as *const () as usize
    }

    pub(super) fn end() -> usize {
        hal_aarch64_rethook_trampoline_end as *const () as usize
    }
}

/// The address of the kernel-mode return trampoline (`None` when the crate
/// is not built for aarch64).
pub fn kernel_trampoline() -> Option<usize> {
    #[cfg(target_arch = "aarch64")]
    {
        Some(imp::start())
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        None
    }
}

/// The code range of the trampoline, for the kernel's list of addresses
/// that must never be probed (`None` off aarch64).
pub fn trampoline_range() -> Option<core::ops::Range<usize>> {
    #[cfg(target_arch = "aarch64")]
    {
        Some(imp::start()..imp::end())
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        None
    }
}
