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
    let spsr = (frame.pstate & (NZCV_MASK | PSR_DAIF_MASK)) | EL1H | pstate_controls();
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

/// The PSTATE controls the eret of path (b) must carry over from the probed
/// code, which a trap's SPSR_EL1 would have held: PAN (bit 22), UAO (23),
/// DIT (24), TCO (25) and SSBS (12), each read from its own system register
/// (which returns it at its SPSR position) where the CPU implements it.
/// Nothing between the probe and here changes them, so the current values
/// are the probed code's. Without them, `eret` with an SPSR that has them
/// clear would turn PAN off (kernel access to user memory allowed again)
/// or change speculation and timing controls under the resumed code.
#[inline(never)]
#[link_section = "probe_trap_text"]
fn pstate_controls() -> usize {
    /// Field `lsb` (4 bits) of an ID register value is at least `min`.
    fn has(id: usize, lsb: u32, min: usize) -> bool {
        (id >> lsb) & 0xf >= min
    }
    let (pfr0, pfr1, mmfr1, mmfr2): (usize, usize, usize, usize);
    // SAFETY: reading ID registers at EL1 has no side effect (generic
    // names: ID_AA64PFR0_EL1, ID_AA64PFR1_EL1, ID_AA64MMFR1_EL1,
    // ID_AA64MMFR2_EL1).
    unsafe {
        asm!(
            "mrs {0}, S3_0_C0_C4_0",
            "mrs {1}, S3_0_C0_C4_1",
            "mrs {2}, S3_0_C0_C7_1",
            "mrs {3}, S3_0_C0_C7_2",
            out(reg) pfr0, out(reg) pfr1, out(reg) mmfr1, out(reg) mmfr2,
            options(nomem, nostack, preserves_flags)
        )
    };
    let mut bits = 0;
    macro_rules! read_if {
        ($cond:expr, $reg:literal) => {
            if $cond {
                let v: usize;
                // SAFETY: the ID register says the PSTATE access register
                // exists; reading it has no side effect.
                unsafe { asm!(concat!("mrs {0}, ", $reg), out(reg) v, options(nomem, nostack, preserves_flags)) };
                bits |= v;
            }
        };
    }
    read_if!(has(mmfr1, 20, 1), "S3_0_C4_C2_3"); // PAN (FEAT_PAN)
    read_if!(has(mmfr2, 4, 1), "S3_0_C4_C2_4"); // UAO (FEAT_UAO)
    read_if!(has(pfr0, 48, 1), "S3_3_C4_C2_5"); // DIT (FEAT_DIT)
    read_if!(has(pfr1, 4, 2), "S3_3_C4_C2_6"); // SSBS (FEAT_SSBS2)
    read_if!(has(pfr1, 8, 1), "S3_3_C4_C2_7"); // TCO (FEAT_MTE)
    bits & PSTATE_CONTROLS
}

/// PAN, UAO, DIT, TCO and SSBS in SPSR_EL1.
const PSTATE_CONTROLS: usize = (0xf << 22) | (1 << 12);
