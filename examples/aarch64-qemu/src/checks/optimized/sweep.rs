//! Every instruction of the callable test functions, optimised vs `brk`
//! vs unprobed.

use core::sync::atomic::{AtomicU64, Ordering};

use probe_core::{Kprobe, NotOptimized, Optimization};

use super::super::handlers::{pre_count, Seen};
use super::super::Report;
use super::{counting_traps, no_detours, optimization, run_regs};
use crate::kernel::ENGINE;
use crate::runner::{self, Regs};
use crate::testfns::{addr, symbols, word_at};

/// Stands for the scratch memory's address in an argument list.
const SCRATCH_ARG: u64 = u64::MAX;

/// Memory the load and store functions work on.
static SCRATCH: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

fn reset_scratch() {
    for (i, w) in SCRATCH.iter().enumerate() {
        w.store(0x0102_0304_0506_0708 * (i as u64 + 1), Ordering::SeqCst);
    }
}

fn scratch() -> [u64; 8] {
    SCRATCH.each_ref().map(|w| w.load(Ordering::SeqCst))
}

/// A swept function: its name, the code bytes probed (a prefix: no data),
/// and the argument registers it is called with.
struct Swept {
    name: &'static str,
    code_len: Option<usize>,
    args: &'static [(usize, u64)],
}

const fn f(name: &'static str, args: &'static [(usize, u64)]) -> Swept {
    Swept {
        name,
        code_len: None,
        args,
    }
}

const PTR: &[(usize, u64)] = &[(0, SCRATCH_ARG)];

/// The callable test functions (not `t_refused`, never executed, nor
/// `t_no_bti`, whose unprobed call raises a Branch Target exception that a
/// `brk` at its entry would not).
const SWEPT: &[Swept] = &[
    f("t_beq", &[]),
    f("t_bne", &[]),
    f("t_bcs", &[]),
    f("t_bcc", &[]),
    f("t_bmi", &[]),
    f("t_bpl", &[]),
    f("t_bvs", &[]),
    f("t_bvc", &[]),
    f("t_bhi", &[]),
    f("t_bls", &[]),
    f("t_bge", &[]),
    f("t_blt", &[]),
    f("t_bgt", &[]),
    f("t_ble", &[]),
    f("t_cbz_x", &[(0, 0)]),
    f("t_cbz_w", &[]),
    f("t_cbnz_x", &[]),
    f("t_cbnz_w", &[(0, 0)]),
    f("t_tbz_hi", &[]),
    f("t_tbnz_hi", &[]),
    f("t_tbz_w", &[]),
    f("t_tbnz_w", &[]),
    f("t_b", &[]),
    f("t_bl", &[]),
    f("t_br", &[]),
    f("t_blr", &[]),
    f("t_cbnz_loop", &[(0, 5)]),
    f("t_adr", &[]),
    f("t_adrp", &[]),
    Swept {
        name: "t_ldr_lit",
        code_len: Some(24),
        args: &[],
    },
    f("t_add", &[]),
    f("t_sub_w", &[]),
    f("t_mul", &[]),
    f("t_umulh", &[]),
    f("t_sdiv", &[]),
    f("t_udiv", &[]),
    f("t_lsl", &[]),
    f("t_asr", &[]),
    f("t_ror_w", &[]),
    f("t_ubfx", &[]),
    f("t_bfi", &[]),
    f("t_clz", &[]),
    f("t_rev", &[]),
    f("t_adds", &[(0, u64::MAX), (1, 2)]),
    f("t_csel", &[]),
    f("t_mov", &[]),
    f("t_hints", &[]),
    f("t_mrs", &[]),
    f("t_ldr", PTR),
    f("t_ldrsb", PTR),
    f("t_ldr_reg", &[(0, SCRATCH_ARG), (1, 16)]),
    f("t_str", PTR),
    f("t_strb", PTR),
    f("t_pre_post", PTR),
    f("t_ldp_stp", &[]),
    f("t_stack", &[]),
    f("t_ldadd", PTR),
    f("t_swp", PTR),
    f("t_cas", PTR),
    f("t_ldar", PTR),
    f("t_fadd", &[]),
    f("t_fmul", &[]),
    f("t_scvtf", &[]),
    f("t_fcmp", &[]),
    f("t_simd", &[]),
    f("t_recur", &[(0, 4)]),
    f("t_pac", &[(0, 5)]),
    f("t_bti_add", &[(0, 3), (1, 4)]),
    f("t_pac_sign", &[]),
    f("t_call_via", &[(0, 3)]),
    f("t_add2", &[]),
    f("t_load", PTR),
    f("t_atomic_inc", PTR),
    f("t_hot", &[]),
    f("t_churn", &[]),
    f("t_ev_target", &[]),
    f("t_ev_caller", &[]),
    f("t_opt_rsum", &[(0, 4)]),
];

