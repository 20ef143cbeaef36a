//! # probe-hal-riscv64: the RV64GC backend of the probe engine
//!
//! [`Riscv64`] implements [`probe_hal::Arch`] for riscv64 with the C
//! extension, in kernel (S-mode) and user (U-mode) code:
//!
//! - **Decoding** ([`decode`]): our own RV64GC decoder gives each encoding's
//!   length and one of three decisions, from data tables that cite the ISA
//!   manual. Like Linux it refuses the SYSTEM-opcode instructions (`ecall`,
//!   `ebreak`, `sret`, `wfi`, CSR accesses) and `c.ebreak`; beyond Linux it
//!   steps `fence`, `fence.tso`, `pause`, `fence.i`, the floating-point CSR
//!   accesses and the `cycle`/`time`/`instret` reads, whose effect does not
//!   depend on where they run. Every instruction that reads or
//!   writes the pc (`jal`, `jalr`, `auipc`, the branches, `c.j`, `c.jr`,
//!   `c.jalr`, `c.beqz`, `c.bnez`) is **simulated** on the trap frame
//!   ([`simulate`]); everything else is stepped out of line. Beyond Linux,
//!   `lr`/`sc` and addresses inside an LR/SC sequence are refused
//!   ([`sequence`]), and reserved or unknown encodings are undecodable.
//! - **Breakpoints** ([`breakpoint`]): `c.ebreak` over a 16-bit instruction,
//!   `ebreak` over a 32-bit one. Instructions are 2-byte aligned
//!   (`INSN_ALIGN` = 2), so 32-bit instructions at 2-byte-aligned addresses
//!   are probed as well; odd addresses are refused.
//! - **Out-of-line step** ([`slot`]): the slot is `[instruction][ebreak]`;
//!   a kernel-mode step runs with interrupts disabled.
//! - **Return probes** ([`rethook`]): `ra` is swapped for the trampoline at
//!   function entry; the kernel trampoline saves a full [`PtRegs`] and
//!   calls back into the engine through [`probe_hal::rethook`]. User mode
//!   uses an `ebreak` in the task's slot area.
//! - **Trap frame** ([`regs`]): [`PtRegs`] in Linux's `pt_regs` layout, for
//!   kernels without a frame type of their own. A kernel that has one
//!   implements [`probe_hal::Registers`] on it instead; to let kernel steps
//!   run with interrupts off, its `flags`/`set_flags` must read and write
//!   the frame's `sstatus` image (bit SPIE).
//!
//! - **Jump optimisation** (`optprobe`): a kernel probe's breakpoint may be
//!   replaced by `jal x0` to a detour within ±1 MiB that calls the engine
//!   without a trap and resumes a moved pc through `sret`.
//!
//! Text patching is the kernel's job: on riscv a 4-byte `ebreak` at a
//! 2-byte-aligned address is not an atomic store, so the kernel stops the
//! other harts while patching and makes the bytes visible to instruction
//! fetch on every hart (`fence.i` locally and remotely).
//!
//! Nothing here allocates, and nothing needs `std`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

pub mod breakpoint;
pub mod decode;
mod frame_macro;
mod optprobe;
pub mod pt_regs_view;
#[cfg(doctest)]
mod readme;
mod reg_names;
pub mod regs;
pub mod rethook;
pub mod sequence;
pub mod simulate;
pub mod slot;

pub use decode::{Cond, Flow, Insn};
pub use pt_regs_view::{pt_regs_mut, with_pt_regs};
pub use reg_names::RegNames;
pub use regs::{PtRegs, CALL_ABI};

#[doc(hidden)]
pub use probe_hal as __probe_hal;
pub use slot::StepState;

use probe_hal::{
    Arch, Breakpoint, DataAccess, Decoded, ExecMode, MemoryFault, OptRegion, ProbeError, Registers,
    SiteRule, SlotImage,
};

/// The riscv64 (RV64GC) backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Riscv64;

impl Arch for Riscv64 {
    const NAME: &'static str = "riscv64";
    const INSN_ALIGN: usize = 2;
    const MAX_INSN_LEN: usize = 4;
    const SLOT_LEN: usize = slot::SLOT_LEN;
    const LOOK_BACK: usize = sequence::LOOK_BACK;

    type Insn = Insn;
    type StepState = StepState;

    fn insn_len(bytes: &[u8]) -> Option<usize> {
        decode::insn_len(bytes)
    }

    fn decode(addr: usize, bytes: &[u8], mode: ExecMode) -> Result<Decoded<Insn>, ProbeError> {
        decode::decode(addr, bytes, mode)
    }

