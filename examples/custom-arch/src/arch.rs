//! `Toy`: the Toy ISA's implementation of `probe_hal::Arch`. Nothing in
//! probe-core knows this ISA; everything it needs is here.

use probe_hal::{
    Arch, Breakpoint, CallAbi, DataAccess, Decoded, ExecMode, Handling, MemoryFault, ProbeError,
    ProbeErrorKind, Refusal, Registers, SlotImage,
};

use crate::isa::{op, FLAG_IE, RA, SP};

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
