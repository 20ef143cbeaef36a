//! Data processing – scalar floating point and Advanced SIMD (Arm ARM
//! C4.1.90, top-level `op0` = x111), class by class. Nothing here reads or
//! writes the pc, so every allocated row is stepped; the words no row
//! allocates are refused as undecodable.
//!
//! Each class is matched by its encoding diagram (bit 31 first), in the
//! order of the group's table; within a class, `a` (bit 23) and `sz` (bit
//! 22) are the two halves of `size` in the floating-point rows. Optional
//! features (FEAT_FP16, FEAT_DotProd, FEAT_FHM, FEAT_I8MM, FEAT_BF16,
//! FEAT_FCMA, FEAT_FRINTTS, FEAT_JSCVT, FEAT_SHA3, FEAT_SM3, FEAT_SM4,
//! FEAT_SHA512, FEAT_RDM) count as allocated.

use super::{s, table, u, Entry};

const ANY: &str = "xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx";

/// C4.1.90 "Data Processing -- Scalar Floating-Point and Advanced SIMD".
pub(super) const SIMD_AND_FP: &[Entry] = &[
    // Cryptographic AES.
    table("01001110 xx 10100 xxxxx 10 xxxxx xxxxx", "aes", AES),
    // Advanced SIMD (vector).
    table(
        "0 x x 01110 xx 1 xxxxx xxxxx 1 xxxxx xxxxx",
        "three same",
        V3SAME,
    ),
    table(
        "0 x x 01110 xx 1 xxxxx xxxx 00 xxxxx xxxxx",
        "three different",
        V3DIFF,
    ),
    table(
        "0 x x 01110 xx 10000 xxxxx 10 xxxxx xxxxx",
        "two-register misc",
        V2MISC,
    ),
    table(
        "0 x x 01110 xx 11000 xxxxx 10 xxxxx xxxxx",
        "across lanes",
        VACROSS,
    ),
    table(
        "0 x x 01110 x 111100 xxxxx 10 xxxxx xxxxx",
        "two-register misc fp16",
        V2MISC16,
    ),
    table(
        "0 x x 01110 x 10 xxxxx 00 xxx 1 xxxxx xxxxx",
        "three same fp16",
        V3SAME16,
    ),
    table(
        "0 x x 01110 xx 0 xxxxx 1 xxxx 1 xxxxx xxxxx",
        "three same extra",
        V3EXTRA,
    ),
    table("0 x x 01110 000 xxxxx 0 xxxx 1 xxxxx xxxxx", "copy", VCOPY),
    table("0 x 1 01110 xx 0 xxxxx 0 xxxx 0 xxxxx xxxxx", "ext", VEXT),
    table(
        "0 x 0 01110 xx 0 xxxxx 0 xxx 00 xxxxx xxxxx",
        "tbl/tbx",
        VTBL,
    ),
    table(
        "0 x 0 01110 xx 0 xxxxx 0 xxx 10 xxxxx xxxxx",
        "permute",
        VPERM,
    ),
    table(
        "0 x x 0111100000 xxx xxxx x 1 xxxxx xxxxx",
        "modified immediate",
        VMODIMM,
    ),
    table(
        "0 x x 011110 xxxx xxx xxxxx 1 xxxxx xxxxx",
        "shift by immediate",
        VSHIFT,
    ),
    table(
        "0 x x 01111 xx x x xxxx xxxx x 0 xxxxx xxxxx",
        "by element",
        VELEM,
    ),
    // Cryptographic SHA, Advanced SIMD scalar.
    table(
        "01011110 xx 0 xxxxx 0 xxx 00 xxxxx xxxxx",
        "sha three-register",
        SHA3REG,
    ),
    table(
        "01011110 xx 10100 xxxxx 10 xxxxx xxxxx",
        "sha two-register",
        SHA2REG,
    ),
    table(
        "01 x 11110000 xxxxx 0 xxxx 1 xxxxx xxxxx",
        "scalar copy",
        SCOPY,
    ),
    table(
        "01 x 11110 x 10 xxxxx 00 xxx 1 xxxxx xxxxx",
        "scalar three same fp16",
        S3SAME16,
    ),
    table(
        "01 x 11110 x 111100 xxxxx 10 xxxxx xxxxx",
        "scalar two-register misc fp16",
        S2MISC16,
    ),
    table(
        "01 x 11110 xx 0 xxxxx 1 xxxx 1 xxxxx xxxxx",
        "scalar three same extra",
        S3EXTRA,
    ),
    table(
        "01 x 11110 xx 10000 xxxxx 10 xxxxx xxxxx",
        "scalar two-register misc",
        S2MISC,
    ),
    table(
        "01 x 11110 xx 11000 xxxxx 10 xxxxx xxxxx",
        "scalar pairwise",
        SPAIR,
    ),
    table(
        "01 x 11110 xx 1 xxxxx xxxx 00 xxxxx xxxxx",
        "scalar three different",
        S3DIFF,
    ),
    table(
        "01 x 11110 xx 1 xxxxx xxxxx 1 xxxxx xxxxx",
        "scalar three same",
        S3SAME,
    ),
    table(
        "01 x 111110 xxxx xxx xxxxx 1 xxxxx xxxxx",
        "scalar shift by immediate",
        SSHIFT,
    ),
    table(
        "01 x 11111 xx x x xxxx xxxx x 0 xxxxx xxxxx",
        "scalar by element",
        SELEM,
    ),
    // Floating point (scalar).
    table(
        "x 0 x 11110 xx 0 xx xxx xxxxxx xxxxx xxxxx",
        "fp/fixed conversion",
        FPFIXED,
    ),
    table(
        "x 0 x 11110 xx 1 xx xxx 000000 xxxxx xxxxx",
        "fp/integer conversion",
        FPINT,
    ),
    table(
        "x 0 x 11110 xx 1 xxxxxx 10000 xxxxx xxxxx",
        "fp 1 source",
        FP1,
    ),
    table(
        "x 0 x 11110 xx 1 xxxxx xx 1000 xxxxx xxxxx",
        "fp compare",
        FPCMP,
    ),
    table(
        "x 0 x 11110 xx 1 xxxxxxxx 100 xxxxx xxxxx",
        "fp immediate",
        FPIMM,
    ),
    table(
        "x 0 x 11110 xx 1 xxxxx xxxx 01 xxxxx xxxxx",
        "fp conditional compare",
        FP_M0_S0,
    ),
    table(
        "x 0 x 11110 xx 1 xxxxx xxxx 10 xxxxx xxxxx",
        "fp 2 source",
        FP2,
    ),
    table(
        "x 0 x 11110 xx 1 xxxxx xxxx 11 xxxxx xxxxx",
        "fp conditional select",
        FP_M0_S0,
    ),
    table(
        "x 0 x 11111 xx x xxxxx x xxxxx xxxxx xxxxx",
        "fp 3 source",
        FP_M0_S0,
    ),
    // Cryptographic three-register imm2, SHA512, four-register, XAR.
    table("11001110 xxxxxxxx xxxxxxxx xxxxxxxx", "crypto", CRYPTO),
    u(ANY),
];

