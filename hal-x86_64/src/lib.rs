//! # probe-hal-x86_64: the x86_64 backend of the probe engine
//!
//! Implements [`probe_hal::Arch`] for x86_64 as [`X86_64`], following what
//! Linux does for kprobes and uprobes on x86 (arch/x86/kernel/kprobes/,
//! arch/x86/kernel/uprobes.c):
//!
//! - the probe breakpoint is `int3` (0xcc) over an instruction of any length;
//!   the trap reports the byte after it;
//! - instructions are decoded with `yaxpeax-x86` in 64-bit mode and each gets
//!   one of three answers ([`decode`](probe_hal::Arch::decode)):
//!   - **simulated** on the trap frame: `jmp rel8/rel32`, `call rel32`, every
//!     `jcc`, `loop`/`loope`/`loopne`/`jrcxz`/`jecxz`, `ret`, `ret imm16`,
//!     `call`/`jmp` through a register, `call`/`jmp` through memory
//!     (beyond Linux's kprobes: the target is read through the engine's
//!     `DataAccess`, a fault there is reported as the instruction's own),
//!     and in kernel mode `cli`/`sti`/`pushf`/`popf` (so IF is never
//!     corrupted by the step);
//!   - **stepped out of line** in a slot of [`SLOT_LEN`](probe_hal::Arch::SLOT_LEN)
//!     bytes: the copy (its rip-relative displacement recomputed for the
//!     slot; the slot must be within ±2 GiB of the data, or the probe is
//!     refused with `OutOfReach`), then `int3`, or for a boosted probe a
//!     `jmp rel32` back, so a hit costs one trap;
//!   - **refused** with a reason: far transfers, `int3`/`int n`/`int1`,
//!     `iret`, `syscall`/`sysret`/`sysenter`/`sysexit`, `swapgs`, `hlt`,
//!     `mwait`, `ud0/1/2`, TSX boundaries, VM and enclave transitions,
//!     `mov ss`, `call`/`jmp` through an fs:/gs: operand, branches with a
//!     0x66 prefix,
//!     `endbr64` (probe after it: [`entry_skip`](probe_hal::Arch::entry_skip)
//!     skips it at function entries), and bytes that do not decode;
//! - in kernel mode the step runs with IF cleared and the step-end trap
//!   restores it; a fault inside the slot puts rip back at the probe address;
//! - return probes: [`hijack_return`](probe_hal::Arch::hijack_return) swaps
//!   `[rsp]` at function entry; the code trampoline
//!   ([`kernel_trampoline`](probe_hal::Arch::kernel_trampoline)) builds a
//!   [`PtRegs`] and calls [`probe_hal::rethook::dispatch_return`]; user-mode
//!   return probes use an `int3` in the process's slot page instead.
//!
//! The trap frame is reached through [`probe_hal::Registers`]; [`PtRegs`] is
//! the Linux layout for kernels that have no frame of their own, and
//! [`CALL_ABI`] the System V argument registers.
//!
//! ## What the kernel must provide
//! In ring 0 an `int3` taken on the same stack writes the CPU's exception
//! frame just below the interrupted `rsp`, which is exactly where a
//! simulated `call`, `pushf` or the return address of a `call reg` or
//! `call [mem]` goes: the breakpoint entry must switch stacks (an IST
//! entry) or leave a gap below the interrupted frame, as Linux's `int3`
//! entry does. Slots for kernel
//! probes must be mapped executable within ±2 GiB of the probed code (for
//! rip-relative data) and, to be boosted, of the return point.
//!
//! ## CET shadow stacks
//! Simulated calls and returns (`call rel32`, `call reg`, `call [mem]`,
//! `ret`) move the ordinary stack only and **do not update a CET shadow
//! stack** (the [`probe_hal::Registers`] contract has no shadow-stack
//! pointer). Kernel code runs without one. A kernel that lets user tasks
//! enable shadow stacks must use [`X86_64UserShadowStack`] as its `Arch`,
//! which refuses user probes on those instructions, and must not put user
//! return probes on such tasks.
//!
//! No allocation, no `std`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

mod boost;
mod decode;
mod frame_macro;
mod memop;
mod opmask;
mod optprobe;
pub mod pt_regs_view;
mod refusals;
mod reg_names;
mod regs;
mod rethook;
mod simulate;
mod single_step;
mod slot;

use probe_hal::{
    Arch, Breakpoint, DataAccess, Decoded, ExecMode, MemoryFault, OptRegion, ProbeError, Registers,
    SiteRule, SlotImage,
};

pub use decode::{Insn, Op, RipRelative, Step};
pub use pt_regs_view::{pt_regs_mut, with_pt_regs};
pub use reg_names::RegNames;
pub use regs::{gpr, rflags, PtRegs, CALL_ABI};
pub use rethook::trampoline_address;
pub use simulate::{condition_holds, popf_result, Base, Emulation, LoopKind, MemOperand};
pub use single_step::StepState;

#[doc(hidden)]
pub use probe_hal as __probe_hal;

/// The x86_64 instruction set, as a [`probe_hal::Arch`] backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct X86_64;

/// [`X86_64`] for a kernel that lets user tasks run with CET shadow
/// stacks: the same backend, except that user probes on the instructions it
/// would simulate as a call or a return (`call rel32`, `call reg`,
/// `call [mem]`, `ret`, `ret imm16`) are refused with the reason, since the
/// simulation does not update the shadow stack (see the module
/// documentation). The backend cannot tell which tasks have a shadow stack,
/// so the choice is per kernel. User return probes replace the return
/// address on the ordinary stack only: keep them off such tasks too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct X86_64UserShadowStack;

