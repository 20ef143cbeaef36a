//! `Toy`: the Toy ISA's implementation of `probe_hal::Arch`. Nothing in
//! probe-core knows this ISA; everything it needs is here.

use probe_hal::{
    Arch, Breakpoint, CallAbi, DataAccess, Decoded, ExecMode, Handling, MemoryFault, OptRegion,
    ProbeError, ProbeErrorKind, Refusal, Registers, SiteRule, SlotImage, MAX_OPT_REGION,
};

use crate::isa::{op, DETOUR_HEADER, FLAG_IE, RA, SP};

/// What the engine does with one opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Copy it into a slot; `boost`: may jump back by itself.
    Step {
        /// May end with a jump back instead of a trap.
        boost: bool,
    },
    /// Emulate it (it reads or writes the pc).
    Simulate,
    /// Never probe it.
    Refuse(&'static str),
}

/// One row of the decision table.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    /// Opcode.
    pub op: u8,
    /// Mnemonic.
    pub mnemonic: &'static str,
    /// What happens to it.
    pub class: Class,
}

const fn row(op: u8, mnemonic: &'static str, class: Class) -> Decision {
    Decision {
        op,
        mnemonic,
        class,
    }
}

/// The decision table (the data the tests sweep).
pub const DECISIONS: &[Decision] = &[
    row(op::NOP, "nop", Class::Step { boost: true }),
    row(op::MOV, "mov", Class::Step { boost: true }),
    row(op::ADD, "add", Class::Step { boost: true }),
    row(op::INC, "inc", Class::Step { boost: true }),
    row(op::RET, "ret", Class::Simulate),
    row(
        op::BRK,
        "brk",
        Class::Refuse("a breakpoint cannot be stepped out of line"),
    ),
    row(
        op::STEPEND,
        "stepend",
        Class::Refuse("the step-end marker belongs to the engine"),
    ),
    row(op::PUSH, "push", Class::Step { boost: true }),
    row(op::POP, "pop", Class::Step { boost: true }),
    row(
        op::HALT,
        "halt",
        Class::Refuse("stops the CPU; a trap after it would never come"),
    ),
    row(
        op::SC,
        "sc",
        Class::Refuse("a trap between ll and sc breaks the link, so sc would fail forever"),
    ),
    // `cli` changes the flag the step saves and restores: a boosted copy
    // would be fine, a trapped one must keep the new value (see finish_step).
    row(op::CLI, "cli", Class::Step { boost: false }),
    row(op::LI, "li", Class::Step { boost: true }),
    row(op::ADDI, "addi", Class::Step { boost: true }),
    row(op::LD, "ld", Class::Step { boost: true }),
    row(op::ST, "st", Class::Step { boost: true }),
    row(op::JMP, "jmp", Class::Simulate),
    row(op::BEQ, "beq", Class::Simulate),
    row(op::CALL, "call", Class::Simulate),
    // pc-relative: relocated into the slot (displacement recomputed).
    row(op::LDPC, "ldpc", Class::Step { boost: true }),
    row(
        op::LL,
        "ll",
        Class::Refuse("a trap between ll and sc breaks the link, so sc would fail forever"),
    ),
    row(
        op::SYS,
        "sys",
        Class::Refuse("enters the kernel; its return address would be the slot"),
    ),
    // Reads its target from memory: simulated through the data-access
    // interface (a bad pointer is a fault the kernel delivers).
    row(op::CALLM, "callm", Class::Simulate),
    row(
        op::OJMP,
        "ojmp",
        Class::Refuse("the optimised-probe jump belongs to the engine"),
    ),
    row(
        op::DENTRY,
        "dentry",
        Class::Refuse("the detour entry belongs to the engine"),
    ),
];

/// The decision for `op`, if it is an opcode.
pub fn decision(op: u8) -> Option<&'static Decision> {
    DECISIONS.iter().find(|d| d.op == op)
}

/// The Toy ISA's calling convention: arguments in r1..r4, result in r1.
pub static CALL_ABI: CallAbi = CallAbi {
    args: &[1, 2, 3, 4],
    ret: [1, 2],
};

/// The kernel-mode return trampoline: the interpreter calls the return hook
/// (through `probe_hal::rethook::ReturnHook`) when a CPU's pc reaches it.
pub const TRAMPOLINE: usize = 0x1_fff0;

