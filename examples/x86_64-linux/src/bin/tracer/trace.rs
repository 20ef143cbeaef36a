//! The tracer's trap loop: run a child until it stops at its next
//! checkpoint, handing every `SIGTRAP` to the engine as a user-mode
//! breakpoint in the child's address space.
//!
//! Signals: the tracer plays the kernel's signal delivery. A synchronous
//! fault (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`) goes to the engine's
//! fault entry first. Any other signal that stops the child is delivered
//! as the kernel would with uprobes: while the engine says the child has
//! an out-of-line step parked ([`Engine::should_defer_signal`]), either
//! the signal is held back until the step-end trap ([`SignalPolicy::Defer`],
//! Linux's `uprobe_deny_signal`), or the step is undone first
//! ([`SignalPolicy::Abort`], Linux's `arch_uprobe_abort_xol`: pc back at
//! the probe address, the probe fires again after the handler).
//!
//! [`Engine::should_defer_signal`]: probe_core::Engine::should_defer_signal

use core::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering};

use libc::c_int;
use probe_core::{ExecMode, FaultOutcome, TrapOutcome};
use x86_64_linux::frame::{from_user_regs, to_user_regs};

use crate::child::{Child, Command, STOP_AFTER};
use crate::ptrace::{self, Status};
use crate::{services, ENGINE};

/// What one command cost and returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The function's result.
    pub ret: u64,
    /// SIGTRAPs the tracer handled on the way.
    pub traps: u64,
}

/// Hand the child's breakpoint to the engine and write the registers back.
fn breakpoint(child: &Child) -> Result<(), String> {
    let mut u = ptrace::getregs(child.pid)?;
    let mut regs = from_user_regs(&u);
    services::set_current(child.pid);
    let before = regs.rip;
    // SAFETY: the tracer handles one stopped child at a time; `set_current`
    // made the services name that child's task and space.
    let o = unsafe { ENGINE.handle_breakpoint(&mut regs, ExecMode::User) };
    if std::env::var_os("TRACER_DEBUG").is_some() {
        eprintln!(
            "trap pid {} rip {:#x} -> {:?} rip {:#x}",
            child.pid, before, o, regs.rip
        );
    }
    match o {
        TrapOutcome::Handled => {
            to_user_regs(&regs, &mut u);
            ptrace::setregs(child.pid, &u)
        }
        TrapOutcome::Fault { addr } => {
            // Deliver the fault as the original instruction's: SIGSEGV at
            // the probe address.
            to_user_regs(&regs, &mut u);
            ptrace::setregs(child.pid, &u)?;
            ptrace::cont(child.pid, libc::SIGSEGV)?;
            Err(format!(
                "child {}: a simulated instruction faulted at {addr:#x}",
                child.pid
            ))
        }
        _ => Err(format!(
            "child {}: an int3 at {:#x} that is no probe",
            child.pid,
            u.rip - 1
        )),
    }
}

/// The child faulted: the engine first (a fault in a slot goes back to
/// the probe address), then the signal is delivered as without probes.
fn fault(child: &Child, sig: c_int) -> Result<(), String> {
    let mut u = ptrace::getregs(child.pid)?;
    let mut regs = from_user_regs(&u);
    services::set_current(child.pid);
    // SAFETY: as in `breakpoint`.
    let outcome = unsafe { ENGINE.handle_fault(&mut regs, ExecMode::User) };
    if outcome == FaultOutcome::StepAborted {
        to_user_regs(&regs, &mut u);
        ptrace::setregs(child.pid, &u)?;
    }
    ptrace::cont(child.pid, sig)?;
    Err(format!(
        "child {} got signal {sig} at {:#x} ({outcome:?})",
        child.pid, u.rip
    ))
}

/// How a signal that arrives during a child's out-of-line step is
/// delivered (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalPolicy {
    /// Hold it back until the step-end trap, then deliver it.
    Defer,
    /// Undo the step (pc back at the probe), then deliver it at once.
    Abort,
}

static POLICY: AtomicU8 = AtomicU8::new(0);
/// A signal to send the child once its next out-of-line step has run its
/// copied instruction but not yet trapped at the step end (0: none).
static SIGNAL_AFTER_COPY: AtomicI32 = AtomicI32::new(0);

/// Have the next step of a child run its copied instruction alone
/// (`PTRACE_SINGLESTEP`), then send it `sig`: the signal arrives between
/// the copy and the step-end trap.
pub fn signal_after_next_copy(sig: c_int) {
    SIGNAL_AFTER_COPY.store(sig, Ordering::Release);
}
static DEFERRED: AtomicU64 = AtomicU64::new(0);
static ABORTED: AtomicU64 = AtomicU64::new(0);
static DELIVERED: AtomicU64 = AtomicU64::new(0);

/// Choose how signals during a step are delivered.
pub fn set_signal_policy(p: SignalPolicy) {
    POLICY.store(p as u8, Ordering::Release);
}

