//! `%REG` names of aarch64 for probe events: Linux's names
//! (`regs_query_register_offset`, `arch/arm64/kernel/ptrace.c`), `x0`…`x30`,
//! `sp`, `pc`, `pstate`.

use probe_hal::reg_names::{lookup_table, numbered, RegRef, RegisterNames};

/// aarch64 register names: `x0…x30 sp pc pstate`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegNames;

const TABLE: &[(&str, RegRef)] = &[
    ("sp", RegRef::Sp),
    ("pc", RegRef::Pc),
    ("pstate", RegRef::Flags),
];

impl RegisterNames for RegNames {
    fn lookup(&self, name: &str) -> Option<RegRef> {
        lookup_table(TABLE, name).or_else(|| numbered(name, "x", 31, 0))
    }
}
