//! The probe glue: every line here exists because of the probe crates
//! (`cargo xtask glue-lines` counts them per role and per ISA build).

pub mod errno;
pub mod listing;
pub mod perf;
pub mod registers;
pub mod services;
pub mod tasks;
pub mod traps;

pub use probe_core::native::{with_pt_regs, Arch as Isa, PtRegs};