/// Length of the optimised-probe jump (`ojmp rel16`, 4 bytes).
pub const OPT_JUMP_LEN: usize = 4;
/// Longest displaced region: a 2-byte instruction, then a 4-byte one.
pub const MAX_REGION: usize = 6;
/// A detour: `dentry` and the probe address ([`DETOUR_HEADER`]), the
/// displaced copy, the `ojmp` back.
pub const DETOUR_LEN: usize = DETOUR_HEADER + MAX_REGION + 4;
/// How far a detour may be from its probe: `ojmp` reaches ±64 KiB, and the
/// jump back starts up to `DETOUR_LEN` bytes into the detour (margin kept).
pub const OPT_REACH: usize = 0x1_0000 - 0x100;

/// The `ojmp` displacement (in half-words) from `from` to `to`, if it
/// reaches.
pub fn ojmp_rel(from: usize, to: usize) -> Option<i16> {
    let d = to as i64 - from as i64;
    if d % 2 != 0 {
        return None;
    }
    i16::try_from(d / 2).ok()
}

/// The target of an `ojmp` at `addr` with bytes `b`.
pub fn ojmp_target(addr: usize, b: &[u8; 4]) -> usize {
    (addr as i64 + 2 * rel16(b)) as usize
}

/// One instruction of the function being analysed: its bytes and length.
fn read_insn(text: &dyn DataAccess, at: usize, end: usize) -> Result<([u8; 4], usize), SiteRule> {
    let mut b = [0u8; 4];
    text.read(at, &mut b[..1])
        .map_err(|_| SiteRule::ReadFailed { addr: at })?;
    let len = crate::isa::insn_len(b[0]).ok_or(SiteRule::Undecodable { at })?;
    if at + len > end {
        // The last instruction runs past the symbol's end.
        return Err(SiteRule::Undecodable { at });
    }
    text.read(at, &mut b[..len])
        .map_err(|_| SiteRule::ReadFailed { addr: at })?;
    Ok((b, len))
}

/// Where a direct branch at `at` goes (`jmp`, `beq`, `call`), if it is one.
fn branch_target(at: usize, b: &[u8; 4]) -> Option<usize> {
    match b[0] {
        op::JMP | op::CALL => Some((at as i64 + rel16(b)) as usize),
        op::BEQ => Some((at as i64 + b[2] as i8 as i64) as usize),
        _ => None,
    }
}

/// The Toy backend.
pub struct Toy;

/// The decoded form the engine keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToyInsn {
    /// The instruction bytes (2 or 4 used).
    pub bytes: [u8; 4],
}

/// What a step saves: whether interrupts were enabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToyStepState {
    /// The IE flag before the step.
    pub ie: bool,
}

fn rel16(b: &[u8; 4]) -> i64 {
    i16::from_le_bytes([b[2], b[3]]) as i64
}

impl Arch for Toy {
    const NAME: &'static str = "toy";
    const INSN_ALIGN: usize = 2;
    const MAX_INSN_LEN: usize = 4;
    const SLOT_LEN: usize = 8;
    const LOOK_BACK: usize = 16;
    type Insn = ToyInsn;
    type StepState = ToyStepState;

    fn insn_len(bytes: &[u8]) -> Option<usize> {
        let len = crate::isa::insn_len(*bytes.first()?)?;
        (bytes.len() >= len).then_some(len)
    }

    fn decode(addr: usize, bytes: &[u8], _mode: ExecMode) -> Result<Decoded<ToyInsn>, ProbeError> {
        let undecodable = ProbeError::new(ProbeErrorKind::Undecodable, addr);
        let len = Self::insn_len(bytes).ok_or(undecodable)?;
        let d = decision(bytes[0]).ok_or(undecodable)?;
        let mut b = [0u8; 4];
        b[..len].copy_from_slice(&bytes[..len]);
        let handling = match d.class {
            Class::Step { boost } => Handling::StepOutOfLine { boostable: boost },
            Class::Simulate => Handling::Simulate,
            Class::Refuse(why) => {
                return Err(ProbeError::refused(Refusal::new(d.mnemonic, why), addr))
            }
        };
        Ok(Decoded {
            len,
            handling,
            insn: ToyInsn { bytes: b },
        })
    }

