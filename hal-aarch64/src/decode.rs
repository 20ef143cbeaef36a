//! Our A64 decoder: the three-way decision (refuse, simulate, step out of
//! line) for every 32-bit instruction word, as data.
//!
//! Encodings are those of the *Arm Architecture Reference Manual for
//! A-profile architecture* (DDI 0487), chapter C4 "A64 Instruction Set
//! Encoding": the top-level table (C4.1, bits \[28:25\] = `op0`) splits the
//! space into groups, and each group's own table (C4.1.1 SME, C4.1.2 SVE,
//! C4.1.86 data processing – immediate, C4.1.87 branches, exception
//! generating and system instructions, C4.1.88 loads and stores, C4.1.89
//! data processing – register, C4.1.90 data processing – scalar floating
//! point and Advanced SIMD) is a list of rows here.
//!
//! Which instructions are refused and which are simulated follows Linux
//! `arch/arm64/kernel/probes/decode-insn.c` (`aarch64_insn_is_steppable`,
//! `aarch64_insn_is_steppable_hint`, `arm_probe_decode_insn`), with the
//! masks of `arch/arm64/include/asm/insn.h`, extended by:
//! - `mrs` of the registers our own trap rewrites (`ELR_EL1`, `SPSR_EL1`,
//!   `ESR_EL1`, `FAR_EL1`, and their `_EL12`/`_EL2` names for a VHE kernel,
//!   and the `_EL3` ones);
//! - `wfet`/`wfit` (wait instructions: the step runs with interrupts masked);
//! - every word the tables do not allocate (undecodable): the top-level
//!   unallocated groups and the unallocated encodings of every group,
//!   down to the classes of the load/store, data processing (register) and
//!   SIMD&FP groups (`decode/ldst.rs`, `decode/dpreg.rs`,
//!   `decode/simd.rs`). Of SVE (`decode/sve.rs`), the classes compiled
//!   code uses (integer and floating-point arithmetic, compares,
//!   predicates, permutes, element counts, loads, stores, gathers and
//!   scatters) are stepped, with their unallocated encodings
//!   undecodable, and so are SME's outer products and ZA tile-slice loads
//!   and stores; the other SVE classes (conversions, shifts, SVE2's
//!   widening and narrowing forms…) and SME classes are refused as not
//!   decoded ([`WHY_SVE`]).
//!
//! `prfm` (literal) reads the pc to form an address; it is simulated as
//! what it is architecturally, a hint without effect (Linux refuses it with
//! the other literal instructions), so no pc-reading instruction is stepped.
//!
//! Nothing in the load/store, data processing (register) and SIMD&FP
//! groups reads or writes the pc (beyond the literal loads), so their
//! allocated encodings are stepped, minus the rows refused in them (the
//! exclusives, SIMD&FP literal loads). Their class tables follow the Arm
//! ARM's sub-tables field by field (size, opc, opcode, Q, the reserved
//! `size:Q` combinations…), so an unallocated word is refused rather than
//! stepped. An encoding that only an optional feature allocates (FEAT_MTE,
//! FEAT_MOPS, FEAT_LSE128, FEAT_LRCPC3, FEAT_THE, FEAT_CSSC, FEAT_CPA,
//! FEAT_FP16, FEAT_BF16, FEAT_I8MM…) counts as allocated: a stepped copy
//! behaves as the original, including raising the same exception on a CPU
//! without the feature. A word whose register fields are CONSTRAINED
//! UNPREDICTABLE (not UNDEFINED) in the Arm ARM, such as a writeback pair
//! load into its own base register, is stepped as well. The objdump
//! cross-check (`tests/objdump.rs`) lists where binutils 2.40 disagrees.
//!
//! Each table row is a `(mask, bits)` pattern: the row matches `word` when
//! `word & mask == bits` (the class tables write them as encoding diagrams,
//! see `pat`). Rows are searched in order within the table of the word's
//! top-level group; the first match wins, so specific rows come before the
//! catch-all that ends every table. A row may hand the word on to a
//! sub-table (a class of the group), which decides in the same way.

use probe_hal::Refusal;

mod dpreg;
mod ldst;
mod simd;
mod sve;

