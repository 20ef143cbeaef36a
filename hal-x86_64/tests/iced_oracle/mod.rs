//! The one `iced-x86` differential harness for probe-hal-x86_64's decoder.
//!
//! `iced-x86` is a dev-dependency used as an independent oracle (it needs
//! `alloc`/`std`, which only tests may use). Every byte string is decoded by
//! iced and by our backend (`insn_len`, and `decode` in kernel and in user
//! mode); each disagreement is filed under a [`Kind`] and an encoding
//! [`Class`] (form, opcode map, opcode, mandatory prefix, W, L) computed from
//! the raw bytes by a scanner written here, independently of our decoder.
//!
//! Kinds split in two:
//! - **safe**, listed with counts: we refuse (cannot decode) what iced
//!   accepts, or we accept what iced says raises #UD (the copy in a slot
//!   faults at once and the engine puts rip back at the probe address);
//! - **unsafe**, which must never happen: we accept an instruction iced
//!   also accepts and disagree on its length (the boundary walk or the slot
//!   copy would be wrong), on its control flow (we would step a branch, call,
//!   return, interrupt or system call out of line as an ordinary
//!   instruction, or simulate it as something it is not), or on its
//!   rip-relative operand (a copy that reads the wrong address).
//!
//! The generators ([`Family`]) cover uniform random bytes, prefix soups in
//! front of every legacy map, VEX (c5 and c4 with every map field), EVEX,
//! XOP and 3DNow!, with ModRM bytes biased towards rip-relative and SIB forms.
//! [`Family::VexOperands`] and [`Family::EvexOperands`] fix the opcode and
//! vary the operands, for the per-map checks of the coverage work.
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::collections::HashMap;
use std::fmt::Write as _;
use std::string::String;
use std::vec::Vec;

use iced_x86::{
    Code, ConditionCode, Decoder, DecoderOptions, FlowControl, Instruction, MemorySize, Mnemonic,
    OpKind, Register,
};
use probe_hal::{Arch, ExecMode, Handling, ProbeErrorKind, Registers};
use probe_hal_x86_64::{Emulation, LoopKind, MemOperand, Op, PtRegs, X86_64};

/// Where the decoded instructions pretend to sit (a kernel text address, so
/// targets and rip-relative addresses wrap like the CPU's).
pub const ADDR: u64 = 0xffff_ffff_8123_4000;

/// Bytes handed to both decoders: the longest x86 instruction.
pub const WINDOW: usize = 15;

// --- a fast deterministic PRNG ---------------------------------------------

/// wyrand: one multiply per 64 bits, good enough to spread test inputs.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence depends only on `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x2545_f491_4f6c_dd1d)
    }
    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        (t as u64) ^ ((t >> 64) as u64)
    }
    /// A random byte.
    #[inline]
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
    /// A number in `0..n`.
    #[inline]
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
    /// True with probability `num / den`.
    #[inline]
    pub fn chance(&mut self, num: u32, den: u32) -> bool {
        self.below(den) < num
    }
    /// One element of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u32) as usize]
    }
    /// Fill `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

// --- encoding classes (an independent raw scanner) --------------------------

/// How an instruction is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Form {
    /// Legacy opcode maps (one-byte, 0f, 0f38, 0f3a).
    Legacy,
    /// AMD 3DNow! (`0f 0f modrm … imm8`).
    D3Now,
    /// Two-byte VEX (c5).
    Vex2,
    /// Three-byte VEX (c4).
    Vex3,
    /// EVEX (62).
    Evex,
    /// AMD XOP (8f with map ≥ 8).
    Xop,
    /// The bytes end inside the prefixes or the escape.
    Truncated,
}

/// An encoding class: what decides how an instruction decodes, as far as
/// its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Class {
    /// Legacy, VEX, EVEX, ….
    pub form: Form,
    /// Opcode map: 0 one-byte, 1 `0f`, 2 `0f38`, 3 `0f3a`; VEX/EVEX/XOP: the
    /// map field as encoded.
    pub map: u8,
    /// The opcode byte within its map.
    pub opcode: u8,
    /// Mandatory prefix: 0 none, 1 `66`, 2 `f3`, 3 `f2` (legacy: the last of
    /// f2/f3, else 66; VEX/EVEX/XOP: the pp field).
    pub pp: u8,
    /// REX.W / VEX.W / EVEX.W.
    pub w: bool,
    /// Vector length (VEX.L, EVEX.L'L); 0 for legacy.
    pub l: u8,
    /// ModRM.mod == 3 (register form), when the form has a ModRM byte we can
    /// locate (VEX/EVEX/XOP and legacy 0f-maps); false otherwise.
    pub reg_form: bool,
}

