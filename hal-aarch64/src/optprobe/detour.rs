//! The code of a detour and of the jump to it (the layout is documented in
//! [`super`]).

use probe_hal::{OptRegion, SiteRule};

use crate::decode::{decode_word, Op, Verdict};

use super::JUMP_LEN;

/// Size of every detour.
pub(crate) const DETOUR_LEN: usize = LITERALS + 16;

/// `sizeof(PtRegs)`.
const PT_LEN: usize = 288;
const _: () = assert!(core::mem::size_of::<crate::PtRegs>() == PT_LEN);
/// Offset of `q0` in the frame.
pub(crate) const OFF_Q: usize = PT_LEN;
/// Offset of FPCR (then FPSR) in the frame.
pub(crate) const OFF_FPCR: usize = OFF_Q + 32 * 16;
/// The frame below the probed code's `sp`: a `PtRegs`, `q0`-`q31`, FPCR
/// and FPSR (a multiple of 16).
pub(crate) const FRAME_LEN: usize = OFF_FPCR + 16;
const _: () = assert!(FRAME_LEN % 16 == 0 && FRAME_LEN < 4096);
/// Offsets of `x30`, `sp`, `pstate` in the frame (Linux's `pt_regs`).
const OFF_X30: usize = 240;
const OFF_SP: usize = 248;
/// Offset of `pstate` in the frame.
pub(crate) const OFF_PSTATE: usize = 264;

/// Offset of the `adr x1, literals`.
pub(crate) const ADR_AT: usize = 168;
/// Offset of the `bl entry`.
pub(crate) const CALL_AT: usize = 172;
/// Offset of the `cbnz x0, resume`.
pub(crate) const CBNZ_AT: usize = 252;
/// Offset in every detour of its copy of the displaced instruction
/// (followed by the jump back): the code before it has the same length in
/// every detour.
pub(crate) const DISPLACED_AT: usize = 336;
/// Offset of path (b).
pub(crate) const RESUME_AT: usize = DISPLACED_AT + 8;
/// Offset of the `eret` that ends path (b).
pub(crate) const ERET_AT: usize = RESUME_AT + 12 + 16 * 4;
/// Offset of the literals: the probe address, then the cookie (8-aligned).
pub(crate) const LITERALS: usize = (ERET_AT + 4 + 7) & !7;

const SP: u32 = 31;
const X0: u32 = 0;
const X1: u32 = 1;
const X9: u32 = 9;
const X10: u32 = 10;
const X30: u32 = 30;

/// `nop`.
pub(crate) const NOP: u32 = 0xd503_201f;
/// `eret`.
pub(crate) const ERET: u32 = 0xd69f_03e0;
/// `msr daifset, #0xf`.
pub(crate) const MASK_DAIF: u32 = 0xd503_4fdf;

/// System registers as `op0:op1:CRn:CRm:op2` (bits \[20:5\] of `mrs`/`msr`).
const fn sysreg(op0: u32, op1: u32, crn: u32, crm: u32, op2: u32) -> u32 {
    (op0 << 14) | (op1 << 11) | (crn << 7) | (crm << 3) | op2
}
/// `NZCV`.
pub(crate) const NZCV: u32 = sysreg(3, 3, 4, 2, 0);
/// `DAIF`.
pub(crate) const DAIF: u32 = sysreg(3, 3, 4, 2, 1);
/// `FPCR`.
pub(crate) const FPCR: u32 = sysreg(3, 3, 4, 4, 0);
/// `FPSR`.
pub(crate) const FPSR: u32 = sysreg(3, 3, 4, 4, 1);

/// `mrs xt, <sysreg>`.
pub(crate) const fn mrs(rt: u32, reg: u32) -> u32 {
    0xd520_0000 | (reg << 5) | rt
}

/// `msr <sysreg>, xt`.
pub(crate) const fn msr(reg: u32, rt: u32) -> u32 {
    0xd500_0000 | (reg << 5) | rt
}

/// `add xd|sp, xn|sp, #imm12`.
pub(crate) const fn add_imm(rd: u32, rn: u32, imm: u32) -> u32 {
    0x9100_0000 | (imm << 10) | (rn << 5) | rd
}