/// Cryptographic AES: size = 00, opcode = 001xx.
const AES: &[Entry] = &[
    s(
        "01001110 00 10100 001xx 10 xxxxx xxxxx",
        "aese/aesd/aesmc/aesimc",
    ),
    u(ANY),
];

/// Advanced SIMD three same: `0 Q U 01110 size 1 Rm opcode 1 Rn Rd`.
const V3SAME: &[Entry] = &[
    // size = 11 reserved.
    u("0 x x 01110 11 1 xxxxx 00x00 1 xxxxx xxxxx"),
    u("0 x x 01110 11 1 xxxxx 00010 1 xxxxx xxxxx"),
    u("0 x x 01110 11 1 xxxxx 011xx 1 xxxxx xxxxx"),
    u("0 x x 01110 11 1 xxxxx 1001x 1 xxxxx xxxxx"),
    u("0 x x 01110 11 1 xxxxx 1010x 1 xxxxx xxxxx"),
    // pmul: size = 00 only.
    u("0 x 1 01110 01 1 xxxxx 10011 1 xxxxx xxxxx"),
    u("0 x 1 01110 10 1 xxxxx 10011 1 xxxxx xxxxx"),
    // sqdmulh, sqrdmulh: size = 01, 10.
    u("0 x x 01110 00 1 xxxxx 10110 1 xxxxx xxxxx"),
    u("0 x x 01110 11 1 xxxxx 10110 1 xxxxx xxxxx"),
    u("0 x 1 01110 xx 1 xxxxx 10111 1 xxxxx xxxxx"),
    // size:Q = 110 reserved for 64-bit elements.
    u("0 0 x 01110 11 1 xxxxx 00x01 1 xxxxx xxxxx"),
    u("0 0 x 01110 11 1 xxxxx 0011x 1 xxxxx xxxxx"),
    u("0 0 x 01110 11 1 xxxxx 010xx 1 xxxxx xxxxx"),
    u("0 0 x 01110 11 1 xxxxx 1000x 1 xxxxx xxxxx"),
    u("0 0 x 01110 11 1 xxxxx 10111 1 xxxxx xxxxx"),
    // FEAT_FHM: fmlal, fmlsl (U = 0), fmlal2, fmlsl2 (U = 1), any Q. The
    // Arm ARM has sz (bit 22) = 0; binutils ignores it, and a stepped copy
    // of an sz = 1 word raises the same exception as the original, so both
    // are taken.
    s("0 x 0 01110 xx 1 xxxxx 11101 1 xxxxx xxxxx", "fmlal/fmlsl"),
    s(
        "0 x 1 01110 xx 1 xxxxx 11001 1 xxxxx xxxxx",
        "fmlal2/fmlsl2",
    ),
    // Floating point: sz:Q = 10 reserved, and the holes of the a, U table.
    u("0 0 x 01110 x1 1 xxxxx 11xxx 1 xxxxx xxxxx"),
    u("0 x 0 01110 1x 1 xxxxx 11011 1 xxxxx xxxxx"),
    u("0 x 0 01110 1x 1 xxxxx 11100 1 xxxxx xxxxx"),
    u("0 x 1 01110 1x 1 xxxxx 11011 1 xxxxx xxxxx"),
    u("0 x 1 01110 1x 1 xxxxx 11111 1 xxxxx xxxxx"),
    s(ANY, "advanced simd three same"),
];

/// Advanced SIMD three different: `0 Q U 01110 size 1 Rm opcode 00 Rn Rd`.
const V3DIFF: &[Entry] = &[
    u("0 x x 01110 xx 1 xxxxx 1111 00 xxxxx xxxxx"),
    u("0 x 1 01110 xx 1 xxxxx 1xx1 00 xxxxx xxxxx"),
    u("0 x 1 01110 xx 1 xxxxx 1110 00 xxxxx xxxxx"),
    // pmull: size = 00 or 11 (FEAT_PMULL).
    s("0 x 0 01110 00 1 xxxxx 1110 00 xxxxx xxxxx", "pmull"),
    s("0 x 0 01110 11 1 xxxxx 1110 00 xxxxx xxxxx", "pmull"),
    u("0 x 0 01110 xx 1 xxxxx 1110 00 xxxxx xxxxx"),
    // sqdmlal, sqdmlsl, sqdmull: size = 01, 10.
    u("0 x 0 01110 00 1 xxxxx 1xx1 00 xxxxx xxxxx"),
    u("0 x x 01110 11 1 xxxxx xxxx 00 xxxxx xxxxx"),
    s(ANY, "advanced simd three different"),
];

