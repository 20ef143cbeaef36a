//! Jump-optimised probes ("optprobes") for riscv64. Linux has none for
//! riscv; the design follows its x86 ones (arch/x86/kernel/kprobes/opt.c):
//! the probe's breakpoint is replaced by `jal x0, detour` (4 bytes, ±1 MiB,
//! writes no register), and the detour calls the engine without a trap.
//!
//! - [`region`]: whether a site can be optimised and which instructions the
//!   jump displaces (a 4-byte instruction, or a 2-byte one and what follows
//!   up to at least 4 bytes);
//! - [`detour`]: the code of a detour and of the jump;
//! - `entry` (riscv64 builds): the `extern "C"` function a detour calls,
//!   in `probe_trap_text`, which reaches the engine through
//!   [`probe_hal::opthook::dispatch_optimized`].
//!
//! # The detour
//!
//! Reached by the `jal x0` at the probe address `addr` with every register
//! live (the psABI has no red zone). `S` is the probed code's `sp`; the
//! frame is a [`PtRegs`](crate::PtRegs) at `S - 288`.
//!
//! ```text
//!   0  addi  sp, sp, -288
//!   4  sd    x1, 8(sp) ; sd x3..x31, 8n(sp)      ; 30 stores
//! 124  csrrci t0, sstatus, SIE                    ; with mask_interrupts, else csrr t0, sstatus
//! 128  sd    t0, 256(sp)                          ; the raw sstatus (the entry rewrites it)
//! 132  mv    a0, sp                               ; the frame
//! 136  auipc a1, 0 ; addi a1, a1, 288             ; the literals: probe address, cookie
//! 144  auipc ra, hi ; jalr ra, lo(ra)             ; call the entry (±2 GiB)
//! 152  bnez  a0, resume
//! 156  ld    x1, x3..x31 ; ld sp, 16(sp)          ; path (a): every register
//! 280  <the displaced instructions>               ; DISPLACED_AT (fixed)
//!      jal   x0, addr + len                       ; padded with c.unimp to 12 bytes
//! 292  resume: ld x1, x3..x31 ; ld sp, 16(sp)     ; path (b)
//! 416  sret                                       ; pc = sepc = the frame's pc
//! 420  (4 bytes of padding)
//! 424  .quad addr ; .quad cookie
//! ```
//!
//! The [entry](probe_hal::opthook) fills in what the detour did not: the
//! frame's `epc` (the probe address), `sp` (`S`), `badaddr`, `cause` and
//! `orig_a0` (0), and rewrites `status` to what a trap taken at the probe
//! address would have saved: SPP = S, SPIE = the probed code's SIE, SIE = 0
//! (so [`Registers::flags`](probe_hal::Registers::flags) means the same as
//! in a breakpoint hit). Then it calls the engine.
//!
//! - **Path (a)** (the hook returned false): the entry sets `sstatus.SIE`
//!   again if the frame's SPIE is set; the detour restores every register
//!   from the frame (`sp` last), runs the displaced instructions (none is
//!   pc-relative: [`region`] refuses those) and jumps back after the region.
//! - **Path (b)** (a handler moved the pc): with every register restored
//!   there is no scratch register for a `jalr`, so the detour resumes
//!   through **`sret`**, the trap return, which needs none: the entry masks
//!   interrupts (`csrci sstatus, SIE`), writes the frame's pc into `sepc`,
//!   sets `sstatus.SPP` (S-mode) and `sstatus.SPIE` from the frame's SPIE;
//!   the detour restores every register (`sp` last, so a handler may move
//!   the stack pointer anywhere) and executes `sret`. Nothing can trap
//!   between the entry's `csrw sepc` and the `sret` (interrupts masked, only
//!   loads from the frame), so `sepc` is still the one written. No
//!   breakpoint trap is taken: an optimised hit counts no trap on either
//!   path.
//!
//! So detours run in S-mode only (the engine optimises kernel probes only).
//! Floating-point registers are not saved: as for the return trampoline,
//! handlers must not use floating point. The code before `DISPLACED_AT`
//! has the same length in every detour (the entry is always called through
//! `auipc`/`jalr`, and `csrrci`/`csrr` have one length), so the engine's
//! breakpoint path can resume at `detour + 280` while the jump is being
//! written or removed.
//!
//! # Reach
//!
//! `jal` reaches ±1 MiB: a detour must lie within [`REACH`] of the probe,
//! and so does the jump back. Code farther than that from every detour page
//! is not optimised ([`SiteRule::OutOfReach`](probe_hal::SiteRule::OutOfReach),
//! or the kernel's `alloc_detour_page` finds nothing in reach).
//!
//! # Writing the jump
//!
//! The engine writes the jump over a breakpoint that is already there
//! (`c.ebreak` over a 2-byte instruction, `ebreak` over a 4-byte one): the
//! jump's tail (bytes 2..4, over the next instruction) first when the
//! breakpoint is 2 bytes, then its head over the breakpoint. A 4-byte store
//! at an address that is 2 mod 4 is not single-copy atomic for other
//! harts: the kernel's `write_text` must stop the other harts for it (as
//! for a 4-byte `ebreak` there), or write the 2-byte halves only where each
//! is atomic.

pub(crate) mod detour;
#[cfg(target_arch = "riscv64")]
pub(crate) mod entry;
pub(crate) mod region;

#[cfg(test)]
mod tests;

/// Length of `jal x0, offset`, the jump written at the probe address.
pub(crate) const JUMP_LEN: usize = 4;

/// How far from the probe a detour may start: 1 MiB minus 4 KiB, so that
/// the jump to the detour and the detour's jump back (at most
/// [`detour::DETOUR_LEN`] bytes further, to at most 6 bytes after the
/// probe) both fit `jal`'s ±1 MiB.
pub(crate) const REACH: usize = (1 << 20) - (1 << 12);
const _: () = assert!(detour::DETOUR_LEN + 8 < 1 << 12);

/// The address of the entry a detour calls, or `None` where this crate
/// does not build detours (not riscv64: the host tests).
pub(crate) fn entry_address() -> Option<usize> {
    #[cfg(target_arch = "riscv64")]
    {
        Some(entry::opt_entry as *const () as usize)
    }
    #[cfg(not(target_arch = "riscv64"))]
    {
        None
    }
}
