//! The one call of an `unsafe` entry point of the engine: the trap hook
//! (breakpoint, faults), whose obligations only the trap path can keep.
//! The task lifecycle entries (exit, exec, fork) are safe and called
//! directly from the hooks in `task.rs`. No single-step hook: on x86_64
//! and riscv64 an out-of-line step ends with a breakpoint.

use glue_cpu::TrapKind;
use probe_core::{ExecMode, TrapCause, TrapOutcome};

use super::{registers::Frame, ENGINE};
use crate::trap::TrapFrame;

/// The trap hook, before the kernel's own handling: `None` when the trap
/// was the engine's, else what the kernel handles (a simulated access's
/// fault becomes a page fault of the probed instruction).
pub fn on_trap(tf: &mut TrapFrame, kind: TrapKind) -> Option<TrapKind> {
    let cause = match kind {
        TrapKind::Breakpoint => TrapCause::Breakpoint,
        TrapKind::PageFault { .. } | TrapKind::IllegalInstruction => TrapCause::Fault,
        _ => return Some(kind),
    };
    let mode = [ExecMode::Kernel, ExecMode::User][tf.from_user() as usize];
    // SAFETY: called by `trap::dispatch` with interrupts masked, on the CPU
    // and task the services name; `tf` is the interrupted context's.
    match unsafe { ENGINE.handle_trap(&mut Frame(tf), mode, cause) } {
        TrapOutcome::Handled => None,
        TrapOutcome::Fault { addr } => Some(TrapKind::PageFault { addr, write: false }),
        _ => Some(kind),
    }
}
