//! Tasks: one kernel task per hart and one user task, each with the
//! engine's per-task state.
//!
//! The kernel has no scheduler: hart `h` runs kernel task `h`, and hart 0
//! switches to the user task for the duration of [`super::user::run`].

use core::sync::atomic::{AtomicUsize, Ordering};

use probe_core::TaskState;
use probe_hal_riscv64::Riscv64;

use super::layout::MAX_HARTS;
use super::trap::hart_id;
use super::user;

/// The user task's index.
const USER_TASK: usize = MAX_HARTS;

/// Every task's probe state: kernel tasks 0..MAX_HARTS, then the user task.
static TASKS: [TaskState<Riscv64>; MAX_HARTS + 1] = [const { TaskState::new() }; MAX_HARTS + 1];

/// The task each hart runs.
static CURRENT: [AtomicUsize; MAX_HARTS] = {
    let mut c = [const { AtomicUsize::new(0) }; MAX_HARTS];
    let mut h = 0;
    while h < MAX_HARTS {
        c[h] = AtomicUsize::new(h);
        h += 1;
    }
    c
};

/// The probe state of the task running on this hart.
#[link_section = "kernel_trap_text"]
pub fn current() -> &'static TaskState<Riscv64> {
    &TASKS[CURRENT[hart_id()].load(Ordering::Relaxed)]
}

/// The address space of the task running on this hart (0: the kernel).
#[link_section = "kernel_trap_text"]
pub fn current_asid() -> usize {
    if CURRENT[hart_id()].load(Ordering::Relaxed) == USER_TASK {
        user::ASID
    } else {
        0
    }
}

/// The kernel task of this hart.
pub fn kernel_task() -> &'static TaskState<Riscv64> {
    &TASKS[hart_id()]
}

/// The user task.
pub fn user_task() -> &'static TaskState<Riscv64> {
    &TASKS[USER_TASK]
}

/// This hart starts running the user task.
pub fn enter_user_task() {
    assert_eq!(hart_id(), 0, "the user task runs on hart 0");
    CURRENT[0].store(USER_TASK, Ordering::Relaxed);
}

/// This hart is back in its kernel task.
pub fn leave_user_task() {
    CURRENT[hart_id()].store(hart_id(), Ordering::Relaxed);
}