/// Advanced SIMD two-register miscellaneous: `0 Q U 01110 size 10000
/// opcode 10 Rn Rd`.
const V2MISC: &[Entry] = &[
    u("0 x x 01110 11 10000 00x00 10 xxxxx xxxxx"),
    u("0 x x 01110 11 10000 00x10 10 xxxxx xxxxx"),
    u("0 x x 01110 11 10000 1001x 10 xxxxx xxxxx"),
    u("0 x x 01110 11 10000 10100 10 xxxxx xxxxx"),
    // rev16 (size 00), rev32 (size 0x), cnt (00), not/rbit (00, 01).
    u("0 x 0 01110 01 10000 00x01 10 xxxxx xxxxx"),
    u("0 x 0 01110 1x 10000 00x01 10 xxxxx xxxxx"),
    u("0 x 1 01110 1x 10000 00000 10 xxxxx xxxxx"),
    u("0 x 1 01110 1x 10000 00101 10 xxxxx xxxxx"),
    u("0 x 1 01110 xx 10000 00001 10 xxxxx xxxxx"),
    // size:Q = 110 reserved for 64-bit elements.
    u("0 0 x 01110 11 10000 00x11 10 xxxxx xxxxx"),
    u("0 0 x 01110 11 10000 010xx 10 xxxxx xxxxx"),
    u("0 x 1 01110 xx 10000 01010 10 xxxxx xxxxx"),
    u("0 x 0 01110 xx 10000 10011 10 xxxxx xxxxx"),
    // Floating-point compare with zero, fabs, fneg: a = 1.
    u("0 x x 01110 0x 10000 011xx 10 xxxxx xxxxx"),
    u("0 x 1 01110 xx 10000 01110 10 xxxxx xxxxx"),
    u("0 0 x 01110 11 10000 011xx 10 xxxxx xxxxx"),
    u("0 x x 01110 xx 10000 1000x 10 xxxxx xxxxx"),
    u("0 x x 01110 xx 10000 10101 10 xxxxx xxxxx"),
    // fcvtn, bfcvtn (size 10), fcvtxn (size 01), fcvtl.
    u("0 x 0 01110 11 10000 10110 10 xxxxx xxxxx"),
    u("0 x 1 01110 00 10000 10110 10 xxxxx xxxxx"),
    u("0 x 1 01110 1x 10000 10110 10 xxxxx xxxxx"),
    u("0 x 0 01110 1x 10000 10111 10 xxxxx xxxxx"),
    u("0 x 1 01110 xx 10000 10111 10 xxxxx xxxxx"),
    u("0 x 1 01110 1x 10000 11000 10 xxxxx xxxxx"),
    u("0 x x 01110 11 10000 11100 10 xxxxx xxxxx"),
    u("0 x x 01110 1x 10000 11110 10 xxxxx xxxxx"),
    u("0 x 0 01110 1x 10000 11111 10 xxxxx xxxxx"),
    u("0 0 x 01110 x1 10000 11xxx 10 xxxxx xxxxx"),
    s(ANY, "advanced simd two-register misc"),
];

/// Advanced SIMD across lanes: `0 Q U 01110 size 11000 opcode 10 Rn Rd`.
const VACROSS: &[Entry] = &[
    s("0 x x 01110 0x 11000 00011 10 xxxxx xxxxx", "saddlv/uaddlv"),
    s("0 1 x 01110 10 11000 00011 10 xxxxx xxxxx", "saddlv/uaddlv"),
    s(
        "0 x x 01110 0x 11000 x1010 10 xxxxx xxxxx",
        "smaxv/sminv/umaxv/uminv",
    ),
    s(
        "0 1 x 01110 10 11000 x1010 10 xxxxx xxxxx",
        "smaxv/sminv/umaxv/uminv",
    ),
    s("0 x 0 01110 0x 11000 11011 10 xxxxx xxxxx", "addv"),
    s("0 1 0 01110 10 11000 11011 10 xxxxx xxxxx", "addv"),
    s(
        "0 x 0 01110 x0 11000 01100 10 xxxxx xxxxx",
        "fmaxnmv/fminnmv (h)",
    ),
    s(
        "0 x 0 01110 x0 11000 01111 10 xxxxx xxxxx",
        "fmaxv/fminv (h)",
    ),
    s(
        "0 1 1 01110 x0 11000 01100 10 xxxxx xxxxx",
        "fmaxnmv/fminnmv",
    ),
    s("0 1 1 01110 x0 11000 01111 10 xxxxx xxxxx", "fmaxv/fminv"),
    u(ANY),
];

/// Advanced SIMD two-register miscellaneous (FP16): `0 Q U 01110 a 111100
/// opcode 10 Rn Rd`.
const V2MISC16: &[Entry] = &[
    s(
        "0 x x 01110 0 111100 110xx 10 xxxxx xxxxx",
        "frint/fcvt (h)",
    ),
    s(
        "0 x x 01110 0 111100 1110x 10 xxxxx xxxxx",
        "fcvta/cvtf (h)",
    ),
    s("0 x 0 01110 1 111100 011xx 10 xxxxx xxxxx", "fcm*/fabs (h)"),
    s(
        "0 x 0 01110 1 111100 110xx 10 xxxxx xxxxx",
        "frint/fcvt (h)",
    ),
    s("0 x 1 01110 1 111100 11001 10 xxxxx xxxxx", "frinti (h)"),
    s(
        "0 x 1 01110 1 111100 1101x 10 xxxxx xxxxx",
        "fcvtpu/fcvtzu (h)",
    ),
    s(
        "0 x x 01110 1 111100 11101 10 xxxxx xxxxx",
        "frecpe/frsqrte (h)",
    ),
    s("0 x 1 01110 1 111100 11111 10 xxxxx xxxxx", "fsqrt (h)"),
    s(
        "0 x 1 01110 1 111100 0110x 10 xxxxx xxxxx",
        "fcmge/fcmle (h)",
    ),
    s("0 x 1 01110 1 111100 01111 10 xxxxx xxxxx", "fneg (h)"),
    u(ANY),
];

/// Advanced SIMD three same (FP16): `0 Q U 01110 a 10 Rm 00 opcode 1 Rn
/// Rd`.
const V3SAME16: &[Entry] = &[
    u("0 x 0 01110 0 10 xxxxx 00 101 1 xxxxx xxxxx"),
    u("0 x 0 01110 1 10 xxxxx 00 011 1 xxxxx xxxxx"),
    u("0 x 0 01110 1 10 xxxxx 00 10x 1 xxxxx xxxxx"),
    u("0 x 1 01110 x 10 xxxxx 00 001 1 xxxxx xxxxx"),
    u("0 x 1 01110 1 10 xxxxx 00 011 1 xxxxx xxxxx"),
    u("0 x 1 01110 1 10 xxxxx 00 111 1 xxxxx xxxxx"),
    s(ANY, "advanced simd three same (h)"),
];

