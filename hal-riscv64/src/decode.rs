//! Our RV64GC decoder: instruction length and the three-way decision
//! (refuse, simulate, step out of line) for every encoding.
//!
//! Covered: RV64I, M, A, F, D, C, Zicsr and Zifencei, i.e. RV64GC. Anything
//! else (other extensions, reserved and illegal encodings) is undecodable, so
//! it is refused.
//!
//! The decisions start from Linux's `riscv_probe_decode_insn()`
//! (arch/riscv/kernel/probes/decode-insn.c, with the `RISCV_INSN_REJECTED`
//! / `RISCV_INSN_SET_SIMULATE` rules of decode-insn.h):
//! - refused by Linux: the whole SYSTEM major opcode (ecall, ebreak, csr*,
//!   sret, mret, wfi, sfence.vma, …), MISC-MEM (fence, fence.i) and c.ebreak;
//! - simulated (arch/riscv/kernel/probes/simulate-insn.c): jal, jalr, auipc,
//!   the six conditional branches, c.j, c.jr, c.jalr, c.beqz and c.bnez
//!   (every instruction that reads or writes the pc);
//! - stepped out of line: everything else.
//!
//! Beyond Linux, stepped out of line because their effect does not depend
//! on where they run:
//! - `fence`, `fence.tso` and `pause` (unprivileged manual §2.7 "Memory
//!   Ordering Instructions"; `pause` is the Zihintpause HINT `fence w,0`,
//!   chapter "Zihintpause Extension for Pause Hint", v2.0) and `fence.i`
//!   (chapter 3, "Zifencei"): a fence orders the accesses of the hart that
//!   runs it, wherever it runs, and a `fence.i` in a slot synchronises the
//!   instruction fetch of the hart that runs it, as the original would;
//! - the floating-point CSR accesses (`frflags`, `fsflags`, `frrm`, `fsrm`,
//!   `frcsr`, `fscsr`: any Zicsr form on fflags, frm and fcsr; chapter 9
//!   "Zicsr" and §11.2 "Floating-Point Control and Status Register"): the
//!   probe's trap touches no floating-point state;
//! - the counter reads `rdcycle`, `rdtime`, `rdinstret` (chapter 10
//!   "Counters": `csrrs rd, cycle/time/instret, x0`, and the other forms
//!   §9.1 says never write: `csrrc` with rs1 = x0, `csrrsi`/`csrrci` with
//!   uimm = 0). The RV32-only high halves (cycleh…, 0xC80-0xC9F) raise an
//!   illegal-instruction exception on RV64 and stay refused, as do all
//!   other CSRs.
//!
//! One rule more than Linux: `lr` and `sc` are refused (a trap between them
//! may clear the reservation, so the `sc` can fail on every retry; see
//! [`crate::sequence`] for addresses between them).
//!
//! The encodings are data: one ordered rule table per major opcode (32-bit
//! instructions) and per quadrant (16-bit ones); the first rule whose
//! `word & mask == value` wins, so a reserved code point is listed before the
//! general rule it carves out of. Sources: The RISC-V Instruction Set Manual,
//! Volume I: Unprivileged ISA, 20191213 (§1.5 length encoding, chapter 24
//! "RV32/64G Instruction Set Listings", §16.8 "RVC Instruction Set Listings"
//! with tables 16.5-16.7, §11.2 rounding modes, §2.7 and chapters 3, 9
//! and 10 for the fences, Zicsr and the counters; Zihintpause from the
//! ratified v2.0 chapter), and Volume II: Privileged
//! Architecture, 20211203 (§3.3 and §4.2 for mret, sret, wfi and sfence.vma).

use probe_hal::{Decoded, ExecMode, Handling, ProbeError, ProbeErrorKind, Refusal};

/// Why an encoding is accepted, and how it is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Copied into a slot and executed there.
    Step,
    /// Emulated on the trap frame (it reads or writes the pc).
    Simulate(Flow),
    /// A known instruction that must not be probed.
    Refuse(Refusal),
    /// Reserved, illegal, or outside RV64GC.
    Undecodable,
}

/// A condition of a conditional branch (`rs1 <op> rs2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// `beq`, `c.beqz` (with rs2 = x0).
    Eq,
    /// `bne`, `c.bnez` (with rs2 = x0).
    Ne,
    /// `blt`: signed less than.
    Lt,
    /// `bge`: signed greater or equal.
    Ge,
    /// `bltu`: unsigned less than.
    Ltu,
    /// `bgeu`: unsigned greater or equal.
    Geu,
}

/// A simulated instruction with its operands; compressed forms are expressed
/// in their 32-bit equivalent (`c.j` is `jal x0`, `c.beqz` is `beq rs1, x0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// `jal rd, offset`, `c.j`: rd = pc + len; pc += offset.
    Jal {
        /// Link register (0: no link).
        rd: u8,
        /// Byte offset from the instruction's address.
        offset: i32,
    },
    /// `jalr rd, offset(rs1)`, `c.jr`, `c.jalr`:
    /// pc = (rs1 + offset) & !1; rd = old pc + len.
    Jalr {
        /// Link register (0: no link).
        rd: u8,
        /// Base register.
        rs1: u8,
        /// Byte offset added to rs1.
        offset: i32,
    },
    /// `auipc rd, imm`: rd = pc + offset.
    Auipc {
        /// Destination register.
        rd: u8,
        /// The sign-extended `imm << 12`.
        offset: i32,
    },
    /// `b<cond> rs1, rs2, offset`, `c.beqz`, `c.bnez`.
    Branch {
        /// The comparison.
        cond: Cond,
        /// First operand.
        rs1: u8,
        /// Second operand (x0 for the compressed forms).
        rs2: u8,
        /// Byte offset from the instruction's address when taken.
        offset: i32,
    },
}

/// The decoder's answer for one encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Length in bytes (2 or 4).
    pub len: usize,
    /// Mnemonic of the matching table rule (binutils' `-M no-aliases`
    /// spelling, without `.aq`/`.rl` suffixes). An undecodable encoding
    /// carries the name of the instruction whose reserved code point it is
    /// (`"c.lwsp"` for `c.lwsp x0`), or `"unknown"`.
    pub mnemonic: &'static str,
    /// What to do with it.
    pub verdict: Verdict,
}

/// Length of the instruction whose first halfword is at `bytes[0]` (§1.5 of
/// the unprivileged manual): 2 when the low two bits are not `11`, 4 when
/// they are and bits 4:2 are not `111`. Longer encodings (48 bits and up)
/// are defined by no extension of RV64GC: `None`, as for fewer than 2 bytes.
pub fn insn_len(bytes: &[u8]) -> Option<usize> {
    let low = u16::from_le_bytes([*bytes.first()?, *bytes.get(1)?]);
    if low & 0b11 != 0b11 {
        Some(2)
    } else if low & 0b1_1100 != 0b1_1100 {
        Some(4)
    } else {
        None
    }
}

