//! # aarch64-qemu: the probe engine on emulated AArch64 hardware
//!
//! A bare-metal kernel for `qemu-system-aarch64 -machine virt -cpu max`
//! that starts at EL1 from its ELF, turns the MMU on (an identity map with
//! one EL0-accessible block for user tasks), takes its own exceptions and
//! hands `brk` traps and faults to `probe-core` with the `probe-hal-aarch64`
//! backend. It then runs checks, each printed as one line, and ends with
//! `N passed, M failed`; it leaves QEMU through semihosting with status 0
//! when every check passed and 1 otherwise.
//!
//! What is checked: one test function per simulated instruction (every
//! condition of `b.cond`, `cbz`/`cbnz`/`tbz`/`tbnz` taken and not taken in
//! both widths, `b`/`bl`/`br`/`blr`/`ret`, `adr`/`adrp` with negative and
//! positive offsets, literal loads of both widths and `ldrsw`) and a spread
//! of stepped ones (ALU, flag-setting and flag-reading, loads and stores
//! with sp-relative and pre/post-index addressing, LSE atomics, FP and
//! SIMD), each against its unprobed result and register state; kretprobes
//! on a recursive function; aggregate probes with one disabled; unregister
//! restoring the bytes; every refused class with its reason (a probe
//! inside an `ldaxr`/`stlxr` loop among them); a probed load that faults;
//! uprobes and uretprobes on code running at EL0 (a literal load among
//! them); and both CPUs of `-smp 2` hitting the same probes while CPU 0
//! registers and unregisters others, with text patched under a
//! stop-machine. Then jump-optimised probes (`checks::optimized`): every
//! instruction of the callable test functions optimised vs `brk` vs
//! unprobed with breakpoint traps counted per CPU (0 where optimised),
//! every reason a site is not optimised with its `brk` probe still
//! working, a BTI landing pad, an optimised kretprobe entry, a pc change
//! through the detour's `eret`, and CPU 0 optimising, un-optimising,
//! disabling and unregistering probes while CPU 1 calls the functions.
//!
//! Build and run:
//! ```text
//! cargo build -p aarch64-qemu --target aarch64-unknown-none --release
//! timeout 60 qemu-system-aarch64 -machine virt -cpu max -smp 2 -m 256M \
//!     -nographic -no-reboot -semihosting \
//!     -kernel target/aarch64-unknown-none/release/aarch64-qemu
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
mod console;
#[cfg(target_os = "none")]
mod exit;
#[cfg(target_os = "none")]
mod fixup;
#[cfg(target_os = "none")]
mod gic;
#[cfg(target_os = "none")]
mod kernel;
#[cfg(target_os = "none")]
mod mmu;
#[cfg(target_os = "none")]
mod runner;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod sysreg;
#[cfg(target_os = "none")]
mod testfns;
#[cfg(target_os = "none")]
mod trap;
#[cfg(target_os = "none")]
mod user;

/// On the build host there is nothing to run: the kernel is built for
/// `aarch64-unknown-none` and booted in QEMU.
#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "aarch64-qemu is a bare-metal kernel: build it with \
         `cargo build -p aarch64-qemu --target aarch64-unknown-none --release` \
         and boot it with qemu-system-aarch64 (see the crate documentation)"
    );
}
