//! Jump-optimised probes ("optprobes") on riscv64: a probe hit through a
//! `jal x0` to a detour in the kernel's `.detours` area, no `ebreak`. The
//! trap vector counts every breakpoint trap per hart
//! ([`trap::breakpoint_traps`]), so "0 traps" is measured, not assumed.
//!
//! - **every boundary**: each instruction boundary of the `t_opt_*`
//!   functions, probed twice, once allowed to be optimised and once opted
//!   out (a plain `ebreak` probe): every register after the calls as
//!   unprobed, the same hits, no trap where optimised, traps where not.
//!   Every site not optimised is counted by reason, and the site rules the
//!   functions were written to meet must appear.
//! - **reasons**: a post-handler, the engine-wide switch, disabled, opted
//!   out, a probe inside the region, no detour memory: each listed as
//!   `[unoptimized: code]` and still hit through its `ebreak` (traps
//!   counted); and the detour area refuses a probe farther than `jal`'s
//!   reach.
//! - **kretprobe**: an optimised entry on the recursive `t_opt_rsum`.
//! - **pc change**: a pre-handler that returns 42 from `t_opt_wide` at its
//!   entry is honoured through the detour (its `sret`).
//! - **two harts**: hart 1 calls the probed functions while hart 0
//!   optimises, un-optimises, disables and unregisters probes on them.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use probe_core::{
    EntryAction, Kprobe, Kretprobe, NotOptimized, Optimization, PreAction, ProbeContext, ProbeId,
};
use probe_hal::Registers;

use super::regfile::{self, call2, RegFile};
use super::report::{check, ensure, ensure_eq, note, Fail, Outcome};
use super::seen::{post_count, pre_count, Seen};
use super::{boundaries, mnemonic_at, snapshot};
use crate::kernel::layout;
use crate::kernel::services::{DETOURS, ENGINE, INSTANCES};
use crate::kernel::symbols::{self, kernel_fn, TestFn};
use crate::kernel::trap::{breakpoint_traps, hart_id};
use crate::kernel::{clock, smp};
use probe_core::KernelServices;

// sum_{k=1..n} (k ^ (k << 3)) folded, + b. A backward branch to `1:`: the
// region of the `c.mv` before it contains its target.
kernel_fn!(
    "t_opt_mix",
    "rvc",
    [
        "li a2, 0",
        "mv a3, a0",
        "1:",
        "add a2, a2, a3",
        ".option push",
        ".option norvc",
        "slli a4, a3, 3",
        ".option pop",
        "xor a2, a2, a4",
        "addi a3, a3, -1",
        "bnez a3, 1b",
        ".option push",
        ".option norvc",
        "add a0, a2, a1",
        ".option pop",
        "ret",
    ]
);

// ((a0 + 3 + 4 a1) ^ 0x55) * 4 a1 - 4 a1: only 32-bit instructions.
kernel_fn!(
    "t_opt_wide",
    "norvc",
    [
        "addi a0, a0, 3",
        "slli a1, a1, 2",
        "add a0, a0, a1",
        "xori a0, a0, 0x55",
        "mul a0, a0, a1",
        "sub a0, a0, a1",
        "ret",
    ]
);

// a0 + a1 through the stack: 16-bit loads and stores around the sp.
kernel_fn!(
    "t_opt_mem",
    "rvc",
    [
        "addi sp, sp, -32",
        "sd s0, 24(sp)",
        "sd a0, 0(sp)",
        "sd a1, 8(sp)",
        "ld t0, 0(sp)",
        "ld t1, 8(sp)",
        "add s0, t0, t1",
        "sd s0, 16(sp)",
        "ld a0, 16(sp)",
        "ld s0, 24(sp)",
        "addi sp, sp, 32",
        "ret",
    ]
);

// a0 + a1 + 8 through an indirect jump (`jr t0`, not after its auipc).
kernel_fn!(
    "t_opt_ind",
    "rvc",
    [
        "la t0, 1f",
        "addi a0, a0, 1",
        "add a0, a0, a1",
        "jr t0",
        "c.li a0, 0",
        "1:",
        "addi a0, a0, 7",
        "ret",
    ]
);

