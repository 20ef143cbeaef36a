//! `cargo xtask coverage`: every backend's decisions over every instruction
//! of real binaries (`examples/coverage`, release build), and its small
//! fixed sample in `cargo xtask test`.
//!
//! Corpora: x86_64 glibc (symbols from libc6-dbg), riscv64 and aarch64
//! glibc (`.dynsym` only), and Rust's `core` for each ISA: the rlibs the
//! stable sysroot ships, and for loongarch64 one built here by nightly
//! `-Zbuild-std=core` (release, target features `+f,+d,+ual`). Setup
//! installs the packages and toolchains. The binary fails when an
//! instruction that reads or writes the pc is stepped out of line
//! unchanged; the goals are reported, not enforced. See docs/coverage.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process;

/// The loongarch64 corpus: `core` as `-Zbuild-std` builds it.
const LOONGARCH64: &str = "loongarch64-unknown-none";

/// Functions per corpus in the sample `cargo xtask test` runs.
pub const SAMPLE_FUNCTIONS: &str = "100";

/// The whole measurement.
pub fn full(root: &Path) -> Result<(), String> {
    measure(root, &[])
}

/// The first functions of each corpus (still failing on a pc-reading
/// instruction stepped unchanged).
pub fn sample(root: &Path) -> Result<(), String> {
    measure(root, &["--sample", SAMPLE_FUNCTIONS])
}

fn measure(root: &Path, extra: &[&str]) -> Result<(), String> {
    let core = loongarch64_core(root)?;
    let mut cmd = Command::new("cargo");
    cmd.args(["run", "--release", "-p", "coverage", "--"])
        .arg("--loongarch64-core")
        .arg(&core)
        .args(extra)
        .current_dir(root);
    process::run(&mut cmd, Duration::from_secs(30 * 60)).map_err(|e| e.to_string())
}

/// Nightly's target dir: beside the stable one (`CARGO_TARGET_DIR` or
/// `target/`), as the no-std-loongarch64 step keeps it.
fn nightly_target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("nightly"),
        None => root.join("target/nightly"),
    }
}

/// Build `core` for loongarch64 (release, through probe-hal, which needs
/// nothing else) and return its rlib.
fn loongarch64_core(root: &Path) -> Result<PathBuf, String> {
    let dir = nightly_target_dir(root);
    let mut cmd = Command::new("cargo");
    cmd.args([
        "+nightly",
        "build",
        "--release",
        "-p",
        "probe-hal",
        "-Zbuild-std=core",
        "--target",
        LOONGARCH64,
        "--target-dir",
    ])
    .arg(&dir)
    .current_dir(root);
    process::run(&mut cmd, Duration::from_secs(20 * 60)).map_err(|e| e.to_string())?;
    let deps = dir.join(LOONGARCH64).join("release/deps");
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(&deps)
        .map_err(|e| format!("{}: {e}", deps.display()))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("libcore-") && name.ends_with(".rlib")) {
            continue;
        }
        if let Ok(t) = entry.metadata().and_then(|m| m.modified()) {
            if newest.as_ref().is_none_or(|n| t > n.0) {
                newest = Some((t, entry.path()));
            }
        }
    }
    newest.map(|n| n.1).ok_or_else(|| {
        format!(
            "the nightly build left no libcore-*.rlib in {}",
            deps.display()
        )
    })
}
