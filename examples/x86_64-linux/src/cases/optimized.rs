//! Jump-optimised probes ("optprobes") on real x86_64 code: a probe hit
//! through a `jmp rel32` and a detour, no `int3`, no signal.
//!
//! - **differential**: every instruction boundary of the instruction-case
//!   functions, probed twice, once allowed to be optimised and once
//!   opted out (a plain `int3` probe): the same hits, and the same result,
//!   every register and the flags after the call as the unprobed run;
//!   where optimised, no trap at all. Every site the engine does not
//!   optimise is listed by reason, and the reasons the x86_64 rules must
//!   produce on these functions (a branch into the region, an indirect
//!   jump, a simulated instruction) are required to appear.
//! - **reasons**: a post-handler (alone, or joining an optimised address,
//!   which un-optimises it first), an opt-out, the engine-wide switch, a
//!   probe inside an optimised region, no detour memory; each probe keeps
//!   working through its breakpoint.
//! - **pc change**: a pre-handler that returns from the probed function at
//!   its entry is honoured through the detour.
//! - **kretprobe**: an optimised entry on the recursive `tf_sum`.
//! - **grace period**: a grace period does not end while another thread
//!   runs a handler from a detour or from the return trampoline (there a
//!   `SIGUSR1` can interrupt it, as an interrupt could in a kernel that
//!   did not mask them).
//! - **churn**: two threads call probed functions while this one
//!   optimises, un-optimises, disables and unregisters the same probes
//!   (a kprobe and a kretprobe, both optimised when registered) 1,000
//!   times. The callers pass a voluntary quiescent point each round
//!   (`threads::quiescent_point`, RCU-tasks' voluntary context switch):
//!   a `SIGUSR1` sent while they sit in a `SIGTRAP` handler is delivered as
//!   it returns, into a slot or a detour, where it cannot count.
//!
//! The harness's "kernel" runs in user mode: detours do not mask
//! interrupts (`cli` faults there), and the grace period does not count a
//! thread interrupted in a displaced region or a detour
//! (`Engine::in_optimized_code`).

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::collections::BTreeMap;
use std::sync::Arc;

use probe_core::{
    Kprobe, Kretprobe, NotOptimized, Optimization, PreAction, ProbeContext, ProbeErrorKind,
    ProbeId, Registers, SiteRule,
};
use x86_64_linux::recorder::{pre_record, ret_record, Recorder};
use x86_64_linux::report::Report;
use x86_64_linux::testfns;
use x86_64_linux::{ensure, ensure_eq};

use super::{call_fn, peek, CheckResult, Probes};
use crate::{services, signals, threads, ENGINE};

/// Registers around a call: rax, rbx, rcx, rdx, rsi, rdi, rbp, r8..r15,
/// then the flags.
type RegFile = [u64; 16];

global_asm!(
    // optcase_call_capture(f: rdi, regs_in: rsi, regs_out: rdx): load every
    // register and the flags from `regs_in`, call `f`, store every register
    // and the flags into `regs_out`. Callee-saved registers are preserved.
    ".pushsection .text.optcase_call_capture, \"ax\", @progbits",
    ".globl optcase_call_capture",
    "optcase_call_capture:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "push rdx",
    "push rdi",
    "sub rsp, 8",
    "push qword ptr [rsi + 120]",
    "popfq",
    "mov rax, [rsi]",
    "mov rbx, [rsi + 8]",
    "mov rcx, [rsi + 16]",
    "mov rdx, [rsi + 24]",
    "mov rdi, [rsi + 40]",
    "mov rbp, [rsi + 48]",
    "mov r8, [rsi + 56]",
    "mov r9, [rsi + 64]",
    "mov r10, [rsi + 72]",
    "mov r11, [rsi + 80]",
    "mov r12, [rsi + 88]",
    "mov r13, [rsi + 96]",
    "mov r14, [rsi + 104]",
    "mov r15, [rsi + 112]",
    "mov rsi, [rsi + 32]",
    "call qword ptr [rsp + 8]",
    "pushfq",
    "push rax",
    "mov rax, [rsp + 32]",
    "mov [rax + 8], rbx",
    "mov [rax + 16], rcx",
    "mov [rax + 24], rdx",
    "mov [rax + 32], rsi",
    "mov [rax + 40], rdi",
    "mov [rax + 48], rbp",
    "mov [rax + 56], r8",
    "mov [rax + 64], r9",
    "mov [rax + 72], r10",
    "mov [rax + 80], r11",
    "mov [rax + 88], r12",
    "mov [rax + 96], r13",
    "mov [rax + 104], r14",
    "mov [rax + 112], r15",
    "pop qword ptr [rax]",
    "pop qword ptr [rax + 120]",
    "add rsp, 24",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    ".popsection",
);

