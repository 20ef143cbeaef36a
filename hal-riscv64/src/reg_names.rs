//! `%REG` names of riscv64 for probe events: Linux's names
//! (`regs_query_register_offset`, `arch/riscv/kernel/ptrace.c`), the ABI
//! names of x1…x31 plus `epc` and `status`.

use probe_hal::reg_names::{lookup_table, numbered, RegRef, RegisterNames};

/// riscv64 register names: `ra sp gp tp t0…t6 s0…s11 a0…a7 epc status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegNames;

const TABLE: &[(&str, RegRef)] = &[
    ("epc", RegRef::Pc),
    ("ra", RegRef::Gpr(1)),
    ("sp", RegRef::Sp),
    ("gp", RegRef::Gpr(3)),
    ("tp", RegRef::Gpr(4)),
    ("t0", RegRef::Gpr(5)),
    ("t1", RegRef::Gpr(6)),
    ("t2", RegRef::Gpr(7)),
    ("s0", RegRef::Gpr(8)),
    ("s1", RegRef::Gpr(9)),
    ("t3", RegRef::Gpr(28)),
    ("t4", RegRef::Gpr(29)),
    ("t5", RegRef::Gpr(30)),
    ("t6", RegRef::Gpr(31)),
    ("status", RegRef::Flags),
];

impl RegisterNames for RegNames {
    fn lookup(&self, name: &str) -> Option<RegRef> {
        lookup_table(TABLE, name)
            .or_else(|| numbered(name, "a", 8, 10))
            .or_else(|| match numbered(name, "s", 12, 16)? {
                // s2…s11 are x18…x27 (s0/s1 are in the table).
                RegRef::Gpr(n) if n >= 18 => Some(RegRef::Gpr(n)),
                _ => None,
            })
    }
}
