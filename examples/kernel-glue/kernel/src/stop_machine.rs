//! Run a function while every other CPU is parked with interrupts masked
//! (Linux's `stop_machine`): no CPU executes the text being changed.

use crate::platform;

/// Serialises stop-machine callers.
static STOPPER: spin::Mutex<()> = spin::Mutex::new(());

/// Run `f` with the other CPUs parked.
pub fn stop_machine<R>(f: impl FnOnce() -> R) -> R {
    let _one = STOPPER.lock();
    let p = platform::get();
    p.park_other_cpus();
    let r = f();
    p.resume_other_cpus();
    r
}
