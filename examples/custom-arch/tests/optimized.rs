//! Jump-optimised kprobes ("optprobes") on the Toy ISA: a probe's
//! breakpoint replaced by `ojmp` to a detour whose `dentry` calls the
//! engine, then runs the displaced instructions and jumps back.
//!
//! The expectations here are computed independently of the backend (a
//! test-side reading of the Toy rules over the library's bytes), so a
//! wrong backend or engine rule makes them fail.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use custom_arch::isa::asm::{call, halt, li, nop, ret};
use custom_arch::isa::{insn_len, op, DETOUR_HEADER};
use custom_arch::machine::{Cpu, Stop};
use custom_arch::world::{Detours, World, DETOUR_AREA, DETOUR_AREA_PAGES, PAGE};
use custom_arch::ToyEngine;
use probe_core::{
    Kprobe, Kretprobe, NotOptimized, Optimization, PreAction, ProbeContext, ProbeId, Space,
};
use probe_hal::Registers;

/// A fixture whose kernel hands out detour memory.
fn opt_fx() -> Fx {
    let fx: Fx = Fx::new();
    fx.w.set_detours(Detours::Near);
    fx
}

fn opt(fx: &Fx, id: ProbeId) -> Optimization {
    fx.e.info(id).unwrap().optimization
}

fn code_of(o: Optimization) -> &'static str {
    match o {
        Optimization::Optimized => "optimized",
        Optimization::NotOptimized(why) => why.code(),
    }
}

/// What the text holds at a probe address.
#[derive(Debug, PartialEq, Eq)]
enum Site {
    Original,
    Breakpoint,
    /// A whole `ojmp` into the detour area.
    Jump(usize),
    /// A breakpoint over the first bytes of a jump whose tail is still in
    /// place (the engine's "staged" state: its breakpoint path resumes in
    /// the detour, never inside the region).
    BreakpointOverJump,
    Torn(Vec<u8>),
}

fn site(w: &World, addr: usize, orig: &[u8]) -> Site {
    let b = w.peek(Space::Kernel, addr, 4);
    if b == orig[..4] {
        return Site::Original;
    }
    if b[..2] == [op::BRK, 0] && b[2..] == orig[2..4] {
        return Site::Breakpoint;
    }
    if b[..2] == [op::BRK, 0] {
        return Site::BreakpointOverJump;
    }
    if b[0] == op::OJMP {
        let t = custom_arch::arch::ojmp_target(addr, &[b[0], b[1], b[2], b[3]]);
        if (DETOUR_AREA..DETOUR_AREA + DETOUR_AREA_PAGES * PAGE).contains(&t) {
            return Site::Jump(t);
        }
    }
    Site::Torn(b)
}

/// The instructions a `ojmp` may displace (stepped and boostable), listed
/// here rather than read from the backend's decision table.
const BOOSTABLE: &[u8] = &[
    op::NOP,
    op::MOV,
    op::ADD,
    op::INC,
    op::PUSH,
    op::POP,
    op::LI,
    op::ADDI,
    op::LD,
    op::ST,
    op::LDPC,
];

/// The test's own reading of the Toy optimisation rules for a probe at
/// `func + off`: `Ok(region length)` or the listing code of the reason.
fn expected(func: usize, code: &[u8], off: usize, fixups: &[usize]) -> Result<usize, &'static str> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i < code.len() {
        starts.push(i);
        i += insn_len(code[i]).expect("library code decodes");
    }
    if starts.iter().any(|s| fixups.contains(&(func + s))) {
        return Err("may-fault");
    }
    let mut len = 0;
    let mut ldpc = None;
    while len < 4 {
        let at = off + len;
        if at >= code.len() {
            return Err("past-function-end");
        }
        if !BOOSTABLE.contains(&code[at]) {
            return Err("not-boostable");
        }
        if code[at] == op::LDPC {
            ldpc = Some(at);
        }
        len += insn_len(code[at]).unwrap();
    }
    for &s in &starts {
        let b = &code[s..];
        let rel = |lo: u8, hi: u8| i16::from_le_bytes([lo, hi]) as i64;
        let target = match b[0] {
            op::JMP | op::CALL => Some(s as i64 + rel(b[2], b[3])),
            op::BEQ => Some(s as i64 + b[2] as i8 as i64),
            _ => None,
        };
        if let Some(t) = target {
            if t > off as i64 && t < (off + len) as i64 {
                return Err("jump-into-region");
            }
        }
    }
    if let Some(at) = ldpc {
        // Every detour lies at DETOUR_AREA or above: the relocated
        // displacement is at least this far.
        let b = &code[at..];
        let target = (func + at) as i64 + i16::from_le_bytes([b[2], b[3]]) as i64;
        if i16::try_from(target - (DETOUR_AREA + DETOUR_HEADER) as i64).is_err() {
            return Err("out-of-reach");
        }
    }
    Ok(len)
}

/// Arguments of each library function for a call that returns.
fn args_for(func: usize) -> Vec<u64> {
    match func {
        BRANCHY => vec![3],
        LOAD_FN => vec![(LDPC_FN + 0x40) as u64],
        RECUR => vec![4],
        LLSC_FN => vec![0, 0x6000],
        NOPS => vec![7],
        _ => vec![],
    }
}

fn boundaries(code: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut i = 0;
    while i < code.len() {
        v.push(i);
        i += insn_len(code[i]).unwrap();
    }
    v
}

struct Counts {
    traps: u64,
    entries: u64,
}

fn counts(w: &World) -> Counts {
    Counts {
        traps: w.traps_taken(),
        entries: w.detour_entries(),
    }
}

#[test]
fn every_eligible_site_is_optimised_and_runs_like_the_original() {
    let fx = opt_fx();
    let fixups: Vec<usize> = fx.w.fixups.lock().unwrap().iter().map(|f| f.0).collect();
    let (mut optimised, mut sites) = (0, 0);
    let mut reasons: HashMap<&'static str, usize> = HashMap::new();
    for (func, _, code) in library() {
        if func == REFUSED_FN {
            continue;
        }
        let args = args_for(func);
        let base = fx.call(func, &args);
        let visits = fx.visits(func, &args);
        for off in boundaries(&code) {
            let a = func + off;
            let s = seen();
            let Ok(id) = fx.e.register_kprobe(&Kprobe::at(a).pre(pre_count).data(s)) else {
                // Refused by the breakpoint rules (ll/sc window, ret
                // simulated fine, …): nothing to optimise.
                continue;
            };
            sites += 1;
            let want = expected(func, &code, off, &fixups);
            let got = opt(&fx, id);
            match want {
                Ok(_) => assert_eq!(got, Optimization::Optimized, "{a:#x}"),
                Err(c) => assert_eq!(code_of(got), c, "{a:#x}"),
            }
            *reasons.entry(code_of(got)).or_default() += 1;
            let text_now = site(fx.w, a, &fx_orig(&fx, a, &code, off));
            if want.is_ok() {
                optimised += 1;
                assert!(matches!(text_now, Site::Jump(_)), "{a:#x}: {text_now:?}");
            } else {
                assert_eq!(text_now, Site::Breakpoint, "{a:#x}");
            }
            let before = counts(fx.w);
            let regs = fx.call(func, &args);
            let after = counts(fx.w);
            let n = visits.get(&a).copied().unwrap_or(0);
            assert_eq!(regs, base, "{a:#x}: registers differ from the unprobed run");
            assert_eq!(hits(s) as u64, n, "{a:#x}: handler runs");
            let info = fx.e.info(id).unwrap();
            assert_eq!((info.hits, info.missed), (n, 0), "{a:#x}");
            assert!(s.pcs.lock().unwrap().iter().all(|&pc| pc == a));
            if want.is_ok() {
                assert_eq!(after.traps - before.traps, 0, "{a:#x}: traps taken");
                assert_eq!(after.entries - before.entries, n, "{a:#x}: detour entries");
            } else {
                assert!(after.traps - before.traps >= n, "{a:#x}");
                assert_eq!(after.entries, before.entries, "{a:#x}");
            }
            fx.e.unregister(id).unwrap();
            assert_eq!(
                fx.w.peek(Space::Kernel, func, code.len()),
                code,
                "{a:#x}: text restored"
            );
            assert_eq!(fx.e.detours_in_use(), 0);
            assert_eq!(fx.w.detour_pages_held(), 0);
        }
    }
    eprintln!("{optimised} of {sites} probed sites optimised; reasons {reasons:?}");
    assert!(optimised >= 250, "only {optimised} sites optimised");
    for r in [
        "not-boostable",
        "jump-into-region",
        "may-fault",
        "out-of-reach",
    ] {
        assert!(reasons.contains_key(r), "no site refused for {r}");
    }
}

