//! Decoding and the three-way decision: refuse, simulate, or step out of line.
//!
//! The decoder is `yaxpeax-x86` in 64-bit mode. The decision follows Linux:
//! arch/x86/kernel/kprobes/core.c (`can_probe`, `__copy_instruction`,
//! `prepare_emulation`, `can_boost`) for kernel probes and
//! arch/x86/kernel/uprobes.c for user probes:
//! - refused: see [`crate::refusals`];
//! - simulated: every branch that reads rip (`jmp`, `call`, `jcc`, the
//!   `loop` family, `ret`, `call`/`jmp` through a register) and, in kernel
//!   mode, `cli`/`sti`/`pushf`/`popf` (see [`crate::simulate`]);
//! - stepped out of line: everything else, with a rip-relative displacement
//!   recomputed for the slot (see [`crate::slot`]).
//!
//! Why `pushf`/`popf`/`cli`/`sti` are simulated in kernel mode: the
//! out-of-line step runs with IF cleared so that no interrupt lands between
//! the copy and its trap. A stepped `pushf` would then push IF = 0 and a
//! stepped `popf`/`sti`/`cli` would have its IF overwritten when the step
//! ends. Emulating them on the trap frame (as Linux does) gives the
//! interrupted context's real IF and needs no fix-up after the step. In user
//! mode the step leaves IF alone (user code always runs with IF set) and the
//! CPU enforces the IOPL rules a simulation would have to copy, so they are
//! stepped like any other instruction. The step never uses TF, so no
//! instruction can corrupt a TF the step relies on.

use probe_hal::{Decoded, ExecMode, Handling, ProbeError, ProbeErrorKind, Refusal};
use yaxpeax_arch::annotation::{AnnotatingDecoder, DescriptionSink};
use yaxpeax_arch::{LengthedInstruction, U8Reader};
use yaxpeax_x86::long_mode::{
    register_class, FieldDescription, InnerDescription, InstDecoder, Instruction, Operand, RegSpec,
};

use crate::refusals::{self, contextual};
use crate::simulate::{self, Class, Emulation, IfOp};

/// Longest x86 instruction.
pub(crate) const MAX_INSN_LEN: usize = 15;

/// `endbr64`, the indirect-branch landing pad at function entries under CET.
pub(crate) const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];

/// A rip-relative memory operand of a stepped instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RipRelative {
    /// Offset of the 32-bit displacement within the instruction.
    pub disp_offset: u8,
    /// The displacement as encoded.
    pub disp: i32,
    /// 0x67 prefix: `[eip + disp]`, the address is truncated to 32 bits.
    pub eip: bool,
}

/// How a stepped instruction is copied to its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The rip-relative operand whose displacement is recomputed, if any.
    pub rip_relative: Option<RipRelative>,
    /// The slot may end with a `jmp` back instead of a trap.
    pub boostable: bool,
}

/// What the backend does with an accepted instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Emulated on the trap frame.
    Emulate(Emulation),
    /// Copied (relocated if needed) to an out-of-line slot.
    Step(Step),
}

/// The x86_64 backend's decoded form of an accepted instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    op: Op,
    len: u8,
    mode: ExecMode,
}

impl Insn {
    /// Emulated or stepped, and how.
    pub fn op(&self) -> Op {
        self.op
    }
    /// Length of the instruction in bytes.
    pub fn length(&self) -> usize {
        self.len as usize
    }
    /// The mode the instruction was decoded for.
    pub fn mode(&self) -> ExecMode {
        self.mode
    }
}

/// Opcode maps, as far as the decision and the boost table need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Map {
    /// One-byte opcodes.
    One,
    /// `0f xx`.
    Two,
    /// `0f 38 xx`.
    Three38,
    /// `0f 3a xx`.
    Three3A,
    /// AMD 3DNow! (`0f 0f modrm … imm8`).
    Amd3DNow,
    /// VEX-encoded (c4/c5).
    Vex,
    /// EVEX-encoded (62).
    Evex,
}

/// The raw layout of an instruction: where its opcode is and which prefixes
/// matter to the decision. Only meaningful for bytes the decoder accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Encoding {
    pub(crate) map: Map,
    /// The opcode byte within its map (for VEX/EVEX: the prefix byte).
    pub(crate) opcode: u8,
    /// Offset of the first opcode byte (after legacy prefixes and REX).
    pub(crate) opcode_at: usize,
    /// A 0x2e (CS override / branch-not-taken hint) prefix is present.
    pub(crate) cs_prefix: bool,
    /// A 0x67 (address-size) prefix is present.
    pub(crate) address_size_prefix: bool,
}

