//! Runs a test function with every general register set from an array and
//! captures every register after it returns, so a probed run can be
//! compared with an unprobed one register by register.

core::arch::global_asm!(
    ".pushsection .text.case_call, \"ax\"",
    ".globl case_call",
    ".p2align 2",
    // x0 = function, x1 = registers in, x2 = registers out
    "case_call:",
    "stp x29, x30, [sp, #-128]!",
    "stp x18, x19, [sp, #16]",
    "stp x20, x21, [sp, #32]",
    "stp x22, x23, [sp, #48]",
    "stp x24, x25, [sp, #64]",
    "stp x26, x27, [sp, #80]",
    "stp x28, x0, [sp, #96]",
    "str x2, [sp, #112]",
    "mov x30, x1",
    "ldp x0, x1, [x30, #0]",
    "ldp x2, x3, [x30, #16]",
    "ldp x4, x5, [x30, #32]",
    "ldp x6, x7, [x30, #48]",
    "ldp x8, x9, [x30, #64]",
    "ldp x10, x11, [x30, #80]",
    "ldp x12, x13, [x30, #96]",
    "ldp x14, x15, [x30, #112]",
    "ldp x16, x17, [x30, #128]",
    "ldp x18, x19, [x30, #144]",
    "ldp x20, x21, [x30, #160]",
    "ldp x22, x23, [x30, #176]",
    "ldp x24, x25, [x30, #192]",
    "ldp x26, x27, [x30, #208]",
    "ldp x28, x29, [x30, #224]",
    "ldr x30, [sp, #104]",
    "blr x30",
    "stp x0, x1, [sp, #-16]!",
    "ldr x0, [sp, #128]",
    "stp x2, x3, [x0, #16]",
    "stp x4, x5, [x0, #32]",
    "stp x6, x7, [x0, #48]",
    "stp x8, x9, [x0, #64]",
    "stp x10, x11, [x0, #80]",
    "stp x12, x13, [x0, #96]",
    "stp x14, x15, [x0, #112]",
    "stp x16, x17, [x0, #128]",
    "stp x18, x19, [x0, #144]",
    "stp x20, x21, [x0, #160]",
    "stp x22, x23, [x0, #176]",
    "stp x24, x25, [x0, #192]",
    "stp x26, x27, [x0, #208]",
    "stp x28, x29, [x0, #224]",
    "str x30, [x0, #240]",
    "add x1, sp, #16",
    "str x1, [x0, #248]",
    "ldp x2, x3, [sp], #16",
    "stp x2, x3, [x0, #0]",
    "ldp x18, x19, [sp, #16]",
    "ldp x20, x21, [sp, #32]",
    "ldp x22, x23, [sp, #48]",
    "ldp x24, x25, [sp, #64]",
    "ldp x26, x27, [sp, #80]",
    "ldr x28, [sp, #96]",
    "ldp x29, x30, [sp], #128",
    "ret",
    ".popsection",
);

extern "C" {
    fn case_call(func: usize, input: *const Regs, output: *mut Regs);
}

/// The address of the runner's code (which no symbol of the kernel's
/// table covers).
pub fn runner_address() -> usize {
    case_call as *const () as usize
}

/// `x0`-`x30` and the stack pointer the function returned with (`x30` is
/// the return address into the runner).
pub type Regs = [u64; 32];

/// Registers every case starts from: a distinct value per register, so a
/// clobbered register shows.
pub fn pattern() -> Regs {
    let mut r = [0u64; 32];
    for (i, v) in r.iter_mut().enumerate() {
        *v = 0x5a5a_0000_0000_0000 | ((i as u64) << 32) | (0x1111 * i as u64);
    }
    r
}

/// Run `func` with `input` (`x0`-`x29`; `x30` and sp are the runner's)
/// and return the registers after it.
pub fn run(func: usize, input: &Regs) -> Regs {
    let mut out = [0u64; 32];
    // SAFETY: `func` is a test function that follows the C ABI for its
    // caller: it returns with `ret` and the stack pointer it got;
    // `case_call` saves and restores every callee-saved register and x18
    // around it, and writes exactly 32 words to `out`.
    unsafe { case_call(func, input, &mut out) };
    out
}
