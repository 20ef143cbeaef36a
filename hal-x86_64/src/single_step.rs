//! Setting up and completing the out-of-line step.
//!
//! Like current Linux (arch/x86/kernel/kprobes/core.c `setup_singlestep`,
//! `resume_singlestep`), the step is ended by the `int3` after the copy, not
//! by the trap flag: a TF single-step trap costs several times an `int3`
//! round trip on our machines, and TF interacts with `popf` and `mov ss`.
//! In kernel mode the step runs with IF cleared, so no interrupt can land
//! between the copy and its trap (and none can find the CPU half-way through
//! a probe); the instructions that read or write IF are simulated instead
//! (see `decode`), so restoring the saved IF is always right. In user mode
//! the flags are left alone: user code runs with IF set and the kernel must
//! not return to it with IF clear. A boosted step has no trap after it, so
//! it leaves IF alone as well.

use probe_hal::{ExecMode, Registers};

use crate::decode::Insn;
use crate::regs::rflags;

/// What `prepare_step` changed, for `finish_step` and `abort_step` to undo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepState {
    /// IF was set and the step cleared it.
    masked_if: bool,
}

impl StepState {
    /// Whether the step cleared IF (and will set it again).
    pub fn masked_interrupts(&self) -> bool {
        self.masked_if
    }
}

/// Move pc into the slot; in kernel mode (unless boosted) clear IF.
pub(crate) fn prepare<R: Registers + ?Sized>(
    insn: &Insn,
    regs: &mut R,
    slot: usize,
    boosted: bool,
) -> StepState {
    regs.set_pc(slot);
    let flags = regs.flags();
    let masked_if = insn.mode() == ExecMode::Kernel && !boosted && flags & rflags::IF != 0;
    if masked_if {
        regs.set_flags(flags & !rflags::IF);
    }
    StepState { masked_if }
}

fn restore<R: Registers + ?Sized>(regs: &mut R, state: StepState) {
    if state.masked_if {
        regs.set_flags(regs.flags() | rflags::IF);
    }
}

/// The `int3` after the copy trapped: continue after the original
/// instruction, with IF as it was.
pub(crate) fn finish<R: Registers + ?Sized>(
    insn: &Insn,
    regs: &mut R,
    addr: usize,
    state: StepState,
) {
    regs.set_pc(addr.wrapping_add(insn.length()));
    restore(regs, state);
}

/// A fault inside the slot: back to the probe address, IF as it was.
pub(crate) fn abort<R: Registers + ?Sized>(
    _insn: &Insn,
    regs: &mut R,
    addr: usize,
    state: StepState,
) {
    regs.set_pc(addr);
    restore(regs, state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::regs::PtRegs;

    const ADDR: usize = 0xffff_ffff_8100_0010;
    const SLOT: usize = 0xffff_ffff_a000_0040;

    fn insn(bytes: &[u8], mode: ExecMode) -> Insn {
        decode(ADDR, bytes, mode).unwrap().insn
    }

    fn frame(eflags: u64) -> PtRegs {
        PtRegs {
            rip: ADDR as u64 + 1,
            eflags,
            ..PtRegs::zeroed()
        }
    }

    #[test]
    fn kernel_step_masks_interrupts_and_finish_restores() {
        let i = insn(&[0x48, 0x89, 0xe5], ExecMode::Kernel);
        let mut r = frame(0x246);
        let st = prepare(&i, &mut r, SLOT, false);
        assert_eq!(r.rip as usize, SLOT);
        assert_eq!(r.eflags, 0x046);
        assert!(st.masked_interrupts());
        // The int3 after the 3-byte copy reports SLOT + 4.
        r.rip = SLOT as u64 + 4;
        r.eflags = 0x083; // the copy changed the arithmetic flags
        finish(&i, &mut r, ADDR, st);
        assert_eq!(r.rip as usize, ADDR + 3);
        assert_eq!(r.eflags, 0x283);
    }

    #[test]
    fn kernel_step_with_interrupts_already_off_leaves_them_off() {
        let i = insn(&[0x90], ExecMode::Kernel);
        let mut r = frame(0x046);
        let st = prepare(&i, &mut r, SLOT, false);
        assert!(!st.masked_interrupts());
        finish(&i, &mut r, ADDR, st);
        assert_eq!(r.eflags, 0x046);
        assert_eq!(r.rip as usize, ADDR + 1);
    }

    #[test]
    fn boosted_and_user_steps_leave_flags_alone() {
        let i = insn(&[0x90], ExecMode::Kernel);
        let mut r = frame(0x246);
        let st = prepare(&i, &mut r, SLOT, true);
        assert_eq!((r.eflags, r.rip as usize), (0x246, SLOT));
        assert_eq!(st, StepState::default());
        let i = insn(&[0x9d], ExecMode::User); // popf is stepped in user mode
        let mut r = frame(0x246);
        let st = prepare(&i, &mut r, SLOT, false);
        assert_eq!(r.eflags, 0x246);
        r.eflags = 0x202 | 0x400; // popf set DF
        finish(&i, &mut r, ADDR, st);
        assert_eq!(r.eflags, 0x602);
        assert_eq!(r.rip as usize, ADDR + 1);
    }

    #[test]
    fn abort_goes_back_to_the_probe_address() {
        let i = insn(&[0x48, 0x8b, 0x07], ExecMode::Kernel); // mov rax, [rdi]
        let mut r = frame(0x202);
        let st = prepare(&i, &mut r, SLOT, false);
        assert_eq!(r.eflags, 0x002);
        abort(&i, &mut r, ADDR, st);
        assert_eq!(r.rip as usize, ADDR);
        assert_eq!(r.eflags, 0x202);
    }
}
