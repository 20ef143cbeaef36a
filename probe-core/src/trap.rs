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
use crate::task::UserStep;

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
    fn cpu_index(&self) -> usize {
        let c = self.services.cpu_id();
        debug_assert!(c < CPUS, "cpu_id {c} beyond the engine's CPUS");
        c.min(CPUS.saturating_sub(1))
    }

    #[link_section = "probe_trap_text"]
    fn space_of(&self, mode: ExecMode) -> Space {
        match mode {
            ExecMode::Kernel => Space::Kernel,
            ExecMode::User => Space::User(self.services.current_space()),
        }
    }

    /// The kernel's breakpoint trap handler calls this with the trap frame
    /// and the mode the trap came from. Interrupts must be masked.
    #[link_section = "probe_trap_text"]
    pub fn handle_breakpoint<R: Registers>(&self, regs: &mut R, mode: ExecMode) -> TrapOutcome {
        let addr = A::trap_address(regs.pc());
        let space = self.space_of(mode);
        if self.finish_step(regs, space, addr) {
            return TrapOutcome::Handled;
        }
        if let Some(p) = self.find_point(space, addr) {
            let point = self.points[p as usize].info();
            match point.kind {
                PointKind::ReturnTrampoline => {
                    self.return_from(regs, space);
                }
                PointKind::Probe => self.hit(regs, p, point),
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

    /// The kernel's fault handlers call this first (page fault, access
    /// fault, illegal instruction…), with interrupts masked.
    #[link_section = "probe_trap_text"]
    pub fn handle_fault<R: Registers>(&self, regs: &mut R, mode: ExecMode) -> FaultOutcome {
        let pc = regs.pc();
        match mode {
            ExecMode::Kernel => {
                let cpu = &self.cpus[self.cpu_index()];
                let frame = cpu.with(|c| match c.top() {
                    Some(f) if pc >= f.slot && pc < f.slot + A::SLOT_LEN => {
                        let f = *f;
                        c.depth -= 1;
                        c.frames[c.depth] = None;
                        Some(f)
                    }
                    _ => None,
                });
                match frame {
                    Some(f) => {
                        let info = self.points[f.point as usize].info();
                        A::abort_step(
                            info.decoded.as_ref().expect("stepped point is decoded"),
                            regs,
                            info.addr,
                            f.state,
                        );
                        FaultOutcome::StepAborted
                    }
                    None => FaultOutcome::NotOurs,
                }
            }
            ExecMode::User => {
                let task = self.services.task_state();
                // SAFETY: the current task's own state, on its behalf (see
                // `TaskState`'s `Sync` impl).
                let step = unsafe { &mut *task.step.get() };
                match *step {
                    Some(s) if pc >= s.slot && pc < s.slot + A::SLOT_LEN => {
                        *step = None;
                        let info = self.points[s.point as usize].info();
                        A::abort_step(
                            info.decoded.as_ref().expect("stepped point is decoded"),
                            regs,
                            info.addr,
                            s.state,
                        );
                        FaultOutcome::StepAborted
                    }
                    _ => FaultOutcome::NotOurs,
                }
            }
        }
    }

    /// Whether the bytes at `addr` are still one of our breakpoints.
    #[link_section = "probe_trap_text"]
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

    /// A step-end marker trapped: complete the step in flight.
    #[link_section = "probe_trap_text"]
    fn finish_step<R: Registers>(&self, regs: &mut R, space: Space, addr: usize) -> bool {
        let (point, slot, run_post, state) = match space {
            Space::Kernel => {
                let cpu = &self.cpus[self.cpu_index()];
                let f = cpu.with(|c| match c.top() {
                    Some(f) if f.end == addr => {
                        let f = *f;
                        c.depth -= 1;
                        c.frames[c.depth] = None;
                        Some(f)
                    }
                    _ => None,
                });
                match f {
                    Some(f) => (f.point, f.slot, f.run_post, f.state),
                    None => return false,
                }
            }
            Space::User(_) => {
                let task = self.services.task_state();
                // SAFETY: the current task's own state, on its behalf.
                let step = unsafe { &mut *task.step.get() };
                match *step {
                    Some(s) if s.end == addr => {
                        *step = None;
                        (s.point, s.slot, s.run_post, s.state)
                    }
                    _ => return false,
                }
            }
        };
        let info = self.points[point as usize].info();
        let decoded = info.decoded.as_ref().expect("stepped point is decoded");
        let mem = self.memory(space);
        if A::finish_step(decoded, regs, info.addr, slot, state, &mem).is_err() {
            log::error!("probe at {:#x}: fixing up after the step failed", info.addr);
        }
        if run_post {
            self.run_post(regs, point, info);
        }
        true
    }

    /// A probe point's breakpoint trapped.
    #[link_section = "probe_trap_text"]
    fn hit<R: Registers>(&self, regs: &mut R, point: u32, info: &PointInfo<A>) {
        let cpu_index = self.cpu_index();
        let cpu = &self.cpus[cpu_index];
        let reentered = cpu.with(|c| {
            let busy = c.in_handler || (info.space == Space::Kernel && c.depth > 0);
            if !busy {
                c.in_handler = true;
            }
            busy
        });
        if reentered {
            for p in self.chain(point) {
                let rec = &self.probes[p as usize];
                if rec.enabled.load(Ordering::Relaxed) {
                    rec.missed.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.execute(regs, point, info, false, false);
            return;
        }
        let mut skip = false;
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
                cpu: cpu_index,
                space: info.space,
                return_address: 0,
            };
            match cfg.handlers {
                Handlers::Kprobe { pre, .. } => {
                    rec.hits.fetch_add(1, Ordering::Relaxed);
                    if let Some(pre) = pre {
                        if pre(&ctx, regs) == PreAction::SkipInstruction {
                            skip = true;
                            break;
                        }
                    }
                }
                Handlers::Kretprobe { .. } => {
                    self.track_call(regs, p, &ctx, info.space, &cfg.handlers)
                }
            }
        }
        cpu.with(|c| c.in_handler = false);
        if !skip {
            let post = self.points[point as usize]
                .post_handlers
                .load(Ordering::Acquire)
                > 0;
            self.execute(regs, point, info, post, true);
        }
    }

    /// Execute the displaced instruction: simulate it, or send the pc into
    /// its slot (boosted when allowed).
    #[link_section = "probe_trap_text"]
    fn execute<R: Registers>(
        &self,
        regs: &mut R,
        point: u32,
        info: &PointInfo<A>,
        run_post: bool,
        may_boost: bool,
    ) {
        let decoded = info.decoded.as_ref().expect("probe point is decoded");
        match decoded.handling {
            Handling::Simulate => {
                let mem = self.memory(info.space);
                if A::simulate(decoded, info.addr, regs, &mem).is_err() {
                    // Leave the pc at the probe: the kernel sees the fault
                    // when it re-executes the original instruction... which
                    // is our breakpoint, so report the faulting state instead.
                    log::error!("probe at {:#x}: simulation faulted", info.addr);
                    regs.set_pc(info.addr);
                    return;
                }
                if run_post {
                    self.run_post(regs, point, info);
                }
            }
            Handling::StepOutOfLine { .. } => {
                if may_boost && !run_post && info.boost_slot != 0 {
                    let _ = A::prepare_step(decoded, regs, info.boost_slot, true);
                    return;
                }
                let state = A::prepare_step(decoded, regs, info.step_slot, false);
                let end = info.step_slot + info.step_end;
                match info.space {
                    Space::Kernel => {
                        let cpu = &self.cpus[self.cpu_index()];
                        let pushed = cpu.with(|c| {
                            if c.depth == MAX_NESTING {
                                return false;
                            }
                            c.frames[c.depth] = Some(StepFrame {
                                point,
                                slot: info.step_slot,
                                end,
                                run_post,
                                state,
                            });
                            c.depth += 1;
                            true
                        });
                        if !pushed {
                            // Too deep: undo and re-trap later rather than
                            // lose track of a step.
                            A::abort_step(decoded, regs, info.addr, state);
                            log::error!(
                                "probe at {:#x}: nesting deeper than {MAX_NESTING}",
                                info.addr
                            );
                        }
                    }
                    Space::User(_) => {
                        let task = self.services.task_state();
                        // SAFETY: the current task's own state, on its behalf.
                        unsafe {
                            *task.step.get() = Some(UserStep {
                                point,
                                end,
                                slot: info.step_slot,
                                run_post,
                                state,
                            })
                        };
                    }
                }
            }
        }
    }

    #[link_section = "probe_trap_text"]
    fn run_post<R: Registers>(&self, regs: &mut R, point: u32, info: &PointInfo<A>) {
        let cpu_index = self.cpu_index();
        let cpu = &self.cpus[cpu_index];
        cpu.with(|c| c.in_handler = true);
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
                    addr: info.addr,
                    data: cfg.data,
                    cpu: cpu_index,
                    space: info.space,
                    return_address: 0,
                };
                post(&ctx, regs);
            }
        }
        cpu.with(|c| c.in_handler = false);
    }
}
