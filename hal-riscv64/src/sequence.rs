//! Refusing addresses inside an LR/SC sequence.
//!
//! Between a load-reserved and its store-conditional, a trap may clear the
//! reservation (Linux's trap return does so on purpose, and an `sc` from
//! another context may do it), and then the `sc` fails. A probe there traps
//! on every iteration of the retry loop, so the `sc` may never succeed.
//!
//! The unprivileged manual (§8.3, "Eventual Success of Store-Conditional
//! Instructions") bounds a constrained LR/SC loop to 16 instructions placed
//! sequentially in memory, so an open `lr` lies at most 15 instructions, 60
//! bytes, before any address inside its sequence: [`LOOK_BACK`] = 64 bytes.
//!
//! ## The heuristic and its limits
//! With compressed instructions, the bytes before an address cannot be
//! decoded backwards reliably (a halfword may be an instruction start or the
//! second half of a 32-bit instruction). So every 2-byte-aligned offset of
//! the window is tried as a 32-bit word, in address order: an `lr.w`/`lr.d`
//! encoding opens a sequence, an `sc.w`/`sc.d` encoding closes it, and the
//! address is refused when a sequence is open at the end of the window.
//! - A false `lr` (bytes straddling two instructions that happen to form an
//!   `lr`: 19 fixed bits, about one chance in 500,000 per offset) refuses a
//!   probe that would have been fine: safe.
//! - A false `sc` after a real `lr` would accept an address inside a
//!   sequence (17 fixed bits, about one in 130,000 per offset).
//! - `lr`/`sc` further away than the ISA's bound, or an `sc` reached only by
//!   a jump from elsewhere, are not seen; code outside the constrained-loop
//!   rules has no forward-progress guarantee anyway.
//! - An `lr` that is never followed by an `sc` (polling a reservation)
//!   makes the next 60 bytes unprobeable: safe.

use probe_hal::{ProbeError, Refusal};

use crate::decode::{LR_MASK, LR_VALUE, SC_MASK, SC_VALUE};

/// Bytes before a probe address that [`check`] looks at.
pub const LOOK_BACK: usize = 64;

const INSIDE_W: Refusal = Refusal::new(
    "lr.w/sc.w sequence",
    "the address lies between a load-reserved and its store-conditional: the probe's trap may clear the reservation, so the sc could fail on every retry",
);
const INSIDE_D: Refusal = Refusal::new(
    "lr.d/sc.d sequence",
    "the address lies between a load-reserved and its store-conditional: the probe's trap may clear the reservation, so the sc could fail on every retry",
);

/// Refuse `addr` when `before` (the bytes ending at `addr`, which is
/// 2-byte aligned) holds an `lr` not closed by an `sc`.
pub fn check(addr: usize, before: &[u8]) -> Result<(), ProbeError> {
    // Offsets whose address is 2-byte aligned: before[i] is at
    // addr - len + i, and addr is even.
    let mut open = None;
    let mut at = before.len() % 2;
    while at + 4 <= before.len() {
        let word = u32::from_le_bytes([before[at], before[at + 1], before[at + 2], before[at + 3]]);
        if word & LR_MASK == LR_VALUE {
            open = Some(if word & 0x1000 == 0 {
                INSIDE_W
            } else {
                INSIDE_D
            });
        } else if word & SC_MASK == SC_VALUE {
            open = None;
        }
        at += 2;
    }
    match open {
        Some(refusal) => Err(ProbeError::refused(refusal, addr)),
        None => Ok(()),
    }
}
