//! One line per check, and the closing `N passed, M failed`.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::println;

static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);

/// Record a check: `ok` with what was seen (`detail`).
pub fn check(name: &str, ok: bool, detail: fmt::Arguments<'_>) {
    if ok {
        PASSED.fetch_add(1, Ordering::SeqCst);
        println!("ok   {name}: {detail}");
    } else {
        FAILED.fetch_add(1, Ordering::SeqCst);
        println!("FAIL {name}: {detail}");
    }
}

/// Record a failed check (a step it needed went wrong).
pub fn fail(name: &str, detail: fmt::Arguments<'_>) {
    check(name, false, detail);
}

/// Checks passed and failed so far.
pub fn counts() -> (u32, u32) {
    (PASSED.load(Ordering::SeqCst), FAILED.load(Ordering::SeqCst))
}

/// Print the closing line.
pub fn summary() {
    let (passed, failed) = counts();
    println!("{passed} passed, {failed} failed");
}

/// The run stopped early (panic, unexpected trap): count it as a failure
/// and close with the summary line anyway.
pub fn crashed() {
    FAILED.fetch_add(1, Ordering::SeqCst);
    summary();
}