// A CSR read and an auipc (never in a region), a forward branch, and an
// unreachable 16-bit instruction after the `ret` (its region would run
// past the function).
kernel_fn!(
    "t_opt_csr",
    "rvc",
    [
        "c.addi a0, 1",
        "csrr a2, sscratch",
        "c.add a0, a1",
        "auipc a3, 0",
        "c.addi a0, 2",
        ".option push",
        ".option norvc",
        "beq a0, a1, 1f",
        ".option pop",
        "c.addi a0, 3",
        "1:",
        "c.li a3, 0",
        "c.jr ra",
        "c.addi a0, 9",
    ]
);

// n + (n - 1) + … + 0, recursively; the entry (`c.addi16sp`, `c.sdsp`) is
// optimisable.
kernel_fn!(
    "t_opt_rsum",
    "rvc",
    [
        "addi sp, sp, -16",
        "sd ra, 8(sp)",
        "sd a0, 0(sp)",
        "beqz a0, 1f",
        "addi a0, a0, -1",
        "call t_opt_rsum",
        "ld a1, 0(sp)",
        "add a0, a0, a1",
        "1:",
        "ld ra, 8(sp)",
        "addi sp, sp, 16",
        "ret",
    ]
);

fn mix(n: usize, b: usize) -> usize {
    let mut s = 0usize;
    for k in (1..=n).rev() {
        s = s.wrapping_add(k);
        s ^= k << 3;
    }
    s.wrapping_add(b)
}

fn wide(a: usize, b: usize) -> usize {
    let b4 = b << 2;
    ((a + 3 + b4) ^ 0x55).wrapping_mul(b4).wrapping_sub(b4)
}

/// A swept function: name, two argument sets, their results.
type Swept = (&'static str, [[usize; 2]; 2], [usize; 2]);

/// The swept functions, two argument sets each, and their results.
fn funcs() -> [Swept; 5] {
    [
        ("t_opt_mix", [[5, 7], [3, 1]], [mix(5, 7), mix(3, 1)]),
        ("t_opt_wide", [[10, 3], [1, 0]], [wide(10, 3), wide(1, 0)]),
        ("t_opt_mem", [[40, 2], [1, 1]], [42, 2]),
        ("t_opt_ind", [[1, 2], [3, 4]], [11, 15]),
        ("t_opt_csr", [[1, 2], [usize::MAX - 2, 2]], [9, 2]),
    ]
}

static SEEN: Seen = Seen::new();

fn optimization(id: ProbeId) -> Optimization {
    ENGINE
        .info(id)
        .map(|i| i.optimization)
        .unwrap_or(Optimization::NotOptimized(NotOptimized::PatchFailed))
}

/// Breakpoint traps on this hart while `f` runs.
fn counting_traps<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let h = hart_id();
    let before = breakpoint_traps(h);
    let v = f();
    (v, breakpoint_traps(h) - before)
}

/// What one registration at one site gave.
struct Run {
    opt: Optimization,
    hits: usize,
    traps: usize,
}

/// Register at `addr` (optimisable or not), call `f` with both argument
/// sets, compare every register with `unprobed`, unregister. `None` when
/// the site cannot be probed at all.
fn one_run(
    f: &TestFn,
    addr: usize,
    allow: bool,
    args: &[[usize; 2]; 2],
    unprobed: &[RegFile; 2],
) -> Result<Option<Run>, Fail> {
    SEEN.reset();
    let k = Kprobe::at(addr).pre(pre_count).data(&SEEN);
    let Ok(id) = ENGINE.register_kprobe(&if allow { k } else { k.no_optimize() }) else {
        return Ok(None);
    };
    let opt = optimization(id);
    let (got, traps) = counting_traps(|| {
        [
            regfile::call(f.start, &RegFile::seeded(&args[0])),
            regfile::call(f.start, &RegFile::seeded(&args[1])),
        ]
    });
    ENGINE.unregister(id)?;
    for a in 0..2 {
        if let Some((r, g, w)) = got[a].first_difference(&unprobed[a]) {
            return Err(Fail::new(format_args!(
                "{} +{:#x} (`{}`, {opt}): args {a}: x{r} = {g:#x}, unprobed {w:#x}",
                f.name,
                addr - f.start,
                mnemonic_at(addr)
            )));
        }
    }
    ensure_eq!(
        SEEN.bad(),
        0,
        "handler saw a wrong pc, mode or hart at {addr:#x}"
    );
    Ok(Some(Run {
        opt,
        hits: SEEN.pre(),
        traps,
    }))
}

