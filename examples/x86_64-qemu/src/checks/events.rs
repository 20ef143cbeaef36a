//! Probe events from text (probe-events, through examples/event-script):
//! a `kprobe_events` script on `xq_ev_target`, a workload, the trace in
//! Linux's format checked line by line, the events deleted.

use core::fmt;

use event_script::{sink, Reporter, Setup, Sink, Sym, Table};
use probe_hal_x86_64::RegNames;

use crate::probed_code::{addr, xq_ev_caller, xq_ev_caller_back, xq_ev_target_add};
use crate::report;
use crate::services::ENGINE;
use crate::symbols;

static SINK: Sink<RegNames> = sink!(RegNames, ENGINE, 1);

fn table() -> impl Iterator<Item = Sym> {
    symbols::all().map(|(name, s)| Sym::new(name, s.addr, s.addr + s.size))
}

fn call_caller(a: usize, b: usize, p: usize, s: usize) -> usize {
    // SAFETY: xq_ev_caller is a System V function of four integer arguments
    // that calls xq_ev_target (a + b) and clobbers only rax.
    unsafe { xq_ev_caller(a as u64, b as u64, p as u64, s as u64) as usize }
}

/// The check (the kernel runs on CPU 0 only).
pub fn run() {
    let table = Table(table);
    let (target, caller) = (table.get("xq_ev_target"), table.get("xq_ev_caller"));
    let setup = Setup {
        arg_regs: ["di", "si", "dx", "cx"],
        target,
        probe_offset: addr(xq_ev_target_add) - target.addr,
        caller,
        return_offset: addr(xq_ev_caller_back) - caller.addr,
        call: call_caller,
        cpu: 0,
    };
    let mut report = Reporter(
        |ok, what: fmt::Arguments<'_>| report::check("events", ok, what),
        |line: fmt::Arguments<'_>| crate::println!("     {line}"),
    );
    event_script::run(&ENGINE, &SINK, &table, &setup, &mut report);
}
