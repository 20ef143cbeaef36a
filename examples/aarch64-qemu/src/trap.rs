//! The exception vectors (`VBAR_EL1`, 16 entries of 128 bytes). Every
//! entry saves the full context into a [`TrapFrame`] (a
//! [`probe_hal_aarch64::PtRegs`], then ESR, FAR, the vector number and the
//! FP/SIMD state, which the Rust handlers may use), calls
//! [`trap_dispatch`], and returns with `eret` to whatever ELR, SPSR (and,
//! for EL0, `SP_EL0`) the handlers left in the frame.
//!
//! The kernel runs at EL1h (`SP_EL1`): a trap from EL1 pushes its frame
//! below the interrupted stack pointer (AAPCS64 has no red zone), so traps
//! nest (a probe hit inside a handler, a fault inside a slot); a trap from
//! EL0 lands on the kernel stack the task was entered from. The vectors
//! and the Rust trap path sit in their own linker sections, which the
//! kernel's blacklist covers.
//!
//! An IRQ is the SGI of a request from another CPU ([`crate::smp::kicked`]).
//! Dispatch of synchronous exceptions on `ESR_EL1.EC`: `brk` (0x3c) goes to the engine's breakpoint
//! entry; aborts, alignment faults, undefined instructions, branch-target
//! and PAC failures go to the engine's fault entry and then to the kernel's
//! fix-up table ([`crate::fixup`]) or, from EL0, end the user task; `svc`
//! from EL0 is the user task's way back to the kernel ([`crate::user`]).

use core::sync::atomic::{AtomicUsize, Ordering};

use probe_core::{ExecMode, FaultOutcome, TrapOutcome};
use probe_hal_aarch64::regs::PSR_MODE_MASK;
use probe_hal_aarch64::PtRegs;

use crate::kernel::ENGINE;

/// What the entry saves: the engine's frame, the syndrome, then FP/SIMD.
#[repr(C)]
pub struct TrapFrame {
    /// General registers, sp, pc (ELR) and pstate (SPSR), as Linux lays
    /// them out.
    pub regs: PtRegs,
    /// `ESR_EL1`.
    pub esr: u64,
    /// `FAR_EL1`.
    pub far: u64,
    /// The vector entry taken (0..16).
    pub vector: u64,
    _pad: u64,
    /// `q0`-`q31`.
    pub q: [u128; 32],
    /// `FPCR`.
    pub fpcr: u64,
    /// `FPSR`.
    pub fpsr: u64,
}

/// Bytes the entry reserves on the stack.
pub const FRAME_SIZE: usize = core::mem::size_of::<TrapFrame>();
const _: () = {
    assert!(FRAME_SIZE == 848 && FRAME_SIZE.is_multiple_of(16));
    assert!(core::mem::offset_of!(TrapFrame, esr) == 288);
    assert!(core::mem::offset_of!(TrapFrame, vector) == 304);
    assert!(core::mem::offset_of!(TrapFrame, q) == 320);
    assert!(core::mem::offset_of!(TrapFrame, fpcr) == 832);
};

/// Exception classes (`ESR_ELx.EC`, Arm ARM D24.2.40).
pub mod ec {
    /// Unknown reason (an undefined instruction).
    pub const UNKNOWN: u64 = 0x00;
    /// Branch target exception (BTI).
    pub const BTI: u64 = 0x0d;
    /// `svc` from AArch64.
    pub const SVC64: u64 = 0x15;
    /// PAC authentication failure (FEAT_FPAC).
    pub const FPAC: u64 = 0x1c;
    /// Instruction abort from a lower EL.
    pub const IABT_LOWER: u64 = 0x20;
    /// Instruction abort from the same EL.
    pub const IABT_CUR: u64 = 0x21;
    /// PC alignment fault.
    pub const PC_ALIGN: u64 = 0x22;
    /// Data abort from a lower EL.
    pub const DABT_LOWER: u64 = 0x24;
    /// Data abort from the same EL.
    pub const DABT_CUR: u64 = 0x25;
    /// SP alignment fault.
    pub const SP_ALIGN: u64 = 0x26;
    /// `brk` from AArch64.
    pub const BRK64: u64 = 0x3c;
}

