//! SVE (Arm ARM C4.1.2 "SVE encodings", top-level `op0` = 0010) and SME
//! (C4.1.1, bit 31 set with `op0` = 0000; see [`SME`]). Of SVE, the
//! classes this backend takes apart, named after the SVE encoding index:
//! integer arithmetic (predicated and unpredicated), reductions, compares,
//! element counts, `index`, `addvl`/`addpl`/`rdvl`, the vector `adr`,
//! permutes (`dup`, `ext`, `tbl`, `zip`/`uzp`/`trn`, `sel`, unpacks,
//! `insr`, `rev`), predicate logic and initialisation (`ptrue`, `pfalse`,
//! `ptest`, `pfirst`, `pnext`, the FFR instructions, `while*`, `cntp`),
//! floating-point arithmetic, compares, reductions and (complex)
//! multiply-add, some SVE2 classes (`cmla`, `histcnt`, `bcax`, `pmul`,
//! the two-register `tbl`, the long multiply-adds, wide adds, narrowing
//! high halves, `saba`, `cadd`, `sclamp`…), the contiguous loads, stores,
//! prefetches, broadcasts, fills and spills, and the gathers and
//! scatters. These are what compilers and glibc's string functions emit
//! (glibc's SVE `memcpy`/`memmove`: `whilelo`, `ptrue`, `cntb`, `ld1b`,
//! `st1b`, `dup`).
//!
//! No SVE instruction reads or writes the pc (the SVE `adr` is a vector
//! address computation), so every allocated row is stepped. Each row is an
//! encoding diagram of the SVE encoding index (bit 31 first), with the
//! unallocated encodings inside a class (`Rm` = 11111 of the
//! scalar-plus-scalar loads and stores, the `msz`/`size` combinations
//! `st1*` does not allocate, `size` = 00 of the vector `inc*`/`dec*`) as
//! rows of their own, or left out of the class rows. The classes not listed
//! here (conversions, shifts, logical immediates, gather prefetches, most
//! of SVE2's widening, narrowing and complex-integer classes, SVE2.1),
//! and the whole SME group, are refused ([`super::WHY_SVE`]): they are not
//! decoded, so an unallocated word is never stepped.
//!
//! Every row was checked against GNU objdump 2.40 (`tests/objdump.rs`
//! samples each stepped row's words).

use super::{r, s, u, Entry, WHY_SVE};