impl Encoding {
    /// Skip legacy prefixes and REX and find the opcode map. `None` if the
    /// bytes end first.
    pub(crate) fn scan(bytes: &[u8]) -> Option<Self> {
        let mut i = 0;
        let mut cs_prefix = false;
        let mut address_size_prefix = false;
        loop {
            match *bytes.get(i)? {
                0x2e => cs_prefix = true,
                0x67 => address_size_prefix = true,
                0x26 | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0xf0 | 0xf2 | 0xf3 => {}
                0x40..=0x4f => {} // REX (ignored by the CPU if a legacy prefix follows)
                _ => break,
            }
            i += 1;
        }
        let first = bytes[i];
        let (map, opcode) = match first {
            0xc4 | 0xc5 => (Map::Vex, first),
            0x62 => (Map::Evex, first),
            0x0f => match *bytes.get(i + 1)? {
                0x38 => (Map::Three38, *bytes.get(i + 2)?),
                0x3a => (Map::Three3A, *bytes.get(i + 2)?),
                0x0f => (Map::Amd3DNow, 0x0f),
                b => (Map::Two, b),
            },
            b => (Map::One, b),
        };
        Some(Self {
            map,
            opcode,
            opcode_at: i,
            cs_prefix,
            address_size_prefix,
        })
    }

    /// The byte after a one- or two-byte opcode: its ModRM when it has one.
    fn byte_after_opcode(&self, bytes: &[u8]) -> Option<u8> {
        let at = match self.map {
            Map::One => self.opcode_at + 1,
            Map::Two => self.opcode_at + 2,
            _ => return None,
        };
        bytes.get(at).copied()
    }
}

/// Records where the decoder found a memory displacement.
#[derive(Default)]
struct DisplacementSink {
    start_bit: Option<u32>,
}

impl DescriptionSink<FieldDescription> for DisplacementSink {
    fn record(&mut self, start: u32, _end: u32, description: FieldDescription) {
        if let InnerDescription::Number(name, _) = description.desc() {
            if *name == "displacement" {
                self.start_bit = Some(start);
            }
        }
    }
}

fn decoder() -> InstDecoder {
    InstDecoder::default()
}

fn window(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(MAX_INSN_LEN)]
}

/// Length of the instruction at `bytes[0]`, or `None` if it does not decode.
pub(crate) fn insn_len(bytes: &[u8]) -> Option<usize> {
    decoder()
        .decode_slice(window(bytes))
        .ok()
        .map(|i| i.len().to_const() as usize)
}

/// Bytes a function-entry probe skips: 4 over an `endbr64` (Linux
/// `arch_adjust_kprobe_addr`), else 0.
pub(crate) fn entry_skip(bytes: &[u8]) -> usize {
    if bytes.starts_with(&ENDBR64) {
        ENDBR64.len()
    } else {
        0
    }
}

