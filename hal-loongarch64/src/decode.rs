//! Our LA64 decoder: the three-way decision (refuse, simulate, step out of
//! line) for every 32-bit instruction word, as data.
//!
//! Encodings are those of the *LoongArch Reference Manual, Volume 1: Basic
//! Architecture* (v1.10; appendix B lists every opcode, chapter 2 the basic
//! integer instructions, chapter 3 the floating-point ones, chapter 4 the
//! privileged ones) and of the LA v1.1 additions (`amcas`, `am{swap,add}.{b,h}`,
//! `llacq`/`screl`, `sc.q`, `frecipe`/`frsqrte`).
//!
//! Which instructions are refused and which are simulated follows Linux
//! `arch/loongarch/kernel/inst.c` (`insns_not_supported`,
//! `insns_need_simulation`) as used by `kernel/kprobes.c` and
//! `kernel/uprobes.c`, extended with every instruction that traps, returns
//! from an exception or touches privileged state. Every word that no table
//! lists is refused as undecodable: we step only what we know.
//!
//! The LSX and LASX vector instructions and the LBT binary-translation
//! instructions are stepped, as in Linux (`insns_not_supported` does not
//! list them, so its kprobes and uprobes step them out of line), but only
//! those we know: they are decoded one by one (see `decode/extensions.rs`); none
//! reads the pc.
//!
//! An instruction is one 32-bit little-endian word. Each table row is a
//! `(mask, bits)` pattern: the row matches `word` when `word & mask == bits`.
//! The table of refusals is searched first, then the simulated, then the
//! stepped instructions, then the LSX, LASX and LBT ones; within
//! a table the first matching row wins (only the CSR rows overlap,
//! the more specific row first). A compile-time index on the top ten
//! bits keeps a lookup to a handful of comparisons.

use probe_hal::Refusal;

mod extensions;

/// A pc-reading or pc-writing instruction the backend emulates on the trap
/// frame instead of stepping it out of line (where its pc would be wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Simulated {
    /// `b offs26`: pc-relative jump.
    B,
    /// `bl offs26`: pc-relative call, links `ra`.
    Bl,
    /// `beqz rj, offs21`.
    Beqz,
    /// `bnez rj, offs21`.
    Bnez,
    /// `beq rj, rd, offs16`.
    Beq,
    /// `bne rj, rd, offs16`.
    Bne,
    /// `blt rj, rd, offs16` (signed).
    Blt,
    /// `bge rj, rd, offs16` (signed).
    Bge,
    /// `bltu rj, rd, offs16` (unsigned).
    Bltu,
    /// `bgeu rj, rd, offs16` (unsigned).
    Bgeu,
    /// `jirl rd, rj, offs16`: register-indirect jump, links `rd`.
    Jirl,
    /// `pcaddi rd, si20`: `rd = pc + (si20 << 2)`.
    Pcaddi,
    /// `pcalau12i rd, si20`: `rd = (pc + (si20 << 12)) & !0xfff`.
    Pcalau12i,
    /// `pcaddu12i rd, si20`: `rd = pc + (si20 << 12)`.
    Pcaddu12i,
    /// `pcaddu18i rd, si20`: `rd = pc + (si20 << 18)`.
    Pcaddu18i,
}

/// How an accepted instruction runs after the handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Copied into a slot `[insn][break 11]` and executed there.
    Step,
    /// Emulated on the trap frame by [`crate::simulate`].
    Simulate(Simulated),
}

/// An accepted instruction: the backend's `Arch::Insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Insn {
    /// The instruction word.
    pub word: u32,
    /// Its mnemonic, from the decode tables.
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
    /// No table knows this word.
    Undecodable,
}

/// What a table row decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Step,
    Simulate(Simulated),
    Refuse(&'static str),
}

/// One row of a decode table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) mask: u32,
    pub(crate) bits: u32,
    pub(crate) mnemonic: &'static str,
    pub(crate) action: Action,
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

// Instruction formats (vol. 1, chapter 1): 2R = op[31:10]; 3R = op[31:15]; 4R = op[31:20];
// 2RI12 = op[31:22]; 2RI14 = op[31:24]; 2RI16 = op[31:26]; 1RI20 = op[31:25].
const M_2R: u32 = 0xffff_fc00;
const M_3R: u32 = 0xffff_8000;
const M_4R: u32 = 0xfff0_0000;
const M_I12: u32 = 0xffc0_0000;
const M_I14: u32 = 0xff00_0000;
const M_I16: u32 = 0xfc00_0000;
const M_I20: u32 = 0xfe00_0000;
const M_EXACT: u32 = 0xffff_ffff;

// ---------------------------------------------------------------------------
// Refusal reasons (what a user reads in the error).

/// Reason given for `ll`/`sc` and their acquire/release forms.
pub const WHY_LLSC: &str = "part of an LL/SC sequence: the breakpoint trap ends with `ertn`, \
     which clears LLbit, so the store-conditional would fail on every retry";
/// Reason given for `bceqz`/`bcnez`.
pub const WHY_FCC_BRANCH: &str = "branches on a floating-point condition flag ($fcc), which the \
     trap frame does not hold, so it can neither be simulated nor stepped at a foreign pc";
/// Reason given for the LBT `jiscr0`/`jiscr1` jumps.
pub const WHY_LBT_JUMP: &str = "binary-translation jump through the LBT scratch registers: it \
     writes the pc, and the trap frame does not hold those registers";
/// Reason given for the `AM*` atomics.
pub const WHY_ATOMIC: &str = "atomic memory access instructions are not probed (the rule of \
     Linux arch/loongarch/kernel/inst.c); probe the instruction before or after it";
/// Reason given for instructions that raise an exception on purpose.
pub const WHY_TRAP: &str = "raises an exception on purpose; executed in a slot it would trap \
     at the slot address with the probe's state in flight";
/// Reason given for `ertn`.
pub const WHY_ERTN: &str = "returns from an exception: it switches privilege level and loads \
     the pc from CSR.ERA, which the probe's own trap has overwritten";
/// Reason given for `idle`.
pub const WHY_IDLE: &str = "waits for an interrupt, but the out-of-line step runs with \
     interrupts masked, so the CPU could sleep forever";
/// Reason given for CSR accesses.
pub const WHY_CSR: &str = "reads or writes a control and status register; the probe's trap \
     changes ERA, PRMD, ESTAT and BADV, so the copy would see or clobber the probe's state";
