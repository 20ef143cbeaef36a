//! `CpuState`: what one CPU is doing inside the probe machinery.
//!
//! Only its own CPU touches a `CpuState`, from trap context. Traps nest on
//! one CPU (a fault in an out-of-line slot, an NMI-like exception that hits
//! a probe while the state is being changed), so nothing here holds a
//! reference across a point where a nested trap may run: the flags are
//! atomics, and step frames are reached through raw pointers, each frame
//! reserved (depth raised) before it is written and released only after it
//! was read, so a nested trap always works on frames of its own.

use core::cell::UnsafeCell;
use core::sync::atomic::{compiler_fence, AtomicBool, AtomicU32, AtomicUsize, Ordering};

use probe_hal::Arch;

use crate::services::Space;
use crate::spec::{ProbeContext, ProbeId, ProbeKind, NO_DATA};

/// How deep probes may nest on one CPU (a probe hit while another's step is
/// in flight, e.g. in an exception taken from the slot).
pub(crate) const MAX_NESTING: usize = 4;

/// An out-of-line step in flight (on a CPU for kernel probes, in a task
/// for user probes). Kept small: the step end reads the rest from the
/// point, which stays alive until a grace period after it is unpublished
/// (and, for user steps, until no task has a step of it parked).
pub(crate) struct StepFrame<A: Arch> {
    pub(crate) point: u32,
    pub(crate) run_post: bool,
    pub(crate) slot: usize,
    /// Address of the end-of-step marker.
    pub(crate) end: usize,
    /// The stack pointer of the context that hit the probe (to recognise a
    /// step whose context was unwound by a non-local jump).
    pub(crate) sp: usize,
    pub(crate) state: A::StepState,
}

impl<A: Arch> Clone for StepFrame<A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<A: Arch> Copy for StepFrame<A> {}

/// A LIFO of step frames owned by one CPU (kernel steps) or one task
/// (user steps); see the module documentation for the nesting protocol.
pub(crate) struct FrameStack<A: Arch, const N: usize> {
    /// Live frames are `frames[..depth]`.
    depth: AtomicUsize,
    frames: [UnsafeCell<Option<StepFrame<A>>>; N],
    /// Frames dropped because the stack was full (leaked steps: a context
    /// that left a slot without reaching its end marker).
    pub(crate) evicted: AtomicU32,
}

impl<A: Arch, const N: usize> FrameStack<A, N> {
    pub(crate) const fn new() -> Self {
        Self {
            depth: AtomicUsize::new(0),
            frames: [const { UnsafeCell::new(None) }; N],
            evicted: AtomicU32::new(0),
        }
    }

