//! The harness plays the kernel faithfully (issue 8): each check here
//! failed before the fix it proves.
//! - the trap path's own code and the glibc functions it runs cannot be
//!   probed (a probe there recursed until the stack was gone);
//! - an asynchronous signal whose handler hits probes never lands inside
//!   the trap path or a step (the SIGTRAP handler blocked only SIGUSR1);
//! - a signal handler that leaves by a non-local jump cannot strand a step
//!   (IF, cleared for the step, was written where sigreturn ignores it);
//! - a thread nobody registered is given a CPU on its first hit (it
//!   aborted the process), even while `std::thread::spawn` runs `memcpy`;
//! - a return probe on `memcpy`/`memset` misses no call because of the
//!   engine (issue 8 item 15).

use core::arch::global_asm;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use libc::{c_int, siginfo_t};
use probe_core::{
    EntryAction, Kprobe, Kretprobe, PreAction, ProbeContext, ProbeErrorKind, Registers,
};
use x86_64_linux::frame::SignalFrame;
use x86_64_linux::recorder::Recorder;
use x86_64_linux::report::Report;
use x86_64_linux::testfns;
use x86_64_linux::{ensure, ensure_eq};

use super::{call_fn, kprobe, CheckResult, Probes};
use crate::{services, sigguard, signals, threads, ENGINE};

// ---- (a) the trap path cannot be probed ---------------------------------

fn trap_path_refused() -> CheckResult {
    let mut targets: Vec<(String, usize)> = Vec::new();
    for name in services::GLIBC_TRAP_PATH {
        let r = services::libc_function(name).ok_or(format!("{name} not found"))?;
        targets.push(((*name).to_string(), r.start));
    }
    let rt = services::restorer_range().ok_or("no __restore_rt in SIGTRAP's sa_restorer")?;
    targets.push(("__restore_rt".into(), rt.start));
    targets.push(("__restore_rt's syscall".into(), rt.start + 7));
    targets.push(("the SIGTRAP handler".into(), signals::trap_handler()));
    targets.push((
        "threads::cpu_index".into(),
        threads::cpu_index as *const () as usize,
    ));
    targets.push((
        "threads::current".into(),
        threads::current as *const () as usize,
    ));
    let mut refused = 0;
    for (what, addr) in &targets {
        let k = Kprobe::at(*addr).pre(|_, _| PreAction::Continue);
        match ENGINE.register_kprobe(&k) {
            Ok(id) => {
                let _ = ENGINE.unregister(id);
                return Err(format!("a probe on {what} ({addr:#x}) was accepted"));
            }
            Err(e) if e.kind() == ProbeErrorKind::Blacklisted => refused += 1,
            Err(e) => return Err(format!("{what}: refused for another reason: {e}")),
        }
    }
    Ok(format!("{refused} addresses refused as Blacklisted"))
}

// ---- (b) asynchronous signals are masked in the trap path ---------------

static ALARM_CALLS: AtomicU64 = AtomicU64::new(0);
static ALARM_WRONG: AtomicU64 = AtomicU64::new(0);
static ALARM_ON: AtomicBool = AtomicBool::new(false);

fn cold(a: u64) -> u64 {
    (a ^ 0x5a5a) + 9
}

extern "C" fn on_alarm(_sig: c_int, _info: *mut siginfo_t, _ctx: *mut c_void) {
    if !ALARM_ON.load(Ordering::Acquire) {
        return;
    }
    let n = ALARM_CALLS.fetch_add(1, Ordering::Relaxed) + 1_000_000;
    if call_fn("tf_cold", n, 0, 0).ret != cold(n) {
        ALARM_WRONG.fetch_add(1, Ordering::Relaxed);
    }
}

fn install(sig: c_int, handler: extern "C" fn(c_int, *mut siginfo_t, *mut c_void)) {
    // SAFETY: a zeroed sigaction is valid; the handler has the SA_SIGINFO
    // signature and is async-signal-safe (atomics, the probed test code).
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(sig, &sa, core::ptr::null_mut()), 0);
    }
}

fn set_timer(us: i64) {
    let t = libc::timeval {
        tv_sec: 0,
        tv_usec: us,
    };
    let it = libc::itimerval {
        it_interval: t,
        it_value: t,
    };
    // SAFETY: setitimer with a valid itimerval.
    unsafe { libc::setitimer(libc::ITIMER_REAL, &it, core::ptr::null_mut()) };
}

