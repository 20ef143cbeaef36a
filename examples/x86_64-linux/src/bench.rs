//! `--bench`: real trap round trips, measured in interleaved batches so
//! that drift (frequency scaling, other load) hits every variant alike.
//!
//! Variants, each a batch of calls to a two-instruction function
//! (`lea rax, [rdi + 1]; ret`):
//! - `call`: unprobed (the cost of the call itself);
//! - `int3`: a bare `int3` before the `lea` with an empty SIGTRAP handler
//!   (the floor: what any trap costs in user space);
//! - `plain`: a probe with pre- and post-handlers on the `lea`: the `int3`,
//!   then the copy in its slot ending with `int3` (two traps per hit);
//! - `boosted`: the same probe without a post-handler: the slot jumps back
//!   (one trap per hit);
//! - `kretprobe`: a return probe on the function: one boosted entry trap,
//!   then the return through the code trampoline.
//!
//! Handlers are empty, so what is measured is the trap and the engine.

use std::time::Instant;

use probe_core::{Kprobe, Kretprobe, PreAction, ProbeContext, Registers};
use x86_64_linux::call::call;
use x86_64_linux::testfns;

use crate::{signals, ENGINE};

const ROUNDS: usize = 41;
const BATCH: u64 = 2000;

fn nop_pre(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    PreAction::Continue
}

fn nop_post(_: &ProbeContext, _: &mut dyn Registers) {}

fn nop_ret(_: &ProbeContext, _: &mut dyn Registers, _: &mut [u8]) {}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Call,
    Int3,
    Plain,
    Boosted,
    Kretprobe,
    /// The jump-optimisation function, unprobed.
    OptCall,
    /// A jump-optimised kprobe: no trap.
    Optimized,
    /// A kretprobe whose entry is jump-optimised (the return comes back
    /// through the code trampoline): no trap.
    OptKretprobe,
}

const VARIANTS: [Variant; 8] = [
    Variant::Call,
    Variant::Int3,
    Variant::Plain,
    Variant::Boosted,
    Variant::Kretprobe,
    Variant::OptCall,
    Variant::Optimized,
    Variant::OptKretprobe,
];