/// `ESR_ELx.EC` of `esr`.
pub const fn ec_of(esr: u64) -> u64 {
    (esr >> 26) & 0x3f
}

core::arch::global_asm!(
    ".pushsection .text.vectors, \"ax\"",
    ".p2align 11",
    ".globl exception_vectors",
    "exception_vectors:",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #0",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #1",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #2",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #3",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #4",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #5",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #6",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #7",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #8",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #9",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #10",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #11",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #12",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #13",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #14",
    "b trap_common",
    ".p2align 7",
    "sub sp, sp, #{frame}",
    "stp x0, x1, [sp, #0]",
    "mov x0, #15",
    "b trap_common",
    "trap_common:",
    "str x0, [sp, #304]",
    "stp x2, x3, [sp, #16]",
    "stp x4, x5, [sp, #32]",
    "stp x6, x7, [sp, #48]",
    "stp x8, x9, [sp, #64]",
    "stp x10, x11, [sp, #80]",
    "stp x12, x13, [sp, #96]",
    "stp x14, x15, [sp, #112]",
    "stp x16, x17, [sp, #128]",
    "stp x18, x19, [sp, #144]",
    "stp x20, x21, [sp, #160]",
    "stp x22, x23, [sp, #176]",
    "stp x24, x25, [sp, #192]",
    "stp x26, x27, [sp, #208]",
    "stp x28, x29, [sp, #224]",
    "str x30, [sp, #240]",
    "mrs x1, spsr_el1",
    "tst x1, #{mode_mask}",
    "b.ne 1f",
    "mrs x0, sp_el0",
    "b 2f",
    "1:",
    "add x0, sp, #{frame}",
    "2:",
    "str x0, [sp, #248]",
    "mrs x0, elr_el1",
    "str x0, [sp, #256]",
    "str x1, [sp, #264]",
    "ldr x0, [sp, #0]",
    "str x0, [sp, #272]",
    "str xzr, [sp, #280]",
    "mrs x0, esr_el1",
    "str x0, [sp, #288]",
    "mrs x0, far_el1",
    "str x0, [sp, #296]",
    "stp q0, q1, [sp, #320]",
    "stp q2, q3, [sp, #352]",
    "stp q4, q5, [sp, #384]",
    "stp q6, q7, [sp, #416]",
    "stp q8, q9, [sp, #448]",
    "stp q10, q11, [sp, #480]",
    "stp q12, q13, [sp, #512]",
    "stp q14, q15, [sp, #544]",
    "stp q16, q17, [sp, #576]",
    "stp q18, q19, [sp, #608]",
    "stp q20, q21, [sp, #640]",
    "stp q22, q23, [sp, #672]",
    "stp q24, q25, [sp, #704]",
    "stp q26, q27, [sp, #736]",
    "stp q28, q29, [sp, #768]",
    "stp q30, q31, [sp, #800]",
    "mrs x0, fpcr",
    "str x0, [sp, #832]",
    "mrs x0, fpsr",
    "str x0, [sp, #840]",
    "mov x0, sp",
    "bl {dispatch}",
    "ldr x0, [sp, #832]",
    "msr fpcr, x0",
    "ldr x0, [sp, #840]",
    "msr fpsr, x0",
    "ldp q0, q1, [sp, #320]",
    "ldp q2, q3, [sp, #352]",
    "ldp q4, q5, [sp, #384]",
    "ldp q6, q7, [sp, #416]",
    "ldp q8, q9, [sp, #448]",
    "ldp q10, q11, [sp, #480]",
    "ldp q12, q13, [sp, #512]",
    "ldp q14, q15, [sp, #544]",
    "ldp q16, q17, [sp, #576]",
    "ldp q18, q19, [sp, #608]",
    "ldp q20, q21, [sp, #640]",
    "ldp q22, q23, [sp, #672]",
    "ldp q24, q25, [sp, #704]",
    "ldp q26, q27, [sp, #736]",
    "ldp q28, q29, [sp, #768]",
    "ldp q30, q31, [sp, #800]",
    "ldr x0, [sp, #256]",
    "msr elr_el1, x0",
    "ldr x1, [sp, #264]",
    "msr spsr_el1, x1",
    "tst x1, #{mode_mask}",
    "b.ne 3f",
    "ldr x0, [sp, #248]",
    "msr sp_el0, x0",
    "3:",
    "ldp x2, x3, [sp, #16]",
    "ldp x4, x5, [sp, #32]",
    "ldp x6, x7, [sp, #48]",
    "ldp x8, x9, [sp, #64]",
    "ldp x10, x11, [sp, #80]",
    "ldp x12, x13, [sp, #96]",
    "ldp x14, x15, [sp, #112]",
    "ldp x16, x17, [sp, #128]",
    "ldp x18, x19, [sp, #144]",
    "ldp x20, x21, [sp, #160]",
    "ldp x22, x23, [sp, #176]",
    "ldp x24, x25, [sp, #192]",
    "ldp x26, x27, [sp, #208]",
    "ldp x28, x29, [sp, #224]",
    "ldr x30, [sp, #240]",
    "ldp x0, x1, [sp, #0]",
    "add sp, sp, #{frame}",
    "eret",
    ".globl exception_vectors_end",
    "exception_vectors_end:",
    ".popsection",
    frame = const FRAME_SIZE,
    mode_mask = const PSR_MODE_MASK,
    dispatch = sym trap_dispatch,
);

