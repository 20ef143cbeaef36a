//! What a handler changes, through the detour: a moved pc (path (b), the
//! `eret`), a moved pc and stack pointer, and the FP/SIMD state a handler
//! clobbers (restored by the detour).

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use probe_core::{Kprobe, Optimization, PreAction, ProbeContext, Registers};

use super::super::Report;
use super::{counting_traps, optimization, run_regs};
use crate::kernel::ENGINE;
use crate::runner::{self, Regs};
use crate::testfns::{addr, call};

static HITS: AtomicU64 = AtomicU64::new(0);

/// Return 42 from the probed function at its entry: pc = x30.
fn return_42(_: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    HITS.fetch_add(1, Ordering::SeqCst);
    regs.set_pc(regs.gpr(30));
    regs.set_return_value(42);
    PreAction::SkipInstruction
}

/// At `t_stack+4` (after its `sub sp, sp, #32`): do what the rest of the
/// function does (x2 = x0), pop its frame and return: pc and sp move.
fn finish_t_stack(_: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    HITS.fetch_add(1, Ordering::SeqCst);
    regs.set_gpr(2, regs.gpr(0));
    regs.set_sp(regs.sp() + 32);
    regs.set_pc(regs.gpr(30));
    PreAction::SkipInstruction
}

/// Clobber every FP/SIMD register and set FPCR to round towards zero.
fn clobber_fp(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    HITS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: writes only the FP/SIMD registers (declared clobbered by the
    // C ABI clause) and FPCR's rounding mode, which the detour (or the trap
    // entry) restores from its frame.
    unsafe {
        asm!(
            "movi v0.2d, #0", "movi v1.2d, #0", "movi v2.2d, #0", "movi v3.2d, #0",
            "movi v4.2d, #0", "movi v5.2d, #0", "movi v6.2d, #0", "movi v7.2d, #0",
            "movi v16.2d, #0", "movi v17.2d, #0", "movi v18.2d, #0", "movi v19.2d, #0",
            "movi v20.2d, #0", "movi v21.2d, #0", "movi v22.2d, #0", "movi v23.2d, #0",
            "movi v24.2d, #0", "movi v25.2d, #0", "movi v26.2d, #0", "movi v27.2d, #0",
            "movi v28.2d, #0", "movi v29.2d, #0", "movi v30.2d, #0", "movi v31.2d, #0",
            "msr fpcr, {rz}",
            rz = in(reg) 3usize << 22,
            clobber_abi("C"),
            options(nostack, nomem)
        )
    };
    PreAction::Continue
}

/// Probe `at` with `pre`, run `func` on each input through the runner,
/// and give the probe's optimisation, the registers and the traps.
fn probed<const N: usize>(
    at: usize,
    pre: fn(&ProbeContext, &mut dyn Registers) -> PreAction,
    func: usize,
    inputs: &[Regs; N],
) -> Option<(Optimization, [Regs; N], usize)> {
    let id = ENGINE.register_kprobe(&Kprobe::at(at).pre(pre)).ok()?;
    let opt = optimization(id);
    let (got, traps) = counting_traps(|| inputs.map(|i| run_regs(func, &i)));
    let _ = ENGINE.unregister(id);
    Some((opt, got, traps))
}

fn pc_change(r: &mut Report) {
    let f = addr::t_add2();
    let inputs = [runner::pattern(), {
        let mut p = runner::pattern();
        p[0] = 7;
        p[1] = 1;
        p
    }];
    let unprobed = inputs.map(|i| run_regs(f, &i));
    HITS.store(0, Ordering::SeqCst);
    let got = probed(f, return_42, f, &inputs);
    // Unprobed but for what the function would have changed: x0 is 42.
    let want = unprobed.map(|mut u| {
        u[0] = 42;
        u
    });
    r.check_eq(
        (got, HITS.load(Ordering::SeqCst), call(f, 10, 3)),
        (Some((Optimization::Optimized, want, 0)), 2, 13),
        format_args!(
            "optimized: a pre-handler's pc change (return 42 at t_add2's entry) through the detour's eret: \
             every other register and sp as unprobed, 0 traps"
        ),
    );
}

/// PSTATE.PAN, read or written through its system register (generic
/// name, so the assembler needs no FEAT_PAN flag; QEMU's `max` CPU has
/// it).
fn pan() -> bool {
    let v: usize;
    // SAFETY: reading PAN at EL1 has no side effect.
    unsafe { asm!("mrs {0}, S3_0_C4_C2_3", out(reg) v, options(nomem, nostack)) };
    v & (1 << 22) != 0
}

fn set_pan(on: bool) {
    // SAFETY: PAN only forbids EL1 accesses to EL0-accessible pages; the
    // kernel's own pages have no EL0 access, and PAN is cleared again
    // right after the call that needs it.
    unsafe {
        asm!("msr S3_0_C4_C2_3, {0}", in(reg) usize::from(on) << 22, options(nomem, nostack))
    };
}

/// A pc change with PSTATE.PAN set: the detour's `eret` must resume with
/// PAN still set (a trap's SPSR would have held it; an SPSR built from
/// NZCV and DAIF alone would turn it off under the resumed code).
fn pan_kept(r: &mut Report) {
    let f = addr::t_add2();
    HITS.store(0, Ordering::SeqCst);
    let id = ENGINE.register_kprobe(&Kprobe::at(f).pre(return_42)).ok();
    let opt = id.map(optimization);
    set_pan(true);
    let (got, traps) = counting_traps(|| call(f, 10, 3));
    let after = pan();
    set_pan(false);
    if let Some(id) = id {
        let _ = ENGINE.unregister(id);
    }
    r.check_eq(
        (opt, got, traps, HITS.load(Ordering::SeqCst), after, pan()),
        (Some(Optimization::Optimized), 42, 0, 1, true, false),
        format_args!(
            "optimized: a pc change through the detour's eret with PSTATE.PAN set resumes with PAN still set \
             (returned 42, 0 traps)"
        ),
    );
}

/// PSTATE.DAIF (bits 9:6).
fn daif() -> usize {
    let v: usize;
    // SAFETY: reading DAIF has no side effect.
    unsafe { asm!("mrs {0}, daif", out(reg) v, options(nomem, nostack)) };
    v
}

fn set_daif(v: usize) {
    // SAFETY: only the A (SError) mask differs between the values the
    // check writes; no SError is pending in this kernel, and the previous
    // value is written back right after the call.
    unsafe { asm!("msr daif, {0}", in(reg) v, options(nomem, nostack)) };
}

/// A pre-handler, as [`Kprobe::pre`] takes it.
type PreHandler = fn(&ProbeContext, &mut dyn Registers) -> PreAction;

/// DAIF seen by the last handler (+ 1 << 16 per hit).
static DAIF_IN_HANDLER: AtomicU64 = AtomicU64::new(0);

fn note_daif(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    DAIF_IN_HANDLER.store((1 << 16) | daif() as u64, Ordering::SeqCst);
    PreAction::Continue
}

fn note_daif_return_42(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let _ = note_daif(ctx, regs);
    return_42(ctx, regs)
}

/// DAIF through a detour: with the A mask set and clear before the call
/// (the kernel's IRQs stay masked), the handler runs with every exception
/// masked and the probed code continues with DAIF as it was, on path (a)
/// (the detour restores it) and on path (b) (`SPSR_EL1` and the `eret`).
fn daif_kept(r: &mut Report) {
    const A: usize = 1 << 8;
    const ALL: u64 = 0xf << 6;
    let f = addr::t_add2();
    let outer = daif();
    let mut seen = [(false, 0usize, false, 0u64, 0usize); 4];
    let cases: [(PreHandler, usize); 4] = [
        (note_daif, outer | A),
        (note_daif, outer & !A),
        (note_daif_return_42, outer | A),
        (note_daif_return_42, outer & !A),
    ];
    for (k, (pre, before)) in cases.into_iter().enumerate() {
        let Ok(id) = ENGINE.register_kprobe(&Kprobe::at(f).pre(pre)) else {
            continue;
        };
        DAIF_IN_HANDLER.store(0, Ordering::SeqCst);
        set_daif(before);
        let (got, traps) = counting_traps(|| call(f, 10, 3));
        let after = daif();
        set_daif(outer);
        let opt = optimization(id) == Optimization::Optimized;
        let _ = ENGINE.unregister(id);
        seen[k] = (
            opt,
            got,
            after == before,
            DAIF_IN_HANDLER.load(Ordering::SeqCst),
            traps,
        );
    }
    let handler = (1 << 16) | ALL;
    r.check_eq(
        seen,
        [
            (true, 13, true, handler, 0),
            (true, 13, true, handler, 0),
            (true, 42, true, handler, 0),
            (true, 42, true, handler, 0),
        ],
        format_args!(
            "optimized: DAIF through a detour with the A mask set and clear before the call, on path (a) \
             and on path (b) (eret): every exception masked in the handler, DAIF as before afterwards, 0 traps"
        ),
    );
}

fn sp_change(r: &mut Report) {
    let f = addr::t_stack();
    let inputs = [runner::pattern()];
    let unprobed = inputs.map(|i| run_regs(f, &i));
    HITS.store(0, Ordering::SeqCst);
    let got = probed(f + 4, finish_t_stack, f, &inputs);
    r.check_eq(
        (got, HITS.load(Ordering::SeqCst)),
        (Some((Optimization::Optimized, unprobed, 0)), 1),
        format_args!(
            "optimized: a pre-handler that moves pc and sp (finishes t_stack at +4: pops its frame, returns) \
             through the detour's eret: every register and sp as unprobed, 0 traps"
        ),
    );
}

fn fp_state(r: &mut Report) {
    let f = addr::t_fadd();
    // 1 + (2^-53 + 2^-60): rounds to 1 + 2^-52 to nearest, to 1 towards
    // zero; fadd d2, d0, d1 at +8.
    let mut input = runner::pattern();
    input[0] = 1f64.to_bits();
    input[1] = (f64::EPSILON / 2.0 + f64::EPSILON / 256.0).to_bits();
    let inputs = [input];
    let unprobed = inputs.map(|i| run_regs(f, &i));
    HITS.store(0, Ordering::SeqCst);
    let opt = probed(f + 8, clobber_fp, f, &inputs);
    let brk = {
        let id = ENGINE.register_kprobe(&Kprobe::at(f + 8).pre(clobber_fp).no_optimize());
        let got = inputs.map(|i| run_regs(f, &i));
        if let Ok(id) = id {
            let _ = ENGINE.unregister(id);
        }
        got
    };
    r.check_eq(
        (
            unprobed[0][2],
            opt,
            brk,
            HITS.load(Ordering::SeqCst),
        ),
        (
            (1f64 + f64::EPSILON).to_bits(),
            Some((Optimization::Optimized, unprobed, 0)),
            unprobed,
            2,
        ),
        format_args!(
            "optimized: a handler that clobbers v0-v7, v16-v31 and sets FPCR to round towards zero at t_fadd's fadd: \
             the detour restores them (the result rounds to nearest, as unprobed and as through brk), 0 traps"
        ),
    );
}

pub fn run(r: &mut Report) {
    pc_change(r);
    pan_kept(r);
    daif_kept(r);
    sp_change(r);
    fp_state(r);
}
