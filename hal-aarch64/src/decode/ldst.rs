//! Loads and stores (Arm ARM C4.1.88, top-level `op0` = x1x0), class by
//! class, after the rows `decode.rs` takes first (literal loads, simulated
//! or refused, and the exclusives, refused). Nothing here reads or writes
//! the pc, so every allocated row is stepped; the words no row allocates
//! are refused as undecodable.
//!
//! The group's fields: `op0` = bits \[31:28\], `op1` = bit 26, `op2` = bits
//! \[24:23\], `op3` = bits \[21:16\], `op4` = bits \[11:10\]. Patterns are
//! written bit 31 first.

use super::{s, table, u, Entry};

/// C4.1.88 "Loads and Stores": the class of each `op0`..`op4`. The top
/// patterns are spaced as `op0 1 op1 0 op2 x op3 xxxx op4 Rn Rt`.
pub(super) const LOADS_AND_STORES: &[Entry] = &[
    // 0x00 1 00 000000: Advanced SIMD load/store multiple structures.
    table(
        "0x00 1 1 0 00 x 000000 xxxx xx xxxxx xxxxx",
        "ld/st multiple structures",
        SIMD_MULTIPLE,
    ),
    // 0x00 1 01 0xxxxx: ... (post-indexed).
    table(
        "0x00 1 1 0 01 x 0xxxxx xxxx xx xxxxx xxxxx",
        "ld/st multiple structures (post-indexed)",
        SIMD_MULTIPLE,
    ),
    // 0x00 1 10 000001 (FEAT_LRCPC3): ldap1/stl1 (SIMD&FP, one lane of 64
    // bits), `0 Q 0011010 L 0 00001 100 0 01 Rn Rt`.
    s(
        "0x00 1 1 0 10 x 000001 1000 01 xxxxx xxxxx",
        "ldap1/stl1 (SIMD&FP)",
    ),
    // 0x00 1 10 x00000: Advanced SIMD load/store single structure.
    table(
        "0x00 1 1 0 10 x x00000 xxxx xx xxxxx xxxxx",
        "ld/st single structure",
        SIMD_SINGLE,
    ),
    // 0x00 1 11: ... (post-indexed).
    table(
        "0x00 1 1 0 11 x xxxxxx xxxx xx xxxxx xxxxx",
        "ld/st single structure (post-indexed)",
        SIMD_SINGLE,
    ),
    // 1x00 1, and the rest of 0x00 1: unallocated.
    u("xx00 1 1 0 xx x xxxxxx xxxx xx xxxxx xxxxx"),
    // 1101 0 1x 1xxxxx: Load/store memory tags (FEAT_MTE).
    table(
        "1101 1 0 0 1x x 1xxxxx xxxx xx xxxxx xxxxx",
        "load/store memory tags",
        MEMORY_TAGS,
    ),
    // FEAT_GCS: gcsstr, gcssttr (`11011001 000 11111 000 U 11 Rn Rt`).
    s(
        "1101 1 0 0 10 0 011111 000x 11 xxxxx xxxxx",
        "gcsstr/gcssttr",
    ),
    // xx00 0 0x: Load/store exclusive pair, exclusive register, ordered,
    // compare and swap (the exclusives were refused before this table).
    table(
        "xx00 1 0 0 0x x xxxxxx xxxx xx xxxxx xxxxx",
        "load/store ordered, compare and swap",
        ORDERED_CAS,
    ),
    // xx00 0 1x (other than the memory tags): unallocated.
    u("xx00 1 x 0 xx x xxxxxx xxxx xx xxxxx xxxxx"),
    // xx01 x 0x: Load register (literal): the allocated rows came before
    // (opc = 11 with V = 1 is left).
    u("xx01 1 x 0 0x x xxxxxx xxxx xx xxxxx xxxxx"),
    // xx01 0 1x 0xxxxx 00: LDAPR/STLR (unscaled immediate) (FEAT_LRCPC2).
    table(
        "xx01 1 0 0 1x x 0xxxxx xxxx 00 xxxxx xxxxx",
        "ldapur/stlur",
        RCPC_UNSCALED,
    ),
    // xx01 1 1x 0xxxxx 00: LDAPUR/STLUR (SIMD&FP) (FEAT_LRCPC3):
    // `size 011101 opc 0 imm9 00 Rn Rt`, opc = 1x only with size = 00.
    u("x1 01 1 1 0 11 x 0xxxxx xxxx 00 xxxxx xxxxx"),
    u("1x 01 1 1 0 11 x 0xxxxx xxxx 00 xxxxx xxxxx"),
    s(
        "xx01 1 1 0 1x x 0xxxxx xxxx 00 xxxxx xxxxx",
        "ldapur/stlur (SIMD&FP)",
    ),
    // xx01 x 1x 0xxxxx 01: Memory Copy and Memory Set (FEAT_MOPS).
    table(
        "xx01 1 x 0 1x x 0xxxxx xxxx 01 xxxxx xxxxx",
        "memory copy and memory set",
        MOPS,
    ),
    // xx01 0 1x 0xxxxx 10: FEAT_LRCPC3 ldiapp/stilp and ldapr/stlr
    // (writeback).
    table(
        "xx01 1 0 0 1x x 0xxxxx xxxx 10 xxxxx xxxxx",
        "ldiapp/stilp, ldapr/stlr (writeback)",
        RCPC3,
    ),
    // xx01 0 1x 1xxxxx: FEAT_LSE128 (ldclrp, ldsetp, swpp) and FEAT_THE
    // (rcwcas, rcwcasp and their S forms).
    table(
        "xx01 1 0 0 1x x 1xxxxx xxxx xx xxxxx xxxxx",
        "lse128/rcw",
        LSE128_RCW,
    ),
    // The rest of xx01: unallocated.
    u("xx01 1 x 0 xx x xxxxxx xxxx xx xxxxx xxxxx"),
    // xx10 x 00: Load/store no-allocate pair (offset).
    table(
        "xx10 1 x 0 00 x xxxxxx xxxx xx xxxxx xxxxx",
        "stnp/ldnp",
        NO_ALLOCATE_PAIR,
    ),
    // xx10 x 01, 10, 11: Load/store register pair (post-indexed, offset,
    // pre-indexed).
    table(
        "xx10 1 x 0 xx x xxxxxx xxxx xx xxxxx xxxxx",
        "stp/ldp/stgp/ldpsw",
        REGISTER_PAIR,
    ),
    // xx11 x 0x 0xxxxx 00: Load/store register (unscaled immediate).
    table(
        "xx11 1 x 0 0x x 0xxxxx xxxx 00 xxxxx xxxxx",
        "stur/ldur/prfum",
        UNSCALED,
    ),
    // xx11 x 0x 0xxxxx 01, 11: (immediate post-indexed, pre-indexed).
    table(
        "xx11 1 x 0 0x x 0xxxxx xxxx x1 xxxxx xxxxx",
        "str/ldr (immediate, indexed)",
        INDEXED,
    ),
    // xx11 x 0x 0xxxxx 10: Load/store register (unprivileged).
    table(
        "xx11 1 x 0 0x x 0xxxxx xxxx 10 xxxxx xxxxx",
        "sttr/ldtr",
        UNPRIVILEGED,
    ),
    // xx11 x 0x 1xxxxx 00: Atomic memory operations.
    table(
        "xx11 1 x 0 0x x 1xxxxx xxxx 00 xxxxx xxxxx",
        "atomic memory operations",
        ATOMICS,
    ),
    // xx11 x 0x 1xxxxx 10: Load/store register (register offset).
    table(
        "xx11 1 x 0 0x x 1xxxxx xxxx 10 xxxxx xxxxx",
        "str/ldr (register offset)",
        REGISTER_OFFSET,
    ),
    // xx11 x 0x 1xxxxx x1: Load/store register (pac) (FEAT_PAuth): only
    // size = 11, V = 0 (ldraa, ldrab).
    s("11 11 1 0 0 0x x 1xxxxx xxxx x1 xxxxx xxxxx", "ldraa/ldrab"),
    u("xx11 1 x 0 0x x 1xxxxx xxxx x1 xxxxx xxxxx"),
    // xx11 x 1x: Load/store register (unsigned immediate).
    table(
        "xx11 1 x 0 1x x xxxxxx xxxx xx xxxxx xxxxx",
        "str/ldr/prfm (unsigned immediate)",
        UNSIGNED,
    ),
    u("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx"),
];

