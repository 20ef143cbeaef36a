//! The kernel test functions, in assembly so every probed instruction is
//! exactly the one named. Each follows the C ABI (arguments `x0`, `x1`,
//! results in `x2`/`x3` for the register-state cases or `x0` for the
//! callable ones) and has `name` and `name_end` symbols; [`symbols`] is the
//! kernel's symbol table for the engine (boundary and function-entry
//! checks, `Kprobe::symbol`).
//!
//! Layouts the checks rely on (byte offsets):
//! - `t_b<cond>`: +0 `cmp x0, x1`, +4 `b.<cond>` to +16, +8 `x2 = 1`,
//!   +12 `ret`, +16 `x2 = 2`, +20 `ret`;
//! - `t_cbz_x` … `t_tbnz_w`, `t_b`: +0 the branch to +12, +4 `x2 = 1`,
//!   +8 `ret`, +12 `x2 = 2`, +16 `ret`;
//! - `t_bl`: +4 `bl` to +16, which copies `x30` into `x2`;
//! - `t_br`: +4 `br x9` to +16; `t_blr`: +8 `blr x9` to +20, `x2` = +12;
//! - `t_cbnz_loop`: +8 `cbnz` back to +4, `x0` times;
//! - pc-relative `t_adr`, `t_adrp`: +0 negative offset into `x2`, +4
//!   positive into `x3`; `t_ldr_lit`: +0 `ldr w2`, +4 `ldr x3`, +8 `ldrsw
//!   x4`, +12 `prfm`, literals at +24 (32-bit) and +32 (64-bit);
//! - `t_recur`: the recursive `bl` at +16 returns to +20;
//! - `t_opt_rsum`: like `t_recur`, but its entry (`stp`) is stepped, so a
//!   kretprobe's entry there can be jump-optimised.

use core::arch::global_asm;