/// Reason given for IOCSR accesses.
pub const WHY_IOCSR: &str = "accesses an IOCSR (interrupt, IPI and device registers with side \
     effects); privileged I/O is never probed";
/// Reason given for TLB and page-walk maintenance.
pub const WHY_TLB: &str = "maintains the TLB or walks page tables; the probe machinery itself \
     depends on the mappings it changes";
/// Reason given for `cacop`.
pub const WHY_CACOP: &str = "maintains caches; the probe machinery depends on the cache state \
     of the text and slot it writes";

// ---------------------------------------------------------------------------
// Refused instructions.

/// Instructions that must not be probed, and why.
///
/// - `ll.w`/`ll.d`/`sc.w`/`sc.d`, `bceqz`/`bcnez`, the `AM*` atomics (plain,
///   `_db`, and the v1.1 `amcas`, `am{swap,add}.{b,h}`), `sc.q`,
///   `llacq`/`screl`: Linux `arch/loongarch/kernel/inst.c`
///   (`insns_not_supported`). LLbit semantics: vol. 1 §2.2.7.1; `ertn`
///   clears LLbit unless `CSR.LLBCTL.KLO` is set.
/// - `break`, `syscall`, `dbcl`, `hvcl`: exception-raising instructions
///   (vol. 1 §2.2, miscellaneous instructions); `break` is also our own
///   breakpoint.
/// - `ertn`, `idle`, `csrrd`/`csrwr`/`csrxchg`, `iocsr*`, `cacop`, `tlb*`,
///   `invtlb`, `lddir`, `ldpte` (vol. 1 chapter 4, privileged instructions), and
///   the LVZ guest forms `gcsr*`, `gtlbflush`.
pub(crate) const REFUSED: &[Entry] = &[
    // LL/SC (vol. 1 §2.2.7.1) and the v1.1 acquire/release/quad forms.
    refuse(M_I14, 0x2000_0000, "ll.w", WHY_LLSC),
    refuse(M_I14, 0x2100_0000, "sc.w", WHY_LLSC),
    refuse(M_I14, 0x2200_0000, "ll.d", WHY_LLSC),
    refuse(M_I14, 0x2300_0000, "sc.d", WHY_LLSC),
    refuse(M_3R, 0x3857_0000, "sc.q", WHY_LLSC),
    refuse(M_2R, 0x3857_8000, "llacq.w", WHY_LLSC),
    refuse(M_2R, 0x3857_8400, "screl.w", WHY_LLSC),
    refuse(M_2R, 0x3857_8800, "llacq.d", WHY_LLSC),
    refuse(M_2R, 0x3857_8c00, "screl.d", WHY_LLSC),
    // Major opcode 0x12: FP-flag branches, and the LBT register jumps.
    refuse(0xfc00_0300, 0x4800_0000, "bceqz", WHY_FCC_BRANCH),
    refuse(0xfc00_0300, 0x4800_0100, "bcnez", WHY_FCC_BRANCH),
    refuse(0xfc00_0300, 0x4800_0200, "jiscr0", WHY_LBT_JUMP),
    refuse(0xfc00_0300, 0x4800_0300, "jiscr1", WHY_LBT_JUMP),
    // Atomic memory access (vol. 1 §2.2.7; v1.1 additions first).
    refuse(M_3R, 0x3858_0000, "amcas.b", WHY_ATOMIC),
    refuse(M_3R, 0x3858_8000, "amcas.h", WHY_ATOMIC),
    refuse(M_3R, 0x3859_0000, "amcas.w", WHY_ATOMIC),
    refuse(M_3R, 0x3859_8000, "amcas.d", WHY_ATOMIC),
    refuse(M_3R, 0x385a_0000, "amcas_db.b", WHY_ATOMIC),
    refuse(M_3R, 0x385a_8000, "amcas_db.h", WHY_ATOMIC),
    refuse(M_3R, 0x385b_0000, "amcas_db.w", WHY_ATOMIC),
    refuse(M_3R, 0x385b_8000, "amcas_db.d", WHY_ATOMIC),
    refuse(M_3R, 0x385c_0000, "amswap.b", WHY_ATOMIC),
    refuse(M_3R, 0x385c_8000, "amswap.h", WHY_ATOMIC),
    refuse(M_3R, 0x385d_0000, "amadd.b", WHY_ATOMIC),
    refuse(M_3R, 0x385d_8000, "amadd.h", WHY_ATOMIC),
    refuse(M_3R, 0x385e_0000, "amswap_db.b", WHY_ATOMIC),
    refuse(M_3R, 0x385e_8000, "amswap_db.h", WHY_ATOMIC),
    refuse(M_3R, 0x385f_0000, "amadd_db.b", WHY_ATOMIC),
    refuse(M_3R, 0x385f_8000, "amadd_db.h", WHY_ATOMIC),
    refuse(M_3R, 0x3860_0000, "amswap.w", WHY_ATOMIC),
    refuse(M_3R, 0x3860_8000, "amswap.d", WHY_ATOMIC),
    refuse(M_3R, 0x3861_0000, "amadd.w", WHY_ATOMIC),
    refuse(M_3R, 0x3861_8000, "amadd.d", WHY_ATOMIC),
    refuse(M_3R, 0x3862_0000, "amand.w", WHY_ATOMIC),
    refuse(M_3R, 0x3862_8000, "amand.d", WHY_ATOMIC),
    refuse(M_3R, 0x3863_0000, "amor.w", WHY_ATOMIC),
    refuse(M_3R, 0x3863_8000, "amor.d", WHY_ATOMIC),
    refuse(M_3R, 0x3864_0000, "amxor.w", WHY_ATOMIC),
    refuse(M_3R, 0x3864_8000, "amxor.d", WHY_ATOMIC),
    refuse(M_3R, 0x3865_0000, "ammax.w", WHY_ATOMIC),
    refuse(M_3R, 0x3865_8000, "ammax.d", WHY_ATOMIC),
    refuse(M_3R, 0x3866_0000, "ammin.w", WHY_ATOMIC),
    refuse(M_3R, 0x3866_8000, "ammin.d", WHY_ATOMIC),
    refuse(M_3R, 0x3867_0000, "ammax.wu", WHY_ATOMIC),
    refuse(M_3R, 0x3867_8000, "ammax.du", WHY_ATOMIC),
    refuse(M_3R, 0x3868_0000, "ammin.wu", WHY_ATOMIC),
    refuse(M_3R, 0x3868_8000, "ammin.du", WHY_ATOMIC),
    refuse(M_3R, 0x3869_0000, "amswap_db.w", WHY_ATOMIC),
    refuse(M_3R, 0x3869_8000, "amswap_db.d", WHY_ATOMIC),
    refuse(M_3R, 0x386a_0000, "amadd_db.w", WHY_ATOMIC),
    refuse(M_3R, 0x386a_8000, "amadd_db.d", WHY_ATOMIC),
    refuse(M_3R, 0x386b_0000, "amand_db.w", WHY_ATOMIC),
    refuse(M_3R, 0x386b_8000, "amand_db.d", WHY_ATOMIC),
    refuse(M_3R, 0x386c_0000, "amor_db.w", WHY_ATOMIC),
    refuse(M_3R, 0x386c_8000, "amor_db.d", WHY_ATOMIC),
    refuse(M_3R, 0x386d_0000, "amxor_db.w", WHY_ATOMIC),
    refuse(M_3R, 0x386d_8000, "amxor_db.d", WHY_ATOMIC),
    refuse(M_3R, 0x386e_0000, "ammax_db.w", WHY_ATOMIC),
    refuse(M_3R, 0x386e_8000, "ammax_db.d", WHY_ATOMIC),
    refuse(M_3R, 0x386f_0000, "ammin_db.w", WHY_ATOMIC),
    refuse(M_3R, 0x386f_8000, "ammin_db.d", WHY_ATOMIC),
    refuse(M_3R, 0x3870_0000, "ammax_db.wu", WHY_ATOMIC),
    refuse(M_3R, 0x3870_8000, "ammax_db.du", WHY_ATOMIC),
    refuse(M_3R, 0x3871_0000, "ammin_db.wu", WHY_ATOMIC),
    refuse(M_3R, 0x3871_8000, "ammin_db.du", WHY_ATOMIC),
    // Exception-raising instructions (vol. 1 §2.2, miscellaneous; hvcl is LVZ).
    refuse(M_3R, 0x002a_0000, "break", WHY_TRAP),
    refuse(M_3R, 0x002a_8000, "dbcl", WHY_TRAP),
    refuse(M_3R, 0x002b_0000, "syscall", WHY_TRAP),
    refuse(M_3R, 0x002b_8000, "hvcl", WHY_TRAP),
    // Privileged instructions (vol. 1 chapter 4). csrrd (rj = 0) and csrwr
    // (rj = 1) come before csrxchg, which is every other rj.
    refuse(0xff00_03e0, 0x0400_0000, "csrrd", WHY_CSR),
    refuse(0xff00_03e0, 0x0400_0020, "csrwr", WHY_CSR),
    refuse(M_I14, 0x0400_0000, "csrxchg", WHY_CSR),
    refuse(0xff00_03e0, 0x0500_0000, "gcsrrd", WHY_CSR),
    refuse(0xff00_03e0, 0x0500_0020, "gcsrwr", WHY_CSR),
    refuse(M_I14, 0x0500_0000, "gcsrxchg", WHY_CSR),
    refuse(M_I12, 0x0600_0000, "cacop", WHY_CACOP),
    refuse(0xfffc_0000, 0x0640_0000, "lddir", WHY_TLB),
    refuse(0xfffc_001f, 0x0644_0000, "ldpte", WHY_TLB),
    refuse(M_2R, 0x0648_0000, "iocsrrd.b", WHY_IOCSR),
    refuse(M_2R, 0x0648_0400, "iocsrrd.h", WHY_IOCSR),
    refuse(M_2R, 0x0648_0800, "iocsrrd.w", WHY_IOCSR),
    refuse(M_2R, 0x0648_0c00, "iocsrrd.d", WHY_IOCSR),
    refuse(M_2R, 0x0648_1000, "iocsrwr.b", WHY_IOCSR),
    refuse(M_2R, 0x0648_1400, "iocsrwr.h", WHY_IOCSR),
    refuse(M_2R, 0x0648_1800, "iocsrwr.w", WHY_IOCSR),
    refuse(M_2R, 0x0648_1c00, "iocsrwr.d", WHY_IOCSR),
    refuse(M_EXACT, 0x0648_2000, "tlbclr", WHY_TLB),
    refuse(M_EXACT, 0x0648_2400, "tlbflush", WHY_TLB),
    refuse(M_EXACT, 0x0648_2401, "gtlbflush", WHY_TLB),
    refuse(M_EXACT, 0x0648_2800, "tlbsrch", WHY_TLB),
    refuse(M_EXACT, 0x0648_2c00, "tlbrd", WHY_TLB),
    refuse(M_EXACT, 0x0648_3000, "tlbwr", WHY_TLB),
    refuse(M_EXACT, 0x0648_3400, "tlbfill", WHY_TLB),
    refuse(M_EXACT, 0x0648_3800, "ertn", WHY_ERTN),
    refuse(M_3R, 0x0648_8000, "idle", WHY_IDLE),
    refuse(M_3R, 0x0649_8000, "invtlb", WHY_TLB),
];