    /// Refuse addresses after an `ll` that no `sc` closed yet. Toy code
    /// cannot be decoded backwards, so every 2-byte offset of the window is
    /// tried as an instruction start; a false `ll` match only refuses a
    /// probe, never allows a wrong one.
    fn check_sequence(addr: usize, before: &[u8], _mode: ExecMode) -> Result<(), ProbeError> {
        let mut open = false;
        let mut i = 0;
        while i + 1 < before.len() {
            match before[i] {
                op::LL if i + 4 <= before.len() => open = true,
                op::SC => open = false,
                _ => {}
            }
            i += 2;
        }
        if open {
            return Err(ProbeError::refused(
                Refusal::new(
                    "(inside ll/sc)",
                    "a trap here breaks the ll/sc link, so the sc would fail forever",
                ),
                addr,
            ));
        }
        Ok(())
    }

    fn breakpoint(_insn_len: usize, mode: ExecMode) -> Breakpoint {
        Breakpoint::new(&[op::BRK, if mode == ExecMode::Kernel { 0 } else { 1 }])
    }

    fn return_breakpoint(_mode: ExecMode) -> Breakpoint {
        Breakpoint::new(&[op::BRK, 2])
    }

    fn trap_address(pc: usize) -> usize {
        pc
    }

    fn build_slot(
        insn: &Decoded<ToyInsn>,
        _orig: &[u8],
        addr: usize,
        slot: usize,
        _mode: ExecMode,
        boost: bool,
    ) -> Result<SlotImage, ProbeError> {
        let mut copy = insn.insn.bytes;
        if copy[0] == op::LDPC {
            let target = addr as i64 + rel16(&copy);
            let rel = i16::try_from(target - slot as i64)
                .map_err(|_| ProbeError::new(ProbeErrorKind::OutOfReach { slot }, addr))?;
            copy[2..4].copy_from_slice(&rel.to_le_bytes());
        }
        let mut image = SlotImage::new();
        image.push(&copy[..insn.len]);
        let back = (addr + insn.len) as i64 - (slot + insn.len) as i64;
        match (boost, i16::try_from(back)) {
            (true, Ok(rel)) => {
                image.push(&crate::isa::asm::jmp(rel));
            }
            _ => {
                let at = image.push(&[op::STEPEND, 0]);
                image.step_end = Some(at);
            }
        }
        Ok(image)
    }

    fn prepare_step<R: Registers + ?Sized>(
        _insn: &Decoded<ToyInsn>,
        regs: &mut R,
        slot: usize,
        boosted: bool,
    ) -> ToyStepState {
        let flags = regs.flags() as u64;
        regs.set_pc(slot);
        if boosted {
            return ToyStepState {
                ie: flags & FLAG_IE != 0,
            };
        }
        regs.set_flags((flags & !FLAG_IE) as usize);
        ToyStepState {
            ie: flags & FLAG_IE != 0,
        }
    }

    fn finish_step<R: Registers + ?Sized>(
        insn: &Decoded<ToyInsn>,
        regs: &mut R,
        addr: usize,
        _slot: usize,
        state: ToyStepState,
        _mem: &dyn DataAccess,
    ) -> Result<(), MemoryFault> {
        regs.set_pc(addr + insn.len);
        // `cli` decided the flag itself; everything else gets it back.
        if insn.insn.bytes[0] != op::CLI && state.ie {
            regs.set_flags(regs.flags() | FLAG_IE as usize);
        }
        Ok(())
    }

    fn abort_step<R: Registers + ?Sized>(
        _insn: &Decoded<ToyInsn>,
        regs: &mut R,
        addr: usize,
        state: ToyStepState,
    ) {
        regs.set_pc(addr);
        if state.ie {
            regs.set_flags(regs.flags() | FLAG_IE as usize);
        }
    }