/// C4.1.88 "Advanced SIMD load/store multiple structures" (and
/// post-indexed): `0 Q 001100 x L x xxxxx opcode size Rn Rt`; ld2/ld3/ld4
/// (opcode 1000, 0100, 0000) with size:Q = 110 are unallocated.
const SIMD_MULTIPLE: &[Entry] = &[
    u("0 0 001100 x x x xxxxx 0000 11 xxxxx xxxxx"),
    u("0 0 001100 x x x xxxxx 0100 11 xxxxx xxxxx"),
    u("0 0 001100 x x x xxxxx 1000 11 xxxxx xxxxx"),
    s(
        "0 x 001100 x x x xxxxx 0x00 xx xxxxx xxxxx",
        "st4/ld4/st3/ld3",
    ),
    s("0 x 001100 x x x xxxxx 1000 xx xxxxx xxxxx", "st2/ld2"),
    s(
        "0 x 001100 x x x xxxxx 0x10 xx xxxxx xxxxx",
        "st1/ld1 (4, 3 registers)",
    ),
    s(
        "0 x 001100 x x x xxxxx 0111 xx xxxxx xxxxx",
        "st1/ld1 (1 register)",
    ),
    s(
        "0 x 001100 x x x xxxxx 1010 xx xxxxx xxxxx",
        "st1/ld1 (2 registers)",
    ),
    u("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx"),
];