extern "C" {
    fn exception_vectors();
}

/// The code range of the exception vectors and the Rust trap path placed
/// after them (never to be probed).
pub fn entry_range() -> core::ops::Range<usize> {
    exception_vectors as *const () as usize..crate::kernel::linker_addr!(__trap_text_end)
}

/// Point this CPU's exceptions at our vectors.
pub fn init_cpu() {
    // SAFETY: the table is 2 KiB aligned (`.p2align 11`) and handles every
    // exception; DAIF stays masked in the kernel.
    unsafe {
        core::arch::asm!(
            "msr vbar_el1, {}",
            "isb",
            in(reg) exception_vectors as *const () as usize,
            options(nostack)
        )
    };
}

/// A fault the kernel handled, as the checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRecord {
    /// `ESR_EL1.EC`.
    pub ec: u64,
    /// `FAR_EL1`.
    pub far: u64,
    /// Where the fault was taken (ELR at entry).
    pub elr: usize,
    /// The pc after the engine's fault entry ran.
    pub pc_after_engine: usize,
    /// The engine found a step in flight and aborted it.
    pub step_aborted: bool,
}

/// Faults taken so far, and the last one (from either CPU).
static FAULTS: AtomicUsize = AtomicUsize::new(0);
static LAST_FAULT: spin::Mutex<Option<FaultRecord>> = spin::Mutex::new(None);

/// Faults taken so far and the last one.
pub fn last_fault() -> (usize, Option<FaultRecord>) {
    (FAULTS.load(Ordering::Acquire), *LAST_FAULT.lock())
}

fn mode_of(frame: &TrapFrame) -> ExecMode {
    if frame.regs.pstate & PSR_MODE_MASK == 0 {
        ExecMode::User
    } else {
        ExecMode::Kernel
    }
}

/// Called by the entry with the saved frame.
#[link_section = ".text.kernel_trap"]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    // IRQs from the current EL or from EL0: the SGI of a request.
    if frame.vector == 5 || frame.vector == 9 {
        return crate::smp::kicked(frame.regs.pc);
    }
    // Synchronous exceptions from the current EL (SP_ELx) or from EL0.
    if frame.vector != 4 && frame.vector != 8 {
        fatal(frame, "an unexpected exception vector");
    }
    let mode = mode_of(frame);
    match ec_of(frame.esr) {
        ec::BRK64 => breakpoint(frame, mode),
        ec::SVC64 if mode == ExecMode::User => crate::user::syscall(frame),
        ec::UNKNOWN
        | ec::BTI
        | ec::FPAC
        | ec::IABT_LOWER
        | ec::IABT_CUR
        | ec::PC_ALIGN
        | ec::DABT_LOWER
        | ec::DABT_CUR
        | ec::SP_ALIGN => fault(frame, mode),
        _ => fatal(frame, "an unexpected exception class"),
    }
}

