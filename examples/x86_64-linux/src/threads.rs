//! Threads as the engine's CPUs and tasks, and the grace period.
//!
//! Every thread that runs probed code is a CPU to the engine: it gets an
//! index below [`MAX_THREADS`] (its `cpu_id`) and the task state of that
//! index. A thread registers explicitly ([`register_current`]) or, the
//! first time it traps, on the fly ([`cpu_index`]: a lock-free claim of a
//! free index, as a kernel gives every thread a CPU; `std::thread::spawn`
//! runs `memcpy` before the new thread's code can register). An adopted
//! thread is released by a thread-specific-data destructor when it exits,
//! and a grace period reclaims the index of a thread found dead.
//!
//! The trap path finds the calling thread's index as a kernel reads its
//! per-CPU number: one load, from a `const`-initialised thread-local
//! (`INDEX`, set when the thread claims an index) that an executable reads
//! `fs`-relative without calling any accessor function (which could be
//! probed), checked against the slot's owner (the thread pointer, `fs:0`,
//! glibc's `pthread_self`). A thread whose cached index is not its own
//! (none yet, or a released one) looks itself up among the claimed
//! indices, as before. Everything here that the trap path runs
//! is in the `probe_trap_text` section, which the engine refuses to probe.
//!
//! Grace period ([`synchronize`]): every other registered thread is
//! interrupted by `SIGUSR1` and its handler acknowledges only when the
//! interrupted pc is outside every slot page. `SIGUSR1` is blocked while
//! the `SIGTRAP` and `SIGSEGV` handlers run and during a masked step, so an
//! acknowledgement also means the thread was in no probe handler of the
//! trap path; return handlers and the handlers of jump-optimised probes
//! run from the code trampoline and the detours instead, with `SIGUSR1`
//! deliverable (a kernel runs them with interrupts masked), so the handler
//! also asks the engine whether a probe handler runs on the thread's CPU
//! (`Engine::handler_running`). A thread found in a slot, in the probe
//! machinery's code or in a handler is asked again until it has left it.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use probe_core::TaskState;
use probe_hal_x86_64::X86_64;

use crate::{services, ENGINE};

/// Threads (the engine's CPUs) registered at once at most.
pub const MAX_THREADS: usize = 16;
/// Masks a thread can have saved at once (one per masked step in flight:
/// a step only starts in a context that takes signals, and none is
/// delivered during it, so one is the most seen).
pub const MAX_SAVED_MASKS: usize = 4;

/// One claimed index: a thread, its counters and its saved signal masks.
pub struct ThreadSlot {
    /// Thread pointer (`fs:0`) of the owner; 0 when the slot is free.
    tcb: AtomicUsize,
    /// Kernel thread id of the owner (for `tgkill`).
    tid: AtomicI32,
    /// Grace-period signals handled.
    seen: AtomicU64,
    /// Of those, the ones taken outside the slot pages.
    acked: AtomicU64,
    /// Claimed on the fly by the trap path (released at thread exit).
    adopted: AtomicBool,
    /// SIGTRAPs taken.
    pub traps: AtomicU64,
    /// Signal masks of contexts in a masked step (see `signals`).
    pub saved_masks: [AtomicU64; MAX_SAVED_MASKS],
    /// How many of `saved_masks` are in use.
    pub saved_depth: AtomicUsize,
}

static SLOTS: [ThreadSlot; MAX_THREADS] = [const {
    ThreadSlot {
        tcb: AtomicUsize::new(0),
        tid: AtomicI32::new(0),
        seen: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        adopted: AtomicBool::new(false),
        traps: AtomicU64::new(0),
        saved_masks: [const { AtomicU64::new(0) }; MAX_SAVED_MASKS],
        saved_depth: AtomicUsize::new(0),
    }
}; MAX_THREADS];

/// The task state of each index (a kernel embeds one in each task).
static TASKS: [TaskState<X86_64>; MAX_THREADS] = [const { TaskState::new() }; MAX_THREADS];

/// Threads adopted on the fly so far.
static ADOPTED: AtomicU64 = AtomicU64::new(0);
/// Adopted threads released by their exit destructor.
static RELEASED_AT_EXIT: AtomicU64 = AtomicU64::new(0);
/// Indices of dead threads reclaimed by a grace period.
static RECLAIMED: AtomicU64 = AtomicU64::new(0);
/// The thread-specific-data key whose destructor releases adopted threads
/// (`usize::MAX`: not created).
static EXIT_KEY: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The calling thread's thread pointer: glibc keeps `pthread_self()` at
/// `fs:0`. Read inline, so the trap path calls nothing to find its thread.
#[inline(always)]
fn tcb() -> usize {
    let p: usize;
    // SAFETY: on x86_64 Linux with glibc, fs points at the thread control
    // block, whose first word is its own address; the load has no effects.
    unsafe {
        core::arch::asm!("mov {}, fs:0", out(reg) p, options(nostack, readonly, preserves_flags))
    };
    p
}

