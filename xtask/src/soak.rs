//! `cargo xtask soak`: the long runs that do not fit CI's time budget.
//!
//! The model-based engine test (examples/custom-arch/tests/model.rs) with
//! at least ten million operations, in release. It prints its own count
//! ("model: N operations in M sequences, V violations"); the step checks
//! that line.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process;

/// Operations the soak must reach.
pub const MODEL_OPS_GOAL: u64 = 10_000_000;

/// Sequences and operations per sequence (at most; proptest draws the
/// length uniformly, so a sequence averages half of it).
const SEQUENCES: u64 = 100_000;
const OPS_PER_SEQUENCE: u64 = 240;

/// The model-based sequences, ten million operations.
pub fn model(root: &Path) -> Result<(), String> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .args([
            "test",
            "--release",
            "-p",
            "custom-arch",
            "--test",
            "model",
            "random_sequences",
            "--",
            "--nocapture",
        ])
        .env("MODEL_CASES", SEQUENCES.to_string())
        .env("MODEL_OPS", OPS_PER_SEQUENCE.to_string())
        .env("RUST_BACKTRACE", "0");
    let out =
        process::capture(&mut cmd, Duration::from_secs(60 * 60)).map_err(|e| e.to_string())?;
    let text = format!("{}{}", out.stdout, out.stderr);
    print!("{text}");
    if !out.status.success() {
        return Err(format!("the model test failed ({})", out.status));
    }
    let line = text
        .lines()
        .find(|l| l.starts_with("model: "))
        .ok_or("the model test printed no count")?;
    let ops: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("cannot read the count in `{line}`"))?;
    if !line.ends_with(" 0 violations") {
        return Err(format!("violations: {line}"));
    }
    if ops < MODEL_OPS_GOAL {
        return Err(format!(
            "{ops} model operations, fewer than {MODEL_OPS_GOAL}"
        ));
    }
    println!("soak: {ops} model operations, 0 violations");
    Ok(())
}
