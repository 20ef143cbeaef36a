//! The "kernel's" trap entries: signal handlers that hand the trap frame
//! (the `ucontext`) to the engine.
//!
//! - `SIGTRAP` (an `int3`: a probe, a step-end marker): the engine's
//!   breakpoint entry, in kernel mode (the probed code is the process's
//!   own). `SA_NODEFER`, so a probe hit inside a handler reaches the
//!   engine's re-entry path instead of killing the process.
//! - `SIGSEGV`/`SIGBUS`: the engine's fault entry first (a fault inside an
//!   out-of-line slot puts the pc back at the probe address), then the
//!   harness's own recovery, the exception table.
//! - `SIGUSR1`: the grace-period handshake ([`crate::threads`]).
//!
//! `SIGTRAP` and `SIGSEGV` block `SIGUSR1` while they run, so a
//! grace-period acknowledgement never comes from inside a probe handler.

use core::cell::Cell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use libc::{c_int, siginfo_t};
use probe_core::{ExecMode, FaultOutcome, Registers, TrapOutcome};
use x86_64_linux::frame::SignalFrame;

use crate::{services, threads, ENGINE};

thread_local! {
    /// SIGTRAPs this thread took.
    static TRAPS: Cell<u64> = const { Cell::new(0) };
}

/// Faults the engine aborted a step for.
static FAULTS_ABORTED: AtomicU64 = AtomicU64::new(0);
/// Faults the engine said were not its own.
static FAULTS_NOT_OURS: AtomicU64 = AtomicU64::new(0);
/// pc after the engine's fault entry, for the last fault.
static LAST_FAULT_PC: AtomicUsize = AtomicUsize::new(0);
/// pc the last fault continued at (the fix-up).
static LAST_FIXUP: AtomicUsize = AtomicUsize::new(0);

/// SIGTRAPs the calling thread took so far.
pub fn traps() -> u64 {
    TRAPS.get()
}

/// What the fault handler saw: (steps aborted, faults not the engine's,
/// pc after the engine's fault entry, fix-up taken) — cumulative counts
/// and the last fault's addresses.
pub fn fault_record() -> (u64, u64, usize, usize) {
    (
        FAULTS_ABORTED.load(Ordering::Acquire),
        FAULTS_NOT_OURS.load(Ordering::Acquire),
        LAST_FAULT_PC.load(Ordering::Acquire),
        LAST_FIXUP.load(Ordering::Acquire),
    )
}

/// Keeps errno across a handler (the interrupted code may be between a
/// system call and its errno check).
struct SavedErrno(c_int);

impl SavedErrno {
    fn save() -> Self {
        // SAFETY: __errno_location returns this thread's errno slot.
        Self(unsafe { *libc::__errno_location() })
    }
}

impl Drop for SavedErrno {
    fn drop(&mut self) {
        // SAFETY: as in `save`.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

/// Write `msg` and `value` in hex to stderr without allocating.
fn say(msg: &str, value: usize) {
    let mut buf = [0u8; 18];
    buf[0] = b'0';
    buf[1] = b'x';
    for i in 0..16 {
        let d = (value >> (60 - 4 * i)) & 0xf;
        buf[2 + i] = b"0123456789abcdef"[d];
    }
    // SAFETY: write(2) on stderr with valid buffers.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::write(2, buf.as_ptr().cast(), buf.len());
        libc::write(2, b"\n".as_ptr().cast(), 1);
    }
}

extern "C" fn on_trap(_sig: c_int, _info: *mut siginfo_t, ctx: *mut c_void) {
    let _errno = SavedErrno::save();
    TRAPS.set(TRAPS.get() + 1);
    // SAFETY: `ctx` is this SA_SIGINFO handler's ucontext; the frame is
    // the only reference to it.
    let mut frame = unsafe { SignalFrame::from_context(ctx) };
    // SAFETY: the SIGTRAP handler runs with the signals that play
    // interrupts blocked, on the thread the services name as the CPU; the
    // frame is the interrupted context's.
    let outcome = unsafe { ENGINE.handle_breakpoint(&mut frame, ExecMode::Kernel) };
    if let TrapOutcome::Fault { addr } = outcome {
        // A simulated instruction faulted: what the kernel would do is
        // deliver the fault at the probe address; here that is fatal.
        say("x86_64-linux: a simulated instruction faulted at ", addr);
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() };
    }
    if outcome == TrapOutcome::NotOurs {
        say(
            "x86_64-linux: an int3 that is not a probe at ",
            frame.pc() - 1,
        );
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() };
    }
}

