//! The second CPU: coming online, answering requests from CPU 0, and
//! running the jobs CPU 0 hands it.
//!
//! CPU 0 bumps a request counter, sends the other busy CPUs a GIC
//! software-generated interrupt ([`crate::gic::SGI_KICK`]) and waits until
//! every one has answered (copied the counter into its acknowledgement) or
//! is idle. A busy CPU runs its job with IRQs unmasked, and probe handlers
//! and out-of-line steps run with them masked, so taking the SGI is itself
//! a point outside every handler and slot: its handler ([`kicked`])
//! answers. There are two kinds:
//! - [`Request::Icache`]: "run `isb`" (the `ic ivau` of
//!   [`crate::sysreg::sync_icache_range`] is broadcast; each CPU still
//!   needs a context synchronisation). A CPU answers it at its quiescent
//!   points and also on every `brk` trap ([`icache_point`]), so a CPU that
//!   keeps trapping on a breakpoint that was just removed still answers;
//! - [`Request::Grace`]: "pass a point outside every probe handler and
//!   slot". A CPU answers it only at its quiescent points ([`quiescent`]:
//!   its idle loop, and between two calls of a job).
//!
//! An idle CPU (waiting for a job) is in an extended quiescent state:
//! requests do not wait for it, and it runs `isb` before it leaves the
//! idle state (the same reasoning as RCU's idle CPUs).
//!
//! [`stop_machine`] parks every other busy CPU at a quiescent point while
//! CPU 0 patches text: A64 allows another CPU to execute an instruction
//! while it changes only between CMODX instructions (Arm ARM B2.2.5), and
//! a `brk` over an arbitrary instruction is not one (Linux patches kprobes
//! through `stop_machine` for the same reason). Parked CPUs spin outside
//! every handler and slot and run `isb` before they go on: the SGI handler
//! parks the CPU (its interrupted context saved, between two instructions)
//! until CPU 0 is done, as Linux's stop_machine does.

use core::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::sysreg;

/// CPUs this kernel runs (more are parked at boot).
pub const CPUS: usize = 2;

/// What CPU 0 asks the other CPUs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Execute `isb` (new text must become visible to fetch).
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

/// One step of a spin-wait: `yield`, a hint that QEMU's single-threaded
/// TCG turns into a switch to the other vCPU (`core::hint::spin_loop`
/// compiles to `isb` here, which keeps spinning until the time slice
/// ends); a no-op elsewhere.
#[link_section = ".text.kernel_trap"]
pub fn relax() {
    // SAFETY: a hint instruction: no memory access, no register change.
    unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
}

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
        relax();
    }
    (0..CPUS).filter(|&c| is_online(c)).count()
}

#[link_section = ".text.kernel_trap"]
fn answer(cpu: usize, kind: Request) {
    let req = REQUESTS[kind as usize].load(Ordering::Acquire);
    let ack = &ACKS[cpu][kind as usize];
    if ack.load(Ordering::Relaxed) < req {
        sysreg::isb();
        ack.store(req, Ordering::Release);
    }
}

/// Answer every pending request, and park while a stop-machine is in
/// progress. Call only where no probe handler and no out-of-line slot is
/// running on this CPU.
pub fn quiescent(cpu: usize) {
    answer(cpu, Request::Icache);
    answer(cpu, Request::Grace);
    park(cpu);
}

/// A stop-machine is in progress (its generation, odd while stopping).
static STOP: AtomicU64 = AtomicU64::new(0);
/// The stop generation each CPU parked for.
static PARKED: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
/// Stop-machines so far.
static STOPS: AtomicU64 = AtomicU64::new(0);

fn park(cpu: usize) {
    let gen = STOP.load(Ordering::SeqCst);
    if gen & 1 == 0 {
        return;
    }
    PARKED[cpu].store(gen, Ordering::SeqCst);
    while STOP.load(Ordering::SeqCst) == gen {
        relax();
    }
    sysreg::isb();
}

/// Run `f` while every other busy CPU is parked at a quiescent point (CPU
/// 0 only; never from a trap).
pub fn stop_machine<R>(f: impl FnOnce() -> R) -> R {
    let me = sysreg::cpu_id();
    let gen = STOP.fetch_add(1, Ordering::SeqCst) + 1;
    for cpu in (0..CPUS).filter(|&c| c != me && is_online(c)) {
        if BUSY[cpu].load(Ordering::SeqCst) {
            crate::gic::kick(cpu);
        }
        while PARKED[cpu].load(Ordering::SeqCst) != gen && BUSY[cpu].load(Ordering::SeqCst) {
            relax();
        }
    }
    STOPS.fetch_add(1, Ordering::Relaxed);
    let r = f();
    STOP.fetch_add(1, Ordering::SeqCst);
    r
}

/// Stop-machines so far.
pub fn stops() -> u64 {
    STOPS.load(Ordering::Relaxed)
}

