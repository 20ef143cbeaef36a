//! Trap frames as Linux hands them to user space, seen through
//! `probe_hal::Registers`:
//! - [`SignalFrame`]: the `ucontext_t` a `SA_SIGINFO` handler receives,
//!   edited in place (what the handler changes is what `sigreturn` restores);
//! - [`from_user_regs`] / [`to_user_regs`]: a traced child's registers
//!   (`PTRACE_GETREGS`) as a [`PtRegs`] and back.

use core::ffi::c_void;

use libc::{c_int, greg_t, ucontext_t, user_regs_struct};
use probe_hal::{CallAbi, Registers};
use probe_hal_x86_64::{PtRegs, CALL_ABI};

/// `gregs` index of each general register, in encoding order (0 = rax …
/// 15 = r15, the numbering of [`Registers::gpr`]).
const GREG_OF: [c_int; 16] = [
    libc::REG_RAX,
    libc::REG_RCX,
    libc::REG_RDX,
    libc::REG_RBX,
    libc::REG_RSP,
    libc::REG_RBP,
    libc::REG_RSI,
    libc::REG_RDI,
    libc::REG_R8,
    libc::REG_R9,
    libc::REG_R10,
    libc::REG_R11,
    libc::REG_R12,
    libc::REG_R13,
    libc::REG_R14,
    libc::REG_R15,
];

/// The registers saved in a signal frame, read and written in place.
pub struct SignalFrame<'a> {
    gregs: &'a mut [greg_t; 23],
}

impl SignalFrame<'_> {
    /// The frame of the signal being handled.
    ///
    /// # Safety
    /// `ctx` is the third argument of a running `SA_SIGINFO` handler (a
    /// `ucontext_t` on the handler's stack), and no other reference to it
    /// is alive while the frame is.
    #[link_section = "probe_trap_text"]
    #[inline]
    pub unsafe fn from_context<'a>(ctx: *mut c_void) -> SignalFrame<'a> {
        // SAFETY: the caller guarantees `ctx` is the handler's ucontext and
        // that this is the only reference to it.
        let uc = unsafe { &mut *(ctx as *mut ucontext_t) };
        SignalFrame {
            gregs: &mut uc.uc_mcontext.gregs,
        }
    }

    #[link_section = "probe_trap_text"]
    #[inline]
    fn get(&self, reg: c_int) -> usize {
        self.gregs[reg as usize] as usize
    }

    #[link_section = "probe_trap_text"]
    #[inline]
    fn set(&mut self, reg: c_int, value: usize) {
        self.gregs[reg as usize] = value as greg_t;
    }
}

impl Registers for SignalFrame<'_> {
    #[link_section = "probe_trap_text"]
    #[inline]
    fn pc(&self) -> usize {
        self.get(libc::REG_RIP)
    }
    #[link_section = "probe_trap_text"]
    #[inline]
    fn set_pc(&mut self, pc: usize) {
        self.set(libc::REG_RIP, pc)
    }
    #[link_section = "probe_trap_text"]
    #[inline]
    fn sp(&self) -> usize {
        self.get(libc::REG_RSP)
    }
    #[link_section = "probe_trap_text"]
    #[inline]
    fn set_sp(&mut self, sp: usize) {
        self.set(libc::REG_RSP, sp)
    }
    #[link_section = "probe_trap_text"]
    #[inline]
    fn gpr(&self, n: usize) -> usize {
        GREG_OF.get(n).map_or(0, |&r| self.get(r))
    }
    #[link_section = "probe_trap_text"]
    #[inline]
    fn set_gpr(&mut self, n: usize, value: usize) {
        if let Some(&r) = GREG_OF.get(n) {
            self.set(r, value)
        }
    }
    #[link_section = "probe_trap_text"]
    #[inline]
    fn call_abi(&self) -> &'static CallAbi {
        &CALL_ABI
    }
    #[link_section = "probe_trap_text"]
    #[inline]
    fn flags(&self) -> usize {
        self.get(libc::REG_EFL)
    }
    #[link_section = "probe_trap_text"]
    #[inline]
    fn set_flags(&mut self, flags: usize) {
        self.set(libc::REG_EFL, flags)
    }
}