impl Class {
    /// `form map:opcode pp W L`, e.g. `Vex3 0f:93 pp=f2 W1 L0 reg`.
    pub fn describe(&self) -> String {
        let map = match (self.form, self.map) {
            (Form::Legacy, 0) => String::from("1byte"),
            (Form::Legacy | Form::D3Now, 1) => String::from("0f"),
            (Form::Legacy, 2) => String::from("0f38"),
            (Form::Legacy, 3) => String::from("0f3a"),
            (Form::D3Now, _) => String::from("0f0f"),
            (Form::Vex2 | Form::Vex3 | Form::Evex, 1) => String::from("0f"),
            (Form::Vex3 | Form::Evex, 2) => String::from("0f38"),
            (Form::Vex3 | Form::Evex, 3) => String::from("0f3a"),
            (_, m) => format!("map{m}"),
        };
        let pp = ["--", "66", "f3", "f2"][self.pp as usize & 3];
        format!(
            "{:?} {}:{:02x} pp={} W{} L{}{}",
            self.form,
            map,
            self.opcode,
            pp,
            self.w as u8,
            self.l,
            if self.reg_form { " reg" } else { "" }
        )
    }
}

fn is_legacy_prefix(b: u8) -> bool {
    matches!(
        b,
        0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3
    )
}

/// The class of the instruction at `bytes[0]`, from the raw bytes alone.
pub fn classify(bytes: &[u8]) -> Class {
    let mut class = Class {
        form: Form::Truncated,
        map: 0,
        opcode: 0,
        pp: 0,
        w: false,
        l: 0,
        reg_form: false,
    };
    let at = |i: usize| bytes.get(i).copied();
    let mut i = 0;
    let mut pp = 0u8;
    let mut rex_w = false;
    // Legacy prefixes, then REX (only a REX right before the opcode counts).
    loop {
        let Some(b) = at(i) else { return class };
        if is_legacy_prefix(b) {
            match b {
                0x66 if pp == 0 => pp = 1,
                0xf3 => pp = 2,
                0xf2 => pp = 3,
                _ => {}
            }
            rex_w = false;
        } else if (0x40..=0x4f).contains(&b) {
            rex_w = b & 8 != 0;
        } else {
            break;
        }
        i += 1;
    }
    let first = bytes[i];
    let modrm_reg_form = |j: usize| at(j).is_some_and(|m| m >> 6 == 3);
    match first {
        0xc5 => {
            let Some(p) = at(i + 1) else { return class };
            class.form = Form::Vex2;
            class.map = 1;
            class.pp = p & 3;
            class.l = (p >> 2) & 1;
            class.opcode = at(i + 2).unwrap_or(0);
            class.reg_form = modrm_reg_form(i + 3);
        }
        0xc4 | 0x8f => {
            let (Some(p0), Some(p1)) = (at(i + 1), at(i + 2)) else {
                return class;
            };
            if first == 0x8f && p0 & 0x1f < 8 {
                // pop r/m (8f /0), not XOP.
                class.form = Form::Legacy;
                class.opcode = first;
                class.w = rex_w;
                class.pp = pp;
                return class;
            }
            class.form = if first == 0xc4 { Form::Vex3 } else { Form::Xop };
            class.map = p0 & 0x1f;
            class.w = p1 & 0x80 != 0;
            class.pp = p1 & 3;
            class.l = (p1 >> 2) & 1;
            class.opcode = at(i + 3).unwrap_or(0);
            class.reg_form = modrm_reg_form(i + 4);
        }
        0x62 => {
            let (Some(p0), Some(p1), Some(p2)) = (at(i + 1), at(i + 2), at(i + 3)) else {
                return class;
            };
            class.form = Form::Evex;
            class.map = p0 & 7;
            class.w = p1 & 0x80 != 0;
            class.pp = p1 & 3;
            class.l = (p2 >> 5) & 3;
            class.opcode = at(i + 4).unwrap_or(0);
            class.reg_form = modrm_reg_form(i + 5);
        }
        0x0f => {
            let Some(second) = at(i + 1) else {
                return class;
            };
            class.w = rex_w;
            class.pp = pp;
            match second {
                0x38 | 0x3a => {
                    let Some(op) = at(i + 2) else { return class };
                    class.form = Form::Legacy;
                    class.map = if second == 0x38 { 2 } else { 3 };
                    class.opcode = op;
                    class.reg_form = modrm_reg_form(i + 3);
                }
                0x0f => {
                    class.form = Form::D3Now;
                    class.map = 1;
                    class.opcode = 0x0f;
                    class.reg_form = modrm_reg_form(i + 2);
                }
                op => {
                    class.form = Form::Legacy;
                    class.map = 1;
                    class.opcode = op;
                    class.reg_form = modrm_reg_form(i + 2);
                }
            }
        }
        op => {
            class.form = Form::Legacy;
            class.opcode = op;
            class.w = rex_w;
            class.pp = pp;
        }
    }
    class
}

// --- the two decoders' answers ---------------------------------------------

/// iced's view of the bytes.
pub struct IcedView {
    /// Decoded with iced's default options (the CPU's validity checks).
    pub insn: Instruction,
    /// Offset and size of the displacement, from iced's constant offsets.
    pub disp_offset: usize,
    /// Size of the displacement in bytes (0: none).
    pub disp_size: usize,
}