global_asm!(
    ".macro FUNC name",
    ".globl \\name",
    ".type \\name, %function",
    ".p2align 3",
    "\\name:",
    ".endm",
    ".macro ENDFUNC name",
    ".globl \\name\\()_end",
    "\\name\\()_end:",
    ".size \\name, \\name\\()_end - \\name",
    ".endm",
    ".macro BCOND name, cond",
    "FUNC \\name",
    "cmp x0, x1",
    "b.\\cond 1f",
    "mov x2, #1",
    "ret",
    "1: mov x2, #2",
    "ret",
    "ENDFUNC \\name",
    ".endm",
    ".macro BRANCH name, insn:vararg",
    "FUNC \\name",
    "\\insn, 1f",
    "mov x2, #1",
    "ret",
    "1: mov x2, #2",
    "ret",
    "ENDFUNC \\name",
    ".endm",
    ".macro ONE name, insn:vararg",
    "FUNC \\name",
    "\\insn",
    "ret",
    "ENDFUNC \\name",
    ".endm",
    ".pushsection .text.testfns, \"ax\"",
    ".arch_extension lse",
    ".arch_extension pauth",
    ".arch_extension bti",
    // ---- simulated: conditional branches
    "BCOND t_beq, eq",
    "BCOND t_bne, ne",
    "BCOND t_bcs, cs",
    "BCOND t_bcc, cc",
    "BCOND t_bmi, mi",
    "BCOND t_bpl, pl",
    "BCOND t_bvs, vs",
    "BCOND t_bvc, vc",
    "BCOND t_bhi, hi",
    "BCOND t_bls, ls",
    "BCOND t_bge, ge",
    "BCOND t_blt, lt",
    "BCOND t_bgt, gt",
    "BCOND t_ble, le",
    "BRANCH t_cbz_x, cbz x0",
    "BRANCH t_cbz_w, cbz w0",
    "BRANCH t_cbnz_x, cbnz x0",
    "BRANCH t_cbnz_w, cbnz w0",
    "BRANCH t_tbz_hi, tbz x0, #33",
    "BRANCH t_tbnz_hi, tbnz x0, #33",
    "BRANCH t_tbz_w, tbz w0, #3",
    "BRANCH t_tbnz_w, tbnz w0, #3",
    // ---- simulated: jumps and calls
    "FUNC t_b",
    "b 1f",
    "mov x2, #1",
    "ret",
    "1: mov x2, #2",
    "ret",
    "ENDFUNC t_b",
    "FUNC t_bl",
    "mov x9, x30",
    "bl 1f",
    "mov x30, x9",
    "ret",
    "1: mov x2, x30",
    "ret",
    "ENDFUNC t_bl",
    "FUNC t_br",
    "adr x9, 1f",
    "br x9",
    "mov x2, #1",
    "ret",
    "1: mov x2, #2",
    "ret",
    "ENDFUNC t_br",
    "FUNC t_blr",
    "mov x10, x30",
    "adr x9, 1f",
    "blr x9",
    "mov x30, x10",
    "ret",
    "1: mov x2, x30",
    "ret",
    "ENDFUNC t_blr",
    "FUNC t_cbnz_loop",
    "mov x2, #0",
    "1: add x2, x2, #1",
    "sub x0, x0, #1",
    "cbnz x0, 1b",
    "ret",
    "ENDFUNC t_cbnz_loop",
    // ---- simulated: pc-relative addresses and literal loads
    "FUNC t_adr",
    "adr x2, . - 12",
    "adr x3, . + 21",
    "ret",
    "ENDFUNC t_adr",
    "FUNC t_adrp",
    "adrp x2, . - 0x1000",
    "adrp x3, . + 0x3000",
    "ret",
    "ENDFUNC t_adrp",
    "FUNC t_ldr_lit",
    "ldr w2, 1f",
    "ldr x3, 2f",
    "ldrsw x4, 1f",
    "prfm pldl1keep, 2f",
    "ret",
    "nop",
    "1: .word 0x8badf00d",
    ".word 0",
    "2: .quad 0x1122334455667788",
    "ENDFUNC t_ldr_lit",
    // ---- stepped out of line: ALU, flags, bit fields
    "ONE t_add, add x2, x0, x1",
    "ONE t_sub_w, sub w2, w0, w1",
    "ONE t_mul, mul x2, x0, x1",
    "ONE t_umulh, umulh x2, x0, x1",
    "ONE t_sdiv, sdiv x2, x0, x1",
    "ONE t_udiv, udiv x2, x0, x1",
    "ONE t_lsl, lsl x2, x0, #13",
    "ONE t_asr, asr x2, x0, #7",
    "ONE t_ror_w, ror w2, w0, #5",
    "ONE t_ubfx, ubfx x2, x0, #8, #40",
    "ONE t_bfi, bfi x2, x0, #4, #8",
    "ONE t_clz, clz x2, x0",
    "ONE t_rev, rev x2, x0",
    "FUNC t_adds",
    "adds x2, x0, x1",
    "cset x3, cs",
    "ret",
    "ENDFUNC t_adds",
    "FUNC t_csel",
    "cmp x0, x1",
    "csel x2, x0, x1, lt",
    "ret",
    "ENDFUNC t_csel",
    "FUNC t_mov",
    "movz x2, #0x1234, lsl #32",
    "movk x2, #0xabcd",
    "movn x3, #0",
    "ret",
    "ENDFUNC t_mov",
    "FUNC t_hints",
    "nop",
    "bti c",
    "paciasp",
    "xpaclri",
    "ret",
    "ENDFUNC t_hints",
    "ONE t_mrs, mrs x2, tpidr_el0",
    // ---- stepped: loads and stores
    "ONE t_ldr, ldr x2, [x0, #8]",
    "ONE t_ldrsb, ldrsb x2, [x0, #3]",
    "ONE t_ldr_reg, ldr x2, [x0, x1]",
    "ONE t_str, str x1, [x0, #16]",
    "ONE t_strb, strb w1, [x0, #5]",
    "FUNC t_pre_post",
    "mov x9, x0",
    "ldr x2, [x9, #8]!",
    "ldr x3, [x9], #8",
    "sub x4, x9, x0",
    "ret",
    "ENDFUNC t_pre_post",
    "FUNC t_ldp_stp",
    "stp x0, x1, [sp, #-16]!",
    "ldp x2, x3, [sp], #16",
    "ret",
    "ENDFUNC t_ldp_stp",
    "FUNC t_stack",
    "sub sp, sp, #32",
    "str x0, [sp, #8]",
    "ldr x2, [sp, #8]",
    "add sp, sp, #32",
    "ret",
    "ENDFUNC t_stack",
    "ONE t_ldadd, ldadd x1, x2, [x0]",
    "ONE t_swp, swp x1, x2, [x0]",
    "FUNC t_cas",
    "ldr x2, [x0]",
    "cas x2, x1, [x0]",
    "ret",
    "ENDFUNC t_cas",
    "ONE t_ldar, ldar x2, [x0]",
    // ---- stepped: floating point and SIMD (results moved to x2)
    "FUNC t_fadd",
    "fmov d0, x0",
    "fmov d1, x1",
    "fadd d2, d0, d1",
    "fmov x2, d2",
    "ret",
    "ENDFUNC t_fadd",
    "FUNC t_fmul",
    "fmov d0, x0",
    "fmov d1, x1",
    "fmul d2, d0, d1",
    "fmov x2, d2",
    "ret",
    "ENDFUNC t_fmul",
    "FUNC t_scvtf",
    "scvtf d0, x0",
    "fmov x2, d0",
    "ret",
    "ENDFUNC t_scvtf",
    "FUNC t_fcmp",
    "fmov d0, x0",
    "fmov d1, x1",
    "fcmp d0, d1",
    "cset x2, mi",
    "ret",
    "ENDFUNC t_fcmp",
    "FUNC t_simd",
    "dup v0.2d, x0",
    "dup v1.2d, x1",
    "add v2.2d, v0.2d, v1.2d",
    "umov x2, v2.d[1]",
    "ret",
    "ENDFUNC t_simd",
    // ---- return probes: sum 0..=n, recursively
    "FUNC t_recur",
    "cbz x0, 1f",
    "stp x29, x30, [sp, #-32]!",
    "str x0, [sp, #16]",
    "sub x0, x0, #1",
    "bl t_recur",
    "ldr x9, [sp, #16]",
    "add x0, x0, x9",
    "ldp x29, x30, [sp], #32",
    "1: ret",
    "ENDFUNC t_recur",
    ".popsection",
    // ---- on a guarded page (BTI enforced)
    ".pushsection guarded_text, \"ax\"",
    // a function entered through a landing pad that signs its return
    // address: bti c; paciasp; ...; autiasp; ret (x0 * 3)
    "FUNC t_pac",
    "bti c",
    "paciasp",
    "add x0, x0, x0, lsl #1",
    "autiasp",
    "ret",
    "ENDFUNC t_pac",
    // bti c; x0 + x1 (probed on its landing pad)
    "FUNC t_bti_add",
    "bti c",
    "add x0, x0, x1",
    "ret",
    "ENDFUNC t_bti_add",
    // no landing pad: an indirect call faults (BTI), the fix-up gives -13
    "FUNC t_no_bti",
    "add x0, x0, x1",
    "ret",
    "t_no_bti_fixup:",
    "bti c",
    "mov x0, #-13",
    "ret",
    "ENDFUNC t_no_bti",
    ".pushsection .ex_table, \"a\"",
    ".p2align 3",
    ".quad t_no_bti, t_no_bti_fixup + 0",
    ".popsection",
    ".popsection",
    ".pushsection .text.testfns, \"ax\"",
    // x30 as `paciasp` signs it (differs from x30 when PAC is on)
    "FUNC t_pac_sign",
    "mov x9, x30",
    "paciasp",
    "mov x0, x30",
    "mov x30, x9",
    "ret",
    "ENDFUNC t_pac_sign",
    // target(x0, 4) through `blr` (+12), for the BTI checks
    "FUNC t_call_via",
    "mov x10, x30",
    "mov x9, x1",
    "mov x1, #4",
    "blr x9",
    "mov x30, x10",
    "ret",
    "ENDFUNC t_call_via",
    // x0 + x1, the callable function for aggregate, re-entry and
    // return-value checks
    "FUNC t_add2",
    "add x0, x0, x1",
    "ret",
    "ENDFUNC t_add2",
    // ---- a load that may fault, with its fix-up (-EFAULT)
    "FUNC t_load",
    "ldr x0, [x0]",
    "ret",
    "t_load_fixup:",
    "mov x0, #-14",
    "ret",
    "ENDFUNC t_load",
    ".pushsection .ex_table, \"a\"",
    ".p2align 3",
    ".quad t_load, t_load_fixup",
    ".popsection",
    // ---- an atomic increment of *x0 with an exclusive loop; returns the
    // old value (+4 ldaxr, +8 add, +12 stlxr)
    "FUNC t_atomic_inc",
    "mov x9, x0",
    "1: ldaxr w0, [x9]",
    "add w10, w0, #1",
    "stlxr w11, w10, [x9]",
    "cbnz w11, 1b",
    "ret",
    "ENDFUNC t_atomic_inc",
    // ---- instructions that must be refused (never executed)
    "FUNC t_refused",
    "svc #0",
    "hvc #0",
    "brk #1",
    "hlt #0",
    "eret",
    "msr daifset, #2",
    "msr sctlr_el1, x0",
    "mrs x0, daif",
    "mrs x0, elr_el1",
    "mrs x0, esr_el1",
    "wfi",
    "autiasp",
    "retaa",
    "ldxr x0, [x1]",
    "ldr q0, 1f",
    "1: ret",
    "ENDFUNC t_refused",
    // ---- two CPUs: 3x + 7 for x != 0 (+0 stepped, +8 simulated)
    "FUNC t_hot",
    "lsl x9, x0, #1",
    "add x0, x0, x9",
    "cbnz x0, 1f",
    "mov x0, #-1",
    "1: add x0, x0, #7",
    "ret",
    "ENDFUNC t_hot",
    // (x ^ 0xff) + 1: probed and unprobed again and again by CPU 0
    "FUNC t_churn",
    "eor x0, x0, #0xff",
    "add x0, x0, #1",
    "adr x9, .",
    "ret",
    "ENDFUNC t_churn",
    // ---- probe events (checks::events): t_ev_target(a, b, p, s) = a + b,
    // probed at +4 (the `add`, arguments still in x0..x3); t_ev_caller
    // calls it, the `bl` returning to +8
    "FUNC t_ev_target",
    "mov x9, x0",
    "add x0, x9, x1",
    "ret",
    "ENDFUNC t_ev_target",
    "FUNC t_ev_caller",
    "stp x29, x30, [sp, #-16]!",
    "bl t_ev_target",
    "ldp x29, x30, [sp], #16",
    "ret",
    "ENDFUNC t_ev_caller",
    // ---- jump optimisation (checks::optimized): sum 0..=n recursively,
    // with a stepped (optimisable) entry for a kretprobe
    "FUNC t_opt_rsum",
    "stp x29, x30, [sp, #-32]!",
    "str x0, [sp, #16]",
    "cbz x0, 1f",
    "sub x0, x0, #1",
    "bl t_opt_rsum",
    "ldr x9, [sp, #16]",
    "add x0, x0, x9",
    "1: ldp x29, x30, [sp], #32",
    "ret",
    "ENDFUNC t_opt_rsum",
    ".purgem FUNC",
    ".purgem ENDFUNC",
    ".purgem BCOND",
    ".purgem BRANCH",
    ".purgem ONE",
    ".popsection",
);