/// The calling thread's kernel id, by a system call made inline (glibc's
/// `gettid` and `syscall` could be probed; the trap path calls no
/// function outside `probe_trap_text` that is not blacklisted).
#[inline(always)]
fn gettid() -> i32 {
    let tid: i64;
    // SAFETY: gettid takes no arguments, cannot fail, and touches no
    // memory; the syscall instruction clobbers rcx and r11.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_gettid => tid,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack, preserves_flags)
        )
    };
    tid as i32
}

std::thread_local! {
    /// The index this thread claimed last (`usize::MAX`: none). Only a hint:
    /// [`current`] checks it against the slot's owner.
    static INDEX: core::cell::Cell<usize> = const { core::cell::Cell::new(usize::MAX) };
}

/// The calling thread's index, if it has one (signal-handler safe).
#[link_section = "probe_trap_text"]
#[inline(always)]
pub fn current() -> Option<usize> {
    let me = tcb();
    // A `const`-initialised thread-local without a destructor: one
    // `fs`-relative load, no accessor call (`try_with` only fails while
    // the thread's TLS is being destroyed: then the lookup below serves).
    let hint = INDEX.try_with(|i| i.get()).unwrap_or(usize::MAX);
    if SLOTS
        .get(hint)
        .is_some_and(|s| s.tcb.load(Ordering::Acquire) == me)
    {
        return Some(hint);
    }
    lookup(me)
}

/// The index owned by thread pointer `me`, by a search of every slot.
#[link_section = "probe_trap_text"]
#[inline(never)]
fn lookup(me: usize) -> Option<usize> {
    SLOTS
        .iter()
        .position(|s| s.tcb.load(Ordering::Acquire) == me)
}

/// The calling thread's slot, if it has one.
#[link_section = "probe_trap_text"]
#[inline(always)]
pub fn current_slot() -> Option<&'static ThreadSlot> {
    current().map(|i| &SLOTS[i])
}

/// The slot of index `i`.
#[link_section = "probe_trap_text"]
#[inline(always)]
pub fn slot_of(i: usize) -> &'static ThreadSlot {
    &SLOTS[i]
}

/// Claim a free index for the calling thread (lock-free).
#[link_section = "probe_trap_text"]
#[inline(never)]
fn claim(tid: i32) -> Option<usize> {
    let me = tcb();
    let i = SLOTS.iter().position(|s| {
        s.tcb
            .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    })?;
    let _ = INDEX.try_with(|c| c.set(i));
    let s = &SLOTS[i];
    s.tid.store(tid, Ordering::Release);
    s.saved_depth.store(0, Ordering::Relaxed);
    Some(i)
}

/// Give index `i` back (its thread runs no probed code any more, or is
/// dead): its return instances and parked steps go, then the index.
fn release(i: usize) {
    // The owner of index `i` runs no probed code any more (it is exiting
    // or dead); this runs in task context, outside the probe machinery.
    ENGINE
        .release_task(&TASKS[i])
        .expect("release_task outside the probe machinery");
    let s = &SLOTS[i];
    s.adopted.store(false, Ordering::Relaxed);
    s.tid.store(0, Ordering::Release);
    s.tcb.store(0, Ordering::Release);
}

extern "C" fn on_thread_exit(value: *mut libc::c_void) {
    let i = value as usize - 1;
    if SLOTS[i].tcb.load(Ordering::Acquire) == tcb() {
        RELEASED_AT_EXIT.fetch_add(1, Ordering::Relaxed);
        release(i);
    }
}

/// Create the key whose destructor releases adopted threads; called once
/// by `main` before any other thread exists.
pub fn init() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: creating a key with a destructor of the right signature.
    let r = unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) };
    assert_eq!(r, 0, "pthread_key_create");
    EXIT_KEY.store(key as usize, Ordering::Release);
}

/// The trap path met a thread with no index: claim one as the kernel
/// would give the thread a CPU, and have it released when the thread ends.
#[link_section = "probe_trap_text"]
#[cold]
#[inline(never)]
fn adopt() -> usize {
    let tid = gettid();
    let Some(i) = claim(tid) else { no_index() };
    SLOTS[i].adopted.store(true, Ordering::Relaxed);
    ADOPTED.fetch_add(1, Ordering::Relaxed);
    let key = EXIT_KEY.load(Ordering::Acquire);
    if key != usize::MAX {
        // SAFETY: a key created by `init`; glibc stores the values of the
        // first 32 keys in the thread descriptor itself, so this allocates
        // nothing (it is on the blacklist: the trap path runs it).
        unsafe {
            libc::pthread_setspecific(key as libc::pthread_key_t, (i + 1) as *const libc::c_void)
        };
    }
    i
}

#[cold]
fn no_index() -> ! {
    let msg = b"x86_64-linux: more threads run probed code than MAX_THREADS\n";
    // SAFETY: write(2) on stderr with a valid buffer; abort has no preconditions.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::abort()
    }
}

/// (threads adopted by the trap path, released at their exit, dead
/// threads' indices reclaimed by a grace period).
pub fn adoption_record() -> (u64, u64, u64) {
    (
        ADOPTED.load(Ordering::Acquire),
        RELEASED_AT_EXIT.load(Ordering::Acquire),
        RECLAIMED.load(Ordering::Acquire),
    )
}

