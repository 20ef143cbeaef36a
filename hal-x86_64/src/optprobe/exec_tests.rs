//! Real execution on this host: copies of small functions in an RWX
//! mapping, a detour built next to them, the `jmp rel32` written over each
//! probe, and a test hook that records and changes registers. The detour
//! runs in user mode here, so it is built without `mask_interrupts` (`cli`
//! would fault); the hook is process-wide, so it dispatches to per-test
//! handlers by cookie.

use super::detour::DETOUR_LEN;
use super::entry::entry_address;
use crate::X86_64;
use core::arch::{asm, global_asm};
use probe_hal::opthook::{set_opt_hook, OptHook};
use probe_hal::{Arch, DataAccess, ExecMode, MemoryFault, Registers};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};

global_asm!(
    ".pushsection .text.hal_x86_64_opt_victims, \"ax\", @progbits",
    ".p2align 4",
    ".globl hal_x86_64_opt_victims",
    "hal_x86_64_opt_victims:",
    // basic(rdi, rsi) = 2 * rdi + rsi + 7; probed at its entry (7-byte
    // region: push rbp; mov rbp, rsp; mov rax, rdi).
    ".globl hal_x86_64_opt_basic",
    "hal_x86_64_opt_basic:",
    "push rbp",
    "mov rbp, rsp",
    "mov rax, rdi",
    "add rax, rdi",
    "add rax, rsi",
    "add rax, 7",
    "pop rbp",
    "ret",
    // redzone(rdi, rsi) = rdi + rsi + 0x55 through the red zone; probed
    // after the stores.
    ".globl hal_x86_64_opt_redzone",
    "hal_x86_64_opt_redzone:",
    "mov [rsp - 8], rdi",
    "mov [rsp - 64], rsi",
    "mov qword ptr [rsp - 128], 0x55",
    ".globl hal_x86_64_opt_redzone_probe",
    "hal_x86_64_opt_redzone_probe:",
    "mov rax, [rsp - 8]",
    "add rax, [rsp - 64]",
    "add rax, [rsp - 128]",
    "ret",
    // flags(rdi, rsi) = (rdi < rsi) | (rdi == rsi) << 1, with the compare
    // before the probe and the setcc after it.
    ".globl hal_x86_64_opt_flags",
    "hal_x86_64_opt_flags:",
    "cmp rdi, rsi",
    ".globl hal_x86_64_opt_flags_probe",
    "hal_x86_64_opt_flags_probe:",
    "mov rcx, rdi",
    "mov rdx, rsi",
    "setb al",
    "setz dl",
    "movzx eax, al",
    "movzx edx, dl",
    "lea eax, [rax + rdx * 2]",
    "ret",
    // df() = rflags after the region, with DF set before the probe.
    ".globl hal_x86_64_opt_df",
    "hal_x86_64_opt_df:",
    "std",
    ".globl hal_x86_64_opt_df_probe",
    "hal_x86_64_opt_df_probe:",
    "mov rcx, rdi",
    "mov rdx, rsi",
    "pushfq",
    "pop rax",
    "cld",
    "ret",
    // riprel(rdi) = [data] + rdi; the region is a rip-relative load.
    ".globl hal_x86_64_opt_riprel",
    "hal_x86_64_opt_riprel:",
    "mov rax, [rip + 2f]",
    "add rax, rdi",
    "ret",
    // The function ends here; its data follows.
    ".globl hal_x86_64_opt_riprel_end",
    "hal_x86_64_opt_riprel_end:",
    ".p2align 3",
    "2:",
    ".quad 0x1234500",
    // alt(rdi) = 1; alt_target(rdi) = rdi + 100.
    ".globl hal_x86_64_opt_alt",
    "hal_x86_64_opt_alt:",
    "mov eax, 1",
    "ret",
    ".globl hal_x86_64_opt_alt_target",
    "hal_x86_64_opt_alt_target:",
    "lea rax, [rdi + 100]",
    "ret",
    // regs(rdi, rsi) = rdi + rsi, touching nothing else.
    ".globl hal_x86_64_opt_regs",
    "hal_x86_64_opt_regs:",
    "lea rax, [rdi + rsi]",
    "nop dword ptr [rax]",
    "ret",
    ".globl hal_x86_64_opt_victims_end",
    "hal_x86_64_opt_victims_end:",
    ".popsection",
);