/// `impl Arch` for [`X86_64`] and [`X86_64UserShadowStack`], which differ
/// only in what `decode` refuses in user mode.
macro_rules! impl_arch {
    ($ty:ty, $user_shadow_stacks:expr) => {
        impl Arch for $ty {
            const NAME: &'static str = "x86_64";
            const INSN_ALIGN: usize = 1;
            const MAX_INSN_LEN: usize = decode::MAX_INSN_LEN;
            const SLOT_LEN: usize = slot::SLOT_LEN;
            /// `ret imm16` pops up to 0xffff bytes of arguments with the return
            /// address.
            const RETURN_FRAME_SLACK: usize = 0xffff;

            type Insn = Insn;
            type StepState = StepState;

            fn insn_len(bytes: &[u8]) -> Option<usize> {
                decode::insn_len(bytes)
            }

            fn decode(
                addr: usize,
                bytes: &[u8],
                mode: ExecMode,
            ) -> Result<Decoded<Insn>, ProbeError> {
                let d = decode::decode(addr, bytes, mode)?;
                if $user_shadow_stacks
                    && mode == ExecMode::User
                    && d.insn.is_simulated_call_or_return()
                {
                    return Err(ProbeError::refused(
                        refusals::contextual::USER_SHADOW_STACK,
                        addr,
                    ));
                }
                Ok(d)
            }

            fn entry_skip(bytes: &[u8]) -> usize {
                decode::entry_skip(bytes)
            }

            #[link_section = "probe_trap_text"]
            fn breakpoint(insn_len: usize, mode: ExecMode) -> Breakpoint {
                slot::breakpoint(insn_len, mode)
            }

            fn return_breakpoint(mode: ExecMode) -> Breakpoint {
                slot::breakpoint(1, mode)
            }

            #[link_section = "probe_trap_text"]
            fn trap_address(pc: usize) -> usize {
                slot::trap_address(pc)
            }

            fn build_slot(
                insn: &Decoded<Insn>,
                orig: &[u8],
                addr: usize,
                slot: usize,
                _mode: ExecMode,
                boost: bool,
            ) -> Result<SlotImage, ProbeError> {
                slot::build(insn, orig, addr, slot, boost)
            }

            #[link_section = "probe_trap_text"]
            fn prepare_step<R: Registers + ?Sized>(
                insn: &Decoded<Insn>,
                regs: &mut R,
                slot: usize,
                boosted: bool,
            ) -> StepState {
                single_step::prepare(&insn.insn, regs, slot, boosted)
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
                single_step::finish(&insn.insn, regs, addr, state);
                Ok(())
            }

            #[link_section = "probe_trap_text"]
            fn abort_step<R: Registers + ?Sized>(
                insn: &Decoded<Insn>,
                regs: &mut R,
                addr: usize,
                state: StepState,
            ) {
                single_step::abort(&insn.insn, regs, addr, state)
            }

            #[link_section = "probe_trap_text"]
            fn simulate<R: Registers + ?Sized>(
                insn: &Decoded<Insn>,
                addr: usize,
                regs: &mut R,
                mem: &dyn DataAccess,
            ) -> Result<(), MemoryFault> {
                match insn.insn.op() {
                    Op::Emulate(e) => simulate::emulate(e, addr, insn.len, regs, mem),
                    // The engine only simulates what decode marked `Simulate`; a
                    // stepped instruction asked to be simulated is left untouched.
                    Op::Step(_) => Ok(()),
                }
            }

            #[link_section = "probe_trap_text"]
            fn hijack_return<R: Registers + ?Sized>(
                regs: &mut R,
                mem: &dyn DataAccess,
                trampoline: usize,
            ) -> Result<usize, MemoryFault> {
                rethook::hijack(regs, mem, trampoline)
            }

            #[link_section = "probe_trap_text"]
            fn entry_frame<R: Registers + ?Sized>(regs: &R) -> usize {
                rethook::entry_frame(regs)
            }

            #[link_section = "probe_trap_text"]
            fn return_frame<R: Registers + ?Sized>(regs: &R) -> usize {
                rethook::return_frame(regs)
            }

            fn kernel_trampoline() -> Option<usize> {
                rethook::trampoline_address()
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
                // Path (b) of a detour resumes through a `ret` that no `call`
                // pushed, which a user shadow stack would refuse.
                if $user_shadow_stacks && mode == ExecMode::User {
                    return Err(SiteRule::NotSupported);
                }
                optprobe::region::analyze(addr, function, text, may_fault, mode)
            }

            fn build_detour(
                region: &OptRegion,
                detour_addr: usize,
                cookie: usize,
                mask_interrupts: bool,
                out: &mut [u8],
            ) -> Result<usize, SiteRule> {
                let entry = optprobe::entry::entry_address().ok_or(SiteRule::NotSupported)?;
                optprobe::detour::build(region, detour_addr, cookie, mask_interrupts, entry, out)
            }

            fn optimized_jump(
                addr: usize,
                detour_addr: usize,
                out: &mut [u8],
            ) -> Result<usize, SiteRule> {
                optprobe::detour::jump(addr, detour_addr, out)
            }

            fn detour_displaced_offset(_region: &OptRegion, detour_addr: usize) -> Option<usize> {
                let entry = optprobe::entry::entry_address()?;
                Some(optprobe::detour::displaced_at(detour_addr, entry))
            }
        }
    };
}

impl_arch!(X86_64, false);
impl_arch!(X86_64UserShadowStack, true);

#[cfg(test)]
mod tests;