/// Advanced SIMD three same extra: `0 Q U 01110 size 0 Rm 1 opcode 1 Rn
/// Rd`.
const V3EXTRA: &[Entry] = &[
    s(
        "0 x 1 01110 01 0 xxxxx 1 000x 1 xxxxx xxxxx",
        "sqrdmlah/sqrdmlsh",
    ),
    s(
        "0 x 1 01110 10 0 xxxxx 1 000x 1 xxxxx xxxxx",
        "sqrdmlah/sqrdmlsh",
    ),
    s("0 x x 01110 10 0 xxxxx 1 0010 1 xxxxx xxxxx", "sdot/udot"),
    s("0 x 0 01110 10 0 xxxxx 1 0011 1 xxxxx xxxxx", "usdot"),
    s("0 1 x 01110 10 0 xxxxx 1 0100 1 xxxxx xxxxx", "smmla/ummla"),
    s("0 1 0 01110 10 0 xxxxx 1 0101 1 xxxxx xxxxx", "usmmla"),
    s("0 x 1 01110 01 0 xxxxx 1 10xx 1 xxxxx xxxxx", "fcmla"),
    s("0 x 1 01110 10 0 xxxxx 1 10xx 1 xxxxx xxxxx", "fcmla"),
    s("0 1 1 01110 11 0 xxxxx 1 10xx 1 xxxxx xxxxx", "fcmla"),
    s("0 x 1 01110 01 0 xxxxx 1 11x0 1 xxxxx xxxxx", "fcadd"),
    s("0 x 1 01110 10 0 xxxxx 1 11x0 1 xxxxx xxxxx", "fcadd"),
    s("0 1 1 01110 11 0 xxxxx 1 11x0 1 xxxxx xxxxx", "fcadd"),
    s("0 x 1 01110 01 0 xxxxx 1 1111 1 xxxxx xxxxx", "bfdot"),
    s("0 1 1 01110 01 0 xxxxx 1 1101 1 xxxxx xxxxx", "bfmmla"),
    s("0 x 1 01110 11 0 xxxxx 1 1111 1 xxxxx xxxxx", "bfmlal"),
    u(ANY),
];

/// Advanced SIMD copy: `0 Q op 01110000 imm5 0 imm4 1 Rn Rd`.
const VCOPY: &[Entry] = &[
    u("0 x x 01110000 x0000 0 xxxx 1 xxxxx xxxxx"),
    u("0 0 0 01110000 x1000 0 000x 1 xxxxx xxxxx"),
    s("0 x 0 01110000 xxxxx 0 000x 1 xxxxx xxxxx", "dup"),
    s("0 x 0 01110000 xxxx1 0 0101 1 xxxxx xxxxx", "smov"),
    s("0 x 0 01110000 xxx10 0 0101 1 xxxxx xxxxx", "smov"),
    s("0 1 0 01110000 xx100 0 0101 1 xxxxx xxxxx", "smov"),
    s("0 0 0 01110000 xxxx1 0 0111 1 xxxxx xxxxx", "umov"),
    s("0 0 0 01110000 xxx10 0 0111 1 xxxxx xxxxx", "umov"),
    s("0 0 0 01110000 xx100 0 0111 1 xxxxx xxxxx", "umov"),
    s("0 1 0 01110000 x1000 0 0111 1 xxxxx xxxxx", "umov"),
    s("0 1 0 01110000 xxxxx 0 0011 1 xxxxx xxxxx", "ins (general)"),
    s("0 1 1 01110000 xxxxx 0 xxxx 1 xxxxx xxxxx", "ins (element)"),
    u(ANY),
];

/// Advanced SIMD extract: `0 Q 101110 op2 0 Rm 0 imm4 0 Rn Rd`.
const VEXT: &[Entry] = &[
    u("0 0 101110 00 0 xxxxx 0 1xxx 0 xxxxx xxxxx"),
    s("0 x 101110 00 0 xxxxx 0 xxxx 0 xxxxx xxxxx", "ext"),
    u(ANY),
];

/// Advanced SIMD table lookup: `0 Q 001110 op2 0 Rm 0 len op 00 Rn Rd`.
const VTBL: &[Entry] = &[
    s("0 x 001110 00 0 xxxxx 0 xx x 00 xxxxx xxxxx", "tbl/tbx"),
    u(ANY),
];

/// Advanced SIMD permute: `0 Q 001110 size 0 Rm 0 opcode 10 Rn Rd`.
const VPERM: &[Entry] = &[
    u("0 0 001110 11 0 xxxxx 0 xxx 10 xxxxx xxxxx"),
    u("0 x 001110 xx 0 xxxxx 0 x00 10 xxxxx xxxxx"),
    s(ANY, "uzp/trn/zip"),
];

/// Advanced SIMD modified immediate: `0 Q op 0111100000 a b c cmode o2 1
/// d e f g h Rd`.
const VMODIMM: &[Entry] = &[
    u("0 0 1 0111100000 xxx 1111 0 1 xxxxx xxxxx"),
    s(
        "0 x x 0111100000 xxx xxxx 0 1 xxxxx xxxxx",
        "movi/mvni/orr/bic/fmov",
    ),
    s("0 x 0 0111100000 xxx 1111 1 1 xxxxx xxxxx", "fmov (h)"),
    u(ANY),
];

/// Advanced SIMD shift by immediate: `0 Q U 011110 immh immb opcode 1 Rn
/// Rd` (immh != 0000).
const VSHIFT: &[Entry] = &[
    u("0 x x 011110 1xxx xxx 100xx 1 xxxxx xxxxx"),
    u("0 x x 011110 1xxx xxx 10100 1 xxxxx xxxxx"),
    u("0 0 x 011110 1xxx xxx xxxxx 1 xxxxx xxxxx"),
    u("0 x x 011110 0001 xxx 11100 1 xxxxx xxxxx"),
    u("0 x x 011110 0001 xxx 11111 1 xxxxx xxxxx"),
    s(
        "0 x x 011110 xxxx xxx 00xx0 1 xxxxx xxxxx",
        "sshr/ssra/srshr/srsra",
    ),
    s(
        "0 x x 011110 xxxx xxx 01x10 1 xxxxx xxxxx",
        "shl/sli/sqshl/uqshl",
    ),
    s("0 x 1 011110 xxxx xxx 01x00 1 xxxxx xxxxx", "sri/sqshlu"),
    s(
        "0 x x 011110 xxxx xxx 100xx 1 xxxxx xxxxx",
        "shrn/sqshrn/...",
    ),
    s("0 x x 011110 xxxx xxx 10100 1 xxxxx xxxxx", "sshll/ushll"),
    s(
        "0 x x 011110 xxxx xxx 11100 1 xxxxx xxxxx",
        "scvtf/ucvtf (fixed)",
    ),
    s(
        "0 x x 011110 xxxx xxx 11111 1 xxxxx xxxxx",
        "fcvtzs/fcvtzu (fixed)",
    ),
    u(ANY),
];

