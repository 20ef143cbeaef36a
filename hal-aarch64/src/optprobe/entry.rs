//! The function a detour calls: completes the frame, calls the engine, and
//! prepares `ELR_EL1`/`SPSR_EL1` for path (b) (see [`super`]).

use core::arch::asm;

use crate::regs::{PtRegs, PSR_DAIF_MASK};

use super::detour::FRAME_LEN;

/// NZCV (bits 31..28) of PSTATE/SPSR.
const NZCV_MASK: usize = 0xf << 28;
/// SPSR.M for a return to EL1 using `SP_EL1` (EL1h).
const EL1H: usize = 0b0101;

/// Called by a detour with the frame it built (x0) and the address of its
/// literals (x1: the probe address, then the cookie). Returns 1 when the
/// detour must resume at the frame's pc through `eret` (path (b)), 0 to
/// run the displaced instruction (path (a)).
#[link_section = "probe_trap_text"]
pub(crate) extern "C" fn opt_entry(frame: *mut PtRegs, literals: *const [usize; 2]) -> usize {
    // SAFETY: the detour passes its own literals, two 8-aligned words.
    let [addr, cookie] = unsafe { *literals };
    // The detour passes the address of the `PtRegs` it just built on its
    // own stack; nothing else refers to it during this call.
    // SAFETY: a valid, exclusive frame (above).
    let frame = unsafe { &mut *frame };
    frame.pc = addr;
    frame.sp = frame as *mut PtRegs as usize + FRAME_LEN;
    frame.orig_x0 = frame.regs[0];
    frame.syscallno = usize::MAX;
    // The raw NZCV|DAIF as the probed code had them, as a `brk` trap would
    // have saved them in SPSR_EL1: M = EL1h, BTYPE 0.
    frame.pstate = (frame.pstate & (NZCV_MASK | PSR_DAIF_MASK)) | EL1H;
    // The detour runs on behalf of the context whose probe it replaced,
    // with DAIF masked when it was built with `mask_interrupts` (the engine
    // asks for it in kernel mode), and `frame` is its saved frame with
    // pc = the probe address.
    // SAFETY: dispatch_optimized's terms, as just said.
    let resume = unsafe { probe_hal::opthook::dispatch_optimized(cookie, frame) };
    if !resume {
        // The detour restores NZCV and DAIF from the frame itself.
        return 0;
    }
    let spsr = (frame.pstate & (NZCV_MASK | PSR_DAIF_MASK)) | EL1H;
    // EL1 system-register writes that prepare the detour's `eret`: mask D,
    // A, I and F first, so that no exception (which would overwrite ELR_EL1
    // and SPSR_EL1) can be taken before the `eret`: between here and it the
    // detour only returns, moves and loads from its frame. The `eret` then
    // resumes at the frame's pc at EL1h with its NZCV and DAIF.
    // SAFETY: EL1 writes of DAIF, ELR and SPSR for the detour's `eret` (above).
    unsafe {
        asm!(
            "msr daifset, #0xf",
            "msr elr_el1, {pc}",
            "msr spsr_el1, {spsr}",
            pc = in(reg) frame.pc,
            spsr = in(reg) spsr,
            options(nostack)
        );
    }
    1
}
