//! Refusing addresses inside an LL/SC sequence.
//!
//! `ll.w`/`ll.d` set LLbit; the matching `sc.w`/`sc.d` stores only if LLbit
//! is still set (vol. 1 §2.2.7.1). Every exception return (`ertn`) clears
//! LLbit unless `CSR.LLBCTL.KLO` is set, and a probe hit is two exceptions
//! (the breakpoint and the step end). A probe between an `ll` and its `sc`
//! therefore makes the `sc` fail on every retry: the loop never ends. Linux
//! only refuses the `ll`/`sc` themselves; we also refuse every address after
//! an `ll` that no `sc` has closed yet, looking back [`LOOK_BACK`] bytes.
//!
//! The scan is straight-line: an `ll` more than [`LOOK_BACK`] bytes before
//! the address is not seen. Compilers and Linux keep LL/SC loops to a few
//! instructions, well inside the window.

use probe_hal::Refusal;

use crate::decode::{lookup, Entry};

/// Bytes before a probe address that are scanned (16 instructions).
pub const LOOK_BACK: usize = 64;

/// What an instruction does to an LL/SC window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Opens a window (sets LLbit); the refusal names the sequence.
    Opens(Refusal),
    /// Closes a window (consumes LLbit).
    Closes,
    /// Neither.
    Neutral,
}

/// Why an address inside a window is refused.
pub const WHY_INSIDE_LLSC: &str = "the address lies between a load-linked and its \
     store-conditional: the breakpoint and step traps end with `ertn`, which clears LLbit, \
     so the store-conditional would fail on every retry and the loop would never end";

/// Openers and closers of LL/SC windows, by mnemonic (Linux
/// `arch/loongarch/include/asm/inst.h` opcodes `ll*_op`, `sc*_op`,
/// `llacq*_op`, `screl*_op`, `scq_op`).
const WINDOW_RULES: &[(&str, Effect)] = &[
    (
        "ll.w",
        Effect::Opens(Refusal::new("ll.w … sc.w sequence", WHY_INSIDE_LLSC)),
    ),
    (
        "ll.d",
        Effect::Opens(Refusal::new("ll.d … sc.d sequence", WHY_INSIDE_LLSC)),
    ),
    (
        "llacq.w",
        Effect::Opens(Refusal::new("llacq.w … screl.w sequence", WHY_INSIDE_LLSC)),
    ),
    (
        "llacq.d",
        Effect::Opens(Refusal::new("llacq.d … screl.d sequence", WHY_INSIDE_LLSC)),
    ),
    ("sc.w", Effect::Closes),
    ("sc.d", Effect::Closes),
    ("sc.q", Effect::Closes),
    ("screl.w", Effect::Closes),
    ("screl.d", Effect::Closes),
];

fn effect(word: u32) -> Effect {
    match lookup(word) {
        Some(Entry { mnemonic, .. }) => WINDOW_RULES
            .iter()
            .find(|(m, _)| m == mnemonic)
            .map_or(Effect::Neutral, |&(_, e)| e),
        None => Effect::Neutral,
    }
}

/// The refusal for an address preceded by `before` (the bytes that end at
/// the address), or `None` when no LL/SC window is open there.
pub fn open_window(before: &[u8]) -> Option<Refusal> {
    // Whole words that end exactly at the probe address.
    let skip = before.len() % 4;
    let mut open = None;
    for w in before[skip..].chunks_exact(4) {
        let word = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        match effect(word) {
            Effect::Opens(r) => open = Some(r),
            Effect::Closes => open = None,
            Effect::Neutral => {}
        }
    }
    open
}