fn policy() -> SignalPolicy {
    if POLICY.load(Ordering::Acquire) == SignalPolicy::Abort as u8 {
        SignalPolicy::Abort
    } else {
        SignalPolicy::Defer
    }
}

/// (signals held back during a step, steps aborted for a signal, signals
/// delivered) so far.
pub fn signal_record() -> (u64, u64, u64) {
    (
        DEFERRED.load(Ordering::Acquire),
        ABORTED.load(Ordering::Acquire),
        DELIVERED.load(Ordering::Acquire),
    )
}

/// A signal `sig` stopped the child: deliver it as the kernel would, or
/// hold it in `held` until the step in flight has ended.
fn signal(child: &Child, sig: c_int, held: &mut Option<c_int>) -> Result<(), String> {
    services::set_current(child.pid);
    if !ENGINE.should_defer_signal(child.task) {
        DELIVERED.fetch_add(1, Ordering::AcqRel);
        return ptrace::cont(child.pid, sig);
    }
    match policy() {
        SignalPolicy::Defer => {
            // The step completes after one instruction; the signal waits
            // (a second one of the same kind merges, as pending signals do).
            DEFERRED.fetch_add(1, Ordering::AcqRel);
            held.get_or_insert(sig);
            ptrace::cont(child.pid, 0)
        }
        SignalPolicy::Abort => {
            let mut u = ptrace::getregs(child.pid)?;
            let mut regs = from_user_regs(&u);
            // SAFETY: the child is stopped (interrupts masked, as it were),
            // `set_current` names its task and space, and `regs` is its
            // user-mode frame, written back before it runs.
            if unsafe { ENGINE.abort_user_step(&mut regs) } {
                ABORTED.fetch_add(1, Ordering::AcqRel);
                to_user_regs(&regs, &mut u);
                ptrace::setregs(child.pid, &u)?;
            }
            DELIVERED.fetch_add(1, Ordering::AcqRel);
            ptrace::cont(child.pid, sig)
        }
    }
}

/// Run the copied instruction of the step in flight alone, then send the
/// child `sig` and let it go on: the signal stops it at the step end, with
/// the copy done and the step-end trap still to come.
fn copy_then_signal(child: &Child, sig: c_int) -> Result<(), String> {
    ptrace::singlestep(child.pid)?;
    match ptrace::wait(child.pid)? {
        Status::Stopped(libc::SIGTRAP) => {}
        other => {
            return Err(format!(
                "child {}: single step ended with {other:?}",
                child.pid
            ))
        }
    }
    // SAFETY: kill(2) to our own stopped, traced child.
    unsafe { libc::kill(child.pid, sig) };
    // The single-step SIGTRAP is the tracer's own: suppressed.
    ptrace::cont(child.pid, 0)
}

/// Continue the child until its next SIGSTOP; SIGTRAPs taken on the way.
pub fn run_until_stop(child: &Child) -> Result<u64, String> {
    ptrace::cont(child.pid, 0)?;
    let mut traps = 0;
    let mut held = None;
    loop {
        match ptrace::wait(child.pid)? {
            Status::Stopped(libc::SIGTRAP) => {
                traps += 1;
                breakpoint(child)?;
                // A signal held back during the step goes now that it ended.
                let mut sig = 0;
                if held.is_some() && !ENGINE.should_defer_signal(child.task) {
                    sig = held.take().unwrap_or(0);
                    DELIVERED.fetch_add(1, Ordering::AcqRel);
                }
                if sig == 0 && ENGINE.should_defer_signal(child.task) {
                    let after_copy = SIGNAL_AFTER_COPY.swap(0, Ordering::AcqRel);
                    if after_copy != 0 {
                        copy_then_signal(child, after_copy)?;
                        continue;
                    }
                }
                ptrace::cont(child.pid, sig)?;
            }
            Status::Stopped(libc::SIGSTOP) => {
                if held.is_some() {
                    return Err(format!("child {}: stopped with a signal held", child.pid));
                }
                return Ok(traps);
            }
            Status::Stopped(sig @ (libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE)) => {
                return fault(child, sig).map(|_| traps)
            }
            Status::Stopped(sig) => signal(child, sig, &mut held)?,
            other => return Err(format!("child {} ended: {other:?}", child.pid)),
        }
    }
}

/// Call `func` in the child and wait for its result.
pub fn call(child: &Child, func: usize, args: [u64; 3]) -> Result<Outcome, String> {
    child.send(&Command {
        func: func as u64,
        args,
        flags: STOP_AFTER,
    })?;
    let traps = run_until_stop(child)?;
    Ok(Outcome {
        ret: child.reply()?,
        traps,
    })
}

/// Call the test function `name` in the child.
pub fn call_named(child: &Child, name: &str, args: [u64; 3]) -> Result<Outcome, String> {
    call(child, x86_64_linux::testfns::func(name).start, args)
}
