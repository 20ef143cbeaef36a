//! # probe-hal: the contract between the probe engine and an instruction set
//!
//! `probe-core` is generic over [`Arch`]: everything that depends on the
//! instruction set (how a breakpoint is encoded, which instructions can be
//! executed out of line, which must be simulated and which must be refused,
//! how a single step ends, how a function's return is redirected) lives behind
//! this trait. One crate per ISA implements it (`probe-hal-x86_64`, `probe-hal-riscv64`,
//! `probe-hal-loongarch64`); an out-of-tree ISA implements it the same way, without
//! touching the engine (see `docs/porting.md`).
//!
//! The kernel's own trap frame is reached through [`Registers`], so a kernel
//! hands the engine the frame its trap entry already built; every hal crate
//! also ships a Linux-layout `PtRegs` for kernels that have none.
//!
//! Nothing here allocates and nothing here needs `std`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

mod arch;
mod decision;
mod error;
mod hook_cell;
mod memory;
pub mod opthook;
pub mod optimize;
pub mod reg_names;
mod regs;
pub mod rethook;
pub mod view;

pub use arch::{Arch, Breakpoint};
pub use decision::{Decoded, ExecMode, Handling, SlotImage, MAX_SLOT_LEN};
pub use error::{errno, Capacity, ProbeError, ProbeErrorKind, Refusal};
pub use memory::{DataAccess, MemoryFault, TextAt};
pub use opthook::{set_opt_hook, OptHook};
pub use optimize::{FunctionText, OptRegion, SiteRule, MAX_OPT_REGION};
pub use reg_names::{RegRef, RegisterNames};
pub use regs::{CallAbi, Registers};
