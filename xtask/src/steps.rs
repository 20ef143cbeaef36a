//! The steps of every xtask command, as data.
//!
//! To add a step (a QEMU boot, an example harness), add a row to the table
//! of the command it belongs to. Every step runs under its wall-clock
//! `timeout`: when it is up, the step and everything it started is killed.

use std::path::Path;
use std::time::Duration;

use crate::harness;
use crate::no_alloc::check_no_alloc;
use crate::setup::run_setup;

mod parse_fuzz;
mod publish;

/// One named step of a command.
pub struct Step {
    /// Short name, printed in headers and the summary, and usable as a
    /// filter (`cargo xtask test clippy`).
    pub name: &'static str,
    /// What it does.
    pub action: Action,
    /// Wall-clock limit; the step fails and is killed after it.
    pub timeout: Duration,
}

/// What a step does.
pub enum Action {
    /// Run a program from the repository root.
    Run {
        /// The program (looked up on PATH).
        program: &'static str,
        /// Its arguments.
        args: &'static [&'static str],
    },
    /// A check written in Rust, given the repository root. It runs any
    /// command it needs through `process` with its own time limits.
    Check(fn(&Path) -> Result<(), String>),
}

const fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

const fn cargo(args: &'static [&'static str]) -> Action {
    Action::Run {
        program: "cargo",
        args,
    }
}

/// Install what the other steps need (first step of every command).
const SETUP: Step = Step {
    name: "setup",
    action: Action::Check(run_setup),
    timeout: minutes(30),
};

