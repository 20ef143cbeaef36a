//! SVE (Arm ARM C4.1.2 "SVE encodings", top-level `op0` = 0010), the
//! classes this backend takes apart: the contiguous loads and stores, the
//! vector and predicate register fills and spills, `while*`, `ptrue`, the
//! element-count instructions and `dup` from a general register. These are
//! what compilers and glibc's string functions emit (glibc's SVE
//! `memcpy`/`memmove`: `whilelo`, `ptrue`, `cntb`, `ld1b`, `st1b`, `dup`).
//!
//! No SVE instruction reads or writes the pc (the SVE `adr` is a vector
//! address computation), so every allocated row is stepped. Each row is an
//! encoding diagram of the SVE encoding index (bit 31 first), with the
//! unallocated encodings inside a class (`Rm` = 11111 of the
//! scalar-plus-scalar loads and stores, the `msz`/`size` combinations
//! `st1*` does not allocate, `size` = 00 of the vector `inc*`/`dec*`) as
//! rows of their own, or left out of the class rows. The classes not listed
//! here, and the whole SME group, are refused ([`super::WHY_SVE`]): they
//! are not decoded, so an unallocated word is never stepped.
//!
//! Every row was checked against GNU objdump 2.40 (`tests/objdump.rs`
//! samples each stepped row's words).

use super::{r, s, u, Entry, WHY_SVE};

/// C4.1.2: the SVE group, class by class (classes of the SVE encoding
/// index named in the comments).
pub(super) const SVE: &[Entry] = &[
    // SVE Element Count (op0 = 000): cnt*, inc*/dec*, saturating forms.
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
    // SVE Permute Vector - Unpredicated: dup (scalar).
    s("00000101 xx 100000 001110 xxxxx xxxxx", "dup (scalar)"),
    // SVE Integer Compare - Scalars: while (op0 = 001).
    s("00100101 xx 1 xxxxx 000 xxx xxxxx x xxxx", "while*"),
    // SVE Predicate Initialize: ptrue, ptrues.
    s("00100101 xx 01100 x 111000 xxxxx 0 xxxx", "ptrue/ptrues"),
    // SVE Memory - 32-bit Gather and Unsized Contiguous (op0 = 100): fills.
    s("1000010110 xxxxxx 010 xxx xxxxx xxxxx", "ldr (vector)"),
    s("1000010110 xxxxxx 000 xxx xxxxx 0xxxx", "ldr (predicate)"),
    // SVE Memory - Contiguous Load (op0 = 101).
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
    // SVE Memory - Store (op0 = 111): spills first (they share `msz` = 11,
    // `size` = 0x with st1d, which does not allocate it).
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
    // Everything else of the group: not decoded.
    r("xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx", "sve", WHY_SVE),
];