extern "C" {
    fn optcase_call_capture(f: usize, regs_in: *const RegFile, regs_out: *mut RegFile);
}

/// The flags a call starts with: IF and the reserved bit, plus CF, ZF, SF
/// in the second set (DF clear, as the ABI wants).
const FLAG_SETS: [u64; 2] = [0x202, 0x2c3];

/// Call `f` with every register set from `a, b, c` and a pattern; every
/// register and the flags after it.
fn capture(f: usize, args: [u64; 3], flags: u64) -> RegFile {
    let mut regs: RegFile = core::array::from_fn(|i| 0x5151_0000_0000_0000 | (i as u64) << 8);
    regs[5] = args[0]; // rdi
    regs[4] = args[1]; // rsi
    regs[3] = args[2]; // rdx
    regs[15] = flags;
    let mut out = [0u64; 16];
    // SAFETY: `f` is a test function of the instruction cases, System V,
    // at most three integer arguments, called with the arguments its case
    // uses; the routine restores the callee-saved registers it loads.
    unsafe { optcase_call_capture(f, &regs, &mut out) };
    // Only the arithmetic flags and DF are the code's; the rest is the OS's.
    out[15] &= 0xcd5;
    out
}

/// The functions of the instruction cases with their arguments, plus the
/// sweep function and the recursive one.
fn callables() -> Vec<(&'static str, [u64; 3])> {
    let mut v = super::insn::callables();
    v.push(("tf_sweep", [0x1234, 0, 0]));
    v.push(("tf_fact", [6, 0, 0]));
    v.push(("tf_sum", [10, 0, 0]));
    v.sort();
    v.dedup_by_key(|(f, _)| *f);
    v
}

fn optimization(id: ProbeId) -> Result<Optimization, String> {
    ENGINE
        .info(id)
        .map(|i| i.optimization)
        .map_err(|e| e.to_string())
}

/// One function, every boundary: optimised (or not, by reason) versus the
/// plain breakpoint probe versus unprobed. Returns (optimised, sites).
fn one_function(
    name: &str,
    args: [u64; 3],
    reasons: &mut BTreeMap<&'static str, usize>,
) -> Result<(usize, usize), String> {
    let f = testfns::func(name);
    let unprobed: Vec<RegFile> = FLAG_SETS
        .iter()
        .map(|&fl| capture(f.start, args, fl))
        .collect();
    let original = peek(f.start, f.size)?;
    let (mut optimized, mut sites) = (0, 0);
    for off in 0..f.size {
        let addr = f.start + off;
        let mut runs = Vec::new();
        for allow in [true, false] {
            let rec = Recorder::leak();
            let mut probes = Probes::new();
            let k = Kprobe::at(addr).pre(pre_record).data(rec);
            let r = ENGINE.register_kprobe(&if allow { k } else { k.no_optimize() });
            if let Err(e) = &r {
                if matches!(e.kind(), ProbeErrorKind::NotInsnBoundary { .. }) {
                    break;
                }
            }
            let id = match r {
                Ok(id) => probes.add(name, Ok(id))?,
                // Refused for probing at all (both runs agree): skip.
                Err(_) => break,
            };
            let opt = optimization(id)?;
            let traps = signals::traps();
            for (i, &fl) in FLAG_SETS.iter().enumerate() {
                let got = capture(f.start, args, fl);
                ensure_eq!(
                    got,
                    unprobed[i],
                    "{name}+{off:#x} ({opt}) registers after the call"
                );
            }
            let trapped = signals::traps() - traps;
            if opt == Optimization::Optimized {
                ensure!(allow, "{name}+{off:#x}: optimised although opted out");
                ensure_eq!(
                    trapped,
                    0,
                    "{name}+{off:#x}: traps taken by an optimised probe"
                );
            }
            runs.push((opt, rec.hits()));
            probes.clear()?;
        }
        if runs.is_empty() {
            continue;
        }
        ensure_eq!(runs.len(), 2, "{name}+{off:#x}: registered once only");
        ensure_eq!(
            runs[0].1,
            runs[1].1,
            "{name}+{off:#x}: hits optimised vs breakpoint"
        );
        ensure_eq!(
            runs[1].0,
            Optimization::NotOptimized(NotOptimized::OptedOut),
            "{name}+{off:#x}: the opted-out run"
        );
        sites += 1;
        match runs[0].0 {
            Optimization::Optimized => optimized += 1,
            Optimization::NotOptimized(why) => *reasons.entry(why.code()).or_default() += 1,
        }
    }
    ensure_eq!(
        peek(f.start, f.size)?,
        original,
        "{name}: text after the sweep"
    );
    Ok((optimized, sites))
}

