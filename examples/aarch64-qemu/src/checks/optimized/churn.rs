//! Two CPUs: CPU 1 calls the probed functions in a loop while CPU 0
//! optimises, un-optimises, disables and unregisters probes on them.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use probe_core::{Kprobe, Optimization, PreAction, ProbeContext, Registers};

use super::super::handlers::{pre_count, Seen};
use super::super::Report;
use super::{no_detours, now_ms, optimization};
use crate::kernel::ENGINE;
use crate::smp::{self, Request};
use crate::testfns::{addr, call, symbols, word_at};
use crate::trap::breakpoint_traps;

/// Churn cycles on CPU 0 (at most).
const CYCLES: usize = 1024;
/// Optimise, un-optimise, disable and unregister operations at least.
const MIN_OPS: usize = 1000;
/// Time after which the churn ends once it made [`MIN_OPS`] operations.
const BUDGET_MS: u64 = 20_000;

static FIXED: Seen = Seen::new();
static CHURN_HITS: AtomicU64 = AtomicU64::new(0);
/// Hits of the churn probes unregistered while enabled.
static CHURN_HITS_LIVE: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static CPU1_CALLS: AtomicUsize = AtomicUsize::new(0);
static MISMATCHES: AtomicUsize = AtomicUsize::new(0);
static CPU1_TRAPS: AtomicUsize = AtomicUsize::new(0);

fn churn_hit(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    CHURN_HITS.fetch_add(1, Ordering::SeqCst);
    PreAction::Continue
}

fn churn_hit_live(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    CHURN_HITS_LIVE.fetch_add(1, Ordering::SeqCst);
    PreAction::Continue
}

fn rsum(n: usize) -> usize {
    n * (n + 1) / 2
}

/// One round: `t_add2` (the fixed probe), `t_hot`, `t_churn` and
/// `t_opt_rsum`, every result checked.
fn workload(i: usize) {
    let x = i % 16;
    let ok = call(addr::t_add2(), x, 3) == x + 3
        && call(addr::t_hot(), x + 1, 0) == 3 * (x + 1) + 7
        && call(addr::t_churn(), x, 0) == (x ^ 0xff) + 1
        && call(addr::t_opt_rsum(), x % 6, 0) == rsum(x % 6);
    if !ok {
        MISMATCHES.fetch_add(1, Ordering::SeqCst);
    }
}

/// CPU 1: rounds until told to stop, a quiescent point between two (the
/// grace periods' voluntary point: an SGI taken in optimised code does
/// not count).
fn cpu1_job() {
    let cpu = crate::sysreg::cpu_id();
    let t0 = breakpoint_traps(cpu);
    let mut i = 0;
    while !STOP.load(Ordering::Acquire) {
        smp::quiescent(cpu);
        // Under single-threaded TCG, CPU 0 runs now (it waits for us).
        smp::relax();
        workload(i);
        i += 1;
    }
    CPU1_CALLS.store(i, Ordering::SeqCst);
    CPU1_TRAPS.store(breakpoint_traps(cpu) - t0, Ordering::SeqCst);
}

/// Words of the churned functions (at most 12 each).
const TEXT_WORDS: usize = 12;

/// A copy of the churned functions' text (every word of each).
fn text() -> [[u32; TEXT_WORDS]; 4] {
    let names = ["t_add2", "t_hot", "t_churn", "t_opt_rsum"];
    names.map(|name| {
        let mut w = [0u32; TEXT_WORDS];
        if let Some(f) = symbols().into_iter().find(|f| f.name == name) {
            for (k, a) in (f.start..f.end).step_by(4).take(TEXT_WORDS).enumerate() {
                w[k] = word_at(a);
            }
        }
        w
    })
}

