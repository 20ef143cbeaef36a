//! A fallback decoder for the VEX-encoded AVX-512 opmask instructions
//! (`kmov*`, `kand*`, `kandn*`, `kor*`, `kxor*`, `kxnor*`, `knot*`,
//! `kortest*`, `ktest*`, `kadd*`, `kunpck*`, `kshift*`), which `yaxpeax-x86`
//! 2.2.0 rejects (see docs/x86-decoder-gaps.md).
//!
//! Without it they are refused as undecodable, and worse, the boundary walk
//! from a symbol's start stops at the first one, so every later instruction
//! of functions such as glibc's `__strlen_evex` is refused too.
//!
//! None of them touches rip, rflags.IF/TF or the stack: they compute on the
//! eight opmask registers, general registers and (for `kmov`) memory, and
//! `kortest`/`ktest` set ZF and CF. So each is stepped out of line like any
//! other SIMD instruction, its `[rip + disp32]` operand (only `kmov k, m` and
//! `kmov m, k` have a memory operand) relocated through the same
//! [`RipRelative`](crate::RipRelative) fix-up the yaxpeax-decoded
//! instructions get (`crate::decode` turns [`OpmaskInsn`] into it; this
//! module imports nothing from the rest of the crate).
//!
//! The rows come from the instruction pages of the Intel SDM Vol. 2
//! (KADDW/KADDB/KADDQ/KADDD, KANDW/…, KANDNW/…, KMOVW/KMOVB/KMOVQ/KMOVD,
//! KNOTW/…, KORW/…, KORTESTW/…, KSHIFTLW/…, KSHIFTRW/…, KTESTW/…,
//! KUNPCKBW/KUNPCKWD/KUNPCKDQ, KXNORW/…, KXORW/…), the VEX layout from
//! Vol. 2A §2.3.5 ("The VEX Prefix") and §2.3.2 (a 66, F2, F3, LOCK or REX
//! prefix before VEX raises #UD), and the operand rules from Vol. 2A §2.8,
//! exception types K20 (no memory operand: #UD unless ModRM.mod = 11b) and
//! K21 (with memory: `kmov k, m` / `kmov m, k`; `kmov m, k` with
//! ModRM.mod = 11b is #UD). ModRM/SIB/displacement layout: Vol. 2A §2.1.5
//! (Tables 2-2 and 2-3) and §2.2.1.6 (RIP-relative addressing).
//!
//! The decoder is deliberately strict: whatever it cannot place exactly in
//! a row (another map, pp, W or L, a vvvv that must be 1111b and is not, a
//! memory form where only registers are allowed) stays undecodable, which
//! is safe (refused). Its answers are checked against `iced-x86` by the
//! differential harness in tests/iced_oracle.

/// Longest x86 instruction (SDM Vol. 2A §2.1: 15 bytes; longer raises #GP).
const MAX_INSN_LEN: usize = 15;

/// VEX opcode map (VEX.mmmmm; the two-byte c5 form implies 0F).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VexMap {
    /// `0F`.
    M0F,
    /// `0F3A`.
    M0F3A,
}

/// The operand shape of a row, which decides what ModRM.mod and VEX.vvvv
/// may be and whether an imm8 follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `k1, k2, k3`: vvvv is k2, ModRM.mod = 11b (K20).
    ThreeK,
    /// `k1, k2`: vvvv = 1111b, ModRM.mod = 11b (K20).
    TwoK,
    /// `k1, k2/m`: vvvv = 1111b, any ModRM (K21).
    LoadK,
    /// `m, k1`: vvvv = 1111b, ModRM.mod != 11b (K21).
    StoreK,
    /// `k1, k2, imm8`: vvvv = 1111b, ModRM.mod = 11b, then an imm8 (K20).
    ShiftK,
}

/// One encoding: map, opcode, VEX.pp (0: none, 1: 66, 3: F2), VEX.W,
/// VEX.L, shape, and the mnemonic (documentation and tests).
struct Row {
    map: VexMap,
    opcode: u8,
    pp: u8,
    w: u8,
    l: u8,
    shape: Shape,
    mnemonic: &'static str,
}

const fn row(
    map: VexMap,
    opcode: u8,
    pp: u8,
    w: u8,
    l: u8,
    shape: Shape,
    mnemonic: &'static str,
) -> Row {
    Row {
        map,
        opcode,
        pp,
        w,
        l,
        shape,
        mnemonic,
    }
}

use Shape::{LoadK, ShiftK, StoreK, ThreeK, TwoK};
use VexMap::{M0F, M0F3A};