impl IcedView {
    /// Whether iced accepts the bytes as a valid instruction.
    pub fn valid(&self) -> bool {
        !self.insn.is_invalid()
    }
}

/// Decode `bytes` with iced at [`ADDR`] with `options`.
pub fn iced(bytes: &[u8], options: u32) -> IcedView {
    let mut d = Decoder::with_ip(64, bytes, ADDR, options);
    let insn = d.decode();
    let offsets = d.get_constant_offsets(&insn);
    IcedView {
        insn,
        disp_offset: offsets.displacement_offset(),
        disp_size: offsets.displacement_size(),
    }
}

/// Disagreement kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Safe: iced decodes a valid instruction, we cannot decode it at all
    /// (`insn_len` is `None`): it is refused and the boundary walk stops.
    Gap,
    /// Safe: `insn_len` knows the length but `decode` calls it undecodable
    /// (refused; the walk goes on).
    GapDecodeOnly,
    /// Safe: we accept bytes iced says raise #UD, with the length iced finds
    /// when told to skip its validity checks. A copy in a slot faults at
    /// once, like the original.
    AcceptedUd,
    /// Listed for review: we accept bytes iced says raise #UD and whose
    /// length iced sees differently (or not at all) without its validity
    /// checks. Real code cannot contain them (they fault), so only a walk
    /// over data would be misled.
    AcceptedUdOtherLength,
    /// UNSAFE: we accept, iced accepts, the lengths differ.
    Length,
    /// UNSAFE: we step out of line what iced says changes the flow of
    /// control, or simulate something other than what iced decoded.
    Flow,
    /// UNSAFE: we disagree with iced on the rip-relative operand of a
    /// stepped instruction (its presence, displacement, place or size).
    RipRelative,
}

impl Kind {
    /// Whether this kind may never occur.
    pub fn is_unsafe(self) -> bool {
        matches!(self, Kind::Length | Kind::Flow | Kind::RipRelative)
    }
    /// Every kind, in report order.
    pub const ALL: [Kind; 7] = [
        Kind::Length,
        Kind::Flow,
        Kind::RipRelative,
        Kind::Gap,
        Kind::GapDecodeOnly,
        Kind::AcceptedUd,
        Kind::AcceptedUdOtherLength,
    ];
}

/// The verdict on one byte string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `None`: no disagreement.
    pub kind: Option<Kind>,
    /// Whether iced accepts the bytes.
    pub iced_valid: bool,
    /// Whether our `insn_len` accepts them.
    pub we_accept: bool,
    /// Whether our `decode` stepped them (kernel mode) with a rip fix-up.
    pub rip_fixup: bool,
    /// Whether our `decode` simulated them as `call`/`jmp` through memory,
    /// with iced's effective address.
    pub mem_branch: bool,
    /// What was wrong, for the report.
    pub detail: String,
}

fn mismatch(kind: Kind, detail: String) -> Verdict {
    Verdict {
        kind: Some(kind),
        iced_valid: true,
        we_accept: true,
        rip_fixup: false,
        mem_branch: false,
        detail,
    }
}

fn target(next: u64, rel: i64) -> u64 {
    next.wrapping_add(rel as u64)
}