// ---------------------------------------------------------------------------
// Simulated instructions.

/// Instructions that read or write the pc, emulated on the trap frame: the
/// set of Linux `insns_need_simulation` (`is_pc_ins` + `is_branch_ins` in
/// `arch/loongarch/include/asm/inst.h`). Branches and pc-relative
/// arithmetic: vol. 1 §2.2 (branch and arithmetic instructions).
pub(crate) const SIMULATED: &[Entry] = &[
    sim(M_I16, 0x4000_0000, "beqz", Simulated::Beqz),
    sim(M_I16, 0x4400_0000, "bnez", Simulated::Bnez),
    sim(M_I16, 0x4c00_0000, "jirl", Simulated::Jirl),
    sim(M_I16, 0x5000_0000, "b", Simulated::B),
    sim(M_I16, 0x5400_0000, "bl", Simulated::Bl),
    sim(M_I16, 0x5800_0000, "beq", Simulated::Beq),
    sim(M_I16, 0x5c00_0000, "bne", Simulated::Bne),
    sim(M_I16, 0x6000_0000, "blt", Simulated::Blt),
    sim(M_I16, 0x6400_0000, "bge", Simulated::Bge),
    sim(M_I16, 0x6800_0000, "bltu", Simulated::Bltu),
    sim(M_I16, 0x6c00_0000, "bgeu", Simulated::Bgeu),
    sim(M_I20, 0x1800_0000, "pcaddi", Simulated::Pcaddi),
    sim(M_I20, 0x1a00_0000, "pcalau12i", Simulated::Pcalau12i),
    sim(M_I20, 0x1c00_0000, "pcaddu12i", Simulated::Pcaddu12i),
    sim(M_I20, 0x1e00_0000, "pcaddu18i", Simulated::Pcaddu18i),
];