/// C4.1.88 "Advanced SIMD load/store single structure" (and
/// post-indexed): `0 Q 001101 x L R xxxxx opcode S size Rn Rt`.
const SIMD_SINGLE: &[Entry] = &[
    // 8-bit lanes: any S, size.
    s(
        "0 x 001101 x x x xxxxx 00x x xx xxxxx xxxxx",
        "st1-st4/ld1-ld4 (b)",
    ),
    // 16-bit lanes: size = x0.
    s(
        "0 x 001101 x x x xxxxx 01x x x0 xxxxx xxxxx",
        "st1-st4/ld1-ld4 (h)",
    ),
    // 32-bit lanes: size = 00; 64-bit lanes: size = 01 with S = 0.
    s(
        "0 x 001101 x x x xxxxx 10x x 00 xxxxx xxxxx",
        "st1-st4/ld1-ld4 (s)",
    ),
    s(
        "0 x 001101 x x x xxxxx 10x 0 01 xxxxx xxxxx",
        "st1-st4/ld1-ld4 (d)",
    ),
    // Replicate: L = 1, S = 0.
    s("0 x 001101 x 1 x xxxxx 11x 0 xx xxxxx xxxxx", "ld1r-ld4r"),
    u("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx"),
];

/// C4.1.88 "Load/store memory tags": `11011001 opc 1 imm9 op2 Rn Rt`.
const MEMORY_TAGS: &[Entry] = &[
    s("11011001 00 1 000000000 00 xxxxx xxxxx", "stzgm"),
    u("11011001 00 1 xxxxxxxxx 00 xxxxx xxxxx"),
    s("11011001 10 1 000000000 00 xxxxx xxxxx", "stgm"),
    u("11011001 10 1 xxxxxxxxx 00 xxxxx xxxxx"),
    s("11011001 11 1 000000000 00 xxxxx xxxxx", "ldgm"),
    u("11011001 11 1 xxxxxxxxx 00 xxxxx xxxxx"),
    s("11011001 01 1 xxxxxxxxx 00 xxxxx xxxxx", "ldg"),
    s(
        "11011001 xx 1 xxxxxxxxx xx xxxxx xxxxx",
        "stg/stzg/st2g/stz2g",
    ),
    u("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx"),
];

/// C4.1.88 "Load/store ordered" and "Compare and swap (pair)" (FEAT_LSE):
/// `size 001000 o2 L o1 Rs o0 Rt2 Rn Rt`; cas and casp need Rt2 = 11111,
/// casp an even Rs and Rt (odd ones are UNDEFINED). The ordered rows have
/// Rs and Rt2 "should be one": a word without them is CONSTRAINED
/// UNPREDICTABLE, not unallocated, and stays stepped.
const ORDERED_CAS: &[Entry] = &[
    u("0x 001000 0 x 1 xxxx1 x xxxxx xxxxx xxxxx"),
    u("0x 001000 0 x 1 xxxxx x xxxxx xxxxx xxxx1"),
    s("0x 001000 0 x 1 xxxxx x 11111 xxxxx xxxxx", "casp"),
    s("xx 001000 1 x 1 xxxxx x 11111 xxxxx xxxxx", "cas"),
    s(
        "xx 001000 1 x 0 xxxxx x xxxxx xxxxx xxxxx",
        "stllr/stlr/ldlar/ldar",
    ),
    u("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx"),
];

/// C4.1.88 "LDAPR/STLR (unscaled immediate)": `size 011001 opc 0 imm9 00 Rn
/// Rt`; size = 10 with opc = 11, and size = 11 with opc = 1x, are
/// unallocated.
const RCPC_UNSCALED: &[Entry] = &[
    u("10 011001 11 0 xxxxxxxxx 00 xxxxx xxxxx"),
    u("11 011001 1x 0 xxxxxxxxx 00 xxxxx xxxxx"),
    s(
        "xx 011001 xx 0 xxxxxxxxx 00 xxxxx xxxxx",
        "stlur/ldapur/ldapurs",
    ),
];

