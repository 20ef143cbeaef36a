//! Runs a test function with every general register set from an array and
//! captures every register after it returns, so a probed run can be
//! compared with an unprobed one register by register.

core::arch::global_asm!(
    ".pushsection .text.case_call, \"ax\"",
    ".globl case_call",
    ".p2align 2",
    // a0 = function, a1 = registers in, a2 = registers out
    "case_call:",
    "addi.d $sp, $sp, -128",
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
    "st.d $a0, $sp, 104",
    "st.d $a2, $sp, 112",
    "move $ra, $a1",
    "ld.d $tp, $ra, 16",
    "ld.d $r4, $ra, 32",
    "ld.d $r5, $ra, 40",
    "ld.d $r6, $ra, 48",
    "ld.d $r7, $ra, 56",
    "ld.d $r8, $ra, 64",
    "ld.d $r9, $ra, 72",
    "ld.d $r10, $ra, 80",
    "ld.d $r11, $ra, 88",
    "ld.d $r12, $ra, 96",
    "ld.d $r13, $ra, 104",
    "ld.d $r14, $ra, 112",
    "ld.d $r15, $ra, 120",
    "ld.d $r16, $ra, 128",
    "ld.d $r17, $ra, 136",
    "ld.d $r18, $ra, 144",
    "ld.d $r19, $ra, 152",
    "ld.d $r20, $ra, 160",
    "ld.d $r21, $ra, 168",
    "ld.d $r22, $ra, 176",
    "ld.d $r23, $ra, 184",
    "ld.d $r24, $ra, 192",
    "ld.d $r25, $ra, 200",
    "ld.d $r26, $ra, 208",
    "ld.d $r27, $ra, 216",
    "ld.d $r28, $ra, 224",
    "ld.d $r29, $ra, 232",
    "ld.d $r30, $ra, 240",
    "ld.d $r31, $ra, 248",
    "ld.d $ra, $sp, 104",
    "jirl $ra, $ra, 0",
    "st.d $ra, $sp, 120",
    "ld.d $ra, $sp, 112",
    "st.d $zero, $ra, 0",
    "st.d $tp, $ra, 16",
    "st.d $sp, $ra, 24",
    "st.d $r4, $ra, 32",
    "st.d $r5, $ra, 40",
    "st.d $r6, $ra, 48",
    "st.d $r7, $ra, 56",
    "st.d $r8, $ra, 64",
    "st.d $r9, $ra, 72",
    "st.d $r10, $ra, 80",
    "st.d $r11, $ra, 88",
    "st.d $r12, $ra, 96",
    "st.d $r13, $ra, 104",
    "st.d $r14, $ra, 112",
    "st.d $r15, $ra, 120",
    "st.d $r16, $ra, 128",
    "st.d $r17, $ra, 136",
    "st.d $r18, $ra, 144",
    "st.d $r19, $ra, 152",
    "st.d $r20, $ra, 160",
    "st.d $r21, $ra, 168",
    "st.d $r22, $ra, 176",
    "st.d $r23, $ra, 184",
    "st.d $r24, $ra, 192",
    "st.d $r25, $ra, 200",
    "st.d $r26, $ra, 208",
    "st.d $r27, $ra, 216",
    "st.d $r28, $ra, 224",
    "st.d $r29, $ra, 232",
    "st.d $r30, $ra, 240",
    "st.d $r31, $ra, 248",
    "ld.d $t0, $sp, 120",
    "st.d $t0, $ra, 8",
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
    "addi.d $sp, $sp, 128",
    "ret",
    ".popsection",
);

extern "C" {
    fn case_call(func: usize, input: *const Regs, output: *mut Regs);
}

/// `r0`-`r31` (`r0` reads back as 0, `r3` is the stack pointer the
/// function returned with, `r1` the return address into the runner).
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

/// Run `func` with `input` (r2 and r4-r31; r1 and r3 are the runner's) and
/// return the registers after it.
pub fn run(func: usize, input: &Regs) -> Regs {
    let mut out = [0u64; 32];
    // SAFETY: `func` is a test function that follows the C ABI for its
    // caller: it returns with `jirl $zero, $ra, 0` and the stack pointer it
    // got; `case_call` saves and restores every callee-saved register, tp
    // and r21 around it, and writes exactly 32 words to `out`.
    unsafe { case_call(func, input, &mut out) };
    out
}
