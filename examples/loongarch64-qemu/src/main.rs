//! # loongarch64-qemu: the probe engine on emulated LoongArch64 hardware
//!
//! A bare-metal kernel for `qemu-system-loongarch64 -machine virt` that
//! boots from its ELF (no firmware), takes its own exceptions and hands
//! `break` traps and faults to `probe-core` with the `probe-hal-loongarch64`
//! backend. It then runs checks, each printed as one line, and ends with
//! `N passed, M failed`: QEMU exits 0 when every check passed (GED power
//! off) and 1 otherwise (pvpanic).
//!
//! What is checked: one test function per simulated instruction (every
//! conditional branch taken and not taken, `b`/`bl`/`jirl`, each
//! pc-relative form with a negative and a positive offset) and a spread of
//! stepped ones (ALU, loads, stores, shifts, floating point), each against
//! its unprobed result and register state; kretprobes on a recursive
//! function; aggregate probes with one disabled; unregister restoring the
//! bytes; every refused class with its reason; a probed load that faults;
//! uprobes and uretprobes on code running at PLV3; both CPUs of `-smp 2`
//! hitting the same probes while CPU 0 registers and unregisters others;
//! and jump-optimised probes (`checks/optimized.rs`): every word of 45
//! test functions probed optimisable and as a `break` probe against the
//! unprobed run, each reason a site stays a `break` probe, an optimised
//! probe hit on both CPUs with 0 breakpoint traps counted, a handler using
//! floating point through a detour, an optimised
//! kretprobe entry, a pc change through the detour's `ertn`, and 1,024
//! optimise/un-optimise/disable/unregister cycles on CPU 0 while CPU 1
//! calls the probed functions.
//!
//! Jump optimisation here: the linker script reserves `.detours` (4 pages)
//! right after `.text`, within `b`'s ±128 MiB of every probed function;
//! `probe_hal::opthook::set_opt_hook(&ENGINE)` at boot, with optimisation
//! switched off except during the optimised checks (the others count
//! breakpoint traps and steps); every text write is made with the other
//! CPU parked at a quiescent point ([`smp::stop_others`], Linux's
//! `stop_machine`), and a quiescent point whose caller would resume in a
//! displaced region, a detour or the trap text does not count for a grace
//! period. The optimised checks take 15-30 s of the run under TCG (the
//! churn's handshakes wait for CPU 1's vCPU thread).
//!
//! Build (nightly, `core` from source) and run:
//! ```text
//! cargo +nightly build -p loongarch64-qemu -Zbuild-std=core \
//!     --target loongarch64-unknown-none --release --target-dir target/nightly
//! timeout 60 qemu-system-loongarch64 -machine virt -m 1G -smp 2 -nographic \
//!     -net none -no-reboot -device pvpanic-pci,addr=7 -action panic=exit-failure \
//!     -kernel target/nightly/loongarch64-unknown-none/release/loongarch64-qemu
//! ```
//!
//! On the build host the crate is a trivial program, so the workspace
//! still builds and lints with `--workspace --all-targets`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod checks;
#[cfg(target_os = "none")]
mod clock;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod csr;
#[cfg(target_os = "none")]
mod exit;
#[cfg(target_os = "none")]
mod fixup;
#[cfg(target_os = "none")]
mod icache;
#[cfg(target_os = "none")]
mod kernel;
#[cfg(target_os = "none")]
mod runner;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod testfns;
#[cfg(target_os = "none")]
mod trap;
#[cfg(target_os = "none")]
mod user;

/// On the build host there is nothing to run: the kernel is built for
/// `loongarch64-unknown-none` and booted in QEMU.
#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "loongarch64-qemu is a bare-metal kernel: build it with \
         `cargo +nightly build -p loongarch64-qemu -Zbuild-std=core \
         --target loongarch64-unknown-none --release` and boot it with \
         qemu-system-loongarch64 (see the crate documentation)"
    );
}
