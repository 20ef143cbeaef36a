//! aarch64: Linux's names (`arch/arm64/kernel/ptrace.c`), `x0`…`x30`, `sp`,
//! `pc`, `pstate`.

use super::{numbered, table_lookup, RegRef, RegisterNames};

/// aarch64 register names: `x0…x30 sp pc pstate`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Aarch64Names;

const TABLE: &[(&str, RegRef)] = &[
    ("sp", RegRef::Sp),
    ("pc", RegRef::Pc),
    ("pstate", RegRef::Flags),
];

impl RegisterNames for Aarch64Names {
    fn lookup(&self, name: &str) -> Option<RegRef> {
        table_lookup(TABLE, name).or_else(|| numbered(name, "x", 31, 0))
    }
}
