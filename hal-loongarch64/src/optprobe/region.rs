//! Whether a site can be jump-optimised, after Linux's x86 `can_optimize`
//! (arch/x86/kernel/kprobes/opt.c), for loongarch64.
//!
//! The whole function is decoded from its start, in chunks read through the
//! engine's [`DataAccess`] (no allocation), in this order:
//! 1. walking from the start must land on the probe address (else
//!    [`SiteRule::NotInstructionBoundary`]: the function does not start on
//!    a word boundary);
//! 2. the region is the probed instruction alone (every instruction is one
//!    word, the jump is one word), inside the function
//!    ([`SiteRule::RegionPastFunction`]); it must be one the backend steps
//!    out of line ([`SiteRule::NotStepped`]): the branches, `jirl` and the
//!    pc-relative `pcaddi`, `pcaddu12i`, `pcalau12i`, `pcaddu18i` are
//!    simulated and refused here (nothing is relocated), and a refused or
//!    unknown word is refused too;
//! 3. every instruction of the function: none may have an exception-table
//!    entry ([`SiteRule::MayFault`]: the displaced copy would fault at a
//!    detour address no fix-up names, and a fix-up may jump back into the
//!    function); none may be an indirect jump ([`SiteRule::IndirectJump`]:
//!    `jirl $zero` other than `ret`, unless the instruction before is the
//!    `pcaddi`/`pcaddu12i`/`pcaddu18i`/`pcalau12i` of its base register, a
//!    pc-relative far jump whose target is checked as a direct one; the LBT
//!    `jiscr0`/`jiscr1`); and no direct branch (`b`, `bl`, the conditional
//!    branches, `bceqz`/`bcnez`, a pc-relative pair) may target an address
//!    strictly inside the region ([`SiteRule::JumpIntoRegion`]). Indirect
//!    *calls* (`jirl` with a link register) are allowed, as Linux allows
//!    `call *` on x86: they come back after themselves.
//!
//! With one-word regions and word-aligned branch targets, no branch can
//! land strictly inside a region and an indirect jump can only land on a
//! whole word: the last two rules are Linux's, kept as the engine's
//! contract states them (a function with a jump table stays a breakpoint
//! probe), and cost nothing where they cannot fire. A word no table knows
//! is [`SiteRule::Undecodable`].

use core::ops::Range;

use probe_hal::{DataAccess, ExecMode, FunctionText, OptRegion, SiteRule, MAX_OPT_REGION};

use crate::decode::{
    self, lookup, offs16, offs21, offs26, rd, rj, si20, Action, Op, Simulated, Verdict,
};

use super::JUMP_LEN;

/// What the scan needs to know about one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Falls through, leaves the function (`ret`, `ertn`), traps, or calls.
    Other,
    /// A direct branch or jump to this address.
    Direct(usize),
    /// A jump through a register.
    IndirectJump,
}

/// The pc-relative instruction just before an instruction: its destination
/// register and result.
pub(crate) type LastPcRel = Option<(usize, usize)>;

/// Control flow of the instruction `word` at `at`, given the pc-relative
/// instruction just before it; `None` when no table knows the word.
pub(crate) fn classify(at: usize, word: u32, last: LastPcRel) -> Option<(Control, LastPcRel)> {
    let rel = |offset: i64| at.wrapping_add_signed(offset as isize);
    let e = lookup(word)?;
    let out = match e.action {
        Action::Step => (Control::Other, None),
        Action::Refuse(_) => match e.mnemonic {
            "bceqz" | "bcnez" => (Control::Direct(rel(offs21(word) << 2)), None),
            "jiscr0" | "jiscr1" => (Control::IndirectJump, None),
            _ => (Control::Other, None),
        },
        Action::Simulate(s) => match s {
            Simulated::B | Simulated::Bl => (Control::Direct(rel(offs26(word) << 2)), None),
            Simulated::Beqz | Simulated::Bnez => (Control::Direct(rel(offs21(word) << 2)), None),
            Simulated::Beq
            | Simulated::Bne
            | Simulated::Blt
            | Simulated::Bge
            | Simulated::Bltu
            | Simulated::Bgeu => (Control::Direct(rel(offs16(word) << 2)), None),
            Simulated::Pcaddi => (Control::Other, Some((rd(word), rel(si20(word) << 2)))),
            Simulated::Pcaddu12i => (Control::Other, Some((rd(word), rel(si20(word) << 12)))),
            Simulated::Pcaddu18i => (Control::Other, Some((rd(word), rel(si20(word) << 18)))),
            Simulated::Pcalau12i => (
                Control::Other,
                Some((rd(word), rel(si20(word) << 12) & !0xfff)),
            ),
            Simulated::Jirl => {
                let (d, j, off) = (rd(word), rj(word), offs16(word) << 2);
                match last {
                    Some((base, value)) if base == j && j != 0 => (
                        Control::Direct(value.wrapping_add_signed(off as isize)),
                        None,
                    ),
                    _ if d != 0 => (Control::Other, None),
                    _ if j == crate::regs::RA && off == 0 => (Control::Other, None),
                    _ => (Control::IndirectJump, None),
                }
            }
        },
    };
    Some(out)
}

fn word(w: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(w.get(..4)?.try_into().ok()?))
}

/// Decide whether the probe at `addr` in `function` can be jump-optimised;
/// see the module documentation for the rules, in the order they are
/// checked.
pub(crate) fn analyze(
    addr: usize,
    function: Range<usize>,
    text: &dyn DataAccess,
    may_fault: &dyn Fn(usize) -> bool,
    mode: ExecMode,
) -> Result<OptRegion, SiteRule> {
    if function.is_empty() || !function.contains(&addr) {
        return Err(SiteRule::FunctionSizeUnknown);
    }
    if function.end - addr < JUMP_LEN {
        return Err(SiteRule::RegionPastFunction);
    }
    let mut t = FunctionText::new(text, function.end, 4);

    // 1. The probe address must be an instruction boundary.
    t.check_boundary(function.start, addr, |w| (w.len() >= 4).then_some(4))?;

    // 2. The region: the probed instruction.
    let w = word(t.window(addr)?).ok_or(SiteRule::RegionPastFunction)?;
    match decode::decode_word(w) {
        Verdict::Accept(i) if i.op == Op::Step => {}
        Verdict::Undecodable => return Err(SiteRule::Undecodable { at: addr }),
        _ => return Err(SiteRule::NotStepped { at: addr }),
    }
    let mut region = OptRegion {
        addr,
        len: JUMP_LEN,
        insns: 1,
        mode,
        orig: [0; MAX_OPT_REGION],
    };
    region.orig[..JUMP_LEN].copy_from_slice(&w.to_le_bytes());

    // 3. The whole function.
    let inside = addr + 1..addr + region.len;
    let mut at = function.start;
    let mut last = None;
    while at + 4 <= function.end {
        if may_fault(at) {
            return Err(SiteRule::MayFault { at });
        }
        let w = word(t.window(at)?).ok_or(SiteRule::Undecodable { at })?;
        let (control, pcrel) = classify(at, w, last).ok_or(SiteRule::Undecodable { at })?;
        match control {
            Control::IndirectJump => return Err(SiteRule::IndirectJump { at }),
            Control::Direct(target) if inside.contains(&target) => {
                return Err(SiteRule::JumpIntoRegion { from: at })
            }
            _ => {}
        }
        last = pcrel;
        at += 4;
    }
    Ok(region)
}