/// The original bytes at `func + off`, padded to 4 with what follows in
/// memory (the function's last instruction may be 2 bytes).
fn fx_orig(fx: &Fx, a: usize, code: &[u8], off: usize) -> Vec<u8> {
    let mut v = code[off..].to_vec();
    if v.len() < 4 {
        v.extend_from_slice(&fx.w.peek(Space::Kernel, a + v.len(), 4 - v.len()));
    }
    v.truncate(4);
    v
}

fn orig_at(fx: &Fx, a: usize) -> Vec<u8> {
    for (func, _, code) in library() {
        if (func..func + code.len()).contains(&a) {
            return fx_orig(fx, a, &code, a - func);
        }
    }
    panic!("{a:#x} is not in the library")
}

#[test]
fn a_post_handler_joining_unoptimises_first_and_leaving_reoptimises() {
    let fx = opt_fx();
    let (a, b) = (seen(), seen());
    let ida =
        fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count).data(a))
            .unwrap();
    assert_eq!(opt(&fx, ida), Optimization::Optimized);
    assert!(fx.e.info(ida).unwrap().to_string().ends_with("[OPTIMIZED]"));
    let idb =
        fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count_b).post(post_count).data(b))
            .unwrap();
    for id in [ida, idb] {
        assert_eq!(
            opt(&fx, id),
            Optimization::NotOptimized(NotOptimized::PostHandler)
        );
        assert!(fx
            .e
            .info(id)
            .unwrap()
            .to_string()
            .ends_with("[unoptimized: post-handler]"));
    }
    assert_eq!(site(fx.w, ARITH, &orig_at(&fx, ARITH)), Site::Breakpoint);
    assert_eq!(fx.e.detours_in_use(), 0);
    let before = counts(fx.w);
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    let after = counts(fx.w);
    assert_eq!((hits(a), hits(b), b.post.load(Ordering::SeqCst)), (1, 1, 1));
    assert_eq!(
        b.r1_post.load(Ordering::SeqCst),
        5,
        "post-handler after li r1, 5"
    );
    assert!(after.traps > before.traps);
    assert_eq!(after.entries, before.entries);
    // The post-handler leaves: the jump comes back.
    fx.e.unregister(idb).unwrap();
    assert_eq!(opt(&fx, ida), Optimization::Optimized);
    let before = counts(fx.w);
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    let after = counts(fx.w);
    assert_eq!(
        (after.traps - before.traps, after.entries - before.entries),
        (0, 1)
    );
    assert_eq!(hits(a), 2);
    // Disabling the post-handler probe has the same effect as removing it.
    let idb =
        fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count_b).post(post_count).data(b))
            .unwrap();
    assert_eq!(code_of(opt(&fx, ida)), "post-handler");
    fx.e.disable(idb).unwrap();
    assert_eq!(opt(&fx, ida), Optimization::Optimized);
    fx.e.enable(idb).unwrap();
    assert_eq!(code_of(opt(&fx, ida)), "post-handler");
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!((hits(a), hits(b), b.post.load(Ordering::SeqCst)), (3, 2, 2));
}

#[test]
fn an_opted_out_probe_keeps_its_address_a_breakpoint() {
    let fx = opt_fx();
    let (a, b) = (seen(), seen());
    let ida =
        fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count).data(a).no_optimize())
            .unwrap();
    assert_eq!(code_of(opt(&fx, ida)), "opted-out");
    assert!(fx
        .e
        .info(ida)
        .unwrap()
        .to_string()
        .ends_with("[unoptimized: opted-out]"));
    let idb =
        fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count_b).data(b))
            .unwrap();
    assert_eq!(code_of(opt(&fx, idb)), "opted-out");
    assert_eq!(site(fx.w, ARITH, &orig_at(&fx, ARITH)), Site::Breakpoint);
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!((hits(a), hits(b)), (1, 1));
    fx.e.unregister(ida).unwrap();
    assert_eq!(opt(&fx, idb), Optimization::Optimized);
    // An opt-out joining an optimised address un-optimises it first.
    let ida =
        fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count).data(a).no_optimize())
            .unwrap();
    assert_eq!(code_of(opt(&fx, idb)), "opted-out");
    let before = counts(fx.w);
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!(counts(fx.w).entries, before.entries);
    assert_eq!((hits(a), hits(b)), (2, 2));
    fx.e.unregister(ida).unwrap();
    fx.e.unregister(idb).unwrap();
    assert_eq!(site(fx.w, ARITH, &orig_at(&fx, ARITH)), Site::Original);
}

#[test]
fn switching_optimisation_off_and_on_moves_every_probe() {
    let fx = opt_fx();
    let sites = [ARITH, ARITH + 8, CALLER + 6, MEM_FN, NOPS, NOPS + 0x40];
    let s = seen();
    let ids: Vec<_> = sites
        .iter()
        .map(|&a| {
            fx.e.register_kprobe(&Kprobe::at(a).pre(pre_count).data(s))
                .unwrap()
        })
        .collect();
    assert_eq!(fx.e.detours_in_use(), sites.len());
    for round in 0..3 {
        fx.e.set_optimization(false).unwrap();
        assert!(!fx.e.optimization_enabled());
        assert_eq!(fx.e.detours_in_use(), 0);
        assert_eq!(fx.w.detour_pages_held(), 0);
        for (&a, &id) in sites.iter().zip(&ids) {
            assert_eq!(code_of(opt(&fx, id)), "switched-off");
            assert_eq!(site(fx.w, a, &orig_at(&fx, a)), Site::Breakpoint);
        }
        let before = counts(fx.w);
        assert_eq!(fx.call(CALLER, &[]).r[1], 14);
        assert_eq!(fx.call(MEM_FN, &[]).r[1], 42);
        assert_eq!(fx.call(NOPS, &[9]).r[1], 9);
        let after = counts(fx.w);
        assert_eq!(after.entries, before.entries);
        assert!(after.traps - before.traps >= 6);
        fx.e.set_optimization(true).unwrap();
        for (&a, &id) in sites.iter().zip(&ids) {
            assert_eq!(opt(&fx, id), Optimization::Optimized, "round {round}");
            assert!(matches!(site(fx.w, a, &orig_at(&fx, a)), Site::Jump(_)));
        }
        let before = counts(fx.w);
        assert_eq!(fx.call(CALLER, &[]).r[1], 14);
        assert_eq!(fx.call(MEM_FN, &[]).r[1], 42);
        assert_eq!(fx.call(NOPS, &[9]).r[1], 9);
        let after = counts(fx.w);
        assert_eq!(
            (after.traps - before.traps, after.entries - before.entries),
            (0, 6)
        );
    }
    assert_eq!(hits(s), 36);
    // Registering while switched off: not optimised until switched on.
    fx.e.set_optimization(false).unwrap();
    let t = seen();
    let id =
        fx.e.register_kprobe(&Kprobe::at(JUMPY).pre(pre_count).data(t))
            .unwrap();
    assert_eq!(code_of(opt(&fx, id)), "switched-off");
    fx.e.set_optimization(true).unwrap();
    assert_eq!(opt(&fx, id), Optimization::Optimized);
}