/// Decode the instruction at `bytes[0]`. `None` when there are too few bytes
/// for its length or the length encoding is longer than 32 bits.
pub fn decode_insn(bytes: &[u8]) -> Option<Decision> {
    let len = insn_len(bytes)?;
    let word = if len == 2 {
        u32::from(u16::from_le_bytes([bytes[0], bytes[1]]))
    } else {
        u32::from_le_bytes([
            *bytes.first()?,
            *bytes.get(1)?,
            *bytes.get(2)?,
            *bytes.get(3)?,
        ])
    };
    let rules: &[Rule] = if len == 2 {
        RVC_TABLES[(word & 0b11) as usize]
    } else {
        RV_TABLES[((word >> 2) & 0x1f) as usize]
    };
    let Some(rule) = rules.iter().find(|r| word & r.mask == r.value) else {
        return Some(Decision {
            len,
            mnemonic: "unknown",
            verdict: Verdict::Undecodable,
        });
    };
    let verdict = match rule.action {
        Action::Step => Verdict::Step,
        Action::StepRm => {
            // §11.2: rounding modes 101 and 110 are reserved.
            match (word >> 12) & 0b111 {
                0b101 | 0b110 => Verdict::Undecodable,
                _ => Verdict::Step,
            }
        }
        Action::Simulate(kind) => Verdict::Simulate(kind.operands(word)),
        Action::Refuse(reason) => Verdict::Refuse(Refusal::new(rule.mnemonic, reason)),
        Action::Reserved => Verdict::Undecodable,
    };
    Some(Decision {
        len,
        mnemonic: rule.mnemonic,
        verdict,
    })
}

/// The decoded form of an accepted instruction, kept with its probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Mnemonic (see [`Decision::mnemonic`]).
    pub mnemonic: &'static str,
    /// The operands of a simulated instruction; `None` when it is stepped.
    pub flow: Option<Flow>,
    /// Where the probed code runs (kernel steps mask interrupts).
    pub mode: ExecMode,
}

/// The backend's decision for the instruction at `addr` (see
/// `probe_hal::Arch::decode`): refused, simulated, or stepped out of line
/// (never boostable: riscv has no jump-back slot).
pub fn decode(addr: usize, bytes: &[u8], mode: ExecMode) -> Result<Decoded<Insn>, ProbeError> {
    if addr % 2 != 0 {
        return Err(ProbeError::new(
            ProbeErrorKind::Misaligned { align: 2 },
            addr,
        ));
    }
    let undecodable = ProbeError::new(ProbeErrorKind::Undecodable, addr);
    let decision = decode_insn(bytes).ok_or(undecodable)?;
    let (handling, flow) = match decision.verdict {
        Verdict::Step => (Handling::StepOutOfLine { boostable: false }, None),
        Verdict::Simulate(flow) => (Handling::Simulate, Some(flow)),
        Verdict::Refuse(refusal) => return Err(ProbeError::refused(refusal, addr)),
        Verdict::Undecodable => return Err(undecodable),
    };
    Ok(Decoded {
        len: decision.len,
        handling,
        insn: Insn {
            mnemonic: decision.mnemonic,
            flow,
            mode,
        },
    })
}

// ---------------------------------------------------------------------------
// Operand extraction.

/// The simulated instruction forms, as a table action (operands come later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowKind {
    Jal,
    Jalr,
    Auipc,
    Branch(Cond),
    CJ,
    CJr,
    CJalr,
    CBeqz,
    CBnez,
}

/// Sign-extend the low `bits` bits of `value`.
const fn sext(value: u32, bits: u32) -> i32 {
    let shift = 32 - bits;
    ((value << shift) as i32) >> shift
}

/// Register field at bit `at` (5 bits).
const fn reg(word: u32, at: u32) -> u8 {
    ((word >> at) & 0x1f) as u8
}

/// Bit `from` of `word`, moved to bit `to`.
const fn bit(word: u32, from: u32, to: u32) -> u32 {
    ((word >> from) & 1) << to
}

/// Bits `from..from+n` of `word`, moved to start at bit `to`.
const fn bits(word: u32, from: u32, n: u32, to: u32) -> u32 {
    ((word >> from) & ((1 << n) - 1)) << to
}

impl FlowKind {
    /// The operands of `word` in this form (immediate layouts: §2.3 and §16.4
    /// of the unprivileged manual).
    fn operands(self, w: u32) -> Flow {
        match self {
            // J-type: imm[20|10:1|11|19:12].
            FlowKind::Jal => Flow::Jal {
                rd: reg(w, 7),
                offset: sext(
                    bit(w, 31, 20) | bits(w, 21, 10, 1) | bit(w, 20, 11) | bits(w, 12, 8, 12),
                    21,
                ),
            },
            // I-type: imm[11:0] in bits 31:20.
            FlowKind::Jalr => Flow::Jalr {
                rd: reg(w, 7),
                rs1: reg(w, 15),
                offset: (w as i32) >> 20,
            },
            // U-type: imm[31:12].
            FlowKind::Auipc => Flow::Auipc {
                rd: reg(w, 7),
                offset: (w & 0xffff_f000) as i32,
            },
            // B-type: imm[12|10:5] in bits 31:25, imm[4:1|11] in bits 11:7.
            FlowKind::Branch(cond) => Flow::Branch {
                cond,
                rs1: reg(w, 15),
                rs2: reg(w, 20),
                offset: sext(
                    bit(w, 31, 12) | bit(w, 7, 11) | bits(w, 25, 6, 5) | bits(w, 8, 4, 1),
                    13,
                ),
            },
            // CJ format: imm[11|4|9:8|10|6|7|3:1|5] in bits 12:2.
            FlowKind::CJ => Flow::Jal {
                rd: 0,
                offset: sext(
                    bit(w, 12, 11)
                        | bit(w, 11, 4)
                        | bits(w, 9, 2, 8)
                        | bit(w, 8, 10)
                        | bit(w, 7, 6)
                        | bit(w, 6, 7)
                        | bits(w, 3, 3, 1)
                        | bit(w, 2, 5),
                    12,
                ),
            },
            // CR format: rs1 in bits 11:7.
            FlowKind::CJr => Flow::Jalr {
                rd: 0,
                rs1: reg(w, 7),
                offset: 0,
            },
            FlowKind::CJalr => Flow::Jalr {
                rd: 1,
                rs1: reg(w, 7),
                offset: 0,
            },
            FlowKind::CBeqz => Flow::Branch {
                cond: Cond::Eq,
                rs1: c_rs1_prime(w),
                rs2: 0,
                offset: cb_offset(w),
            },
            FlowKind::CBnez => Flow::Branch {
                cond: Cond::Ne,
                rs1: c_rs1_prime(w),
                rs2: 0,
                offset: cb_offset(w),
            },
        }
    }
}

