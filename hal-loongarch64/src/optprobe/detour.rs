//! The code of a detour and of the jump to it (the layout is documented in
//! [`super`]).

use probe_hal::{OptRegion, SiteRule};

use crate::decode::{decode_word, Op, Verdict};

use super::JUMP_LEN;

/// Size of every detour.
pub(crate) const DETOUR_LEN: usize = LITERALS + 16;

/// Offset in every detour of its copy of the displaced instruction
/// (followed by the jump back): the code before it has the same length in
/// every detour.
pub(crate) const DISPLACED_AT: usize = 284;
/// Offset of path (b): the displaced instruction and the `b` back.
pub(crate) const RESUME_AT: usize = DISPLACED_AT + 8;
/// Offset of the `ertn` that ends path (b).
pub(crate) const ERTN_AT: usize = RESUME_AT + RESTORE_LEN;
/// Offset of the literals: the probe address, then the cookie (8-aligned).
pub(crate) const LITERALS: usize = (ERTN_AT + 4 + 7) & !7;
/// Offset of the `addi.d $t1` that holds the interrupt mask.
pub(crate) const MASK_AT: usize = 128;
/// Offset of the `pcaddi $a1` that points at the literals.
pub(crate) const PCADDI_A1_AT: usize = 144;
/// Offset of the entry call (`pcaddu18i $ra` then `jirl $ra`).
pub(crate) const CALL_AT: usize = 148;
/// Offset of the `bnez $a0, resume`.
pub(crate) const BNEZ_AT: usize = 156;
/// Offset of path (a).
pub(crate) const RESTORE_A_AT: usize = BNEZ_AT + 4;
/// Bytes of one restore (30 loads and `ld.d $sp`).
const RESTORE_LEN: usize = 31 * 4;

/// `sizeof(PtRegs)`: the frame below the probed code's `sp`.
pub(crate) const FRAME_LEN: usize = 320;
const _: () = assert!(crate::regs::PT_SIZE == FRAME_LEN && FRAME_LEN % 16 == 0);
/// Offset of `csr_crmd` in the frame.
pub(crate) const OFF_CRMD: i32 = 280;
/// Offset of `regs[3]` (`sp`) in the frame.
pub(crate) const OFF_SP: i32 = 24;

pub(crate) const RA: u32 = 1;
pub(crate) const SP: u32 = 3;
pub(crate) const A0: u32 = 4;
pub(crate) const A1: u32 = 5;
pub(crate) const T0: u32 = 12;
pub(crate) const T1: u32 = 13;
/// `CSR.CRMD`.
pub(crate) const CSR_CRMD: u32 = 0x0;
/// `CRMD.IE` (bit 2).
pub(crate) const CRMD_IE: u32 = 1 << 2;

/// `ertn` (vol. 1 §4.2.6).
pub(crate) const ERTN: u32 = 0x0648_3800;

/// `addi.d rd, rj, si12`.
pub(crate) const fn addi_d(rd: u32, rj: u32, si12: i32) -> u32 {
    0x02c0_0000 | ((si12 as u32 & 0xfff) << 10) | (rj << 5) | rd
}

/// `ld.d rd, rj, si12`.
pub(crate) const fn ld_d(rd: u32, rj: u32, si12: i32) -> u32 {
    0x28c0_0000 | ((si12 as u32 & 0xfff) << 10) | (rj << 5) | rd
}

/// `st.d rd, rj, si12`.
pub(crate) const fn st_d(rd: u32, rj: u32, si12: i32) -> u32 {
    0x29c0_0000 | ((si12 as u32 & 0xfff) << 10) | (rj << 5) | rd
}

/// `or rd, rj, rk`.
pub(crate) const fn or(rd: u32, rj: u32, rk: u32) -> u32 {
    0x0015_0000 | (rk << 10) | (rj << 5) | rd
}

/// `pcaddi rd, si20` (`rd = pc + (si20 << 2)`).
pub(crate) const fn pcaddi(rd: u32, si20: i32) -> u32 {
    0x1800_0000 | ((si20 as u32 & 0xf_ffff) << 5) | rd
}

/// `pcaddu18i rd, si20` (`rd = pc + (si20 << 18)`).
pub(crate) const fn pcaddu18i(rd: u32, si20: i32) -> u32 {
    0x1e00_0000 | ((si20 as u32 & 0xf_ffff) << 5) | rd
}

/// `jirl rd, rj, offs16` (`offs16` in words).
pub(crate) const fn jirl(rd: u32, rj: u32, offs16: i32) -> u32 {
    0x4c00_0000 | ((offs16 as u32 & 0xffff) << 10) | (rj << 5) | rd
}

/// `csrxchg rd, rj, csr`: the CSR bits set in `rj` take `rd`'s, `rd` gets
/// the old CSR. `rj` must not be `r0` or `r1` (those encode `csrrd` and
/// `csrwr`).
pub(crate) const fn csrxchg(rd: u32, rj: u32, csr: u32) -> u32 {
    0x0400_0000 | ((csr & 0x3fff) << 10) | (rj << 5) | rd
}

/// `bnez rj, offset` (`offset` in bytes, a multiple of 4 within ±4 MiB).
pub(crate) const fn bnez(rj: u32, offset: i32) -> u32 {
    let w = (offset >> 2) as u32;
    0x4400_0000 | ((w & 0xffff) << 10) | (rj << 5) | ((w >> 16) & 0x1f)
}

