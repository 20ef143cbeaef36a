//! Threads as the engine's CPUs and tasks, and the grace period.
//!
//! Every thread that may run probed code registers first
//! ([`register_current`]): it gets an index below [`MAX_THREADS`] (its
//! `cpu_id`) and a leaked [`TaskState`] (its task state), both reachable
//! from signal handlers through const-initialised thread-locals.
//!
//! Grace period ([`synchronize`]): every other registered thread is
//! interrupted by `SIGUSR1` and its handler acknowledges only when the
//! interrupted pc is outside every slot page. `SIGUSR1` is blocked while
//! the `SIGTRAP` and `SIGSEGV` handlers run, so an acknowledgement also
//! means the thread was in no probe handler; return handlers run from the
//! code trampoline instead, through [`ReturnPath`], which marks the thread
//! busy meanwhile (a kernel runs that callback with preemption off). A
//! thread found in a slot or on the return path is asked again until it has
//! left it.

use core::cell::Cell;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hal_x86_64::X86_64;
use probe_core::{Registers, TaskState};
use probe_hal::rethook::ReturnHook;

use crate::{services, ENGINE};

/// Threads (the engine's CPUs) registered at once at most.
pub const MAX_THREADS: usize = 16;
const NONE: usize = usize::MAX;

struct ThreadSlot {
    /// Kernel thread id; 0 when the slot is free.
    tid: AtomicI32,
    /// Grace-period signals handled.
    seen: AtomicU64,
    /// Of those, the ones taken outside the slot pages.
    acked: AtomicU64,
}

static SLOTS: [ThreadSlot; MAX_THREADS] = [const {
    ThreadSlot {
        tid: AtomicI32::new(0),
        seen: AtomicU64::new(0),
        acked: AtomicU64::new(0),
    }
}; MAX_THREADS];

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(NONE) };
    /// Inside the engine's return handling (see [`ReturnPath`]).
    static ON_RETURN_PATH: Cell<bool> = const { Cell::new(false) };
    static TASK: Cell<Option<&'static TaskState<X86_64>>> = const { Cell::new(None) };
}

/// A registered thread; unregisters it when dropped.
pub struct Registration {
    index: usize,
    task: &'static TaskState<X86_64>,
    /// Not Send: it belongs to the thread that registered.
    _thread: core::marker::PhantomData<*const ()>,
}

impl Registration {
    /// This thread's task state.
    pub fn task(&self) -> &'static TaskState<X86_64> {
        self.task
    }
}

/// Register the calling thread.
///
/// # Panics
/// If it is registered already or [`MAX_THREADS`] threads are.
pub fn register_current() -> Registration {
    assert_eq!(INDEX.get(), NONE, "thread registered twice");
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let index = SLOTS
        .iter()
        .position(|s| {
            s.tid
                .compare_exchange(0, tid, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
        .expect("more threads than MAX_THREADS");
    let task: &'static TaskState<X86_64> = Box::leak(Box::new(TaskState::new()));
    TASK.set(Some(task));
    INDEX.set(index);
    Registration {
        index,
        task,
        _thread: core::marker::PhantomData,
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The thread runs no probed code any more: give its return
        // instances back, then its CPU index.
        // SAFETY: the thread is exiting: it runs no probed code any more
        // and nothing else uses its task state.
        unsafe { ENGINE.release_task(self.task) };
        INDEX.set(NONE);
        TASK.set(None);
        SLOTS[self.index].tid.store(0, Ordering::Release);
    }
}

/// The calling thread's CPU index (signal-handler safe).
///
/// Aborts when the thread is not registered: the engine must never see a
/// CPU it cannot index.
pub fn cpu_index() -> usize {
    let i = INDEX.get();
    if i == NONE {
        unregistered();
    }
    i
}

/// The calling thread's task state (signal-handler safe).
pub fn task_state() -> &'static TaskState<X86_64> {
    match TASK.get() {
        Some(t) => t,
        None => unregistered(),
    }
}

fn unregistered() -> ! {
    let msg = b"x86_64-linux: probed code ran on a thread that is not registered\n";
    // SAFETY: write(2) on stderr with a valid buffer; abort has no preconditions.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::abort()
    }
}

/// The return hook the backend's code trampoline calls: the engine's,
/// with the thread marked as inside the probe machinery while it runs.
pub struct ReturnPath;

impl ReturnHook for ReturnPath {
    unsafe fn on_return(&self, regs: &mut dyn Registers) -> usize {
        let outer = ON_RETURN_PATH.replace(true);
        // SAFETY: the caller's promise (the trampoline, on this thread),
        // passed on.
        let real = unsafe { ENGINE.on_return(regs) };
        ON_RETURN_PATH.set(outer);
        real
    }
}

/// The one return hook of the process.
pub static RETURN_PATH: ReturnPath = ReturnPath;

/// The `SIGUSR1` handler's work: acknowledge the grace period unless the
/// thread was interrupted inside a slot page or on the return path.
pub fn acknowledge(interrupted_pc: usize) {
    let i = INDEX.get();
    if i == NONE {
        return;
    }
    let slot = &SLOTS[i];
    if !services::in_slot_area(interrupted_pc) && !ON_RETURN_PATH.get() {
        slot.acked.fetch_add(1, Ordering::AcqRel);
    }
    slot.seen.fetch_add(1, Ordering::AcqRel);
}

/// Wait until every other registered thread has been interrupted outside
/// the slot pages and outside the probe handlers.
pub fn synchronize() {
    let me = INDEX.get();
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
                break; // the thread is gone
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
