//! The checks, each printing one line (see [`crate::report`]).
//!
//! Every check registers its probes, calls the probed assembly functions
//! from [`crate::probed_code`], compares what they return and what the
//! handlers saw with exact expected values, and unregisters again.

mod events;
mod faults;
mod instructions;
mod interrupt_flag;
mod lifecycle;
mod memory_branches;
mod optimized;
mod refusals;
mod return_probes;
mod two_cpus;

use probe_core::{Kprobe, Kretprobe, ProbeError, ProbeId};

use crate::probed_code;
use crate::report;
use crate::services::{peek, ENGINE};

/// Most bytes of probed code the final comparison keeps.
const SNAPSHOT: usize = 2048;

/// Run every check.
pub fn run_all() {
    let (start, end) = probed_code::range();
    let len = end - start;
    assert!(
        len <= SNAPSHOT,
        "probed code is {len} bytes, snapshot holds {SNAPSHOT}"
    );
    let mut before = [0u8; SNAPSHOT];
    for (i, b) in before[..len].iter_mut().enumerate() {
        *b = peek(start + i);
    }

    // CPU 1 first: every later check patches text with it online.
    two_cpus::bring_up();
    // Then the probe-events trace: what a newcomer reads first.
    events::run();
    instructions::run();
    interrupt_flag::run();
    return_probes::run();
    lifecycle::run();
    refusals::run();
    faults::run();
    memory_branches::run();
    optimized::run();
    two_cpus::run();
    two_cpus::run_optimized();

    lifecycle::everything_restored(&before[..len]);
}

/// Register a kprobe, or report `check` as failed and give `None`.
fn kprobe(check: &str, p: &Kprobe<'_>) -> Option<ProbeId> {
    registered(check, ENGINE.register_kprobe(p))
}

/// Register a kretprobe, or report `check` as failed and give `None`.
fn kretprobe(check: &str, p: &Kretprobe<'_>) -> Option<ProbeId> {
    registered(check, ENGINE.register_kretprobe(p))
}

fn registered(check: &str, r: Result<ProbeId, ProbeError>) -> Option<ProbeId> {
    match r {
        Ok(id) => Some(id),
        Err(e) => {
            report::fail(check, format_args!("registering failed: {e}"));
            None
        }
    }
}

/// Unregister, or report `check` as failed.
fn unregister(check: &str, id: ProbeId) -> bool {
    match ENGINE.unregister(id) {
        Ok(()) => true,
        Err(e) => {
            report::fail(check, format_args!("unregistering failed: {e}"));
            false
        }
    }
}

/// Breakpoint traps taken while `f` runs, and its result.
fn counting_traps<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = crate::entry::traps();
    let r = f();
    (r, crate::entry::traps() - before)
}
