//! The Linux loongarch64 trap frame (`struct pt_regs`) and the C calling
//! convention, for kernels that have no trap frame of their own.
//!
//! Layout and register roles follow Linux `arch/loongarch/include/asm/ptrace.h`
//! and the LoongArch ELF psABI (lp64): `r1` = `ra`, `r3` = `sp`, arguments in
//! `a0`-`a7` = `r4`-`r11`, return value in `a0`/`a1` = `r4`/`r5`.

use probe_hal::{CallAbi, Registers};

/// `PRMD.PIE`: the interrupt enable the exception return (`ertn`) restores
/// into `CRMD.IE` (LoongArch Reference Manual vol. 1, CSR PRMD, bit 2).
pub const PRMD_PIE: usize = 1 << 2;

/// The loongarch64 C calling convention as general-register numbers.
pub static CALL_ABI: CallAbi = CallAbi {
    args: &[4, 5, 6, 7, 8, 9, 10, 11],
    ret: [4, 5],
};

/// Register number of the return address (`ra`).
pub const RA: usize = 1;
/// Register number of the stack pointer (`sp`).
pub const SP: usize = 3;

/// A trap frame laid out like Linux's loongarch64 `struct pt_regs`.
///
/// `pc` is the exception return address `csr_era`; [`Registers::flags`] is
/// `csr_prmd` (the mode `ertn` returns to: `PPLV`, `PIE`, `PWE`), which the
/// backend uses to keep interrupts masked while an instruction is stepped
/// out of line. A kernel that implements [`Registers`] on its own frame
/// should map `flags`/`set_flags` to its saved PRMD the same way.
///
/// The layout is ABI (eBPF programs read it at Linux's offsets): the
/// table and the eBPF view ([`with_pt_regs`](crate::with_pt_regs)) are in
/// [`pt_regs_view`](crate::pt_regs_view).
///
/// ```
/// use probe_hal_loongarch64::PtRegs;
/// use probe_hal::Registers;
/// let mut f = PtRegs::new();
/// f.set_gpr(4, 7);
/// f.set_gpr(0, 99); // r0 is hard-wired to zero
/// assert_eq!((f.arg(0), f.gpr(0), f.return_value()), (Some(7), 0, 7));
/// ```
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PtRegs {
    /// `r0`-`r31` (`regs[0]` is stored but always reads as 0 through
    /// [`Registers::gpr`]).
    pub regs: [usize; 32],
    /// `a0` as it was on system-call entry (kept for Linux compatibility).
    pub orig_a0: usize,
    /// Exception return address: the pc.
    pub csr_era: usize,
    /// Faulting virtual address.
    pub csr_badvaddr: usize,
    /// Current mode information.
    pub csr_crmd: usize,
    /// Pre-exception mode information (`PPLV`, `PIE`, `PWE`).
    pub csr_prmd: usize,
    /// Extended unit enables (FPU, LSX, LASX, LBT).
    pub csr_euen: usize,
    /// Exception configuration.
    pub csr_ecfg: usize,
    /// Exception status.
    pub csr_estat: usize,
}

/// Size of [`PtRegs`] in bytes (Linux `PT_SIZE` on loongarch64).
pub const PT_SIZE: usize = core::mem::size_of::<PtRegs>();

#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(PT_SIZE == 320);
    assert!(core::mem::offset_of!(PtRegs, orig_a0) == 256);
    assert!(core::mem::offset_of!(PtRegs, csr_era) == 264);
    assert!(core::mem::offset_of!(PtRegs, csr_prmd) == 288);
    assert!(core::mem::offset_of!(PtRegs, csr_estat) == 312);
};

impl PtRegs {
    /// A frame with every field zero.
    pub const fn new() -> Self {
        Self {
            regs: [0; 32],
            orig_a0: 0,
            csr_era: 0,
            csr_badvaddr: 0,
            csr_crmd: 0,
            csr_prmd: 0,
            csr_euen: 0,
            csr_ecfg: 0,
            csr_estat: 0,
        }
    }
}

impl Registers for PtRegs {
    #[link_section = "probe_trap_text"]
    fn pc(&self) -> usize {
        self.csr_era
    }

    #[link_section = "probe_trap_text"]
    fn set_pc(&mut self, pc: usize) {
        self.csr_era = pc;
    }

    #[link_section = "probe_trap_text"]
    fn sp(&self) -> usize {
        self.regs[SP]
    }

    #[link_section = "probe_trap_text"]
    fn set_sp(&mut self, sp: usize) {
        self.regs[SP] = sp;
    }

    /// `r0` and numbers above 31 read as 0.
    #[link_section = "probe_trap_text"]
    fn gpr(&self, n: usize) -> usize {
        match n {
            1..=31 => self.regs[n],
            _ => 0,
        }
    }

    /// Writes to `r0` and to numbers above 31 are ignored.
    #[link_section = "probe_trap_text"]
    fn set_gpr(&mut self, n: usize, value: usize) {
        if let 1..=31 = n {
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

    /// `csr_prmd`.
    #[link_section = "probe_trap_text"]
    fn flags(&self) -> usize {
        self.csr_prmd
    }

    /// Sets `csr_prmd`.
    #[link_section = "probe_trap_text"]
    fn set_flags(&mut self, flags: usize) {
        self.csr_prmd = flags;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r0_reads_zero_and_ignores_writes() {
        let mut f = PtRegs::new();
        f.regs[0] = 0x55;
        assert_eq!(f.gpr(0), 0);
        f.set_gpr(0, 0x1234);
        assert_eq!(f.regs[0], 0x55);
        assert_eq!(f.gpr(32), 0);
        f.set_gpr(32, 1); // out of range: ignored, no panic
    }

    #[test]
    fn named_registers_map_to_their_numbers() {
        let mut f = PtRegs::new();
        f.set_sp(0x9000_0000_0010_0000);
        assert_eq!(f.regs[3], 0x9000_0000_0010_0000);
        f.set_pc(0x9000_0000_0020_0004);
        assert_eq!(f.csr_era, 0x9000_0000_0020_0004);
        f.set_gpr(RA, 0x1111);
        assert_eq!(f.regs[1], 0x1111);
        f.set_flags(0b111);
        assert_eq!((f.csr_prmd, f.flags()), (0b111, 0b111));
    }

    #[test]
    fn c_abi_arguments_are_a0_to_a7_and_return_is_a0_a1() {
        let mut f = PtRegs::new();
        for i in 0..32 {
            f.regs[i] = 100 + i;
        }
        let args: std::vec::Vec<_> = (0..9).map(|i| f.arg(i)).collect();
        assert_eq!(
            args,
            [
                Some(104),
                Some(105),
                Some(106),
                Some(107),
                Some(108),
                Some(109),
                Some(110),
                Some(111),
                None
            ]
        );
        assert!(f.set_arg(7, 7));
        assert_eq!(f.regs[11], 7);
        assert!(!f.set_arg(8, 8));
        f.set_return_value(42);
        assert_eq!((f.regs[4], f.return_value()), (42, 42));
        assert_eq!(CALL_ABI.ret, [4, 5]);
    }
}