// ---------------------------------------------------------------------------
// Stepped instructions.

/// Instructions that run correctly at any address: copied into a slot.
/// Basic integer: vol. 1 §2.2; floating point: vol. 1 chapter 3 (plus the v1.1
/// `frecipe`/`frsqrte`). None of them reads or writes the pc.
pub(crate) const STEPPED: &[Entry] = &[
    // Bit manipulation, 2R; timers and cpucfg (miscellaneous).
    step(M_2R, 0x0000_1000, "clo.w"),
    step(M_2R, 0x0000_1400, "clz.w"),
    step(M_2R, 0x0000_1800, "cto.w"),
    step(M_2R, 0x0000_1c00, "ctz.w"),
    step(M_2R, 0x0000_2000, "clo.d"),
    step(M_2R, 0x0000_2400, "clz.d"),
    step(M_2R, 0x0000_2800, "cto.d"),
    step(M_2R, 0x0000_2c00, "ctz.d"),
    step(M_2R, 0x0000_3000, "revb.2h"),
    step(M_2R, 0x0000_3400, "revb.4h"),
    step(M_2R, 0x0000_3800, "revb.2w"),
    step(M_2R, 0x0000_3c00, "revb.d"),
    step(M_2R, 0x0000_4000, "revh.2w"),
    step(M_2R, 0x0000_4400, "revh.d"),
    step(M_2R, 0x0000_4800, "bitrev.4b"),
    step(M_2R, 0x0000_4c00, "bitrev.8b"),
    step(M_2R, 0x0000_5000, "bitrev.w"),
    step(M_2R, 0x0000_5400, "bitrev.d"),
    step(M_2R, 0x0000_5800, "ext.w.h"),
    step(M_2R, 0x0000_5c00, "ext.w.b"),
    step(M_2R, 0x0000_6000, "rdtimel.w"),
    step(M_2R, 0x0000_6400, "rdtimeh.w"),
    step(M_2R, 0x0000_6800, "rdtime.d"),
    step(M_2R, 0x0000_6c00, "cpucfg"),
    // Bound assertions (miscellaneous): rd must be 0.
    step(0xffff_801f, 0x0001_0000, "asrtle.d"),
    step(0xffff_801f, 0x0001_8000, "asrtgt.d"),
    // Shifted add (arithmetic) and byte pick (bit manipulation).
    step(0xfffe_0000, 0x0004_0000, "alsl.w"),
    step(0xfffe_0000, 0x0006_0000, "alsl.wu"),
    step(0xfffe_0000, 0x0008_0000, "bytepick.w"),
    step(0xfffc_0000, 0x000c_0000, "bytepick.d"),
    step(0xfffe_0000, 0x002c_0000, "alsl.d"),
    // Three-register arithmetic, logic, shifts; CRC.
    step(M_3R, 0x0010_0000, "add.w"),
    step(M_3R, 0x0010_8000, "add.d"),
    step(M_3R, 0x0011_0000, "sub.w"),
    step(M_3R, 0x0011_8000, "sub.d"),
    step(M_3R, 0x0012_0000, "slt"),
    step(M_3R, 0x0012_8000, "sltu"),
    step(M_3R, 0x0013_0000, "maskeqz"),
    step(M_3R, 0x0013_8000, "masknez"),
    step(M_3R, 0x0014_0000, "nor"),
    step(M_3R, 0x0014_8000, "and"),
    step(M_3R, 0x0015_0000, "or"),
    step(M_3R, 0x0015_8000, "xor"),
    step(M_3R, 0x0016_0000, "orn"),
    step(M_3R, 0x0016_8000, "andn"),
    step(M_3R, 0x0017_0000, "sll.w"),
    step(M_3R, 0x0017_8000, "srl.w"),
    step(M_3R, 0x0018_0000, "sra.w"),
    step(M_3R, 0x0018_8000, "sll.d"),
    step(M_3R, 0x0019_0000, "srl.d"),
    step(M_3R, 0x0019_8000, "sra.d"),
    step(M_3R, 0x001b_0000, "rotr.w"),
    step(M_3R, 0x001b_8000, "rotr.d"),
    step(M_3R, 0x001c_0000, "mul.w"),
    step(M_3R, 0x001c_8000, "mulh.w"),
    step(M_3R, 0x001d_0000, "mulh.wu"),
    step(M_3R, 0x001d_8000, "mul.d"),
    step(M_3R, 0x001e_0000, "mulh.d"),
    step(M_3R, 0x001e_8000, "mulh.du"),
    step(M_3R, 0x001f_0000, "mulw.d.w"),
    step(M_3R, 0x001f_8000, "mulw.d.wu"),
    step(M_3R, 0x0020_0000, "div.w"),
    step(M_3R, 0x0020_8000, "mod.w"),
    step(M_3R, 0x0021_0000, "div.wu"),
    step(M_3R, 0x0021_8000, "mod.wu"),
    step(M_3R, 0x0022_0000, "div.d"),
    step(M_3R, 0x0022_8000, "mod.d"),
    step(M_3R, 0x0023_0000, "div.du"),
    step(M_3R, 0x0023_8000, "mod.du"),
    step(M_3R, 0x0024_0000, "crc.w.b.w"),
    step(M_3R, 0x0024_8000, "crc.w.h.w"),
    step(M_3R, 0x0025_0000, "crc.w.w.w"),
    step(M_3R, 0x0025_8000, "crc.w.d.w"),
    step(M_3R, 0x0026_0000, "crcc.w.b.w"),
    step(M_3R, 0x0026_8000, "crcc.w.h.w"),
    step(M_3R, 0x0027_0000, "crcc.w.w.w"),
    step(M_3R, 0x0027_8000, "crcc.w.d.w"),
    // Immediate shifts: ui5 for .w, ui6 for .d.
    step(M_3R, 0x0040_8000, "slli.w"),
    step(0xffff_0000, 0x0041_0000, "slli.d"),
    step(M_3R, 0x0044_8000, "srli.w"),
    step(0xffff_0000, 0x0045_0000, "srli.d"),
    step(M_3R, 0x0048_8000, "srai.w"),
    step(0xffff_0000, 0x0049_0000, "srai.d"),
    step(M_3R, 0x004c_8000, "rotri.w"),
    step(0xffff_0000, 0x004d_0000, "rotri.d"),
    // Bit-string insert/extract (bit manipulation).
    step(0xffe0_8000, 0x0060_0000, "bstrins.w"),
    step(0xffe0_8000, 0x0060_8000, "bstrpick.w"),
    step(M_I12, 0x0080_0000, "bstrins.d"),
    step(M_I12, 0x00c0_0000, "bstrpick.d"),
    // Floating-point arithmetic, 3R.
    step(M_3R, 0x0100_8000, "fadd.s"),
    step(M_3R, 0x0101_0000, "fadd.d"),
    step(M_3R, 0x0102_8000, "fsub.s"),
    step(M_3R, 0x0103_0000, "fsub.d"),
    step(M_3R, 0x0104_8000, "fmul.s"),
    step(M_3R, 0x0105_0000, "fmul.d"),
    step(M_3R, 0x0106_8000, "fdiv.s"),
    step(M_3R, 0x0107_0000, "fdiv.d"),
    step(M_3R, 0x0108_8000, "fmax.s"),
    step(M_3R, 0x0109_0000, "fmax.d"),
    step(M_3R, 0x010a_8000, "fmin.s"),
    step(M_3R, 0x010b_0000, "fmin.d"),
    step(M_3R, 0x010c_8000, "fmaxa.s"),
    step(M_3R, 0x010d_0000, "fmaxa.d"),
    step(M_3R, 0x010e_8000, "fmina.s"),
    step(M_3R, 0x010f_0000, "fmina.d"),
    step(M_3R, 0x0110_8000, "fscaleb.s"),
    step(M_3R, 0x0111_0000, "fscaleb.d"),
    step(M_3R, 0x0112_8000, "fcopysign.s"),
    step(M_3R, 0x0113_0000, "fcopysign.d"),
    // Floating-point 2R: unary ops, moves, conversions.
    step(M_2R, 0x0114_0400, "fabs.s"),
    step(M_2R, 0x0114_0800, "fabs.d"),
    step(M_2R, 0x0114_1400, "fneg.s"),
    step(M_2R, 0x0114_1800, "fneg.d"),
    step(M_2R, 0x0114_2400, "flogb.s"),
    step(M_2R, 0x0114_2800, "flogb.d"),
    step(M_2R, 0x0114_3400, "fclass.s"),
    step(M_2R, 0x0114_3800, "fclass.d"),
    step(M_2R, 0x0114_4400, "fsqrt.s"),
    step(M_2R, 0x0114_4800, "fsqrt.d"),
    step(M_2R, 0x0114_5400, "frecip.s"),
    step(M_2R, 0x0114_5800, "frecip.d"),
    step(M_2R, 0x0114_6400, "frsqrt.s"),
    step(M_2R, 0x0114_6800, "frsqrt.d"),
    step(M_2R, 0x0114_7400, "frecipe.s"),
    step(M_2R, 0x0114_7800, "frecipe.d"),
    step(M_2R, 0x0114_8400, "frsqrte.s"),
    step(M_2R, 0x0114_8800, "frsqrte.d"),
    step(M_2R, 0x0114_9400, "fmov.s"),
    step(M_2R, 0x0114_9800, "fmov.d"),
    step(M_2R, 0x0114_a400, "movgr2fr.w"),
    step(M_2R, 0x0114_a800, "movgr2fr.d"),
    step(M_2R, 0x0114_ac00, "movgr2frh.w"),
    step(M_2R, 0x0114_b400, "movfr2gr.s"),
    step(M_2R, 0x0114_b800, "movfr2gr.d"),
    step(M_2R, 0x0114_bc00, "movfrh2gr.s"),
    step(0xffff_fc1c, 0x0114_c000, "movgr2fcsr"),
    step(0xffff_ff80, 0x0114_c800, "movfcsr2gr"),
    step(0xffff_fc18, 0x0114_d000, "movfr2cf"),
    step(0xffff_ff00, 0x0114_d400, "movcf2fr"),
    step(0xffff_fc18, 0x0114_d800, "movgr2cf"),
    step(0xffff_ff00, 0x0114_dc00, "movcf2gr"),
    step(M_2R, 0x0119_1800, "fcvt.s.d"),
    step(M_2R, 0x0119_2400, "fcvt.d.s"),
    step(M_2R, 0x011a_0400, "ftintrm.w.s"),
    step(M_2R, 0x011a_0800, "ftintrm.w.d"),
    step(M_2R, 0x011a_2400, "ftintrm.l.s"),
    step(M_2R, 0x011a_2800, "ftintrm.l.d"),
    step(M_2R, 0x011a_4400, "ftintrp.w.s"),
    step(M_2R, 0x011a_4800, "ftintrp.w.d"),
    step(M_2R, 0x011a_6400, "ftintrp.l.s"),
    step(M_2R, 0x011a_6800, "ftintrp.l.d"),
    step(M_2R, 0x011a_8400, "ftintrz.w.s"),
    step(M_2R, 0x011a_8800, "ftintrz.w.d"),
    step(M_2R, 0x011a_a400, "ftintrz.l.s"),
    step(M_2R, 0x011a_a800, "ftintrz.l.d"),
    step(M_2R, 0x011a_c400, "ftintrne.w.s"),
    step(M_2R, 0x011a_c800, "ftintrne.w.d"),
    step(M_2R, 0x011a_e400, "ftintrne.l.s"),
    step(M_2R, 0x011a_e800, "ftintrne.l.d"),
    step(M_2R, 0x011b_0400, "ftint.w.s"),
    step(M_2R, 0x011b_0800, "ftint.w.d"),
    step(M_2R, 0x011b_2400, "ftint.l.s"),
    step(M_2R, 0x011b_2800, "ftint.l.d"),
    step(M_2R, 0x011d_1000, "ffint.s.w"),
    step(M_2R, 0x011d_1800, "ffint.s.l"),
    step(M_2R, 0x011d_2000, "ffint.d.w"),
    step(M_2R, 0x011d_2800, "ffint.d.l"),
    step(M_2R, 0x011e_4400, "frint.s"),
    step(M_2R, 0x011e_4800, "frint.d"),
    // Immediate arithmetic and logic.
    step(M_I12, 0x0200_0000, "slti"),
    step(M_I12, 0x0240_0000, "sltui"),
    step(M_I12, 0x0280_0000, "addi.w"),
    step(M_I12, 0x02c0_0000, "addi.d"),
    step(M_I12, 0x0300_0000, "lu52i.d"),
    step(M_I12, 0x0340_0000, "andi"),
    step(M_I12, 0x0380_0000, "ori"),
    step(M_I12, 0x03c0_0000, "xori"),
    step(M_I16, 0x1000_0000, "addu16i.d"),
    step(M_I20, 0x1400_0000, "lu12i.w"),
    step(M_I20, 0x1600_0000, "lu32i.d"),
    // Fused multiply-add, 4R.
    step(M_4R, 0x0810_0000, "fmadd.s"),
    step(M_4R, 0x0820_0000, "fmadd.d"),
    step(M_4R, 0x0850_0000, "fmsub.s"),
    step(M_4R, 0x0860_0000, "fmsub.d"),
    step(M_4R, 0x0890_0000, "fnmadd.s"),
    step(M_4R, 0x08a0_0000, "fnmadd.d"),
    step(M_4R, 0x08d0_0000, "fnmsub.s"),
    step(M_4R, 0x08e0_0000, "fnmsub.d"),
    // Floating-point compare into $fcc: cond in [19:15], cd in
    // [2:0], bits [4:3] zero; only the 22 defined conditions.
    step(FCMP, 0x0c10_0000, "fcmp.caf.s"),
    step(FCMP, 0x0c10_8000, "fcmp.saf.s"),
    step(FCMP, 0x0c11_0000, "fcmp.clt.s"),
    step(FCMP, 0x0c11_8000, "fcmp.slt.s"),
    step(FCMP, 0x0c12_0000, "fcmp.ceq.s"),
    step(FCMP, 0x0c12_8000, "fcmp.seq.s"),
    step(FCMP, 0x0c13_0000, "fcmp.cle.s"),
    step(FCMP, 0x0c13_8000, "fcmp.sle.s"),
    step(FCMP, 0x0c14_0000, "fcmp.cun.s"),
    step(FCMP, 0x0c14_8000, "fcmp.sun.s"),
    step(FCMP, 0x0c15_0000, "fcmp.cult.s"),
    step(FCMP, 0x0c15_8000, "fcmp.sult.s"),
    step(FCMP, 0x0c16_0000, "fcmp.cueq.s"),
    step(FCMP, 0x0c16_8000, "fcmp.sueq.s"),
    step(FCMP, 0x0c17_0000, "fcmp.cule.s"),
    step(FCMP, 0x0c17_8000, "fcmp.sule.s"),
    step(FCMP, 0x0c18_0000, "fcmp.cne.s"),
    step(FCMP, 0x0c18_8000, "fcmp.sne.s"),
    step(FCMP, 0x0c1a_0000, "fcmp.cor.s"),
    step(FCMP, 0x0c1a_8000, "fcmp.sor.s"),
    step(FCMP, 0x0c1c_0000, "fcmp.cune.s"),
    step(FCMP, 0x0c1c_8000, "fcmp.sune.s"),
    step(FCMP, 0x0c20_0000, "fcmp.caf.d"),
    step(FCMP, 0x0c20_8000, "fcmp.saf.d"),
    step(FCMP, 0x0c21_0000, "fcmp.clt.d"),
    step(FCMP, 0x0c21_8000, "fcmp.slt.d"),
    step(FCMP, 0x0c22_0000, "fcmp.ceq.d"),
    step(FCMP, 0x0c22_8000, "fcmp.seq.d"),
    step(FCMP, 0x0c23_0000, "fcmp.cle.d"),
    step(FCMP, 0x0c23_8000, "fcmp.sle.d"),
    step(FCMP, 0x0c24_0000, "fcmp.cun.d"),
    step(FCMP, 0x0c24_8000, "fcmp.sun.d"),
    step(FCMP, 0x0c25_0000, "fcmp.cult.d"),
    step(FCMP, 0x0c25_8000, "fcmp.sult.d"),
    step(FCMP, 0x0c26_0000, "fcmp.cueq.d"),
    step(FCMP, 0x0c26_8000, "fcmp.sueq.d"),
    step(FCMP, 0x0c27_0000, "fcmp.cule.d"),
    step(FCMP, 0x0c27_8000, "fcmp.sule.d"),
    step(FCMP, 0x0c28_0000, "fcmp.cne.d"),
    step(FCMP, 0x0c28_8000, "fcmp.sne.d"),
    step(FCMP, 0x0c2a_0000, "fcmp.cor.d"),
    step(FCMP, 0x0c2a_8000, "fcmp.sor.d"),
    step(FCMP, 0x0c2c_0000, "fcmp.cune.d"),
    step(FCMP, 0x0c2c_8000, "fcmp.sune.d"),
    // Select on $fcc: ca in [17:15].
    step(0xfffc_0000, 0x0d00_0000, "fsel"),
    // Loads and stores, integer and floating point.
    step(M_I14, 0x2400_0000, "ldptr.w"),
    step(M_I14, 0x2500_0000, "stptr.w"),
    step(M_I14, 0x2600_0000, "ldptr.d"),
    step(M_I14, 0x2700_0000, "stptr.d"),
    step(M_I12, 0x2800_0000, "ld.b"),
    step(M_I12, 0x2840_0000, "ld.h"),
    step(M_I12, 0x2880_0000, "ld.w"),
    step(M_I12, 0x28c0_0000, "ld.d"),
    step(M_I12, 0x2900_0000, "st.b"),
    step(M_I12, 0x2940_0000, "st.h"),
    step(M_I12, 0x2980_0000, "st.w"),
    step(M_I12, 0x29c0_0000, "st.d"),
    step(M_I12, 0x2a00_0000, "ld.bu"),
    step(M_I12, 0x2a40_0000, "ld.hu"),
    step(M_I12, 0x2a80_0000, "ld.wu"),
    step(M_I12, 0x2ac0_0000, "preld"),
    step(M_I12, 0x2b00_0000, "fld.s"),
    step(M_I12, 0x2b40_0000, "fst.s"),
    step(M_I12, 0x2b80_0000, "fld.d"),
    step(M_I12, 0x2bc0_0000, "fst.d"),
    step(M_3R, 0x3800_0000, "ldx.b"),
    step(M_3R, 0x3804_0000, "ldx.h"),
    step(M_3R, 0x3808_0000, "ldx.w"),
    step(M_3R, 0x380c_0000, "ldx.d"),
    step(M_3R, 0x3810_0000, "stx.b"),
    step(M_3R, 0x3814_0000, "stx.h"),
    step(M_3R, 0x3818_0000, "stx.w"),
    step(M_3R, 0x381c_0000, "stx.d"),
    step(M_3R, 0x3820_0000, "ldx.bu"),
    step(M_3R, 0x3824_0000, "ldx.hu"),
    step(M_3R, 0x3828_0000, "ldx.wu"),
    step(M_3R, 0x382c_0000, "preldx"),
    step(M_3R, 0x3830_0000, "fldx.s"),
    step(M_3R, 0x3834_0000, "fldx.d"),
    step(M_3R, 0x3838_0000, "fstx.s"),
    step(M_3R, 0x383c_0000, "fstx.d"),
    // Barriers.
    step(M_3R, 0x3872_0000, "dbar"),
    step(M_3R, 0x3872_8000, "ibar"),
    // Bound-checked loads and stores.
    step(M_3R, 0x3874_0000, "fldgt.s"),
    step(M_3R, 0x3874_8000, "fldgt.d"),
    step(M_3R, 0x3875_0000, "fldle.s"),
    step(M_3R, 0x3875_8000, "fldle.d"),
    step(M_3R, 0x3876_0000, "fstgt.s"),
    step(M_3R, 0x3876_8000, "fstgt.d"),
    step(M_3R, 0x3877_0000, "fstle.s"),
    step(M_3R, 0x3877_8000, "fstle.d"),
    step(M_3R, 0x3878_0000, "ldgt.b"),
    step(M_3R, 0x3878_8000, "ldgt.h"),
    step(M_3R, 0x3879_0000, "ldgt.w"),
    step(M_3R, 0x3879_8000, "ldgt.d"),
    step(M_3R, 0x387a_0000, "ldle.b"),
    step(M_3R, 0x387a_8000, "ldle.h"),
    step(M_3R, 0x387b_0000, "ldle.w"),
    step(M_3R, 0x387b_8000, "ldle.d"),
    step(M_3R, 0x387c_0000, "stgt.b"),
    step(M_3R, 0x387c_8000, "stgt.h"),
    step(M_3R, 0x387d_0000, "stgt.w"),
    step(M_3R, 0x387d_8000, "stgt.d"),
    step(M_3R, 0x387e_0000, "stle.b"),
    step(M_3R, 0x387e_8000, "stle.h"),
    step(M_3R, 0x387f_0000, "stle.w"),
    step(M_3R, 0x387f_8000, "stle.d"),
];

