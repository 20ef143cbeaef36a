//! Whether a site can be jump-optimised, after Linux's `can_optimize` and
//! `copy_optimized_instructions` (arch/x86/kernel/kprobes/opt.c).
//!
//! The whole function is decoded from its start, in chunks read through the
//! engine's [`DataAccess`] (no allocation):
//! 1. walking from the start must land on the probe address (else
//!    [`SiteRule::NotInstructionBoundary`]);
//! 2. the region is the instructions from the probe address until at least
//!    5 bytes, all inside the function; each must be one the backend steps
//!    out of line **and may boost** ([`crate::decode`], [`crate::boost`]):
//!    branches are simulated, and in kernel mode so are `cli`, `sti`,
//!    `pushf` and `popf`; a rip-relative operand is fine, the detour
//!    relocates it;
//! 3. every instruction of the function: none may have an exception-table
//!    entry (`may_fault`; its fix-up may jump back into the region), none
//!    may be an indirect `jmp` (near `ff /4`, far `ff /5`: a jump table could
//!    land in the region; Linux `insn_is_indirect_jump`), and no direct
//!    branch (`jmp`, `jcc`, `call`, the `loop` family, `jrcxz`) may target
//!    an address strictly inside the region (Linux `insn_jump_into_range`
//!    checks the 4 bytes after the first; every byte after the first is
//!    checked here); `xbegin`'s abort handler counts as a target too.
//!
//! Not checked here, because only the engine or the kernel knows: other
//! probes inside the region (Linux `arch_check_optimized_kprobe`), text
//! reserved by other patching (ftrace, alternatives, jump labels, static
//! calls), and jumps into the region through retpoline thunks (Linux looks
//! for `jmp __x86_indirect_thunk_*`; a kernel built with retpolines has no
//! jump tables).

use core::ops::Range;

use probe_hal::{
    DataAccess, ExecMode, FunctionText, Handling, OptRegion, ProbeErrorKind, SiteRule,
    MAX_OPT_REGION,
};
use yaxpeax_x86::long_mode::{InstDecoder, Opcode, Operand};

use crate::decode::{self, MAX_INSN_LEN};
use crate::simulate::{self, Class};

use super::JUMP_LEN;

/// What the scan needs to know about one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Falls through, or a branch whose target is not encoded in it (`call`
    /// through a register or memory, `ret`).
    Other,
    /// A direct branch (`jmp`, `jcc`, `call`, `loop`…, `jrcxz`) to this
    /// address.
    Direct(usize),
    /// An indirect `jmp` (near or far, through a register or memory).
    IndirectJump,
}

/// Length and control flow of the instruction at `at` (bytes `w`).
pub(crate) fn classify(at: usize, w: &[u8]) -> Option<(usize, Flow)> {
    let insn = match InstDecoder::default().decode_slice(w) {
        Ok(insn) => insn,
        // What yaxpeax rejects but the backend decodes (the VEX opmask
        // instructions) never branches.
        Err(_) => return decode::insn_len(w).map(|len| (len, Flow::Other)),
    };
    let len = yaxpeax_arch::LengthedInstruction::len(&insn).to_const() as usize;
    let next = at.wrapping_add(len);
    if insn.opcode() == Opcode::JMPF {
        return Some((len, Flow::IndirectJump));
    }
    // `xbegin` branches to its abort handler (beyond Linux, whose
    // `insn_jump_into_range` does not look at it).
    let branches = insn.opcode() == Opcode::XBEGIN
        || matches!(
            simulate::class_of(insn.opcode()),
            Some(Class::Jmp | Class::Call | Class::Jcc(_) | Class::Loop(_))
        );
    let flow = match branches {
        true => {
            let rel = match insn.operand(0) {
                Operand::ImmediateI8 { imm } => Some(imm as isize),
                Operand::ImmediateI16 { imm } => Some(imm as isize),
                Operand::ImmediateI32 { imm } => Some(imm as isize),
                _ => None,
            };
            match rel {
                Some(rel) => Flow::Direct(next.wrapping_add(rel as usize)),
                None if insn.opcode() == Opcode::JMP => Flow::IndirectJump,
                None => Flow::Other,
            }
        }
        false => Flow::Other,
    };
    Some((len, flow))
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
    // Linux: `size - offset < JMP32_INSN_SIZE`.
    if function.end - addr < JUMP_LEN {
        return Err(SiteRule::RegionPastFunction);
    }
    let mut t = FunctionText::new(text, function.end, MAX_INSN_LEN);

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
        let w = t.window(at)?;
        let d = match decode::decode(at, w, mode) {
            Ok(d) => d,
            Err(e) if e.kind() == ProbeErrorKind::Undecodable => {
                return Err(past_end_or_undecodable(text, at, function.end, w.len()))
            }
            Err(_) => return Err(SiteRule::NotStepped { at }),
        };
        if d.handling != (Handling::StepOutOfLine { boostable: true }) {
            return Err(SiteRule::NotStepped { at });
        }
        region.orig[region.len..region.len + d.len].copy_from_slice(&w[..d.len]);
        region.len += d.len;
        region.insns += 1;
    }

    // 3. The whole function.
    let inside = addr + 1..addr + region.len;
    let mut at = function.start;
    while at < function.end {
        if may_fault(at) {
            return Err(SiteRule::MayFault { at });
        }
        let (len, flow) = classify(at, t.window(at)?).ok_or(SiteRule::Undecodable { at })?;
        match flow {
            Flow::IndirectJump => return Err(SiteRule::IndirectJump { at }),
            Flow::Direct(target) if inside.contains(&target) => {
                return Err(SiteRule::JumpIntoRegion { from: at })
            }
            _ => {}
        }
        at += len;
    }
    Ok(region)
}

/// An instruction of the region did not decode from the bytes left in the
/// function: if the full 15 bytes decode to an instruction that ends past
/// the function, the region runs past it; otherwise the bytes are bad.
fn past_end_or_undecodable(text: &dyn DataAccess, at: usize, end: usize, had: usize) -> SiteRule {
    // Read on past the end, a byte at a time, as far as the text goes.
    let mut full = [0u8; MAX_INSN_LEN];
    let mut n = 0;
    while n < MAX_INSN_LEN && text.read(at + n, &mut full[n..n + 1]).is_ok() {
        n += 1;
    }
    if n > had {
        if let Some(len) = decode::insn_len(&full[..n]) {
            if at + len > end {
                return SiteRule::RegionPastFunction;
            }
        }
    }
    SiteRule::Undecodable { at }
}
