//! Jump-optimised probes ("optprobes") on loongarch64: a probe hit through
//! a `b` to a detour in the kernel's `.detours` area, no `break`. The trap
//! entry counts every breakpoint trap per CPU
//! ([`crate::trap::breakpoint_traps`]), so "0 traps" is measured, not
//! assumed.
//!
//! - **every boundary**: each word of most existing test functions, probed
//!   twice, once allowed to be optimised and once opted out (a plain
//!   `break` probe): every register and the scratch memory after the call
//!   as unprobed, the same hits, no trap where optimised, traps where not;
//!   every site not optimised is counted by reason.
//! - **reasons**: a post-handler, opted out, disabled, the engine-wide
//!   switch, no detour memory, a function of unknown size, an indirect jump
//!   in the function, an instruction with a fix-up in the function, a
//!   simulated instruction: each listed as `[unoptimized: code]` and still
//!   hit through its `break` (traps counted); the detour area refuses a
//!   page for code beyond `b`'s reach. (A probe inside another's region
//!   cannot happen: a region is the probed word alone.)
//! - **kretprobe**: an optimised entry on the recursive `t_opt_rsum`.
//! - **pc change**: a pre-handler that returns 42 from `t_add2` at its
//!   entry is honoured through the detour (its `ertn`).
//! - **two CPUs**: CPU 1 calls the probed functions while CPU 0
//!   optimises, un-optimises, disables and unregisters probes on them.

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use probe_core::{
    EntryAction, KernelServices, Kprobe, Kretprobe, NotOptimized, Optimization, PreAction,
    ProbeContext, ProbeId, Registers,
};

use super::handlers::{post_count, pre_count, Seen};
use super::Report;
use crate::kernel::{self, ENGINE};
use crate::runner::{self, Regs};
use crate::smp;
use crate::testfns::{self, addr, call, TestFn};
use crate::trap::breakpoint_traps;

/// Register numbers of the arguments.
const A0: usize = 4;
const A1: usize = 5;

/// Memory the swept loads and stores use (only CPU 0 touches it).
struct Scratch(UnsafeCell<[u64; 4]>);
// SAFETY: only the checks on CPU 0 and the test functions they call touch
// the buffer, one at a time.
unsafe impl Sync for Scratch {}
static SCRATCH: Scratch = Scratch(UnsafeCell::new([0; 4]));
const SCRATCH_INIT: [u64; 4] = [11, 0x1122_3344_5566_7788, 0x99aa_bbcc_ddee_ff00, 7];

fn scratch() -> u64 {
    SCRATCH.0.get() as u64
}

/// Run `f` from the register pattern with `a0`, `a1`, the scratch memory
/// reset first; the registers and memory after it.
fn run_regs(f: usize, args: [u64; 2]) -> (Regs, [u64; 4]) {
    let mut regs = runner::pattern();
    regs[A0] = args[0];
    regs[A1] = args[1];
    // SAFETY: no test function runs while the checks reset the buffer.
    unsafe { SCRATCH.0.get().write_volatile(SCRATCH_INIT) };
    let out = runner::run(f, &regs);
    // SAFETY: no test function runs while the checks read the buffer.
    (out, unsafe { SCRATCH.0.get().read_volatile() })
}

fn optimization(id: ProbeId) -> Optimization {
    ENGINE
        .info(id)
        .map(|i| i.optimization)
        .unwrap_or(Optimization::NotOptimized(NotOptimized::PatchFailed))
}

/// Breakpoint traps on this CPU while `f` runs.
fn counting_traps<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let cpu = crate::csr::cpu_id();
    let before = breakpoint_traps(cpu);
    let v = f();
    (v, breakpoint_traps(cpu) - before)
}

/// A line of text without allocation.
struct Line {
    buf: [u8; 200],
    len: usize,
}

