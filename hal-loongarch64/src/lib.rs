//! # probe-hal-loongarch64: the LoongArch64 backend of the probe engine
//!
//! [`LoongArch64`] implements [`probe_hal::Arch`] for LA64:
//!
//! - **Decoding** ([`decode`]): our own decoder of the base integer,
//!   floating-point and privileged instructions, as data tables. Like Linux
//!   (`arch/loongarch/kernel/inst.c`) it **refuses** `ll`/`sc`, `bceqz`/`bcnez`
//!   and the `AM*` atomics, and beyond Linux every instruction that traps,
//!   returns from an exception or touches privileged state (`break`,
//!   `syscall`, `ertn`, `idle`, `cacop`, `tlb*`, `csr*`, `iocsr*`, `lddir`,
//!   `ldpte`, `dbcl`), the LBT `jiscr0`/`jiscr1` (they write the pc), and
//!   every word it does not know; the LSX, LASX and LBT instructions are
//!   decoded one by one and stepped. It **simulates** the branches and
//!   pc-relative instructions (`b`, `bl`, `beqz`, `bnez`, `beq`, `bne`, `blt`,
//!   `bge`, `bltu`, `bgeu`, `jirl`, `pcaddi`, `pcalau12i`, `pcaddu12i`,
//!   `pcaddu18i`; see [`simulate`]) and **steps** everything else out of line.
//! - **LL/SC windows** ([`sequence`]): an address after an `ll` whose `sc` has
//!   not come yet is refused, because the probe's `ertn` clears LLbit and the
//!   `sc` would then fail forever.
//! - **Breakpoints and slots** ([`slot`]): `break 10` marks a kernel probe and
//!   `break 12` a user probe; the slot is `[instruction][break 11]` (user:
//!   `break 13`) and runs with interrupts masked (`PRMD.PIE` cleared).
//! - **Registers** ([`PtRegs`]): the Linux `pt_regs` layout, and the C ABI
//!   ([`CALL_ABI`]: arguments `a0`-`a7` = `r4`-`r11`, return value `a0`/`a1`).
//!   A kernel that implements [`probe_hal::Registers`] on its own trap frame
//!   maps `pc` to its saved `ERA`, `sp` to `r3`, and `flags`/`set_flags` to
//!   its saved `PRMD`: that is how the step masks interrupts (a frame whose
//!   `flags` stay 0 still works, with interrupts left as they were).
//! - **Return probes** ([`rethook`]): `ra` is replaced by a trampoline that
//!   saves the full frame, calls [`probe_hal::rethook::dispatch_return`] and
//!   returns to the real caller with `ra` set to it. User-mode return probes
//!   use a `break 12` that the engine places in the task's slot area.
//! - **Jump optimisation** (`optprobe`): a kernel probe's `break 10` may be
//!   replaced by `b` to a detour within ±128 MiB that calls the engine
//!   without a trap and resumes a moved pc through `ertn`.
//!
//! Every address must be a multiple of 4. The crate is `no_std`, allocates
//! nothing, and builds on any host (the trampoline exists only on
//! loongarch64), so the decoder and simulator are tested on the build host.
//!
//! ```
//! use probe_hal_loongarch64::LoongArch64;
//! use probe_hal::{Arch, ExecMode, Handling};
//! // beqz $a0, 8
//! let d = LoongArch64::decode(0x1000, &0x4000_0880u32.to_le_bytes(), ExecMode::Kernel).unwrap();
//! assert_eq!(d.handling, Handling::Simulate);
//! // sc.w $t0, $a0, 0 is refused, and says why.
//! let e = LoongArch64::decode(0x1000, &0x2100_008cu32.to_le_bytes(), ExecMode::Kernel).unwrap_err();
//! assert!(e.to_string().starts_with("cannot probe 0x1000: refused instruction `sc.w`"));
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

pub mod decode;
mod frame_asm;
mod frame_macro;
mod optprobe;
pub mod pt_regs_view;
mod reg_names;
pub mod regs;
pub mod rethook;
pub mod sequence;
pub mod simulate;
pub mod slot;

pub use pt_regs_view::{pt_regs_mut, with_pt_regs};
pub use reg_names::RegNames;
pub use regs::{PtRegs, CALL_ABI};
pub use slot::StepState;

#[doc(hidden)]
pub use probe_hal as __probe_hal;

use decode::{decode_word, Op, Verdict};
use probe_hal::{
    Arch, Breakpoint, DataAccess, Decoded, ExecMode, Handling, MemoryFault, OptRegion, ProbeError,
    ProbeErrorKind, Registers, SiteRule, SlotImage,
};

/// Every LoongArch instruction is one 32-bit word.
const INSN_LEN: usize = 4;

/// The LoongArch64 backend (a type, not a value: see [`probe_hal::Arch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoongArch64;

