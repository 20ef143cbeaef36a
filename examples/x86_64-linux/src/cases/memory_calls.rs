//! `call` through memory, simulated on real SIGTRAPs (beyond Linux's
//! kprobes, which refuse it): a GOT-style `call [rip + x]`, a vtable-style
//! `call [rax + 8]`, and a `call [rax]` whose target read faults.
//!
//! Each runs unprobed first and must give the same result and the same
//! return address (seen by the callee) probed, with a pre-handler alone and
//! with a post-handler too, one SIGTRAP per hit (simulated, never stepped).
//!
//! The faulting call is checked in a forked child, because this harness's
//! SIGTRAP entry treats `TrapOutcome::Fault` as fatal: the child installs
//! its own SIGTRAP and SIGSEGV entries that deliver a fault at the call
//! through a fix-up, as a kernel's exception table would. Unprobed, the
//! real #PF is fixed up; probed, the engine's read of the target faults,
//! the breakpoint entry gets `TrapOutcome::Fault` for the bad address with
//! the pc at the probe address, and the same fix-up runs.

use core::arch::global_asm;
use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};

use libc::{c_int, siginfo_t};
use probe_core::{ExecMode, Registers, TrapOutcome};
use probe_hal::Handling;
use probe_hal_x86_64::{Base, Emulation, Op};
use x86_64_linux::call::call;
use x86_64_linux::frame::SignalFrame;
use x86_64_linux::recorder::Recorder;
use x86_64_linux::report::Report;
use x86_64_linux::{ensure, ensure_eq};

use super::{decode, kprobe, CheckResult, Probes};
use crate::{services, signals, ENGINE};

global_asm!(
    r#"
.pushsection .text.x86_64_linux_memory_calls,"ax",@progbits
.p2align 4
// u64 mc_call_rip(_, x) = 2x + 1 through `call [rip + mc_ptr]`.
.globl mc_call_rip, mc_call_rip_site, mc_call_rip_back
mc_call_rip:
mc_call_rip_site:
    call qword ptr [rip + mc_ptr]
mc_call_rip_back:
    ret
.p2align 4
// u64 mc_call_rax8(table, x) = 2x + 1 through `call [rax + 8]` (rax = table).
.globl mc_call_rax8, mc_call_rax8_site, mc_call_rax8_back
mc_call_rax8:
    mov rax, rdi
mc_call_rax8_site:
    call qword ptr [rax + 8]
mc_call_rax8_back:
    ret
.p2align 4
// u64 mc_call_fault(p, x) = (*p)(_, x) through `call [rax]` (rax = p), or
// -14 (EFAULT) through the fix-up when reading *p faults.
.globl mc_call_fault, mc_call_fault_site, mc_call_fault_fixup
mc_call_fault:
    mov rax, rdi
mc_call_fault_site:
    call qword ptr [rax]
    ret
mc_call_fault_fixup:
    mov rax, -14
    ret
.p2align 4
// The callee: rax = 2 * rsi + 1; records the return address it found.
.globl mc_callee
mc_callee:
    mov rcx, [rsp]
    mov [rip + mc_seen_return], rcx
    lea rax, [rsi + rsi + 1]
    ret
.popsection
.pushsection .data.x86_64_linux_memory_calls,"aw",@progbits
.p2align 3
.globl mc_table, mc_seen_return
mc_ptr:
    .quad mc_callee
mc_table:
    .quad 0, mc_callee
mc_seen_return:
    .quad 0
.popsection
"#
);

extern "C" {
    fn mc_call_rip();
    fn mc_call_rip_site();
    fn mc_call_rip_back();
    fn mc_call_rax8();
    fn mc_call_rax8_site();
    fn mc_call_rax8_back();
    fn mc_call_fault();
    fn mc_call_fault_site();
    fn mc_call_fault_fixup();
    fn mc_callee();
    static mc_table: [u64; 2];
    static mut mc_seen_return: u64;
}

const EFAULT: u64 = -14i64 as u64;
/// Unmapped (the first page): reading the call target there faults.
const BAD: u64 = 0x10;

fn at(f: unsafe extern "C" fn()) -> usize {
    f as usize
}

