//! Emulation of the pc-reading and pc-writing instructions on a trap frame.
//!
//! Semantics from the LoongArch Reference Manual vol. 1 §2.2 (branches:
//! targets are `pc + SignExtend(offs << 2)`, `jirl` jumps to
//! `GR[rj] + SignExtend(offs16 << 2)` and links `pc + 4` into `rd`, `bl`
//! links into `r1`; and the arithmetic `pcaddi`, `pcaddu12i`, `pcaddu18i`,
//! `pcalau12i`). Writes to `r0` are discarded by [`Registers::set_gpr`].
//! Linux does the same in `arch/loongarch/kernel/inst.c` (`simu_branch`,
//! `simu_pc`).

use probe_hal::Registers;

use crate::decode::{offs16, offs21, offs26, rd, rj, si20, Simulated};
use crate::regs::RA;

/// Size of every LoongArch instruction.
const INSN_LEN: usize = 4;

/// Emulate `op` (instruction word `word`, located at `addr`) on `regs`,
/// leaving the pc where execution continues.
pub fn simulate<R: Registers + ?Sized>(op: Simulated, word: u32, addr: usize, regs: &mut R) {
    let next = addr.wrapping_add(INSN_LEN);
    let rel = |offset: i64| addr.wrapping_add_signed(offset as isize);
    let pc = match op {
        Simulated::B => rel(offs26(word) << 2),
        Simulated::Bl => {
            regs.set_gpr(RA, next);
            rel(offs26(word) << 2)
        }
        Simulated::Beqz | Simulated::Bnez => {
            let zero = regs.gpr(rj(word)) == 0;
            if zero == (op == Simulated::Beqz) {
                rel(offs21(word) << 2)
            } else {
                next
            }
        }
        Simulated::Beq
        | Simulated::Bne
        | Simulated::Blt
        | Simulated::Bge
        | Simulated::Bltu
        | Simulated::Bgeu => {
            let (j, d) = (regs.gpr(rj(word)), regs.gpr(rd(word)));
            let taken = match op {
                Simulated::Beq => j == d,
                Simulated::Bne => j != d,
                Simulated::Blt => (j as isize) < (d as isize),
                Simulated::Bge => (j as isize) >= (d as isize),
                Simulated::Bltu => j < d,
                _ => j >= d, // Bgeu
            };
            if taken {
                rel(offs16(word) << 2)
            } else {
                next
            }
        }
        Simulated::Jirl => {
            // Read rj before linking: rd may be the same register.
            let target = regs
                .gpr(rj(word))
                .wrapping_add_signed((offs16(word) << 2) as isize);
            regs.set_gpr(rd(word), next);
            target
        }
        Simulated::Pcaddi => {
            regs.set_gpr(rd(word), rel(si20(word) << 2));
            next
        }
        Simulated::Pcaddu12i => {
            regs.set_gpr(rd(word), rel(si20(word) << 12));
            next
        }
        Simulated::Pcaddu18i => {
            regs.set_gpr(rd(word), rel(si20(word) << 18));
            next
        }
        Simulated::Pcalau12i => {
            regs.set_gpr(rd(word), rel(si20(word) << 12) & !0xfff);
            next
        }
    };
    regs.set_pc(pc);
}