/// Reasons met by the sweep: (code, sites).
type Reasons = heapless::Vec<(&'static str, usize), 16>;

fn tally(r: &mut Reasons, code: &'static str) {
    if let Some(e) = r.iter_mut().find(|e| e.0 == code) {
        e.1 += 1;
    } else {
        let _ = r.push((code, 1));
    }
}

fn every_boundary() -> Outcome {
    let (mut sites, mut optimized, mut unprobeable) = (0, 0, 0);
    let (mut opt_hits, mut bp_hits, mut bp_traps) = (0, 0, 0);
    let mut reasons = Reasons::new();
    for (name, args, want) in funcs() {
        let f = symbols::get(name);
        let before = snapshot(&f);
        let unprobed = [
            regfile::call(f.start, &RegFile::seeded(&args[0])),
            regfile::call(f.start, &RegFile::seeded(&args[1])),
        ];
        ensure_eq!(
            [unprobed[0].a0(), unprobed[1].a0()],
            want,
            "unprobed {name}"
        );
        for off in boundaries(&f) {
            let addr = f.start + off;
            sites += 1;
            let Some(opt) = one_run(&f, addr, true, &args, &unprobed)? else {
                unprobeable += 1;
                continue;
            };
            let bp = one_run(&f, addr, false, &args, &unprobed)?
                .ok_or_else(|| Fail::new(format_args!("{addr:#x}: only optimisable")))?;
            ensure_eq!(
                bp.opt,
                Optimization::NotOptimized(NotOptimized::OptedOut),
                "{name} +{off:#x} opted out"
            );
            ensure_eq!(
                opt.hits,
                bp.hits,
                "{name} +{off:#x}: hits optimised vs breakpoint"
            );
            ensure!(
                bp.traps >= bp.hits,
                "{name} +{off:#x}: {} breakpoint hits but {} traps",
                bp.hits,
                bp.traps
            );
            bp_hits += bp.hits;
            bp_traps += bp.traps;
            match opt.opt {
                Optimization::Optimized => {
                    optimized += 1;
                    opt_hits += opt.hits;
                    ensure_eq!(opt.traps, 0, "{name} +{off:#x}: traps while optimised");
                }
                Optimization::NotOptimized(why) => {
                    ensure!(
                        opt.traps >= opt.hits,
                        "{name} +{off:#x} ({why}): {} hits but {} traps",
                        opt.hits,
                        opt.traps
                    );
                    tally(&mut reasons, why.code());
                }
            }
        }
        ensure!(
            snapshot(&f) == before,
            "{name}: bytes differ after the sweep"
        );
    }
    for code in [
        "jump-into-region",
        "indirect-jump",
        "not-boostable",
        "past-function-end",
    ] {
        ensure!(
            reasons.iter().any(|r| r.0 == code),
            "no site refused for `{code}` (reasons: {reasons:?})"
        );
    }
    ensure!(
        optimized >= 20 && opt_hits > 0,
        "only {optimized} sites optimised"
    );
    ensure_eq!(ENGINE.detours_in_use(), 0, "detours in use after the sweep");
    ensure_eq!(DETOURS.used.load(Ordering::SeqCst), 0, "detour pages held");
    note!(
        "{sites} boundaries of 5 functions: {optimized} optimised ({opt_hits} hits, 0 traps), \
         {unprobeable} not probeable, the rest through ebreak ({reasons:?}); breakpoint runs: \
         {bp_hits} hits, {bp_traps} traps; every register as unprobed"
    )
}

/// Register `k` at `f + off`, call `f(args)` once, and expect `code` in
/// the listing, the hit through an `ebreak`, and the right result.
fn expect_reason(
    f: &TestFn,
    k: Kprobe,
    code: &str,
    args: [usize; 2],
    want: usize,
) -> Result<ProbeId, Fail> {
    let id = ENGINE.register_kprobe(&k)?;
    let info = ENGINE.info(id)?;
    let line: heapless::String<160> = {
        let mut s = heapless::String::new();
        let _ = core::fmt::write(&mut s, format_args!("{info}"));
        s
    };
    ensure!(
        line.contains(code),
        "listing `{line}` does not say `{code}`"
    );
    let hits0 = info.hits;
    let (got, traps) = counting_traps(|| call2(f.start, args[0], args[1]));
    ensure_eq!(got, want, "{} with `{code}`", f.name);
    let hits = ENGINE.info(id)?.hits - hits0;
    if info.enabled {
        ensure!(
            hits >= 1 && traps as u64 >= hits,
            "`{code}`: {hits} hits, {traps} traps"
        );
    } else {
        ensure_eq!(
            (hits, traps),
            (0, 0),
            "`{code}`: hits and traps while disabled"
        );
    }
    Ok(id)
}

fn reasons() -> Outcome {
    let wide_f = symbols::get("t_opt_wide");
    let mix_f = symbols::get("t_opt_mix");
    let w = wide_f.start + 4;
    let want = wide(10, 3);
    SEEN.reset();
    let kp = || Kprobe::at(w).pre(pre_count).data(&SEEN);
    // A post-handler.
    let id = expect_reason(
        &wide_f,
        kp().post(post_count),
        "[unoptimized: post-handler]",
        [10, 3],
        want,
    )?;
    ENGINE.unregister(id)?;
    // Opted out.
    let id = expect_reason(
        &wide_f,
        kp().no_optimize(),
        "[unoptimized: opted-out]",
        [10, 3],
        want,
    )?;
    ENGINE.unregister(id)?;
    // Disabled, then enabled: optimised.
    let id = expect_reason(&wide_f, kp().disabled(), "[DISABLED]", [10, 3], want)?;
    ENGINE.enable(id)?;
    ensure_eq!(optimization(id), Optimization::Optimized, "enabled again");
    // Switched off, then on: optimised again.
    ENGINE.set_optimization(false)?;
    let (got, traps) = counting_traps(|| call2(wide_f.start, 10, 3));
    ensure!(
        got == want && traps >= 1,
        "switched off: result {got:#x}, {traps} traps"
    );
    let off_listing = ENGINE.info(id)?.optimization;
    ENGINE.set_optimization(true)?;
    ensure_eq!(
        off_listing,
        Optimization::NotOptimized(NotOptimized::SwitchedOff),
        "switched off"
    );
    ensure_eq!(
        optimization(id),
        Optimization::Optimized,
        "switched on again"
    );
    let (_, traps) = counting_traps(|| call2(wide_f.start, 10, 3));
    ensure_eq!(traps, 0, "traps once optimised again");
    ENGINE.unregister(id)?;
    // A probe inside the region: t_opt_mix's `li` (2 bytes) + `mv`.
    let first = ENGINE.register_kprobe(&Kprobe::at(mix_f.start).pre(pre_count).data(&SEEN))?;
    ensure_eq!(
        optimization(first),
        Optimization::Optimized,
        "t_opt_mix entry alone"
    );
    let inner = expect_reason(
        &mix_f,
        Kprobe::at(mix_f.start + 2).pre(pre_count).data(&SEEN),
        "[unoptimized: jump-into-region]",
        [5, 7],
        mix(5, 7),
    )?;
    let first_opt = optimization(first);
    ENGINE.unregister(inner)?;
    let after = optimization(first);
    ENGINE.unregister(first)?;
    ensure_eq!(
        first_opt,
        Optimization::NotOptimized(NotOptimized::ProbeInRegion {
            addr: mix_f.start + 2
        }),
        "the entry probe with another inside its region"
    );
    ensure_eq!(
        after,
        Optimization::Optimized,
        "re-optimised once the inner probe left"
    );
    // No detour memory.
    DETOURS.refuse.store(true, Ordering::SeqCst);
    let r = expect_reason(
        &wide_f,
        kp(),
        "[unoptimized: no-detour-memory]",
        [10, 3],
        want,
    );
    DETOURS.refuse.store(false, Ordering::SeqCst);
    ENGINE.unregister(r?)?;
    // Out of jal's reach: the detour area has nothing for code 2 MiB away.
    let area = layout::detours();
    let far = ENGINE
        .services()
        .alloc_detour_page(area.end + (2 << 20), (1 << 20) - 4096);
    ensure_eq!(far, None, "a detour page for code 2 MiB past the area");
    ensure_eq!(SEEN.bad(), 0, "handler saw a wrong pc, mode or hart");
    ensure_eq!(ENGINE.detours_in_use(), 0, "detours in use");
    note!(
        "post-handler, opted-out, disabled, switched-off, probe-in-region, no-detour-memory: \
         listed and hit through ebreak (traps counted); optimised again when the reason went; \
         no detour page for code beyond jal's +-1 MiB"
    )
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
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[..8]);
    let n = usize::from_le_bytes(b);
    if regs.return_value() != n * (n + 1) / 2 {
        RET_WRONG.fetch_add(1, Ordering::SeqCst);
    }
}

