//! The function a detour calls: from the saved frame to the engine's
//! [`probe_hal::opthook`].

#[cfg(target_arch = "x86_64")]
use crate::regs::PtRegs;

/// Called by a detour with the frame it built (rdi) and the probe's cookie
/// (rsi). Returns true when the detour must resume at the frame's rip
/// (path (b): the detour then writes the resume slot itself), false to run
/// the displaced instructions (path (a)). A tail call of the hook.
#[cfg(target_arch = "x86_64")]
#[link_section = "probe_trap_text"]
pub(crate) extern "C" fn opt_entry(frame: *mut PtRegs, cookie: usize) -> bool {
    // SAFETY: the detour passes the address of the `PtRegs` it just built
    // on its own stack; nothing else refers to it during this call.
    let frame = unsafe { &mut *frame };
    // SAFETY: the detour runs on behalf of the context whose probe it
    // replaced, with interrupts masked when it was built with
    // `mask_interrupts` (the engine asks for it in kernel mode), and `frame`
    // is its saved frame with rip = the probe address.
    unsafe { probe_hal::opthook::dispatch_optimized(cookie, frame) }
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