/// A traced child's registers as a Linux `pt_regs` (the first 21 fields of
/// `user_regs_struct` are `pt_regs`, in the same order).
pub fn from_user_regs(u: &user_regs_struct) -> PtRegs {
    PtRegs {
        r15: u.r15,
        r14: u.r14,
        r13: u.r13,
        r12: u.r12,
        rbp: u.rbp,
        rbx: u.rbx,
        r11: u.r11,
        r10: u.r10,
        r9: u.r9,
        r8: u.r8,
        rax: u.rax,
        rcx: u.rcx,
        rdx: u.rdx,
        rsi: u.rsi,
        rdi: u.rdi,
        orig_rax: u.orig_rax,
        rip: u.rip,
        cs: u.cs,
        eflags: u.eflags,
        rsp: u.rsp,
        ss: u.ss,
    }
}

/// Write `p` back into `u`, keeping the segment bases and selectors that
/// `pt_regs` does not hold.
pub fn to_user_regs(p: &PtRegs, u: &mut user_regs_struct) {
    u.r15 = p.r15;
    u.r14 = p.r14;
    u.r13 = p.r13;
    u.r12 = p.r12;
    u.rbp = p.rbp;
    u.rbx = p.rbx;
    u.r11 = p.r11;
    u.r10 = p.r10;
    u.r9 = p.r9;
    u.r8 = p.r8;
    u.rax = p.rax;
    u.rcx = p.rcx;
    u.rdx = p.rdx;
    u.rsi = p.rsi;
    u.rdi = p.rdi;
    u.orig_rax = p.orig_rax;
    u.rip = p.rip;
    u.cs = p.cs;
    u.eflags = p.eflags;
    u.rsp = p.rsp;
    u.ss = p.ss;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_frame_maps_encoding_numbers_to_gregs() {
        // SAFETY: an all-zero ucontext_t is a valid value of this plain C struct.
        let mut uc: ucontext_t = unsafe { core::mem::zeroed() };
        {
            // SAFETY: `uc` is a live ucontext_t and the frame is the only
            // reference to it while it exists.
            let mut f = unsafe { SignalFrame::from_context(&mut uc as *mut _ as *mut c_void) };
            for n in 0..16 {
                f.set_gpr(n, 0x100 + n);
            }
            f.set_pc(0x4000);
            f.set_flags(0x246);
            assert_eq!(f.arg(0), Some(0x107));
            assert_eq!(f.sp(), 0x104);
        }
        let g = uc.uc_mcontext.gregs;
        assert_eq!(g[libc::REG_RAX as usize], 0x100);
        assert_eq!(g[libc::REG_RSP as usize], 0x104);
        assert_eq!(g[libc::REG_RDI as usize], 0x107);
        assert_eq!(g[libc::REG_R15 as usize], 0x10f);
        assert_eq!(g[libc::REG_RIP as usize], 0x4000);
        assert_eq!(g[libc::REG_EFL as usize], 0x246);
    }

    #[test]
    fn user_regs_round_trip_keeps_segment_bases() {
        // SAFETY: an all-zero user_regs_struct is a valid value.
        let mut u: user_regs_struct = unsafe { core::mem::zeroed() };
        u.rdi = 7;
        u.rip = 0x1000;
        u.fs_base = 0xdead_0000;
        let mut p = from_user_regs(&u);
        assert_eq!((p.rdi, p.rip), (7, 0x1000));
        p.rip = 0x2000;
        p.rax = 9;
        to_user_regs(&p, &mut u);
        assert_eq!((u.rip, u.rax, u.fs_base), (0x2000, 9, 0xdead_0000));
    }
}