fn differential() -> CheckResult {
    ENGINE.set_optimization(true).map_err(|e| e.to_string())?;
    let mut reasons = BTreeMap::new();
    let (mut optimized, mut sites, mut funcs) = (0, 0, 0);
    for (name, args) in callables() {
        let (o, s) = one_function(name, args, &mut reasons)?;
        optimized += o;
        sites += s;
        funcs += 1;
    }
    for needed in ["jump-into-region", "indirect-jump", "not-boostable"] {
        ensure!(
            reasons.contains_key(needed),
            "no site refused as {needed}: {reasons:?}"
        );
    }
    ensure!(
        optimized * 3 > sites,
        "only {optimized} of {sites} sites optimised"
    );
    ensure_eq!(ENGINE.detours_in_use(), 0, "detours left");
    let why: Vec<String> = reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
    Ok(format!(
        "{funcs} functions, {sites} sites: {optimized} optimised (0 traps, same hits, registers and flags as int3 and unprobed), the rest: {}",
        why.join(", ")
    ))
}

/// The entry of `tf_alu` (optimisable: the differential proves which).
fn alu_entry() -> usize {
    testfns::func("tf_alu").start
}

fn alu(a: u64, b: u64) -> u64 {
    call_fn("tf_alu", a, b, 0).ret
}

fn not(why: NotOptimized) -> Optimization {
    Optimization::NotOptimized(why)
}

fn expect_opt(id: ProbeId, want: Optimization, what: &str) -> Result<(), String> {
    ensure_eq!(optimization(id)?, want, "{what}");
    Ok(())
}

