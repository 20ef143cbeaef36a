//! The out-of-line slot and the single step through it.
//!
//! A slot is `[instruction][ebreak]` (2 + 4 or 4 + 4 bytes, so
//! [`SLOT_LEN`] = 8): the copy runs unchanged (nothing that is stepped
//! depends on the pc), then the 32-bit `ebreak` at `slot + len` traps back
//! into the engine, which calls [`finish_step`] to continue at
//! `addr + len`. riscv has no "boost": the slot always ends with the trap.
//!
//! Interrupts: as in Linux (`kprobes_save_local_irqflag()` in
//! arch/riscv/kernel/probes/kprobes.c), a kernel-mode step runs with
//! interrupts disabled: [`prepare_step`] clears SPIE in the frame's status
//! image ([`Registers::flags`]), so the trap return into the slot leaves
//! SIE clear, and [`finish_step`]/[`abort_step`] set it again if it was set.
//! Only that bit is restored: the rest of the status (FS dirty after an FP
//! instruction, for example) is what the hardware reported at the step-end
//! trap. A kernel whose own frame type does not expose its status through
//! `flags`/`set_flags` gets a step with interrupts as they were.
//! User-mode steps leave the status alone (S-mode interrupts are always
//! taken in U-mode whatever SIE says).

use probe_hal::{Decoded, ExecMode, Handling, ProbeError, ProbeErrorKind, Registers, SlotImage};

use crate::breakpoint::EBREAK;
use crate::decode::Insn;
use crate::regs::SSTATUS_SPIE;

/// Bytes of one slot: the longest instruction plus the `ebreak`.
pub const SLOT_LEN: usize = 8;

/// What [`prepare_step`] changed, for [`finish_step`] and [`abort_step`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepState {
    /// SPIE was set in the frame's status and was cleared for the step.
    spie_cleared: bool,
}

/// The slot for `insn`, whose original bytes start at `orig[0]`, probed at
/// `addr`: the copy followed by `ebreak`.
pub fn build_slot(insn: &Decoded<Insn>, orig: &[u8], addr: usize) -> Result<SlotImage, ProbeError> {
    if insn.handling == Handling::Simulate {
        return Err(ProbeError::new(
            ProbeErrorKind::InvalidRequest("a simulated instruction has no out-of-line slot"),
            addr,
        ));
    }
    let Some(copy) = orig.get(..insn.len) else {
        return Err(ProbeError::new(
            ProbeErrorKind::InvalidRequest("fewer original bytes than the instruction is long"),
            addr,
        ));
    };
    let mut image = SlotImage::new();
    image.push(copy);
    image.step_end = Some(image.push(&EBREAK.to_le_bytes()));
    Ok(image)
}

/// Send the pc into the slot; in kernel mode, with interrupts disabled.
pub fn prepare_step<R: Registers + ?Sized>(
    insn: &Decoded<Insn>,
    regs: &mut R,
    slot: usize,
) -> StepState {
    regs.set_pc(slot);
    let mut state = StepState::default();
    if insn.insn.mode == ExecMode::Kernel {
        let status = regs.flags();
        if status & SSTATUS_SPIE != 0 {
            regs.set_flags(status & !SSTATUS_SPIE);
            state.spie_cleared = true;
        }
    }
    state
}

/// The step-end `ebreak` trapped: continue after the original instruction.
pub fn finish_step<R: Registers + ?Sized>(
    insn: &Decoded<Insn>,
    regs: &mut R,
    addr: usize,
    state: StepState,
) {
    regs.set_pc(addr.wrapping_add(insn.len));
    restore_interrupts(regs, state);
}

/// A fault inside the slot: back to the probe address, as if the original
/// instruction had faulted there.
pub fn abort_step<R: Registers + ?Sized>(regs: &mut R, addr: usize, state: StepState) {
    regs.set_pc(addr);
    restore_interrupts(regs, state);
}

fn restore_interrupts<R: Registers + ?Sized>(regs: &mut R, state: StepState) {
    if state.spie_cleared {
        regs.set_flags(regs.flags() | SSTATUS_SPIE);
    }
}
