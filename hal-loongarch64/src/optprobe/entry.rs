//! The function a detour calls: completes the frame, calls the engine, and
//! prepares the `CRMD`, or the `ERA`/`PRMD` of the `ertn`, of either path
//! (see [`super`]).
//!
//! The detour calls [`entry`], an assembly wrapper: on a hard-float target
//! (`loongarch64-unknown-none`, which has the D extension; the kernel has
//! `EUEN.FPE` on, as code compiled for it needs anyway) it saves the
//! floating-point registers the psABI lets the Rust handlers clobber
//! (`$f0`-`$f23`, `$fcsr0`, `$fcc0`-`$fcc7`; `$f24`-`$f31` are callee-saved)
//! around [`opt_entry`], so a handler reached through a detour may use
//! floating point as one reached through a trap may. On a soft-float
//! target it only jumps to [`opt_entry`] and touches no FP register.

use core::arch::asm;

use crate::regs::{PtRegs, PRMD_PIE, SP};

use super::detour::FRAME_LEN;

/// 1 when the target has double-precision floating point registers.
const SAVE_FP: u32 = cfg!(target_feature = "d") as u32;
/// The wrapper's frame: `$f0`-`$f23` at 0, `$fcsr0` at 192, `ra` at 200,
/// `$fcc0`-`$fcc7` at 208, rounded to the 16-byte stack alignment.
const FP_FRAME: usize = 224;

core::arch::global_asm!(
    // In the engine's trap-path section: never probed.
    ".pushsection probe_trap_text, \"ax\", @progbits",
    ".globl hal_loongarch64_opt_entry",
    ".type hal_loongarch64_opt_entry, @function",
    ".p2align 2",
    "hal_loongarch64_opt_entry:",
    ".if {save_fp}",
    "addi.d $sp, $sp, -{fp_frame}",
    "st.d $ra, $sp, 200",
    ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23",
    "fst.d $f\\n, $sp, \\n * 8",
    ".endr",
    "movfcsr2gr $t0, $fcsr0",
    "st.d $t0, $sp, 192",
    ".irp n, 0,1,2,3,4,5,6,7",
    "movcf2gr $t0, $fcc\\n",
    "st.b $t0, $sp, 208 + \\n",
    ".endr",
    "bl {entry}",
    ".irp n, 0,1,2,3,4,5,6,7",
    "ld.bu $t0, $sp, 208 + \\n",
    "movgr2cf $fcc\\n, $t0",
    ".endr",
    "ld.d $t0, $sp, 192",
    "movgr2fcsr $fcsr0, $t0",
    ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23",
    "fld.d $f\\n, $sp, \\n * 8",
    ".endr",
    "ld.d $ra, $sp, 200",
    "addi.d $sp, $sp, {fp_frame}",
    "jirl $zero, $ra, 0",
    ".else",
    "b {entry}",
    ".endif",
    ".size hal_loongarch64_opt_entry, . - hal_loongarch64_opt_entry",
    ".popsection",
    save_fp = const SAVE_FP,
    fp_frame = const FP_FRAME,
    entry = sym opt_entry,
);

extern "C" {
    fn hal_loongarch64_opt_entry();
}

/// The address a detour calls: the wrapper around [`opt_entry`].
pub(crate) fn entry() -> usize {
    hal_loongarch64_opt_entry as *const () as usize
}

/// `CRMD.PLV` and `PRMD.PPLV` (bits 1:0).
const PLV: usize = 0b11;
/// `CRMD.IE` (bit 2).
const CRMD_IE: usize = 1 << 2;
/// `CRMD.WE` (bit 9).
const CRMD_WE: usize = 1 << 9;
/// `PRMD.PWE` (bit 3).
const PRMD_PWE: usize = 1 << 3;

/// Called by a detour with the frame it built (`$a0`) and the address of
/// its literals (`$a1`: the probe address, then the cookie). Returns 1
/// when the detour must resume at the frame's pc through `ertn` (path (b)),
/// 0 to run the displaced instruction (path (a)).
#[link_section = "probe_trap_text"]
pub(crate) extern "C" fn opt_entry(frame: *mut PtRegs, literals: *const [usize; 2]) -> usize {
    // SAFETY: the detour passes its own literals, two 8-aligned words.
    let [addr, cookie] = unsafe { *literals };
    // SAFETY: the detour passes the address of the `PtRegs` it just built
    // on its own stack; nothing else refers to it during this call.
    let frame = unsafe { &mut *frame };
    // The raw CRMD as the probed code had it; what a trap taken at the
    // probe address would have saved: PRMD = its PLV, IE and WE; CRMD with
    // IE clear.
    let raw = frame.csr_crmd;
    frame.regs[0] = 0;
    frame.regs[SP] = frame as *mut PtRegs as usize + FRAME_LEN;
    frame.orig_a0 = frame.regs[4];
    frame.csr_era = addr;
    frame.csr_badvaddr = 0;
    frame.csr_crmd = raw & !CRMD_IE;
    frame.csr_prmd = (raw & PLV)
        | if raw & CRMD_IE != 0 { PRMD_PIE } else { 0 }
        | if raw & CRMD_WE != 0 { PRMD_PWE } else { 0 };
    frame.csr_euen = 0;
    frame.csr_ecfg = 0;
    frame.csr_estat = 0;
    // SAFETY: the detour runs on behalf of the context whose probe it
    // replaced, with interrupts masked when it was built with
    // `mask_interrupts` (the engine asks for it in kernel mode), and
    // `frame` is its saved frame with pc = the probe address.
    let resume = unsafe { probe_hal::opthook::dispatch_optimized(cookie, frame) };
    let enable = frame.csr_prmd & PRMD_PIE != 0;
    if resume {
        let pc = frame.csr_era;
        // Back to PLV0 (detours serve kernel code only), with IE and WE
        // after the `ertn` as the frame's PIE and PWE say.
        let prmd = frame.csr_prmd & (PRMD_PIE | PRMD_PWE);
        // Why the block below is sound: PLV0 CSR writes that prepare the
        // detour's `ertn`. IE is cleared first, so nothing traps and
        // overwrites ERA or PRMD before the `ertn` (the detour only loads
        // registers from its frame in between). `csrxchg` takes its mask
        // in $t1 (r13) and its value in $t0 (r12): fixed registers, because
        // a mask register r0 or r1 would encode `csrrd`/`csrwr`.
        // SAFETY: PLV0 CSR writes for the detour's `ertn` (see above).
        unsafe {
            asm!(
                "csrxchg $t0, $t1, 0x0",
                "csrwr {pc}, 0x6",
                "csrwr {prmd}, 0x1",
                inout("$t0") 0usize => _,
                inout("$t1") CRMD_IE => _,
                pc = inout(reg) pc => _,
                prmd = inout(reg) prmd => _,
                options(nostack)
            );
        }
        return 1;
    }
    if enable {
        // SAFETY: interrupts back on as the probed code had them (the frame
        // says so); the displaced instruction and the jump back run with
        // them, as the original code would. Fixed registers as above.
        unsafe {
            asm!(
                "csrxchg $t0, $t1, 0x0",
                inout("$t0") CRMD_IE => _,
                inout("$t1") CRMD_IE => _,
                options(nostack)
            )
        };
    }
    0
}