fn reasons() -> CheckResult {
    ENGINE.set_optimization(true).map_err(|e| e.to_string())?;
    let want = alu(10, 32);
    let at = alu_entry();
    let (a, b) = (Recorder::leak(), Recorder::leak());
    let mut probes = Probes::new();
    let plain = probes.add(
        "plain",
        ENGINE.register_kprobe(&Kprobe::at(at).pre(pre_record).data(a)),
    )?;
    expect_opt(plain, Optimization::Optimized, "a lone pre-handler probe")?;
    // A post-handler joins: back to the breakpoint first, both run.
    let post = probes.add(
        "post",
        ENGINE.register_kprobe(
            &Kprobe::at(at)
                .pre(pre_record)
                .post(x86_64_linux::recorder::post_record)
                .data(b),
        ),
    )?;
    expect_opt(
        plain,
        not(NotOptimized::PostHandler),
        "with a post-handler joined",
    )?;
    let traps = signals::traps();
    ensure_eq!(alu(10, 32), want, "result with the post-handler");
    ensure!(signals::traps() > traps, "the breakpoint path took over");
    ensure_eq!(
        (a.hits(), b.hits(), b.post_hits()),
        (1, 1, 1),
        "hits (pre, pre, post)"
    );
    // It leaves: optimised again.
    ENGINE.unregister(post).map_err(|e| e.to_string())?;
    probes.0.retain(|&i| i != post);
    expect_opt(
        plain,
        Optimization::Optimized,
        "after the post-handler left",
    )?;
    // The switch.
    ENGINE.set_optimization(false).map_err(|e| e.to_string())?;
    expect_opt(plain, not(NotOptimized::SwitchedOff), "switch off")?;
    ensure_eq!(alu(10, 32), want, "result switched off");
    ENGINE.set_optimization(true).map_err(|e| e.to_string())?;
    expect_opt(plain, Optimization::Optimized, "switch on")?;
    // Disabled and enabled.
    ENGINE.disable(plain).map_err(|e| e.to_string())?;
    expect_opt(plain, not(NotOptimized::Disabled), "disabled")?;
    ENGINE.enable(plain).map_err(|e| e.to_string())?;
    expect_opt(plain, Optimization::Optimized, "enabled again")?;
    // A probe inside the optimised region: back to the breakpoint first.
    let second = (at + 1..at + 8)
        .find(|&x| {
            ENGINE
                .register_kprobe(&Kprobe::at(x).disabled())
                .map(|id| ENGINE.unregister(id))
                .is_ok()
        })
        .ok_or("no second instruction in tf_alu's first 8 bytes")?;
    probes.add(
        "inner",
        ENGINE.register_kprobe(&Kprobe::at(second).pre(pre_record).data(b)),
    )?;
    let o = optimization(plain)?;
    ensure!(
        o == not(NotOptimized::ProbeInRegion { addr: second })
            || o == Optimization::Optimized && second >= at + 5,
        "entry probe with one at +{}: {o}",
        second - at
    );
    ensure_eq!(alu(10, 32), want, "result with the inner probe");
    probes.clear()?;
    // No detour memory.
    services::refuse_detours(true);
    let r = ENGINE.register_kprobe(&Kprobe::at(at).pre(pre_record).data(a));
    services::refuse_detours(false);
    let mut probes = Probes::new();
    let id = probes.add("no detour memory", r)?;
    expect_opt(id, not(NotOptimized::NoDetourMemory), "no detour memory")?;
    ensure_eq!(alu(10, 32), want, "result without detour memory");
    // Opted out.
    let out = probes.add(
        "opted out",
        ENGINE.register_kprobe(&Kprobe::at(testfns::func("tf_sweep").start).no_optimize()),
    )?;
    expect_opt(out, not(NotOptimized::OptedOut), "opted out")?;
    // An indirect jump in the function.
    let ind = probes.add(
        "tf_indirect",
        ENGINE.register_kprobe(&Kprobe::at(testfns::func("tf_indirect").start)),
    )?;
    ensure!(
        matches!(
            optimization(ind)?,
            Optimization::NotOptimized(NotOptimized::Site(SiteRule::IndirectJump { .. }))
        ),
        "tf_indirect: {}",
        optimization(ind)?
    );
    let line = ENGINE.info(ind).map_err(|e| e.to_string())?.to_string();
    ensure!(
        line.ends_with("[unoptimized: indirect-jump]"),
        "listing: {line}"
    );
    probes.clear()?;
    ensure_eq!(ENGINE.detours_in_use(), 0, "detours left");
    Ok("post-handler (joining un-optimises, leaving re-optimises), switch, disable, probe in region, no detour memory, opt-out, indirect jump: each reason listed and each probe working".into())
}

/// Return from the probed function at its entry with 42 (rip = [rsp],
/// rsp += 8), as an override of the return value would.
fn return_42(_: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let sp = regs.sp();
    // SAFETY: the probe is at a function's entry: rsp points at the return
    // address the caller pushed, in this process's stack.
    let ret = unsafe { *(sp as *const usize) };
    regs.set_pc(ret);
    regs.set_sp(sp + 8);
    regs.set_return_value(42);
    PreAction::SkipInstruction
}

fn pc_change() -> CheckResult {
    ENGINE.set_optimization(true).map_err(|e| e.to_string())?;
    let mut probes = Probes::new();
    let id = probes.add(
        "return_42",
        ENGINE.register_kprobe(&Kprobe::at(alu_entry()).pre(return_42)),
    )?;
    expect_opt(id, Optimization::Optimized, "the overriding probe")?;
    let traps = signals::traps();
    let caps: Vec<RegFile> = FLAG_SETS
        .iter()
        .map(|&fl| capture(alu_entry(), [10, 32, 0], fl))
        .collect();
    ensure_eq!(signals::traps() - traps, 0, "traps");
    for c in &caps {
        ensure_eq!(c[0], 42, "rax after the overridden call");
        // Callee-saved registers as the caller left them.
        ensure_eq!(c[1], 0x5151_0000_0000_0100, "rbx");
        ensure_eq!(c[14], 0x5151_0000_0000_0e00, "r15");
    }
    probes.clear()?;
    ensure_eq!(
        alu(10, 32),
        call_fn("tf_alu", 10, 32, 0).ret,
        "result after unregister"
    );
    Ok(
        "a pre-handler's new pc (a return at the entry) honoured through the detour, 0 traps"
            .into(),
    )
}

