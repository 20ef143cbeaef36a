//! The probe list, one line per probe, for a `/sys`-like file.

use core::fmt::{Result, Write};

use super::traps::ENGINE;

/// Write the listing: a header, then a line per probe.
pub fn show(out: &mut dyn Write) -> Result {
    writeln!(out, "addr space kind enabled hits missed programs")?;
    for p in ENGINE.list::<64>() {
        let (a, s, k, on) = (p.addr, p.space, p.kind, p.enabled);
        let (h, m, n) = (p.hits, p.missed, p.attached);
        writeln!(out, "{a:#x} {s:?} {k:?} {on} {h} {m} {n}")?;
    }
    Ok(())
}
