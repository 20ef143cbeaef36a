//! `tracer`: uprobes across address spaces. The tracer owns an engine and
//! probes child processes through `ptrace`: the children's `int3` traps
//! stop them, the tracer hands their registers to the engine as user-mode
//! breakpoints in their address space (`Space::User(pid)`), writes the
//! registers back and lets them go on. Handlers run in the tracer.
//!
//! Signals that stop a child during a uprobe's out-of-line step are
//! delivered as a kernel delivers them: held back until the step ends, or
//! after the step is undone ([`trace`]).
//!
//! Modules: [`child`] (starting children and talking to them), [`ptrace`]
//! (the system calls), [`services`] (the kernel services over the
//! children's memory), [`trace`] (the trap loop and signal delivery),
//! [`cases`] (the checks), [`usdt`] (a USDT site in the tracer's own
//! binary, its SDT note, `/proc/PID/maps`), [`usdt_cases`] (a
//! `uprobe_events` event by file on it).
//!
//! `TRACER_DEBUG=1 tracer` prints every trap the tracer hands to the engine.

mod cases;
mod child;
mod ptrace;
mod services;
mod trace;
mod usdt;
mod usdt_cases;

use std::process::ExitCode;

use probe_core::Engine;
use probe_hal_x86_64::X86_64;

use crate::services::TracerServices;

/// The tracer's engine: 64 probes, 32 return instances, one CPU (the
/// tracer is single-threaded), 8 slot pages (one per child).
pub type TracerEngine = Engine<X86_64, spin::Mutex<()>, TracerServices, 64, 32, 1, 8, 64>;

/// The one engine of the tracer.
pub static ENGINE: TracerEngine = Engine::new(TracerServices);

fn main() -> ExitCode {
    if cases::run_all() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
