//! The checks: each prints one line (`ok`/`FAIL`, a number, what was
//! checked), and [`run_all`] ends with `N passed, M failed` and the exit
//! QEMU reports (0 only when nothing failed).

mod aggregate;
mod bti;
mod cases;
mod events;
mod fault;
mod handlers;
mod kretprobe;
mod optimized;
mod refused;
mod sweep;
mod two_cpus;
mod uprobe;

use core::fmt;

use crate::kernel::{self, ENGINE};
use crate::println;

/// Counts and prints check results.
pub struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    const fn new() -> Self {
        Self {
            passed: 0,
            failed: 0,
        }
    }

    /// Record one check; `what` says what was checked.
    pub fn check(&mut self, ok: bool, what: fmt::Arguments<'_>) -> bool {
        let n = self.passed + self.failed + 1;
        if ok {
            self.passed += 1;
            println!("ok   {n:3} {what}");
        } else {
            self.failed += 1;
            println!("FAIL {n:3} {what}");
        }
        ok
    }

    /// Record a check that `got == want`, printing both on failure.
    pub fn check_eq<T: PartialEq + fmt::Debug>(
        &mut self,
        got: T,
        want: T,
        what: fmt::Arguments<'_>,
    ) -> bool {
        let ok = got == want;
        self.check(ok, what);
        if !ok {
            println!("         got  {got:x?}");
            println!("         want {want:x?}");
        }
        ok
    }

    /// Print a detail line under the last check.
    pub fn note(&self, what: fmt::Arguments<'_>) {
        println!("         {what}");
    }
}

/// A fingerprint of all probe-able test code (kernel and user), to prove
/// every byte is back at the end.
fn text_fingerprint() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let user = kernel::linker_addr!(__user_start)..kernel::linker_addr!(__user_text_end);
    let functions = crate::testfns::symbols().map(|f| f.start..f.end);
    for range in functions.into_iter().chain([user]) {
        for a in range.step_by(4) {
            h = (h ^ crate::testfns::word_at(a) as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// Run every check, print the summary and leave QEMU.
pub fn run_all() -> ! {
    let mut r = Report::new();
    let before = text_fingerprint();
    handlers::set_link_register(handlers::LINK_REGISTER);

    // First: the probe-events trace is what a newcomer sees first.
    events::run(&mut r);
    cases::run_simulated(&mut r);
    cases::run_stepped(&mut r);
    kretprobe::run(&mut r);
    bti::run(&mut r);
    aggregate::run(&mut r);
    refused::run(&mut r);
    sweep::run(&mut r);
    fault::run(&mut r);
    uprobe::run(&mut r);
    two_cpus::run(&mut r);
    optimized::run(&mut r);

    // Everything is gone again.
    r.check_eq(
        text_fingerprint(),
        before,
        format_args!("every probed byte (kernel and user text) is restored"),
    );
    r.check_eq(
        (
            ENGINE.list::<4>().len(),
            ENGINE.slot_usage(),
            kernel::pages_held(),
        ),
        (0, (0, 0), (0, 0)),
        format_args!("no probe, slot or slot page is left"),
    );
    r.check_eq(
        ENGINE.free_instances(),
        32,
        format_args!("every return instance is back in the pool"),
    );
    let (grace, syncs) = kernel::sync_counts();
    println!(
        "({grace} grace periods, {syncs} instruction-fetch syncs, {} answered by CPU 1, {} stop-machines)",
        crate::smp::answered(),
        crate::smp::stops()
    );

    println!("{} passed, {} failed", r.passed, r.failed);
    if r.failed == 0 && r.passed > 0 {
        crate::exit::pass()
    } else {
        crate::exit::fail()
    }
}