/// `fcmp.cond.fmt`: opcode and cond fixed, bits [4:3] zero.
const FCMP: u32 = 0xffff_8018;

// ---------------------------------------------------------------------------
// The lookup index: rows bucketed by the top ten bits of the word.

const TABLES: [&[Entry]; 6] = [
    REFUSED,
    SIMULATED,
    STEPPED,
    extensions::LSX,
    extensions::LASX,
    extensions::LBT,
];
const BUCKET_BITS: u32 = 10;
const SHIFT: u32 = 32 - BUCKET_BITS;
const BUCKETS: usize = 1 << BUCKET_BITS;
/// A row reference packs the table number above this many bits of index.
const ROW_BITS: u32 = 12;

/// The buckets a row falls in: those whose number `b` has
/// `b & !free == fixed`.
const fn bucket_pattern(e: &Entry) -> (u32, u32) {
    let m = e.mask >> SHIFT;
    let fixed = (e.bits >> SHIFT) & m;
    let free = !m & (BUCKETS as u32 - 1);
    (fixed, free)
}

const fn count_refs() -> usize {
    let mut total = 0;
    let mut t = 0;
    while t < TABLES.len() {
        let mut i = 0;
        while i < TABLES[t].len() {
            let (_, free) = bucket_pattern(&TABLES[t][i]);
            total += 1 << free.count_ones();
            i += 1;
        }
        t += 1;
    }
    total
}

