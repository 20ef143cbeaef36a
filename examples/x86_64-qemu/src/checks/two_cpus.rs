//! Two CPUs (`-smp 2`): CPU 1 starts through INIT-SIPI-SIPI and the
//! real-mode trampoline ([`bring_up`]); then ([`run`]) it calls the probed
//! functions in a loop and checks every result, while CPU 0 keeps
//! registering, enabling, disabling and unregistering probes on the same
//! functions ([`CYCLES`] cycles).
//!
//! As in the riscv64 kernel's two-hart check, fixed probes stay enabled
//! for the whole run (a boosted kprobe, a stepped one with a post-handler,
//! a simulated one, a kretprobe on a recursive function): their per-CPU
//! counts must come out exact, on both CPUs. The churned probes give no
//! exact count on CPU 1 (it runs freely), but every window in which CPU 0
//! keeps one enabled (or disabled) and calls the function itself must show
//! exactly CPU 0's own calls; every result on either CPU must be right,
//! nothing may crash, and at the end every byte of the probed code must be
//! as it was.
//!
//! Patching while CPU 1 runs goes through the services: every text write
//! stops CPU 1 in its IPI handler, every write is followed by a serialising
//! instruction on both CPUs, and unregistering waits for CPU 1 to take an
//! IPI outside every slot (see [`crate::smp`]).

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use probe_core::{
    EntryAction, Kprobe, Kretprobe, PreAction, ProbeContext, ProbeError, ProbeInfo, Registers,
};

use crate::probed_code::*;
use crate::report::check;
use crate::services::{peek, ENGINE, INSTANCES};
use crate::smp::{self, MAX_CPUS};
use crate::{clock, cpu, percpu};

/// Start CPU 1 and check that it answers the kernel's IPI: a grace period
/// and a stop. Before every other check, so that all of them patch text
/// with CPU 1 online.
pub fn bring_up() {
    let name = "CPU 1 starts (INIT, STARTUP x2, trampoline at 0x8000) and answers IPIs";
    let start = crate::clock::now();
    let online = smp::start_second_cpu(2_000);
    let up_us = crate::clock::us_since(start);
    if !online {
        check(
            name,
            false,
            format_args!("CPU 1 not online after 2 s (is QEMU running with -smp 2?)"),
        );
        return;
    }
    let t = crate::clock::now();
    smp::wait_quiescent_others();
    drop(smp::stop_others());
    let ipi_us = crate::clock::us_since(t);
    check(
        name,
        smp::others_online() == 1,
        format_args!(
            "online after {up_us} us; a grace period and a stop took {ipi_us} us; others online {} (want 1)",
            smp::others_online()
        ),
    );
}

/// A safe wrapper `$name` around the probed function `$f`.
macro_rules! safe_call {
    ($($name:ident => $f:ident($($a:ident: $t:ty),*) -> $r:ty;)*) => {$(
        fn $name($($a: $t),*) -> $r {
            // SAFETY: a probed_code function (C ABI); it touches only its
            // arguments and its own stack, and leaves IF as it found it.
            unsafe { $f($($a),*) }
        }
    )*};
}

safe_call! {
    alu => xq_alu(x: u64) -> u64;
    push => xq_push(a: u64, b: u64) -> Pair;
    jcc => xq_jcc(x: u64) -> u64;
    sum => xq_sum(n: u64) -> u64;
    loop_n => xq_loop(n: u64) -> u64;
    callreg => xq_callreg(x: u64) -> u64;
    riprel => xq_riprel() -> Pair;
    call => xq_call() -> Pair;
    jtab => xq_jtab(i: u64) -> u64;
    leaf => xq_leaf(x: u64) -> u64;
    rsum => xq_rsum(n: u64) -> u64;
}

/// Cycles of CPU 0's churn (each: register a kprobe and a kretprobe,
/// disable, enable, unregister: six probe operations). A debug build is
/// much slower under TCG (a cycle takes about 50 ms instead of 0.6 ms): it
/// makes 200 cycles (still 1,200 operations) to stay inside the timeout.
const CYCLES: usize = if cfg!(debug_assertions) { 200 } else { 1000 };
/// Depth of the kretprobed recursion (`xq_sum(DEPTH)`: DEPTH + 1 calls).
const DEPTH: u64 = 3;
/// Calls CPU 0 makes in each window of a churn cycle.
const WINDOW_CALLS: u64 = 2;
/// `xq_loop`'s argument in CPU 0's windows (its body runs that often).
const LOOP_N: u64 = 3;

/// What the handlers of one probe saw, per CPU.
struct Counts {
    pre: [AtomicU64; MAX_CPUS],
    post: [AtomicU64; MAX_CPUS],
    /// Handler runs with interrupts enabled, on an unknown CPU, or (return
    /// handlers) with a wrong return value.
    bad: AtomicU64,
}

impl Counts {
    const fn new() -> Self {
        Self {
            pre: [const { AtomicU64::new(0) }; MAX_CPUS],
            post: [const { AtomicU64::new(0) }; MAX_CPUS],
            bad: AtomicU64::new(0),
        }
    }