/// Call `f(a, x)`; its result and the return address the callee saw.
fn invoke(f: unsafe extern "C" fn(), a: u64, x: u64) -> (u64, u64) {
    // SAFETY: the functions above follow the System V ABI, take two
    // integer arguments and touch only their stack and `mc_seen_return`.
    unsafe {
        core::ptr::addr_of_mut!(mc_seen_return).write_volatile(0);
        let r = call(at(f), a, x, 0).ret;
        (r, core::ptr::addr_of!(mc_seen_return).read_volatile())
    }
}

/// One simulated `call [mem]`: the decoded form, then unprobed against
/// probed (pre only, then pre+post).
fn simulated_call(
    site: usize,
    back: usize,
    f: unsafe extern "C" fn(),
    a: u64,
    form: fn(&Emulation) -> bool,
) -> CheckResult {
    let d = decode(site)?;
    let e = match (d.handling, d.insn.op()) {
        (Handling::Simulate, Op::Emulate(e)) => e,
        (h, op) => return Err(format!("decoded as {h:?} {op:?}, not simulated")),
    };
    ensure!(form(&e), "decoded as {e:?}");
    let unprobed = [invoke(f, a, 20), invoke(f, a, 7)];
    let want = [(41, back as u64), (15, back as u64)];
    ensure_eq!(unprobed, want, "unprobed (result, return address)");
    for post in [false, true] {
        let what = if post { "pre+post" } else { "pre only" };
        let rec = Recorder::leak();
        let mut probes = Probes::new();
        probes.add("the call", ENGINE.register_kprobe(&kprobe(site, rec, post)))?;
        let traps = signals::traps();
        let probed = [invoke(f, a, 20), invoke(f, a, 7)];
        let traps = signals::traps() - traps;
        probes.clear()?;
        ensure_eq!(probed, unprobed, "{what}: probed against unprobed");
        ensure_eq!(
            (rec.hits(), rec.post_hits()),
            (2, 2 * post as u64),
            "{what}: handler runs"
        );
        ensure_eq!(traps, 2, "{what}: SIGTRAPs (one per hit: simulated)");
    }
    Ok(format!("{e:?}: results and return addresses as unprobed"))
}

// --- the faulting call, in a child -------------------------------------------

/// What the child's SIGTRAP entry saw: the engine's fault address and the
/// pc it left (0: no fault outcome).
static CHILD_FAULT_ADDR: AtomicUsize = AtomicUsize::new(0);
static CHILD_FAULT_PC: AtomicUsize = AtomicUsize::new(0);

/// The child's SIGTRAP entry: the engine first; a simulated instruction's
/// fault at the call goes to its fix-up (the kernel's exception table).
extern "C" fn child_trap(_sig: c_int, _info: *mut siginfo_t, ctx: *mut c_void) {
    // SAFETY: `ctx` is this SA_SIGINFO handler's ucontext, referenced only
    // through this frame.
    let mut frame = unsafe { SignalFrame::from_context(ctx) };
    // SAFETY: a SIGTRAP handler on the thread the services name (the
    // child's only thread, a copy of the parent's registered one); the
    // frame is the interrupted context's.
    match unsafe { ENGINE.handle_breakpoint(&mut frame, ExecMode::Kernel) } {
        TrapOutcome::Handled => {}
        TrapOutcome::Fault { addr } => {
            CHILD_FAULT_ADDR.store(addr, Ordering::SeqCst);
            CHILD_FAULT_PC.store(frame.pc(), Ordering::SeqCst);
            if frame.pc() == at(mc_call_fault_site) {
                frame.set_pc(at(mc_call_fault_fixup));
            } else {
                // SAFETY: _exit has no preconditions.
                unsafe { libc::_exit(3) };
            }
        }
        // SAFETY: _exit has no preconditions.
        _ => unsafe { libc::_exit(4) },
    }
}

/// The child's SIGSEGV entry: a fault at the call goes to its fix-up; a
/// fault in the services' copy routine (the engine reading the target)
/// to the services' own fix-up, as the harness's entry does.
extern "C" fn child_segv(_sig: c_int, _info: *mut siginfo_t, ctx: *mut c_void) {
    // SAFETY: as in `child_trap`.
    let mut frame = unsafe { SignalFrame::from_context(ctx) };
    let pc = frame.pc();
    if pc == at(mc_call_fault_site) {
        frame.set_pc(at(mc_call_fault_fixup));
    } else if let Some(to) = services::fixup_for(pc) {
        frame.set_pc(to);
    } else {
        // SAFETY: _exit has no preconditions.
        unsafe { libc::_exit(5) };
    }
}

