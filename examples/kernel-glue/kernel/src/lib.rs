//! # glue-kernel: a model of a modular Rust kernel wired to the probe engine
//!
//! The kernel's own subsystems, as small models that run on bare metal
//! (built for `x86_64-unknown-none` and `riscv64gc-unknown-none-elf`) and
//! on the host (its tests), behind [`platform::Platform`]:
//! - [`task`]: tasks behind `Arc`, `current()`, exit, exec, fork, signals;
//! - [`rcu`]: a grace period (every other online CPU passes a quiescent
//!   state);
//! - [`stop_machine`]: run a function with every other CPU parked;
//! - [`mm`]: kernel text patching, kernel memory access with fault
//!   recovery, executable pages, and user address spaces with
//!   copy-on-write pages;
//! - [`ksyms`]: a symbol table without sizes, as `/proc/kallsyms`;
//! - [`perf`]: a perf-event skeleton (an fd table, `SET_BPF`, close);
//! - [`trap`]: the trap dispatcher the CPU crate's entry code calls.
//!
//! [`probe`] holds **only the glue**: every line there exists because of
//! the probe crates. Outside it, the lines that exist for it end with the
//! comment `// probe hook` or name `probe::` (`cargo xtask glue-lines`
//! counts both).
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

pub mod ksyms;
pub mod mm;
pub mod perf;
pub mod platform;
pub mod probe; // probe hook
pub mod rcu;
pub mod stop_machine;
pub mod task;
pub mod trap;

/// Boot: the machine, the symbol table, then the probe engine (after
/// this, kretprobes can be registered).
pub fn boot(p: &'static dyn platform::Platform, symbols: &'static [(usize, &'static str)]) {
    platform::init(p);
    ksyms::init(symbols);
    probe::init(); // probe hook
}