/// `cargo xtask test`: everything CI checks, in order; the first failure
/// stops the run (unless `--keep-going`).
pub const TEST: &[Step] = &[
    SETUP,
    Step {
        name: "fmt",
        action: cargo(&["fmt", "--all", "--check"]),
        timeout: minutes(5),
    },
    Step {
        name: "clippy",
        action: cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        timeout: minutes(30),
    },
    Step {
        // The library crates' API docs, rustdoc warnings denied (broken
        // intra-doc links, links to private items).
        name: "doc",
        action: Action::Check(publish::doc),
        timeout: minutes(10),
    },
    Step {
        // Every library crate packaged and built from its package, as
        // crates.io would get it (`publish = false` leaves the rest out).
        name: "publish-dry-run",
        action: Action::Check(publish::dry_run),
        timeout: minutes(20),
    },
    Step {
        name: "test",
        action: cargo(&["test", "--workspace"]),
        timeout: minutes(30),
    },
    Step {
        name: "no-std-x86_64",
        action: cargo(&[
            "build",
            "-p",
            "probe-hal",
            "-p",
            "probe-core",
            "-p",
            "probe-hal-x86_64",
            "--features",
            "probe-core/native",
            "--target",
            "x86_64-unknown-none",
        ]),
        timeout: minutes(15),
    },
    Step {
        name: "no-std-riscv64",
        action: cargo(&[
            "build",
            "-p",
            "probe-hal",
            "-p",
            "probe-core",
            "-p",
            "probe-hal-riscv64",
            "--features",
            "probe-core/native",
            "--target",
            "riscv64gc-unknown-none-elf",
        ]),
        timeout: minutes(15),
    },
    Step {
        name: "no-std-aarch64",
        action: cargo(&[
            "build",
            "-p",
            "probe-hal",
            "-p",
            "probe-core",
            "-p",
            "probe-hal-aarch64",
            "--features",
            "probe-core/native",
            "--target",
            "aarch64-unknown-none",
        ]),
        timeout: minutes(15),
    },
    Step {
        // No prebuilt core for loongarch64: nightly builds it from source,
        // in its own target dir so it does not invalidate the stable cache.
        name: "no-std-loongarch64",
        action: cargo(&[
            "+nightly",
            "build",
            "-p",
            "probe-hal",
            "-p",
            "probe-core",
            "-p",
            "probe-hal-loongarch64",
            "-Zbuild-std=core",
            "--features",
            "probe-core/native",
            "--target",
            "loongarch64-unknown-none",
            "--target-dir",
            "target/nightly",
        ]),
        timeout: minutes(20),
    },
    Step {
        // Miri (Stacked Borrows, data races) over a named subset of the
        // custom-arch suite (return probes with release_task of a stopped
        // task, nested traps, real threads as CPUs, the unwinder called from
        // a return handler) and probe-core's unit tests, in its own target
        // dir; tests too heavy for it are #[cfg_attr(miri, ignore)]. The
        // tests leak their worlds and engines on purpose ('static services),
        // hence -Zmiri-ignore-leaks. Includes the sysroot build.
        name: "miri",
        action: Action::Run {
            program: "env",
            args: &[
                "MIRIFLAGS=-Zmiri-ignore-leaks",
                "cargo",
                "+nightly",
                "miri",
                "test",
                "--target-dir",
                "target/miri",
                "-p",
                "probe-core",
                "-p",
                "custom-arch",
                "--lib",
                "--test",
                "kretprobes",
                "--test",
                "traps",
                "--test",
                "threads",
                "--test",
                "return_handler_unwind",
                "--test",
                "attachments",
            ],
        },
        timeout: minutes(5),
    },
    Step {
        // Miri over probe-events' ring buffer: writers on three threads and
        // a concurrent reader, both full-ring modes, exact counts (sizes
        // cut down under cfg(miri)); data races and aliasing checked.
        name: "miri-ring",
        action: Action::Run {
            program: "env",
            args: &[
                "MIRIFLAGS=-Zmiri-ignore-leaks",
                "cargo",
                "+nightly",
                "miri",
                "test",
                "--target-dir",
                "target/miri",
                "-p",
                "probe-events",
                "--test",
                "ring",
            ],
        },
        timeout: minutes(10),
    },
    Step {
        // loom: every interleaving of the probe table, the instance pool
        // and a record's generation+count (`cfg(loom)`, probe-core/src/
        // sync.rs), in its own target dir.
        name: "loom",
        action: Action::Run {
            program: "env",
            args: &[
                "RUSTFLAGS=--cfg loom",
                "cargo",
                "test",
                "--release",
                "--target-dir",
                "target/loom",
                "-p",
                "probe-core",
                "--lib",
                "loom",
            ],
        },
        timeout: minutes(5),
    },
    Step {
        name: "no-alloc",
        action: Action::Check(check_no_alloc),
        timeout: minutes(10),
    },
    Step {
        // Nothing the trap path calls may be probeable: the x86_64 kernel's
        // probe_trap_text section is disassembled, and the functions it
        // runs are refused as probe targets in debug and release builds.
        name: "trap-path",
        action: Action::Check(crate::trap_path::check),
        timeout: minutes(15),
    },
    Step {
        name: "trap-path-release",
        action: cargo(&[
            "test",
            "--release",
            "-p",
            "engine-bench",
            "--test",
            "trap_path",
        ]),
        timeout: minutes(15),
    },
    Step {
        name: "x86_64-linux",
        action: Action::Check(harness::x86_64_linux),
        timeout: minutes(25),
    },
    Step {
        name: "qemu-x86_64",
        action: Action::Check(harness::qemu_x86_64),
        timeout: minutes(25),
    },
    Step {
        name: "qemu-riscv64",
        action: Action::Check(harness::qemu_riscv64),
        timeout: minutes(25),
    },
    Step {
        name: "qemu-loongarch64",
        action: Action::Check(harness::qemu_loongarch64),
        timeout: minutes(25),
    },
    Step {
        name: "qemu-aarch64",
        action: Action::Check(harness::qemu_aarch64),
        timeout: minutes(25),
    },
    Step {
        // The exhaustive decoder sweeps (every 16- and 32-bit word) and the
        // x86_64 differential against iced-x86 (10^8 strings) are
        // `#[ignore]`d in debug test runs and run here, optimised.
        name: "decoder-sweeps",
        action: cargo(&[
            "test",
            "--release",
            "-p",
            "probe-hal-riscv64",
            "-p",
            "probe-hal-loongarch64",
            "-p",
            "probe-hal-aarch64",
            "-p",
            "probe-hal-x86_64",
            "--",
            "--ignored",
        ]),
        timeout: minutes(30),
    },
    Step {
        // The probe-events parser on 10^5 random definitions, optimised: no
        // panic, and whatever parses prints back to itself.
        name: "parse-fuzz",
        action: Action::Check(parse_fuzz::test),
        timeout: minutes(20),
    },
    Step {
        // The coverage measurement on the first functions of each corpus
        // (`cargo xtask coverage` runs all of it): fails when a pc-reading
        // instruction is stepped out of line without a fix-up.
        name: "coverage-sample",
        action: Action::Check(crate::coverage::sample),
        timeout: minutes(15),
    },
    Step {
        // The model kernel (examples/kernel-glue): built for x86_64 and
        // riscv64 bare metal, its host tests (the x86_64 glue on real
        // traps), then the glue count: `unsafe` only in its trap hooks, no
        // register copy, and no more lines than glue_lines::CEILING (the
        // goal of 120, issue 11, is `cargo xtask glue-lines`'s: not met
        // yet, the step prints how far).
        name: "glue",
        action: Action::Check(crate::glue_lines::step),
        timeout: minutes(30),
    },
];

