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
//! The trap handlers run with every asynchronous signal blocked (their
//! `sa_mask`), as a kernel's trap handlers run with interrupts masked: a
//! signal whose handler hits a probe never lands in the middle of the trap
//! path, and a grace-period acknowledgement never comes from inside a probe
//! handler. Only the synchronous signals (`SIGTRAP`, `SIGSEGV`, `SIGBUS`,
//! `SIGILL`, `SIGFPE`, `SIGSYS`: the exceptions) stay deliverable, and
//! nothing in the process can block them ([`crate::sigguard`]).
//!
//! **IF is the signal mask.** Interrupts are what signals are to this
//! "kernel". On the way in, the handlers show the engine `IF` clear when
//! the interrupted context blocks every asynchronous signal; on the way
//! out, an `IF` the engine cleared (a masked out-of-line step begins)
//! becomes a `uc_sigmask` that blocks them for the step, and an `IF` it set
//! again (the step ended or was aborted) gives the context its own mask
//! back (`sigreturn` ignores `IF` in `REG_EFL`). So, as Linux defers
//! signals during a uprobe's step, no signal handler runs in the middle of
//! a step, and one that leaves by `siglongjmp` cannot strand a step.
//!
//! Everything the handlers run before and after the engine is in the
//! `probe_trap_text` section (refused as a probe target), and the glibc
//! code they run (`__errno_location`, the signal-return trampoline) is on
//! the services' blacklist.

use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use libc::{c_int, siginfo_t};
use probe_core::{ExecMode, FaultOutcome, Registers, TrapOutcome};
use x86_64_linux::frame::SignalFrame;

use crate::{services, threads, ENGINE};

/// Faults the engine aborted a step for.
static FAULTS_ABORTED: AtomicU64 = AtomicU64::new(0);
/// Faults the engine said were not its own.
static FAULTS_NOT_OURS: AtomicU64 = AtomicU64::new(0);
/// pc after the engine's fault entry, for the last fault.
static LAST_FAULT_PC: AtomicUsize = AtomicUsize::new(0);
/// pc the last fault continued at (the fix-up).
static LAST_FIXUP: AtomicUsize = AtomicUsize::new(0);

/// Masked steps whose end found no saved mask to give back (a broken
/// pairing: must stay 0).
static MASK_UNDERFLOWS: AtomicU64 = AtomicU64::new(0);
/// Masked steps begun (signal masks raised for a step).
static MASKED_STEPS: AtomicU64 = AtomicU64::new(0);

/// SIGTRAPs the calling thread took so far.
pub fn traps() -> u64 {
    threads::current_slot().map_or(0, |s| s.traps.load(Ordering::Relaxed))
}

/// (masked steps begun, step ends that found no saved mask).
pub fn mask_record() -> (u64, u64) {
    (
        MASKED_STEPS.load(Ordering::Acquire),
        MASK_UNDERFLOWS.load(Ordering::Acquire),
    )
}

/// The signals that play interrupts: all but the synchronous ones (the
/// exceptions), as a kernel sigset word (bit `n - 1` for signal `n`).
#[link_section = "probe_trap_text"]
#[inline(always)]
pub const fn async_signals() -> u64 {
    let sync = bit(libc::SIGTRAP)
        | bit(libc::SIGSEGV)
        | bit(libc::SIGBUS)
        | bit(libc::SIGILL)
        | bit(libc::SIGFPE)
        | bit(libc::SIGSYS)
        | bit(libc::SIGKILL)
        | bit(libc::SIGSTOP);
    !sync
}

const fn bit(sig: c_int) -> u64 {
    1 << (sig - 1)
}

/// The first word of the interrupted context's signal mask (the kernel's
/// sigset: signals 1..=64), which `sigreturn` restores.
#[link_section = "probe_trap_text"]
#[inline(always)]
fn mask_word(ctx: *mut c_void) -> *mut u64 {
    // SAFETY: `ctx` is a live ucontext_t (the handler's third argument);
    // only the address of its mask is taken.
    unsafe { core::ptr::addr_of_mut!((*(ctx as *mut libc::ucontext_t)).uc_sigmask).cast::<u64>() }
}

/// Before the engine: show it IF as the interrupted context's mask says.
/// Returns whether that context had interrupts (asynchronous signals) on.
#[link_section = "probe_trap_text"]
#[inline(always)]
fn interrupts_in(ctx: *mut c_void, frame: &mut SignalFrame<'_>) -> bool {
    // SAFETY: reading the mask of the live ucontext (a field the frame
    // does not cover).
    let mask = unsafe { mask_word(ctx).read() };
    let on = mask & async_signals() != async_signals();
    let f = frame.flags();
    frame.set_flags(if on { f | IF } else { f & !IF });
    on
}

