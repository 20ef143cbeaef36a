//! The two-hart run (`-smp 2`): hart 1 leaves its M-mode park loop and
//! comes online in S-mode; then both harts call the same functions in a
//! loop while fixed probes sit on them (a stepped kprobe on a 32-bit
//! instruction at 2 mod 4, a simulated kprobe, a kretprobe), whose
//! per-hart counts must come out exact. Meanwhile hart 0 keeps registering
//! and unregistering other probes on a function both harts call: those give
//! no exact count, but every call on either hart must return the right
//! value, nothing may crash, and at the end every byte must be back.
//!
//! Patching while hart 1 runs goes through the services' protocols: a
//! 4-byte `ebreak` at 2 mod 4 is written with hart 1 stopped, every write
//! is followed by `fence.i` on both harts, and unregistering waits for hart
//! 1 to pass a quiescent point (the top of its loop).

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use probe_core::{Kprobe, Kretprobe, ProbeId};

use super::regfile::call2;
use super::report::{check, ensure, ensure_eq, note, Outcome};
use super::seen::{entry_save_arg, post_count, pre_count, ret_record, Returns, Seen};
use super::{boundaries, snapshot};
use crate::kernel::services::{ENGINE, INSTANCES, STATS};
use crate::kernel::symbols::{self, kernel_fn, TestFn};
use crate::kernel::trap::hart_id;
use crate::kernel::{clock, smp};

// ((a0 + 1) + a1) * 2, the add a 32-bit instruction at 2 mod 4.
kernel_fn!(
    "t_smp_step",
    "rvc",
    [
        "c.addi a0, 1",
        ".option push",
        ".option norvc",
        "add a0, a0, a1",
        ".option pop",
        "c.slli a0, 1",
        "c.jr ra",
    ]
);

kernel_fn!(
    "t_smp_sim",
    "norvc",
    [
        "bltu a0, a1, 1f",
        "li a0, 2",
        "ret",
        "1:",
        "li a0, 1",
        "ret"
    ]
);

// What hart 0 probes and unprobes while both harts call it: 16- and 32-bit
// instructions at both alignments, a branch, a jump.
kernel_fn!(
    "t_churn",
    "rvc",
    [
        "c.mv a2, a0",
        ".option push",
        ".option norvc",
        "addi a2, a2, 3",
        ".option pop",
        "c.addi a2, 5",
        ".option push",
        ".option norvc",
        "xor a3, a2, a1",
        "mul a3, a3, a1",
        ".option pop",
        "c.add a2, a3",
        ".option push",
        ".option norvc",
        "bltu a2, a1, 1f",
        "sub a2, a2, a1",
        ".option pop",
        "1:",
        "c.j 2f",
        "c.li a2, 0",
        "2:",
        "c.mv a0, a2",
        "c.jr ra",
    ]
);

/// Loop iterations on each hart.
const ITERATIONS: usize = 2000;
/// Inputs cycle through this many values.
const INPUTS: usize = 16;
/// Depth of the kretprobed recursion (calls per iteration: DEPTH + 1).
const DEPTH: usize = 3;
/// The churn function's second argument.
const CHURN_B: usize = 0x1357;
/// Hart 0 registers churn probes every `CHURN_PERIOD` iterations and
/// unregisters them half a period later. Each change costs a few
/// handshakes with hart 1 (stop, fence.i, grace period), and each
/// handshake a host scheduling slice when the host is busy: a few dozen
/// cycles keep the run short there too.
const CHURN_PERIOD: usize = 32;

static STEP: Seen = Seen::new();
static SIM: Seen = Seen::new();
static RET: Returns = Returns::new();
static CHURN: Seen = Seen::new();
static CHURN_RET: Returns = Returns::new();