/// Time `BATCH` calls of `f`; ns per call. Checks every result.
fn batch(f: usize) -> f64 {
    let t = Instant::now();
    for i in 0..BATCH {
        // SAFETY: the benchmark functions take one integer and return it
        // plus one, following the System V ABI.
        let r = unsafe { call(f, i, 0, 0) }.ret;
        assert_eq!(r, i + 1, "benchmark function returned a wrong value");
    }
    t.elapsed().as_nanos() as f64 / BATCH as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Run the benchmark and print medians and ratios.
pub fn run() -> bool {
    let probe_fn = testfns::func("tf_bench_probe").start;
    let insn = testfns::point("bench_insn").addr();
    let int3_fn = testfns::func("tf_bench_int3").start;
    let plain_fn = testfns::func("tf_bench_plain").start;
    let ret_fn = testfns::func("tf_bench_ret").start;

    let reg = |r: Result<_, probe_core::ProbeError>| r.expect("benchmark probe registers");
    let plain =
        reg(ENGINE.register_kprobe(&Kprobe::at(insn).pre(nop_pre).post(nop_post).disabled()));
    let boosted = reg(ENGINE.register_kprobe(&Kprobe::at(insn).pre(nop_pre).disabled()));
    let kret = reg(ENGINE.register_kretprobe(&Kretprobe::at(ret_fn).ret(nop_ret).disabled()));
    let opt_fn = testfns::func("tf_bench_opt").start;
    let opt_ret_fn = testfns::func("tf_bench_opt_ret").start;
    let opt_plain_fn = testfns::func("tf_bench_opt_plain").start;
    ENGINE.set_optimization(true).expect("optimisation on");
    let opt = reg(ENGINE.register_kprobe(&Kprobe::at(opt_fn).pre(nop_pre).disabled()));
    let opt_kret =
        reg(ENGINE.register_kretprobe(&Kretprobe::at(opt_ret_fn).ret(nop_ret).disabled()));

    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); VARIANTS.len()];
    let traps_before = signals::traps();
    let mut expected_traps = 0;
    for round in 0..ROUNDS {
        for (i, v) in VARIANTS.iter().enumerate() {
            let f = match v {
                Variant::Call => plain_fn,
                Variant::Int3 => int3_fn,
                Variant::Plain | Variant::Boosted => probe_fn,
                Variant::Kretprobe => ret_fn,
                Variant::OptCall => opt_plain_fn,
                Variant::Optimized => opt_fn,
                Variant::OptKretprobe => opt_ret_fn,
            };
            // Set up outside the timed batch.
            signals::empty_trap_handler(*v == Variant::Int3);
            let set = |id, on: bool| {
                let r = if on {
                    ENGINE.enable(id)
                } else {
                    ENGINE.disable(id)
                };
                r.expect("enable/disable a benchmark probe");
            };
            set(plain, *v == Variant::Plain);
            set(boosted, *v == Variant::Boosted);
            set(kret, *v == Variant::Kretprobe);
            set(opt, *v == Variant::Optimized);
            set(opt_kret, *v == Variant::OptKretprobe);
            if *v == Variant::Optimized || *v == Variant::OptKretprobe {
                let id = if *v == Variant::Optimized {
                    opt
                } else {
                    opt_kret
                };
                let o = ENGINE.info(id).expect("benchmark probe").optimization;
                assert_eq!(
                    o,
                    probe_core::Optimization::Optimized,
                    "{v:?} is not optimised"
                );
            }
            let ns = batch(f);
            if round > 0 {
                samples[i].push(ns); // round 0 warms up
            }
            expected_traps += BATCH
                * match v {
                    // The floor's handler is empty: it does not count.
                    Variant::Call | Variant::Int3 => 0,
                    Variant::OptCall | Variant::Optimized | Variant::OptKretprobe => 0,
                    Variant::Plain => 2,
                    _ => 1,
                };
        }
    }
    signals::empty_trap_handler(false);
    let traps = signals::traps() - traps_before;
    ENGINE
        .unregister_batch(&[plain, boosted, kret, opt, opt_kret])
        .expect("unregister");
    ENGINE.set_optimization(false).expect("optimisation off");

    let m: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    let (call_ns, int3, plain_ns, boost_ns, kret_ns) = (m[0], m[1], m[2], m[3], m[4]);
    let (opt_call_ns, opt_ns, opt_kret_ns) = (m[5], m[6], m[7]);
    println!("x86_64-linux --bench: {ROUNDS} interleaved rounds of {BATCH} calls per variant, medians per call");
    println!("  call, unprobed                    {call_ns:9.1} ns");
    println!("  bare int3, empty SIGTRAP handler  {int3:9.1} ns   (the floor: one trap)");
    println!(
        "  plain probe (int3 + step int3)    {plain_ns:9.1} ns   = {:.1} ns per trap",
        plain_ns / 2.0
    );
    println!("  boosted probe (int3, jmp back)    {boost_ns:9.1} ns");
    println!("  kretprobe hit (entry + return)    {kret_ns:9.1} ns");
    println!("  call, unprobed (optimised fn)     {opt_call_ns:9.1} ns");
    println!("  optimised probe (jmp, detour)     {opt_ns:9.1} ns   (no trap)");
    println!("  kretprobe, optimised entry        {opt_kret_ns:9.1} ns   (no trap)");
    let per_trap = plain_ns / 2.0;
    println!("ratios (from this run):");
    println!(
        "  engine overhead per trap vs floor: {:+.1} % (plain per trap {:.1} ns / floor {:.1} ns)",
        (per_trap / int3 - 1.0) * 100.0,
        per_trap,
        int3
    );
    println!(
        "  boosted vs floor:                 {:+.1} %",
        (boost_ns / int3 - 1.0) * 100.0
    );
    println!(
        "  boosted speed-up over plain:      {:.2}x",
        plain_ns / boost_ns
    );
    println!("  kretprobe hit vs floor:           {:.2}x", kret_ns / int3);
    println!(
        "  optimised speed-up over plain:    {:.1}x, over boosted: {:.1}x (a trap here is a signal round trip)",
        plain_ns / opt_ns,
        boost_ns / opt_ns
    );
    println!(
        "  optimised probe over unprobed:    {:+.1} ns per call (empty handler)",
        opt_ns - opt_call_ns
    );
    println!(
        "  kretprobe speed-up, optimised entry: {:.1}x",
        kret_ns / opt_kret_ns
    );
    println!("  SIGTRAPs taken: {traps} (expected {expected_traps})");
    traps == expected_traps
}
