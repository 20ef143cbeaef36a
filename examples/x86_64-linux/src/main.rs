//! `x86_64-linux`: kprobes and kretprobes on this process's own code, with
//! real `int3` traps delivered as signals. The signal handlers play the
//! kernel ([`signals`]), [`services`] supplies the kernel services, threads
//! are the CPUs ([`threads`]) and [`cases`] holds the checks.
//!
//! It plays the kernel as faithfully as user space allows:
//! - the trap handlers run with every asynchronous signal (the
//!   "interrupts") blocked, and the IF the engine clears for a step becomes
//!   the interrupted context's signal mask until the step ends ([`signals`]);
//! - exceptions cannot be masked: nothing in the process can block
//!   `SIGTRAP` ([`sigguard`]);
//! - every thread that traps is a CPU, registered or not ([`threads`]);
//! - nothing the trap path runs can be probed: the handlers are in
//!   `probe_trap_text`, the glibc code they run is on the blacklist
//!   ([`services`]).
//!
//! ```text
//! x86_64-linux                      run every check; exit 1 on a failure
//! x86_64-linux --soak               the same, with 10^7 hits in the thread run
//! x86_64-linux --bench              real trap round trips, medians and ratios
//! ```

mod bench;
mod cases;
mod services;
mod sigguard;
mod signals;
mod threads;

use std::process::ExitCode;

use probe_core::Engine;
use probe_hal_x86_64::X86_64;

use crate::services::Services;

/// The engine: 128 probes, 64 return instances, one CPU per registered
/// thread, 8 slot pages, 64 bytes of per-instance data.
pub type HarnessEngine =
    Engine<X86_64, spin::Mutex<()>, Services, 128, 64, { threads::MAX_THREADS }, 8, 64>;

/// The one engine of the process.
pub static ENGINE: HarnessEngine = Engine::new(Services);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    signals::install_all();
    let sync_core = services::init();
    threads::init();
    if let Err(e) = sigguard::install() {
        println!("x86_64-linux: SIGTRAP cannot be kept unblocked: {e}");
    }
    let me = threads::register_current();
    cases::kretprobes::try_before_the_return_hook();
    probe_hal::rethook::set_return_hook(&ENGINE).expect("return hook installed once");
    probe_hal::opthook::set_opt_hook(&ENGINE).expect("opt hook installed once");
    let ok = match args.first().map(String::as_str) {
        None => cases::run_all(sync_core),
        Some("--soak") => {
            cases::concurrency::SOAK.store(true, core::sync::atomic::Ordering::Relaxed);
            cases::run_all(sync_core)
        }
        Some("--bench") => bench::run(),
        Some(other) => {
            eprintln!("usage: x86_64-linux [--soak | --bench] (got {other})");
            false
        }
    };
    drop(me);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