const REFS: usize = count_refs();

struct Index {
    /// Rows of bucket `b` are `refs[start[b]..start[b + 1]]`, in priority order.
    start: [u16; BUCKETS + 1],
    refs: [u16; REFS],
}

const fn build_index() -> Index {
    assert!(REFS < u16::MAX as usize);
    let mut count = [0u16; BUCKETS];
    let mut pass = 0;
    let mut start = [0u16; BUCKETS + 1];
    let mut next = [0u16; BUCKETS];
    let mut refs = [0u16; REFS];
    // Pass 0 counts the rows per bucket, pass 1 places them.
    while pass < 2 {
        if pass == 1 {
            let mut b = 0;
            while b < BUCKETS {
                start[b + 1] = start[b] + count[b];
                next[b] = start[b];
                b += 1;
            }
        }
        let mut t = 0;
        while t < TABLES.len() {
            assert!(TABLES[t].len() < (1 << ROW_BITS));
            let mut i = 0;
            while i < TABLES[t].len() {
                let e = &TABLES[t][i];
                // A row whose fixed bits lie outside its mask could never match.
                assert!(e.bits & !e.mask == 0);
                let (fixed, free) = bucket_pattern(e);
                // Visit every subset of `free` (the classic subset walk).
                let mut sub = 0u32;
                loop {
                    let b = (fixed | sub) as usize;
                    if pass == 0 {
                        count[b] += 1;
                    } else {
                        refs[next[b] as usize] = ((t as u16) << ROW_BITS) | i as u16;
                        next[b] += 1;
                    }
                    if sub == free {
                        break;
                    }
                    sub = sub.wrapping_sub(free) & free;
                }
                i += 1;
            }
            t += 1;
        }
        pass += 1;
    }
    Index { start, refs }
}

