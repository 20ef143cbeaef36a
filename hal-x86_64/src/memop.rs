//! The memory operand of a simulated `call [mem]` / `jmp [mem]` (ff /2,
//! ff /4): read from the raw ModRM, SIB and displacement bytes, and its
//! effective address computed from the trap frame.
//!
//! The operand is parsed here from the encoding rather than taken from the
//! decoder's operand, so the address the simulation reads is decided by
//! the few lines below (Intel SDM Vol. 2, §2.1.5 and §2.2.1, Tables 2-2
//! and 2-3 as read in 64-bit mode), and checked against iced-x86's own
//! effective-address computation by the differential harness.
//!
//! 64-bit mode rules applied:
//! - ModRM `mod = 00, rm = 101` is `[rip + disp32]` (`[eip + disp32]`
//!   with 0x67), not an absolute disp32;
//! - SIB `base = 101` with `mod = 00` has no base and a disp32;
//! - SIB `index = 100` without REX.X has no index (`r12` with it);
//! - REX.B extends the base, REX.X the index; REX counts only when it is
//!   the byte right before the opcode;
//! - 0x67 (address size 32): the registers' low halves are used and the
//!   sum is truncated to 32 bits, zero-extended;
//! - segment overrides other than fs/gs have base 0 (the caller refuses
//!   fs/gs, whose bases are not in the trap frame).

use probe_hal::Registers;

/// The base of a memory operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// No base register (SIB with `base = 101`, `mod = 00`).
    None,
    /// A general register (0 = rax … 15 = r15).
    Reg(u8),
    /// `rip` (`eip` with 0x67): the address of the next instruction.
    Rip,
}

/// A memory operand `[base + index * scale + disp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemOperand {
    /// The base.
    pub base: Base,
    /// The index register (0 = rax … 15 = r15), if any.
    pub index: Option<u8>,
    /// The index's scale: 1, 2, 4 or 8.
    pub scale: u8,
    /// The sign-extended displacement.
    pub disp: i32,
    /// 0x67 prefix: 32-bit address size (the sum truncated to 32 bits).
    pub addr32: bool,
}

impl MemOperand {
    /// The effective address in `regs` of an instruction whose next
    /// instruction starts at `next` (the *original* instruction's, for a
    /// rip-relative operand).
    #[link_section = "probe_trap_text"]
    pub fn address<R: Registers + ?Sized>(&self, regs: &R, next: usize) -> usize {
        let mut ea = self.disp as isize as usize;
        match self.base {
            Base::None => {}
            Base::Reg(r) => ea = ea.wrapping_add(regs.gpr(r as usize)),
            Base::Rip => ea = ea.wrapping_add(next),
        }
        if let Some(i) = self.index {
            ea = ea.wrapping_add(regs.gpr(i as usize).wrapping_mul(self.scale as usize));
        }
        if self.addr32 {
            ea as u32 as usize
        } else {
            ea
        }
    }
}

/// Legacy prefixes and REX before the opcode at `opcode_at`: whether an fs
/// or gs override is among them.
pub(crate) fn has_fs_gs(bytes: &[u8], opcode_at: usize) -> bool {
    bytes[..opcode_at.min(bytes.len())]
        .iter()
        .any(|&b| b == 0x64 || b == 0x65)
}

