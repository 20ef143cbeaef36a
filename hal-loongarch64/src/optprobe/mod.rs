//! Jump-optimised probes ("optprobes") for loongarch64. Linux has none for
//! LoongArch; the design is riscv64's (`probe-hal-riscv64`), after Linux's
//! x86 ones (arch/x86/kernel/kprobes/opt.c): the probe's `break 10` is
//! replaced by `b detour` (4 bytes, ±128 MiB, links nothing), and the
//! detour calls the engine without a trap.
//!
//! - [`region`]: whether a site can be optimised (the region is always the
//!   one probed instruction: every LoongArch instruction is one word);
//! - [`detour`]: the code of a detour and of the jump;
//! - `entry` (loongarch64 builds): the `extern "C"` function a detour
//!   calls, in `probe_trap_text`, which reaches the engine through
//!   [`probe_hal::opthook::dispatch_optimized`].
//!
//! # The detour
//!
//! Reached by the `b` at the probe address `addr` with every register live
//! (the psABI has no red zone). `S` is the probed code's `sp`; the frame is
//! a [`PtRegs`](crate::PtRegs) (320 bytes, Linux's layout) at `S - 320`.
//!
//! ```text
//!   0  addi.d  $sp, $sp, -320
//!   4  st.d    $r1, $sp, 8 ; st.d $r2 ; st.d $r4..$r31, 8n   ; 30 stores
//! 124  addi.d  $t0, $zero, 0
//! 128  addi.d  $t1, $zero, 4                 ; mask_interrupts, else 0
//! 132  csrxchg $t0, $t1, CRMD                 ; t0 = CRMD, IE cleared under mask t1
//! 136  st.d    $t0, $sp, 280                  ; the raw CRMD (the entry rewrites it)
//! 140  or      $a0, $sp, $zero                ; the frame
//! 144  pcaddi  $a1, (424 - 144) / 4           ; the literals: probe address, cookie
//! 148  pcaddu18i $ra, hi ; jirl $ra, $ra, lo  ; call the entry (±128 GiB)
//! 156  bnez    $a0, resume
//! 160  ld.d    $r1, $r2, $r4..$r31 ; ld.d $sp, $sp, 24   ; path (a)
//! 284  <the displaced instruction>            ; DISPLACED_AT (fixed)
//! 288  b       addr + 4
//! 292  resume: ld.d $r1, $r2, $r4..$r31 ; ld.d $sp, $sp, 24 ; path (b)
//! 416  ertn                                   ; pc = ERA = the frame's pc
//! 420  (4 bytes of zeros)
//! 424  .dword addr ; .dword cookie
//! ```
//!
//! The [entry](probe_hal::opthook) fills in what the detour did not: the
//! frame's `csr_era` (the probe address), `regs[3]` (`S`), `regs[0]` (0),
//! `orig_a0`, and the CSR fields as a trap taken at the probe address would
//! have saved them: `csr_prmd` with `PPLV` = the probed code's `PLV`, `PIE`
//! = its `IE`, `PWE` = its `WE`; `csr_crmd` with `IE` clear; `BADV`, `EUEN`,
//! `ECFG`, `ESTAT` 0 (so [`Registers::flags`](probe_hal::Registers::flags)
//! means the same as in a breakpoint hit). Then it calls the engine.
//!
//! - **Path (a)** (the hook returned false): the entry sets `CRMD.IE` again
//!   if the frame's `PIE` is set; the detour restores every register from
//!   the frame (`sp` last), runs the displaced instruction (never one that
//!   reads the pc: [`region`] refuses those) and `b` back after it.
//! - **Path (b)** (a handler moved the pc): with every register restored
//!   there is no scratch register for a `jirl`, so the detour resumes
//!   through **`ertn`**, the exception return, which needs none: the entry
//!   clears `CRMD.IE`, writes the frame's pc into `ERA` and `PRMD` = `PPLV`
//!   0 (kernel), `PIE` and `PWE` from the frame's `csr_prmd`; the detour
//!   restores every register (`sp` last, so a handler may move the stack
//!   pointer anywhere) and executes `ertn`. Nothing can trap between the
//!   entry's `csrwr` of `ERA` and the `ertn` (interrupts masked; the
//!   entry's epilogue, a `bnez` and loads from the frame on the kernel
//!   stack), so `ERA` is still the one written. `ertn` also clears `LLbit`
//!   (unless `LLBCTL.KLO`): harmless, no LL/SC window is open at a probe.
//!   No breakpoint trap is taken: an optimised hit counts no trap on
//!   either path. A kernel whose trap exit reloads `ERA` and `PRMD` from its
//!   frame (every kernel does, for nested exceptions) may run probed code
//!   inside an exception handler.
//!
//! So detours run at PLV0 only (the engine optimises kernel probes only).
//! On a hard-float target the entry's assembly wrapper saves the
//! caller-saved floating-point state (`$f0`-`$f23`, `$fcsr0`, `$fcc*`)
//! around the Rust entry, so handlers may use floating point as in a trap;
//! on a soft-float target (a kernel with the FPU off, like Linux) no FP
//! register is touched. The code before
//! `DISPLACED_AT` has the same length in every detour (the entry is always
//! called through `pcaddu18i`/`jirl`, and both interrupt forms are the same
//! three instructions), so the engine's breakpoint path can resume at
//! `detour + 284` while the jump is being written or removed.
//!
//! # Reach
//!
//! `b` reaches ±128 MiB: a detour must lie within [`REACH`] of the probe,
//! and so does the jump back. Code farther than that from every detour page
//! is not optimised ([`SiteRule::OutOfReach`](probe_hal::SiteRule::OutOfReach),
//! or the kernel's `alloc_detour_page` finds nothing in reach).
//!
//! # Writing the jump
//!
//! The jump replaces the `break 10` with one aligned 32-bit store, so a
//! CPU fetching concurrently sees the `break` or the `b`, never a mix; the
//! original word is put back over the `break` the same way. Putting back an
//! arbitrary original instruction while other CPUs run is what Linux does
//! only with them stopped (`stop_machine` in its text patching), and QEMU's
//! multi-threaded TCG may keep a translation of the old word: the kernel's
//! `write_text` should stop the other CPUs (`examples/loongarch64-qemu`
//! does for every text write).

pub(crate) mod detour;
#[cfg(target_arch = "loongarch64")]
pub(crate) mod entry;
pub(crate) mod region;

#[cfg(test)]
mod tests;

/// Length of `b offs26`, the jump written at the probe address.
pub(crate) const JUMP_LEN: usize = 4;

/// How far from the probe a detour may start: 128 MiB minus 4 KiB, so that
/// the jump to the detour and the detour's jump back (at most
/// [`detour::DETOUR_LEN`] bytes further, to the word after the probe) both
/// fit `b`'s ±128 MiB.
pub(crate) const REACH: usize = (1 << 27) - (1 << 12);
const _: () = assert!(detour::DETOUR_LEN + 8 < 1 << 12);

/// The address of the entry a detour calls, or `None` where this crate
/// does not build detours (not loongarch64: the host tests).
pub(crate) fn entry_address() -> Option<usize> {
    #[cfg(target_arch = "loongarch64")]
    {
        Some(entry::entry())
    }
    #[cfg(not(target_arch = "loongarch64"))]
    {
        None
    }
}