extern "C" {
    fn hal_x86_64_opt_victims();
    fn hal_x86_64_opt_basic();
    fn hal_x86_64_opt_redzone();
    fn hal_x86_64_opt_redzone_probe();
    fn hal_x86_64_opt_flags();
    fn hal_x86_64_opt_flags_probe();
    fn hal_x86_64_opt_df();
    fn hal_x86_64_opt_df_probe();
    fn hal_x86_64_opt_riprel();
    fn hal_x86_64_opt_riprel_end();
    fn hal_x86_64_opt_alt();
    fn hal_x86_64_opt_alt_target();
    fn hal_x86_64_opt_regs();
    fn hal_x86_64_opt_victims_end();
}

type Victim = unsafe extern "C" fn();

fn sym(f: Victim) -> usize {
    f as usize
}

// ---- the process-wide hook, dispatching by cookie ----

type Handler = Box<dyn FnMut(&mut dyn Registers) -> bool + Send>;
static HANDLERS: Mutex<BTreeMap<usize, Handler>> = Mutex::new(BTreeMap::new());

struct TestHook;
impl OptHook for TestHook {
    unsafe fn on_optimized_hit(&self, cookie: usize, regs: &mut dyn Registers) -> bool {
        let mut h = HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
        match h.get_mut(&cookie) {
            Some(f) => f(regs),
            None => false,
        }
    }
}
static HOOK: TestHook = TestHook;

fn on(cookie: usize, f: impl FnMut(&mut dyn Registers) -> bool + Send + 'static) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| set_opt_hook(&HOOK).unwrap());
    HANDLERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(cookie, Box::new(f));
}

// ---- memory ----

const MAP_LEN: usize = 1 << 16;

fn syscall6(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: a Linux x86_64 system call (mmap or munmap here); the kernel
    // clobbers rcx and r11 only.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a[0], in("rsi") a[1],
             in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// An RWX mapping holding a copy of the victims and the detours.
struct Sandbox {
    base: usize,
    next_detour: usize,
}

impl Sandbox {
    /// Map at `hint` exactly (MAP_FIXED_NOREPLACE), or anywhere.
    fn try_new(hint: Option<usize>) -> Option<Sandbox> {
        const PROT_RWX: usize = 7;
        const MAP_PRIVATE_ANON: usize = 0x02 | 0x20;
        const MAP_FIXED_NOREPLACE: usize = 0x10_0000;
        let flags = MAP_PRIVATE_ANON | hint.map_or(0, |_| MAP_FIXED_NOREPLACE);
        let r = syscall6(
            9,
            [hint.unwrap_or(0), MAP_LEN, PROT_RWX, flags, usize::MAX, 0],
        );
        if r < 0 || hint.is_some_and(|h| h != r as usize) {
            return None;
        }
        let base = r as usize;
        let start = sym(hal_x86_64_opt_victims);
        let len = sym(hal_x86_64_opt_victims_end) - start;
        // SAFETY: the mapping is MAP_LEN bytes, writable and ours; the
        // victims are `len` bytes of readable text.
        unsafe { core::ptr::copy_nonoverlapping(start as *const u8, base as *mut u8, len) };
        Some(Sandbox {
            base,
            next_detour: base + 0x8000,
        })
    }

    fn new() -> Sandbox {
        Sandbox::try_new(None).expect("an RWX mapping")
    }

    /// The copy of victim label `f`.
    fn addr(&self, f: Victim) -> usize {
        self.base + (sym(f) - sym(hal_x86_64_opt_victims))
    }

    /// Optimise the probe at (the copy of) `probe` in the function
    /// `[func, end)`: analyze, build the detour, write the jump.
    fn optimize(&mut self, func: Victim, end: Victim, probe: Victim, cookie: usize) -> usize {
        let (func, end, probe) = (self.addr(func), self.addr(end), self.addr(probe));
        let region =
            X86_64::analyze_optimizable(probe, func..end, self, &|_| false, ExecMode::Kernel)
                .unwrap_or_else(|e| panic!("{probe:#x}: {e}"));
        let detour = self.next_detour;
        self.next_detour += DETOUR_LEN;
        let mut code = [0u8; DETOUR_LEN];
        let n = X86_64::build_detour(&region, detour, cookie, false, &mut code).unwrap();
        let mut jump = [0u8; 5];
        assert_eq!(X86_64::optimized_jump(probe, detour, &mut jump), Ok(5));
        // SAFETY: both ranges lie in our RWX mapping, and no thread runs
        // these copies yet.
        unsafe {
            core::ptr::copy_nonoverlapping(code.as_ptr(), detour as *mut u8, n);
            core::ptr::copy_nonoverlapping(jump.as_ptr(), probe as *mut u8, 5);
        }
        detour
    }

    /// The copy of `f` as a function of two arguments.
    fn func(&self, f: Victim) -> extern "C" fn(usize, usize) -> usize {
        // SAFETY: every victim follows the C ABI with at most two integer
        // arguments and an integer result.
        unsafe { core::mem::transmute::<usize, extern "C" fn(usize, usize) -> usize>(self.addr(f)) }
    }
}

impl DataAccess for Sandbox {
    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        if addr < self.base || addr + buf.len() > self.base + MAP_LEN {
            return Err(MemoryFault { addr });
        }
        // SAFETY: within our mapping, checked above.
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
    fn write(&self, addr: usize, _: &[u8]) -> Result<(), MemoryFault> {
        Err(MemoryFault { addr })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        syscall6(11, [self.base, MAP_LEN, 0, 0, 0, 0]);
    }
}

/// What a handler saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Seen {
    pc: usize,
    sp: usize,
    flags: usize,
    gpr: [usize; 16],
}

