//! Emulation of the pc-reading and pc-writing instructions on a trap frame.
//!
//! Semantics from the Arm ARM (DDI 0487) C6.2 instruction descriptions
//! (`B`, `BL`, `B.cond`, `BC.cond`, `CBZ`, `CBNZ`, `TBZ`, `TBNZ`, `BR`,
//! `BLR`, `RET`, `ADR`, `ADRP`, `LDR (literal)`, `LDRSW (literal)`,
//! `PRFM (literal)`) and the condition tests of C1.2.4 (`ConditionHolds`),
//! as Linux does in `arch/arm64/kernel/probes/simulate-insn.c`. Register 31
//! is the zero register in every one of these encodings, which
//! [`Registers::gpr`]/[`Registers::set_gpr`] give for 31.
//!
//! Literal loads read memory through [`DataAccess`] only, never by a plain
//! load: for a uprobe that is the probed task's address space (Linux
//! removed its uprobe LDR-literal simulation because it dereferenced user
//! addresses directly). A load that fails leaves the frame untouched and
//! returns the fault, which the engine reports to the kernel.
//!
//! BTYPE: every simulated instruction leaves `SPSR.BTYPE` as the
//! architecture would after it (Arm ARM D8.4): `blr` sets 0b10, `br` sets
//! 0b01, everything else (including `ret`) 0b00. Linux's simulation leaves
//! BTYPE alone; clearing it matters because the `brk` trap saved the BTYPE
//! of the branch that reached the probe, which must not leak to the
//! instruction after it. A `br` through a register other than `x16`/`x17`
//! from a *guarded* page sets 0b11 on hardware; the backend cannot tell
//! whether the probed page is guarded and sets 0b01, which every landing
//! pad accepts: a branch target violation there goes undetected, but no
//! correct program faults.

use probe_hal::{DataAccess, MemoryFault, Registers};

use crate::decode::{adr_imm, cond, imm14, imm19, imm26, rn, rt, sf, test_bit, Simulated};
use crate::regs::{LR, PSR_BTYPE_MASK, PSR_BTYPE_SHIFT};

/// Size of every A64 instruction.
const INSN_LEN: usize = 4;

/// Whether condition `cond` (0..=15) holds for the NZCV flags in bits
/// \[31:28\] of `pstate` (Arm ARM C1.2.4 `ConditionHolds`).
pub fn condition_holds(cond: u32, pstate: usize) -> bool {
    let n = pstate >> 31 & 1 != 0;
    let z = pstate >> 30 & 1 != 0;
    let c = pstate >> 29 & 1 != 0;
    let v = pstate >> 28 & 1 != 0;
    let base = match cond >> 1 {
        0 => z,            // eq / ne
        1 => c,            // cs / cc
        2 => n,            // mi / pl
        3 => v,            // vs / vc
        4 => c && !z,      // hi / ls
        5 => n == v,       // ge / lt
        6 => n == v && !z, // gt / le
        _ => true,         // al / nv
    };
    if cond & 1 == 1 && cond != 0xf {
        !base
    } else {
        base
    }
}

fn set_btype<R: Registers + ?Sized>(regs: &mut R, btype: usize) {
    let pstate = regs.flags();
    regs.set_flags((pstate & !PSR_BTYPE_MASK) | (btype << PSR_BTYPE_SHIFT));
}

fn read_u32(mem: &dyn DataAccess, addr: usize) -> Result<u32, MemoryFault> {
    let mut b = [0u8; 4];
    mem.read(addr, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(mem: &dyn DataAccess, addr: usize) -> Result<u64, MemoryFault> {
    let mut b = [0u8; 8];
    mem.read(addr, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Emulate `op` (instruction word `word`, located at `addr`) on `regs`,
/// leaving the pc where execution continues. On a fault of a literal load
/// nothing is changed.
pub fn simulate<R: Registers + ?Sized>(
    op: Simulated,
    word: u32,
    addr: usize,
    regs: &mut R,
    mem: &dyn DataAccess,
) -> Result<(), MemoryFault> {
    let next = addr.wrapping_add(INSN_LEN);
    let rel = |offset: i64| addr.wrapping_add_signed(offset as isize);
    let mut btype = 0;
    let pc = match op {
        Simulated::B => rel(imm26(word)),
        Simulated::Bl => {
            regs.set_gpr(LR, next);
            rel(imm26(word))
        }
        Simulated::BCond => {
            if condition_holds(cond(word), regs.flags()) {
                rel(imm19(word))
            } else {
                next
            }
        }
        Simulated::Cbz | Simulated::Cbnz => {
            let mut v = regs.gpr(rt(word));
            if !sf(word) {
                v &= 0xffff_ffff;
            }
            if (v == 0) == (op == Simulated::Cbz) {
                rel(imm19(word))
            } else {
                next
            }
        }
        Simulated::Tbz | Simulated::Tbnz => {
            let set = regs.gpr(rt(word)) >> test_bit(word) & 1 != 0;
            if set == (op == Simulated::Tbnz) {
                rel(imm14(word))
            } else {
                next
            }
        }
        Simulated::Br => {
            btype = 0b01;
            regs.gpr(rn(word))
        }
        Simulated::Blr => {
            // Read the target before linking: `blr x30` jumps to the old x30.
            let target = regs.gpr(rn(word));
            regs.set_gpr(LR, next);
            btype = 0b10;
            target
        }
        Simulated::Ret => regs.gpr(rn(word)),
        Simulated::Adr => {
            regs.set_gpr(rt(word), rel(adr_imm(word)));
            next
        }
        Simulated::Adrp => {
            let page = (addr & !0xfff).wrapping_add_signed((adr_imm(word) << 12) as isize);
            regs.set_gpr(rt(word), page);
            next
        }
        Simulated::LdrLit32 => {
            let v = read_u32(mem, rel(imm19(word)))?;
            regs.set_gpr(rt(word), v as usize);
            next
        }
        Simulated::LdrLit64 => {
            let v = read_u64(mem, rel(imm19(word)))?;
            regs.set_gpr(rt(word), v as usize);
            next
        }
        Simulated::LdrswLit => {
            let v = read_u32(mem, rel(imm19(word)))?;
            regs.set_gpr(rt(word), v as i32 as isize as usize);
            next
        }
        Simulated::PrfmLit => next,
    };
    set_btype(regs, btype);
    regs.set_pc(pc);
    Ok(())
}