/// Whether our emulation `e` is the instruction iced decoded (kind, target,
/// condition, registers). `None` if it is, else what differs.
fn emulation_mismatch(e: Emulation, i: &Instruction, len: usize) -> Option<String> {
    let next = ADDR.wrapping_add(len as u64);
    let flow = i.flow_control();
    let m = i.mnemonic();
    let ok = match e {
        Emulation::Jmp { rel } => {
            flow == FlowControl::UnconditionalBranch
                && m == Mnemonic::Jmp
                && i.near_branch_target() == target(next, rel.into())
        }
        Emulation::Call { rel } => {
            flow == FlowControl::Call
                && m == Mnemonic::Call
                && i.near_branch_target() == target(next, rel.into())
        }
        Emulation::Jcc { cond, rel } => {
            flow == FlowControl::ConditionalBranch
                && i.condition_code() as u8 == cond + 1
                && i.near_branch_target() == target(next, rel.into())
        }
        Emulation::Loop { kind, rel, ecx } => {
            // iced gives loope/loopne the condition they test (ZF).
            let (names, cc) = match kind {
                LoopKind::Loopne => ([Mnemonic::Loopne, Mnemonic::Loopne], ConditionCode::ne),
                LoopKind::Loope => ([Mnemonic::Loope, Mnemonic::Loope], ConditionCode::e),
                LoopKind::Loop => ([Mnemonic::Loop, Mnemonic::Loop], ConditionCode::None),
                LoopKind::Jrcxz => ([Mnemonic::Jrcxz, Mnemonic::Jecxz], ConditionCode::None),
            };
            let uses_ecx = m == Mnemonic::Jecxz || format!("{:?}", i.code()).ends_with("_ECX");
            flow == FlowControl::ConditionalBranch
                && names.contains(&m)
                && uses_ecx == ecx
                && i.condition_code() == cc
                && i.near_branch_target() == target(next, rel.into())
        }
        Emulation::Ret { release } => {
            let imm = if i.op_count() == 1 {
                i.immediate16()
            } else {
                0
            };
            flow == FlowControl::Return && m == Mnemonic::Ret && imm == release
        }
        Emulation::JmpReg { reg } | Emulation::CallReg { reg } => {
            let want = if matches!(e, Emulation::JmpReg { .. }) {
                FlowControl::IndirectBranch
            } else {
                FlowControl::IndirectCall
            };
            let r = i.op0_register();
            flow == want && i.op_count() == 1 && r.is_gpr64() && r.number() == usize::from(reg)
        }
        Emulation::JmpMem { mem } | Emulation::CallMem { mem } => {
            let (want_flow, want_m) = if matches!(e, Emulation::JmpMem { .. }) {
                (FlowControl::IndirectBranch, Mnemonic::Jmp)
            } else {
                (FlowControl::IndirectCall, Mnemonic::Call)
            };
            flow == want_flow
                && m == want_m
                && i.op_count() == 1
                && i.op0_kind() == OpKind::Memory
                && i.memory_size() == MemorySize::QwordOffset
                && !matches!(i.segment_prefix(), Register::FS | Register::GS)
                && same_address(&mem, i, next)
        }
        Emulation::Cli => flow == FlowControl::Next && m == Mnemonic::Cli,
        Emulation::Sti => flow == FlowControl::Next && m == Mnemonic::Sti,
        Emulation::Pushf { word } => {
            flow == FlowControl::Next
                && matches!(i.code(), Code::Pushfw | Code::Pushfq)
                && (i.code() == Code::Pushfw) == word
        }
        Emulation::Popf { word } => {
            flow == FlowControl::Next
                && matches!(i.code(), Code::Popfw | Code::Popfq)
                && (i.code() == Code::Popfw) == word
        }
        // A new emulation the harness does not know yet: make it visible.
        #[allow(unreachable_patterns)]
        _ => false,
    };
    (!ok).then(|| format!("we emulate {e:?}; iced: {m:?} ({:?}, {flow:?})", i.code()))
}

/// Register values that make every term of an address matter: high
/// halves set (so a missing 32-bit truncation shows), different per
/// register (so a wrong register shows), one set near the top of the
/// address space (so wrapping shows).
const REGISTER_SETS: [[u64; 16]; 3] = {
    let mut sets = [[0u64; 16]; 3];
    let mut n = 0;
    while n < 16 {
        let k = n as u64;
        sets[0][n] = 0x0101_0101_0000_1000 * (k + 1) + k * 0x10;
        sets[1][n] = 0xffff_ffff_ffff_f000 - k * 0x1_0000_0111;
        sets[2][n] = (k + 3).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        n += 1;
    }
    sets
};

/// Whether our effective address of `mem` (the instruction ending at
/// `next`) is iced's for every register set.
fn same_address(mem: &MemOperand, i: &Instruction, next: u64) -> bool {
    REGISTER_SETS.iter().all(|set| {
        let mut regs = PtRegs::zeroed();
        for (n, v) in set.iter().enumerate() {
            regs.set_gpr(n, *v as usize);
        }
        let ours = mem.address(&regs, next as usize) as u64;
        let iced = i.virtual_address(0, 0, |r, _, _| {
            if matches!(r, Register::ES | Register::CS | Register::SS | Register::DS) {
                Some(0)
            } else if r.is_gpr64() {
                Some(set[r.number()])
            } else if r.is_gpr32() {
                Some(set[r.number()] & 0xffff_ffff)
            } else {
                None
            }
        });
        iced == Some(ours)
    })
}

