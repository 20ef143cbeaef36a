//! User mode: a program at EL0 in the user region, entered with `eret`
//! (`SPSR_EL1` = EL0t) and left through `svc`, a fault or a foreign `brk`.
//!
//! [`run`] saves the kernel's callee-saved registers, remembers its stack
//! pointer in `TPIDR_EL1` and drops to `u_start`, which calls one user
//! function and exits with its result (`svc #0` with `x8` =
//! [`SYS_EXIT`]). A trap from EL0 lands on the kernel stack below the
//! saved context; ending the task, for whatever reason, goes back to that
//! context.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::kernel::{self, linker_addr, ENGINE, USER_TASK};
use crate::trap::TrapFrame;

/// `x8` of the exit system call.
pub const SYS_EXIT: usize = 0;

core::arch::global_asm!(
    ".macro UFUNC name",
    ".globl \\name",
    ".type \\name, %function",
    ".p2align 3",
    "\\name:",
    ".endm",
    ".pushsection .user_text, \"ax\"",
    // x0 = function, x1/x2 = its arguments: exit(function(x1, x2)).
    "UFUNC u_start",
    "mov x9, x0",
    "mov x0, x1",
    "mov x1, x2",
    "blr x9",
    ".globl u_start_ret",
    "u_start_ret:",
    "mov x8, #{exit}",
    "svc #0",
    "b u_start_ret",
    // (x + 5) * 2
    "UFUNC u_arith",
    "add x0, x0, #5",
    "lsl x0, x0, #1",
    "ret",
    // x0 <u x1 ? 2 : 1 (+4: b.lo)
    "UFUNC u_branch",
    "cmp x0, x1",
    "b.lo 1f",
    "mov x0, #1",
    "ret",
    "1: mov x0, #2",
    "ret",
    // its own address - 8
    "UFUNC u_adr",
    "adr x0, . - 8",
    "ret",
    // a literal load at EL0 (simulated through the user data access)
    "UFUNC u_ldr_lit",
    "ldr x0, 1f",
    "ret",
    ".p2align 3",
    "1: .quad 0x5555666677778888",
    // a literal load from 1 MiB below the user block: kernel memory, which
    // EL0 may not read (a permission fault, probed or not)
    "UFUNC u_ldr_bad",
    "ldr x0, . - 0xff000",
    "ret",
    // sum 0..=n, recursively; the inner calls return to +20
    "UFUNC u_recur",
    "cbz x0, 1f",
    "stp x29, x30, [sp, #-32]!",
    "str x0, [sp, #16]",
    "sub x0, x0, #1",
    "bl u_recur",
    "ldr x9, [sp, #16]",
    "add x0, x0, x9",
    "ldp x29, x30, [sp], #32",
    "1: ret",
    // *x0
    "UFUNC u_load",
    "ldr x0, [x0]",
    "ret",
    ".popsection",
    ".purgem UFUNC",
    exit = const SYS_EXIT,
);

core::arch::global_asm!(
    ".pushsection .text.user_switch, \"ax\"",
    // x0 = user pc, x1 = user sp, x2..x4 = user x0..x2.
    // Returns (x0, x1) = what `leave_user` was given.
    ".globl enter_user",
    ".p2align 2",
    "enter_user:",
    "stp x29, x30, [sp, #-112]!",
    "stp x18, x19, [sp, #16]",
    "stp x20, x21, [sp, #32]",
    "stp x22, x23, [sp, #48]",
    "stp x24, x25, [sp, #64]",
    "stp x26, x27, [sp, #80]",
    "str x28, [sp, #96]",
    "mov x9, sp",
    "msr tpidr_el1, x9",
    "msr elr_el1, x0",
    "msr sp_el0, x1",
    "msr spsr_el1, xzr",
    "mov x0, x2",
    "mov x1, x3",
    "mov x2, x4",
    // Nothing of the kernel leaks into the user registers.
    "mov x3, xzr",
    "mov x4, xzr",
    "mov x5, xzr",
    "mov x6, xzr",
    "mov x7, xzr",
    "mov x8, xzr",
    "mov x9, xzr",
    "mov x10, xzr",
    "mov x11, xzr",
    "mov x12, xzr",
    "mov x13, xzr",
    "mov x14, xzr",
    "mov x15, xzr",
    "mov x16, xzr",
    "mov x17, xzr",
    "mov x18, xzr",
    "mov x19, xzr",
    "mov x20, xzr",
    "mov x21, xzr",
    "mov x22, xzr",
    "mov x23, xzr",
    "mov x24, xzr",
    "mov x25, xzr",
    "mov x26, xzr",
    "mov x27, xzr",
    "mov x28, xzr",
    "mov x29, xzr",
    "mov x30, xzr",
    "eret",
    // x0, x1: the values `enter_user` returns.
    ".globl leave_user",
    "leave_user:",
    "mrs x9, tpidr_el1",
    "mov sp, x9",
    "ldp x18, x19, [sp, #16]",
    "ldp x20, x21, [sp, #32]",
    "ldp x22, x23, [sp, #48]",
    "ldp x24, x25, [sp, #64]",
    "ldp x26, x27, [sp, #80]",
    "ldr x28, [sp, #96]",
    "ldp x29, x30, [sp], #112",
    "ret",
    ".popsection",
);

