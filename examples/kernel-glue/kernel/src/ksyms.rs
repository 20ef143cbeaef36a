//! The kernel's symbol table: names and start addresses only, sorted by
//! address, as `/proc/kallsyms` (no sizes).

use spin::Once;

static TABLE: Once<&'static [(usize, &'static str)]> = Once::new();

/// Boot: install the table (sorted by address).
pub fn init(table: &'static [(usize, &'static str)]) {
    TABLE.call_once(|| table);
}

fn table() -> &'static [(usize, &'static str)] {
    TABLE.get().copied().unwrap_or(&[])
}

/// The address of `name`.
pub fn lookup(name: &str) -> Option<usize> {
    table().iter().find(|(_, n)| *n == name).map(|&(a, _)| a)
}

/// The symbol whose range (up to the next symbol's start) holds `addr`:
/// its start and the next symbol's start (`usize::MAX` for the last).
pub fn containing(addr: usize) -> Option<(usize, usize)> {
    let t = table();
    let i = t.partition_point(|&(a, _)| a <= addr).checked_sub(1)?;
    Some((t[i].0, t.get(i + 1).map_or(usize::MAX, |&(a, _)| a)))
}
