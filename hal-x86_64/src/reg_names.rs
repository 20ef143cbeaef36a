//! `%REG` names of x86_64 for probe events: Linux's `pt_regs` names
//! (`regs_query_register_offset`, `arch/x86/kernel/ptrace.c`), numbered as
//! the instruction encoding numbers them (rax 0 … r15 15).

use probe_hal::reg_names::{lookup_table, numbered, RegRef, RegisterNames};

/// x86_64 register names: `ax bx cx dx si di bp sp r8…r15 ip flags`.
/// Segment registers and `orig_ax` are not in a [`probe_hal::Registers`] frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegNames;

const TABLE: &[(&str, RegRef)] = &[
    ("ax", RegRef::Gpr(0)),
    ("cx", RegRef::Gpr(1)),
    ("dx", RegRef::Gpr(2)),
    ("bx", RegRef::Gpr(3)),
    ("sp", RegRef::Sp),
    ("bp", RegRef::Gpr(5)),
    ("si", RegRef::Gpr(6)),
    ("di", RegRef::Gpr(7)),
    ("ip", RegRef::Pc),
    ("flags", RegRef::Flags),
];

impl RegisterNames for RegNames {
    fn lookup(&self, name: &str) -> Option<RegRef> {
        lookup_table(TABLE, name).or_else(|| match numbered(name, "r", 16, 0)? {
            RegRef::Gpr(n) if n >= 8 => Some(RegRef::Gpr(n)),
            _ => None,
        })
    }
    fn stack_args_offset(&self) -> usize {
        8
    }
}
