//! The probe list, one line per probe, for a `/sys`-like file.

use core::fmt::{Result, Write};

use super::traps::ENGINE;

/// Write the listing: a line per probe (`ProbeInfo`'s own format).
pub fn show(out: &mut dyn Write) -> Result {
    ENGINE
        .list::<64>()
        .iter()
        .try_for_each(|p| writeln!(out, "{p}"))
}
