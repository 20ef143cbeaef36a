//! The probe glue: every line here exists because of the probe crates
//! (`cargo xtask glue-lines` counts them per role and per ISA build).

pub mod errno;
pub mod listing;
pub mod perf;
pub mod registers;
pub mod services;
pub mod tasks;
pub mod traps;

#[cfg(target_arch = "x86_64")]
pub use probe_hal_x86_64::{with_pt_regs, PtRegs, X86_64 as Isa};

#[cfg(target_arch = "riscv64")]
pub use probe_hal_riscv64::{with_pt_regs, PtRegs, Riscv64 as Isa};