/// A pc-reading or pc-writing instruction the backend emulates on the trap
/// frame instead of stepping it out of line (where its pc would be wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Simulated {
    /// `b imm26`.
    B,
    /// `bl imm26`: links `x30`.
    Bl,
    /// `b.cond imm19` (and FEAT_HBC `bc.cond`, the same branch with a hint).
    BCond,
    /// `cbz Rt, imm19`.
    Cbz,
    /// `cbnz Rt, imm19`.
    Cbnz,
    /// `tbz Rt, #bit, imm14`.
    Tbz,
    /// `tbnz Rt, #bit, imm14`.
    Tbnz,
    /// `br Xn`.
    Br,
    /// `blr Xn`: links `x30`.
    Blr,
    /// `ret Xn`.
    Ret,
    /// `adr Xd, imm21`: `Xd = pc + imm`.
    Adr,
    /// `adrp Xd, imm21`: `Xd = (pc & !0xfff) + (imm << 12)`.
    Adrp,
    /// `ldr Wt, label`: 32-bit literal load, zero-extended.
    LdrLit32,
    /// `ldr Xt, label`: 64-bit literal load.
    LdrLit64,
    /// `ldrsw Xt, label`: 32-bit literal load, sign-extended.
    LdrswLit,
    /// `prfm op, label`: a prefetch hint; simulated as a no-op.
    PrfmLit,
}

/// How an accepted instruction runs after the handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Copied into a slot `[insn][brk #0x006]` and executed there.
    Step,
    /// Emulated on the trap frame by [`crate::simulate`].
    Simulate(Simulated),
}

/// An accepted instruction: the backend's `Arch::Insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Insn {
    /// The instruction word.
    pub word: u32,
    /// Its mnemonic (or, for a row covering several instructions, their
    /// mnemonics or class name), from the decode tables.
    pub mnemonic: &'static str,
    /// Stepped or simulated.
    pub op: Op,
}

/// The decoder's answer for one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The instruction may be probed.
    Accept(Insn),
    /// A known instruction that must not be probed.
    Refuse(Refusal),
    /// No row knows this word (or it is unallocated in a group we take
    /// apart).
    Undecodable,
}

/// What a table row decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Step out of line.
    Step,
    /// Simulate.
    Simulate(Simulated),
    /// Refuse, for this reason.
    Refuse(&'static str),
    /// Unallocated: refuse as undecodable.
    Undecodable,
    /// Decided by a sub-table (a class of the Arm ARM's group tables): the
    /// search goes on there.
    Table(&'static [Entry]),
}

/// One row of a decode table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Bits that matter.
    pub mask: u32,
    /// Their value.
    pub bits: u32,
    /// The instruction (or class) the row names.
    pub mnemonic: &'static str,
    /// The decision.
    pub action: Action,
}

const fn step(mask: u32, bits: u32, mnemonic: &'static str) -> Entry {
    Entry {
        mask,
        bits,
        mnemonic,
        action: Action::Step,
    }
}

const fn sim(mask: u32, bits: u32, mnemonic: &'static str, op: Simulated) -> Entry {
    Entry {
        mask,
        bits,
        mnemonic,
        action: Action::Simulate(op),
    }
}

const fn refuse(mask: u32, bits: u32, mnemonic: &'static str, reason: &'static str) -> Entry {
    Entry {
        mask,
        bits,
        mnemonic,
        action: Action::Refuse(reason),
    }
}

const fn unallocated(mask: u32, bits: u32) -> Entry {
    Entry {
        mask,
        bits,
        mnemonic: "unallocated",
        action: Action::Undecodable,
    }
}

/// A row for the sub-table `rows`, matched by [`pat`].
const fn table(pattern: &str, mnemonic: &'static str, rows: &'static [Entry]) -> Entry {
    let (mask, bits) = pat(pattern);
    Entry {
        mask,
        bits,
        mnemonic,
        action: Action::Table(rows),
    }
}

/// A stepped row matched by [`pat`].
const fn s(pattern: &str, mnemonic: &'static str) -> Entry {
    let (mask, bits) = pat(pattern);
    step(mask, bits, mnemonic)
}

