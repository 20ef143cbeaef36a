//! Every call of the engine's `unsafe` entry points: the trap hook
//! (breakpoint, faults) and the task lifecycle entries (exit, exec, fork),
//! whose obligations only these paths can keep. No single-step hook: on
//! x86_64 and riscv64 an out-of-line step ends with a breakpoint.

use glue_cpu::TrapKind;
use probe_core::{ExecMode, TrapCause, TrapOutcome};

use super::{registers::Frame, ENGINE};
use crate::{task::Task, trap::TrapFrame};

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

/// Task exit.
pub fn on_exit(task: &Task) {
    // SAFETY: `task::exit` runs once the task never runs again.
    unsafe { ENGINE.release_task(&task.probe) }
}

/// Exec, before the new program runs.
pub fn on_exec(task: &Task) {
    // SAFETY: `task::exec` runs on the current task's exec path.
    unsafe { ENGINE.exec_task(&task.probe) }
}

/// Fork: the child's copy of the space loses the breakpoints.
pub fn on_fork(parent: &Task, child: &Task) -> Result<(), i32> {
    let (p, c) = (parent.asid(), child.asid());
    // SAFETY: `task::fork` runs on the forking task; the child never ran.
    Ok(unsafe { ENGINE.fork_space(p, c, &parent.probe, &child.probe) }?)
}
