//! The second CPU: starting it, and the one IPI through which the CPU that
//! patches text asks it for three things.
//!
//! - **Stop** ("stop machine"): the target spins in its IPI handler, with
//!   interrupts masked, until the requester has written the text; then it
//!   serialises (`cpuid`, then the handler's `iretq`) before it fetches
//!   another instruction: the cross-modifying-code protocol of the Intel
//!   SDM (Vol. 3A §8.1.3): the modifying CPU writes, then raises a flag; the
//!   executing CPU waits for the flag and executes a serialising instruction.
//! - **Serialise**: every run of the handler executes `cpuid` and then
//!   publishes the text generation it has seen ([`TEXT_GENERATION`], which
//!   every text write bumps), so `sync_icache` needs an IPI only when the
//!   other CPU has not serialised since the last write.
//! - **Grace period**: the handler reports a quiescent point, unless the
//!   interrupted rip lies in an out-of-line slot, in the engine's trap
//!   text, or in optimised code (a displaced region or a detour of a
//!   jump-optimised probe). Probe handlers, steps and the trap path run with interrupts
//!   masked, so an IPI taken anywhere else proves the CPU is outside all
//!   of them; the exceptions are a boosted slot (the engine runs it with
//!   interrupts as they were) and the first instructions of the return
//!   trampoline (before its `cli`): there the answer is deferred, to the
//!   end of the CPU's next breakpoint trap that resumes outside them with
//!   interrupts enabled ([`trap_exit`]), or to the next IPI, which the
//!   requester sends after a short wait.
//!
//! The requester waits with a deadline, so a CPU that never answers is
//! reported (panic) instead of hanging the run. It spins briefly, then
//! halts; the answering CPU then wakes it with the same IPI (its only
//! request: the handler finds nothing to do on a CPU nobody asks). The
//! other CPU takes no lock and asks nothing, so the boot CPU may wait with
//! interrupts masked except inside that `sti; hlt`.
//!
//! Bring-up: [`start_second_cpu`] copies the real-mode trampoline
//! ([`crate::ap_trampoline`]) below 1 MiB and sends INIT, STARTUP,
//! STARTUP; the new CPU arrives in [`ap_main`] on its own stack, loads its
//! per-CPU GS base, GDT and TSS, the shared IDT, enables its APIC and
//! interrupts, and runs jobs ([`start_job`]) as the boot CPU hands them out.

use core::cell::UnsafeCell;
use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::clock::{self, Deadline};
use crate::percpu::cpu_id;
use crate::{ap_trampoline, apic, cpu, gdt, idt, percpu, services};

/// CPUs the kernel supports (the engine's CPU capacity).
pub const MAX_CPUS: usize = 2;
/// The APIC id QEMU gives the second CPU.
const SECOND_CPU_APIC_ID: u32 = 1;
/// How long a CPU may take to answer. An answer normally takes
/// microseconds, but QEMU's vCPU threads compete with whatever else runs
/// on the host: leave room for a badly loaded one.
const ANSWER_MS: u64 = 15_000;
/// Bytes of the second CPU's stack.
const AP_STACK: usize = 128 * 1024;

/// Requests to one CPU, and its answers.
struct Mailbox {
    /// Running, interrupts enabled, answering IPIs.
    online: AtomicBool,
    /// Its APIC id (where IPIs go).
    apic_id: AtomicU32,
    /// Stops requested (a ticket per stop).
    stop_requested: AtomicU64,
    /// Answer: the last stop it is spinning for (or has spun for).
    stop_acked: AtomicU64,
    /// The last stop released: it spins while this is below its ticket.
    stop_released: AtomicU64,
    /// The [`TEXT_GENERATION`] at the last release: it serialises after
    /// leaving the spin, before it runs anything else, so that generation
    /// needs no further IPI.
    released_generation: AtomicU64,
    /// The [`TEXT_GENERATION`] it serialised after, last time.
    synced: AtomicU64,
    /// Grace-period requests made.
    quiescent_requested: AtomicU64,
    /// Grace-period requests answered.
    quiescent_done: AtomicU64,
    /// IPIs taken.
    ipis: AtomicU64,
    /// IPIs that found it in a slot or in the trap text (no quiescent point).
    deferred: AtomicU64,
    /// Of those, IPIs that found it in optimised code (a displaced region
    /// or a detour of a jump-optimised probe).
    deferred_optimized: AtomicU64,
    /// Grace periods answered at the end of a breakpoint trap.
    trap_exit_answers: AtomicU64,
    /// The CPU halted until this one answers, plus one (0: none): every
    /// answer then sends it the IPI (see [`wait_for`]).
    waiter: AtomicUsize,
}