/// Every VEX opmask encoding, as listed on the SDM Vol. 2 instruction pages
/// (the "VEX.L1.66.0F.W0 41 /r" column). W0/W1 and pp none/66 pick the
/// word/quadword/byte/doubleword forms; 43, 48 and 49 of map 0F are not
/// opmask instructions and are not listed.
static ROWS: &[Row] = &[
    // KAND{W,Q,B,D} k1, k2, k3: VEX.L1.{NP,66}.0F.{W0,W1} 41 /r
    row(M0F, 0x41, 0, 0, 1, ThreeK, "kandw"),
    row(M0F, 0x41, 0, 1, 1, ThreeK, "kandq"),
    row(M0F, 0x41, 1, 0, 1, ThreeK, "kandb"),
    row(M0F, 0x41, 1, 1, 1, ThreeK, "kandd"),
    // KANDN{W,Q,B,D}: 42
    row(M0F, 0x42, 0, 0, 1, ThreeK, "kandnw"),
    row(M0F, 0x42, 0, 1, 1, ThreeK, "kandnq"),
    row(M0F, 0x42, 1, 0, 1, ThreeK, "kandnb"),
    row(M0F, 0x42, 1, 1, 1, ThreeK, "kandnd"),
    // KNOT{W,Q,B,D} k1, k2: VEX.L0 … 44
    row(M0F, 0x44, 0, 0, 0, TwoK, "knotw"),
    row(M0F, 0x44, 0, 1, 0, TwoK, "knotq"),
    row(M0F, 0x44, 1, 0, 0, TwoK, "knotb"),
    row(M0F, 0x44, 1, 1, 0, TwoK, "knotd"),
    // KOR{W,Q,B,D}: 45
    row(M0F, 0x45, 0, 0, 1, ThreeK, "korw"),
    row(M0F, 0x45, 0, 1, 1, ThreeK, "korq"),
    row(M0F, 0x45, 1, 0, 1, ThreeK, "korb"),
    row(M0F, 0x45, 1, 1, 1, ThreeK, "kord"),
    // KXNOR{W,Q,B,D}: 46
    row(M0F, 0x46, 0, 0, 1, ThreeK, "kxnorw"),
    row(M0F, 0x46, 0, 1, 1, ThreeK, "kxnorq"),
    row(M0F, 0x46, 1, 0, 1, ThreeK, "kxnorb"),
    row(M0F, 0x46, 1, 1, 1, ThreeK, "kxnord"),
    // KXOR{W,Q,B,D}: 47
    row(M0F, 0x47, 0, 0, 1, ThreeK, "kxorw"),
    row(M0F, 0x47, 0, 1, 1, ThreeK, "kxorq"),
    row(M0F, 0x47, 1, 0, 1, ThreeK, "kxorb"),
    row(M0F, 0x47, 1, 1, 1, ThreeK, "kxord"),
    // KADD{W,Q,B,D}: 4A
    row(M0F, 0x4a, 0, 0, 1, ThreeK, "kaddw"),
    row(M0F, 0x4a, 0, 1, 1, ThreeK, "kaddq"),
    row(M0F, 0x4a, 1, 0, 1, ThreeK, "kaddb"),
    row(M0F, 0x4a, 1, 1, 1, ThreeK, "kaddd"),
    // KUNPCKBW (66.W0), KUNPCKWD (NP.W0), KUNPCKDQ (NP.W1): 4B
    row(M0F, 0x4b, 1, 0, 1, ThreeK, "kunpckbw"),
    row(M0F, 0x4b, 0, 0, 1, ThreeK, "kunpckwd"),
    row(M0F, 0x4b, 0, 1, 1, ThreeK, "kunpckdq"),
    // KMOV{W,Q,B,D} k1, k2/m: VEX.L0 … 90
    row(M0F, 0x90, 0, 0, 0, LoadK, "kmovw"),
    row(M0F, 0x90, 0, 1, 0, LoadK, "kmovq"),
    row(M0F, 0x90, 1, 0, 0, LoadK, "kmovb"),
    row(M0F, 0x90, 1, 1, 0, LoadK, "kmovd"),
    // KMOV{W,Q,B,D} m, k1: 91
    row(M0F, 0x91, 0, 0, 0, StoreK, "kmovw"),
    row(M0F, 0x91, 0, 1, 0, StoreK, "kmovq"),
    row(M0F, 0x91, 1, 0, 0, StoreK, "kmovb"),
    row(M0F, 0x91, 1, 1, 0, StoreK, "kmovd"),
    // KMOV{W,B,D} k1, r32 and KMOVQ k1, r64: VEX.L0.{NP,66,F2}.0F.{W0,W1} 92
    row(M0F, 0x92, 0, 0, 0, TwoK, "kmovw"),
    row(M0F, 0x92, 1, 0, 0, TwoK, "kmovb"),
    row(M0F, 0x92, 3, 0, 0, TwoK, "kmovd"),
    row(M0F, 0x92, 3, 1, 0, TwoK, "kmovq"),
    // KMOV{W,B,D} r32, k1 and KMOVQ r64, k1: 93
    row(M0F, 0x93, 0, 0, 0, TwoK, "kmovw"),
    row(M0F, 0x93, 1, 0, 0, TwoK, "kmovb"),
    row(M0F, 0x93, 3, 0, 0, TwoK, "kmovd"),
    row(M0F, 0x93, 3, 1, 0, TwoK, "kmovq"),
    // KORTEST{W,Q,B,D} k1, k2: VEX.L0 … 98
    row(M0F, 0x98, 0, 0, 0, TwoK, "kortestw"),
    row(M0F, 0x98, 0, 1, 0, TwoK, "kortestq"),
    row(M0F, 0x98, 1, 0, 0, TwoK, "kortestb"),
    row(M0F, 0x98, 1, 1, 0, TwoK, "kortestd"),
    // KTEST{W,Q,B,D} k1, k2: 99
    row(M0F, 0x99, 0, 0, 0, TwoK, "ktestw"),
    row(M0F, 0x99, 0, 1, 0, TwoK, "ktestq"),
    row(M0F, 0x99, 1, 0, 0, TwoK, "ktestb"),
    row(M0F, 0x99, 1, 1, 0, TwoK, "ktestd"),
    // KSHIFTR{B,W} k1, k2, imm8: VEX.L0.66.0F3A.{W0,W1} 30 /r ib
    row(M0F3A, 0x30, 1, 0, 0, ShiftK, "kshiftrb"),
    row(M0F3A, 0x30, 1, 1, 0, ShiftK, "kshiftrw"),
    // KSHIFTR{D,Q}: 31
    row(M0F3A, 0x31, 1, 0, 0, ShiftK, "kshiftrd"),
    row(M0F3A, 0x31, 1, 1, 0, ShiftK, "kshiftrq"),
    // KSHIFTL{B,W}: 32
    row(M0F3A, 0x32, 1, 0, 0, ShiftK, "kshiftlb"),
    row(M0F3A, 0x32, 1, 1, 0, ShiftK, "kshiftlw"),
    // KSHIFTL{D,Q}: 33
    row(M0F3A, 0x33, 1, 0, 0, ShiftK, "kshiftld"),
    row(M0F3A, 0x33, 1, 1, 0, ShiftK, "kshiftlq"),
];

