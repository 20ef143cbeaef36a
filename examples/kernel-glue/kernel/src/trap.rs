//! The trap dispatcher the CPU crate's entry code calls with its frame.

use glue_cpu::TrapKind;

#[cfg(target_arch = "riscv64")]
pub use glue_cpu::riscv64::TrapFrame;
#[cfg(not(target_arch = "riscv64"))]
pub use glue_cpu::x86_64::TrapFrame;

use crate::{platform, rcu};

/// What the entry code does after the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Resume from the frame.
    Resume,
    /// Deliver signal `n` to the current (user) task.
    Signal(u32),
    /// A kernel bug: stop.
    Oops,
}

/// Handle a trap (interrupts masked; `tf` is the interrupted context's).
pub fn dispatch(tf: &mut TrapFrame, kind: TrapKind) -> Disposition {
    let Some(kind) = crate::probe::traps::on_trap(tf, kind) else {
        // probe hook
        return Disposition::Resume;
    };
    match kind {
        TrapKind::Interrupt(_) | TrapKind::Syscall => {
            rcu::quiescent();
            Disposition::Resume
        }
        _ if tf.from_user() => Disposition::Signal(match kind {
            TrapKind::PageFault { .. } => 11,
            TrapKind::IllegalInstruction => 4,
            _ => 5,
        }),
        TrapKind::PageFault { .. } | TrapKind::IllegalInstruction => {
            match platform::get().fixup(tf.pc()) {
                Some(to) => {
                    tf.set_pc(to);
                    Disposition::Resume
                }
                None => Disposition::Oops,
            }
        }
        _ => Disposition::Oops,
    }
}