    /// Steps in flight.
    #[inline(always)]
    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Remove the newest frame `f` accepts (searching from the newest
    /// down). Frames newer than it belong to contexts that left their slot
    /// without reaching its end (a non-local jump out of a nested handler):
    /// they are dropped too, each given to `dropped` and counted in
    /// `evicted`.
    ///
    /// # Safety
    /// Called by the owner of the stack (its CPU, or the task it belongs
    /// to, or anyone while the task cannot run), not concurrently with
    /// another call on the same stack except by nesting.
    #[inline(always)]
    pub(crate) unsafe fn take(
        &self,
        mut f: impl FnMut(&StepFrame<A>) -> bool,
        mut dropped: impl FnMut(StepFrame<A>),
    ) -> Option<StepFrame<A>> {
        let depth = self.depth.load(Ordering::Relaxed);
        let mut i = depth;
        while i > 0 {
            i -= 1;
            // SAFETY: `frames[i]` is live (below depth) and owned by this
            // context or one it nests in, which is not running; the copy is
            // taken before the depth is lowered.
            let Some(frame) = (unsafe { *self.frames[i].get() }) else {
                continue;
            };
            if !f(&frame) {
                continue;
            }
            for j in i + 1..depth {
                // SAFETY: as above, frames below depth.
                if let Some(leaked) = unsafe { *self.frames[j].get() } {
                    self.leaked(leaked, &mut dropped);
                }
            }
            compiler_fence(Ordering::SeqCst);
            self.depth.store(i, Ordering::Relaxed);
            return Some(frame);
        }
        None
    }

    /// Drop the newest frames `unwound` says belong to contexts that no
    /// longer exist (each counted in `evicted`); returns how many.
    ///
    /// # Safety
    /// As for [`Self::take`].
    #[cold]
    #[inline(never)]
    #[link_section = "probe_trap_text"]
    pub(crate) unsafe fn drop_unwound(
        &self,
        mut unwound: impl FnMut(&StepFrame<A>) -> bool,
    ) -> usize {
        let mut n = 0;
        loop {
            let depth = self.depth.load(Ordering::Relaxed);
            let Some(top) = depth.checked_sub(1) else {
                return n;
            };
            // SAFETY: `frames[top]` is live and owned by a context this one
            // nests in (or replaced), which is not running.
            let Some(frame) = (unsafe { *self.frames[top].get() }) else {
                return n;
            };
            if !unwound(&frame) {
                return n;
            }
            self.evicted.fetch_add(1, Ordering::Relaxed);
            compiler_fence(Ordering::SeqCst);
            self.depth.store(top, Ordering::Relaxed);
            n += 1;
        }
    }

    #[cold]
    #[inline(never)]
    #[link_section = "probe_trap_text"]
    fn leaked(&self, frame: StepFrame<A>, dropped: &mut impl FnMut(StepFrame<A>)) {
        self.evicted.fetch_add(1, Ordering::Relaxed);
        log::error!("probe engine: a step left its slot without reaching its end; dropped");
        dropped(frame);
    }

    /// Push a step. When the stack is full the oldest frame is dropped and
    /// returned (counted in `evicted`): a context that never reached its
    /// step end (it was left by a non-local jump) must not stop every later
    /// hit from making progress.
    ///
    /// # Safety
    /// As for [`Self::take`].
    #[inline(always)]
    pub(crate) unsafe fn push(&self, frame: StepFrame<A>) -> Option<StepFrame<A>> {
        let mut d = self.depth.load(Ordering::Relaxed);
        let mut evicted = None;
        if d == N {
            // SAFETY: the caller owns the stack.
            evicted = unsafe { self.evict_oldest() };
            d -= 1;
        }
        // Reserve, then write: a nested trap between the two sees the
        // frame as its own caller's and leaves it alone.
        self.depth.store(d + 1, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        // SAFETY: `frames[d]` was just reserved for this context; nested
        // traps use frames above it.
        unsafe { *self.frames[d].get() = Some(frame) };
        compiler_fence(Ordering::SeqCst);
        evicted
    }

    /// Drop every frame (the owner is gone); returns them one by one
    /// through `f`.
    ///
    /// # Safety
    /// Nothing runs on behalf of the owner any more.
    pub(crate) unsafe fn clear(&self, mut f: impl FnMut(StepFrame<A>)) {
        let depth = self.depth.load(Ordering::Relaxed);
        for i in 0..depth {
            // SAFETY: the owner no longer runs: nobody else touches frames.
            if let Some(frame) = unsafe { (*self.frames[i].get()).take() } {
                f(frame);
            }
        }
        self.depth.store(0, Ordering::Relaxed);
    }

    #[cold]
    #[inline(never)]
    #[link_section = "probe_trap_text"]
    unsafe fn evict_oldest(&self) -> Option<StepFrame<A>> {
        // SAFETY: every frame is live (the stack is full) and owned by the
        // caller's contexts, none of which runs while this one does.
        let oldest = unsafe { *self.frames[0].get() };
        for i in 1..N {
            // SAFETY: as above.
            unsafe { *self.frames[i - 1].get() = *self.frames[i].get() };
        }
        self.evicted.fetch_add(1, Ordering::Relaxed);
        log::error!("probe engine: step stack full; the oldest step was dropped as leaked");
        oldest
    }
}

/// See the module documentation.
pub(crate) struct CpuState<A: Arch> {
    /// A handler is running on this CPU.
    in_handler: AtomicBool,
    /// Kernel-mode steps in flight on this CPU.
    pub(crate) steps: FrameStack<A, MAX_NESTING>,
    /// The context the entry handlers of the probe that last ran on this
    /// CPU got (see [`Self::handler_ctx`]).
    handler_ctx: UnsafeCell<ProbeContext>,
}

// SAFETY: a `CpuState` is used only by its own CPU (the trap entry points'
// callers promise that the services' `cpu_id` names the CPU they run on,
// with interrupts masked), so accesses from different threads of execution
// never overlap except by nesting on that CPU, which the reserve-then-write
// and read-then-release protocol of `FrameStack` tolerates: a nested trap
// only touches frames above the depth it saw, and restores the depth
// before it returns. `handler_ctx` is written only by the context that
// holds this CPU's handler flag (a nested trap finds the flag set and
// does not enter).
unsafe impl<A: Arch> Sync for CpuState<A> {}

impl<A: Arch> CpuState<A> {
    pub(crate) const fn new() -> Self {
        Self {
            in_handler: AtomicBool::new(false),
            steps: FrameStack::new(),
            handler_ctx: UnsafeCell::new(ProbeContext {
                id: ProbeId::NONE,
                addr: 0,
                data: &NO_DATA,
                cpu: 0,
                space: Space::Kernel,
                return_address: 0,
                kind: ProbeKind::Kprobe,
            }),
        }
    }

    /// The context for an entry handler of the probe whose registration
    /// built `template`, on this CPU (`cpu`): this CPU's copy, refreshed
    /// only when the probe differs from the one that ran here last. The
    /// copy is what makes the context carry the CPU; a probe that keeps
    /// firing on one CPU (the hot case) is not copied again on every hit.
    /// Ids are never reused (a freed record's generation is bumped), and a
    /// configuration does not change while its probe is registered, so an
    /// equal id means an equal context (up to a generation wrap after 2^32
    /// re-registrations in one record: the copy would then be stale but
    /// still valid data, never freed memory).
    ///
    /// # Safety
    /// Called by the context that holds this CPU's handler flag (entered
    /// with [`Self::enter_handler`] or [`Self::enter_idle`], not left), and
    /// no reference an earlier call returned is used after this call.
    #[inline(always)]
    pub(crate) unsafe fn handler_ctx(&self, template: &ProbeContext, cpu: usize) -> &ProbeContext {
        let ctx = self.handler_ctx.get();
        // SAFETY: the caller holds the handler flag, so no other context
        // touches the cell (a nested trap finds the flag set and does not
        // enter), and no earlier reference into it is live.
        unsafe {
            if (*ctx).id.key() != template.id.key() {
                // Distinct objects (a probe's configuration, this CPU's
                // state): a plain copy, which the compiler inlines, where
                // an assignment through the pointer may become a call of
                // `memmove` (outside the trap text).
                core::ptr::copy_nonoverlapping(template, ctx, 1);
                (*ctx).cpu = cpu;
            }
            &*ctx
        }
    }

    /// Whether a handler runs on this CPU.
    #[inline(always)]
    pub(crate) fn in_handler(&self) -> bool {
        self.in_handler.load(Ordering::Relaxed)
    }

    /// Enter a handler unless one already runs; true when entered.
    #[inline(always)]
    pub(crate) fn enter_handler(&self) -> bool {
        if self.in_handler.load(Ordering::Relaxed) {
            return false;
        }
        self.in_handler.store(true, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        true
    }

    /// Enter a handler when this CPU is idle in the probe machinery (no
    /// handler running, no step in flight); true when entered. One load of
    /// each and one store: the fast path of an optimised hit.
    #[inline(always)]
    pub(crate) fn enter_idle(&self) -> bool {
        if self.steps.depth() != 0 || self.in_handler.load(Ordering::Relaxed) {
            return false;
        }
        self.in_handler.store(true, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        true
    }

    /// Leave the handler entered with [`Self::enter_handler`].
    #[inline(always)]
    pub(crate) fn leave_handler(&self) {
        compiler_fence(Ordering::SeqCst);
        self.in_handler.store(false, Ordering::Relaxed);
    }
}