/// CB format rs1': x8 + bits 9:7.
const fn c_rs1_prime(w: u32) -> u8 {
    8 + ((w >> 7) & 0b111) as u8
}

/// CB format offset: imm[8|4:3] in bits 12:10, imm[7:6|2:1|5] in bits 6:2.
const fn cb_offset(w: u32) -> i32 {
    sext(
        bit(w, 12, 8) | bits(w, 10, 2, 3) | bits(w, 5, 2, 6) | bits(w, 3, 2, 1) | bit(w, 2, 5),
        9,
    )
}

// ---------------------------------------------------------------------------
// The rule tables.

/// What a matching rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Step out of line.
    Step,
    /// Step out of line, if the rounding-mode field (bits 14:12) is not one
    /// of the reserved values 101 and 110 (§11.2).
    StepRm,
    /// Simulate.
    Simulate(FlowKind),
    /// Refuse, for this reason.
    Refuse(&'static str),
    /// A reserved code point: undecodable.
    Reserved,
}

/// One table row: the encodings with `word & mask == value`.
#[derive(Debug, Clone, Copy)]
struct Rule {
    mask: u32,
    value: u32,
    mnemonic: &'static str,
    action: Action,
}

const fn rule(mask: u32, value: u32, mnemonic: &'static str, action: Action) -> Rule {
    Rule {
        mask,
        value,
        mnemonic,
        action,
    }
}

use Action::{Refuse, Reserved, Simulate, Step, StepRm};

// Field masks of the 32-bit formats.
const OPC: u32 = 0x0000_007f;
const F3: u32 = 0x0000_7000;
const F7: u32 = 0xfe00_0000;
const F5: u32 = 0xf800_0000;
const FMT: u32 = 0x0600_0000;
const RS2: u32 = 0x01f0_0000;
const RD: u32 = 0x0000_0f80;
/// imm[11:6] of an RV64 shift-immediate (bits 31:26).
const SH6: u32 = 0xfc00_0000;
const ALL: u32 = 0xffff_ffff;
/// rs1 (bits 19:15), also the uimm of the immediate CSR forms.
const RS1: u32 = 0x000f_8000;
/// FENCE's fm field (bits 31:28).
const FM: u32 = 0xf000_0000;
/// The csr field (bits 31:20) of a Zicsr instruction.
const CSR: u32 = 0xfff0_0000;
/// A Zicsr row for one form and one CSR: rd and rs1/uimm free.
const CSR_OP: u32 = CSR | F3 | OPC;
/// A Zicsr row that only reads: rs1 = x0 (or uimm = 0), rd free.
const CSR_READ: u32 = CSR | RS1 | F3 | OPC;
/// A Zicsr row for the 32 CSRs 0xC80-0xC9F (csr[4:0] free).
const CSR_HI: u32 = 0xfe00_0000 | F3 | OPC;

// CSR numbers (privileged manual table 2.2; §11.2 for the FP ones).
const FFLAGS: u32 = 0x001;
const FRM: u32 = 0x002;
const FCSR: u32 = 0x003;
const CYCLE: u32 = 0xc00;
const TIME: u32 = 0xc01;
const INSTRET: u32 = 0xc02;
const CYCLEH: u32 = 0xc80;

const fn f3(v: u32) -> u32 {
    v << 12
}
const fn f5(v: u32) -> u32 {
    v << 27
}
const fn f7(v: u32) -> u32 {
    v << 25
}
const fn rs2(v: u32) -> u32 {
    v << 20
}
/// A SYSTEM-opcode Zicsr encoding: funct3 `op`, CSR number `csr`.
const fn csr(op: u32, csr: u32) -> u32 {
    csr << 20 | f3(op) | 0x73
}

// Reasons for refusals, in words for the user.
/// `ecall` is refused although it does not read the pc itself: the
/// environment (kernel or SBI) it calls returns to `sepc + 4`, i.e. into
/// the slot, and the step only ends when the slot's ebreak traps. A forked
/// child would return to the slot with no step parked in its task; a
/// blocking system call would keep the slot (and so `synchronize`, which
/// waits for every task to leave kernel slots) waiting for as long as it
/// blocks; `execve` and `rt_sigreturn` never return to the slot at all.
const WHY_ECALL: &str = "an environment call returns into the slot: a forked child would return there with no step parked, a blocking system call would hold up the grace period, and exec or rt_sigreturn never return to it";
const WHY_EBREAK: &str =
    "it is a breakpoint already (a debugger's, or a BUG/WARN site); its trap must happen in place";
const WHY_XRET: &str = "a trap return changes privilege and pc; it cannot run out of line";
const WHY_WFI: &str =
    "it waits for an interrupt, but the out-of-line step runs with interrupts masked";
const WHY_SFENCE: &str =
    "a privileged address-translation fence; every SYSTEM-opcode instruction is refused, as in Linux";
const WHY_CSR: &str = "it accesses a CSR, and the probe's own trap changes sepc, scause, stval, sstatus and sscratch; only the floating-point CSRs and the cycle/time/instret reads are stepped";
const WHY_CSR_RV32: &str =
    "cycleh, timeh, instreth and the other high-half counters exist on RV32 only; on RV64 the access raises an illegal-instruction exception";
const WHY_SYSTEM: &str =
    "a SYSTEM-opcode instruction (privileged or unknown); all of them are refused, as in Linux";
const WHY_LR: &str = "it starts an LR/SC sequence: a probe trap before the matching sc may clear the reservation, so the sc could fail on every retry";
const WHY_SC: &str = "it ends an LR/SC sequence: a probe trap just before it may clear the reservation, so it could fail on every retry";

/// `lr.w`/`lr.d`: AMO opcode, funct3 010/011, funct5 00010, rs2 = 0 (§8.2).
pub(crate) const LR_MASK: u32 = F5 | RS2 | 0x6000 | OPC;
/// Value of an `lr.w`/`lr.d` under [`LR_MASK`] (bit 12 tells .w from .d).
pub(crate) const LR_VALUE: u32 = f5(0b00010) | f3(0b010) | 0x2f;
/// `sc.w`/`sc.d`: AMO opcode, funct3 010/011, funct5 00011 (§8.2).
pub(crate) const SC_MASK: u32 = F5 | 0x6000 | OPC;
/// Value of an `sc.w`/`sc.d` under [`SC_MASK`].
pub(crate) const SC_VALUE: u32 = f5(0b00011) | f3(0b010) | 0x2f;

