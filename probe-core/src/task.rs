//! Per-task probe state the kernel embeds in its task structure.

use core::sync::atomic::{AtomicU32, Ordering};

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
///
/// The state carries its own lock: the engine's trap paths only try it
/// (a trap that finds it held misses its probe or is retried), and the
/// lifecycle entry points wait for it, so calling them while the task
/// still runs is defined (missed hits, retried traps), never a data race.
pub struct TaskState<A: Arch> {
    /// Newest return-probe instance of this task (pool index + 1; 0: none).
    pub(crate) ret_head: AtomicU32,
    /// The task's out-of-line steps in flight (a user task may be
    /// preempted or migrate between its breakpoint and its step-end trap).
    pub(crate) steps: FrameStack<A, TASK_STEPS>,
    /// Who holds this state: [`FREE`], [`HELD_BY_TRAP`] (a trap path on
    /// the task's behalf, or a read-only walker), or [`HELD_BY_LIFECYCLE`]
    /// (`release_task`, `exec_task`, `fork_space`, `detach_space`).
    lock: AtomicU32,
}

/// The task lock is free.
pub(crate) const FREE: u32 = 0;
/// Held by a trap path running on the task's behalf (interrupts masked,
/// one CPU, never migrates) or by a reader that only walks the list.
pub(crate) const HELD_BY_TRAP: u32 = 1;
/// Held by a lifecycle entry point running in task context.
pub(crate) const HELD_BY_LIFECYCLE: u32 = 2;

/// Exclusive access to a [`TaskState`]'s instance list and parked steps;
/// released on drop.
pub(crate) struct TaskGuard<'a, A: Arch> {
    pub(crate) task: &'a TaskState<A>,
}

impl<A: Arch> Drop for TaskGuard<'_, A> {
    #[inline(always)]
    fn drop(&mut self) {
        self.task.lock.store(FREE, Ordering::Release);
    }
}

// SAFETY: `ret_head`, `lock` and the depth of `steps` are atomic. The
// frames of `steps`, and every change of the instance list (`ret_head` and
// the pool links of the task's instances), are touched only by a holder of
// `lock` (a `TaskGuard`, taken with an Acquire compare-exchange and
// released with a Release store), so accesses from different threads are
// ordered. The one exception are the unsafe read-only walkers
// (`unwind_return_address`, `pending_return_frames`), which read the list
// without the lock when a trap path holds it: their callers promise the
// task is current (the holder is then the task's own trap path, suspended
// beneath the walker on this CPU, at a point where the list is consistent)
// or cannot run (no trap path can hold it).
unsafe impl<A: Arch> Sync for TaskState<A> {}

impl<A: Arch> TaskState<A> {
    /// A task with no probe state.
    pub const fn new() -> Self {
        Self {
            ret_head: AtomicU32::new(0),
            steps: FrameStack::new(),
            lock: AtomicU32::new(FREE),
        }
    }

    /// Take the lock with tag `by` if it is free right now (never waits).
    #[inline(always)]
    pub(crate) fn try_lock(&self, by: u32) -> Option<TaskGuard<'_, A>> {
        self.lock
            .compare_exchange(FREE, by, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| TaskGuard { task: self })
    }

    /// Take the lock with tag `by`, spinning while it is held. Only for
    /// task context outside the probe machinery: the holder is then a
    /// short trap path on another CPU, or another lifecycle call.
    pub(crate) fn lock(&self, by: u32) -> TaskGuard<'_, A> {
        loop {
            if let Some(g) = self.try_lock(by) {
                return g;
            }
            while self.lock.load(Ordering::Relaxed) != FREE {
                core::hint::spin_loop();
            }
        }
    }

    /// The lock's current tag ([`FREE`] when free).
    #[inline(always)]
    pub(crate) fn holder(&self) -> u32 {
        self.lock.load(Ordering::Acquire)
    }
}

impl<A: Arch> Default for TaskState<A> {
    fn default() -> Self {
        Self::new()
    }
}
