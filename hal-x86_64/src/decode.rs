//! Decoding and the three-way decision: refuse, simulate, or step out of line.
//!
//! The decoder is `yaxpeax-x86` in 64-bit mode. The decision follows Linux:
//! arch/x86/kernel/kprobes/core.c (`can_probe`, `__copy_instruction`,
//! `prepare_emulation`, `can_boost`) for kernel probes and
//! arch/x86/kernel/uprobes.c for user probes:
//! - refused: see [`crate::refusals`];
//! - simulated: every branch that reads rip (`jmp`, `call`, `jcc`, the
//!   `loop` family, `ret`, `call`/`jmp` through a register) and, in kernel
//!   mode, `cli`/`sti`/`pushf`/`popf` (see [`crate::simulate`]); beyond
//!   Linux's kprobes, `call`/`jmp` through memory too, except with an
//!   fs:/gs: operand;
//! - stepped out of line: everything else, with a rip-relative displacement
//!   recomputed for the slot (see [`crate::slot`]). The VEX opmask
//!   instructions, which yaxpeax rejects, are decoded by
//!   [`crate::opmask`] and stepped the same way.
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

use crate::boost::{Encoding, Map};
use crate::memop;
use crate::opmask;
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
    /// Whether it is simulated as a call or a return (the instructions a
    /// CET shadow stack would have to follow).
    pub fn is_simulated_call_or_return(&self) -> bool {
        matches!(
            self.op,
            Op::Emulate(
                Emulation::Call { .. }
                    | Emulation::CallReg { .. }
                    | Emulation::CallMem { .. }
                    | Emulation::Ret { .. }
            )
        )
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

/// Length of the instruction at `bytes[0]`, or `None` if it does not decode
/// (with yaxpeax, or with the opmask fallback for what yaxpeax rejects).
pub(crate) fn insn_len(bytes: &[u8]) -> Option<usize> {
    let bytes = window(bytes);
    match decoder().decode_slice(bytes) {
        Ok(i) => Some(i.len().to_const() as usize),
        Err(_) => opmask::decode(bytes).map(|k| k.len),
    }
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
        // yaxpeax-x86 2.2.0 rejects the VEX opmask instructions: decode
        // them with the fallback and step them like any VEX instruction.
        (Err(_), Some(enc)) if enc.map == Map::Vex => {
            return match opmask::decode(bytes) {
                Some(k) => {
                    let boostable = crate::boost::can_boost(&enc, None);
                    Ok(Decoded {
                        len: k.len,
                        handling: Handling::StepOutOfLine { boostable },
                        insn: Insn {
                            op: Op::Step(Step {
                                rip_relative: k.rip_relative.map(|r| RipRelative {
                                    disp_offset: r.offset,
                                    disp: r.disp,
                                    eip: r.eip,
                                }),
                                boostable,
                            }),
                            len: k.len as u8,
                            mode,
                        },
                    })
                }
                None => undecodable(),
            };
        }
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
        // REX.W wins over 0x66 (SDM Vol. 1 §3.6.1, Table 3-4): `66 48 9c`
        // is a 64-bit pushfq.
        let o16_not_w = o16 && !insn.prefixes.rex().is_some_and(|r| r.w());
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
                    op if op.is_memory() => {
                        // ff /2 and ff /4 (the far forms /3 and /5 are
                        // CALLF/JMPF, refused by opcode above).
                        let reg = modrm.map(|m| (m >> 3) & 7);
                        if enc.map != Map::One
                            || enc.opcode != 0xff
                            || reg != Some(if call { 2 } else { 4 })
                        {
                            return undecodable();
                        }
                        if memop::has_fs_gs(bytes, enc.opcode_at) {
                            return refuse(if call {
                                contextual::CALL_MEM_FS_GS
                            } else {
                                contextual::JMP_MEM_FS_GS
                            });
                        }
                        match memop::parse(&bytes[..len], enc.opcode_at) {
                            Some(mem) if call => emulate(Emulation::CallMem { mem }),
                            Some(mem) => emulate(Emulation::JmpMem { mem }),
                            None => undecodable(),
                        }
                    }
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
                    IfOp::Pushf => Emulation::Pushf { word: o16_not_w },
                    IfOp::Popf => Emulation::Popf { word: o16_not_w },
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