#[test]
fn a_probe_inside_an_optimised_region_unoptimises_it_first() {
    let fx = opt_fx();
    let (a, b) = (seen(), seen());
    // ARITH+8: add (2 bytes) + inc (2 bytes): the region ends at ARITH+0xc.
    let ida =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count).data(a))
            .unwrap();
    assert_eq!(opt(&fx, ida), Optimization::Optimized);
    let idb =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 0xa).pre(pre_count).data(b))
            .unwrap();
    assert_eq!(
        opt(&fx, ida),
        Optimization::NotOptimized(NotOptimized::ProbeInRegion { addr: ARITH + 0xa })
    );
    assert!(fx
        .e
        .info(ida)
        .unwrap()
        .to_string()
        .ends_with("[unoptimized: probe-in-region]"));
    // The inner probe's own region (inc + ret) is not boostable.
    assert_eq!(code_of(opt(&fx, idb)), "not-boostable");
    assert_eq!(
        fx.w.peek(Space::Kernel, ARITH + 8, 4),
        vec![op::BRK, 0, op::BRK, 0],
        "two breakpoints, no jump"
    );
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!((hits(a), hits(b)), (1, 1));
    assert_eq!(fx.e.detours_in_use(), 0);
    // A probe registered at a site whose region would cover an existing
    // probe is not optimised either.
    let c = seen();
    let idc =
        fx.e.register_kprobe(&Kprobe::at(NOPS + 2).pre(pre_count).data(c))
            .unwrap();
    let idd =
        fx.e.register_kprobe(&Kprobe::at(NOPS).pre(pre_count).data(c))
            .unwrap();
    assert_eq!(opt(&fx, idc), Optimization::Optimized);
    assert_eq!(
        opt(&fx, idd),
        Optimization::NotOptimized(NotOptimized::ProbeInRegion { addr: NOPS + 2 })
    );
    assert_eq!(fx.call(NOPS, &[5]).r[1], 5);
    assert_eq!(hits(c), 2);
    fx.e.unregister(idc).unwrap();
    fx.e.unregister(idd).unwrap();
    fx.e.unregister(idb).unwrap();
    fx.e.unregister(ida).unwrap();
    let text = library();
    for (f, _, code) in text {
        assert_eq!(fx.w.peek(Space::Kernel, f, code.len()), code);
    }
}

/// Linux re-optimises the covering probe once the probe inside its region
/// is gone (`__disarm_kprobe(p, reopt)` → `optimize_kprobe`); so does the
/// engine (`reoptimize_covering` after unregister).
#[test]
fn the_covering_probe_is_reoptimised_when_the_probe_inside_leaves() {
    let fx = opt_fx();
    let a = seen();
    let ida =
        fx.e.register_kprobe(&Kprobe::at(NOPS).pre(pre_count).data(a))
            .unwrap();
    let idb =
        fx.e.register_kprobe(&Kprobe::at(NOPS + 2).pre(pre_count_b).data(a))
            .unwrap();
    assert_eq!(code_of(opt(&fx, ida)), "probe-in-region");
    fx.e.unregister(idb).unwrap();
    assert_eq!(opt(&fx, ida), Optimization::Optimized);
}

#[test]
fn every_site_and_policy_reason_is_reported() {
    // Unknown size: code with no symbol.
    let fx = opt_fx();
    const ANON: usize = 0x2100;
    fx.w.load(
        Space::Kernel,
        ANON,
        &cat(&[&li(1, 3), &nop(), &nop(), &ret()]),
    );
    let s = seen();
    let id =
        fx.e.register_kprobe(&Kprobe::at(ANON).pre(pre_count).data(s))
            .unwrap();
    assert_eq!(code_of(opt(&fx, id)), "size-unknown");
    assert_eq!(fx.call(ANON, &[]).r[1], 3);
    assert_eq!(hits(s), 1);
    // Past the function's end: a function ending in a 2-byte instruction.
    const TAIL: usize = 0x2200;
    fx.w.load(Space::Kernel, TAIL, &cat(&[&li(1, 3), &nop()]));
    fx.w.add_symbol("tail", TAIL, 6);
    let id = fx.e.register_kprobe(&Kprobe::at(TAIL + 4).data(s)).unwrap();
    assert_eq!(code_of(opt(&fx, id)), "past-function-end");
    // A text-patching site (static key) inside the region.
    fx.w.add_text_patch_site(MEM_FN + 2);
    let id = fx.e.register_kprobe(&Kprobe::at(MEM_FN).data(s)).unwrap();
    assert_eq!(code_of(opt(&fx, id)), "text-patch-site");
    // Disabled: no [unoptimized] in the listing, optimised once enabled.
    let id =
        fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count).data(s).disabled())
            .unwrap();
    assert_eq!(code_of(opt(&fx, id)), "disabled");
    let line = fx.e.info(id).unwrap().to_string();
    assert!(
        line.contains("[DISABLED]") && !line.contains("unoptimized"),
        "{line}"
    );
    fx.e.enable(id).unwrap();
    assert_eq!(opt(&fx, id), Optimization::Optimized);
    fx.e.disable(id).unwrap();
    assert_eq!(code_of(opt(&fx, id)), "disabled");
    assert_eq!(site(fx.w, ARITH, &orig_at(&fx, ARITH)), Site::Original);
    assert_eq!(fx.e.detours_in_use(), 0);
    // User space.
    fx.load_user(1);
    fx.w.set_task_space(1, 1);
    let id =
        fx.e.register_kprobe(
            &Kprobe::at(ARITH)
                .in_space(Space::User(1))
                .pre(pre_count)
                .data(s),
        )
        .unwrap();
    assert_eq!(code_of(opt(&fx, id)), "user-space");
    assert!(!fx.e.info(id).unwrap().to_string().contains("optimized"));
    let before = hits(s);
    assert_eq!(fx.call_in(Space::User(1), 1, ARITH, &[]).r[1], 13);
    assert_eq!(hits(s), before + 1);

    // No detour memory: none at all, none in reach (a kernel handing out a
    // page out of reach gets it back), none left.
    for mode in ["off", "far", "limit"] {
        let fx = opt_fx();
        match mode {
            "off" => fx.w.set_detours(Detours::Off),
            "far" => fx.w.set_detours(Detours::Far),
            _ => fx.w.limit_detour_pages(0),
        }
        let s = seen();
        let id =
            fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count).data(s))
                .unwrap();
        assert_eq!(code_of(opt(&fx, id)), "no-detour-memory", "{mode}");
        assert_eq!(fx.w.detour_pages_held(), 0, "{mode}: page given back");
        assert_eq!(fx.call(ARITH, &[]).r[1], 13);
        assert_eq!(hits(s), 1);
    }
    // The grace period does not cover preempted tasks.
    let fx = opt_fx();
    fx.w.grace_period_ignores_preempted_tasks();
    let id = fx.e.register_kprobe(&Kprobe::at(ARITH).data(s)).unwrap();
    assert_eq!(code_of(opt(&fx, id)), "grace-period");
    // Four detours per page: a fifth probe takes a second page, and both
    // go back when the probes do.
    let fx = opt_fx();
    let ids: Vec<_> = (0..5)
        .map(|i| {
            fx.e.register_kprobe(&Kprobe::at(NOPS + 8 * i).data(s))
                .unwrap()
        })
        .collect();
    assert!(ids
        .iter()
        .all(|&id| opt(&fx, id) == Optimization::Optimized));
    assert_eq!((fx.e.detours_in_use(), fx.w.detour_pages_held()), (5, 2));
    fx.e.unregister_batch(&ids).unwrap();
    assert_eq!((fx.e.detours_in_use(), fx.w.detour_pages_held()), (0, 0));
}

