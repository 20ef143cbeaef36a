//! Working with the other hart: releasing it, stopping it while text is
//! patched, making it execute `fence.i`, waiting for it to pass a quiescent
//! point (the grace period), and handing it jobs.
//!
//! There are no inter-processor interrupts here: every request is a flag in
//! the target hart's [`Mailbox`], which the target polls at its quiescent
//! points ([`quiescent_point`]): places outside any probed function, probe
//! handler and out-of-line slot (the secondary hart's main loop and its job
//! loops). A requester waits for the answer, serving requests addressed to
//! itself meanwhile, with a deadline so a hang is reported instead of
//! timing out the whole run.
//!
//! A hart that is not online (still parked in M-mode by `boot`) executes
//! nothing the kernel patches: it is skipped.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::boot;
use super::clock::Deadline;
use super::layout::{self, MAX_HARTS};
use super::services::ENGINE;
use super::trap::hart_id;

/// How long a hart may take to answer a request. An answer normally takes
/// microseconds, but QEMU's vCPU threads compete with whatever else runs
/// on the host: leave room for a badly loaded one.
const ANSWER_MS: u64 = 15_000;

/// Requests to one hart, and its answers.
struct Mailbox {
    /// Running in S-mode and polling its mailbox.
    online: AtomicBool,
    /// Stop (spin at the next quiescent point) until cleared.
    stop_requested: AtomicBool,
    /// Answer: spinning, executing nothing that may be patched.
    stopped: AtomicBool,
    /// Number of `fence.i` requests made.
    fence_requested: AtomicU64,
    /// Number of `fence.i` requests served.
    fence_done: AtomicU64,
    /// Quiescent points passed.
    quiescent: AtomicU64,
}

static MAILBOX: [Mailbox; MAX_HARTS] = [const {
    Mailbox {
        online: AtomicBool::new(false),
        stop_requested: AtomicBool::new(false),
        stopped: AtomicBool::new(false),
        fence_requested: AtomicU64::new(0),
        fence_done: AtomicU64::new(0),
        quiescent: AtomicU64::new(0),
    }
}; MAX_HARTS];

/// A job for the secondary hart (a `fn()` as an address; 0: none).
static JOB: AtomicUsize = AtomicUsize::new(0);
/// Jobs the secondary hart finished.
static JOBS_DONE: AtomicUsize = AtomicUsize::new(0);

/// `fence.i` on this hart: later instruction fetches see earlier stores.
pub fn fence_i() {
    // SAFETY: fence.i only orders instruction fetch after prior stores.
    unsafe { core::arch::asm!("fence.i") };
}

fn others() -> impl Iterator<Item = usize> {
    let me = hart_id();
    (0..MAX_HARTS).filter(move |&h| h != me && MAILBOX[h].online.load(Ordering::Acquire))
}

/// The longest wait for an answer so far, in `time` ticks.
static LONGEST_WAIT: AtomicU64 = AtomicU64::new(0);

/// Wait until `done` holds, serving this hart's own requests meanwhile.
fn wait_for(done: impl Fn() -> bool, hart: usize, what: &str) {
    let start = super::clock::now();
    let deadline = Deadline::after_ms(ANSWER_MS);
    while !done() {
        serve_requests();
        if deadline.passed() {
            panic!(
                "hart {hart} did not {what} within {ANSWER_MS} ms ({} quiescent points refused, last at {:#x})",
                REFUSED_QUIESCENT.load(Ordering::Relaxed),
                LAST_REFUSED.load(Ordering::Relaxed)
            );
        }
        core::hint::spin_loop();
    }
    LONGEST_WAIT.fetch_max(super::clock::now() - start, Ordering::Relaxed);
}

/// The longest wait for another hart's answer so far, in microseconds.
pub fn longest_wait_us() -> u64 {
    LONGEST_WAIT.load(Ordering::Relaxed) / 10
}

/// Serve the requests addressed to this hart (stop, `fence.i`). Safe
/// anywhere outside patched text; does not count as a quiescent point.
pub fn serve_requests() {
    let m = &MAILBOX[hart_id()];
    if m.stop_requested.load(Ordering::Acquire) {
        m.stopped.store(true, Ordering::Release);
        while m.stop_requested.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
        // The patch is complete: fetch it.
        fence_i();
        m.stopped.store(false, Ordering::Release);
    }
    let wanted = m.fence_requested.load(Ordering::Acquire);
    if m.fence_done.load(Ordering::Relaxed) != wanted {
        fence_i();
        m.fence_done.store(wanted, Ordering::Release);
    }
}