/// The registers `s` is called with.
fn input(s: &Swept) -> Regs {
    let mut regs = runner::pattern();
    for &(r, v) in s.args {
        regs[r] = if v == SCRATCH_ARG {
            SCRATCH.as_ptr() as u64
        } else {
            v
        };
    }
    if s.name == "t_call_via" {
        regs[1] = addr::t_add2() as u64;
    }
    regs
}

/// One call: the registers after it and the scratch memory.
fn call(func: usize, s: &Swept) -> (Regs, [u64; 8]) {
    reset_scratch();
    let regs = run_regs(func, &input(s));
    (regs, scratch())
}

/// [`call`] and the breakpoint traps it took, always through this one
/// function: the unprobed and the probed call run at the same stack depth
/// (`t_pac_sign` signs `x30` with `sp` as the modifier).
#[inline(never)]
fn counted_call(func: usize, s: &Swept) -> ((Regs, [u64; 8]), usize) {
    counting_traps(|| call(func, s))
}

static SEEN: Seen = Seen::new();

/// What one registration at one site gave.
struct Run {
    opt: Optimization,
    hits: u64,
    traps: usize,
    pc_ok: bool,
    flags: usize,
}

/// Call the function unprobed, register at `at` (optimisable or not),
/// call it again, compare, unregister.
/// `None` when the site cannot be probed at all; `Err` names the first
/// difference (register number, or 100 + the scratch word).
fn one_run(
    s: &Swept,
    func: usize,
    at: usize,
    allow: bool,
) -> Result<Option<Run>, (usize, u64, u64)> {
    let (unprobed, _) = counted_call(func, s);
    SEEN.reset();
    let k = Kprobe::at(at).pre(pre_count).data(&SEEN);
    let Ok(id) = ENGINE.register_kprobe(&if allow { k } else { k.no_optimize() }) else {
        return Ok(None);
    };
    let opt = optimization(id);
    let (got, traps) = counted_call(func, s);
    let _ = ENGINE.unregister(id);
    if let Some(r) = (0..32).find(|&r| got.0[r] != unprobed.0[r]) {
        return Err((r, got.0[r], unprobed.0[r]));
    }
    if let Some(w) = (0..8).find(|&w| got.1[w] != unprobed.1[w]) {
        return Err((100 + w, got.1[w], unprobed.1[w]));
    }
    let hits = SEEN.counts().0;
    Ok(Some(Run {
        opt,
        hits,
        traps,
        pc_ok: hits == 0 || SEEN.pre_pc.load(Ordering::SeqCst) == at,
        flags: SEEN.pre_flags.load(Ordering::SeqCst),
    }))
}

