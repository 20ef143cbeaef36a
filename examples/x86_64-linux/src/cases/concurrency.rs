//! Threads hitting the same probes at once, with exact hit counts, while
//! another thread keeps registering and unregistering probes (kprobes and
//! a kretprobe) on a function the hitting threads also run (each
//! unregister waits for a grace period that interrupts them).
//!
//! Four worker threads (four CPUs to the engine) take at least
//! [`TARGET_HITS`] hits on the fixed probes together (ten times as many
//! with `--soak`): two aggregated boosted probes, a stepped one with a
//! post-handler and a simulated one, on every call.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use probe_core::Kretprobe;
use x86_64_linux::recorder::{entry_record, ret_record, Recorder};
use x86_64_linux::report::Report;
use x86_64_linux::testfns;
use x86_64_linux::{ensure, ensure_eq};

use super::{call_fn, kprobe, peek, CheckResult, Probes};
use crate::{threads, ENGINE};

const WORKERS: u64 = 4;
/// Hits on the fixed probes the workers take together at least.
pub const TARGET_HITS: u64 = 1_000_000;
/// Fixed probes each call of `tf_hot` hits.
const HITS_PER_CALL: u64 = 4;
/// Register/unregister cycles the registrar makes at least.
const CYCLES: u64 = 40;
/// `--soak`: ten times the hits.
pub static SOAK: AtomicBool = AtomicBool::new(false);

fn hot(a: u64) -> u64 {
    a * 3 + 1
}

fn cold(a: u64) -> u64 {
    (a ^ 0x5a5a) + 9
}

/// Register and unregister probes on `tf_cold` [`CYCLES`] times, then set
/// `done`; returns the hits the cold probes saw, or what went wrong.
fn registrar(done: &AtomicBool, workers_done: &AtomicBool) -> Result<(u64, u64), String> {
    let r = cycle_probes(workers_done);
    done.store(true, Ordering::Release);
    r
}

