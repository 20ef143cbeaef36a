//! Exception entries: the breakpoint (vector 3), the faults the engine must
//! see first (13 #GP, 14 #PF), and a fatal entry for every other exception.
//!
//! Every entry saves the general registers into a [`PtRegs`] (Linux's
//! `pt_regs` layout: the registers, `orig_rax`, then the CPU's interrupt
//! frame rip, cs, rflags, rsp, ss), calls Rust with it, and returns with
//! `iretq` through that frame, so whatever the engine changed (rip, rsp,
//! rflags, any register) is what the interrupted code resumes with.
//!
//! ## The breakpoint entry leaves a gap
//! An `int3` in ring 0 does not switch stacks: the CPU aligns the
//! interrupted rsp down to 16 bytes and pushes its 40-byte frame right
//! below it. The engine then emulates instructions that write just below
//! the interrupted rsp: a simulated `call` (its return address), `pushf`,
//! `call reg`, each at `rsp - 8`. If the frame the entry returns through
//! lay there, the emulated push would overwrite its own saved rip/cs/rflags
//! and the `iretq` would go astray. So the entry first copies the CPU's
//! 5-word frame 40 bytes lower and builds the `PtRegs` below that copy
//! (what Linux's `int3` entry does with `create_gap`): the CPU's original
//! frame becomes a sacrificial gap that an emulated push may overwrite.
//! An IST stack would avoid the problem too, but a probe hit inside a probe
//! handler (counted as missed) would re-enter on the same IST stack and
//! overwrite the outer frame; the gap nests.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use probe_core::{ExecMode, FaultOutcome, TrapOutcome};
use probe_hal_x86_64::PtRegs;

use crate::exit_code::{exit, Verdict};
use crate::services::{in_slot_area, ENGINE};
use crate::{cpu, extable, println};

/// Breakpoint traps taken so far (probe hits, step ends, everything).
static TRAPS: AtomicU64 = AtomicU64::new(0);
/// Step-end traps taken from the slot area so far.
static STEP_ENDS: AtomicU64 = AtomicU64::new(0);
/// `rflags` at the last step-end trap: the flags the slot's copy ran with.
static STEP_END_FLAGS: AtomicU64 = AtomicU64::new(0);
/// Faults inside a slot that the engine took back to the probe address.
static ABORTED_STEPS: AtomicU64 = AtomicU64::new(0);
/// Faults resolved through the exception table.
static FIXUPS: AtomicU64 = AtomicU64::new(0);
/// Simulated instructions that faulted (delivered through the exception
/// table), and the data address of the last one.
static SIMULATED_FAULTS: AtomicU64 = AtomicU64::new(0);
static LAST_SIMULATED_FAULT: AtomicUsize = AtomicUsize::new(0);

/// Breakpoint traps taken so far on each CPU.
static TRAPS_ON: [AtomicU64; crate::smp::MAX_CPUS] =
    [const { AtomicU64::new(0) }; crate::smp::MAX_CPUS];

/// Breakpoint traps taken so far.
pub fn traps() -> u64 {
    TRAPS.load(Ordering::SeqCst)
}

/// Breakpoint traps taken so far on CPU `cpu`.
pub fn traps_on(cpu: usize) -> u64 {
    TRAPS_ON.get(cpu).map_or(0, |t| t.load(Ordering::SeqCst))
}

/// Step-end traps so far, and the flags the last one interrupted.
pub fn step_ends() -> (u64, u64) {
    (
        STEP_ENDS.load(Ordering::SeqCst),
        STEP_END_FLAGS.load(Ordering::SeqCst),
    )
}

/// Simulated instructions that faulted, and the address of the last fault.
pub fn simulated_faults() -> (u64, usize) {
    (
        SIMULATED_FAULTS.load(Ordering::SeqCst),
        LAST_SIMULATED_FAULT.load(Ordering::SeqCst),
    )
}

/// Faults in a slot the engine aborted, and exception-table fix-ups.
pub fn fault_counts() -> (u64, u64) {
    (
        ABORTED_STEPS.load(Ordering::SeqCst),
        FIXUPS.load(Ordering::SeqCst),
    )
}

