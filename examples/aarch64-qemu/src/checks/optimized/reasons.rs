//! Why a probe is not optimised (each reason listed, the `brk` probe
//! working), the detour area's reach, BTI, N hits without a trap and an
//! optimised kretprobe entry.

use core::sync::atomic::{AtomicUsize, Ordering};

use probe_core::{
    EntryAction, KernelServices, Kprobe, Kretprobe, NotOptimized, Optimization, ProbeContext,
    ProbeId, Registers,
};
use probe_hal::Arch;
use probe_hal_aarch64::Aarch64;

use super::super::handlers::{post_count, pre_count, Seen};
use super::super::Report;
use super::{counting_traps, no_detours, optimization, Line};
use crate::kernel::{detour_area, DETOURS, ENGINE};
use crate::runner;
use crate::testfns::{addr, call};

static SEEN: Seen = Seen::new();

/// Register `k`, check its listing says `code`, run `f` and expect `want`,
/// the hit through a `brk` (traps counted) when enabled; returns the id.
fn expect_reason(
    r: &mut Report,
    what: &str,
    k: Kprobe,
    code: &str,
    f: impl FnOnce() -> usize,
    want: usize,
) -> Option<ProbeId> {
    let id = match ENGINE.register_kprobe(&k) {
        Ok(id) => id,
        Err(e) => {
            r.check(false, format_args!("optimized: {what}: {e}"));
            return None;
        }
    };
    let info = ENGINE.info(id).ok()?;
    let line = Line::of(&info);
    let (got, traps) = counting_traps(f);
    let hits = ENGINE.info(id).map_or(0, |i| i.hits) - info.hits;
    let hit_ok = if info.enabled {
        hits >= 1 && traps as u64 >= hits
    } else {
        hits == 0 && traps == 0
    };
    r.check(
        line.as_str().contains(code) && got == want && hit_ok,
        format_args!(
            "optimized: {what}: `{}`, result {got:#x}, {hits} hits, {traps} traps",
            line.as_str()
        ),
    );
    Some(id)
}

fn unregister(id: Option<ProbeId>) {
    if let Some(id) = id {
        let _ = ENGINE.unregister(id);
    }
}