fn seen(r: &dyn Registers) -> Seen {
    let mut s = Seen {
        pc: r.pc(),
        sp: r.sp(),
        flags: r.flags(),
        ..Seen::default()
    };
    for n in 0..16 {
        s.gpr[n] = r.gpr(n);
    }
    s
}

fn recorder(cookie: usize) -> Arc<Mutex<Vec<Seen>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    on(cookie, move |r| {
        l.lock().unwrap().push(seen(r));
        false
    });
    log
}

const CF: usize = 1;
const ZF: usize = 1 << 6;
const DF: usize = 1 << 10;

#[test]
fn basic_function_entry_many_calls_and_threads() {
    let mut sb = Sandbox::new();
    let log = recorder(101);
    let f = sb.func(hal_x86_64_opt_basic);
    assert_eq!(f(5, 3), 20, "before optimising");
    sb.optimize(
        hal_x86_64_opt_basic,
        hal_x86_64_opt_redzone,
        hal_x86_64_opt_basic,
        101,
    );
    // SAFETY: reading our own mapping.
    let first = unsafe { *(sb.addr(hal_x86_64_opt_basic) as *const u8) };
    assert_eq!(first, 0xe9);
    for i in 0..1000 {
        assert_eq!(f(i, 2 * i), 4 * i + 7);
    }
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1000);
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.pc, sb.addr(hal_x86_64_opt_basic));
        assert_eq!((s.gpr[7], s.gpr[6]), (i, 2 * i), "rdi, rsi");
        assert_eq!(s.gpr[4], s.sp);
        assert_eq!(s.sp % 16, 8, "at a function entry rsp is 8 mod 16");
    }
    // Four threads at once: the detour keeps everything on each thread's
    // stack.
    log.lock().unwrap().clear();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..500 {
                    assert_eq!(f(t * 1000 + i, 1), 2 * (t * 1000 + i) + 8);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(log.lock().unwrap().len(), 2000);
}

#[test]
fn an_unknown_cookie_runs_the_region_unchanged() {
    let mut sb = Sandbox::new();
    sb.optimize(
        hal_x86_64_opt_basic,
        hal_x86_64_opt_redzone,
        hal_x86_64_opt_basic,
        9999,
    );
    let f = sb.func(hal_x86_64_opt_basic);
    assert_eq!(f(10, 1), 28);
}

#[test]
fn the_red_zone_survives_and_the_handler_sees_the_probed_rsp() {
    let mut sb = Sandbox::new();
    // The handler scribbles over its own stack, far below the frame.
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    on(102, move |r| {
        let junk = std::hint::black_box([0xa5u8; 4096]);
        std::hint::black_box(&junk);
        // The red zone as the probed code left it, read through rsp.
        let sp = r.sp();
        // SAFETY: the probed function's red zone, on this thread's stack.
        let words = unsafe {
            [
                *((sp - 8) as *const usize),
                *((sp - 64) as *const usize),
                *((sp - 128) as *const usize),
            ]
        };
        l.lock().unwrap().push((seen(r), words));
        false
    });
    sb.optimize(
        hal_x86_64_opt_redzone,
        hal_x86_64_opt_flags,
        hal_x86_64_opt_redzone_probe,
        102,
    );
    let f = sb.func(hal_x86_64_opt_redzone);
    for i in 0..100 {
        assert_eq!(f(i, 1000 + i), 2 * i + 1000 + 0x55);
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 100);
    for (i, (s, words)) in log.iter().enumerate() {
        assert_eq!(s.pc, sb.addr(hal_x86_64_opt_redzone_probe));
        assert_eq!(*words, [i, 1000 + i, 0x55]);
    }
}