/// Decide about the instruction at `addr` whose bytes start at `bytes[0]`.
pub(crate) fn decode(
    addr: usize,
    bytes: &[u8],
    mode: ExecMode,
) -> Result<Decoded<Insn>, ProbeError> {
    let bytes = window(bytes);
    let refuse = |r: Refusal| Err(ProbeError::refused(r, addr));
    let undecodable = || Err(ProbeError::new(ProbeErrorKind::Undecodable, addr));

    let enc = Encoding::scan(bytes);
    let mut insn = Instruction::default();
    let mut sink = DisplacementSink::default();
    let decoded = decoder().decode_with_annotation(&mut insn, &mut U8Reader::new(bytes), &mut sink);
    let enc = match (decoded, enc) {
        (Ok(()), Some(enc)) => enc,
        (_, Some(enc)) if enc.map == Map::One => {
            return match refusals::invalid_in_long_mode(enc.opcode) {
                Some(r) => refuse(r),
                None => undecodable(),
            };
        }
        _ => return undecodable(),
    };
    let len = insn.len().to_const() as usize;
    let modrm = enc.byte_after_opcode(bytes);

    // Refusals decided by the raw encoding.
    if enc.map == Map::One {
        match enc.opcode {
            0xcc => return refuse(refusals::INT3),
            0xcd => return refuse(refusals::INT_N),
            0xf1 => return refuse(refusals::INT1),
            0x8e if modrm.is_some_and(|m| (m >> 3) & 7 == 2) => return refuse(contextual::MOV_SS),
            _ => {}
        }
    }
    // Refusals decided by the opcode.
    if let Some(r) = refusals::by_opcode(insn.opcode()) {
        return refuse(r);
    }

    let accept = |op: Op, handling: Handling| {
        Ok(Decoded {
            len,
            handling,
            insn: Insn {
                op,
                len: len as u8,
                mode,
            },
        })
    };
    let emulate = |e: Emulation| accept(Op::Emulate(e), Handling::Simulate);

    if let Some(class) = simulate::class_of(insn.opcode()) {
        let o16 = insn.prefixes.operand_size();
        let first = insn.operand(0);
        match class {
            Class::Jmp | Class::Call => {
                if o16 {
                    return refuse(contextual::BRANCH_O16);
                }
                let call = class == Class::Call;
                return match first {
                    Operand::ImmediateI8 { imm } if !call => {
                        emulate(Emulation::Jmp { rel: imm as i32 })
                    }
                    Operand::ImmediateI32 { imm } if !call => emulate(Emulation::Jmp { rel: imm }),
                    Operand::ImmediateI32 { imm } => emulate(Emulation::Call { rel: imm }),
                    Operand::Register { reg } if reg.class() == register_class::Q => {
                        let reg = reg.num();
                        emulate(if call {
                            Emulation::CallReg { reg }
                        } else {
                            Emulation::JmpReg { reg }
                        })
                    }
                    op if op.is_memory() => refuse(if call {
                        contextual::CALL_MEM
                    } else {
                        contextual::JMP_MEM
                    }),
                    _ => undecodable(),
                };
            }
            Class::Ret => {
                if o16 {
                    return refuse(contextual::BRANCH_O16);
                }
                let release = match (insn.operand_count(), first) {
                    (0, _) => 0,
                    (_, Operand::ImmediateU16 { imm }) => imm,
                    (_, Operand::ImmediateI16 { imm }) => imm as u16,
                    _ => return undecodable(),
                };
                return emulate(Emulation::Ret { release });
            }
            Class::Jcc(cond) => {
                if o16 {
                    return refuse(contextual::BRANCH_O16);
                }
                return match first {
                    Operand::ImmediateI8 { imm } => emulate(Emulation::Jcc {
                        cond,
                        rel: imm as i32,
                    }),
                    Operand::ImmediateI32 { imm } => emulate(Emulation::Jcc { cond, rel: imm }),
                    _ => undecodable(),
                };
            }
            Class::Loop(kind) => {
                if o16 {
                    return refuse(contextual::BRANCH_O16);
                }
                return match first {
                    Operand::ImmediateI8 { imm } => emulate(Emulation::Loop {
                        kind,
                        rel: imm,
                        ecx: insn.prefixes.address_size(),
                    }),
                    _ => undecodable(),
                };
            }
            Class::IfModifier(op) if mode == ExecMode::Kernel => {
                return emulate(match op {
                    IfOp::Cli => Emulation::Cli,
                    IfOp::Sti => Emulation::Sti,
                    IfOp::Pushf => Emulation::Pushf { word: o16 },
                    IfOp::Popf => Emulation::Popf { word: o16 },
                });
            }
            // User mode: stepped like any other instruction.
            Class::IfModifier(_) => {}
        }
    }

    // Stepped out of line.
    let rip_relative = match rip_operand(&insn) {
        None => None,
        Some((disp, eip)) => {
            let located = sink
                .start_bit
                .map(|bit| (bit / 8) as usize)
                .filter(|&at| at + 4 <= len && bytes[at..at + 4] == disp.to_le_bytes());
            match located {
                Some(at) => Some(RipRelative {
                    disp_offset: at as u8,
                    disp,
                    eip,
                }),
                None => return refuse(contextual::RIP_DISP_UNKNOWN),
            }
        }
    };
    let boostable = crate::boost::can_boost(&enc, modrm);
    accept(
        Op::Step(Step {
            rip_relative,
            boostable,
        }),
        Handling::StepOutOfLine { boostable },
    )
}

/// The displacement of a `[rip + disp32]` (or `[eip + disp32]`) operand.
fn rip_operand(insn: &Instruction) -> Option<(i32, bool)> {
    let is_ip = |base: &RegSpec| *base == RegSpec::rip() || *base == RegSpec::eip();
    (0..insn.operand_count()).find_map(|i| match insn.operand(i) {
        Operand::Disp { base, disp } | Operand::DispMasked { base, disp, .. } if is_ip(&base) => {
            Some((disp, base == RegSpec::eip()))
        }
        Operand::MemDeref { base } | Operand::MemDerefMasked { base, .. } if is_ip(&base) => {
            Some((0, base == RegSpec::eip()))
        }
        _ => None,
    })
}
