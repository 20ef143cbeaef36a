//! Register names for `%REG` fetch arguments of probe events.
//!
//! Each instruction set spells its registers as Linux's
//! `regs_query_register_offset` does (`arch/*/kernel/ptrace.c`). The names are
//! a small trait rather than a table chosen by `cfg(target_arch)`: every hal
//! crate ships the impl of its instruction set (`probe_hal_x86_64::RegNames`,
//! `probe_hal_riscv64::RegNames`, …), and a custom instruction set writes its
//! own. [`lookup_table`] and [`numbered`] are the two helpers those tables are
//! built from.

use crate::Registers;

/// What a register name designates in a [`Registers`] frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegRef {
    /// General register `n` ([`Registers::gpr`]).
    Gpr(u8),
    /// The program counter ([`Registers::pc`]).
    Pc,
    /// The stack pointer ([`Registers::sp`]).
    Sp,
    /// The flags word ([`Registers::flags`]).
    Flags,
}

impl RegRef {
    /// Read this register from a frame.
    pub fn read(self, regs: &dyn Registers) -> usize {
        match self {
            RegRef::Gpr(n) => regs.gpr(n as usize),
            RegRef::Pc => regs.pc(),
            RegRef::Sp => regs.sp(),
            RegRef::Flags => regs.flags(),
        }
    }
}

/// The register names of one instruction set, as Linux spells them after `%`.
pub trait RegisterNames {
    /// The register called `name` (without the `%`), if there is one.
    fn lookup(&self, name: &str) -> Option<RegRef>;
    /// Bytes in a pointer (the default type is `x32` or `x64` by this).
    fn pointer_bytes(&self) -> usize {
        8
    }
    /// Bytes from the stack pointer at a function's entry to its first
    /// stack-passed argument (x86_64: 8, the return address).
    fn stack_args_offset(&self) -> usize {
        0
    }
}

/// Look `name` up in a `(name, register)` table.
pub fn lookup_table(table: &[(&str, RegRef)], name: &str) -> Option<RegRef> {
    table.iter().find(|(n, _)| *n == name).map(|&(_, r)| r)
}

/// `<prefix><n>` for `n` in `0..count` (decimal, no leading zero): the
/// register `Gpr(n + first)`.
pub fn numbered(name: &str, prefix: &str, count: u8, first: u8) -> Option<RegRef> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty()
        || digits.len() > 2
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() == 2 && digits.starts_with('0'))
    {
        return None;
    }
    let n: u8 = digits.parse().ok()?;
    (n < count).then_some(RegRef::Gpr(n + first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names() {
        assert_eq!(numbered("a0", "a", 8, 10), Some(RegRef::Gpr(10)));
        assert_eq!(numbered("a7", "a", 8, 10), Some(RegRef::Gpr(17)));
        assert_eq!(numbered("a8", "a", 8, 10), None);
        assert_eq!(numbered("a01", "a", 8, 10), None);
        assert_eq!(numbered("a", "a", 8, 10), None);
        assert_eq!(numbered("r31", "r", 32, 0), Some(RegRef::Gpr(31)));
        assert_eq!(numbered("r100", "r", 32, 0), None);
        assert_eq!(numbered("r+1", "r", 32, 0), None);
    }

    #[test]
    fn table() {
        let t = [("sp", RegRef::Sp), ("pc", RegRef::Pc)];
        assert_eq!(lookup_table(&t, "pc"), Some(RegRef::Pc));
        assert_eq!(lookup_table(&t, "lr"), None);
    }
}