    fn pre_on(&self, c: usize) -> u64 {
        self.pre[c].load(Ordering::SeqCst)
    }

    fn post_on(&self, c: usize) -> u64 {
        self.post[c].load(Ordering::SeqCst)
    }

    fn pre_all(&self) -> u64 {
        (0..MAX_CPUS).map(|c| self.pre_on(c)).sum()
    }

    fn post_all(&self) -> u64 {
        (0..MAX_CPUS).map(|c| self.post_on(c)).sum()
    }

    fn bad(&self) -> u64 {
        self.bad.load(Ordering::SeqCst)
    }
}

fn counts(ctx: &ProbeContext) -> &'static Counts {
    ctx.data
        .downcast_ref::<Counts>()
        .expect("every probe of this check carries Counts")
}

/// This CPU, after checking the handler runs as the trap path must (on a
/// known CPU, interrupts masked).
fn handler_cpu(c: &Counts) -> usize {
    let id = percpu::cpu_id();
    if id >= MAX_CPUS || cpu::interrupts_enabled() {
        c.bad.fetch_add(1, Ordering::SeqCst);
    }
    id.min(MAX_CPUS - 1)
}

fn pre(ctx: &ProbeContext, _regs: &mut dyn Registers) -> PreAction {
    let c = counts(ctx);
    c.pre[handler_cpu(c)].fetch_add(1, Ordering::SeqCst);
    PreAction::Continue
}

fn post(ctx: &ProbeContext, _regs: &mut dyn Registers) {
    let c = counts(ctx);
    c.post[handler_cpu(c)].fetch_add(1, Ordering::SeqCst);
}

/// Return-probe entry: count, keep the first argument.
fn entry_keep_arg(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) -> EntryAction {
    let c = counts(ctx);
    c.pre[handler_cpu(c)].fetch_add(1, Ordering::SeqCst);
    let arg = regs.arg(0).unwrap_or(0) as u64;
    data[..8].copy_from_slice(&arg.to_le_bytes());
    EntryAction::Track
}

fn kept_arg(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[..8]);
    u64::from_le_bytes(b)
}

/// Return of `xq_sum(n)`: the value must be n(n+1)/2.
fn ret_sum(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) {
    let c = counts(ctx);
    c.post[handler_cpu(c)].fetch_add(1, Ordering::SeqCst);
    let n = kept_arg(data);
    if regs.return_value() as u64 != n * (n + 1) / 2 {
        c.bad.fetch_add(1, Ordering::SeqCst);
    }
}

/// Return of `xq_leaf(x)` (x + 1) or `xq_callreg(x)` (2x + 1): either
/// formula, told apart by the probed address.
fn ret_churn(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) {
    let c = counts(ctx);
    c.post[handler_cpu(c)].fetch_add(1, Ordering::SeqCst);
    let x = kept_arg(data);
    let want = if ctx.addr == xq_leaf as *const () as usize {
        x + 1
    } else {
        2 * x + 1
    };
    if regs.return_value() as u64 != want {
        c.bad.fetch_add(1, Ordering::SeqCst);
    }
}

// The fixed probes (enabled for the whole run) and the churned ones.
static ALU: Counts = Counts::new();
static PUSH: Counts = Counts::new();
static JCC: Counts = Counts::new();
static SUM: Counts = Counts::new();
static CHURN: Counts = Counts::new();
static CHURN_RET: Counts = Counts::new();

/// CPU 1 stops its loop when this is set.
static STOP: AtomicBool = AtomicBool::new(false);
/// CPU 1's completed iterations.
static CPU1_ITERATIONS: AtomicU64 = AtomicU64::new(0);
/// Calls checked on each CPU, wrong results, and the first wrong one
/// (cpu * 100 + function, iteration, got, want).
static CALLS_CHECKED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static MISMATCHES: AtomicUsize = AtomicUsize::new(0);
static FIRST_MISMATCH: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

fn expect(what: u64, i: u64, got: u64, want: u64) {
    let c = percpu::cpu_id();
    CALLS_CHECKED[c].fetch_add(1, Ordering::Relaxed);
    if got != want && MISMATCHES.fetch_add(1, Ordering::SeqCst) == 0 {
        for (slot, v) in FIRST_MISMATCH
            .iter()
            .zip([c as u64 * 100 + what, i, got, want])
        {
            slot.store(v, Ordering::SeqCst);
        }
    }
}

/// The fixed-probe functions, once each (both CPUs run this per
/// iteration; the counts of the fixed probes follow from it).
fn fixed_calls(i: u64) {
    let x = i % 16;
    expect(0, i, alu(x), (x + 5) * 3);
    let p = push(i, !i);
    expect(1, i, p.a, i);
    expect(2, i, p.b, !i);
    expect(3, i, jcc(x), if x < 10 { 100 } else { 200 });
    expect(4, i, sum(DEPTH), DEPTH * (DEPTH + 1) / 2);
}

