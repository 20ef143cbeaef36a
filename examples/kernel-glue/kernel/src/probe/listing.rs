//! The probe list, one line per probe, for a `/sys`-like file.

use core::fmt::{Result, Write};

use super::traps::ENGINE;

/// Write the listing: address, space, kind, state, counters, programs.
pub fn show(out: &mut dyn Write) -> Result {
    for p in ENGINE.list::<64>() {
        let (a, s, k, on) = (p.addr, p.space, p.kind, p.enabled);
        let (h, m, n) = (p.hits, p.missed, p.attached);
        writeln!(
            out,
            "{a:#x} {s:?} {k:?} {on} hits={h} missed={m} programs={n}"
        )?;
    }
    Ok(())
}