/// Indices claimed right now.
pub fn claimed() -> usize {
    SLOTS
        .iter()
        .filter(|s| s.tcb.load(Ordering::Acquire) != 0)
        .count()
}

/// A registered thread; unregisters it when dropped.
pub struct Registration {
    index: usize,
    /// Not Send: it belongs to the thread that registered.
    _thread: core::marker::PhantomData<*const ()>,
}

impl Registration {
    /// This thread's task state.
    pub fn task(&self) -> &'static TaskState<X86_64> {
        &TASKS[self.index]
    }
}

/// Register the calling thread (taking over its index if the trap path
/// adopted it already).
///
/// # Panics
/// If it is registered already or [`MAX_THREADS`] threads are.
pub fn register_current() -> Registration {
    let index = match current() {
        Some(i) => {
            assert!(
                SLOTS[i].adopted.swap(false, Ordering::AcqRel),
                "thread registered twice"
            );
            let key = EXIT_KEY.load(Ordering::Acquire);
            if key != usize::MAX {
                // SAFETY: clearing this thread's value of our own key.
                unsafe { libc::pthread_setspecific(key as libc::pthread_key_t, core::ptr::null()) };
            }
            i
        }
        None => {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            claim(tid).expect("more threads than MAX_THREADS")
        }
    };
    Registration {
        index,
        _thread: core::marker::PhantomData,
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The thread runs no probed code any more: give its return
        // instances back, then its CPU index.
        release(self.index);
    }
}

/// The calling thread's CPU index (signal-handler safe); a thread without
/// one is adopted.
#[link_section = "probe_trap_text"]
#[inline(never)]
pub fn cpu_index() -> usize {
    match current() {
        Some(i) => i,
        None => adopt(),
    }
}

/// The calling thread's task state (signal-handler safe).
#[link_section = "probe_trap_text"]
#[inline(never)]
pub fn task_state() -> &'static TaskState<X86_64> {
    &TASKS[cpu_index()]
}

/// The `SIGUSR1` handler's work: acknowledge the grace period unless the
/// thread was interrupted inside a slot page or on the return path.
#[link_section = "probe_trap_text"]
pub fn acknowledge(interrupted_pc: usize) {
    let Some(i) = current() else { return };
    let slot = &SLOTS[i];
    // Inside the probe machinery: a slot, the trap text (the return path
    // and a detour's entry and the engine code around the handlers), a
    // displaced region whose jump is changing or a detour (resuming there
    // after the grace period could run half a jump or a freed detour), or
    // a handler called from the return or detour path (the engine's own
    // per-CPU flag: this signal interrupted the thread that is CPU `i`).
    let busy = services::in_slot_area(interrupted_pc)
        || probe_core::trap_text_range().contains(&interrupted_pc)
        || ENGINE.in_optimized_code(interrupted_pc)
        || ENGINE.handler_running(i);
    if !busy {
        slot.acked.fetch_add(1, Ordering::AcqRel);
    }
    slot.seen.fetch_add(1, Ordering::AcqRel);
}

/// A voluntary quiescent point (Linux's RCU-tasks counts a voluntary
/// context switch as one): the calling thread is outside every slot,
/// detour, displaced region and handler, so a grace period in progress may
/// count it. A loop that keeps re-entering probed code (and so is almost
/// always caught inside the probe machinery by `SIGUSR1`) calls this, as a
/// kernel thread calls `cond_resched`.
pub fn quiescent_point() {
    if let Some(slot) = current_slot() {
        slot.acked.fetch_add(1, Ordering::SeqCst);
    }
}

/// Wait until every other registered thread has been interrupted outside
/// the slot pages and outside the probe handlers.
pub fn synchronize() {
    let me = current().unwrap_or(usize::MAX);
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    for (i, slot) in SLOTS.iter().enumerate() {
        if i == me {
            continue;
        }
        'thread: loop {
            let tid = slot.tid.load(Ordering::Acquire);
            if tid == 0 {
                break;
            }
            let acked = slot.acked.load(Ordering::Acquire);
            let seen = slot.seen.load(Ordering::Acquire);
            // SAFETY: tgkill with this process's id, a thread id read from
            // the registry and a signal whose handler is installed.
            let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) };
            if r != 0 {
                // The thread is gone without releasing its index (it
                // exited after its exit destructor, or was never told):
                // reclaim it.
                if slot.tid.load(Ordering::Acquire) == tid {
                    RECLAIMED.fetch_add(1, Ordering::Relaxed);
                    release(i);
                }
                break;
            }
            let started = Instant::now();
            while slot.seen.load(Ordering::Acquire) == seen {
                if slot.tid.load(Ordering::Acquire) != tid {
                    break 'thread; // unregistered meanwhile
                }
                if started.elapsed() > Duration::from_secs(10) {
                    eprintln!("grace period: thread {tid} does not answer");
                    break 'thread;
                }
                std::thread::yield_now();
            }
            if slot.acked.load(Ordering::Acquire) != acked {
                break;
            }
            // Interrupted inside a slot or on the return path: let it run
            // on, then ask again.
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}