/// `b offset`, or `None` when `offset` (bytes) is not a multiple of 4 or
/// lies beyond ±128 MiB.
pub(crate) fn b(offset: isize) -> Option<u32> {
    if offset % 4 != 0 || !(-(1 << 27)..1 << 27).contains(&offset) {
        return None;
    }
    let w = (offset >> 2) as u32;
    Some(0x5000_0000 | ((w & 0xffff) << 10) | ((w >> 16) & 0x3ff))
}

/// The `pcaddu18i`/`jirl` immediates reaching `offset` (bytes, a multiple
/// of 4) from the `pcaddu18i`, or `None` beyond ±128 GiB.
pub(crate) fn hi_lo(offset: isize) -> Option<(i32, i32)> {
    if offset % 4 != 0 {
        return None;
    }
    let hi = offset.wrapping_add(1 << 17) >> 18;
    if !(-(1 << 19)..1 << 19).contains(&hi) {
        return None;
    }
    let lo = (offset - (hi << 18)) >> 2;
    Some((hi as i32, lo as i32))
}

/// The registers saved and restored through the frame, in order: r1, r2
/// and r4..r31 (r3, `sp`, is restored last; r0 is zero).
fn saved() -> impl Iterator<Item = u32> {
    [1, 2].into_iter().chain(4..32)
}

/// Appends code to a fixed buffer.
struct Code {
    buf: [u8; DETOUR_LEN],
    len: usize,
}

impl Code {
    fn insn(&mut self, word: u32) {
        self.buf[self.len..self.len + 4].copy_from_slice(&word.to_le_bytes());
        self.len += 4;
    }

    /// Every register from the frame, `sp` last.
    fn restore(&mut self) {
        for r in saved() {
            self.insn(ld_d(r, SP, 8 * r as i32));
        }
        self.insn(ld_d(SP, SP, OFF_SP));
    }
}

/// The detour for `region` at `detour`, calling `entry` with `cookie`.
pub(crate) fn build(
    region: &OptRegion,
    detour: usize,
    cookie: usize,
    mask_interrupts: bool,
    entry: usize,
    out: &mut [u8],
) -> Result<usize, SiteRule> {
    let out = out
        .get_mut(..DETOUR_LEN)
        .ok_or(SiteRule::BufferTooSmall { needed: DETOUR_LEN })?;
    if detour % 4 != 0 || region.len != JUMP_LEN {
        return Err(SiteRule::NotSupported);
    }
    let word = u32::from_le_bytes([
        region.orig[0],
        region.orig[1],
        region.orig[2],
        region.orig[3],
    ]);
    if !matches!(decode_word(word), Verdict::Accept(i) if i.op == Op::Step) {
        return Err(SiteRule::NotStepped { at: region.addr });
    }
    let mut c = Code {
        buf: [0; DETOUR_LEN],
        len: 0,
    };
    // Save.
    c.insn(addi_d(SP, SP, -(FRAME_LEN as i32)));
    for r in saved() {
        c.insn(st_d(r, SP, 8 * r as i32));
    }
    c.insn(addi_d(T0, 0, 0));
    debug_assert_eq!(c.len, MASK_AT);
    c.insn(addi_d(
        T1,
        0,
        if mask_interrupts { CRMD_IE as i32 } else { 0 },
    ));
    c.insn(csrxchg(T0, T1, CSR_CRMD));
    c.insn(st_d(T0, SP, OFF_CRMD));
    c.insn(or(A0, SP, 0));
    debug_assert_eq!(c.len, PCADDI_A1_AT);
    c.insn(pcaddi(A1, ((LITERALS - PCADDI_A1_AT) / 4) as i32));
    debug_assert_eq!(c.len, CALL_AT);
    let (hi, lo) =
        hi_lo(entry.wrapping_sub(detour + CALL_AT) as isize).ok_or(SiteRule::OutOfReach)?;
    c.insn(pcaddu18i(RA, hi));
    c.insn(jirl(RA, RA, lo));
    debug_assert_eq!(c.len, BNEZ_AT);
    c.insn(bnez(A0, (RESUME_AT - BNEZ_AT) as i32));

    // Path (a).
    debug_assert_eq!(c.len, RESTORE_A_AT);
    c.restore();
    debug_assert_eq!(c.len, DISPLACED_AT);
    c.insn(word);
    let back = region.end().wrapping_sub(detour.wrapping_add(c.len)) as isize;
    c.insn(b(back).ok_or(SiteRule::OutOfReach)?);

    // Path (b).
    debug_assert_eq!(c.len, RESUME_AT);
    c.restore();
    debug_assert_eq!(c.len, ERTN_AT);
    c.insn(ERTN);
    c.len = LITERALS;
    c.buf[c.len..c.len + 8].copy_from_slice(&(region.addr as u64).to_le_bytes());
    c.buf[c.len + 8..c.len + 16].copy_from_slice(&(cookie as u64).to_le_bytes());
    out.copy_from_slice(&c.buf);
    Ok(DETOUR_LEN)
}

/// The `b` written at `addr` to reach `detour`.
pub(crate) fn jump(addr: usize, detour: usize, out: &mut [u8]) -> Result<usize, SiteRule> {
    const _: () = assert!(JUMP_LEN == 4);
    probe_hal::optimize::word_jump(addr, detour, super::REACH, b, out)
}
