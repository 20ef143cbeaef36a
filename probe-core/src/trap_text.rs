//! The engine's own trap path, kept apart so it can be refused as a probe
//! target.
//!
//! Every function the trap path runs is placed in the linker section
//! `probe_trap_text`. ELF linkers (GNU ld, lld) define `__start_` and
//! `__stop_` symbols for a section whose name is a C identifier, so the
//! engine finds its own range at run time and refuses probes inside it: a
//! breakpoint there would trap again before the re-entry guard runs. A
//! kernel linker script that lists sections explicitly must keep the
//! section and define the two symbols itself (lld defines them only for an
//! output section of that name), e.g. inside its `.text`:
//!
//! ```text
//! __start_probe_trap_text = .;
//! KEEP(*(probe_trap_text))
//! __stop_probe_trap_text = .;
//! ```

use core::ops::Range;

#[cfg(not(miri))]
extern "C" {
    static __start_probe_trap_text: u8;
    static __stop_probe_trap_text: u8;
}

/// Keeps the section present even in a program whose trap path the linker
/// dropped (the `__start_`/`__stop_` symbols then still resolve).
#[cfg(not(miri))]
#[link_section = "probe_trap_text"]
#[inline(never)]
extern "C" fn probe_trap_text_anchor() {}

/// Address range of the engine's trap path.
#[cfg(not(miri))]
pub(crate) fn trap_text() -> Range<usize> {
    // Referencing the anchor keeps the section (and so its `__start_` and
    // `__stop_` symbols) alive under `--gc-sections`.
    let anchor = core::hint::black_box(probe_trap_text_anchor as *const () as usize);
    // Only the addresses of the linker-defined symbols are taken; they are
    // never read.
    let (start, stop) = (
        core::ptr::addr_of!(__start_probe_trap_text) as usize,
        core::ptr::addr_of!(__stop_probe_trap_text) as usize,
    );
    start.min(anchor)..stop.max(anchor + 1)
}

/// Under Miri, which has no linker-defined section symbols (`extern static
/// '__start_probe_trap_text' is not supported`): an empty range, so nothing
/// is refused as part of the trap path (the tests that expect such a
/// refusal are ignored there).
#[cfg(miri)]
pub(crate) fn trap_text() -> Range<usize> {
    0..0
}
