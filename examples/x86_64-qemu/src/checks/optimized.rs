//! Jump-optimised probes ("optprobes") in ring 0: a probe hit through a
//! `jmp rel32` and a detour in the kernel's detour area, no `int3`. The
//! breakpoint entry counts every trap ([`crate::entry::traps`]), so "0
//! traps" is measured, not assumed.
//!
//! - **every boundary**: each instruction boundary of the probed functions
//!   (those that can be called with fixed results), probed twice, once
//!   allowed to be optimised and once opted out (a plain `int3` probe):
//!   the same hits, and the same result, every general register and the
//!   arithmetic flags after the call as the unprobed run; where optimised,
//!   no trap at all. Every site the engine does not optimise is counted by
//!   reason.
//! - **reasons**: a post-handler (joining an optimised address, which
//!   un-optimises it first, and leaving), the engine-wide switch, disabled,
//!   a probe inside the region, no detour memory, opted out, and every site
//!   rule the sweep met (an indirect jump, a jump into the region, …): each
//!   listed as `[unoptimized: code]`, each probe still hit through its
//!   `int3` (traps counted).
//! - **kretprobe**: an optimised entry on the recursive `xq_rsum`.
//! - **pc change**: a pre-handler that returns from the function at its
//!   entry (`PreAction::SkipInstruction`) is honoured through the detour.
//!
//! The two-CPU churn is in [`super::two_cpus::run_optimized`].

// The error is a message in a fixed buffer (no allocator here): large, but
// it only travels up a few frames on a failure.
#![allow(clippy::result_large_err)]

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

use probe_core::{
    EntryAction, Kprobe, Kretprobe, NotOptimized, Optimization, PreAction, ProbeContext,
    ProbeErrorKind, ProbeId, Registers,
};

use super::counting_traps;
use crate::probed_code::*;
use crate::report::check;
use crate::services::{self, peek, ENGINE, INSTANCES};
use crate::symbols;

/// Registers around a call: rax, rbx, rcx, rdx, rsi, rdi, rbp, r8..r15,
/// then the flags.
type RegFile = [u64; 16];

core::arch::global_asm!(
    // xq_opt_capture(f: rdi, regs_in: rsi, regs_out: rdx, stack_top: rcx):
    // switch to the stack ending at `stack_top` (so that every call runs
    // with the same rsp: some functions leave stack addresses in registers
    // or flags), load every register and the flags from `regs_in`, call
    // `f`, store every register and the flags into `regs_out`, switch back.
    // Callee-saved registers are preserved. Outside the probed code (never
    // probed itself).
    ".pushsection .text.xq_opt_capture, \"ax\", @progbits",
    ".globl xq_opt_capture",
    "xq_opt_capture:",
    "mov rax, rsp",
    "mov rsp, rcx",
    "push rax",
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
    "pop rsp",
    "ret",
    ".popsection",
);

extern "C" {
    fn xq_opt_capture(f: usize, regs_in: *const RegFile, regs_out: *mut RegFile, stack_top: usize);
}

/// Bytes of the stack [`capture`] calls on.
const CAPTURE_STACK: usize = 32 * 1024;

/// The stack [`capture`] calls on (CPU 0 only).
#[repr(C, align(16))]
struct CaptureStack(core::cell::UnsafeCell<[u8; CAPTURE_STACK]>);

// SAFETY: only CPU 0 runs these checks, one capture at a time; the memory
// is only ever used as a stack by `xq_opt_capture`.
unsafe impl Sync for CaptureStack {}

static CAPTURE_STACK_MEM: CaptureStack =
    CaptureStack(core::cell::UnsafeCell::new([0; CAPTURE_STACK]));

/// The flags a call starts with: none, then CF, ZF, SF (IF stays clear:
/// CPU 0 runs with interrupts masked; DF clear, as the ABI wants).
const FLAG_SETS: [u64; 2] = [0x002, 0x0c3];

/// The input registers of [`capture`]: a pattern, the arguments in rdi,
/// rsi, rdx, and `flags`.
fn regs_in(args: [u64; 3], flags: u64) -> RegFile {
    let mut regs: RegFile = core::array::from_fn(|i| 0x5151_0000_0000_0000 | (i as u64) << 8);
    regs[5] = args[0];
    regs[4] = args[1];
    regs[3] = args[2];
    regs[15] = flags;
    regs
}