fn skip_to_return(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    seen_of(ctx).pre.fetch_add(1, Ordering::SeqCst);
    regs.set_gpr(1, 77);
    let ra = regs.gpr(custom_arch::isa::RA);
    regs.set_pc(ra);
    PreAction::SkipInstruction
}

fn bump_r2(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    seen_of(ctx).pre.fetch_add(1, Ordering::SeqCst);
    regs.set_gpr(2, 100);
    PreAction::Continue
}

#[test]
fn a_handler_moving_the_pc_or_changing_registers_is_honoured_through_the_detour() {
    let fx = opt_fx();
    let s = seen();
    let id =
        fx.e.register_kprobe(&Kprobe::at(ARITH).pre(skip_to_return).data(s))
            .unwrap();
    assert_eq!(opt(&fx, id), Optimization::Optimized);
    let before = counts(fx.w);
    assert_eq!(fx.call(ARITH, &[]).r[1], 77);
    assert_eq!(fx.call(CALLER, &[]).r[1], 78);
    let after = counts(fx.w);
    assert_eq!(
        (after.traps - before.traps, after.entries - before.entries),
        (0, 2)
    );
    assert_eq!(hits(s), 2);
    fx.e.unregister(id).unwrap();
    // Register changes without moving the pc: 5 + 100 + 1.
    let id =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(bump_r2).data(s))
            .unwrap();
    assert_eq!(opt(&fx, id), Optimization::Optimized);
    let r = fx.call(ARITH, &[]);
    assert_eq!((r.r[1], r.r[2]), (106, 100));
    // The stack pointer is not read back when the displaced copy runs.
    let mut base = fx.call(ARITH, &[]);
    fx.e.unregister(id).unwrap();
    let unprobed = fx.call(ARITH, &[]);
    base.r[1] = unprobed.r[1];
    base.r[2] = unprobed.r[2];
    assert_eq!(base, unprobed);
}

struct Reentrant {
    w: &'static World,
    e: &'static ToyEngine,
    inner_result: AtomicU64,
}

fn call_arith_from_handler(ctx: &ProbeContext, _regs: &mut dyn Registers) -> PreAction {
    let r = ctx.data.downcast_ref::<Reentrant>().unwrap();
    let stub = STUBS + 0x700;
    let mut nested = Cpu::new(0, 7, Space::Kernel, stub, 0xc900);
    r.w.load(
        Space::Kernel,
        stub,
        &cat(&[&call((ARITH as i64 - stub as i64) as i16), &halt()]),
    );
    assert_eq!(nested.run(r.w, r.e, 1000), Stop::Halted);
    r.inner_result.store(nested.regs.r[1], Ordering::SeqCst);
    r.w.switch_to(0, 0);
    PreAction::Continue
}

#[test]
fn a_hit_while_a_handler_runs_is_missed_and_still_runs_the_displaced_code() {
    let fx = opt_fx();
    let r: &'static Reentrant = Box::leak(Box::new(Reentrant {
        w: fx.w,
        e: fx.e,
        inner_result: AtomicU64::new(0),
    }));
    let outer =
        fx.e.register_kprobe(&Kprobe::at(CALLER).pre(call_arith_from_handler).data(r))
            .unwrap();
    let s = seen();
    // ARITH and ARITH+8: both optimised.
    let inner =
        fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count).data(s))
            .unwrap();
    let inner2 =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count_b).data(s))
            .unwrap();
    assert_eq!(opt(&fx, inner), Optimization::Optimized);
    assert_eq!(opt(&fx, inner2), Optimization::Optimized);
    let before = counts(fx.w);
    assert_eq!(fx.call(CALLER, &[]).r[1], 14);
    assert_eq!(
        r.inner_result.load(Ordering::SeqCst),
        13,
        "nested call computed right"
    );
    let after = counts(fx.w);
    assert_eq!(after.entries - before.entries, 4, "2 nested, 2 outer");
    for id in [inner, inner2] {
        let i = fx.e.info(id).unwrap();
        assert_eq!((i.hits, i.missed), (1, 1));
    }
    assert_eq!(hits(s), 2);
    assert_eq!(fx.e.info(outer).unwrap().hits, 1);
}

#[test]
fn a_kretprobe_with_an_optimised_entry_sees_the_return_value() {
    let fx = opt_fx();
    let s = seen();
    let id =
        fx.e.register_kretprobe(
            &Kretprobe::at(ARITH)
                .entry(entry_count)
                .ret(ret_record)
                .data(s),
        )
        .unwrap();
    assert_eq!(opt(&fx, id), Optimization::Optimized);
    let before = counts(fx.w);
    assert_eq!(fx.call(CALLER, &[]).r[1], 14);
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    let after = counts(fx.w);
    assert_eq!(
        (after.traps - before.traps, after.entries - before.entries),
        (0, 2)
    );
    assert_eq!(s.entry.load(Ordering::SeqCst), 2);
    assert_eq!(*s.values.lock().unwrap(), vec![13, 13]);
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[0]), 0);
    // Recursion: every level's return through the trampoline.
    let r = seen();
    let idr =
        fx.e.register_kretprobe(&Kretprobe::at(RECUR).ret(ret_record).data(r))
            .unwrap();
    assert_eq!(opt(&fx, idr), Optimization::Optimized);
    assert_eq!(fx.call(RECUR, &[4]).r[1], 10);
    assert_eq!(*r.values.lock().unwrap(), vec![0, 1, 3, 6, 10]);
    fx.e.unregister(id).unwrap();
    fx.e.unregister(idr).unwrap();
    assert_eq!(fx.e.detours_in_use(), 0);
}

