//! The engine and every call of its `unsafe` entry points: the trap hooks
//! (breakpoint, faults) and the task lifecycle entries (exit, exec, fork),
//! whose obligations only these paths can keep. No single-step hook: on
//! x86_64 and riscv64 an out-of-line step ends with a breakpoint.

use glue_cpu::TrapKind;
use probe_core::{Engine, ExecMode, TrapOutcome};

use super::{errno::errno, registers::Frame, services::Services, Isa};
use crate::{rcu::MAX_CPUS, task::Task, trap::TrapFrame};

/// The kernel's probe engine: 64 probes, 64 return instances.
pub static ENGINE: Engine<Isa, spin::Mutex<()>, Services, 64, 64, MAX_CPUS> = Engine::new(Services);

/// Boot: return probes come back through the engine.
pub fn init() {
    let _ = probe_hal::rethook::set_return_hook(&ENGINE);
}

/// The trap hook, before the kernel's own handling: `None` when the trap
/// was the engine's, else what the kernel handles (a simulated access's
/// fault becomes a page fault of the probed instruction).
pub fn on_trap(tf: &mut TrapFrame, kind: TrapKind) -> Option<TrapKind> {
    let mode = [ExecMode::Kernel, ExecMode::User][tf.from_user() as usize];
    let f = &mut Frame(tf);
    // SAFETY: called by `trap::dispatch` with interrupts masked, on the CPU
    // and task the services name; `tf` is the interrupted context's.
    let outcome = unsafe {
        match kind {
            TrapKind::Breakpoint => ENGINE.handle_breakpoint(f, mode),
            TrapKind::PageFault { .. } | TrapKind::IllegalInstruction => {
                let _ = ENGINE.handle_fault(f, mode);
                return Some(kind);
            }
            _ => return Some(kind),
        }
    };
    match outcome {
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
    unsafe { ENGINE.fork_space(p, c, &parent.probe, &child.probe) }.map_err(errno)
}