/// The churned functions, once each.
fn churn_calls(i: u64) {
    let x = i % 16;
    expect(10, i, loop_n(x % 5 + 1), 2 * (x % 5 + 1));
    expect(11, i, callreg(x), 2 * x + 1);
    let r = riprel();
    expect(12, i, r.a, RIPREL_VALUE);
    expect(13, i, r.b, addr(xq_riprel_data) as u64);
    let c = call();
    expect(14, i, c.a, addr(xq_call_back) as u64);
    expect(15, i, c.b, 0);
    expect(16, i, jtab(x), [10, 21, 32, 43][(x & 3) as usize]);
    expect(17, i, leaf(x), x + 1);
    let n = x % 5;
    expect(18, i, rsum(n), n * (n + 1) / 2);
}

/// CPU 1's job: both sets of calls until CPU 0 says stop.
fn cpu1_job() {
    let mut i = 0;
    while !STOP.load(Ordering::Acquire) {
        fixed_calls(i);
        churn_calls(i);
        i += 1;
        CPU1_ITERATIONS.store(i, Ordering::Release);
        // Between iterations CPU 1 is outside all probe machinery.
        smp::quiescent_point();
        // `pause`: under QEMU's single-threaded TCG it hands the host
        // thread to CPU 0 (see `keep_in_step`); elsewhere only a hint.
        core::hint::spin_loop();
    }
}

/// CPU 0 lets CPU 1 run an iteration (waiting at most `us`) every this
/// many cycles.
const STEP_EVERY: usize = 10;

/// CPU 1's iteration count when CPU 0 last looked (see [`keep_in_step`]).
static SEEN_BY_CPU0: AtomicU64 = AtomicU64::new(0);

/// Wait (at most `us`) until CPU 1 has finished an iteration since the
/// last look. Under a multi-threaded TCG, CPU 1 runs all along and this
/// returns at once; under a single-threaded one, CPU 0 would otherwise
/// keep the host thread (CPU 1 then only ever runs its IPI handler) and
/// CPU 1 would never call the functions. Called inside a churn window, so
/// that CPU 1 also meets the churned probes there.
fn keep_in_step(us: u64) {
    let seen = SEEN_BY_CPU0.load(Ordering::Relaxed);
    let deadline = clock::Deadline::after_us(us);
    loop {
        let now = CPU1_ITERATIONS.load(Ordering::Acquire);
        if now > seen || deadline.passed() {
            SEEN_BY_CPU0.store(now, Ordering::Relaxed);
            return;
        }
        core::hint::spin_loop();
    }
}

/// A churned probe site: where, and one call of its function (by CPU 0,
/// checked) that runs the site `hits` times.
struct Site {
    at: fn() -> usize,
    call: fn(u64),
    hits: u64,
}

const SITES: [Site; 5] = [
    Site {
        at: || addr(xq_loop_body),
        call: |i| expect(20, i, loop_n(LOOP_N), 2 * LOOP_N),
        hits: LOOP_N,
    },
    Site {
        at: || addr(xq_callreg_site),
        call: |i| expect(21, i, callreg(i % 16), 2 * (i % 16) + 1),
        hits: 1,
    },
    Site {
        at: || addr(xq_riprel_load),
        call: |i| expect(22, i, riprel().a, RIPREL_VALUE),
        hits: 1,
    },
    Site {
        at: || addr(xq_call_site),
        call: |i| expect(23, i, call().b, 0),
        hits: 1,
    },
    Site {
        at: || addr(xq_jtab_site),
        call: |i| expect(24, i, jtab(i), [10, 21, 32, 43][(i & 3) as usize]),
        hits: 1,
    },
];

/// Windows of CPU 0 whose count was wrong, and the first one
/// (cycle, got, want).
static WINDOW_ERRORS: AtomicUsize = AtomicUsize::new(0);
static FIRST_WINDOW_ERROR: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

/// CPU 0 calls `site`'s function [`WINDOW_CALLS`] times: its own hits on
/// the churned kprobe must grow by exactly `want`.
fn window(cycle: usize, site: &Site, want: u64) {
    let before = CHURN.pre_on(0);
    for k in 0..WINDOW_CALLS {
        (site.call)(cycle as u64 * WINDOW_CALLS + k);
    }
    let got = CHURN.pre_on(0) - before;
    if got != want && WINDOW_ERRORS.fetch_add(1, Ordering::SeqCst) == 0 {
        for (slot, v) in FIRST_WINDOW_ERROR.iter().zip([cycle as u64, got, want]) {
            slot.store(v, Ordering::SeqCst);
        }
    }
}

/// Probe operations CPU 0 made (register, enable, disable, unregister).
static OPERATIONS: AtomicU64 = AtomicU64::new(0);

fn op<T>(r: Result<T, ProbeError>) -> Result<T, ProbeError> {
    OPERATIONS.fetch_add(1, Ordering::Relaxed);
    r
}