/// C4.1.88 "Memory Copy and Memory Set" (FEAT_MOPS): `sz 011 o0 01 op1 0
/// Rs op2 01 Rn Rd`; sz != 00 is unallocated, and so is op2<3:2> = 11 in
/// the set rows (op1 = 11). Rd and Rn are never 31, nor Rs in the copy
/// rows (UNDEFINED).
const MOPS: &[Entry] = &[
    u("00 011 x 01 11 0 xxxxx 11xx 01 xxxxx xxxxx"),
    u("00 011 x 01 xx 0 xxxxx xxxx 01 xxxxx 11111"),
    u("00 011 x 01 xx 0 xxxxx xxxx 01 11111 xxxxx"),
    u("00 011 x 01 0x 0 11111 xxxx 01 xxxxx xxxxx"),
    u("00 011 x 01 10 0 11111 xxxx 01 xxxxx xxxxx"),
    s("00 011 x 01 xx 0 xxxxx xxxx 01 xxxxx xxxxx", "cpy*/set*"),
    u("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx"),
];

/// C4.1.88 FEAT_LRCPC3 rows of op4 = 10: ldiapp/stilp (`size 011001 0 L 0
/// Rt2 000 x 10 Rn Rt`, size = 1x) and ldapr/stlr with writeback
/// (`size 011001 1 L 0 00000 0000 10 Rn Rt`, size = 1x).
const RCPC3: &[Entry] = &[
    s("1x 011001 0 x 0 xxxxx 000x 10 xxxxx xxxxx", "ldiapp/stilp"),
    s(
        "1x 011001 1 x 0 00000 0000 10 xxxxx xxxxx",
        "ldapr/stlr (writeback)",
    ),
    u("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx"),
];

/// C4.1.88 FEAT_LSE128 (`00011001 A R 1 Rt2 o3 opc 00 Rn Rt`: ldclrp
/// opc = 001, ldsetp opc = 011, swpp o3 = 1 opc = 000) and FEAT_THE
/// (`0 S 011001 A R 1 Rs 0000 1 x Rn Rt`: rcwcas, rcwcasp).
const LSE128_RCW: &[Entry] = &[
    s("00 011001 x x 1 xxxxx 00x1 00 xxxxx xxxxx", "ldclrp/ldsetp"),
    s("00 011001 x x 1 xxxxx 1000 00 xxxxx xxxxx", "swpp"),
    s(
        "0x 011001 x x 1 xxxxx 0000 1x xxxxx xxxxx",
        "rcwcas/rcwcasp",
    ),
    u("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx"),
];

/// C4.1.88 "Load/store no-allocate pair (offset)": `opc 101 V 000 L imm7
/// Rt2 Rn Rt`; opc = 11, and opc = 01 with V = 0, are unallocated.
const NO_ALLOCATE_PAIR: &[Entry] = &[
    u("11 101 x 000 x xxxxxxx xxxxx xxxxx xxxxx"),
    u("01 101 0 000 x xxxxxxx xxxxx xxxxx xxxxx"),
    s("xx 101 x 000 x xxxxxxx xxxxx xxxxx xxxxx", "stnp/ldnp"),
];

/// C4.1.88 "Load/store register pair (post-indexed, offset,
/// pre-indexed)": `opc 101 V 0xx L imm7 Rt2 Rn Rt`; opc = 11 is
/// unallocated (opc = 01 with V = 0 is stgp or ldpsw).
const REGISTER_PAIR: &[Entry] = &[
    u("11 101 x 0xx x xxxxxxx xxxxx xxxxx xxxxx"),
    s(
        "xx 101 x 0xx x xxxxxxx xxxxx xxxxx xxxxx",
        "stp/ldp/stgp/ldpsw",
    ),
];

/// Rows shared by the single-register classes (`size 111 V xx opc ...`):
/// size = 10 with opc = 11 and size = 11 with opc = 11 (V = 0), and
/// opc = 1x with size != 00 (V = 1, only the 128-bit q form has opc = 1x).
const HOLES: [Entry; 3] = [
    u("1x 111 0 xx 11 xxxxxx xxxx xx xxxxx xxxxx"),
    u("x1 111 1 xx 1x xxxxxx xxxx xx xxxxx xxxxx"),
    u("1x 111 1 xx 1x xxxxxx xxxx xx xxxxx xxxxx"),
];