fn kretprobe() -> CheckResult {
    ENGINE.set_optimization(true).map_err(|e| e.to_string())?;
    let rec = Recorder::leak();
    let mut probes = Probes::new();
    let id = probes.add(
        "kretprobe tf_sum",
        ENGINE.register_kretprobe(
            &Kretprobe::at(testfns::func("tf_sum").start)
                .ret(ret_record)
                .data(rec),
        ),
    )?;
    expect_opt(id, Optimization::Optimized, "tf_sum's entry")?;
    let traps = signals::traps();
    ensure_eq!(call_fn("tf_sum", 10, 0, 0).ret, 55, "sum 1..10");
    ensure_eq!(
        signals::traps() - traps,
        0,
        "traps for 10 entries and 10 returns"
    );
    let info = ENGINE.info(id).map_err(|e| e.to_string())?;
    ensure_eq!(info.hits, 10, "calls tracked");
    ensure_eq!(rec.post_hits(), 10, "returns seen");
    probes.clear()?;
    ensure_eq!(
        call_fn("tf_sum", 10, 0, 0).ret,
        55,
        "sum 1..10 after unregister"
    );
    Ok("tf_sum(10) = 55 with the kretprobe's entry optimised: 10 calls tracked, 10 returns, 0 traps".into())
}

/// A handler that holds its thread until [`GATE_OPEN`] (at most 5 s).
static IN_GATE: AtomicBool = AtomicBool::new(false);
static GATE_OPEN: AtomicBool = AtomicBool::new(false);

fn wait_at_gate() {
    IN_GATE.store(true, Ordering::Release);
    let t = std::time::Instant::now();
    while !GATE_OPEN.load(Ordering::Acquire) && t.elapsed() < std::time::Duration::from_secs(5) {
        std::hint::spin_loop();
    }
}

fn gate_pre(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    wait_at_gate();
    PreAction::Continue
}

fn gate_ret(_: &ProbeContext, _: &mut dyn Registers, _: &mut [u8]) {
    wait_at_gate();
}

/// A grace period started while another thread runs a handler called from
/// a detour (no trap: `SIGUSR1` reaches the thread inside the handler, as
/// an interrupt would reach a kernel that did not mask them) does not end
/// before the handler returns; the same for a return handler called from
/// the code trampoline.
fn grace_waits_for_handlers() -> CheckResult {
    ENGINE.set_optimization(true).map_err(|e| e.to_string())?;
    let mut held = Vec::new();
    for (what, func, want) in [
        ("pre-handler through a detour", "tf_alu", alu(10, 32)),
        ("return handler through the code trampoline", "tf_sum", 15),
    ] {
        let mut probes = Probes::new();
        let f = testfns::func(func).start;
        let id = if func == "tf_alu" {
            probes.add(what, ENGINE.register_kprobe(&Kprobe::at(f).pre(gate_pre)))?
        } else {
            probes.add(
                what,
                ENGINE.register_kretprobe(&Kretprobe::at(f).ret(gate_ret)),
            )?
        };
        expect_opt(id, Optimization::Optimized, what)?;
        IN_GATE.store(false, Ordering::Release);
        GATE_OPEN.store(false, Ordering::Release);
        let args = if func == "tf_alu" { (10, 32) } else { (5, 0) };
        let caller = std::thread::spawn(move || {
            let _me = threads::register_current();
            call_fn(func, args.0, args.1, 0).ret
        });
        let t = std::time::Instant::now();
        while !IN_GATE.load(Ordering::Acquire) {
            ensure!(
                t.elapsed() < std::time::Duration::from_secs(5),
                "{what}: the handler never ran"
            );
            std::hint::spin_loop();
        }
        let done = Arc::new(AtomicBool::new(false));
        let grace = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                threads::synchronize();
                done.store(true, Ordering::Release);
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        let early = done.load(Ordering::Acquire);
        GATE_OPEN.store(true, Ordering::Release);
        grace
            .join()
            .map_err(|_| "the grace-period thread panicked".to_string())?;
        let got = caller
            .join()
            .map_err(|_| "the caller panicked".to_string())?;
        probes.clear()?;
        ensure!(
            !early,
            "{what}: the grace period ended while the handler ran"
        );
        ensure_eq!(got, want, "{what}: result");
        held.push(what);
    }
    Ok(format!(
        "a grace period waited 200 ms and more for a {} and for a {}, and ended once each returned",
        held[0], held[1]
    ))
}

/// Cycles of the churn.
const CHURN_CYCLES: u64 = 1_000;