/// The memory operand of a one-byte-map instruction whose opcode byte is at
/// `opcode_at` and is followed by a ModRM with `mod != 11`. `None` when the
/// bytes end early or ModRM encodes a register.
pub(crate) fn parse(bytes: &[u8], opcode_at: usize) -> Option<MemOperand> {
    let prefixes = bytes.get(..opcode_at)?;
    let addr32 = prefixes.contains(&0x67);
    let rex = match prefixes.last() {
        Some(&b @ 0x40..=0x4f) => b,
        _ => 0,
    };
    let (rex_b, rex_x) = ((rex & 1) << 3, ((rex >> 1) & 1) << 3);
    let modrm = *bytes.get(opcode_at + 1)?;
    let (md, rm) = (modrm >> 6, modrm & 7);
    if md == 3 {
        return None;
    }
    let mut at = opcode_at + 2;
    let mut index = None;
    let mut scale = 1;
    let base = if rm == 4 {
        let sib = *bytes.get(at)?;
        at += 1;
        scale = 1 << (sib >> 6);
        let i = ((sib >> 3) & 7) | rex_x;
        if i != 4 {
            index = Some(i);
        }
        if sib & 7 == 5 && md == 0 {
            Base::None
        } else {
            Base::Reg((sib & 7) | rex_b)
        }
    } else if rm == 5 && md == 0 {
        Base::Rip
    } else {
        Base::Reg(rm | rex_b)
    };
    let disp32 = md == 2 || (md == 0 && matches!(base, Base::None | Base::Rip));
    let disp = if disp32 {
        i32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?)
    } else if md == 1 {
        *bytes.get(at)? as i8 as i32
    } else {
        0
    };
    Some(MemOperand {
        base,
        index,
        scale,
        disp,
        addr32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regs::PtRegs;

    fn op(bytes: &[u8]) -> MemOperand {
        let at = bytes.iter().position(|&b| b == 0xff).unwrap();
        parse(bytes, at).unwrap_or_else(|| panic!("{bytes:02x?}"))
    }

    fn m(base: Base, index: Option<u8>, scale: u8, disp: i32, addr32: bool) -> MemOperand {
        MemOperand {
            base,
            index,
            scale,
            disp,
            addr32,
        }
    }

    #[test]
    fn every_modrm_and_sib_form() {
        use Base::{None as NoBase, Reg, Rip};
        // call [rax], [rcx + 8], [rdx + 0x12345678]
        assert_eq!(op(&[0xff, 0x10]), m(Reg(0), None, 1, 0, false));
        assert_eq!(op(&[0xff, 0x51, 0x08]), m(Reg(1), None, 1, 8, false));
        assert_eq!(op(&[0xff, 0x51, 0xf8]), m(Reg(1), None, 1, -8, false));
        assert_eq!(
            op(&[0xff, 0x92, 0x78, 0x56, 0x34, 0x12]),
            m(Reg(2), None, 1, 0x1234_5678, false)
        );
        // rip-relative: call [rip + 0x10], jmp [rip - 4]
        assert_eq!(
            op(&[0xff, 0x15, 0x10, 0, 0, 0]),
            m(Rip, None, 1, 0x10, false)
        );
        assert_eq!(
            op(&[0xff, 0x25, 0xfc, 0xff, 0xff, 0xff]),
            m(Rip, None, 1, -4, false)
        );
        // mod 01/10 with rm 101 is [rbp + disp], not rip.
        assert_eq!(op(&[0xff, 0x55, 0x00]), m(Reg(5), None, 1, 0, false));
        assert_eq!(
            op(&[0x41, 0xff, 0x55, 0x10]),
            m(Reg(13), None, 1, 0x10, false)
        );
        // SIB: [rsp], [r12] (REX.B), [rax + rcx*8], [rbx + r9*4 + 0x20]
        assert_eq!(op(&[0xff, 0x14, 0x24]), m(Reg(4), None, 1, 0, false));
        assert_eq!(op(&[0x41, 0xff, 0x14, 0x24]), m(Reg(12), None, 1, 0, false));
        assert_eq!(op(&[0xff, 0x14, 0xc8]), m(Reg(0), Some(1), 8, 0, false));
        assert_eq!(
            op(&[0x42, 0xff, 0x54, 0x8b, 0x20]),
            m(Reg(3), Some(9), 4, 0x20, false)
        );
        // SIB index 100 with REX.X is r12, without it no index.
        assert_eq!(
            op(&[0x42, 0xff, 0x14, 0x60]),
            m(Reg(0), Some(12), 2, 0, false)
        );
        assert_eq!(op(&[0xff, 0x14, 0x60]), m(Reg(0), None, 2, 0, false));
        // SIB with no base: jmp [rcx*8 + disp32] (a jump table), and [disp32].
        assert_eq!(
            op(&[0xff, 0x24, 0xcd, 0x00, 0x10, 0x20, 0x00]),
            m(NoBase, Some(1), 8, 0x0020_1000, false)
        );
        assert_eq!(
            op(&[0xff, 0x24, 0x25, 0x00, 0x10, 0, 0]),
            m(NoBase, None, 1, 0x1000, false)
        );
        // SIB base 101 with mod 01 is rbp (r13 with REX.B).
        assert_eq!(
            op(&[0xff, 0x54, 0xc5, 0x08]),
            m(Reg(5), Some(0), 8, 8, false)
        );
        assert_eq!(
            op(&[0x43, 0xff, 0x54, 0xed, 0x08]),
            m(Reg(13), Some(13), 8, 8, false)
        );
        // 0x67: 32-bit address size, rip becomes eip.
        assert_eq!(op(&[0x67, 0xff, 0x10]), m(Reg(0), None, 1, 0, true));
        assert_eq!(
            op(&[0x67, 0xff, 0x15, 0x10, 0, 0, 0]),
            m(Rip, None, 1, 0x10, true)
        );
        // REX not right before the opcode is ignored.
        assert_eq!(op(&[0x41, 0x3e, 0xff, 0x10]), m(Reg(0), None, 1, 0, false));
        // REX.W changes nothing.
        assert_eq!(op(&[0x48, 0xff, 0x10]), m(Reg(0), None, 1, 0, false));
    }

    #[test]
    fn register_forms_and_short_bytes_are_not_memory() {
        assert_eq!(parse(&[0xff, 0xd0], 0), None);
        assert_eq!(parse(&[0xff, 0x15, 0x10, 0], 0), None);
        assert_eq!(parse(&[0xff, 0x14], 0), None);
        assert_eq!(parse(&[0xff, 0x51], 0), None);
        assert_eq!(parse(&[0xff], 0), None);
    }

    #[test]
    fn segment_overrides() {
        assert!(has_fs_gs(&[0x64, 0xff, 0x10], 1));
        assert!(has_fs_gs(&[0x65, 0x41, 0xff, 0x10], 2));
        assert!(!has_fs_gs(&[0x3e, 0x2e, 0x26, 0x36, 0xff, 0x10], 4));
    }

    #[test]
    fn effective_addresses() {
        let r = PtRegs {
            rax: 0x1000,
            rcx: 3,
            rsp: 0x7ff0,
            r12: 0xffff_ffff_ffff_fff0,
            r13: 0x1_0000_0010,
            ..PtRegs::zeroed()
        };
        let next = 0xffff_ffff_8100_0006;
        let ea = |mo: MemOperand| mo.address(&r, next);
        assert_eq!(ea(m(Base::Reg(0), Some(1), 8, 8, false)), 0x1000 + 24 + 8);
        assert_eq!(ea(m(Base::Reg(4), None, 1, 8, false)), 0x7ff8);
        assert_eq!(ea(m(Base::None, Some(1), 8, 0x20_1000, false)), 0x20_1018);
        assert_eq!(ea(m(Base::None, Some(1), 8, -0x10, false)), 8);
        assert_eq!(ea(m(Base::Rip, None, 1, -6, false)), next - 6);
        // Wrapping at the top of the address space.
        assert_eq!(ea(m(Base::Reg(12), None, 1, 0x20, false)), 0x10);
        // 0x67: truncated to 32 bits (registers' high halves drop out).
        assert_eq!(ea(m(Base::Reg(13), None, 1, 0, true)), 0x10);
        assert_eq!(ea(m(Base::Reg(12), None, 1, 0x20, true)), 0x10);
        assert_eq!(ea(m(Base::Rip, None, 1, 0x10, true)), 0x8100_0016);
        assert_eq!(ea(m(Base::None, None, 1, -1, true)), 0xffff_ffff);
    }
}
