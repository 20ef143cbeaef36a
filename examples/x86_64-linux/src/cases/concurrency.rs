//! Threads hitting the same probes at once, with exact hit counts, while
//! another thread keeps registering and unregistering probes (kprobes and
//! a kretprobe) on a function the hitting threads also run (each
//! unregister waits for a grace period that interrupts them).

use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use probe_core::Kretprobe;
use x86_64_linux::recorder::{entry_record, ret_record, Recorder};
use x86_64_linux::report::Report;
use x86_64_linux::testfns;
use x86_64_linux::{ensure, ensure_eq};

use super::{call_fn, kprobe, peek, CheckResult, Probes};
use crate::{threads, ENGINE};

const WORKERS: u64 = 3;
/// Calls each worker makes at least.
const CALLS: u64 = 3000;
/// Register/unregister cycles the registrar makes while the workers run.
const CYCLES: u64 = 40;

fn hot(a: u64) -> u64 {
    a * 3 + 1
}

fn cold(a: u64) -> u64 {
    (a ^ 0x5a5a) + 9
}

/// Register and unregister probes on `tf_cold` [`CYCLES`] times, then set
/// `done`; returns the hits the cold probes saw, or what went wrong.
fn registrar(done: &AtomicBool) -> Result<u64, String> {
    let r = cycle_probes();
    done.store(true, Ordering::Release);
    r
}

fn cycle_probes() -> Result<u64, String> {
    let _me = threads::register_current();
    let points = ["cold_a", "cold_b", "cold_c", "cold_d"];
    let addrs: Vec<usize> = points.iter().map(|p| testfns::point(p).addr()).collect();
    let orig: Vec<Vec<u8>> = addrs
        .iter()
        .map(|&a| peek(a, 1))
        .collect::<Result<_, _>>()?;
    let mut hits = 0u64;
    for cycles in 0..CYCLES {
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
    }
    Ok(hits)
}

fn concurrent() -> CheckResult {
    let recs = [Recorder::leak(), Recorder::leak(), Recorder::leak()];
    let mut probes = Probes::new();
    for (name, (rec, post)) in ["hot_a", "hot_b", "hot_c"]
        .iter()
        .zip(recs.iter().zip([false, true, true]))
    {
        probes.add(
            name,
            ENGINE.register_kprobe(&kprobe(testfns::point(name).addr(), rec, post)),
        )?;
    }
    let done = Arc::new(AtomicBool::new(false));
    let reg = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || registrar(&done))
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let _me = threads::register_current();
                let (mut wrong, mut calls) = (0u64, 0u64);
                while calls < CALLS || !done.load(Ordering::Acquire) {
                    let a = calls * WORKERS + w;
                    if call_fn("tf_hot", a, 0, 0).ret != hot(a) {
                        wrong += 1;
                    }
                    if call_fn("tf_cold", a, 0, 0).ret != cold(a) {
                        wrong += 1;
                    }
                    calls += 1;
                }
                (wrong, calls)
            })
        })
        .collect();
    let (mut wrong, mut n) = (0, 0);
    for w in workers {
        let (bad, calls) = w.join().map_err(|_| "a worker panicked".to_string())?;
        wrong += bad;
        n += calls;
    }
    let cold_hits = reg
        .join()
        .map_err(|_| "the registrar panicked".to_string())??;
    ensure_eq!(wrong, 0, "wrong results");
    ensure_eq!(
        recs.iter()
            .map(|r| (r.hits(), r.post_hits()))
            .collect::<Vec<_>>(),
        vec![(n, 0), (n, n), (n, n)],
        "hot probe hits (pre, post)"
    );
    ensure!(cold_hits > 0, "no cold probe ever fired");
    probes.clear()?;
    Ok(format!(
        "{WORKERS} threads, {n} calls in all, hot probes {n} hits each; {CYCLES} register/unregister cycles on tf_cold meanwhile ({cold_hits} hits)"
    ))
}

pub(super) fn run(r: &mut Report) {
    r.check(
        "concurrency: 3 threads on the same probes, exact counts, while a 4th registers and unregisters",
        concurrent,
    );
}
