//! Probe events from text (probe-events, through examples/event-script):
//! a `kprobe_events` script on `t_ev_target`, a workload, the trace in
//! Linux's format checked line by line, the events deleted.

use core::fmt;

use event_script::{sink, Reporter, Setup, Sink, Sym, Table};
use probe_hal_aarch64::RegNames;

use super::Report;
use crate::kernel::ENGINE;
use crate::println;
use crate::testfns::{call4, symbols};

static SINK: Sink<RegNames> = sink!(RegNames, ENGINE, crate::smp::CPUS);

fn table() -> impl Iterator<Item = Sym> {
    symbols()
        .into_iter()
        .map(|f| Sym::new(f.name, f.start, f.end))
}

pub fn run(r: &mut Report) {
    let table = Table(table);
    let setup = Setup {
        arg_regs: ["x0", "x1", "x2", "x3"],
        target: table.get("t_ev_target"),
        probe_offset: 4, // the `add`
        caller: table.get("t_ev_caller"),
        return_offset: 8, // after the `bl`
        call: |a, b, p, s| call4(crate::testfns::addr::t_ev_caller(), a, b, p, s),
        cpu: crate::sysreg::cpu_id(),
    };
    let mut report = Reporter(
        |ok, what: fmt::Arguments<'_>| {
            r.check(ok, format_args!("events: {what}"));
        },
        |line: fmt::Arguments<'_>| println!("         {line}"),
    );
    event_script::run(&ENGINE, &SINK, &table, &setup, &mut report);
}