/// LOAD (0x03).
const LOAD: &[Rule] = &[
    rule(OPC | F3, f3(0) | 0x03, "lb", Step),
    rule(OPC | F3, f3(1) | 0x03, "lh", Step),
    rule(OPC | F3, f3(2) | 0x03, "lw", Step),
    rule(OPC | F3, f3(3) | 0x03, "ld", Step),
    rule(OPC | F3, f3(4) | 0x03, "lbu", Step),
    rule(OPC | F3, f3(5) | 0x03, "lhu", Step),
    rule(OPC | F3, f3(6) | 0x03, "lwu", Step),
];

/// LOAD-FP (0x07): F and D only.
const LOAD_FP: &[Rule] = &[
    rule(OPC | F3, f3(2) | 0x07, "flw", Step),
    rule(OPC | F3, f3(3) | 0x07, "fld", Step),
];

/// MISC-MEM (0x0f): the base FENCE (§2.7) with its `fence.tso` and
/// Zihintpause `pause` forms, and Zifencei's `fence.i` (chapter 3), all
/// stepped (they act on the hart that runs them, wherever they run). The
/// fields §2.7 and chapter 3 reserve for future finer-grained fences (rs1,
/// rd, fm other than 0000 or `fence.tso`'s 1000, fence.i's immediate) must
/// be zero: other encodings are undecodable, as for binutils. funct3 010
/// (Zicbom/Zicboz cache-block operations) is outside RV64GC.
const MISC_MEM: &[Rule] = &[
    rule(ALL, 0x8330_000f, "fence.tso", Step),
    rule(ALL, 0x0100_000f, "pause", Step), // fence w, 0
    rule(FM | RS1 | RD | F3 | OPC, f3(0) | 0x0f, "fence", Step), // pred, succ free
    rule(ALL, f3(1) | 0x0f, "fence.i", Step),
];

/// OP-IMM (0x13). RV64 shifts have a 6-bit shamt, imm[11:6] selects the op.
const OP_IMM: &[Rule] = &[
    rule(OPC | F3, f3(0) | 0x13, "addi", Step),
    rule(OPC | F3 | SH6, f3(1) | 0x13, "slli", Step),
    rule(OPC | F3, f3(2) | 0x13, "slti", Step),
    rule(OPC | F3, f3(3) | 0x13, "sltiu", Step),
    rule(OPC | F3, f3(4) | 0x13, "xori", Step),
    rule(OPC | F3 | SH6, f3(5) | 0x13, "srli", Step),
    rule(OPC | F3 | SH6, 0x4000_0000 | f3(5) | 0x13, "srai", Step),
    rule(OPC | F3, f3(6) | 0x13, "ori", Step),
    rule(OPC | F3, f3(7) | 0x13, "andi", Step),
];

/// AUIPC (0x17): reads the pc.
const AUIPC: &[Rule] = &[rule(OPC, 0x17, "auipc", Simulate(FlowKind::Auipc))];

/// OP-IMM-32 (0x1b).
const OP_IMM_32: &[Rule] = &[
    rule(OPC | F3, f3(0) | 0x1b, "addiw", Step),
    rule(OPC | F3 | F7, f3(1) | 0x1b, "slliw", Step),
    rule(OPC | F3 | F7, f3(5) | 0x1b, "srliw", Step),
    rule(OPC | F3 | F7, f7(0x20) | f3(5) | 0x1b, "sraiw", Step),
];

/// STORE (0x23).
const STORE: &[Rule] = &[
    rule(OPC | F3, f3(0) | 0x23, "sb", Step),
    rule(OPC | F3, f3(1) | 0x23, "sh", Step),
    rule(OPC | F3, f3(2) | 0x23, "sw", Step),
    rule(OPC | F3, f3(3) | 0x23, "sd", Step),
];

/// STORE-FP (0x27).
const STORE_FP: &[Rule] = &[
    rule(OPC | F3, f3(2) | 0x27, "fsw", Step),
    rule(OPC | F3, f3(3) | 0x27, "fsd", Step),
];

/// AMO (0x2f), chapter 8: funct5 selects the op; aq/rl (bits 26:25) are free.
const AMO: &[Rule] = &[
    rule(LR_MASK | F3, LR_VALUE, "lr.w", Refuse(WHY_LR)),
    rule(LR_MASK | F3, LR_VALUE | f3(1), "lr.d", Refuse(WHY_LR)),
    rule(SC_MASK | F3, SC_VALUE, "sc.w", Refuse(WHY_SC)),
    rule(SC_MASK | F3, SC_VALUE | f3(1), "sc.d", Refuse(WHY_SC)),
    rule(OPC | F3 | F5, f5(0b00001) | f3(2) | 0x2f, "amoswap.w", Step),
    rule(OPC | F3 | F5, f5(0b00000) | f3(2) | 0x2f, "amoadd.w", Step),
    rule(OPC | F3 | F5, f5(0b00100) | f3(2) | 0x2f, "amoxor.w", Step),
    rule(OPC | F3 | F5, f5(0b01100) | f3(2) | 0x2f, "amoand.w", Step),
    rule(OPC | F3 | F5, f5(0b01000) | f3(2) | 0x2f, "amoor.w", Step),
    rule(OPC | F3 | F5, f5(0b10000) | f3(2) | 0x2f, "amomin.w", Step),
    rule(OPC | F3 | F5, f5(0b10100) | f3(2) | 0x2f, "amomax.w", Step),
    rule(OPC | F3 | F5, f5(0b11000) | f3(2) | 0x2f, "amominu.w", Step),
    rule(OPC | F3 | F5, f5(0b11100) | f3(2) | 0x2f, "amomaxu.w", Step),
    rule(OPC | F3 | F5, f5(0b00001) | f3(3) | 0x2f, "amoswap.d", Step),
    rule(OPC | F3 | F5, f5(0b00000) | f3(3) | 0x2f, "amoadd.d", Step),
    rule(OPC | F3 | F5, f5(0b00100) | f3(3) | 0x2f, "amoxor.d", Step),
    rule(OPC | F3 | F5, f5(0b01100) | f3(3) | 0x2f, "amoand.d", Step),
    rule(OPC | F3 | F5, f5(0b01000) | f3(3) | 0x2f, "amoor.d", Step),
    rule(OPC | F3 | F5, f5(0b10000) | f3(3) | 0x2f, "amomin.d", Step),
    rule(OPC | F3 | F5, f5(0b10100) | f3(3) | 0x2f, "amomax.d", Step),
    rule(OPC | F3 | F5, f5(0b11000) | f3(3) | 0x2f, "amominu.d", Step),
    rule(OPC | F3 | F5, f5(0b11100) | f3(3) | 0x2f, "amomaxu.d", Step),
];

