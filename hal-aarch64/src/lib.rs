//! # probe-hal-aarch64: the AArch64 backend of the probe engine
//!
//! [`Aarch64`] implements [`probe_hal::Arch`] for A64 with Linux arm64's
//! rules (`arch/arm64/kernel/probes/`):
//!
//! - **Decoding** ([`decode`]): our own decoder of the A64 encoding
//!   groups, as data tables. Like Linux (`decode-insn.c`) it **simulates**
//!   the branches and pc-relative instructions (`b`, `bl`, `b.cond`,
//!   `cbz`/`cbnz`, `tbz`/`tbnz`, `br`, `blr`, `ret`, `adr`, `adrp`, `ldr`
//!   and `ldrsw` literal; see [`simulate`]) and **refuses** exception
//!   generation (`svc`, `hvc`, `smc`, `brk`, `hlt`, `dcps*`), exception
//!   returns (`eret*`, `drps`), `msr` (immediate and register), `mrs` of
//!   DAIF, hints outside the steppable list, the load/store exclusives and
//!   SIMD&FP literal loads; beyond Linux it refuses the `aut*` hints and the
//!   pointer-authenticated branches, `mrs` of the exception registers the
//!   probe's own trap rewrites (ELR, SPSR, ESR, FAR), `wfet`/`wfit`, the SVE
//!   and SME classes it does not decode, and unallocated words of the
//!   groups it takes apart (the SVE classes compiled code uses and SME's
//!   outer products and ZA loads/stores are decoded and stepped, see
//!   [`decode`]). Everything else is **stepped** out of line, including the
//!   LSE atomics (`cas`, `ldadd`, `swp`: no exclusive monitor involved).
//! - **Exclusive windows** ([`sequence`]): an address after a
//!   load-exclusive whose store-exclusive has not come yet is refused
//!   (look-back of 128 bytes), because the probe's `eret`s clear the
//!   exclusive monitor and the store-exclusive would then fail forever.
//! - **Breakpoints and slots** ([`slot`]): `brk #0x004` marks a kernel probe
//!   and `brk #0x005` a user probe; the slot is `[instruction][brk #0x006]`
//!   (user: `[instruction][brk #0x005]`) and runs with all of DAIF masked.
//! - **Registers** ([`PtRegs`]): Linux's `pt_regs` layout (`user_pt_regs`
//!   then `orig_x0`, `syscallno`) and the C ABI ([`CALL_ABI`]: arguments
//!   `x0`-`x7`, return value `x0`/`x1`). A kernel that implements
//!   [`probe_hal::Registers`] on its own frame maps `pc` to its saved ELR,
//!   `sp` to the interrupted stack pointer, register 31 to zero, and
//!   `flags`/`set_flags` to its saved SPSR: the step masks DAIF there,
//!   `b.cond` reads NZCV from it and simulated branches set BTYPE in it.
//! - **Return probes** ([`rethook`]): `x30` is replaced by a trampoline
//!   that saves the full frame, calls
//!   [`probe_hal::rethook::dispatch_return`] and returns to the real caller.
//!   User-mode return probes use a `brk #0x005` that the engine places in
//!   the task's slot area.
//! - **Jump optimisation** (`optprobe`): a kernel probe's `brk` may be
//!   replaced by `b` to a detour within ±128 MiB that calls the engine
//!   without a trap and resumes a moved pc through `eret`; BTI landing pads
//!   are not optimised.
//!
//! Text patching: the architecture lets another CPU execute an instruction
//! while it is being changed only when both the old and the new instruction
//! are in the CMODX set (`B`, `BL`, `BRK`, `NOP`, `ISB`, `SVC`, `HVC`,
//! `SMC`; Arm ARM B2.2.5). Writing `brk` over an arbitrary instruction, or
//! putting the original back, therefore needs the other CPUs stopped
//! (Linux: `aarch64_insn_patch_text` through `stop_machine`), and the bytes
//! need `dc cvau`, `dsb ish`, `ic ivau`, `dsb ish`, `isb` before they
//! execute: both are the kernel's `write_text`/`sync_icache` services
//! (`examples/aarch64-qemu` shows one way).
//!
//! Every address must be a multiple of 4. The crate is `no_std`, allocates
//! nothing, and builds on any host (the trampoline exists only on
//! aarch64), so the decoder and simulator are tested on the build host.
//!
//! ```
//! use probe_hal_aarch64::Aarch64;
//! use probe_hal::{Arch, ExecMode, Handling};
//! // cbz x0, +8
//! let d = Aarch64::decode(0x1000, &0xb400_0040u32.to_le_bytes(), ExecMode::Kernel).unwrap();
//! assert_eq!(d.handling, Handling::Simulate);
//! // ldaxr w1, [x0] is refused, and says why.
//! let e = Aarch64::decode(0x1000, &0x885f_fc01u32.to_le_bytes(), ExecMode::Kernel).unwrap_err();
//! assert!(e.to_string().starts_with("cannot probe 0x1000: refused instruction `ldaxr`"));
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

pub mod decode;
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

/// Every A64 instruction is one 32-bit word.
const INSN_LEN: usize = 4;

/// The AArch64 backend (a type, not a value: see [`probe_hal::Arch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aarch64;

fn word_at(bytes: &[u8]) -> Option<u32> {
    let b = bytes.get(..INSN_LEN)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl Arch for Aarch64 {
    const NAME: &'static str = "aarch64";
    const INSN_ALIGN: usize = 4;
    const MAX_INSN_LEN: usize = INSN_LEN;
    const SLOT_LEN: usize = slot::SLOT_LEN;
    const LOOK_BACK: usize = sequence::LOOK_BACK;

    type Insn = decode::Insn;
    type StepState = StepState;

    /// Always 4 when four bytes are there: A64 has a fixed length.
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
        slot::as_breakpoint(slot::probe_brk(mode))
    }

    /// `brk #0x004` (kernel, only without a code trampoline) or `brk #0x005`
    /// (user): the engine tells a return breakpoint from a probe by its
    /// address.
    fn return_breakpoint(mode: ExecMode) -> Breakpoint {
        slot::as_breakpoint(slot::probe_brk(mode))
    }

    /// `ELR_EL1` points at the `brk` itself.
    #[link_section = "probe_trap_text"]
    fn trap_address(pc: usize) -> usize {
        pc
    }

    /// `[instruction][brk #0x006]` (user: `brk #0x005`); never boosted.
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
        mem: &dyn DataAccess,
    ) -> Result<(), MemoryFault> {
        match insn.insn.op {
            Op::Simulate(op) => simulate::simulate(op, insn.insn.word, addr, regs, mem),
            Op::Step => Ok(()),
        }
    }

    /// `x30` := `trampoline`; returns the old `x30`.
    #[link_section = "probe_trap_text"]
    fn hijack_return<R: Registers + ?Sized>(
        regs: &mut R,
        _mem: &dyn DataAccess,
        trampoline: usize,
    ) -> Result<usize, MemoryFault> {
        let lr = regs.gpr(regs::LR);
        regs.set_gpr(regs::LR, trampoline);
        Ok(lr)
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
        optprobe::detour::build(
            region,
            detour_addr,
            cookie,
            mask_interrupts,
            optprobe::SAVE_FP,
            entry,
            out,
        )
    }

    fn optimized_jump(addr: usize, detour_addr: usize, out: &mut [u8]) -> Result<usize, SiteRule> {
        optprobe::detour::jump(addr, detour_addr, out)
    }

    fn detour_displaced_offset(_region: &OptRegion, _detour_addr: usize) -> Option<usize> {
        Some(optprobe::detour::DISPLACED_AT)
    }
}