fn kretprobe() -> Outcome {
    let f = symbols::get("t_opt_rsum");
    let id = ENGINE.register_kretprobe(
        &Kretprobe::at(f.start)
            .entry(rsum_entry)
            .ret(rsum_ret)
            .data_size(8)
            .maxactive(8),
    )?;
    let opt = optimization(id);
    let (v, traps) = counting_traps(|| call2(f.start, 5, 0));
    let hits = ENGINE.info(id)?.hits;
    ENGINE.unregister(id)?;
    let after = call2(f.start, 5, 0);
    ensure_eq!(opt, Optimization::Optimized, "kretprobe entry");
    ensure_eq!(v, 15, "t_opt_rsum(5)");
    ensure_eq!(traps, 0, "traps for 6 entries and 6 returns");
    let counts = (
        hits,
        RET_ENTRIES.load(Ordering::SeqCst),
        RET_RETURNS.load(Ordering::SeqCst),
        RET_WRONG.load(Ordering::SeqCst),
    );
    ensure_eq!(counts, (6, 6, 6, 0), "hits, entries, returns, wrong values");
    ensure_eq!(after, 15, "after unregistering");
    ensure_eq!(ENGINE.free_instances(), INSTANCES, "free instances");
    ensure_eq!(ENGINE.detours_in_use(), 0, "detours in use");
    note!("t_opt_rsum(5) = 15 with 6 entries through the detour and 6 returns, 0 traps")
}