/// OP (0x33): base integer (funct7 0x00/0x20) and M (funct7 0x01).
const OP: &[Rule] = &[
    rule(OPC | F3 | F7, f3(0) | 0x33, "add", Step),
    rule(OPC | F3 | F7, f7(0x20) | f3(0) | 0x33, "sub", Step),
    rule(OPC | F3 | F7, f3(1) | 0x33, "sll", Step),
    rule(OPC | F3 | F7, f3(2) | 0x33, "slt", Step),
    rule(OPC | F3 | F7, f3(3) | 0x33, "sltu", Step),
    rule(OPC | F3 | F7, f3(4) | 0x33, "xor", Step),
    rule(OPC | F3 | F7, f3(5) | 0x33, "srl", Step),
    rule(OPC | F3 | F7, f7(0x20) | f3(5) | 0x33, "sra", Step),
    rule(OPC | F3 | F7, f3(6) | 0x33, "or", Step),
    rule(OPC | F3 | F7, f3(7) | 0x33, "and", Step),
    rule(OPC | F3 | F7, f7(1) | f3(0) | 0x33, "mul", Step),
    rule(OPC | F3 | F7, f7(1) | f3(1) | 0x33, "mulh", Step),
    rule(OPC | F3 | F7, f7(1) | f3(2) | 0x33, "mulhsu", Step),
    rule(OPC | F3 | F7, f7(1) | f3(3) | 0x33, "mulhu", Step),
    rule(OPC | F3 | F7, f7(1) | f3(4) | 0x33, "div", Step),
    rule(OPC | F3 | F7, f7(1) | f3(5) | 0x33, "divu", Step),
    rule(OPC | F3 | F7, f7(1) | f3(6) | 0x33, "rem", Step),
    rule(OPC | F3 | F7, f7(1) | f3(7) | 0x33, "remu", Step),
];

/// LUI (0x37): does not read the pc.
const LUI: &[Rule] = &[rule(OPC, 0x37, "lui", Step)];

/// OP-32 (0x3b).
const OP_32: &[Rule] = &[
    rule(OPC | F3 | F7, f3(0) | 0x3b, "addw", Step),
    rule(OPC | F3 | F7, f7(0x20) | f3(0) | 0x3b, "subw", Step),
    rule(OPC | F3 | F7, f3(1) | 0x3b, "sllw", Step),
    rule(OPC | F3 | F7, f3(5) | 0x3b, "srlw", Step),
    rule(OPC | F3 | F7, f7(0x20) | f3(5) | 0x3b, "sraw", Step),
    rule(OPC | F3 | F7, f7(1) | f3(0) | 0x3b, "mulw", Step),
    rule(OPC | F3 | F7, f7(1) | f3(4) | 0x3b, "divw", Step),
    rule(OPC | F3 | F7, f7(1) | f3(5) | 0x3b, "divuw", Step),
    rule(OPC | F3 | F7, f7(1) | f3(6) | 0x3b, "remw", Step),
    rule(OPC | F3 | F7, f7(1) | f3(7) | 0x3b, "remuw", Step),
];

/// The fused multiply-adds (R4 format): fmt 00 = S, 01 = D.
const MADD: &[Rule] = &[
    rule(OPC | FMT, 0x43, "fmadd.s", StepRm),
    rule(OPC | FMT, (1 << 25) | 0x43, "fmadd.d", StepRm),
];
const MSUB: &[Rule] = &[
    rule(OPC | FMT, 0x47, "fmsub.s", StepRm),
    rule(OPC | FMT, (1 << 25) | 0x47, "fmsub.d", StepRm),
];
const NMSUB: &[Rule] = &[
    rule(OPC | FMT, 0x4b, "fnmsub.s", StepRm),
    rule(OPC | FMT, (1 << 25) | 0x4b, "fnmsub.d", StepRm),
];
const NMADD: &[Rule] = &[
    rule(OPC | FMT, 0x4f, "fnmadd.s", StepRm),
    rule(OPC | FMT, (1 << 25) | 0x4f, "fnmadd.d", StepRm),
];

/// Masks of OP-FP rows: funct7 with a rounding mode; funct7 + rs2 with a
/// rounding mode; funct7 + funct3; funct7 + rs2 + funct3.
const FP_R: u32 = OPC | F7;
const FP_R2: u32 = OPC | F7 | RS2;
const FP_F3: u32 = OPC | F7 | F3;
const FP_R2F3: u32 = OPC | F7 | RS2 | F3;