fn word_at(bytes: &[u8]) -> Option<u32> {
    let b = bytes.get(..INSN_LEN)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl Arch for LoongArch64 {
    const NAME: &'static str = "loongarch64";
    const INSN_ALIGN: usize = 4;
    const MAX_INSN_LEN: usize = INSN_LEN;
    const SLOT_LEN: usize = slot::SLOT_LEN;
    const LOOK_BACK: usize = sequence::LOOK_BACK;

    type Insn = decode::Insn;
    type StepState = StepState;

    /// Always 4 when four bytes are there: the encoding has a fixed length,
    /// so instruction boundaries do not depend on what the words mean.
    fn insn_len(bytes: &[u8]) -> Option<usize> {
        word_at(bytes).map(|_| INSN_LEN)
    }

    fn decode(
        addr: usize,
        bytes: &[u8],
        _mode: ExecMode,
    ) -> Result<Decoded<Self::Insn>, ProbeError> {
        if addr % INSN_LEN != 0 {
            return Err(ProbeError::new(
                ProbeErrorKind::Misaligned { align: INSN_LEN },
                addr,
            ));
        }
        let Some(word) = word_at(bytes) else {
            return Err(ProbeError::new(ProbeErrorKind::Undecodable, addr));
        };
        match decode_word(word) {
            Verdict::Accept(insn) => Ok(Decoded {
                len: INSN_LEN,
                handling: match insn.op {
                    Op::Step => Handling::StepOutOfLine { boostable: false },
                    Op::Simulate(_) => Handling::Simulate,
                },
                insn,
            }),
            Verdict::Refuse(r) => Err(ProbeError::refused(r, addr)),
            Verdict::Undecodable => Err(ProbeError::new(ProbeErrorKind::Undecodable, addr)),
        }
    }

    fn check_sequence(addr: usize, before: &[u8], _mode: ExecMode) -> Result<(), ProbeError> {
        match sequence::open_window(before) {
            Some(r) => Err(ProbeError::refused(r, addr)),
            None => Ok(()),
        }
    }

    #[link_section = "probe_trap_text"]
    fn breakpoint(_insn_len: usize, mode: ExecMode) -> Breakpoint {
        slot::as_breakpoint(slot::probe_break(mode))
    }

    /// `break 10` (kernel) or `break 12` (user): the engine tells a return
    /// breakpoint from a probe by its address.
    fn return_breakpoint(mode: ExecMode) -> Breakpoint {
        slot::as_breakpoint(slot::probe_break(mode))
    }

    /// `ERA` points at the `break` itself.
    #[link_section = "probe_trap_text"]
    fn trap_address(pc: usize) -> usize {
        pc
    }

    /// `[instruction][break 11]` (user: `break 13`); never boosted.
    fn build_slot(
        insn: &Decoded<Self::Insn>,
        _orig: &[u8],
        addr: usize,
        _slot: usize,
        mode: ExecMode,
        _boost: bool,
    ) -> Result<SlotImage, ProbeError> {
        match insn.insn.op {
            Op::Step => Ok(slot::build(insn.insn.word, mode)),
            Op::Simulate(_) => Err(ProbeError::new(
                ProbeErrorKind::InvalidRequest("a simulated instruction has no out-of-line slot"),
                addr,
            )),
        }
    }

    #[link_section = "probe_trap_text"]
    fn prepare_step<R: Registers + ?Sized>(
        _insn: &Decoded<Self::Insn>,
        regs: &mut R,
        slot: usize,
        _boosted: bool,
    ) -> StepState {
        slot::prepare(regs, slot)
    }

    #[link_section = "probe_trap_text"]
    fn finish_step<R: Registers + ?Sized>(
        insn: &Decoded<Self::Insn>,
        regs: &mut R,
        addr: usize,
        _slot: usize,
        state: StepState,
        _mem: &dyn DataAccess,
    ) -> Result<(), MemoryFault> {
        slot::restore(regs, addr.wrapping_add(insn.len), state);
        Ok(())
    }

    #[link_section = "probe_trap_text"]
    fn abort_step<R: Registers + ?Sized>(
        _insn: &Decoded<Self::Insn>,
        regs: &mut R,
        addr: usize,
        state: StepState,
    ) {
        slot::restore(regs, addr, state);
    }

    #[link_section = "probe_trap_text"]
    fn simulate<R: Registers + ?Sized>(
        insn: &Decoded<Self::Insn>,
        addr: usize,
        regs: &mut R,
        _mem: &dyn DataAccess,
    ) -> Result<(), MemoryFault> {
        if let Op::Simulate(op) = insn.insn.op {
            simulate::simulate(op, insn.insn.word, addr, regs);
        }
        Ok(())
    }

    /// `ra` (`r1`) := `trampoline`; returns the old `ra`.
    #[link_section = "probe_trap_text"]
    fn hijack_return<R: Registers + ?Sized>(
        regs: &mut R,
        _mem: &dyn DataAccess,
        trampoline: usize,
    ) -> Result<usize, MemoryFault> {
        let ra = regs.gpr(regs::RA);
        regs.set_gpr(regs::RA, trampoline);
        Ok(ra)
    }

    /// The stack pointer at entry: the caller's, which the callee restores
    /// before it returns.
    #[link_section = "probe_trap_text"]
    fn entry_frame<R: Registers + ?Sized>(regs: &R) -> usize {
        regs.sp()
    }

    /// The stack pointer on return, equal to the one at entry.
    #[link_section = "probe_trap_text"]
    fn return_frame<R: Registers + ?Sized>(regs: &R) -> usize {
        regs.sp()
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