/// This hart is at a quiescent point: outside every probed function,
/// handler and slot. Serves its requests and counts the point, unless it
/// was called from a displaced region whose jump is changing or in place,
/// from a detour ([`probe_core::Engine::in_optimized_code`]) or from the
/// trap text (then it counts a refusal instead: a caller bug, which the
/// checks report).
#[inline(never)]
pub fn quiescent_point() {
    let caller: usize;
    // SAFETY: reads `ra` before this function calls anything: the address
    // its caller resumes at.
    unsafe { core::arch::asm!("mv {}, ra", out(reg) caller, options(nomem, nostack)) };
    serve_requests();
    // Where this hart continues: what a grace period must judge.
    let pc = caller;
    if ENGINE.in_optimized_code(pc)
        || probe_core::trap_text_range().contains(&pc)
        || layout::kernel_trap_text().contains(&pc)
    {
        REFUSED_QUIESCENT.fetch_add(1, Ordering::Relaxed);
        LAST_REFUSED.store(pc, Ordering::Relaxed);
        return;
    }
    MAILBOX[hart_id()].quiescent.fetch_add(1, Ordering::Release);
}

/// Quiescent points refused because the caller lay in optimised code or
/// the trap text.
static REFUSED_QUIESCENT: AtomicUsize = AtomicUsize::new(0);
/// Where the last refused quiescent point would have resumed.
static LAST_REFUSED: AtomicUsize = AtomicUsize::new(0);

/// See [`quiescent_point`]: refusals so far (0 in a correct kernel).
pub fn refused_quiescent_points() -> usize {
    REFUSED_QUIESCENT.load(Ordering::Relaxed)
}

/// The other harts are stopped while this exists (see [`stop_others`]).
#[must_use = "the other harts run again when this is dropped"]
pub struct StopGuard {
    stopped: [bool; MAX_HARTS],
}

/// Stop every other online hart at its next quiescent point ("stop
/// machine"), so none executes text while it is half written.
pub fn stop_others() -> StopGuard {
    let mut stopped = [false; MAX_HARTS];
    for h in others() {
        let m = &MAILBOX[h];
        // The previous stop's release is seen (normally long since): only
        // then may a new request go out, or its old answer would be taken
        // for the new one.
        wait_for(|| !m.stopped.load(Ordering::Acquire), h, "resume");
        m.stop_requested.store(true, Ordering::Release);
        wait_for(|| m.stopped.load(Ordering::Acquire), h, "stop");
        stopped[h] = true;
    }
    StopGuard { stopped }
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        for (h, &s) in self.stopped.iter().enumerate() {
            if s {
                let m = &MAILBOX[h];
                // Not waiting for the answer here (one handshake less per
                // write; the next stop waits for it): released, the hart
                // executes `fence.i` before anything else.
                m.stop_requested.store(false, Ordering::Release);
            }
        }
    }
}

/// `fence.i` here and on every other online hart (which answers at its
/// next quiescent point). Unused since every text write stops the other
/// hart, whose release executes `fence.i`; kept for a write path that
/// does not stop it.
#[allow(dead_code)]
pub fn fence_i_everywhere() {
    fence_i();
    for h in others() {
        let m = &MAILBOX[h];
        let ticket = m.fence_requested.fetch_add(1, Ordering::AcqRel) + 1;
        wait_for(
            || m.fence_done.load(Ordering::Acquire) >= ticket,
            h,
            "execute fence.i",
        );
    }
}

/// Return once every other online hart passed a quiescent point after
/// this call began.
pub fn wait_quiescent_others() {
    for h in others() {
        let m = &MAILBOX[h];
        let seen = m.quiescent.load(Ordering::Acquire);
        wait_for(
            || m.quiescent.load(Ordering::Acquire) != seen,
            h,
            "pass a quiescent point",
        );
    }
}

/// Number of other harts online.
pub fn others_online() -> usize {
    others().count()
}

/// Release the secondary hart from its park loop and wait (at most `ms`)
/// until it polls its mailbox in S-mode; false when it never came (QEMU
/// started with `-smp 1`).
pub fn start_secondary(ms: u64) -> bool {
    boot::release_secondary();
    let deadline = Deadline::after_ms(ms);
    while !MAILBOX[1].online.load(Ordering::Acquire) {
        if deadline.passed() {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Give the secondary hart a job; it starts at its next quiescent point.
pub fn start_job(job: fn()) {
    JOB.store(job as usize, Ordering::Release);
}

/// Jobs the secondary hart has finished.
pub fn jobs_done() -> usize {
    JOBS_DONE.load(Ordering::Acquire)
}

/// Wait (at most `ms`) until the secondary hart has finished `n` jobs.
pub fn wait_jobs_done(n: usize, ms: u64) -> bool {
    let deadline = Deadline::after_ms(ms);
    while jobs_done() < n {
        serve_requests();
        if deadline.passed() {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// The secondary hart's life in S-mode: poll, run jobs.
pub fn secondary_main() -> ! {
    MAILBOX[hart_id()].online.store(true, Ordering::Release);
    loop {
        quiescent_point();
        let job = JOB.swap(0, Ordering::AcqRel);
        if job != 0 {
            // SAFETY: JOB only ever holds addresses of `fn()` items, stored
            // by `start_job`.
            let job: fn() = unsafe { core::mem::transmute::<usize, fn()>(job) };
            job();
            JOBS_DONE.fetch_add(1, Ordering::Release);
        }
        core::hint::spin_loop();
    }
}
