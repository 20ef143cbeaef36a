//! Whether a site can be jump-optimised, after Linux's x86 `can_optimize`
//! (arch/x86/kernel/kprobes/opt.c), for riscv64.
//!
//! The whole function is decoded from its start, in chunks read through the
//! engine's [`DataAccess`] (no allocation), in this order:
//! 1. walking from the start must land on the probe address (else
//!    [`SiteRule::NotInstructionBoundary`]);
//! 2. the region is the instructions from the probe address until at least
//!    4 bytes (one 4-byte instruction, two 2-byte ones, or a 2-byte and a
//!    4-byte one), all inside the function ([`SiteRule::RegionPastFunction`]);
//!    each must be one the backend steps out of line
//!    ([`SiteRule::NotStepped`]): every instruction that reads or writes the
//!    pc (`auipc`, `jal`, `jalr`, the branches and their compressed forms) is
//!    simulated and refused here (nothing is relocated), and so is an
//!    instruction inside an LR/SC sequence;
//! 3. every instruction of the function: none may have an exception-table
//!    entry ([`SiteRule::MayFault`]); none may be an indirect jump
//!    ([`SiteRule::IndirectJump`]: `jalr x0`/`c.jr` other than `ret`, unless
//!    the instruction before is the `auipc` of its base register, a
//!    pc-relative far jump whose target is checked as a direct one); and no
//!    direct branch (`jal`, `c.j`, the conditional branches, `c.beqz`,
//!    `c.bnez`, an `auipc`+`jalr` pair) may target an address strictly
//!    inside the region ([`SiteRule::JumpIntoRegion`]). Indirect *calls*
//!    (`jalr` with a link register) are allowed, as Linux allows `call *`
//!    on x86: they come back after themselves.
//!
//! An encoding the decoder does not know is [`SiteRule::Undecodable`],
//! except `c.unimp` (`0x0000`, what `unreachable` compiles to), which never
//! transfers control within the function.

use core::ops::Range;

use probe_hal::{
    DataAccess, ExecMode, FunctionText, Handling, OptRegion, SiteRule, MAX_OPT_REGION,
};

use crate::decode::{self, Flow, Verdict};
use crate::sequence;

use super::JUMP_LEN;

/// What the scan needs to know about one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Falls through, leaves the function (`ret`, `sret`), traps, or calls.
    Other,
    /// A direct branch or jump to this address.
    Direct(usize),
    /// A jump through a register.
    IndirectJump,
}

/// The `auipc` just before an instruction: its destination and result.
type LastAuipc = Option<(u8, usize)>;

/// Length and control flow of the instruction at `at` (bytes `w`), given
/// the `auipc` just before it; `None` when it does not decode.
pub(crate) fn classify(
    at: usize,
    w: &[u8],
    last: LastAuipc,
) -> Option<(usize, Control, LastAuipc)> {
    let d = decode::decode_insn(w)?;
    let target = |offset: i32| at.wrapping_add(offset as isize as usize);
    let (control, auipc) = match d.verdict {
        Verdict::Undecodable if d.len == 2 && w[..2] == [0, 0] => (Control::Other, None),
        Verdict::Undecodable => return None,
        Verdict::Step | Verdict::Refuse(_) => (Control::Other, None),
        Verdict::Simulate(flow) => match flow {
            Flow::Jal { offset, .. } | Flow::Branch { offset, .. } => {
                (Control::Direct(target(offset)), None)
            }
            Flow::Auipc { rd, offset } => (Control::Other, Some((rd, target(offset)))),
            Flow::Jalr { rd, rs1, offset } => match last {
                Some((base, value)) if base == rs1 && rs1 != 0 => (
                    Control::Direct(value.wrapping_add(offset as isize as usize) & !1),
                    None,
                ),
                _ if rd != 0 => (Control::Other, None),
                _ if rs1 == 1 && offset == 0 => (Control::Other, None),
                _ => (Control::IndirectJump, None),
            },
        },
    };
    Some((d.len, control, auipc))
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
    t.check_boundary(function.start, addr, decode::insn_len)?;

    // 2. The region.
    let mut region = OptRegion {
        addr,
        len: 0,
        insns: 0,
        mode,
        orig: [0; MAX_OPT_REGION],
    };
    while region.len < JUMP_LEN {
        let at = addr + region.len;
        if at >= function.end {
            return Err(SiteRule::RegionPastFunction);
        }
        let w = t.window(at)?;
        let len = decode::insn_len(w).ok_or(SiteRule::Undecodable { at })?;
        if len > w.len() {
            return Err(SiteRule::RegionPastFunction);
        }
        let d = decode::decode(at, w, mode).map_err(|_| SiteRule::NotStepped { at })?;
        if !matches!(d.handling, Handling::StepOutOfLine { .. }) {
            return Err(SiteRule::NotStepped { at });
        }
        region.orig[region.len..region.len + d.len].copy_from_slice(&w[..d.len]);
        region.len += d.len;
        region.insns += 1;
        if at != addr {
            // The probe address itself was checked when it was registered.
            let from = at.saturating_sub(sequence::LOOK_BACK).max(function.start);
            let mut before = [0u8; sequence::LOOK_BACK];
            let before = &mut before[..at - from];
            text.read(from, before)
                .map_err(|f| SiteRule::ReadFailed { addr: f.addr })?;
            sequence::check(at, before).map_err(|_| SiteRule::NotStepped { at })?;
        }
    }

    // 3. The whole function.
    let inside = addr + 1..addr + region.len;
    let mut at = function.start;
    let mut last = None;
    while at < function.end {
        if may_fault(at) {
            return Err(SiteRule::MayFault { at });
        }
        let (len, control, auipc) =
            classify(at, t.window(at)?, last).ok_or(SiteRule::Undecodable { at })?;
        match control {
            Control::IndirectJump => return Err(SiteRule::IndirectJump { at }),
            Control::Direct(target) if inside.contains(&target) => {
                return Err(SiteRule::JumpIntoRegion { from: at })
            }
            _ => {}
        }
        last = auipc;
        at += len;
    }
    Ok(region)
}
