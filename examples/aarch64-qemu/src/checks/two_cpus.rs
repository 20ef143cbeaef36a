//! Both CPUs hit the same probes at once, with exact counts, while CPU 0
//! also registers and unregisters other probes on a function CPU 1 keeps
//! calling.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use probe_core::{EntryAction, Kprobe, Kretprobe, ProbeContext, Registers};

use super::handlers::{post_count, pre_count, Seen};
use super::Report;
use crate::kernel::ENGINE;
use crate::smp::{self, CPUS};
use crate::testfns::{addr, call, word_at};

/// Calls of `t_hot` CPU 0 makes (CPU 1 makes at least as many).
const ROUNDS: usize = 2000;
/// CPU 0 registers a probe on `t_churn` every this many rounds.
const CHURN_EVERY: usize = 16;

static STEPPED: Seen = Seen::new();
static SIMULATED: Seen = Seen::new();
static CHURN: Seen = Seen::new();
static RET_OK: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
static RET_BAD: AtomicU64 = AtomicU64::new(0);
static WRONG: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
/// CPU 0 finished its share: CPU 1 may stop once it did its own.
static CPU0_DONE: AtomicBool = AtomicBool::new(false);
/// CPU 1 started its share.
static CPU1_STARTED: AtomicBool = AtomicBool::new(false);
/// Rounds CPU 1 ran.
static CPU1_ROUNDS: AtomicU64 = AtomicU64::new(0);

fn hot(x: usize) -> usize {
    3 * x + 7
}

fn churn(x: usize) -> usize {
    (x ^ 0xff) + 1
}

fn entry_save(_: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) -> EntryAction {
    data[..8].copy_from_slice(&(regs.arg(0).unwrap_or(0) as u64).to_le_bytes());
    EntryAction::Track
}

fn ret_verify(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) {
    let x = u64::from_le_bytes(data[..8].try_into().unwrap_or([0; 8])) as usize;
    if regs.return_value() == hot(x) {
        RET_OK[ctx.cpu].fetch_add(1, Ordering::SeqCst);
    } else {
        RET_BAD.fetch_add(1, Ordering::SeqCst);
    }
}

/// CPU 1's share: call both functions, checking every result (requests
/// reach it as SGIs: it passes no quiescent point of its own); at least `ROUNDS` times, and on until
/// CPU 0 is done, so CPU 0's registrations always overlap CPU 1's calls.
fn cpu1_job() {
    let cpu = crate::sysreg::cpu_id();
    CPU1_STARTED.store(true, Ordering::Release);
    let mut i = 0;
    while i < ROUNDS || !CPU0_DONE.load(Ordering::Acquire) {
        i += 1;
        if call(addr::t_hot(), i, 0) != hot(i) {
            WRONG[cpu].fetch_add(1, Ordering::SeqCst);
        }
        if call(addr::t_churn(), i, 0) != churn(i) {
            WRONG[cpu].fetch_add(1, Ordering::SeqCst);
        }
    }
    CPU1_ROUNDS.store(i as u64, Ordering::Release);
}