fn churn() -> CheckResult {
    ENGINE.set_optimization(true).map_err(|e| e.to_string())?;
    let alu_fn = testfns::func("tf_alu");
    let sum_fn = testfns::func("tf_sum");
    let text = (
        peek(alu_fn.start, alu_fn.size)?,
        peek(sum_fn.start, sum_fn.size)?,
    );
    let (want_alu, want_sum) = (alu(10, 32), call_fn("tf_sum", 5, 0, 0).ret);
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, calls) = (Arc::clone(&stop), Arc::clone(&calls));
            std::thread::spawn(move || {
                let _me = threads::register_current();
                let mut wrong = 0u64;
                while !stop.load(Ordering::Acquire) {
                    wrong += u64::from(call_fn("tf_alu", 10, 32, 0).ret != want_alu);
                    wrong += u64::from(call_fn("tf_sum", 5, 0, 0).ret != want_sum);
                    calls.fetch_add(1, Ordering::Relaxed);
                    threads::quiescent_point();
                }
                wrong
            })
        })
        .collect();
    let result = (|| {
        let (mut optimized_cycles, mut counted) = (0u64, 0u64);
        for cycle in 0..CHURN_CYCLES {
            let rec = Recorder::leak();
            let ret = Recorder::leak();
            let mut probes = Probes::new();
            let kp = Kprobe::at(alu_fn.start).pre(pre_record).data(rec);
            let k = probes.add("churn kprobe", ENGINE.register_kprobe(&kp))?;
            let kr = Kretprobe::at(sum_fn.start).ret(ret_record).data(ret);
            let r = probes.add("churn kretprobe", ENGINE.register_kretprobe(&kr))?;
            if optimization(k)? == Optimization::Optimized {
                optimized_cycles += 1;
            }
            // Exact counts while enabled: this thread's own calls.
            let before = rec.hits();
            ensure_eq!(alu(10, 32), want_alu, "cycle {cycle}: result");
            ensure!(rec.hits() > before, "cycle {cycle}: own call not counted");
            counted += 1;
            match cycle % 4 {
                0 => ENGINE.set_optimization(false).map_err(|e| e.to_string())?,
                1 => ENGINE.disable(k).map_err(|e| e.to_string())?,
                2 => {
                    let inner = ENGINE.register_kprobe(
                        &Kprobe::at(alu_fn.start)
                            .post(x86_64_linux::recorder::post_record)
                            .data(rec),
                    );
                    probes.add("churn post", inner)?;
                }
                _ => ENGINE.disable(r).map_err(|e| e.to_string())?,
            }
            ENGINE.set_optimization(true).map_err(|e| e.to_string())?;
            probes.clear()?;
        }
        Ok::<_, String>((optimized_cycles, counted))
    })();
    stop.store(true, Ordering::Release);
    let mut wrong = 0;
    for c in callers {
        wrong += c.join().map_err(|_| "a caller panicked".to_string())?;
    }
    let (optimized_cycles, counted) = result?;
    ensure_eq!(wrong, 0, "wrong results on the calling threads");
    ensure_eq!(
        (
            peek(alu_fn.start, alu_fn.size)?,
            peek(sum_fn.start, sum_fn.size)?
        ),
        text,
        "text after the churn"
    );
    ensure_eq!(ENGINE.detours_in_use(), 0, "detours left");
    ensure_eq!(services::detour_pages_held(), 0, "detour pages mapped");
    ensure!(
        optimized_cycles == CHURN_CYCLES,
        "optimised in {optimized_cycles} of {CHURN_CYCLES} cycles"
    );
    Ok(format!(
        "{CHURN_CYCLES} cycles (register optimised, switch off / disable / post-handler joins / disable the kretprobe, switch on, unregister) against 2 calling threads ({} calls, 0 wrong), {counted} exact own-call counts, every byte restored, no detour left",
        calls.load(Ordering::Relaxed)
    ))
}

pub(super) fn run(r: &mut Report) {
    r.check(
        "optimized: every boundary of the instruction functions, optimised vs int3 vs unprobed",
        differential,
    );
    r.check(
        "optimized: each reason a probe is not optimised, each probe still working",
        reasons,
    );
    r.check(
        "optimized: a pre-handler's pc change is honoured through the detour",
        pc_change,
    );
    r.check(
        "optimized: a kretprobe with an optimised entry on recursion",
        kretprobe,
    );
    r.check(
        "optimized: a grace period waits for a handler running from a detour or the return trampoline",
        grace_waits_for_handlers,
    );
    r.check(
        "optimized: optimise/un-optimise/disable/unregister churn against 2 calling threads",
        churn,
    );
    let _ = ENGINE.set_optimization(false);
}
