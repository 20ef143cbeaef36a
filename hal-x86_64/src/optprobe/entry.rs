//! The function a detour calls: from the saved frame to the engine's
//! [`probe_hal::opthook`], and the resume slot of path (b).

#[cfg(target_arch = "x86_64")]
use crate::regs::PtRegs;

#[cfg(target_arch = "x86_64")]
use super::detour::SLOT_BELOW_SP;

/// Called by a detour with the frame it built (rdi) and the probe's cookie
/// (rsi). Returns 1 when the detour must resume at the frame's rip (path
/// (b)), 0 to run the displaced instructions (path (a)).
///
/// On path (b) it writes the frame's rip into the resume slot, 136 bytes
/// below the frame's rsp, and puts the slot's address into the frame's rsp
/// field, which the detour loads before its `ret 128`. A handler's rsp
/// below the original is not supported and is ignored (see [`super`]).
#[cfg(target_arch = "x86_64")]
#[link_section = "probe_trap_text"]
pub(crate) extern "C" fn opt_entry(frame: *mut PtRegs, cookie: usize) -> u64 {
    // SAFETY: the detour passes the address of the `PtRegs` it just built
    // on its own stack; nothing else refers to it during this call.
    let frame = unsafe { &mut *frame };
    let original_sp = frame.rsp;
    // SAFETY: the detour runs on behalf of the context whose probe it
    // replaced, with interrupts masked when it was built with
    // `mask_interrupts` (the engine asks for it in kernel mode), and `frame`
    // is its saved frame with rip = the probe address.
    let resume = unsafe { probe_hal::opthook::dispatch_optimized(cookie, frame) };
    if !resume {
        return 0;
    }
    if frame.rsp < original_sp {
        frame.rsp = original_sp;
    }
    let slot = frame.rsp.wrapping_sub(SLOT_BELOW_SP as u64);
    // Why the block below is sound:
    // `slot` is at or above the original rsp - 136, the word just above the
    // frame (which ends at original rsp - 136), so it overlaps neither the
    // frame nor this function's stack; it is below the resumed rsp and outside
    // its red zone, so nothing live is there. It stays above the detour's rsp
    // until the detour moves rsp onto it, so no interrupt can overwrite it in
    // between.
    // SAFETY: `slot` is a stack word no one else uses (see above).
    unsafe { (slot as *mut u64).write(frame.rip) };
    frame.rsp = slot;
    1
}

/// The address of [`opt_entry`], or `None` where this crate does not build
/// detours (not x86_64).
pub(crate) fn entry_address() -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        Some(opt_entry as *const () as usize)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}