/// An opmask instruction the fallback decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpmaskInsn {
    /// Length in bytes, prefixes included.
    pub(crate) len: usize,
    /// Its `[rip + disp32]` operand, if it has one.
    pub(crate) rip_relative: Option<RipDisp>,
    /// The mnemonic, from the table.
    pub(crate) mnemonic: &'static str,
}

/// A `[rip + disp32]` operand: where its displacement sits and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RipDisp {
    /// Offset of the displacement within the instruction.
    pub(crate) offset: u8,
    /// The displacement as encoded.
    pub(crate) disp: i32,
    /// A 0x67 prefix makes it `[eip + disp32]`.
    pub(crate) eip: bool,
}

/// Prefixes allowed before a VEX prefix: segment overrides and 67
/// (SDM Vol. 2A §2.3.2: 66, F2, F3, LOCK and REX before VEX raise #UD;
/// a REX that another prefix follows is ignored, so it may come earlier).
fn allowed_before_vex(b: u8) -> bool {
    matches!(b, 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x67)
}

fn is_rex(b: u8) -> bool {
    (0x40..=0x4f).contains(&b)
}

/// Decode the opmask instruction at `bytes[0]`, or `None` if the bytes are
/// not one (or end too early).
pub(crate) fn decode(bytes: &[u8]) -> Option<OpmaskInsn> {
    let bytes = &bytes[..bytes.len().min(MAX_INSN_LEN)];
    let mut i = 0;
    let mut address_size = false;
    loop {
        let b = *bytes.get(i)?;
        if allowed_before_vex(b) {
            address_size |= b == 0x67;
        } else if is_rex(b) {
            // A REX is ignored when a legacy prefix follows it (SDM Vol. 2A
            // §2.2.1; so are REX runs); right before VEX it is #UD.
            let mut j = i + 1;
            while is_rex(*bytes.get(j)?) {
                j += 1;
            }
            if !allowed_before_vex(bytes[j]) {
                return None;
            }
        } else {
            break;
        }
        i += 1;
    }
    // VEX: c5 [R vvvv L pp] (map 0F, W0) or c4 [R X B mmmmm] [W vvvv L pp].
    // R, X, B and vvvv are stored inverted.
    let escape = i;
    let first = *bytes.get(escape + 1)?;
    let vex_r = first & 0x80 == 0;
    let (map, w, payload, opcode_at) = match bytes[escape] {
        0xc5 => (M0F, 0, first, escape + 2),
        0xc4 => {
            let map = match first & 0x1f {
                1 => M0F,
                3 => M0F3A,
                _ => return None,
            };
            let payload = *bytes.get(escape + 2)?;
            (map, payload >> 7, payload, escape + 3)
        }
        _ => return None,
    };
    let vvvv = !(payload >> 3) & 0xf; // 0: no register
    let vvvv_unused = vvvv == 0;
    let l = (payload >> 2) & 1;
    let pp = payload & 3;
    let opcode = *bytes.get(opcode_at)?;
    let modrm_at = opcode_at + 1;
    let modrm = *bytes.get(modrm_at)?;
    let row = ROWS
        .iter()
        .find(|r| r.map == map && r.opcode == opcode && r.pp == pp && r.w == w && r.l == l)?;
    let register_form = modrm >> 6 == 3;
    // There are only k0-k7: VEX.R (or the top bit of vvvv) naming a k8-k15
    // is #UD. ModRM.reg is a k register in every row but `kmov r, k` (93),
    // where it is the general register and VEX.R extends it.
    let reg_is_k = !(map == M0F && opcode == 0x93);
    if reg_is_k && vex_r {
        return None;
    }
    let shape_ok = match row.shape {
        ThreeK => register_form && vvvv < 8,
        TwoK | ShiftK => register_form && vvvv_unused,
        LoadK => vvvv_unused,
        StoreK => !register_form && vvvv_unused,
    };
    if !shape_ok {
        return None;
    }
    let (addr_len, rip_disp_at) = address_bytes(modrm, bytes.get(modrm_at + 1).copied())?;
    let imm_len = usize::from(row.shape == ShiftK);
    let len = modrm_at + 1 + addr_len + imm_len;
    if len > bytes.len() {
        return None;
    }
    let rip_relative = rip_disp_at.map(|at| {
        let at = modrm_at + at;
        RipDisp {
            offset: at as u8,
            disp: i32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]),
            eip: address_size,
        }
    });
    Some(OpmaskInsn {
        len,
        rip_relative,
        mnemonic: row.mnemonic,
    })
}