/// One churn cycle on CPU 0.
fn churn_cycle(c: usize) -> Result<(), ProbeError> {
    let site = &SITES[c % SITES.len()];
    let hits = site.hits * WINDOW_CALLS;
    let disabled_first = c % 2 == 1;
    let mut kp = Kprobe::at((site.at)()).pre(pre).data(&CHURN);
    if c % 3 == 0 {
        // A post-handler: a stepped slot ending in a trap, never boosted.
        kp = kp.post(post);
    }
    if disabled_first {
        kp = kp.disabled();
    }
    let k = op(ENGINE.register_kprobe(&kp))?;
    let ret_target = if c % 2 == 0 {
        xq_leaf as *const () as usize
    } else {
        xq_callreg as *const () as usize
    };
    let r = op(ENGINE.register_kretprobe(
        &Kretprobe::at(ret_target)
            .entry(entry_keep_arg)
            .ret(ret_churn)
            .data_size(8)
            .maxactive(4)
            .data(&CHURN_RET),
    ))?;
    if disabled_first {
        window(c, site, 0);
        op(ENGINE.enable(k))?;
    }
    window(c, site, hits);
    if c % STEP_EVERY == 0 {
        keep_in_step(10_000);
    }
    op(ENGINE.disable(k))?;
    window(c, site, 0);
    op(ENGINE.enable(k))?;
    window(c, site, hits);
    // The kretprobe's window: CPU 0's own entries and returns.
    let (e0, r0) = (CHURN_RET.pre_on(0), CHURN_RET.post_on(0));
    for k in 0..WINDOW_CALLS {
        let v = if ret_target == xq_leaf as *const () as usize {
            leaf(k)
        } else {
            callreg(k) - k
        };
        expect(25, c as u64, v, k + 1);
    }
    let got = (CHURN_RET.pre_on(0) - e0, CHURN_RET.post_on(0) - r0);
    if got != (WINDOW_CALLS, WINDOW_CALLS) && WINDOW_ERRORS.fetch_add(1, Ordering::SeqCst) == 0 {
        for (slot, v) in FIRST_WINDOW_ERROR
            .iter()
            .zip([c as u64, got.0, WINDOW_CALLS])
        {
            slot.store(v, Ordering::SeqCst);
        }
    }
    if c % 2 == 0 {
        OPERATIONS.fetch_add(1, Ordering::Relaxed);
        ENGINE.unregister_batch(&[k, r])?;
    } else {
        op(ENGINE.unregister(r))?;
        op(ENGINE.unregister(k))?;
    }
    Ok(())
}

/// Most bytes of probed code compared.
const SNAPSHOT: usize = 2048;

fn snapshot() -> ([u8; SNAPSHOT], usize) {
    let (start, end) = range();
    let len = (end - start).min(SNAPSHOT);
    let mut bytes = [0u8; SNAPSHOT];
    for (i, b) in bytes[..len].iter_mut().enumerate() {
        *b = peek(start + i);
    }
    (bytes, len)
}

/// What the run produced, for the checks.
struct Run {
    us: u64,
    cpu1_done: bool,
    cycles: usize,
    fixed: [ProbeInfo; 4],
    stats: [u64; 7],
    differing: usize,
    compared: usize,
}

fn run_both() -> Result<Run, ProbeError> {
    let before = snapshot();
    let stats0 = stats();
    let fixed_ids = [
        ENGINE.register_kprobe(&Kprobe::at(addr(xq_alu_add)).pre(pre).data(&ALU))?,
        ENGINE.register_kprobe(
            &Kprobe::at(addr(xq_push_rdi))
                .pre(pre)
                .post(post)
                .data(&PUSH),
        )?,
        ENGINE.register_kprobe(&Kprobe::at(addr(xq_jcc_site)).pre(pre).data(&JCC))?,
        ENGINE.register_kretprobe(
            &Kretprobe::at(xq_sum as *const () as usize)
                .entry(entry_keep_arg)
                .ret(ret_sum)
                .data_size(8)
                .maxactive(2 * (DEPTH as usize + 1))
                .data(&SUM),
        )?,
    ];
    let jobs = smp::jobs_done();
    let start = clock::now();
    smp::start_job(cpu1_job);
    SEEN_BY_CPU0.store(0, Ordering::Relaxed);
    keep_in_step(2_000_000);
    let mut cycles = 0;
    let mut result = Ok(());
    for c in 0..CYCLES {
        fixed_calls(c as u64);
        if let Err(e) = churn_cycle(c) {
            result = Err(e);
            break;
        }
        cycles += 1;
    }
    STOP.store(true, Ordering::Release);
    let cpu1_done = smp::wait_jobs_done(jobs + 1, 20_000);
    let us = clock::us_since(start);
    let fixed = [
        ENGINE.info(fixed_ids[0])?,
        ENGINE.info(fixed_ids[1])?,
        ENGINE.info(fixed_ids[2])?,
        ENGINE.info(fixed_ids[3])?,
    ];
    ENGINE.unregister_batch(&fixed_ids)?;
    result?;
    let after = snapshot();
    let compared = before.1;
    let differing = (0..compared).filter(|&i| before.0[i] != after.0[i]).count();
    let now = stats();
    Ok(Run {
        us,
        cpu1_done,
        cycles,
        fixed,
        stats: core::array::from_fn(|i| now[i] - stats0[i]),
        differing,
        compared,
    })
}

