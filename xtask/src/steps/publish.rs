//! The checks that the library crates can be published: their API docs
//! build with rustdoc's warnings denied (what docs.rs would show), and
//! `cargo publish --workspace --dry-run` packages and builds each of them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process;

/// The crates published to crates.io, by package name and directory. Every
/// other workspace member says `publish = false` (a test checks both).
pub const LIBRARY_CRATES: &[(&str, &str)] = &[
    ("probe-hal", "probe-hal"),
    ("probe-core", "probe-core"),
    ("probe-hal-x86_64", "hal-x86_64"),
    ("probe-hal-riscv64", "hal-riscv64"),
    ("probe-hal-loongarch64", "hal-loongarch64"),
    ("probe-hal-aarch64", "hal-aarch64"),
    ("probe-events", "probe-events"),
];

/// `RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps` for every library crate, in
/// one cargo invocation (`--keep-going`: every crate's warnings, not only
/// the first failing crate's).
pub fn doc(root: &Path) -> Result<(), String> {
    let mut cmd = Command::new("cargo");
    cmd.env("RUSTDOCFLAGS", "-Dwarnings")
        .args(["doc", "--no-deps", "--keep-going"])
        .current_dir(root);
    for (name, _) in LIBRARY_CRATES {
        cmd.args(["-p", name]);
    }
    process::run(&mut cmd, Duration::from_secs(10 * 60)).map_err(|e| e.to_string())
}

/// `cargo publish --workspace --dry-run`: packages every library crate
/// (the other members have `publish = false`), then builds each package
/// against the others' packages, as crates.io would see them.
///
/// A clean checkout (CI) runs it as it is. With uncommitted changes in the
/// packaged files cargo would refuse to package them; then it runs with
/// `--allow-dirty`, says so, and checks the working tree as it is.
pub fn dry_run(root: &Path) -> Result<(), String> {
    forget_stale_packages()?;
    // Its own target dir, emptied first: cargo takes a registry crate of a
    // given version as immutable and would reuse last run's build of it.
    let target = root.join("target").join("publish-dry-run");
    if target.exists() {
        std::fs::remove_dir_all(&target)
            .map_err(|e| format!("removing {}: {e}", target.display()))?;
    }
    let mut cmd = Command::new("cargo");
    cmd.args(["publish", "--workspace", "--dry-run"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root);
    let changed = uncommitted(root)?;
    if !changed.is_empty() {
        println!(
            "uncommitted changes in the packaged crates ({}), so --allow-dirty",
            changed.join(", ")
        );
        cmd.arg("--allow-dirty");
    }
    process::run(&mut cmd, Duration::from_secs(20 * 60)).map_err(|e| e.to_string())
}

/// Cargo builds each package against the others through a local registry
/// (`<target>/package/tmp-registry`), and extracts its crates under
/// `$CARGO_HOME/registry/src/-<hash of that path>/`, where an extraction
/// from an earlier dry run of the same checkout path is reused as it is:
/// a package would then be built against last run's copy of its
/// dependencies (a new method missing). So remove our crates' extractions
/// from those local registries first (crates.io's, `index.*`, are not
/// touched).
fn forget_stale_packages() -> Result<(), String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry").join("src")) else {
        return Ok(());
    };
    let Ok(registries) = std::fs::read_dir(&src) else {
        return Ok(());
    };
    for reg in registries.flatten() {
        if !reg.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(reg.path()) else {
            continue;
        };
        for c in crates.flatten() {
            let name = c.file_name().to_string_lossy().into_owned();
            let ours = LIBRARY_CRATES.iter().any(|(pkg, _)| {
                name.strip_prefix(pkg)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|v| v.starts_with(|ch: char| ch.is_ascii_digit()))
            });
            if ours {
                std::fs::remove_dir_all(c.path())
                    .map_err(|e| format!("removing {}: {e}", c.path().display()))?;
            }
        }
    }
    Ok(())
}

/// The files git reports as changed or untracked in the library crates'
/// directories and the workspace manifest; none outside a git checkout
/// (cargo checks nothing there either).
fn uncommitted(root: &Path) -> Result<Vec<String>, String> {
    let mut cmd = Command::new("git");
    cmd.args(["status", "--porcelain", "--untracked-files=all", "--"])
        .args(["Cargo.toml", "Cargo.lock"])
        .args(LIBRARY_CRATES.iter().map(|(_, dir)| dir))
        .current_dir(root);
    let out = process::capture(&mut cmd, Duration::from_secs(60)).map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Ok(Vec::new());
    }
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| l.get(3..))
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workspace members, from the root manifest's `members` list.
    fn members(root: &Path) -> Vec<String> {
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let list = manifest
            .split_once("members = [")
            .and_then(|(_, rest)| rest.split_once(']'))
            .expect("a members list")
            .0;
        list.split(',')
            .map(|m| m.trim().trim_matches('"').to_string())
            .filter(|m| !m.is_empty())
            .collect()
    }

    #[test]
    fn the_library_crates_are_the_members_that_are_published() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut published = Vec::new();
        for dir in members(root) {
            let manifest = std::fs::read_to_string(root.join(&dir).join("Cargo.toml")).unwrap();
            if manifest.lines().any(|l| l.trim() == "publish = false") {
                continue;
            }
            let name = manifest
                .lines()
                .find_map(|l| l.strip_prefix("name = "))
                .expect("a package name")
                .trim_matches('"')
                .to_string();
            published.push((name, dir));
        }
        let expected: Vec<(String, String)> = LIBRARY_CRATES
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_string()))
            .collect();
        assert_eq!(published, expected);
    }
}