/// Call `f` with every register set from `args` and a pattern; every
/// register and the arithmetic flags and DF after it.
fn capture(f: usize, args: [u64; 3], flags: u64) -> RegFile {
    let regs = regs_in(args, flags);
    let mut out = [0u64; 16];
    let top = CAPTURE_STACK_MEM.0.get() as usize + CAPTURE_STACK;
    // Why the block below is sound:
    // `f` is one of the probed functions of `funcs()` (System V, at most three
    // integer arguments, called with arguments it accepts: valid pointers, IF
    // requests of 0, so interrupts stay masked); the routine restores the
    // callee-saved registers it loads and the stack pointer; the capture stack
    // is used by no one else (CPU 0 only, not re-entered: handlers do not call
    // `capture`), and is big enough for the function, a breakpoint trap's
    // frame and the handlers.
    // SAFETY: a System V test function on a private stack (see above).
    unsafe { xq_opt_capture(f, &regs, &mut out, top) };
    out[15] &= 0xcd5;
    out
}

/// The word `xq_load` reads in the sweep.
static LOAD_WORD: u64 = 0x1122_3344_5566_7788;

/// The functions swept, with their argument sets (each run with both flag
/// sets). Left out: `xq_cli` and `xq_sti` (they enable interrupts),
/// `xq_callptr` (a faulting pointer is its point), `xq_refused`.
fn funcs() -> [(&'static str, [[u64; 3]; 2]); 19] {
    let word = &raw const LOAD_WORD as u64;
    [
        ("xq_alu", [[7, 0, 0], [0x7fff_ffff_ffff_fff0, 0, 0]]),
        ("xq_push", [[3, 4, 0], [!3, !4, 0]]),
        ("xq_call", [[0, 0, 0], [0, 0, 0]]),
        ("xq_pushf", [[0, 0, 0], [0, 0, 0]]),
        ("xq_popf", [[0x8c3, 0, 0], [0x002, 0, 0]]),
        ("xq_if_step", [[0, 0, 0], [0, 0, 0]]),
        ("xq_riprel", [[0, 0, 0], [0, 0, 0]]),
        ("xq_jcc", [[3, 0, 0], [12, 0, 0]]),
        ("xq_loop", [[3, 0, 0], [1, 0, 0]]),
        ("xq_callreg", [[5, 0, 0], [9, 0, 0]]),
        ("xq_sum", [[4, 0, 0], [0, 0, 0]]),
        ("xq_leaf", [[9, 0, 0], [0, 0, 0]]),
        ("xq_rsum", [[4, 0, 0], [0, 0, 0]]),
        ("xq_ev_target", [[3, 4, 0], [5, 6, 0]]),
        ("xq_ev_caller", [[3, 4, 0], [5, 6, 0]]),
        ("xq_load", [[word, 0, 0], [word, 0, 0]]),
        ("xq_endbr", [[5, 0, 0], [6, 0, 0]]),
        ("xq_jtab", [[1, 0, 0], [2, 0, 0]]),
        ("xq_callmem", [[4, 0, 0], [5, 0, 0]]),
    ]
}

/// A short message in a fixed buffer (no allocator in this kernel).
pub struct Msg {
    buf: [u8; 240],
    len: usize,
}

impl Msg {
    pub const fn new() -> Self {
        Self {
            buf: [0; 240],
            len: 0,
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<not utf-8>")
    }
}

impl Write for Msg {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

macro_rules! msg {
    ($($t:tt)*) => {{
        let mut m = Msg::new();
        let _ = write!(m, $($t)*);
        m
    }};
}

/// Pre-handler runs of the sweep's probe.
static HITS: AtomicU64 = AtomicU64::new(0);

fn count_hit(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    HITS.fetch_add(1, Ordering::SeqCst);
    PreAction::Continue
}

fn post_nothing(_: &ProbeContext, _: &mut dyn Registers) {}

fn optimization(id: ProbeId) -> Optimization {
    ENGINE
        .info(id)
        .map(|i| i.optimization)
        .unwrap_or(Optimization::NotOptimized(NotOptimized::PatchFailed))
}

/// The probe's listing line.
fn listing(id: ProbeId) -> Msg {
    match ENGINE.info(id) {
        Ok(info) => msg!("{info}"),
        Err(e) => msg!("info failed: {e}"),
    }
}

/// The sweep's results.
struct Tally {
    funcs: usize,
    sites: usize,
    optimized: usize,
    opt_hits: u64,
    opt_traps: u64,
    int3_traps: u64,
    /// (code, sites, first site hit by the function's first arguments,
    /// its function's index in `funcs()`, whether that site was hit).
    reasons: [(&'static str, usize, usize, usize, bool); 16],
    n_reasons: usize,
}

impl Tally {
    fn note(&mut self, code: &'static str, at: usize, func: usize, hit: bool) {
        if let Some(r) = self.reasons[..self.n_reasons]
            .iter_mut()
            .find(|r| r.0 == code)
        {
            r.1 += 1;
            if hit && !r.4 {
                (r.2, r.3, r.4) = (at, func, hit);
            }
            return;
        }
        if self.n_reasons < self.reasons.len() {
            self.reasons[self.n_reasons] = (code, 1, at, func, hit);
            self.n_reasons += 1;
        }
    }

    fn has(&self, code: &str) -> bool {
        self.reasons[..self.n_reasons].iter().any(|r| r.0 == code)
    }
}

struct ReasonList<'a>(&'a Tally);

impl fmt::Display for ReasonList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.reasons[..self.0.n_reasons].iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {}", r.0, r.1)?;
        }
        Ok(())
    }
}

/// One site, one registration: (optimisation, hits, traps), or `None`
/// when the site cannot be probed at all (not a boundary, refused).
fn one_run(
    f: usize,
    at: usize,
    allow: bool,
    args: &[[u64; 3]; 2],
    unprobed: &[[RegFile; 2]; 2],
) -> Result<Option<(Optimization, u64, u64, bool)>, Msg> {
    HITS.store(0, Ordering::SeqCst);
    let k = Kprobe::at(at).pre(count_hit);
    let id = match ENGINE.register_kprobe(&if allow { k } else { k.no_optimize() }) {
        Ok(id) => id,
        Err(e) if matches!(e.kind(), ProbeErrorKind::NotInsnBoundary { .. }) => return Ok(None),
        Err(_) => return Ok(None),
    };
    let opt = optimization(id);
    let mut bad = None;
    let mut first_args_hit = false;
    let (_, traps) = counting_traps(|| {
        for (a, args) in args.iter().enumerate() {
            if a == 1 {
                first_args_hit = HITS.load(Ordering::SeqCst) > 0;
            }
            for (j, &fl) in FLAG_SETS.iter().enumerate() {
                let got = capture(f, *args, fl);
                if got != unprobed[a][j] && bad.is_none() {
                    let r = (0..16).find(|&r| got[r] != unprobed[a][j][r]).unwrap_or(0);
                    bad = Some((a, j, r, got[r], unprobed[a][j][r]));
                }
            }
        }
    });
    let hits = HITS.load(Ordering::SeqCst);
    if let Err(e) = ENGINE.unregister(id) {
        return Err(msg!("{at:#x}: unregister failed: {e}"));
    }
    if let Some((a, j, r, got, want)) = bad {
        return Err(msg!(
            "{at:#x} ({opt}, allowed {allow}): args {a} flags {j}: register {r} = {got:#x}, unprobed {want:#x}"
        ));
    }
    Ok(Some((opt, hits, traps, first_args_hit)))
}

fn sweep(t: &mut Tally) -> Result<(), Msg> {
    for (fi, (name, args)) in funcs().iter().enumerate() {
        let sym = symbols::lookup(name).ok_or_else(|| msg!("no symbol {name}"))?;
        let f = sym.addr;
        let unprobed: [[RegFile; 2]; 2] =
            core::array::from_fn(|a| core::array::from_fn(|j| capture(f, args[a], FLAG_SETS[j])));
        let mut original = [0u8; 128];
        let size = sym.size.min(original.len());
        for (i, b) in original[..size].iter_mut().enumerate() {
            *b = peek(f + i);
        }
        t.funcs += 1;
        for off in 0..sym.size {
            let at = f + off;
            let Some(opt_run) = one_run(f, at, true, args, &unprobed)
                .map_err(|m| msg!("{name}+{off:#x}: {}", m.as_str()))?
            else {
                continue;
            };
            let int3_run = one_run(f, at, false, args, &unprobed)
                .map_err(|m| msg!("{name}+{off:#x}: {}", m.as_str()))?
                .ok_or_else(|| msg!("{name}+{off:#x}: registered only when optimisable"))?;
            if opt_run.1 != int3_run.1 {
                return Err(msg!(
                    "{name}+{off:#x}: hits {} ({}) vs {} through int3",
                    opt_run.1,
                    opt_run.0,
                    int3_run.1
                ));
            }
            if int3_run.0 != Optimization::NotOptimized(NotOptimized::OptedOut) {
                return Err(msg!("{name}+{off:#x}: opted-out run is {}", int3_run.0));
            }
            t.sites += 1;
            t.int3_traps += int3_run.2;
            match opt_run.0 {
                Optimization::Optimized => {
                    t.optimized += 1;
                    t.opt_hits += opt_run.1;
                    t.opt_traps += opt_run.2;
                }
                Optimization::NotOptimized(why) => t.note(why.code(), at, fi, int3_run.3),
            }
        }
        if (0..size).any(|i| peek(f + i) != original[i]) {
            return Err(msg!("{name}: text changed after the sweep"));
        }
    }
    Ok(())
}

fn every_boundary() -> Tally {
    let name = "optimized: every boundary of the probed functions, optimised vs int3 vs unprobed (registers, flags, hits, traps)";
    let mut t = Tally {
        funcs: 0,
        sites: 0,
        optimized: 0,
        opt_hits: 0,
        opt_traps: 0,
        int3_traps: 0,
        reasons: [("", 0, 0, 0, false); 16],
        n_reasons: 0,
    };
    let start = crate::clock::now();
    let r = sweep(&mut t);
    let ms = crate::clock::us_since(start) / 1000;
    let needed = ["jump-into-region", "indirect-jump", "not-boostable"];
    let err = r.err();
    check(
        name,
        err.is_none()
            && t.optimized > 0
            && t.opt_hits >= t.optimized as u64
            && t.opt_traps == 0
            && needed.iter().all(|c| t.has(c))
            && ENGINE.detours_in_use() == 0,
        format_args!(
            "{} functions, {} sites: {} optimised ({} hits, {} traps; the same sites \
             opted out took {} traps), not optimised: {}; detours left {}; {ms} ms; error: {}",
            t.funcs,
            t.sites,
            t.optimized,
            t.opt_hits,
            t.opt_traps,
            t.int3_traps,
            ReasonList(&t),
            ENGINE.detours_in_use(),
            err.as_ref().map_or("none", |m| m.as_str())
        ),
    );
    t
}

/// `xq_alu(x)`, checked.
fn alu_ok() -> bool {
    // SAFETY: a probed_code function: C ABI, touches only its registers.
    unsafe { xq_alu(10) == 45 }
}

/// The probe `id` is optimised: listed `[OPTIMIZED]`, a call takes no
/// trap and counts one hit.
fn expect_optimized(id: ProbeId, what: &str) -> Result<(), Msg> {
    let line = listing(id);
    if optimization(id) != Optimization::Optimized || !line.as_str().ends_with("[OPTIMIZED]") {
        return Err(msg!("{what}: listed {}", line.as_str()));
    }
    let before = HITS.load(Ordering::SeqCst);
    let (ok, traps) = counting_traps(alu_ok);
    let hits = HITS.load(Ordering::SeqCst) - before;
    if !ok || traps != 0 || hits == 0 {
        return Err(msg!(
            "{what}: result ok {ok}, traps {traps} (want 0), hits {hits}"
        ));
    }
    Ok(())
}

/// The probe `id` is not optimised for `code`: listed so, and `call`
/// still hits it through its int3 (at least one trap, a hit).
fn expect_reason(id: ProbeId, code: &str, call: impl FnOnce() -> bool) -> Result<(), Msg> {
    let line = listing(id);
    let mut want = Msg::new();
    let _ = write!(want, "[unoptimized: {code}]");
    let listed = match optimization(id) {
        Optimization::NotOptimized(why) => why.code() == code,
        Optimization::Optimized => false,
    };
    if !listed || !line.as_str().ends_with(want.as_str()) {
        return Err(msg!("{code}: listed {}", line.as_str()));
    }
    let before = ENGINE.info(id).map(|i| i.hits).unwrap_or(0);
    let (ok, traps) = counting_traps(call);
    let hits = ENGINE.info(id).map(|i| i.hits).unwrap_or(0) - before;
    if !ok || traps == 0 || hits == 0 {
        return Err(msg!(
            "{code}: result ok {ok}, traps {traps} (want > 0), hits {hits}"
        ));
    }
    Ok(())
}

fn reg(r: Result<ProbeId, probe_core::ProbeError>, what: &str) -> Result<ProbeId, Msg> {
    r.map_err(|e| msg!("{what}: registering failed: {e}"))
}

fn unreg(id: ProbeId) -> Result<(), Msg> {
    ENGINE
        .unregister(id)
        .map_err(|e| msg!("unregistering failed: {e}"))
}

/// The policy reasons on `xq_alu`'s entry; returns the codes proven.
fn policy_reasons(proven: &mut [&'static str; 24], n: &mut usize) -> Result<(), Msg> {
    let mut note = |c: &'static str| {
        if *n < proven.len() {
            proven[*n] = c;
            *n += 1;
        }
    };
    let at = xq_alu as *const () as usize;
    let plain = reg(
        ENGINE.register_kprobe(&Kprobe::at(at).pre(count_hit)),
        "plain",
    )?;
    expect_optimized(plain, "a lone pre-handler probe")?;
    // A post-handler joins: back to the breakpoint first; it leaves:
    // optimised again.
    let post = reg(
        ENGINE.register_kprobe(&Kprobe::at(at).pre(count_hit).post(post_nothing)),
        "post",
    )?;
    expect_reason(plain, "post-handler", alu_ok)?;
    note("post-handler");
    unreg(post)?;
    expect_optimized(plain, "after the post-handler left")?;
    // The switch.
    ENGINE
        .set_optimization(false)
        .map_err(|e| msg!("switch off: {e}"))?;
    expect_reason(plain, "switched-off", alu_ok)?;
    note("switched-off");
    ENGINE
        .set_optimization(true)
        .map_err(|e| msg!("switch on: {e}"))?;
    expect_optimized(plain, "switched on again")?;
    // Disabled (no trap then) and enabled.
    ENGINE.disable(plain).map_err(|e| msg!("disable: {e}"))?;
    // The listing of a disabled probe says `[DISABLED]` (no optimisation
    // suffix).
    if optimization(plain) != Optimization::NotOptimized(NotOptimized::Disabled)
        || !listing(plain).as_str().contains("[DISABLED]")
        || listing(plain).as_str().contains("[OPTIMIZED]")
    {
        return Err(msg!("disabled: listed {}", listing(plain).as_str()));
    }
    let (ok, traps) = counting_traps(alu_ok);
    if !ok || traps != 0 {
        return Err(msg!("disabled: ok {ok}, traps {traps} (want 0)"));
    }
    note("disabled");
    ENGINE.enable(plain).map_err(|e| msg!("enable: {e}"))?;
    expect_optimized(plain, "enabled again")?;
    // A probe inside the region (xq_alu_add, +3: the region is 7 bytes).
    let inner = reg(
        ENGINE.register_kprobe(&Kprobe::at(addr(xq_alu_add)).pre(count_hit)),
        "inner",
    )?;
    expect_reason(plain, "probe-in-region", alu_ok)?;
    if optimization(plain)
        != Optimization::NotOptimized(NotOptimized::ProbeInRegion {
            addr: addr(xq_alu_add),
        })
    {
        return Err(msg!("probe-in-region names another address"));
    }
    note("probe-in-region");
    unreg(inner)?;
    expect_optimized(plain, "after the inner probe left")?;
    unreg(plain)?;
    // No detour memory.
    services::refuse_detours(true);
    let r = ENGINE.register_kprobe(&Kprobe::at(at).pre(count_hit));
    services::refuse_detours(false);
    let id = reg(r, "no detour memory")?;
    let r = expect_reason(id, "no-detour-memory", alu_ok);
    unreg(id)?;
    r?;
    note("no-detour-memory");
    // Opted out.
    let id = reg(
        ENGINE.register_kprobe(&Kprobe::at(at).pre(count_hit).no_optimize()),
        "opted out",
    )?;
    let r = expect_reason(id, "opted-out", alu_ok);
    unreg(id)?;
    r?;
    note("opted-out");
    // A post-handler alone.
    let id = reg(
        ENGINE.register_kprobe(&Kprobe::at(at).pre(count_hit).post(post_nothing)),
        "post alone",
    )?;
    let r = expect_reason(id, "post-handler", alu_ok);
    unreg(id)?;
    r
}

fn reasons(t: &Tally) {
    let name = "optimized: each reason a probe is not optimised is listed, each probe still traps and hits";
    let mut proven = [""; 24];
    let mut n = 0;
    if ENGINE.set_optimization(true).is_err() {
        check(name, false, format_args!("switching on failed"));
        return;
    }
    let mut r = policy_reasons(&mut proven, &mut n);
    if r.is_err() {
        // A failure leaves its probes registered: take them all away, so
        // the later checks start clean.
        for info in ENGINE.list::<32>() {
            let _ = ENGINE.unregister(info.id);
        }
    }
    // Every site rule the sweep met, at the first site it was met.
    let fs = funcs();
    let mut listed_only = 0;
    for &(code, _, at, fi, hit) in &t.reasons[..t.n_reasons] {
        if r.is_err() {
            break;
        }
        let (fname, args) = fs[fi];
        let f = symbols::lookup(fname).map_or(0, |s| s.addr);
        let want = capture(f, args[0], FLAG_SETS[0]);
        r = reg(ENGINE.register_kprobe(&Kprobe::at(at).pre(count_hit)), code).and_then(|id| {
            let e = if hit {
                expect_reason(id, code, || capture(f, args[0], FLAG_SETS[0]) == want)
            } else {
                // No site of this reason runs with the sweep's arguments
                // (e.g. may-fault: only the exception fix-up's `mov` has a
                // boostable region): the listing only.
                listed_only += 1;
                let line = listing(id);
                let mut suffix = Msg::new();
                let _ = write!(suffix, "[unoptimized: {code}]");
                if line.as_str().ends_with(suffix.as_str()) {
                    Ok(())
                } else {
                    Err(msg!("{code}: listed {}", line.as_str()))
                }
            };
            let u = unreg(id);
            e.and(u)
        });
        r = r.map_err(|m| msg!("{fname} {at:#x}: {}", m.as_str()));
        if r.is_ok() && n < proven.len() {
            proven[n] = code;
            n += 1;
        }
    }
    struct Codes<'a>(&'a [&'static str]);
    impl fmt::Display for Codes<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for (i, c) in self.0.iter().enumerate() {
                write!(f, "{}{c}", if i > 0 { ", " } else { "" })?;
            }
            Ok(())
        }
    }
    let needed = [
        "post-handler",
        "switched-off",
        "disabled",
        "probe-in-region",
        "no-detour-memory",
        "opted-out",
        "indirect-jump",
        "jump-into-region",
    ];
    let all = needed.iter().all(|c| proven[..n].contains(c));
    // The reach: a page asked for near an address 64 TiB away, or within
    // 4 KiB of the probed code (the detour area is further), is refused.
    let far =
        probe_core::KernelServices::alloc_detour_page(ENGINE.services(), 0x4000_0000_0000, 1 << 30);
    let near_code = probe_core::KernelServices::alloc_detour_page(
        ENGINE.services(),
        xq_alu as *const () as usize,
        4096,
    );
    let reach_ok = far.is_none() && near_code.is_none();
    check(
        name,
        r.is_ok()
            && all
            && reach_ok
            && ENGINE.detours_in_use() == 0
            && ENGINE.list::<4>().is_empty(),
        format_args!(
            "{n} proven (listed, then hit through int3; {listed_only} of them listed only, no \
             site of that reason runs): {}; detour pages out of reach refused (64 TiB away: \
             {far:?}, within 4 KiB of xq_alu: {near_code:?}, want None); detours left {}; \
             error: {}",
            Codes(&proven[..n]),
            ENGINE.detours_in_use(),
            r.as_ref().err().map_or("none", |m| m.as_str())
        ),
    );
}

