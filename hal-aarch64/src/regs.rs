//! The Linux arm64 trap frame (`struct pt_regs`, beginning with the
//! `struct user_pt_regs` eBPF programs read) and the C calling convention,
//! for kernels that have no trap frame of their own.
//!
//! Layout from Linux `arch/arm64/include/uapi/asm/ptrace.h` and
//! `arch/arm64/include/asm/ptrace.h`; register roles from the AAPCS64:
//! arguments in `x0`-`x7`, return value in `x0`/`x1`, link register `x30`.

use probe_hal::{CallAbi, Registers};

/// PSTATE/SPSR interrupt-mask bits D, A, I, F (bits 9..6).
pub const PSR_DAIF_MASK: usize = 0xf << 6;
/// PSTATE/SPSR.BTYPE (bits 11..10, FEAT_BTI).
pub const PSR_BTYPE_MASK: usize = 0x3 << 10;
/// The shift of SPSR.BTYPE.
pub const PSR_BTYPE_SHIFT: u32 = 10;
/// SPSR.M\[3:0\]: the exception level and stack pointer returned to
/// (0 = EL0t).
pub const PSR_MODE_MASK: usize = 0xf;

/// The aarch64 C calling convention as general-register numbers.
pub static CALL_ABI: CallAbi = CallAbi {
    args: &[0, 1, 2, 3, 4, 5, 6, 7],
    ret: [0, 1],
};

/// Register number of the link register (`x30`).
pub const LR: usize = 30;
/// Register number 31 in the instructions we simulate: the zero register.
pub const ZR: usize = 31;

/// A trap frame laid out like Linux's arm64 `struct pt_regs` (its first
/// 288 bytes: `user_pt_regs`, `orig_x0`, `syscallno`).
///
/// `pc` is the exception return address (`ELR_EL1`); [`Registers::flags`]
/// is `pstate` (the saved `SPSR_EL1`), which the backend uses to mask DAIF
/// while an instruction is stepped out of line, to evaluate `b.cond`, and to
/// set BTYPE after a simulated branch. A kernel that implements
/// [`Registers`] on its own frame must map `flags`/`set_flags` to its saved
/// SPSR the same way (conditional branches read NZCV from it).
///
/// General register 31 is the zero register in every instruction the
/// backend simulates, so [`Registers::gpr`]`(31)` reads 0; the stack
/// pointer is [`Registers::sp`].
///
/// The layout is ABI (eBPF programs read it at Linux's offsets): the
/// table and the eBPF view ([`with_pt_regs`](crate::with_pt_regs)) are in
/// [`pt_regs_view`](crate::pt_regs_view).
///
/// ```
/// use probe_hal_aarch64::PtRegs;
/// use probe_hal::Registers;
/// let mut f = PtRegs::new();
/// f.set_gpr(0, 7);
/// f.set_gpr(31, 99); // xzr
/// assert_eq!((f.arg(0), f.gpr(31), f.return_value()), (Some(7), 0, 7));
/// ```
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PtRegs {
    /// `x0`-`x30`.
    pub regs: [usize; 31],
    /// The interrupted stack pointer.
    pub sp: usize,
    /// The exception return address: the pc.
    pub pc: usize,
    /// The saved PSTATE (`SPSR_EL1`).
    pub pstate: usize,
    /// `x0` as it was on system-call entry.
    pub orig_x0: usize,
    /// The system-call number (`-1` when none; a `s32` and padding in
    /// Linux, one word here).
    pub syscallno: usize,
}

/// Size of [`PtRegs`] in bytes.
pub const PT_SIZE: usize = core::mem::size_of::<PtRegs>();
/// Size of the `user_pt_regs` part (what eBPF programs read).
pub const USER_PT_SIZE: usize = 272;

#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(PT_SIZE == 288);
    assert!(core::mem::offset_of!(PtRegs, sp) == 248);
    assert!(core::mem::offset_of!(PtRegs, pc) == 256);
    assert!(core::mem::offset_of!(PtRegs, pstate) == 264);
    assert!(core::mem::offset_of!(PtRegs, orig_x0) == USER_PT_SIZE);
    assert!(core::mem::offset_of!(PtRegs, syscallno) == 280);
};

impl PtRegs {
    /// A frame with every field zero.
    pub const fn new() -> Self {
        Self {
            regs: [0; 31],
            sp: 0,
            pc: 0,
            pstate: 0,
            orig_x0: 0,
            syscallno: 0,
        }
    }
}

impl Registers for PtRegs {
    #[link_section = "probe_trap_text"]
    fn pc(&self) -> usize {
        self.pc
    }

    #[link_section = "probe_trap_text"]
    fn set_pc(&mut self, pc: usize) {
        self.pc = pc;
    }

    #[link_section = "probe_trap_text"]
    fn sp(&self) -> usize {
        self.sp
    }

    #[link_section = "probe_trap_text"]
    fn set_sp(&mut self, sp: usize) {
        self.sp = sp;
    }

    /// `x0`-`x30`; 31 (the zero register) and above read as 0.
    #[link_section = "probe_trap_text"]
    fn gpr(&self, n: usize) -> usize {
        match n {
            0..=30 => self.regs[n],
            _ => 0,
        }
    }

    /// Writes to 31 (the zero register) and above are ignored.
    #[link_section = "probe_trap_text"]
    fn set_gpr(&mut self, n: usize, value: usize) {
        if let 0..=30 = n {
            self.regs[n] = value;
        }
    }

    #[link_section = "probe_trap_text"]
    fn call_abi(&self) -> &'static CallAbi {
        &CALL_ABI
    }

    /// `Some(self)`: handlers reach this frame as a `PtRegs` without a copy
    /// ([`pt_regs_mut`](crate::pt_regs_mut), [`with_pt_regs`](crate::with_pt_regs)).
    #[inline(always)]
    fn as_any_mut(&mut self) -> Option<&mut dyn core::any::Any> {
        Some(self)
    }

    /// `pstate`.
    #[link_section = "probe_trap_text"]
    fn flags(&self) -> usize {
        self.pstate
    }

    /// Sets `pstate`.
    #[link_section = "probe_trap_text"]
    fn set_flags(&mut self, flags: usize) {
        self.pstate = flags;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xzr_reads_zero_and_ignores_writes() {
        let mut f = PtRegs::new();
        f.set_gpr(31, 0x1234);
        assert_eq!(f.gpr(31), 0);
        assert_eq!(f.gpr(32), 0);
        f.set_gpr(32, 1);
        assert_eq!(f, PtRegs::new());
    }

    #[test]
    fn named_registers_map_to_their_fields() {
        let mut f = PtRegs::new();
        f.set_sp(0xffff_0000_0010_0000);
        f.set_pc(0xffff_0000_0020_0004);
        f.set_gpr(LR, 0x1111);
        f.set_flags(0x3c5);
        assert_eq!(
            (f.sp, f.pc, f.regs[30], f.pstate),
            (0xffff_0000_0010_0000, 0xffff_0000_0020_0004, 0x1111, 0x3c5)
        );
    }

    #[test]
    fn c_abi_arguments_are_x0_to_x7_and_return_is_x0() {
        let mut f = PtRegs::new();
        for i in 0..31 {
            f.regs[i] = 100 + i;
        }
        let args: std::vec::Vec<_> = (0..9).map(|i| f.arg(i)).collect();
        assert_eq!(
            args[..8],
            (100..108).map(Some).collect::<std::vec::Vec<_>>()[..]
        );
        assert_eq!(args[8], None);
        f.set_return_value(42);
        assert_eq!((f.regs[0], f.return_value()), (42, 42));
    }
}
