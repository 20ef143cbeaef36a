//! Jump-optimised probes ("optprobes") for x86_64, after Linux's
//! arch/x86/kernel/kprobes/opt.c: the probe's `int3` is replaced by a
//! `jmp rel32` (`e9`) to a *detour* that calls the engine without a trap.
//!
//! - [`region`]: whether a site can be optimised (Linux `can_optimize`,
//!   `copy_optimized_instructions`) and which instructions the 5-byte jump
//!   displaces;
//! - [`detour`]: the code of a detour and of the jump;
//! - [`entry`]: the `extern "C"` function a detour calls, which reaches the
//!   engine through [`probe_hal::opthook::dispatch_optimized`].
//!
//! # The detour
//!
//! Reached by the `jmp` at the probe address `addr`, with `R` = the probed
//! code's `rsp` and every register and flag live. Stack, from high to low
//! addresses:
//!
//! | from | to | what |
//! | --- | --- | --- |
//! | `R - 128` | `R` | the System V red zone of the probed code, never written |
//! | `R - 136` | `R - 128` | the resume slot of path (b) |
//! | `R - 304` | `R - 136` | a [`PtRegs`](crate::PtRegs) frame (168 bytes) |
//! | below | | the entry call, on a 16-byte aligned stack |
//!
//! Code (`mask_interrupts` adds the `cli`):
//!
//! ```text
//!     lea   rsp, [rsp - 136]         ; over the red zone and the resume slot (lea: flags kept)
//!     push  qword [rip + ss_lit]     ; ss: the selector the detour was built with
//!     push  rsp                      ; rsp: R - 144, corrected below
//!     pushfq                         ; eflags
//!     push  qword [rip + cs_lit]     ; cs: the selector the detour was built with
//!     push  qword [rip + addr_lit]   ; rip = the probe address
//!     push  -1                       ; orig_rax: not a system call
//!     push  rdi … r15                ; PtRegs order: the frame is complete at rsp
//!     add   qword [rsp + 152], 144   ; rsp = R (the flags are saved already)
//!     cli                            ; with mask_interrupts (after the flags were saved), else nop
//!     cld
//!     mov   rbx, rsp ; and rsp, -16 ; mov rdi, rbx
//!     movabs rsi, cookie
//!     call  entry                    ; rel32, or movabs rax, entry ; call rax (saved)
//!     mov   rsp, rbx
//!     test  al, al
//!     jnz   resume
//!     pop   r15 … rdi                ; path (a): every register from the frame
//!     lea   rsp, [rsp + 24] ; popfq  ; the flags (IF, DF and the status flags)
//!     lea   rsp, [rsp + 152]         ; rsp = R
//! displaced:                         ; at offset 136 (call rel32) or 143 (far call): detour::displaced_at
//!     <the displaced instructions, rip-relative operands relocated>
//!     jmp   addr + len               ; rel32, or jmp [rip + 0] ; .quad addr + len
//! resume:                            ; path (b): the hook moved the pc
//!     mov   rax, [rsp + 152] ; lea rcx, [rsp + 304]
//!     cmp   rax, rcx ; cmovb rax, rcx  ; the frame's rsp, at least R
//!     sub   rax, 136                 ; the resume slot below it
//!     mov   rcx, [rsp + 128] ; mov [rax], rcx ; mov [rsp + 152], rax
//!     pop   r15 … rdi
//!     lea   rsp, [rsp + 24] ; popfq
//!     mov   rsp, [rsp]               ; the frame's rsp field: the slot address
//!     ret   128                      ; pops the new rip, then rsp = the frame's rsp
//! ss_lit: .quad ss ; cs_lit: .quad cs ; addr_lit: .quad addr   ; 8-byte aligned, after the code
//! ```
//!
//! The code before `displaced` has one length per form of the entry call
//! (which depends only on the detour's and the entry's addresses), so
//! `detour_displaced_offset` knows where the copy of the region is:
//! jumping there with the registers as they were at the probe address runs
//! the region and continues after it (the engine's breakpoint path does
//! that while the jump is being written or removed, so no CPU resumes
//! inside the region).
//!
//! The frame's `cs` and `ss` are the selectors the detour's builder ran
//! with (read once there: `mov r/m16, ss` on every hit cost about 5 ns,
//! as much as the rest of the save; a CPU that entered ring 0 through an
//! interrupt may run with a null `ss`, which the frame then does not
//! show; neither selector is loaded back): the
//! engine builds detours at registration, at the privilege level of the
//! code it optimises (kernel code; the user-space harness's "kernel" code
//! runs in user mode and registers there too), as Linux's
//! `optimized_callback` sets `__KERNEL_CS`.
//!
//! On path (b) (the [entry](entry) returned true) the detour writes the
//! frame's rip at `max(frame.rsp, R) - 136` and puts that address in the
//! frame's rsp field, so the final `ret 128` leaves every register as the
//! frame says, rsp included.
//! A handler may raise rsp (e.g. to return from the probed function at its
//! entry: rip = `[rsp]`, rsp += 8); a lowered rsp is **not** supported (its
//! resume slot could overlap the frame, or lie below the stack pointer while
//! interrupts are enabled again) and is ignored: path (b) then resumes with
//! the original rsp. Linux supports no rsp change at all. On path (a) the
//! frame's rip and rsp are not read back.
//!
//! Path (b) ends with a `ret` that no `call` pushed: a CET shadow stack
//! would refuse it, so [`X86_64UserShadowStack`](crate::X86_64UserShadowStack)
//! does not optimise user-mode probes (kernel code runs without one).
//!
//! Only the general registers and the flags are saved: like Linux, the
//! detour assumes that the handlers do not touch vector registers (kernel
//! code is built without SSE); in user space they must not clobber one that
//! is live at the probe. `AC` is not cleared (Linux's template has a `clac`
//! patched in where SMAP exists).

pub(crate) mod detour;
pub(crate) mod entry;
pub(crate) mod region;

#[cfg(all(test, target_arch = "x86_64", target_os = "linux"))]
mod exec_tests;
#[cfg(test)]
mod tests;

/// Length of `jmp rel32`, the jump written at the probe address.
pub(crate) const JUMP_LEN: usize = 5;

/// How far from the probe a detour may start: 2 GiB minus 64 KiB, so that
/// the jump to the detour and the detour's jump back (at most
/// [`detour::DETOUR_LEN`] bytes further) both fit a rel32.
pub(crate) const REACH: usize = (1 << 31) - (1 << 16);
const _: () = assert!(detour::DETOUR_LEN < 1 << 16);
