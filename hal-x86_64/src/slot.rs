//! Breakpoints and out-of-line slots.
//!
//! A slot holds the probed instruction (its rip-relative displacement
//! recomputed for the slot, as Linux `__copy_instruction` does) followed by
//! `int3`, whose trap ends the step (current Linux `prepare_singlestep`), or,
//! when boosted, by a `jmp rel32` back to the next original instruction.

use probe_hal::{Breakpoint, Decoded, ExecMode, ProbeError, ProbeErrorKind, SlotImage};

use crate::decode::{Insn, Op, MAX_INSN_LEN};

/// `int3`: the probe breakpoint, the end-of-step marker and the user-mode
/// return trampoline.
pub(crate) const INT3: u8 = 0xcc;
/// `jmp rel32`.
const JMP_REL32: u8 = 0xe9;
/// Length of `jmp rel32`.
const JMP_REL32_LEN: usize = 5;

/// Bytes one slot occupies: the longest instruction and a `jmp rel32`,
/// rounded up.
pub(crate) const SLOT_LEN: usize = 32;
const _: () = assert!(MAX_INSN_LEN + JMP_REL32_LEN <= SLOT_LEN);
const _: () = assert!(SLOT_LEN <= probe_hal::MAX_SLOT_LEN);

/// The probe breakpoint, whatever the length of the instruction it covers.
pub(crate) fn breakpoint(_insn_len: usize, _mode: ExecMode) -> Breakpoint {
    Breakpoint::new(&[INT3])
}

/// `int3` reports the address after itself.
pub(crate) fn trap_address(pc: usize) -> usize {
    pc.wrapping_sub(1)
}

/// The 32-bit displacement that makes an instruction ending at `from_next`
/// reach `to`, or `None` when `to` is more than 2 GiB away.
pub(crate) fn rel32(from_next: usize, to: usize) -> Option<i32> {
    // Addresses wrap modulo 2^64 like the CPU's effective-address sum, so the
    // wrapped difference read as signed is the one displacement that works.
    i32::try_from(to.wrapping_sub(from_next) as isize).ok()
}

/// The displacement a rip-relative operand needs after its instruction of
/// `len` bytes moved from `addr` to `slot`, or `None` if the original target
/// is out of ±2 GiB reach of the slot.
pub(crate) fn relocated_disp(addr: usize, slot: usize, len: usize, disp: i32) -> Option<i32> {
    let target = addr.wrapping_add(len).wrapping_add(disp as isize as usize);
    rel32(slot.wrapping_add(len), target)
}

/// The same for an `[eip + disp32]` operand (0x67 prefix): the address is
/// truncated to 32 bits, so a displacement always exists.
fn relocated_eip_disp(addr: usize, slot: usize, len: usize, disp: i32) -> i32 {
    let target = addr.wrapping_add(len).wrapping_add(disp as isize as usize);
    target.wrapping_sub(slot.wrapping_add(len)) as u32 as i32
}