/// stopped writes, remote syncs, remote grace periods, IPIs sent,
/// deferred, answered at a trap's end.
fn stats() -> [u64; 7] {
    [
        smp::STATS.stopped_writes.load(Ordering::Relaxed),
        smp::STATS.slot_writes.load(Ordering::Relaxed),
        smp::STATS.remote_syncs.load(Ordering::Relaxed),
        smp::STATS.remote_grace_periods.load(Ordering::Relaxed),
        smp::STATS.ipis_sent.load(Ordering::Relaxed),
        smp::deferred_quiescent(),
        smp::trap_exit_answers(),
    ]
}

/// An exact-count check of a fixed kprobe: `per_call` hits per call on
/// each CPU.
fn exact(name: &str, c: &Counts, info: &ProbeInfo, calls: [u64; 2], with_post: bool) {
    let pre = [c.pre_on(0), c.pre_on(1)];
    let post_want = if with_post { calls } else { [0, 0] };
    let post = [c.post_on(0), c.post_on(1)];
    let total = calls[0] + calls[1];
    check(
        name,
        pre == calls && post == post_want && (info.hits, info.missed) == (total, 0) && c.bad() == 0,
        format_args!(
            "pre-handler runs on CPUs 0/1 {pre:?} (want {calls:?}), post {post:?} (want \
             {post_want:?}), hits/missed {}/{} (want {total}/0), bad runs {} (want 0)",
            info.hits,
            info.missed,
            c.bad()
        ),
    );
}

/// The two-CPU run and its checks.
pub fn run() {
    if !smp::online(1) {
        check(
            "two CPUs: probes churned on CPU 0 while CPU 1 calls the functions",
            false,
            format_args!("CPU 1 is not online"),
        );
        return;
    }
    let run = match run_both() {
        Ok(run) => run,
        Err(e) => {
            check(
                "two CPUs: probes churned on CPU 0 while CPU 1 calls the functions",
                false,
                format_args!("a probe operation failed: {e}"),
            );
            return;
        }
    };
    let n1 = CPU1_ITERATIONS.load(Ordering::SeqCst);
    let n0 = run.cycles as u64;
    check(
        "two CPUs: both ran the whole workload",
        run.cpu1_done && run.cycles == CYCLES && n1 > 0,
        format_args!(
            "{n0} churn cycles on CPU 0, {n1} iterations on CPU 1 (stopped: {}), in {} ms; \
             longest wait for CPU 1 {} us",
            run.cpu1_done,
            run.us / 1000,
            smp::longest_wait_us()
        ),
    );
    exact(
        "two CPUs: boosted kprobe (add) stays enabled, exact counts",
        &ALU,
        &run.fixed[0],
        [n0, n1],
        false,
    );
    exact(
        "two CPUs: stepped kprobe with post-handler (push), exact counts",
        &PUSH,
        &run.fixed[1],
        [n0, n1],
        true,
    );
    exact(
        "two CPUs: simulated kprobe (jl), exact counts",
        &JCC,
        &run.fixed[2],
        [n0, n1],
        false,
    );
    let calls = [n0 * (DEPTH + 1), n1 * (DEPTH + 1)];
    exact(
        "two CPUs: kretprobe on recursive xq_sum, exact entries and returns",
        &SUM,
        &run.fixed[3],
        calls,
        true,
    );
    let m = MISMATCHES.load(Ordering::SeqCst);
    let first: [u64; 4] = core::array::from_fn(|i| FIRST_MISMATCH[i].load(Ordering::SeqCst));
    let w = WINDOW_ERRORS.load(Ordering::SeqCst);
    let wfirst: [u64; 3] = core::array::from_fn(|i| FIRST_WINDOW_ERROR[i].load(Ordering::SeqCst));
    let checked = [
        CALLS_CHECKED[0].load(Ordering::SeqCst),
        CALLS_CHECKED[1].load(Ordering::SeqCst),
    ];
    check(
        "two CPUs: CPU 0 registers, enables, disables, unregisters while CPU 1 calls",
        m == 0 && w == 0 && CHURN.bad() == 0 && CHURN_RET.bad() == 0 && CHURN.pre_on(1) > 0,
        format_args!(
            "{} probe operations in {n0} cycles; results checked on CPUs 0/1 {checked:?}, wrong {m} \
             (first: cpu*100+fn {}, iteration {}, got {:#x}, want {:#x}); CPU 0 windows wrong {w} \
             (first: cycle {}, got {}, want {}); churned kprobe hits on CPUs 0/1 {:?}, kretprobe \
             returns {:?}; bad handler runs {}",
            OPERATIONS.load(Ordering::SeqCst),
            first[0],
            first[1],
            first[2],
            first[3],
            wfirst[0],
            wfirst[1],
            wfirst[2],
            [CHURN.pre_on(0), CHURN.pre_on(1)],
            [CHURN_RET.post_on(0), CHURN_RET.post_on(1)],
            CHURN.bad() + CHURN_RET.bad()
        ),
    );
    let [stopped, slot_writes, syncs, graces, ipis, deferred, at_trap_exit] = run.stats;
    check(
        "two CPUs: text written with CPU 1 stopped, grace periods waited for CPU 1",
        stopped > 0 && graces > 0,
        format_args!(
            "{stopped} writes with CPU 1 stopped ({slot_writes} into slots), {syncs} extra serialising IPIs, {graces} grace \
             periods ({at_trap_exit} answered at the end of a trap), {ipis} IPIs in all, \
             {deferred} found CPU 1 in a slot or the trap text"
        ),
    );
    check(
        "two CPUs: afterwards every probed byte, slot and instance is back",
        run.differing == 0
            && ENGINE.slot_usage() == (0, 0)
            && ENGINE.free_instances() == INSTANCES
            && ENGINE.list::<4>().is_empty(),
        format_args!(
            "{} bytes compared with the copy taken before, {} differ; slots/pages in use {:?} \
             (want (0, 0)); free return instances {} (want {INSTANCES}); probes listed {}; \
             churned kprobe pre-handler runs {} in all, post {}",
            run.compared,
            run.differing,
            ENGINE.slot_usage(),
            ENGINE.free_instances(),
            ENGINE.list::<4>().len(),
            CHURN.pre_all(),
            CHURN.post_all()
        ),
    );
}