/// The churn function's unprobed results, per input.
static CHURN_WANT: [AtomicUsize; INPUTS] = [const { AtomicUsize::new(0) }; INPUTS];
/// Wrong results seen, and the first one.
static MISMATCHES: AtomicUsize = AtomicUsize::new(0);
static FIRST_MISMATCH: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];
/// Iterations hart 1 completed.
static HART1_ITERATIONS: AtomicUsize = AtomicUsize::new(0);
/// Hart 1 may start its loop.
static GO: AtomicBool = AtomicBool::new(false);

fn expect(what: usize, i: usize, got: usize, want: usize) {
    if got != want && MISMATCHES.fetch_add(1, Ordering::SeqCst) == 0 {
        for (slot, v) in FIRST_MISMATCH
            .iter()
            .zip([hart_id() * 16 + what, i, got, want])
        {
            slot.store(v, Ordering::SeqCst);
        }
    }
}

/// One iteration of the workload both harts run.
fn iteration(f: &Fns, i: usize) {
    let x = i % INPUTS;
    expect(0, i, call2(f.step.start, x, 3), (x + 1 + 3) * 2);
    expect(
        1,
        i,
        call2(f.sim.start, i % 2, 1),
        if i % 2 == 0 { 1 } else { 2 },
    );
    expect(
        2,
        i,
        call2(f.recur.start, DEPTH, 0),
        DEPTH * (DEPTH + 1) / 2,
    );
    expect(
        3,
        i,
        call2(f.churn.start, x, CHURN_B),
        CHURN_WANT[x].load(Ordering::Relaxed),
    );
}

struct Fns {
    step: TestFn,
    sim: TestFn,
    recur: TestFn,
    churn: TestFn,
}

fn fns() -> Fns {
    Fns {
        step: symbols::get("t_smp_step"),
        sim: symbols::get("t_smp_sim"),
        recur: symbols::get("t_recur"),
        churn: symbols::get("t_churn"),
    }
}

/// Hart 1's job: the workload, with a quiescent point per iteration.
fn hart1_job() {
    let f = fns();
    while !GO.load(Ordering::Acquire) {
        smp::quiescent_point();
    }
    for i in 0..ITERATIONS {
        smp::quiescent_point();
        iteration(&f, i);
        HART1_ITERATIONS.store(i + 1, Ordering::Release);
    }
}

/// The probes hart 0 keeps changing.
struct Churn {
    offsets: heapless::Vec<usize, 32>,
    live: heapless::Vec<ProbeId, 4>,
    registrations: usize,
}

impl Churn {
    fn step(&mut self, f: &TestFn, i: usize) -> Result<(), probe_core::ProbeError> {
        if i % CHURN_PERIOD == 0 {
            let cycle = i / CHURN_PERIOD;
            let off = self.offsets[cycle % self.offsets.len()];
            let _ = self.live.push(
                ENGINE.register_kprobe(
                    &Kprobe::at(f.start + off)
                        .pre(pre_count)
                        .post(post_count)
                        .data(&CHURN),
                )?,
            );
            // A second point, at another alignment, every other cycle.
            if cycle % 2 == 0 {
                let off2 = self.offsets[(cycle / 2 + 3) % self.offsets.len()];
                if off2 != off {
                    let _ = self.live.push(ENGINE.register_kprobe(
                        &Kprobe::at(f.start + off2).pre(pre_count).data(&CHURN),
                    )?);
                }
            }
            if cycle % 3 == 0 {
                let _ = self.live.push(ENGINE.register_kretprobe(
                    &Kretprobe::at(f.start).ret(ret_record).data(&CHURN_RET),
                )?);
            }
            self.registrations += self.live.len();
        } else if i % CHURN_PERIOD == CHURN_PERIOD / 2 {
            ENGINE.unregister_batch(&self.live)?;
            self.live.clear();
        }
        Ok(())
    }
}

/// Results of the run, for the checks.
struct Run {
    ms: u64,
    churn_registrations: usize,
    hart1_done: bool,
    fixed: [probe_core::ProbeInfo; 3],
    stats: [usize; 3],
    restored: bool,
}

