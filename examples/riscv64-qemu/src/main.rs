//! # riscv64-qemu: the probe engine on an emulated RV64GC machine
//!
//! A bare-metal kernel for `qemu-system-riscv64 -machine virt -bios none`
//! that runs as real kernels do: a small M-mode start-up delegates traps to
//! S-mode and drops there, where the kernel installs its own trap vector and
//! hands breakpoint and fault traps to the probe engine. It probes test
//! functions written in assembly (every simulated instruction, a spread of
//! stepped ones), return probes, refusals, a boundary sweep, a fault inside
//! a slot, uprobes and uretprobes on code running in U-mode, a two-hart
//! run, and jump-optimised probes (`jal` to a detour, no trap; see
//! README.md); it prints one line per check, then `N passed, M failed`, and exits
//! through the sifive_test device (non-zero on failure).
//!
//! Build and boot:
//! ```text
//! cargo build -p riscv64-qemu --target riscv64gc-unknown-none-elf --release
//! timeout 60 qemu-system-riscv64 -machine virt -bios none -nographic -no-reboot \
//!     -smp 2 -kernel target/riscv64gc-unknown-none-elf/release/riscv64-qemu
//! ```
//! On the host the crate builds to a stub that says so.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(all(target_os = "none", target_arch = "riscv64"))]
mod kernel;

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "riscv64-qemu is a bare-metal kernel. Build it with\n  \
         cargo build -p riscv64-qemu --target riscv64gc-unknown-none-elf --release\n\
         and boot it with\n  \
         qemu-system-riscv64 -machine virt -bios none -nographic -no-reboot -smp 2 \
         -kernel target/riscv64gc-unknown-none-elf/release/riscv64-qemu"
    );
}
