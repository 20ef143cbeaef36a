//! The breakpoint encodings (unprivileged manual §2.8 EBREAK, §16.5
//! C.EBREAK).

use probe_hal::Breakpoint;

/// `ebreak`, 32 bits.
pub const EBREAK: u32 = 0x0010_0073;
/// `c.ebreak`, 16 bits.
pub const C_EBREAK: u16 = 0x9002;

/// `ebreak` as a breakpoint: written over 32-bit instructions, ends every
/// out-of-line slot and serves as the user-mode return trampoline.
pub const EBREAK_BREAKPOINT: Breakpoint = Breakpoint::new(&EBREAK.to_le_bytes());
/// `c.ebreak` as a breakpoint: written over 16-bit instructions, so the
/// following instruction stays intact.
pub const C_EBREAK_BREAKPOINT: Breakpoint = Breakpoint::new(&C_EBREAK.to_le_bytes());

/// The probe breakpoint for an instruction of `insn_len` bytes: as long as
/// the instruction it replaces.
pub const fn probe_breakpoint(insn_len: usize) -> Breakpoint {
    if insn_len == 2 {
        C_EBREAK_BREAKPOINT
    } else {
        EBREAK_BREAKPOINT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(probe_breakpoint(2).as_bytes(), &[0x02, 0x90]);
        assert_eq!(probe_breakpoint(4).as_bytes(), &[0x73, 0x00, 0x10, 0x00]);
    }
}
