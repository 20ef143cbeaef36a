//! Every instruction class user mode can execute, each probed at several
//! offsets: alone with a pre-handler (boosted where the backend allows),
//! alone with pre- and post-handlers (a real step ending in the slot's
//! `int3`), and all at once. Each run must return exactly what the function
//! returns unprobed, the handlers must see the registers listed for the
//! point, and the number of SIGTRAPs must match the backend's decision
//! (one per hit when simulated or boosted, two when stepped).

use probe_hal::Handling;
use probe_hal_x86_64::gpr::*;
use x86_64_linux::recorder::{Recorder, Seen};
use x86_64_linux::report::Report;
use x86_64_linux::testfns;
use x86_64_linux::{ensure, ensure_eq};

use super::{call_fn, decode, kprobe, peek, CheckResult, Probes};
use crate::{signals, ENGINE};

/// What a handler must see.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// General register = value.
    Gpr(usize, u64),
    /// General register = address of a point or function.
    GprAt(usize, &'static str),
    /// General register = address of `tf_data` plus an offset.
    GprData(usize, usize),
    /// rsp = rsp at function entry + delta.
    Sp(i64),
    /// pc = address of a point or function.
    Pc(&'static str),
}

/// One probed offset: how often it runs per call, what the pre-handler
/// sees (the last hit's registers) and what the post-handler sees.
struct At {
    name: &'static str,
    hits: u64,
    pre: &'static [Want],
    post: &'static [Want],
}

const fn at(name: &'static str, pre: &'static [Want], post: &'static [Want]) -> At {
    At {
        name,
        hits: 1,
        pre,
        post,
    }
}

const fn at_n(name: &'static str, hits: u64, pre: &'static [Want], post: &'static [Want]) -> At {
    At {
        name,
        hits,
        pre,
        post,
    }
}

/// What the function returns.
enum Expect {
    Value(u64),
    Computed(fn() -> u64),
    Check(fn(u64) -> Result<(), String>),
}

struct Case {
    title: &'static str,
    func: &'static str,
    args: [u64; 3],
    expect: Expect,
    points: &'static [At],
}

use Want::*;

const DATA0: u64 = 0x1122_3344_5566_7788;

fn long_result() -> u64 {
    let rax = DATA0.wrapping_add(2);
    let rcx = rax
        .wrapping_add(16)
        .wrapping_add(0x1234_5678)
        .wrapping_sub(0x765_4321);
    rax ^ rcx
}

fn flags_result(r: u64) -> Result<(), String> {
    let (low, high) = (r & 0xffff_ffff, r >> 32);
    ensure!(
        high == low ^ 0x801,
        "popf did not set exactly the pushed flags: {low:#x} then {high:#x}"
    );
    ensure!(low & 0x200 != 0, "IF clear in the pushed flags {low:#x}");
    ensure!(low & 0x100 == 0, "TF set in the pushed flags {low:#x}");
    // cmp 3, 5: borrow (CF), negative (SF), AF from the low nibble.
    ensure!(
        low & 0x1 != 0 && low & 0x80 != 0,
        "flags of cmp 3, 5: {low:#x}"
    );
    Ok(())
}

/// Each case's function with its arguments (for other checks that call
/// the same functions).
pub(super) fn callables() -> Vec<(&'static str, [u64; 3])> {
    CASES.iter().map(|c| (c.func, c.args)).collect()
}

static CASES: &[Case] = &[
    Case {
        title: "plain ALU (mov, add, xor, imul, sub, shl, ret)",
        func: "tf_alu",
        args: [10, 32, 0],
        expect: Expect::Value(1396),
        points: &[
            at(
                "alu_entry",
                &[Gpr(RDI, 10), Gpr(RSI, 32), Sp(0)],
                &[Gpr(RAX, 10)],
            ),
            at("alu_add", &[Gpr(RAX, 10)], &[Gpr(RAX, 42)]),
            at("alu_xor", &[Gpr(RAX, 42)], &[Gpr(RAX, 127)]),
            at("alu_imul", &[Gpr(RAX, 127)], &[Gpr(RAX, 381)]),
            at("alu_sub", &[Gpr(RAX, 381)], &[Gpr(RAX, 349)]),
            at("alu_shl", &[Gpr(RAX, 349)], &[Gpr(RAX, 1396)]),
            at("alu_ret", &[Gpr(RAX, 1396), Sp(0)], &[Sp(8)]),
        ],
    },
    Case {
        title: "push/pop (push reg, push imm, pop reg)",
        func: "tf_pushpop",
        args: [5, 7, 0],
        expect: Expect::Value(5 + 7 + 0x1234),
        points: &[
            at("pp_push_rbx", &[Sp(0)], &[Sp(-8)]),
            at("pp_push_rdi", &[Gpr(RDI, 5)], &[Sp(-16)]),
            at("pp_push_imm", &[Sp(-16)], &[Sp(-24)]),
            at("pp_mov", &[Gpr(RSI, 7)], &[Gpr(RBX, 7)]),
            at("pp_pop_rcx", &[Sp(-24)], &[Gpr(RCX, 0x1234), Sp(-16)]),
            at("pp_pop_rax", &[Sp(-16)], &[Gpr(RAX, 5), Sp(-8)]),
            at("pp_add", &[Gpr(RBX, 7)], &[Gpr(RAX, 12)]),
            at("pp_add2", &[Gpr(RAX, 12)], &[Gpr(RAX, 0x1240)]),
            at("pp_pop_rbx", &[Sp(-8)], &[Sp(0)]),
            at("pp_ret", &[Gpr(RAX, 0x1240)], &[Sp(8)]),
        ],
    },
    Case {
        title: "rip-relative loads (mov, add, cmp imm8, movzx)",
        func: "tf_rip_load",
        args: [3, 0, 0],
        expect: Expect::Value(DATA0 + 3 + 0x1000 + 0x77),
        points: &[
            at("rl_load", &[], &[Gpr(RAX, DATA0)]),
            at("rl_add", &[Gpr(RAX, DATA0)], &[Gpr(RAX, DATA0 + 3)]),
            at("rl_add_mem", &[], &[Gpr(RAX, DATA0 + 3 + 0x1000)]),
            at("rl_cmp", &[Gpr(RAX, DATA0 + 3 + 0x1000)], &[]),
            at("rl_movzx", &[], &[Gpr(RCX, 0x77)]),
        ],
    },
    Case {
        title: "rip-relative stores (mov reg, mov imm32 [11 bytes], inc)",
        func: "tf_rip_store",
        args: [41, 0, 0],
        expect: Expect::Value(42 + 0x12345),
        points: &[
            at("rs_store", &[Gpr(RDI, 41)], &[]),
            at("rs_imm", &[], &[]),
            at("rs_inc", &[], &[]),
            at("rs_load", &[], &[Gpr(RAX, 42)]),
            at("rs_add", &[Gpr(RAX, 42)], &[Gpr(RAX, 42 + 0x12345)]),
        ],
    },
    Case {
        title: "rip-relative lea",
        func: "tf_rip_lea",
        args: [0, 0, 0],
        expect: Expect::Computed(|| {
            (testfns::data_addr() + testfns::func("tf_rip_lea").start) as u64
        }),
        points: &[
            at("le_lea", &[], &[GprData(RAX, 0)]),
            at(
                "le_lea_self",
                &[GprData(RAX, 0)],
                &[GprAt(RCX, "tf_rip_lea")],
            ),
            at("le_add", &[GprAt(RCX, "tf_rip_lea")], &[]),
        ],
    },
    Case {
        title: "call rel32 (and the callee's entry and ret)",
        func: "tf_call",
        args: [21, 0, 0],
        expect: Expect::Value(43),
        points: &[
            at(
                "ca_call",
                &[Sp(0), Gpr(RDI, 21)],
                &[Pc("tf_double"), Sp(-8)],
            ),
            at("db_entry", &[Gpr(RDI, 21), Sp(-8)], &[Gpr(RAX, 42)]),
            at("db_ret", &[Gpr(RAX, 42), Sp(-8)], &[Pc("ca_after"), Sp(0)]),
            at("ca_after", &[Gpr(RAX, 42)], &[Gpr(RAX, 43)]),
        ],
    },
    Case {
        title: "jmp rel8 and jmp rel32",
        func: "tf_jmp",
        args: [1, 0, 0],
        expect: Expect::Value(8),
        points: &[
            at("jm_short", &[Sp(0)], &[Pc("jm_near")]),
            at("jm_near", &[], &[Pc("jm_land")]),
            at("jm_land", &[], &[Gpr(RAX, 8)]),
        ],
    },
    Case {
        title: "jcc taken (jl rel8) and not taken (jz rel32)",
        func: "tf_jcc",
        args: [1, 2, 0],
        expect: Expect::Value(101),
        points: &[
            at("jc_cmp", &[Gpr(RDI, 1), Gpr(RSI, 2)], &[]),
            at("jc_short", &[], &[Pc("jc_target")]),
            at_n("jc_fall", 0, &[], &[]),
            at("jc_target", &[], &[Gpr(RAX, 100)]),
            at("jc_near", &[Gpr(RAX, 100)], &[Pc("jc_nfall")]),
            at("jc_nfall", &[], &[Gpr(RAX, 101)]),
            at("jc_ret", &[Gpr(RAX, 101)], &[Sp(8)]),
        ],
    },
    Case {
        title: "jcc not taken (jl rel8) and taken (jz rel32)",
        func: "tf_jcc",
        args: [2, 2, 0],
        expect: Expect::Value(200),
        points: &[
            at("jc_short", &[], &[Pc("jc_fall")]),
            at("jc_fall", &[], &[Gpr(RAX, 200)]),
            at_n("jc_target", 0, &[], &[]),
            at("jc_near", &[Gpr(RAX, 200)], &[Pc("jc_ret")]),
            at_n("jc_nfall", 0, &[], &[]),
            at("jc_ret", &[Gpr(RAX, 200)], &[]),
        ],
    },
    Case {
        title: "loop, jrcxz, loopne, loope",
        func: "tf_loop",
        args: [5, 0, 0],
        expect: Expect::Value(20),
        points: &[
            at_n("lo_body", 5, &[Gpr(RCX, 1), Gpr(RAX, 14)], &[Gpr(RAX, 15)]),
            at_n("lo_loop", 5, &[Gpr(RCX, 1)], &[Gpr(RCX, 0), Pc("lo_jrcxz")]),
            at("lo_jrcxz", &[Gpr(RCX, 0)], &[Pc("lo_after_jrcxz")]),
            at_n("lo_loopne", 2, &[Gpr(RDX, 2), Gpr(RCX, 4)], &[Gpr(RCX, 3)]),
            at_n("lo_loope", 4, &[Gpr(RCX, 1)], &[Gpr(RCX, 0)]),
        ],
    },
    Case {
        title: "ret imm16 (callee pops its stack argument)",
        func: "tf_ret",
        args: [50, 0, 0],
        expect: Expect::Value(101),
        points: &[
            at("rt_push", &[Gpr(RDI, 50), Sp(0)], &[Sp(-8)]),
            at("rt_call", &[Sp(-8)], &[Pc("tf_ret_imm"), Sp(-16)]),
            at(
                "ri_ret",
                &[Gpr(RAX, 100), Sp(-16)],
                &[Pc("rt_after"), Sp(0)],
            ),
        ],
    },
    Case {
        title: "ret",
        func: "tf_ret",
        args: [50, 0, 0],
        expect: Expect::Value(101),
        points: &[
            at("rt_after", &[Gpr(RAX, 100), Sp(0)], &[Gpr(RAX, 101)]),
            at("rt_ret", &[Gpr(RAX, 101), Sp(0)], &[Sp(8)]),
        ],
    },
    Case {
        title: "call via register (call rcx, call r11)",
        func: "tf_indirect",
        args: [6, 0, 0],
        expect: Expect::Value(27),
        points: &[
            at(
                "in_call",
                &[GprAt(RCX, "tf_double"), Sp(0)],
                &[Pc("tf_double"), Sp(-8)],
            ),
            at(
                "in_call_r11",
                &[Gpr(RDI, 12), GprAt(R11, "tf_double")],
                &[Pc("tf_double"), Sp(-8)],
            ),
        ],
    },
    Case {
        title: "jmp via register (jmp rdx)",
        func: "tf_indirect",
        args: [6, 0, 0],
        expect: Expect::Value(27),
        points: &[
            at(
                "in_jmp",
                &[GprAt(RDX, "in_land"), Gpr(RAX, 24)],
                &[Pc("in_land"), Sp(0)],
            ),
            at("in_land", &[Gpr(RAX, 24)], &[Gpr(RAX, 27)]),
        ],
    },
    Case {
        title: "pushf/popf (flags pushed, popped and pushed again)",
        func: "tf_flags",
        args: [3, 0, 0],
        expect: Expect::Check(flags_result),
        points: &[
            at("fl_pushf", &[Sp(0)], &[Sp(-8)]),
            at("fl_popf", &[Sp(-8)], &[Sp(0)]),
            at("fl_pushf2", &[Sp(0)], &[Sp(-8)]),
        ],
    },
    Case {
        title: "long instructions (movabs 10 bytes, rip-relative mov imm32 11, nop 11 and 15)",
        func: "tf_long",
        args: [2, 0, 0],
        expect: Expect::Computed(long_result),
        points: &[
            at("lg_movabs", &[Gpr(RDI, 2)], &[Gpr(RAX, DATA0)]),
            at("lg_add", &[], &[Gpr(RAX, DATA0 + 2)]),
            at("lg_store", &[Gpr(RAX, DATA0 + 2)], &[]),
            at("lg_lea", &[], &[Gpr(RCX, DATA0 + 2 + 16 + 0x1234_5678)]),
            at("lg_nop11", &[], &[]),
            at("lg_nop15", &[], &[]),
            at(
                "lg_sub",
                &[],
                &[Gpr(RCX, DATA0 + 2 + 16 + 0x1234_5678 - 0x765_4321)],
            ),
            at("lg_xor", &[], &[]),
        ],
    },
];

/// Check `want` against what a handler saw.
fn check_wants(seen: &Seen, wants: &[Want], entry_sp: usize, what: &str) -> Result<(), String> {
    for w in wants {
        match *w {
            Gpr(n, v) => ensure_eq!(seen.gpr[n], v, "{what}: register {n}"),
            GprAt(n, name) => {
                ensure_eq!(
                    seen.gpr[n],
                    testfns::addr_of(name) as u64,
                    "{what}: register {n} = &{name}"
                )
            }
            GprData(n, off) => {
                ensure_eq!(
                    seen.gpr[n],
                    (testfns::data_addr() + off) as u64,
                    "{what}: register {n} = &tf_data"
                )
            }
            Sp(d) => ensure_eq!(
                seen.sp() as i64 - entry_sp as i64,
                d,
                "{what}: rsp relative to the function entry"
            ),
            Pc(name) => ensure_eq!(
                seen.pc,
                testfns::addr_of(name) as u64,
                "{what}: pc = {name}"
            ),
        }
    }
    Ok(())
}

fn check_result(expect: &Expect, r: u64) -> Result<(), String> {
    match expect {
        Expect::Value(v) => ensure_eq!(r, *v, "result"),
        Expect::Computed(f) => ensure_eq!(r, f(), "result"),
        Expect::Check(f) => f(r)?,
    }
    Ok(())
}

/// SIGTRAPs one hit takes: simulated and boosted 1, stepped 2.
fn traps_per_hit(handling: Handling, post: bool) -> u64 {
    match handling {
        Handling::Simulate => 1,
        Handling::StepOutOfLine { boostable } if boostable && !post => 1,
        Handling::StepOutOfLine { .. } => 2,
    }
}

/// One point alone, pre-only or pre+post.
fn one_point(case: &Case, p: &At, post: bool, unprobed: u64) -> Result<(), String> {
    let mode = if post { "pre+post" } else { "pre" };
    let what = format!("{} ({mode})", p.name);
    let addr = testfns::point(p.name).addr();
    let decoded = decode(addr).map_err(|e| format!("{what}: {e}"))?;
    let orig = peek(addr, 1)?;
    let rec = Recorder::leak();
    let mut probes = Probes::new();
    probes.add(&what, ENGINE.register_kprobe(&kprobe(addr, rec, post)))?;
    ensure_eq!(peek(addr, 1)?, vec![0xcc], "{what}: int3 written");
    let traps = signals::traps();
    let [a, b, c] = case.args;
    let call = call_fn(case.func, a, b, c);
    let traps = signals::traps() - traps;
    ensure_eq!(call.ret, unprobed, "{what}: result probed vs unprobed");
    ensure_eq!(rec.hits(), p.hits, "{what}: pre-handler calls");
    ensure_eq!(
        rec.post_hits(),
        if post { p.hits } else { 0 },
        "{what}: post-handler calls"
    );
    ensure_eq!(
        traps,
        p.hits * traps_per_hit(decoded.handling, post),
        "{what}: SIGTRAPs ({:?})",
        decoded.handling
    );
    if p.hits > 0 {
        let pre = rec.pre.seen();
        ensure_eq!(pre.pc, addr as u64, "{what}: pre-handler pc (at the probe)");
        ensure!(
            pre.flags & 0x200 != 0 && pre.flags & 0x100 == 0,
            "{what}: pre flags {:#x}",
            pre.flags
        );
        check_wants(&pre, p.pre, call.entry_sp, &format!("{what} pre"))?;
        if post {
            let after = rec.post.seen();
            check_wants(&after, p.post, call.entry_sp, &format!("{what} post"))?;
            if let Handling::StepOutOfLine { .. } = decoded.handling {
                ensure_eq!(
                    after.pc,
                    (addr + decoded.len) as u64,
                    "{what}: post pc after the step"
                );
            }
            ensure!(after.flags & 0x100 == 0, "{what}: TF set after the step");
        }
    }
    probes.clear()?;
    ensure_eq!(peek(addr, 1)?, orig, "{what}: original byte back");
    Ok(())
}

/// Every point of the case at once, with post-handlers on every other one.
fn all_points(case: &Case, unprobed: u64) -> Result<(), String> {
    let mut probes = Probes::new();
    let mut recs = Vec::new();
    for (i, p) in case.points.iter().enumerate() {
        let rec = Recorder::leak();
        let addr = testfns::point(p.name).addr();
        probes.add(
            p.name,
            ENGINE.register_kprobe(&kprobe(addr, rec, i % 2 == 1)),
        )?;
        recs.push(rec);
    }
    let [a, b, c] = case.args;
    let call = call_fn(case.func, a, b, c);
    ensure_eq!(call.ret, unprobed, "all points at once: result");
    for (i, (p, rec)) in case.points.iter().zip(&recs).enumerate() {
        ensure_eq!(rec.hits(), p.hits, "all at once: {} pre calls", p.name);
        let posts = if i % 2 == 1 { p.hits } else { 0 };
        ensure_eq!(rec.post_hits(), posts, "all at once: {} post calls", p.name);
        if p.hits > 0 {
            check_wants(
                &rec.pre.seen(),
                p.pre,
                call.entry_sp,
                &format!("{} pre (all at once)", p.name),
            )?;
        }
    }
    probes.clear()
}

fn run_case(case: &Case) -> CheckResult {
    let [a, b, c] = case.args;
    let unprobed = call_fn(case.func, a, b, c).ret;
    check_result(&case.expect, unprobed)?;
    let mut kinds = Vec::new();
    for p in case.points {
        let d = decode(testfns::point(p.name).addr())?;
        kinds.push(match d.handling {
            Handling::Simulate => "sim",
            Handling::StepOutOfLine { boostable: true } => "boost",
            Handling::StepOutOfLine { boostable: false } => "step",
        });
        for post in [false, true] {
            one_point(case, p, post, unprobed)?;
        }
    }
    all_points(case, unprobed)?;
    Ok(format!(
        "{} offsets [{}], result {unprobed:#x}",
        case.points.len(),
        kinds.join(" ")
    ))
}

/// The condition every `jcc` tests, computed from `cmp a, b` semantics.
fn conditions(a: u64, b: u64) -> u64 {
    let r = a.wrapping_sub(b);
    let of = ((a ^ b) & (a ^ r)) >> 63 == 1;
    let cf = a < b;
    let zf = r == 0;
    let sf = (r as i64) < 0;
    let pf = (r as u8).count_ones() % 2 == 0;
    let holds = [
        of,
        !of,
        cf,
        !cf,
        zf,
        !zf,
        cf || zf,
        !(cf || zf),
        sf,
        !sf,
        pf,
        !pf,
        sf != of,
        sf == of,
        zf || sf != of,
        !(zf || sf != of),
    ];
    holds
        .iter()
        .enumerate()
        .map(|(i, &h)| (h as u64) << i)
        .sum()
}

const CC: [&str; 16] = [
    "o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g",
];

fn all_conditions() -> CheckResult {
    let pairs: [(u64, u64); 8] = [
        (1, 2),
        (2, 1),
        (5, 5),
        (u64::MAX, 1),
        (i64::MIN as u64, 1),
        (i64::MAX as u64, u64::MAX),
        (0, 0x80),
        (3, 0),
    ];
    for (a, b) in pairs {
        ensure_eq!(
            call_fn("tf_cond", a, b, 0).ret,
            conditions(a, b),
            "unprobed tf_cond({a:#x}, {b:#x})"
        );
    }
    for post in [false, true] {
        let mut probes = Probes::new();
        let recs: Vec<_> = CC.iter().map(|_| Recorder::leak()).collect();
        for (cc, rec) in CC.iter().zip(&recs) {
            let addr = testfns::point(&format!("cc_{cc}")).addr();
            probes.add(cc, ENGINE.register_kprobe(&super::kprobe(addr, rec, post)))?;
        }
        for (i, &(a, b)) in pairs.iter().enumerate() {
            let got = call_fn("tf_cond", a, b, 0).ret;
            ensure_eq!(
                got,
                conditions(a, b),
                "probed tf_cond({a:#x}, {b:#x}), post {post}"
            );
            for (cc, rec) in CC.iter().zip(&recs) {
                ensure_eq!(rec.hits(), i as u64 + 1, "j{cc} hits");
            }
        }
        probes.clear()?;
    }
    Ok(format!(
        "16 condition codes x {} operand pairs, each probed",
        pairs.len()
    ))
}

pub(super) fn run(r: &mut Report) {
    for case in CASES {
        r.check(&format!("insn: {}", case.title), || run_case(case));
    }
    r.check("insn: jcc, all 16 conditions on real flags", all_conditions);
}
