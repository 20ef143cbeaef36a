//! The check that no library crate links `alloc` (or `std`).
//!
//! Two independent looks, because either alone can be fooled:
//! - the dependency graph each library has on its bare-metal target
//!   (`cargo tree -e normal,features`): a no_std crate opts into
//!   allocation through a feature, so no `alloc`/`std` feature may be on;
//! - the library's own source: no `extern crate alloc`, no `alloc::` path,
//!   and `no_std` declared in `lib.rs`.
//!
//! (The loongarch64 build with `-Zbuild-std=core` proves it a third way for
//! its crates: there is no `alloc` to link there at all.)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{self, capture};

/// A library crate that must never link `alloc`, with the bare-metal
/// targets it is built for.
struct Library {
    package: &'static str,
    dir: &'static str,
    targets: &'static [&'static str],
}

const X86_64: &str = "x86_64-unknown-none";
const RISCV64: &str = "riscv64gc-unknown-none-elf";
const LOONGARCH64: &str = "loongarch64-unknown-none";
const AARCH64: &str = "aarch64-unknown-none";

const LIBRARIES: &[Library] = &[
    Library {
        package: "probe-hal",
        dir: "probe-hal",
        targets: &[X86_64, RISCV64, LOONGARCH64, AARCH64],
    },
    Library {
        package: "probe-core",
        dir: "probe-core",
        targets: &[X86_64, RISCV64, LOONGARCH64, AARCH64],
    },
    Library {
        package: "probe-hal-x86_64",
        dir: "hal-x86_64",
        targets: &[X86_64],
    },
    Library {
        package: "probe-hal-riscv64",
        dir: "hal-riscv64",
        targets: &[RISCV64],
    },
    Library {
        package: "probe-hal-loongarch64",
        dir: "hal-loongarch64",
        targets: &[LOONGARCH64],
    },
    Library {
        package: "probe-hal-aarch64",
        dir: "hal-aarch64",
        targets: &[AARCH64],
    },
];

/// Cargo features through which a no_std crate brings in `alloc` or `std`.
const FORBIDDEN_FEATURES: &[&str] = &["alloc", "std", "use_std", "use-std"];

const TREE: Duration = Duration::from_secs(5 * 60);

/// Run both looks over every library; report every finding, not just the
/// first.
pub fn check_no_alloc(root: &Path) -> Result<(), String> {
    let mut findings = Vec::new();
    for lib in LIBRARIES {
        for &target in lib.targets {
            match dependency_features(root, lib.package, target) {
                Ok(found) => findings.extend(found),
                Err(e) => findings.push(e),
            }
        }
        findings.extend(source_findings(&root.join(lib.dir)));
        println!("  checked  {} ({})", lib.package, lib.targets.join(", "));
    }
    if findings.is_empty() {
        println!("no library crate links alloc or std");
        Ok(())
    } else {
        Err(format!(
            "library crates must not use alloc/std:\n  - {}",
            findings.join("\n  - ")
        ))
    }
}

/// Forbidden features enabled anywhere in `package`'s normal dependency
/// graph on `target`.
fn dependency_features(root: &Path, package: &str, target: &str) -> Result<Vec<String>, String> {
    let mut cmd = Command::new("cargo");
    cmd.args([
        "tree",
        "--package",
        package,
        "--edges",
        "normal,features",
        "--target",
        target,
        "--prefix",
        "none",
    ])
    .current_dir(root);
    let out = capture(&mut cmd, TREE).map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed:\n{}",
            process::display(&cmd),
            out.stderr.trim()
        ));
    }
    Ok(forbidden_features(&out.stdout)
        .into_iter()
        .map(|node| format!("{package} on {target}: dependency graph enables {node}"))
        .collect())
}

/// The `crate feature "name"` nodes of a `cargo tree --prefix none` listing
/// whose feature is forbidden.
fn forbidden_features(tree: &str) -> Vec<String> {
    let mut found: Vec<String> = tree
        .lines()
        .filter_map(|line| {
            let (krate, rest) = line.trim().split_once(" feature \"")?;
            let feature = rest.split('"').next()?;
            FORBIDDEN_FEATURES
                .contains(&feature)
                .then(|| format!("{krate} feature \"{feature}\""))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// `alloc` uses in a crate's `src/` and a missing `no_std`.
fn source_findings(crate_dir: &Path) -> Vec<String> {
    let mut findings = Vec::new();
    let lib_rs = crate_dir.join("src/lib.rs");
    match fs::read_to_string(&lib_rs) {
        Ok(text) if declares_no_std(&text) => {}
        Ok(_) => findings.push(format!("{}: no `#![no_std]`", lib_rs.display())),
        Err(e) => findings.push(format!("{}: {e}", lib_rs.display())),
    }
    for file in rust_files(&crate_dir.join("src")) {
        let Ok(text) = fs::read_to_string(&file) else {
            findings.push(format!("{}: unreadable", file.display()));
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if uses_alloc(line) {
                findings.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    findings
}

fn declares_no_std(lib_rs: &str) -> bool {
    lib_rs.lines().any(|l| {
        let l = l.trim();
        l.starts_with("#![") && l.contains("no_std")
    })
}

/// `extern crate alloc` or a path that starts at the `alloc` crate
/// (`alloc::vec::Vec`, `::alloc::…`), outside comments. `core::alloc::…`
/// (layouts, the allocator trait) is not the `alloc` crate.
fn uses_alloc(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or("");
    if code.contains("extern crate alloc") {
        return true;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices("alloc::").any(|(i, _)| {
        let before = &code[..i];
        match before.strip_suffix("::") {
            // `::alloc::` starts at the crate; `core::alloc::` does not.
            Some(path) => !path.ends_with(is_word),
            None => !before.ends_with(is_word),
        }
    })
}

/// Every `.rs` file below `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_paths_are_found() {
        assert!(uses_alloc("extern crate alloc;"));
        assert!(uses_alloc("use alloc::vec::Vec;"));
        assert!(uses_alloc("let v: alloc::vec::Vec<u8> = x;"));
        assert!(uses_alloc("use ::alloc::boxed::Box;"));
        assert!(uses_alloc("fn f() -> Vec<u8> { (alloc::vec![1]) }"));
    }

    #[test]
    fn core_alloc_comments_and_other_words_are_not() {
        assert!(!uses_alloc("use core::alloc::Layout;"));
        assert!(!uses_alloc("use std::alloc::System;"));
        assert!(!uses_alloc("// no alloc::Vec here"));
        assert!(!uses_alloc("let x = 1; // alloc::vec is forbidden"));
        assert!(!uses_alloc("fn dealloc::x() {}"));
        assert!(!uses_alloc("slot_alloc::take();"));
        assert!(!uses_alloc("fn alloc_slot_page(&self) {}"));
    }

    #[test]
    fn forbidden_features_are_listed_once() {
        let tree = "probe-core v0.1.0 (/w/probe-core)\n\
                    heapless feature \"default\"\n\
                    heapless v0.8.0\n\
                    log feature \"std\"\n\
                    serde feature \"alloc\"\n\
                    log feature \"std\"\n\
                    lock_api feature \"atomic_usize\"\n";
        assert_eq!(
            forbidden_features(tree),
            vec![
                "log feature \"std\"".to_string(),
                "serde feature \"alloc\"".to_string()
            ]
        );
    }

    #[test]
    fn no_std_must_be_declared() {
        assert!(declares_no_std("//! doc\n#![no_std]\n"));
        assert!(declares_no_std("#![cfg_attr(not(test), no_std)]\n"));
        assert!(!declares_no_std("//! no_std crate\nfn f() {}\n"));
    }
}