/// Advanced SIMD vector x indexed element: `0 Q U 01111 size L M Rm opcode
/// H 0 Rn Rd`.
const VELEM: &[Entry] = &[
    // Integer, size = 01, 10.
    s(
        "0 x 0 01111 01 x x xxxx 0x1x x 0 xxxxx xxxxx",
        "smlal/sqdmlal/smlsl/sqdmlsl",
    ),
    s(
        "0 x 0 01111 10 x x xxxx 0x1x x 0 xxxxx xxxxx",
        "smlal/sqdmlal/smlsl/sqdmlsl",
    ),
    s("0 x 0 01111 01 x x xxxx 1000 x 0 xxxxx xxxxx", "mul"),
    s("0 x 0 01111 10 x x xxxx 1000 x 0 xxxxx xxxxx", "mul"),
    s(
        "0 x 0 01111 01 x x xxxx 101x x 0 xxxxx xxxxx",
        "smull/sqdmull",
    ),
    s(
        "0 x 0 01111 10 x x xxxx 101x x 0 xxxxx xxxxx",
        "smull/sqdmull",
    ),
    s(
        "0 x 0 01111 01 x x xxxx 110x x 0 xxxxx xxxxx",
        "sqdmulh/sqrdmulh",
    ),
    s(
        "0 x 0 01111 10 x x xxxx 110x x 0 xxxxx xxxxx",
        "sqdmulh/sqrdmulh",
    ),
    s(
        "0 x 1 01111 01 x x xxxx 0xx0 x 0 xxxxx xxxxx",
        "mla/umlal/mls/umlsl",
    ),
    s(
        "0 x 1 01111 10 x x xxxx 0xx0 x 0 xxxxx xxxxx",
        "mla/umlal/mls/umlsl",
    ),
    s("0 x 1 01111 01 x x xxxx 1010 x 0 xxxxx xxxxx", "umull"),
    s("0 x 1 01111 10 x x xxxx 1010 x 0 xxxxx xxxxx", "umull"),
    s(
        "0 x 1 01111 01 x x xxxx 11x1 x 0 xxxxx xxxxx",
        "sqrdmlah/sqrdmlsh",
    ),
    s(
        "0 x 1 01111 10 x x xxxx 11x1 x 0 xxxxx xxxxx",
        "sqrdmlah/sqrdmlsh",
    ),
    // Floating point: fmla, fmls, fmul, fmulx (d: L = 0, Q = 1).
    s("0 x 0 01111 x0 x x xxxx 0x01 x 0 xxxxx xxxxx", "fmla/fmls"),
    s("0 1 0 01111 11 0 x xxxx 0x01 x 0 xxxxx xxxxx", "fmla/fmls"),
    s("0 x x 01111 x0 x x xxxx 1001 x 0 xxxxx xxxxx", "fmul/fmulx"),
    s("0 1 x 01111 11 0 x xxxx 1001 x 0 xxxxx xxxxx", "fmul/fmulx"),
    // FEAT_FHM.
    s(
        "0 x 0 01111 10 x x xxxx 0x00 x 0 xxxxx xxxxx",
        "fmlal/fmlsl",
    ),
    s(
        "0 x 1 01111 10 x x xxxx 1x00 x 0 xxxxx xxxxx",
        "fmlal2/fmlsl2",
    ),
    // FEAT_DotProd, FEAT_I8MM, FEAT_BF16.
    s("0 x x 01111 10 x x xxxx 1110 x 0 xxxxx xxxxx", "sdot/udot"),
    s(
        "0 x 0 01111 xx x x xxxx 1111 x 0 xxxxx xxxxx",
        "sudot/bfdot/usdot/bfmlal",
    ),
    // FEAT_FCMA: h with Q = 0 only for H = 0; s only with Q = 1, L = 0.
    u("0 0 1 01111 01 x x xxxx 0xx1 1 0 xxxxx xxxxx"),
    s("0 x 1 01111 01 x x xxxx 0xx1 x 0 xxxxx xxxxx", "fcmla"),
    s("0 1 1 01111 10 0 x xxxx 0xx1 x 0 xxxxx xxxxx", "fcmla"),
    u(ANY),
];

/// Cryptographic three-register SHA: `01011110 size 0 Rm 0 opcode 00 Rn Rd`.
const SHA3REG: &[Entry] = &[
    s(
        "01011110 00 0 xxxxx 0 0xx 00 xxxxx xxxxx",
        "sha1c/sha1p/sha1m/sha1su0",
    ),
    s(
        "01011110 00 0 xxxxx 0 10x 00 xxxxx xxxxx",
        "sha256h/sha256h2",
    ),
    s("01011110 00 0 xxxxx 0 110 00 xxxxx xxxxx", "sha256su1"),
    u(ANY),
];

/// Cryptographic two-register SHA: `01011110 size 10100 opcode 10 Rn Rd`.
const SHA2REG: &[Entry] = &[
    s("01011110 00 10100 0000x 10 xxxxx xxxxx", "sha1h/sha1su1"),
    s("01011110 00 10100 00010 10 xxxxx xxxxx", "sha256su0"),
    u(ANY),
];

/// Advanced SIMD scalar copy: `01 op 11110000 imm5 0 imm4 1 Rn Rd`.
const SCOPY: &[Entry] = &[
    u("01 x 11110000 x0000 0 xxxx 1 xxxxx xxxxx"),
    s("01 0 11110000 xxxxx 0 0000 1 xxxxx xxxxx", "dup (scalar)"),
    u(ANY),
];

/// Advanced SIMD scalar three same FP16: `01 U 11110 a 10 Rm 00 opcode 1
/// Rn Rd`.
const S3SAME16: &[Entry] = &[
    s("01 0 11110 0 10 xxxxx 00 011 1 xxxxx xxxxx", "fmulx (h)"),
    s("01 0 11110 0 10 xxxxx 00 100 1 xxxxx xxxxx", "fcmeq (h)"),
    s(
        "01 0 11110 x 10 xxxxx 00 111 1 xxxxx xxxxx",
        "frecps/frsqrts (h)",
    ),
    s(
        "01 1 11110 x 10 xxxxx 00 10x 1 xxxxx xxxxx",
        "fcmge/facge/fcmgt/facgt (h)",
    ),
    s("01 1 11110 1 10 xxxxx 00 010 1 xxxxx xxxxx", "fabd (h)"),
    u(ANY),
];