#[test]
fn every_byte_comes_back_after_disable_and_unregister() {
    let fx = opt_fx();
    let text = |fx: &Fx| {
        [
            fx.w.peek(Space::Kernel, 0x1000, 0x2000),
            fx.w.peek(Space::Kernel, 0x4000, 0x1000),
        ]
        .concat()
    };
    let copy = text(&fx);
    let s = seen();
    let mut ids = Vec::new();
    let mut at = NOPS;
    while at < NOPS + 0x1f0 {
        ids.push(
            fx.e.register_kprobe(&Kprobe::at(at).pre(pre_count).data(s))
                .unwrap(),
        );
        at += 10;
    }
    for a in [
        ARITH,
        ARITH + 8,
        CALLER + 6,
        MEM_FN,
        MEM_FN + 4,
        JUMPY,
        RECUR,
        BRANCHY + 0x10,
    ] {
        ids.push(
            fx.e.register_kprobe(&Kprobe::at(a).pre(pre_count).data(s))
                .unwrap(),
        );
    }
    let n = ids.len();
    assert_eq!(fx.e.detours_in_use(), n, "every one optimised");
    assert_ne!(text(&fx), copy);
    assert_eq!(fx.call(NOPS, &[3]).r[1], 3);
    assert_eq!(fx.call(CALLER, &[]).r[1], 14);
    for &id in &ids {
        fx.e.disable(id).unwrap();
    }
    assert_eq!(text(&fx), copy, "disabled: original text");
    assert_eq!((fx.e.detours_in_use(), fx.w.detour_pages_held()), (0, 0));
    for &id in &ids {
        fx.e.enable(id).unwrap();
    }
    assert_eq!(fx.e.detours_in_use(), n);
    fx.e.unregister_batch(&ids[..n / 2]).unwrap();
    for &id in &ids[n / 2..] {
        fx.e.unregister(id).unwrap();
    }
    assert_eq!(text(&fx), copy, "unregistered: original text");
    assert_eq!((fx.e.detours_in_use(), fx.w.detour_pages_held()), (0, 0));
    assert_eq!(fx.e.slot_usage(), (0, 0));
    assert_eq!(fx.w.pages_held(), 0);
}

/// Injected text-write failures at each step of the install protocol
/// (detour, jump tail, jump head) and of the removal protocol (breakpoint
/// over the jump, tail restored, original bytes back): the site is always
/// either a whole jump with the probe optimised or a breakpoint probe that
/// works, never torn; once the failures stop, everything comes back and
/// nothing leaks.
#[test]
fn a_failing_text_write_at_any_step_leaves_a_working_probe_and_no_torn_jump() {
    let a = ARITH + 8; // region: add, inc
                       // Install: (where, successful writes there first, step).
    let install: [(usize, usize, &str); 3] = [
        (DETOUR_AREA, 0, "detour"),
        (a + 2, 0, "jump tail"),
        (a, 1, "jump head (after the breakpoint)"),
    ];
    for (at, skip, step) in install {
        let fx = opt_fx();
        let orig = orig_at(&fx, a);
        let copy = fx.w.peek(Space::Kernel, ARITH, 0x10);
        fx.w.fail_writes_at_after(at, skip);
        let s = seen();
        let id =
            fx.e.register_kprobe(&Kprobe::at(a).pre(pre_count).data(s))
                .unwrap();
        assert_eq!(code_of(opt(&fx, id)), "patch-failed", "{step}");
        assert_eq!(site(fx.w, a, &orig), Site::Breakpoint, "{step}");
        assert_eq!(
            (fx.e.detours_in_use(), fx.w.detour_pages_held()),
            (0, 0),
            "{step}"
        );
        assert_eq!(fx.call(ARITH, &[]).r[1], 13, "{step}");
        assert_eq!(hits(s), 1, "{step}");
        fx.w.clear_failures();
        // A refresh (the switch) optimises it now.
        fx.e.set_optimization(true).unwrap();
        assert_eq!(opt(&fx, id), Optimization::Optimized, "{step}");
        assert_eq!(fx.call(ARITH, &[]).r[1], 13, "{step}");
        assert_eq!(hits(s), 2, "{step}");
        fx.e.unregister(id).unwrap();
        assert_eq!(fx.w.peek(Space::Kernel, ARITH, 0x10), copy, "{step}");
        assert_eq!(
            (fx.e.detours_in_use(), fx.w.detour_pages_held()),
            (0, 0),
            "{step}"
        );
    }
    // Removal, by unregister and by disable.
    let removal: [(usize, usize, &str); 3] = [
        (a, 1, "breakpoint over the jump"),
        (a + 2, 1, "tail restored"),
        (a, 2, "original bytes back"),
    ];
    for how in ["unregister", "disable", "switch off"] {
        for (at, skip, step) in removal {
            let what = format!("{how}: {step}");
            let fx = opt_fx();
            let orig = orig_at(&fx, a);
            let copy = fx.w.peek(Space::Kernel, ARITH, 0x10);
            let s = seen();
            let id =
                fx.e.register_kprobe(&Kprobe::at(a).pre(pre_count).data(s))
                    .unwrap();
            assert_eq!(opt(&fx, id), Optimization::Optimized);
            // Count the writes the install made at `at`: fail the
            // removal's next one(s).
            fx.w.fail_writes_at_after(at, skip - 1);
            let r = match how {
                "unregister" => fx.e.unregister(id),
                "disable" => fx.e.disable(id),
                _ => fx.e.set_optimization(false),
            };
            if how == "switch off" && step == "original bytes back" {
                // Switching off writes no original bytes: no failure.
                assert!(r.is_ok(), "{what}");
            } else {
                assert!(r.is_err(), "{what}: the failure is reported");
            }
            // Whatever happened, the site is whole and the probe works.
            let info = fx.e.info(id).unwrap();
            let text = site(fx.w, a, &orig);
            match (&text, info.optimization) {
                (Site::Jump(_), Optimization::Optimized) => {
                    assert!(info.enabled, "{what}");
                    assert_eq!(fx.e.detours_in_use(), 1, "{what}");
                }
                (Site::Breakpoint, Optimization::NotOptimized(_)) => {
                    assert!(info.enabled || how == "disable", "{what}");
                }
                (Site::BreakpointOverJump, Optimization::NotOptimized(_)) => {
                    // Staged: the detour is still held, the breakpoint
                    // path resumes in it.
                    assert!(info.enabled, "{what}");
                    assert_eq!(fx.e.detours_in_use(), 1, "{what}");
                }
                other => panic!("{what}: inconsistent {other:?}"),
            }
            let before = hits(s);
            assert_eq!(fx.call(ARITH, &[]).r[1], 13, "{what}");
            assert_eq!(hits(s), before + info.enabled as usize, "{what}");
            fx.w.clear_failures();
            fx.e.set_optimization(true).unwrap();
            fx.e.unregister(id).unwrap();
            assert_eq!(
                fx.w.peek(Space::Kernel, ARITH, 0x10),
                copy,
                "{what}: every byte back after the failures stopped"
            );
            assert_eq!(
                (fx.e.detours_in_use(), fx.w.detour_pages_held()),
                (0, 0),
                "{what}"
            );
            assert_eq!(fx.e.slot_usage(), (0, 0), "{what}");
        }
    }
}

