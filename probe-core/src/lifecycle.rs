//! Task lifecycle hooks: exit, exec, and signals during a user step.
//!
//! The hooks are safe functions: a [`TaskState`] carries its own lock,
//! which the trap paths only try (on failure a probe hit is missed, or a
//! user trap is retried or answered as not the engine's) and the hooks
//! wait for from task context (from a probe handler they fail with
//! [`ProbeErrorKind::InTrapContext`]). A hook called while the task still
//! runs is a kernel bug with defined effects, never a data race.
//!
//! A user task's out-of-line step is parked in its [`TaskState`] between
//! the breakpoint and the step-end trap, and keeps its probe point (and
//! slot) alive while parked. The kernel's part:
//! - **exit**: [`Engine::release_task`] once the task will never run again;
//! - **exec**: [`Engine::exec_task`] on the execing task (its user state
//!   goes, its kernel return instances stay: the exec system call itself
//!   returns through them), then [`Engine::release_space`] for the old
//!   address space;
//! - **signal delivery**: before setting up a signal frame, ask
//!   [`Engine::should_defer_signal`]; while it says yes, keep the signal
//!   pending and let the task return to user mode: it runs the one
//!   instruction in its slot, traps at the step end, and the signal is
//!   delivered on the way out of that trap (Linux: `uprobe_deny_signal`).
//!   A kernel that must deliver at once (a fatal signal, or no deferral
//!   support) calls [`Engine::abort_user_step`] instead: the pc goes back
//!   to the probe address, the step is dropped, and the probe fires again
//!   when the task resumes there (Linux: `arch_uprobe_abort_xol`).

use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::{Arch, Registers};

use crate::engine::Engine;
use crate::services::{KernelServices, Space};
use crate::task::{TaskGuard, TaskState, HELD_BY_LIFECYCLE, HELD_BY_TRAP};
use crate::{ProbeError, ProbeErrorKind};

impl<
        A: Arch,
        L: RawMutex,
        K: KernelServices<A>,
        const PROBES: usize,
        const INSTANCES: usize,
        const CPUS: usize,
        const PAGES: usize,
        const DATA: usize,
    > Engine<A, L, K, PROBES, INSTANCES, CPUS, PAGES, DATA>
{
    /// The kernel calls this when a task exits (or before reusing its
    /// [`TaskState`]): its return instances go back to the pool and its
    /// parked user steps are dropped (their points may then be freed).
    ///
    /// Call it once the task no longer runs. Called too early, the outcome
    /// is still defined: a trap path of the task running meanwhile on
    /// another CPU is waited for; a step-end trap the task takes later is
    /// not the engine's (its step is gone), a return into a user
    /// trampoline is not the engine's, and a kernel return into the
    /// trampoline panics (its instance is gone).
    ///
    /// [`ProbeErrorKind::InTrapContext`] (nothing changed) from a probe
    /// handler or the trap path.
    pub fn release_task(&self, task: &TaskState<A>) -> Result<(), ProbeError> {
        let guard = self.lock_task(task)?;
        self.drop_task_state(&guard, |_| true);
        Ok(())
    }

    /// `task`'s lock for a lifecycle call: refused from trap context (the
    /// holder could be the interrupted context on this CPU), else waited
    /// for (the holder is a short trap path on another CPU, or another
    /// lifecycle call).
    pub(crate) fn lock_task<'t>(
        &self,
        task: &'t TaskState<A>,
    ) -> Result<TaskGuard<'t, A>, ProbeError> {
        if self.in_trap_context() {
            return Err(ProbeError::new(ProbeErrorKind::InTrapContext, 0));
        }
        Ok(task.lock(HELD_BY_LIFECYCLE))
    }

    /// The task execs: drop its parked user steps and the return instances
    /// that return into user space (the old program is gone), keeping its
    /// kernel return instances (frames of the exec path itself). Call it
    /// from the exec path before the new program runs, then
    /// [`Engine::release_space`] for the old space if no other task uses it.
    ///
    /// Meant for the current task from its exec path; on another task
    /// that still runs, the outcome is defined as for
    /// [`Engine::release_task`]. [`ProbeErrorKind::InTrapContext`]
    /// (nothing changed) from a probe handler or the trap path.
    pub fn exec_task(&self, task: &TaskState<A>) -> Result<(), ProbeError> {
        let guard = self.lock_task(task)?;
        self.drop_task_state(&guard, |inst| inst.user);
        Ok(())
    }

    /// Whether the kernel should hold back signal delivery to `task` for
    /// now: it has an out-of-line step parked, which completes after one
    /// instruction (see the module documentation). Safe to call from
    /// anywhere; takes no lock.
    pub fn should_defer_signal(&self, task: &TaskState<A>) -> bool {
        task.steps.depth() > 0
    }

    /// Settle the current task's parked user step whose slot holds its pc,
    /// so a signal can be delivered at once: when the copied instruction
    /// has not run yet (pc at the slot's start), the pc goes back to the
    /// probe address and the step is dropped (the probe fires again when
    /// the task resumes there); when it has run and only the step-end trap
    /// is pending (an interrupt came in between), the step is completed
    /// now, post-handlers included, as that trap would have. Returns false
    /// (nothing changed) when the task has no step parked at that pc, or
    /// when its state is busy (a lifecycle call on it runs elsewhere).
    ///
    /// # Safety
    /// Called with interrupts masked on behalf of the current task (the one
    /// the services' `with_current_task` names, in the space `current_space`
    /// names), with `regs` its user-mode frame.
    pub unsafe fn abort_user_step<R: Registers>(&self, regs: &mut R) -> bool {
        let pc = regs.pc();
        let frame = self.services.with_current_task(|task| {
            let _guard = task.try_lock(HELD_BY_TRAP)?;
            // SAFETY: the task's lock is held.
            unsafe {
                task.steps
                    .take(|f| pc >= f.slot && pc < f.slot + A::SLOT_LEN, |_| {})
            }
        });
        let Some(Some(f)) = frame else { return false };
        if pc == f.end {
            let space = Space::User(self.services.current_space());
            self.complete_step(regs, space, self.cpu_index(), &f);
        } else {
            let info = self.points[f.point as usize].info();
            if let Some(decoded) = &info.decoded {
                A::abort_step(decoded, regs, info.addr, f.state);
            }
        }
        self.points[f.point as usize]
            .parked
            .fetch_sub(1, Ordering::Release);
        true
    }
}