/// After the engine: turn the IF it left into the context's signal mask
/// (see the module documentation), then put the real IF back.
#[link_section = "probe_trap_text"]
#[inline(always)]
fn interrupts_out(ctx: *mut c_void, frame: &mut SignalFrame<'_>, were_on: bool) {
    let on = frame.flags() & IF != 0;
    frame.set_flags(frame.flags() | IF);
    if on == were_on {
        return;
    }
    let Some(slot) = threads::current_slot() else {
        return;
    };
    let word = mask_word(ctx);
    let depth = slot.saved_depth.load(Ordering::Relaxed);
    if !on {
        // A masked step begins: keep the context's mask, block the rest.
        // SAFETY: the live ucontext's mask, read and written here only.
        let mask = unsafe { word.read() };
        if depth < slot.saved_masks.len() {
            slot.saved_masks[depth].store(mask, Ordering::Relaxed);
            slot.saved_depth.store(depth + 1, Ordering::Relaxed);
        }
        MASKED_STEPS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { word.write(mask | async_signals()) };
    } else if depth > 0 {
        // The step ended (or was aborted): the context's own mask again.
        let mask = slot.saved_masks[depth - 1].load(Ordering::Relaxed);
        slot.saved_depth.store(depth - 1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { word.write(mask) };
    } else {
        MASK_UNDERFLOWS.fetch_add(1, Ordering::Relaxed);
    }
}

/// The interrupt flag in RFLAGS.
const IF: usize = 1 << 9;

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
    #[link_section = "probe_trap_text"]
    #[inline(always)]
    fn save() -> Self {
        // SAFETY: __errno_location returns this thread's errno slot.
        Self(unsafe { *libc::__errno_location() })
    }
}

impl Drop for SavedErrno {
    #[link_section = "probe_trap_text"]
    #[inline(always)]
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

#[link_section = "probe_trap_text"]
extern "C" fn on_trap(_sig: c_int, _info: *mut siginfo_t, ctx: *mut c_void) {
    let _errno = SavedErrno::save();
    threads::slot_of(threads::cpu_index())
        .traps
        .fetch_add(1, Ordering::Relaxed);
    // SAFETY: `ctx` is this SA_SIGINFO handler's ucontext; the frame is
    // the only reference to its registers (the mask is reached apart).
    let mut frame = unsafe { SignalFrame::from_context(ctx) };
    let were_on = interrupts_in(ctx, &mut frame);
    // SAFETY: the SIGTRAP handler runs with the signals that play
    // interrupts blocked, on the thread the services name as the CPU; the
    // frame is the interrupted context's.
    let outcome = unsafe { ENGINE.handle_breakpoint(&mut frame, ExecMode::Kernel) };
    interrupts_out(ctx, &mut frame, were_on);
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
#[link_section = "probe_trap_text"]
extern "C" fn on_trap_empty(_sig: c_int, _info: *mut siginfo_t, _ctx: *mut c_void) {}

/// Address of the SIGTRAP handler (a probe there must be refused).
pub fn trap_handler() -> usize {
    on_trap as *const () as usize
}

/// The signal-return trampoline glibc put in our handlers' `sa_restorer`
/// (`__restore_rt`): every handler returns through it.
pub fn restorer() -> usize {
    // SAFETY: a zeroed sigaction is a valid value for sigaction to fill.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: reading the current action of SIGTRAP into a valid struct.
    let r = unsafe { libc::sigaction(libc::SIGTRAP, core::ptr::null(), &mut old) };
    assert_eq!(r, 0, "sigaction(SIGTRAP) query");
    old.sa_restorer.map_or(0, |f| f as usize)
}

#[link_section = "probe_trap_text"]
extern "C" fn on_fault(sig: c_int, _info: *mut siginfo_t, ctx: *mut c_void) {
    let _errno = SavedErrno::save();
    // SAFETY: as in `on_trap`.
    let mut frame = unsafe { SignalFrame::from_context(ctx) };
    let were_on = interrupts_in(ctx, &mut frame);
    // SAFETY: as in `on_trap`.
    let outcome = unsafe { ENGINE.handle_fault(&mut frame, ExecMode::Kernel) };
    interrupts_out(ctx, &mut frame, were_on);
    match outcome {
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

#[link_section = "probe_trap_text"]
extern "C" fn on_grace(_sig: c_int, _info: *mut siginfo_t, ctx: *mut c_void) {
    let _errno = SavedErrno::save();
    // SAFETY: as in `on_trap`.
    let frame = unsafe { SignalFrame::from_context(ctx) };
    threads::acknowledge(frame.pc());
}

type Handler = extern "C" fn(c_int, *mut siginfo_t, *mut c_void);

fn install(sig: c_int, handler: Handler, flags: c_int, block: u64) {
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
        for b in 1..=64 {
            if block & (1 << (b - 1)) != 0 {
                libc::sigaddset(&mut sa.sa_mask, b);
            }
        }
        let r = libc::sigaction(sig, &sa, core::ptr::null_mut());
        assert_eq!(r, 0, "sigaction({sig})");
    }
}

/// Install every handler.
pub fn install_all() {
    install(libc::SIGTRAP, on_trap, libc::SA_NODEFER, async_signals());
    install(libc::SIGSEGV, on_fault, libc::SA_NODEFER, async_signals());
    install(libc::SIGBUS, on_fault, libc::SA_NODEFER, async_signals());
    install(libc::SIGUSR1, on_grace, libc::SA_RESTART, 0);
}

/// Swap the SIGTRAP handler: the engine's (`false`) or an empty one
/// (`true`, the benchmark's floor).
pub fn empty_trap_handler(empty: bool) {
    let h: Handler = if empty { on_trap_empty } else { on_trap };
    install(libc::SIGTRAP, h, libc::SA_NODEFER, async_signals());
}