static PC_HITS: AtomicUsize = AtomicUsize::new(0);

/// Return 42 from the probed function at its entry: pc = ra.
fn return_42(_: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    PC_HITS.fetch_add(1, Ordering::SeqCst);
    regs.set_pc(regs.gpr(1));
    regs.set_return_value(42);
    PreAction::SkipInstruction
}

fn pc_change() -> Outcome {
    let f = symbols::get("t_opt_wide");
    let inputs = [RegFile::seeded(&[10, 3]), RegFile::seeded(&[7, 1])];
    let unprobed = inputs.map(|i| regfile::call(f.start, &i));
    let id = ENGINE.register_kprobe(&Kprobe::at(f.start).pre(return_42))?;
    let opt = optimization(id);
    // Unprobed but for what the function would have changed: a0 is 42,
    // a1 as passed in.
    let (got, traps) = counting_traps(|| inputs.map(|i| regfile::call(f.start, &i)));
    ENGINE.unregister(id)?;
    ensure_eq!(opt, Optimization::Optimized, "probe at t_opt_wide's entry");
    for k in 0..2 {
        let mut want = unprobed[k];
        want.x[10] = 42;
        want.x[11] = inputs[k].x[11];
        if let Some((r, g, w)) = got[k].first_difference(&want) {
            return Err(Fail::new(format_args!(
                "call {k}: x{r} = {g:#x}, want {w:#x}"
            )));
        }
    }
    ensure_eq!(traps, 0, "traps");
    ensure_eq!(PC_HITS.load(Ordering::SeqCst), 2, "hits");
    ensure_eq!(call2(f.start, 10, 3), wide(10, 3), "after unregistering");
    note!("both calls returned 42 at once (resumed at ra through the detour's sret), every other register as passed in, 0 traps")
}

