//! The Toy interpreter: runs one CPU of the world, handing breakpoint,
//! step-end and fault traps to the engine exactly as a kernel's trap
//! handlers would.

use probe_core::{FaultOutcome, Space, TrapOutcome};
use probe_hal::opthook::OptHook;
use probe_hal::rethook::ReturnHook;
use probe_hal::{ExecMode, Registers};

use crate::arch::{ToyRegs, TRAMPOLINE};
use crate::isa::{op, DETOUR_HEADER, FLAG_IE, SP};
use crate::world::World;
use crate::ToyEngine;

/// One CPU's context.
#[derive(Debug, Clone)]
pub struct Cpu {
    /// Its index (the engine's `cpu_id`).
    pub index: usize,
    /// The task it runs.
    pub task: usize,
    /// Registers.
    pub regs: ToyRegs,
    /// The address space it executes in.
    pub space: Space,
    /// Address linked by `ll`, cleared by every trap.
    pub link: Option<usize>,
    /// Instructions executed.
    pub executed: u64,
    /// Traps taken (breakpoints and faults).
    pub traps: u64,
    /// Detour entries (`dentry`: optimised hits, no trap).
    pub detour_entries: u64,
    /// How often each address was executed (outside traps).
    pub visits: std::collections::HashMap<usize, u64>,
}

/// Why a run stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// `halt` executed.
    Halted,
    /// The step budget ran out.
    Budget,
    /// A breakpoint the engine said is not its own.
    ForeignBreakpoint(usize),
    /// A fault no fix-up handles.
    Fault(usize),
}

impl Cpu {
    /// A CPU about to run at `pc` in `space`, with interrupts enabled and a
    /// stack at `sp`.
    pub fn new(index: usize, task: usize, space: Space, pc: usize, sp: usize) -> Self {
        let mut regs = ToyRegs {
            flags: FLAG_IE,
            ..ToyRegs::default()
        };
        regs.pc = pc as u64;
        regs.r[SP] = sp as u64;
        Self {
            index,
            task,
            regs,
            space,
            link: None,
            executed: 0,
            traps: 0,
            detour_entries: 0,
            visits: Default::default(),
        }
    }

    fn mode(&self) -> ExecMode {
        self.space.mode()
    }

    /// Run until `halt`, a foreign trap or `budget` instructions.
    pub fn run<const P: usize>(
        &mut self,
        world: &World,
        engine: &ToyEngine<P>,
        budget: u64,
    ) -> Stop {
        for _ in 0..budget {
            if let Some(stop) = self.step(world, engine) {
                return stop;
            }
        }
        Stop::Budget
    }

    /// Run until the pc leaves `[start, end)` (at most `budget` steps).
    pub fn run_while_in<const P: usize>(
        &mut self,
        world: &World,
        engine: &ToyEngine<P>,
        start: usize,
        end: usize,
        budget: u64,
    ) -> Option<Stop> {
        for _ in 0..budget {
            let pc = self.regs.pc as usize;
            if pc < start || pc >= end {
                return None;
            }
            if let Some(stop) = self.step(world, engine) {
                return Some(stop);
            }
        }
        Some(Stop::Budget)
    }

    /// Execute one instruction (or take one trap).
    pub fn step<const P: usize>(&mut self, world: &World, engine: &ToyEngine<P>) -> Option<Stop> {
        world.switch_to(self.index, self.task);
        let stop = self.step_inner(world, engine);
        world
            .cpu_pcs
            .lock()
            .unwrap()
            .insert(self.index, (self.space, self.regs.pc as usize));
        stop
    }