    fn simulate<R: Registers + ?Sized>(
        insn: &Decoded<ToyInsn>,
        addr: usize,
        regs: &mut R,
        mem: &dyn DataAccess,
    ) -> Result<(), MemoryFault> {
        let b = insn.insn.bytes;
        let (rd, rs) = ((b[1] >> 4) as usize, (b[1] & 15) as usize);
        let next = match b[0] {
            op::RET => regs.gpr(RA),
            op::JMP => (addr as i64 + rel16(&b)) as usize,
            op::CALL => {
                regs.set_gpr(RA, addr + 4);
                (addr as i64 + rel16(&b)) as usize
            }
            op::BEQ if regs.gpr(rd) == regs.gpr(rs) => (addr as i64 + b[2] as i8 as i64) as usize,
            op::BEQ => addr + 4,
            op::CALLM => {
                let at = regs.gpr(b[1] as usize).wrapping_add(b[2] as i8 as usize);
                let target = mem.read_word(at)?;
                regs.set_gpr(RA, addr + 4);
                target
            }
            other => unreachable!("opcode {other:#x} is not simulated"),
        };
        regs.set_pc(next);
        Ok(())
    }

    fn hijack_return<R: Registers + ?Sized>(
        regs: &mut R,
        _mem: &dyn DataAccess,
        trampoline: usize,
    ) -> Result<usize, MemoryFault> {
        let real = regs.gpr(RA);
        regs.set_gpr(RA, trampoline);
        Ok(real)
    }

    fn entry_frame<R: Registers + ?Sized>(regs: &R) -> usize {
        regs.gpr(SP)
    }

    fn return_frame<R: Registers + ?Sized>(regs: &R) -> usize {
        regs.gpr(SP)
    }

    fn kernel_trampoline() -> Option<usize> {
        Some(TRAMPOLINE)
    }

    // The machine calls the engine's return entry itself when a return
    // reaches TRAMPOLINE (many engines share a test process: one global
    // hook could not reach them all).
    const TRAMPOLINE_USES_RETURN_HOOK: bool = false;

    // ---- Jump optimisation ----

    const OPT_JUMP_LEN: usize = OPT_JUMP_LEN;
    const DETOUR_LEN: usize = DETOUR_LEN;
    const OPT_REACH: usize = OPT_REACH;

    /// Linux's `can_optimize` rules, for Toy: the function is known and
    /// contains `addr`; walking it from its start, every instruction
    /// decodes, none has a fault fix-up, and one starts at `addr`; the
    /// region (whole instructions, at least [`OPT_JUMP_LEN`] bytes) lies
    /// within the function and each of its instructions is stepped and
    /// boostable; no direct branch of the function (`jmp`, `beq`, and,
    /// beyond Linux, `call`, since a Toy function may call into itself)
    /// lands after the region's first byte and before its end. Toy has no
    /// indirect jump (`callm` returns after itself, `ret` to a return
    /// address, which never lies inside a region of stepped instructions).
    fn analyze_optimizable(
        addr: usize,
        function: core::ops::Range<usize>,
        text: &dyn DataAccess,
        may_fault: &dyn Fn(usize) -> bool,
        mode: ExecMode,
    ) -> Result<OptRegion, SiteRule> {
        if !function.contains(&addr) {
            return Err(SiteRule::FunctionSizeUnknown);
        }
        let end = function.end;
        // Pass 1: every instruction decodes, none may fault, `addr` is a
        // boundary.
        let mut at = function.start;
        let mut boundary = false;
        while at < end {
            let (_, len) = read_insn(text, at, end)?;
            if may_fault(at) {
                return Err(SiteRule::MayFault { at });
            }
            if at == addr {
                boundary = true;
            } else if at < addr && addr < at + len {
                return Err(SiteRule::NotInstructionBoundary { insn: at });
            }
            at += len;
        }
        if !boundary {
            return Err(SiteRule::FunctionSizeUnknown);
        }
        // The region.
        let mut region = OptRegion {
            addr,
            len: 0,
            insns: 0,
            mode,
            orig: [0; MAX_OPT_REGION],
        };
        while region.len < OPT_JUMP_LEN {
            let at = addr + region.len;
            if at >= end {
                return Err(SiteRule::RegionPastFunction);
            }
            let (b, len) = read_insn(text, at, end).map_err(|e| match e {
                SiteRule::Undecodable { .. } => SiteRule::RegionPastFunction,
                e => e,
            })?;
            match decision(b[0]).map(|d| d.class) {
                Some(Class::Step { boost: true }) => {}
                _ => return Err(SiteRule::NotStepped { at }),
            }
            region.orig[region.len..region.len + len].copy_from_slice(&b[..len]);
            region.len += len;
            region.insns += 1;
        }
        // Pass 2: no branch into the region after its first byte.
        let mut at = function.start;
        while at < end {
            let (b, len) = read_insn(text, at, end)?;
            if let Some(t) = branch_target(at, &b) {
                if t > addr && t < region.end() {
                    return Err(SiteRule::JumpIntoRegion { from: at });
                }
            }
            at += len;
        }
        Ok(region)
    }