/// `sstatus.SIE` seen by the last handler (+ 2 per hit).
static SIE_IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// `sstatus.SIE` now.
fn sie() -> bool {
    let v: usize;
    // SAFETY: reading sstatus in S-mode has no side effect.
    unsafe { core::arch::asm!("csrr {}, sstatus", out(reg) v, options(nomem, nostack)) };
    v & 2 != 0
}

/// Set or clear `sstatus.SIE`. No interrupt source is enabled in `sie`,
/// so setting it lets nothing in.
fn set_sie(on: bool) {
    // SAFETY: only the global interrupt enable changes, and nothing can
    // interrupt (above).
    unsafe {
        if on {
            core::arch::asm!("csrsi sstatus, 2", options(nomem, nostack));
        } else {
            core::arch::asm!("csrci sstatus, 2", options(nomem, nostack));
        }
    }
}

fn note_sie(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    SIE_IN_HANDLER.store(2 | sie() as usize, Ordering::SeqCst);
    PreAction::Continue
}

fn note_sie_return_42(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let _ = note_sie(ctx, regs);
    return_42(ctx, regs)
}

/// A pre-handler, as [`Kprobe::pre`] takes it.
type PreHandler = fn(&ProbeContext, &mut dyn Registers) -> PreAction;

/// `sstatus.SIE` through a detour, set and clear before the call: clear
/// in the handler (the detour masks it, as a trap does), as before the
/// call afterwards on path (a) (the entry sets it back) and on path (b)
/// (SPIE and the `sret`).
fn interrupts() -> Outcome {
    let f = symbols::get("t_opt_wide");
    let cases: [(PreHandler, bool, bool); 4] = [
        (note_sie, false, false),
        (note_sie, true, false),
        (note_sie_return_42, false, true),
        (note_sie_return_42, true, true),
    ];
    for (pre, before, moved) in cases {
        let id = ENGINE.register_kprobe(&Kprobe::at(f.start).pre(pre))?;
        let opt = optimization(id);
        SIE_IN_HANDLER.store(0, Ordering::SeqCst);
        set_sie(before);
        let (got, traps) = counting_traps(|| call2(f.start, 10, 3));
        let after = sie();
        set_sie(false);
        ENGINE.unregister(id)?;
        ensure_eq!(opt, Optimization::Optimized, "probe at t_opt_wide's entry");
        ensure_eq!(got, if moved { 42 } else { wide(10, 3) }, "result");
        ensure_eq!(traps, 0, "traps");
        ensure_eq!(
            SIE_IN_HANDLER.load(Ordering::SeqCst),
            2,
            "SIE in the handler (+2: ran)"
        );
        ensure_eq!(after, before, "SIE after the call");
    }
    note!("SIE clear in the handler and as before the call afterwards, on path (a) and on path (b), 0 traps")
}

// ---- The two-hart churn ----

/// Churn cycles on hart 0 (at most).
const CYCLES: usize = 1024;
/// Optimise, un-optimise, disable and unregister operations at least.
const MIN_OPS: usize = 1000;
/// Time after which the churn ends once it made [`MIN_OPS`] operations.
const BUDGET_MS: u64 = 20_000;

static FIXED: Seen = Seen::new();
static CHURN_HITS: AtomicUsize = AtomicUsize::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static GO: AtomicBool = AtomicBool::new(false);
static HART1_CALLS: AtomicUsize = AtomicUsize::new(0);
static MISMATCHES: AtomicUsize = AtomicUsize::new(0);
static HART1_TRAPS: AtomicUsize = AtomicUsize::new(0);

