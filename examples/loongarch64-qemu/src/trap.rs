//! The exception entry: one 4 KiB-aligned entry (`EENTRY`, vector spacing
//! 0) for every exception. It saves every general register and ERA, BADV,
//! CRMD, PRMD, EUEN, ECFG, ESTAT into a [`probe_hal_loongarch64::PtRegs`]
//! (followed by the floating-point state, which the Rust handlers may
//! use), calls [`trap_dispatch`], and returns with `ertn` to whatever ERA
//! and PRMD the handlers left in the frame.
//!
//! A trap from PLV3 switches to the kernel stack kept in `SAVE1`; a trap
//! from PLV0 pushes its frame below the interrupted stack pointer (the
//! LoongArch ABI has no red zone), so traps nest (a probe hit inside a
//! handler, a fault inside a slot). The entries and the Rust functions of
//! the trap path sit in their own linker sections, which the kernel's
//! blacklist covers.
//!
//! Dispatch: `break` (Ecode 0xc) goes to the engine's breakpoint entry;
//! address errors, alignment errors and TLB/page exceptions go to the
//! engine's fault entry and then to the kernel's fix-up table
//! ([`crate::fixup`]) or, at PLV3, end the user task; `syscall` from PLV3
//! is the user task's way back to the kernel ([`crate::user`]).

use core::sync::atomic::{AtomicUsize, Ordering};

use probe_core::{ExecMode, FaultOutcome, TrapOutcome};
use probe_hal_loongarch64::PtRegs;

use crate::csr;
use crate::kernel::ENGINE;

/// What the entry saves: the engine's frame, then the FP registers.
#[repr(C)]
pub struct TrapFrame {
    /// General registers and exception CSRs, as Linux lays them out.
    pub regs: PtRegs,
    /// `$f0`-`$f31`.
    pub fpr: [u64; 32],
    /// `$fcsr0`.
    pub fcsr: u64,
    /// `$fcc0`-`$fcc7`, one byte each.
    pub fcc: [u8; 8],
}

/// Bytes the entry reserves on the stack.
pub const FRAME_SIZE: usize = core::mem::size_of::<TrapFrame>();
const _: () = {
    assert!(FRAME_SIZE == 592 && FRAME_SIZE.is_multiple_of(16));
    assert!(core::mem::offset_of!(TrapFrame, fpr) == 320);
    assert!(core::mem::offset_of!(TrapFrame, fcsr) == 576);
    assert!(core::mem::offset_of!(TrapFrame, fcc) == 584);
};

/// Exception codes (`ESTAT.Ecode`, vol. 1 §7.4.6).
pub mod ecode {
    /// Page invalid for a load.
    pub const PIL: usize = 0x1;
    /// Page invalid for a store.
    pub const PIS: usize = 0x2;
    /// Page invalid for an instruction fetch.
    pub const PIF: usize = 0x3;
    /// Page modification (store to a clean page).
    pub const PME: usize = 0x4;
    /// Page not readable.
    pub const PNR: usize = 0x5;
    /// Page not executable.
    pub const PNX: usize = 0x6;
    /// Page privilege level illegal.
    pub const PPI: usize = 0x7;
    /// Address error (EsubCode 0: fetch, 1: memory access).
    pub const ADE: usize = 0x8;
    /// Address alignment error.
    pub const ALE: usize = 0x9;
    /// Bound check error.
    pub const BCE: usize = 0xa;
    /// `syscall`.
    pub const SYS: usize = 0xb;
    /// `break`.
    pub const BRK: usize = 0xc;
    /// Instruction not exist (an encoding the CPU does not implement).
    pub const INE: usize = 0xd;
    /// LSX disabled (`EUEN.SXE` clear).
    pub const SXD: usize = 0x10;
    /// LASX disabled (`EUEN.ASXE` clear).
    pub const ASXD: usize = 0x11;
    /// LBT disabled (`EUEN.BTE` clear).
    pub const BTD: usize = 0x12;
}