/// A refused row matched by [`pat`].
const fn r(pattern: &str, mnemonic: &'static str, reason: &'static str) -> Entry {
    let (mask, bits) = pat(pattern);
    refuse(mask, bits, mnemonic, reason)
}

/// An unallocated row matched by [`pat`].
const fn u(pattern: &str) -> Entry {
    let (mask, bits) = pat(pattern);
    unallocated(mask, bits)
}

/// `(mask, bits)` of an encoding diagram written as in the Arm ARM, bit 31
/// first: `0` and `1` are fixed bits, `x` any bit; spaces are ignored. Fails
/// to compile unless it has exactly 32 bits.
const fn pat(p: &str) -> (u32, u32) {
    let b = p.as_bytes();
    let (mut mask, mut bits, mut n, mut i) = (0u32, 0u32, 0u32, 0usize);
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c == b' ' {
            continue;
        }
        assert!(n < 32, "more than 32 bits in a pattern");
        mask <<= 1;
        bits <<= 1;
        match c {
            b'0' => mask |= 1,
            b'1' => {
                mask |= 1;
                bits |= 1;
            }
            b'x' => {}
            _ => panic!("a pattern is made of 0, 1, x and spaces"),
        }
        n += 1;
    }
    assert!(n == 32, "fewer than 32 bits in a pattern");
    (mask, bits)
}

const EXACT: u32 = 0xffff_ffff;
/// The logical-immediate class (bits \[28:23\]), `N` and `imms`.
const LOGICAL_IMMS: u32 = 0x1fc0_fc00;
/// Everything but `Rt`/`Rd` (bits \[4:0\]).
const NOT_RT: u32 = 0xffff_ffe0;
/// Everything but `Rn` (bits \[9:5\]).
const NOT_RN: u32 = 0xffff_fc1f;
/// Everything but the `CRm:op2` hint number (bits \[11:5\]).
const HINT_ALL: u32 = 0xffff_f01f;

// ---------------------------------------------------------------------------
// Refusal reasons (what a user reads in the error).

/// Reason given for exception-generating instructions.
pub const WHY_EXCEPTION: &str = "generates an exception on purpose; executed in a slot it would \
     trap at the slot address with the probe's state in flight";
/// Reason given for `brk`.
pub const WHY_BRK: &str = "a breakpoint (the probe engine's own or a debugger's) cannot be \
     stepped out of line";
/// Reason given for `eret`, `eretaa`, `eretab`, `drps`.
pub const WHY_ERET: &str = "returns from an exception: it loads the pc and PSTATE from ELR and \
     SPSR, which the probe's own trap has overwritten";
/// Reason given for `msr` (immediate and register).
pub const WHY_MSR: &str = "writes a system register or PSTATE field; the step runs with DAIF \
     masked and the probe's trap changed ELR, SPSR, ESR and FAR, so the copy could clobber the \
     probe's state or have effects a trap cannot undo";
/// Reason given for `mrs` of DAIF.
pub const WHY_MRS_DAIF: &str = "reads DAIF, but the out-of-line step runs with every DAIF bit \
     masked, so the copy would read the wrong interrupt mask";
/// Reason given for `mrs` of the exception registers.
pub const WHY_MRS_EXC: &str = "reads an exception register (ELR, SPSR, ESR, FAR) that the \
     probe's own breakpoint trap has just overwritten";
/// Reason given for hints outside the steppable list.
pub const WHY_HINT: &str = "a hint outside the steppable list (nop, bti, xpaclri, pac*): it may \
     wait (wfe, wfi, yield with interrupts masked), synchronise errors or trace, or depend on \
     where it runs";
/// Reason given for the `aut*` hints.
pub const WHY_AUT: &str = "authenticates a pointer: with FEAT_FPAC a failed authentication \
     faults inside the slot (Linux stopped stepping these)";
/// Reason given for the pointer-authenticated branches.
pub const WHY_PAC_BRANCH: &str = "a branch that authenticates its target: it writes the pc and \
     cannot be simulated without the PAC keys";
/// Reason given for `wfet`/`wfit`.
pub const WHY_WAIT: &str = "waits for an event or interrupt, but the out-of-line step runs with \
     interrupts masked";
