//! The function a detour calls: completes the frame, calls the engine, and
//! prepares the `sstatus`/`sepc` of either path (see [`super`]).

use core::arch::asm;

use crate::regs::{PtRegs, SSTATUS_SPIE};

use super::detour::FRAME_LEN;

/// `sstatus.SIE`.
const SIE: usize = 1 << 1;
/// `sstatus.SPP`.
const SPP: usize = 1 << 8;

/// Called by a detour with the frame it built (a0) and the address of its
/// literals (a1: the probe address, then the cookie). Returns 1 when the
/// detour must resume at the frame's pc through `sret` (path (b)), 0 to run
/// the displaced instructions (path (a)).
#[link_section = "probe_trap_text"]
pub(crate) extern "C" fn opt_entry(frame: *mut PtRegs, literals: *const [usize; 2]) -> usize {
    // SAFETY: the detour passes its own literals, two 8-aligned words.
    let [addr, cookie] = unsafe { *literals };
    // SAFETY: the detour passes the address of the `PtRegs` it just built
    // on its own stack; nothing else refers to it during this call.
    let frame = unsafe { &mut *frame };
    frame.epc = addr;
    frame.sp = frame as *mut PtRegs as usize + FRAME_LEN;
    frame.badaddr = 0;
    frame.cause = 0;
    frame.orig_a0 = 0;
    // The raw sstatus as the probed code had it, as a trap would have
    // saved it: SPP = S, SPIE = its SIE, SIE = 0.
    let raw = frame.status;
    let spie = if raw & SIE != 0 { SSTATUS_SPIE } else { 0 };
    frame.status = (raw & !(SIE | SSTATUS_SPIE)) | SPP | spie;
    // SAFETY: the detour runs on behalf of the context whose probe it
    // replaced, with interrupts masked when it was built with
    // `mask_interrupts` (the engine asks for it in kernel mode), and
    // `frame` is its saved frame with pc = the probe address.
    let resume = unsafe { probe_hal::opthook::dispatch_optimized(cookie, frame) };
    let enable = frame.status & SSTATUS_SPIE != 0;
    if resume {
        let pc = frame.epc;
        // Why the block below is sound:
        // S-mode CSR writes that prepare the detour's `sret`: mask interrupts (so
        // nothing traps and overwrites sepc before the `sret`: the detour only
        // loads registers from its frame in between), sepc = the new pc, return
        // into S-mode, with SIE after the `sret` as the frame's SPIE says.
        // SAFETY: S-mode CSR writes for the detour's `sret` (see above).
        unsafe {
            asm!(
                "csrci sstatus, 2",
                "csrw sepc, {pc}",
                "csrs sstatus, {spp}",
                "csrc sstatus, {spie}",
                pc = in(reg) pc,
                spp = in(reg) SPP,
                spie = in(reg) SSTATUS_SPIE,
                options(nostack)
            );
            if enable {
                asm!("csrs sstatus, {spie}", spie = in(reg) SSTATUS_SPIE, options(nostack));
            }
        }
        return 1;
    }
    if enable {
        // SAFETY: interrupts back on as the probed code had them (the frame
        // says so); the displaced instructions and the jump back run with
        // them, as the original code would.
        unsafe { asm!("csrsi sstatus, 2", options(nostack)) };
    }
    0
}