fn cycle_probes(workers_done: &AtomicBool) -> Result<(u64, u64), String> {
    let _me = threads::register_current();
    let points = ["cold_a", "cold_b", "cold_c", "cold_d"];
    let addrs: Vec<usize> = points.iter().map(|p| testfns::point(p).addr()).collect();
    let orig: Vec<Vec<u8>> = addrs
        .iter()
        .map(|&a| peek(a, 1))
        .collect::<Result<_, _>>()?;
    let mut hits = 0u64;
    let mut cycles = 0u64;
    while cycles < CYCLES || !workers_done.load(Ordering::Acquire) {
        let mut probes = Probes::new();
        let mut recs = Vec::new();
        // A different subset each cycle, half with post-handlers.
        for (i, &a) in addrs.iter().enumerate() {
            if (cycles >> i) & 1 == 0 && i != (cycles % 4) as usize {
                continue;
            }
            let rec = Recorder::leak();
            probes.add(
                points[i],
                ENGINE.register_kprobe(&kprobe(a, rec, (cycles + i as u64) % 2 == 0)),
            )?;
            recs.push(rec);
        }
        // Every third cycle a return probe on tf_cold as well.
        if cycles % 3 == 0 {
            let rec = Recorder::leak();
            probes.add(
                "kretprobe tf_cold",
                ENGINE.register_kretprobe(
                    &Kretprobe::at(testfns::func("tf_cold").start)
                        .entry(entry_record)
                        .ret(ret_record)
                        .data(rec),
                ),
            )?;
            recs.push(rec);
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
        if cycles % 2 == 0 {
            probes.clear()?;
        } else {
            drop(probes); // one by one through the guard's batch
        }
        hits += recs.iter().map(|r| r.hits()).sum::<u64>();
        for (&a, o) in addrs.iter().zip(&orig) {
            ensure_eq!(peek(a, 1)?, *o, "tf_cold byte at {a:#x} after unregister");
        }
        cycles += 1;
    }
    Ok((hits, cycles))
}

fn concurrent() -> CheckResult {
    let target = if SOAK.load(Ordering::Relaxed) {
        10 * TARGET_HITS
    } else {
        TARGET_HITS
    };
    let calls_wanted = target.div_ceil(HITS_PER_CALL);
    let hot_fn = testfns::func("tf_hot");
    let hot_orig = peek(hot_fn.start, hot_fn.size)?;
    let leaked = ENGINE.leaked_steps();
    // hot_a twice (aggregated, boosted), hot_b with a post-handler
    // (stepped), hot_c (a simulated jmp).
    let recs = [
        Recorder::leak(),
        Recorder::leak(),
        Recorder::leak(),
        Recorder::leak(),
    ];
    let mut probes = Probes::new();
    for (name, (rec, post)) in ["hot_a", "hot_a", "hot_b", "hot_c"]
        .iter()
        .zip(recs.iter().zip([false, false, true, false]))
    {
        probes.add(
            name,
            ENGINE.register_kprobe(&kprobe(testfns::point(name).addr(), rec, post)),
        )?;
    }
    let done = Arc::new(AtomicBool::new(false));
    let workers_done = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let reg = {
        let (done, workers_done) = (Arc::clone(&done), Arc::clone(&workers_done));
        std::thread::spawn(move || registrar(&done, &workers_done))
    };
    // A second registration-context thread that keeps taking the
    // registration lock (a spin lock) while the registrar holds it through
    // grace periods: the grace period interrupts every thread (SIGUSR1, the
    // harness's IPI), including this one while it spins, so it must not
    // deadlock (the rule in KernelServices' docs: L's waiters keep taking
    // interrupts).
    let contender = {
        let done = Arc::clone(&done);
        let id = probes.0[0];
        std::thread::spawn(move || {
            let _me = threads::register_current();
            let mut calls = 0u64;
            while !done.load(Ordering::Acquire) {
                ENGINE.enable(id).map_err(|e| e.to_string())?;
                calls += 1;
            }
            Ok::<u64, String>(calls)
        })
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let total = Arc::clone(&total);
            std::thread::spawn(move || {
                let _me = threads::register_current();
                let (mut wrong, mut calls) = (0u64, 0u64);
                while total.load(Ordering::Relaxed) < calls_wanted {
                    let a = calls * WORKERS + w;
                    if call_fn("tf_hot", a, 0, 0).ret != hot(a) {
                        wrong += 1;
                    }
                    if calls % 16 == 0 && call_fn("tf_cold", a, 0, 0).ret != cold(a) {
                        wrong += 1;
                    }
                    calls += 1;
                    total.fetch_add(1, Ordering::Relaxed);
                }
                (wrong, calls)
            })
        })
        .collect();
    let (mut wrong, mut n) = (0, 0);
    let mut failure = None;
    for w in workers {
        match w.join() {
            Ok((bad, calls)) => {
                wrong += bad;
                n += calls;
            }
            Err(_) => failure = Some("a worker panicked".to_string()),
        }
    }
    workers_done.store(true, Ordering::Release);
    let (cold_hits, cycles) = reg
        .join()
        .map_err(|_| "the registrar panicked".to_string())??;
    let contended = contender
        .join()
        .map_err(|_| "the lock contender panicked".to_string())??;
    if let Some(f) = failure {
        return Err(f);
    }
    let hits: u64 = recs.iter().map(|r| r.hits()).sum();
    ensure_eq!(wrong, 0, "wrong results");
    ensure_eq!(
        recs.iter()
            .map(|r| (r.hits(), r.post_hits()))
            .collect::<Vec<_>>(),
        vec![(n, 0), (n, 0), (n, n), (n, 0)],
        "fixed probe hits (pre, post)"
    );
    for id in &probes.0 {
        let info = ENGINE.info(*id).map_err(|e| e.to_string())?;
        ensure_eq!(
            info.missed,
            0,
            "missed hits of the probe at {:#x}",
            info.addr
        );
    }
    ensure!(hits >= target, "{hits} hits, fewer than {target}");
    ensure!(cold_hits > 0, "no cold probe ever fired");
    ensure!(contended > 0, "the lock contender never got the lock");
    ensure_eq!(ENGINE.leaked_steps(), leaked, "leaked steps");
    probes.clear()?;
    ensure!(
        peek(hot_fn.start, hot_fn.size)? == hot_orig,
        "tf_hot not restored byte for byte"
    );
    ensure_eq!(ENGINE.slot_usage(), (0, 0), "slots and slot pages in use");
    println!("concurrency: {hits} hits, 0 errors");
    Ok(format!(
        "{WORKERS} threads, {n} calls, {hits} hits on the fixed probes (exact, 0 missed, every result right); {cycles} register/unregister cycles on tf_cold meanwhile ({cold_hits} hits), {contended} registration calls of a thread spinning on the lock through their grace periods; every byte restored, every slot freed"
    ))
}

pub(super) fn run(r: &mut Report) {
    r.check(
        "concurrency: 4 threads take >= 10^6 hits on the same probes, exact counts, while a 5th registers and unregisters",
        concurrent,
    );
}