/// Compare our decoder with iced on `bytes` (at most [`WINDOW`] bytes are
/// looked at).
pub fn compare(bytes: &[u8]) -> Verdict {
    let bytes = &bytes[..bytes.len().min(WINDOW)];
    let ours_len = X86_64::insn_len(bytes);
    let kernel = X86_64::decode(ADDR as usize, bytes, ExecMode::Kernel);
    let user = X86_64::decode(ADDR as usize, bytes, ExecMode::User);
    let we_decode = kernel.is_ok() || user.is_ok();
    let we_accept = ours_len.is_some() || we_decode;
    let ic = iced(bytes, DecoderOptions::NONE);
    let mut v = Verdict {
        kind: None,
        iced_valid: ic.valid(),
        we_accept,
        rip_fixup: false,
        mem_branch: false,
        detail: String::new(),
    };
    if !ic.valid() {
        if we_accept {
            // Does iced see the same length when it skips its checks?
            let loose = iced(bytes, DecoderOptions::NO_INVALID_CHECK);
            let lens = [
                ours_len,
                kernel.as_ref().ok().map(|d| d.len),
                user.as_ref().ok().map(|d| d.len),
            ];
            let same =
                !loose.insn.is_invalid() && lens.iter().flatten().all(|&l| l == loose.insn.len());
            v.kind = Some(if same {
                Kind::AcceptedUd
            } else {
                Kind::AcceptedUdOtherLength
            });
            v.detail = format!(
                "we: len {ours_len:?}; iced: invalid, without checks {:?} len {}",
                loose.insn.mnemonic(),
                loose.insn.len()
            );
        }
        return v;
    }
    let i = &ic.insn;
    let len = i.len();
    // Lengths: whatever we accept must have iced's length.
    if let Some(n) = ours_len {
        if n != len {
            return mismatch(
                Kind::Length,
                format!("insn_len {n}, iced {len} ({:?})", i.mnemonic()),
            );
        }
    }
    for (mode, d) in [("kernel", &kernel), ("user", &user)] {
        if let Ok(d) = d {
            if d.len != len || d.insn.length() != len {
                return mismatch(
                    Kind::Length,
                    format!(
                        "decode({mode}) len {}, iced {len} ({:?})",
                        d.len,
                        i.mnemonic()
                    ),
                );
            }
        }
    }
    if ours_len.is_none() && !we_decode {
        let undecodable = matches!(kernel, Err(ref e) if e.kind() == ProbeErrorKind::Undecodable);
        v.kind = Some(if undecodable {
            Kind::Gap
        } else {
            Kind::GapDecodeOnly
        });
        v.detail = format!("iced: {:?} len {len}", i.mnemonic());
        if !undecodable {
            // Refused by policy although insn_len cannot decode it: list it.
            v.detail.push_str(" (refused with a reason, insn_len None)");
        }
        return v;
    }
    if ours_len.is_some() && !we_decode {
        if matches!(kernel, Err(ref e) if e.kind() == ProbeErrorKind::Undecodable) {
            v.kind = Some(Kind::GapDecodeOnly);
            v.detail = format!("iced: {:?} len {len}", i.mnemonic());
        }
        return v; // refused by policy: no disagreement
    }
    if ours_len.is_none() {
        return mismatch(
            Kind::Length,
            format!("decode accepts but insn_len is None ({:?})", i.mnemonic()),
        );
    }
    // Control flow and rip-relative operands, in both modes.
    for (mode, d) in [("kernel", &kernel), ("user", &user)] {
        let Ok(d) = d else { continue };
        match (d.handling, d.insn.op()) {
            (Handling::StepOutOfLine { boostable }, Op::Step(step)) => {
                if step.boostable != boostable {
                    return mismatch(Kind::Flow, format!("{mode}: boostable differs"));
                }
                if i.flow_control() != FlowControl::Next {
                    return mismatch(
                        Kind::Flow,
                        format!(
                            "{mode}: stepped out of line; iced: {:?} is {:?}",
                            i.mnemonic(),
                            i.flow_control()
                        ),
                    );
                }
                let iced_rip = i.is_ip_rel_memory_operand();
                match step.rip_relative {
                    None if iced_rip => {
                        return mismatch(
                            Kind::RipRelative,
                            format!(
                                "{mode}: no rip fix-up; iced: {:?} is rip-relative",
                                i.mnemonic()
                            ),
                        )
                    }
                    Some(_) if !iced_rip => {
                        return mismatch(
                            Kind::RipRelative,
                            format!(
                                "{mode}: rip fix-up; iced: {:?} is not rip-relative",
                                i.mnemonic()
                            ),
                        )
                    }
                    None => {}
                    Some(r) => {
                        let eip = i.memory_base() == Register::EIP;
                        let next = ADDR.wrapping_add(len as u64);
                        let mut ours = target(next, r.disp.into());
                        if r.eip {
                            ours &= 0xffff_ffff;
                        }
                        let good = r.eip == eip
                            && usize::from(r.disp_offset) == ic.disp_offset
                            && ic.disp_size == 4
                            && ours == i.ip_rel_memory_address();
                        if !good {
                            return mismatch(
                                Kind::RipRelative,
                                format!(
                                    "{mode}: ours {r:?} -> {ours:#x}; iced: {:?} disp at {} size {} -> {:#x}, base {:?}",
                                    i.mnemonic(),
                                    ic.disp_offset,
                                    ic.disp_size,
                                    i.ip_rel_memory_address(),
                                    i.memory_base()
                                ),
                            );
                        }
                        v.rip_fixup = true;
                    }
                }
            }
            (Handling::Simulate, Op::Emulate(e)) => {
                if let Some(detail) = emulation_mismatch(e, i, len) {
                    return mismatch(Kind::Flow, format!("{mode}: {detail}"));
                }
                if matches!(e, Emulation::CallMem { .. } | Emulation::JmpMem { .. }) {
                    v.mem_branch = true;
                }
            }
            (h, op) => {
                return mismatch(Kind::Flow, format!("{mode}: handling {h:?} with {op:?}"));
            }
        }
    }
    v
}

// --- generators --------------------------------------------------------------

