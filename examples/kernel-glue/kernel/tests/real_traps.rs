//! The model kernel's x86_64 glue on real `int3` traps.
//!
//! The test plays the hardware: its `SIGTRAP` and `SIGSEGV` handlers fill
//! the CPU crate's `TrapFrame` from the `ucontext` (as a CPU and an entry
//! stub would, with `cs` showing ring 0: the probed code is this
//! "kernel"'s own; or ring 3 while the test plays a user task whose
//! address space is this process), call the kernel's trap dispatcher,
//! which calls the glue's trap hook, and write the frame back. Text is
//! patched with `mprotect` through the kernel's stop-machine text
//! patching (or its user-space write). The probed functions are the
//! x86_64-linux harness's assembly test functions.
//!
//! One test function: the probed code and the engine are process-wide,
//! and the grace period sees one CPU (this thread).
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use glue_cpu::x86_64::TrapFrame;
use glue_cpu::TrapKind;
use glue_kernel::mm::{self, AddrSpace};
use glue_kernel::perf::{self, PerfAttr, PerfKind, Program};
use glue_kernel::platform::Platform;
use glue_kernel::probe;
use glue_kernel::task::{self, Task};
use glue_kernel::trap::{dispatch, Disposition};
use libc::{c_int, greg_t, siginfo_t, ucontext_t};
use x86_64_linux::{call::call, testfns};

const PAGE: usize = 4096;

/// The host as the kernel's machine: one CPU, `mprotect` for text, pages
/// mapped near the probed code, the harness's exception table.
struct Host;

fn protect(addr: usize, len: usize, prot: c_int) -> bool {
    let start = addr & !(PAGE - 1);
    let end = (addr + len + PAGE - 1) & !(PAGE - 1);
    // SAFETY: changes the protection of this process's own text or slot
    // pages only; nothing is unmapped.
    unsafe { libc::mprotect(start as *mut c_void, end - start, prot) == 0 }
}