fn run_both(f: &Fns) -> Result<Run, super::report::Fail> {
    let before = [
        snapshot(&f.step),
        snapshot(&f.sim),
        snapshot(&f.recur),
        snapshot(&f.churn),
    ];
    for (x, want) in CHURN_WANT.iter().enumerate() {
        want.store(call2(f.churn.start, x, CHURN_B), Ordering::Relaxed);
    }
    for s in [&STEP, &SIM, &CHURN] {
        s.reset();
    }
    RET.reset();
    CHURN_RET.reset();
    let stats0 = [
        STATS.stopped_writes.load(Ordering::Relaxed),
        STATS.remote_syncs.load(Ordering::Relaxed),
        STATS.remote_grace_periods.load(Ordering::Relaxed),
    ];
    // Hart 1 is online and idling at its quiescent points while these go in.
    let k1 = ENGINE.register_kprobe(
        &Kprobe::at(f.step.start + 2)
            .pre(pre_count)
            .post(post_count)
            .data(&STEP),
    )?;
    let k2 = ENGINE.register_kprobe(
        &Kprobe::at(f.sim.start)
            .pre(pre_count)
            .post(post_count)
            .data(&SIM),
    )?;
    let r1 = ENGINE.register_kretprobe(
        &Kretprobe::at(f.recur.start)
            .entry(entry_save_arg)
            .ret(ret_record)
            .data_size(8)
            .data(&RET),
    )?;
    let mut churn = Churn {
        offsets: boundaries(&f.churn).into_iter().collect(),
        live: heapless::Vec::new(),
        registrations: 0,
    };
    let jobs = smp::jobs_done();
    smp::start_job(hart1_job);
    let start = clock::now();
    GO.store(true, Ordering::Release);
    for i in 0..ITERATIONS {
        iteration(f, i);
        churn.step(&f.churn, i)?;
    }
    let hart1_done = smp::wait_jobs_done(jobs + 1, 20_000);
    let ms = clock::ms_since(start);
    ENGINE.unregister_batch(&churn.live)?;
    let fixed = [ENGINE.info(k1)?, ENGINE.info(k2)?, ENGINE.info(r1)?];
    ENGINE.unregister_batch(&[k1, k2, r1])?;
    let after = [
        snapshot(&f.step),
        snapshot(&f.sim),
        snapshot(&f.recur),
        snapshot(&f.churn),
    ];
    Ok(Run {
        ms,
        churn_registrations: churn.registrations,
        hart1_done,
        fixed,
        stats: [
            STATS.stopped_writes.load(Ordering::Relaxed) - stats0[0],
            STATS.remote_syncs.load(Ordering::Relaxed) - stats0[1],
            STATS.remote_grace_periods.load(Ordering::Relaxed) - stats0[2],
        ],
        restored: before == after,
    })
}

fn exact(label: &str, s: &Seen, info: &probe_core::ProbeInfo, post: bool) -> Outcome {
    let n = ITERATIONS;
    ensure_eq!(
        (s.on_hart(0), s.on_hart(1)),
        (n, n),
        "{label}: pre-handler runs on harts 0 and 1"
    );
    if post {
        ensure_eq!(s.post(), 2 * n, "{label}: post-handler runs");
    }
    ensure_eq!(
        (info.hits, info.missed),
        (2 * n as u64, 0),
        "{label}: hits and missed"
    );
    ensure_eq!(
        s.bad(),
        0,
        "{label}: handler runs with a wrong pc, mode or hart"
    );
    note!("{n} hits on each hart, {} in all, none missed", 2 * n)
}