    fn check_sequence(addr: usize, before: &[u8], _mode: ExecMode) -> Result<(), ProbeError> {
        sequence::check(addr, before)
    }

    #[link_section = "probe_trap_text"]
    fn breakpoint(insn_len: usize, _mode: ExecMode) -> Breakpoint {
        breakpoint::probe_breakpoint(insn_len)
    }

    fn return_breakpoint(_mode: ExecMode) -> Breakpoint {
        breakpoint::EBREAK_BREAKPOINT
    }

    #[link_section = "probe_trap_text"]
    fn trap_address(pc: usize) -> usize {
        // sepc points at the ebreak itself.
        pc
    }

    fn build_slot(
        insn: &Decoded<Insn>,
        orig: &[u8],
        addr: usize,
        _slot: usize,
        _mode: ExecMode,
        _boost: bool,
    ) -> Result<SlotImage, ProbeError> {
        slot::build_slot(insn, orig, addr)
    }

    #[link_section = "probe_trap_text"]
    fn prepare_step<R: Registers + ?Sized>(
        insn: &Decoded<Insn>,
        regs: &mut R,
        slot: usize,
        _boosted: bool,
    ) -> StepState {
        slot::prepare_step(insn, regs, slot)
    }

    #[link_section = "probe_trap_text"]
    fn finish_step<R: Registers + ?Sized>(
        insn: &Decoded<Insn>,
        regs: &mut R,
        addr: usize,
        _slot: usize,
        state: StepState,
        _mem: &dyn DataAccess,
    ) -> Result<(), MemoryFault> {
        slot::finish_step(insn, regs, addr, state);
        Ok(())
    }

    #[link_section = "probe_trap_text"]
    fn abort_step<R: Registers + ?Sized>(
        _insn: &Decoded<Insn>,
        regs: &mut R,
        addr: usize,
        state: StepState,
    ) {
        slot::abort_step(regs, addr, state);
    }

    #[link_section = "probe_trap_text"]
    fn simulate<R: Registers + ?Sized>(
        insn: &Decoded<Insn>,
        addr: usize,
        regs: &mut R,
        _mem: &dyn DataAccess,
    ) -> Result<(), MemoryFault> {
        // Only `Handling::Simulate` instructions carry a flow; the engine
        // never simulates a stepped one.
        if let Some(flow) = insn.insn.flow {
            simulate::simulate(flow, addr, insn.len, regs);
        }
        Ok(())
    }

    #[link_section = "probe_trap_text"]
    fn hijack_return<R: Registers + ?Sized>(
        regs: &mut R,
        mem: &dyn DataAccess,
        trampoline: usize,
    ) -> Result<usize, MemoryFault> {
        rethook::hijack_return(regs, mem, trampoline)
    }

    #[link_section = "probe_trap_text"]
    fn entry_frame<R: Registers + ?Sized>(regs: &R) -> usize {
        rethook::frame_id(regs)
    }

    #[link_section = "probe_trap_text"]
    fn return_frame<R: Registers + ?Sized>(regs: &R) -> usize {
        rethook::frame_id(regs)
    }

    fn kernel_trampoline() -> Option<usize> {
        rethook::kernel_trampoline()
    }

    const OPT_JUMP_LEN: usize = optprobe::JUMP_LEN;
    const DETOUR_LEN: usize = optprobe::detour::DETOUR_LEN;
    const OPT_REACH: usize = optprobe::REACH;

    fn analyze_optimizable(
        addr: usize,
        function: core::ops::Range<usize>,
        text: &dyn DataAccess,
        may_fault: &dyn Fn(usize) -> bool,
        mode: ExecMode,
    ) -> Result<OptRegion, SiteRule> {
        optprobe::region::analyze(addr, function, text, may_fault, mode)
    }

    fn build_detour(
        region: &OptRegion,
        detour_addr: usize,
        cookie: usize,
        mask_interrupts: bool,
        out: &mut [u8],
    ) -> Result<usize, SiteRule> {
        let entry = optprobe::entry_address().ok_or(SiteRule::NotSupported)?;
        optprobe::detour::build(region, detour_addr, cookie, mask_interrupts, entry, out)
    }

    fn optimized_jump(addr: usize, detour_addr: usize, out: &mut [u8]) -> Result<usize, SiteRule> {
        optprobe::detour::jump(addr, detour_addr, out)
    }

    fn detour_displaced_offset(_region: &OptRegion, _detour_addr: usize) -> Option<usize> {
        Some(optprobe::detour::DISPLACED_AT)
    }
}
