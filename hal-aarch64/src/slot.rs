//! Breakpoint encodings, the out-of-line slot, and what a step does to the
//! trap frame.
//!
//! The `brk` immediates are Linux arm64's
//! (`arch/arm64/include/asm/brk-imm.h`): `KPROBES_BRK_IMM` 0x004 marks a
//! kernel probe, `KPROBES_BRK_SS_IMM` 0x006 the end of a kernel
//! out-of-line step, `UPROBES_BRK_IMM` 0x005 a user probe. The immediate
//! is reported in `ESR_ELx.ISS[15:0]` ([`brk_immediate`]), so a trap entry
//! can tell them apart; a `brk` exception reports `ELR` = the address of the
//! `brk` itself.
//!
//! The slot is `[instruction][brk #0x006]` (user: `[instruction][brk
//! #0x005]`) and runs with all of DAIF masked, as Linux's kprobes do
//! (`regs->pstate |= DAIF_MASK` in `kprobes_save_local_irqflag`). Linux
//! ends *user* steps with a hardware single step instead; ending them with
//! a `brk` placed in the user slot is our choice, the same as on the other
//! backends: it needs no debug-register state per task, and the engine
//! recognises the step end by its address (so the user slot may reuse the
//! uprobe breakpoint).
//!
//! Entering the slot also clears `SPSR.BTYPE`: the `brk` trap recorded the
//! BTYPE of the branch that reached the probe, and returning into the slot
//! with it could raise a Branch Target exception on the slot's copy (a
//! guarded slot page) although the original instruction was reached
//! legitimately. `BRK` itself is compatible with every BTYPE (Arm ARM D8.4,
//! "PSTATE.BTYPE": `BRK` and `HLT` never raise a Branch Target exception),
//! which is what lets a probe replace a `bti c` or `paciasp` landing pad.

use probe_hal::{Breakpoint, ExecMode, Registers, SlotImage};

use crate::regs::{PSR_BTYPE_MASK, PSR_DAIF_MASK};

/// Encoding of `brk #imm`: `0xd420_0000 | imm16 << 5`.
pub const fn brk(imm: u16) -> u32 {
    0xd420_0000 | ((imm as u32) << 5)
}

/// `brk #0x004`: the kernel probe breakpoint (0xd420_0080).
pub const KPROBE_BRK: u32 = brk(0x004);
/// `brk #0x006`: end of a kernel out-of-line step (0xd420_00c0).
pub const KPROBE_STEP_END: u32 = brk(0x006);
/// `brk #0x005`: the user probe breakpoint, also ending user steps and
/// serving as the user return trampoline (0xd420_00a0).
pub const UPROBE_BRK: u32 = brk(0x005);

/// The `brk` immediate of a breakpoint exception, from its `ESR_ELx`
/// (`EC` = 0x3c, `ISS[15:0]` = the immediate).
pub const fn brk_immediate(esr: u64) -> u16 {
    (esr & 0xffff) as u16
}

/// `ESR_ELx.EC` of a `brk` executed in AArch64 state.
pub const EC_BRK64: u64 = 0x3c;

/// Bytes of one slot: the instruction and the step-end `brk`.
pub const SLOT_LEN: usize = 8;
/// Offset of the step-end `brk` in the slot.
pub const STEP_END_OFFSET: usize = 4;

/// The probe breakpoint for `mode`.
pub const fn probe_brk(mode: ExecMode) -> u32 {
    match mode {
        ExecMode::Kernel => KPROBE_BRK,
        ExecMode::User => UPROBE_BRK,
    }
}

/// The step-end breakpoint for `mode`.
pub const fn step_end_brk(mode: ExecMode) -> u32 {
    match mode {
        ExecMode::Kernel => KPROBE_STEP_END,
        ExecMode::User => UPROBE_BRK,
    }
}

/// A 4-byte instruction as a [`Breakpoint`] (little-endian).
pub const fn as_breakpoint(insn: u32) -> Breakpoint {
    Breakpoint::new(&insn.to_le_bytes())
}

/// The slot for instruction `word` stepped in `mode`.
pub fn build(word: u32, mode: ExecMode) -> SlotImage {
    let mut img = SlotImage::new();
    img.push(&word.to_le_bytes());
    let end = img.push(&step_end_brk(mode).to_le_bytes());
    debug_assert_eq!((end, img.len), (STEP_END_OFFSET, SLOT_LEN));
    img.step_end = Some(end);
    img
}

/// What [`prepare`] changed and [`restore`] puts back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepState {
    /// The DAIF bits of the probed context's PSTATE.
    pub daif: u32,
}

/// Enter the slot with DAIF masked and BTYPE cleared.
pub fn prepare<R: Registers + ?Sized>(regs: &mut R, slot: usize) -> StepState {
    let pstate = regs.flags();
    regs.set_flags((pstate | PSR_DAIF_MASK) & !PSR_BTYPE_MASK);
    regs.set_pc(slot);
    StepState {
        daif: (pstate & PSR_DAIF_MASK) as u32,
    }
}

/// Resume at `pc` with the DAIF bits the probed context had.
pub fn restore<R: Registers + ?Sized>(regs: &mut R, pc: usize, state: StepState) {
    let pstate = regs.flags();
    regs.set_flags((pstate & !PSR_DAIF_MASK) | state.daif as usize);
    regs.set_pc(pc);
}
