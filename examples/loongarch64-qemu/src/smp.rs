//! The second CPU: coming online, answering requests from CPU 0, and
//! running the jobs CPU 0 hands it.
//!
//! Requests work without interrupts. CPU 0 bumps a request counter and
//! waits until every other CPU has answered it (copied it into its
//! acknowledgement) or is idle. There are two kinds:
//! - [`Request::Icache`]: "run `ibar 0`". A CPU answers it at its
//!   quiescent points and also on every `break` trap ([`icache_point`]),
//!   so a CPU that keeps trapping on a breakpoint that was just removed
//!   still answers;
//! - [`Request::Grace`]: "pass a point outside every probe handler and
//!   slot". A CPU answers it only at its quiescent points ([`quiescent`]:
//!   its idle loop, and between two calls of a job).
//!
//! An idle CPU (waiting for a job) is in an extended quiescent state:
//! requests do not wait for it, and it runs `ibar 0` before it leaves the
//! idle state (the same reasoning as RCU's idle CPUs).
//!
//! **Stop machine** ([`stop_others`]): every text write is made with the
//! other busy CPUs parked at a quiescent point, as Linux patches text with
//! `stop_machine` where a word other than a branch or a `break` may change
//! under a running CPU. A parked CPU executes nothing that may be patched,
//! and runs `ibar 0` when released.
//!
//! A quiescent point refuses to count (it still answers instruction-fetch
//! requests) when its caller would resume in a displaced region or a detour
//! ([`probe_core::Engine::in_optimized_code`]) or in the trap text: a
//! caller bug, counted by [`refused_quiescent_points`] and checked to be 0.

use core::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::csr;

/// CPUs this kernel runs (more are parked at boot).
pub const CPUS: usize = 2;

/// What CPU 0 asks the other CPUs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Execute `ibar 0` (new text must become visible to fetch).
    Icache = 0,
    /// Pass a quiescent point (a grace period).
    Grace = 1,
}

static ONLINE: [AtomicBool; CPUS] = [const { AtomicBool::new(false) }; CPUS];
/// The CPU runs a job (false: idle, in an extended quiescent state).
static BUSY: [AtomicBool; CPUS] = [const { AtomicBool::new(false) }; CPUS];
static REQUESTS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static ACKS: [[AtomicU64; 2]; CPUS] = [const { [const { AtomicU64::new(0) }; 2] }; CPUS];
/// Requests a busy CPU answered (diagnostics for the checks).
static ANSWERED: AtomicU64 = AtomicU64::new(0);

/// The job for CPU 1 (a `fn()` as an address; 0: none) and whether it
/// finished.
static JOB: AtomicUsize = AtomicUsize::new(0);
static JOB_DONE: AtomicBool = AtomicBool::new(false);

/// Spins CPU 0 gives CPU 1 to come online before it carries on without.
const ONLINE_WAIT_SPINS: usize = 20_000_000;

/// Whether `cpu` is running the kernel.
pub fn is_online(cpu: usize) -> bool {
    ONLINE.get(cpu).is_some_and(|o| o.load(Ordering::Acquire))
}

/// Wait (bounded) until `n` CPUs are online; returns how many are.
pub fn wait_online(n: usize) -> usize {
    ONLINE[0].store(true, Ordering::Release);
    BUSY[0].store(true, Ordering::Release);
    for _ in 0..ONLINE_WAIT_SPINS {
        if (0..n).all(is_online) {
            break;
        }
        core::hint::spin_loop();
    }
    (0..CPUS).filter(|&c| is_online(c)).count()
}

#[link_section = ".text.kernel_trap"]
fn answer(cpu: usize, kind: Request) {
    let req = REQUESTS[kind as usize].load(Ordering::Acquire);
    let ack = &ACKS[cpu][kind as usize];
    if ack.load(Ordering::Relaxed) < req {
        csr::sync_instruction_fetch();
        ack.store(req, Ordering::Release);
    }
}

/// Answer every pending request, and park while CPU 0 writes text. Call
/// only where no probe handler, out-of-line slot, displaced region or
/// detour is running on this CPU (the caller's resume address is checked:
/// see the module documentation).
#[inline(never)]
pub fn quiescent(cpu: usize) {
    let caller: usize;
    // SAFETY: reads `ra` before this function calls anything: the address
    // its caller resumes at.
    unsafe { core::arch::asm!("move {}, $ra", out(reg) caller, options(nomem, nostack)) };
    answer(cpu, Request::Icache);
    if in_probe_code(caller) {
        REFUSED_QUIESCENT.fetch_add(1, Ordering::Relaxed);
        LAST_REFUSED.store(caller, Ordering::Relaxed);
        return;
    }
    answer(cpu, Request::Grace);
    answer_stop(cpu);
}

/// `pc` lies in optimised code (a displaced region whose jump is changing
/// or in place, a detour) or in the trap text (the engine's or ours).
fn in_probe_code(pc: usize) -> bool {
    crate::kernel::ENGINE.in_optimized_code(pc)
        || probe_core::trap_text_range().contains(&pc)
        || crate::trap::entry_range().contains(&pc)
}

/// Quiescent points refused because the caller lay in probe code.
static REFUSED_QUIESCENT: AtomicUsize = AtomicUsize::new(0);
/// Where the last refused quiescent point would have resumed.
static LAST_REFUSED: AtomicUsize = AtomicUsize::new(0);

