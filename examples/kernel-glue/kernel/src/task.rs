//! Tasks: reference-counted, one current task per CPU, and the exit, exec,
//! fork and signal paths.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::{mm, platform, rcu};

/// A task.
pub struct Task {
    /// Its id.
    pub tid: usize,
    /// Its address space (changed by exec).
    space: AtomicUsize,
    /// Signals pending (bit `n - 1` for signal `n`).
    pub pending: AtomicU64,
    /// The probe engine's per-task state.
    pub probe: probe_core::TaskState<crate::probe::Isa>, // probe hook
}

impl Task {
    /// A task in address space `asid` (0: a kernel thread).
    pub fn new(tid: usize, asid: usize) -> Arc<Task> {
        Arc::new(Task {
            tid,
            space: AtomicUsize::new(asid),
            pending: AtomicU64::new(0),
            probe: Default::default(), // probe hook
        })
    }

    /// Its address space.
    pub fn asid(&self) -> usize {
        self.space.load(Ordering::Relaxed)
    }
}

/// The current task of each CPU. Taken only by its own CPU, with
/// interrupts masked around `switch_to`, so a trap never finds it held.
static CURRENT: [spin::Mutex<Option<Arc<Task>>>; rcu::MAX_CPUS] =
    [const { spin::Mutex::new(None) }; rcu::MAX_CPUS];

/// The task running on this CPU (`None`: boot, idle).
pub fn current() -> Option<Arc<Task>> {
    CURRENT[platform::get().cpu_id()].lock().clone()
}

/// Switch this CPU to `next` (a quiescent state for the grace period).
pub fn switch_to(next: Option<Arc<Task>>) {
    *CURRENT[platform::get().cpu_id()].lock() = next;
    rcu::quiescent();
}

/// `task` exited and never runs again; its space goes with it when
/// `last_in_space`.
pub fn exit(task: Arc<Task>, last_in_space: bool) {
    let _ = crate::probe::ENGINE.release_task(&task.probe); // probe hook
    if last_in_space {
        drop_space(task.asid());
    }
}

fn drop_space(asid: usize) {
    let _ = crate::probe::ENGINE.release_space(asid); // probe hook
    mm::remove_space(asid);
}

/// The current task `task` execs into the new space `asid`; the old space
/// goes when `last_in_space`.
pub fn exec(task: &Task, asid: usize, last_in_space: bool) {
    let _ = crate::probe::ENGINE.exec_task(&task.probe); // probe hook
    let old = task.space.swap(asid, Ordering::Relaxed);
    if last_in_space {
        drop_space(old);
    }
}

/// The current task `parent` forks: the child gets a copy-on-write copy
/// of its space as `child_asid`. An errno (negative) on failure.
pub fn fork(parent: &Task, tid: usize, child_asid: usize) -> Result<Arc<Task>, i32> {
    let space = mm::space(parent.asid()).ok_or(-14)?;
    space.fork(child_asid);
    let child = Task::new(tid, child_asid);
    let probe = &crate::probe::ENGINE; // probe hook
    if let Err(e) = probe.fork_space(parent.asid(), child_asid, &parent.probe, &child.probe) {
        // probe hook
        drop_space(child_asid);
        return Err(e.into());
    }
    Ok(child)
}

/// Send signal `sig` to `task`; returns whether it may be delivered now
/// (else it stays pending until the task's next return to user mode).
pub fn signal(task: &Task, sig: u32) -> bool {
    task.pending.fetch_or(1 << (sig - 1), Ordering::Relaxed);
    !crate::probe::ENGINE.should_defer_signal(&task.probe) // probe hook
}