/// Another CPU runs the probed function after every completed text write
/// of the install and removal protocols (registration lock held): in
/// every intermediate state (breakpoint, staged with the jump's tail
/// written, whole jump, breakpoint over the jump, tail restored) the call
/// computes right and the handler runs exactly once per call.
#[test]
fn another_cpu_runs_right_through_every_step_of_install_and_removal() {
    let fx = opt_fx();
    let s = seen();
    let (w, e) = (fx.w, fx.e);
    let results = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = results.clone();
    w.load(Space::Kernel, STUBS + 0x50, &halt());
    w.on_text_synced(move || {
        let mut cpu = Cpu::new(1, 1, Space::Kernel, ARITH, 0xe000);
        cpu.regs.r[14] = STUBS as u64 + 0x50;
        assert_eq!(cpu.run(w, e, 1000), Stop::Halted);
        out.lock()
            .unwrap()
            .push((cpu.regs.r[1], cpu.traps, cpu.detour_entries));
        w.switch_to(0, 0);
    });
    let id = e
        .register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count).data(s))
        .unwrap();
    assert_eq!(opt(&fx, id), Optimization::Optimized);
    e.set_optimization(false).unwrap();
    e.set_optimization(true).unwrap();
    e.disable(id).unwrap();
    e.enable(id).unwrap();
    e.unregister(id).unwrap();
    w.clear_text_synced_hook();
    let results = results.lock().unwrap();
    // Writes: install (bp, detour, tail, head) ×3, removal (bp, tail) ×3
    // plus the original bytes at disable and unregister.
    assert!(results.len() >= 15, "{} runs", results.len());
    assert!(results.iter().all(|r| r.0 == 13), "{results:?}");
    // Every run while the probe was armed hit it once: all but the run
    // after the last write (original bytes back) and the one after
    // disable's.
    let hit_runs = results.iter().filter(|r| r.1 > 0 || r.2 > 0).count();
    assert_eq!(hits(s), hit_runs, "{results:?}");
    assert!(
        results.iter().any(|r| r.1 == 0 && r.2 == 1),
        "a run through the jump"
    );
    assert!(
        results.iter().any(|r| r.1 == 1 && r.2 == 0),
        "a run through the staged breakpoint"
    );
    assert_eq!(
        fx.w.peek(Space::Kernel, ARITH, 0x10),
        library()[0].2[..]
            .iter()
            .chain([0u8; 2].iter())
            .copied()
            .collect::<Vec<_>>()
    );
}

/// A CPU stopped inside the detour's displaced copy (it trapped on the
/// breakpoint while the jump was being installed): unregistering waits
/// for it (here the grace period moves it on) before the detour page goes
/// back; the world asserts no CPU runs in a page it gets back.
#[test]
fn a_cpu_inside_a_detour_keeps_it_until_the_grace_period_moves_it_on() {
    let fx = opt_fx();
    let s = seen();
    let (w, e) = (fx.w, fx.e);
    let id = e
        .register_kprobe(&Kprobe::at(ARITH).pre(pre_count).data(s))
        .unwrap();
    assert_eq!(opt(&fx, id), Optimization::Optimized);
    let mut cpu = fx.cpu_calling(1, 1, Space::Kernel, ARITH, &[]);
    // Into the detour's copy of the region.
    while !(DETOUR_AREA..DETOUR_AREA + DETOUR_AREA_PAGES * PAGE).contains(&(cpu.regs.pc as usize))
        || cpu.detour_entries == 0
    {
        assert_eq!(cpu.step(w, e), None);
    }
    let cpu = std::sync::Arc::new(std::sync::Mutex::new(cpu));
    let c = cpu.clone();
    w.on_synchronize(move || {
        let mut cpu = c.lock().unwrap();
        while (DETOUR_AREA..DETOUR_AREA + DETOUR_AREA_PAGES * PAGE)
            .contains(&(cpu.regs.pc as usize))
        {
            assert_eq!(cpu.step(w, e), None);
        }
        w.switch_to(0, 0);
    });
    e.unregister(id).unwrap();
    w.clear_sync_hook();
    assert_eq!(w.detour_pages_held(), 0);
    let mut cpu = cpu.lock().unwrap();
    assert_eq!(cpu.run(w, e, 1000), Stop::Halted);
    assert_eq!(cpu.regs.r[1], 13);
    assert_eq!(hits(s), 1);
}

/// The world's check behind the test above: a detour page given back while
/// a CPU runs in it is caught (here the grace period does not move the
/// CPU on).
#[test]
#[should_panic(expected = "freed while CPU 1 runs in it")]
fn the_world_catches_a_detour_freed_under_a_cpu() {
    let fx = opt_fx();
    let (w, e) = (fx.w, fx.e);
    let id = e.register_kprobe(&Kprobe::at(ARITH).data(seen())).unwrap();
    let mut cpu = fx.cpu_calling(1, 1, Space::Kernel, ARITH, &[]);
    while cpu.detour_entries == 0 {
        assert_eq!(cpu.step(w, e), None);
    }
    w.switch_to(0, 0);
    let _ = e.unregister(id);
}

/// A small deterministic generator (no new dependency: the model test
/// only needs reproducible sequences; the seed is in every message).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

struct ModelProbe {
    id: ProbeId,
    addr: usize,
    post: bool,
    optout: bool,
    enabled: bool,
    seen: &'static Seen,
    pre: u64,
    posts: u64,
}