#[test]
fn flags_are_saved_restored_and_a_handler_may_change_them() {
    let mut sb = Sandbox::new();
    let change = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (l, c) = (log.clone(), change.clone());
    on(103, move |r| {
        l.lock().unwrap().push(seen(r));
        let set = c.load(Ordering::SeqCst);
        if set != 0 {
            r.set_flags((r.flags() & !(CF | ZF)) | set);
        }
        false
    });
    sb.optimize(
        hal_x86_64_opt_flags,
        hal_x86_64_opt_df,
        hal_x86_64_opt_flags_probe,
        103,
    );
    let f = sb.func(hal_x86_64_opt_flags);
    assert_eq!(f(1, 2), 1, "below");
    assert_eq!(f(2, 2), 2, "equal");
    assert_eq!(f(3, 2), 0, "above");
    {
        let log = log.lock().unwrap();
        let cf_zf: Vec<usize> = log.iter().map(|s| s.flags & (CF | ZF)).collect();
        assert_eq!(cf_zf, [CF, ZF, 0], "the handler sees the compare's flags");
        assert!(
            log.iter().all(|s| s.flags & (1 << 9) != 0),
            "IF as user code has it"
        );
    }
    // The handler's flags are the ones the code continues with.
    change.store(ZF, Ordering::SeqCst);
    assert_eq!(f(1, 2), 2);
    change.store(CF, Ordering::SeqCst);
    assert_eq!(f(2, 2), 1);
}

#[test]
fn the_direction_flag_is_kept_for_the_code_and_cleared_for_the_handler() {
    let mut sb = Sandbox::new();
    let handler_df = Arc::new(AtomicUsize::new(usize::MAX));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (l, hd) = (log.clone(), handler_df.clone());
    on(104, move |r| {
        let flags: usize;
        // SAFETY: reads rflags.
        unsafe { asm!("pushfq", "pop {}", out(reg) flags) };
        hd.store(flags & DF, Ordering::SeqCst);
        l.lock().unwrap().push(seen(r));
        false
    });
    sb.optimize(
        hal_x86_64_opt_df,
        hal_x86_64_opt_riprel,
        hal_x86_64_opt_df_probe,
        104,
    );
    let f = sb.func(hal_x86_64_opt_df);
    let after = f(0, 0);
    assert_ne!(after & DF, 0, "DF restored for the displaced code");
    assert_eq!(
        handler_df.load(Ordering::SeqCst),
        0,
        "cld before the handler"
    );
    assert_ne!(log.lock().unwrap()[0].flags & DF, 0, "the frame has DF");
}