static MAILBOX: [Mailbox; MAX_CPUS] = [const {
    Mailbox {
        online: AtomicBool::new(false),
        apic_id: AtomicU32::new(0),
        stop_requested: AtomicU64::new(0),
        stop_acked: AtomicU64::new(0),
        stop_released: AtomicU64::new(0),
        released_generation: AtomicU64::new(0),
        synced: AtomicU64::new(0),
        quiescent_requested: AtomicU64::new(0),
        quiescent_done: AtomicU64::new(0),
        ipis: AtomicU64::new(0),
        deferred: AtomicU64::new(0),
        deferred_optimized: AtomicU64::new(0),
        trap_exit_answers: AtomicU64::new(0),
        waiter: AtomicUsize::new(0),
    }
}; MAX_CPUS];

/// Text writes so far (bumped by [`text_written`]).
static TEXT_GENERATION: AtomicU64 = AtomicU64::new(0);

/// What the IPIs did, for the checks.
pub struct Stats {
    /// Text writes made with the other CPU stopped.
    pub stopped_writes: AtomicU64,
    /// Of those, writes into the slot area.
    pub slot_writes: AtomicU64,
    /// `sync_icache` calls that needed an IPI (the other CPU had not
    /// serialised since the last write).
    pub remote_syncs: AtomicU64,
    /// Grace periods that waited for the other CPU.
    pub remote_grace_periods: AtomicU64,
    /// IPIs sent.
    pub ipis_sent: AtomicU64,
}

/// See [`Stats`].
pub static STATS: Stats = Stats {
    stopped_writes: AtomicU64::new(0),
    slot_writes: AtomicU64::new(0),
    remote_syncs: AtomicU64::new(0),
    remote_grace_periods: AtomicU64::new(0),
    ipis_sent: AtomicU64::new(0),
};

/// IPIs that found the other CPU in a slot or the trap text, in all.
pub fn deferred_quiescent() -> u64 {
    MAILBOX
        .iter()
        .map(|m| m.deferred.load(Ordering::Relaxed))
        .sum()
}

/// IPIs that found the other CPU in optimised code, in all.
pub fn deferred_in_optimized_code() -> u64 {
    MAILBOX
        .iter()
        .map(|m| m.deferred_optimized.load(Ordering::Relaxed))
        .sum()
}

/// Grace periods answered at the end of a breakpoint trap, in all.
pub fn trap_exit_answers() -> u64 {
    MAILBOX
        .iter()
        .map(|m| m.trap_exit_answers.load(Ordering::Relaxed))
        .sum()
}

/// The longest wait for another CPU's answer so far, in TSC ticks.
static LONGEST_WAIT: AtomicU64 = AtomicU64::new(0);

/// The longest wait for another CPU's answer so far, in microseconds.
pub fn longest_wait_us() -> u64 {
    LONGEST_WAIT.load(Ordering::Relaxed) / clock::ticks_per_us()
}

fn others() -> impl Iterator<Item = usize> {
    let me = cpu_id();
    (0..MAX_CPUS).filter(move |&c| c != me && MAILBOX[c].online.load(Ordering::Acquire))
}

/// Number of other CPUs online.
pub fn others_online() -> usize {
    others().count()
}

fn send_ipi(cpu: usize) {
    STATS.ipis_sent.fetch_add(1, Ordering::Relaxed);
    apic::send_ipi(MAILBOX[cpu].apic_id.load(Ordering::Relaxed));
}

/// How long [`wait_for`] spins before it halts.
const SPIN_US: u64 = 200;
/// The one-shot timer that ends a `hlt` whose wake-up never came: 1 ms at
/// QEMU's 1 GHz APIC bus (see [`apic::arm_timer_once`]).
const WAKE_TICKS: u32 = 62_500;

/// Wait until `done` holds (an answer of `cpu`); panic (a reported crash)
/// after [`ANSWER_MS`].
///
/// It spins for [`SPIN_US`], which is enough on an idle host, then halts
/// until `cpu` answers: on a busy host a spinning vCPU thread takes host
/// time from the vCPU thread it waits for (2 CPU hogs beside QEMU: 9 s for
/// the two-CPU check instead of 20-60 s spinning).
fn wait_for(done: impl Fn() -> bool, cpu: usize, what: &str) {
    let start = clock::now();
    let deadline = Deadline::after_ms(ANSWER_MS);
    let spin = Deadline::after_us(SPIN_US);
    while !done() {
        if deadline.passed() {
            panic!("cpu {cpu} did not {what} within {ANSWER_MS} ms");
        }
        if spin.passed() {
            halt_until_answer(&MAILBOX[cpu], &done);
        } else {
            core::hint::spin_loop();
        }
    }
    LONGEST_WAIT.fetch_max(clock::now() - start, Ordering::Relaxed);
}

