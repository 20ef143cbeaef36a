//! Probe handlers shared by the checks, and what they record: the
//! `check-handlers` crate, shared with the other example kernel.

pub use check_handlers::*;

const _: () = assert!(crate::smp::CPUS == check_handlers::CPUS);

/// This ISA's link register (`x30`), recorded by [`pre_count`].
pub const LINK_REGISTER: usize = 30;