#[repr(C)]
struct UserExit {
    value: usize,
    ending: usize,
}

extern "C" {
    fn enter_user(pc: usize, sp: usize, a0: usize, a1: usize, a2: usize) -> UserExit;
    fn leave_user(value: usize, ending: usize) -> !;
}

/// How a user program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It called exit.
    Exit,
    /// It faulted (and no fix-up applies in user mode).
    Fault,
    /// It hit a `brk` that is not the engine's.
    Break,
    /// It made a system call this kernel does not have.
    BadSyscall,
}

impl Ending {
    const ALL: [Ending; 4] = [Self::Exit, Self::Fault, Self::Break, Self::BadSyscall];
}

/// What a user run gave back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRun {
    /// The exit value (0 unless it exited).
    pub value: usize,
    /// How it ended.
    pub ending: Ending,
    /// The user pc where it ended, when it did not exit.
    pub pc: usize,
}

static LAST_PC: AtomicUsize = AtomicUsize::new(0);

/// Addresses of the user functions.
pub mod addr {
    macro_rules! user_fns {
        ($($name:ident),*) => {
            mod symbols {
                extern "C" { $( pub static $name: u8; )* }
            }
            $(
                #[doc = concat!("Address of `", stringify!($name), "`.")]
                #[allow(dead_code)]
                pub fn $name() -> usize {
                    core::ptr::addr_of!(symbols::$name) as usize
                }
            )*
        };
    }
    user_fns!(
        u_start,
        u_start_ret,
        u_arith,
        u_branch,
        u_adr,
        u_ldr_lit,
        u_ldr_bad,
        u_recur,
        u_load
    );
}

/// Run `func(a0, a1)` at EL0 as the user task and wait for it to end.
pub fn run(func: usize, a0: usize, a1: usize) -> UserRun {
    let me = crate::sysreg::cpu_id();
    LAST_PC.store(0, Ordering::Relaxed);
    kernel::switch_to(USER_TASK);
    // SAFETY: `u_start` and `func` are user code in the user region, which
    // the MMU maps for EL0, and the user stack top is the end of the user
    // data area; `enter_user` returns only through `leave_user`, called by
    // the trap path when the task ends, with the kernel context it saved.
    let exit = unsafe {
        enter_user(
            addr::u_start(),
            linker_addr!(__user_stack_top),
            func,
            a0,
            a1,
        )
    };
    kernel::switch_to(me);
    let ending = Ending::ALL
        .get(exit.ending)
        .copied()
        .unwrap_or(Ending::BadSyscall);
    if ending != Ending::Exit {
        // The task died on this CPU and never runs again; this is task
        // context, outside the probe machinery.
        ENGINE
            .release_task(kernel::task(USER_TASK))
            .expect("release_task outside the probe machinery");
    }
    UserRun {
        value: exit.value,
        ending,
        pc: LAST_PC.load(Ordering::Relaxed),
    }
}

/// An `svc` from EL0.
#[link_section = ".text.kernel_trap"]
pub fn syscall(frame: &mut TrapFrame) {
    if frame.regs.regs[8] == SYS_EXIT {
        leave(frame.regs.regs[0], Ending::Exit)
    } else {
        end_task(frame, Ending::BadSyscall)
    }
}

/// End the user task that trapped with `frame`.
#[link_section = ".text.kernel_trap"]
pub fn end_task(frame: &TrapFrame, ending: Ending) -> ! {
    LAST_PC.store(frame.regs.pc, Ordering::Relaxed);
    leave(0, ending)
}

#[link_section = ".text.kernel_trap"]
fn leave(value: usize, ending: Ending) -> ! {
    let code = Ending::ALL.iter().position(|&e| e == ending).unwrap_or(0);
    // SAFETY: called from the trap path of the user task that `run`
    // started on this CPU: `TPIDR_EL1` still holds the kernel stack pointer
    // `enter_user` saved its context at, and nothing on the stack below it
    // is needed any more (the trap frame of a task that ends).
    unsafe { leave_user(value, code) }
}
