//! The trap path itself: a fault inside an out-of-line slot, a probe hit
//! from inside a handler, and how many traps a hit costs.

use core::sync::atomic::{AtomicU64, Ordering};

use probe_core::{PreAction, ProbeContext, Registers};
use probe_hal::Handling;
use x86_64_linux::recorder::{pre_record, Recorder};
use x86_64_linux::report::Report;
use x86_64_linux::testfns;
use x86_64_linux::{ensure, ensure_eq};

use super::{call_fn, decode, kprobe, CheckResult, Probes};
use crate::{signals, ENGINE};

const EFAULT: u64 = -14i64 as u64;
const BAD: u64 = 0x10;

fn fault_in_slot() -> CheckResult {
    let load = testfns::point("ld_load").addr();
    let fixup = testfns::point("ld_fixup").addr();
    let d = decode(load)?;
    ensure!(
        d.handling == Handling::StepOutOfLine { boostable: true },
        "the load decodes as {:?}",
        d.handling
    );
    for post in [false, true] {
        let what = if post { "pre+post" } else { "pre only" };
        let rec = Recorder::leak();
        let mut probes = Probes::new();
        probes.add("ld_load", ENGINE.register_kprobe(&kprobe(load, rec, post)))?;
        let (aborted, not_ours, _, _) = signals::fault_record();
        let traps = signals::traps();
        ensure_eq!(
            call_fn("tf_load", BAD, 0, 0).ret,
            EFAULT,
            "{what}: probed load through a bad pointer"
        );
        ensure_eq!(
            signals::traps() - traps,
            1,
            "{what}: SIGTRAPs before the fault"
        );
        let (a, n, pc, fix) = signals::fault_record();
        ensure_eq!(
            (a - aborted, n - not_ours),
            (1, 0),
            "{what}: engine aborted the step"
        );
        ensure_eq!(
            pc,
            load,
            "{what}: pc after the engine's fault entry is the probe address"
        );
        ensure_eq!(fix, fixup, "{what}: the harness's own fix-up ran");
        ensure_eq!(
            (rec.hits(), rec.post_hits()),
            (1, 0),
            "{what}: pre ran, post did not"
        );
        let good = testfns::data_addr() as u64;
        let traps = signals::traps();
        ensure_eq!(
            call_fn("tf_load", good, 0, 0).ret,
            0x1122_3344_5566_7788,
            "{what}: good pointer"
        );
        // may_fault: a load with a fix-up is never boosted, so a fault is
        // always seen at the probe address.
        ensure_eq!(
            signals::traps() - traps,
            2,
            "{what}: SIGTRAPs (stepped, not boosted)"
        );
        ensure_eq!(
            (rec.hits(), rec.post_hits()),
            (2, post as u64),
            "{what}: the next hit steps normally"
        );
        probes.clear()?;
    }
    let (a, n, _, _) = signals::fault_record();
    ensure_eq!(
        call_fn("tf_load", BAD, 0, 0).ret,
        EFAULT,
        "unprobed bad pointer"
    );
    let (a2, n2, pc, _) = signals::fault_record();
    ensure_eq!(
        (a2 - a, n2 - n, pc),
        (0, 1, load),
        "an unprobed fault is not the engine's"
    );
    Ok("SIGSEGV -> engine (step aborted, pc = probe) -> exception table -> -EFAULT; never boosted (may_fault)".into())
}

/// What the nested call returned inside the handler.
static NESTED_RESULT: AtomicU64 = AtomicU64::new(0);

fn call_probed_function(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let r = call_fn("tf_double", 21, 0, 0).ret;
    NESTED_RESULT.store(r, Ordering::Release);
    pre_record(ctx, regs)
}

fn missed() -> CheckResult {
    let outer = Recorder::leak();
    let inner = Recorder::leak();
    let mut probes = Probes::new();
    let a = probes.add(
        "outer",
        ENGINE.register_kprobe(
            &probe_core::Kprobe::at(testfns::point("alu_add").addr())
                .pre(call_probed_function)
                .data(outer),
        ),
    )?;
    let b = probes.add(
        "inner",
        ENGINE.register_kprobe(&kprobe(testfns::point("db_entry").addr(), inner, false)),
    )?;
    NESTED_RESULT.store(0, Ordering::Release);
    let traps = signals::traps();
    ensure_eq!(call_fn("tf_alu", 10, 32, 0).ret, 1396, "outer function");
    ensure_eq!(
        NESTED_RESULT.load(Ordering::Acquire),
        42,
        "probed function called from the handler"
    );
    // outer hit (boosted) + inner hit, stepped without boost: 2 traps.
    ensure_eq!(signals::traps() - traps, 3, "SIGTRAPs");
    let (ia, ib) = (
        ENGINE.info(a).map_err(|e| e.to_string())?,
        ENGINE.info(b).map_err(|e| e.to_string())?,
    );
    ensure_eq!((ia.hits, ia.missed), (1, 0), "outer probe");
    ensure_eq!(
        (ib.hits, ib.missed, inner.hits()),
        (0, 1, 0),
        "inner probe: missed, no handler"
    );
    ensure_eq!(
        call_fn("tf_double", 5, 0, 0).ret,
        10,
        "inner function called directly"
    );
    ensure_eq!(inner.hits(), 1, "inner probe fires outside a handler");
    probes.clear()?;
    Ok(String::new())
}

fn trap_counts() -> CheckResult {
    const N: u64 = 500;
    let insn = testfns::point("bench_insn").addr();
    let mut counts = Vec::new();
    for (post, per_hit) in [(false, 1), (true, 2)] {
        let rec = Recorder::leak();
        let mut probes = Probes::new();
        probes.add(
            "bench_insn",
            ENGINE.register_kprobe(&kprobe(insn, rec, post)),
        )?;
        let traps = signals::traps();
        for i in 0..N {
            ensure_eq!(call_fn("tf_bench_probe", i, 0, 0).ret, i + 1, "result");
        }
        let t = signals::traps() - traps;
        ensure_eq!(t, per_hit * N, "SIGTRAPs for {N} hits, post-handler {post}");
        ensure_eq!(rec.hits(), N, "hits");
        counts.push(t);
        probes.clear()?;
    }
    // A disabled probe costs nothing.
    let rec = Recorder::leak();
    let mut probes = Probes::new();
    probes.add(
        "disabled",
        ENGINE.register_kprobe(&kprobe(insn, rec, false).disabled()),
    )?;
    let traps = signals::traps();
    call_fn("tf_bench_probe", 1, 0, 0);
    ensure_eq!(signals::traps() - traps, 0, "SIGTRAPs of a disabled probe");
    probes.clear()?;
    ensure!(counts[1] == 2 * counts[0], "counts {counts:?}");
    Ok(format!(
        "boosted {} traps / {N} hits, with post-handler {} / {N}",
        counts[0], counts[1]
    ))
}

pub(super) fn run(r: &mut Report) {
    r.check(
        "fault: load through a bad pointer in a stepped slot",
        fault_in_slot,
    );
    r.check(
        "re-entry: a handler calls a probed function (counted missed)",
        missed,
    );
    r.check(
        "boost: 1 trap per hit without a post-handler, 2 with one",
        trap_counts,
    );
}
