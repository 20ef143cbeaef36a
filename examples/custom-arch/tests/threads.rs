//! Real threads play the CPUs of the Toy machine (each thread its own
//! current CPU and task, `World::per_thread_cpu`), hitting probes while the
//! main thread registers and unregisters others. Part of the Miri subset
//! (`cargo xtask test miri`): Miri checks the engine's lock-free paths for
//! data races and aliasing violations under real concurrency.
//!
//! The world's grace period (`synchronize`) waits here until every CPU
//! thread went through a quiescent point (a completed step with its pc
//! outside the slot area), as a kernel's would. The workers do not run the
//! functions whose probes come and go: the world checks that no CPU
//! executes bytes written with no icache sync since, and a real thread can
//! fetch between the engine's text write and its sync; the toggled probes
//! still share the table, records, slot pages and grace periods with the
//! fixed probes the workers hit.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use probe_core::{Kprobe, Kretprobe, Space};

/// CPU threads, calls per thread, register/unregister rounds.
#[cfg(miri)]
const SIZES: (usize, usize, usize) = (2, 2, 2);
#[cfg(not(miri))]
const SIZES: (usize, usize, usize) = (3, 3000, 1000);

#[test]
fn real_threads_hit_probes_while_main_registers_and_unregisters() {
    let (threads, calls, rounds) = SIZES;
    let fx: Fx<8> = Fx::new();
    let (w, e) = (fx.w, fx.e);
    // The main thread is a CPU of its own too (the engine refuses
    // registration from a CPU that is in a trap): the last CPU, a task no
    // worker runs.
    assert!(threads < 4);
    w.per_thread_cpu(3, 7);
    let q = Quiescence::install(w, threads);

    // Fixed probes: a kprobe with both handlers in ARITH (called by
    // CALLER) and a return probe on CALLER.
    let kp = seen();
    e.register_kprobe(
        &Kprobe::at(ARITH + ARITH_INSNS[2])
            .pre(pre_count)
            .post(post_count)
            .data(kp),
    )
    .unwrap();
    let rp = seen();
    e.register_kretprobe(&Kretprobe::at(CALLER).ret(ret_record).data(rp))
        .unwrap();

    let workers: Vec<_> = (0..threads)
        .map(|k| {
            let q = q.clone();
            // CPU k runs task k; its call stub and stack are its own.
            let start = fx.cpu_calling(k, k, Space::Kernel, CALLER, &[]);
            std::thread::spawn(move || {
                w.per_thread_cpu(k, k);
                q.run_calls(k, (w, e), &start, calls, 14);
                w.shared_cpu();
            })
        })
        .collect();

    // Probes come and go on functions the workers do not run, sharing the
    // table, the records and the slot pages with the fixed ones.
    let toggled = seen();
    for round in 0..rounds {
        let at = if round % 2 == 0 { BRANCHY } else { JUMPY };
        let id = e
            .register_kprobe(&Kprobe::at(at).pre(pre_count).data(toggled))
            .unwrap();
        let rid = e
            .register_kretprobe(&Kretprobe::at(RECUR).ret(ret_record).data(toggled))
            .unwrap();
        e.unregister(id).unwrap();
        e.unregister(rid).unwrap();
    }

    for t in workers {
        t.join().unwrap();
    }
    w.clear_sync_hook();
    w.shared_cpu();
    let total = threads * calls;
    assert_eq!(kp.pre.load(Ordering::SeqCst), total);
    assert_eq!(kp.post.load(Ordering::SeqCst), total);
    assert_eq!(rp.ret.load(Ordering::SeqCst), total);
    assert!(rp.values.lock().unwrap().iter().all(|v| *v == 14));
    assert_eq!(toggled.pre.load(Ordering::SeqCst), 0);
    for k in 0..threads {
        assert_eq!(e.pending_returns(&w.tasks[k]), 0);
    }
    assert_eq!(e.free_instances(), 16);
    assert_eq!(e.list::<8>().len(), 2, "only the fixed probes are left");
}
