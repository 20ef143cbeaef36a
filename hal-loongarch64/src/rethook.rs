//! The kernel-mode return trampoline.
//!
//! A kretprobe's entry handler replaces `ra` with the trampoline's address
//! ([`crate::LoongArch64`]'s `hijack_return`). When the probed function
//! returns, the trampoline
//! 1. builds a [`crate::PtRegs`] on the stack holding every general register, with
//!    `regs[3]` = the stack pointer the function returned with and
//!    `csr_era` = the trampoline's address (the other CSR fields are 0);
//! 2. when the target has hardware floating point, also saves `$fa0`/`$fa1`
//!    (the floating-point return registers, which the Rust handlers may
//!    clobber);
//! 3. calls [`probe_hal::rethook::dispatch_return`] with the frame, which
//!    runs the return handlers and gives the real return address;
//! 4. reloads every register from the frame (so a handler's
//!    `set_return_value` takes effect), with `ra` = the real return address,
//!    and jumps there.
//!
//! On a hard-float target (`loongarch64-unknown-none`, which has the D
//! extension) the trampoline uses `fst.d`/`fld.d`, so the kernel must have
//! enabled the FPU (`EUEN.FPE`), as code compiled for that target needs
//! anyway; on `loongarch64-unknown-none-softfloat` it touches no FP register.
//! The trampoline's code range ([`trampoline_range`]) belongs on the kernel's
//! list of addresses that must not be probed.
//!
//! Like Linux `arch/loongarch/kernel/rethook_trampoline.S`. User-mode
//! return probes use a `break` in the task's slot area instead
//! ([`crate::LoongArch64`]'s `return_breakpoint`).
//!
//! The code exists only when building for `loongarch64`; elsewhere
//! [`kernel_trampoline`] is `None` so the crate builds and tests on the host.

#[cfg(target_arch = "loongarch64")]
mod imp {
    use crate::regs::PtRegs;

    /// Bytes the trampoline reserves: the frame, plus `$fa0`/`$fa1` when
    /// floating point is in use, rounded to the 16-byte stack alignment.
    const FRAME: usize = crate::regs::PT_SIZE + 16;
    const _: () = assert!(FRAME % 16 == 0 && crate::regs::PT_SIZE == 320);

    /// 1 when the target has double-precision floating point registers.
    const SAVE_FP: u32 = cfg!(target_feature = "d") as u32;