fn async_signal_in_trap_path() -> CheckResult {
    let recs = [Recorder::leak(), Recorder::leak()];
    let mut probes = Probes::new();
    let mut ids = Vec::new();
    for (p, rec) in ["cold_b", "cold_c"].iter().zip(recs) {
        ids.push(probes.add(
            p,
            ENGINE.register_kprobe(&kprobe(testfns::point(p).addr(), rec, true)),
        )?);
    }
    let leaked = ENGINE.leaked_steps();
    let (_, underflows) = signals::mask_record();
    install(libc::SIGALRM, on_alarm);
    ALARM_CALLS.store(0, Ordering::Relaxed);
    ALARM_WRONG.store(0, Ordering::Relaxed);
    ALARM_ON.store(true, Ordering::Release);
    set_timer(40);
    let started = std::time::Instant::now();
    let (mut calls, mut wrong) = (0u64, 0u64);
    while started.elapsed() < std::time::Duration::from_millis(300) {
        if call_fn("tf_cold", calls, 0, 0).ret != cold(calls) {
            wrong += 1;
        }
        calls += 1;
    }
    set_timer(0);
    ALARM_ON.store(false, Ordering::Release);
    let alarms = ALARM_CALLS.load(Ordering::Relaxed);
    ensure_eq!(
        (wrong, ALARM_WRONG.load(Ordering::Relaxed)),
        (0, 0),
        "wrong results (main, handler)"
    );
    ensure!(alarms >= 100, "only {alarms} SIGALRM handlers ran");
    let total = calls + alarms;
    for (id, rec) in ids.iter().zip(recs) {
        let info = ENGINE.info(*id).map_err(|e| e.to_string())?;
        ensure_eq!(
            (rec.hits(), rec.post_hits(), info.missed),
            (total, total, 0),
            "probe at {:#x}: pre, post, missed",
            info.addr
        );
    }
    ensure_eq!(ENGINE.leaked_steps(), leaked, "leaked steps");
    ensure_eq!(signals::mask_record().1, underflows, "mask underflows");
    probes.clear()?;
    Ok(format!(
        "{calls} calls + {alarms} from a 40 us SIGALRM handler, every hit counted on both post-handler probes, 0 missed"
    ))
}

// ---- (c) a non-local jump out of a signal handler ------------------------

// `x86_64_linux_catch(rsp_slot, f, arg)` calls `f(arg)` and returns its
// result, or -1 when a signal handler "siglongjmps" out of `f`: it resumes
// the interrupted context at `x86_64_linux_catch_landing` with rsp =
// `*rsp_slot` (the callee-saved registers are on the stack there).
global_asm!(
    r#"
    .pushsection .text.x86_64_linux_catch,"ax",@progbits
    .p2align 4
    .globl x86_64_linux_catch
x86_64_linux_catch:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    sub rsp, 8
    mov [rdi], rsp
    mov rdi, rdx
    call rsi
2:
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret
    .globl x86_64_linux_catch_landing
x86_64_linux_catch_landing:
    mov rax, -1
    jmp 2b
    .popsection
"#
);

extern "C" {
    fn x86_64_linux_catch(rsp_slot: *mut usize, f: extern "C" fn(u64) -> u64, arg: u64) -> u64;
    fn x86_64_linux_catch_landing();
}

/// Where the catch frame's rsp is (0: no jump armed).
static CATCH_RSP: AtomicUsize = AtomicUsize::new(0);
/// The signal mask to give the landing (siglongjmp's saved mask).
static CATCH_MASK: AtomicU64 = AtomicU64::new(0);
/// pc the SIGUSR2 handler interrupted.
static USR2_PC: AtomicUsize = AtomicUsize::new(0);
static USR2_IN_SLOT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr2(_sig: c_int, _info: *mut siginfo_t, ctx: *mut c_void) {
    // SAFETY: this handler's own ucontext; the frame is the only reference
    // to its registers.
    let mut frame = unsafe { SignalFrame::from_context(ctx) };
    let pc = frame.pc();
    USR2_PC.store(pc, Ordering::Release);
    USR2_IN_SLOT.store(services::in_slot_area(pc), Ordering::Release);
    let rsp = CATCH_RSP.swap(0, Ordering::AcqRel);
    if rsp != 0 {
        // siglongjmp: leave the interrupted code for the catch frame, with
        // the mask saved when it was set up.
        frame.set_pc(x86_64_linux_catch_landing as *const () as usize);
        frame.set_sp(rsp);
        // SAFETY: the mask of the live ucontext (apart from the registers).
        unsafe {
            core::ptr::addr_of_mut!((*(ctx as *mut libc::ucontext_t)).uc_sigmask)
                .cast::<u64>()
                .write(CATCH_MASK.load(Ordering::Acquire))
        };
    }
}