/// Reason given for load/store exclusives.
pub const WHY_EXCLUSIVE: &str = "part of a load-exclusive/store-exclusive sequence: the \
     breakpoint and step traps clear the exclusive monitor, so the store-exclusive would fail \
     on every retry";
/// Reason given for SIMD&FP literal loads.
pub const WHY_SIMD_LITERAL: &str = "a pc-relative load into a SIMD&FP register: it reads the pc \
     and the trap frame holds no SIMD&FP registers to simulate it on";
/// Reason given for `udf`.
pub const WHY_UDF: &str = "permanently undefined: it exists to raise an exception";
/// Reason given for the SVE classes `decode/sve.rs` does not take apart,
/// and for SME.
pub const WHY_SVE: &str = "an SVE or SME class this backend does not decode (so it cannot tell \
     an allocated word from an unallocated one); probe a neighbouring instruction";

// ---------------------------------------------------------------------------
// The tables, one per top-level group.

/// `op0` = 0000: reserved (`udf`) and SME (bit 31 set, Arm ARM C4.1.1,
/// `sve.rs`).
const RESERVED: &[Entry] = &[
    refuse(0xffff_0000, 0x0000_0000, "udf", WHY_UDF),
    table("1xxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx", "sme", sve::SME),
    unallocated(0, 0),
];

/// `op0` = 0010: SVE (Arm ARM C4.1.2, `sve.rs`).
const SVE: &[Entry] = sve::SVE;

/// `op0` = 0001, 0011: unallocated.
const UNALLOCATED: &[Entry] = &[unallocated(0, 0)];

/// `op0` = 100x: data processing – immediate (Arm ARM C4.1.86).
const DP_IMM: &[Entry] = &[
    // PC-relative addressing: Linux `simulate_adr_adrp`.
    sim(0x9f00_0000, 0x1000_0000, "adr", Simulated::Adr),
    sim(0x9f00_0000, 0x9000_0000, "adrp", Simulated::Adrp),
    // Add/subtract (immediate).
    step(0x1f80_0000, 0x1100_0000, "add/sub (immediate)"),
    // Add/subtract (immediate, with tags) (FEAT_MTE).
    step(0xffc0_c000, 0x9180_0000, "addg"),
    step(0xffc0_c000, 0xd180_0000, "subg"),
    // Min/max (immediate) (FEAT_CSSC): opc 0000-0011.
    step(0x7ff0_0000, 0x11c0_0000, "smax/umax/smin/umin (immediate)"),
    // Logical (immediate): sf = 0 with N = 1 is unallocated, and so are
    // the N:imms values `DecodeBitMasks` rejects (Arm ARM J1, an element
    // of all ones: N = 0 with imms = 011111, 101111, 110111, 111011,
    // 111101, 11111x; N = 1 with imms = 111111).
    unallocated(0x9fc0_0000, 0x1240_0000),
    unallocated(LOGICAL_IMMS, 0x1200_7c00),
    unallocated(LOGICAL_IMMS, 0x1200_bc00),
    unallocated(LOGICAL_IMMS, 0x1200_dc00),
    unallocated(LOGICAL_IMMS, 0x1200_ec00),
    unallocated(LOGICAL_IMMS, 0x1200_f400),
    unallocated(LOGICAL_IMMS, 0x1200_f800),
    unallocated(LOGICAL_IMMS, 0x1200_fc00),
    unallocated(LOGICAL_IMMS, 0x1240_fc00),
    step(0x1f80_0000, 0x1200_0000, "logical (immediate)"),
    // Move wide (immediate): opc = 01, and sf = 0 with hw = 1x, unallocated.
    unallocated(0x7f80_0000, 0x3280_0000),
    unallocated(0x9fc0_0000, 0x12c0_0000),
    step(0x1f80_0000, 0x1280_0000, "movn/movz/movk"),
    // Bitfield: opc = 11, N != sf, and sf = 0 with immr<5> or imms<5> set,
    // unallocated.
    unallocated(0x7f80_0000, 0x7300_0000),
    unallocated(0x9fc0_0000, 0x1340_0000),
    unallocated(0x9fc0_0000, 0x9300_0000),
    unallocated(0x9fa0_0000, 0x1320_0000),
    unallocated(0x9f80_8000, 0x1300_8000),
    step(0x1f80_0000, 0x1300_0000, "sbfm/bfm/ubfm"),
    // Extract: op21 = 00, o0 = 0, N = sf, and sf = 0 with imms<5> clear.
    unallocated(0x9fc0_0000, 0x13c0_0000),
    unallocated(0x9fc0_0000, 0x9380_0000),
    unallocated(0x9f80_8000, 0x1380_8000),
    step(0x7fa0_0000, 0x1380_0000, "extr"),
    unallocated(0, 0),
];

