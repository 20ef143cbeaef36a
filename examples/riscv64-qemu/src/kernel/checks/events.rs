//! Probe events from text (probe-events, through examples/event-script):
//! a `kprobe_events` script on `t_ev_target`, a workload, the trace in
//! Linux's format checked line by line, the events deleted.

use core::fmt;

use event_script::{sink, Reporter, Setup, Sink, Sym, Table};
use probe_core::KernelServices;
use probe_hal_riscv64::RegNames;

use super::report::{check, Fail, Note};
use crate::kernel::layout::MAX_HARTS;
use crate::kernel::services::ENGINE;
use crate::kernel::symbols::{self, kernel_fn};

// t_ev_target(a, b, p, s) = a + b, probed at +4 (the `add`, arguments
// still in a0..a3).
kernel_fn!(
    "t_ev_target",
    "norvc",
    ["mv t0, a0", "add a0, t0, a1", "ret"]
);
// Calls t_ev_target; the `jal` returns to +12.
kernel_fn!(
    "t_ev_caller",
    "norvc",
    [
        "addi sp, sp, -16",
        "sd ra, 8(sp)",
        "jal ra, t_ev_target",
        "ld ra, 8(sp)",
        "addi sp, sp, 16",
        "ret",
    ]
);

static SINK: Sink<RegNames> = sink!(RegNames, ENGINE, MAX_HARTS);

fn table() -> impl Iterator<Item = Sym> {
    symbols::all()
        .filter(|f| !f.is_user())
        .map(|f| Sym::new(f.name, f.start, f.end))
}

fn call_caller(a0: usize, a1: usize, a2: usize, a3: usize) -> usize {
    // SAFETY: `t_ev_caller` is a C-ABI function of four integer arguments
    // returning an integer in a0; it saves and restores ra and clobbers
    // only caller-saved registers otherwise.
    let f: extern "C" fn(usize, usize, usize, usize) -> usize =
        unsafe { core::mem::transmute(symbols::get("t_ev_caller").start) };
    f(a0, a1, a2, a3)
}

/// The check.
pub fn run() {
    let table = Table(table);
    let setup = Setup {
        arg_regs: ["a0", "a1", "a2", "a3"],
        target: table.get("t_ev_target"),
        probe_offset: 4,
        caller: table.get("t_ev_caller"),
        return_offset: 12,
        call: call_caller,
        cpu: ENGINE.services().cpu_id(),
    };
    // Each check of the script is one line of this kernel's report.
    let mut report = Reporter(
        |ok, what: fmt::Arguments<'_>| {
            check("events", || {
                if ok {
                    Ok(Note::new(what))
                } else {
                    Err(Fail::new(what))
                }
            })
        },
        |line: fmt::Arguments<'_>| println!("        {line}"),
    );
    event_script::run(&ENGINE, &SINK, &table, &setup, &mut report);
}