fn raise_usr2(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    // SAFETY: tgkill to this very thread with a handled signal; getpid and
    // gettid have no preconditions.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::gettid(),
            libc::SIGUSR2,
        );
    }
    PreAction::Continue
}

extern "C" fn probed_alu(a: u64) -> u64 {
    call_fn("tf_alu", a, 32, 0).ret
}

fn siglongjmp_during_step() -> CheckResult {
    install(libc::SIGUSR2, on_usr2);
    let xor = testfns::point("alu_xor").addr();
    let rec = Recorder::leak();
    let mut probes = Probes::new();
    let raiser = probes.add(
        "alu_xor (raises SIGUSR2)",
        ENGINE.register_kprobe(&Kprobe::at(xor).pre(raise_usr2)),
    )?;
    let counter = probes.add(
        "alu_xor (counts)",
        ENGINE.register_kprobe(&kprobe(xor, rec, true)),
    )?;
    let leaked = ENGINE.leaked_steps();
    // The mask to land with: this thread's mask now.
    let mut now: libc::sigset_t = unsafe_zeroed_sigset();
    // SAFETY: querying this thread's mask into a valid set.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, core::ptr::null(), &mut now) };
    // SAFETY: reading the first word of a sigset_t (the kernel's sigset).
    CATCH_MASK.store(
        unsafe { *(&now as *const libc::sigset_t).cast::<u64>() },
        Ordering::Release,
    );
    let mut slot = 0usize;
    CATCH_RSP.store(0, Ordering::Release);
    // Arm the jump from inside: the rsp slot is written by the catch
    // routine before it calls, and the handler reads it through CATCH_RSP.
    let slot_ptr: *mut usize = &mut slot;
    extern "C" fn arm_then_run(a: u64) -> u64 {
        let slot = ARMED_SLOT.load(Ordering::Acquire) as *const usize;
        // SAFETY: the catch routine wrote the slot before calling us.
        CATCH_RSP.store(unsafe { slot.read() }, Ordering::Release);
        probed_alu(a)
    }
    static ARMED_SLOT: AtomicUsize = AtomicUsize::new(0);
    ARMED_SLOT.store(slot_ptr as usize, Ordering::Release);
    // SAFETY: the routine calls `arm_then_run(10)`; a jump out of it skips
    // only frames without destructors (plain integer code and the test
    // function), and lands back in the routine's own frame.
    let r = unsafe { x86_64_linux_catch(slot_ptr, arm_then_run, 10) };
    ensure_eq!(r, u64::MAX, "the SIGUSR2 handler jumped out");
    ensure!(
        !USR2_IN_SLOT.load(Ordering::Acquire),
        "SIGUSR2 was delivered inside a slot (pc {:#x}): the step was not masked",
        USR2_PC.load(Ordering::Acquire)
    );
    ensure_eq!(
        rec.post_hits(),
        1,
        "post-handler of the interrupted call (the step ended first)"
    );
    ensure_eq!(ENGINE.leaked_steps(), leaked, "leaked steps");
    ENGINE.disable(raiser).map_err(|e| e.to_string())?;
    let before = rec.hits();
    for _ in 0..5 {
        ensure_eq!(probed_alu(10), 1396, "tf_alu after the jump");
    }
    let info = ENGINE.info(counter).map_err(|e| e.to_string())?;
    ensure_eq!(
        (rec.hits() - before, info.missed),
        (5, 0),
        "later hits on this thread: hits, missed"
    );
    probes.clear()?;
    Ok(format!(
        "SIGUSR2 raised in a pre-handler came at {:#x} after the step, jumped out, 0 leaked steps",
        USR2_PC.load(Ordering::Acquire)
    ))
}

fn unsafe_zeroed_sigset() -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is the empty set.
    unsafe { core::mem::zeroed() }
}

// ---- (d) threads nobody registered ---------------------------------------

static MEMCPY_HITS: AtomicU64 = AtomicU64::new(0);

fn count_memcpy(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    MEMCPY_HITS.fetch_add(1, Ordering::Relaxed);
    PreAction::Continue
}