/// Halt until the CPU of mailbox `m` answers (it sends the IPI, see
/// [`wake_waiter`]) or the one-shot timer fires.
fn halt_until_answer(m: &Mailbox, done: &impl Fn() -> bool) {
    let _restore = cpu::InterruptsMasked::mask();
    m.waiter.store(cpu_id() + 1, Ordering::SeqCst);
    // Either the answering CPU sees `waiter` (after its answer) and sends
    // the IPI, or `done()` sees the answer: both sides store, fence, load.
    fence(Ordering::SeqCst);
    if !done() {
        apic::arm_timer_once(WAKE_TICKS);
        // SAFETY: the IDT has the IPI and spurious gates (loaded at
        // boot); `sti` takes effect only once `hlt` has started, so an IPI
        // sent after the `done()` check still ends the `hlt`; `cli` masks
        // again, and the guard restores the caller's IF.
        unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    }
    m.waiter.store(0, Ordering::SeqCst);
}

/// On the answering CPU, after an answer: wake the CPU halted for it.
fn wake_waiter(m: &Mailbox) {
    fence(Ordering::SeqCst);
    let waiter = m.waiter.load(Ordering::SeqCst);
    if let Some(w) = waiter.checked_sub(1).and_then(|w| MAILBOX.get(w)) {
        apic::send_ipi(w.apic_id.load(Ordering::Relaxed));
    }
}

/// The other CPUs are stopped while this exists (see [`stop_others`]).
#[must_use = "the other CPUs run again when this is dropped"]
pub struct StopGuard {
    /// The stop ticket of each CPU stopped (0: not stopped).
    tickets: [u64; MAX_CPUS],
}

/// Stop every other online CPU in its IPI handler ("stop machine"), so
/// that none executes text while it is half written.
pub fn stop_others() -> StopGuard {
    let mut tickets = [0; MAX_CPUS];
    for c in others() {
        let m = &MAILBOX[c];
        let ticket = m.stop_requested.fetch_add(1, Ordering::SeqCst) + 1;
        send_ipi(c);
        wait_for(|| m.stop_acked.load(Ordering::SeqCst) >= ticket, c, "stop");
        tickets[c] = ticket;
    }
    StopGuard { tickets }
}

impl StopGuard {
    /// Whether any CPU is stopped by this guard.
    pub fn any(&self) -> bool {
        self.tickets.iter().any(|&t| t != 0)
    }
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        for (c, &ticket) in self.tickets.iter().enumerate() {
            if ticket != 0 {
                let m = &MAILBOX[c];
                // Not waited for: it serialises before it leaves the
                // handler (see `on_ipi`), and a stop requested meanwhile
                // keeps it there.
                m.released_generation
                    .store(TEXT_GENERATION.load(Ordering::SeqCst), Ordering::SeqCst);
                m.stop_released.store(ticket, Ordering::SeqCst);
            }
        }
    }
}