/// Advanced SIMD scalar two-register miscellaneous FP16: `01 U 11110 a
/// 111100 opcode 10 Rn Rd`.
const S2MISC16: &[Entry] = &[
    s("01 x 11110 x 111100 1101x 10 xxxxx xxxxx", "fcvt* (h)"),
    s(
        "01 x 11110 0 111100 11100 10 xxxxx xxxxx",
        "fcvtas/fcvtau (h)",
    ),
    s(
        "01 x 11110 x 111100 11101 10 xxxxx xxxxx",
        "scvtf/ucvtf/frecpe/frsqrte (h)",
    ),
    s("01 0 11110 1 111100 11111 10 xxxxx xxxxx", "frecpx (h)"),
    s(
        "01 0 11110 1 111100 0110x 10 xxxxx xxxxx",
        "fcmgt/fcmeq (h)",
    ),
    s("01 0 11110 1 111100 01110 10 xxxxx xxxxx", "fcmlt (h)"),
    s(
        "01 1 11110 1 111100 0110x 10 xxxxx xxxxx",
        "fcmge/fcmle (h)",
    ),
    u(ANY),
];

/// Advanced SIMD scalar three same extra: `01 U 11110 size 0 Rm 1 opcode 1
/// Rn Rd` (FEAT_RDM).
const S3EXTRA: &[Entry] = &[
    s(
        "01 1 11110 01 0 xxxxx 1 000x 1 xxxxx xxxxx",
        "sqrdmlah/sqrdmlsh",
    ),
    s(
        "01 1 11110 10 0 xxxxx 1 000x 1 xxxxx xxxxx",
        "sqrdmlah/sqrdmlsh",
    ),
    u(ANY),
];

/// Advanced SIMD scalar two-register miscellaneous: `01 U 11110 size 10000
/// opcode 10 Rn Rd`.
const S2MISC: &[Entry] = &[
    s(
        "01 x 11110 xx 10000 00x11 10 xxxxx xxxxx",
        "suqadd/usqadd/sqabs/sqneg",
    ),
    s(
        "01 x 11110 11 10000 0100x 10 xxxxx xxxxx",
        "cmgt/cmeq/cmge/cmle (zero)",
    ),
    s("01 0 11110 11 10000 01010 10 xxxxx xxxxx", "cmlt (zero)"),
    s("01 x 11110 11 10000 01011 10 xxxxx xxxxx", "abs/neg"),
    s(
        "01 0 11110 1x 10000 011x0 10 xxxxx xxxxx",
        "fcmgt/fcmlt (zero)",
    ),
    s("01 0 11110 1x 10000 01101 10 xxxxx xxxxx", "fcmeq (zero)"),
    s(
        "01 1 11110 1x 10000 0110x 10 xxxxx xxxxx",
        "fcmge/fcmle (zero)",
    ),
    s("01 x 11110 0x 10000 10100 10 xxxxx xxxxx", "sqxtn/uqxtn"),
    s("01 x 11110 10 10000 10100 10 xxxxx xxxxx", "sqxtn/uqxtn"),
    s("01 1 11110 0x 10000 10010 10 xxxxx xxxxx", "sqxtun"),
    s("01 1 11110 10 10000 10010 10 xxxxx xxxxx", "sqxtun"),
    s("01 1 11110 01 10000 10110 10 xxxxx xxxxx", "fcvtxn"),
    s("01 x 11110 xx 10000 1101x 10 xxxxx xxxxx", "fcvt*"),
    s("01 x 11110 0x 10000 11100 10 xxxxx xxxxx", "fcvtas/fcvtau"),
    s(
        "01 x 11110 xx 10000 11101 10 xxxxx xxxxx",
        "scvtf/ucvtf/frecpe/frsqrte",
    ),
    s("01 0 11110 1x 10000 11111 10 xxxxx xxxxx", "frecpx"),
    u(ANY),
];

/// Advanced SIMD scalar pairwise: `01 U 11110 size 11000 opcode 10 Rn Rd`.
const SPAIR: &[Entry] = &[
    s("01 0 11110 11 11000 11011 10 xxxxx xxxxx", "addp (scalar)"),
    s(
        "01 0 11110 x0 11000 01100 10 xxxxx xxxxx",
        "fmaxnmp/fminnmp (h)",
    ),
    s("01 0 11110 00 11000 01101 10 xxxxx xxxxx", "faddp (h)"),
    s(
        "01 0 11110 x0 11000 01111 10 xxxxx xxxxx",
        "fmaxp/fminp (h)",
    ),
    s(
        "01 1 11110 xx 11000 01100 10 xxxxx xxxxx",
        "fmaxnmp/fminnmp",
    ),
    s("01 1 11110 0x 11000 01101 10 xxxxx xxxxx", "faddp"),
    s("01 1 11110 xx 11000 01111 10 xxxxx xxxxx", "fmaxp/fminp"),
    u(ANY),
];

/// Advanced SIMD scalar three different: `01 U 11110 size 1 Rm opcode 00 Rn
/// Rd`.
const S3DIFF: &[Entry] = &[
    s("01 0 11110 01 1 xxxxx 1001 00 xxxxx xxxxx", "sqdmlal"),
    s("01 0 11110 10 1 xxxxx 1001 00 xxxxx xxxxx", "sqdmlal"),
    s("01 0 11110 01 1 xxxxx 1011 00 xxxxx xxxxx", "sqdmlsl"),
    s("01 0 11110 10 1 xxxxx 1011 00 xxxxx xxxxx", "sqdmlsl"),
    s("01 0 11110 01 1 xxxxx 1101 00 xxxxx xxxxx", "sqdmull"),
    s("01 0 11110 10 1 xxxxx 1101 00 xxxxx xxxxx", "sqdmull"),
    u(ANY),
];