/// `sub xd|sp, xn|sp, #imm12`.
pub(crate) const fn sub_imm(rd: u32, rn: u32, imm: u32) -> u32 {
    0xd100_0000 | (imm << 10) | (rn << 5) | rd
}

/// `orr xd, xn, xm`.
pub(crate) const fn orr(rd: u32, rn: u32, rm: u32) -> u32 {
    0xaa00_0000 | (rm << 16) | (rn << 5) | rd
}

/// `stp xt1, xt2, [xn, #imm]` (`imm` a multiple of 8, below 512).
pub(crate) const fn stp(t1: u32, t2: u32, rn: u32, imm: usize) -> u32 {
    0xa900_0000 | (((imm / 8) as u32 & 0x7f) << 15) | (t2 << 10) | (rn << 5) | t1
}

/// `ldp xt1, xt2, [xn, #imm]`.
pub(crate) const fn ldp(t1: u32, t2: u32, rn: u32, imm: usize) -> u32 {
    stp(t1, t2, rn, imm) | 1 << 22
}

/// `stp qt1, qt2, [xn, #imm]` (`imm` a multiple of 16, below 1024).
pub(crate) const fn stp_q(t1: u32, t2: u32, rn: u32, imm: usize) -> u32 {
    0xad00_0000 | (((imm / 16) as u32 & 0x7f) << 15) | (t2 << 10) | (rn << 5) | t1
}

/// `ldp qt1, qt2, [xn, #imm]`.
pub(crate) const fn ldp_q(t1: u32, t2: u32, rn: u32, imm: usize) -> u32 {
    stp_q(t1, t2, rn, imm) | 1 << 22
}

/// `str xt, [xn, #imm]` (`imm` a multiple of 8).
pub(crate) const fn str_x(rt: u32, rn: u32, imm: usize) -> u32 {
    0xf900_0000 | (((imm / 8) as u32) << 10) | (rn << 5) | rt
}

/// `ldr xt, [xn, #imm]`.
pub(crate) const fn ldr_x(rt: u32, rn: u32, imm: usize) -> u32 {
    str_x(rt, rn, imm) | 1 << 22
}

/// `adr xd, offset` (within ±1 MiB).
pub(crate) const fn adr(rd: u32, offset: i32) -> u32 {
    let o = offset as u32;
    0x1000_0000 | ((o & 3) << 29) | (((o >> 2) & 0x7_ffff) << 5) | rd
}

/// `cbnz xt, offset` (a multiple of 4 within ±1 MiB).
pub(crate) const fn cbnz(rt: u32, offset: i32) -> u32 {
    0xb500_0000 | ((((offset >> 2) as u32) & 0x7_ffff) << 5) | rt
}

/// `b offset` (`link` false) or `bl offset`, or `None` when `offset` is not
/// a multiple of 4 or beyond ±128 MiB.
pub(crate) fn branch(link: bool, offset: isize) -> Option<u32> {
    if offset % 4 != 0 || !(-(1 << 27)..1 << 27).contains(&offset) {
        return None;
    }
    let op = if link { 0x9400_0000 } else { 0x1400_0000 };
    Some(op | ((offset >> 2) as u32 & 0x03ff_ffff))
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

    /// `x0`-`x29` from the frame at `base`, then `x30` (the base may be
    /// `x30` itself: it is loaded last).
    fn restore_gprs(&mut self, base: u32) {
        for r in (0..30).step_by(2) {
            self.insn(ldp(r, r + 1, base, 8 * r as usize));
        }
        self.insn(ldr_x(X30, base, OFF_X30));
    }

    /// `q0`-`q31`, FPCR and FPSR to the frame (`save`) or back, or as many
    /// `nop`s without FP.
    fn fp(&mut self, save: bool, with_fp: bool) {
        if !with_fp {
            for _ in 0..19 {
                self.insn(NOP);
            }
            return;
        }
        for q in (0..32).step_by(2) {
            let at = OFF_Q + 16 * q as usize;
            self.insn(if save {
                stp_q(q, q + 1, SP, at)
            } else {
                ldp_q(q, q + 1, SP, at)
            });
        }
        if save {
            self.insn(mrs(X9, FPCR));
            self.insn(mrs(X10, FPSR));
            self.insn(stp(X9, X10, SP, OFF_FPCR));
        } else {
            self.insn(ldp(X9, X10, SP, OFF_FPCR));
            self.insn(msr(FPCR, X9));
            self.insn(msr(FPSR, X10));
        }
    }
}