/// The shape of a generated byte string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// 15 uniformly random bytes.
    Uniform,
    /// 0-6 legacy prefixes and a REX in random order, then a legacy-map
    /// opcode (one-byte, 0f, 0f38, 0f3a, 3DNow!) and biased operands.
    PrefixSoup,
    /// c5 with random payload, maybe after segment/67 (or forbidden) prefixes.
    Vex2,
    /// c4 with every map field (mostly 1-3), random W/vvvv/L/pp.
    Vex3,
    /// 62 with every map field (mostly 1-3, 5, 6), random payload.
    Evex,
    /// 8f XOP (maps 8-10 mostly).
    Xop,
    /// VEX opmask opcodes (0f 41-4b, 90-93, 98-99; 0f3a 30-33) with random
    /// pp/W/L/vvvv and operands.
    Opmask,
    /// A fixed VEX opcode (`c5` when `map` is 0, else `c4` with map field
    /// `map`) with random pp, W, L, registers and operands.
    VexOperands {
        /// 0: two-byte VEX; 1-31: the c4 map field; [`ANY_MAP`]: a random
        /// one of 0-31.
        map: u8,
        /// The opcode byte.
        opcode: u8,
    },
    /// A fixed EVEX opcode with random payload and operands.
    EvexOperands {
        /// The EVEX map field (0-7); [`ANY_MAP`]: a random one.
        map: u8,
        /// The opcode byte.
        opcode: u8,
    },
}

/// The `map` of [`Family::VexOperands`] and [`Family::EvexOperands`] that
/// stands for a random map field.
pub const ANY_MAP: u8 = 0xff;

/// Families drawn by [`Family::mixed`], with weights.
const MIX: &[(Family, u32)] = &[
    (Family::Uniform, 3),
    (Family::PrefixSoup, 4),
    (Family::Vex2, 2),
    (Family::Vex3, 3),
    (Family::Evex, 3),
    (Family::Xop, 1),
    (Family::Opmask, 1),
];

impl Family {
    /// A family drawn with the weights of the mixed sweep.
    pub fn mixed(rng: &mut Rng) -> Family {
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        let mut r = rng.below(total);
        for (f, w) in MIX {
            if r < *w {
                return *f;
            }
            r -= w;
        }
        unreachable!()
    }
}

/// ModRM, SIB, displacement and immediate bytes, biased towards the forms
/// that matter (rip-relative, SIB, register), then random filler.
fn operands(rng: &mut Rng, out: &mut Vec<u8>) {
    let reg = rng.byte() & 0x38;
    let modrm = match rng.below(8) {
        0 | 1 => reg | 0x05,                             // [rip + disp32]
        2 | 3 => 0xc0 | reg | (rng.byte() & 7),          // register
        4 => (rng.byte() & 0xc0).min(0x80) | reg | 0x04, // SIB
        _ => rng.byte(),
    };
    out.push(modrm);
    let mut tail = [0u8; 12];
    rng.fill(&mut tail);
    if rng.chance(1, 4) {
        // Small displacements and immediates are common in real code.
        for b in &mut tail[1..5] {
            *b &= 0x0f;
        }
    }
    out.extend_from_slice(&tail);
}

const SEGMENT_OR_ASIZE: &[u8] = &[0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x67];
const ALL_PREFIXES: &[u8] = &[
    0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3,
];

/// Optional prefixes before a VEX/EVEX/XOP escape: mostly none, sometimes
/// the allowed segment/67 ones, a forbidden 66/f2/f3/f0/REX, or a short soup
/// of REX and legacy prefixes (a REX that a legacy prefix follows is
/// ignored, so it may stand before VEX).
fn vex_prefixes(rng: &mut Rng, out: &mut Vec<u8>) {
    match rng.below(10) {
        0 => out.push(rng.pick(SEGMENT_OR_ASIZE)),
        1 => out.push(rng.pick(&[0x66, 0xf2, 0xf3, 0xf0, 0x40, 0x48, 0x41])),
        2 => {
            for _ in 0..1 + rng.below(3) {
                if rng.chance(1, 2) {
                    out.push(0x40 | (rng.byte() & 0xf));
                } else {
                    out.push(rng.pick(ALL_PREFIXES));
                }
            }
            if rng.chance(1, 2) {
                out.push(rng.pick(SEGMENT_OR_ASIZE));
            }
        }
        _ => {}
    }
}

/// A VEX payload byte `W vvvv L pp` with a mostly-valid vvvv.
fn wvvvvlpp(rng: &mut Rng) -> u8 {
    let mut b = rng.byte();
    if rng.chance(1, 2) {
        b |= 0x78; // vvvv = 1111 (no register)
    }
    b
}