    /// `dentry mask, cookie`, the probe address (8 bytes), the displaced
    /// instructions (`ldpc` relocated), `ojmp` back to the region's end.
    fn build_detour(
        region: &OptRegion,
        detour_addr: usize,
        cookie: usize,
        mask_interrupts: bool,
        out: &mut [u8],
    ) -> Result<usize, SiteRule> {
        if out.len() < DETOUR_LEN {
            return Err(SiteRule::BufferTooSmall { needed: DETOUR_LEN });
        }
        if region.len > MAX_REGION {
            return Err(SiteRule::NotSupported);
        }
        let cookie = u16::try_from(cookie).map_err(|_| SiteRule::NotSupported)?;
        out[..4].copy_from_slice(&crate::isa::asm::dentry(mask_interrupts, cookie));
        out[4..DETOUR_HEADER].copy_from_slice(&(region.addr as u64).to_le_bytes());
        let mut o = DETOUR_HEADER;
        let mut i = 0;
        while i < region.len {
            let len = crate::isa::insn_len(region.orig[i]).ok_or(SiteRule::Undecodable {
                at: region.addr + i,
            })?;
            let mut copy = [0u8; 4];
            copy[..len].copy_from_slice(&region.orig[i..i + len]);
            if copy[0] == op::LDPC {
                let target = (region.addr + i) as i64 + rel16(&copy);
                let rel = i16::try_from(target - (detour_addr + o) as i64)
                    .map_err(|_| SiteRule::OutOfReach)?;
                copy[2..4].copy_from_slice(&rel.to_le_bytes());
            }
            out[o..o + len].copy_from_slice(&copy[..len]);
            o += len;
            i += len;
        }
        let back = ojmp_rel(detour_addr + o, region.end()).ok_or(SiteRule::OutOfReach)?;
        out[o..o + 4].copy_from_slice(&crate::isa::asm::ojmp(back));
        Ok(o + 4)
    }

    fn optimized_jump(addr: usize, detour_addr: usize, out: &mut [u8]) -> Result<usize, SiteRule> {
        if out.len() < OPT_JUMP_LEN {
            return Err(SiteRule::BufferTooSmall {
                needed: OPT_JUMP_LEN,
            });
        }
        let rel = ojmp_rel(addr, detour_addr).ok_or(SiteRule::OutOfReach)?;
        out[..4].copy_from_slice(&crate::isa::asm::ojmp(rel));
        Ok(OPT_JUMP_LEN)
    }

    fn detour_displaced_offset(_region: &OptRegion, _detour_addr: usize) -> Option<usize> {
        Some(DETOUR_HEADER)
    }

    // The machine calls its own engine's `OptHook` at `dentry` (every test
    // has its own engine: one process-wide hook could not reach them all).
    const DETOUR_USES_OPT_HOOK: bool = false;
}

/// The Toy trap frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToyRegs {
    /// r0..r15 (r0 always reads 0).
    pub r: [u64; 16],
    /// Program counter.
    pub pc: u64,
    /// Flags ([`FLAG_IE`]).
    pub flags: u64,
}

impl Registers for ToyRegs {
    fn pc(&self) -> usize {
        self.pc as usize
    }
    fn set_pc(&mut self, pc: usize) {
        self.pc = pc as u64
    }
    fn sp(&self) -> usize {
        self.r[SP] as usize
    }
    fn set_sp(&mut self, sp: usize) {
        self.r[SP] = sp as u64
    }
    fn gpr(&self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.r[n] as usize
        }
    }
    fn set_gpr(&mut self, n: usize, v: usize) {
        if n != 0 {
            self.r[n] = v as u64
        }
    }
    fn call_abi(&self) -> &'static CallAbi {
        &CALL_ABI
    }
    fn flags(&self) -> usize {
        self.flags as usize
    }
    fn set_flags(&mut self, f: usize) {
        self.flags = f as u64
    }
}