    fn step_inner<const P: usize>(&mut self, world: &World, engine: &ToyEngine<P>) -> Option<Stop> {
        let pc = self.regs.pc as usize;
        if self.space == Space::Kernel && pc == TRAMPOLINE {
            // The kernel-mode return trampoline: what a backend's assembly
            // trampoline does, through probe-hal's `ReturnHook`.
            let hook: &dyn ReturnHook = engine;
            // SAFETY: the interpreter runs one CPU at a time on behalf of the
            // task `switch_to` named, as a masked trampoline would.
            let real = unsafe { hook.on_return(&mut self.regs) };
            assert_eq!(real, self.regs.pc as usize);
            return None;
        }
        let b = match world.fetch(self.space, pc) {
            Ok(b) => b,
            Err(f) => return self.fault(world, engine, f.addr),
        };
        self.executed += 1;
        *self.visits.entry(pc).or_default() += 1;
        let (rd, rs) = ((b[1] >> 4) as usize, (b[1] & 15) as usize);
        let imm8 = b[2] as i8 as i64;
        let rel16 = i16::from_le_bytes([b[2], b[3]]) as i64;
        let next2 = pc + 2;
        let next4 = pc + 4;
        let r = |cpu: &Self, n: usize| cpu.regs.gpr(n) as u64;
        match b[0] {
            op::NOP => self.regs.set_pc(next2),
            op::MOV => {
                self.regs.set_gpr(rd, r(self, rs) as usize);
                self.regs.set_pc(next2)
            }
            op::ADD => {
                self.regs
                    .set_gpr(rd, r(self, rd).wrapping_add(r(self, rs)) as usize);
                self.regs.set_pc(next2)
            }
            op::INC => {
                let d = b[1] as usize;
                self.regs.set_gpr(d, r(self, d).wrapping_add(1) as usize);
                self.regs.set_pc(next2)
            }
            op::RET => self.regs.set_pc(self.regs.gpr(crate::isa::RA)),
            op::BRK | op::STEPEND => {
                self.traps += 1;
                world.count_trap();
                self.link = None;
                let mode = self.mode();
                // SAFETY: traps are taken one at a time on this CPU (which
                // `switch_to` made the world's current CPU and task).
                match unsafe { engine.handle_breakpoint(&mut self.regs, mode) } {
                    TrapOutcome::NotOurs => return Some(Stop::ForeignBreakpoint(pc)),
                    TrapOutcome::Fault { addr } => return self.deliver_fault(world, addr),
                    _ => {}
                }
            }
            op::PUSH => {
                let sp = r(self, SP).wrapping_sub(8);
                if let Err(f) = world.store_u64(self.space, sp as usize, r(self, b[1] as usize)) {
                    return self.fault(world, engine, f.addr);
                }
                self.regs.set_gpr(SP, sp as usize);
                self.regs.set_pc(next2)
            }
            op::POP => {
                let sp = r(self, SP);
                match world.load_u64(self.space, sp as usize) {
                    Ok(v) => self.regs.set_gpr(b[1] as usize, v as usize),
                    Err(f) => return self.fault(world, engine, f.addr),
                }
                self.regs.set_gpr(SP, sp.wrapping_add(8) as usize);
                self.regs.set_pc(next2)
            }
            op::HALT => return Some(Stop::Halted),
            op::SC => {
                let addr = r(self, rs) as usize;
                if self.link == Some(addr) {
                    if let Err(f) = world.store_u64(self.space, addr, r(self, rd)) {
                        return self.fault(world, engine, f.addr);
                    }
                    self.regs.set_gpr(rd, 1);
                } else {
                    self.regs.set_gpr(rd, 0);
                }
                self.link = None;
                self.regs.set_pc(next2)
            }
            op::CLI => {
                self.regs.flags &= !FLAG_IE;
                self.regs.set_pc(next2)
            }
            op::LI => {
                self.regs.set_gpr(b[1] as usize, rel16 as usize);
                self.regs.set_pc(next4)
            }
            op::ADDI => {
                self.regs
                    .set_gpr(rd, r(self, rs).wrapping_add(imm8 as u64) as usize);
                self.regs.set_pc(next4)
            }
            op::LD => {
                let a = r(self, rs).wrapping_add(imm8 as u64) as usize;
                match world.load_u64(self.space, a) {
                    Ok(v) => self.regs.set_gpr(rd, v as usize),
                    Err(f) => return self.fault(world, engine, f.addr),
                }
                self.regs.set_pc(next4)
            }
            op::ST => {
                let a = r(self, rs).wrapping_add(imm8 as u64) as usize;
                if let Err(f) = world.store_u64(self.space, a, r(self, rd)) {
                    return self.fault(world, engine, f.addr);
                }
                self.regs.set_pc(next4)
            }
            op::JMP => self.regs.set_pc((pc as i64 + rel16) as usize),
            op::BEQ => {
                let t = if r(self, rd) == r(self, rs) {
                    (pc as i64 + imm8) as usize
                } else {
                    next4
                };
                self.regs.set_pc(t)
            }
            op::CALL => {
                self.regs.set_gpr(crate::isa::RA, next4);
                self.regs.set_pc((pc as i64 + rel16) as usize)
            }
            op::LDPC => {
                let a = (pc as i64 + rel16) as usize;
                match world.load_u64(self.space, a) {
                    Ok(v) => self.regs.set_gpr(b[1] as usize, v as usize),
                    Err(f) => return self.fault(world, engine, f.addr),
                }
                self.regs.set_pc(next4)
            }
            op::LL => {
                let a = r(self, rs) as usize;
                match world.load_u64(self.space, a) {
                    Ok(v) => self.regs.set_gpr(rd, v as usize),
                    Err(f) => return self.fault(world, engine, f.addr),
                }
                self.link = Some(a);
                self.regs.set_pc(next4)
            }
            op::SYS => self.regs.set_pc(next4),
            op::CALLM => {
                let a = r(self, b[1] as usize).wrapping_add(imm8 as u64) as usize;
                match world.load_u64(self.space, a) {
                    Ok(v) => {
                        self.regs.set_gpr(crate::isa::RA, next4);
                        self.regs.set_pc(v as usize)
                    }
                    Err(f) => return self.fault(world, engine, f.addr),
                }
            }
            op::OJMP => self.regs.set_pc(crate::arch::ojmp_target(pc, &b)),
            op::DENTRY if self.space == Space::Kernel => {
                return self.detour_entry(world, engine, pc, &b)
            }
            _ => return self.fault(world, engine, pc),
        }
        None
    }

