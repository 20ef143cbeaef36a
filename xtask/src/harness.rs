//! Real-trap runs: the example kernels under QEMU and the host harnesses.
//! Each prints its checks and closes with `N passed, M failed`; a run
//! passes when its exit status is the expected one, no check failed and
//! at least the minimum number of checks passed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process;

/// An example kernel and how to boot it.
pub struct Kernel {
    /// Architecture name (`cargo xtask qemu <arch>`).
    pub arch: &'static str,
    /// `cargo` arguments that build it.
    pub build: &'static [&'static str],
    /// The ELF, relative to the repository root.
    pub elf: &'static str,
    /// QEMU program.
    pub qemu: &'static str,
    /// QEMU arguments before `-kernel <elf>`.
    pub qemu_args: &'static [&'static str],
    /// The exit status QEMU gives on success.
    pub pass_status: i32,
    /// The fewest passing checks the issue asks for.
    pub min_passed: u32,
}

/// The example kernels.
pub const KERNELS: &[Kernel] = &[
    Kernel {
        arch: "x86_64",
        build: &[
            "build",
            "--release",
            "-p",
            "x86_64-qemu",
            "--target",
            "x86_64-unknown-none",
        ],
        elf: "target/x86_64-unknown-none/release/x86_64-qemu",
        qemu: "qemu-system-x86_64",
        qemu_args: &[
            "-accel",
            "tcg",
            "-smp",
            "2",
            "-m",
            "128M",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ],
        pass_status: 33,
        min_passed: 77,
    },
    Kernel {
        arch: "riscv64",
        build: &[
            "build",
            "--release",
            "-p",
            "riscv64-qemu",
            "--target",
            "riscv64gc-unknown-none-elf",
        ],
        elf: "target/riscv64gc-unknown-none-elf/release/riscv64-qemu",
        qemu: "qemu-system-riscv64",
        qemu_args: &[
            "-machine",
            "virt",
            "-bios",
            "none",
            "-smp",
            "2",
            "-m",
            "128M",
            "-nographic",
            "-no-reboot",
        ],
        pass_status: 0,
        min_passed: 116,
    },
    Kernel {
        arch: "loongarch64",
        build: &[
            "+nightly",
            "build",
            "--release",
            "-p",
            "loongarch64-qemu",
            "-Zbuild-std=core",
            "--target",
            "loongarch64-unknown-none",
            "--target-dir",
            "target/nightly",
        ],
        elf: "target/nightly/loongarch64-unknown-none/release/loongarch64-qemu",
        qemu: "qemu-system-loongarch64",
        qemu_args: &[
            "-machine",
            "virt",
            "-m",
            "1G",
            "-smp",
            "2",
            "-nographic",
            "-net",
            "none",
            "-no-reboot",
            "-device",
            "pvpanic-pci,addr=7",
            "-action",
            "panic=exit-failure",
        ],
        pass_status: 0,
        min_passed: 171,
    },
    Kernel {
        arch: "aarch64",
        build: &[
            "build",
            "--release",
            "-p",
            "aarch64-qemu",
            "--target",
            "aarch64-unknown-none",
        ],
        elf: "target/aarch64-unknown-none/release/aarch64-qemu",
        qemu: "qemu-system-aarch64",
        qemu_args: &[
            "-machine",
            "virt",
            "-cpu",
            "max",
            "-smp",
            "2",
            "-m",
            "256M",
            "-nographic",
            "-no-reboot",
            "-semihosting",
        ],
        pass_status: 0,
        min_passed: 231,
    },
];

const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The kernel for `arch`.
pub fn kernel(arch: &str) -> Result<&'static Kernel, String> {
    KERNELS.iter().find(|k| k.arch == arch).ok_or_else(|| {
        let names: Vec<&str> = KERNELS.iter().map(|k| k.arch).collect();
        format!("unknown architecture `{arch}`: choose {}", names.join(", "))
    })
}

/// Build and boot `k`, then judge its report.
pub fn boot(root: &Path, k: &Kernel) -> Result<(), String> {
    process::run(
        Command::new("cargo").args(k.build).current_dir(root),
        BUILD_LIMIT,
    )
    .map_err(|e| e.to_string())?;
    let mut qemu = Command::new(k.qemu);
    qemu.args(k.qemu_args)
        .arg("-kernel")
        .arg(root.join(k.elf))
        .current_dir(root);
    judge(&mut qemu, k.pass_status, k.min_passed)
}

/// Run a harness command (already built) and judge its report.
pub fn judge(cmd: &mut Command, pass_status: i32, min_passed: u32) -> Result<(), String> {
    let text = process::display(cmd);
    let out = process::capture(cmd, RUN_LIMIT).map_err(|e| e.to_string())?;
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    let (passed, failed) = report(&out.stdout)
        .ok_or_else(|| format!("`{text}` printed no `N passed, M failed` line"))?;
    let status = out.status.code();
    if failed > 0 || status != Some(pass_status) || passed < min_passed {
        return Err(format!(
            "`{text}`: {passed} passed, {failed} failed, exit status {status:?} \
             (wanted 0 failed, at least {min_passed} passed, status {pass_status})"
        ));
    }
    Ok(())
}

/// The last `N passed, M failed` line of `output`.
pub fn report(output: &str) -> Option<(u32, u32)> {
    output.lines().rev().find_map(|line| {
        let line = line.trim();
        let (p, rest) = line.split_once(" passed, ")?;
        let f = rest.strip_suffix(" failed")?;
        Some((p.trim().parse().ok()?, f.trim().parse().ok()?))
    })
}

/// The x86_64 user-space harness (real SIGTRAPs in this process, including
/// 10^6 hits taken by four threads at once, about 5 s) and the ptrace
/// tracer (uprobes in child processes, signals during their steps): the
/// `x86_64-linux` step.
pub fn x86_64_linux(root: &Path) -> Result<(), String> {
    process::run(
        Command::new("cargo")
            .args(["build", "--release", "-p", "x86_64-linux", "--bins"])
            .current_dir(root),
        BUILD_LIMIT,
    )
    .map_err(|e| e.to_string())?;
    let bin = |name: &str| root.join("target/release").join(name);
    judge(Command::new(bin("x86_64-linux")).current_dir(root), 0, 78)?;
    judge(Command::new(bin("tracer")).current_dir(root), 0, 30)
}

/// The `qemu-riscv64` step.
pub fn qemu_riscv64(root: &Path) -> Result<(), String> {
    boot(root, kernel("riscv64")?)
}

/// The `qemu-loongarch64` step.
pub fn qemu_loongarch64(root: &Path) -> Result<(), String> {
    boot(root, kernel("loongarch64")?)
}

/// The `qemu-aarch64` step.
pub fn qemu_aarch64(root: &Path) -> Result<(), String> {
    boot(root, kernel("aarch64")?)
}

/// The `qemu-x86_64` step.
pub fn qemu_x86_64(root: &Path) -> Result<(), String> {
    boot(root, kernel("x86_64")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_the_last_summary_line() {
        let out = "check a ... ok\n3 passed, 1 failed\nmore\n41 passed, 0 failed\r\n";
        assert_eq!(report(out), Some((41, 0)));
        assert_eq!(report("nothing here"), None);
        assert_eq!(report("x passed, 0 failed"), None);
    }

    #[test]
    fn every_kernel_is_known_by_its_arch() {
        for k in KERNELS {
            assert_eq!(kernel(k.arch).unwrap().arch, k.arch);
            assert!(k.qemu_args.contains(&"-no-reboot"));
        }
        assert!(kernel("mips").is_err());
    }
}
