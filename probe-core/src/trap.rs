//! The trap path: breakpoint, fault and return-trampoline entry points.
//!
//! Nothing here takes a lock or allocates. Per-CPU state is touched only by
//! its own CPU with interrupts masked; per-task state only on behalf of the
//! current task.

use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::{Arch, ExecMode, Handling, Registers};

use crate::cpu::{StepFrame, MAX_NESTING};
use crate::engine::Engine;
use crate::point::{PointInfo, PointKind};
use crate::probe::Handlers;
use crate::services::{KernelServices, Space};
use crate::spec::{PreAction, ProbeContext, ProbeId};

/// What a trap entry point did with a trap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a trap that is not ours must go to the kernel's own handling"]
pub enum TrapOutcome {
    /// The engine handled it; resume with the (possibly changed) registers.
    Handled,
    /// Not the engine's: the kernel handles it as it would without probes.
    NotOurs,
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
    #[link_section = "probe_trap_text"]
    pub(crate) fn cpu_index(&self) -> usize {
        let c = self.services.cpu_id();
        debug_assert!(c < CPUS, "cpu_id {c} beyond the engine's CPUS");
        c.min(CPUS.saturating_sub(1))
    }

    /// The kernel's breakpoint trap handler calls this with the trap frame
    /// and the mode the trap came from. Interrupts must be masked.
    #[link_section = "probe_trap_text"]
    pub fn handle_breakpoint<R: Registers>(&self, regs: &mut R, mode: ExecMode) -> TrapOutcome {
        let addr = A::trap_address(regs.pc());
        let cpu = self.cpu_index();
        let space = match mode {
            ExecMode::Kernel => {
                // The end of a step in flight on this CPU?
                let done = self.cpus[cpu].with(|c| c.pop_if(|f| f.end == addr));
                if let Some(frame) = done {
                    self.complete_step(regs, Space::Kernel, cpu, &frame);
                    return TrapOutcome::Handled;
                }
                Space::Kernel
            }
            ExecMode::User => match self.user_step_end(regs, addr, cpu) {
                Ok(()) => return TrapOutcome::Handled,
                Err(space) => space,
            },
        };
        if let Some(p) = self.find_point(space, addr) {
            let point = self.points[p as usize].info();
            match point.kind {
                PointKind::Probe => self.hit(regs, p, point, cpu),
                PointKind::ReturnTrampoline => {
                    if self.return_from(regs, space).is_none() {
                        return TrapOutcome::NotOurs;
                    }
                }
            }
            return TrapOutcome::Handled;
        }
        // Unregister may have restored the bytes after this CPU trapped:
        // re-execute the original instruction.
        if !self.still_breakpoint(space, addr, mode) {
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
    #[link_section = "probe_trap_text"]
    pub fn handle_single_step<R: Registers>(&self, regs: &mut R, mode: ExecMode) -> TrapOutcome {
        let pc = regs.pc();
        let cpu = self.cpu_index();
        let in_slot = |f: &StepFrame<A>| pc >= f.slot && pc <= f.slot + A::SLOT_LEN;
        let (frame, space) = match mode {
            ExecMode::Kernel => (self.cpus[cpu].with(|c| c.pop_if(in_slot)), Space::Kernel),
            ExecMode::User => {
                let task = self.services.task_state();
                // SAFETY: the current task's own state, on its behalf.
                let step = unsafe { &mut *task.step.get() };
                let frame = step.filter(in_slot);
                if frame.is_some() {
                    *step = None;
                }
                (frame, Space::User(self.services.current_space()))
            }
        };
        match frame {
            Some(f) => {
                self.complete_step(regs, space, cpu, &f);
                TrapOutcome::Handled
            }
            None => TrapOutcome::NotOurs,
        }
    }

    /// The kernel's fault handlers call this first (page fault, access
    /// fault, illegal instruction…), with interrupts masked.
    #[link_section = "probe_trap_text"]
    pub fn handle_fault<R: Registers>(&self, regs: &mut R, mode: ExecMode) -> FaultOutcome {
        let pc = regs.pc();
        let in_slot = |f: &StepFrame<A>| pc >= f.slot && pc < f.slot + A::SLOT_LEN;
        let frame = match mode {
            ExecMode::Kernel => self.cpus[self.cpu_index()].with(|c| c.pop_if(in_slot)),
            ExecMode::User => {
                let task = self.services.task_state();
                // SAFETY: the current task's own state, on its behalf.
                let step = unsafe { &mut *task.step.get() };
                match step.filter(in_slot) {
                    Some(f) => {
                        *step = None;
                        Some(f)
                    }
                    None => None,
                }
            }
        };
        match frame {
            Some(f) => {
                let info = self.points[f.point as usize].info();
                if let Some(decoded) = &info.decoded {
                    A::abort_step(decoded, regs, info.addr, f.state);
                }
                FaultOutcome::StepAborted
            }
            None => FaultOutcome::NotOurs,
        }
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
        let task = self.services.task_state();
        // SAFETY: the current task's own state, on its behalf (see
        // `TaskState`'s `Sync` impl).
        let step = unsafe { &mut *task.step.get() };
        match step.filter(|f| f.end == addr) {
            Some(frame) => {
                *step = None;
                self.complete_step(regs, space, cpu, &frame);
                Ok(())
            }
            None => Err(space),
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
                && buf[..bp.len] == *bp.as_bytes()
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
    fn complete_step<R: Registers>(
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
            self.run_post(regs, frame.point, info.addr, space, cpu);
        }
    }

    /// A probe point's breakpoint trapped.
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    fn hit<R: Registers>(&self, regs: &mut R, point: u32, info: &PointInfo<A>, cpu: usize) {
        let state = &self.cpus[cpu];
        let reentered = state.with(|c| {
            let busy = c.in_handler || (info.space == Space::Kernel && c.depth > 0);
            c.in_handler |= !busy;
            busy
        });
        if reentered {
            self.reenter(regs, point, info, cpu);
            return;
        }
        // Handlers see the pc at the probed instruction on every ISA (x86_64
        // reports the byte after `int3`).
        regs.set_pc(info.addr);
        for p in self.chain(point) {
            let rec = &self.probes[p as usize];
            if !rec.enabled.load(Ordering::Acquire) {
                continue;
            }
            let Some(cfg) = rec.config() else { continue };
            let ctx = ProbeContext {
                id: ProbeId {
                    index: p,
                    generation: rec.generation.load(Ordering::Relaxed),
                },
                addr: info.addr,
                data: cfg.data,
                cpu,
                space: info.space,
                return_address: 0,
            };
            match cfg.handlers {
                Handlers::Kprobe { pre, .. } => {
                    rec.hits.fetch_add(1, Ordering::Relaxed);
                    let Some(pre) = pre else { continue };
                    if pre(&ctx, regs) == PreAction::SkipInstruction {
                        // The handler moved the pc: no step, no post-handlers.
                        state.with(|c| c.in_handler = false);
                        return;
                    }
                }
                Handlers::Kretprobe { .. } => {
                    self.track_call(regs, p, &ctx, info.space, &cfg.handlers)
                }
            }
        }
        state.with(|c| c.in_handler = false);
        let post = self.points[point as usize]
            .post_handlers
            .load(Ordering::Acquire)
            > 0;
        self.execute(regs, point, info, cpu, post, true);
    }

    /// A probe hit while this CPU is inside the probe machinery: count it
    /// as missed for every enabled probe and only execute the instruction.
    #[link_section = "probe_trap_text"]
    #[cold]
    #[inline(never)]
    fn reenter<R: Registers>(&self, regs: &mut R, point: u32, info: &PointInfo<A>, cpu: usize) {
        for p in self.chain(point) {
            let rec = &self.probes[p as usize];
            if rec.enabled.load(Ordering::Relaxed) {
                rec.missed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.execute(regs, point, info, cpu, false, false);
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
    ) {
        let Some(decoded) = &info.decoded else { return };
        if decoded.handling == Handling::Simulate {
            self.simulate(regs, point, info, cpu, run_post);
            return;
        }
        if may_boost && !run_post && info.boost_slot != 0 {
            let _ = A::prepare_step(decoded, regs, info.boost_slot, true);
            return;
        }
        let frame = StepFrame {
            point,
            run_post,
            slot: info.step_slot,
            end: info.step_end,
            state: A::prepare_step(decoded, regs, info.step_slot, false),
        };
        match info.space {
            Space::Kernel => {
                if !self.cpus[cpu].with(|c| c.push(frame)) {
                    too_deep::<A, R>(regs, decoded, info.addr, frame.state);
                }
            }
            Space::User(_) => self.park_user_step(frame),
        }
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
    ) {
        let Some(decoded) = &info.decoded else { return };
        let mem = self.memory(info.space);
        if A::simulate(decoded, info.addr, regs, &mem).is_err() {
            // The emulated access faulted (e.g. a `ret` on a bad stack):
            // leave the frame untouched at the probe; the kernel's
            // breakpoint-loop detection, if any, sees a repeating trap.
            log::error!("probe at {:#x}: simulation faulted", info.addr);
            regs.set_pc(info.addr);
            return;
        }
        if run_post {
            self.run_post(regs, point, info.addr, info.space, cpu);
        }
    }

    /// Keep a user task's step with the task (it may be preempted or
    /// migrate before the step ends).
    #[link_section = "probe_trap_text"]
    #[inline(never)]
    fn park_user_step(&self, frame: StepFrame<A>) {
        let task = self.services.task_state();
        // SAFETY: the current task's own state, on its behalf.
        unsafe { *task.step.get() = Some(frame) };
    }

    #[inline(always)]
    #[link_section = "probe_trap_text"]
    fn run_post<R: Registers>(
        &self,
        regs: &mut R,
        point: u32,
        addr: usize,
        space: Space,
        cpu: usize,
    ) {
        let state = &self.cpus[cpu];
        state.with(|c| c.in_handler = true);
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
                let ctx = ProbeContext {
                    id: ProbeId {
                        index: p,
                        generation: rec.generation.load(Ordering::Relaxed),
                    },
                    addr,
                    data: cfg.data,
                    cpu,
                    space,
                    return_address: 0,
                };
                post(&ctx, regs);
            }
        }
        state.with(|c| c.in_handler = false);
    }
}

/// Nesting deeper than the CPU's step stack: undo the step set-up, and let
/// the breakpoint trap again later rather than lose track of a step.
#[link_section = "probe_trap_text"]
#[cold]
#[inline(never)]
fn too_deep<A: Arch, R: Registers>(
    regs: &mut R,
    decoded: &probe_hal::Decoded<A::Insn>,
    addr: usize,
    state: A::StepState,
) {
    A::abort_step(decoded, regs, addr, state);
    log::error!("probe at {addr:#x}: nesting deeper than {MAX_NESTING}");
}
