//! The trap path: breakpoint, fault and return-trampoline entry points.
//!
//! Nothing here takes a lock or allocates. Per-CPU state is touched only by
//! its own CPU with interrupts masked; per-task state only on behalf of the
//! current task.

use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::{Arch, ExecMode, Handling, Registers};

use crate::cpu::StepFrame;
use crate::engine::Engine;
use crate::point::{PointInfo, PointKind};
use crate::probe::Handlers;
use crate::services::{KernelServices, Space};
use crate::spec::PreAction;
use crate::task::HELD_BY_TRAP;

/// What a trap entry point did with a trap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "a trap that is not ours must go to the kernel's own handling"]
pub enum TrapOutcome {
    /// The engine handled it; resume with the (possibly changed) registers.
    Handled,
    /// Not the engine's: the kernel handles it as it would without probes.
    NotOurs,
    /// The probed instruction, simulated by the engine, faulted on a memory
    /// access (e.g. a `call` or `ret` on a bad stack, a literal load from an
    /// unmapped page). The registers are as they were at the probe address
    /// (pc there, nothing changed): the kernel delivers the fault as if the
    /// original instruction had faulted there, at data address `addr`
    /// (exception-table fix-up in the kernel, a signal for a user task).
    /// Resuming without handling it would trap on the probe again.
    Fault {
        /// The data address whose access faulted.
        addr: usize,
    },
}

/// Which trap a kernel hands to [`Engine::handle_trap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapCause {
    /// A breakpoint instruction (`int3`, `ebreak`, `break`, `brk`).
    Breakpoint,
    /// A single-step trap (x86_64 `#DB` with TF, a hardware step).
    SingleStep,
    /// A page fault, access fault or illegal instruction: any exception
    /// a stepped instruction can raise.
    Fault,
}

