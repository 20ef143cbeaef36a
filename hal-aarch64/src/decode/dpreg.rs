//! Data processing – register (Arm ARM C4.1.89, top-level `op0` = x101),
//! class by class. Nothing here reads or writes the pc, so every allocated
//! row is stepped; the words no row allocates are refused as undecodable.
//!
//! The group's fields: `op0` = bit 30, `op1` = bit 28, `op2` = bits
//! \[24:21\], `op3` = bits \[15:10\]. Patterns are written bit 31 first, with
//! spaces between the fields of the class's encoding diagram.
//!
//! The pointer-authentication instructions of "Data-processing (1 source)":
//! the signing ones (`pacia`, `paciza`, … with a register operand) and
//! `xpaci`/`xpacd` are stepped; every `aut*` is refused, as Linux refuses
//! the `aut*` hints (with FEAT_FPAC a failed authentication faults in the
//! slot); the FEAT_PAuth_LR forms that sign or authenticate with the pc
//! (`paciasppc`, `autiasppc`, …) are not allocated here, so they are
//! refused.

use super::{r, s, table, u, Entry, WHY_AUT};

/// C4.1.89 "Data Processing -- Register": the class of each `op0`, `op1`,
/// `op2`, `op3`.
pub(super) const DATA_PROCESSING_REGISTER: &[Entry] = &[
    // op0 = 0, op1 = 1, op2 = 0110: Data-processing (2 source).
    table(
        "x 0 x 1 101 0110 xxxxx xxxxxx xxxxx xxxxx",
        "data-processing (2 source)",
        DP_2SRC,
    ),
    // op0 = 1, op1 = 1, op2 = 0110: Data-processing (1 source).
    table(
        "x 1 x 1 101 0110 xxxxx xxxxxx xxxxx xxxxx",
        "data-processing (1 source)",
        DP_1SRC,
    ),
    // op1 = 0, op2 = 0xxx: Logical (shifted register).
    table(
        "x x x 0 101 0xxx xxxxx xxxxxx xxxxx xxxxx",
        "logical (shifted register)",
        LOGICAL_SHIFTED,
    ),
    // op1 = 0, op2 = 1xx0: Add/subtract (shifted register).
    table(
        "x x x 0 101 1xx0 xxxxx xxxxxx xxxxx xxxxx",
        "add/subtract (shifted register)",
        ADD_SUB_SHIFTED,
    ),
    // op1 = 0, op2 = 1xx1: Add/subtract (extended register).
    table(
        "x x x 0 101 1xx1 xxxxx xxxxxx xxxxx xxxxx",
        "add/subtract (extended register)",
        ADD_SUB_EXTENDED,
    ),
    // op1 = 1, op2 = 0000, op3 = 000000: Add/subtract (with carry).
    s(
        "x x x 1 101 0000 xxxxx 000000 xxxxx xxxxx",
        "adc/adcs/sbc/sbcs",
    ),
    // op1 = 1, op2 = 0000, op3 = 001xxx: Add/subtract (checked pointer)
    // (FEAT_CPA): sf = 1, S = 0.
    s("1 x 0 1 101 0000 xxxxx 001xxx xxxxx xxxxx", "addpt/subpt"),
    // op1 = 1, op2 = 0000, op3 = x00001: Rotate right into flags (FEAT_FlagM):
    // only sf:op:S = 101, o2 = 0, o3 = 0.
    s("1 0 1 1 101 0000 xxxxx x00001 xxxxx 0xxxx", "rmif"),
    // op1 = 1, op2 = 0000, op3 = xx0010: Evaluate into flags (FEAT_FlagM):
    // only sf:op:S = 001, opcode2 = 000000, o3 = 0, mask = 1101.
    s("0 0 1 1 101 0000 00000 0x0010 xxxxx 01101", "setf8/setf16"),
    // op1 = 1, op2 = 0010: Conditional compare (register, op3 = xxxx0x;
    // immediate, op3 = xxxx1x): S = 1, o2 = 0, o3 = 0.
    s("x x 1 1 101 0010 xxxxx xxxxx0 xxxxx 0xxxx", "ccmn/ccmp"),
    // op1 = 1, op2 = 0100: Conditional select: S = 0, op2 = 0x.
    s(
        "x x 0 1 101 0100 xxxxx xxxx0x xxxxx xxxxx",
        "csel/csinc/csinv/csneg",
    ),
    // op1 = 1, op2 = 1xxx: Data-processing (3 source).
    table(
        "x x x 1 101 1xxx xxxxx xxxxxx xxxxx xxxxx",
        "data-processing (3 source)",
        DP_3SRC,
    ),
    // Everything else (op2 = 0000 with other op3, 0001, 0011, 0101, 0111,
    // and the unallocated values of the rows above).
    u("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx"),
];