/// C4.1.88 "Load/store register (unscaled immediate)": `size 111 V 00 opc
/// 0 imm9 00 Rn Rt` (size = 11, opc = 10 is prfum).
const UNSCALED: &[Entry] = &[
    HOLES[0],
    HOLES[1],
    HOLES[2],
    s(
        "xx 111 x 00 xx 0 xxxxxxxxx 00 xxxxx xxxxx",
        "stur/ldur/ldurs/prfum",
    ),
];

/// C4.1.88 "Load/store register (immediate post-indexed)" and
/// "(immediate pre-indexed)": as the unscaled class, without a prefetch
/// (size = 11, opc = 10).
const INDEXED: &[Entry] = &[
    HOLES[0],
    HOLES[1],
    HOLES[2],
    u("11 111 0 00 10 0 xxxxxxxxx x1 xxxxx xxxxx"),
    s(
        "xx 111 x 00 xx 0 xxxxxxxxx x1 xxxxx xxxxx",
        "str/ldr/ldrs (immediate, indexed)",
    ),
];

/// C4.1.88 "Load/store register (unprivileged)": V = 0 only, no prefetch.
const UNPRIVILEGED: &[Entry] = &[
    HOLES[0],
    u("xx 111 1 00 xx 0 xxxxxxxxx 10 xxxxx xxxxx"),
    u("11 111 0 00 10 0 xxxxxxxxx 10 xxxxx xxxxx"),
    s(
        "xx 111 0 00 xx 0 xxxxxxxxx 10 xxxxx xxxxx",
        "sttr/ldtr/ldtrs",
    ),
];

/// C4.1.88 "Atomic memory operations": `size 111 V 00 A R 1 Rs o3 opc 00
/// Rn Rt`.
const ATOMICS: &[Entry] = &[
    // FEAT_LSE: ldadd, ldclr, ldeor, ldset, ldsmax, ldsmin, ldumax, ldumin
    // (o3 = 0) and swp (o3 = 1, opc = 000), every size.
    s("xx 111 0 00 x x 1 xxxxx 0 xxx 00 xxxxx xxxxx", "ld<op>"),
    s("xx 111 0 00 x x 1 xxxxx 1 000 00 xxxxx xxxxx", "swp"),
    // FEAT_LRCPC: ldapr (A = 1, R = 0, Rs = 11111).
    s("xx 111 0 00 1 0 1 11111 1 100 00 xxxxx xxxxx", "ldapr"),
    // FEAT_THE: rcwclr, rcwswp, rcwset and their S forms (size = 0x).
    s("0x 111 0 00 x x 1 xxxxx 1 001 00 xxxxx xxxxx", "rcwclr"),
    s(
        "0x 111 0 00 x x 1 xxxxx 1 01x 00 xxxxx xxxxx",
        "rcwswp/rcwset",
    ),
    // FEAT_LS64: st64b, st64bv0, st64bv, ld64b (size = 11, A = R = 0).
    s("11 111 0 00 0 0 1 11111 1 001 00 xxxxx xxxxx", "st64b"),
    s(
        "11 111 0 00 0 0 1 xxxxx 1 01x 00 xxxxx xxxxx",
        "st64bv0/st64bv",
    ),
    s("11 111 0 00 0 0 1 11111 1 101 00 xxxxx xxxxx", "ld64b"),
    u("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx"),
];

/// C4.1.88 "Load/store register (register offset)": `size 111 V 00 opc 1
/// Rm option S 10 Rn Rt`; option<1> = 0 is unallocated (size = 11, opc = 10
/// is prfm).
const REGISTER_OFFSET: &[Entry] = &[
    u("xx 111 x 00 xx 1 xxxxx x0x x 10 xxxxx xxxxx"),
    HOLES[0],
    HOLES[1],
    HOLES[2],
    s(
        "xx 111 x 00 xx 1 xxxxx xxx x 10 xxxxx xxxxx",
        "str/ldr/ldrs/prfm (register offset)",
    ),
];

/// C4.1.88 "Load/store register (unsigned immediate)": `size 111 V 01 opc
/// imm12 Rn Rt` (size = 11, opc = 10 is prfm).
const UNSIGNED: &[Entry] = &[
    HOLES[0],
    HOLES[1],
    HOLES[2],
    s(
        "xx 111 x 01 xx xxxxxxxxxxxx xxxxx xxxxx",
        "str/ldr/ldrs/prfm (unsigned immediate)",
    ),
];
