//! Per-task probe state the kernel embeds in its task structure.

use core::sync::atomic::AtomicU32;

use probe_hal::Arch;

use crate::cpu::FrameStack;

/// How many user-mode steps one task may have parked at once: its own, and
/// one more taken by a signal handler that hit another uprobe while the
/// first step was parked (when the kernel does not defer signals during a
/// step, see [`crate::Engine::should_defer_signal`]).
pub(crate) const TASK_STEPS: usize = 2;

/// The engine's state for one task: its return-probe instances (a LIFO
/// "shadow stack" of hijacked returns) and its in-flight user-mode steps.
///
/// The kernel embeds one in each task structure, returns the current task's
/// from [`crate::KernelServices::with_current_task`], and calls
/// [`crate::Engine::release_task`] when the task exits and
/// [`crate::Engine::exec_task`] when it execs.
pub struct TaskState<A: Arch> {
    /// Newest return-probe instance of this task (pool index + 1; 0: none).
    pub(crate) ret_head: AtomicU32,
    /// The task's out-of-line steps in flight (a user task may be
    /// preempted or migrate between its breakpoint and its step-end trap).
    pub(crate) steps: FrameStack<A, TASK_STEPS>,
}

// SAFETY: `ret_head` is atomic. `steps` is touched only by the engine's trap
// path running on behalf of the task that owns this state (one CPU at a
// time: a task runs on one CPU, and traps run with interrupts masked; the
// trap entry points' callers promise the services name the current task),
// or by `release_task`/`exec_task`, whose callers promise the task does not
// run meanwhile. Nested traps of the task follow `FrameStack`'s protocol.
unsafe impl<A: Arch> Sync for TaskState<A> {}

impl<A: Arch> TaskState<A> {
    /// A task with no probe state.
    pub const fn new() -> Self {
        Self {
            ret_head: AtomicU32::new(0),
            steps: FrameStack::new(),
        }
    }
}

impl<A: Arch> Default for TaskState<A> {
    fn default() -> Self {
        Self::new()
    }
}