/// Breakpoint traps taken per CPU (every `brk`: probes, step ends, return
/// breakpoints), so that "no trap" is measured.
static BREAKPOINT_TRAPS: [AtomicUsize; crate::smp::CPUS] =
    [const { AtomicUsize::new(0) }; crate::smp::CPUS];

/// Breakpoint traps taken on `cpu` so far.
pub fn breakpoint_traps(cpu: usize) -> usize {
    BREAKPOINT_TRAPS[cpu].load(Ordering::Relaxed)
}

#[link_section = ".text.kernel_trap"]
fn breakpoint(frame: &mut TrapFrame, mode: ExecMode) {
    let cpu = crate::sysreg::cpu_id();
    if let Some(n) = BREAKPOINT_TRAPS.get(cpu) {
        n.fetch_add(1, Ordering::Relaxed);
    }
    // A CPU trapping on a breakpoint CPU 0 is removing must still answer
    // its instruction-fetch request, or both would wait for each other.
    crate::smp::icache_point(crate::sysreg::cpu_id());
    // SAFETY: exceptions are taken with DAIF masked and the kernel never
    // unmasks them, on the CPU `cpu_id` reads; user traps come from the
    // task the services name.
    let outcome = unsafe { ENGINE.handle_breakpoint(&mut frame.regs, mode) };
    match outcome {
        TrapOutcome::Handled => {}
        TrapOutcome::NotOurs => match mode {
            ExecMode::User => crate::user::end_task(frame, crate::user::Ending::Break),
            ExecMode::Kernel => {
                crate::println!(
                    "unexpected kernel brk #{:#x} at {:#x}",
                    probe_hal_aarch64::slot::brk_immediate(frame.esr),
                    frame.regs.pc
                );
                crate::exit::fail()
            }
        },
        // A simulated instruction that faulted (a literal load from an
        // unmapped address), or an outcome this kernel does not know:
        // delivered like a fault of the instruction at the probe address.
        other => {
            crate::println!(
                "         simulated instruction at {:#x}: {other:x?}",
                frame.regs.pc
            );
            match mode {
                ExecMode::User => crate::user::end_task(frame, crate::user::Ending::Fault),
                ExecMode::Kernel => match crate::fixup::lookup(frame.regs.pc) {
                    Some(fix) => frame.regs.pc = fix,
                    None => crate::exit::fail(),
                },
            }
        }
    }
}

#[link_section = ".text.kernel_trap"]
fn fault(frame: &mut TrapFrame, mode: ExecMode) {
    let elr = frame.regs.pc;
    // SAFETY: as in `breakpoint`.
    let outcome = unsafe { ENGINE.handle_fault(&mut frame.regs, mode) };
    let record = FaultRecord {
        ec: ec_of(frame.esr),
        far: frame.far,
        elr,
        pc_after_engine: frame.regs.pc,
        step_aborted: outcome == FaultOutcome::StepAborted,
    };
    *LAST_FAULT.lock() = Some(record);
    FAULTS.fetch_add(1, Ordering::AcqRel);
    match mode {
        ExecMode::User => crate::user::end_task(frame, crate::user::Ending::Fault),
        ExecMode::Kernel => match crate::fixup::lookup(frame.regs.pc) {
            Some(fix) => frame.regs.pc = fix,
            None => {
                crate::println!("unhandled kernel fault: {record:x?}");
                crate::exit::fail()
            }
        },
    }
}

#[link_section = ".text.kernel_trap"]
fn fatal(frame: &TrapFrame, what: &str) -> ! {
    crate::println!(
        "{what}: vector {}, ESR {:#x} (EC {:#x}) at {:#x}, FAR {:#x}, SPSR {:#x}",
        frame.vector,
        frame.esr,
        ec_of(frame.esr),
        frame.regs.pc,
        frame.far,
        frame.regs.pstate
    );
    crate::exit::fail()
}