/// Advanced SIMD scalar three same: `01 U 11110 size 1 Rm opcode 1 Rn Rd`.
const S3SAME: &[Entry] = &[
    s(
        "01 x 11110 xx 1 xxxxx 00x01 1 xxxxx xxxxx",
        "sqadd/sqsub/uqadd/uqsub",
    ),
    s(
        "01 x 11110 xx 1 xxxxx 010x1 1 xxxxx xxxxx",
        "sqshl/sqrshl/uqshl/uqrshl",
    ),
    s(
        "01 x 11110 11 1 xxxxx 0011x 1 xxxxx xxxxx",
        "cmgt/cmge/cmhi/cmhs",
    ),
    s(
        "01 x 11110 11 1 xxxxx 010x0 1 xxxxx xxxxx",
        "sshl/srshl/ushl/urshl",
    ),
    s(
        "01 x 11110 11 1 xxxxx 1000x 1 xxxxx xxxxx",
        "add/cmtst/sub/cmeq",
    ),
    s(
        "01 x 11110 01 1 xxxxx 10110 1 xxxxx xxxxx",
        "sqdmulh/sqrdmulh",
    ),
    s(
        "01 x 11110 10 1 xxxxx 10110 1 xxxxx xxxxx",
        "sqdmulh/sqrdmulh",
    ),
    s("01 0 11110 0x 1 xxxxx 11011 1 xxxxx xxxxx", "fmulx"),
    s("01 0 11110 0x 1 xxxxx 11100 1 xxxxx xxxxx", "fcmeq"),
    s(
        "01 0 11110 xx 1 xxxxx 11111 1 xxxxx xxxxx",
        "frecps/frsqrts",
    ),
    s("01 1 11110 1x 1 xxxxx 11010 1 xxxxx xxxxx", "fabd"),
    s(
        "01 1 11110 xx 1 xxxxx 1110x 1 xxxxx xxxxx",
        "fcmge/fcmgt/facge/facgt",
    ),
    u(ANY),
];

/// Advanced SIMD scalar shift by immediate: `01 U 111110 immh immb opcode 1
/// Rn Rd`.
const SSHIFT: &[Entry] = &[
    u("01 x 111110 0000 xxx xxxxx 1 xxxxx xxxxx"),
    s(
        "01 x 111110 1xxx xxx 00xx0 1 xxxxx xxxxx",
        "sshr/ssra/srshr/srsra",
    ),
    s("01 x 111110 1xxx xxx 01010 1 xxxxx xxxxx", "shl/sli"),
    s("01 1 111110 1xxx xxx 01000 1 xxxxx xxxxx", "sri"),
    s("01 x 111110 xxxx xxx 01110 1 xxxxx xxxxx", "sqshl/uqshl"),
    s("01 1 111110 xxxx xxx 01100 1 xxxxx xxxxx", "sqshlu"),
    s(
        "01 x 111110 0xxx xxx 1001x 1 xxxxx xxxxx",
        "sqshrn/sqrshrn/uqshrn/uqrshrn",
    ),
    s(
        "01 1 111110 0xxx xxx 1000x 1 xxxxx xxxxx",
        "sqshrun/sqrshrun",
    ),
    u("01 x 111110 0001 xxx xxxxx 1 xxxxx xxxxx"),
    s(
        "01 x 111110 xxxx xxx 11100 1 xxxxx xxxxx",
        "scvtf/ucvtf (fixed)",
    ),
    s(
        "01 x 111110 xxxx xxx 11111 1 xxxxx xxxxx",
        "fcvtzs/fcvtzu (fixed)",
    ),
    u(ANY),
];

/// Advanced SIMD scalar x indexed element: `01 U 11111 size L M Rm opcode H
/// 0 Rn Rd`.
const SELEM: &[Entry] = &[
    s(
        "01 0 11111 01 x x xxxx 0x11 x 0 xxxxx xxxxx",
        "sqdmlal/sqdmlsl",
    ),
    s(
        "01 0 11111 10 x x xxxx 0x11 x 0 xxxxx xxxxx",
        "sqdmlal/sqdmlsl",
    ),
    s("01 0 11111 01 x x xxxx 1011 x 0 xxxxx xxxxx", "sqdmull"),
    s("01 0 11111 10 x x xxxx 1011 x 0 xxxxx xxxxx", "sqdmull"),
    s(
        "01 0 11111 01 x x xxxx 110x x 0 xxxxx xxxxx",
        "sqdmulh/sqrdmulh",
    ),
    s(
        "01 0 11111 10 x x xxxx 110x x 0 xxxxx xxxxx",
        "sqdmulh/sqrdmulh",
    ),
    s(
        "01 1 11111 01 x x xxxx 11x1 x 0 xxxxx xxxxx",
        "sqrdmlah/sqrdmlsh",
    ),
    s(
        "01 1 11111 10 x x xxxx 11x1 x 0 xxxxx xxxxx",
        "sqrdmlah/sqrdmlsh",
    ),
    s("01 0 11111 x0 x x xxxx 0x01 x 0 xxxxx xxxxx", "fmla/fmls"),
    s("01 0 11111 11 0 x xxxx 0x01 x 0 xxxxx xxxxx", "fmla/fmls"),
    s("01 x 11111 x0 x x xxxx 1001 x 0 xxxxx xxxxx", "fmul/fmulx"),
    s("01 x 11111 11 0 x xxxx 1001 x 0 xxxxx xxxxx", "fmul/fmulx"),
    u(ANY),
];

/// Conversion between floating point and fixed point: `sf 0 S 11110 ftype
/// 0 rmode opcode scale Rn Rd`.
const FPFIXED: &[Entry] = &[
    u("x x x 11110 10 x xx xxx xxxxxx xxxxx xxxxx"),
    u("0 x x 11110 xx x xx xxx 0xxxxx xxxxx xxxxx"),
    s(
        "x 0 0 11110 xx 0 00 01x xxxxxx xxxxx xxxxx",
        "scvtf/ucvtf (fixed)",
    ),
    s(
        "x 0 0 11110 xx 0 11 00x xxxxxx xxxxx xxxxx",
        "fcvtzs/fcvtzu (fixed)",
    ),
    u(ANY),
];