/// Append one string of `family` to `out` (cleared first); at least
/// [`WINDOW`] bytes.
pub fn generate(rng: &mut Rng, family: Family, out: &mut Vec<u8>) {
    out.clear();
    match family {
        Family::Uniform => {
            let mut b = [0u8; WINDOW];
            rng.fill(&mut b);
            out.extend_from_slice(&b);
        }
        Family::PrefixSoup => {
            let n = rng.below(7);
            for _ in 0..n {
                if rng.chance(1, 5) {
                    out.push(0x40 | (rng.byte() & 0xf));
                } else {
                    out.push(rng.pick(ALL_PREFIXES));
                }
            }
            if rng.chance(1, 2) {
                out.push(0x40 | (rng.byte() & 0xf));
            }
            match rng.below(10) {
                0..=3 => out.push(rng.byte()),
                4..=6 => out.extend_from_slice(&[0x0f, rng.byte()]),
                7 => out.extend_from_slice(&[0x0f, 0x38, rng.byte()]),
                8 => out.extend_from_slice(&[0x0f, 0x3a, rng.byte()]),
                _ => out.extend_from_slice(&[0x0f, 0x0f]),
            }
            operands(rng, out);
        }
        Family::Vex2 => {
            vex_prefixes(rng, out);
            out.extend_from_slice(&[0xc5, wvvvvlpp(rng), rng.byte()]);
            operands(rng, out);
        }
        Family::Vex3 => {
            vex_prefixes(rng, out);
            let map = if rng.chance(7, 8) {
                1 + rng.below(3) as u8
            } else {
                rng.byte() & 0x1f
            };
            let rxb = rng.byte() & 0xe0;
            out.extend_from_slice(&[0xc4, rxb | map, wvvvvlpp(rng), rng.byte()]);
            operands(rng, out);
        }
        Family::Evex => {
            vex_prefixes(rng, out);
            let map = if rng.chance(7, 8) {
                rng.pick(&[1, 2, 3, 5, 6])
            } else {
                rng.byte() & 7
            };
            let p0 = (rng.byte() & 0xf0) | map | if rng.chance(1, 8) { 0x08 } else { 0 };
            let mut p1 = wvvvvlpp(rng);
            if rng.chance(7, 8) {
                p1 |= 0x04; // the fixed 1 bit
            }
            out.extend_from_slice(&[0x62, p0, p1, rng.byte(), rng.byte()]);
            operands(rng, out);
        }
        Family::Xop => {
            vex_prefixes(rng, out);
            let map = if rng.chance(7, 8) {
                8 + rng.below(3) as u8
            } else {
                rng.byte() & 0x1f
            };
            let rxb = rng.byte() & 0xe0;
            out.extend_from_slice(&[0x8f, rxb | map, wvvvvlpp(rng), rng.byte()]);
            operands(rng, out);
        }
        Family::Opmask => {
            vex_prefixes(rng, out);
            let (map, opcode) = if rng.chance(1, 5) {
                (3, 0x30 + rng.below(4) as u8)
            } else {
                (
                    1,
                    rng.pick(&[
                        0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x90,
                        0x91, 0x92, 0x93, 0x98, 0x99,
                    ]),
                )
            };
            vex_opcode(rng, map, opcode, out);
        }
        Family::VexOperands { map, opcode } => {
            vex_prefixes(rng, out);
            let map = if map == ANY_MAP {
                rng.byte() & 0x1f
            } else {
                map
            };
            vex_opcode(rng, map, opcode, out);
        }
        Family::EvexOperands { map, opcode } => {
            vex_prefixes(rng, out);
            let map = if map == ANY_MAP { rng.byte() & 7 } else { map };
            let p0 = (rng.byte() & 0xf8) | (map & 7);
            let mut p1 = wvvvvlpp(rng);
            if rng.chance(7, 8) {
                p1 |= 0x04;
            }
            out.extend_from_slice(&[0x62, p0, p1, rng.byte(), opcode]);
            operands(rng, out);
        }
    }
    while out.len() < WINDOW {
        out.push(rng.byte());
    }
}

/// A VEX instruction with opcode `opcode` in map `map` (0: c5, which is map
/// 1; 1-31: c4 with that map field), random pp/W/L/vvvv and operands.
fn vex_opcode(rng: &mut Rng, map: u8, opcode: u8, out: &mut Vec<u8>) {
    if map == 0 || (map == 1 && rng.chance(1, 3)) {
        out.extend_from_slice(&[0xc5, wvvvvlpp(rng), opcode]);
    } else {
        let rxb = if rng.chance(1, 2) {
            0xe0
        } else {
            rng.byte() & 0xe0
        };
        out.extend_from_slice(&[0xc4, rxb | (map & 0x1f), wvvvvlpp(rng), opcode]);
    }
    operands(rng, out);
}

// --- the tally ----------------------------------------------------------------

/// Counts of one (kind, class).
#[derive(Debug, Clone)]
pub struct Entry {
    /// Strings in this kind and class.
    pub count: u64,
    /// The first one seen, as a reproducer.
    pub example: Vec<u8>,
}

/// What a sweep found.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Strings checked.
    pub strings: u64,
    /// Strings iced accepts.
    pub iced_valid: u64,
    /// Strings our `insn_len` or `decode` accepts.
    pub we_accept: u64,
    /// Strings both accept.
    pub both: u64,
    /// Stepped instructions with a rip fix-up that agree with iced.
    pub rip_fixups: u64,
    /// `call`/`jmp` through memory simulated with iced's address.
    pub mem_branches: u64,
    /// Disagreements by kind and class.
    pub classes: HashMap<(Kind, Class), Entry>,
}

