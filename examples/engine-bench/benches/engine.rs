//! The engine's cost per probe hit on x86_64, beside the `kprobe` 0.6 crate
//! it replaces, both driven on the host with synthetic trap frames (no
//! hardware trap, nothing executes out of line): the breakpoint trap at the
//! probe, then the trap that ends the step (our `int3` after the slot copy;
//! the crate's TF debug trap). Every probe has a pre- and a post-handler
//! (each an atomic increment), so each hit takes both traps in both engines.
//!
//! `cargo bench -p engine-bench` measures, with 1 and 1,024 probes
//! registered (hits round-robin over all of them), in one run:
//! - median ns per hit over batches interleaved across the four
//!   configurations;
//! - heap allocations per hit (a counting global allocator);
//! - instructions per hit with callgrind: instructions of the child mode
//!   below for N hits minus for 0 hits (N = 20,000);
//!
//! and prints the ratios ours/theirs and the static size of our engine.
//! The same loop with no engine behind it (`none`) shows how much of each
//! figure is the benchmark's own loop. `engine --hits <ours|kprobe|none>
//! <probes> <hits>` is the callgrind child.

#[path = "engine/counters.rs"]
mod counters;
#[path = "engine/counting_alloc.rs"]
mod counting_alloc;
#[path = "engine/harness.rs"]
mod harness;
#[path = "engine/measure.rs"]
mod measure;
#[path = "engine/ours.rs"]
mod ours;
#[path = "engine/region.rs"]
mod region;
#[path = "engine/theirs.rs"]
mod theirs;

use counting_alloc::{allocations_in, CountingAlloc};
use measure::{cpu_model, interleaved_ns};

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Hits per timed batch.
const BATCH: usize = 50_000;
/// Timed batches per configuration.
const ROUNDS: usize = 15;
/// Hits whose allocations are counted.
const ALLOC_HITS: usize = 10_000;
/// Hits in the callgrind child (N).
const CALLGRIND_HITS: usize = 20_000;

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Ours,
    Theirs,
    /// No engine: the loop and frame edits alone.
    Harness,
}

impl Which {
    fn arg(self) -> &'static str {
        match self {
            Which::Ours => "ours",
            Which::Theirs => "kprobe",
            Which::Harness => "none",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Which::Ours => "probe-core + probe-hal-x86_64",
            Which::Theirs => "kprobe 0.6.0",
            Which::Harness => "no engine (harness alone)",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Which::Ours, Which::Theirs, Which::Harness]
            .into_iter()
            .find(|w| w.arg() == s)
    }
}

/// The four configurations, in the order of the table.
const CONFIGS: [(Which, usize); 4] = [
    (Which::Ours, 1),
    (Which::Ours, 1024),
    (Which::Theirs, 1),
    (Which::Theirs, 1024),
];

/// One engine with its probes registered.
enum Bench {
    Ours(ours::Bench),
    Theirs(theirs::Bench),
    Harness(harness::Bench),
}

impl Bench {
    fn setup(which: Which, probes: usize) -> Self {
        match which {
            Which::Ours => Bench::Ours(ours::Bench::setup(probes)),
            Which::Theirs => Bench::Theirs(theirs::Bench::setup(probes)),
            Which::Harness => Bench::Harness(harness::Bench::setup(probes)),
        }
    }

    fn run(&self, hits: usize) {
        match self {
            Bench::Ours(b) => b.run(hits),
            Bench::Theirs(b) => b.run(hits),
            Bench::Harness(b) => b.run(hits),
        }
    }
}

/// The callgrind child: register, hit `hits` times, check every handler ran.
fn child(args: &[String]) {
    let usage = "usage: engine --hits <ours|kprobe|none> <probes> <hits>";
    let which = args.first().and_then(|s| Which::parse(s)).expect(usage);
    let probes: usize = args.get(1).and_then(|s| s.parse().ok()).expect(usage);
    let hits: usize = args.get(2).and_then(|s| s.parse().ok()).expect(usage);
    let bench = Bench::setup(which, probes);
    bench.run(hits);
    let handled = if which == Which::Harness {
        0
    } else {
        hits as u64
    };
    assert_eq!(counters::calls(), (handled, handled));
}

/// Instructions callgrind counts for the child with `hits` hits.
fn callgrind_total(which: Which, probes: usize, hits: usize) -> Result<u64, String> {
    measure::callgrind_total(&[
        "--hits",
        which.arg(),
        &probes.to_string(),
        &hits.to_string(),
    ])
}

/// Instructions per hit: (N hits − 0 hits) / N.
fn instructions_per_hit(which: Which, probes: usize) -> Result<f64, String> {
    let zero = callgrind_total(which, probes, 0)?;
    let n = callgrind_total(which, probes, CALLGRIND_HITS)?;
    Ok(n.saturating_sub(zero) as f64 / CALLGRIND_HITS as f64)
}