fn reasons(r: &mut Report) {
    let add2 = addr::t_add2();
    let kp = || Kprobe::at(add2).pre(pre_count).data(&SEEN);
    let call_add2 = || call(add2, 3, 4);
    SEEN.reset();
    let id = expect_reason(
        r,
        "a post-handler",
        kp().post(post_count),
        "[unoptimized: post-handler]",
        call_add2,
        7,
    );
    unregister(id);
    let id = expect_reason(
        r,
        "opted out",
        kp().no_optimize(),
        "[unoptimized: opted-out]",
        call_add2,
        7,
    );
    unregister(id);
    // Disabled, then enabled: optimised.
    if let Some(id) = expect_reason(r, "disabled", kp().disabled(), "[DISABLED]", call_add2, 7) {
        let enabled = ENGINE.enable(id).is_ok() && optimization(id) == Optimization::Optimized;
        // Switched off, then on: optimised again.
        let off = ENGINE.set_optimization(false).is_ok();
        let (v, traps_off) = counting_traps(call_add2);
        let listed_off = optimization(id);
        let on = ENGINE.set_optimization(true).is_ok();
        let (w, traps_on) = counting_traps(call_add2);
        r.check_eq(
            (enabled, off, on, v, w, traps_off >= 1, traps_on, listed_off, optimization(id)),
            (
                true,
                true,
                true,
                7,
                7,
                true,
                0,
                Optimization::NotOptimized(NotOptimized::SwitchedOff),
                Optimization::Optimized,
            ),
            format_args!(
                "optimized: enabled again it is optimised; switched off: listed switched-off, hit through brk (traps counted); switched on: optimised, 0 traps"
            ),
        );
        unregister(Some(id));
    }
    // No detour memory.
    DETOURS.refuse.store(true, Ordering::SeqCst);
    let id = expect_reason(
        r,
        "no detour memory",
        kp(),
        "[unoptimized: no-detour-memory]",
        call_add2,
        7,
    );
    DETOURS.refuse.store(false, Ordering::SeqCst);
    unregister(id);
    // An indirect jump in the function (t_br's `br x9`): its `mov x2, #2`.
    let br = addr::t_br();
    let regs = runner::pattern();
    let want = runner::run(br, &regs)[2] as usize;
    let id = expect_reason(
        r,
        "an indirect jump in t_br",
        Kprobe::at(br + 16).pre(pre_count).data(&SEEN),
        "[unoptimized: indirect-jump]",
        || runner::run(br, &regs)[2] as usize,
        want,
    );
    unregister(id);
    // An exception-table entry in the function (t_load's load).
    let word = 0x1234_5678_9abc_def0u64;
    let id = expect_reason(
        r,
        "a fix-up in t_load",
        Kprobe::at(addr::t_load()).pre(pre_count).data(&SEEN),
        "[unoptimized: may-fault]",
        || call(addr::t_load(), &word as *const u64 as usize, 0),
        word as usize,
    );
    unregister(id);
    // Unknown size: the runner has no symbol; its `stp x18, x19` (+4).
    let runner_at = runner::runner_address() + 4;
    let id = expect_reason(
        r,
        "no symbol (the register runner)",
        Kprobe::at(runner_at).pre(pre_count).data(&SEEN),
        "[unoptimized: size-unknown]",
        || runner::run(add2, &runner::pattern())[0] as usize,
        (runner::pattern()[0] + runner::pattern()[1]) as usize,
    );
    unregister(id);
    // A simulated instruction (t_hot's `cbnz`).
    let id = expect_reason(
        r,
        "a simulated cbnz in t_hot",
        Kprobe::at(addr::t_hot() + 8).pre(pre_count).data(&SEEN),
        "[unoptimized: not-boostable]",
        || call(addr::t_hot(), 5, 0),
        22,
    );
    unregister(id);
    // BTI: `bti c` on the guarded page stays a brk probe (a `b` is no
    // landing pad), the `add` after it is optimised; both reached by `blr`.
    let bti = addr::t_bti_add();
    let via = || call(addr::t_call_via(), 3, bti);
    let id = expect_reason(
        r,
        "a BTI landing pad (t_bti_add's bti c, reached by blr)",
        Kprobe::at(bti).pre(pre_count).data(&SEEN),
        "[unoptimized: not-boostable]",
        via,
        7,
    );
    unregister(id);
    let faults = crate::trap::last_fault().0;
    if let Ok(id) = ENGINE.register_kprobe(&Kprobe::at(bti + 4).pre(pre_count).data(&SEEN)) {
        let opt = optimization(id);
        let (v, traps) = counting_traps(via);
        let hits = ENGINE.info(id).map_or(0, |i| i.hits);
        let _ = ENGINE.unregister(id);
        r.check_eq(
            (opt, v, hits, traps, crate::trap::last_fault().0 - faults),
            (Optimization::Optimized, 7, 1, 0, 0),
            format_args!(
                "optimized: t_bti_add+4 on the guarded page optimised: `b` out and back needs no landing pad (result, hits, traps, faults)"
            ),
        );
    }
    // Out of reach: the detour area has nothing for code 256 MiB away.
    let area = detour_area();
    let services = ENGINE.services();
    let far = [
        services.alloc_detour_page(area.end + (256 << 20), Aarch64::OPT_REACH),
        services.alloc_detour_page(area.start.wrapping_sub(256 << 20), Aarch64::OPT_REACH),
    ];
    let near = services.alloc_detour_page(area.start - 4096, Aarch64::OPT_REACH);
    if let Some(p) = near {
        services.free_detour_page(p);
    }
    r.check_eq(
        (far, near.is_some(), no_detours()),
        ([None, None], true, true),
        format_args!(
            "optimized: no detour page for code 256 MiB before or after the area (b reaches +-128 MiB); one for code next to it"
        ),
    );
    r.note(format_args!(
        "not applicable on aarch64: jump-into-region and probe-in-region (the region is the probed 4-byte instruction: \
         no branch target and no other probe can lie strictly inside it), past-function-end (functions are whole words)"
    ));
}

/// Calls of `t_add2` per CPU in [`zero_traps`].
const N: usize = 10_000;
/// CPU 1's share of [`zero_traps`]: wrong results and breakpoint traps.
static CPU1_WRONG: AtomicUsize = AtomicUsize::new(0);
static CPU1_TRAPS: AtomicUsize = AtomicUsize::new(usize::MAX);

