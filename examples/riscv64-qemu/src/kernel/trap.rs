//! The S-mode trap vector and its dispatch.
//!
//! `strap_entry` (installed in `stvec`) saves every general register, the
//! trap CSRs and the floating-point registers into a [`TrapFrame`] on the
//! kernel stack: its first 288 bytes are a [`probe_hal_riscv64::PtRegs`], which is
//! the frame the engine gets. `sscratch` tells where the trap came from: 0
//! while the hart runs in S-mode, the kernel stack pointer while it runs in
//! U-mode (set by [`super::user`] and on every return to U-mode), as in
//! Linux.
//!
//! [`strap_handler`] dispatches on `scause`:
//! - breakpoint: [`probe_core::Engine::handle_breakpoint`], in the mode
//!   `sstatus.SPP` names;
//! - access faults and illegal instructions (and misaligned accesses and
//!   page faults, which this kernel does not expect):
//!   [`probe_core::Engine::handle_fault`] first,
//!   then the kernel's own handling: the fix-up table for S-mode, ending the
//!   U-mode run for a user fault (what a signal would do);
//! - ecall from U-mode: the U-mode run is over (back to the caller of
//!   [`super::user::run`]).
//!
//! Anything else is fatal. The vector and the dispatch live in the section
//! `kernel_trap_text`, which the services blacklist.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use probe_core::{ExecMode, FaultOutcome, TrapOutcome};
use probe_hal_riscv64::PtRegs;

use super::console::print_unlocked;
use super::layout::MAX_HARTS;
use super::services::ENGINE;
use super::{exit, fixup, user};

/// `sstatus.SPP`: the trap came from S-mode.
pub const SSTATUS_SPP: usize = 1 << 8;
/// `sstatus.FS`, the floating-point unit state.
pub const SSTATUS_FS: usize = 0b11 << 13;

/// Exception codes (privileged manual, table 4.2).
mod cause {
    pub const INSN_MISALIGNED: usize = 0;
    pub const INSN_ACCESS: usize = 1;
    pub const ILLEGAL_INSN: usize = 2;
    pub const BREAKPOINT: usize = 3;
    pub const LOAD_MISALIGNED: usize = 4;
    pub const LOAD_ACCESS: usize = 5;
    pub const STORE_MISALIGNED: usize = 6;
    pub const STORE_ACCESS: usize = 7;
    pub const ECALL_FROM_U: usize = 8;
    pub const INSN_PAGE_FAULT: usize = 12;
    pub const LOAD_PAGE_FAULT: usize = 13;
    pub const STORE_PAGE_FAULT: usize = 15;
    pub const INTERRUPT: usize = 1 << 63;
}

/// What the vector does after the dispatch: return to the interrupted
/// context...
const RESUME: usize = 0;
/// ...or end the U-mode run, returning the frame's a0 from `enter_user`.
const LEAVE_USER: usize = 1;

/// The frame `strap_entry` builds: the engine's `PtRegs`, then f0-f31 and
/// fcsr (a probe's handlers and the kernel may use the FPU; the interrupted
/// code must not see it change).
#[repr(C)]
pub struct TrapFrame {
    /// The general registers and trap CSRs, in Linux's layout.
    pub regs: PtRegs,
    /// f0-f31.
    pub fregs: [u64; 32],
    /// fcsr.
    pub fcsr: u64,
    _pad: u64,
}

/// Size of [`TrapFrame`] (a multiple of 16, as the psABI wants for sp).
pub const FRAME_SIZE: usize = core::mem::size_of::<TrapFrame>();
const _: () = assert!(FRAME_SIZE == 560 && FRAME_SIZE % 16 == 0);