pub fn run(r: &mut Report) {
    if !smp::is_online(1) {
        r.check(false, format_args!("optimized churn: CPU 1 is online"));
        return;
    }
    let before = text();
    let refused0 = smp::refused_quiescent();
    FIXED.reset();
    // Fixed, optimised, on t_add2's entry (both CPUs call it).
    let Ok(fixed) = ENGINE.register_kprobe(&Kprobe::at(addr::t_add2()).pre(pre_count).data(&FIXED))
    else {
        r.check(
            false,
            format_args!("optimized churn: fixed probe on t_add2"),
        );
        return;
    };
    let fixed_opt = optimization(fixed);
    // Churn sites: every instruction of t_hot, t_churn and t_opt_rsum
    // (those that cannot be optimised churn as brk probes).
    let mut sites = [0usize; 20];
    let mut n = 0;
    for (f, len) in [
        (addr::t_hot(), 24),
        (addr::t_churn(), 16),
        (addr::t_opt_rsum(), 36),
    ] {
        for off in (0..len).step_by(4) {
            sites[n] = f + off;
            n += 1;
        }
    }
    let sites = &sites[..n];
    STOP.store(false, Ordering::SeqCst);
    smp::start_job(cpu1_job);
    let start = now_ms();
    let (mut regs, mut optimised, mut engine_hits, mut cpu0_calls) = (0, 0, 0u64, 0);
    let (mut ops, mut cycles, mut errors) = (0, 0, 0);
    for c in 0..CYCLES {
        // On a loaded host every stop-machine waits for CPU 1's vCPU
        // thread: past the time budget, stop once 1,000 operations are done.
        if ops >= MIN_OPS && now_ms() - start > BUDGET_MS {
            break;
        }
        cycles += 1;
        let at = sites[c % sites.len()];
        // Every fourth probe is unregistered live: hits may still come in
        // while it goes, so its handler counts apart. The others are
        // disabled first and read after a grace period: their hits are
        // exact.
        let live = c % 4 == 2;
        let handler = if live { churn_hit_live } else { churn_hit };
        let Ok(id) = ENGINE.register_kprobe(&Kprobe::at(at).pre(handler)) else {
            continue;
        };
        regs += 1;
        if optimization(id) == Optimization::Optimized {
            optimised += 1;
        }
        let mut ok = true;
        match c % 4 {
            0 => {
                ok &= ENGINE.set_optimization(false).is_ok();
                workload(c);
                cpu0_calls += 1;
                ok &= ENGINE.set_optimization(true).is_ok();
                ops += 2;
            }
            1 => {
                ok &= ENGINE.disable(id).is_ok();
                ok &= ENGINE.enable(id).is_ok();
                ops += 2;
            }
            _ => {}
        }
        workload(c);
        cpu0_calls += 1;
        if !live {
            ok &= ENGINE.disable(id).is_ok();
            // No hit is in flight after this: the jump went with its own
            // grace period, and a CPU that trapped on the brk before the
            // original word came back has left its handler.
            smp::request(Request::Grace);
            engine_hits += ENGINE.info(id).map_or(0, |i| i.hits);
            ops += 1;
        }
        ok &= ENGINE.unregister(id).is_ok();
        ops += 1;
        if !ok {
            errors += 1;
        }
    }
    let ms = now_ms() - start;
    STOP.store(true, Ordering::Release);
    smp::wait_job();
    let fixed_hits = ENGINE.info(fixed).map_or(0, |i| i.hits);
    let fixed_gone = ENGINE.unregister(fixed).is_ok();
    let calls1 = CPU1_CALLS.load(Ordering::SeqCst);
    let per_cpu = [0, 1].map(|c| FIXED.per_cpu[c].load(Ordering::SeqCst));
    r.check_eq(
        (
            fixed_opt,
            errors,
            MISMATCHES.load(Ordering::SeqCst),
            calls1 >= cycles,
            per_cpu,
            fixed_hits,
            fixed_gone,
        ),
        (
            Optimization::Optimized,
            0,
            0,
            true,
            [cpu0_calls as u64, calls1 as u64],
            (cpu0_calls + calls1) as u64,
            true,
        ),
        format_args!(
            "optimized churn: CPU 0 made {ops} optimise/un-optimise/disable/unregister operations in {cycles} cycles \
             ({ms} ms) while CPU 1 made {calls1} rounds of 4 calls (at least one per cycle): every result right, the fixed optimised probe \
             hit exactly once per call on each CPU"
        ),
    );
    r.check_eq(
        (
            CHURN_HITS.load(Ordering::SeqCst),
            text(),
            no_detours(),
            ops >= MIN_OPS,
            optimised * 2 >= regs,
        ),
        (engine_hits, before, true, true, true),
        format_args!(
            "optimized churn: {regs} registrations ({optimised} optimised), handler runs = the engine's hit counts \
             ({engine_hits}; {} more on probes unregistered live), every byte of the 4 functions back, no detour left",
            CHURN_HITS_LIVE.load(Ordering::SeqCst)
        ),
    );
    r.note(format_args!(
        "CPU 1: {} breakpoint traps (churn probes on sites not optimised and the switched-off windows); \
         {} SGIs taken in optimised code or the trap text did not count as quiescent",
        CPU1_TRAPS.load(Ordering::SeqCst),
        smp::refused_quiescent() - refused0
    ));
}