/// Quiescent points refused so far (0 in a correct kernel).
pub fn refused_quiescent_points() -> usize {
    REFUSED_QUIESCENT.load(Ordering::Relaxed)
}

/// Stop requests: CPU 0 bumps [`STOP_REQ`], each busy CPU acknowledges at
/// a quiescent point and spins until [`STOP_RELEASE`] reaches the request.
static STOP_REQ: AtomicU64 = AtomicU64::new(0);
static STOP_ACK: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
static STOP_RELEASE: AtomicU64 = AtomicU64::new(0);
/// Text writes made with another CPU parked.
static STOPPED_WRITES: AtomicU64 = AtomicU64::new(0);

/// How long a busy CPU may take to reach a quiescent point.
const STOP_WAIT_MS: u64 = 5_000;

fn answer_stop(cpu: usize) {
    let req = STOP_REQ.load(Ordering::Acquire);
    if STOP_ACK[cpu].load(Ordering::Relaxed) >= req {
        return;
    }
    STOP_ACK[cpu].store(req, Ordering::Release);
    while STOP_RELEASE.load(Ordering::Acquire) < req {
        core::hint::spin_loop();
    }
    // Whatever CPU 0 wrote is fetched anew.
    csr::sync_instruction_fetch();
}

/// The other CPUs are parked while this exists (see [`stop_others`]).
#[must_use = "the other CPUs run again when this is dropped"]
pub struct StopGuard(u64);

impl Drop for StopGuard {
    fn drop(&mut self) {
        STOP_RELEASE.store(self.0, Ordering::Release);
    }
}

/// Park every other busy CPU at a quiescent point until the guard is
/// dropped (an idle CPU runs no text that may be patched and leaves the
/// idle state only for a job CPU 0 gives it). Called by CPU 0 with the
/// engine's registration lock held.
pub fn stop_others() -> StopGuard {
    let me = csr::cpu_id();
    let req = STOP_REQ.fetch_add(1, Ordering::SeqCst) + 1;
    STOP_ACK[me].fetch_max(req, Ordering::AcqRel);
    let start = crate::clock::ticks();
    let mut stopped = false;
    for cpu in (0..CPUS).filter(|&c| c != me && is_online(c)) {
        loop {
            if STOP_ACK[cpu].load(Ordering::Acquire) >= req {
                stopped = true;
                break;
            }
            if !BUSY[cpu].load(Ordering::SeqCst) {
                break;
            }
            if crate::clock::ms_since(start) > STOP_WAIT_MS {
                panic!(
                    "CPU {cpu} did not stop within {STOP_WAIT_MS} ms ({} quiescent points refused, last at {:#x})",
                    REFUSED_QUIESCENT.load(Ordering::Relaxed),
                    LAST_REFUSED.load(Ordering::Relaxed)
                );
            }
            core::hint::spin_loop();
        }
    }
    if stopped {
        STOPPED_WRITES.fetch_add(1, Ordering::Relaxed);
    }
    StopGuard(req)
}

/// Text writes made with another CPU parked so far.
pub fn stopped_writes() -> u64 {
    STOPPED_WRITES.load(Ordering::Relaxed)
}

/// Answer a pending instruction-fetch request (safe anywhere, also in the
/// middle of the probe machinery).
#[link_section = ".text.kernel_trap"]
pub fn icache_point(cpu: usize) {
    answer(cpu, Request::Icache);
}

/// Make every other online, busy CPU answer a `kind` request, and wait.
pub fn request(kind: Request) {
    let me = csr::cpu_id();
    let req = REQUESTS[kind as usize].fetch_add(1, Ordering::SeqCst) + 1;
    ACKS[me][kind as usize].fetch_max(req, Ordering::AcqRel);
    for cpu in (0..CPUS).filter(|&c| c != me && is_online(c)) {
        loop {
            if ACKS[cpu][kind as usize].load(Ordering::Acquire) >= req {
                ANSWERED.fetch_add(1, Ordering::Relaxed);
                break;
            }
            if !BUSY[cpu].load(Ordering::SeqCst) {
                break;
            }
            core::hint::spin_loop();
        }
    }
}

/// Requests a busy CPU answered so far.
pub fn answered() -> u64 {
    ANSWERED.load(Ordering::Relaxed)
}

/// Hand `job` to CPU 1 (which must be online and idle).
pub fn start_job(job: fn()) {
    JOB_DONE.store(false, Ordering::Release);
    JOB.store(job as usize, Ordering::Release);
}

/// Wait until CPU 1 finished its job.
pub fn wait_job() {
    while !JOB_DONE.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
}

/// CPU 1's life after boot: idle until a job comes, run it, idle again.
pub fn secondary_loop(cpu: usize) -> ! {
    ONLINE[cpu].store(true, Ordering::Release);
    loop {
        let job = JOB.swap(0, Ordering::AcqRel);
        if job == 0 {
            core::hint::spin_loop();
            continue;
        }
        // Leave the idle state: from here on requests wait for us, and
        // nothing we fetch predates the `ibar`.
        BUSY[cpu].store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        csr::sync_instruction_fetch();
        // SAFETY: `JOB` only ever holds 0 or a `fn()` stored by
        // `start_job`; function pointers and `usize` have the same size
        // on this target.
        let job: fn() = unsafe { core::mem::transmute::<usize, fn()>(job) };
        job();
        quiescent(cpu);
        BUSY[cpu].store(false, Ordering::SeqCst);
        JOB_DONE.store(true, Ordering::Release);
    }
}