fn unregistered_threads() -> CheckResult {
    let memcpy = services::libc_function("memcpy").ok_or("no memcpy")?.start;
    let mut probes = Probes::new();
    probes.add(
        "memcpy",
        ENGINE.register_kprobe(&Kprobe::at(memcpy).pre(count_memcpy)),
    )?;
    // glibc's gettid and syscall too: an unregistered thread's first hit
    // must not call them on its way to a CPU index.
    for name in ["gettid", "syscall"] {
        probes.add(
            name,
            ENGINE.register_kprobe(&Kprobe::symbol(name, 0).pre(count_memcpy)),
        )?;
    }
    let rec = Recorder::leak();
    probes.add(
        "alu_add",
        ENGINE.register_kprobe(&kprobe(testfns::point("alu_add").addr(), rec, true)),
    )?;
    let claimed = threads::claimed();
    let (adopted, released, _) = threads::adoption_record();
    let hits = MEMCPY_HITS.load(Ordering::Relaxed);
    let mut results = Vec::new();
    for i in 0..4u64 {
        // Neither thread registers: the trap path adopts it (std's spawn
        // runs memcpy in the new thread before its closure).
        let h = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let src = [i as u8; 64];
            // SAFETY: copying between two 64-byte buffers.
            unsafe {
                libc::memcpy(
                    buf.as_mut_ptr().cast(),
                    src.as_ptr().cast(),
                    core::hint::black_box(64),
                )
            };
            (call_fn("tf_alu", 10 + i, 32, 0).ret, buf[63])
        });
        results.push(
            h.join()
                .map_err(|_| "a spawned thread panicked".to_string())?,
        );
    }
    let want: Vec<(u64, u8)> = (0..4u64)
        .map(|i| ((((10 + i + 32) ^ 0x55) * 3 - 32) << 2, i as u8))
        .collect();
    ensure_eq!(results, want, "results of the unregistered threads");
    ensure_eq!(
        (rec.hits(), rec.post_hits()),
        (4, 4),
        "alu_add hits in those threads"
    );
    let (a, r, _) = threads::adoption_record();
    ensure!(
        a - adopted >= 4,
        "{} threads adopted, expected 4",
        a - adopted
    );
    ensure_eq!(
        r - released,
        a - adopted,
        "adopted threads released at their exit"
    );
    ensure_eq!(
        threads::claimed(),
        claimed,
        "CPU indices claimed after the threads ended"
    );
    let memcpy_hits = MEMCPY_HITS.load(Ordering::Relaxed) - hits;
    ensure!(memcpy_hits >= 4, "memcpy hit {memcpy_hits} times");
    // A child process through posix_spawn/fork while memcpy is probed.
    let st = std::process::Command::new("true")
        .status()
        .map_err(|e| format!("spawning true: {e}"))?;
    ensure!(st.success(), "true failed: {st}");
    probes.clear()?;
    Ok(format!(
        "{} threads adopted on their first hit and released at exit; memcpy hit {memcpy_hits} times meanwhile; a child spawned",
        a - adopted
    ))
}

// ---- (d) SIGTRAP is never blocked ----------------------------------------

static URG_RESULT: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_urg(_sig: c_int, _info: *mut siginfo_t, _ctx: *mut c_void) {
    URG_RESULT.store(call_fn("tf_alu", 11, 32, 0).ret, Ordering::Release);
}

fn sigtrap_never_blocked() -> CheckResult {
    let (installed, emulated0, stripped0) = sigguard::record();
    ensure!(installed, "the seccomp guard is not installed");
    let rec = Recorder::leak();
    let mut probes = Probes::new();
    probes.add(
        "alu_add",
        ENGINE.register_kprobe(&kprobe(testfns::point("alu_add").addr(), rec, true)),
    )?;
    // 1. Every signal blocked, then a probe hit.
    let mut full = unsafe_zeroed_sigset();
    let mut old = unsafe_zeroed_sigset();
    let mut now = unsafe_zeroed_sigset();
    // SAFETY: sigfillset and pthread_sigmask on valid local sets.
    unsafe {
        libc::sigfillset(&mut full);
        libc::pthread_sigmask(libc::SIG_SETMASK, &full, &mut old);
    }
    let r = call_fn("tf_alu", 10, 32, 0).ret;
    // SAFETY: as above.
    let (trap_blocked, usr2_blocked) = unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, core::ptr::null(), &mut now);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        (
            libc::sigismember(&now, libc::SIGTRAP),
            libc::sigismember(&now, libc::SIGUSR2),
        )
    };
    ensure_eq!(r, 1396, "tf_alu hit with every signal blocked");
    ensure_eq!(
        (trap_blocked, usr2_blocked),
        (0, 1),
        "SIGTRAP, SIGUSR2 in the mask after blocking every signal"
    );
    // 2. A handler installed with a full sa_mask hits the probe.
    // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_urg as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigfillset(&mut sa.sa_mask);
        ensure_eq!(
            libc::sigaction(libc::SIGURG, &sa, core::ptr::null_mut()),
            0,
            "sigaction(SIGURG)"
        );
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::gettid(),
            libc::SIGURG,
        );
    }
    ensure_eq!(
        URG_RESULT.load(Ordering::Acquire),
        1384,
        "tf_alu in a handler whose sa_mask is full"
    );
    ensure_eq!((rec.hits(), rec.post_hits()), (2, 2), "alu_add hits");
    let (_, emulated, stripped) = sigguard::record();
    ensure!(stripped > stripped0, "no mask had SIGTRAP taken out");
    probes.clear()?;
    Ok(format!(
        "{} signal-mask calls carried out by the SIGSYS handler, {} with SIGTRAP taken out",
        emulated - emulated0,
        stripped - stripped0
    ))
}