// ---------------------------------------------------------------------
// Jump-optimised probes on two CPUs.

/// Cycles of the optimised churn (a debug build: fewer, as [`CYCLES`]).
const OPT_CYCLES: usize = if cfg!(debug_assertions) { 200 } else { 1000 };

/// The churned optimised kprobe (at `xq_alu`'s entry), the post-handler
/// probe that joins it, and the kretprobe (on `xq_rsum`).
static OPT_K: Counts = Counts::new();
static OPT_POST: Counts = Counts::new();
static OPT_RET: Counts = Counts::new();

/// Windows of CPU 0 whose count was wrong in the optimised churn, and the
/// first one (cycle, step, got, want).
static OPT_WINDOW_ERRORS: AtomicUsize = AtomicUsize::new(0);
static OPT_FIRST_WINDOW_ERROR: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

fn opt_window_error(cycle: usize, step: u64, got: u64, want: u64) {
    if got != want && OPT_WINDOW_ERRORS.fetch_add(1, Ordering::SeqCst) == 0 {
        for (slot, v) in OPT_FIRST_WINDOW_ERROR
            .iter()
            .zip([cycle as u64, step, got, want])
        {
            slot.store(v, Ordering::SeqCst);
        }
    }
}

/// CPU 0 calls `xq_alu` [`WINDOW_CALLS`] times: its own hits on the
/// optimised kprobe must grow by exactly `want`.
fn opt_window(cycle: usize, step: u64, want: u64) {
    let before = OPT_K.pre_on(0);
    let traps = crate::entry::traps_on(0);
    for k in 0..WINDOW_CALLS {
        let x = (cycle as u64 + k) % 16;
        expect(30, cycle as u64, alu(x), (x + 5) * 3);
    }
    let hits = OPT_K.pre_on(0) - before;
    opt_window_error(cycle, step, hits, want);
    note_optimized_window(step, hits, crate::entry::traps_on(0) - traps);
}

/// CPU 0's hits in windows where both probes were optimised (steps 0, 1
/// and 7), and the breakpoint traps CPU 0 took in them (must be 0).
static OPT_WINDOW_HITS: AtomicU64 = AtomicU64::new(0);
static OPT_WINDOW_TRAPS: AtomicU64 = AtomicU64::new(0);

fn note_optimized_window(step: u64, hits: u64, traps: u64) {
    if matches!(step, 0 | 1 | 7) {
        OPT_WINDOW_HITS.fetch_add(hits, Ordering::SeqCst);
        OPT_WINDOW_TRAPS.fetch_add(traps, Ordering::SeqCst);
    }
}

/// CPU 0 calls `xq_rsum(DEPTH)` [`WINDOW_CALLS`] times: the kretprobe's
/// entries and returns on CPU 0 grow by exactly that many calls each when
/// `enabled`, else not at all.
fn opt_ret_window(cycle: usize, step: u64, enabled: bool) {
    let (e0, r0) = (OPT_RET.pre_on(0), OPT_RET.post_on(0));
    let traps = crate::entry::traps_on(0);
    for _ in 0..WINDOW_CALLS {
        expect(31, cycle as u64, rsum(DEPTH), DEPTH * (DEPTH + 1) / 2);
    }
    note_optimized_window(
        step,
        OPT_RET.pre_on(0) - e0,
        crate::entry::traps_on(0) - traps,
    );
    let want = if enabled {
        WINDOW_CALLS * (DEPTH + 1)
    } else {
        0
    };
    opt_window_error(cycle, step, OPT_RET.pre_on(0) - e0, want);
    opt_window_error(cycle, step + 1, OPT_RET.post_on(0) - r0, want);
}