/// `op0` = 101x: branches, exception generating and system instructions
/// (Arm ARM C4.1.87). Every word here may write the pc or change the
/// processor state, so the group ends in "undecodable", not "step".
const BRANCH_SYS: &[Entry] = &[
    // Unconditional branch (immediate): Linux `simulate_b_bl`.
    sim(0xfc00_0000, 0x1400_0000, "b", Simulated::B),
    sim(0xfc00_0000, 0x9400_0000, "bl", Simulated::Bl),
    // Conditional branch (immediate): Linux `simulate_b_cond`.
    sim(0xff00_0010, 0x5400_0000, "b.cond", Simulated::BCond),
    sim(0xff00_0010, 0x5400_0010, "bc.cond", Simulated::BCond),
    // Compare and branch (immediate): Linux `simulate_cbz_cbnz`.
    sim(0x7f00_0000, 0x3400_0000, "cbz", Simulated::Cbz),
    sim(0x7f00_0000, 0x3500_0000, "cbnz", Simulated::Cbnz),
    // Test and branch (immediate): Linux `simulate_tbz_tbnz`.
    sim(0x7f00_0000, 0x3600_0000, "tbz", Simulated::Tbz),
    sim(0x7f00_0000, 0x3700_0000, "tbnz", Simulated::Tbnz),
    // Unconditional branch (register): Linux `simulate_br_blr_ret`.
    sim(NOT_RN, 0xd61f_0000, "br", Simulated::Br),
    sim(NOT_RN, 0xd63f_0000, "blr", Simulated::Blr),
    sim(NOT_RN, 0xd65f_0000, "ret", Simulated::Ret),
    // Pointer-authenticated branches and exception returns (refused).
    refuse(NOT_RN, 0xd61f_081f, "braaz", WHY_PAC_BRANCH),
    refuse(NOT_RN, 0xd61f_0c1f, "brabz", WHY_PAC_BRANCH),
    refuse(NOT_RN, 0xd63f_081f, "blraaz", WHY_PAC_BRANCH),
    refuse(NOT_RN, 0xd63f_0c1f, "blrabz", WHY_PAC_BRANCH),
    refuse(EXACT, 0xd65f_0bff, "retaa", WHY_PAC_BRANCH),
    refuse(EXACT, 0xd65f_0fff, "retab", WHY_PAC_BRANCH),
    refuse(0xffff_fc00, 0xd71f_0800, "braa", WHY_PAC_BRANCH),
    refuse(0xffff_fc00, 0xd71f_0c00, "brab", WHY_PAC_BRANCH),
    refuse(0xffff_fc00, 0xd73f_0800, "blraa", WHY_PAC_BRANCH),
    refuse(0xffff_fc00, 0xd73f_0c00, "blrab", WHY_PAC_BRANCH),
    refuse(EXACT, 0xd69f_03e0, "eret", WHY_ERET),
    refuse(EXACT, 0xd69f_0bff, "eretaa", WHY_ERET),
    refuse(EXACT, 0xd69f_0fff, "eretab", WHY_ERET),
    refuse(EXACT, 0xd6bf_03e0, "drps", WHY_ERET),
    // Exception generation: Linux `aarch64_insn_is_exception`.
    refuse(0xffe0_001f, 0xd400_0001, "svc", WHY_EXCEPTION),
    refuse(0xffe0_001f, 0xd400_0002, "hvc", WHY_EXCEPTION),
    refuse(0xffe0_001f, 0xd400_0003, "smc", WHY_EXCEPTION),
    refuse(0xffe0_001f, 0xd420_0000, "brk", WHY_BRK),
    refuse(0xffe0_001f, 0xd440_0000, "hlt", WHY_EXCEPTION),
    refuse(0xffe0_001f, 0xd460_0000, "tcancel", WHY_EXCEPTION),
    refuse(0xffe0_001f, 0xd4a0_0001, "dcps1", WHY_EXCEPTION),
    refuse(0xffe0_001f, 0xd4a0_0002, "dcps2", WHY_EXCEPTION),
    refuse(0xffe0_001f, 0xd4a0_0003, "dcps3", WHY_EXCEPTION),
    // Hints (CRn = 0010): `aarch64_insn_is_steppable_hint` steps nop, the
    // bti forms, xpaclri and the pac* that sign with a key.
    step(EXACT, 0xd503_201f, "nop"),
    step(EXACT, 0xd503_20ff, "xpaclri"),
    step(EXACT, 0xd503_211f, "pacia1716"),
    step(EXACT, 0xd503_215f, "pacib1716"),
    step(EXACT, 0xd503_231f, "paciaz"),
    step(EXACT, 0xd503_233f, "paciasp"),
    step(EXACT, 0xd503_235f, "pacibz"),
    step(EXACT, 0xd503_237f, "pacibsp"),
    step(EXACT, 0xd503_241f, "bti"),
    step(EXACT, 0xd503_245f, "bti c"),
    step(EXACT, 0xd503_249f, "bti j"),
    step(EXACT, 0xd503_24df, "bti jc"),
    refuse(EXACT, 0xd503_219f, "autia1716", WHY_AUT),
    refuse(EXACT, 0xd503_21df, "autib1716", WHY_AUT),
    refuse(EXACT, 0xd503_239f, "autiaz", WHY_AUT),
    refuse(EXACT, 0xd503_23bf, "autiasp", WHY_AUT),
    refuse(EXACT, 0xd503_23df, "autibz", WHY_AUT),
    refuse(EXACT, 0xd503_23ff, "autibsp", WHY_AUT),
    refuse(EXACT, 0xd503_203f, "yield", WHY_HINT),
    refuse(EXACT, 0xd503_205f, "wfe", WHY_HINT),
    refuse(EXACT, 0xd503_207f, "wfi", WHY_HINT),
    refuse(EXACT, 0xd503_209f, "sev", WHY_HINT),
    refuse(EXACT, 0xd503_20bf, "sevl", WHY_HINT),
    refuse(HINT_ALL, 0xd503_201f, "hint", WHY_HINT),
    // Barriers (CRn = 0011): Linux steps them.
    step(0xffff_f0ff, 0xd503_305f, "clrex"),
    step(0xffff_f0ff, 0xd503_309f, "dsb"),
    step(0xffff_f0ff, 0xd503_30bf, "dmb"),
    step(0xffff_f0ff, 0xd503_30df, "isb"),
    step(EXACT, 0xd503_30ff, "sb"),
    step(0xffff_f3ff, 0xd503_323f, "dsb nxs"),
    // wfet, wfit (FEAT_WFxT): system instruction with register.
    refuse(0xffff_ffe0, 0xd503_1000, "wfet", WHY_WAIT),
    refuse(0xffff_ffe0, 0xd503_1020, "wfit", WHY_WAIT),
    // PSTATE (msr immediate): Linux `aarch64_insn_is_msr_imm`.
    refuse(0xfff8_f01f, 0xd500_401f, "msr (immediate)", WHY_MSR),
    // System instructions (sys, sysl: dc, ic, at, tlbi…): stepped.
    step(0xffd8_0000, 0xd508_0000, "sys/sysl"),
    // msr (register): Linux `aarch64_insn_is_msr_reg`.
    refuse(0xfff0_0000, 0xd510_0000, "msr", WHY_MSR),
    // mrs: DAIF (Linux), and the exception registers our trap rewrites.
    refuse(NOT_RT, 0xd53b_4220, "mrs daif", WHY_MRS_DAIF),
    refuse(NOT_RT, 0xd538_4000, "mrs spsr_el1", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd538_4020, "mrs elr_el1", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd538_5200, "mrs esr_el1", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd538_6000, "mrs far_el1", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd53c_4000, "mrs spsr_el2", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd53c_4020, "mrs elr_el2", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd53c_5200, "mrs esr_el2", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd53c_6000, "mrs far_el2", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd53e_4000, "mrs spsr_el3", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd53e_4020, "mrs elr_el3", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd53e_5200, "mrs esr_el3", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd53e_6000, "mrs far_el3", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd53d_4000, "mrs spsr_el12", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd53d_4020, "mrs elr_el12", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd53d_5200, "mrs esr_el12", WHY_MRS_EXC),
    refuse(NOT_RT, 0xd53d_6000, "mrs far_el12", WHY_MRS_EXC),
    step(0xfff0_0000, 0xd530_0000, "mrs"),
    unallocated(0, 0),
];

