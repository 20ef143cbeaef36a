//! The probe glue: every line here exists because of the probe crates
//! (`cargo xtask glue-lines` counts them per role and per ISA build).

pub mod perf;
pub mod registers;
pub mod services;
pub mod traps;

pub use probe_core::native::{Arch as Isa, PtRegs};
use probe_core::Engine;
use services::Services;

use crate::rcu::MAX_CPUS;

/// The kernel's probe engine: 64 probes, 64 return instances.
pub static ENGINE: Engine<Isa, spin::Mutex<()>, Services, 64, 64, MAX_CPUS> = Engine::new(Services);

/// Boot: return probes come back through the engine.
pub fn init() {
    let _ = probe_hal::rethook::set_return_hook(&ENGINE);
}

/// The probe list, a line per probe (a `/sys/kernel/debug/kprobes/list`).
pub fn show_list(out: &mut dyn core::fmt::Write) -> core::fmt::Result {
    ENGINE.write_list(out)
}
