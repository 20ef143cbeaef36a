//! The engine's cost per jump-optimised hit on x86_64, in instructions
//! (callgrind, exact): from the `jmp` at the probe to the jump back after
//! the displaced instructions, saving and restoring every register,
//! excluding the handler's own body (issue 10's goal: at most 120).
//!
//! A real `probe_core::Engine` (the capacities of `benches/engine.rs`),
//! installed with `probe_hal::opthook::set_opt_hook`, optimises a kprobe
//! with an empty pre-handler at the entry of a copy of a small function in
//! an RWX mapping; its kernel services hand out that mapping's pages as
//! slot and detour pages. The detour really runs: the benchmark calls the
//! probed copy, and an unprobed copy of the same function, N times each.
//!
//! Per hit = ((probed, N) − (unprobed, N) − ((probed, 0) − (unprobed, 0)))
//! / N, over the instructions callgrind counts for the child mode
//! `optprobe --opt-calls <probed|unprobed> <N>` (setup identical in both).
//! The same difference per function gives the breakdown; the detour itself
//! is code without a symbol, so it is also decoded (iced-x86) and counted
//! statically, which must match callgrind's count of that code.

#[path = "optprobe/callgrind.rs"]
mod callgrind;
#[path = "optprobe/detour.rs"]
mod detour;
#[allow(dead_code)] // shared with benches/engine.rs; only some of it used here
#[path = "engine/measure.rs"]
mod measure;
#[path = "optprobe/setup.rs"]
mod setup;

use std::collections::BTreeMap;
use std::hint::black_box;

use callgrind::Profile;
use measure::{cpu_model, median};

/// Calls in the callgrind child (N).
const CALLGRIND_CALLS: usize = 100_000;
/// Calls per timed batch, and batches per variant.
const BATCH: usize = 100_000;
const ROUNDS: usize = 21;
/// The goal of issue 10, instructions per optimised hit.
const GOAL: f64 = 120.0;

/// `calls` calls of `f`; the sum of the results (checked by the caller).
#[inline(never)]
fn call_loop(f: extern "C" fn(usize, usize) -> usize, calls: usize) -> usize {
    let mut acc = 0usize;
    for i in 0..calls {
        acc = f(black_box(i), acc);
    }
    acc
}

/// The callgrind child: the same setup whatever is called, then `calls`
/// calls of the probed or the unprobed copy.
fn child(args: &[String]) {
    let usage = "usage: optprobe --opt-calls <probed|unprobed> <calls>";
    let probed = match args.first().map(String::as_str) {
        Some("probed") => true,
        Some("unprobed") => false,
        _ => panic!("{usage}"),
    };
    let calls: usize = args.get(1).and_then(|s| s.parse().ok()).expect(usage);
    let s = setup::setup();
    let f = setup::as_fn(if probed { s.probed } else { s.unprobed });
    let sum = call_loop(f, calls);
    assert_eq!(sum, (0..calls).fold(0usize, |a, i| a.wrapping_add(i)));
    assert_eq!(s.hits(), if probed { calls as u64 } else { 0 });
}

fn profile(which: &str, calls: usize) -> Result<Profile, String> {
    callgrind::run(&["--opt-calls", which, &calls.to_string()])
}

/// Where a function's instructions go in the breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    /// Code without a symbol: the victim's copies and the detour.
    Detour,
    /// The backend's `opt_entry` and the hook dispatch of probe-hal.
    Entry,
    /// Everything else that runs per hit: the engine.
    Engine,
    /// The pre-handler's own body (excluded from the engine's cost).
    Handler,
}

fn part(name: &str) -> Part {
    if name.starts_with("0x") {
        Part::Detour
    } else if name.contains("empty_pre") {
        Part::Handler
    } else if name.contains("optprobe::entry::opt_entry") || name.starts_with("probe_hal::opthook")
    {
        Part::Entry
    } else {
        Part::Engine
    }
}

/// Instructions per call by function: the probed run minus the unprobed
/// one, less the same difference at 0 calls, over `calls`.
fn per_call(p: [&Profile; 4], calls: usize) -> (f64, BTreeMap<String, f64>) {
    let [pn, un, p0, u0] = p;
    let d = |a: u64, b: u64, c: u64, e: u64| {
        (a as i128 - b as i128 - (c as i128 - e as i128)) as f64 / calls as f64
    };
    let total = d(pn.total, un.total, p0.total, u0.total);
    let mut names: Vec<&String> = pn.self_cost.keys().collect();
    names.extend(un.self_cost.keys());
    names.sort();
    names.dedup();
    let get = |p: &Profile, n: &str| p.self_cost.get(n).copied().unwrap_or(0);
    let by_fn = names
        .into_iter()
        .map(|n| (n.clone(), d(get(pn, n), get(un, n), get(p0, n), get(u0, n))))
        .filter(|(_, v)| v.abs() >= 0.005)
        .collect();
    (total, by_fn)
}