fn map_at(at: usize) -> Option<usize> {
    let prot = libc::PROT_READ | libc::PROT_EXEC;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
    // SAFETY: MAP_FIXED_NOREPLACE never replaces a mapping in use.
    let p = unsafe { libc::mmap(at as *mut c_void, PAGE, prot, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return None;
    }
    if p as usize != at {
        // SAFETY: the page this call just mapped, unused.
        unsafe { libc::munmap(p, PAGE) };
        return None;
    }
    Some(at)
}

impl Platform for Host {
    fn cpu_id(&self) -> usize {
        0
    }
    fn online_cpus(&self) -> usize {
        1
    }
    fn copy_nofault(&self, dst: &mut [u8], src: usize) -> bool {
        // SAFETY: the engine reads probed text and the stack, mapped here.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        true
    }
    fn write_nofault(&self, dst: usize, src: &[u8]) -> bool {
        // SAFETY: the engine writes text made writable by
        // `set_text_writable`, or the probed code's stack.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        true
    }
    fn set_text_writable(&self, addr: usize, len: usize, writable: bool) -> bool {
        let rx = libc::PROT_READ | libc::PROT_EXEC;
        protect(addr, len, if writable { rx | libc::PROT_WRITE } else { rx })
    }
    fn flush_icache(&self, _: usize, _: usize) {}
    fn alloc_exec_page(&self, near: usize) -> Option<usize> {
        let base = near & !(PAGE - 1);
        (1..16384usize).find_map(|i| {
            let d = i * 64 * 1024;
            base.checked_sub(d)
                .and_then(map_at)
                .or_else(|| map_at(base + d))
        })
    }
    fn free_exec_page(&self, page: usize) {
        // SAFETY: a page of `alloc_exec_page`, given back after a grace period.
        unsafe { libc::munmap(page as *mut c_void, PAGE) };
    }
    fn fixup(&self, pc: usize) -> Option<usize> {
        testfns::fixup_for(pc)
    }
}

static HOST: Host = Host;

/// `gregs` index of each frame field, in the CPU crate's order.
const GREGS: [c_int; 15] = [
    libc::REG_RAX,
    libc::REG_RBX,
    libc::REG_RCX,
    libc::REG_RDX,
    libc::REG_RSI,
    libc::REG_RDI,
    libc::REG_RBP,
    libc::REG_R8,
    libc::REG_R9,
    libc::REG_R10,
    libc::REG_R11,
    libc::REG_R12,
    libc::REG_R13,
    libc::REG_R14,
    libc::REG_R15,
];

fn fields(tf: &mut TrapFrame) -> [&mut u64; 15] {
    let TrapFrame {
        rax,
        rbx,
        rcx,
        rdx,
        rsi,
        rdi,
        rbp,
        r8,
        r9,
        r10,
        r11,
        r12,
        r13,
        r14,
        r15,
        ..
    } = tf;
    [
        rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15,
    ]
}

static TRAPS: AtomicU64 = AtomicU64::new(0);
/// The test plays a user task: traps come from ring 3.
static USER: AtomicBool = AtomicBool::new(false);
/// After each user trap: whether a signal could be delivered.
static DELIVERABLE: [AtomicBool; 8] = [const { AtomicBool::new(false) }; 8];
static SIGNALS_SEEN: AtomicUsize = AtomicUsize::new(0);
static FAULTS: AtomicU64 = AtomicU64::new(0);

/// The "CPU": a trap frame from the signal's context, the kernel's
/// dispatcher, the frame back into the context.
fn enter(ctx: *mut c_void, kind: TrapKind) {
    // SAFETY: `ctx` is this SA_SIGINFO handler's ucontext, not otherwise
    // referenced while the handler runs.
    let uc = unsafe { &mut *(ctx as *mut ucontext_t) };
    let g = &mut uc.uc_mcontext.gregs;
    let mut tf = TrapFrame {
        vector: 3,
        rip: g[libc::REG_RIP as usize] as u64,
        // Ring 0 (the probed code is the kernel's), or ring 3 while the
        // test plays a user task.
        cs: if USER.load(Ordering::Relaxed) {
            0x33
        } else {
            0x10
        },
        rflags: g[libc::REG_EFL as usize] as u64,
        rsp: g[libc::REG_RSP as usize] as u64,
        ss: 0x18,
        ..TrapFrame::default()
    };
    for (f, &r) in fields(&mut tf).into_iter().zip(&GREGS) {
        *f = g[r as usize] as u64;
    }
    let d = dispatch(&mut tf, kind);
    if d != Disposition::Resume {
        eprintln!("kernel-glue test: {kind:?} at {:#x}: {d:?}", tf.rip);
        std::process::abort();
    }
    g[libc::REG_RIP as usize] = tf.rip as greg_t;
    g[libc::REG_EFL as usize] = tf.rflags as greg_t;
    g[libc::REG_RSP as usize] = tf.rsp as greg_t;
    for (f, &r) in fields(&mut tf).into_iter().zip(&GREGS) {
        g[r as usize] = *f as greg_t;
    }
}

extern "C" fn on_trap(_: c_int, _: *mut siginfo_t, ctx: *mut c_void) {
    TRAPS.fetch_add(1, Ordering::Relaxed);
    enter(ctx, TrapKind::Breakpoint);
    if USER.load(Ordering::Relaxed) {
        // A signal sent to the task now: may the kernel deliver it on the
        // way out of this trap?
        let now = task::current().is_some_and(|t| task::signal(&t, 10));
        let i = SIGNALS_SEEN.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = DELIVERABLE.get(i) {
            slot.store(now, Ordering::Relaxed);
        }
    }
}

extern "C" fn on_segv(_: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    FAULTS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the kernel filled `info` for this SIGSEGV.
    let addr = unsafe { (*info).si_addr() } as usize;
    enter(ctx, TrapKind::PageFault { addr, write: false });
}

fn install(sig: c_int, handler: extern "C" fn(c_int, *mut siginfo_t, *mut c_void)) {
    // SAFETY: a zeroed sigaction is valid; the handler is SA_SIGINFO.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(sig, &sa, core::ptr::null_mut()), 0);
    }
}

