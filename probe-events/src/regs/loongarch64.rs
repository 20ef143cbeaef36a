//! loongarch64: Linux's names (`arch/loongarch/kernel/ptrace.c`), `r0`…`r31`
//! plus the CSR images of the frame.

use super::{numbered, table_lookup, RegRef, RegisterNames};

/// loongarch64 register names: `r0…r31 csr_era csr_prmd` (`r3` is the stack
/// pointer).
#[derive(Debug, Clone, Copy, Default)]
pub struct Loongarch64Names;

const TABLE: &[(&str, RegRef)] = &[
    ("r3", RegRef::Sp),
    ("csr_era", RegRef::Pc),
    ("csr_prmd", RegRef::Flags),
];

impl RegisterNames for Loongarch64Names {
    fn lookup(&self, name: &str) -> Option<RegRef> {
        table_lookup(TABLE, name).or_else(|| numbered(name, "r", 32, 0))
    }
}
