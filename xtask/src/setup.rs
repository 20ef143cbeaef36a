//! `cargo xtask setup`: install what the other commands need, idempotently,
//! saying what it does. A tool that is missing and cannot be installed is an
//! error that names it: nothing is skipped silently.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{self, capture, run};

/// Rustup targets of the default (stable) toolchain: the bare-metal builds.
const STABLE_TARGETS: &[&str] = &[
    "x86_64-unknown-none",
    "riscv64gc-unknown-none-elf",
    "aarch64-unknown-none",
];

/// Components of the default toolchain: `cargo fmt` and `cargo clippy`.
const STABLE_COMPONENTS: &[&str] = &["rustfmt", "clippy"];

/// The nightly toolchain builds loongarch64 with `-Zbuild-std=core`
/// (`rust-src`, also what `cargo miri setup` builds its sysroot from),
/// brings an `llvm-objdump` that disassembles LoongArch (`llvm-tools`) and
/// runs the `miri` step.
const NIGHTLY: &str = "nightly";
const NIGHTLY_COMPONENTS: &[&str] = &["rust-src", "llvm-tools", "miri"];

/// A Debian package and the programs we need from it.
struct AptPackage {
    name: &'static str,
    programs: &'static [&'static str],
}

/// Debian packages: QEMU for the example kernels, binutils to cross-check
/// the riscv64 and aarch64 decoders, valgrind (callgrind) for the benchmark.
const APT_PACKAGES: &[AptPackage] = &[
    AptPackage {
        name: "qemu-system-misc",
        programs: &["qemu-system-riscv64", "qemu-system-loongarch64"],
    },
    AptPackage {
        name: "qemu-system-x86",
        programs: &["qemu-system-x86_64"],
    },
    AptPackage {
        name: "binutils-riscv64-linux-gnu",
        programs: &["riscv64-linux-gnu-objdump"],
    },
    AptPackage {
        name: "qemu-system-arm",
        programs: &["qemu-system-aarch64"],
    },
    AptPackage {
        name: "binutils-aarch64-linux-gnu",
        programs: &["aarch64-linux-gnu-objdump"],
    },
    AptPackage {
        name: "valgrind",
        programs: &["valgrind"],
    },
    AptPackage {
        // the trap-path check disassembles the x86_64 kernel
        name: "binutils",
        programs: &["objdump", "nm", "readelf"],
    },
    AptPackage {
        // coverage corpora: x86_64 glibc's symbols (the shipped libc.so.6
        // is stripped), riscv64 and aarch64 glibc
        name: "libc6-dbg",
        programs: &[],
    },
    AptPackage {
        name: "libc6-riscv64-cross",
        programs: &[],
    },
    AptPackage {
        name: "libc6-arm64-cross",
        programs: &[],
    },
];

const QUERY: Duration = Duration::from_secs(120);
const INSTALL: Duration = Duration::from_secs(20 * 60);

/// Install and check everything; `root` is the repository root (rustup
/// answers for the toolchain that is active there).
pub fn run_setup(root: &Path) -> Result<(), String> {
    require_program(
        "rustup",
        "install Rust with rustup; the toolchains, targets and components are managed through it",
    )?;
    let mut problems = Vec::new();
    let host = host_triple(root, None)?;

    let installed = listing(root, &["target", "list", "--installed"])?;
    for &target in STABLE_TARGETS {
        ensure(
            &format!("rustup target {target}"),
            has_item(&installed, target, &host),
            rustup(root, &["target", "add", target]),
            &mut problems,
        );
    }

    let installed = listing(root, &["component", "list", "--installed"])?;
    for &component in STABLE_COMPONENTS {
        ensure(
            &format!("rustup component {component}"),
            has_item(&installed, component, &host),
            rustup(root, &["component", "add", component]),
            &mut problems,
        );
    }

    let nightly = format!("{NIGHTLY}-{host}");
    let has_nightly = |listing: &str| {
        listing
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .any(|name| name == NIGHTLY || name == nightly)
    };
    let components = NIGHTLY_COMPONENTS.join(",");
    ensure(
        "rustup toolchain nightly",
        has_nightly(&listing(root, &["toolchain", "list"])?),
        rustup(
            root,
            &[
                "toolchain",
                "install",
                NIGHTLY,
                "--profile",
                "minimal",
                "--component",
                &components,
            ],
        ),
        &mut problems,
    );
    if has_nightly(&listing(root, &["toolchain", "list"])?) {
        let installed = listing(
            root,
            &["component", "list", "--installed", "--toolchain", NIGHTLY],
        )?;
        for &component in NIGHTLY_COMPONENTS {
            ensure(
                &format!("rustup component {component} (nightly)"),
                has_item(&installed, component, &host),
                rustup(
                    root,
                    &["component", "add", component, "--toolchain", NIGHTLY],
                ),
                &mut problems,
            );
        }
    }

    install_apt_packages(&mut problems);

    check_programs(root, &mut problems);

    if problems.is_empty() {
        println!("setup: everything is installed");
        Ok(())
    } else {
        Err(format!(
            "setup could not provide everything:\n  - {}",
            problems.join("\n  - ")
        ))
    }
}