static INDEX: Index = build_index();

fn row(r: u16) -> &'static Entry {
    &TABLES[(r >> ROW_BITS) as usize][(r & ((1 << ROW_BITS) - 1)) as usize]
}

/// The table row that decides `word`, if any.
pub(crate) fn lookup(word: u32) -> Option<&'static Entry> {
    let b = (word >> SHIFT) as usize;
    let rows = &INDEX.refs[INDEX.start[b] as usize..INDEX.start[b + 1] as usize];
    rows.iter()
        .map(|&r| row(r))
        .find(|e| word & e.mask == e.bits)
}

/// Decide about one instruction word.
///
/// ```
/// use probe_hal_loongarch64::decode::{decode_word, Op, Simulated, Verdict};
/// // add.d $a0, $a0, $a1
/// assert!(matches!(decode_word(0x0010_9484), Verdict::Accept(i) if i.op == Op::Step));
/// // ret (jirl $zero, $ra, 0)
/// assert!(matches!(decode_word(0x4c00_0020),
///     Verdict::Accept(i) if i.op == Op::Simulate(Simulated::Jirl)));
/// // ll.w $a0, $a1, 0
/// assert!(matches!(decode_word(0x2000_00a4), Verdict::Refuse(r) if r.mnemonic == "ll.w"));
/// assert_eq!(decode_word(0), Verdict::Undecodable);
/// ```
pub fn decode_word(word: u32) -> Verdict {
    match lookup(word) {
        None => Verdict::Undecodable,
        Some(e) => match e.action {
            Action::Refuse(reason) => Verdict::Refuse(Refusal::new(e.mnemonic, reason)),
            Action::Simulate(s) => Verdict::Accept(Insn {
                word,
                mnemonic: e.mnemonic,
                op: Op::Simulate(s),
            }),
            Action::Step => Verdict::Accept(Insn {
                word,
                mnemonic: e.mnemonic,
                op: Op::Step,
            }),
        },
    }
}

