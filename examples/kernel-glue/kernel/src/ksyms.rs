//! The kernel's symbol table: names and start addresses only, sorted by
//! address, as `/proc/kallsyms` (no sizes).

use spin::Once;

/// The table, installed at boot.
pub static TABLE: Once<&'static [(usize, &'static str)]> = Once::new();

/// Boot: install the table (sorted by address).
pub fn init(table: &'static [(usize, &'static str)]) {
    TABLE.call_once(|| table);
}