impl Line {
    fn of(v: impl core::fmt::Display) -> Self {
        let mut l = Line {
            buf: [0; 200],
            len: 0,
        };
        let _ = write!(l, "{v}");
        l
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

static SEEN: Seen = Seen::new();

/// What one registration at one site gave.
struct Run {
    opt: Optimization,
    hits: u64,
    traps: usize,
    regs: Regs,
    mem: [u64; 4],
}

/// How [`one_run`] probes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Not at all (the unprobed run).
    None,
    /// A probe that may be optimised.
    Optimisable,
    /// A probe that opted out: a `break` probe.
    Break,
}

/// Register at `at` as `how` says, call `f`, unregister. `None` when the
/// site cannot be probed at all. Every run goes through this one function,
/// so the stack pointer the test function sees (and returns) is the same.
#[inline(never)]
fn one_run(f: usize, at: usize, how: Probe, args: [u64; 2]) -> Option<Run> {
    SEEN.reset();
    let k = Kprobe::at(at).pre(pre_count).data(&SEEN);
    let id = match how {
        Probe::None => None,
        Probe::Optimisable => Some(ENGINE.register_kprobe(&k).ok()?),
        Probe::Break => Some(ENGINE.register_kprobe(&k.no_optimize()).ok()?),
    };
    let opt = id.map_or(
        Optimization::NotOptimized(NotOptimized::Disabled),
        optimization,
    );
    let ((regs, mem), traps) = counting_traps(|| run_regs(f, args));
    if let Some(id) = id {
        let _ = ENGINE.unregister(id);
    }
    Some(Run {
        opt,
        hits: SEEN.counts().0,
        traps,
        regs,
        mem,
    })
}

/// The swept functions and their arguments (`u64::MAX`: the scratch
/// memory's address).
fn swept() -> [(TestFn, [u64; 2]); 45] {
    const S: u64 = u64::MAX;
    let by_name = |n: &str| {
        testfns::symbols()
            .into_iter()
            .find(|f| f.name == n)
            .expect("a test function")
    };
    [
        ("t_beq", [5, 5]),
        ("t_bne", [5, 5]),
        ("t_blt", [2, 3]),
        ("t_bge", [2, 3]),
        ("t_bltu", [2, 3]),
        ("t_bgeu", [2, 3]),
        ("t_beqz", [0, 0]),
        ("t_bnez", [0, 0]),
        ("t_b", [0, 0]),
        ("t_bl", [0, 0]),
        ("t_jirl", [0, 0]),
        ("t_jirl_same", [0, 0]),
        ("t_bnez_loop", [5, 0]),
        ("t_pcaddi", [0, 0]),
        ("t_pcalau12i", [0, 0]),
        ("t_pcaddu12i", [0, 0]),
        ("t_pcaddu18i", [0, 0]),
        ("t_add_d", [40, 2]),
        ("t_sub_w", [1, 2]),
        ("t_mul_d", [7, 6]),
        ("t_mulh_du", [u64::MAX, 3]),
        ("t_div_d", [100, 7]),
        ("t_mod_du", [100, 7]),
        ("t_slli_d", [3, 0]),
        ("t_srai_d", [1024, 0]),
        ("t_rotri_w", [0x10, 0]),
        ("t_sll_w", [0x4000_0001, 1]),
        ("t_alsl_d", [3, 100]),
        ("t_bstrpick_d", [0x1234_5678_9abc_def0, 0]),
        ("t_maskeqz", [0xabc, 1]),
        ("t_sltui", [99, 0]),
        ("t_lu", [0, 0]),
        ("t_cpucfg", [1, 0]),
        ("t_ld_d", [S, 0]),
        ("t_ldx_d", [S, 16]),
        ("t_st_d", [S, 0x1234]),
        ("t_stack", [0x5151, 0]),
        ("t_fadd_d", [1.5f64.to_bits(), 2.25f64.to_bits()]),
        ("t_fcmp", [1.0f64.to_bits(), 2.0f64.to_bits()]),
        ("t_recur", [4, 0]),
        ("t_add2", [40, 2]),
        ("t_load", [S, 0]),
        ("t_atomic_inc", [S, 0]),
        ("t_hot", [5, 0]),
        ("t_churn", [5, 0]),
    ]
    .map(|(n, a)| (by_name(n), a.map(|v| if v == S { scratch() } else { v })))
}

/// Reasons met by the sweep: (code, sites).
struct Reasons {
    r: [(&'static str, usize); 16],
    n: usize,
}

impl Reasons {
    fn tally(&mut self, code: &'static str) {
        if let Some(e) = self.r[..self.n].iter_mut().find(|e| e.0 == code) {
            e.1 += 1;
        } else if self.n < self.r.len() {
            self.r[self.n] = (code, 1);
            self.n += 1;
        }
    }
    fn has(&self, code: &str) -> bool {
        self.r[..self.n].iter().any(|e| e.0 == code)
    }
}

impl core::fmt::Debug for Reasons {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(&self.r[..self.n]).finish()
    }
}

fn every_boundary(r: &mut Report) {
    let (mut sites, mut optimized, mut unprobeable) = (0, 0, 0);
    let (mut opt_hits, mut bp_hits, mut bp_traps) = (0, 0, 0);
    let mut reasons = Reasons {
        r: [("", 0); 16],
        n: 0,
    };
    let mut failures = 0;
    let funcs = swept();
    for (f, args) in &funcs {
        let before: [u32; 16] = core::array::from_fn(|i| testfns::word_at(f.start + 4 * i));
        let Some(unprobed) = one_run(f.start, f.start, Probe::None, *args) else {
            continue;
        };
        let unprobed = (unprobed.regs, unprobed.mem);
        for at in (f.start..f.end).step_by(4) {
            sites += 1;
            let Some(opt) = one_run(f.start, at, Probe::Optimisable, *args) else {
                unprobeable += 1;
                continue;
            };
            let Some(bp) = one_run(f.start, at, Probe::Break, *args) else {
                failures += 1;
                r.note(format_args!(
                    "{} +{}: only optimisable",
                    f.name,
                    at - f.start
                ));
                continue;
            };
            let mut fail = |what: core::fmt::Arguments<'_>| {
                failures += 1;
                r.note(format_args!(
                    "{} +{} ({}): {what}",
                    f.name,
                    at - f.start,
                    opt.opt
                ));
            };
            for (kind, run) in [("optimisable", &opt), ("break", &bp)] {
                if (run.regs, run.mem) != unprobed {
                    let i = (0..32).find(|&i| run.regs[i] != unprobed.0[i]);
                    fail(format_args!(
                        "{kind} run differs from unprobed (register {i:?}, memory {:x?} vs {:x?})",
                        run.mem, unprobed.1
                    ));
                }
            }
            if bp.opt != Optimization::NotOptimized(NotOptimized::OptedOut) {
                fail(format_args!("opted out reads {}", bp.opt));
            }
            if opt.hits != bp.hits {
                fail(format_args!(
                    "hits {} optimisable, {} break",
                    opt.hits, bp.hits
                ));
            }
            if (bp.traps as u64) < bp.hits {
                fail(format_args!("{} break hits, {} traps", bp.hits, bp.traps));
            }
            bp_hits += bp.hits;
            bp_traps += bp.traps;
            match opt.opt {
                Optimization::Optimized => {
                    optimized += 1;
                    opt_hits += opt.hits;
                    if opt.traps != 0 {
                        fail(format_args!("{} traps while optimised", opt.traps));
                    }
                }
                Optimization::NotOptimized(why) => {
                    if (opt.traps as u64) < opt.hits {
                        fail(format_args!("{} hits, {} traps", opt.hits, opt.traps));
                    }
                    reasons.tally(why.code());
                }
            }
        }
        let after: [u32; 16] = core::array::from_fn(|i| testfns::word_at(f.start + 4 * i));
        if before != after {
            failures += 1;
            r.note(format_args!("{}: bytes differ after the sweep", f.name));
        }
    }
    let want = ["indirect-jump", "not-boostable", "may-fault"];
    r.check(
        failures == 0
            && want.iter().all(|c| reasons.has(c))
            && optimized >= 60
            && opt_hits > 0
            && ENGINE.detours_in_use() == 0
            && kernel::DETOURS.used.load(Ordering::SeqCst) == 0,
        format_args!(
            "optimized: every word of {} test functions, optimised vs break vs unprobed: \
             {optimized} of {sites} sites optimised ({opt_hits} hits, 0 traps), every register \
             and the memory as unprobed",
            funcs.len()
        ),
    );
    r.note(format_args!(
        "{unprobeable} sites refused as probes, the rest through break by reason {reasons:?}; \
         break runs: {bp_hits} hits, {bp_traps} traps; {failures} failures; detours in use {}",
        ENGINE.detours_in_use()
    ));
}

/// Register `k`, call `f(args)` once, and expect `code` in the listing, the
/// hit through a `break` (or no hit, disabled) and the right result.
fn expect_reason(
    r: &mut Report,
    f: usize,
    k: Kprobe,
    code: &str,
    args: [usize; 2],
    want: usize,
) -> Option<ProbeId> {
    let id = match ENGINE.register_kprobe(&k) {
        Ok(id) => id,
        Err(e) => {
            r.check(false, format_args!("optimized reason `{code}`: {e}"));
            return None;
        }
    };
    let info = ENGINE.info(id).ok()?;
    let line = Line::of(format_args!("{info}"));
    let (got, traps) = counting_traps(|| call(f, args[0], args[1]));
    let hits = ENGINE.info(id).map_or(0, |i| i.hits) - info.hits;
    let hit_ok = if info.enabled {
        hits >= 1 && traps as u64 >= hits
    } else {
        (hits, traps) == (0, 0)
    };
    let ok = line.as_str().contains(code) && got == want && hit_ok;
    r.check(
        ok,
        format_args!("optimized reason `{code}`: listed, result right, {hits} hits through {traps} break traps"),
    );
    if !ok {
        r.note(format_args!(
            "listing `{}`, result {got:#x} (want {want:#x})",
            line.as_str()
        ));
    }
    Some(id)
}

fn reasons(r: &mut Report) {
    let add2 = addr::t_add2();
    SEEN.reset();
    let kp = || Kprobe::at(add2).pre(pre_count).data(&SEEN);
    let unreg = |id: Option<ProbeId>| {
        if let Some(id) = id {
            let _ = ENGINE.unregister(id);
        }
    };
    unreg(expect_reason(
        r,
        add2,
        kp().post(post_count),
        "[unoptimized: post-handler]",
        [40, 2],
        42,
    ));
    unreg(expect_reason(
        r,
        add2,
        kp().no_optimize(),
        "[unoptimized: opted-out]",
        [40, 2],
        42,
    ));
    // Disabled, then enabled: optimised.
    if let Some(id) = expect_reason(r, add2, kp().disabled(), "[DISABLED]", [40, 2], 42) {
        let enabled = ENGINE.enable(id).is_ok() && optimization(id) == Optimization::Optimized;
        // Switched off, then on: optimised again.
        let off = ENGINE.set_optimization(false).is_ok();
        let (got, traps_off) = counting_traps(|| call(add2, 40, 2));
        let off_listing = optimization(id);
        let on = ENGINE.set_optimization(true).is_ok();
        let (got_on, traps_on) = counting_traps(|| call(add2, 40, 2));
        r.check(
            enabled
                && off
                && on
                && (got, got_on) == (42, 42)
                && traps_off >= 1
                && off_listing == Optimization::NotOptimized(NotOptimized::SwitchedOff)
                && optimization(id) == Optimization::Optimized
                && traps_on == 0,
            format_args!(
                "optimized reason `switched-off`: enabled -> optimised; switched off -> a break \
                 hit ({traps_off} traps); on again -> optimised, 0 traps"
            ),
        );
        unreg(Some(id));
    }
    // No detour memory.
    kernel::DETOURS.refuse.store(true, Ordering::SeqCst);
    let id = expect_reason(
        r,
        add2,
        kp(),
        "[unoptimized: no-detour-memory]",
        [40, 2],
        42,
    );
    kernel::DETOURS.refuse.store(false, Ordering::SeqCst);
    unreg(id);
    // A function the symbol table does not know.
    let anon = testfns::t_opt_anon_addr();
    unreg(expect_reason(
        r,
        anon,
        Kprobe::at(anon).pre(pre_count).data(&SEEN),
        "[unoptimized: size-unknown]",
        [37, 0],
        42,
    ));
    // An indirect jump in the function (t_jirl_same's `jirl $zero, $t1, 0`);
    // the entry `move $t0, $ra` would be eligible otherwise.
    let js = addr::t_jirl_same();
    unreg(expect_reason(
        r,
        js,
        Kprobe::at(js).pre(pre_count).data(&SEEN),
        "[unoptimized: indirect-jump",
        [0, 0],
        0,
    ));
    // A fix-up in the function (t_load's load).
    let ld = addr::t_load();
    let s = scratch() as usize;
    // SAFETY: no test function runs while the checks reset the buffer.
    unsafe { SCRATCH.0.get().write_volatile(SCRATCH_INIT) };
    unreg(expect_reason(
        r,
        ld,
        Kprobe::at(ld).pre(pre_count).data(&SEEN),
        "[unoptimized: may-fault",
        [s, 0],
        11,
    ));
    // A simulated instruction (t_hot's `bnez`).
    let hot = addr::t_hot();
    unreg(expect_reason(
        r,
        hot,
        Kprobe::at(hot + 8).pre(pre_count).data(&SEEN),
        "[unoptimized: not-boostable",
        [5, 0],
        22,
    ));
    // Out of b's reach: the detour area has nothing for code 256 MiB away.
    let area = kernel::detour_area();
    let far = ENGINE
        .services()
        .alloc_detour_page(area.end + (256 << 20), (1 << 27) - 4096);
    let near = ENGINE
        .services()
        .alloc_detour_page(area.end + (64 << 20), (1 << 27) - 4096);
    if let Some(p) = near {
        ENGINE.services().free_detour_page(p);
    }
    r.check(
        far.is_none() && near.is_some() && ENGINE.detours_in_use() == 0,
        format_args!(
            "optimized reason `out-of-reach`: no detour page for code 256 MiB past the area \
             (one for code 64 MiB past it); a probe inside another's region cannot exist (one-word regions)"
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
        r.check(false, format_args!("optimized kretprobe: registered"));
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
            ENGINE.detours_in_use(),
        ),
        (Optimization::Optimized, 15, 0, 6, 6, 6, 0, 15, 32, 0),
        format_args!(
            "optimized kretprobe on recursive t_opt_rsum(5) = 15: 6 entries through the detour, \
             6 returns, 0 traps"
        ),
    );
}

/// Calls of the optimised probe's function per CPU in [`hits_per_cpu`].
const N_HITS: usize = 10_000;
static CPU1_HIT_TRAPS: AtomicUsize = AtomicUsize::new(0);
static CPU1_HIT_WRONG: AtomicUsize = AtomicUsize::new(0);

fn cpu1_hits_job() {
    let (wrong, traps) = counting_traps(|| {
        (0..N_HITS)
            .filter(|&i| call(addr::t_add2(), i, 1) != i + 1)
            .count()
    });
    CPU1_HIT_WRONG.store(wrong, Ordering::SeqCst);
    CPU1_HIT_TRAPS.store(traps, Ordering::SeqCst);
}

/// An optimised probe hit [`N_HITS`] times on each CPU: 0 breakpoint
/// traps counted on either.
fn hits_per_cpu(r: &mut Report) {
    FIXED.reset();
    let Ok(id) = ENGINE.register_kprobe(&Kprobe::at(addr::t_add2()).pre(pre_count).data(&FIXED))
    else {
        r.check(false, format_args!("optimized hits per CPU: registered"));
        return;
    };
    let opt = optimization(id);
    let (wrong0, traps0) = counting_traps(|| {
        (0..N_HITS)
            .filter(|&i| call(addr::t_add2(), i, 2) != i + 2)
            .count()
    });
    let two = smp::is_online(1);
    if two {
        smp::start_job(cpu1_hits_job);
        smp::wait_job();
    }
    let hits = ENGINE.info(id).map_or(0, |i| i.hits);
    let _ = ENGINE.unregister(id);
    let n = N_HITS as u64;
    let n1 = if two { n } else { 0 };
    r.check_eq(
        (
            opt,
            [0, 1].map(|c| FIXED.per_cpu[c].load(Ordering::SeqCst)),
            hits,
            [traps0, CPU1_HIT_TRAPS.load(Ordering::SeqCst)],
            wrong0 + CPU1_HIT_WRONG.load(Ordering::SeqCst),
        ),
        (Optimization::Optimized, [n, n1], n + n1, [0, 0], 0),
        format_args!(
            "optimized hits per CPU: t_add2's entry probe hit {N_HITS} times on CPU 0 and \
             {N_HITS} on CPU 1 with 0 breakpoint traps counted on each, every result right"
        ),
    );
}

static FP_SINK: AtomicU64 = AtomicU64::new(0);

/// A pre-handler that computes in floating point (`$fa0`, `$fa1`, …, the
/// registers the probed `fadd.d` reads).
fn fp_handler(_: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let x = core::hint::black_box(regs.pc() as f64);
    let y = core::hint::black_box(0.125f64);
    FP_SINK.store((x * y + y).to_bits(), Ordering::SeqCst);
    PreAction::Continue
}

/// A handler using floating point, reached through the detour at
/// `t_fadd_d`'s `fadd.d`: the entry saves the caller-saved FP state.
fn fp_state(r: &mut Report) {
    let f = addr::t_fadd_d();
    let args = [1.5f64.to_bits(), 2.25f64.to_bits()];
    let Ok(id) = ENGINE.register_kprobe(&Kprobe::at(f + 8).pre(fp_handler)) else {
        r.check(false, format_args!("optimized FP state: registered"));
        return;
    };
    let opt = optimization(id);
    let ((regs, _), traps) = counting_traps(|| run_regs(f, args));
    let _ = ENGINE.unregister(id);
    r.check_eq(
        (opt, regs[6], traps, FP_SINK.load(Ordering::SeqCst) != 0),
        (Optimization::Optimized, 3.75f64.to_bits(), 0, true),
        format_args!(
            "optimized FP state: a handler computing in floating point at t_fadd_d's fadd.d \
             (through the detour) leaves 1.5 + 2.25 = 3.75"
        ),
    );
}

static PC_HITS: AtomicUsize = AtomicUsize::new(0);

/// Return 42 from the probed function at its entry: pc = ra.
fn return_42(_: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    PC_HITS.fetch_add(1, Ordering::SeqCst);
    regs.set_pc(regs.gpr(1));
    regs.set_return_value(42);
    PreAction::SkipInstruction
}

fn pc_change(r: &mut Report) {
    let f = addr::t_add2();
    let inputs = [[10, 3], [7, 1]];
    let unprobed = inputs.map(|a| run_regs(f, a));
    let Ok(id) = ENGINE.register_kprobe(&Kprobe::at(f).pre(return_42)) else {
        r.check(false, format_args!("optimized pc change: registered"));
        return;
    };
    let opt = optimization(id);
    let (got, traps) = counting_traps(|| inputs.map(|a| run_regs(f, a)));
    let _ = ENGINE.unregister(id);
    // Unprobed but for what the function would have changed: a0 is 42.
    let want = core::array::from_fn::<_, 2, _>(|k| {
        let mut w = unprobed[k];
        w.0[A0] = 42;
        w
    });
    r.check_eq(
        (
            opt,
            got,
            traps,
            PC_HITS.load(Ordering::SeqCst),
            call(f, 10, 3),
        ),
        (Optimization::Optimized, want, 0, 2, 13),
        format_args!(
            "optimized pc change: a pre-handler returns 42 at t_add2's entry, resumed at ra \
             through the detour's ertn, every other register as passed in, 0 traps"
        ),
    );
}

static IE_IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// `CRMD.IE` now.
fn ie() -> bool {
    crate::csr::read::<{ crate::csr::CRMD }>() & super::kretprobe::CRMD_IE != 0
}

/// Note `CRMD.IE` inside the handler (bit 0: seen set; bit 1: a hit).
fn note_ie(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    IE_IN_HANDLER.fetch_or(2 | ie() as usize, Ordering::SeqCst);
    PreAction::Continue
}

/// As [`return_42`], noting `CRMD.IE` as [`note_ie`].
fn note_ie_return_42(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let _ = note_ie(ctx, regs);
    return_42(ctx, regs)
}

/// Interrupts through a detour, with `CRMD.IE` set and clear before the
/// call (ECFG is 0: no interrupt line is enabled, so setting IE lets
/// nothing in): the handler runs with IE clear (the detour masks it, as a
/// trap does), and the probed code continues with IE as it was, on path
/// (a) (the detour's `csrxchg` back) and on path (b) (`PRMD.PIE` and the
/// `ertn`).
fn interrupts(r: &mut Report) {
    let f = addr::t_add2();
    let mut seen = [(false, 0usize, false, 0usize); 4];
    for (k, (pre, ie_before)) in [
        (
            note_ie as fn(&ProbeContext, &mut dyn Registers) -> PreAction,
            false,
        ),
        (note_ie, true),
        (note_ie_return_42, false),
        (note_ie_return_42, true),
    ]
    .into_iter()
    .enumerate()
    {
        let Ok(id) = ENGINE.register_kprobe(&Kprobe::at(f).pre(pre)) else {
            continue;
        };
        IE_IN_HANDLER.store(0, Ordering::SeqCst);
        super::kretprobe::set_ie(ie_before);
        let (got, traps) = counting_traps(|| call(f, 10, 3));
        let ie_after = ie();
        super::kretprobe::set_ie(false);
        let optimized = optimization(id) == Optimization::Optimized;
        let _ = ENGINE.unregister(id);
        seen[k] = (
            optimized,
            got,
            ie_after,
            IE_IN_HANDLER.load(Ordering::SeqCst) + 4 * traps,
        );
    }
    r.check_eq(
        seen,
        [
            (true, 13, false, 2),
            (true, 13, true, 2),
            (true, 42, false, 2),
            (true, 42, true, 2),
        ],
        format_args!(
            "optimized: CRMD.IE through a detour, set and clear before the call, on path (a) and on \
             path (b) (pc change through ertn): clear in the handler, as before the call afterwards, 0 traps"
        ),
    );
}

// ---- The two-CPU churn ----

/// Churn cycles on CPU 0 (at most).
const CYCLES: usize = 1024;
/// Optimise, un-optimise, disable and unregister operations at least.
const MIN_OPS: usize = 1000;
/// Time after which the churn ends once it made [`MIN_OPS`] operations.
const BUDGET_MS: u64 = 60_000;

static FIXED: Seen = Seen::new();
static CHURN_HITS: AtomicU64 = AtomicU64::new(0);
static CHURN_HITS_LIVE: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static GO: AtomicBool = AtomicBool::new(false);
static CPU1_CALLS: AtomicU64 = AtomicU64::new(0);
static MISMATCHES: AtomicU64 = AtomicU64::new(0);
static CPU1_TRAPS: AtomicUsize = AtomicUsize::new(0);

fn churn_hit(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    CHURN_HITS.fetch_add(1, Ordering::SeqCst);
    PreAction::Continue
}

fn churn_hit_live(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    CHURN_HITS_LIVE.fetch_add(1, Ordering::SeqCst);
    PreAction::Continue
}

fn hot(x: usize) -> usize {
    3 * x + 7
}

fn churn(x: usize) -> usize {
    (x ^ 0x55) + 1
}

/// One round: t_add2 (the fixed probe), t_hot and t_churn (the churn).
fn workload(i: usize) {
    let x = i % 16;
    let ok = call(addr::t_add2(), x, 3) == x + 3
        && call(addr::t_hot(), x + 1, 0) == hot(x + 1)
        && call(addr::t_churn(), x, 0) == churn(x);
    if !ok {
        MISMATCHES.fetch_add(1, Ordering::SeqCst);
    }
}

fn cpu1_job() {
    let cpu = crate::csr::cpu_id();
    while !GO.load(Ordering::Acquire) {
        smp::quiescent(cpu);
    }
    let t0 = breakpoint_traps(cpu);
    let mut i = 0;
    while !STOP.load(Ordering::Acquire) {
        smp::quiescent(cpu);
        workload(i);
        i += 1;
        CPU1_CALLS.store(i as u64, Ordering::Release);
    }
    CPU1_TRAPS.store(breakpoint_traps(cpu) - t0, Ordering::SeqCst);
}

fn two_cpus(r: &mut Report) {
    let (add2, hot_f, churn_f) = (addr::t_add2(), addr::t_hot(), addr::t_churn());
    let copy = |f: usize| -> [u32; 6] { core::array::from_fn(|i| testfns::word_at(f + 4 * i)) };
    let before = [add2, hot_f, churn_f].map(copy);
    let refused0 = smp::refused_quiescent_points();
    let stopped0 = smp::stopped_writes();
    FIXED.reset();
    let Ok(fixed) = ENGINE.register_kprobe(&Kprobe::at(add2).pre(pre_count).data(&FIXED)) else {
        r.check(false, format_args!("optimized two CPUs: the fixed probe"));
        return;
    };
    let fixed_opt = optimization(fixed);
    // Churn sites: every word of t_hot (6) and t_churn (4); 6 are stepped.
    let sites: [usize; 10] = core::array::from_fn(|i| {
        if i < 6 {
            hot_f + 4 * i
        } else {
            churn_f + 4 * (i - 6)
        }
    });
    STOP.store(false, Ordering::SeqCst);
    GO.store(false, Ordering::SeqCst);
    smp::start_job(cpu1_job);
    GO.store(true, Ordering::Release);
    let start = crate::clock::ticks();
    let (mut regs, mut optimised, mut engine_hits, mut cpu0_calls) = (0, 0, 0u64, 0u64);
    let (mut ops, mut cycles, mut errors) = (0, 0, 0);
    for c in 0..CYCLES {
        if ops >= MIN_OPS && crate::clock::ms_since(start) > BUDGET_MS {
            break;
        }
        cycles += 1;
        let at = sites[c % sites.len()];
        // Every fourth probe is unregistered live (optimised where it can
        // be): hits may still come in while it goes, so its handler counts
        // apart. The others are disabled first and read after a grace
        // period: their hits are exact.
        let live = c % 4 == 2;
        let handler = if live { churn_hit_live } else { churn_hit };
        let Ok(id) = ENGINE.register_kprobe(&Kprobe::at(at).pre(handler)) else {
            errors += 1;
            continue;
        };
        regs += 1;
        if optimization(id) == Optimization::Optimized {
            optimised += 1;
        }
        match c % 4 {
            0 => {
                errors += ENGINE.set_optimization(false).is_err() as usize;
                workload(c);
                cpu0_calls += 1;
                errors += ENGINE.set_optimization(true).is_err() as usize;
                ops += 2;
            }
            1 => {
                errors += ENGINE.disable(id).is_err() as usize;
                errors += ENGINE.enable(id).is_err() as usize;
                ops += 2;
            }
            _ => {}
        }
        workload(c);
        cpu0_calls += 1;
        if !live {
            errors += ENGINE.disable(id).is_err() as usize;
            // No hit is in flight after this: the jump went with its own
            // grace period, and a CPU that trapped on the break before the
            // original word came back has left its handler.
            smp::request(smp::Request::Grace);
            engine_hits += ENGINE.info(id).map_or(0, |i| i.hits);
            ops += 1;
        }
        errors += ENGINE.unregister(id).is_err() as usize;
        ops += 1;
    }
    let ms = crate::clock::ms_since(start);
    STOP.store(true, Ordering::Release);
    smp::wait_job();
    let fixed_hits = ENGINE.info(fixed).map_or(0, |i| i.hits);
    let _ = ENGINE.unregister(fixed);
    let calls1 = CPU1_CALLS.load(Ordering::SeqCst);
    let per_cpu = [0, 1].map(|c| FIXED.per_cpu[c].load(Ordering::SeqCst));
    r.check_eq(
        (
            fixed_opt,
            errors,
            MISMATCHES.load(Ordering::SeqCst),
            per_cpu,
            fixed_hits,
            CHURN_HITS.load(Ordering::SeqCst),
        ),
        (
            Optimization::Optimized,
            0,
            0,
            [cpu0_calls, calls1],
            cpu0_calls + calls1,
            engine_hits,
        ),
        format_args!(
            "optimized two CPUs: {cycles} churn cycles, {ops} optimise/un-optimise/disable/unregister \
             operations in {ms} ms while CPU 1 made {calls1} rounds of 3 calls: every result right, \
             the fixed optimised probe's hits exact per CPU, the churn hits as the engine counted them"
        ),
    );
    r.note(format_args!(
        "{regs} churn registrations ({optimised} optimised), {} churn hits exact (+{} on probes \
         unregistered live); CPU 1 took {} break traps (churn probes not optimised, switched-off \
         windows); {} text writes with CPU 1 parked",
        engine_hits,
        CHURN_HITS_LIVE.load(Ordering::SeqCst),
        CPU1_TRAPS.load(Ordering::SeqCst),
        smp::stopped_writes() - stopped0
    ));
    let after = [add2, hot_f, churn_f].map(copy);
    r.check_eq(
        (
            after == before,
            ENGINE.detours_in_use(),
            kernel::DETOURS.used.load(Ordering::SeqCst),
            smp::refused_quiescent_points() - refused0,
            ops >= MIN_OPS,
            optimised * 2 >= regs,
            calls1 > 0,
        ),
        (true, 0, 0, 0, true, true, true),
        format_args!(
            "optimized two CPUs: every byte of t_add2, t_hot, t_churn as the copy, 0 detours and \
             detour pages held, 0 quiescent points refused, >= {MIN_OPS} operations, half the \
             churn probes optimised"
        ),
    );
}

/// Run the optimised checks (optimisation switched on for them, off again
/// afterwards: the other checks count breakpoint traps and steps).
pub fn run(r: &mut Report) {
    let on = ENGINE.set_optimization(true);
    r.check(
        on.is_ok(),
        format_args!("optimized: jump optimisation switched on"),
    );
    let start = crate::clock::ticks();
    every_boundary(r);
    reasons(r);
    hits_per_cpu(r);
    fp_state(r);
    kretprobe(r);
    pc_change(r);
    interrupts(r);
    if smp::is_online(1) {
        two_cpus(r);
    }
    let _ = ENGINE.set_optimization(false);
    r.note(format_args!(
        "optimised checks: {} ms, {} detour pages handed out and {} given back, {} text writes",
        crate::clock::ms_since(start),
        kernel::DETOURS.allocs.load(Ordering::SeqCst),
        kernel::DETOURS.frees.load(Ordering::SeqCst),
        kernel::text_writes()
    ));
}