fn install(sig: c_int, handler: extern "C" fn(c_int, *mut siginfo_t, *mut c_void)) -> bool {
    // SAFETY: a zeroed sigaction is valid; the handler and flags are set
    // before the call, which only reads the struct.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigaction(sig, &sa, core::ptr::null_mut()) == 0
    }
}

/// In a forked child with the entries above: `mc_call_fault` through a
/// good pointer and through `BAD`. Returns `[good, bad, fault address,
/// pc at the fault outcome]`.
fn in_child() -> Result<[u64; 4], String> {
    // SAFETY: an anonymous shared page for the child's answer.
    let page = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    ensure!(page != libc::MAP_FAILED, "mmap failed");
    let out = page as *mut u64;
    // SAFETY: fork; the child only installs handlers, runs the probed
    // function (the trap path takes no lock), writes the shared page and
    // leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        if !install(libc::SIGTRAP, child_trap) || !install(libc::SIGSEGV, child_segv) {
            // SAFETY: _exit has no preconditions.
            unsafe { libc::_exit(2) };
        }
        let target = at(mc_callee) as u64;
        let good = invoke(mc_call_fault, &target as *const u64 as u64, 5).0;
        let bad = invoke(mc_call_fault, BAD, 5).0;
        let r = [
            good,
            bad,
            CHILD_FAULT_ADDR.load(Ordering::SeqCst) as u64,
            CHILD_FAULT_PC.load(Ordering::SeqCst) as u64,
        ];
        for (i, v) in r.iter().enumerate() {
            // SAFETY: the shared page holds 512 words.
            unsafe { out.add(i).write_volatile(*v) };
        }
        // SAFETY: _exit has no preconditions.
        unsafe { libc::_exit(0) };
    }
    let result = (|| {
        ensure!(pid > 0, "fork failed");
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let w = unsafe { libc::waitpid(pid, &mut status, 0) };
        ensure_eq!(w, pid, "waitpid");
        ensure!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child status {status:#x} (exit 2: sigaction, 3: fault elsewhere, 4: not a probe, 5: segv elsewhere)"
        );
        // SAFETY: the page is mapped and the child has written it.
        Ok(core::array::from_fn(|i| unsafe {
            out.add(i).read_volatile()
        }))
    })();
    // SAFETY: unmapping the page mapped above.
    unsafe { libc::munmap(page, 4096) };
    result
}

fn faulting_call() -> CheckResult {
    let site = at(mc_call_fault_site);
    let d = decode(site)?;
    ensure!(
        matches!(d.insn.op(), Op::Emulate(Emulation::CallMem { mem }) if mem.base == Base::Reg(0) && mem.disp == 0),
        "decoded as {:?}",
        d.insn.op()
    );
    let unprobed = in_child()?;
    ensure_eq!(
        unprobed,
        [11, EFAULT, 0, 0],
        "unprobed: good call, faulting call fixed up after a real #PF, no fault outcome"
    );
    let rec = Recorder::leak();
    let mut probes = Probes::new();
    probes.add("the call", ENGINE.register_kprobe(&kprobe(site, rec, true)))?;
    let probed = in_child();
    probes.clear()?;
    let probed = probed?;
    ensure_eq!(
        probed,
        [11, EFAULT, BAD, site as u64],
        "probed: good call, then TrapOutcome::Fault for the bad address with the pc at the probe, fixed up"
    );
    Ok(format!(
        "fault outcome at {BAD:#x}, pc {site:#x} (the probe): fixed up to -EFAULT as unprobed"
    ))
}

pub(super) fn run(r: &mut Report) {
    r.check("simulated: call [rip + x] (GOT-style)", || {
        simulated_call(
            at(mc_call_rip_site),
            at(mc_call_rip_back),
            mc_call_rip,
            0,
            |e| matches!(e, Emulation::CallMem { mem } if mem.base == Base::Rip),
        )
    });
    r.check("simulated: call [rax + 8] (vtable-style)", || {
        let table = core::ptr::addr_of!(mc_table) as u64;
        simulated_call(
            at(mc_call_rax8_site),
            at(mc_call_rax8_back),
            mc_call_rax8,
            table,
            |e| matches!(e, Emulation::CallMem { mem } if mem.base == Base::Reg(0) && mem.disp == 8),
        )
    });
    r.check(
        "simulated: call [rax] through a bad pointer: the fault is delivered at the probe",
        faulting_call,
    );
}
