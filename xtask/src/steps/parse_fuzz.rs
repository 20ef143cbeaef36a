//! The probe-events parser fuzz (probe-events/tests/parse.rs,
//! `no_panic_and_round_trip_long`): random definitions, optimised, no panic
//! and every definition that parses prints back to itself. `cargo xtask test`
//! runs 10^5 inputs, `cargo xtask soak` 10^7. The test prints
//! `parse fuzz: N inputs in T s (R inputs/s), 0 failures`; the step checks
//! that N is the count it asked for.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process;

/// Inputs in `cargo xtask test`.
const TEST_CASES: u32 = 100_000;
/// Inputs in `cargo xtask soak`: 679 s measured (14,700 inputs/s on a
/// shared 2-CPU EPYC host, 2026-12-03), well inside the step's limit.
const SOAK_CASES: u32 = 10_000_000;

/// 10^5 inputs.
pub fn test(root: &Path) -> Result<(), String> {
    run(root, TEST_CASES, Duration::from_secs(15 * 60))
}

/// 10^7 inputs.
pub fn soak(root: &Path) -> Result<(), String> {
    run(root, SOAK_CASES, Duration::from_secs(45 * 60))
}

fn run(root: &Path, cases: u32, limit: Duration) -> Result<(), String> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .args([
            "test",
            "--release",
            "-p",
            "probe-events",
            "--test",
            "parse",
            "no_panic_and_round_trip_long",
            "--",
            "--ignored",
            "--nocapture",
        ])
        .env("PROBE_EVENTS_FUZZ_CASES", cases.to_string())
        .env("RUST_BACKTRACE", "0");
    let out = process::capture(&mut cmd, limit).map_err(|e| e.to_string())?;
    let text = format!("{}{}", out.stdout, out.stderr);
    print!("{text}");
    if !out.status.success() {
        return Err(format!("the parser fuzz failed ({})", out.status));
    }
    let line = text
        .lines()
        .find(|l| l.starts_with("parse fuzz: "))
        .ok_or("the parser fuzz printed no count (was the test filtered out?)")?;
    let ran: u32 = line
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("cannot read the count in `{line}`"))?;
    if ran != cases || !line.ends_with(", 0 failures") {
        return Err(format!("asked for {cases} inputs: {line}"));
    }
    Ok(())
}