/// Entries and returns of the kretprobe, and wrong return values.
static RET_ENTRIES: AtomicU64 = AtomicU64::new(0);
static RET_RETURNS: AtomicU64 = AtomicU64::new(0);
static RET_WRONG: AtomicU64 = AtomicU64::new(0);

fn rsum_entry(_: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) -> EntryAction {
    RET_ENTRIES.fetch_add(1, Ordering::SeqCst);
    let n = regs.arg(0).unwrap_or(0) as u64;
    data[..8].copy_from_slice(&n.to_le_bytes());
    EntryAction::Track
}

fn rsum_ret(_: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) {
    RET_RETURNS.fetch_add(1, Ordering::SeqCst);
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[..8]);
    let n = u64::from_le_bytes(b);
    if regs.return_value() as u64 != n * (n + 1) / 2 {
        RET_WRONG.fetch_add(1, Ordering::SeqCst);
    }
}

fn kretprobe() {
    let name = "optimized: kretprobe with an optimised entry on recursive xq_rsum(5)";
    let _ = ENGINE.set_optimization(true);
    let r = ENGINE.register_kretprobe(
        &Kretprobe::at(xq_rsum as *const () as usize)
            .entry(rsum_entry)
            .ret(rsum_ret)
            .data_size(8)
            .maxactive(8),
    );
    let id = match r {
        Ok(id) => id,
        Err(e) => {
            check(name, false, format_args!("registering failed: {e}"));
            return;
        }
    };
    let opt = optimization(id);
    let line = listing(id);
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let (v, traps) = counting_traps(|| unsafe { xq_rsum(5) });
    let hits = ENGINE.info(id).map(|i| i.hits).unwrap_or(0);
    let unregistered = ENGINE.unregister(id).is_ok();
    // SAFETY: as above.
    let after = unsafe { xq_rsum(5) };
    let (e, rt, w) = (
        RET_ENTRIES.load(Ordering::SeqCst),
        RET_RETURNS.load(Ordering::SeqCst),
        RET_WRONG.load(Ordering::SeqCst),
    );
    check(
        name,
        opt == Optimization::Optimized
            && line.as_str().ends_with("[OPTIMIZED]")
            && v == 15
            && traps == 0
            && (hits, e, rt, w) == (6, 6, 6, 0)
            && unregistered
            && after == 15
            && ENGINE.free_instances() == INSTANCES
            && ENGINE.detours_in_use() == 0,
        format_args!(
            "{opt}; xq_rsum(5) = {v} (want 15), {traps} traps (want 0) for 6 entries and 6 \
             returns; hits {hits}, entries {e}, returns {rt} (want 6 each), wrong values {w}; \
             after unregistering {after}; free instances {} (want {INSTANCES}); detours left {}",
            ENGINE.free_instances(),
            ENGINE.detours_in_use()
        ),
    );
}