/// Text was written (call after the write, before other CPUs resume).
pub fn text_written() {
    TEXT_GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Serialise here and on every other online CPU that has not serialised
/// since the last text write.
pub fn serialize_everywhere() {
    cpu::serialize();
    let generation = TEXT_GENERATION.load(Ordering::SeqCst);
    for c in others() {
        let m = &MAILBOX[c];
        if m.synced.load(Ordering::Acquire) >= generation
            || m.released_generation.load(Ordering::SeqCst) >= generation
        {
            continue;
        }
        STATS.remote_syncs.fetch_add(1, Ordering::Relaxed);
        send_ipi(c);
        wait_for(
            || m.synced.load(Ordering::Acquire) >= generation,
            c,
            "serialise",
        );
    }
}

/// Return once every other online CPU has taken an IPI outside every
/// slot and the trap text after this call began (the grace period).
pub fn wait_quiescent_others() {
    for c in others() {
        STATS.remote_grace_periods.fetch_add(1, Ordering::Relaxed);
        let m = &MAILBOX[c];
        let ticket = m.quiescent_requested.fetch_add(1, Ordering::SeqCst) + 1;
        let answered = || m.quiescent_done.load(Ordering::Acquire) >= ticket;
        while !answered() {
            let taken = m.ipis.load(Ordering::Acquire);
            send_ipi(c);
            // Either the answer, or an IPI that found it in a slot or the
            // trap text. Then it is about to leave: give the end of its
            // trap (`trap_exit`) a moment to answer before asking again.
            wait_for(
                || answered() || m.ipis.load(Ordering::Acquire) != taken,
                c,
                "pass a quiescent point",
            );
            let retry = Deadline::after_us(RETRY_US);
            while !answered() && !retry.passed() {
                core::hint::spin_loop();
            }
        }
    }
}

/// How long a grace period waits for a deferred answer before it sends
/// the IPI again.
const RETRY_US: u64 = 50;

/// Whether an interrupt taken at `rip` proves the CPU is outside every
/// probe handler, step and trap path (see the module documentation).
///
/// Jump-optimised probes add two places: a displaced region whose jump is
/// being written, is in place or is being removed (resuming there after
/// the jump changed would run half an instruction), and a detour (its
/// prologue before the `cli`, and its copy of the displaced region after
/// the `popfq`, run with interrupts as they were; the detour is freed
/// after the grace period): [`probe_core::Engine::in_optimized_code`].
fn quiescent_at(rip: usize) -> bool {
    !services::in_slot_area(rip)
        && !services::in_trap_text(rip)
        && !probe_core::trap_text_range().contains(&rip)
        && !services::ENGINE.in_optimized_code(rip)
}

/// The end of a breakpoint trap on this CPU that resumes `rip` with
/// `rflags`: when that context has interrupts enabled and lies outside
/// every slot and the trap text, an IPI taken right after the `iretq`
/// would count as a quiescent point, and the engine is done with this
/// trap: answer a pending grace period now. (A trap nested in a probe
/// handler resumes with interrupts masked, a boosted step resumes in its
/// slot: neither answers.)
pub fn trap_exit(rip: usize, rflags: u64) {
    if rflags & cpu::IF == 0 || !quiescent_at(rip) {
        return;
    }
    let m = &MAILBOX[cpu_id()];
    let wanted = m.quiescent_requested.load(Ordering::SeqCst);
    if m.quiescent_done.load(Ordering::Relaxed) < wanted {
        m.quiescent_done.store(wanted, Ordering::Release);
        m.trap_exit_answers.fetch_add(1, Ordering::Relaxed);
        wake_waiter(m);
    }
}

/// Grace periods answered at a voluntary quiescent point, in all.
static VOLUNTARY_ANSWERS: AtomicU64 = AtomicU64::new(0);

/// Grace periods answered at a voluntary quiescent point so far.
pub fn voluntary_answers() -> u64 {
    VOLUNTARY_ANSWERS.load(Ordering::Relaxed)
}

/// A voluntary quiescent point (Linux's `cond_resched`, what RCU-tasks
/// waits for): the caller is outside every probe handler, slot, detour and
/// displaced region, so a pending grace period is answered here. A loop
/// that keeps calling probed code is otherwise almost always caught inside
/// optimised code by the IPI (its detour's prologue and its copy of the
/// region run with interrupts enabled), and each grace period waits for a
/// lucky IPI.
pub fn quiescent_point() {
    let m = &MAILBOX[cpu_id()];
    let wanted = m.quiescent_requested.load(Ordering::SeqCst);
    if m.quiescent_done.load(Ordering::Relaxed) < wanted {
        m.quiescent_done.store(wanted, Ordering::Release);
        VOLUNTARY_ANSWERS.fetch_add(1, Ordering::Relaxed);
        wake_waiter(m);
    }
}

/// The IPI, on the CPU that receives it (called by the entry in
/// [`crate::entry`], interrupts masked, `rip` the interrupted one).
pub fn on_ipi(rip: usize) {
    let m = &MAILBOX[cpu_id()];
    // Every stop requested and not yet answered: spin until released. A
    // stop requested while it leaves the previous one is answered here
    // too (its IPI, still pending, then finds nothing to stop for).
    loop {
        let ticket = m.stop_requested.load(Ordering::SeqCst);
        if ticket == m.stop_acked.load(Ordering::SeqCst) {
            break;
        }
        m.stop_acked.store(ticket, Ordering::SeqCst);
        wake_waiter(m);
        while m.stop_released.load(Ordering::SeqCst) < ticket {
            core::hint::spin_loop();
        }
    }
    // Serialise after every request (the stops' writes included), and say
    // which writes this covers.
    let generation = TEXT_GENERATION.load(Ordering::SeqCst);
    cpu::serialize();
    m.synced.store(generation, Ordering::SeqCst);
    let wanted = m.quiescent_requested.load(Ordering::SeqCst);
    if quiescent_at(rip) {
        m.quiescent_done.store(wanted, Ordering::Release);
    } else if m.quiescent_done.load(Ordering::Relaxed) < wanted {
        m.deferred.fetch_add(1, Ordering::Relaxed);
        if services::ENGINE.in_optimized_code(rip) {
            m.deferred_optimized.fetch_add(1, Ordering::Relaxed);
        }
    }
    m.ipis.fetch_add(1, Ordering::Release);
    wake_waiter(m);
    apic::eoi();
    // The requester is waiting for this answer. Under QEMU's
    // single-threaded TCG, `pause` hands the host thread to the next vCPU
    // at once instead of at the end of this one's time slice (100 ms);
    // elsewhere it is only a hint.
    core::hint::spin_loop();
}

// ---------------------------------------------------------------------
// Bring-up and jobs.

/// The second CPU's stack.
#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; AP_STACK]>);

// SAFETY: only the second CPU uses it, as its stack (the boot CPU takes
// its address only).
unsafe impl Sync for Stack {}

static AP_STACK_MEM: Stack = Stack(UnsafeCell::new([0; AP_STACK]));

/// The boot CPU's part of the setup: its mailbox.
pub fn init_boot_cpu() {
    let m = &MAILBOX[cpu_id()];
    m.apic_id.store(apic::id(), Ordering::Relaxed);
    m.online.store(true, Ordering::Release);
}

/// Start CPU 1 (APIC id 1) and wait (at most `ms`) until it answers IPIs;
/// false when it never came (QEMU started without `-smp 2`).
pub fn start_second_cpu(ms: u64) -> bool {
    let top = AP_STACK_MEM.0.get() as usize + AP_STACK;
    ap_trampoline::install(cpu::cr3(), top, ap_main, 1);
    apic::start_cpu(SECOND_CPU_APIC_ID, ap_trampoline::TRAMPOLINE_PAGE);
    let deadline = Deadline::after_ms(ms);
    while !MAILBOX[1].online.load(Ordering::Acquire) {
        if deadline.passed() {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Whether CPU `cpu` is online.
pub fn online(cpu: usize) -> bool {
    MAILBOX
        .get(cpu)
        .is_some_and(|m| m.online.load(Ordering::Acquire))
}

/// A job for the second CPU (a `fn()` as an address; 0: none).
static JOB: AtomicUsize = AtomicUsize::new(0);
/// Jobs the second CPU finished.
static JOBS_DONE: AtomicUsize = AtomicUsize::new(0);

/// Give the second CPU a job (and an IPI to wake it from `hlt`).
pub fn start_job(job: fn()) {
    JOB.store(job as usize, Ordering::Release);
    if online(1) {
        send_ipi(1);
    }
}

/// Jobs the second CPU has finished.
pub fn jobs_done() -> usize {
    JOBS_DONE.load(Ordering::Acquire)
}

/// Wait (at most `ms`) until the second CPU has finished `n` jobs.
pub fn wait_jobs_done(n: usize, ms: u64) -> bool {
    let deadline = Deadline::after_ms(ms);
    while jobs_done() < n {
        if deadline.passed() {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Where the trampoline lands, in long mode on the new CPU's stack,
/// interrupts masked, with the boot CPU's page tables.
extern "C" fn ap_main(cpu: usize) -> ! {
    percpu::install(cpu);
    gdt::load(cpu);
    idt::load();
    apic::enable();
    let m = &MAILBOX[cpu];
    m.apic_id.store(apic::id(), Ordering::Relaxed);
    m.online.store(true, Ordering::Release);
    loop {
        // Masked while looking, so that the `sti; hlt` below cannot miss
        // the IPI of a job stored after the look.
        cpu::disable_interrupts();
        let job = JOB.swap(0, Ordering::AcqRel);
        if job == 0 {
            // SAFETY: the IDT has the IPI and spurious gates (`idt::load`
            // above); `sti` takes effect after `hlt` starts, so a pending
            // IPI wakes it.
            unsafe { core::arch::asm!("sti", "hlt", options(nomem, nostack)) };
            continue;
        }
        // SAFETY: the IDT is loaded (see above); jobs run with interrupts
        // enabled so that they answer IPIs.
        unsafe { cpu::enable_interrupts() };
        // SAFETY: JOB only ever holds addresses of `fn()` items, stored by
        // `start_job`.
        let job: fn() = unsafe { core::mem::transmute::<usize, fn()>(job) };
        job();
        JOBS_DONE.fetch_add(1, Ordering::Release);
    }
}
