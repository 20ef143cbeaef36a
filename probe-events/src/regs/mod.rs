//! Register names for `%REG` fetch arguments.
//!
//! The trait and [`RegRef`] live in [`probe_hal::reg_names`], and every hal
//! crate ships the names of its instruction set as Linux spells them
//! (`probe_hal_x86_64::RegNames`, `probe_hal_riscv64::RegNames`,
//! `probe_hal_loongarch64::RegNames`, `probe_hal_aarch64::RegNames`); a custom
//! instruction set implements [`RegisterNames`] for its own. This crate keeps
//! no per-ISA table: a kernel hands the names of its backend to the parser.

pub use probe_hal::reg_names::{lookup_table, numbered, RegRef, RegisterNames};