core::arch::global_asm!(
    ".pushsection .text.trap_entry, \"ax\"",
    ".p2align 12",
    ".globl trap_entry",
    "trap_entry:",
    "csrwr $t0, {save0}",
    "csrrd $t0, {prmd}",
    "andi $t0, $t0, 3",
    "beqz $t0, 1f",
    // From PLV3: the kernel stack of this CPU's user task.
    "csrwr $sp, {save2}",
    "csrrd $sp, {save1}",
    "addi.d $sp, $sp, -{frame}",
    "csrrd $t0, {save2}",
    "b 2f",
    "1:",
    "move $t0, $sp",
    "addi.d $sp, $sp, -{frame}",
    "2:",
    "st.d $t0, $sp, 24",
    "st.d $zero, $sp, 0",
    "st.d $r1, $sp, 8",
    "st.d $r2, $sp, 16",
    "st.d $r4, $sp, 32",
    "st.d $r5, $sp, 40",
    "st.d $r6, $sp, 48",
    "st.d $r7, $sp, 56",
    "st.d $r8, $sp, 64",
    "st.d $r9, $sp, 72",
    "st.d $r10, $sp, 80",
    "st.d $r11, $sp, 88",
    "st.d $r13, $sp, 104",
    "st.d $r14, $sp, 112",
    "st.d $r15, $sp, 120",
    "st.d $r16, $sp, 128",
    "st.d $r17, $sp, 136",
    "st.d $r18, $sp, 144",
    "st.d $r19, $sp, 152",
    "st.d $r20, $sp, 160",
    "st.d $r21, $sp, 168",
    "st.d $r22, $sp, 176",
    "st.d $r23, $sp, 184",
    "st.d $r24, $sp, 192",
    "st.d $r25, $sp, 200",
    "st.d $r26, $sp, 208",
    "st.d $r27, $sp, 216",
    "st.d $r28, $sp, 224",
    "st.d $r29, $sp, 232",
    "st.d $r30, $sp, 240",
    "st.d $r31, $sp, 248",
    "csrrd $t0, {save0}",
    "st.d $t0, $sp, 96",
    "st.d $a0, $sp, 256",
    "csrrd $t0, {era}",
    "st.d $t0, $sp, 264",
    "csrrd $t0, {badv}",
    "st.d $t0, $sp, 272",
    "csrrd $t0, {crmd}",
    "st.d $t0, $sp, 280",
    "csrrd $t0, {prmd}",
    "st.d $t0, $sp, 288",
    "csrrd $t0, {euen}",
    "st.d $t0, $sp, 296",
    "csrrd $t0, {ecfg}",
    "st.d $t0, $sp, 304",
    "csrrd $t0, {estat}",
    "st.d $t0, $sp, 312",
    "fst.d $f0, $sp, 320",
    "fst.d $f1, $sp, 328",
    "fst.d $f2, $sp, 336",
    "fst.d $f3, $sp, 344",
    "fst.d $f4, $sp, 352",
    "fst.d $f5, $sp, 360",
    "fst.d $f6, $sp, 368",
    "fst.d $f7, $sp, 376",
    "fst.d $f8, $sp, 384",
    "fst.d $f9, $sp, 392",
    "fst.d $f10, $sp, 400",
    "fst.d $f11, $sp, 408",
    "fst.d $f12, $sp, 416",
    "fst.d $f13, $sp, 424",
    "fst.d $f14, $sp, 432",
    "fst.d $f15, $sp, 440",
    "fst.d $f16, $sp, 448",
    "fst.d $f17, $sp, 456",
    "fst.d $f18, $sp, 464",
    "fst.d $f19, $sp, 472",
    "fst.d $f20, $sp, 480",
    "fst.d $f21, $sp, 488",
    "fst.d $f22, $sp, 496",
    "fst.d $f23, $sp, 504",
    "fst.d $f24, $sp, 512",
    "fst.d $f25, $sp, 520",
    "fst.d $f26, $sp, 528",
    "fst.d $f27, $sp, 536",
    "fst.d $f28, $sp, 544",
    "fst.d $f29, $sp, 552",
    "fst.d $f30, $sp, 560",
    "fst.d $f31, $sp, 568",
    "movfcsr2gr $t0, $fcsr0",
    "st.d $t0, $sp, 576",
    "movcf2gr $t0, $fcc0",
    "st.b $t0, $sp, 584",
    "movcf2gr $t0, $fcc1",
    "st.b $t0, $sp, 585",
    "movcf2gr $t0, $fcc2",
    "st.b $t0, $sp, 586",
    "movcf2gr $t0, $fcc3",
    "st.b $t0, $sp, 587",
    "movcf2gr $t0, $fcc4",
    "st.b $t0, $sp, 588",
    "movcf2gr $t0, $fcc5",
    "st.b $t0, $sp, 589",
    "movcf2gr $t0, $fcc6",
    "st.b $t0, $sp, 590",
    "movcf2gr $t0, $fcc7",
    "st.b $t0, $sp, 591",
    "move $a0, $sp",
    "bl {dispatch}",
    "ld.bu $t0, $sp, 584",
    "movgr2cf $fcc0, $t0",
    "ld.bu $t0, $sp, 585",
    "movgr2cf $fcc1, $t0",
    "ld.bu $t0, $sp, 586",
    "movgr2cf $fcc2, $t0",
    "ld.bu $t0, $sp, 587",
    "movgr2cf $fcc3, $t0",
    "ld.bu $t0, $sp, 588",
    "movgr2cf $fcc4, $t0",
    "ld.bu $t0, $sp, 589",
    "movgr2cf $fcc5, $t0",
    "ld.bu $t0, $sp, 590",
    "movgr2cf $fcc6, $t0",
    "ld.bu $t0, $sp, 591",
    "movgr2cf $fcc7, $t0",
    "ld.d $t0, $sp, 576",
    "movgr2fcsr $fcsr0, $t0",
    "fld.d $f0, $sp, 320",
    "fld.d $f1, $sp, 328",
    "fld.d $f2, $sp, 336",
    "fld.d $f3, $sp, 344",
    "fld.d $f4, $sp, 352",
    "fld.d $f5, $sp, 360",
    "fld.d $f6, $sp, 368",
    "fld.d $f7, $sp, 376",
    "fld.d $f8, $sp, 384",
    "fld.d $f9, $sp, 392",
    "fld.d $f10, $sp, 400",
    "fld.d $f11, $sp, 408",
    "fld.d $f12, $sp, 416",
    "fld.d $f13, $sp, 424",
    "fld.d $f14, $sp, 432",
    "fld.d $f15, $sp, 440",
    "fld.d $f16, $sp, 448",
    "fld.d $f17, $sp, 456",
    "fld.d $f18, $sp, 464",
    "fld.d $f19, $sp, 472",
    "fld.d $f20, $sp, 480",
    "fld.d $f21, $sp, 488",
    "fld.d $f22, $sp, 496",
    "fld.d $f23, $sp, 504",
    "fld.d $f24, $sp, 512",
    "fld.d $f25, $sp, 520",
    "fld.d $f26, $sp, 528",
    "fld.d $f27, $sp, 536",
    "fld.d $f28, $sp, 544",
    "fld.d $f29, $sp, 552",
    "fld.d $f30, $sp, 560",
    "fld.d $f31, $sp, 568",
    "ld.d $t0, $sp, 264",
    "csrwr $t0, {era}",
    "ld.d $t0, $sp, 288",
    "csrwr $t0, {prmd}",
    probe_hal_loongarch64::restore_gprs_from_sp!(),
    "ld.d $sp, $sp, 24",
    "ertn",
    // TLB refill (hardware switches to direct address mode): nothing here
    // is mapped through the TLB, so a refill is a kernel bug.
    ".popsection",
    ".pushsection .text.tlb_refill, \"ax\"",
    ".p2align 12",
    ".globl tlb_refill_entry",
    "tlb_refill_entry:",
    "csrrd $a0, 0x89",
    "csrrd $a1, 0x8a",
    "addi.d $sp, $sp, -64",
    "bl {refill}",
    "3:",
    "b 3b",
    ".popsection",
    save0 = const csr::SAVE0,
    save1 = const csr::SAVE1,
    save2 = const csr::SAVE2,
    prmd = const csr::PRMD,
    era = const csr::ERA,
    badv = const csr::BADV,
    crmd = const csr::CRMD,
    euen = const csr::EUEN,
    ecfg = const csr::ECFG,
    estat = const csr::ESTAT,
    frame = const FRAME_SIZE,
    dispatch = sym trap_dispatch,
    refill = sym tlb_refill_fatal,
);