global_asm!(
    ".pushsection .text.xq_entry, \"ax\", @progbits",
    // --- vector 3: int3 --------------------------------------------------
    ".p2align 4",
    ".global xq_int3_entry",
    "xq_int3_entry:",
    // The CPU pushed rip, cs, rflags, rsp, ss (no error code) just below the
    // interrupted rsp. Copy those five words 40 bytes lower: each push reads
    // [rsp + 32] with rsp taken before its own decrement (Intel SDM, PUSH),
    // so the five pushes copy ss, rsp, rflags, cs, rip in that order. The
    // original frame is now the gap (see the module documentation).
    "push qword ptr [rsp + 32]",
    "push qword ptr [rsp + 32]",
    "push qword ptr [rsp + 32]",
    "push qword ptr [rsp + 32]",
    "push qword ptr [rsp + 32]",
    "push -1", // orig_rax: not a system call
    "push rdi",
    "push rsi",
    "push rdx",
    "push rcx",
    "push rax",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rdi, rsp", // &mut PtRegs
    "mov rbx, rsp", // callee-saved: the frame across the call
    "and rsp, -16",
    "cld",
    "call {on_breakpoint}",
    "mov rsp, rbx",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rax",
    "pop rcx",
    "pop rdx",
    "pop rsi",
    "pop rdi",
    "add rsp, 8", // orig_rax
    // rip, cs, rflags, rsp, ss from the copy, as the engine left them.
    "iretq",
    // --- vectors 13 and 14: faults with an error code ------------------
    // The CPU's error code sits where `orig_rax` goes, so the frame it
    // pushed is already the tail of a PtRegs. No gap is needed: the fault
    // path never emulates a push.
    ".p2align 4",
    ".global xq_gp_entry",
    "xq_gp_entry:",
    "push rdi",
    "mov edi, 13",
    "jmp xq_fault_common",
    ".p2align 4",
    ".global xq_pf_entry",
    "xq_pf_entry:",
    "push rdi",
    "mov edi, 14",
    "xq_fault_common:",
    "push rsi",
    "push rdx",
    "push rcx",
    "push rax",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov esi, edi", // vector
    "mov rdi, rsp", // &mut PtRegs
    "mov rbx, rsp",
    "and rsp, -16",
    "cld",
    "call {on_fault}",
    "mov rsp, rbx",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rax",
    "pop rcx",
    "pop rdx",
    "pop rsi",
    "pop rdi",
    "add rsp, 8", // error code
    "iretq",
    // --- the kernel's IPI (see crate::smp) and the spurious vector --------
    // An interrupt, not an exception: save the registers the C ABI lets
    // the handler clobber (and rbx, which keeps the frame), pass the
    // interrupted rip, return with `iretq` (which also serialises).
    ".p2align 4",
    ".global xq_ipi_entry",
    "xq_ipi_entry:",
    "push rax",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push rbx",
    "mov rdi, [rsp + 80]", // rip
    "mov rbx, rsp",
    "and rsp, -16",
    "cld",
    "call {on_ipi}",
    "mov rsp, rbx",
    "pop rbx",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rax",
    "iretq",
    // A spurious interrupt gets no EOI (Intel SDM Vol. 3A §11.9).
    ".p2align 4",
    ".global xq_spurious_entry",
    "xq_spurious_entry:",
    "iretq",
    // --- every other exception: report and stop --------------------------
    // One 16-byte stub per vector: push a zero error code where the CPU
    // pushes none, then the vector.
    ".p2align 4",
    ".global xq_fatal_stubs",
    "xq_fatal_stubs:",
    ".irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    ".p2align 4",
    ".if (\\vec == 8) || (\\vec == 10) || (\\vec == 11) || (\\vec == 12) || (\\vec == 13) || (\\vec == 14) || (\\vec == 17) || (\\vec == 21) || (\\vec == 29) || (\\vec == 30)",
    ".else",
    "push 0",
    ".endif",
    "push \\vec",
    "jmp xq_fatal_common",
    ".endr",
    "xq_fatal_common:",
    "mov rdi, [rsp]",      // vector
    "mov rsi, [rsp + 8]",  // error code
    "mov rdx, [rsp + 16]", // rip
    "and rsp, -16",
    "call {on_fatal}",
    "ud2",
    ".popsection",
    on_breakpoint = sym on_breakpoint,
    on_fault = sym on_fault,
    on_fatal = sym on_fatal,
    on_ipi = sym on_ipi,
);

extern "C" {
    fn xq_int3_entry();
    fn xq_gp_entry();
    fn xq_pf_entry();
    fn xq_fatal_stubs();
    fn xq_ipi_entry();
    fn xq_spurious_entry();
}

/// Bytes of one fatal stub.
const FATAL_STUB_LEN: usize = 16;

/// The entry for exception `vector` (0-31).
pub fn address_for(vector: u8) -> usize {
    match vector {
        3 => xq_int3_entry as *const () as usize,
        13 => xq_gp_entry as *const () as usize,
        14 => xq_pf_entry as *const () as usize,
        v => xq_fatal_stubs as *const () as usize + v as usize * FATAL_STUB_LEN,
    }
}