/// What the fault entry point did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the kernel must still run its own fault handling"]
pub enum FaultOutcome {
    /// The fault hit an out-of-line slot: the pc is back at the probe
    /// address and the step is abandoned. Continue with the kernel's own
    /// fault handling (exception-table fix-up, signal), which now sees the
    /// original address.
    StepAborted,
    /// The fault has nothing to do with a step in flight.
    NotOurs,
}

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
    /// The current CPU's index, checked against the capacity (never
    /// clamped: two CPUs sharing one state would corrupt it).
    #[link_section = "probe_trap_text"]
    #[inline(always)]
    pub(crate) fn cpu_index(&self) -> usize {
        let c = self.services.cpu_id();
        if c >= CPUS {
            cpu_out_of_range(c, CPUS);
        }
        c
    }

    /// One entry for a kernel's trap dispatcher: the breakpoint, single-step
    /// or fault entry point by `cause`. For [`TrapCause::Fault`] the engine
    /// abandons a step in flight (see [`Engine::handle_fault`]) and answers
    /// [`TrapOutcome::NotOurs`]: the kernel's own fault handling runs next,
    /// at the registers as they now are.
    ///
    /// # Safety
    /// As for [`Engine::handle_breakpoint`].
    #[link_section = "probe_trap_text"]
    pub unsafe fn handle_trap<R: Registers>(
        &self,
        regs: &mut R,
        mode: ExecMode,
        cause: TrapCause,
    ) -> TrapOutcome {
        // SAFETY: the caller's promise, passed on.
        unsafe {
            match cause {
                TrapCause::Breakpoint => self.handle_breakpoint(regs, mode),
                TrapCause::SingleStep => self.handle_single_step(regs, mode),
                TrapCause::Fault => {
                    let _ = self.handle_fault(regs, mode);
                    TrapOutcome::NotOurs
                }
            }
        }
    }

    /// The kernel's breakpoint trap handler calls this with the trap frame
    /// and the mode the trap came from.
    ///
    /// # Safety
    /// - Interrupts are masked on this CPU for the whole call (an NMI-like
    ///   exception may nest; it may call this again).
    /// - The services' [`cpu_id`](KernelServices::cpu_id) names the CPU
    ///   running this call and stays the same during it; for a trap from
    ///   user mode, [`with_current_task`](KernelServices::with_current_task) and
    ///   [`current_space`](KernelServices::current_space) name the task
    ///   that trapped and its address space.
    /// - `regs` is the interrupted context's frame; the kernel resumes it
    ///   from `regs` when the outcome is [`TrapOutcome::Handled`].
    #[link_section = "probe_trap_text"]
    pub unsafe fn handle_breakpoint<R: Registers>(
        &self,
        regs: &mut R,
        mode: ExecMode,
    ) -> TrapOutcome {
        let addr = A::trap_address(regs.pc());
        let cpu = self.cpu_index();
        let space = match mode {
            ExecMode::Kernel => {
                // The end of a step in flight on this CPU?
                // SAFETY: this CPU's own stack, with interrupts masked.
                let done = unsafe { self.cpus[cpu].steps.take(|f| f.end == addr, |_| {}) };
                if let Some(frame) = done {
                    self.complete_step(regs, Space::Kernel, cpu, &frame);
                    return TrapOutcome::Handled;
                }
                Space::Kernel
            }
            ExecMode::User => {
                // A user trap with no current task cannot park a step.
                if self.services.with_current_task(|_| ()).is_none() {
                    return TrapOutcome::NotOurs;
                }
                match self.user_step_end(regs, addr, cpu) {
                    Ok(()) => return TrapOutcome::Handled,
                    Err(space) => space,
                }
            }
        };
        if let Some(p) = self.find_point(space, addr) {
            let point = self.points[p as usize].info();
            return match point.kind {
                PointKind::Probe => self.hit(regs, p, point, cpu),
                PointKind::ReturnTrampoline => match self.return_from(regs, space) {
                    Some(_) => TrapOutcome::Handled,
                    None => TrapOutcome::NotOurs,
                },
            };
        }
        self.not_found(regs, space, addr)
    }

    /// A breakpoint trap at an address with no published point: the
    /// breakpoint was ours and was removed after this CPU trapped (restart
    /// at the address), or it is not ours.
    #[link_section = "probe_trap_text"]
    #[cold]
    #[inline(never)]
    fn not_found<R: Registers>(&self, regs: &mut R, space: Space, addr: usize) -> TrapOutcome {
        // Only where the engine removed a breakpoint recently (an `int $3`
        // of the program itself, `cd 03`, is not restarted inside itself),
        // and only once the bytes are no breakpoint any more.
        if self.removed.recently_removed(space, addr)
            && !self.still_breakpoint(space, addr, space.mode())
        {
            regs.set_pc(addr);
            return TrapOutcome::Handled;
        }
        TrapOutcome::NotOurs
    }

    /// The kernel's single-step (debug) trap handler calls this, for a
    /// backend or kernel that ends out-of-line steps with a hardware
    /// single-step trap instead of a step-end marker: the step in flight on
    /// this CPU (or, from user mode, in this task) whose copy just ran (the
    /// pc is still inside its slot) is completed as if its marker trapped.
    /// None of the backends in this repository needs it.
    ///
    /// # Safety
    /// As for [`Engine::handle_breakpoint`].
    #[link_section = "probe_trap_text"]
    pub unsafe fn handle_single_step<R: Registers>(
        &self,
        regs: &mut R,
        mode: ExecMode,
    ) -> TrapOutcome {
        let pc = regs.pc();
        let cpu = self.cpu_index();
        let in_slot = |f: &StepFrame<A>| pc >= f.slot && pc <= f.slot + A::SLOT_LEN;
        let (frame, space) = match mode {
            ExecMode::Kernel => (
                // SAFETY: this CPU's own stack, with interrupts masked.
                unsafe { self.cpus[cpu].steps.take(in_slot, |_| {}) },
                Space::Kernel,
            ),
            // Busy (a lifecycle call on the task elsewhere): as if no step
            // were parked, which is what that call leaves.
            ExecMode::User => (
                self.take_user_step(in_slot).unwrap_or(None),
                Space::User(self.services.current_space()),
            ),
        };
        match frame {
            Some(f) => {
                self.complete_step(regs, space, cpu, &f);
                if space != Space::Kernel {
                    self.unpin(&f);
                }
                TrapOutcome::Handled
            }
            None => TrapOutcome::NotOurs,
        }
    }

    /// The kernel's fault handlers call this first (page fault, access
    /// fault, illegal instruction…).
    ///
    /// # Safety
    /// As for [`Engine::handle_breakpoint`].
    #[link_section = "probe_trap_text"]
    pub unsafe fn handle_fault<R: Registers>(&self, regs: &mut R, mode: ExecMode) -> FaultOutcome {
        let pc = regs.pc();
        let in_slot = |f: &StepFrame<A>| pc >= f.slot && pc < f.slot + A::SLOT_LEN;
        let frame = match mode {
            // SAFETY: this CPU's own stack, with interrupts masked.
            ExecMode::Kernel => unsafe { self.cpus[self.cpu_index()].steps.take(in_slot, |_| {}) },
            ExecMode::User => self.take_user_step(in_slot).unwrap_or(None),
        };
        match frame {
            Some(f) => {
                let info = self.points[f.point as usize].info();
                if let Some(decoded) = &info.decoded {
                    A::abort_step(decoded, regs, info.addr, f.state);
                }
                if mode == ExecMode::User {
                    self.unpin(&f);
                }
                FaultOutcome::StepAborted
            }
            None => FaultOutcome::NotOurs,
        }
    }

    /// Take a parked step of the current task that `f` accepts (and drop
    /// newer, leaked ones). `Err(())` when the task's state is busy (a
    /// lifecycle call on it runs on another CPU): nothing taken.
    #[link_section = "probe_trap_text"]
    #[inline(never)]
    fn take_user_step(
        &self,
        f: impl FnMut(&StepFrame<A>) -> bool,
    ) -> Result<Option<StepFrame<A>>, ()> {
        self.services
            .with_current_task(|task| {
                let _guard = task.try_lock(HELD_BY_TRAP).ok_or(())?;
                // SAFETY: the task's lock is held.
                Ok(unsafe {
                    task.steps.take(f, |leaked| {
                        self.leaked_user_steps.fetch_add(1, Ordering::Relaxed);
                        self.unpin(&leaked);
                    })
                })
            })
            .unwrap_or(Ok(None))
    }

    /// A user step of `frame` ended or was dropped: its point may be freed.
    #[link_section = "probe_trap_text"]
    #[inline(always)]
    pub(crate) fn unpin(&self, frame: &StepFrame<A>) {
        self.points[frame.point as usize]
            .parked
            .fetch_sub(1, Ordering::Release);
    }

    /// A user-mode breakpoint: complete the current task's step if `addr`
    /// is its end marker (`Ok`), else give the task's address space.
    #[link_section = "probe_trap_text"]
    #[inline(never)]
    fn user_step_end<R: Registers>(
        &self,
        regs: &mut R,
        addr: usize,
        cpu: usize,
    ) -> Result<(), Space> {
        let space = Space::User(self.services.current_space());
        match self.take_user_step(|f| f.end == addr) {
            Ok(Some(frame)) => {
                self.complete_step(regs, space, cpu, &frame);
                self.unpin(&frame);
                Ok(())
            }
            Ok(None) => Err(space),
            // Busy: the task traps at the marker again (retry).
            Err(()) => {
                regs.set_pc(addr);
                Ok(())
            }
        }
    }

    /// Whether the bytes at `addr` are still one of our breakpoints.
    #[link_section = "probe_trap_text"]
    #[cold]
    #[inline(never)]
    fn still_breakpoint(&self, space: Space, addr: usize, mode: ExecMode) -> bool {
        let mut buf = [0u8; 8];
        let mut len = 1;
        while len <= A::MAX_INSN_LEN {
            let bp = A::breakpoint(len, mode);
            if self.services.read(space, addr, &mut buf[..bp.len]).is_ok()
                && bytes_equal(&buf[..bp.len], bp.as_bytes())
            {
                return true;
            }
            len += A::INSN_ALIGN;
        }
        // Unreadable or different: not a breakpoint we could have written.
        false
    }

    /// The step-end marker of `frame` trapped: back to the original code,
    /// then the post-handlers.
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    pub(crate) fn complete_step<R: Registers>(
        &self,
        regs: &mut R,
        space: Space,
        cpu: usize,
        frame: &StepFrame<A>,
    ) {
        let info = self.points[frame.point as usize].info();
        let Some(decoded) = &info.decoded else { return };
        let mem = self.memory(space);
        if A::finish_step(decoded, regs, info.addr, frame.slot, frame.state, &mem).is_err() {
            log::error!("probe at {:#x}: fixing up after the step failed", info.addr);
        }
        if frame.run_post {
            self.run_post(regs, frame.point, cpu);
        }
    }

    /// A probe point's breakpoint trapped.
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    fn hit<R: Registers>(
        &self,
        regs: &mut R,
        point: u32,
        info: &PointInfo<A>,
        cpu: usize,
    ) -> TrapOutcome {
        let state = &self.cpus[cpu];
        if info.space == Space::Kernel && state.steps.depth() > 0 && !state.in_handler() {
            self.drop_unwound_steps(cpu, regs.sp());
        }
        let busy = state.in_handler() || (info.space == Space::Kernel && state.steps.depth() > 0);
        if busy || !state.enter_handler() {
            return self.reenter(regs, point, info, cpu);
        }
        // Handlers see the pc at the probed instruction on every ISA (x86_64
        // reports the byte after `int3`).
        regs.set_pc(info.addr);
        let skipped = self.run_chain(regs, point, cpu);
        state.leave_handler();
        if skipped {
            // A handler moved the pc: no step, no post-handlers.
            return TrapOutcome::Handled;
        }
        if let Some(resume) = self.optimizing(point) {
            regs.set_pc(resume);
            return TrapOutcome::Handled;
        }
        let post = self.points[point as usize]
            .post_handlers
            .load(Ordering::Acquire)
            > 0;
        self.execute(regs, point, info, cpu, post, true)
    }

    /// While a jump is being installed or removed at `point` (or is in
    /// place and a CPU still trapped on the breakpoint), where the
    /// breakpoint path resumes: the detour's copy of the displaced region.
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    fn optimizing(&self, point: u32) -> Option<usize> {
        let opt = &self.points[point as usize].opt;
        if opt.state.load(Ordering::Acquire) == crate::optimize::NONE {
            return None;
        }
        Some(opt.resume.load(Ordering::Relaxed))
    }

    /// An optimised hit on a CPU with a handler running or a step in
    /// flight: drop the steps a non-local jump left behind, then enter the
    /// handlers if that made the CPU idle (true), else count the hit as
    /// missed (false).
    #[link_section = "probe_trap_text"]
    #[cold]
    #[inline(never)]
    pub(crate) fn enter_after_unwind<R: Registers>(
        &self,
        regs: &mut R,
        point: u32,
        cpu: usize,
    ) -> bool {
        let state = &self.cpus[cpu];
        if state.steps.depth() > 0 && !state.in_handler() {
            self.drop_unwound_steps(cpu, regs.sp());
        }
        if state.enter_idle() {
            return true;
        }
        self.count_missed(point);
        false
    }

    /// Every enabled probe of `point` missed a hit.
    #[link_section = "probe_trap_text"]
    #[cold]
    #[inline(never)]
    fn count_missed(&self, point: u32) {
        for p in self.chain(point) {
            let rec = &self.probes[p as usize];
            if rec.enabled.load(Ordering::Relaxed) {
                rec.missed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Run the handlers of `point`'s enabled probes, pc at the probe
    /// address; true when one skipped the instruction (moved the pc).
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    pub(crate) fn run_chain<R: Registers>(&self, regs: &mut R, point: u32, cpu: usize) -> bool {
        let mut next = self.points[point as usize].head.load(Ordering::Acquire);
        // A chain holds every record at most once: the bound ends even a
        // corrupted one.
        let mut left = PROBES;
        while next != 0 && left != 0 {
            left -= 1;
            let p = next - 1;
            // SAFETY: chain links hold a record index plus one; they are
            // written only under the registration lock, from indices of
            // `self.probes`, so `p < PROBES`.
            let rec = unsafe { self.probes.get_unchecked(p as usize) };
            next = rec.next.load(Ordering::Acquire);
            if !rec.enabled.load(Ordering::Acquire) {
                continue;
            }
            let Some(cfg) = rec.config() else { continue };
            // SAFETY: the caller entered this CPU's handler (every caller
            // of `run_chain` does), and the reference lives for this
            // iteration only.
            let ctx = unsafe { self.cpus[cpu].handler_ctx(&cfg.ctx, cpu) };
            match cfg.handlers {
                Handlers::Kprobe { pre, .. } => {
                    rec.hits.fetch_add(1, Ordering::Relaxed);
                    let skip = match pre {
                        Some(pre) => pre(ctx, regs) == PreAction::SkipInstruction,
                        None => false,
                    };
                    if skip || Self::run_attached_hits(rec, ctx, regs) == PreAction::SkipInstruction
                    {
                        return true;
                    }
                }
                Handlers::Kretprobe { .. } => {
                    let _ = Self::run_attached_hits(rec, ctx, regs);
                    self.track_call(regs, p, ctx, ctx.space, &cfg.handlers)
                }
            }
        }
        false
    }

    /// A kernel hit while steps are in flight on this CPU: a nested trap
    /// (an exception or NMI taken from a slot) runs deeper on the stack
    /// than the step it interrupted, while a context that left its slot by
    /// a non-local jump (longjmp out of a nested handler) and goes on
    /// running is shallower on the same stack. Steps whose context the
    /// current one has unwound past are dropped as leaked (counted in
    /// [`Engine::leaked_steps`]) instead of making every later hit on this
    /// CPU count as re-entered. "Same stack" means within
    /// [`UNWOUND_WINDOW`] bytes: a trap on a separate stack placed
    /// higher is never taken for an unwind.
    #[link_section = "probe_trap_text"]
    #[cold]
    #[inline(never)]
    fn drop_unwound_steps(&self, cpu: usize, sp: usize) {
        // SAFETY: this CPU's own stack, with interrupts masked.
        let n = unsafe {
            self.cpus[cpu]
                .steps
                .drop_unwound(|f| sp > f.sp && sp - f.sp <= UNWOUND_WINDOW)
        };
        if n > 0 {
            log::error!("probe engine: {n} step(s) left by a non-local jump dropped as leaked");
        }
    }

    /// A probe hit while this CPU is inside the probe machinery: count it
    /// as missed for every enabled probe and only execute the instruction.
    #[link_section = "probe_trap_text"]
    #[cold]
    #[inline(never)]
    fn reenter<R: Registers>(
        &self,
        regs: &mut R,
        point: u32,
        info: &PointInfo<A>,
        cpu: usize,
    ) -> TrapOutcome {
        self.count_missed(point);
        if let Some(resume) = self.optimizing(point) {
            regs.set_pc(resume);
            return TrapOutcome::Handled;
        }
        regs.set_pc(info.addr);
        self.execute(regs, point, info, cpu, false, false)
    }

    /// Execute the displaced instruction: simulate it, or send the pc into
    /// its slot (boosted when allowed).
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    fn execute<R: Registers>(
        &self,
        regs: &mut R,
        point: u32,
        info: &PointInfo<A>,
        cpu: usize,
        run_post: bool,
        may_boost: bool,
    ) -> TrapOutcome {
        let Some(decoded) = &info.decoded else {
            return TrapOutcome::Handled;
        };
        if decoded.handling == Handling::Simulate {
            return self.simulate(regs, point, info, cpu, run_post);
        }
        if may_boost && !run_post && info.boost_slot != 0 {
            let _ = A::prepare_step(decoded, regs, info.boost_slot, true);
            return TrapOutcome::Handled;
        }
        let frame = StepFrame {
            point,
            run_post,
            slot: info.step_slot,
            end: info.step_end,
            sp: regs.sp(),
            state: A::prepare_step(decoded, regs, info.step_slot, false),
        };
        match info.space {
            // SAFETY: this CPU's own stack, with interrupts masked.
            Space::Kernel => {
                let _ = unsafe { self.cpus[cpu].steps.push(frame) };
            }
            Space::User(_) => self.park_user_step(regs, info, frame),
        }
        TrapOutcome::Handled
    }

    /// Simulate the probed instruction, then run the post-handlers.
    #[link_section = "probe_trap_text"]
    #[inline(never)]
    fn simulate<R: Registers>(
        &self,
        regs: &mut R,
        point: u32,
        info: &PointInfo<A>,
        cpu: usize,
        run_post: bool,
    ) -> TrapOutcome {
        let Some(decoded) = &info.decoded else {
            return TrapOutcome::Handled;
        };
        let mem = self.memory(info.space);
        if let Err(fault) = A::simulate(decoded, info.addr, regs, &mem) {
            // The emulated access faulted (e.g. a `ret` on a bad stack): the
            // backend left the frame at the probe; the kernel delivers the
            // fault there (resuming would trap on the probe again).
            regs.set_pc(info.addr);
            return TrapOutcome::Fault { addr: fault.addr };
        }
        if run_post {
            self.run_post(regs, point, cpu);
        }
        TrapOutcome::Handled
    }

    /// Keep a user task's step with the task (it may be preempted or
    /// migrate before the step ends); the point stays alive while it is
    /// parked. When the task's state is busy (a lifecycle call on it runs
    /// on another CPU), the step is undone: the pc goes back to the probe
    /// address and the task traps there again (retry).
    #[link_section = "probe_trap_text"]
    #[inline(never)]
    fn park_user_step<R: Registers>(&self, regs: &mut R, info: &PointInfo<A>, frame: StepFrame<A>) {
        self.points[frame.point as usize]
            .parked
            .fetch_add(1, Ordering::AcqRel);
        let evicted = self.services.with_current_task(|task| {
            let _guard = task.try_lock(HELD_BY_TRAP).ok_or(())?;
            // SAFETY: the task's lock is held.
            Ok(unsafe { task.steps.push(frame) })
        });
        match evicted {
            // `None`: no current task, checked on entry to the user trap (a
            // kernel that changes its answer within one trap leaks the pin).
            None | Some(Ok(None)) => {}
            Some(Ok(Some(evicted))) => {
                self.leaked_user_steps.fetch_add(1, Ordering::Relaxed);
                self.unpin(&evicted);
            }
            Some(Err(())) => {
                if let Some(decoded) = &info.decoded {
                    A::abort_step(decoded, regs, info.addr, frame.state);
                }
                self.unpin(&frame);
            }
        }
    }

    #[inline(always)]
    #[link_section = "probe_trap_text"]
    fn run_post<R: Registers>(&self, regs: &mut R, point: u32, cpu: usize) {
        let state = &self.cpus[cpu];
        if !state.enter_handler() {
            return;
        }
        for p in self.chain(point) {
            let rec = &self.probes[p as usize];
            if !rec.enabled.load(Ordering::Acquire) {
                continue;
            }
            let Some(cfg) = rec.config() else { continue };
            if let Handlers::Kprobe {
                post: Some(post), ..
            } = cfg.handlers
            {
                let mut ctx = cfg.ctx;
                ctx.cpu = cpu;
                post(&ctx, regs);
            }
        }
        state.leave_handler();
    }
}

/// How far above a step's stack pointer a later hit must be, at most, to be
/// taken as the same stack unwound past that step (64 KiB: more than any
/// kernel stack frame chain a longjmp skips, less than the distance to
/// another stack in every kernel layout we know; see
/// `docs/integration.md`).
pub(crate) const UNWOUND_WINDOW: usize = 64 * 1024;

/// Byte comparison the compiler keeps inline (no `memcmp` call).
#[link_section = "probe_trap_text"]
#[inline(always)]
fn bytes_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The kernel's `cpu_id` broke the trap entry points' contract.
#[link_section = "probe_trap_text"]
#[cold]
#[inline(never)]
fn cpu_out_of_range(cpu: usize, cpus: usize) -> ! {
    panic!("probe engine: cpu_id() returned {cpu}, beyond the engine's CPUS = {cpus}")
}