/// The detour for `region` at `detour`, calling `entry` with `cookie`;
/// `with_fp`: save and restore the FP/SIMD registers.
pub(crate) fn build(
    region: &OptRegion,
    detour: usize,
    cookie: usize,
    mask_interrupts: bool,
    with_fp: bool,
    entry: usize,
    out: &mut [u8],
) -> Result<usize, SiteRule> {
    let out = out
        .get_mut(..DETOUR_LEN)
        .ok_or(SiteRule::BufferTooSmall { needed: DETOUR_LEN })?;
    let word = match region.original() {
        [a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]),
        _ => return Err(SiteRule::NotStepped { at: region.addr }),
    };
    if !matches!(decode_word(word), Verdict::Accept(i) if i.op == Op::Step) {
        return Err(SiteRule::NotStepped { at: region.addr });
    }
    let mut c = Code {
        buf: [0; DETOUR_LEN],
        len: 0,
    };
    // Save.
    c.insn(sub_imm(SP, SP, FRAME_LEN as u32));
    for r in (0..30).step_by(2) {
        c.insn(stp(r, r + 1, SP, 8 * r as usize));
    }
    c.insn(str_x(X30, SP, OFF_X30));
    c.insn(mrs(X9, NZCV));
    c.insn(mrs(X10, DAIF));
    c.insn(orr(X9, X9, X10));
    c.insn(str_x(X9, SP, OFF_PSTATE));
    c.insn(if mask_interrupts { MASK_DAIF } else { NOP });
    c.fp(true, with_fp);
    c.insn(add_imm(X0, SP, 0));
    debug_assert_eq!(c.len, ADR_AT);
    c.insn(adr(X1, (LITERALS - ADR_AT) as i32));
    debug_assert_eq!(c.len, CALL_AT);
    let call = entry.wrapping_sub(detour.wrapping_add(CALL_AT)) as isize;
    c.insn(branch(true, call).ok_or(SiteRule::OutOfReach)?);
    c.fp(false, with_fp);
    debug_assert_eq!(c.len, CBNZ_AT);
    c.insn(cbnz(X0, (RESUME_AT - CBNZ_AT) as i32));

    // Path (a).
    c.insn(ldr_x(X9, SP, OFF_PSTATE));
    c.insn(msr(NZCV, X9));
    c.insn(msr(DAIF, X9));
    c.restore_gprs(SP);
    c.insn(add_imm(SP, SP, FRAME_LEN as u32));
    debug_assert_eq!(c.len, DISPLACED_AT);
    c.insn(word);
    let back = region.end().wrapping_sub(detour.wrapping_add(c.len)) as isize;
    c.insn(branch(false, back).ok_or(SiteRule::OutOfReach)?);

    // Path (b).
    debug_assert_eq!(c.len, RESUME_AT);
    c.insn(add_imm(X30, SP, 0));
    c.insn(ldr_x(X0, X30, OFF_SP));
    c.insn(add_imm(SP, X0, 0));
    c.restore_gprs(X30);
    debug_assert_eq!(c.len, ERET_AT);
    c.insn(ERET);
    c.len = LITERALS;
    c.put(&(region.addr as u64).to_le_bytes());
    c.put(&(cookie as u64).to_le_bytes());
    debug_assert_eq!(c.len, DETOUR_LEN);
    out.copy_from_slice(&c.buf);
    Ok(DETOUR_LEN)
}

/// The `b` written at `addr` to reach `detour`.
pub(crate) fn jump(addr: usize, detour: usize, out: &mut [u8]) -> Result<usize, SiteRule> {
    const _: () = assert!(JUMP_LEN == 4);
    probe_hal::optimize::word_jump(addr, detour, super::REACH, |off| branch(false, off), out)
}