/// Build the slot for `insn` (original bytes `orig`) probed at `addr`, to
/// live at `slot`.
pub(crate) fn build(
    insn: &Decoded<Insn>,
    orig: &[u8],
    addr: usize,
    slot: usize,
    boost: bool,
) -> Result<SlotImage, ProbeError> {
    let step = match insn.insn.op() {
        Op::Step(step) => step,
        Op::Emulate(_) => {
            return Err(ProbeError::new(
                ProbeErrorKind::InvalidRequest("a simulated instruction has no out-of-line slot"),
                addr,
            ))
        }
    };
    let len = insn.len;
    if orig.len() < len {
        return Err(ProbeError::new(
            ProbeErrorKind::InvalidRequest("fewer original bytes than the instruction is long"),
            addr,
        ));
    }
    let mut image = SlotImage::new();
    image.push(&orig[..len]);
    if let Some(rip) = step.rip_relative {
        let disp = if rip.eip {
            relocated_eip_disp(addr, slot, len, rip.disp)
        } else {
            relocated_disp(addr, slot, len, rip.disp)
                .ok_or(ProbeError::new(ProbeErrorKind::OutOfReach { slot }, addr))?
        };
        let at = rip.disp_offset as usize;
        image.bytes[at..at + 4].copy_from_slice(&disp.to_le_bytes());
    }
    // A boost whose jump back cannot reach falls back to the trap.
    let back = rel32(
        slot.wrapping_add(len + JMP_REL32_LEN),
        addr.wrapping_add(len),
    );
    match back {
        Some(rel) if boost && step.boostable => {
            image.push(&[JMP_REL32]);
            image.push(&rel.to_le_bytes());
            image.step_end = None;
        }
        _ => {
            image.step_end = Some(image.push(&[INT3]));
        }
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;

    const ADDR: usize = 0xffff_ffff_0123_4560;
    const GIB2: usize = 1 << 31;

    #[test]
    fn fixup_reaches_exactly_i32_range() {
        // disp 0, len 7: the target is addr + 7; the new displacement is addr - slot.
        let max = i32::MAX as usize;
        assert_eq!(relocated_disp(ADDR, ADDR - max, 7, 0), Some(i32::MAX));
        assert_eq!(relocated_disp(ADDR, ADDR - max - 1, 7, 0), None);
        assert_eq!(relocated_disp(ADDR, ADDR + GIB2, 7, 0), Some(i32::MIN));
        assert_eq!(relocated_disp(ADDR, ADDR + GIB2 + 1, 7, 0), None);
        // With a displacement: target = addr + 7 + 0x1000.
        assert_eq!(
            relocated_disp(ADDR, ADDR + 0x1000 - max, 7, 0x1000),
            Some(i32::MAX)
        );
        assert_eq!(
            relocated_disp(ADDR, ADDR + 0x1000 - max - 1, 7, 0x1000),
            None
        );
        assert_eq!(
            relocated_disp(ADDR, ADDR - 0x10 + GIB2, 7, -0x10),
            Some(i32::MIN)
        );
        assert_eq!(relocated_disp(ADDR, ADDR - 0x10 + GIB2 + 1, 7, -0x10), None);
        // The original displacement may itself be at the limit.
        assert_eq!(relocated_disp(ADDR, ADDR, 7, i32::MIN), Some(i32::MIN));
        assert_eq!(relocated_disp(ADDR, ADDR + 1, 7, i32::MIN), None);
        assert_eq!(
            relocated_disp(ADDR, ADDR - 1, 7, i32::MIN),
            Some(i32::MIN + 1)
        );
        // Across the top of the address space, the sum wraps as in the CPU.
        // addr + len wraps to 0, so the target is 4; from slot 8 + 4 that is -8.
        assert_eq!(relocated_disp(usize::MAX - 3, 8, 4, 4), Some(-8));
    }

    #[test]
    fn eip_relative_always_reaches_modulo_4gib() {
        // 0x67 [eip + 0x10] at 0x1000 (len 8): target 0x1018; from a slot at
        // 5 GiB the new displacement is 0x1018 - (5 GiB + 8) mod 2^32.
        let slot = 5usize << 30;
        let d = relocated_eip_disp(0x1000, slot, 8, 0x10);
        assert_eq!(
            (slot + 8).wrapping_add(d as isize as usize) as u32,
            0x1018u32
        );
    }

    fn dec(bytes: &[u8]) -> Decoded<Insn> {
        decode(ADDR, bytes, ExecMode::Kernel).unwrap()
    }

    #[test]
    fn plain_slot_is_copy_then_int3() {
        let orig = [0x48, 0x89, 0xe5]; // mov rbp, rsp
        let s = build(&dec(&orig), &orig, ADDR, 0x10_0000, false).unwrap();
        assert_eq!(s.as_bytes(), &[0x48, 0x89, 0xe5, 0xcc]);
        assert_eq!(s.step_end, Some(3));
    }

    #[test]
    fn boosted_slot_jumps_back() {
        let orig = [0x48, 0x89, 0xe5];
        let slot = ADDR - 0x1000;
        let s = build(&dec(&orig), &orig, ADDR, slot, true).unwrap();
        // jmp from slot + 8 to ADDR + 3: rel = 0x1000 + 3 - 8 = 0xffb.
        assert_eq!(s.as_bytes(), &[0x48, 0x89, 0xe5, 0xe9, 0xfb, 0x0f, 0, 0]);
        assert_eq!(s.step_end, None);
    }

    #[test]
    fn boost_out_of_reach_falls_back_to_int3() {
        let orig = [0x48, 0x89, 0xe5];
        let s = build(&dec(&orig), &orig, ADDR, 0x10_0000, true).unwrap();
        assert_eq!(s.as_bytes(), &[0x48, 0x89, 0xe5, 0xcc]);
        assert_eq!(s.step_end, Some(3));
    }

    #[test]
    fn boost_not_asked_or_not_allowed() {
        // x87 fld st(0) (d9 c0) is not boostable.
        let orig = [0xd9, 0xc0];
        let d = dec(&orig);
        assert_eq!(
            d.handling,
            probe_hal::Handling::StepOutOfLine { boostable: false }
        );
        let s = build(&d, &orig, ADDR, ADDR - 64, true).unwrap();
        assert_eq!(s.as_bytes(), &[0xd9, 0xc0, 0xcc]);
    }

    #[test]
    fn rip_relative_load_is_relocated() {
        // mov rax, [rip + 0x10] at ADDR: target ADDR + 7 + 0x10.
        let orig = [0x48, 0x8b, 0x05, 0x10, 0, 0, 0];
        let slot = ADDR - 0x2000;
        let s = build(&dec(&orig), &orig, ADDR, slot, false).unwrap();
        // new disp = target - (slot + 7) = 0x2010
        assert_eq!(s.as_bytes(), &[0x48, 0x8b, 0x05, 0x10, 0x20, 0, 0, 0xcc]);
        // boosted too, with the jmp back after it.
        let s = build(&dec(&orig), &orig, ADDR, slot, true).unwrap();
        assert_eq!(&s.as_bytes()[..7], &[0x48, 0x8b, 0x05, 0x10, 0x20, 0, 0]);
        assert_eq!(s.as_bytes()[7], 0xe9);
        assert_eq!(
            i32::from_le_bytes(s.as_bytes()[8..12].try_into().unwrap()),
            0x2000 - 5
        );
    }

    #[test]
    fn rip_relative_with_immediate_after_the_displacement() {
        // cmp qword [rip + 0x10], 0x12345678: the imm32 follows the disp32
        // and must stay as it is.
        let orig = [0x48, 0x81, 0x3d, 0x10, 0, 0, 0, 0x78, 0x56, 0x34, 0x12];
        let slot = ADDR + 0x100;
        let s = build(&dec(&orig), &orig, ADDR, slot, false).unwrap();
        let disp = i32::from_le_bytes(s.as_bytes()[3..7].try_into().unwrap());
        assert_eq!(disp, 0x10 - 0x100);
        assert_eq!(&s.as_bytes()[7..], &[0x78, 0x56, 0x34, 0x12, 0xcc]);
    }

    #[test]
    fn rip_relative_slot_at_the_reach_boundary() {
        // lea rax, [rip + 0] (len 7): new disp = addr - slot.
        let orig = [0x48, 0x8d, 0x05, 0, 0, 0, 0];
        let d = dec(&orig);
        let max = i32::MAX as usize;
        let s = build(&d, &orig, ADDR, ADDR - max, false).unwrap();
        assert_eq!(&s.as_bytes()[3..7], &i32::MAX.to_le_bytes());
        let s = build(&d, &orig, ADDR, ADDR + GIB2, false).unwrap();
        assert_eq!(&s.as_bytes()[3..7], &i32::MIN.to_le_bytes());
        for slot in [ADDR - max - 1, ADDR + GIB2 + 1] {
            let e = build(&d, &orig, ADDR, slot, false).unwrap_err();
            assert_eq!(e.kind(), ProbeErrorKind::OutOfReach { slot });
            assert_eq!(e.addr(), ADDR);
        }
    }

    #[test]
    fn simulated_instructions_have_no_slot() {
        let orig = [0xc3];
        let e = build(&dec(&orig), &orig, ADDR, 0x1000, false).unwrap_err();
        assert!(matches!(e.kind(), ProbeErrorKind::InvalidRequest(_)));
    }

    #[test]
    fn breakpoint_and_trap_address() {
        assert_eq!(breakpoint(15, ExecMode::User).as_bytes(), &[0xcc]);
        assert_eq!(breakpoint(1, ExecMode::Kernel).as_bytes(), &[0xcc]);
        assert_eq!(trap_address(0x1001), 0x1000);
    }
}