/// Return from the probed function at its entry with 42 (rip = [rsp],
/// rsp += 8): the pc change a detour must honour.
fn return_42(_: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    HITS.fetch_add(1, Ordering::SeqCst);
    let sp = regs.sp();
    // SAFETY: the probe is at a function's entry: rsp points at the return
    // address its caller pushed, on this CPU's stack.
    let ret = unsafe { core::ptr::read(sp as *const usize) };
    regs.set_pc(ret);
    regs.set_sp(sp + 8);
    regs.set_return_value(42);
    PreAction::SkipInstruction
}

fn pc_change() {
    let name = "optimized: a pre-handler's pc change (return 42 at xq_alu's entry) is honoured through the detour";
    let _ = ENGINE.set_optimization(true);
    let id = match ENGINE.register_kprobe(&Kprobe::at(xq_alu as *const () as usize).pre(return_42))
    {
        Ok(id) => id,
        Err(e) => {
            check(name, false, format_args!("registering failed: {e}"));
            return;
        }
    };
    let opt = optimization(id);
    HITS.store(0, Ordering::SeqCst);
    let f = xq_alu as *const () as usize;
    let (caps, traps) = counting_traps(|| FLAG_SETS.map(|fl| capture(f, [10, 0, 0], fl)));
    let hits = HITS.load(Ordering::SeqCst);
    let unregistered = ENGINE.unregister(id).is_ok();
    // Every register but rax as it went in (the function never ran), the
    // flags too.
    let mut kept = true;
    for (j, c) in caps.iter().enumerate() {
        let input = regs_in([10, 0, 0], FLAG_SETS[j]);
        kept &= (1..15).all(|r| c[r] == input[r]) && c[15] == input[15] & 0xcd5;
    }
    check(
        name,
        opt == Optimization::Optimized
            && caps.iter().all(|c| c[0] == 42)
            && kept
            && traps == 0
            && hits == 2
            && unregistered
            && alu_ok(),
        format_args!(
            "{opt}; rax {:#x}/{:#x} (want 42), other registers and flags as passed in: {kept}; \
             {traps} traps (want 0), {hits} hits (want 2); after unregistering xq_alu(10) is 45: {}",
            caps[0][0],
            caps[1][0],
            alu_ok()
        ),
    );
}

