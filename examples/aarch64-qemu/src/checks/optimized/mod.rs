//! Jump-optimised probes ("optprobes") on aarch64: a probe hit through a
//! `b` to a detour in the kernel's `.detours` area, no `brk`. The trap
//! entry counts every breakpoint trap per CPU
//! ([`crate::trap::breakpoint_traps`]), so "0 traps" is measured, not
//! assumed.
//!
//! - [`sweep`]: every instruction of the callable test functions, probed
//!   twice, once allowed to be optimised and once opted out (a plain `brk`
//!   probe): every register and the scratch memory after the call as
//!   unprobed, the same hits, no trap where optimised; every site not
//!   optimised counted by reason.
//! - [`reasons`]: each reason listed as `[unoptimized: code]` while the
//!   `brk` probe keeps working (traps counted); the detour area refuses a
//!   page out of `b`'s reach; a BTI landing pad stays a `brk` probe while
//!   the instruction after it is optimised.
//! - [`reasons`] also: N hits with 0 traps and a kretprobe with an
//!   optimised entry on the recursive `t_opt_rsum`.
//! - [`resume`]: a pre-handler's pc change, and a pc and sp change,
//!   through the detour's `eret`; a handler that clobbers the FP/SIMD
//!   registers and FPCR (the detour restores them).
//! - [`churn`]: CPU 1 calls the probed functions while CPU 0 optimises,
//!   un-optimises, disables and unregisters probes on them.

mod churn;
mod reasons;
mod resume;
mod sweep;

use core::fmt;
use core::sync::atomic::Ordering;

use probe_core::{NotOptimized, Optimization, ProbeId};

use super::Report;
use crate::kernel::{DETOURS, ENGINE};
use crate::trap::breakpoint_traps;

/// The optimisation state of probe `id`.
fn optimization(id: ProbeId) -> Optimization {
    ENGINE
        .info(id)
        .map(|i| i.optimization)
        .unwrap_or(Optimization::NotOptimized(NotOptimized::PatchFailed))
}

/// Breakpoint traps on this CPU while `f` runs.
fn counting_traps<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let cpu = crate::sysreg::cpu_id();
    let before = breakpoint_traps(cpu);
    let v = f();
    (v, breakpoint_traps(cpu) - before)
}

/// Whether no detour and no detour page is held.
fn no_detours() -> bool {
    ENGINE.detours_in_use() == 0 && DETOURS.used.load(Ordering::SeqCst) == 0
}

/// A probe's listing line, in a fixed buffer.
struct Line {
    buf: [u8; 192],
    len: usize,
}

impl Line {
    fn of(info: &impl fmt::Display) -> Self {
        let mut l = Line {
            buf: [0; 192],
            len: 0,
        };
        let _ = fmt::write(&mut l, format_args!("{info}"));
        l
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Run `func` with `input` through the register runner; register 31 (the
/// stack pointer after the call) is made relative to this function's own
/// stack pointer, so calls made from different depths compare.
#[inline(never)]
fn run_regs(func: usize, input: &crate::runner::Regs) -> crate::runner::Regs {
    let sp: u64;
    // SAFETY: reads the stack pointer; no memory access, no side effect.
    unsafe { core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack)) };
    let mut out = crate::runner::run(func, input);
    out[31] = sp.wrapping_sub(out[31]);
    out
}

/// Milliseconds since boot (the generic timer).
fn now_ms() -> u64 {
    let (count, freq): (u64, u64);
    // SAFETY: reading the virtual counter and its frequency has no side
    // effect (EL1 may read both).
    unsafe {
        core::arch::asm!(
            "isb",
            "mrs {c}, cntvct_el0",
            "mrs {f}, cntfrq_el0",
            c = out(reg) count,
            f = out(reg) freq,
            options(nomem, nostack)
        )
    };
    count * 1000 / freq.max(1)
}

/// Run the optimised checks (optimisation switched on for them, off again
/// afterwards: the other checks count breakpoint traps and steps).
pub fn run(r: &mut Report) {
    r.check(
        ENGINE.set_optimization(true).is_ok() && ENGINE.optimization_enabled(),
        format_args!("optimized: jump optimisation switched on"),
    );
    sweep::run(r);
    reasons::run(r);
    resume::run(r);
    churn::run(r);
    let _ = ENGINE.set_optimization(false);
    r.check(
        no_detours(),
        format_args!("optimized: no detour and no detour page left"),
    );
}
