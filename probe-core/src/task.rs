//! Per-task probe state the kernel embeds in its task structure.

use core::cell::UnsafeCell;
use core::sync::atomic::AtomicU32;

use probe_hal::Arch;

use crate::cpu::StepFrame;

/// The engine's state for one task: its return-probe instances (a LIFO
/// "shadow stack" of hijacked returns) and its in-flight user-mode step.
///
/// The kernel embeds one in each task structure, returns the current task's
/// from [`crate::KernelServices::task_state`], and calls
/// [`crate::Engine::release_task`] when the task exits.
pub struct TaskState<A: Arch> {
    /// Newest return-probe instance of this task (pool index + 1; 0: none).
    pub(crate) ret_head: AtomicU32,
    /// The task's out-of-line step in flight (a user task may be preempted
    /// or migrate between its breakpoint and its step-end trap).
    pub(crate) step: UnsafeCell<Option<StepFrame<A>>>,
}

// SAFETY: `ret_head` is atomic. `step` is touched only by the engine's trap
// path running on behalf of the task that owns this state (one CPU at a
// time: a task runs on one CPU, and traps run with interrupts masked), or by
// `release_task` after the task stopped running.
unsafe impl<A: Arch> Sync for TaskState<A> {}

impl<A: Arch> TaskState<A> {
    /// A task with no probe state.
    pub const fn new() -> Self {
        Self {
            ret_head: AtomicU32::new(0),
            step: UnsafeCell::new(None),
        }
    }
}

impl<A: Arch> Default for TaskState<A> {
    fn default() -> Self {
        Self::new()
    }
}
