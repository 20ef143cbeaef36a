//! # probe-core: kprobes, kretprobes and uprobes for Rust kernels
//!
//! An allocation-free, `no_std` probe engine, generic over the instruction
//! set ([`probe_hal::Arch`]), the registration lock (any
//! [`lock_api::RawMutex`]) and the kernel's [`KernelServices`]. Capacities
//! are const generics; the trap path takes no lock and never allocates, and
//! finds a probe in O(1).
//!
//! A kernel:
//! 1. implements [`KernelServices`] (memory, text patching, slot pages,
//!    current CPU/task, grace period, symbols);
//! 2. puts an [`Engine`] in a `static` and installs it as the return
//!    hook of its backend's code return trampoline with
//!    [`probe_hal::rethook::set_return_hook`] (kernel kretprobes are
//!    refused until then);
//! 3. calls [`Engine::handle_breakpoint`] from its breakpoint trap and
//!    [`Engine::handle_fault`] from its fault traps, with its own trap
//!    frame (anything implementing [`probe_hal::Registers`]);
//! 4. calls [`Engine::release_task`] when a task exits, and the address
//!    space hooks ([`Engine::release_space`], [`Engine::fork_space`]) for
//!    uprobes.
//!
//! Then [`Engine::register_kprobe`], [`Engine::register_kretprobe`] and
//! friends do the rest. See `docs/porting.md` for adding an ISA.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

mod attach;
mod cpu;
mod engine;
mod file_probes;
mod install;
mod instances;
mod lifecycle;
mod optimize;
mod point;
mod probe;
mod register;
mod removed;
mod resolve;
mod rethook;
mod services;
mod space;
mod spec;
mod symbols;
mod sync;
mod table;
mod task;
mod trap;
mod trap_text;
mod xol;

pub use attach::{Attachment, ProbeHandler};
pub use engine::Engine;
pub use file_probes::{FileId, FileMapping, FileProbeId, FileUprobe, FileUprobes, UprobeHost};
pub use optimize::{NotOptimized, Optimization};
pub use register::{BatchError, OwnedProbe, Unregister};
pub use services::{KernelServices, Space, Symbol, TextPatchError};
pub use spec::{
    EntryAction, EntryHandler, Kprobe, Kretprobe, PostHandler, PreAction, PreHandler, ProbeContext,
    ProbeId, ProbeInfo, ProbeKind, ProbeSpec, ReturnHandler, Target, UserData, NO_DATA,
};
pub use symbols::SymbolTable;

/// The protected trap-path range: the `probe_trap_text` section, where the
/// engine's trap and return paths, the backends' detour entries and hook
/// dispatch live (never probed). A kernel whose grace period interrupts
/// CPUs asks it, with [`Engine::in_slot`] and [`Engine::in_optimized_code`],
/// whether an interrupted pc is inside the probe machinery.
pub fn trap_text_range() -> core::ops::Range<usize> {
    trap_text::trap_text()
}
pub use task::TaskState;
pub use trap::{FaultOutcome, TrapCause, TrapOutcome};

pub use probe_hal::{Arch, ExecMode, MemoryFault, ProbeError, ProbeErrorKind, Registers, SiteRule};

/// The backend of the compilation target (with the `native` feature).
#[cfg(all(feature = "native", target_arch = "x86_64"))]
pub type NativeArch = probe_hal_x86_64::X86_64;
/// The backend of the compilation target (with the `native` feature).
#[cfg(all(feature = "native", target_arch = "riscv64"))]
pub type NativeArch = probe_hal_riscv64::Riscv64;
/// The backend of the compilation target (with the `native` feature).
#[cfg(all(feature = "native", target_arch = "loongarch64"))]
pub type NativeArch = probe_hal_loongarch64::LoongArch64;
/// The backend of the compilation target (with the `native` feature).
#[cfg(all(feature = "native", target_arch = "aarch64"))]
pub type NativeArch = probe_hal_aarch64::Aarch64;

/// The compilation target's backend and what a kernel uses of it, under one
/// name on every ISA (with the `native` feature): the architecture, its
/// Linux `pt_regs` and the eBPF view of a frame, its `%REG` names, and its
/// `frame_registers!` macro for a trap frame defined in another crate.
#[cfg(all(
    feature = "native",
    any(
        target_arch = "x86_64",
        target_arch = "riscv64",
        target_arch = "loongarch64",
        target_arch = "aarch64"
    )
))]
pub mod native {
    mod pt_regs_program;
    #[cfg(target_arch = "aarch64")]
    pub use probe_hal_aarch64::{
        frame_registers, pt_regs_mut, with_pt_regs, Aarch64 as Arch, PtRegs, RegNames,
    };
    #[cfg(target_arch = "loongarch64")]
    pub use probe_hal_loongarch64::{
        frame_registers, pt_regs_mut, with_pt_regs, LoongArch64 as Arch, PtRegs, RegNames,
    };
    #[cfg(target_arch = "riscv64")]
    pub use probe_hal_riscv64::{
        frame_registers, pt_regs_mut, with_pt_regs, PtRegs, RegNames, Riscv64 as Arch,
    };
    #[cfg(target_arch = "x86_64")]
    pub use probe_hal_x86_64::{
        frame_registers, pt_regs_mut, with_pt_regs, PtRegs, RegNames, X86_64 as Arch,
    };
    pub use pt_regs_program::PtRegsProgram;
}