global_asm!(
    ".pushsection kernel_trap_text, \"ax\", @progbits",
    ".option push",
    ".option arch, +m, +a, +f, +d, +c",
    ".p2align 2",
    ".globl strap_entry",
    "strap_entry:",
    "csrrw sp, sscratch, sp",
    "bnez sp, 1f",
    // From S-mode: sscratch was 0; swap back (sp = interrupted sp,
    // sscratch = 0).
    "csrrw sp, sscratch, sp",
    "addi sp, sp, -{frame}",
    ".irp n, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31",
    "sd x\\n, \\n*8(sp)",
    ".endr",
    "addi t0, sp, {frame}",
    "sd t0, 16(sp)",
    "j 2f",
    // From U-mode: sp is the kernel stack top enter_user left (the saved
    // kernel tp lies at 0(sp) there), sscratch the user sp.
    "1:",
    "addi sp, sp, -{frame}",
    ".irp n, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31",
    "sd x\\n, \\n*8(sp)",
    ".endr",
    "csrr t0, sscratch",
    "sd t0, 16(sp)",
    "ld tp, {frame}(sp)",
    "2:",
    "csrw sscratch, zero",
    "csrr t0, sepc",
    "sd t0, 0(sp)",
    "csrr t0, sstatus",
    "sd t0, 256(sp)",
    "csrr t0, stval",
    "sd t0, 264(sp)",
    "csrr t0, scause",
    "sd t0, 272(sp)",
    "sd a0, 280(sp)",
    ".irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31",
    "fsd f\\n, 288+\\n*8(sp)",
    ".endr",
    "frcsr t0",
    "sd t0, 544(sp)",
    "mv a0, sp",
    "call {handler}",
    "bnez a0, 5f",
    ".irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31",
    "fld f\\n, 288+\\n*8(sp)",
    ".endr",
    "ld t0, 544(sp)",
    "fscsr t0",
    "ld t0, 0(sp)",
    "csrw sepc, t0",
    "ld t0, 256(sp)",
    "csrw sstatus, t0",
    // Back to U-mode: the next trap from there needs the kernel stack.
    "andi t0, t0, {spp}",
    "bnez t0, 3f",
    "addi t0, sp, {frame}",
    "csrw sscratch, t0",
    "3:",
    ".irp n, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31",
    "ld x\\n, \\n*8(sp)",
    ".endr",
    "ld sp, 16(sp)",
    "sret",
    // The U-mode run ended: return from enter_user with the user's a0.
    "5:",
    "ld a0, 80(sp)",
    "addi sp, sp, {frame}",
    "j leave_user",
    ".globl strap_entry_end",
    "strap_entry_end:",
    ".option pop",
    ".popsection",
    frame = const FRAME_SIZE,
    spp = const SSTATUS_SPP,
    handler = sym strap_handler,
);

extern "C" {
    fn strap_entry();
}

/// Point this hart's `stvec` at the vector and mark it as running in
/// S-mode (`sscratch` = 0).
pub fn install() {
    let vector = strap_entry as *const () as usize;
    // SAFETY: `strap_entry` is 4-byte aligned trap-vector code (direct
    // mode); sscratch = 0 is the "in S-mode" convention it relies on.
    unsafe {
        core::arch::asm!("csrw stvec, {}", in(reg) vector);
        core::arch::asm!("csrw sscratch, zero");
    }
}

/// Enable the FPU for S and U mode (`sstatus.FS` = Initial).
pub fn enable_fpu() {
    // SAFETY: setting FS only makes floating-point instructions legal; the
    // trap vector saves the FP registers from then on.
    unsafe { core::arch::asm!("csrs sstatus, {}", in(reg) 1usize << 13) };
}

/// The current `sstatus`.
pub fn sstatus() -> usize {
    let v: usize;
    // SAFETY: reading sstatus has no side effect.
    unsafe { core::arch::asm!("csrr {}, sstatus", out(reg) v) };
    v
}

/// The hart this code runs on (`tp`, set at boot and restored on every
/// trap from U-mode).
#[inline(always)]
pub fn hart_id() -> usize {
    let id: usize;
    // SAFETY: reading tp; the kernel keeps the hart id there.
    unsafe { core::arch::asm!("mv {}, tp", out(reg) id) };
    id
}

/// The last fault a hart took, as the kernel saw it after the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultRecord {
    /// `scause`.
    pub cause: usize,
    /// `sepc` at the trap (the slot, when the probed copy faulted).
    pub trap_pc: usize,
    /// The pc after the engine's fault entry (the probe address when it
    /// aborted a step).
    pub pc: usize,
    /// `stval`.
    pub badaddr: usize,
    /// The engine aborted an out-of-line step.
    pub step_aborted: bool,
    /// Taken in U-mode.
    pub user: bool,
}

struct FaultSlot {
    cause: AtomicUsize,
    trap_pc: AtomicUsize,
    pc: AtomicUsize,
    badaddr: AtomicUsize,
    aborted: AtomicBool,
    user: AtomicBool,
    count: AtomicUsize,
}

static FAULTS: [FaultSlot; MAX_HARTS] = [const {
    FaultSlot {
        cause: AtomicUsize::new(0),
        trap_pc: AtomicUsize::new(0),
        pc: AtomicUsize::new(0),
        badaddr: AtomicUsize::new(0),
        aborted: AtomicBool::new(false),
        user: AtomicBool::new(false),
        count: AtomicUsize::new(0),
    }
}; MAX_HARTS];

/// Faults taken on this hart so far, and the last one.
pub fn last_fault() -> (usize, FaultRecord) {
    let s = &FAULTS[hart_id()];
    (
        s.count.load(Ordering::Acquire),
        FaultRecord {
            cause: s.cause.load(Ordering::Relaxed),
            trap_pc: s.trap_pc.load(Ordering::Relaxed),
            pc: s.pc.load(Ordering::Relaxed),
            badaddr: s.badaddr.load(Ordering::Relaxed),
            step_aborted: s.aborted.load(Ordering::Relaxed),
            user: s.user.load(Ordering::Relaxed),
        },
    )
}