/// Random register / unregister / enable / disable / switch / call
/// sequences against a model of what must be optimised and what every
/// call must return and count.
#[test]
fn model_based_random_sequences() {
    const SITES: &[usize] = &[
        ARITH,
        ARITH + 4,
        ARITH + 8,
        ARITH + 0xa,
        CALLER + 6,
        CALLER + 8,
        MEM_FN,
        MEM_FN + 4,
        NOPS,
        NOPS + 2,
        NOPS + 4,
        NOPS + 0x80,
    ];
    const CALLS: &[(usize, &[u64], u64)] = &[
        (ARITH, &[], 13),
        (CALLER, &[], 14),
        (MEM_FN, &[], 42),
        (NOPS, &[7], 7),
    ];
    let lib = library();
    let func_of = |a: usize| {
        lib.iter()
            .find(|(f, _, c)| (*f..*f + c.len()).contains(&a))
            .map(|(f, _, c)| (*f, c.clone()))
            .unwrap()
    };
    let (mut ops_total, mut optimised_seen) = (0usize, 0usize);
    for seed in 1..=40u64 {
        let fx = opt_fx();
        let fixups: Vec<usize> = fx.w.fixups.lock().unwrap().iter().map(|f| f.0).collect();
        let visits: Vec<HashMap<usize, u64>> =
            CALLS.iter().map(|(f, a, _)| fx.visits(*f, a)).collect();
        // Kernel text 0x1000..0x5000 without the call stubs (rewritten by
        // every call).
        let kernel_text = |w: &World| {
            let mut t = w.peek(Space::Kernel, 0x1000, 0x4000);
            t[0x2000..0x3000].fill(0);
            t
        };
        let original = kernel_text(fx.w);
        let region = |a: usize| {
            let (f, code) = func_of(a);
            expected(f, &code, a - f, &fixups)
        };
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut probes: Vec<ModelProbe> = Vec::new();
        let mut on = true;
        for step in 0..150 {
            ops_total += 1;
            let what = format!("seed {seed} step {step}");
            match rng.below(10) {
                0..=2 if probes.len() < 12 => {
                    let addr = SITES[rng.below(SITES.len())];
                    let (post, optout, enabled) = (rng.chance(20), rng.chance(15), !rng.chance(15));
                    let s = seen();
                    let mut k = Kprobe::at(addr).pre(pre_count).data(s);
                    if post {
                        k = k.post(post_count);
                    }
                    if optout {
                        k = k.no_optimize();
                    }
                    if !enabled {
                        k = k.disabled();
                    }
                    let id =
                        fx.e.register_kprobe(&k)
                            .unwrap_or_else(|e| panic!("{what}: {e}"));
                    probes.push(ModelProbe {
                        id,
                        addr,
                        post,
                        optout,
                        enabled,
                        seen: s,
                        pre: 0,
                        posts: 0,
                    });
                }
                3 if !probes.is_empty() => {
                    let p = probes.swap_remove(rng.below(probes.len()));
                    fx.e.unregister(p.id).unwrap();
                }
                4 if !probes.is_empty() => {
                    let i = rng.below(probes.len());
                    fx.e.enable(probes[i].id).unwrap();
                    probes[i].enabled = true;
                }
                5 if !probes.is_empty() => {
                    let i = rng.below(probes.len());
                    fx.e.disable(probes[i].id).unwrap();
                    probes[i].enabled = false;
                }
                6 => {
                    on = rng.chance(70);
                    fx.e.set_optimization(on).unwrap();
                }
                _ => {
                    let c = rng.below(CALLS.len());
                    let (f, args, want) = CALLS[c];
                    let before = counts(fx.w);
                    let r = fx.call(f, args);
                    let after = counts(fx.w);
                    assert_eq!(r.r[1], want, "{what}: result of {f:#x}");
                    let mut entries = 0;
                    let mut any_trap_site = false;
                    let mut addrs: Vec<usize> = probes.iter().map(|p| p.addr).collect();
                    addrs.sort();
                    addrs.dedup();
                    for &a in &addrs {
                        let n = visits[c].get(&a).copied().unwrap_or(0);
                        let armed = probes.iter().any(|p| p.addr == a && p.enabled);
                        if !armed || n == 0 {
                            continue;
                        }
                        let id = probes.iter().find(|p| p.addr == a).unwrap().id;
                        if opt(&fx, id) == Optimization::Optimized {
                            entries += n;
                        } else {
                            any_trap_site = true;
                        }
                    }
                    assert_eq!(
                        after.entries - before.entries,
                        entries,
                        "{what}: detour entries"
                    );
                    if !any_trap_site {
                        assert_eq!(after.traps, before.traps, "{what}: no trap");
                    }
                    for p in probes.iter_mut().filter(|p| p.enabled) {
                        let n = visits[c].get(&p.addr).copied().unwrap_or(0);
                        p.pre += n;
                        if p.post {
                            p.posts += n;
                        }
                    }
                }
            }
            // The model against the engine.
            let mut optimised = 0;
            let mut text = original.clone();
            for p in &probes {
                let info = fx.e.info(p.id).unwrap();
                assert_eq!(info.enabled, p.enabled, "{what}");
                assert_eq!(
                    (info.hits, info.missed),
                    (p.pre, 0),
                    "{what}: {:#x}",
                    p.addr
                );
                assert_eq!(hits(p.seen) as u64, p.pre, "{what}");
                assert_eq!(p.seen.post.load(Ordering::SeqCst) as u64, p.posts, "{what}");
                let here: Vec<&ModelProbe> = probes.iter().filter(|q| q.addr == p.addr).collect();
                let armed = here.iter().any(|q| q.enabled);
                let blocked = here.iter().any(|q| q.enabled && (q.post || q.optout));
                let eligible = region(p.addr);
                let inside = match eligible {
                    Ok(len) => probes
                        .iter()
                        .any(|q| q.addr > p.addr && q.addr < p.addr + len),
                    Err(_) => false,
                };
                let must_not = !on || !armed || blocked || eligible.is_err() || inside;
                let got = info.optimization;
                if got == Optimization::Optimized {
                    assert!(
                        !must_not,
                        "{what}: {:#x} optimised against the rules",
                        p.addr
                    );
                } else if !must_not {
                    // Every eligible site is optimised, also after a probe
                    // inside its region left (the engine re-optimises it).
                    panic!("{what}: {:#x} eligible but {got}", p.addr);
                }
                // The reason names the first rule that applies.
                if !on {
                    assert_eq!(code_of(got), "switched-off", "{what}");
                } else if !armed {
                    assert_eq!(code_of(got), "disabled", "{what}");
                } else if on && blocked {
                    assert!(
                        ["post-handler", "opted-out"].contains(&code_of(got)),
                        "{what}: {}",
                        code_of(got)
                    );
                }
                let off = p.addr - 0x1000;
                if here[0].id == p.id {
                    match (armed, got) {
                        (true, Optimization::Optimized) => {
                            optimised += 1;
                            assert!(
                                matches!(
                                    site(fx.w, p.addr, &original[off..off + 4]),
                                    Site::Jump(_)
                                ),
                                "{what}"
                            );
                            let now = fx.w.peek(Space::Kernel, p.addr, 4);
                            text[off..off + 4].copy_from_slice(&now);
                        }
                        (true, _) => text[off..off + 2].copy_from_slice(&[op::BRK, 0]),
                        (false, _) => {}
                    }
                }
            }
            optimised_seen += optimised;
            assert_eq!(fx.e.detours_in_use(), optimised, "{what}: detours");
            let now = kernel_text(fx.w);
            let diff: Vec<(usize, u8, u8)> = (0..now.len())
                .filter(|&i| now[i] != text[i])
                .take(6)
                .map(|i| (0x1000 + i, now[i], text[i]))
                .collect();
            assert!(
                diff.is_empty(),
                "{what}: text is not the original plus breakpoints and jumps: (addr, is, model) {diff:x?}"
            );
        }
        let ids: Vec<ProbeId> = probes.iter().map(|p| p.id).collect();
        fx.e.unregister_batch(&ids).unwrap();
        assert!(kernel_text(fx.w) == original, "seed {seed}: text restored");
        assert_eq!((fx.e.detours_in_use(), fx.w.detour_pages_held()), (0, 0));
    }
    eprintln!("{ops_total} operations, {optimised_seen} optimised probe-states checked");
    assert!(optimised_seen > 500);
}

/// Real threads call through optimised probes while the main thread
/// optimises, un-optimises, disables, enables, registers and unregisters
/// probes on the same function ≥ 1,000 times: every result is right, and
/// the probe that stays enabled counts every call exactly.
#[test]
fn callers_on_other_threads_while_optimisation_churns() {
    #[cfg(miri)]
    const SIZES: (usize, usize) = (2, 2);
    #[cfg(not(miri))]
    const SIZES: (usize, usize) = (3, 1000);
    let (threads, rounds) = SIZES;
    let stop: &'static std::sync::atomic::AtomicBool =
        Box::leak(Box::new(std::sync::atomic::AtomicBool::new(false)));
    let fx = opt_fx();
    let (w, e) = (fx.w, fx.e);
    w.stop_machine_text_writes(true);
    w.per_thread_cpu(3, 7);
    // Stays enabled: its count is exact. (Before the worker threads'
    // grace period is installed: optimising waits for one.)
    let fixed = seen();
    let fixed_id = e
        .register_kprobe(&Kprobe::at(ARITH).pre(pre_count).data(fixed))
        .unwrap();
    assert_eq!(opt(&fx, fixed_id), Optimization::Optimized);
    let q = Quiescence::install(w, threads);
    q.only_between_calls();
    let workers: Vec<_> = (0..threads)
        .map(|k| {
            let q = q.clone();
            let start = fx.cpu_calling(k, k, Space::Kernel, CALLER, &[]);
            std::thread::spawn(move || {
                w.per_thread_cpu(k, k);
                let n = q.run_calls_until(k, (w, e), &start, stop, 14);
                w.shared_cpu();
                n
            })
        })
        .collect();
    let churn = seen();
    let post = seen();
    let neighbour = seen();
    let mut optimised_rounds = 0;
    for round in 0..rounds {
        let id = e
            .register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count).data(churn))
            .unwrap();
        optimised_rounds += (opt(&fx, id) == Optimization::Optimized) as usize;
        match round % 4 {
            0 => {
                e.set_optimization(false).unwrap();
                e.set_optimization(true).unwrap();
            }
            1 => {
                e.disable(id).unwrap();
                e.enable(id).unwrap();
            }
            2 => {
                let p = e
                    .register_kprobe(
                        &Kprobe::at(ARITH + 8)
                            .pre(pre_count_b)
                            .post(post_count)
                            .data(post),
                    )
                    .unwrap();
                e.unregister(p).unwrap();
            }
            _ => {
                // An optimised neighbour comes and goes (ARITH+4: its
                // region, li, ends where the churned probe's begins).
                let p = e
                    .register_kprobe(&Kprobe::at(ARITH + 4).pre(pre_count_b).data(neighbour))
                    .unwrap();
                e.unregister(p).unwrap();
            }
        }
        e.unregister(id).unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let per_thread: Vec<u64> = workers.into_iter().map(|t| t.join().unwrap()).collect();
    w.clear_sync_hook();
    w.shared_cpu();
    // Every grace period of the churn waited for a call of every worker.
    assert!(
        per_thread.iter().all(|&n| n >= rounds as u64),
        "{per_thread:?}"
    );
    let total: u64 = per_thread.iter().sum();
    assert_eq!(hits(fixed) as u64, total, "the fixed probe saw every call");
    assert_eq!(e.info(fixed_id).unwrap().hits, total);
    assert_eq!(opt(&fx, fixed_id), Optimization::Optimized);
    assert!(hits(churn) as u64 <= total);
    // A post-handler runs only after its own pre-handler's step (a hit in
    // flight when it is unregistered may miss it).
    assert!(post.post.load(Ordering::SeqCst) <= post.pre.load(Ordering::SeqCst));
    assert!(
        optimised_rounds >= rounds * 9 / 10,
        "{optimised_rounds} of {rounds}"
    );
    eprintln!(
        "{total} calls, churn probe hit {} times, {} detour entries, {} traps",
        hits(churn),
        w.detour_entries(),
        w.traps_taken()
    );
    e.unregister(fixed_id).unwrap();
    assert_eq!((e.detours_in_use(), w.detour_pages_held()), (0, 0));
    assert_eq!(
        w.peek(Space::Kernel, ARITH, 0xe),
        library()[0].2,
        "text restored"
    );
}