/// The entry of the kernel's IPI ([`crate::apic::IPI_VECTOR`]).
pub fn ipi_entry() -> usize {
    xq_ipi_entry as *const () as usize
}

/// The entry of the spurious-interrupt vector.
pub fn spurious_entry() -> usize {
    xq_spurious_entry as *const () as usize
}

/// The IPI, from its entry: interrupts masked, `rip` the interrupted one.
extern "C" fn on_ipi(rip: u64) {
    crate::smp::on_ipi(rip as usize);
}

/// The breakpoint entry (vector 3), for the blacklist check.
pub fn int3_entry() -> usize {
    xq_int3_entry as *const () as usize
}

/// Vector 3, from the entry above: hand the frame to the engine.
extern "C" fn on_breakpoint(regs: *mut PtRegs) {
    // SAFETY: the entry passes the PtRegs it just built on this stack;
    // nothing else refers to it until this function returns.
    let regs = unsafe { &mut *regs };
    TRAPS.fetch_add(1, Ordering::SeqCst);
    if let Some(t) = TRAPS_ON.get(crate::percpu::cpu_id()) {
        t.fetch_add(1, Ordering::SeqCst);
    }
    let at = (regs.rip as usize).wrapping_sub(1);
    if in_slot_area(at) {
        STEP_ENDS.fetch_add(1, Ordering::SeqCst);
        STEP_END_FLAGS.store(regs.eflags, Ordering::SeqCst);
    }
    // SAFETY: vector 3 runs with interrupts masked (interrupt gate) on
    // this CPU, which `cpu_id` names (its GS base), in its kernel task;
    // `regs` is the interrupted frame.
    match unsafe { ENGINE.handle_breakpoint(regs, ExecMode::Kernel) } {
        TrapOutcome::Handled => crate::smp::trap_exit(regs.rip as usize, regs.eflags),
        TrapOutcome::Fault { addr } => {
            // A simulated instruction faulted: deliver it as the original
            // instruction's fault, through the exception table.
            SIMULATED_FAULTS.fetch_add(1, Ordering::SeqCst);
            LAST_SIMULATED_FAULT.store(addr, Ordering::SeqCst);
            if let Some(fixup) = extable::fixup(regs.rip as usize) {
                FIXUPS.fetch_add(1, Ordering::SeqCst);
                regs.rip = fixup as u64;
                return;
            }
            println!(
                "simulated instruction at {:#x} faulted at {addr:#x}",
                regs.rip
            );
            crate::report::crashed();
            exit(Verdict::Crashed);
        }
        _ => {
            println!("unexpected int3 at {at:#x} (no probe there)");
            crate::report::crashed();
            exit(Verdict::Crashed);
        }
    }
}

/// Vectors 13 and 14: the engine first (a fault inside a slot goes back
/// to the probe address), then the exception table.
extern "C" fn on_fault(regs: *mut PtRegs, vector: u64) {
    // SAFETY: as in `on_breakpoint`.
    let regs = unsafe { &mut *regs };
    let cr2 = cpu::cr2();
    // SAFETY: as in `on_breakpoint` (vectors 13 and 14 are interrupt gates).
    if unsafe { ENGINE.handle_fault(regs, ExecMode::Kernel) } == FaultOutcome::StepAborted {
        ABORTED_STEPS.fetch_add(1, Ordering::SeqCst);
    }
    if let Some(fixup) = extable::fixup(regs.rip as usize) {
        FIXUPS.fetch_add(1, Ordering::SeqCst);
        regs.rip = fixup as u64;
        return;
    }
    let name = if vector == 14 {
        "page fault"
    } else {
        "general protection fault"
    };
    if in_slot_area(regs.rip as usize) {
        // The engine only tracks steps that end with a trap; a boosted slot
        // (jmp back, no step in flight) is not recognised (see README).
        println!("fault inside an out-of-line slot the engine does not track (a boosted slot?)");
    }
    println!(
        "unexpected {name} at rip {:#x}, error code {:#x}, cr2 {cr2:#x}, rsp {:#x}",
        regs.rip, regs.orig_rax, regs.rsp
    );
    crate::report::crashed();
    exit(Verdict::Crashed);
}

/// Any other exception: say which and stop.
extern "C" fn on_fatal(vector: u64, error: u64, rip: u64) -> ! {
    println!("unexpected exception {vector} at rip {rip:#x}, error code {error:#x}");
    crate::report::crashed();
    exit(Verdict::Crashed)
}