/// C4.1.2: the SVE group, class by class (classes of the SVE encoding
/// index named in the comments).
pub(super) const SVE: &[Entry] = &[
    // ---- bits [31:29] = 000: integer arithmetic, element count, permutes.
    // SVE Integer Binary Arithmetic - Predicated.
    s(
        "00000100 xx 0 00 00x 000 xxx xxxxx xxxxx",
        "add/sub (vectors, predicated)",
    ),
    s(
        "00000100 xx 0 00 011 000 xxx xxxxx xxxxx",
        "subr (vectors, predicated)",
    ),
    s(
        "00000100 xx 0 01 0xx 000 xxx xxxxx xxxxx",
        "smax/umax/smin/umin (vectors, predicated)",
    ),
    s(
        "00000100 xx 0 01 10x 000 xxx xxxxx xxxxx",
        "sabd/uabd (predicated)",
    ),
    s(
        "00000100 xx 0 10 000 000 xxx xxxxx xxxxx",
        "mul (vectors, predicated)",
    ),
    s(
        "00000100 xx 0 10 01x 000 xxx xxxxx xxxxx",
        "smulh/umulh (predicated)",
    ),
    s(
        "00000100 1x 0 10 1xx 000 xxx xxxxx xxxxx",
        "sdiv/udiv/sdivr/udivr",
    ),
    s(
        "00000100 xx 0 11 0xx 000 xxx xxxxx xxxxx",
        "orr/eor/and/bic (vectors, predicated)",
    ),
    // SVE Integer Reduction (saddv does not take 64-bit elements).
    u("00000100 11 0 00000 001 xxx xxxxx xxxxx"),
    s("00000100 xx 0 0000x 001 xxx xxxxx xxxxx", "saddv/uaddv"),
    s(
        "00000100 xx 0 010xx 001 xxx xxxxx xxxxx",
        "smaxv/umaxv/sminv/uminv",
    ),
    s("00000100 xx 0 1100x 001 xxx xxxxx xxxxx", "orv/eorv"),
    s("00000100 xx 0 11010 001 xxx xxxxx xxxxx", "andv"),
    s(
        "00000100 xx 0 1000x 001 xxx xxxxx xxxxx",
        "movprfx (predicated)",
    ),
    // SVE Integer Multiply-Accumulate - Predicated.
    s("00000100 xx 0 xxxxx 01 x xxx xxxxx xxxxx", "mla/mls"),
    s("00000100 xx 0 xxxxx 11 x xxx xxxxx xxxxx", "mad/msb"),
    // SVE Integer Unary Operations - Predicated (the extensions only from
    // a narrower to a wider element; fabs/fneg not for 8-bit elements).
    s("00000100 01 0 10 00x 101 xxx xxxxx xxxxx", "sxtb/uxtb"),
    s("00000100 1x 0 10 00x 101 xxx xxxxx xxxxx", "sxtb/uxtb"),
    s("00000100 1x 0 10 01x 101 xxx xxxxx xxxxx", "sxth/uxth"),
    s("00000100 11 0 10 10x 101 xxx xxxxx xxxxx", "sxtw/uxtw"),
    s("00000100 xx 0 10 11x 101 xxx xxxxx xxxxx", "abs/neg"),
    s(
        "00000100 xx 0 11 0xx 101 xxx xxxxx xxxxx",
        "cls/clz/cnt/cnot",
    ),
    s("00000100 01 0 11 10x 101 xxx xxxxx xxxxx", "fabs/fneg"),
    s("00000100 1x 0 11 10x 101 xxx xxxxx xxxxx", "fabs/fneg"),
    s("00000100 xx 0 11 110 101 xxx xxxxx xxxxx", "not (vector)"),
    // SVE Integer Add/Subtract - Unpredicated, Bitwise Logical -
    // Unpredicated, Index Generation, Stack Allocation, Multiply -
    // Unpredicated, Address Generation.
    s(
        "00000100 xx 1 xxxxx 000 00x xxxxx xxxxx",
        "add/sub (vectors, unpredicated)",
    ),
    s(
        "00000100 xx 1 xxxxx 000 1xx xxxxx xxxxx",
        "sqadd/uqadd/sqsub/uqsub (vectors)",
    ),
    s(
        "00000100 xx 1 xxxxx 001100 xxxxx xxxxx",
        "and/orr/eor/bic (vectors, unpredicated)",
    ),
    s("00000100 011 xxxxx 001110 xxxxx xxxxx", "bcax"),
    s("00000100 xx 1 xxxxx 0100 xx xxxxx xxxxx", "index"),
    s("00000100 0x1 xxxxx 01010 xxxxxx xxxxx", "addvl/addpl"),
    s("00000100 101 11111 01010 xxxxxx xxxxx", "rdvl"),
    s(
        "00000100 xx 1 xxxxx 011 000 xxxxx xxxxx",
        "mul (vectors, unpredicated)",
    ),
    s(
        "00000100 00 1 xxxxx 011 001 xxxxx xxxxx",
        "pmul (vectors, unpredicated)",
    ),
    s(
        "00000100 xx 1 xxxxx 011 01x xxxxx xxxxx",
        "smulh/umulh (unpredicated)",
    ),
    s(
        "00000100 xx 1 xxxxx 011 10x xxxxx xxxxx",
        "sqdmulh/sqrdmulh (vectors)",
    ),
    s("00000100 xx 1 xxxxx 1010 xx xxxxx xxxxx", "adr (vector)"),
    s(
        "00000100 00 1 00000 101111 xxxxx xxxxx",
        "movprfx (unpredicated)",
    ),
    // SVE Element Count: cnt*, inc*/dec*, saturating forms.
    s(
        "00000100 xx 10 xxxx 111000 xxxxx xxxxx",
        "cntb/cnth/cntw/cntd",
    ),
    s(
        "00000100 xx 11 xxxx 11100 x xxxxx xxxxx",
        "incb/decb… (scalar)",
    ),
    u("00000100 00 1x xxxx 1100 xx xxxxx xxxxx"),
    s(
        "00000100 xx 11 xxxx 11000 x xxxxx xxxxx",
        "inch/dech… (vector)",
    ),
    s(
        "00000100 xx 1x xxxx 1111 xx xxxxx xxxxx",
        "sqinc*/uqinc*/sqdec*/uqdec* (scalar)",
    ),
    s(
        "00000100 xx 10 xxxx 1100 xx xxxxx xxxxx",
        "sqinc*/uqinc*/sqdec*/uqdec* (vector)",
    ),
    // SVE Permute Vector - Extract, Unpredicated, Interleave; Select.
    s("00000101 0x1 xxxxx 000 xxx xxxxx xxxxx", "ext"),
    u("00000101 xx 1 00000 001000 xxxxx xxxxx"),
    s("00000101 xx 1 xxxxx 001000 xxxxx xxxxx", "dup (indexed)"),
    s(
        "00000101 xx 1 xxxxx 001 01x xxxxx xxxxx",
        "tbl/tbx (two registers)",
    ),
    s("00000101 xx 1 xxxxx 001100 xxxxx xxxxx", "tbl"),
    s("00000101 xx 100000 001110 xxxxx xxxxx", "dup (scalar)"),
    s("00000101 xx 1 x0100 001110 xxxxx xxxxx", "insr"),
    s("00000101 01 1 100xx 001110 xxxxx xxxxx", "sunpk*/uunpk*"),
    s("00000101 1x 1 100xx 001110 xxxxx xxxxx", "sunpk*/uunpk*"),
    s("00000101 xx 1 11000 001110 xxxxx xxxxx", "rev (vector)"),
    s(
        "00000101 xx 1 xxxxx 011 0xx xxxxx xxxxx",
        "zip*/uzp* (vectors)",
    ),
    s("00000101 xx 1 xxxxx 011 10x xxxxx xxxxx", "trn* (vectors)"),
    // SVE Permute Vector - Predicated; Copy Integer Immediate - Predicated
    // (no shifted byte immediate); fcpy not for 8-bit elements.
    s(
        "00000101 xx 1 0000x 101 xxx xxxxx xxxxx",
        "lasta/lastb (scalar)",
    ),
    s("00000101 xx 101000 101 xxx xxxxx xxxxx", "cpy (scalar)"),
    s(
        "00000101 xx 100000 100 xxx xxxxx xxxxx",
        "cpy (SIMD&FP scalar)",
    ),
    s(
        "00000101 xx 1 0001x 100 xxx xxxxx xxxxx",
        "lasta/lastb (SIMD&FP scalar)",
    ),
    s("00000101 xx 1 010xx 100 xxx xxxxx xxxxx", "clasta/clastb"),
    s("00000101 xx 1 0110x 100 xxx xxxxx xxxxx", "splice"),
    s("00000101 1x 100001 100 xxx xxxxx xxxxx", "compact"),
    s(
        "00000101 00 01 xxxx 0 x 0 xxxxxxxx xxxxx",
        "cpy (immediate)",
    ),
    s(
        "00000101 01 01 xxxx 0 x x xxxxxxxx xxxxx",
        "cpy (immediate)",
    ),
    s(
        "00000101 1x 01 xxxx 0 x x xxxxxxxx xxxxx",
        "cpy (immediate)",
    ),
    s("00000101 01 01 xxxx 110 xxxxxxxx xxxxx", "fcpy"),
    s("00000101 1x 01 xxxx 110 xxxxxxxx xxxxx", "fcpy"),
    s("00000101 xx 1 xxxxx 11 xxxx xxxxx xxxxx", "sel (vectors)"),
    // ---- bits [31:29] = 001: integer compares, predicates.
    // SVE Integer Compare - Vectors (no wide forms for 64-bit elements).
    s("00100100 0x 0 xxxxx xxx xxx xxxxx x xxxx", "cmp* (vectors)"),
    s("00100100 10 0 xxxxx xxx xxx xxxxx x xxxx", "cmp* (vectors)"),
    s(
        "00100100 11 0 xxxxx 000 xxx xxxxx x xxxx",
        "cmphs/cmphi (vectors)",
    ),
    s(
        "00100100 11 0 xxxxx 10x xxx xxxxx x xxxx",
        "cmpge/cmpgt/cmpeq/cmpne (vectors)",
    ),
    // SVE Integer Compare - Unsigned Immediate, Signed Immediate.
    s(
        "00100100 xx 1 xxxxxxx x xxx xxxxx x xxxx",
        "cmphs/cmphi/cmplo/cmpls (immediate)",
    ),
    s(
        "00100101 xx 0 xxxxx 00x xxx xxxxx x xxxx",
        "cmpge/cmpgt/cmplt/cmple (immediate)",
    ),
    s(
        "00100101 xx 0 xxxxx 100 xxx xxxxx x xxxx",
        "cmpeq/cmpne (immediate)",
    ),
    // SVE Predicate Logical (`eors` has no `sel` form).
    s(
        "00100101 00 00 xxxx 01 xxxx x xxxx x xxxx",
        "and/bic/eor/sel (predicates)",
    ),
    s("00100101 01 00 xxxx 01 xxxx 0 xxxx x xxxx", "ands/bics"),
    s("00100101 01 00 xxxx 01 xxxx 1 xxxx 0 xxxx", "eors"),
    s(
        "00100101 1x 00 xxxx 01 xxxx x xxxx x xxxx",
        "orr/orn/nor/nand (predicates)",
    ),
    // SVE Partition Break: brkn.
    s("00100101 00 011000 01 xxxx 0 xxxx 0 xxxx", "brkn"),
    // SVE Predicate Misc.
    s("00100101 01 010000 11 xxxx 0 xxxx 0 0000", "ptest"),
    s("00100101 xx 01100 x 111000 xxxxx 0 xxxx", "ptrue/ptrues"),
    s("00100101 00 011000 111001 00000 0 xxxx", "pfalse"),
    s("00100101 01 011000 110000 0 xxxx 0 xxxx", "pfirst"),
    s("00100101 xx 011001 110001 0 xxxx 0 xxxx", "pnext"),
    s("00100101 0x 011000 111100 0 xxxx 0 xxxx", "rdffr/rdffrs"),
    s("00100101 00 101100 100100 00000 00000", "setffr"),
    s("00100101 00 101000 100100 0xxxx 00000", "wrffr"),
    // SVE Integer Compare - Scalars: while.
    s("00100101 xx 1 xxxxx 000 xxx xxxxx x xxxx", "while*"),
    // SVE Predicate Count.
    s("00100101 xx 100 000 10 xxxx 0 xxxx xxxxx", "cntp"),
    // SVE Integer Wide Immediate - Unpredicated: dup (immediate), no
    // shifted byte immediate.
    s("00100101 00 111000 110 xxxxxxxx xxxxx", "dup (immediate)"),
    s("00100101 01 111000 11x xxxxxxxx xxxxx", "dup (immediate)"),
    s("00100101 1x 111000 11x xxxxxxxx xxxxx", "dup (immediate)"),
    // ---- bits [31:29] = 010: SVE2 integer (the classes decoded so far).
    s("01000100 xx 0 xxxxx 0010 xx xxxxx xxxxx", "cmla (vectors)"),
    s("01000101 1x 1 xxxxx 110 xxx xxxxx xxxxx", "histcnt"),
    // SVE2 Integer Multiply-Add Long, Saturating Multiply-Add Long (no
    // 8-bit results), Dot Product, Clamp.
    s(
        "01000100 01 0 xxxxx 010xxx xxxxx xxxxx",
        "smlalb/smlalt/umlalb/umlalt/smlslb/smlslt/umlslb/umlslt",
    ),
    s(
        "01000100 1x 0 xxxxx 010xxx xxxxx xxxxx",
        "smlalb/smlalt/umlalb/umlalt/smlslb/smlslt/umlslb/umlslt",
    ),
    s(
        "01000100 01 0 xxxxx 0110xx xxxxx xxxxx",
        "sqdmlalb/sqdmlalt/sqdmlslb/sqdmlslt",
    ),
    s(
        "01000100 1x 0 xxxxx 0110xx xxxxx xxxxx",
        "sqdmlalb/sqdmlalt/sqdmlslb/sqdmlslt",
    ),
    s(
        "01000100 1x 0 xxxxx 00000x xxxxx xxxxx",
        "sdot/udot (vectors)",
    ),
    s("01000100 xx 0 xxxxx 11000x xxxxx xxxxx", "sclamp/uclamp"),
    // SVE2 Integer Add/Subtract Wide, Multiply Long (16-bit results),
    // Absolute Difference and Accumulate (Long), Bitwise Permute, Complex
    // Add, Add/Subtract Narrow High Part (no 8-bit sources).
    s(
        "01000101 01 0 xxxxx 010xxx xxxxx xxxxx",
        "saddw*/uaddw*/ssubw*/usubw*",
    ),
    s(
        "01000101 1x 0 xxxxx 010xxx xxxxx xxxxx",
        "saddw*/uaddw*/ssubw*/usubw*",
    ),
    s(
        "01000101 01 0 xxxxx 011xxx xxxxx xxxxx",
        "smull*/umull*/sqdmull*/pmull* (16-bit)",
    ),
    s("01000101 xx 0 xxxxx 11111x xxxxx xxxxx", "saba/uaba"),
    s("01000101 01 0 xxxxx 1100xx xxxxx xxxxx", "sabal*/uabal*"),
    s("01000101 1x 0 xxxxx 1100xx xxxxx xxxxx", "sabal*/uabal*"),
    s("01000101 xx 0 xxxxx 10110x xxxxx xxxxx", "bext/bdep"),
    s("01000101 xx 000000 11011x xxxxx xxxxx", "cadd"),
    s(
        "01000101 01 1 xxxxx 011xxx xxxxx xxxxx",
        "addhn*/raddhn*/subhn*/rsubhn*",
    ),
    s(
        "01000101 1x 1 xxxxx 011xxx xxxxx xxxxx",
        "addhn*/raddhn*/subhn*/rsubhn*",
    ),
    // ---- bits [31:29] = 011: floating point (no 8-bit elements).
    // SVE Floating Point Complex Multiply-Add.
    s(
        "01100100 01 0 xxxxx 0 xx xxx xxxxx xxxxx",
        "fcmla (vectors)",
    ),
    s(
        "01100100 1x 0 xxxxx 0 xx xxx xxxxx xxxxx",
        "fcmla (vectors)",
    ),
    // SVE Floating Point Arithmetic - Unpredicated.
    s(
        "01100101 01 0 xxxxx 000 0xx xxxxx xxxxx",
        "fadd/fsub/fmul/ftsmul (unpredicated)",
    ),
    s(
        "01100101 1x 0 xxxxx 000 0xx xxxxx xxxxx",
        "fadd/fsub/fmul/ftsmul (unpredicated)",
    ),
    s("01100101 01 0 xxxxx 000 11x xxxxx xxxxx", "frecps/frsqrts"),
    s("01100101 1x 0 xxxxx 000 11x xxxxx xxxxx", "frecps/frsqrts"),
    // SVE Floating Point Arithmetic - Predicated (opc 1011 and 111x
    // unallocated).
    s(
        "01100101 01 00 0xxx 100 xxx xxxxx xxxxx",
        "fadd/fsub/fmul/fsubr/fmax*/fmin* (predicated)",
    ),
    s(
        "01100101 1x 00 0xxx 100 xxx xxxxx xxxxx",
        "fadd/fsub/fmul/fsubr/fmax*/fmin* (predicated)",
    ),
    u("01100101 xx 00 1011 100 xxx xxxxx xxxxx"),
    s("01100101 01 00 100x 100 xxx xxxxx xxxxx", "fabd/fscale"),
    s("01100101 01 00 1010 100 xxx xxxxx xxxxx", "fmulx"),
    s("01100101 1x 00 100x 100 xxx xxxxx xxxxx", "fabd/fscale"),
    s("01100101 1x 00 1010 100 xxx xxxxx xxxxx", "fmulx"),
    s("01100101 01 00 110x 100 xxx xxxxx xxxxx", "fdivr/fdiv"),
    s("01100101 1x 00 110x 100 xxx xxxxx xxxxx", "fdivr/fdiv"),
    // SVE Floating Point Reduction, Serial Reduction, Compare - Vectors
    // (opc 111 with o3 = 0 unallocated).
    s("01100101 01 000 000 001 xxx xxxxx xxxxx", "faddv"),
    s("01100101 1x 000 000 001 xxx xxxxx xxxxx", "faddv"),
    s(
        "01100101 01 000 1xx 001 xxx xxxxx xxxxx",
        "fmaxnmv/fminnmv/fmaxv/fminv",
    ),
    s(
        "01100101 1x 000 1xx 001 xxx xxxxx xxxxx",
        "fmaxnmv/fminnmv/fmaxv/fminv",
    ),
    s("01100101 01 011 000 001 xxx xxxxx xxxxx", "fadda"),
    s("01100101 1x 011 000 001 xxx xxxxx xxxxx", "fadda"),
    s(
        "01100101 01 0 xxxxx 01x xxx xxxxx x xxxx",
        "fcmge/fcmgt/fcmeq/fcmne (vectors)",
    ),
    s(
        "01100101 1x 0 xxxxx 01x xxx xxxxx x xxxx",
        "fcmge/fcmgt/fcmeq/fcmne (vectors)",
    ),
    s("01100101 01 0 xxxxx 110 xxx xxxxx x xxxx", "fcmuo/facge"),
    s("01100101 1x 0 xxxxx 110 xxx xxxxx x xxxx", "fcmuo/facge"),
    s("01100101 01 0 xxxxx 111 xxx xxxxx 1 xxxx", "facgt"),
    s("01100101 1x 0 xxxxx 111 xxx xxxxx 1 xxxx", "facgt"),
    // SVE Floating Point Compare - with Zero (ge, gt, lt, le).
    s(
        "01100101 01 01 000 x 001 xxx xxxxx x xxxx",
        "fcmge/fcmgt/fcmlt/fcmle (zero)",
    ),
    s(
        "01100101 1x 01 000 x 001 xxx xxxxx x xxxx",
        "fcmge/fcmgt/fcmlt/fcmle (zero)",
    ),
    // SVE Floating Point Multiply-Add.
    s(
        "01100101 01 1 xxxxx 0 xx xxx xxxxx xxxxx",
        "fmla/fmls/fnmla/fnmls (vectors)",
    ),
    s(
        "01100101 1x 1 xxxxx 0 xx xxx xxxxx xxxxx",
        "fmla/fmls/fnmla/fnmls (vectors)",
    ),
    s(
        "01100101 01 1 xxxxx 1 xx xxx xxxxx xxxxx",
        "fmad/fmsb/fnmad/fnmsb",
    ),
    s(
        "01100101 1x 1 xxxxx 1 xx xxx xxxxx xxxxx",
        "fmad/fmsb/fnmad/fnmsb",
    ),
    // ---- bits [31:29] = 100: SVE Memory - 32-bit Gather and Unsized Contiguous.
    s("1000010110 xxxxxx 010 xxx xxxxx xxxxx", "ldr (vector)"),
    s("1000010110 xxxxxx 000 xxx xxxxx 0xxxx", "ldr (predicate)"),
    s(
        "1000010111 xxxxxx 0 xx xxx xxxxx 0 xxxx",
        "prfb/prfh/prfw/prfd (scalar plus immediate)",
    ),
    s(
        "1000010 xx 1 xxxxxx 1 xx xxx xxxxx xxxxx",
        "ld1r* (broadcast)",
    ),
    // Gathers (32-bit offsets and vector plus immediate): the cells of bits [24:21] and [15:13] the
    // encoding index allocates whole, merged into cubes (the cells a row
    // above decides are left to it; prefetches, and cells holding
    // unallocated encodings, are not decoded).
    s(
        "1000010 0xx0 xxxxx 0xx xxx xxxxx xxxxx",
        "ld1b/ld1h/ld1sb/ld1sh/ldff1b/ldff1h/ldff1sb/ldff1sh (gather, 32-bit)",
    ),
    s(
        "1000010 01x1 xxxxx xxx xxx xxxxx xxxxx",
        "ld1h/ld1sh/ldff1h/ldff1sh (gather, 32-bit)",
    ),
    s(
        "1000010 10xx xxxxx 01x xxx xxxxx xxxxx",
        "ld1w/ldff1w (gather, 32-bit)",
    ),
    s(
        "1000010 0xxx xxxxx 10x xxx xxxxx xxxxx",
        "ld1sb/ld1sh/ldff1sb/ldff1sh/ldnt1b/ldnt1h/ldnt1sb/ldnt1sh (gather, 32-bit)",
    ),
    s(
        "1000010 x0x1 xxxxx 11x xxx xxxxx xxxxx",
        "ld1b/ld1w/ldff1b/ldff1w (gather, 32-bit)",
    ),
    s(
        "1000010 x0x0 xxxxx 101 xxx xxxxx xxxxx",
        "ldnt1b/ldnt1w (gather, 32-bit)",
    ),
    // ---- bits [31:29] = 101: SVE Memory - Contiguous Load.
    s(
        "1010010 xxxx 0 xxxx 111 xxx xxxxx xxxxx",
        "ldnt1*/ld2*/ld3*/ld4* (scalar plus immediate)",
    ),
    u("1010010 xxxx 11111 110 xxx xxxxx xxxxx"),
    s(
        "1010010 xxxx xxxxx 110 xxx xxxxx xxxxx",
        "ldnt1*/ld2*/ld3*/ld4* (scalar plus scalar)",
    ),
    s(
        "1010010 xxxx x xxxx 101 xxx xxxxx xxxxx",
        "ld1*/ldnf1* (scalar plus immediate)",
    ),
    u("1010010 xxxx 11111 010 xxx xxxxx xxxxx"),
    s(
        "1010010 xxxx xxxxx 010 xxx xxxxx xxxxx",
        "ld1* (scalar plus scalar)",
    ),
    s(
        "1010010 xxxx xxxxx 011 xxx xxxxx xxxxx",
        "ldff1* (scalar plus scalar)",
    ),
    s(
        "1010010 xx 0x 0 xxxx 001 xxx xxxxx xxxxx",
        "ld1rq*/ld1ro* (scalar plus immediate)",
    ),
    u("1010010 xx 0x 11111 000 xxx xxxxx xxxxx"),
    s(
        "1010010 xx 0x xxxxx 000 xxx xxxxx xxxxx",
        "ld1rq*/ld1ro* (scalar plus scalar)",
    ),
    // ---- bits [31:29] = 111: SVE Memory - Store. Spills first (they
    // share `msz` = 11, `size` = 0x with st1d, which does not allocate it).
    s("1110010110 xxxxxx 010 xxx xxxxx xxxxx", "str (vector)"),
    s("1110010110 xxxxxx 000 xxx xxxxx 0xxxx", "str (predicate)"),
    s(
        "1110010 xxxx 1 xxxx 111 xxx xxxxx xxxxx",
        "stnt1*/st2*/st3*/st4* (scalar plus immediate)",
    ),
    u("1110010 xxxx 11111 011 xxx xxxxx xxxxx"),
    s(
        "1110010 xxxx xxxxx 011 xxx xxxxx xxxxx",
        "stnt1*/st2*/st3*/st4* (scalar plus scalar)",
    ),
    // st1* (scalar plus immediate): msz (bits [24:23]) ≤ size (bits
    // [22:21]); st1w with size = 00 and st1d with size = 10 (the 128-bit
    // element forms of SVE2.1) are left to the catch-all.
    s(
        "1110010 00 xx 0 xxxx 111 xxx xxxxx xxxxx",
        "st1b (scalar plus immediate)",
    ),
    s(
        "1110010 01 01 0 xxxx 111 xxx xxxxx xxxxx",
        "st1h (scalar plus immediate)",
    ),
    s(
        "1110010 01 1x 0 xxxx 111 xxx xxxxx xxxxx",
        "st1h (scalar plus immediate)",
    ),
    s(
        "1110010 10 1x 0 xxxx 111 xxx xxxxx xxxxx",
        "st1w (scalar plus immediate)",
    ),
    s(
        "1110010 11 11 0 xxxx 111 xxx xxxxx xxxxx",
        "st1d (scalar plus immediate)",
    ),
    // st1* (scalar plus scalar): the same pairs, Rm = 11111 unallocated.
    u("1110010 xxxx 11111 010 xxx xxxxx xxxxx"),
    s(
        "1110010 00 xx xxxxx 010 xxx xxxxx xxxxx",
        "st1b (scalar plus scalar)",
    ),
    s(
        "1110010 01 01 xxxxx 010 xxx xxxxx xxxxx",
        "st1h (scalar plus scalar)",
    ),
    s(
        "1110010 01 1x xxxxx 010 xxx xxxxx xxxxx",
        "st1h (scalar plus scalar)",
    ),
    s(
        "1110010 10 1x xxxxx 010 xxx xxxxx xxxxx",
        "st1w (scalar plus scalar)",
    ),
    s(
        "1110010 11 11 xxxxx 010 xxx xxxxx xxxxx",
        "st1d (scalar plus scalar)",
    ),
    // ---- bits [31:29] = 110: SVE Memory - 64-bit Gather, cell by cell
    // as the 32-bit gathers.
    s(
        "1100010 xxx0 xxxxx x10 xxx xxxxx xxxxx",
        "ld1b/ld1d/ld1h/ld1w/ldnt1b/ldnt1d/ldnt1h/ldnt1w (gather, 64-bit)",
    ),
    s(
        "1100010 x1x1 xxxxx x1x xxx xxxxx xxxxx",
        "ld1d/ld1h/ldff1d/ldff1h (gather, 64-bit)",
    ),
    s(
        "1100010 10x1 xxxxx xxx xxx xxxxx xxxxx",
        "ld1sw/ld1w/ldff1sw/ldff1w (gather, 64-bit)",
    ),
    s(
        "1100010 x0x0 xxxxx 0xx xxx xxxxx xxxxx",
        "ld1b/ld1sb/ld1sw/ld1w/ldff1b/ldff1sb/ldff1sw/ldff1w (gather, 64-bit)",
    ),
    s(
        "1100010 01xx xxxxx 0xx xxx xxxxx xxxxx",
        "ld1h/ld1sh/ldff1h/ldff1sh (gather, 64-bit)",
    ),
    s(
        "1100010 x010 xxxxx xxx xxx xxxxx xxxxx",
        "ld1b/ld1sb/ld1sw/ld1w/ldff1b/ldff1sb/ldff1sw/ldff1w (gather, 64-bit)",
    ),
    s(
        "1100010 0x01 xxxxx 1xx xxx xxxxx xxxxx",
        "ld1b/ld1h/ld1sb/ld1sh/ldff1b/ldff1h/ldff1sb/ldff1sh (gather, 64-bit)",
    ),
    s(
        "1100010 011x xxxxx xxx xxx xxxxx xxxxx",
        "ld1h/ld1sh/ldff1h/ldff1sh (gather, 64-bit)",
    ),
    s(
        "1100010 xxx0 xxxxx 01x xxx xxxxx xxxxx",
        "ld1b/ld1d/ld1h/ld1w/ldff1b/ldff1d/ldff1h/ldff1w (gather, 64-bit)",
    ),
    s(
        "1100010 x0x0 xxxxx xx0 xxx xxxxx xxxxx",
        "ld1b/ld1sb/ld1sw/ld1w/ldnt1b/ldnt1sb/ldnt1sw/ldnt1w (gather, 64-bit)",
    ),
    s(
        "1100010 xx10 xxxxx x1x xxx xxxxx xxxxx",
        "ld1b/ld1d/ld1h/ld1w/ldff1b/ldff1d/ldff1h/ldff1w (gather, 64-bit)",
    ),
    s(
        "1100010 0xx0 xxxxx xx0 xxx xxxxx xxxxx",
        "ld1b/ld1h/ld1sb/ld1sh/ldnt1b/ldnt1h/ldnt1sb/ldnt1sh (gather, 64-bit)",
    ),
    // Scatters (bits [31:29] = 111, bits [15:13] = 1x0, 101, and the
    // vector-plus-scalar stnt1), cell by cell as the gathers.
    s(
        "1110010 xxx0 xxxxx 101 xxx xxxxx xxxxx",
        "st1b/st1d/st1h/st1w (scatter)",
    ),
    s(
        "1110010 xx00 xxxxx 1x0 xxx xxxxx xxxxx",
        "st1b/st1d/st1h/st1w (scatter)",
    ),
    s("1110010 01xx xxxxx 1x0 xxx xxxxx xxxxx", "st1h (scatter)"),
    s("1110010 10xx xxxxx 1x0 xxx xxxxx xxxxx", "st1w (scatter)"),
    s(
        "1110010 xx00 xxxxx x01 xxx xxxxx xxxxx",
        "st1b/st1d/st1h/st1w/stnt1b/stnt1d/stnt1h/stnt1w (scatter)",
    ),
    s(
        "1110010 x10x xxxxx 10x xxx xxxxx xxxxx",
        "st1d/st1h (scatter)",
    ),
    s(
        "1110010 x0x0 xxxxx x01 xxx xxxxx xxxxx",
        "st1b/st1w/stnt1b/stnt1w (scatter)",
    ),
    s(
        "1110010 x0x0 xxxxx 1x0 xxx xxxxx xxxxx",
        "st1b/st1w (scatter)",
    ),
    s(
        "1110010 x01x xxxxx 1x1 xxx xxxxx xxxxx",
        "st1b/st1w (scatter)",
    ),
    s(
        "1110010 x10x xxxxx 1x0 xxx xxxxx xxxxx",
        "st1d/st1h (scatter)",
    ),
    s(
        "1110010 0xx0 xxxxx x01 xxx xxxxx xxxxx",
        "st1b/st1h/stnt1b/stnt1h (scatter)",
    ),
    s(
        "1110010 0x1x xxxxx 1x1 xxx xxxxx xxxxx",
        "st1b/st1h (scatter)",
    ),
    s(
        "1110010 1x0x xxxxx 10x xxx xxxxx xxxxx",
        "st1d/st1w (scatter)",
    ),
    // Everything else of the group: not decoded.
    r("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx", "sve", WHY_SVE),
];