/// C4.1.89 "Data-processing (2 source)": `sf 0 S 11010110 Rm opcode Rn Rd`.
const DP_2SRC: &[Entry] = &[
    s("x 0 0 11010110 xxxxx 00001x xxxxx xxxxx", "udiv/sdiv"),
    s(
        "x 0 0 11010110 xxxxx 0010xx xxxxx xxxxx",
        "lslv/lsrv/asrv/rorv",
    ),
    // FEAT_MTE.
    s("1 0 x 11010110 xxxxx 000000 xxxxx xxxxx", "subp/subps"),
    s("1 0 0 11010110 xxxxx 00010x xxxxx xxxxx", "irg/gmi"),
    // FEAT_PAuth.
    s("1 0 0 11010110 xxxxx 001100 xxxxx xxxxx", "pacga"),
    // FEAT_CRC32: sz = 11 (the x form) only with sf = 1, the others with
    // sf = 0.
    s("0 0 0 11010110 xxxxx 010x0x xxxxx xxxxx", "crc32b/h"),
    s("0 0 0 11010110 xxxxx 010x10 xxxxx xxxxx", "crc32w"),
    s("1 0 0 11010110 xxxxx 010x11 xxxxx xxxxx", "crc32x"),
    // FEAT_CSSC.
    s(
        "x 0 0 11010110 xxxxx 0110xx xxxxx xxxxx",
        "smax/umax/smin/umin",
    ),
    u("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx"),
];

/// C4.1.89 "Data-processing (1 source)": `sf 1 S 11010110 opcode2 opcode Rn
/// Rd`.
const DP_1SRC: &[Entry] = &[
    s("x 1 0 11010110 00000 00000x xxxxx xxxxx", "rbit/rev16"),
    s("x 1 0 11010110 00000 000010 xxxxx xxxxx", "rev/rev32"),
    s("1 1 0 11010110 00000 000011 xxxxx xxxxx", "rev"),
    s("x 1 0 11010110 00000 00010x xxxxx xxxxx", "clz/cls"),
    // FEAT_CSSC.
    s("x 1 0 11010110 00000 00011x xxxxx xxxxx", "ctz/cnt"),
    s("x 1 0 11010110 00000 001000 xxxxx xxxxx", "abs"),
    // FEAT_PAuth (opcode2 = 00001, sf = 1).
    s("1 1 0 11010110 00001 0000xx xxxxx xxxxx", "pac*"),
    r("1 1 0 11010110 00001 0001xx xxxxx xxxxx", "aut*", WHY_AUT),
    s("1 1 0 11010110 00001 00100x 11111 xxxxx", "pac*z*"),
    s("1 1 0 11010110 00001 00101x 11111 xxxxx", "pac*z*"),
    r("1 1 0 11010110 00001 0011xx 11111 xxxxx", "aut*z*", WHY_AUT),
    s("1 1 0 11010110 00001 01000x 11111 xxxxx", "xpaci/xpacd"),
    u("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx"),
];

/// C4.1.89 "Logical (shifted register)": `sf opc 01010 shift N Rm imm6 Rn
/// Rd`; sf = 0 with imm6<5> = 1 is unallocated.
const LOGICAL_SHIFTED: &[Entry] = &[
    u("0 xx 01010 xx x xxxxx 1xxxxx xxxxx xxxxx"),
    s(
        "x xx 01010 xx x xxxxx xxxxxx xxxxx xxxxx",
        "and/bic/orr/orn/eor/eon/ands/bics",
    ),
];

/// C4.1.89 "Add/subtract (shifted register)": `sf op S 01011 shift 0 Rm
/// imm6 Rn Rd`; shift = 11, and sf = 0 with imm6<5> = 1, are unallocated.
const ADD_SUB_SHIFTED: &[Entry] = &[
    u("x xx 01011 11 0 xxxxx xxxxxx xxxxx xxxxx"),
    u("0 xx 01011 xx 0 xxxxx 1xxxxx xxxxx xxxxx"),
    s(
        "x xx 01011 xx 0 xxxxx xxxxxx xxxxx xxxxx",
        "add/adds/sub/subs (shifted register)",
    ),
];

/// C4.1.89 "Add/subtract (extended register)": `sf op S 01011 opt 1 Rm
/// option imm3 Rn Rd`; opt != 00 and imm3 > 4 are unallocated.
const ADD_SUB_EXTENDED: &[Entry] = &[
    u("x xx 01011 01 1 xxxxx xxx xxx xxxxx xxxxx"),
    u("x xx 01011 1x 1 xxxxx xxx xxx xxxxx xxxxx"),
    u("x xx 01011 00 1 xxxxx xxx 101 xxxxx xxxxx"),
    u("x xx 01011 00 1 xxxxx xxx 11x xxxxx xxxxx"),
    s(
        "x xx 01011 00 1 xxxxx xxx xxx xxxxx xxxxx",
        "add/adds/sub/subs (extended register)",
    ),
];

/// C4.1.89 "Data-processing (3 source)": `sf op54 11011 op31 Rm o0 Ra Rn
/// Rd`; op54 != 00 is unallocated.
const DP_3SRC: &[Entry] = &[
    s("x 00 11011 000 xxxxx x xxxxx xxxxx xxxxx", "madd/msub"),
    s("1 00 11011 001 xxxxx x xxxxx xxxxx xxxxx", "smaddl/smsubl"),
    s("1 00 11011 010 xxxxx 0 xxxxx xxxxx xxxxx", "smulh"),
    // FEAT_CPA.
    s("1 00 11011 011 xxxxx x xxxxx xxxxx xxxxx", "maddpt/msubpt"),
    s("1 00 11011 101 xxxxx x xxxxx xxxxx xxxxx", "umaddl/umsubl"),
    s("1 00 11011 110 xxxxx 0 xxxxx xxxxx xxxxx", "umulh"),
    u("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx"),
];