extern "C" {
    fn trap_entry();
    fn tlb_refill_entry();
}

/// The code range of the exception entries and the Rust trap path placed
/// after them (never to be probed).
pub fn entry_range() -> core::ops::Range<usize> {
    trap_entry as *const () as usize..crate::kernel::linker_addr!(__trap_text_end)
}

/// Point this CPU's exceptions at our entries; `SAVE1` starts as the top
/// of its kernel stack.
pub fn init_cpu(cpu: usize) {
    // SAFETY: both entries are 4 KiB aligned (`.p2align 12`) and handle
    // every exception; ECFG = 0 keeps every interrupt masked with one
    // shared entry; SAVE1 is ours (read only by the entry for PLV3 traps).
    unsafe {
        csr::write::<{ csr::EENTRY }>(trap_entry as *const () as usize);
        csr::write::<{ csr::TLBRENTRY }>(tlb_refill_entry as *const () as usize);
        csr::write::<{ csr::ECFG }>(0);
        csr::write::<{ csr::SAVE1 }>(crate::boot::stack_top(cpu));
    }
}

/// A fault the kernel handled, as the checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRecord {
    /// `ESTAT.Ecode`.
    pub ecode: usize,
    /// `ESTAT.EsubCode`.
    pub subcode: usize,
    /// The bad address.
    pub badv: usize,
    /// Where the fault was taken (ERA at entry).
    pub era: usize,
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
    if frame.regs.csr_prmd & csr::PLV_MASK == 3 {
        ExecMode::User
    } else {
        ExecMode::Kernel
    }
}

