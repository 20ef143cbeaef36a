//! The code of a detour and of the jump to it (the layout is documented in
//! [`super`]).

use probe_hal::{Handling, OptRegion, SiteRule};

use crate::decode;

use super::JUMP_LEN;

/// Size of every detour.
pub(crate) const DETOUR_LEN: usize = LITERALS + 16;

/// Offset in every detour of its copy of the displaced instructions
/// (followed by the jump back): the code before it has the same length in
/// every detour.
pub(crate) const DISPLACED_AT: usize = 280;
/// Bytes reserved for the copy and the jump back (at most 6 + 4, padded).
const DISPLACED_LEN: usize = 12;
/// Offset of path (b).
pub(crate) const RESUME_AT: usize = DISPLACED_AT + DISPLACED_LEN;
/// Offset of the `sret` that ends path (b).
pub(crate) const SRET_AT: usize = RESUME_AT + RESTORE_LEN;
/// Offset of the literals: the probe address, then the cookie (8-aligned).
pub(crate) const LITERALS: usize = (SRET_AT + 4 + 7) & !7;
/// Offset of the `auipc a1` whose result, plus [`A1_ADD`], is the literals.
const AUIPC_A1_AT: usize = 136;
/// Offset of the entry call (`auipc ra` then `jalr ra`).
pub(crate) const CALL_AT: usize = 144;
/// Offset of the `bnez a0, resume`.
pub(crate) const BNEZ_AT: usize = 152;
/// Bytes of one restore (30 loads and `ld sp`).
const RESTORE_LEN: usize = 31 * 4;

/// `sizeof(PtRegs)`: the frame below the probed code's `sp`.
pub(crate) const FRAME_LEN: usize = 288;
const _: () = assert!(core::mem::size_of::<crate::PtRegs>() == FRAME_LEN);
/// Offset of `status` in the frame.
pub(crate) const OFF_STATUS: i32 = 256;

const SP: u32 = 2;
const RA: u32 = 1;
const T0: u32 = 5;
const A0: u32 = 10;
const A1: u32 = 11;
/// `sstatus`.
const CSR_SSTATUS: u32 = 0x100;
/// `sstatus.SIE` (bit 1), as a 5-bit CSR immediate.
const SIE: u32 = 2;

/// `sret` (privileged manual §3.3.2).
pub(crate) const SRET: u32 = 0x1020_0073;
/// `c.unimp`: the padding after the jump back (never executed).
const C_UNIMP: u16 = 0;