fn ratio(ours: f64, theirs: f64) -> String {
    format!("{:.3} (1/{:.1})", ours / theirs, theirs / ours)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--hits") {
        child(&args[at + 1..]);
        return;
    }

    let reg = ours::registration_cost();
    println!(
        "registration in one {}-byte function ({} instructions): one probe on its last instruction {:.1} us ({} reads); a batch on every instruction {:.1} ms ({:.2} us per probe)",
        reg.function_len,
        reg.batch_probes,
        reg.one.as_secs_f64() * 1e6,
        reg.one_reads,
        reg.batch.as_secs_f64() * 1e3,
        reg.batch.as_secs_f64() * 1e6 / reg.batch_probes as f64,
    );
    println!(
        "engine cost per hit on x86_64, synthetic trap frames (breakpoint + step-end trap, pre and post handler)"
    );
    println!(
        "machine: {}, {} CPUs",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let benches: Vec<Bench> = CONFIGS
        .iter()
        .map(|&(which, probes)| Bench::setup(which, probes))
        .collect();
    let mut total_hits = 0u64;
    for b in &benches {
        b.run(BATCH / 4); // warm up
        total_hits += (BATCH / 4) as u64;
    }

    // ns per hit: batches interleaved, the starting configuration rotating.
    let ns = interleaved_ns(CONFIGS.len(), ROUNDS, BATCH, |i, n| benches[i].run(n));
    total_hits += (ROUNDS * CONFIGS.len() * BATCH) as u64;

    let allocs: Vec<f64> = benches
        .iter()
        .map(|b| allocations_in(|| b.run(ALLOC_HITS)) as f64 / ALLOC_HITS as f64)
        .collect();
    total_hits += (ALLOC_HITS * benches.len()) as u64;
    assert_eq!(
        counters::calls(),
        (total_hits, total_hits),
        "every hit runs its pre- and its post-handler exactly once"
    );

    let mut failed = None;
    let mut callgrind = |which: Which, probes: usize| match instructions_per_hit(which, probes) {
        Ok(v) => Some(v),
        Err(e) => {
            failed.get_or_insert(e);
            None
        }
    };
    let instr: Vec<Option<f64>> = CONFIGS
        .iter()
        .map(|&(which, probes)| callgrind(which, probes))
        .collect();
    let harness = callgrind(Which::Harness, 1024);

    println!();
    println!(
        "  {:<26} {:>7} {:>10} {:>8} {:>11}",
        "engine", "probes", "instr/hit", "ns/hit", "allocs/hit"
    );
    let show = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.1}"));
    for (i, &(which, probes)) in CONFIGS.iter().enumerate() {
        println!(
            "  {:<26} {:>7} {:>10} {:>8.1} {:>11.2}",
            which.label(),
            probes,
            show(instr[i]),
            ns[i],
            allocs[i]
        );
    }
    println!(
        "  {:<26} {:>7} {:>10}",
        Which::Harness.label(),
        1024,
        show(harness)
    );
    println!();
    println!("  ratios ours/theirs (same number of probes):");
    for (o, t) in [(0, 2), (1, 3)] {
        let probes = CONFIGS[o].1;
        let instr = match (instr[o], instr[t]) {
            (Some(a), Some(b)) => ratio(a, b),
            _ => "n/a".into(),
        };
        println!(
            "    {probes:>4} probes: instructions {instr}, ns {}, allocations {:.2} / {:.2}",
            ratio(ns[o], ns[t]),
            allocs[o],
            allocs[t]
        );
    }
    if let Some(h) = harness {
        let engine_only: Vec<String> = instr
            .iter()
            .map(|v| v.map_or("n/a".into(), |v| format!("{:.0}", v - h)))
            .collect();
        println!(
            "  without the harness's {h:.0}: ours {} / {}, kprobe {} / {} instructions per hit (1 / 1,024 probes)",
            engine_only[0], engine_only[1], engine_only[2], engine_only[3]
        );
    }
    if let Some(ours) = instr[1] {
        println!(
            "  goal: at most 80 instructions and no allocation per hit; ours with 1,024 probes: {ours:.0}, {:.2} allocations",
            allocs[1]
        );
    }
    println!();
    println!(
        "  static size of our engine for {} probes ({} return instances, {} CPUs, {} slot pages, {}-byte instance data): {} bytes",
        ours::PROBES,
        ours::INSTANCES,
        ours::CPUS,
        ours::PAGES,
        ours::DATA,
        std::mem::size_of::<ours::OurEngine>()
    );
    println!(
        "  (callgrind: instructions for {CALLGRIND_HITS} hits minus for 0 hits; ns: median of {ROUNDS} interleaved batches of {BATCH} hits)"
    );
    if let Some(e) = failed {
        eprintln!("callgrind: {e}");
        std::process::exit(1);
    }
}
