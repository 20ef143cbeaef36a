//! The kernel's exception table: instructions allowed to fault, and where
//! execution continues when they do (Linux: `_ASM_EXTABLE`). The fault entry
//! consults it after the engine has had its say, so a fault inside an
//! out-of-line slot, which the engine moves back to the probe address, is
//! fixed up like the original instruction's fault.

use crate::probed_code::{
    addr, xq_callptr_fixup, xq_callptr_site, xq_load_fixup, xq_load_insn, Label,
};

/// `(instruction that may fault, where to continue)`.
static TABLE: [(Label, Label); 2] = [
    (xq_load_insn, xq_load_fixup),
    (xq_callptr_site, xq_callptr_fixup),
];

/// The continuation for a fault at `rip`, if the instruction there may fault.
pub fn fixup(rip: usize) -> Option<usize> {
    TABLE
        .iter()
        .find(|(insn, _)| addr(*insn) == rip)
        .map(|(_, fixup)| addr(*fixup))
}
