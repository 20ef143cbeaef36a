//! The Linux x86_64 `pt_regs` trap frame, and the SysV calling convention.

use probe_hal::{CallAbi, Registers};

/// General-register numbers as x86_64 encodes them (ModRM/REX), the numbering
/// of [`Registers::gpr`].
pub mod gpr {
    /// `rax`
    pub const RAX: usize = 0;
    /// `rcx`
    pub const RCX: usize = 1;
    /// `rdx`
    pub const RDX: usize = 2;
    /// `rbx`
    pub const RBX: usize = 3;
    /// `rsp`
    pub const RSP: usize = 4;
    /// `rbp`
    pub const RBP: usize = 5;
    /// `rsi`
    pub const RSI: usize = 6;
    /// `rdi`
    pub const RDI: usize = 7;
    /// `r8`
    pub const R8: usize = 8;
    /// `r9`
    pub const R9: usize = 9;
    /// `r10`
    pub const R10: usize = 10;
    /// `r11`
    pub const R11: usize = 11;
    /// `r12`
    pub const R12: usize = 12;
    /// `r13`
    pub const R13: usize = 13;
    /// `r14`
    pub const R14: usize = 14;
    /// `r15`
    pub const R15: usize = 15;
}

/// Bits of `rflags` the backend reads or writes.
pub mod rflags {
    /// Carry flag.
    pub const CF: usize = 1 << 0;
    /// Always 1 when read.
    pub const RESERVED_ONE: usize = 1 << 1;
    /// Parity flag.
    pub const PF: usize = 1 << 2;
    /// Auxiliary carry flag.
    pub const AF: usize = 1 << 4;
    /// Zero flag.
    pub const ZF: usize = 1 << 6;
    /// Sign flag.
    pub const SF: usize = 1 << 7;
    /// Trap flag (single-step).
    pub const TF: usize = 1 << 8;
    /// Interrupt enable flag.
    pub const IF: usize = 1 << 9;
    /// Direction flag.
    pub const DF: usize = 1 << 10;
    /// Overflow flag.
    pub const OF: usize = 1 << 11;
    /// I/O privilege level (two bits).
    pub const IOPL: usize = 3 << 12;
    /// Nested task.
    pub const NT: usize = 1 << 14;
    /// Resume flag (suppresses instruction breakpoints for one instruction).
    pub const RF: usize = 1 << 16;
    /// Virtual-8086 mode.
    pub const VM: usize = 1 << 17;
    /// Alignment check / SMAP access override.
    pub const AC: usize = 1 << 18;
    /// Virtual interrupt flag.
    pub const VIF: usize = 1 << 19;
    /// Virtual interrupt pending.
    pub const VIP: usize = 1 << 20;
    /// CPUID available.
    pub const ID: usize = 1 << 21;
}

/// The C calling convention of x86_64 (System V AMD64 ABI §3.2.3): integer
/// arguments in rdi, rsi, rdx, rcx, r8, r9; results in rax (and rdx).
pub static CALL_ABI: CallAbi = CallAbi {
    args: &[gpr::RDI, gpr::RSI, gpr::RDX, gpr::RCX, gpr::R8, gpr::R9],
    ret: [gpr::RAX, gpr::RDX],
};

/// The register frame of Linux x86_64 (`struct pt_regs`,
/// arch/x86/include/asm/ptrace.h), field for field, for kernels that have no
/// trap frame of their own. The return trampoline of this crate builds one.
///
/// `orig_rax` is the system-call number on a syscall entry and -1 otherwise;
/// `cs`/`ss` hold selectors; `eflags` is the full `rflags`.
///
/// The layout is ABI (eBPF programs read it at Linux's offsets): the
/// table and the eBPF view ([`with_pt_regs`](crate::with_pt_regs)) are in
/// [`pt_regs_view`](crate::pt_regs_view).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are the registers they are named after
pub struct PtRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl PtRegs {
    /// A frame with every register 0.
    pub const fn zeroed() -> Self {
        Self {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            rbp: 0,
            rbx: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rax: 0,
            rcx: 0,
            rdx: 0,
            rsi: 0,
            rdi: 0,
            orig_rax: 0,
            rip: 0,
            cs: 0,
            eflags: 0,
            rsp: 0,
            ss: 0,
        }
    }

    fn gpr_slot(&mut self, n: usize) -> Option<&mut u64> {
        Some(match n {
            gpr::RAX => &mut self.rax,
            gpr::RCX => &mut self.rcx,
            gpr::RDX => &mut self.rdx,
            gpr::RBX => &mut self.rbx,
            gpr::RSP => &mut self.rsp,
            gpr::RBP => &mut self.rbp,
            gpr::RSI => &mut self.rsi,
            gpr::RDI => &mut self.rdi,
            gpr::R8 => &mut self.r8,
            gpr::R9 => &mut self.r9,
            gpr::R10 => &mut self.r10,
            gpr::R11 => &mut self.r11,
            gpr::R12 => &mut self.r12,
            gpr::R13 => &mut self.r13,
            gpr::R14 => &mut self.r14,
            gpr::R15 => &mut self.r15,
            _ => return None,
        })
    }
}

