//! The task side: the engine's per-task state, signal deferral during a
//! user step, and address-space teardown.

use super::{traps::ENGINE, Isa};
use crate::task::Task;

/// What each task carries for the engine.
pub type TaskExt = probe_core::TaskState<Isa>;

/// Hold a signal back while the task has a user step parked.
pub fn defer_signal(task: &Task) -> bool {
    ENGINE.should_defer_signal(&task.probe)
}

/// An address space is gone (exit of its last task, exec, failed fork).
pub fn on_space_gone(asid: usize) {
    let _ = ENGINE.release_space(asid);
}
