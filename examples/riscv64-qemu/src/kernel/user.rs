//! Running code in U-mode.
//!
//! There is no paging (`satp` = 0): U-mode reaches the memory PMP allows,
//! and user code, its stack and its slot pages live in the user region
//! link.ld sets apart. [`run`] calls a user function as the current hart's
//! user task: `enter_user` saves the kernel's callee-saved registers and
//! `tp` on the kernel stack, leaves that stack pointer in `sscratch` for the
//! trap vector, and `sret`s with `sstatus.SPP` = 0 to the function, whose
//! return address is `user_exit` (an `ecall`). The ecall trap (or a fatal
//! user fault) makes the vector jump to `leave_user`, which returns from
//! `enter_user` with the user's a0.

use core::arch::global_asm;
use core::cell::UnsafeCell;

use super::layout::PAGE_SIZE;
use super::tasks;
use super::trap::SSTATUS_SPP;

/// The address space of the user task (its `Space::User` id).
pub const ASID: usize = 1;
/// a0 of a run that ended in a fault.
pub const FAULTED: usize = 0xfa17_fa17_fa17_fa17;
/// a0 of a run that hit a breakpoint the engine did not know.
pub const BREAKPOINT_NOT_OURS: usize = 0xb7ea_b7ea_b7ea_b7ea;

/// `sstatus.SPIE`.
const SSTATUS_SPIE: usize = 1 << 5;

/// The user stack.
#[repr(C, align(16))]
struct UserStack(UnsafeCell<[u8; 4 * PAGE_SIZE]>);

// SAFETY: only U-mode code of the single user task touches the stack, by
// its address; Rust code never makes a reference to its contents.
unsafe impl Sync for UserStack {}

#[link_section = ".user_data.stack"]
static USER_STACK: UserStack = UserStack(UnsafeCell::new([0; 4 * PAGE_SIZE]));

global_asm!(
    ".pushsection kernel_trap_text, \"ax\", @progbits",
    ".option push",
    ".option arch, +m, +a, +f, +d, +c",
    ".p2align 2",
    ".globl enter_user",
    "enter_user:",
    "addi sp, sp, -208",
    "sd tp, 0(sp)",
    "sd ra, 8(sp)",
    "sd s0, 16(sp)",
    "sd s1, 24(sp)",
    "sd s2, 32(sp)",
    "sd s3, 40(sp)",
    "sd s4, 48(sp)",
    "sd s5, 56(sp)",
    "sd s6, 64(sp)",
    "sd s7, 72(sp)",
    "sd s8, 80(sp)",
    "sd s9, 88(sp)",
    "sd s10, 96(sp)",
    "sd s11, 104(sp)",
    "fsd fs0, 112(sp)",
    "fsd fs1, 120(sp)",
    "fsd fs2, 128(sp)",
    "fsd fs3, 136(sp)",
    "fsd fs4, 144(sp)",
    "fsd fs5, 152(sp)",
    "fsd fs6, 160(sp)",
    "fsd fs7, 168(sp)",
    "fsd fs8, 176(sp)",
    "fsd fs9, 184(sp)",
    "fsd fs10, 192(sp)",
    "fsd fs11, 200(sp)",
    "csrw sepc, a0",
    "li t0, {spp_spie}",
    "csrc sstatus, t0",
    "csrw sscratch, sp",
    "mv a0, a1",
    "mv a1, a2",
    "mv sp, a3",
    "mv ra, a4",
    "sret",
    // From strap_entry: sp = this save area, a0 = the user's a0.
    ".globl leave_user",
    "leave_user:",
    "ld tp, 0(sp)",
    "ld ra, 8(sp)",
    "ld s0, 16(sp)",
    "ld s1, 24(sp)",
    "ld s2, 32(sp)",
    "ld s3, 40(sp)",
    "ld s4, 48(sp)",
    "ld s5, 56(sp)",
    "ld s6, 64(sp)",
    "ld s7, 72(sp)",
    "ld s8, 80(sp)",
    "ld s9, 88(sp)",
    "ld s10, 96(sp)",
    "ld s11, 104(sp)",
    "fld fs0, 112(sp)",
    "fld fs1, 120(sp)",
    "fld fs2, 128(sp)",
    "fld fs3, 136(sp)",
    "fld fs4, 144(sp)",
    "fld fs5, 152(sp)",
    "fld fs6, 160(sp)",
    "fld fs7, 168(sp)",
    "fld fs8, 176(sp)",
    "fld fs9, 184(sp)",
    "fld fs10, 192(sp)",
    "fld fs11, 200(sp)",
    "addi sp, sp, 208",
    "ret",
    ".option pop",
    ".popsection",
    // Where every user function returns to.
    ".pushsection .user_text.exit, \"ax\", @progbits",
    ".p2align 2",
    ".globl user_exit",
    "user_exit:",
    "ecall",
    "j user_exit",
    ".popsection",
    spp_spie = const SSTATUS_SPP | SSTATUS_SPIE,
);

extern "C" {
    fn enter_user(func: usize, a0: usize, a1: usize, sp: usize, ra: usize) -> usize;
    fn user_exit();
}

/// Call the user function at `func` with arguments `a0`, `a1` in U-mode as
/// the user task, on hart 0; returns its a0 ([`FAULTED`] or
/// [`BREAKPOINT_NOT_OURS`] when the run ended in a trap).
pub fn run(func: usize, a0: usize, a1: usize) -> usize {
    let stack_top = USER_STACK.0.get() as usize + core::mem::size_of::<UserStack>();
    tasks::enter_user_task();
    // SAFETY: `func` is user code, the stack is the (only) user stack, and
    // `user_exit`'s ecall becomes a return from `enter_user`, which restores
    // every callee-saved register and tp.
    let result = unsafe { enter_user(func, a0, a1, stack_top, user_exit as *const () as usize) };
    tasks::leave_user_task();
    result
}