fn optimized(id: probe_core::ProbeId) -> bool {
    ENGINE
        .info(id)
        .is_ok_and(|i| i.optimization == probe_core::Optimization::Optimized)
}

/// What the optimised churn counted.
#[derive(Default)]
struct OptCounts {
    /// Cycles whose kprobe and kretprobe were both optimised when
    /// registered.
    optimized_at_registration: u64,
    /// Cycles that saw the kprobe un-optimised (switched off, disabled or
    /// a post-handler joined) and optimised again afterwards.
    unoptimized_and_back: u64,
}

/// One cycle of the optimised churn on CPU 0.
fn opt_cycle(c: usize, n: &mut OptCounts) -> Result<(), ProbeError> {
    let alu_at = xq_alu as *const () as usize;
    op(ENGINE.set_optimization(true))?;
    let k = op(ENGINE.register_kprobe(&Kprobe::at(alu_at).pre(pre).data(&OPT_K)))?;
    let r = op(ENGINE.register_kretprobe(
        &Kretprobe::at(xq_rsum as *const () as usize)
            .entry(entry_keep_arg)
            .ret(ret_sum)
            .data_size(8)
            // CPU 0 recurses DEPTH + 1 deep, CPU 1 up to 5 (`churn_calls`).
            .maxactive(DEPTH as usize + 1 + 5)
            .data(&OPT_RET),
    ))?;
    if optimized(k) && optimized(r) {
        n.optimized_at_registration += 1;
    }
    opt_window(c, 0, WINDOW_CALLS);
    opt_ret_window(c, 1, true);
    if c % STEP_EVERY == 0 {
        keep_in_step(10_000);
    }
    let unoptimized = match c % 4 {
        0 => {
            op(ENGINE.set_optimization(false))?;
            let off = !optimized(k);
            opt_window(c, 3, WINDOW_CALLS);
            op(ENGINE.set_optimization(true))?;
            off
        }
        1 => {
            op(ENGINE.disable(k))?;
            let off = !optimized(k);
            opt_window(c, 3, 0);
            op(ENGINE.enable(k))?;
            off
        }
        2 => {
            let p = op(
                ENGINE.register_kprobe(&Kprobe::at(alu_at).pre(pre).post(post).data(&OPT_POST))
            )?;
            let off = !optimized(k);
            let before = (OPT_POST.pre_on(0), OPT_POST.post_on(0));
            opt_window(c, 3, WINDOW_CALLS);
            let after = (OPT_POST.pre_on(0), OPT_POST.post_on(0));
            opt_window_error(c, 4, after.0 - before.0, WINDOW_CALLS);
            opt_window_error(c, 5, after.1 - before.1, WINDOW_CALLS);
            op(ENGINE.unregister(p))?;
            off
        }
        _ => {
            op(ENGINE.disable(r))?;
            let off = !optimized(r);
            opt_ret_window(c, 3, false);
            op(ENGINE.enable(r))?;
            opt_ret_window(c, 5, true);
            off
        }
    };
    if unoptimized && optimized(k) && optimized(r) {
        n.unoptimized_and_back += 1;
    }
    opt_window(c, 7, WINDOW_CALLS);
    if c % 2 == 0 {
        OPERATIONS.fetch_add(1, Ordering::Relaxed);
        ENGINE.unregister_batch(&[k, r])?;
    } else {
        op(ENGINE.unregister(r))?;
        op(ENGINE.unregister(k))?;
    }
    Ok(())
}