/// `op0` = x1x0: loads and stores (Arm ARM C4.1.88).
const LOAD_STORE: &[Entry] = &[
    // Load register (literal): Linux `simulate_ldr_literal`,
    // `simulate_ldrsw_literal`; SIMD&FP literal loads are refused.
    sim(
        0xff00_0000,
        0x1800_0000,
        "ldr (literal, 32-bit)",
        Simulated::LdrLit32,
    ),
    sim(
        0xff00_0000,
        0x5800_0000,
        "ldr (literal, 64-bit)",
        Simulated::LdrLit64,
    ),
    sim(
        0xff00_0000,
        0x9800_0000,
        "ldrsw (literal)",
        Simulated::LdrswLit,
    ),
    sim(
        0xff00_0000,
        0xd800_0000,
        "prfm (literal)",
        Simulated::PrfmLit,
    ),
    refuse(
        0x3f00_0000,
        0x1c00_0000,
        "ldr (literal, SIMD&FP)",
        WHY_SIMD_LITERAL,
    ),
    // Load/store exclusive register (o2 = 0, o1 = 0) and pair (sz = 1x,
    // o1 = 1): Linux `aarch64_insn_is_exclusive` (load_ex, store_ex).
    refuse(0x3fe0_8000, 0x0840_0000, "ldxr", WHY_EXCLUSIVE),
    refuse(0x3fe0_8000, 0x0840_8000, "ldaxr", WHY_EXCLUSIVE),
    refuse(0x3fe0_8000, 0x0800_0000, "stxr", WHY_EXCLUSIVE),
    refuse(0x3fe0_8000, 0x0800_8000, "stlxr", WHY_EXCLUSIVE),
    refuse(0xbfe0_8000, 0x8860_0000, "ldxp", WHY_EXCLUSIVE),
    refuse(0xbfe0_8000, 0x8860_8000, "ldaxp", WHY_EXCLUSIVE),
    refuse(0xbfe0_8000, 0x8820_0000, "stxp", WHY_EXCLUSIVE),
    refuse(0xbfe0_8000, 0x8820_8000, "stlxp", WHY_EXCLUSIVE),
    // The rest of the group, class by class (`ldst.rs`).
    table(
        "xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx",
        "load/store",
        ldst::LOADS_AND_STORES,
    ),
];