    /// `dentry`: what a backend's detour does around its call into the
    /// engine (save the registers into a frame with pc = the probe
    /// address, mask interrupts, call, restore), here calling the
    /// machine's own engine's `OptHook` directly.
    fn detour_entry<const P: usize>(
        &mut self,
        world: &World,
        engine: &ToyEngine<P>,
        pc: usize,
        b: &[u8; 4],
    ) -> Option<Stop> {
        let probe = match world.load_u64(self.space, pc + 4) {
            Ok(v) => v as usize,
            Err(f) => return self.fault(world, engine, f.addr),
        };
        let cookie = u16::from_le_bytes([b[2], b[3]]) as usize;
        self.detour_entries += 1;
        world.count_detour_entry();
        let saved = self.regs;
        let mut frame = self.regs;
        frame.pc = probe as u64;
        if b[1] & 1 != 0 {
            // Masked for the call (the frame keeps the flags the probed
            // code had, as a trap frame does).
            self.regs.flags &= !FLAG_IE;
        }
        let hook: &dyn OptHook = engine;
        // SAFETY: the interpreter runs this CPU's detour on behalf of the
        // task `switch_to` named, one call at a time, with `frame` a local
        // valid for the call (the contract of `on_optimized_hit`).
        let moved = unsafe { hook.on_optimized_hit(cookie, &mut frame) };
        self.regs = frame;
        if !moved {
            // Run the displaced copy; pc and sp are not read back.
            self.regs.r[SP] = saved.r[SP];
            self.regs.set_pc(pc + DETOUR_HEADER);
        }
        None
    }

    /// A fault: the engine first, then the kernel's own fix-up table.
    fn fault<const P: usize>(
        &mut self,
        world: &World,
        engine: &ToyEngine<P>,
        addr: usize,
    ) -> Option<Stop> {
        self.traps += 1;
        world.count_trap();
        self.link = None;
        let mode = self.mode();
        // SAFETY: as for breakpoints above.
        let _aborted =
            unsafe { engine.handle_fault(&mut self.regs, mode) } == FaultOutcome::StepAborted;
        self.deliver_fault(world, addr)
    }

    /// The kernel's own fault handling: its fix-up table at the pc, or the
    /// fault stops the CPU.
    fn deliver_fault(&mut self, world: &World, addr: usize) -> Option<Stop> {
        let pc = self.regs.pc as usize;
        let fixup = world
            .fixups
            .lock()
            .unwrap()
            .iter()
            .find(|f| f.0 == pc)
            .map(|f| f.1);
        match fixup {
            Some(to) => {
                self.regs.set_pc(to);
                None
            }
            None => Some(Stop::Fault(addr)),
        }
    }
}
