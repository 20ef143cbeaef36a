//! # x86_64-linux: the x86_64 backend and the probe engine on real traps
//!
//! Two programs prove `probe-hal-x86_64` and `probe-core` on a real CPU:
//! - `x86_64-linux` probes its own code: real `int3` traps arrive as
//!   `SIGTRAP`, and the signal handler plays the kernel (it hands the
//!   `ucontext` to the engine as the trap frame and supplies the kernel
//!   services with `mmap`/`mprotect`); `--bench` measures real trap round
//!   trips;
//! - `tracer` probes child processes through `ptrace`: uprobes and
//!   uretprobes in other address spaces.
//!
//! This library holds what both share: the probed test functions
//! ([`testfns`]), trap-frame views ([`frame`]), the handlers' recorders
//! ([`recorder`]), calling test functions ([`call`]) and the report
//! ([`report`]).

pub mod call;
pub mod frame;
pub mod recorder;
pub mod report;
pub mod testfns;