/// `op0` = x101: data processing – register (Arm ARM C4.1.89, `dpreg.rs`).
const DP_REG: &[Entry] = dpreg::DATA_PROCESSING_REGISTER;

/// `op0` = x111: data processing – scalar floating point and Advanced SIMD
/// (Arm ARM C4.1.90, `simd.rs`).
const SIMD_FP: &[Entry] = simd::SIMD_AND_FP;

/// The table of each top-level group, indexed by `op0` = bits \[28:25\].
const GROUPS: [&[Entry]; 16] = [
    RESERVED,    // 0000
    UNALLOCATED, // 0001
    SVE,         // 0010
    UNALLOCATED, // 0011
    LOAD_STORE,  // 0100
    DP_REG,      // 0101
    LOAD_STORE,  // 0110
    SIMD_FP,     // 0111
    DP_IMM,      // 1000
    DP_IMM,      // 1001
    BRANCH_SYS,  // 1010
    BRANCH_SYS,  // 1011
    LOAD_STORE,  // 1100
    DP_REG,      // 1101
    LOAD_STORE,  // 1110
    SIMD_FP,     // 1111
];

/// The table of `word`'s top-level group.
pub fn group(word: u32) -> &'static [Entry] {
    GROUPS[((word >> 25) & 0xf) as usize]
}

