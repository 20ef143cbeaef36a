//! The kernel's symbol table, as far as probes need it: the probed test
//! functions with their sizes (for probes by name, the function-entry check
//! of return probes, and the instruction-boundary walk).

use probe_core::Symbol;

use crate::probed_code::*;

/// Where a symbol starts or ends (a function, so the table can be a static
/// although addresses are known only at run time).
type At = fn() -> usize;

/// A table row for the function `$f` ending at the label `$end`.
macro_rules! row {
    ($f:ident, $end:ident) => {
        (
            stringify!($f),
            (|| $f as *const () as usize) as At,
            (|| $end as *const () as usize) as At,
        )
    };
}

/// `(name, first byte, end)`.
static TABLE: &[(&str, At, At)] = &[
    row!(xq_alu, xq_alu_end),
    row!(xq_push, xq_push_end),
    row!(xq_call, xq_call_end),
    row!(xq_pushf, xq_pushf_end),
    row!(xq_popf, xq_popf_end),
    row!(xq_cli, xq_cli_end),
    row!(xq_sti, xq_sti_end),
    row!(xq_if_step, xq_if_step_end),
    row!(xq_if_opt, xq_if_opt_end),
    row!(xq_riprel, xq_riprel_end),
    row!(xq_jcc, xq_jcc_end),
    row!(xq_loop, xq_loop_end),
    row!(xq_callreg, xq_callreg_end),
    row!(xq_sum, xq_sum_end),
    row!(xq_leaf, xq_leaf_end),
    row!(xq_rsum, xq_rsum_end),
    row!(xq_load, xq_load_end),
    row!(xq_endbr, xq_endbr_end),
    row!(xq_jtab, xq_jtab_end),
    row!(xq_callmem, xq_callmem_end),
    row!(xq_callptr, xq_callptr_end),
    row!(xq_refused, xq_refused_end),
    row!(xq_ev_target, xq_ev_target_end),
    row!(xq_ev_caller, xq_ev_caller_end),
];

fn symbol(start: At, end: At) -> Symbol {
    Symbol {
        addr: start(),
        size: end() - start(),
    }
}

/// The symbol called `name`.
pub fn lookup(name: &str) -> Option<Symbol> {
    TABLE
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, start, end)| symbol(start, end))
}

/// The symbol whose bytes contain `at`.
pub fn containing(at: usize) -> Option<Symbol> {
    TABLE
        .iter()
        .map(|&(_, start, end)| symbol(start, end))
        .find(|s| (s.addr..s.addr + s.size).contains(&at))
}

/// Every symbol, with its name (the address-to-name lookup of trace
/// lines).
pub fn all() -> impl Iterator<Item = (&'static str, Symbol)> {
    TABLE
        .iter()
        .map(|&(name, start, end)| (name, symbol(start, end)))
}