/// OP-FP (0x53), chapters 11 (F) and 12 (D).
const OP_FP: &[Rule] = &[
    rule(FP_R, f7(0x00) | 0x53, "fadd.s", StepRm),
    rule(FP_R, f7(0x04) | 0x53, "fsub.s", StepRm),
    rule(FP_R, f7(0x08) | 0x53, "fmul.s", StepRm),
    rule(FP_R, f7(0x0c) | 0x53, "fdiv.s", StepRm),
    rule(FP_R2, f7(0x2c) | 0x53, "fsqrt.s", StepRm),
    rule(FP_F3, f7(0x10) | f3(0) | 0x53, "fsgnj.s", Step),
    rule(FP_F3, f7(0x10) | f3(1) | 0x53, "fsgnjn.s", Step),
    rule(FP_F3, f7(0x10) | f3(2) | 0x53, "fsgnjx.s", Step),
    rule(FP_F3, f7(0x14) | f3(0) | 0x53, "fmin.s", Step),
    rule(FP_F3, f7(0x14) | f3(1) | 0x53, "fmax.s", Step),
    rule(FP_R2, f7(0x60) | rs2(0) | 0x53, "fcvt.w.s", StepRm),
    rule(FP_R2, f7(0x60) | rs2(1) | 0x53, "fcvt.wu.s", StepRm),
    rule(FP_R2, f7(0x60) | rs2(2) | 0x53, "fcvt.l.s", StepRm),
    rule(FP_R2, f7(0x60) | rs2(3) | 0x53, "fcvt.lu.s", StepRm),
    rule(FP_R2F3, f7(0x70) | f3(0) | 0x53, "fmv.x.w", Step),
    rule(FP_R2F3, f7(0x70) | f3(1) | 0x53, "fclass.s", Step),
    rule(FP_F3, f7(0x50) | f3(2) | 0x53, "feq.s", Step),
    rule(FP_F3, f7(0x50) | f3(1) | 0x53, "flt.s", Step),
    rule(FP_F3, f7(0x50) | f3(0) | 0x53, "fle.s", Step),
    rule(FP_R2, f7(0x68) | rs2(0) | 0x53, "fcvt.s.w", StepRm),
    rule(FP_R2, f7(0x68) | rs2(1) | 0x53, "fcvt.s.wu", StepRm),
    rule(FP_R2, f7(0x68) | rs2(2) | 0x53, "fcvt.s.l", StepRm),
    rule(FP_R2, f7(0x68) | rs2(3) | 0x53, "fcvt.s.lu", StepRm),
    rule(FP_R2F3, f7(0x78) | f3(0) | 0x53, "fmv.w.x", Step),
    rule(FP_R, f7(0x01) | 0x53, "fadd.d", StepRm),
    rule(FP_R, f7(0x05) | 0x53, "fsub.d", StepRm),
    rule(FP_R, f7(0x09) | 0x53, "fmul.d", StepRm),
    rule(FP_R, f7(0x0d) | 0x53, "fdiv.d", StepRm),
    rule(FP_R2, f7(0x2d) | 0x53, "fsqrt.d", StepRm),
    rule(FP_F3, f7(0x11) | f3(0) | 0x53, "fsgnj.d", Step),
    rule(FP_F3, f7(0x11) | f3(1) | 0x53, "fsgnjn.d", Step),
    rule(FP_F3, f7(0x11) | f3(2) | 0x53, "fsgnjx.d", Step),
    rule(FP_F3, f7(0x15) | f3(0) | 0x53, "fmin.d", Step),
    rule(FP_F3, f7(0x15) | f3(1) | 0x53, "fmax.d", Step),
    rule(FP_R2, f7(0x20) | rs2(1) | 0x53, "fcvt.s.d", StepRm),
    rule(FP_R2, f7(0x21) | rs2(0) | 0x53, "fcvt.d.s", StepRm),
    rule(FP_F3, f7(0x51) | f3(2) | 0x53, "feq.d", Step),
    rule(FP_F3, f7(0x51) | f3(1) | 0x53, "flt.d", Step),
    rule(FP_F3, f7(0x51) | f3(0) | 0x53, "fle.d", Step),
    rule(FP_R2F3, f7(0x71) | f3(1) | 0x53, "fclass.d", Step),
    rule(FP_R2, f7(0x61) | rs2(0) | 0x53, "fcvt.w.d", StepRm),
    rule(FP_R2, f7(0x61) | rs2(1) | 0x53, "fcvt.wu.d", StepRm),
    rule(FP_R2, f7(0x61) | rs2(2) | 0x53, "fcvt.l.d", StepRm),
    rule(FP_R2, f7(0x61) | rs2(3) | 0x53, "fcvt.lu.d", StepRm),
    rule(FP_R2, f7(0x69) | rs2(0) | 0x53, "fcvt.d.w", StepRm),
    rule(FP_R2, f7(0x69) | rs2(1) | 0x53, "fcvt.d.wu", StepRm),
    rule(FP_R2, f7(0x69) | rs2(2) | 0x53, "fcvt.d.l", StepRm),
    rule(FP_R2, f7(0x69) | rs2(3) | 0x53, "fcvt.d.lu", StepRm),
    rule(FP_R2F3, f7(0x71) | f3(0) | 0x53, "fmv.x.d", Step),
    rule(FP_R2F3, f7(0x79) | f3(0) | 0x53, "fmv.d.x", Step),
];

/// BRANCH (0x63): all simulated.
const BRANCH: &[Rule] = &[
    rule(
        OPC | F3,
        f3(0) | 0x63,
        "beq",
        Simulate(FlowKind::Branch(Cond::Eq)),
    ),
    rule(
        OPC | F3,
        f3(1) | 0x63,
        "bne",
        Simulate(FlowKind::Branch(Cond::Ne)),
    ),
    rule(
        OPC | F3,
        f3(4) | 0x63,
        "blt",
        Simulate(FlowKind::Branch(Cond::Lt)),
    ),
    rule(
        OPC | F3,
        f3(5) | 0x63,
        "bge",
        Simulate(FlowKind::Branch(Cond::Ge)),
    ),
    rule(
        OPC | F3,
        f3(6) | 0x63,
        "bltu",
        Simulate(FlowKind::Branch(Cond::Ltu)),
    ),
    rule(
        OPC | F3,
        f3(7) | 0x63,
        "bgeu",
        Simulate(FlowKind::Branch(Cond::Geu)),
    ),
];

/// JALR (0x67): funct3 must be 0.
const JALR: &[Rule] = &[rule(OPC | F3, 0x67, "jalr", Simulate(FlowKind::Jalr))];

/// JAL (0x6f).
const JAL: &[Rule] = &[rule(OPC, 0x6f, "jal", Simulate(FlowKind::Jal))];