/// SGIs taken so far (all CPUs).
static KICKS: AtomicU64 = AtomicU64::new(0);

/// SGIs taken so far.
pub fn kicks() -> u64 {
    KICKS.load(Ordering::Relaxed)
}

/// The IRQ handler: acknowledge the SGI, answer every request, park
/// during a stop-machine. The CPU took an IRQ, so it was outside every
/// probe handler and slot (they run with IRQs masked). But the end of a
/// detour (its register restores, the displaced instruction and the jump
/// back) runs with IRQs as the probed code had them, and a CPU about to
/// execute a displaced instruction sits at its address: an interrupted pc
/// (`elr`) there ([`probe_core::Engine::in_optimized_code`]), or in the
/// trap text, is no quiescent point for a grace period (the engine frees a
/// detour after one). The CPU then answers only the instruction-fetch
/// request and parks if asked to; it answers the grace period at its next
/// quiescent point (a job calls [`quiescent`] between calls).
#[link_section = ".text.kernel_trap"]
pub fn kicked(elr: usize) {
    let cpu = sysreg::cpu_id();
    while let Some(iar) = crate::gic::acknowledge() {
        KICKS.fetch_add(1, Ordering::Relaxed);
        crate::gic::end(iar);
    }
    let in_probe_code = crate::kernel::ENGINE.in_optimized_code(elr)
        || probe_core::trap_text_range().contains(&elr)
        || crate::trap::entry_range().contains(&elr);
    if in_probe_code {
        REFUSED_QUIESCENT.fetch_add(1, Ordering::Relaxed);
        answer(cpu, Request::Icache);
        park(cpu);
        return;
    }
    quiescent(cpu);
}

/// Interrupts that were no quiescent point (see [`kicked`]).
static REFUSED_QUIESCENT: AtomicU64 = AtomicU64::new(0);

/// Interrupts taken in optimised code or the trap text so far, which did
/// not answer a grace period.
pub fn refused_quiescent() -> u64 {
    REFUSED_QUIESCENT.load(Ordering::Relaxed)
}

/// Answer a pending instruction-fetch request (safe anywhere, also in the
/// middle of the probe machinery).
#[link_section = ".text.kernel_trap"]
pub fn icache_point(cpu: usize) {
    answer(cpu, Request::Icache);
}

/// Spins after which an unanswered request kicks the CPU again.
const RE_KICK_SPINS: u32 = 20_000;

/// Make every other online, busy CPU answer a `kind` request, and wait.
pub fn request(kind: Request) {
    let me = sysreg::cpu_id();
    let req = REQUESTS[kind as usize].fetch_add(1, Ordering::SeqCst) + 1;
    ACKS[me][kind as usize].fetch_max(req, Ordering::AcqRel);
    for cpu in (0..CPUS).filter(|&c| c != me && is_online(c)) {
        if BUSY[cpu].load(Ordering::SeqCst) {
            crate::gic::kick(cpu);
        }
        let mut spins = 0u32;
        loop {
            if ACKS[cpu][kind as usize].load(Ordering::Acquire) >= req {
                ANSWERED.fetch_add(1, Ordering::Relaxed);
                break;
            }
            if !BUSY[cpu].load(Ordering::SeqCst) {
                break;
            }
            // A CPU interrupted in optimised code or the trap text does
            // not answer a grace period (see `kicked`): kick it again.
            spins += 1;
            if spins.is_multiple_of(RE_KICK_SPINS) {
                crate::gic::kick(cpu);
            }
            relax();
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
        relax();
    }
}

/// CPU 1's life after boot: idle until a job comes, run it, idle again.
pub fn secondary_loop(cpu: usize) -> ! {
    ONLINE[cpu].store(true, Ordering::Release);
    loop {
        let job = JOB.swap(0, Ordering::AcqRel);
        if job == 0 {
            relax();
            continue;
        }
        // Leave the idle state: from here on requests wait for us, and
        // nothing we fetch predates the `isb`.
        BUSY[cpu].store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        park(cpu);
        sysreg::isb();
        // SAFETY: `JOB` only ever holds 0 or a `fn()` stored by
        // `start_job`; function pointers and `usize` have the same size
        // on this target.
        let job: fn() = unsafe { core::mem::transmute::<usize, fn()>(job) };
        // The job runs with IRQs unmasked: requests reach it as SGIs.
        // SAFETY: only PSTATE.I changes; the only interrupt enabled is the
        // SGI, whose handler is ready.
        unsafe { core::arch::asm!("msr daifclr, #2", options(nostack)) };
        job();
        // SAFETY: as above.
        unsafe { core::arch::asm!("msr daifset, #2", options(nostack)) };
        quiescent(cpu);
        BUSY[cpu].store(false, Ordering::SeqCst);
        JOB_DONE.store(true, Ordering::Release);
    }
}