/// Reasons met: (code, sites).
struct Reasons {
    codes: [(&'static str, usize); 16],
    n: usize,
}

impl Reasons {
    fn tally(&mut self, code: &'static str) {
        if let Some(e) = self.codes[..self.n].iter_mut().find(|e| e.0 == code) {
            e.1 += 1;
        } else if self.n < self.codes.len() {
            self.codes[self.n] = (code, 1);
            self.n += 1;
        }
    }

    fn has(&self, code: &str) -> bool {
        self.codes[..self.n].iter().any(|e| e.0 == code)
    }
}

/// NZCV, DAIF and M of a PSTATE image: what a `brk` trap's SPSR and an
/// optimised frame must agree on.
const FLAGS_COMPARED: usize = 0xf000_03cf;

pub fn run(r: &mut Report) {
    let (mut sites, mut optimized, mut unprobeable, mut bad) = (0, 0, 0, 0);
    let (mut opt_hits, mut bp_hits, mut bp_traps) = (0, 0, 0);
    let mut reasons = Reasons {
        codes: [("", 0); 16],
        n: 0,
    };
    let mut first_bad = |r: &mut Report, what: core::fmt::Arguments<'_>| {
        bad += 1;
        if bad <= 5 {
            r.note(what);
        }
    };
    for s in SWEPT {
        let Some(func) = symbols().into_iter().find(|f| f.name == s.name) else {
            first_bad(r, format_args!("no symbol {}", s.name));
            continue;
        };
        let words = (func.start..func.end)
            .step_by(4)
            .map(word_at)
            .fold(0u64, |h, w| h.rotate_left(7) ^ w as u64);
        let len = s.code_len.unwrap_or(func.end - func.start);
        for off in (0..len).step_by(4) {
            let at = func.start + off;
            sites += 1;
            let name = s.name;
            let opt = match one_run(s, func.start, at, true) {
                Ok(Some(run)) => run,
                Ok(None) => {
                    unprobeable += 1;
                    continue;
                }
                Err((reg, got, want)) => {
                    first_bad(r, format_args!("{name}+{off} optimisable: register/word {reg} = {got:#x}, unprobed {want:#x}"));
                    continue;
                }
            };
            let bp = match one_run(s, func.start, at, false) {
                Ok(Some(run)) => run,
                Ok(None) => {
                    first_bad(r, format_args!("{name}+{off}: only optimisable"));
                    continue;
                }
                Err((reg, got, want)) => {
                    first_bad(
                        r,
                        format_args!(
                            "{name}+{off} brk: register/word {reg} = {got:#x}, unprobed {want:#x}"
                        ),
                    );
                    continue;
                }
            };
            bp_hits += bp.hits;
            bp_traps += bp.traps;
            let same_flags = opt.hits == 0 || (opt.flags ^ bp.flags) & FLAGS_COMPARED == 0;
            if bp.opt != Optimization::NotOptimized(NotOptimized::OptedOut)
                || opt.hits != bp.hits
                || (bp.traps as u64) < bp.hits
                || !opt.pc_ok
                || !bp.pc_ok
                || !same_flags
            {
                first_bad(r, format_args!(
                    "{name}+{off}: {} / {}: hits {} vs {}, traps {} vs {}, pc seen {} {}, flags {:#x} vs {:#x}",
                    opt.opt, bp.opt, opt.hits, bp.hits, opt.traps, bp.traps, opt.pc_ok, bp.pc_ok, opt.flags, bp.flags
                ));
                continue;
            }
            match opt.opt {
                Optimization::Optimized => {
                    optimized += 1;
                    opt_hits += opt.hits;
                    if opt.traps != 0 {
                        first_bad(
                            r,
                            format_args!("{name}+{off}: {} traps while optimised", opt.traps),
                        );
                    }
                }
                Optimization::NotOptimized(why) => {
                    if (opt.traps as u64) < opt.hits {
                        first_bad(
                            r,
                            format_args!(
                                "{name}+{off} ({why}): {} hits, {} traps",
                                opt.hits, opt.traps
                            ),
                        );
                    }
                    reasons.tally(why.code());
                }
            }
        }
        let after = (func.start..func.end)
            .step_by(4)
            .map(word_at)
            .fold(0u64, |h, w| h.rotate_left(7) ^ w as u64);
        if after != words {
            first_bad(r, format_args!("{}: bytes differ after the sweep", s.name));
        }
    }
    r.check(
        bad == 0,
        format_args!(
            "optimized: every instruction of {} test functions ({sites} sites), optimised vs brk vs unprobed: \
             every register and the scratch memory as unprobed, the same hits, the same pc and NZCV/DAIF/M seen",
            SWEPT.len()
        ),
    );
    r.note(format_args!(
        "{optimized} sites optimised ({opt_hits} hits, 0 traps); {unprobeable} not probeable at all; \
         brk runs: {bp_hits} hits, {bp_traps} traps"
    ));
    r.note(format_args!(
        "not optimised, by reason (each still hit through its brk): {:?}",
        &reasons.codes[..reasons.n]
    ));
    r.check(
        optimized >= 100
            && opt_hits > 0
            && ["indirect-jump", "not-boostable", "may-fault"]
                .iter()
                .all(|c| reasons.has(c))
            && !reasons.has("jump-into-region")
            && no_detours(),
        format_args!(
            "optimized: {optimized} of {sites} sites optimised; refused for indirect-jump (t_br), not-boostable \
             (simulated, refused or a BTI landing pad), may-fault (t_load); never jump-into-region (a 4-byte region \
             holds no branch target); no detour left"
        ),
    );
}
