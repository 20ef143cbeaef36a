//! The engine's own cost per probe hit, on the Toy ISA with synthetic trap
//! frames (no interpreter, no hardware trap): a breakpoint trap and the
//! step-end trap, as a kernel's trap handlers would hand them over.
//!
//! `bench` prints ns per hit with 1, 64, 1,024 and 4,096 probes registered
//! (hits spread round-robin over all of them, batches interleaved across
//! the configurations, medians), the ratio largest/smallest, the static
//! size of an engine configured for 1,024 probes, and instructions per hit
//! counted by callgrind (instructions for N hits minus for 0 hits).
//! `bench --hits <probes> <hits>` is the callgrind child.

use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use custom_arch::arch::{Toy, ToyRegs};
use custom_arch::isa::asm::nop;
use custom_arch::world::{Kernel, World};
use probe_core::{ExecMode, Kprobe, PreAction, ProbeContext, Space, TrapOutcome};
use probe_hal::Registers;

/// Engine sized for the largest configuration.
type BenchEngine = probe_core::Engine<Toy, spin::Mutex<()>, Kernel, 4096, 16, 4, 512, 64>;
/// The configuration whose static size is reported.
type Engine1024 = probe_core::Engine<Toy, spin::Mutex<()>, Kernel, 1024, 256, 4, 64, 64>;

const CODE: usize = 0x1000;
const CONFIGS: [usize; 4] = [1, 64, 1024, 4096];

static PRE: AtomicU64 = AtomicU64::new(0);
static POST: AtomicU64 = AtomicU64::new(0);

fn pre(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    PRE.fetch_add(1, Ordering::Relaxed);
    PreAction::Continue
}

fn post(_: &ProbeContext, _: &mut dyn Registers) {
    POST.fetch_add(1, Ordering::Relaxed);
}

/// An engine with `n` probes on consecutive `nop`s (pre and post handlers,
/// so every hit takes the breakpoint and the step-end trap).
fn setup(n: usize) -> &'static BenchEngine {
    let world = World::leak(&[]);
    let code: Vec<u8> = (0..4096).flat_map(|_| nop()).collect();
    world.load(Space::Kernel, CODE, &code);
    let engine: &'static BenchEngine = Box::leak(Box::new(BenchEngine::new(Kernel(world))));
    for i in 0..n {
        engine
            .register_kprobe(&Kprobe::at(CODE + 2 * i).pre(pre).post(post))
            .expect("register");
    }
    engine
}

/// One hit on the probe at `addr`: breakpoint, then the step-end marker.
#[inline(never)]
fn hit(engine: &BenchEngine, regs: &mut ToyRegs, addr: usize) {
    regs.set_pc(addr);
    // SAFETY: one simulated CPU, traps taken one at a time.
    let a = unsafe { engine.handle_breakpoint(regs, ExecMode::Kernel) };
    // the slot's copy (a nop) ran: the pc is on the step-end marker
    regs.set_pc(regs.pc() + 2);
    // SAFETY: as above.
    let b = unsafe { engine.handle_breakpoint(regs, ExecMode::Kernel) };
    debug_assert!(a == TrapOutcome::Handled && b == TrapOutcome::Handled);
    debug_assert_eq!(regs.pc(), addr + 2);
}

fn run_hits(engine: &BenchEngine, n: usize, hits: usize) {
    let mut regs = ToyRegs::default();
    for i in 0..hits {
        hit(engine, black_box(&mut regs), CODE + 2 * (i % n));
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn callgrind_instructions(probes: usize, hits: usize) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::env::temp_dir().join(format!(
        "probe-bench-{}-{probes}-{hits}.callgrind",
        std::process::id()
    ));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .args(["--hits", &probes.to_string(), &hits.to_string()])
        .output()
        .map_err(|e| format!("valgrind not runnable ({e}); install it (cargo xtask setup does)"))?;
    if !status.status.success() {
        return Err(format!(
            "valgrind failed: {}",
            String::from_utf8_lossy(&status.stderr)
        ));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&out);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary: ")
                .or_else(|| l.strip_prefix("totals: "))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| "no summary line in callgrind output".into())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--hits") {
        let probes: usize = args[2].parse().expect("probes");
        let hits: usize = args[3].parse().expect("hits");
        let engine = setup(probes);
        run_hits(engine, probes, hits);
        assert_eq!(PRE.load(Ordering::Relaxed), hits as u64);
        return;
    }

    println!("engine cost per hit on the Toy ISA (breakpoint + step-end trap, synthetic frames)");
    let engines: Vec<_> = CONFIGS.iter().map(|&n| setup(n)).collect();
    const BATCH: usize = 200_000;
    let mut samples = vec![Vec::new(); CONFIGS.len()];
    for (i, &n) in CONFIGS.iter().enumerate() {
        run_hits(engines[i], n, BATCH / 4); // warm up
    }
    for _round in 0..9 {
        for (i, &n) in CONFIGS.iter().enumerate() {
            let t = Instant::now();
            run_hits(engines[i], n, BATCH);
            samples[i].push(t.elapsed().as_nanos() as f64 / BATCH as f64);
        }
    }
    let ns: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    for (n, t) in CONFIGS.iter().zip(&ns) {
        println!("  {n:>5} probes: {t:6.1} ns/hit");
    }
    let (lo, hi) = ns
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
    println!("  ratio largest/smallest: {:.2} (goal <= 1.2)", hi / lo);

    println!(
        "static size of an engine for 1,024 probes (256 return instances, 4 CPUs, 64 slot pages, 64-byte instance data), Toy ISA: {} bytes",
        std::mem::size_of::<Engine1024>()
    );

    const HITS: usize = 20_000;
    for probes in [1, 4096] {
        match (
            callgrind_instructions(probes, 0),
            callgrind_instructions(probes, HITS),
        ) {
            (Ok(zero), Ok(n)) => println!(
                "  callgrind, {probes:>4} probes: {:.0} instructions/hit ({HITS} hits)",
                (n - zero) as f64 / HITS as f64
            ),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("callgrind: {e}");
                std::process::exit(1);
            }
        }
    }
}