fn churn_hit(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    CHURN_HITS.fetch_add(1, Ordering::SeqCst);
    PreAction::Continue
}

/// Hits of the churn probes unregistered while enabled.
static CHURN_HITS_LIVE: AtomicUsize = AtomicUsize::new(0);

fn churn_hit_live(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    CHURN_HITS_LIVE.fetch_add(1, Ordering::SeqCst);
    PreAction::Continue
}

fn workload(i: usize) {
    let (mem, wide_f, mix_f) = (
        symbols::get("t_opt_mem"),
        symbols::get("t_opt_wide"),
        symbols::get("t_opt_mix"),
    );
    let x = i % 16;
    let ok = call2(mem.start, x, 3) == x + 3
        && call2(wide_f.start, x, 2) == wide(x, 2)
        && call2(mix_f.start, x + 1, 5) == mix(x + 1, 5);
    if !ok {
        MISMATCHES.fetch_add(1, Ordering::SeqCst);
    }
}

fn hart1_job() {
    while !GO.load(Ordering::Acquire) {
        smp::quiescent_point();
    }
    let t0 = breakpoint_traps(1);
    let mut i = 0;
    while !STOP.load(Ordering::Acquire) {
        smp::quiescent_point();
        workload(i);
        i += 1;
        HART1_CALLS.store(i, Ordering::Release);
    }
    HART1_TRAPS.store(breakpoint_traps(1) - t0, Ordering::SeqCst);
}