fn boot() {
    let mut syms: Vec<(usize, &'static str)> =
        testfns::functions().map(|f| (f.start, f.name)).collect();
    syms.sort();
    glue_kernel::boot(&HOST, Vec::leak(syms));
    install(libc::SIGTRAP, on_trap);
    install(libc::SIGSEGV, on_segv);
    task::switch_to(Some(Task::new(1, 0)));
}

fn alu(a: u64, b: u64) -> u64 {
    (((a + b) ^ 0x55) * 3 - b) << 2
}

fn call_fn(name: &str, a: u64, b: u64) -> u64 {
    // SAFETY: the harness's test functions follow the System V ABI.
    unsafe { call(testfns::func(name).start, a, b, 0) }.ret
}

fn attr(kind: PerfKind, symbol: &str, addr: usize) -> PerfAttr<'_> {
    PerfAttr {
        kind,
        symbol,
        addr,
        asid: 0,
    }
}

/// A probe event of the user space 500.
fn user_attr(kind: PerfKind, addr: usize) -> PerfAttr<'static> {
    PerfAttr {
        kind,
        symbol: "",
        addr,
        asid: 500,
    }
}

/// Open a probe event and attach `prog` to it.
fn open_with(a: &PerfAttr<'_>, prog: Program) -> usize {
    let fd = perf::open(a).unwrap();
    perf::set_bpf(fd, prog).unwrap();
    fd
}

fn listing() -> String {
    let mut s = String::new();
    probe::show_list(&mut s).unwrap();
    s
}

fn first_byte(name: &str) -> u8 {
    // SAFETY: the start of a test function, mapped readable.
    unsafe { testfns::code_bytes(testfns::func(name).start, 1)[0] }
}

#[test]
fn the_model_kernel_on_real_traps() {
    boot();
    errors_map_to_linux_errnos();
    a_program_attached_to_a_live_kprobe_reads_arguments();
    a_kretprobe_program_changes_the_return_value();
    a_fault_in_a_slot_reaches_the_kernels_exception_table();
    uprobes_and_uretprobes_on_real_user_traps();
    uprobes_break_copy_on_write_and_fork_drops_breakpoints();
}

fn errors_map_to_linux_errnos() {
    let e = |a: PerfAttr<'_>| perf::open(&a).err();
    assert_eq!(
        e(attr(PerfKind::Kprobe, "no_such_function", 0)),
        Some(-libc::ENOENT)
    );
    assert_eq!(e(attr(PerfKind::Kprobe, "tf_alu", 1)), Some(-libc::EILSEQ));
    // A return probe off a function's entry.
    assert_eq!(
        e(attr(PerfKind::Kretprobe, "tf_alu", 3)),
        Some(-libc::EINVAL)
    );
    assert_eq!(perf::set_bpf(99, Box::new(|_| 0)).err(), Some(-libc::EBADF));
    assert_eq!(listing(), "");
}

static ARGS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static RUNS: AtomicUsize = AtomicUsize::new(0);

fn a_program_attached_to_a_live_kprobe_reads_arguments() {
    let fd = perf::open(&attr(PerfKind::Kprobe, "tf_alu", 0)).unwrap();
    let traps = TRAPS.load(Ordering::Relaxed);
    assert_eq!(call_fn("tf_alu", 5, 3), alu(5, 3));
    assert!(TRAPS.load(Ordering::Relaxed) > traps, "the int3 trapped");
    assert!(
        listing().contains(" k kernel hits=1 missed=0 attached=0"),
        "{}",
        listing()
    );

    // Attached while the probe is live.
    let prog: Program = Box::new(|pt| {
        ARGS[0].store(pt.rdi, Ordering::Relaxed);
        ARGS[1].store(pt.rsi, Ordering::Relaxed);
        // A capture of the CPU crate's frame: what `Registers` does not
        // expose reads 0.
        CS.store(pt.cs, Ordering::Relaxed);
        RUNS.fetch_add(1, Ordering::Relaxed);
        0
    });
    perf::set_bpf(fd, prog).unwrap();
    assert_eq!(call_fn("tf_alu", 11, 7), alu(11, 7));
    assert_eq!(
        (
            ARGS[0].load(Ordering::Relaxed),
            ARGS[1].load(Ordering::Relaxed)
        ),
        (11, 7)
    );
    assert_eq!(RUNS.load(Ordering::Relaxed), 1);
    assert_eq!(
        CS.load(Ordering::Relaxed),
        0,
        "a kprobe's program runs on a copy"
    );
    assert!(
        listing().contains(" k kernel hits=2 missed=0 attached=1"),
        "{}",
        listing()
    );

    // Detached by dropping its attachment: the probe stays, the program
    // no longer runs.
    perf::clear_bpf(fd).unwrap();
    assert_eq!(call_fn("tf_alu", 1, 2), alu(1, 2));
    assert_eq!(RUNS.load(Ordering::Relaxed), 1);
    assert!(
        listing().contains(" k kernel hits=3 missed=0 attached=0"),
        "{}",
        listing()
    );

    // Closing the event unregisters the probe: the text is as before.
    perf::close(fd).unwrap();
    assert_eq!(listing(), "");
    assert_ne!(first_byte("tf_alu"), 0xcc);
    assert_eq!(call_fn("tf_alu", 1, 2), alu(1, 2));
}