/// Conversion between floating point and integer: `sf 0 S 11110 ftype 1
/// rmode opcode 000000 Rn Rd`.
const FPINT: &[Entry] = &[
    s(
        "x 0 0 11110 0x 1 xx 00x 000000 xxxxx xxxxx",
        "fcvt[npmz][su]",
    ),
    s(
        "x 0 0 11110 11 1 xx 00x 000000 xxxxx xxxxx",
        "fcvt[npmz][su] (h)",
    ),
    s("x 0 0 11110 0x 1 00 01x 000000 xxxxx xxxxx", "scvtf/ucvtf"),
    s(
        "x 0 0 11110 11 1 00 01x 000000 xxxxx xxxxx",
        "scvtf/ucvtf (h)",
    ),
    s(
        "x 0 0 11110 0x 1 00 10x 000000 xxxxx xxxxx",
        "fcvtas/fcvtau",
    ),
    s(
        "x 0 0 11110 11 1 00 10x 000000 xxxxx xxxxx",
        "fcvtas/fcvtau (h)",
    ),
    s("0 0 0 11110 00 1 00 11x 000000 xxxxx xxxxx", "fmov (w, s)"),
    s("1 0 0 11110 01 1 00 11x 000000 xxxxx xxxxx", "fmov (x, d)"),
    s("x 0 0 11110 11 1 00 11x 000000 xxxxx xxxxx", "fmov (h)"),
    s(
        "1 0 0 11110 10 1 01 11x 000000 xxxxx xxxxx",
        "fmov (x, v.d[1])",
    ),
    s("0 0 0 11110 01 1 11 110 000000 xxxxx xxxxx", "fjcvtzs"),
    u(ANY),
];

/// Floating-point data-processing (1 source): `M 0 S 11110 ftype 1 opcode
/// 10000 Rn Rd`.
const FP1: &[Entry] = &[
    s(
        "0 0 0 11110 0x 1 0000xx 10000 xxxxx xxxxx",
        "fmov/fabs/fneg/fsqrt",
    ),
    s(
        "0 0 0 11110 11 1 0000xx 10000 xxxxx xxxxx",
        "fmov/fabs/fneg/fsqrt (h)",
    ),
    s("0 0 0 11110 00 1 0001x1 10000 xxxxx xxxxx", "fcvt (from s)"),
    s(
        "0 0 0 11110 01 1 0001x0 10000 xxxxx xxxxx",
        "fcvt/bfcvt (from d... s)",
    ),
    s("0 0 0 11110 01 1 000111 10000 xxxxx xxxxx", "fcvt (d to h)"),
    s("0 0 0 11110 11 1 00010x 10000 xxxxx xxxxx", "fcvt (from h)"),
    u("x x x 11110 xx 1 001101 10000 xxxxx xxxxx"),
    s("0 0 0 11110 0x 1 001xxx 10000 xxxxx xxxxx", "frint*"),
    s("0 0 0 11110 11 1 001xxx 10000 xxxxx xxxxx", "frint* (h)"),
    s(
        "0 0 0 11110 0x 1 0100xx 10000 xxxxx xxxxx",
        "frint32*/frint64*",
    ),
    u(ANY),
];

/// Floating-point compare: `M 0 S 11110 ftype 1 Rm op 1000 Rn opcode2`.
const FPCMP: &[Entry] = &[
    s("0 0 0 11110 0x 1 xxxxx 00 1000 xxxxx xx000", "fcmp/fcmpe"),
    s(
        "0 0 0 11110 11 1 xxxxx 00 1000 xxxxx xx000",
        "fcmp/fcmpe (h)",
    ),
    u(ANY),
];

/// Floating-point immediate: `M 0 S 11110 ftype 1 imm8 100 imm5 Rd`.
const FPIMM: &[Entry] = &[
    s(
        "0 0 0 11110 0x 1 xxxxxxxx 100 00000 xxxxx",
        "fmov (scalar, immediate)",
    ),
    s(
        "0 0 0 11110 11 1 xxxxxxxx 100 00000 xxxxx",
        "fmov (scalar, immediate, h)",
    ),
    u(ANY),
];

/// Floating-point data-processing (2 source): `M 0 S 11110 ftype 1 Rm
/// opcode 10 Rn Rd`, opcode 0000-1000.
const FP2: &[Entry] = &[
    s(
        "0 0 0 11110 0x 1 xxxxx 0xxx 10 xxxxx xxxxx",
        "fmul/fdiv/fadd/fsub/fmax/fmin/fmaxnm/fminnm",
    ),
    s(
        "0 0 0 11110 11 1 xxxxx 0xxx 10 xxxxx xxxxx",
        "fp 2 source (h)",
    ),
    s("0 0 0 11110 0x 1 xxxxx 1000 10 xxxxx xxxxx", "fnmul"),
    s("0 0 0 11110 11 1 xxxxx 1000 10 xxxxx xxxxx", "fnmul (h)"),
    u(ANY),
];

/// Floating-point conditional compare, conditional select, and
/// data-processing (3 source): allocated for M = 0, S = 0, ftype != 10.
const FP_M0_S0: &[Entry] = &[
    u("x x x xxxxx 10 x xxxxx xxxx xx xxxxx xxxxx"),
    s(
        "0 0 0 xxxxx xx x xxxxx xxxx xx xxxxx xxxxx",
        "fccmp/fcsel/fmadd/...",
    ),
    u(ANY),
];

/// Cryptographic three-register imm2 (SM3), three-register SHA512,
/// four-register, XAR and two-register SHA512.
const CRYPTO: &[Entry] = &[
    s("11001110 010 xxxxx 10 xx xx xxxxx xxxxx", "sm3tt*"),
    s(
        "11001110 011 xxxxx 1 0 00 xx xxxxx xxxxx",
        "sha512h/sha512h2/sha512su1/rax1",
    ),
    s(
        "11001110 011 xxxxx 1 1 00 0x xxxxx xxxxx",
        "sm3partw1/sm3partw2",
    ),
    s("11001110 011 xxxxx 1 1 00 10 xxxxx xxxxx", "sm4ekey"),
    s("110011100 0x xxxxx 0 xxxxx xxxxx xxxxx", "eor3/bcax"),
    s("110011100 10 xxxxx 0 xxxxx xxxxx xxxxx", "sm3ss1"),
    s("11001110 100 xxxxx xxxxxx xxxxx xxxxx", "xar"),
    s("11001110 110 00000 1000 0x xxxxx xxxxx", "sha512su0/sm4e"),
    u(ANY),
];