/// Call `f` on every row of every table and sub-table (each group's table
/// once, a sub-table once per row naming it), for tests.
pub fn for_each_row(f: &mut dyn FnMut(&'static Entry)) {
    fn walk(rows: &'static [Entry], f: &mut dyn FnMut(&'static Entry)) {
        for e in rows {
            f(e);
            if let Action::Table(sub) = e.action {
                walk(sub, f);
            }
        }
    }
    for t in [
        RESERVED,
        SVE,
        UNALLOCATED,
        DP_IMM,
        BRANCH_SYS,
        LOAD_STORE,
        DP_REG,
        SIMD_FP,
    ] {
        walk(t, f);
    }
}

/// The row deciding `word` (every word has one: each table ends with a
/// catch-all, and a word no row matches is unallocated). Sub-table rows
/// are followed down to the row that decides.
pub fn lookup(word: u32) -> &'static Entry {
    let mut rows = group(word);
    loop {
        let Some(e) = rows.iter().find(|e| word & e.mask == e.bits) else {
            return &UNALLOCATED[0];
        };
        match e.action {
            Action::Table(sub) => rows = sub,
            _ => return e,
        }
    }
}

/// Decide about one instruction word.
pub fn decode_word(word: u32) -> Verdict {
    let e = lookup(word);
    match e.action {
        Action::Step => Verdict::Accept(Insn {
            word,
            mnemonic: e.mnemonic,
            op: Op::Step,
        }),
        Action::Simulate(s) => Verdict::Accept(Insn {
            word,
            mnemonic: e.mnemonic,
            op: Op::Simulate(s),
        }),
        Action::Refuse(why) => Verdict::Refuse(Refusal::new(e.mnemonic, why)),
        Action::Undecodable | Action::Table(_) => Verdict::Undecodable,
    }
}

// ---------------------------------------------------------------------------
// Fields.

/// Sign-extend the low `bits` bits of `v`.
pub const fn sext(v: u64, bits: u32) -> i64 {
    ((v << (64 - bits)) as i64) >> (64 - bits)
}

/// `Rt`/`Rd`: bits \[4:0\].
pub const fn rt(word: u32) -> usize {
    (word & 0x1f) as usize
}

/// `Rn`: bits \[9:5\].
pub const fn rn(word: u32) -> usize {
    ((word >> 5) & 0x1f) as usize
}

/// `imm26` of `b`/`bl`, scaled by 4 and sign-extended.
pub const fn imm26(word: u32) -> i64 {
    sext(((word & 0x03ff_ffff) as u64) << 2, 28)
}

/// `imm19` (bits \[23:5\]) of `b.cond`, `cbz`, `ldr` literal…, scaled by 4
/// and sign-extended.
pub const fn imm19(word: u32) -> i64 {
    sext((((word >> 5) & 0x7_ffff) as u64) << 2, 21)
}

/// `imm14` (bits \[18:5\]) of `tbz`/`tbnz`, scaled by 4 and sign-extended.
pub const fn imm14(word: u32) -> i64 {
    sext((((word >> 5) & 0x3fff) as u64) << 2, 16)
}

/// `immhi:immlo` of `adr`/`adrp`, sign-extended (not scaled).
pub const fn adr_imm(word: u32) -> i64 {
    let immlo = ((word >> 29) & 0x3) as u64;
    let immhi = ((word >> 5) & 0x7_ffff) as u64;
    sext((immhi << 2) | immlo, 21)
}

/// The bit number `b5:b40` tested by `tbz`/`tbnz`.
pub const fn test_bit(word: u32) -> u32 {
    ((word >> 31) << 5) | ((word >> 19) & 0x1f)
}

/// The `cond` field (bits \[3:0\]) of `b.cond`.
pub const fn cond(word: u32) -> u32 {
    word & 0xf
}

/// `sf` (bit 31): a 64-bit operation.
pub const fn sf(word: u32) -> bool {
    word >> 31 != 0
}
