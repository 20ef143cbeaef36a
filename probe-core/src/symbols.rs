//! Kernel symbol tables: name to address and address to name, for the
//! services' symbol lookups.
//!
//! A kernel that has a `/proc/kallsyms`-style table (start addresses and
//! names, sorted by address, no sizes) hands it to the engine through
//! [`crate::KernelServices::symbols`]; the slice implementation below gives
//! every symbol the extent up to the next one's start, as Linux's
//! `kallsyms_lookup_size_offset` does.

use crate::services::Symbol;

/// A kernel symbol table the engine can search both ways.
pub trait SymbolTable: Sync {
    /// The symbol named `name`.
    fn lookup(&self, name: &str) -> Option<Symbol>;

    /// The symbol whose extent holds `addr`, with its name.
    fn containing(&self, addr: usize) -> Option<(&str, Symbol)>;
}

/// A table sorted by address, names and starts only (as `/proc/kallsyms`).
/// A symbol extends to the next one's start; the last one's size is
/// unknown (0: see [`Symbol::size`]), so end the table with a marker such
/// as Linux's `_etext` when the last function must have a size. Several
/// names at one address are aliases of one symbol.
///
/// ```
/// use probe_core::{Symbol, SymbolTable};
/// let table: &[(usize, &str)] = &[(0x1000, "start"), (0x1040, "main"), (0x1100, "_etext")];
/// assert_eq!(table.lookup("main"), Some(Symbol { addr: 0x1040, size: 0xc0 }));
/// assert_eq!(table.containing(0x1044), Some(("main", Symbol { addr: 0x1040, size: 0xc0 })));
/// assert_eq!(table.containing(0xfff), None);
/// ```
impl SymbolTable for [(usize, &str)] {
    fn lookup(&self, name: &str) -> Option<Symbol> {
        let i = self.iter().position(|&(_, n)| n == name)?;
        Some(symbol_at(self, i))
    }

    fn containing(&self, addr: usize) -> Option<(&str, Symbol)> {
        let i = self.partition_point(|&(a, _)| a <= addr).checked_sub(1)?;
        Some((self[i].1, symbol_at(self, i)))
    }
}

/// A reference to a table is one (so a `&'static [(usize, &str)]` kept in
/// a kernel's static can be handed out as `&dyn SymbolTable`).
impl<T: SymbolTable + ?Sized> SymbolTable for &T {
    fn lookup(&self, name: &str) -> Option<Symbol> {
        (**self).lookup(name)
    }

    fn containing(&self, addr: usize) -> Option<(&str, Symbol)> {
        (**self).containing(addr)
    }
}

/// Entry `i` with its extent up to the next higher start (0: none).
fn symbol_at(table: &[(usize, &str)], i: usize) -> Symbol {
    let addr = table[i].0;
    let next = table[i..].iter().map(|&(a, _)| a).find(|&a| a > addr);
    Symbol {
        addr,
        size: next.map_or(0, |n| n - addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[(usize, &str)] = &[(0x100, "a"), (0x100, "a_alias"), (0x180, "b"), (0x200, "c")];

    #[test]
    fn every_address_maps_to_the_symbol_whose_extent_holds_it() {
        for addr in 0..0x300 {
            let got = TABLE.containing(addr);
            let want = match addr {
                0..=0xff => None,
                0x100..=0x17f => Some((
                    "a_alias",
                    Symbol {
                        addr: 0x100,
                        size: 0x80,
                    },
                )),
                0x180..=0x1ff => Some((
                    "b",
                    Symbol {
                        addr: 0x180,
                        size: 0x80,
                    },
                )),
                _ => Some((
                    "c",
                    Symbol {
                        addr: 0x200,
                        size: 0,
                    },
                )),
            };
            assert_eq!(got, want, "{addr:#x}");
        }
    }

    #[test]
    fn lookup_sizes_aliases_by_the_next_distinct_start() {
        assert_eq!(
            TABLE.lookup("a"),
            Some(Symbol {
                addr: 0x100,
                size: 0x80
            })
        );
        assert_eq!(TABLE.lookup("a_alias"), TABLE.lookup("a"));
        assert_eq!(
            TABLE.lookup("c"),
            Some(Symbol {
                addr: 0x200,
                size: 0
            })
        );
        assert_eq!(TABLE.lookup("d"), None);
        let empty: &[(usize, &str)] = &[];
        assert_eq!(empty.lookup("a"), None);
        assert_eq!(empty.containing(0), None);
    }
}