impl Registers for PtRegs {
    #[link_section = "probe_trap_text"]
    fn pc(&self) -> usize {
        self.rip as usize
    }
    #[link_section = "probe_trap_text"]
    fn set_pc(&mut self, pc: usize) {
        self.rip = pc as u64;
    }
    #[link_section = "probe_trap_text"]
    fn sp(&self) -> usize {
        self.rsp as usize
    }
    #[link_section = "probe_trap_text"]
    fn set_sp(&mut self, sp: usize) {
        self.rsp = sp as u64;
    }
    /// Register `n` as numbered by the encoding (0 = rax … 15 = r15); 0 for
    /// any other `n`.
    #[link_section = "probe_trap_text"]
    fn gpr(&self, n: usize) -> usize {
        let v = match n {
            gpr::RAX => self.rax,
            gpr::RCX => self.rcx,
            gpr::RDX => self.rdx,
            gpr::RBX => self.rbx,
            gpr::RSP => self.rsp,
            gpr::RBP => self.rbp,
            gpr::RSI => self.rsi,
            gpr::RDI => self.rdi,
            gpr::R8 => self.r8,
            gpr::R9 => self.r9,
            gpr::R10 => self.r10,
            gpr::R11 => self.r11,
            gpr::R12 => self.r12,
            gpr::R13 => self.r13,
            gpr::R14 => self.r14,
            gpr::R15 => self.r15,
            _ => 0,
        };
        v as usize
    }
    /// Set register `n` (0 = rax … 15 = r15); other `n` are ignored.
    #[link_section = "probe_trap_text"]
    fn set_gpr(&mut self, n: usize, value: usize) {
        if let Some(slot) = self.gpr_slot(n) {
            *slot = value as u64;
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
    #[link_section = "probe_trap_text"]
    fn flags(&self) -> usize {
        self.eflags as usize
    }
    #[link_section = "probe_trap_text"]
    fn set_flags(&mut self, flags: usize) {
        self.eflags = flags as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout_is_linux_pt_regs() {
        assert_eq!(size_of::<PtRegs>(), 21 * 8);
        assert_eq!(offset_of!(PtRegs, r15), 0);
        assert_eq!(offset_of!(PtRegs, rbp), 4 * 8);
        assert_eq!(offset_of!(PtRegs, r11), 6 * 8);
        assert_eq!(offset_of!(PtRegs, rax), 10 * 8);
        assert_eq!(offset_of!(PtRegs, rdi), 14 * 8);
        assert_eq!(offset_of!(PtRegs, orig_rax), 15 * 8);
        assert_eq!(offset_of!(PtRegs, rip), 16 * 8);
        assert_eq!(offset_of!(PtRegs, cs), 17 * 8);
        assert_eq!(offset_of!(PtRegs, eflags), 18 * 8);
        assert_eq!(offset_of!(PtRegs, rsp), 19 * 8);
        assert_eq!(offset_of!(PtRegs, ss), 20 * 8);
    }

    #[test]
    fn gpr_numbers_follow_the_encoding() {
        let mut r = PtRegs::zeroed();
        for n in 0..16 {
            r.set_gpr(n, 0x100 + n);
        }
        assert_eq!(r.rax, 0x100);
        assert_eq!(r.rcx, 0x101);
        assert_eq!(r.rdx, 0x102);
        assert_eq!(r.rbx, 0x103);
        assert_eq!(r.rsp, 0x104);
        assert_eq!(r.rbp, 0x105);
        assert_eq!(r.rsi, 0x106);
        assert_eq!(r.rdi, 0x107);
        assert_eq!(r.r8, 0x108);
        assert_eq!(r.r15, 0x10f);
        assert_eq!(r.sp(), 0x104);
        assert_eq!(r.gpr(11), 0x10b);
        // Out-of-range numbers read 0 and are not written anywhere.
        let before = r;
        r.set_gpr(16, 7);
        assert_eq!(r, before);
        assert_eq!(r.gpr(16), 0);
    }

    #[test]
    fn sysv_arguments_and_return_value() {
        let r = PtRegs {
            rdi: 1,
            rsi: 2,
            rdx: 3,
            rcx: 4,
            r8: 5,
            r9: 6,
            rax: 42,
            ..PtRegs::zeroed()
        };
        let args: [Option<usize>; 7] = core::array::from_fn(|i| r.arg(i));
        assert_eq!(
            args,
            [Some(1), Some(2), Some(3), Some(4), Some(5), Some(6), None]
        );
        assert_eq!(r.return_value(), 42);
        let mut r = r;
        r.set_return_value(7);
        assert_eq!(r.rax, 7);
        r.set_flags(rflags::IF | rflags::RESERVED_ONE);
        assert_eq!(r.eflags, 0x202);
        r.set_pc(0xffff_8000_0000_1000);
        assert_eq!(r.rip, 0xffff_8000_0000_1000);
    }
}