/// `cargo xtask demo`: the main demonstration. The QEMU kernels come
/// first, and each begins with its probe-events trace (a kprobe_events
/// script applied as text, the trace printed in Linux's format).
pub const DEMO: &[Step] = &[
    SETUP,
    Step {
        name: "qemu-x86_64",
        action: Action::Check(harness::qemu_x86_64),
        timeout: minutes(25),
    },
    Step {
        name: "qemu-riscv64",
        action: Action::Check(harness::qemu_riscv64),
        timeout: minutes(25),
    },
    Step {
        name: "qemu-loongarch64",
        action: Action::Check(harness::qemu_loongarch64),
        timeout: minutes(25),
    },
    Step {
        name: "qemu-aarch64",
        action: Action::Check(harness::qemu_aarch64),
        timeout: minutes(25),
    },
    Step {
        name: "custom-arch",
        action: cargo(&["run", "-p", "custom-arch", "--bin", "demo"]),
        timeout: minutes(15),
    },
    Step {
        name: "x86_64-linux",
        action: Action::Check(harness::x86_64_linux),
        timeout: minutes(25),
    },
];

/// `cargo xtask bench`: the engine's cost per hit.
pub const BENCH: &[Step] = &[
    SETUP,
    Step {
        name: "custom-arch",
        action: cargo(&["run", "--release", "-p", "custom-arch", "--bin", "bench"]),
        timeout: minutes(30),
    },
    Step {
        name: "x86_64-real-traps",
        action: cargo(&[
            "run",
            "--release",
            "-p",
            "x86_64-linux",
            "--bin",
            "x86_64-linux",
            "--",
            "--bench",
        ]),
        timeout: minutes(20),
    },
    Step {
        name: "x86_64-vs-kprobe-0.6",
        action: cargo(&["bench", "-p", "engine-bench", "--bench", "engine"]),
        timeout: minutes(20),
    },
    Step {
        // Instructions per jump-optimised hit (a real detour, built by the
        // engine, run under callgrind), with the breakdown; goal <= 120.
        name: "x86_64-optprobe",
        action: cargo(&["bench", "-p", "engine-bench", "--bench", "optprobe"]),
        timeout: minutes(20),
    },
    Step {
        // A probe event (two registers and a string) beside a bare kprobe,
        // and the ring buffer's write throughput from 1 and 2 threads.
        name: "events",
        action: cargo(&["bench", "-p", "engine-bench", "--bench", "events"]),
        timeout: minutes(20),
    },
];

/// `cargo xtask soak`: the long runs that do not fit CI's time budget.
pub const SOAK: &[Step] = &[
    SETUP,
    Step {
        name: "model-sequences",
        action: Action::Check(crate::soak::model),
        timeout: minutes(60),
    },
    Step {
        // 4 threads, 10^7 real int3 hits while a fifth thread registers
        // and unregisters probes on the same functions.
        name: "x86_64-threads",
        action: cargo(&[
            "run",
            "--release",
            "-p",
            "x86_64-linux",
            "--bin",
            "x86_64-linux",
            "--",
            "--soak",
        ]),
        timeout: minutes(20),
    },
    Step {
        // The probe-events parser on 10^7 random definitions.
        name: "parse-fuzz",
        action: Action::Check(parse_fuzz::soak),
        timeout: minutes(50),
    },
];

/// `cargo xtask coverage`: every backend over every instruction of real
/// binaries (docs/coverage.md).
pub const COVERAGE: &[Step] = &[
    SETUP,
    Step {
        name: "coverage",
        action: Action::Check(crate::coverage::full),
        timeout: minutes(40),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_starts_with_setup_and_names_are_unique() {
        for steps in [TEST, DEMO, BENCH, SOAK, COVERAGE] {
            assert_eq!(steps[0].name, "setup");
            for (i, a) in steps.iter().enumerate() {
                assert!(
                    steps[i + 1..].iter().all(|b| b.name != a.name),
                    "duplicate step {}",
                    a.name
                );
                assert!(a.timeout > Duration::ZERO);
            }
        }
    }

    #[test]
    fn the_nightly_build_has_its_own_target_dir() {
        let step = TEST
            .iter()
            .find(|s| s.name == "no-std-loongarch64")
            .unwrap();
        let Action::Run { args, .. } = &step.action else {
            panic!("a command");
        };
        assert_eq!(args[0], "+nightly");
        assert!(args
            .windows(2)
            .any(|w| w == ["--target-dir", "target/nightly"]));
    }
}