pub fn run(r: &mut Report) {
    if !r.check(
        smp::is_online(1),
        format_args!("CPU 1 is online (the kernel runs with -smp 2)"),
    ) {
        return;
    }
    let (hot_fn, churn_fn) = (addr::t_hot(), addr::t_churn());
    let words = |f: usize| [0, 4, 8, 12].map(|o| word_at(f + o));
    let (hot_words, churn_words) = (words(hot_fn), words(churn_fn));
    for s in [&STEPPED, &SIMULATED, &CHURN] {
        s.reset();
    }

    // The fixed probes both CPUs hit: a stepped instruction (shared with a
    // kretprobe on the function entry) and a simulated branch.
    let fixed = [
        ENGINE.register_kprobe(
            &Kprobe::at(hot_fn)
                .pre(pre_count)
                .post(post_count)
                .data(&STEPPED),
        ),
        ENGINE.register_kprobe(
            &Kprobe::at(hot_fn + 8)
                .pre(pre_count)
                .post(post_count)
                .data(&SIMULATED),
        ),
        ENGINE.register_kretprobe(
            &Kretprobe::at(hot_fn)
                .entry(entry_save)
                .ret(ret_verify)
                .data_size(8),
        ),
    ];
    if !r.check(
        fixed.iter().all(Result::is_ok),
        format_args!("two CPUs: fixed probes registered on t_hot"),
    ) {
        return;
    }

    CPU0_DONE.store(false, Ordering::Release);
    CPU1_STARTED.store(false, Ordering::Release);
    smp::start_job(cpu1_job);
    while !CPU1_STARTED.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    let mut churned = 0u64;
    let mut churn_errors = 0u64;
    let mut own_churn_hits = 0u64;
    for i in 1..=ROUNDS {
        if call(hot_fn, i, 0) != hot(i) {
            WRONG[0].fetch_add(1, Ordering::SeqCst);
        }
        if i.is_multiple_of(CHURN_EVERY) {
            let at = churn_fn + (i / CHURN_EVERY % 4) * 4;
            let before = CHURN.per_cpu[0].load(Ordering::SeqCst);
            let id = if (i / CHURN_EVERY).is_multiple_of(5) {
                ENGINE.register_kretprobe(&Kretprobe::at(churn_fn))
            } else {
                ENGINE.register_kprobe(&Kprobe::at(at).pre(pre_count).data(&CHURN))
            };
            match id {
                Ok(id) => {
                    if call(churn_fn, i, 0) != churn(i) {
                        WRONG[0].fetch_add(1, Ordering::SeqCst);
                    }
                    own_churn_hits += CHURN.per_cpu[0].load(Ordering::SeqCst) - before;
                    if ENGINE.unregister(id).is_err() {
                        churn_errors += 1;
                    }
                    churned += 1;
                }
                Err(e) => {
                    crate::println!("         churn registration failed: {e}");
                    churn_errors += 1;
                }
            }
        }
    }
    CPU0_DONE.store(true, Ordering::Release);
    smp::wait_job();

    let per_cpu = |s: &Seen| [0, 1].map(|c| s.per_cpu[c].load(Ordering::SeqCst));
    let n = ROUNDS as u64;
    let n1 = CPU1_ROUNDS.load(Ordering::Acquire);
    r.check_eq(
        (per_cpu(&STEPPED), STEPPED.counts().1),
        ([n, n1], n + n1),
        format_args!(
            "two CPUs: stepped probe hit exactly once per call on each CPU ({n} and {n1} calls)"
        ),
    );
    r.check_eq(
        (per_cpu(&SIMULATED), SIMULATED.counts().1),
        ([n, n1], n + n1),
        format_args!("two CPUs: simulated probe hit exactly once per call on each CPU"),
    );
    let ret_info = fixed[2]
        .ok()
        .and_then(|id| ENGINE.info(id).ok())
        .map(|i| (i.hits, i.missed));
    r.check_eq(
        (
            [0, 1].map(|c| RET_OK[c].load(Ordering::SeqCst)),
            RET_BAD.load(Ordering::SeqCst),
            ret_info,
        ),
        ([n, n1], 0, Some((n + n1, 0))),
        format_args!("two CPUs: kretprobe saw every return with the right value on each CPU"),
    );
    r.check_eq(
        [0, 1].map(|c| WRONG[c].load(Ordering::SeqCst)),
        [0, 0],
        format_args!(
            "two CPUs: every result right on both CPUs ({} calls)",
            n + 2 * n1
        ),
    );
    let expected_churn = (ROUNDS / CHURN_EVERY) as u64;
    let kprobe_churns = (1..=ROUNDS)
        .filter(|i| i.is_multiple_of(CHURN_EVERY) && !(i / CHURN_EVERY).is_multiple_of(5))
        .count() as u64;
    r.check_eq(
        (churned, churn_errors, own_churn_hits),
        (expected_churn, 0, kprobe_churns),
        format_args!(
            "two CPUs: CPU 0 registered and unregistered {expected_churn} probes on t_churn while CPU 1 called it"
        ),
    );
    let unregistered = fixed.map(|id| id.map(|id| ENGINE.unregister(id)));
    r.check(
        unregistered.iter().all(|u| matches!(u, Ok(Ok(())))),
        format_args!("two CPUs: fixed probes unregistered"),
    );
    r.check_eq(
        (words(hot_fn), words(churn_fn), ENGINE.slot_usage()),
        (hot_words, churn_words, (0, 0)),
        format_args!("two CPUs: every byte of t_hot and t_churn restored, every slot freed"),
    );
    r.check(
        smp::answered() > 0 && smp::kicks() > 0,
        format_args!(
            "two CPUs: CPU 1 answered {} requests (icache syncs, grace periods, stop-machines) from {} GIC SGIs",
            smp::answered(),
            smp::kicks()
        ),
    );
}