static SEEN_RET: AtomicU64 = AtomicU64::new(0);
static CS: AtomicU64 = AtomicU64::new(0);
static ORIG_RAX: AtomicU64 = AtomicU64::new(0);

fn a_kretprobe_program_changes_the_return_value() {
    let fd = perf::open(&attr(PerfKind::Kretprobe, "tf_alu", 0)).unwrap();
    assert_eq!(call_fn("tf_alu", 2, 2), alu(2, 2));
    let prog: Program = Box::new(|pt| {
        // The return trampoline's own frame (zero copy): it saved `cs` and
        // marked `orig_rax` "not a syscall", which a capture cannot show.
        CS.store(pt.cs, Ordering::Relaxed);
        ORIG_RAX.store(pt.orig_rax, Ordering::Relaxed);
        SEEN_RET.store(pt.rax, Ordering::Relaxed);
        pt.rax = 4242;
        0
    });
    perf::set_bpf(fd, prog).unwrap();
    assert_eq!(call_fn("tf_alu", 3, 4), 4242);
    assert_eq!(SEEN_RET.load(Ordering::Relaxed), alu(3, 4));
    assert_ne!(
        CS.load(Ordering::Relaxed),
        0,
        "no copy on the kretprobe path"
    );
    assert_eq!(ORIG_RAX.load(Ordering::Relaxed), u64::MAX);
    assert!(
        listing().contains(" r kernel hits=2 missed=0 attached=1"),
        "{}",
        listing()
    );
    perf::clear_bpf(fd).unwrap();
    assert_eq!(call_fn("tf_alu", 3, 4), alu(3, 4));
    perf::close(fd).unwrap();
    assert_eq!(listing(), "");
}

static LOADS: AtomicUsize = AtomicUsize::new(0);

fn a_fault_in_a_slot_reaches_the_kernels_exception_table() {
    let count: Program = Box::new(|_| LOADS.fetch_add(1, Ordering::Relaxed) as u64);
    let fd = open_with(&attr(PerfKind::Kprobe, "tf_load", 0), count);
    let x = 0x1234_5678u64;
    assert_eq!(call_fn("tf_load", &x as *const u64 as u64, 0), x);
    let faults = FAULTS.load(Ordering::Relaxed);
    // The copied load faults in its slot: the glue's fault hook puts the
    // pc back at the probe, and the kernel's exception table answers.
    assert_eq!(call_fn("tf_load", 8, 0), (-14i64) as u64);
    assert_eq!(FAULTS.load(Ordering::Relaxed), faults + 1);
    assert_eq!(LOADS.load(Ordering::Relaxed), 2);
    perf::close(fd).unwrap();
    assert_eq!(call_fn("tf_load", 8, 0), (-14i64) as u64);
}