#[link_section = "kernel_trap_text"]
fn record_fault(r: FaultRecord) {
    let s = &FAULTS[hart_id()];
    s.cause.store(r.cause, Ordering::Relaxed);
    s.trap_pc.store(r.trap_pc, Ordering::Relaxed);
    s.pc.store(r.pc, Ordering::Relaxed);
    s.badaddr.store(r.badaddr, Ordering::Relaxed);
    s.aborted.store(r.step_aborted, Ordering::Relaxed);
    s.user.store(r.user, Ordering::Relaxed);
    s.count.fetch_add(1, Ordering::Release);
}

/// Breakpoint traps taken per hart (every `ebreak`/`c.ebreak`: probes,
/// step ends, return breakpoints), so that "no trap" is measured.
static BREAKPOINT_TRAPS: [AtomicUsize; MAX_HARTS] = [const { AtomicUsize::new(0) }; MAX_HARTS];

/// Breakpoint traps taken on hart `h` so far.
pub fn breakpoint_traps(h: usize) -> usize {
    BREAKPOINT_TRAPS[h].load(Ordering::Relaxed)
}

/// A breakpoint trap: counted, then the engine's.
#[link_section = "kernel_trap_text"]
fn breakpoint(regs: &mut PtRegs, mode: ExecMode) -> TrapOutcome {
    BREAKPOINT_TRAPS[hart_id()].fetch_add(1, Ordering::Relaxed);
    // SAFETY: traps run with sstatus.SIE clear on the hart `cpu_id` reads;
    // user traps come from the task the services name.
    unsafe { ENGINE.handle_breakpoint(regs, mode) }
}

/// The dispatch (see the module documentation); returns [`RESUME`] or
/// [`LEAVE_USER`].
#[link_section = "kernel_trap_text"]
extern "C" fn strap_handler(frame: &mut TrapFrame) -> usize {
    let regs = &mut frame.regs;
    let from_user = regs.status & SSTATUS_SPP == 0;
    let mode = if from_user {
        ExecMode::User
    } else {
        ExecMode::Kernel
    };
    if regs.cause & cause::INTERRUPT != 0 {
        fatal(regs, "unexpected interrupt (none is enabled)");
    }
    match regs.cause {
        cause::BREAKPOINT => match breakpoint(regs, mode) {
            TrapOutcome::Handled => RESUME,
            TrapOutcome::Fault { .. } if from_user => {
                // What SIGSEGV would do: the run ends.
                regs.a0 = user::FAULTED;
                LEAVE_USER
            }
            TrapOutcome::Fault { .. } => fatal(regs, "a simulated instruction faulted"),
            _ if from_user => {
                // What SIGTRAP would do: the run ends.
                regs.a0 = user::BREAKPOINT_NOT_OURS;
                LEAVE_USER
            }
            _ => fatal(regs, "a breakpoint the engine did not write"),
        },
        cause::INSN_MISALIGNED
        | cause::INSN_ACCESS
        | cause::ILLEGAL_INSN
        | cause::LOAD_MISALIGNED
        | cause::LOAD_ACCESS
        | cause::STORE_MISALIGNED
        | cause::STORE_ACCESS
        | cause::INSN_PAGE_FAULT
        | cause::LOAD_PAGE_FAULT
        | cause::STORE_PAGE_FAULT => {
            let trap_pc = regs.epc;
            // SAFETY: as for breakpoints above.
            let outcome = unsafe { ENGINE.handle_fault(regs, mode) };
            record_fault(FaultRecord {
                cause: regs.cause,
                trap_pc,
                pc: regs.epc,
                badaddr: regs.badaddr,
                step_aborted: outcome == FaultOutcome::StepAborted,
                user: from_user,
            });
            if from_user {
                // What a fatal signal would do: the run ends.
                regs.a0 = user::FAULTED;
                return LEAVE_USER;
            }
            match fixup::lookup(regs.epc) {
                Some(resume) => {
                    regs.epc = resume;
                    RESUME
                }
                None => fatal(regs, "kernel fault with no fix-up"),
            }
        }
        cause::ECALL_FROM_U => LEAVE_USER,
        _ => fatal(regs, "unexpected exception"),
    }
}

/// Report a trap the kernel cannot handle and end the run.
#[link_section = "kernel_trap_text"]
fn fatal(regs: &PtRegs, why: &str) -> ! {
    print_unlocked(format_args!(
        "\nFATAL on hart {}: {why}: scause {:#x}, sepc {:#x}, stval {:#x}, sstatus {:#x}, ra {:#x}, sp {:#x}\n",
        hart_id(),
        regs.cause,
        regs.epc,
        regs.badaddr,
        regs.status,
        regs.ra,
        regs.sp
    ));
    exit::fail(0x46)
}
