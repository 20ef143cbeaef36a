//! Jump-optimised probes ("optprobes") for aarch64. Linux's arm64 optprobes
//! never reached mainline; the design is this crate's, the same as the
//! riscv64 backend's: the probe's `brk` is replaced by `b detour` (4 bytes,
//! ±128 MiB, writes no register), and the detour calls the engine without
//! a trap.
//!
//! - [`region`]: whether a site can be optimised; the region is always the
//!   probed instruction alone (every A64 instruction is 4 bytes, as is `b`);
//! - [`detour`]: the code of a detour and of the jump;
//! - `entry` (aarch64 builds): the `extern "C"` function a detour calls,
//!   in `probe_trap_text`, which reaches the engine through
//!   [`probe_hal::opthook::dispatch_optimized`].
//!
//! # The detour
//!
//! Reached by the `b` at the probe address `addr` with every register live
//! (AAPCS64 has no red zone). `S` is the probed code's `sp`; the frame is a
//! [`PtRegs`](crate::PtRegs) at `S - 816`, followed by `q0`-`q31`, FPCR
//! and FPSR (the engine and the handlers are Rust code that may use the
//! FP/SIMD registers, which the probed code may hold live; the kernel's own
//! trap entry saves them too).
//!
//! ```text
//!   0  sub  sp, sp, #816
//!   4  stp  x0, x1, [sp] … stp x28, x29 ; str x30    ; 16 stores
//!  68  mrs  x9, nzcv ; mrs x10, daif ; orr x9, x9, x10
//!  80  str  x9, [sp, #264]                          ; the raw NZCV|DAIF
//!  84  msr  daifset, #0xf                           ; with mask_interrupts, else nop
//!  88  stp  q0, q1, [sp, #288] … ; mrs fpcr, fpsr; stp   (nop without FP)
//! 164  mov  x0, sp ; adr x1, literals
//! 172  bl   entry                                   ; ±128 MiB
//! 176  ldp  q0, q1 … ; msr fpcr, fpsr               ; (nop without FP)
//! 252  cbnz x0, resume
//! 256  ldr  x9, [sp, #264] ; msr nzcv, x9 ; msr daif, x9  ; path (a)
//! 268  ldp  x0, x1 … ; ldr x30 ; add sp, sp, #816
//! 336  <the displaced instruction>                  ; DISPLACED_AT (fixed)
//! 340  b    addr + 4
//! 344  resume: mov x30, sp ; ldr x0, [x30, #248] ; mov sp, x0   ; path (b)
//! 356  ldp  x0, x1, [x30] … ; ldr x30, [x30, #240]
//! 420  eret                                         ; pc = ELR_EL1 = the frame's pc
//! 424  .quad addr ; .quad cookie
//! ```
//!
//! The entry fills in what the detour did not: the frame's `pc` (the probe
//! address), `sp` (`S`), `orig_x0` (`x0`), `syscallno` (-1), and rewrites
//! `pstate` to what a `brk` trap taken at the probe address would have
//! saved in `SPSR_EL1`: the probed code's NZCV and DAIF, M = EL1h (so
//! [`Registers::flags`](probe_hal::Registers::flags) means the same as in a
//! breakpoint hit). Then it calls the engine.
//!
//! - **Path (a)** (the hook returned false): the detour restores FP/SIMD,
//!   NZCV and DAIF (interrupts back as the probed code had them, or as a
//!   handler set them in the frame), every general register, `sp` (`S`),
//!   runs the displaced instruction (never pc-relative: [`region`] refuses
//!   what the backend simulates) and branches back to `addr + 4`.
//! - **Path (b)** (a handler moved the pc): with every register restored
//!   there is no scratch register for a `br`, so the detour resumes through
//!   **`eret`**, the exception return, which needs none: the entry masks
//!   all of DAIF, writes the frame's pc into `ELR_EL1` and its NZCV and
//!   DAIF with M = EL1h (BTYPE 0) into `SPSR_EL1`. The detour then uses
//!   `x30` as its base, loads the new `sp` through `x0` (so a handler may
//!   move the stack pointer too; the frame is then possibly below `sp`,
//!   which is harmless with every interrupt masked), reloads `x0`-`x29` and
//!   finally `x30` from its own base, and executes `eret`. Between the
//!   entry's `msr` and the `eret` only loads from the frame, moves and the
//!   entry's own return run, with D, A, I and F masked: nothing can trap or
//!   be interrupted, so `ELR_EL1`/`SPSR_EL1` are still the ones written.
//!   (They are overwritten as a `brk` trap at the probe address would
//!   overwrite them: code between reading and consuming them, a trap
//!   entry or exit, is never probed.) No breakpoint trap is taken: an
//!   optimised hit counts no trap on either path.
//!
//! So detours run at EL1 only (the engine optimises kernel probes only).
//! The frame holds NZCV and DAIF of PSTATE; path (a) does not touch the
//! other PSTATE controls, and path (b)'s `SPSR_EL1` carries PAN, UAO, DIT,
//! TCO and SSBS over from their current values (read where the CPU
//! implements them), so the `eret` resumes with them as the probed code had
//! them, as a trap's return would. The code before `DISPLACED_AT` has the
//! same length in every detour (`nop` stands for what is not needed), so
//! the engine's
//! breakpoint path can resume at `detour + 336` while the jump is being
//! written or removed.
//!
//! # BTI
//!
//! `b`, `bl` and `ret` are not indirect branches: they leave
//! PSTATE.BTYPE 0, so neither the detour's first instruction, the entry,
//! the return into the detour nor the instruction after the region needs a
//! landing pad, and the detour page may be guarded or not. Path (b)'s
//! `eret` restores BTYPE 0 from `SPSR_EL1`, so the moved pc needs none
//! either. What BTI forbids is the jump itself replacing a landing pad: a
//! `br`/`blr` into a guarded function with BTYPE ≠ 0 must land on a `bti`
//! or `paciasp`/`pacibsp`, and a `b` there raises a Branch Target exception
//! (a `brk` does not: BRK is compatible with every BTYPE). So [`region`]
//! refuses to optimise `bti`, `paciasp` and `pacibsp` (they stay `brk`
//! probes).
//!
//! # Reach
//!
//! `b` reaches ±128 MiB: a detour must lie within [`REACH`] of the probe,
//! and so does the jump back. Code farther than that from every detour
//! page is not optimised (the kernel's `alloc_detour_page` finds nothing in
//! reach). The entry is called with `bl` (±128 MiB too; a detour farther
//! from it is [`SiteRule::OutOfReach`](probe_hal::SiteRule::OutOfReach)).
//!
//! # Writing the jump
//!
//! The engine writes the 4-byte `b` over the `brk` already at `addr` and
//! later the `brk` back over the `b`: both are in the list of instructions
//! another CPU may execute while they are modified (Arm ARM B2.2.5,
//! "Concurrent modification and execution of instructions": B, BL, BRK,
//! NOP, ISB, SVC, HVC, SMC), so a single aligned 4-byte store is enough,
//! followed by the usual cache maintenance. Putting the *original*
//! instruction back over the `brk` is not in that list: as for any
//! breakpoint, the kernel's `write_text` stops the other CPUs for it
//! (Linux `aarch64_insn_patch_text`).

pub(crate) mod detour;
#[cfg(target_arch = "aarch64")]
pub(crate) mod entry;
pub(crate) mod region;

#[cfg(test)]
mod tests;

/// Length of `b imm26`, the jump written at the probe address.
pub(crate) const JUMP_LEN: usize = 4;

/// How far from the probe a detour may start: 128 MiB minus 4 KiB, so that
/// the jump to the detour and the detour's jump back (at most
/// [`detour::DETOUR_LEN`] bytes further, to 4 bytes after the probe) both
/// fit `b`'s ±128 MiB.
pub(crate) const REACH: usize = (1 << 27) - (1 << 12);
const _: () = assert!(detour::DETOUR_LEN + 8 < 1 << 12);

/// Whether detours save the FP/SIMD registers: when the target has them
/// (an `aarch64-unknown-none-softfloat` kernel may run with them disabled,
/// where touching them traps).
pub(crate) const SAVE_FP: bool = cfg!(target_feature = "neon");

/// The address of the entry a detour calls, or `None` where this crate
/// does not build detours (not aarch64: the host tests).
pub(crate) fn entry_address() -> Option<usize> {
    #[cfg(target_arch = "aarch64")]
    {
        Some(entry::opt_entry as *const () as usize)
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        None
    }
}