/// A function's name, shortened for the table (generic parameters out).
fn short(name: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in name.chars() {
        match c {
            '<' => {
                if depth == 0 {
                    out.push('<');
                }
                depth += 1;
            }
            '>' => {
                depth -= 1;
                if depth == 0 {
                    out.push_str("…>");
                }
            }
            _ if depth <= 1 => out.push(c),
            _ => {}
        }
    }
    // Keep `<Engine…> as OptHook>::f`-style names readable at any depth.
    if out.len() > 100 {
        out.truncate(100);
        out.push('…');
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--opt-calls") {
        child(&args[at + 1..]);
        return;
    }

    println!("engine cost per optimised hit on x86_64 (jmp, detour, entry, engine, empty pre-handler, restore, jump back)");
    println!(
        "machine: {}, {} CPUs",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let s = setup::setup();
    let path = detour::path_a(&s);
    let victim = setup::as_fn(s.probed);
    let plain = setup::as_fn(s.unprobed);
    assert_eq!(victim(2, 3), 5);
    assert_eq!(s.hits(), 1);

    // The detour, path (a).
    let region = &path.region;
    println!();
    println!(
        "detour at {:#x} for the probe at {:#x} (region of {} bytes, {} instructions), entry called with {}:",
        s.detour(),
        s.probed,
        region.len,
        region.insns,
        if path.near_call {
            "call rel32"
        } else {
            "movabs rax; call rax"
        }
    );
    let list = |what: &str, v: &[iced_x86::Instruction]| {
        println!("  {what}: {} instructions", v.len());
        for i in v {
            println!("      {}", detour::show(i));
        }
    };
    if args.iter().any(|a| a == "--listing") {
        list("save (up to the entry call)", &path.save);
        list("restore (after the call)", &path.restore);
        list("displaced", &path.displaced);
        list("jump back", std::slice::from_ref(&path.jump_back));
    }
    let pushes = path.save.iter().filter(|i| detour::is_push_pop(i)).count();
    let pops = path
        .restore
        .iter()
        .filter(|i| detour::is_push_pop(i))
        .count();
    let save = path.save.len() as f64;
    let restore = path.restore.len() as f64;
    println!(
        "  static count of path (a): jmp 1, save {} ({} push/pushfq), restore {} ({} pop/popfq), displaced {}, jump back 1",
        path.save.len(),
        pushes,
        path.restore.len(),
        pops,
        path.displaced.len()
    );

    // Time per call (informative; the goal is in instructions).
    for _ in 0..3 {
        call_loop(victim, BATCH);
        call_loop(plain, BATCH);
    }
    let (mut tp, mut tu) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for (f, v) in [(victim, &mut tp), (plain, &mut tu)] {
            let t = std::time::Instant::now();
            black_box(call_loop(f, BATCH));
            v.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
        }
    }
    let (np, nu) = (median(&mut tp), median(&mut tu));

    // Instructions.
    let runs: Result<Vec<Profile>, String> = [
        ("probed", CALLGRIND_CALLS),
        ("unprobed", CALLGRIND_CALLS),
        ("probed", 0),
        ("unprobed", 0),
    ]
    .iter()
    .map(|&(w, n)| profile(w, n))
    .collect();
    let runs = match runs {
        Ok(r) => r,
        Err(e) => {
            eprintln!("callgrind: {e}");
            std::process::exit(1);
        }
    };
    let (total, by_fn) = per_call([&runs[0], &runs[1], &runs[2], &runs[3]], CALLGRIND_CALLS);
    let mut parts: BTreeMap<Part, f64> = BTreeMap::new();
    println!();
    println!("  instructions per hit by function (callgrind self cost, probed - unprobed; no symbol: the copies and the detour):");
    for (name, v) in &by_fn {
        *parts.entry(part(name)).or_default() += v;
        let what = match part(name) {
            Part::Detour => "no symbol",
            Part::Entry => "entry",
            Part::Engine => "engine",
            Part::Handler => "handler",
        };
        println!("    {v:>7.2}  {what:<9} {}", short(name));
    }
    let get = |p: Part| parts.get(&p).copied().unwrap_or(0.0);
    let handler = get(Part::Handler);
    let engine_cost = total - handler;
    let detour_static = 1.0 + save + restore + 1.0;
    let row = |label: &str, v: f64| println!("    {label:<62} {v:>6.1}");
    println!();
    println!("  breakdown per hit{:>62}", "instructions");
    row("jmp rel32 at the probe (static)", 1.0);
    row(
        &format!("detour save: {pushes} push/pushfq, frame fields, args, call (static)"),
        save,
    );
    row(
        "entry + dispatch (opt_entry, probe_hal::opthook)",
        get(Part::Entry),
    );
    row(
        "engine (on_optimized_hit, the handler call included)",
        get(Part::Engine),
    );
    row(
        &format!("restore: {pops} pop/popfq, rsp, test/jnz (static)"),
        restore,
    );
    row(
        &format!(
            "displaced: {} instructions (the unprobed copy runs them too)",
            path.displaced.len()
        ),
        0.0,
    );
    row("jump back (static)", 1.0);
    println!("    {}", "-".repeat(69));
    row("engine cost per optimised hit", engine_cost);
    row("(excluded: the empty pre-handler's own body)", handler);
    row("measured: (probed - unprobed) per call", total);
    println!(
        "  setup difference at 0 calls (probed - unprobed, subtracted): {} instructions",
        runs[2].total as i128 - runs[3].total as i128
    );
    println!(
        "  cross-check: code without a symbol (jmp + detour) per hit: callgrind {:.1}, static {:.1}",
        get(Part::Detour),
        detour_static
    );
    println!(
        "  goal: at most {GOAL:.0} instructions per optimised hit; measured {engine_cost:.0}: {}",
        if engine_cost <= GOAL {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  time per call: probed {np:.1} ns, unprobed {nu:.1} ns, +{:.1} ns (median of {ROUNDS} batches of {BATCH} calls)",
        np - nu
    );
    println!(
        "  (callgrind --smc-check=all: (probed - unprobed) for {CALLGRIND_CALLS} calls minus the same for 0 calls, / {CALLGRIND_CALLS})"
    );
    let mismatch = (get(Part::Detour) - detour_static).abs() > 0.01;
    let sums =
        (get(Part::Detour) + get(Part::Entry) + get(Part::Engine) + handler - total).abs() > 0.01;
    if mismatch || sums {
        eprintln!("the breakdown does not add up (static detour count or per-function sum)");
        std::process::exit(1);
    }
}
