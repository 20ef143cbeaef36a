//! Register names for `%REG` fetch arguments.
//!
//! Each instruction set spells its registers as Linux's
//! `regs_query_register_offset` does (`arch/*/kernel/ptrace.c`). The names are
//! a small trait rather than a table chosen by `cfg(target_arch)`: a kernel
//! picks the impl of its backend, and a custom instruction set writes its own.
//! The four impls here are plain marker types so that the hal crates can adopt
//! the trait later without this crate depending on them.

mod aarch64;
mod loongarch64;
mod riscv64;
mod x86_64;

pub use aarch64::Aarch64Names;
pub use loongarch64::Loongarch64Names;
pub use riscv64::Riscv64Names;
pub use x86_64::X86_64Names;

use probe_hal::Registers;

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
pub(crate) fn table_lookup(table: &[(&str, RegRef)], name: &str) -> Option<RegRef> {
    table.iter().find(|(n, _)| *n == name).map(|&(_, r)| r)
}

/// `<prefix><n>` for `n` in `0..count`: the register `Gpr(n + first)`.
pub(crate) fn numbered(name: &str, prefix: &str, count: u8, first: u8) -> Option<RegRef> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || digits.len() > 2 || (digits.len() == 2 && digits.starts_with('0')) {
        return None;
    }
    let n: u8 = digits.parse().ok()?;
    (n < count).then_some(RegRef::Gpr(n + first))
}
