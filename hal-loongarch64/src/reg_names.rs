//! `%REG` names of loongarch64 for probe events: Linux's names
//! (`regs_query_register_offset`, `arch/loongarch/kernel/ptrace.c`),
//! `r0`…`r31` plus the CSR images of the frame.

use probe_hal::reg_names::{lookup_table, numbered, RegRef, RegisterNames};

/// loongarch64 register names: `r0…r31 csr_era csr_prmd` (`r3` is the stack
/// pointer).
#[derive(Debug, Clone, Copy, Default)]
pub struct RegNames;

const TABLE: &[(&str, RegRef)] = &[
    ("r3", RegRef::Sp),
    ("csr_era", RegRef::Pc),
    ("csr_prmd", RegRef::Flags),
];

impl RegisterNames for RegNames {
    fn lookup(&self, name: &str) -> Option<RegRef> {
        lookup_table(TABLE, name).or_else(|| numbered(name, "r", 32, 0))
    }
}