/// A test function: its name and code range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestFn {
    /// The symbol.
    pub name: &'static str,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

macro_rules! test_functions {
    ($($name:ident / $end:ident),* $(,)?) => {
        extern "C" {
            $( static $name: u8; static $end: u8; )*
        }

        const COUNT: usize = [$(stringify!($name)),*].len();

        /// Every test function (the kernel's symbol table).
        pub fn symbols() -> [TestFn; COUNT] {
            [$(TestFn {
                name: stringify!($name),
                start: core::ptr::addr_of!($name) as usize,
                end: core::ptr::addr_of!($end) as usize,
            }),*]
        }

        /// The start address of each test function.
        #[allow(non_snake_case, dead_code)]
        pub mod addr {
            $(
                #[doc = concat!("Address of `", stringify!($name), "`.")]
                pub fn $name() -> usize {
                    core::ptr::addr_of!(super::$name) as usize
                }
            )*
        }
    };
}

test_functions!(
    t_beq / t_beq_end,
    t_bne / t_bne_end,
    t_bcs / t_bcs_end,
    t_bcc / t_bcc_end,
    t_bmi / t_bmi_end,
    t_bpl / t_bpl_end,
    t_bvs / t_bvs_end,
    t_bvc / t_bvc_end,
    t_bhi / t_bhi_end,
    t_bls / t_bls_end,
    t_bge / t_bge_end,
    t_blt / t_blt_end,
    t_bgt / t_bgt_end,
    t_ble / t_ble_end,
    t_cbz_x / t_cbz_x_end,
    t_cbz_w / t_cbz_w_end,
    t_cbnz_x / t_cbnz_x_end,
    t_cbnz_w / t_cbnz_w_end,
    t_tbz_hi / t_tbz_hi_end,
    t_tbnz_hi / t_tbnz_hi_end,
    t_tbz_w / t_tbz_w_end,
    t_tbnz_w / t_tbnz_w_end,
    t_b / t_b_end,
    t_bl / t_bl_end,
    t_br / t_br_end,
    t_blr / t_blr_end,
    t_cbnz_loop / t_cbnz_loop_end,
    t_adr / t_adr_end,
    t_adrp / t_adrp_end,
    t_ldr_lit / t_ldr_lit_end,
    t_add / t_add_end,
    t_sub_w / t_sub_w_end,
    t_mul / t_mul_end,
    t_umulh / t_umulh_end,
    t_sdiv / t_sdiv_end,
    t_udiv / t_udiv_end,
    t_lsl / t_lsl_end,
    t_asr / t_asr_end,
    t_ror_w / t_ror_w_end,
    t_ubfx / t_ubfx_end,
    t_bfi / t_bfi_end,
    t_clz / t_clz_end,
    t_rev / t_rev_end,
    t_adds / t_adds_end,
    t_csel / t_csel_end,
    t_mov / t_mov_end,
    t_hints / t_hints_end,
    t_mrs / t_mrs_end,
    t_ldr / t_ldr_end,
    t_ldrsb / t_ldrsb_end,
    t_ldr_reg / t_ldr_reg_end,
    t_str / t_str_end,
    t_strb / t_strb_end,
    t_pre_post / t_pre_post_end,
    t_ldp_stp / t_ldp_stp_end,
    t_stack / t_stack_end,
    t_ldadd / t_ldadd_end,
    t_swp / t_swp_end,
    t_cas / t_cas_end,
    t_ldar / t_ldar_end,
    t_fadd / t_fadd_end,
    t_fmul / t_fmul_end,
    t_scvtf / t_scvtf_end,
    t_fcmp / t_fcmp_end,
    t_simd / t_simd_end,
    t_recur / t_recur_end,
    t_pac / t_pac_end,
    t_bti_add / t_bti_add_end,
    t_no_bti / t_no_bti_end,
    t_pac_sign / t_pac_sign_end,
    t_call_via / t_call_via_end,
    t_add2 / t_add2_end,
    t_load / t_load_end,
    t_atomic_inc / t_atomic_inc_end,
    t_refused / t_refused_end,
    t_hot / t_hot_end,
    t_churn / t_churn_end,
    t_ev_target / t_ev_target_end,
    t_ev_caller / t_ev_caller_end,
    t_opt_rsum / t_opt_rsum_end,
);