pub(crate) const fn i_type(opc: u32, f3: u32, rd: u32, rs1: u32, imm: i32) -> u32 {
    ((imm as u32 & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc
}

pub(crate) const fn addi(rd: u32, rs1: u32, imm: i32) -> u32 {
    i_type(0x13, 0, rd, rs1, imm)
}

pub(crate) const fn ld(rd: u32, rs1: u32, imm: i32) -> u32 {
    i_type(0x03, 3, rd, rs1, imm)
}

pub(crate) const fn sd(rs2: u32, rs1: u32, imm: i32) -> u32 {
    let imm = imm as u32 & 0xfff;
    ((imm >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (3 << 12) | ((imm & 0x1f) << 7) | 0x23
}

pub(crate) const fn auipc(rd: u32, imm20: u32) -> u32 {
    (imm20 << 12) | (rd << 7) | 0x17
}

pub(crate) const fn jalr(rd: u32, rs1: u32, imm: i32) -> u32 {
    i_type(0x67, 0, rd, rs1, imm)
}

/// `bne rs1, x0, offset` (B-type), `offset` even and within ±4 KiB.
pub(crate) const fn bnez(rs1: u32, offset: i32) -> u32 {
    let o = offset as u32;
    (((o >> 12) & 1) << 31)
        | (((o >> 5) & 0x3f) << 25)
        | (rs1 << 15)
        | (1 << 12)
        | (((o >> 1) & 0xf) << 8)
        | (((o >> 11) & 1) << 7)
        | 0x63
}

/// `jal rd, offset` (J-type), or `None` when `offset` is odd or beyond
/// ±1 MiB.
pub(crate) fn jal(rd: u32, offset: isize) -> Option<u32> {
    if offset % 2 != 0 || !(-(1 << 20)..1 << 20).contains(&offset) {
        return None;
    }
    let o = offset as u32;
    Some(
        (((o >> 20) & 1) << 31)
            | (((o >> 1) & 0x3ff) << 21)
            | (((o >> 11) & 1) << 20)
            | (((o >> 12) & 0xff) << 12)
            | (rd << 7)
            | 0x6f,
    )
}

/// The `auipc`/`jalr` immediates reaching `offset` from the `auipc`, or
/// `None` beyond ±2 GiB.
pub(crate) fn hi_lo(offset: isize) -> Option<(u32, i32)> {
    let hi = offset.wrapping_add(0x800) >> 12;
    if !(-(1 << 19)..1 << 19).contains(&hi) {
        return None;
    }
    let lo = (offset - (hi << 12)) as i32;
    Some((hi as u32 & 0xf_ffff, lo))
}

/// The registers saved and restored through the frame, in order: x1 and
/// x3..x31 (x2, `sp`, is restored last).
fn saved() -> impl Iterator<Item = u32> {
    core::iter::once(1).chain(3..32)
}

/// Appends code to a fixed buffer.
struct Code {
    buf: [u8; DETOUR_LEN],
    len: usize,
}

impl Code {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn insn(&mut self, word: u32) {
        self.put(&word.to_le_bytes());
    }

    /// Every register from the frame, `sp` last.
    fn restore(&mut self) {
        for r in saved() {
            self.insn(ld(r, SP, 8 * r as i32));
        }
        self.insn(ld(SP, SP, 16));
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
    let mut c = Code {
        buf: [0; DETOUR_LEN],
        len: 0,
    };
    // Save.
    c.insn(addi(SP, SP, -(FRAME_LEN as i32)));
    for r in saved() {
        c.insn(sd(r, SP, 8 * r as i32));
    }
    c.insn(if mask_interrupts {
        i_type(0x73, 7, T0, SIE, CSR_SSTATUS as i32) // csrrci t0, sstatus, SIE
    } else {
        i_type(0x73, 2, T0, 0, CSR_SSTATUS as i32) // csrrs t0, sstatus, x0
    });
    c.insn(sd(T0, SP, OFF_STATUS));
    c.insn(addi(A0, SP, 0));
    debug_assert_eq!(c.len, AUIPC_A1_AT);
    c.insn(auipc(A1, 0));
    c.insn(addi(A1, A1, (LITERALS - AUIPC_A1_AT) as i32));
    debug_assert_eq!(c.len, CALL_AT);
    let (hi, lo) =
        hi_lo(entry.wrapping_sub(detour + CALL_AT) as isize).ok_or(SiteRule::OutOfReach)?;
    c.insn(auipc(RA, hi));
    c.insn(jalr(RA, RA, lo));
    c.insn(bnez(A0, (RESUME_AT - BNEZ_AT) as i32));

    // Path (a).
    c.restore();
    debug_assert_eq!(c.len, DISPLACED_AT);
    let mut at = 0;
    while at < region.len {
        let orig_addr = region.addr.wrapping_add(at);
        let bytes = &region.orig[at..region.len];
        let d = decode::decode(orig_addr, bytes, region.mode)
            .map_err(|_| SiteRule::NotStepped { at: orig_addr })?;
        if !matches!(d.handling, Handling::StepOutOfLine { .. }) || at + d.len > 6 {
            return Err(SiteRule::NotStepped { at: orig_addr });
        }
        c.put(&bytes[..d.len]);
        at += d.len;
    }
    let back = region.end().wrapping_sub(detour.wrapping_add(c.len)) as isize;
    c.insn(jal(0, back).ok_or(SiteRule::OutOfReach)?);
    while c.len < RESUME_AT {
        c.put(&C_UNIMP.to_le_bytes());
    }

    // Path (b).
    c.restore();
    debug_assert_eq!(c.len, SRET_AT);
    c.insn(SRET);
    c.len = LITERALS;
    c.put(&(region.addr as u64).to_le_bytes());
    c.put(&(cookie as u64).to_le_bytes());
    debug_assert_eq!(c.len, DETOUR_LEN);
    out.copy_from_slice(&c.buf);
    Ok(DETOUR_LEN)
}

/// The `jal x0` written at `addr` to reach `detour`.
pub(crate) fn jump(addr: usize, detour: usize, out: &mut [u8]) -> Result<usize, SiteRule> {
    const _: () = assert!(JUMP_LEN == 4);
    probe_hal::optimize::word_jump(addr, detour, super::REACH, |off| jal(0, off), out)
}