/// Print the state of one item and install it when missing; a failed
/// install is recorded in `problems`.
fn ensure(what: &str, present: bool, mut install: Command, problems: &mut Vec<String>) {
    if present {
        println!("  ok       {what}");
        return;
    }
    println!("  install  {what}: {}", process::display(&install));
    if let Err(e) = run(&mut install, INSTALL) {
        problems.push(format!("{what} is missing and could not be installed: {e}"));
    }
}

fn rustup(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(args).current_dir(root);
    cmd
}

/// The stdout of a rustup listing command.
fn listing(root: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = rustup(root, args);
    let out = capture(&mut cmd, QUERY).map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "`{}` failed: {}",
            process::display(&cmd),
            out.stderr.trim()
        ))
    }
}

/// Whether a rustup listing holds `item`, alone or for the host
/// (`clippy-x86_64-unknown-linux-gnu`).
fn has_item(listing: &str, item: &str, host: &str) -> bool {
    let for_host = format!("{item}-{host}");
    listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(|name| name == item || name == for_host)
}

/// Install the Debian packages that are not installed yet (one
/// `apt-get update` first, then one `apt-get install`).
fn install_apt_packages(problems: &mut Vec<String>) {
    let have_dpkg = find_program("dpkg").is_some();
    let mut missing = Vec::new();
    for package in APT_PACKAGES {
        let installed = have_dpkg && dpkg_installed(package.name);
        if installed {
            println!("  ok       apt package {}", package.name);
        } else {
            missing.push(package.name);
        }
    }
    if missing.is_empty() {
        return;
    }
    if !have_dpkg || find_program("apt-get").is_none() {
        problems.push(format!(
            "not a Debian-like system (no dpkg/apt-get): install the packages {} (or their equivalent) yourself",
            missing.join(" ")
        ));
        return;
    }
    let privilege: &[&str] = if is_root() {
        &[]
    } else if find_program("sudo").is_some() {
        &["sudo"]
    } else {
        problems.push(format!(
            "apt packages {} are missing, and installing them needs root or sudo (neither is available): \
             run `apt-get install {}` as root",
            missing.join(" "),
            missing.join(" ")
        ));
        return;
    };
    let mut update = apt(privilege, &["update"]);
    println!("  apt      {}", process::display(&update));
    if let Err(e) = run(&mut update, INSTALL) {
        problems.push(format!(
            "`apt-get update` failed ({e}); not installed: {}",
            missing.join(" ")
        ));
        return;
    }
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&missing);
    let mut install = apt(privilege, &args);
    println!("  install  apt packages: {}", process::display(&install));
    if let Err(e) = run(&mut install, INSTALL) {
        problems.push(format!(
            "apt packages {} are missing and could not be installed: {e}",
            missing.join(" ")
        ));
    }
}

/// `apt-get ARGS` run non-interactively, through sudo when `privilege` says.
fn apt(privilege: &[&str], args: &[&str]) -> Command {
    let mut cmd = match privilege.first() {
        Some(sudo) => {
            let mut cmd = Command::new(sudo);
            // sudo resets the environment: pass the variable through `env`.
            cmd.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            cmd
        }
        None => {
            let mut cmd = Command::new("apt-get");
            cmd.env("DEBIAN_FRONTEND", "noninteractive");
            cmd
        }
    };
    cmd.args(args);
    cmd
}