#[test]
fn a_rip_relative_region_is_relocated() {
    let mut sb = Sandbox::new();
    let log = recorder(105);
    sb.optimize(
        hal_x86_64_opt_riprel,
        hal_x86_64_opt_riprel_end,
        hal_x86_64_opt_riprel,
        105,
    );
    let f = sb.func(hal_x86_64_opt_riprel);
    assert_eq!(f(0x11, 0), 0x1234511);
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[test]
fn path_b_resumes_at_the_handlers_rip() {
    let mut sb = Sandbox::new();
    let target = sb.addr(hal_x86_64_opt_alt_target);
    let mode = Arc::new(AtomicUsize::new(0));
    let m = mode.clone();
    on(106, move |r| match m.load(Ordering::SeqCst) {
        // Go elsewhere, and change an argument on the way.
        1 => {
            r.set_pc(target);
            r.set_gpr(7, r.gpr(7) * 2);
            true
        }
        // Return from the function at its entry with 77: rip = [rsp],
        // rsp + 8 (a raised rsp is honoured).
        2 => {
            // SAFETY: at the entry of a function, rsp points at its return
            // address on this thread's stack.
            let ret = unsafe { *(r.sp() as *const usize) };
            r.set_pc(ret);
            r.set_sp(r.sp() + 8);
            r.set_return_value(77);
            true
        }
        // A lowered rsp is ignored: resume at target with the original rsp.
        3 => {
            r.set_pc(target);
            r.set_sp(r.sp() - 64);
            true
        }
        // Says true without changing the pc: the detour jumps back to the
        // probe address, which jumps to the detour again; the second time
        // it runs the region.
        4 => {
            m.store(0, Ordering::SeqCst);
            true
        }
        _ => false,
    });
    sb.optimize(
        hal_x86_64_opt_alt,
        hal_x86_64_opt_alt_target,
        hal_x86_64_opt_alt,
        106,
    );
    let f = sb.func(hal_x86_64_opt_alt);
    assert_eq!(f(5, 0), 1, "path (a)");
    mode.store(1, Ordering::SeqCst);
    for i in 0..100 {
        assert_eq!(f(i, 0), 2 * i + 100, "path (b) at the handler's rip");
    }
    mode.store(2, Ordering::SeqCst);
    for _ in 0..100 {
        assert_eq!(f(5, 0), 77, "path (b) with a raised rsp");
    }
    mode.store(3, Ordering::SeqCst);
    for i in 0..100 {
        assert_eq!(f(i, 0), i + 100, "a lowered rsp is ignored");
    }
    mode.store(4, Ordering::SeqCst);
    assert_eq!(f(5, 0), 1);
    assert_eq!(mode.load(Ordering::SeqCst), 0);
}

static CALL_SP: AtomicUsize = AtomicUsize::new(0);
static OUT_RBX: AtomicUsize = AtomicUsize::new(0);
static OUT_RBP: AtomicUsize = AtomicUsize::new(0);

/// Call `f` with every general register set to a known value; returns
/// rax, the other registers after the call, and rsp before it.
fn call_with_registers(f: usize) -> (usize, [usize; 16]) {
    let rax: usize;
    let rcx: usize;
    let rdx: usize;
    let rsi: usize;
    let rdi: usize;
    let r8: usize;
    let r9: usize;
    let r10: usize;
    let r11: usize;
    let r12: usize;
    let r13: usize;
    let r14: usize;
    let r15: usize;
    // SAFETY: `f` follows the C ABI but (like every victim) touches no
    // register but rax; rbx and rbp are saved and restored around the call
    // by the asm itself, and the statics written are atomics' storage.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "mov rbx, 0x3333",
            "mov rbp, 0x5555",
            "mov qword ptr [rip + {sp}], rsp",
            "call rax",
            "mov qword ptr [rip + {rbx}], rbx",
            "mov qword ptr [rip + {rbp}], rbp",
            "pop rbp",
            "pop rbx",
            sp = sym CALL_SP,
            rbx = sym OUT_RBX,
            rbp = sym OUT_RBP,
            inout("rax") f => rax,
            inout("rcx") 0x1111usize => rcx,
            inout("rdx") 0x2222usize => rdx,
            inout("rsi") 0x6666usize => rsi,
            inout("rdi") 0x7777usize => rdi,
            inout("r8") 0x8888usize => r8,
            inout("r9") 0x9999usize => r9,
            inout("r10") 0x1010usize => r10,
            inout("r11") 0x1111_1111usize => r11,
            inout("r12") 0x1212usize => r12,
            inout("r13") 0x1313usize => r13,
            inout("r14") 0x1414usize => r14,
            inout("r15") 0x1515usize => r15,
        );
    }
    let rbx = OUT_RBX.load(Ordering::SeqCst);
    let rbp = OUT_RBP.load(Ordering::SeqCst);
    let sp = CALL_SP.load(Ordering::SeqCst);
    (
        rax,
        [
            0, rcx, rdx, rbx, sp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
        ],
    )
}