/// SYSTEM (0x73). Stepped: the Zicsr accesses to the floating-point CSRs
/// (any form, §9.1 and §11.2) and the reads of the three unprivileged
/// counters (chapter 10) in the forms §9.1 guarantees never write (csrrs/
/// csrrc with rs1 = x0, csrrsi/csrrci with uimm = 0). Everything else is
/// refused, as in Linux (decode-insn.h rejects the whole opcode); the rows
/// before the catch-all only name the instruction and say why.
const SYSTEM: &[Rule] = &[
    rule(ALL, 0x0000_0073, "ecall", Refuse(WHY_ECALL)),
    rule(ALL, 0x0010_0073, "ebreak", Refuse(WHY_EBREAK)),
    rule(ALL, 0x0020_0073, "uret", Refuse(WHY_XRET)),
    rule(ALL, 0x1020_0073, "sret", Refuse(WHY_XRET)),
    rule(ALL, 0x3020_0073, "mret", Refuse(WHY_XRET)),
    rule(ALL, 0x7b20_0073, "dret", Refuse(WHY_XRET)),
    rule(ALL, 0x1050_0073, "wfi", Refuse(WHY_WFI)),
    rule(
        OPC | F3 | F7 | RD,
        f7(0x09) | 0x73,
        "sfence.vma",
        Refuse(WHY_SFENCE),
    ),
    // fflags (0x001), frm (0x002), fcsr (0x003): every form, rd and rs1/uimm free.
    rule(CSR_OP, csr(1, FFLAGS), "csrrw", Step),
    rule(CSR_OP, csr(2, FFLAGS), "csrrs", Step),
    rule(CSR_OP, csr(3, FFLAGS), "csrrc", Step),
    rule(CSR_OP, csr(5, FFLAGS), "csrrwi", Step),
    rule(CSR_OP, csr(6, FFLAGS), "csrrsi", Step),
    rule(CSR_OP, csr(7, FFLAGS), "csrrci", Step),
    rule(CSR_OP, csr(1, FRM), "csrrw", Step),
    rule(CSR_OP, csr(2, FRM), "csrrs", Step),
    rule(CSR_OP, csr(3, FRM), "csrrc", Step),
    rule(CSR_OP, csr(5, FRM), "csrrwi", Step),
    rule(CSR_OP, csr(6, FRM), "csrrsi", Step),
    rule(CSR_OP, csr(7, FRM), "csrrci", Step),
    rule(CSR_OP, csr(1, FCSR), "csrrw", Step),
    rule(CSR_OP, csr(2, FCSR), "csrrs", Step),
    rule(CSR_OP, csr(3, FCSR), "csrrc", Step),
    rule(CSR_OP, csr(5, FCSR), "csrrwi", Step),
    rule(CSR_OP, csr(6, FCSR), "csrrsi", Step),
    rule(CSR_OP, csr(7, FCSR), "csrrci", Step),
    // cycle (0xC00), time (0xC01), instret (0xC02): reads only, rd free.
    rule(CSR_READ, csr(2, CYCLE), "csrrs", Step), // rdcycle
    rule(CSR_READ, csr(3, CYCLE), "csrrc", Step),
    rule(CSR_READ, csr(6, CYCLE), "csrrsi", Step),
    rule(CSR_READ, csr(7, CYCLE), "csrrci", Step),
    rule(CSR_READ, csr(2, TIME), "csrrs", Step), // rdtime
    rule(CSR_READ, csr(3, TIME), "csrrc", Step),
    rule(CSR_READ, csr(6, TIME), "csrrsi", Step),
    rule(CSR_READ, csr(7, TIME), "csrrci", Step),
    rule(CSR_READ, csr(2, INSTRET), "csrrs", Step), // rdinstret
    rule(CSR_READ, csr(3, INSTRET), "csrrc", Step),
    rule(CSR_READ, csr(6, INSTRET), "csrrsi", Step),
    rule(CSR_READ, csr(7, INSTRET), "csrrci", Step),
    // cycleh … hpmcounter31h (0xC80-0xC9F): RV32 only.
    rule(CSR_HI, csr(1, CYCLEH), "csrrw", Refuse(WHY_CSR_RV32)),
    rule(CSR_HI, csr(2, CYCLEH), "csrrs", Refuse(WHY_CSR_RV32)),
    rule(CSR_HI, csr(3, CYCLEH), "csrrc", Refuse(WHY_CSR_RV32)),
    rule(CSR_HI, csr(5, CYCLEH), "csrrwi", Refuse(WHY_CSR_RV32)),
    rule(CSR_HI, csr(6, CYCLEH), "csrrsi", Refuse(WHY_CSR_RV32)),
    rule(CSR_HI, csr(7, CYCLEH), "csrrci", Refuse(WHY_CSR_RV32)),
    rule(OPC | F3, f3(1) | 0x73, "csrrw", Refuse(WHY_CSR)),
    rule(OPC | F3, f3(2) | 0x73, "csrrs", Refuse(WHY_CSR)),
    rule(OPC | F3, f3(3) | 0x73, "csrrc", Refuse(WHY_CSR)),
    rule(OPC | F3, f3(5) | 0x73, "csrrwi", Refuse(WHY_CSR)),
    rule(OPC | F3, f3(6) | 0x73, "csrrsi", Refuse(WHY_CSR)),
    rule(OPC | F3, f3(7) | 0x73, "csrrci", Refuse(WHY_CSR)),
    rule(OPC, 0x73, "system", Refuse(WHY_SYSTEM)),
];

/// 32-bit rule tables, indexed by the major opcode (bits 6:2; table 24.1 of
/// the unprivileged manual). Empty: custom, reserved, or not RV64GC (OP-V);
/// the entries with bits 4:2 = 111 are longer encodings and never looked up.
const RV_TABLES: [&[Rule]; 32] = [
    LOAD,      // 0x03
    LOAD_FP,   // 0x07
    &[],       // 0x0b custom-0
    MISC_MEM,  // 0x0f
    OP_IMM,    // 0x13
    AUIPC,     // 0x17
    OP_IMM_32, // 0x1b
    &[],       // 0x1f 48-bit
    STORE,     // 0x23
    STORE_FP,  // 0x27
    &[],       // 0x2b custom-1
    AMO,       // 0x2f
    OP,        // 0x33
    LUI,       // 0x37
    OP_32,     // 0x3b
    &[],       // 0x3f 64-bit
    MADD,      // 0x43
    MSUB,      // 0x47
    NMSUB,     // 0x4b
    NMADD,     // 0x4f
    OP_FP,     // 0x53
    &[],       // 0x57 OP-V
    &[],       // 0x5b custom-2
    &[],       // 0x5f 48-bit
    BRANCH,    // 0x63
    JALR,      // 0x67
    &[],       // 0x6b reserved
    JAL,       // 0x6f
    SYSTEM,    // 0x73
    &[],       // 0x77 reserved
    &[],       // 0x7b custom-3
    &[],       // 0x7f 80-bit+
];

// Field masks of the 16-bit formats (§16.2).
const C_OP_F3: u32 = 0xe003;
/// Bits 11:7: rd/rs1 of CI/CR formats.
const C_RD: u32 = 0x0f80;
/// Bits 6:2: rs2 of the CR format, low immediate bits of CI.
const C_RS2: u32 = 0x007c;
/// Bit 12.
const C_B12: u32 = 0x1000;
/// Bits 11:10, the CB-format sub-opcode of quadrant 1 funct3 100.
const C_F2: u32 = 0x0c00;
/// Bits 6:5, the CA-format sub-opcode.
const C_F2B: u32 = 0x0060;

/// Quadrant 0 (table 16.5). funct3 100 is reserved in RV64C.
const RVC_Q0: &[Rule] = &[
    rule(C_OP_F3 | 0x1fe0, 0x0000, "c.addi4spn", Reserved), // nzuimm = 0 (incl. all zero)
    rule(C_OP_F3, 0x0000, "c.addi4spn", Step),
    rule(C_OP_F3, 0x2000, "c.fld", Step),
    rule(C_OP_F3, 0x4000, "c.lw", Step),
    rule(C_OP_F3, 0x6000, "c.ld", Step),
    rule(C_OP_F3, 0xa000, "c.fsd", Step),
    rule(C_OP_F3, 0xc000, "c.sw", Step),
    rule(C_OP_F3, 0xe000, "c.sd", Step),
];

