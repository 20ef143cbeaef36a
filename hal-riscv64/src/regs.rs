//! The Linux riscv64 trap frame, for kernels that have none of their own.

use probe_hal::{CallAbi, Registers};

/// The riscv64 C calling convention (psABI): arguments in a0-a7
/// (x10-x17), return value in a0 and a1 (x10, x11).
pub static CALL_ABI: CallAbi = CallAbi {
    args: &[10, 11, 12, 13, 14, 15, 16, 17],
    ret: [10, 11],
};

/// Register number of the stack pointer (`x2`, `sp`).
pub const SP: usize = 2;

/// Bit of `status` (`sstatus`) holding the interrupt-enable state of the
/// interrupted context (SPIE, privileged manual §4.1.1).
pub const SSTATUS_SPIE: usize = 1 << 5;

/// A trap frame in the layout of Linux's `struct pt_regs`
/// (arch/riscv/include/asm/ptrace.h): the pc where register x0 would be,
/// x1-x31 in register-number order, then four CSR images. 36 words,
/// 288 bytes.
///
/// [`Registers`] numbers general registers x0..x31 as instructions encode
/// them: `gpr(0)` reads 0 and `set_gpr(0, _)` is ignored (slot 0 is `epc`,
/// not x0); [`Registers::flags`] is the `status` image.
///
/// The layout is ABI (eBPF programs read it at Linux's offsets): the
/// table and the eBPF view ([`with_pt_regs`](crate::with_pt_regs)) are in
/// [`pt_regs_view`](crate::pt_regs_view).
///
/// ```
/// use probe_hal_riscv64::PtRegs;
/// use probe_hal::Registers;
/// let mut regs = PtRegs::default();
/// regs.set_gpr(10, 7);
/// assert_eq!(regs.a0, 7);
/// assert_eq!(regs.arg(0), Some(7));
/// regs.set_gpr(0, 99);
/// assert_eq!((regs.gpr(0), regs.epc), (0, 0));
/// ```
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PtRegs {
    /// The pc to resume at (`sepc`).
    pub epc: usize,
    /// x1, return address.
    pub ra: usize,
    /// x2, stack pointer.
    pub sp: usize,
    /// x3, global pointer.
    pub gp: usize,
    /// x4, thread pointer.
    pub tp: usize,
    /// x5, temporary.
    pub t0: usize,
    /// x6, temporary.
    pub t1: usize,
    /// x7, temporary.
    pub t2: usize,
    /// x8, saved register / frame pointer.
    pub s0: usize,
    /// x9, saved register.
    pub s1: usize,
    /// x10, argument 0 / return value.
    pub a0: usize,
    /// x11, argument 1 / second return word.
    pub a1: usize,
    /// x12, argument 2.
    pub a2: usize,
    /// x13, argument 3.
    pub a3: usize,
    /// x14, argument 4.
    pub a4: usize,
    /// x15, argument 5.
    pub a5: usize,
    /// x16, argument 6.
    pub a6: usize,
    /// x17, argument 7.
    pub a7: usize,
    /// x18, saved register.
    pub s2: usize,
    /// x19, saved register.
    pub s3: usize,
    /// x20, saved register.
    pub s4: usize,
    /// x21, saved register.
    pub s5: usize,
    /// x22, saved register.
    pub s6: usize,
    /// x23, saved register.
    pub s7: usize,
    /// x24, saved register.
    pub s8: usize,
    /// x25, saved register.
    pub s9: usize,
    /// x26, saved register.
    pub s10: usize,
    /// x27, saved register.
    pub s11: usize,
    /// x28, temporary.
    pub t3: usize,
    /// x29, temporary.
    pub t4: usize,
    /// x30, temporary.
    pub t5: usize,
    /// x31, temporary.
    pub t6: usize,
    /// `sstatus` (or `mstatus`) at the trap.
    pub status: usize,
    /// `stval` at the trap.
    pub badaddr: usize,
    /// `scause` at the trap.
    pub cause: usize,
    /// a0 before a system call changed it.
    pub orig_a0: usize,
}

/// Size of [`PtRegs`] in bytes (Linux's `PT_SIZE`).
pub const PT_SIZE: usize = core::mem::size_of::<PtRegs>();

/// Defines `slot`/`slot_mut`: the field of register `x<n>`, 1 <= n <= 31
/// (x0 has no slot: word 0 of the frame is `epc`).
macro_rules! register_slots {
    ($($n:literal => $field:ident),* $(,)?) => {
        impl PtRegs {
            fn slot(&self, n: usize) -> Option<&usize> {
                match n {
                    $($n => Some(&self.$field),)*
                    _ => None,
                }
            }

            fn slot_mut(&mut self, n: usize) -> Option<&mut usize> {
                match n {
                    $($n => Some(&mut self.$field),)*
                    _ => None,
                }
            }
        }
    };
}