/// The two-CPU churn of jump-optimised probes: CPU 1 runs the same loop
/// as in [`run`] (every result checked, `xq_alu` and `xq_rsum` among the
/// calls), while CPU 0, [`OPT_CYCLES`] times, registers an optimised
/// kprobe on `xq_alu`'s entry and an optimised kretprobe on `xq_rsum`,
/// un-optimises them (the switch, disabling, a post-handler probe
/// joining, disabling the kretprobe), lets them be optimised again and
/// unregisters them. Every jump is written and removed with CPU 1 running
/// the code; the grace periods must not count CPU 1 inside a displaced
/// region or a detour.
pub fn run_optimized() {
    let name = "two CPUs, optimised: CPU 0 optimises, un-optimises, disables, unregisters while CPU 1 calls";
    if !smp::online(1) {
        check(name, false, format_args!("CPU 1 is not online"));
        return;
    }
    let before = snapshot();
    let mismatches0 = MISMATCHES.load(Ordering::SeqCst);
    let checked0 = [
        CALLS_CHECKED[0].load(Ordering::SeqCst),
        CALLS_CHECKED[1].load(Ordering::SeqCst),
    ];
    let ops0 = OPERATIONS.load(Ordering::SeqCst);
    let stats0 = stats();
    let opt_deferred0 = smp::deferred_in_optimized_code();
    let voluntary0 = smp::voluntary_answers();
    STOP.store(false, Ordering::SeqCst);
    CPU1_ITERATIONS.store(0, Ordering::SeqCst);
    let jobs = smp::jobs_done();
    let start = clock::now();
    smp::start_job(cpu1_job);
    SEEN_BY_CPU0.store(0, Ordering::Relaxed);
    keep_in_step(2_000_000);
    let mut n = OptCounts::default();
    let mut cycles = 0;
    let mut result = Ok(());
    for c in 0..OPT_CYCLES {
        if let Err(e) = opt_cycle(c, &mut n) {
            result = Err(e);
            break;
        }
        cycles += 1;
    }
    STOP.store(true, Ordering::Release);
    let cpu1_done = smp::wait_jobs_done(jobs + 1, 20_000);
    let ms = clock::us_since(start) / 1000;
    let _ = ENGINE.set_optimization(false);
    let n1 = CPU1_ITERATIONS.load(Ordering::SeqCst);
    let m = MISMATCHES.load(Ordering::SeqCst) - mismatches0;
    let first: [u64; 4] = core::array::from_fn(|i| FIRST_MISMATCH[i].load(Ordering::SeqCst));
    let w = OPT_WINDOW_ERRORS.load(Ordering::SeqCst);
    let wf: [u64; 4] = core::array::from_fn(|i| OPT_FIRST_WINDOW_ERROR[i].load(Ordering::SeqCst));
    let checked = [
        CALLS_CHECKED[0].load(Ordering::SeqCst) - checked0[0],
        CALLS_CHECKED[1].load(Ordering::SeqCst) - checked0[1],
    ];
    let bad = OPT_K.bad() + OPT_POST.bad() + OPT_RET.bad();
    let (win_hits, win_traps) = (
        OPT_WINDOW_HITS.load(Ordering::SeqCst),
        OPT_WINDOW_TRAPS.load(Ordering::SeqCst),
    );
    let err = result.err();
    check(
        name,
        err.is_none()
            && cpu1_done
            && cycles == OPT_CYCLES
            && n1 > 0
            && m == 0
            && w == 0
            && bad == 0
            && OPT_K.pre_on(1) > 0
            && n.optimized_at_registration == OPT_CYCLES as u64
            && n.unoptimized_and_back == OPT_CYCLES as u64
            && win_hits > 0
            && win_traps == 0,
        format_args!(
            "{cycles} cycles ({} probe operations) in {ms} ms, {n1} iterations on CPU 1 (stopped: \
             {cpu1_done}); optimised when registered in {} cycles, un-optimised and optimised \
             again in {}; results checked on CPUs 0/1 {checked:?}, wrong {m} (first: cpu*100+fn \
             {}, iteration {}, got {:#x}, want {:#x}); CPU 0 windows wrong {w} (first: cycle {}, \
             step {}, got {}, want {}); kprobe hits on CPUs 0/1 {:?}, kretprobe returns {:?}; \
             bad handler runs {bad}; CPU 0's hits in optimised windows {win_hits}, traps \
             there {win_traps} (want 0); error: {:?}",
            OPERATIONS.load(Ordering::SeqCst) - ops0,
            n.optimized_at_registration,
            n.unoptimized_and_back,
            first[0],
            first[1],
            first[2],
            first[3],
            wf[0],
            wf[1],
            wf[2],
            wf[3],
            [OPT_K.pre_on(0), OPT_K.pre_on(1)],
            [OPT_RET.post_on(0), OPT_RET.post_on(1)],
            err
        ),
    );
    let now = stats();
    let d: [u64; 7] = core::array::from_fn(|i| now[i] - stats0[i]);
    let opt_deferred = smp::deferred_in_optimized_code() - opt_deferred0;
    let voluntary = smp::voluntary_answers() - voluntary0;
    let after = snapshot();
    let differing = (0..before.1).filter(|&i| before.0[i] != after.0[i]).count();
    let (held, allocs, frees) = crate::services::detour_page_counts();
    check(
        "two CPUs, optimised: afterwards every probed byte is back, no detour, no page held",
        differing == 0
            && ENGINE.detours_in_use() == 0
            && held == 0
            && allocs == frees
            && ENGINE.slot_usage() == (0, 0)
            && ENGINE.free_instances() == INSTANCES
            && ENGINE.list::<4>().is_empty(),
        format_args!(
            "{} bytes compared, {differing} differ; detours in use {}, detour pages held {held} \
             (handed out {allocs}, given back {frees} since boot); slots {:?}; free instances {} \
             (want {INSTANCES}); probes listed {}; during the churn: {} writes with CPU 1 \
             stopped, {} grace periods ({voluntary} answered at CPU 1's quiescent point between \
             iterations), {} IPIs found CPU 1 in a slot or the trap text or optimised code \
             ({opt_deferred} of them in a displaced region or a detour)",
            before.1,
            ENGINE.detours_in_use(),
            ENGINE.slot_usage(),
            ENGINE.free_instances(),
            ENGINE.list::<4>().len(),
            d[0],
            d[3],
            d[5]
        ),
    );
}