impl Tally {
    /// Record the verdict on `bytes`.
    pub fn add(&mut self, bytes: &[u8], v: &Verdict) {
        self.strings += 1;
        self.iced_valid += u64::from(v.iced_valid);
        self.we_accept += u64::from(v.we_accept);
        self.both += u64::from(v.iced_valid && v.we_accept);
        self.rip_fixups += u64::from(v.rip_fixup);
        self.mem_branches += u64::from(v.mem_branch);
        if let Some(kind) = v.kind {
            let class = classify(bytes);
            self.classes
                .entry((kind, class))
                .and_modify(|e| e.count += 1)
                .or_insert_with(|| Entry {
                    count: 1,
                    example: bytes[..bytes.len().min(WINDOW)].to_vec(),
                });
        }
    }

    /// Fold `other` into `self`.
    pub fn merge(&mut self, other: Tally) {
        self.strings += other.strings;
        self.iced_valid += other.iced_valid;
        self.we_accept += other.we_accept;
        self.both += other.both;
        self.rip_fixups += other.rip_fixups;
        self.mem_branches += other.mem_branches;
        for (k, e) in other.classes {
            self.classes
                .entry(k)
                .and_modify(|mine| mine.count += e.count)
                .or_insert(e);
        }
    }

    /// Strings of `kind`.
    pub fn count(&self, kind: Kind) -> u64 {
        self.classes
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, e)| e.count)
            .sum()
    }

    /// Classes of `kind`.
    pub fn class_count(&self, kind: Kind) -> usize {
        self.classes.keys().filter(|(k, _)| *k == kind).count()
    }

    /// Strings in unsafe kinds.
    pub fn unsafe_count(&self) -> u64 {
        Kind::ALL
            .iter()
            .filter(|k| k.is_unsafe())
            .map(|&k| self.count(k))
            .sum()
    }

    /// Classes of `kind`, largest first.
    pub fn classes_of(&self, kind: Kind) -> Vec<(Class, &Entry)> {
        let mut v: Vec<_> = self
            .classes
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, c), e)| (*c, e))
            .collect();
        v.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));
        v
    }

    /// A report: totals, then per kind its classes (all of the unsafe ones,
    /// the `top` largest of the others) with a reproducer each.
    pub fn report(&self, top: usize) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} strings: iced accepts {}, we accept {}, both {}, rip fix-ups checked {}, \
             call/jmp [mem] addresses checked {}",
            self.strings,
            self.iced_valid,
            self.we_accept,
            self.both,
            self.rip_fixups,
            self.mem_branches
        );
        for kind in Kind::ALL {
            let classes = self.classes_of(kind);
            let _ = writeln!(
                s,
                "{:?}{}: {} strings in {} classes",
                kind,
                if kind.is_unsafe() {
                    " (UNSAFE, must be 0)"
                } else {
                    ""
                },
                self.count(kind),
                classes.len()
            );
            let shown = if kind.is_unsafe() { classes.len() } else { top };
            for (class, e) in classes.iter().take(shown) {
                let v = compare(&e.example);
                let _ = writeln!(
                    s,
                    "  {:>10}  {:<40} {}  {}",
                    e.count,
                    class.describe(),
                    hex(&e.example),
                    v.detail
                );
            }
            if classes.len() > shown {
                let rest: u64 = classes[shown..].iter().map(|(_, e)| e.count).sum();
                let _ = writeln!(
                    s,
                    "  … {} more classes, {} strings",
                    classes.len() - shown,
                    rest
                );
            }
        }
        s
    }
}

/// `bytes` as space-separated hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Check `n` strings drawn by `draw` (given the generator and a buffer),
/// split over `threads` threads with seeds derived from `seed`.
pub fn sweep<F>(n: u64, seed: u64, threads: usize, draw: F) -> Tally
where
    F: Fn(&mut Rng, &mut Vec<u8>) + Sync,
{
    let threads = threads.max(1) as u64;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let draw = &draw;
                let share = n / threads + u64::from(t < n % threads);
                scope.spawn(move || {
                    let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ t);
                    let mut tally = Tally::default();
                    let mut buf = Vec::with_capacity(64);
                    for _ in 0..share {
                        draw(&mut rng, &mut buf);
                        let v = compare(&buf);
                        tally.add(&buf, &v);
                    }
                    tally
                })
            })
            .collect();
        let mut total = Tally::default();
        for h in handles {
            total.merge(h.join().expect("sweep thread panicked"));
        }
        total
    })
}

/// The mixed sweep's draw: a family by weight, then a string of it.
pub fn mixed(rng: &mut Rng, buf: &mut Vec<u8>) {
    let f = Family::mixed(rng);
    generate(rng, f, buf);
}

/// Threads to use: the machine's parallelism, at most `cap`.
pub fn threads(cap: usize) -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(cap)
}