// ---------------------------------------------------------------------------
// Operand fields (vol. 1, instruction formats).

/// `rd`, bits [4:0].
pub(crate) const fn rd(w: u32) -> usize {
    (w & 0x1f) as usize
}

/// `rj`, bits [9:5].
pub(crate) const fn rj(w: u32) -> usize {
    ((w >> 5) & 0x1f) as usize
}

/// Sign-extend the low `bits` bits of `v`.
const fn sext(v: u32, bits: u32) -> i64 {
    ((v << (32 - bits)) as i32 >> (32 - bits)) as i64
}

/// `offs16`, bits [25:10], signed (branches with two registers, `jirl`).
pub(crate) const fn offs16(w: u32) -> i64 {
    sext((w >> 10) & 0xffff, 16)
}

/// `offs21`: low 16 bits in [25:10], high 5 bits in [4:0] (`beqz`, `bnez`).
pub(crate) const fn offs21(w: u32) -> i64 {
    sext(((w & 0x1f) << 16) | ((w >> 10) & 0xffff), 21)
}

/// `offs26`: low 16 bits in [25:10], high 10 bits in [9:0] (`b`, `bl`).
pub(crate) const fn offs26(w: u32) -> i64 {
    sext(((w & 0x3ff) << 16) | ((w >> 10) & 0xffff), 26)
}

/// `si20`, bits [24:5], signed (`pcaddi`, `pcalau12i`, `pcaddu12i`, `pcaddu18i`).
pub(crate) const fn si20(w: u32) -> i64 {
    sext((w >> 5) & 0xf_ffff, 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn all_rows() -> Vec<(usize, &'static Entry)> {
        TABLES
            .iter()
            .enumerate()
            .flat_map(|(t, rows)| rows.iter().map(move |e| (t, e)))
            .collect()
    }

    fn overlaps(a: &Entry, b: &Entry) -> bool {
        (a.bits ^ b.bits) & a.mask & b.mask == 0
    }

    /// Overlaps we mean: the specific row comes first and wins.
    const ALLOWED_OVERLAPS: &[(&str, &str)] = &[
        ("csrrd", "csrxchg"),
        ("csrwr", "csrxchg"),
        ("gcsrrd", "gcsrxchg"),
        ("gcsrwr", "gcsrxchg"),
    ];

    #[test]
    fn rows_overlap_only_where_intended_and_specific_rows_come_first() {
        let rows = all_rows();
        let mut seen = Vec::new();
        for (i, (_, a)) in rows.iter().enumerate() {
            for (_, b) in &rows[i + 1..] {
                if overlaps(a, b) {
                    seen.push((a.mnemonic, b.mnemonic));
                    // The earlier row is strictly more specific.
                    assert!(a.mask & b.mask == b.mask && a.mask != b.mask);
                }
            }
        }
        assert_eq!(seen, ALLOWED_OVERLAPS);
    }

    #[test]
    fn every_row_decodes_its_own_pattern_to_itself() {
        for (_, e) in all_rows() {
            // With all operand bits clear, a row may only lose to the more
            // specific row it is meant to yield to.
            let got = lookup(e.bits).unwrap().mnemonic;
            assert!(
                got == e.mnemonic || ALLOWED_OVERLAPS.contains(&(got, e.mnemonic)),
                "row {:#010x} decodes as {got}",
                e.bits
            );
            // With every operand bit set, no row shadows another.
            let full = e.bits | !e.mask;
            assert_eq!(
                lookup(full).map(|r| r.mnemonic),
                Some(e.mnemonic),
                "{full:#010x}"
            );
        }
    }

    #[test]
    fn the_index_finds_the_same_row_as_a_linear_scan() {
        let rows = all_rows();
        let linear = |w: u32| rows.iter().map(|&(_, e)| e).find(|e| w & e.mask == e.bits);
        let mut x: u32 = 0x1234_5678;
        for _ in 0..200_000 {
            // xorshift32
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            assert_eq!(
                lookup(x).map(|e| e.mnemonic),
                linear(x).map(|e| e.mnemonic),
                "{x:#010x}"
            );
        }
    }

    #[test]
    fn operand_fields_sign_extend() {
        // beq $a0, $a1, -4: offs16 = 0xffff at [25:10], rj = 4, rd = 5.
        let w = 0x5800_0000 | (0xffff << 10) | (4 << 5) | 5;
        assert_eq!((offs16(w), rj(w), rd(w)), (-1, 4, 5));
        // bnez with offs21 = 0x10_0000 (most negative): high five bits 0x10.
        let w = 0x4400_0000 | 0x10;
        assert_eq!(offs21(w), -(1 << 20));
        // b with offs26 = 0x1ff_ffff (largest positive).
        let w = 0x5000_0000 | (0xffff << 10) | 0x1ff;
        assert_eq!(offs26(w), (1 << 25) - 1);
        // pcaddi with si20 = 0x8_0000 (most negative).
        let w = 0x1800_0000 | (0x8_0000 << 5);
        assert_eq!(si20(w), -(1 << 19));
    }
}