#[test]
fn every_register_reaches_the_handler_and_comes_back() {
    let mut sb = Sandbox::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    on(107, move |r| {
        l.lock().unwrap().push(seen(r));
        // Change a callee-saved register the function does not touch and
        // an argument the region reads.
        r.set_gpr(12, 0xabc);
        r.set_gpr(7, 1000);
        false
    });
    let f = sb.addr(hal_x86_64_opt_regs);
    let (rax, before) = call_with_registers(f);
    assert_eq!(rax, 0x7777 + 0x6666);
    sb.optimize(
        hal_x86_64_opt_regs,
        hal_x86_64_opt_victims_end,
        hal_x86_64_opt_regs,
        107,
    );
    let (rax, after) = call_with_registers(f);
    assert_eq!(
        rax,
        1000 + 0x6666,
        "the handler's rdi was used by the region"
    );
    let mut expected = before;
    expected[12] = 0xabc;
    expected[7] = 1000; // the handler's rdi stays, as any register change
    expected[4] = after[4];
    assert_eq!(after, expected, "every other register as it was");
    let s = log.lock().unwrap()[0];
    assert_eq!(s.pc, f);
    // The call pushed its return address: rsp at the probe is 8 lower.
    assert_eq!(s.sp, after[4] - 8);
    let mut regs = before;
    regs[0] = f; // rax held the function's address at the call
    regs[4] = s.sp;
    assert_eq!(s.gpr, regs, "the handler saw every register");
}

/// A mapping within `rel32` reach of the entry gets `call rel32`, one far
/// away `movabs rax; call rax`; both run.
#[test]
fn near_and_far_entry_calls_both_run() {
    let entry = entry_address().unwrap();
    let page = |a: usize| a & !0xffff;
    let near = (1..64)
        .flat_map(|k| [entry + k * (16 << 20), entry.wrapping_sub(k * (16 << 20))])
        .find_map(|h| Sandbox::try_new(Some(page(h))))
        .expect("a free mapping within 1 GiB of the test binary");
    let far = (1..64)
        .find_map(|k| Sandbox::try_new(Some(page(entry + (k << 36)))))
        .expect("a free mapping 64 GiB away");
    for (mut sb, is_near, cookie) in [(near, true, 108), (far, false, 109)] {
        let log = recorder(cookie);
        let detour = sb.optimize(
            hal_x86_64_opt_basic,
            hal_x86_64_opt_redzone,
            hal_x86_64_opt_basic,
            cookie,
        );
        let reach = crate::slot::rel32(detour + 5, entry).is_some();
        assert_eq!(reach, is_near);
        // SAFETY: reading our own mapping.
        let code = unsafe { core::slice::from_raw_parts(detour as *const u8, DETOUR_LEN) };
        let has_call_rax = code.windows(2).any(|w| w == [0xff, 0xd0]);
        assert_eq!(has_call_rax, !is_near);
        let f = sb.func(hal_x86_64_opt_basic);
        assert_eq!(f(1, 1), 10);
        assert_eq!(log.lock().unwrap().len(), 1);
    }
}

extern "C" {
    static __start_probe_trap_text: u8;
    static __stop_probe_trap_text: u8;
}

/// The entry a detour calls, and the hook dispatch it calls, are in the
/// section the engine refuses probes in.
#[test]
fn the_entry_is_in_the_trap_path_section() {
    // Taking the address of an extern static reads nothing.
    let start = core::ptr::addr_of!(__start_probe_trap_text) as usize;
    let stop = core::ptr::addr_of!(__stop_probe_trap_text) as usize;
    let entry = entry_address().unwrap();
    assert!(
        (start..stop).contains(&entry),
        "{entry:#x} not in {start:#x}..{stop:#x}"
    );
    let dispatch = probe_hal::opthook::dispatch_optimized as *const () as usize;
    assert!((start..stop).contains(&dispatch));
}

/// What the engine's breakpoint path does while the jump is being written:
/// resume at the detour's copy of the region with the registers of the
/// probe address. Here: call that copy as if it were the function.
#[test]
fn the_displaced_copy_runs_the_region_and_continues_after_it() {
    let mut sb = Sandbox::new();
    let log = recorder(110);
    let detour = sb.optimize(
        hal_x86_64_opt_basic,
        hal_x86_64_opt_redzone,
        hal_x86_64_opt_basic,
        110,
    );
    // SAFETY: the copy of the region, then a jump back into the copy of
    // `basic` after it: together the function's body, C ABI included.
    let g = unsafe {
        core::mem::transmute::<usize, extern "C" fn(usize, usize) -> usize>(
            detour + super::detour::displaced_at(detour, entry_address().unwrap()),
        )
    };
    for i in 0..100 {
        assert_eq!(g(i, 3), 2 * i + 10);
    }
    assert!(log.lock().unwrap().is_empty(), "no handler on that path");
    let f = sb.func(hal_x86_64_opt_basic);
    assert_eq!(f(1, 1), 10);
    assert_eq!(log.lock().unwrap().len(), 1);
}
