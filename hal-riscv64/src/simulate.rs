//! Emulation of the instructions that read or write the pc, on the trap
//! frame (the semantics of chapter 2 of the unprivileged manual, as Linux's
//! arch/riscv/kernel/probes/simulate-insn.c applies them).
//!
//! All address arithmetic wraps (the hardware computes modulo 2^64); a
//! write to x0 is discarded by [`Registers::set_gpr`].

use probe_hal::Registers;

use crate::decode::{Cond, Flow};

/// Execute `flow`, an instruction of `len` bytes at `addr`, on `regs`:
/// update the destination register and leave the pc where execution goes
/// next. Never touches memory.
pub fn simulate<R: Registers + ?Sized>(flow: Flow, addr: usize, len: usize, regs: &mut R) {
    let next = addr.wrapping_add(len);
    match flow {
        Flow::Jal { rd, offset } => {
            regs.set_gpr(usize::from(rd), next);
            regs.set_pc(addr.wrapping_add_signed(offset as isize));
        }
        Flow::Jalr { rd, rs1, offset } => {
            // Read rs1 before writing rd: `jalr ra, 0(ra)` uses the old ra.
            let target = regs
                .gpr(usize::from(rs1))
                .wrapping_add_signed(offset as isize)
                & !1;
            regs.set_gpr(usize::from(rd), next);
            regs.set_pc(target);
        }
        Flow::Auipc { rd, offset } => {
            regs.set_gpr(usize::from(rd), addr.wrapping_add_signed(offset as isize));
            regs.set_pc(next);
        }
        Flow::Branch {
            cond,
            rs1,
            rs2,
            offset,
        } => {
            let a = regs.gpr(usize::from(rs1));
            let b = regs.gpr(usize::from(rs2));
            let taken = match cond {
                Cond::Eq => a == b,
                Cond::Ne => a != b,
                Cond::Lt => (a as isize) < (b as isize),
                Cond::Ge => (a as isize) >= (b as isize),
                Cond::Ltu => a < b,
                Cond::Geu => a >= b,
            };
            regs.set_pc(if taken {
                addr.wrapping_add_signed(offset as isize)
            } else {
                next
            });
        }
    }
}