/// Run the checks.
pub fn run() {
    let mut online = false;
    check(
        "hart 1 leaves its park loop and comes online in S-mode",
        || {
            online = smp::start_secondary(2_000);
            ensure!(
                online,
                "hart 1 is not online after 2 s (is QEMU running with -smp 2?)"
            );
            ensure_eq!(smp::others_online(), 1, "other harts online");
            note!("released from M-mode, its own stvec and stack, polling its mailbox")
        },
    );
    if !online {
        return;
    }
    let f = fns();
    let run = match run_both(&f) {
        Ok(run) => run,
        Err(e) => {
            check("two-hart run", || Err(e));
            return;
        }
    };
    check("both harts ran the whole workload", || {
        ensure!(
            run.hart1_done,
            "hart 1 did not finish ({} iterations)",
            HART1_ITERATIONS.load(Ordering::SeqCst)
        );
        note!(
            "{ITERATIONS} iterations on each hart in {} ms (longest wait for hart 1: {} us)",
            run.ms,
            smp::longest_wait_us()
        )
    });
    check(
        "two harts hit a stepped kprobe (32-bit at 2 mod 4): exact counts",
        || exact("t_smp_step+2", &STEP, &run.fixed[0], true),
    );
    check(
        "two harts hit a simulated kprobe (bltu): exact counts",
        || exact("t_smp_sim", &SIM, &run.fixed[1], true),
    );
    check(
        "two harts hit a kretprobe on a recursive function: exact counts",
        || {
            let calls = ITERATIONS * (DEPTH + 1);
            let per_hart = (
                RET.per_hart[0].load(Ordering::SeqCst),
                RET.per_hart[1].load(Ordering::SeqCst),
            );
            ensure_eq!(
                per_hart,
                (calls, calls),
                "entry-handler runs on harts 0 and 1"
            );
            ensure_eq!(RET.returns(), 2 * calls, "return-handler runs");
            ensure_eq!(
                (run.fixed[2].hits, run.fixed[2].missed),
                (2 * calls as u64, 0),
                "hits and missed"
            );
            ensure_eq!(
                RET.bad.load(Ordering::SeqCst),
                0,
                "handler runs on the wrong hart"
            );
            note!("{calls} tracked calls on each hart, every return through the trampoline")
        },
    );
    check(
        "hart 0 registers and unregisters while both harts run",
        || {
            let m = MISMATCHES.load(Ordering::SeqCst);
            let first: [usize; 4] =
                core::array::from_fn(|i| FIRST_MISMATCH[i].load(Ordering::SeqCst));
            ensure_eq!(
                m,
                0,
                "wrong results (first: hart {}, function {}, iteration {}, got {:#x}, want {:#x})",
                first[0] / 16,
                first[0] % 16,
                first[1],
                first[2],
                first[3]
            );
            ensure!(CHURN.pre() > 0, "no churn probe was ever hit");
            note!(
            "{} registrations over {} cycles; {} churn kprobe hits ({} on hart 1), {} churn kretprobe returns; every result right",
            run.churn_registrations,
            ITERATIONS.div_ceil(CHURN_PERIOD),
            CHURN.pre(),
            CHURN.on_hart(1),
            CHURN_RET.returns()
        )
        },
    );
    check(
        "patching with hart 1 online: stop machine, remote fence.i, grace periods",
        || {
            let [stopped, syncs, graces] = run.stats;
            ensure!(stopped > 0, "no text written with hart 1 stopped");
            ensure!(syncs > 0, "no fence.i on hart 1");
            ensure!(graces > 0, "no grace period waited for hart 1");
            note!("{stopped} writes with hart 1 stopped, {syncs} remote fence.i, {graces} grace periods")
        },
    );
    check(
        "after the two-hart run every byte, slot and instance is back",
        || {
            ensure!(run.restored, "text differs from before the run");
            ensure_eq!(ENGINE.slot_usage(), (0, 0), "slots and pages held");
            ensure_eq!(ENGINE.free_instances(), INSTANCES, "free return instances");
            ensure_eq!(ENGINE.list::<4>().len(), 0, "probes listed");
            note!("t_smp_step, t_smp_sim, t_recur, t_churn as before")
        },
    );
}
