//! Breakpoint encodings, the out-of-line slot, and what a step does to the
//! trap frame.
//!
//! The `break` codes are Linux's (`arch/loongarch/include/asm/break.h`):
//! `BRK_KPROBE_BP` 10 and `BRK_KPROBE_SSTEPBP` 11 for kernel probes,
//! `BRK_UPROBE_BP` 12 and `BRK_UPROBE_XOLBP` 13 for user probes. A `break`
//! trap (Ecode 0xc) reports `ERA` = the address of the `break` itself.
//!
//! As in Linux `arch/loongarch/kernel/kprobes.c`, the slot is
//! `[instruction][break 11]` and the step runs with interrupts masked: the
//! trap saved `CRMD.IE` in `PRMD.PIE`, and clearing `PIE` before `ertn`
//! keeps `IE` off inside the slot.

use probe_hal::{Breakpoint, ExecMode, Registers, SlotImage};

use crate::regs::PRMD_PIE;

/// Encoding of `break code`: opcode `0x002a_0000`, code in bits 14..=0.
pub const fn break_insn(code: u32) -> u32 {
    0x002a_0000 | (code & 0x7fff)
}

/// `break 10`: the kernel probe breakpoint.
pub const KPROBE_BREAK: u32 = break_insn(10);
/// `break 11`: end of a kernel out-of-line step.
pub const KPROBE_STEP_END: u32 = break_insn(11);
/// `break 12`: the user probe breakpoint.
pub const UPROBE_BREAK: u32 = break_insn(12);
/// `break 13`: end of a user out-of-line step.
pub const UPROBE_STEP_END: u32 = break_insn(13);

/// Bytes of one slot: the instruction and the step-end `break`.
pub const SLOT_LEN: usize = 8;
/// Offset of the step-end `break` in the slot.
pub const STEP_END_OFFSET: usize = 4;

/// The probe breakpoint for `mode`.
pub const fn probe_break(mode: ExecMode) -> u32 {
    match mode {
        ExecMode::Kernel => KPROBE_BREAK,
        ExecMode::User => UPROBE_BREAK,
    }
}

/// The step-end breakpoint for `mode`.
pub const fn step_end_break(mode: ExecMode) -> u32 {
    match mode {
        ExecMode::Kernel => KPROBE_STEP_END,
        ExecMode::User => UPROBE_STEP_END,
    }
}

/// A 4-byte instruction as a [`Breakpoint`] (little-endian).
pub const fn as_breakpoint(insn: u32) -> Breakpoint {
    Breakpoint::new(&insn.to_le_bytes())
}

/// The slot for instruction `word` stepped in `mode`:
/// `[word][break 11]` (kernel) or `[word][break 13]` (user).
pub fn build(word: u32, mode: ExecMode) -> SlotImage {
    let mut img = SlotImage::new();
    img.push(&word.to_le_bytes());
    let end = img.push(&step_end_break(mode).to_le_bytes());
    debug_assert_eq!((end, img.len), (STEP_END_OFFSET, SLOT_LEN));
    img.step_end = Some(end);
    img
}

/// What [`prepare`] changed and [`restore`] puts back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepState {
    /// `PRMD.PIE` was set: interrupts were enabled in the probed context.
    pub interrupts_were_enabled: bool,
}

/// Enter the slot with interrupts masked.
pub fn prepare<R: Registers + ?Sized>(regs: &mut R, slot: usize) -> StepState {
    let prmd = regs.flags();
    regs.set_flags(prmd & !PRMD_PIE);
    regs.set_pc(slot);
    StepState {
        interrupts_were_enabled: prmd & PRMD_PIE != 0,
    }
}

/// Resume at `pc` with the interrupt enable the probed context had.
pub fn restore<R: Registers + ?Sized>(regs: &mut R, pc: usize, state: StepState) {
    let pie = if state.interrupts_were_enabled {
        PRMD_PIE
    } else {
        0
    };
    let prmd = regs.flags();
    regs.set_flags((prmd & !PRMD_PIE) | pie);
    regs.set_pc(pc);
}
