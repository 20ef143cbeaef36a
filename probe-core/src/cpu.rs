//! `CpuState`: what one CPU is doing inside the probe machinery.

use core::cell::UnsafeCell;

use probe_hal::Arch;

/// How deep probes may nest on one CPU (a probe hit while another's step is
/// in flight, e.g. in an exception taken from the slot).
pub(crate) const MAX_NESTING: usize = 4;

/// An out-of-line step in flight (on a CPU for kernel probes, in a task
/// for user probes). Kept small: the step end reads the rest from the
/// point, which stays alive until a grace period after it is unpublished.
pub(crate) struct StepFrame<A: Arch> {
    pub(crate) point: u32,
    pub(crate) run_post: bool,
    pub(crate) slot: usize,
    /// Address of the end-of-step marker.
    pub(crate) end: usize,
    pub(crate) state: A::StepState,
}

pub(crate) struct CpuInner<A: Arch> {
    /// A handler is running on this CPU.
    pub(crate) in_handler: bool,
    pub(crate) depth: usize,
    pub(crate) frames: [Option<StepFrame<A>>; MAX_NESTING],
}

impl<A: Arch> CpuInner<A> {
    /// Pop the newest step if `f` says it is the one.
    pub(crate) fn pop_if(&mut self, f: impl FnOnce(&StepFrame<A>) -> bool) -> Option<StepFrame<A>> {
        let top = self.depth.checked_sub(1)?;
        match self.frames[top] {
            Some(frame) if f(&frame) => {
                // Only `depth` says which frames are live: the slot is
                // simply overwritten by the next push.
                self.depth = top;
                Some(frame)
            }
            _ => None,
        }
    }

    /// Push a step; false when nesting is already at its limit.
    pub(crate) fn push(&mut self, frame: StepFrame<A>) -> bool {
        if self.depth == MAX_NESTING {
            return false;
        }
        self.frames[self.depth] = Some(frame);
        self.depth += 1;
        true
    }
}

/// See the module documentation.
pub(crate) struct CpuState<A: Arch> {
    inner: UnsafeCell<CpuInner<A>>,
}

// SAFETY: each `CpuState` is used only by its own CPU (indexed by
// `KernelServices::cpu_id`), from trap context with interrupts masked, so
// accesses never overlap; nested traps on the same CPU reach it through
// `with`, which never holds a borrow across a handler call.
unsafe impl<A: Arch> Sync for CpuState<A> {}

impl<A: Arch> CpuState<A> {
    pub(crate) const fn new() -> Self {
        Self {
            inner: UnsafeCell::new(CpuInner {
                in_handler: false,
                depth: 0,
                frames: [const { None }; MAX_NESTING],
            }),
        }
    }

    /// Run `f` on this CPU's state. `f` must not call a handler or anything
    /// that can trap into the engine.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut CpuInner<A>) -> T) -> T {
        // SAFETY: see the `Sync` impl; the borrow ends before `with` returns
        // and `f` cannot re-enter the engine.
        f(unsafe { &mut *self.inner.get() })
    }
}

impl<A: Arch> Clone for StepFrame<A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<A: Arch> Copy for StepFrame<A> {}