fn add2_calls() -> usize {
    (0..N)
        .filter(|&i| call(addr::t_add2(), i, 1) != i + 1)
        .count()
}

fn cpu1_calls() {
    let (wrong, traps) = counting_traps(add2_calls);
    CPU1_WRONG.store(wrong, Ordering::SeqCst);
    CPU1_TRAPS.store(traps, Ordering::SeqCst);
}

/// N hits of an optimised probe on each CPU, 0 traps.
fn zero_traps(r: &mut Report) {
    SEEN.reset();
    let Ok(id) = ENGINE.register_kprobe(&Kprobe::at(addr::t_add2()).pre(pre_count).data(&SEEN))
    else {
        r.check(false, format_args!("optimized: probe on t_add2"));
        return;
    };
    let opt = optimization(id);
    let (wrong, traps) = counting_traps(add2_calls);
    let cpu1 = crate::smp::is_online(1);
    if cpu1 {
        crate::smp::start_job(cpu1_calls);
        crate::smp::wait_job();
    }
    let hits = ENGINE.info(id).map_or(0, |i| i.hits);
    let _ = ENGINE.unregister(id);
    let n = N as u64;
    let per_cpu = [0, 1].map(|c| SEEN.per_cpu[c].load(Ordering::SeqCst));
    r.check_eq(
        (
            opt,
            [wrong, CPU1_WRONG.load(Ordering::SeqCst)],
            [traps, CPU1_TRAPS.load(Ordering::SeqCst)],
            per_cpu,
            hits,
        ),
        (Optimization::Optimized, [0, 0], [0, 0], [n, n], 2 * n),
        format_args!(
            "optimized: {N} calls of t_add2 with an optimised probe on each CPU: every result right, \
             {N} hits and 0 breakpoint traps per CPU"
        ),
    );
}

static RET_ENTRIES: AtomicUsize = AtomicUsize::new(0);
static RET_RETURNS: AtomicUsize = AtomicUsize::new(0);
static RET_WRONG: AtomicUsize = AtomicUsize::new(0);

fn rsum_entry(_: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) -> EntryAction {
    RET_ENTRIES.fetch_add(1, Ordering::SeqCst);
    let n = regs.arg(0).unwrap_or(0);
    data[..8].copy_from_slice(&n.to_le_bytes());
    EntryAction::Track
}

fn rsum_ret(_: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) {
    RET_RETURNS.fetch_add(1, Ordering::SeqCst);
    let n = usize::from_le_bytes(data[..8].try_into().unwrap_or([0; 8]));
    if regs.return_value() != n * (n + 1) / 2 {
        RET_WRONG.fetch_add(1, Ordering::SeqCst);
    }
}

fn kretprobe(r: &mut Report) {
    let f = addr::t_opt_rsum();
    let Ok(id) = ENGINE.register_kretprobe(
        &Kretprobe::at(f)
            .entry(rsum_entry)
            .ret(rsum_ret)
            .data_size(8)
            .maxactive(8),
    ) else {
        r.check(false, format_args!("optimized: kretprobe on t_opt_rsum"));
        return;
    };
    let opt = optimization(id);
    let (v, traps) = counting_traps(|| call(f, 5, 0));
    let hits = ENGINE.info(id).map_or(0, |i| i.hits);
    let _ = ENGINE.unregister(id);
    let after = call(f, 5, 0);
    r.check_eq(
        (
            opt,
            v,
            traps,
            hits,
            RET_ENTRIES.load(Ordering::SeqCst),
            RET_RETURNS.load(Ordering::SeqCst),
            RET_WRONG.load(Ordering::SeqCst),
            after,
            ENGINE.free_instances(),
        ),
        (Optimization::Optimized, 15, 0, 6, 6, 6, 0, 15, 32),
        format_args!(
            "optimized: kretprobe with an optimised entry on recursive t_opt_rsum(5) = 15: 6 entries through the detour, \
             6 returns through the trampoline with the right values, 0 traps, every instance back"
        ),
    );
}

pub fn run(r: &mut Report) {
    reasons(r);
    zero_traps(r);
    kretprobe(r);
    r.check(
        no_detours() && ENGINE.list::<4>().is_empty(),
        format_args!("optimized: no probe and no detour left after the reason checks"),
    );
}