/// C4.1.1: the SME group (bit 31 = 1, `op0` = 0000), the classes this
/// backend takes apart: the outer products into ZA tiles and the loads and
/// stores of ZA tile slices. Found cell by cell (bits \[30:29\],
/// \[24:21\], \[15:13\], \[4:2\]) where the encoding index allocates the
/// whole cell, merged into cubes; no SME instruction reads or writes the pc,
/// and `smstart`/`smstop` (which change PSTATE.SM and PSTATE.ZA) are `msr`
/// (immediate), refused in the branch/system group. The rest (`ldr`/`str`
/// ZA, `zero`, `mova`, `addha`/`addva`, SME2's multi-vector instructions)
/// is refused as not decoded.
pub(super) const SME: &[Entry] = &[
    // SME floating-point outer products (fmopa/fmops, bfmopa/bfmops).
    s(
        "1000000x 100 xxxxx xxx xxx xxxxx x00xx",
        "bfmopa/bfmops/fmopa/fmops",
    ),
    s(
        "10000000 110 xxxxx xxx xxx xxxxx x0xxx",
        "fmopa/fmops (64-bit)",
    ),
    s(
        "10000001 10x xxxxx xxx xxx xxxxx x00xx",
        "bfmopa/bfmops/fmopa/fmops",
    ),
    // SME integer outer products.
    s(
        "1010000x 1xx xxxxx xxx xxx xxxxx x00xx",
        "smopa/smops/sumopa/sumops/umopa/umops/usmopa/usmops",
    ),
    s(
        "1010000x 11x xxxxx xxx xxx xxxxx x0xxx",
        "smopa/smops/sumopa/sumops/umopa/umops/usmopa/usmops (64-bit)",
    ),
    // SME loads and stores of ZA tile slices.
    s(
        "11100000 xxx xxxxx xxx xxx xxxxx 0xxxx",
        "ld1b/ld1h/ld1w/ld1d/st1b/st1h/st1w/st1d (ZA tile slice)",
    ),
    s(
        "1110000x 11x xxxxx xxx xxx xxxxx 0xxxx",
        "ld1d/ld1q/st1d/st1q (ZA tile slice)",
    ),
    r("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx", "sme", WHY_SVE),
];