fn two_harts() -> Outcome {
    let fns = ["t_opt_mem", "t_opt_wide", "t_opt_mix"].map(symbols::get);
    let before = fns.map(|f| snapshot(&f));
    let done0 = smp::jobs_done();
    let refused0 = smp::refused_quiescent_points();
    FIXED.reset();
    // Fixed, optimised, on t_opt_mem's entry (both harts call it).
    let fixed = ENGINE.register_kprobe(&Kprobe::at(fns[0].start).pre(pre_count).data(&FIXED))?;
    ensure_eq!(
        optimization(fixed),
        Optimization::Optimized,
        "the fixed probe"
    );
    // Churn sites: the optimisable boundaries of t_opt_wide and t_opt_mix.
    let mut sites: heapless::Vec<usize, 32> = heapless::Vec::new();
    for f in &fns[1..] {
        for off in boundaries(f) {
            let _ = sites.push(f.start + off);
        }
    }
    smp::start_job(hart1_job);
    GO.store(true, Ordering::Release);
    let start = clock::now();
    let (mut regs, mut optimised, mut engine_hits, mut hart0_calls) = (0, 0, 0u64, 0);
    let mut ops = 0;
    let mut cycles = 0;
    for c in 0..CYCLES {
        // On a loaded host every handshake with hart 1 waits for its vCPU
        // thread: past the time budget, stop once 1,000 operations are done.
        if ops >= MIN_OPS && clock::ms_since(start) > BUDGET_MS {
            break;
        }
        cycles += 1;
        let addr = sites[c % sites.len()];
        // Every fourth probe is unregistered live (optimised where it
        // can be): hits may still come in while it goes, so its handler
        // counts apart. The others are disabled first and read after a
        // grace period: their hits are exact.
        let live = c % 4 == 2;
        let handler = if live { churn_hit_live } else { churn_hit };
        let Ok(id) = ENGINE.register_kprobe(&Kprobe::at(addr).pre(handler)) else {
            continue;
        };
        regs += 1;
        if optimization(id) == Optimization::Optimized {
            optimised += 1;
        }
        match c % 4 {
            0 => {
                ENGINE.set_optimization(false)?;
                workload(c);
                hart0_calls += 1;
                ENGINE.set_optimization(true)?;
                ops += 2;
            }
            1 => {
                ENGINE.disable(id)?;
                ENGINE.enable(id)?;
                ops += 2;
            }
            _ => {}
        }
        workload(c);
        hart0_calls += 1;
        if !live {
            ENGINE.disable(id)?;
            // No hit is in flight after this: the jump went with its own
            // grace period, and a hart that trapped on the breakpoint
            // before the original bytes came back has left its handler.
            smp::wait_quiescent_others();
            engine_hits += ENGINE.info(id)?.hits;
            ops += 1;
        }
        ENGINE.unregister(id)?;
        ops += 1;
    }
    let ms = clock::ms_since(start);
    STOP.store(true, Ordering::Release);
    ensure!(
        smp::wait_jobs_done(done0 + 1, 20_000),
        "hart 1 did not finish"
    );
    let fixed_hits = ENGINE.info(fixed)?.hits;
    ENGINE.unregister(fixed)?;
    let calls1 = HART1_CALLS.load(Ordering::SeqCst);
    ensure_eq!(MISMATCHES.load(Ordering::SeqCst), 0, "wrong results");
    ensure!(calls1 > 0, "hart 1 never called");
    ensure_eq!(
        (FIXED.on_hart(0), FIXED.on_hart(1)),
        (hart0_calls, calls1),
        "fixed probe hits per hart (hart 0, hart 1) vs calls"
    );
    ensure_eq!(
        fixed_hits as usize,
        hart0_calls + calls1,
        "fixed probe's engine hit count"
    );
    ensure_eq!(
        CHURN_HITS.load(Ordering::SeqCst) as u64,
        engine_hits,
        "churn handler runs vs the engine's hit counts (probes disabled before reading)"
    );
    ensure_eq!(FIXED.bad(), 0, "fixed probe saw a wrong pc, mode or hart");
    for (f, b) in fns.iter().zip(&before) {
        ensure!(
            snapshot(f) == *b,
            "{}: bytes differ after the churn",
            f.name
        );
    }
    ensure_eq!(ENGINE.detours_in_use(), 0, "detours in use");
    ensure_eq!(DETOURS.used.load(Ordering::SeqCst), 0, "detour pages held");
    ensure_eq!(
        smp::refused_quiescent_points() - refused0,
        0,
        "quiescent points refused"
    );
    ensure!(ops >= MIN_OPS, "only {ops} operations");
    ensure!(
        optimised * 2 >= regs,
        "only {optimised} of {regs} churn probes optimised"
    );
    note!(
        "{cycles} cycles: {regs} registrations ({optimised} optimised) and {ops} optimise/un-optimise/disable/\
         unregister operations in {ms} ms while hart 1 made {calls1} rounds of 3 calls \
         ({} breakpoint traps there: churn probes on sites that are not optimised, and the switched-off windows); fixed probe \
         {hart0_calls} + {calls1} hits exact, {} churn hits as the engine counted them (and {} \
         on probes unregistered live); bytes back, 0 detours",
        HART1_TRAPS.load(Ordering::SeqCst),
        engine_hits,
        CHURN_HITS_LIVE.load(Ordering::SeqCst)
    )
}

/// Run the optimised checks (optimisation switched on for them, off again
/// afterwards: the other checks count breakpoint traps and steps).
pub fn run() {
    check("optimized: switching jump optimisation on", || {
        ENGINE.set_optimization(true)?;
        note!("on")
    });
    check(
        "optimized: every boundary of 5 functions, optimised vs ebreak vs unprobed",
        every_boundary,
    );
    check("optimized: reasons for not optimising", reasons);
    check(
        "optimized: kretprobe with an optimised entry on recursive t_opt_rsum(5)",
        kretprobe,
    );
    check(
        "optimized: a pre-handler's pc change (return 42 at t_opt_wide's entry) through the detour",
        pc_change,
    );
    check(
        "optimized: sstatus.SIE set and clear before calls through a detour (paths (a) and (b))",
        interrupts,
    );
    if smp::others_online() > 0 {
        check(
            "optimized: hart 0 churns optimised probes while hart 1 calls the functions",
            two_harts,
        );
    }
    let _ = ENGINE.set_optimization(false);
}