/// IF inside the last handler (+ 2: it ran).
static IF_IN_HANDLER: AtomicU64 = AtomicU64::new(0);

fn note_if(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    IF_IN_HANDLER.store(
        2 | crate::cpu::interrupts_enabled() as u64,
        Ordering::SeqCst,
    );
    PreAction::Continue
}

/// As [`note_if`], then return 77 from `xq_if_opt` at once (rip = [rsp],
/// rsp += 8: the probe site follows no push).
fn note_if_return_77(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let _ = note_if(ctx, regs);
    let sp = regs.sp();
    // SAFETY: at xq_if_opt_site rsp points at the return address its caller
    // pushed, on this CPU's stack.
    let ret = unsafe { core::ptr::read(sp as *const usize) };
    regs.set_pc(ret);
    regs.set_sp(sp + 8);
    regs.set_return_value(77);
    PreAction::SkipInstruction
}

/// A pre-handler, as [`Kprobe::pre`] takes it.
type PreHandler = fn(&ProbeContext, &mut dyn Registers) -> PreAction;

/// IF through a detour, set and clear before the probed region (CPU 0
/// takes no interrupt: nothing is routed to it): clear in the handler
/// (the detour's `cli`), as before afterwards on path (a) (`popfq`) and on
/// path (b) (`popfq` before the `ret`).
fn interrupt_flag() {
    let name =
        "optimized: IF set and clear before a jump-optimised region, on path (a) and path (b): \
                clear in the handler, as before afterwards";
    let cases: [(PreHandler, bool, bool); 4] = [
        (note_if, false, false),
        (note_if, true, false),
        (note_if_return_77, false, true),
        (note_if_return_77, true, true),
    ];
    let mut ok = true;
    // (IF before, moved, optimised, rax, IF after, handler note, traps)
    let mut seen = [(false, false, false, 0u64, false, 0u64, 0u64); 4];
    for (k, (pre, want_if, moved)) in cases.into_iter().enumerate() {
        let site = xq_if_opt_site as *const () as usize;
        let id = match ENGINE.register_kprobe(&Kprobe::at(site).pre(pre)) {
            Ok(id) => id,
            Err(e) => {
                check(name, false, format_args!("registering failed: {e}"));
                return;
            }
        };
        let opt = optimization(id) == Optimization::Optimized;
        IF_IN_HANDLER.store(0, Ordering::SeqCst);
        // SAFETY: a probed_code function (C ABI); it clears IF before
        // returning, and when the handler returns for it IF is cleared
        // right below.
        let (p, traps) = counting_traps(|| unsafe { xq_if_opt(want_if as u64, moved as u64) });
        let if_after = crate::cpu::interrupts_enabled();
        crate::cpu::disable_interrupts();
        let _ = ENGINE.unregister(id);
        let in_handler = IF_IN_HANDLER.load(Ordering::SeqCst);
        ok &= opt
            && traps == 0
            && in_handler == 2
            && if moved {
                p.a == 77 && if_after == want_if
            } else {
                (p.a & crate::cpu::IF != 0) == want_if && p.b == want_if as u64 + 3 && !if_after
            };
        seen[k] = (want_if, moved, opt, p.a, if_after, in_handler, traps);
    }
    check(
        name,
        ok,
        format_args!(
            "(IF before, pc moved, optimised, rax, IF after, handler saw 2 + IF, traps): {seen:?}"
        ),
    );
}

/// Run the single-CPU checks (optimisation switched on for them, off
/// again afterwards: the other checks count breakpoint traps).
pub fn run() {
    if ENGINE.set_optimization(true).is_err() {
        check(
            "optimized: switching jump optimisation on",
            false,
            format_args!("set_optimization(true) failed"),
        );
        return;
    }
    let t = every_boundary();
    reasons(&t);
    kretprobe();
    pc_change();
    interrupt_flag();
    let _ = ENGINE.set_optimization(false);
}
