//! Refusing addresses inside a load-exclusive/store-exclusive sequence.
//!
//! A load-exclusive (`ldxr`, `ldaxr`, `ldxp`, `ldaxp` and their byte and
//! halfword forms) arms the exclusive monitor; the matching store-exclusive
//! stores only if the monitor is still armed. Every exception return
//! (`eret`) clears the local monitor (Arm ARM B2.9.5, "Exclusive access
//! instructions and context switching": `ClearExclusiveLocal` on exception
//! return), and a probe hit is two exceptions (the breakpoint and the step
//! end). A probe between the two therefore makes the store-exclusive fail
//! on every retry: the loop never ends.
//!
//! Like Linux (`is_probed_address_atomic` in
//! `arch/arm64/kernel/probes/decode-insn.c`) we look back up to
//! [`LOOK_BACK`] bytes (32 instructions; the engine stops at the symbol
//! start when it knows it) for a load-exclusive not yet closed by a
//! store-exclusive. Linux's masks also count the ordered `ldar`/`stlr` and
//! `cas` (same opcode group) as exclusives; we use the exact exclusive
//! encodings, which do not touch the monitor's pairing otherwise.

use probe_hal::Refusal;

use crate::decode::lookup;

/// Bytes before a probe address that are scanned (32 instructions).
pub const LOOK_BACK: usize = 128;

/// Why an address inside a window is refused.
pub const WHY_INSIDE_EXCLUSIVE: &str = "the address lies between a load-exclusive and its \
     store-exclusive: the breakpoint and step traps end with `eret`, which clears the \
     exclusive monitor, so the store-exclusive would fail on every retry and the loop would \
     never end";

/// What an instruction does to an exclusive window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Opens(Refusal),
    Closes,
    Neutral,
}

/// Openers and closers of exclusive windows, by table mnemonic.
const WINDOW_RULES: &[(&str, Effect)] = &[
    (
        "ldxr",
        Effect::Opens(Refusal::new("ldxr … stxr sequence", WHY_INSIDE_EXCLUSIVE)),
    ),
    (
        "ldaxr",
        Effect::Opens(Refusal::new("ldaxr … stlxr sequence", WHY_INSIDE_EXCLUSIVE)),
    ),
    (
        "ldxp",
        Effect::Opens(Refusal::new("ldxp … stxp sequence", WHY_INSIDE_EXCLUSIVE)),
    ),
    (
        "ldaxp",
        Effect::Opens(Refusal::new("ldaxp … stlxp sequence", WHY_INSIDE_EXCLUSIVE)),
    ),
    ("stxr", Effect::Closes),
    ("stlxr", Effect::Closes),
    ("stxp", Effect::Closes),
    ("stlxp", Effect::Closes),
];

fn effect(word: u32) -> Effect {
    let m = lookup(word).mnemonic;
    WINDOW_RULES
        .iter()
        .find(|(r, _)| *r == m)
        .map_or(Effect::Neutral, |&(_, e)| e)
}

/// The refusal for an address preceded by `before` (the bytes that end at
/// the address), or `None` when no exclusive window is open there.
pub fn open_window(before: &[u8]) -> Option<Refusal> {
    let skip = before.len() % 4;
    let mut open = None;
    for w in before[skip..].chunks_exact(4) {
        match effect(u32::from_le_bytes([w[0], w[1], w[2], w[3]])) {
            Effect::Opens(r) => open = Some(r),
            Effect::Closes => open = None,
            Effect::Neutral => {}
        }
    }
    open
}
