//! The workspace's task runner: `cargo xtask <command>` (aliased in
//! `.cargo/config.toml`). Plain std, no dependencies, so it builds first
//! on a fresh machine and installs everything else.

mod coverage;
mod glue_lines;
mod harness;
mod no_alloc;
mod process;
mod setup;
mod soak;
mod steps;
mod suite;
mod trap_path;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use suite::Options;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup                 install the rustup targets/components and Debian packages
                        the other commands need (idempotent; says what it does)
  test [--keep-going] [STEP…]
                        setup, then every check CI runs, each a timed step; stops at
                        the first failure unless --keep-going; STEP names (or parts
                        of names) choose steps, setup always runs
  demo                  setup, then the main demonstration
  bench                 setup, then the engine benchmarks (per trap hit, per optimised
                        hit) and the probe-events one (cost of an event per hit,
                        ring buffer throughput)
  soak                  setup, then the long runs (10^7 model-based engine operations,
                        10^7 probe-events parser fuzz inputs, 10^7 real hits)
  coverage              setup, then every backend's decisions over every instruction
                        of real binaries (glibc, Rust core); see docs/coverage.md
  glue-lines            count the model kernel's glue (examples/kernel-glue) per role
                        and ISA build, its `unsafe` and register copies; fails over
                        120 lines per ISA or on `unsafe` outside its trap hooks
  qemu <x86_64|riscv64|loongarch64>
                        boot an example kernel under QEMU
  steps                 list the steps of test, demo and bench";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = repository_root();
    let ok = match args.first().map(String::as_str) {
        Some("setup") if args.len() == 1 => match setup::run_setup(&root) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("xtask setup: {e}");
                false
            }
        },
        Some("test") => match parse_test_options(&args[1..]) {
            Ok(options) => suite::run_steps("test", steps::TEST, &root, &options),
            Err(e) => {
                eprintln!("xtask test: {e}\n\n{USAGE}");
                false
            }
        },
        Some("demo") if args.len() == 1 => {
            suite::run_steps("demo", steps::DEMO, &root, &Options::default())
        }
        Some("bench") if args.len() == 1 => {
            suite::run_steps("bench", steps::BENCH, &root, &Options::default())
        }
        Some("soak") if args.len() == 1 => {
            suite::run_steps("soak", steps::SOAK, &root, &Options::default())
        }
        Some("coverage") if args.len() == 1 => {
            suite::run_steps("coverage", steps::COVERAGE, &root, &Options::default())
        }
        Some("glue-lines") if args.len() == 1 => match glue_lines::run(&root) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("xtask glue-lines: {e}");
                false
            }
        },
        Some("qemu") if args.len() == 2 => match qemu(&root, &args[1]) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("xtask qemu: {e}");
                false
            }
        },
        Some("steps") if args.len() == 1 => {
            for (command, table) in [
                ("test", steps::TEST),
                ("demo", steps::DEMO),
                ("bench", steps::BENCH),
                ("soak", steps::SOAK),
                ("coverage", steps::COVERAGE),
            ] {
                let names: Vec<&str> = table.iter().map(|s| s.name).collect();
                println!("{command}: {}", names.join(", "));
            }
            true
        }
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            true
        }
        _ => {
            eprintln!("{USAGE}");
            false
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The workspace root: the parent of this crate's directory.
fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in a subdirectory of the workspace")
        .to_path_buf()
}

fn parse_test_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    for arg in args {
        match arg.as_str() {
            "--keep-going" | "-k" => options.keep_going = true,
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            name => options.filters.push(name.to_string()),
        }
    }
    Ok(options)
}

/// `cargo xtask qemu ARCH`: build and boot one example kernel.
fn qemu(root: &Path, arch: &str) -> Result<(), String> {
    let kernel = harness::kernel(arch)?;
    setup::run_setup(root)?;
    harness::boot(root, kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_options_parse() {
        let args = ["--keep-going".to_string(), "clippy".to_string()];
        let options = parse_test_options(&args).unwrap();
        assert!(options.keep_going);
        assert_eq!(options.filters, ["clippy"]);
        assert!(parse_test_options(&["--nope".to_string()]).is_err());
    }

    #[test]
    fn the_root_holds_the_workspace_manifest() {
        assert!(repository_root().join("Cargo.toml").is_file());
        assert!(repository_root().join("xtask").is_dir());
    }
}