/// The floor of the benchmark: a SIGTRAP handler that does nothing (the
/// `int3` already left rip after itself).
extern "C" fn on_trap_empty(_sig: c_int, _info: *mut siginfo_t, _ctx: *mut c_void) {}

extern "C" fn on_fault(sig: c_int, _info: *mut siginfo_t, ctx: *mut c_void) {
    let _errno = SavedErrno::save();
    // SAFETY: as in `on_trap`.
    let mut frame = unsafe { SignalFrame::from_context(ctx) };
    // SAFETY: as in `on_trap`.
    match unsafe { ENGINE.handle_fault(&mut frame, ExecMode::Kernel) } {
        FaultOutcome::StepAborted => FAULTS_ABORTED.fetch_add(1, Ordering::AcqRel),
        FaultOutcome::NotOurs => FAULTS_NOT_OURS.fetch_add(1, Ordering::AcqRel),
    };
    let pc = frame.pc();
    LAST_FAULT_PC.store(pc, Ordering::Release);
    match services::fixup_for(pc) {
        Some(to) => {
            LAST_FIXUP.store(to, Ordering::Release);
            frame.set_pc(to);
        }
        None => {
            say("x86_64-linux: unrecoverable fault at ", pc);
            // Let the default action (a core dump) happen when the
            // instruction faults again.
            // SAFETY: resetting a signal's disposition has no preconditions.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

extern "C" fn on_grace(_sig: c_int, _info: *mut siginfo_t, ctx: *mut c_void) {
    let _errno = SavedErrno::save();
    // SAFETY: as in `on_trap`.
    let frame = unsafe { SignalFrame::from_context(ctx) };
    threads::acknowledge(frame.pc());
}

type Handler = extern "C" fn(c_int, *mut siginfo_t, *mut c_void);

fn install(sig: c_int, handler: Handler, flags: c_int, block: &[c_int]) {
    // SAFETY: a zeroed sigaction is a valid value; the fields set below
    // make it a SA_SIGINFO handler with the given mask.
    let mut sa: libc::sigaction = unsafe { core::mem::zeroed() };
    sa.sa_sigaction = handler as usize;
    sa.sa_flags = libc::SA_SIGINFO | flags;
    // SAFETY: sigemptyset/sigaddset on a local set; sigaction with valid
    // pointers. The handlers are async-signal-safe: they use atomics,
    // const-initialised thread-locals and the lock-free trap path.
    unsafe {
        libc::sigemptyset(&mut sa.sa_mask);
        for &b in block {
            libc::sigaddset(&mut sa.sa_mask, b);
        }
        let r = libc::sigaction(sig, &sa, core::ptr::null_mut());
        assert_eq!(r, 0, "sigaction({sig})");
    }
}

/// Install every handler.
pub fn install_all() {
    install(libc::SIGTRAP, on_trap, libc::SA_NODEFER, &[libc::SIGUSR1]);
    install(libc::SIGSEGV, on_fault, libc::SA_NODEFER, &[libc::SIGUSR1]);
    install(libc::SIGBUS, on_fault, libc::SA_NODEFER, &[libc::SIGUSR1]);
    install(libc::SIGUSR1, on_grace, libc::SA_RESTART, &[]);
}

/// Swap the SIGTRAP handler: the engine's (`false`) or an empty one
/// (`true`, the benchmark's floor).
pub fn empty_trap_handler(empty: bool) {
    let h: Handler = if empty { on_trap_empty } else { on_trap };
    install(libc::SIGTRAP, h, libc::SA_NODEFER, &[libc::SIGUSR1]);
}