/// Called by the entry with the saved frame.
#[link_section = ".text.kernel_trap"]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let estat = frame.regs.csr_estat;
    let mode = mode_of(frame);
    match csr::ecode(estat) {
        ecode::BRK => breakpoint(frame, mode),
        ecode::SYS if mode == ExecMode::User => crate::user::syscall(frame),
        ecode::PIL
        | ecode::PIS
        | ecode::PIF
        | ecode::PME
        | ecode::PNR
        | ecode::PNX
        | ecode::PPI
        | ecode::ADE
        | ecode::ALE
        | ecode::BCE
        | ecode::INE
        | ecode::SXD
        | ecode::ASXD
        | ecode::BTD => fault(frame, mode),
        code => fatal(frame, code),
    }
}

/// Breakpoint traps taken per CPU (every `break`: probes, step ends,
/// return breakpoints), so that "no trap" is measured.
static BREAKPOINT_TRAPS: [AtomicUsize; crate::smp::CPUS] =
    [const { AtomicUsize::new(0) }; crate::smp::CPUS];

/// Breakpoint traps taken on CPU `cpu` so far.
pub fn breakpoint_traps(cpu: usize) -> usize {
    BREAKPOINT_TRAPS[cpu].load(Ordering::Relaxed)
}

#[link_section = ".text.kernel_trap"]
fn breakpoint(frame: &mut TrapFrame, mode: ExecMode) {
    BREAKPOINT_TRAPS[csr::cpu_id().min(crate::smp::CPUS - 1)].fetch_add(1, Ordering::Relaxed);
    // A CPU trapping on a breakpoint CPU 0 is removing must still answer
    // its instruction-fetch request, or both would wait for each other.
    crate::smp::icache_point(csr::cpu_id());
    // SAFETY: exceptions run with CRMD.IE cleared on the CPU `cpu_id`
    // reads; user traps come from the task the services name.
    match unsafe { ENGINE.handle_breakpoint(&mut frame.regs, mode) } {
        TrapOutcome::Handled => {}
        TrapOutcome::Fault { addr } => {
            crate::println!(
                "simulated instruction at {:#x} faulted at {addr:#x}",
                frame.regs.csr_era
            );
            match mode {
                ExecMode::User => crate::user::end_task(frame, crate::user::Ending::Break),
                ExecMode::Kernel => crate::exit::fail(),
            }
        }
        _ => match mode {
            ExecMode::User => crate::user::end_task(frame, crate::user::Ending::Break),
            ExecMode::Kernel => {
                crate::println!(
                    "unexpected kernel break at {:#x} (word {:#010x})",
                    frame.regs.csr_era,
                    // SAFETY: ERA is the address of the `break` that
                    // trapped: kernel text, mapped and readable.
                    unsafe { core::ptr::read_volatile(frame.regs.csr_era as *const u32) }
                );
                crate::exit::fail()
            }
        },
    }
}

#[link_section = ".text.kernel_trap"]
fn fault(frame: &mut TrapFrame, mode: ExecMode) {
    let era = frame.regs.csr_era;
    // SAFETY: as in `breakpoint`.
    let outcome = unsafe { ENGINE.handle_fault(&mut frame.regs, mode) };
    let record = FaultRecord {
        ecode: csr::ecode(frame.regs.csr_estat),
        subcode: csr::esubcode(frame.regs.csr_estat),
        badv: frame.regs.csr_badvaddr,
        era,
        pc_after_engine: frame.regs.csr_era,
        step_aborted: outcome == FaultOutcome::StepAborted,
    };
    *LAST_FAULT.lock() = Some(record);
    FAULTS.fetch_add(1, Ordering::AcqRel);
    match mode {
        ExecMode::User => crate::user::end_task(frame, crate::user::Ending::Fault),
        ExecMode::Kernel => match crate::fixup::lookup(frame.regs.csr_era) {
            Some(fix) => frame.regs.csr_era = fix,
            None => {
                crate::println!("unhandled kernel fault: {record:x?}");
                crate::exit::fail()
            }
        },
    }
}

#[link_section = ".text.kernel_trap"]
fn fatal(frame: &TrapFrame, code: usize) -> ! {
    crate::println!(
        "unexpected exception: Ecode {code:#x} EsubCode {:#x} at {:#x} (BADV {:#x}, PRMD {:#x})",
        csr::esubcode(frame.regs.csr_estat),
        frame.regs.csr_era,
        frame.regs.csr_badvaddr,
        frame.regs.csr_prmd
    );
    crate::exit::fail()
}

#[link_section = ".text.kernel_trap"]
extern "C" fn tlb_refill_fatal(badv: usize, era: usize) -> ! {
    crate::println!("TLB refill (unmapped address {badv:#x}) at {:#x}", era & !3);
    crate::exit::fail()
}