/// Bytes after the ModRM byte taken by SIB and displacement (32/64-bit
/// addressing, SDM Vol. 2A Tables 2-2 and 2-3), and the offset of a
/// rip-relative disp32 from the ModRM byte. `None` if the SIB byte is
/// needed and missing.
fn address_bytes(modrm: u8, sib: Option<u8>) -> Option<(usize, Option<usize>)> {
    let mode = modrm >> 6;
    let rm = modrm & 7;
    Some(match (mode, rm) {
        (3, _) => (0, None),
        (0, 5) => (4, Some(1)), // [rip + disp32]
        (0, 4) => {
            // SIB; base 101b with mod 00b means disp32 and no base.
            if sib? & 7 == 5 {
                (5, None)
            } else {
                (1, None)
            }
        }
        (0, _) => (0, None),
        (1, 4) => (2, None),
        (1, _) => (1, None),
        (_, 4) => (5, None),
        _ => (4, None),
    })
}

/// Number of encodings in the table (for tests).
#[cfg(test)]
pub(crate) fn rows() -> usize {
    ROWS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_reproducers() {
        // kmovd eax, k0 (c5 fb 93 c0)
        let k = decode(&[0xc5, 0xfb, 0x93, 0xc0, 0x90]).unwrap();
        assert_eq!((k.len, k.mnemonic, k.rip_relative), (4, "kmovd", None));
        // kmovq k1, rbx (c4 e1 fb 92 cb)
        let k = decode(&[0xc4, 0xe1, 0xfb, 0x92, 0xcb]).unwrap();
        assert_eq!((k.len, k.mnemonic), (5, "kmovq"));
        // kortestq k0, k0 (c4 e1 f8 98 c0)
        let k = decode(&[0xc4, 0xe1, 0xf8, 0x98, 0xc0]).unwrap();
        assert_eq!((k.len, k.mnemonic), (5, "kortestq"));
        // kshiftrd k1, k2, 3 (c4 e3 79 31 ca 03)
        let k = decode(&[0xc4, 0xe3, 0x79, 0x31, 0xca, 0x03]).unwrap();
        assert_eq!((k.len, k.mnemonic), (6, "kshiftrd"));
    }

    #[test]
    fn memory_forms_and_rip_relative() {
        // kmovw k1, [rip + 0x11223344]
        let k = decode(&[0xc5, 0xf8, 0x90, 0x0d, 0x44, 0x33, 0x22, 0x11]).unwrap();
        assert_eq!(k.len, 8);
        assert_eq!(
            k.rip_relative,
            Some(RipDisp {
                offset: 4,
                disp: 0x1122_3344,
                eip: false
            })
        );
        // 67 kmovq [eip - 16], k2 via c4
        let k = decode(&[0x67, 0xc4, 0xe1, 0xf8, 0x91, 0x15, 0xf0, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(k.len, 10);
        assert_eq!(
            k.rip_relative,
            Some(RipDisp {
                offset: 6,
                disp: -16,
                eip: true
            })
        );
        // kmovd k1, [rsp + 8]: SIB + disp8
        let k = decode(&[0xc4, 0xe1, 0xf9, 0x90, 0x4c, 0x24, 0x08]).unwrap();
        assert_eq!((k.len, k.rip_relative), (7, None));
        // kmovb k1, [disp32] (SIB, no base)
        let k = decode(&[0xc5, 0xf9, 0x90, 0x0c, 0x25, 1, 2, 3, 4]).unwrap();
        assert_eq!(k.len, 9);
        // kmovw k1, [rax + disp32]
        let k = decode(&[0xc5, 0xf8, 0x90, 0x88, 1, 2, 3, 4]).unwrap();
        assert_eq!(k.len, 8);
    }

    #[test]
    fn what_the_sdm_makes_undefined_stays_undecodable() {
        // kmovw [rax], k1 in register form (91 with mod 11b)
        assert_eq!(decode(&[0xc5, 0xf8, 0x91, 0xc8]), None);
        // kandw with a memory operand
        assert_eq!(decode(&[0xc5, 0xfc, 0x41, 0x00]), None);
        // kandw with L0
        assert_eq!(decode(&[0xc5, 0xf8, 0x41, 0xc1]), None);
        // knotw with vvvv != 1111b
        assert_eq!(decode(&[0xc5, 0xf0, 0x44, 0xc1]), None);
        // korw k9 (VEX.R set), korw with vvvv naming k8
        assert_eq!(decode(&[0xc5, 0x7c, 0x45, 0xc1]), None);
        assert_eq!(decode(&[0xc5, 0xbc, 0x45, 0xc1]), None);
        // ... but kmovd r8d, k0 is fine: 93's ModRM.reg is a GPR
        assert_eq!(decode(&[0xc5, 0x7b, 0x93, 0xc0]).map(|k| k.len), Some(4));
        // 66 (or REX) before VEX
        assert_eq!(decode(&[0x66, 0xc5, 0xfb, 0x93, 0xc0]), None);
        assert_eq!(decode(&[0x48, 0xc5, 0xfb, 0x93, 0xc0]), None);
        assert_eq!(decode(&[0x26, 0x48, 0xc5, 0xfb, 0x93, 0xc0]), None);
        // ... but a REX that a segment prefix follows is ignored
        let k = decode(&[0x46, 0x26, 0xc5, 0xfb, 0x93, 0xc0]).unwrap();
        assert_eq!(k.len, 6);
        let k = decode(&[0x41, 0x4f, 0x67, 0xc5, 0xfb, 0x93, 0xc0]).unwrap();
        assert_eq!(k.len, 7);
        // kmovw k, r with F3, 0f 43, map 0F38
        assert_eq!(decode(&[0xc5, 0xfa, 0x92, 0xc0]), None);
        assert_eq!(decode(&[0xc5, 0xfc, 0x43, 0xc0]), None);
        assert_eq!(decode(&[0xc4, 0xe2, 0x78, 0x92, 0xc0]), None);
        // truncated
        assert_eq!(decode(&[0xc5, 0xf8, 0x90, 0x05, 0, 0]), None);
        assert_eq!(decode(&[0xc4, 0xe3, 0x79, 0x31, 0xca]), None);
    }

    #[test]
    fn table_has_no_duplicate_encodings() {
        for (i, a) in ROWS.iter().enumerate() {
            for b in &ROWS[i + 1..] {
                assert!(
                    (a.map, a.opcode, a.pp, a.w, a.l) != (b.map, b.opcode, b.pp, b.w, b.l),
                    "{} and {} share an encoding",
                    a.mnemonic,
                    b.mnemonic
                );
            }
        }
        assert_eq!(rows(), 63);
    }
}