fn uprobes_and_uretprobes_on_real_user_traps() {
    // A user task whose space is this process (the host kernel breaks
    // copy-on-write of its text pages when the glue writes a breakpoint).
    AddrSpace::new_direct(500);
    let user = Task::new(2, 500);
    task::switch_to(Some(user.clone()));
    USER.store(true, Ordering::Relaxed);

    let add = testfns::point("alu_add").addr();
    let up = open_with(
        &user_attr(PerfKind::Uprobe, add),
        Box::new(|pt| {
            ARGS[1].store(pt.rsi, Ordering::Relaxed);
            CS.store(pt.cs, Ordering::Relaxed);
            0
        }),
    );
    let traps = TRAPS.load(Ordering::Relaxed);
    SIGNALS_SEEN.store(0, Ordering::Relaxed);
    assert_eq!(call_fn("tf_alu", 20, 22), alu(20, 22));
    // The hit, then the end of the out-of-line step: a signal sent between
    // them is held back (the step is parked in the task), then deliverable.
    assert_eq!(TRAPS.load(Ordering::Relaxed) - traps, 2);
    assert_eq!(SIGNALS_SEEN.load(Ordering::Relaxed), 2);
    let seen: Vec<bool> = DELIVERABLE[..2]
        .iter()
        .map(|d| d.load(Ordering::Relaxed))
        .collect();
    assert_eq!(seen, [false, true]);
    assert_eq!(ARGS[1].load(Ordering::Relaxed), 22);
    assert_eq!(
        CS.load(Ordering::Relaxed),
        0,
        "a uprobe's program runs on a copy"
    );

    let start = testfns::func("tf_alu").start;
    let uret = open_with(
        &user_attr(PerfKind::Uretprobe, start),
        Box::new(|pt| {
            SEEN_RET.store(pt.rax, Ordering::Relaxed);
            CS.store(1 + pt.cs, Ordering::Relaxed);
            pt.rax = 77;
            0
        }),
    );
    assert_eq!(call_fn("tf_alu", 1, 1), 77);
    assert_eq!(SEEN_RET.load(Ordering::Relaxed), alu(1, 1));
    // The user return came back through a breakpoint: the CPU crate's
    // frame, captured.
    assert_eq!(CS.load(Ordering::Relaxed), 1);
    let l = listing();
    assert!(l.contains(" u space=500 hits=2 missed=0 attached=1"), "{l}");
    assert!(
        l.contains(" ur space=500 hits=1 missed=0 attached=1"),
        "{l}"
    );

    perf::close(up).unwrap();
    perf::close(uret).unwrap();
    USER.store(false, Ordering::Relaxed);
    task::switch_to(Some(Task::new(1, 0)));
    task::exit(user, true);
    assert!(mm::space(500).is_none());
    assert_eq!(listing(), "");
    assert_ne!(first_byte("tf_alu"), 0xcc);
    assert_eq!(call_fn("tf_alu", 1, 1), alu(1, 1));
}

fn uprobes_break_copy_on_write_and_fork_drops_breakpoints() {
    const TEXT: usize = 0x40_0000;
    let code = [0x48, 0x89, 0xf8, 0xc3]; // mov rax, rdi; ret
    let parent = AddrSpace::new(100);
    parent.map(TEXT, &code, false);
    let sibling = parent.fork(101); // shares the text page
    assert!(parent.shares_page(&sibling, TEXT));
    let byte = |s: &Arc<AddrSpace>| {
        let mut b = [0u8; 1];
        s.read(TEXT, &mut b).unwrap();
        b[0]
    };
    let a = PerfAttr {
        kind: PerfKind::Uprobe,
        symbol: "",
        addr: TEXT,
        asid: 100,
    };
    let fd = perf::open(&a).unwrap();
    assert_eq!(
        (byte(&parent), byte(&sibling)),
        (0xcc, 0x48),
        "copy-on-write broken"
    );
    assert!(!parent.shares_page(&sibling, TEXT));
    assert!(listing().contains(" u space=100 hits="), "{}", listing());

    let task = Task::new(7, 100);
    assert!(task::signal(&task, 10), "no step parked: no deferral");
    let child = task::fork(&task, 8, 102).unwrap();
    assert_eq!(
        byte(&mm::space(102).unwrap()),
        0x48,
        "the child has no breakpoint"
    );
    assert_eq!(byte(&parent), 0xcc);

    // exec: the old space and its probe go.
    task::exec(&task, 103, true);
    assert_eq!(listing(), "");
    assert!(mm::space(100).is_none());
    perf::close(fd).unwrap();
    task::exit(child, true);
    assert_eq!(listing(), "");
}