// ---- item 15: return probes on memcpy and memset -------------------------

static ENTRIES: AtomicU64 = AtomicU64::new(0);
static RETURNS: AtomicU64 = AtomicU64::new(0);

fn count_entry(_: &ProbeContext, _: &mut dyn Registers, _: &mut [u8]) -> EntryAction {
    ENTRIES.fetch_add(1, Ordering::Relaxed);
    EntryAction::Track
}

fn count_return(_: &ProbeContext, _: &mut dyn Registers, _: &mut [u8]) {
    RETURNS.fetch_add(1, Ordering::Relaxed);
}

fn kretprobe_on_libc() -> CheckResult {
    let mut notes = Vec::new();
    for name in ["memcpy", "memset"] {
        let f = services::libc_function(name)
            .ok_or(format!("no {name}"))?
            .start;
        let mut probes = Probes::new();
        let id = probes.add(
            name,
            ENGINE.register_kretprobe(
                &Kretprobe::at(f)
                    .entry(count_entry)
                    .ret(count_return)
                    .data_size(32),
            ),
        )?;
        ENTRIES.store(0, Ordering::Relaxed);
        RETURNS.store(0, Ordering::Relaxed);
        let mut a = [0u8; 256];
        let b = [7u8; 256];
        const N: u64 = 1000;
        // Called through the resolved address, so the compiler cannot
        // inline or merge the calls (it knows memcpy and memset).
        type Fn3 = unsafe extern "C" fn(usize, usize, usize) -> usize;
        // SAFETY: `f` is glibc's memcpy or memset, both of the C signature
        // (pointer, pointer or int, size) -> pointer.
        let call: Fn3 = unsafe { core::mem::transmute::<usize, Fn3>(f) };
        for i in 0..N as usize {
            let n = 1 + i % 255;
            let second = if name == "memcpy" {
                b.as_ptr() as usize
            } else {
                7
            };
            // SAFETY: n ≤ 255 bytes within two 256-byte buffers.
            unsafe { call(a.as_mut_ptr() as usize, second, n) };
        }
        ensure!(
            a[..255].iter().all(|&x| x == 7),
            "{name} wrote the wrong bytes"
        );
        let info = ENGINE.info(id).map_err(|e| e.to_string())?;
        let (e, r) = (
            ENTRIES.load(Ordering::Relaxed),
            RETURNS.load(Ordering::Relaxed),
        );
        ensure_eq!(info.missed, 0, "{name}: calls missed (hits {})", info.hits);
        ensure!(e >= N, "{name}: {e} entries for {N} calls");
        ensure_eq!(r, e, "{name}: returns vs entries");
        probes.clear()?;
        notes.push(format!("{name} {e} calls"));
    }
    Ok(format!("{}, 0 missed", notes.join(", ")))
}

pub(super) fn run(r: &mut Report) {
    r.check(
        "kernel: the trap path's own code, __errno_location, pthread_setspecific and __restore_rt refuse probes",
        trap_path_refused,
    );
    r.check(
        "kernel: a 40 us SIGALRM whose handler hits two post-handler probes (signals masked in the trap path and steps)",
        async_signal_in_trap_path,
    );
    r.check(
        "kernel: a signal handler that siglongjmps out while a step is in flight (signal deferred to the step's end)",
        siglongjmp_during_step,
    );
    r.check(
        "kernel: unregistered threads hit probes (adopted on the fly), memcpy, gettid and syscall probed while spawning threads and a child",
        unregistered_threads,
    );
    r.check(
        "kernel: probes hit with every signal blocked and in a handler with a full sa_mask (SIGTRAP never blocked)",
        sigtrap_never_blocked,
    );
    r.check(
        "kernel: kretprobes on glibc's memcpy and memset miss no call (nothing on the trap path calls them)",
        kretprobe_on_libc,
    );
}