/// `dpkg -s NAME` says "Status: install ok installed".
fn dpkg_installed(name: &str) -> bool {
    capture(Command::new("dpkg").args(["-s", name]), QUERY).is_ok_and(|out| {
        out.status.success()
            && out
                .stdout
                .lines()
                .any(|l| l.trim() == "Status: install ok installed")
    })
}

/// Effective user id 0, read from /proc/self/status.
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// After installing: every program the other commands run is really there.
fn check_programs(root: &Path, problems: &mut Vec<String>) {
    for package in APT_PACKAGES {
        for &program in package.programs {
            match find_program(program) {
                Some(path) => println!("  ok       {program} ({})", path.display()),
                None => problems.push(format!(
                    "`{program}` is not on PATH (it should come with the Debian package {})",
                    package.name
                )),
            }
        }
    }
    match nightly_llvm_objdump(root) {
        Ok(path) => println!(
            "  ok       llvm-objdump (nightly llvm-tools, {})",
            path.display()
        ),
        Err(e) => problems.push(e),
    }
}

/// The `llvm-objdump` of nightly's llvm-tools (it knows LoongArch).
pub fn nightly_llvm_objdump(root: &Path) -> Result<PathBuf, String> {
    let sysroot = capture(
        Command::new("rustc")
            .args([&format!("+{NIGHTLY}"), "--print", "sysroot"])
            .current_dir(root),
        QUERY,
    )
    .map_err(|e| format!("cannot ask nightly rustc for its sysroot: {e}"))?;
    if !sysroot.status.success() {
        return Err(format!(
            "nightly rustc does not run: {}",
            sysroot.stderr.trim()
        ));
    }
    let host = host_triple(root, Some(NIGHTLY))?;
    let path = Path::new(sysroot.stdout.trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin/llvm-objdump");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "nightly llvm-tools has no llvm-objdump at {} (run `rustup component add llvm-tools --toolchain nightly`)",
            path.display()
        ))
    }
}

/// The host triple of `rustc` (of `toolchain` when given).
fn host_triple(root: &Path, toolchain: Option<&str>) -> Result<String, String> {
    let mut cmd = Command::new("rustc");
    if let Some(toolchain) = toolchain {
        cmd.arg(format!("+{toolchain}"));
    }
    cmd.arg("-vV").current_dir(root);
    let out = capture(&mut cmd, QUERY).map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed: {}",
            process::display(&cmd),
            out.stderr.trim()
        ));
    }
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .ok_or_else(|| format!("`{}` printed no host line", process::display(&cmd)))
}

/// Fail with `why` when `program` is not on PATH.
fn require_program(program: &str, why: &str) -> Result<(), String> {
    match find_program(program) {
        Some(_) => Ok(()),
        None => Err(format!("`{program}` is not on PATH: {why}")),
    }
}

/// The first executable file called `program` on PATH.
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| {
            fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "x86_64-unknown-linux-gnu";

    #[test]
    fn rustup_listings_match_with_or_without_the_host() {
        let components = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
                          llvm-tools-x86_64-unknown-linux-gnu\nrust-src\n\
                          rust-std-riscv64gc-unknown-none-elf\n";
        assert!(has_item(components, "clippy", HOST));
        assert!(has_item(components, "llvm-tools", HOST));
        assert!(has_item(components, "rust-src", HOST));
        assert!(!has_item(components, "rustfmt", HOST));
        assert!(!has_item(components, "rust", HOST));
        assert!(!has_item(components, "llvm", HOST));
    }

    #[test]
    fn rustup_target_listing_needs_the_exact_target() {
        let targets = "riscv64gc-unknown-none-elf\nx86_64-unknown-linux-gnu\n";
        assert!(has_item(targets, "riscv64gc-unknown-none-elf", HOST));
        assert!(!has_item(targets, "x86_64-unknown-none", HOST));
    }

    #[test]
    fn apt_commands_are_non_interactive() {
        assert_eq!(
            process::display(&apt(&[], &["install", "-y", "valgrind"])),
            "DEBIAN_FRONTEND=noninteractive apt-get install -y valgrind"
        );
        assert_eq!(
            process::display(&apt(&["sudo"], &["update"])),
            "sudo env DEBIAN_FRONTEND=noninteractive apt-get update"
        );
    }

    #[test]
    fn programs_are_found_on_path() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-xtask").is_none());
    }
}
