//! Whether a site can be jump-optimised, after Linux's x86 `can_optimize`
//! (arch/x86/kernel/kprobes/opt.c), for aarch64.
//!
//! Every A64 instruction is 4 bytes, and so is the jump (`b`): the region
//! is the probed instruction alone. The whole function is decoded from its
//! start, in chunks read through the engine's [`DataAccess`] (no
//! allocation), in this order:
//! 1. walking from the start must land on the probe address (with 4-byte
//!    instructions: it is a multiple of 4 from the start, else
//!    [`SiteRule::NotInstructionBoundary`]);
//! 2. the probed instruction must be one the backend steps out of line
//!    ([`SiteRule::NotStepped`]): everything the backend simulates (`b`,
//!    `bl`, `b.cond`, `cbz`/`cbnz`, `tbz`/`tbnz`, `br`, `blr`, `ret`,
//!    `adr`, `adrp`, the literal loads and `prfm`) is refused here, as
//!    nothing is relocated; and it must not be a BTI landing pad (`bti`,
//!    `paciasp`, `pacibsp`): on a guarded page, a `br`/`blr` into it must
//!    find a landing pad, which a `b` is not (see [`super`], "BTI");
//! 3. every instruction of the function: none may have an exception-table
//!    entry ([`SiteRule::MayFault`]); none may be an indirect jump
//!    ([`SiteRule::IndirectJump`]: `br`, `braa`, `brab`, `braaz`,
//!    `brabz`); and no direct branch (`b`, `bl`, `b.cond`, `cbz`, `cbnz`,
//!    `tbz`, `tbnz`) may target an address strictly inside the region
//!    ([`SiteRule::JumpIntoRegion`]). With a 4-byte region and 4-byte
//!    aligned branch targets no branch can, so that rule never fires on
//!    aarch64; it is kept so that the scan reads as on the other backends.
//!    Indirect *calls* (`blr`, `blraa`…) and returns are allowed, as Linux
//!    allows `call *` on x86: they come back after themselves.
//!
//! A word the decoder does not know is [`SiteRule::Undecodable`]. Words it
//! refuses (`udf`, `brk`, `svc`, `eret`…) never transfer control within
//! the function and are accepted in it.

use core::ops::Range;

use probe_hal::{DataAccess, ExecMode, FunctionText, OptRegion, SiteRule, MAX_OPT_REGION};

use crate::decode::{decode_word, imm14, imm19, imm26, Op, Simulated, Verdict};

use super::JUMP_LEN;

/// What the scan needs to know about one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Falls through, leaves the function (`ret`, `eret`), traps, or calls.
    Other,
    /// A direct branch or call to this address.
    Direct(usize),
    /// A jump through a register.
    IndirectJump,
}

/// Whether `word` is `br`, `braaz`, `brabz`, `braa` or `brab`: bits
/// \[31:25\] = 1101011, `opc` (bits \[24:21\]) 0000 or 1000, `op2` (bits
/// \[20:16\]) 11111 (Arm ARM C4.1.87, "Unconditional branch (register)").
pub(crate) fn is_indirect_jump(word: u32) -> bool {
    word & 0xfe00_0000 == 0xd600_0000
        && matches!((word >> 21) & 0xf, 0b0000 | 0b1000)
        && (word >> 16) & 0x1f == 0x1f
}

/// Whether `word` is a landing pad for an indirect branch on a guarded
/// page: `bti`, `bti c`, `bti j`, `bti jc` (`hint #32`..`#38`, even),
/// `paciasp` (`hint #25`) or `pacibsp` (`hint #27`).
pub(crate) fn is_landing_pad(word: u32) -> bool {
    word & 0xffff_ff3f == 0xd503_241f || word == 0xd503_233f || word == 0xd503_237f
}

/// Control flow of the instruction `word` at `at`; `None` when it does
/// not decode.
pub(crate) fn classify(at: usize, word: u32) -> Option<Control> {
    let target = |offset: i64| Control::Direct(at.wrapping_add(offset as isize as usize));
    if is_indirect_jump(word) {
        return Some(Control::IndirectJump);
    }
    Some(match decode_word(word) {
        Verdict::Undecodable => return None,
        Verdict::Refuse(_) => Control::Other,
        Verdict::Accept(insn) => match insn.op {
            Op::Step => Control::Other,
            Op::Simulate(s) => match s {
                Simulated::B | Simulated::Bl => target(imm26(word)),
                Simulated::BCond | Simulated::Cbz | Simulated::Cbnz => target(imm19(word)),
                Simulated::Tbz | Simulated::Tbnz => target(imm14(word)),
                Simulated::Br => Control::IndirectJump,
                Simulated::Blr
                | Simulated::Ret
                | Simulated::Adr
                | Simulated::Adrp
                | Simulated::LdrLit32
                | Simulated::LdrLit64
                | Simulated::LdrswLit
                | Simulated::PrfmLit => Control::Other,
            },
        },
    })
}

fn word_of(w: &[u8]) -> Option<u32> {
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
    let word = word_of(t.window(addr)?).ok_or(SiteRule::RegionPastFunction)?;
    let stepped = matches!(decode_word(word), Verdict::Accept(i) if i.op == Op::Step);
    if !stepped || is_landing_pad(word) {
        return Err(SiteRule::NotStepped { at: addr });
    }
    let mut region = OptRegion {
        addr,
        len: JUMP_LEN,
        insns: 1,
        mode,
        orig: [0; MAX_OPT_REGION],
    };
    region.orig[..4].copy_from_slice(&word.to_le_bytes());

    // 3. The whole function.
    let inside = addr + 1..addr + region.len;
    let mut at = function.start;
    while at < function.end {
        if may_fault(at) {
            return Err(SiteRule::MayFault { at });
        }
        let w = t.window(at)?;
        let control = word_of(w)
            .and_then(|word| classify(at, word))
            .ok_or(SiteRule::Undecodable { at })?;
        match control {
            Control::IndirectJump => return Err(SiteRule::IndirectJump { at }),
            Control::Direct(target) if inside.contains(&target) => {
                return Err(SiteRule::JumpIntoRegion { from: at })
            }
            _ => {}
        }
        at += 4;
    }
    Ok(region)
}
