//! The tracer's trap loop: run a child until it stops at its next
//! checkpoint, handing every `SIGTRAP` to the engine as a user-mode
//! breakpoint in the child's address space.

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

/// Continue the child until its next SIGSTOP; SIGTRAPs taken on the way.
pub fn run_until_stop(child: &Child) -> Result<u64, String> {
    ptrace::cont(child.pid, 0)?;
    let mut traps = 0;
    loop {
        match ptrace::wait(child.pid)? {
            Status::Stopped(libc::SIGTRAP) => {
                traps += 1;
                breakpoint(child)?;
                ptrace::cont(child.pid, 0)?;
            }
            Status::Stopped(libc::SIGSTOP) => return Ok(traps),
            Status::Stopped(sig) => return fault(child, sig).map(|_| traps),
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