/// Quadrant 1 (table 16.6). On RV64, funct3 001 is `c.addiw` (RV32's c.jal).
const RVC_Q1: &[Rule] = &[
    rule(C_OP_F3, 0x0001, "c.addi", Step), // rd = x0: c.nop and HINTs
    rule(C_OP_F3 | C_RD, 0x2001, "c.addiw", Reserved), // rd = x0
    rule(C_OP_F3, 0x2001, "c.addiw", Step),
    rule(C_OP_F3, 0x4001, "c.li", Step), // rd = x0: HINT
    rule(C_OP_F3 | C_B12 | C_RS2, 0x6001, "c.lui", Reserved), // nzimm = 0 (also c.addi16sp)
    rule(C_OP_F3 | C_RD, 0x6101, "c.addi16sp", Step),
    rule(C_OP_F3, 0x6001, "c.lui", Step), // rd = x0: HINT
    rule(C_OP_F3 | C_F2, 0x8001, "c.srli", Step), // shamt = 0: HINT
    rule(C_OP_F3 | C_F2, 0x8401, "c.srai", Step), // shamt = 0: HINT
    rule(C_OP_F3 | C_F2, 0x8801, "c.andi", Step),
    rule(C_OP_F3 | C_B12 | C_F2 | C_F2B, 0x8c01, "c.sub", Step),
    rule(C_OP_F3 | C_B12 | C_F2 | C_F2B, 0x8c21, "c.xor", Step),
    rule(C_OP_F3 | C_B12 | C_F2 | C_F2B, 0x8c41, "c.or", Step),
    rule(C_OP_F3 | C_B12 | C_F2 | C_F2B, 0x8c61, "c.and", Step),
    rule(C_OP_F3 | C_B12 | C_F2 | C_F2B, 0x9c01, "c.subw", Step),
    rule(C_OP_F3 | C_B12 | C_F2 | C_F2B, 0x9c21, "c.addw", Step),
    rule(C_OP_F3, 0xa001, "c.j", Simulate(FlowKind::CJ)),
    rule(C_OP_F3, 0xc001, "c.beqz", Simulate(FlowKind::CBeqz)),
    rule(C_OP_F3, 0xe001, "c.bnez", Simulate(FlowKind::CBnez)),
];

/// Quadrant 2 (table 16.7).
const RVC_Q2: &[Rule] = &[
    rule(C_OP_F3, 0x0002, "c.slli", Step), // rd = x0 or shamt = 0: HINT
    rule(C_OP_F3, 0x2002, "c.fldsp", Step),
    rule(C_OP_F3 | C_RD, 0x4002, "c.lwsp", Reserved), // rd = x0
    rule(C_OP_F3, 0x4002, "c.lwsp", Step),
    rule(C_OP_F3 | C_RD, 0x6002, "c.ldsp", Reserved), // rd = x0
    rule(C_OP_F3, 0x6002, "c.ldsp", Step),
    rule(0xffff, 0x8002, "c.jr", Reserved), // rs1 = x0
    rule(
        C_OP_F3 | C_B12 | C_RS2,
        0x8002,
        "c.jr",
        Simulate(FlowKind::CJr),
    ),
    rule(C_OP_F3 | C_B12, 0x8002, "c.mv", Step), // rd = x0: HINT
    rule(0xffff, 0x9002, "c.ebreak", Refuse(WHY_EBREAK)),
    rule(
        C_OP_F3 | C_B12 | C_RS2,
        0x9002,
        "c.jalr",
        Simulate(FlowKind::CJalr),
    ),
    rule(C_OP_F3 | C_B12, 0x9002, "c.add", Step), // rd = x0: HINT
    rule(C_OP_F3, 0xa002, "c.fsdsp", Step),
    rule(C_OP_F3, 0xc002, "c.swsp", Step),
    rule(C_OP_F3, 0xe002, "c.sdsp", Step),
];

/// 16-bit rule tables, indexed by the quadrant (bits 1:0; 11 is not 16-bit).
const RVC_TABLES: [&[Rule]; 4] = [RVC_Q0, RVC_Q1, RVC_Q2, &[]];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_32_bit_rule_lives_in_its_opcode_table() {
        for (index, table) in RV_TABLES.iter().enumerate() {
            for r in table.iter() {
                assert_eq!(r.value & !r.mask, 0, "{}: value outside mask", r.mnemonic);
                assert_eq!(r.mask & OPC, OPC, "{}: opcode not in mask", r.mnemonic);
                assert_eq!(r.value & 0b11, 0b11, "{}", r.mnemonic);
                assert_eq!(((r.value >> 2) & 0x1f) as usize, index, "{}", r.mnemonic);
            }
        }
    }

    #[test]
    fn every_16_bit_rule_lives_in_its_quadrant_table() {
        for (quadrant, table) in RVC_TABLES.iter().enumerate() {
            for r in table.iter() {
                assert_eq!(r.value & !r.mask, 0, "{}: value outside mask", r.mnemonic);
                assert_eq!(r.mask & 0xffff_0003, 0b11, "{}", r.mnemonic);
                assert_eq!((r.value & 0b11) as usize, quadrant, "{}", r.mnemonic);
            }
        }
    }

    #[test]
    fn no_rule_is_shadowed_by_an_earlier_one() {
        // A later rule that an earlier one covers entirely would be dead.
        for table in RV_TABLES.iter().chain(RVC_TABLES.iter()) {
            for (i, later) in table.iter().enumerate() {
                for earlier in &table[..i] {
                    let covers = earlier.mask & !later.mask == 0
                        && later.value & earlier.mask == earlier.value;
                    assert!(
                        !covers,
                        "{} ({:#x}) is shadowed by {} ({:#x})",
                        later.mnemonic, later.value, earlier.mnemonic, earlier.value
                    );
                }
            }
        }
    }

    #[test]
    fn length_follows_the_low_bits() {
        assert_eq!(insn_len(&[0x01, 0x00]), Some(2));
        assert_eq!(insn_len(&[0x13, 0x00]), Some(4));
        assert_eq!(insn_len(&[0x13, 0x00, 0x00, 0x00]), Some(4));
        assert_eq!(insn_len(&[0x1f, 0x00, 0x00, 0x00]), None); // 48-bit
        assert_eq!(insn_len(&[0x3f, 0x00, 0x00, 0x00]), None); // 64-bit
        assert_eq!(insn_len(&[0x7f, 0x00, 0x00, 0x00]), None); // >= 80-bit
        assert_eq!(insn_len(&[0x01]), None);
        assert_eq!(insn_len(&[]), None);
        // A 32-bit instruction with only its first halfword available.
        assert_eq!(decode_insn(&[0x13, 0x00]), None);
    }

    #[test]
    fn sign_extension_of_immediates() {
        assert_eq!(sext(0x1000, 13), -4096);
        assert_eq!(sext(0x0ffe, 13), 4094);
        assert_eq!(sext(0x10_0000, 21), -1_048_576);
        assert_eq!(bits(0b1011_0000, 4, 4, 0), 0b1011);
        assert_eq!(bit(0b100, 2, 7), 0x80);
    }
}
