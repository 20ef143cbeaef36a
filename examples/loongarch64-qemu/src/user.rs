//! User mode: a program at PLV3 in the user region, entered with `ertn`
//! (PRMD.PPLV = 3) and left through `syscall`, a fault or a foreign
//! `break`.
//!
//! [`run`] saves the kernel's callee-saved registers, remembers its stack
//! pointer in `SAVE1` (where the trap entry puts the frames of traps from
//! PLV3) and drops to `u_start`, which calls one user function and exits
//! with its result (`syscall` with `a7` = [`SYS_EXIT`]). Ending the task,
//! for whatever reason, goes back to the saved kernel context.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::csr;
use crate::kernel::{self, linker_addr, ENGINE, USER_TASK};
use crate::trap::TrapFrame;

/// `a7` of the exit system call.
pub const SYS_EXIT: usize = 0;

core::arch::global_asm!(
    ".macro UFUNC name",
    ".globl \\name",
    ".type \\name, @function",
    ".p2align 3",
    "\\name:",
    ".endm",
    ".pushsection .user_text, \"ax\"",
    // a0 = function, a1/a2 = its arguments: exit(function(a1, a2)).
    "UFUNC u_start",
    "move $t8, $a0",
    "move $a0, $a1",
    "move $a1, $a2",
    "jirl $ra, $t8, 0",
    ".globl u_start_ret",
    "u_start_ret:",
    "addi.d $a7, $zero, {exit}",
    "syscall 0",
    "b u_start_ret",
    // (x + 5) * 2
    "UFUNC u_arith",
    "addi.d $a0, $a0, 5",
    "slli.d $a0, $a0, 1",
    "ret",
    // a0 <u a1 ? 2 : 1
    "UFUNC u_branch",
    "bltu $a0, $a1, 1f",
    "addi.d $a0, $zero, 1",
    "ret",
    "1: addi.d $a0, $zero, 2",
    "ret",
    // its own address - 8
    "UFUNC u_pcaddi",
    "pcaddi $a0, -2",
    "ret",
    // sum 0..=n, recursively; the inner calls return to +24
    "UFUNC u_recur",
    "beqz $a0, 1f",
    "addi.d $sp, $sp, -16",
    "st.d $ra, $sp, 8",
    "st.d $a0, $sp, 0",
    "addi.d $a0, $a0, -1",
    "bl u_recur",
    "ld.d $t0, $sp, 0",
    "add.d $a0, $a0, $t0",
    "ld.d $ra, $sp, 8",
    "addi.d $sp, $sp, 16",
    "1: ret",
    // *a0
    "UFUNC u_load",
    "ld.d $a0, $a0, 0",
    "ret",
    ".popsection",
    ".purgem UFUNC",
    exit = const SYS_EXIT,
);

core::arch::global_asm!(
    ".pushsection .text.user_switch, \"ax\"",
    // a0 = user pc, a1 = user sp, a2..a4 = user a0..a2.
    // Returns (a0, a1) = what `leave_user` was given.
    ".globl enter_user",
    ".p2align 2",
    "enter_user:",
    "addi.d $sp, $sp, -112",
    "st.d $ra, $sp, 0",
    "st.d $tp, $sp, 8",
    "st.d $r21, $sp, 16",
    "st.d $r22, $sp, 24",
    "st.d $r23, $sp, 32",
    "st.d $r24, $sp, 40",
    "st.d $r25, $sp, 48",
    "st.d $r26, $sp, 56",
    "st.d $r27, $sp, 64",
    "st.d $r28, $sp, 72",
    "st.d $r29, $sp, 80",
    "st.d $r30, $sp, 88",
    "st.d $r31, $sp, 96",
    "move $t0, $sp",
    "csrwr $t0, {save1}",
    "csrwr $a0, {era}",
    "addi.d $t0, $zero, 3",
    "csrwr $t0, {prmd}",
    "move $sp, $a1",
    "move $a0, $a2",
    "move $a1, $a3",
    "move $a2, $a4",
    // Nothing of the kernel leaks into the user registers.
    "move $ra, $zero",
    "move $tp, $zero",
    "move $a3, $zero",
    "move $a4, $zero",
    "move $a5, $zero",
    "move $a6, $zero",
    "move $a7, $zero",
    "move $t0, $zero",
    "move $t1, $zero",
    "move $t2, $zero",
    "move $t3, $zero",
    "move $t4, $zero",
    "move $t5, $zero",
    "move $t6, $zero",
    "move $t7, $zero",
    "move $t8, $zero",
    "move $r21, $zero",
    "move $fp, $zero",
    "move $s0, $zero",
    "move $s1, $zero",
    "move $s2, $zero",
    "move $s3, $zero",
    "move $s4, $zero",
    "move $s5, $zero",
    "move $s6, $zero",
    "move $s7, $zero",
    "move $s8, $zero",
    "ertn",
    // a0, a1: the values `enter_user` returns.
    ".globl leave_user",
    "leave_user:",
    "csrrd $sp, {save1}",
    "ld.d $ra, $sp, 0",
    "ld.d $tp, $sp, 8",
    "ld.d $r21, $sp, 16",
    "ld.d $r22, $sp, 24",
    "ld.d $r23, $sp, 32",
    "ld.d $r24, $sp, 40",
    "ld.d $r25, $sp, 48",
    "ld.d $r26, $sp, 56",
    "ld.d $r27, $sp, 64",
    "ld.d $r28, $sp, 72",
    "ld.d $r29, $sp, 80",
    "ld.d $r30, $sp, 88",
    "ld.d $r31, $sp, 96",
    "addi.d $sp, $sp, 112",
    "ret",
    ".popsection",
    save1 = const csr::SAVE1,
    era = const csr::ERA,
    prmd = const csr::PRMD,
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
    /// It hit a `break` that is not the engine's.
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
        u_pcaddi,
        u_recur,
        u_load
    );
}

/// Run `func(a0, a1)` at PLV3 as the user task and wait for it to end.
pub fn run(func: usize, a0: usize, a1: usize) -> UserRun {
    let me = csr::cpu_id();
    LAST_PC.store(0, Ordering::Relaxed);
    kernel::switch_to(USER_TASK);
    // SAFETY: `u_start` and `func` are user code in the user region, which
    // DMW0 maps for PLV3, and the user stack top is the end of the user
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
        // The task died: its pending return instances go back to the pool.
        // The task died: it never runs again on this state (task context,
        // outside the probe machinery).
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

/// A `syscall` from PLV3.
#[link_section = ".text.kernel_trap"]
pub fn syscall(frame: &mut TrapFrame) {
    let a7 = frame.regs.regs[11];
    if a7 == SYS_EXIT {
        leave(frame.regs.regs[4], Ending::Exit)
    } else {
        end_task(frame, Ending::BadSyscall)
    }
}

/// End the user task that trapped with `frame`.
#[link_section = ".text.kernel_trap"]
pub fn end_task(frame: &TrapFrame, ending: Ending) -> ! {
    LAST_PC.store(frame.regs.csr_era, Ordering::Relaxed);
    leave(0, ending)
}

#[link_section = ".text.kernel_trap"]
fn leave(value: usize, ending: Ending) -> ! {
    let code = Ending::ALL.iter().position(|&e| e == ending).unwrap_or(0);
    // SAFETY: called from the trap path of the user task that `run`
    // started on this CPU: `SAVE1` still holds the kernel stack pointer
    // `enter_user` saved its context at, and nothing on the stack below it
    // is needed any more (the trap frame of a task that ends).
    unsafe { leave_user(value, code) }
}