/// Two failures in one install: the jump's head cannot be written, and
/// then neither can the original bytes over its tail. The tail stays in
/// the text, so the point must keep resuming in the detour (staged), not
/// become a plain breakpoint probe whose step slot jumps back into the
/// jump's tail; once writes work again, removing it restores every byte.
#[test]
fn a_failed_head_write_then_a_failed_tail_restore_never_runs_the_jump_tail() {
    let fx = opt_fx();
    let a = ARITH + 8; // add (2 bytes), inc (2 bytes)
    let orig = orig_at(&fx, a);
    let copy = fx.w.peek(Space::Kernel, ARITH, 0x10);
    fx.w.fail_writes_at_after(a, 1); // the breakpoint works, the head fails
    fx.w.fail_writes_at_after(a + 2, 1); // the tail works, its restore fails
    let s = seen();
    let id =
        fx.e.register_kprobe(&Kprobe::at(a).pre(pre_count).data(s))
            .unwrap();
    assert_ne!(opt(&fx, id), Optimization::Optimized);
    let text = site(fx.w, a, &orig);
    assert!(
        matches!(text, Site::Breakpoint | Site::BreakpointOverJump),
        "{text:?}"
    );
    for n in 1..=3 {
        assert_eq!(fx.call(ARITH, &[]).r[1], 13, "call {n}");
        assert_eq!(hits(s), n, "call {n}");
    }
    fx.w.clear_failures();
    fx.e.unregister(id).unwrap();
    assert_eq!(fx.w.peek(Space::Kernel, ARITH, 0x10), copy);
    assert_eq!((fx.e.detours_in_use(), fx.w.detour_pages_held()), (0, 0));
}

/// A CPU that trapped on the breakpoint before the jump was staged and is
/// in the first instruction's boosted slot: the grace period of the
/// install must move it past the whole region, not only out of the slot
/// (it jumps back into the region, onto bytes the jump's tail replaces).
/// Here the grace period runs the CPU until it is out of the region as
/// well, and the call computes right. (With a grace period that only
/// moves the CPU out of the slot, which is all `KernelServices::
/// synchronize` documents, the CPU resumes at ARITH+0xa on the jump's
/// tail and faults there: observed with `wait_past_region = false`.)
#[test]
fn a_cpu_leaving_a_boost_slot_into_the_region_is_waited_for() {
    {
        let wait_past_region = true;
        let fx = opt_fx();
        let (w, e) = (fx.w, fx.e);
        e.set_optimization(false).unwrap();
        let s = seen();
        let id = e
            .register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count).data(s))
            .unwrap();
        let mut cpu = fx.cpu_calling(1, 1, Space::Kernel, ARITH, &[]);
        fx.step_into_slot(&mut cpu);
        let cpu = std::sync::Arc::new(std::sync::Mutex::new(cpu));
        let c = cpu.clone();
        w.on_synchronize(move || {
            let mut cpu = c.lock().unwrap();
            let region = ARITH + 8..ARITH + 0xc;
            while cpu.regs.pc as usize >= custom_arch::world::SLOT_AREA
                || (wait_past_region && region.contains(&(cpu.regs.pc as usize)))
            {
                assert_eq!(cpu.step(w, e), None);
            }
            w.switch_to(0, 0);
        });
        e.set_optimization(true).unwrap();
        w.clear_sync_hook();
        assert_eq!(opt(&fx, id), Optimization::Optimized);
        let mut cpu = cpu.lock().unwrap();
        assert_eq!(cpu.run(w, e, 1000), Stop::Halted, "pc {:#x}", cpu.regs.pc);
        assert_eq!(cpu.regs.r[1], 13);
    }
}

/// A registration that fails (here: off an instruction boundary, inside
/// an optimised probe's region) changes nothing: the optimised probe
/// stays optimised, the text and the listing are as before (the snapshot
/// rule of tests/bad_input.rs).
#[test]
fn a_failed_registration_inside_a_region_changes_nothing() {
    let fx = opt_fx();
    let s = seen();
    let id =
        fx.e.register_kprobe(&Kprobe::at(MEM_FN).pre(pre_count).data(s))
            .unwrap();
    assert_eq!(opt(&fx, id), Optimization::Optimized);
    let before = fx.snapshot();
    // MEM_FN+2 is the middle of `li r2, 42`.
    assert!(fx
        .e
        .register_kprobe(&Kprobe::at(MEM_FN + 2).data(s))
        .is_err());
    assert_eq!(fx.snapshot(), before);
    assert_eq!(opt(&fx, id), Optimization::Optimized);
}

/// The same when the new probe fails later, building its point (no slot
/// page left): the optimised probe whose region holds the address was
/// un-optimised first (`unoptimize_covering`, before `create_point`) and
/// must get its jump back (`reoptimize_covering` on the failure path), not
/// stay listed "probe-in-region" for a probe that does not exist.
#[test]
fn a_registration_failing_for_slots_inside_a_region_changes_nothing() {
    let fx = opt_fx();
    let s = seen();
    let id =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count).data(s))
            .unwrap();
    assert_eq!(opt(&fx, id), Optimization::Optimized);
    // Fill the slot pages held, then allow no new one.
    let mut at = NOPS;
    while !fx.e.slot_usage().0.is_multiple_of(PAGE / 8) {
        fx.e.register_kprobe(&Kprobe::at(at).data(s)).unwrap();
        at += 8;
    }
    fx.w.limit_pages(0);
    let before = fx.snapshot();
    let r = fx.e.register_kprobe(&Kprobe::at(ARITH + 0xa).data(s));
    assert!(r.is_err(), "{r:?}");
    assert_eq!(opt(&fx, id), Optimization::Optimized);
    assert_eq!(fx.snapshot(), before);
}