    core::arch::global_asm!(
        // In the engine's trap-path section: no probe inside the trampoline.
        ".pushsection probe_trap_text, \"ax\", @progbits",
        ".globl hal_loongarch64_rethook_trampoline",
        ".globl hal_loongarch64_rethook_trampoline_end",
        ".type hal_loongarch64_rethook_trampoline, @function",
        ".p2align 2",
        "hal_loongarch64_rethook_trampoline:",
        "addi.d $sp, $sp, -{frame}",
        "st.d $zero, $sp, 0",
        "st.d $r1, $sp, 8",
        "st.d $r2, $sp, 16",
        "st.d $r4, $sp, 32",
        "st.d $r5, $sp, 40",
        "st.d $r6, $sp, 48",
        "st.d $r7, $sp, 56",
        "st.d $r8, $sp, 64",
        "st.d $r9, $sp, 72",
        "st.d $r10, $sp, 80",
        "st.d $r11, $sp, 88",
        "st.d $r12, $sp, 96",
        "st.d $r13, $sp, 104",
        "st.d $r14, $sp, 112",
        "st.d $r15, $sp, 120",
        "st.d $r16, $sp, 128",
        "st.d $r17, $sp, 136",
        "st.d $r18, $sp, 144",
        "st.d $r19, $sp, 152",
        "st.d $r20, $sp, 160",
        "st.d $r21, $sp, 168",
        "st.d $r22, $sp, 176",
        "st.d $r23, $sp, 184",
        "st.d $r24, $sp, 192",
        "st.d $r25, $sp, 200",
        "st.d $r26, $sp, 208",
        "st.d $r27, $sp, 216",
        "st.d $r28, $sp, 224",
        "st.d $r29, $sp, 232",
        "st.d $r30, $sp, 240",
        "st.d $r31, $sp, 248",
        // regs[3]: the stack pointer the probed function returned with.
        "addi.d $t0, $sp, {frame}",
        "st.d $t0, $sp, 24",
        // orig_a0 = a0; the CSR fields start out zero.
        "st.d $a0, $sp, 256",
        "st.d $zero, $sp, 264",
        "st.d $zero, $sp, 272",
        // Return handlers run with interrupts masked, like trap handlers:
        // clear CRMD.IE (bit 2) and keep the old CRMD in the frame.
        "li.d $t0, 0",
        "li.d $t1, 4",
        "csrxchg $t0, $t1, 0x0",
        "st.d $t0, $sp, 280",
        "st.d $zero, $sp, 288",
        "st.d $zero, $sp, 296",
        "st.d $zero, $sp, 304",
        "st.d $zero, $sp, 312",
        ".if {save_fp}",
        "fst.d $fa0, $sp, 320",
        "fst.d $fa1, $sp, 328",
        ".endif",
        "move $a0, $sp",
        "bl {dispatch}",
        // The real return address becomes ra.
        "st.d $a0, $sp, 8",
        // Interrupts back as they were (only CRMD.IE is restored).
        "ld.d $t0, $sp, 280",
        "li.d $t1, 4",
        "csrxchg $t0, $t1, 0x0",
        ".if {save_fp}",
        "fld.d $fa0, $sp, 320",
        "fld.d $fa1, $sp, 328",
        ".endif",
        crate::restore_gprs_from_sp!(),
        "addi.d $sp, $sp, {frame}",
        "jirl $zero, $ra, 0",
        "hal_loongarch64_rethook_trampoline_end:",
        ".size hal_loongarch64_rethook_trampoline, . - hal_loongarch64_rethook_trampoline",
        ".popsection",
        frame = const FRAME,
        save_fp = const SAVE_FP,
        dispatch = sym rethook_dispatch,
    );

    extern "C" {
        fn hal_loongarch64_rethook_trampoline();
        fn hal_loongarch64_rethook_trampoline_end();
    }

    /// Called by the trampoline with the frame it built; returns the address
    /// to resume at.
    #[link_section = "probe_trap_text"]
    extern "C" fn rethook_dispatch(frame: *mut PtRegs) -> usize {
        // SAFETY: the trampoline passes the address of the `PtRegs` it just
        // built in its own stack frame; it is aligned, fully initialised, and
        // nothing else refers to it until this function returns.
        let frame = unsafe { &mut *frame };
        frame.csr_era = start();
        // SAFETY: the trampoline cleared CRMD.IE before calling (return
        // handlers run masked, like trap handlers) and runs on behalf of
        // the task whose return it caught.
        unsafe { probe_hal::rethook::dispatch_return(frame) }
    }

    pub(super) fn start() -> usize {
        hal_loongarch64_rethook_trampoline as *const () as usize
    }

    pub(super) fn end() -> usize {
        hal_loongarch64_rethook_trampoline_end as *const () as usize
    }
}

/// The address of the kernel-mode return trampoline (`None` when the crate
/// is not built for loongarch64).
pub fn kernel_trampoline() -> Option<usize> {
    #[cfg(target_arch = "loongarch64")]
    {
        Some(imp::start())
    }
    #[cfg(not(target_arch = "loongarch64"))]
    {
        None
    }
}

/// The code range of the trampoline, for the kernel's list of addresses
/// that must never be probed (`None` off loongarch64).
pub fn trampoline_range() -> Option<core::ops::Range<usize>> {
    #[cfg(target_arch = "loongarch64")]
    {
        Some(imp::start()..imp::end())
    }
    #[cfg(not(target_arch = "loongarch64"))]
    {
        None
    }
}