/// The instruction word at `addr` (kernel text).
pub fn word_at(addr: usize) -> u32 {
    // SAFETY: callers pass addresses of test-function instructions:
    // aligned, mapped kernel text.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Call the C-ABI test function at `addr` with two arguments.
pub fn call(addr: usize, a0: usize, a1: usize) -> usize {
    // SAFETY: `addr` is one of the callable test functions above
    // (`t_recur`, `t_pac`, `t_add2`, `t_load`, `t_atomic_inc`, `t_hot`,
    // `t_churn`, `t_opt_rsum`), each a C-ABI function of (at most) two integer arguments
    // returning an integer in x0, clobbering only caller-saved registers.
    let f: extern "C" fn(usize, usize) -> usize = unsafe { core::mem::transmute(addr) };
    f(a0, a1)
}

/// Call the C-ABI test function at `addr` with four arguments
/// (`t_ev_caller`).
pub fn call4(addr: usize, a0: usize, a1: usize, a2: usize, a3: usize) -> usize {
    // SAFETY: `addr` is `t_ev_caller`, a C-ABI function of four integer
    // arguments returning an integer in x0, which saves and restores x29
    // and x30 and clobbers only caller-saved registers otherwise.
    let f: extern "C" fn(usize, usize, usize, usize) -> usize =
        unsafe { core::mem::transmute(addr) };
    f(a0, a1, a2, a3)
}