register_slots! {
    1 => ra, 2 => sp, 3 => gp, 4 => tp, 5 => t0, 6 => t1, 7 => t2, 8 => s0,
    9 => s1, 10 => a0, 11 => a1, 12 => a2, 13 => a3, 14 => a4, 15 => a5,
    16 => a6, 17 => a7, 18 => s2, 19 => s3, 20 => s4, 21 => s5, 22 => s6,
    23 => s7, 24 => s8, 25 => s9, 26 => s10, 27 => s11, 28 => t3, 29 => t4,
    30 => t5, 31 => t6,
}

impl Registers for PtRegs {
    #[link_section = "probe_trap_text"]
    fn pc(&self) -> usize {
        self.epc
    }

    #[link_section = "probe_trap_text"]
    fn set_pc(&mut self, pc: usize) {
        self.epc = pc;
    }

    #[link_section = "probe_trap_text"]
    fn sp(&self) -> usize {
        self.sp
    }

    #[link_section = "probe_trap_text"]
    fn set_sp(&mut self, sp: usize) {
        self.sp = sp;
    }

    /// Register `x<n>`; x0 and numbers above 31 read as 0.
    #[link_section = "probe_trap_text"]
    fn gpr(&self, n: usize) -> usize {
        self.slot(n).copied().unwrap_or(0)
    }

    /// Set register `x<n>`; writes to x0 and numbers above 31 are ignored.
    #[link_section = "probe_trap_text"]
    fn set_gpr(&mut self, n: usize, value: usize) {
        if let Some(r) = self.slot_mut(n) {
            *r = value;
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

    /// The `status` image (`sstatus`): riscv has no flags register, and this
    /// is where the interrupted context's interrupt-enable bit (SPIE) lives.
    #[link_section = "probe_trap_text"]
    fn flags(&self) -> usize {
        self.status
    }

    #[link_section = "probe_trap_text"]
    fn set_flags(&mut self, flags: usize) {
        self.status = flags;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn layout_matches_linux_pt_regs() {
        assert_eq!(PT_SIZE, 288);
        assert_eq!(offset_of!(PtRegs, epc), 0);
        assert_eq!(offset_of!(PtRegs, ra), 8);
        assert_eq!(offset_of!(PtRegs, sp), 16);
        assert_eq!(offset_of!(PtRegs, t0), 40);
        assert_eq!(offset_of!(PtRegs, s0), 64);
        assert_eq!(offset_of!(PtRegs, a0), 80);
        assert_eq!(offset_of!(PtRegs, a7), 136);
        assert_eq!(offset_of!(PtRegs, s2), 144);
        assert_eq!(offset_of!(PtRegs, s11), 216);
        assert_eq!(offset_of!(PtRegs, t3), 224);
        assert_eq!(offset_of!(PtRegs, t6), 248);
        assert_eq!(offset_of!(PtRegs, status), 256);
        assert_eq!(offset_of!(PtRegs, badaddr), 264);
        assert_eq!(offset_of!(PtRegs, cause), 272);
        assert_eq!(offset_of!(PtRegs, orig_a0), 280);
    }

    #[test]
    fn register_n_is_the_word_at_offset_8n() {
        for n in 1..32 {
            let mut regs = PtRegs::default();
            regs.set_gpr(n, 0x1000 + n);
            // SAFETY: PtRegs is repr(C) and made of 36 usize fields, so it is
            // exactly an array of 36 usize.
            let words: [usize; 36] = unsafe { core::mem::transmute(regs) };
            for (i, w) in words.iter().enumerate() {
                assert_eq!(*w, if i == n { 0x1000 + n } else { 0 }, "x{n}, word {i}");
            }
            assert_eq!(regs.gpr(n), 0x1000 + n);
        }
    }

    #[test]
    fn x0_and_out_of_range_numbers() {
        let mut regs = PtRegs {
            epc: 0x8000_0000,
            ..PtRegs::default()
        };
        regs.set_gpr(0, 5);
        regs.set_gpr(32, 5);
        assert_eq!(regs.gpr(0), 0);
        assert_eq!(regs.gpr(32), 0);
        assert_eq!(
            regs,
            PtRegs {
                epc: 0x8000_0000,
                ..PtRegs::default()
            }
        );
    }

    #[test]
    fn named_accessors() {
        let mut regs = PtRegs::default();
        regs.set_pc(0x8020_0000);
        regs.set_sp(0x8100_0000);
        regs.set_flags(SSTATUS_SPIE | 0x100);
        for i in 0..8 {
            assert!(regs.set_arg(i, 100 + i));
        }
        assert!(!regs.set_arg(8, 1));
        assert_eq!(regs.arg(8), None);
        assert_eq!((regs.a0, regs.a7), (100, 107));
        assert_eq!(
            (regs.epc, regs.sp, regs.status),
            (0x8020_0000, 0x8100_0000, 0x120)
        );
        regs.set_return_value(0xdead);
        assert_eq!(regs.a0, 0xdead);
        assert_eq!(regs.return_value(), 0xdead);
        assert_eq!(regs.gpr(2), 0x8100_0000);
    }
}
