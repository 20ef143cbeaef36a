//! The kernel test functions, in assembly so every probed instruction is
//! exactly the one named. Each follows the C ABI (arguments `a0`, `a1`,
//! results in `a2`/`a3` for the register-state cases or `a0` for the
//! callable ones) and has `name` and `name_end` symbols; [`symbols`] is the
//! kernel's symbol table for the engine (boundary and function-entry
//! checks, `Kprobe::symbol`).
//!
//! Layouts the checks rely on (byte offsets):
//! - conditional branches `t_beq` … `t_bnez`: +0 the branch to +12,
//!   +4 `a2 = 1`, +8 `ret`, +12 `a2 = 2`, +16 `ret`; `t_b` the same;
//! - `t_bl`: +4 `bl` to +16, which copies `ra` into `a2`;
//! - `t_jirl`/`t_jirl_same`: +8 `jirl` to +20 (`rd` = `ra`, or `rd` = `rj`);
//! - `t_bnez_loop`: +12 `bnez` back to +4, `a0` times;
//! - pc-relative `t_pcaddi` …: +0 negative offset into `a2`, +4 positive
//!   into `a3`;
//! - `t_recur`: the recursive `bl` at +20 returns to +24.

use core::arch::global_asm;

global_asm!(
    ".macro FUNC name",
    ".globl \\name",
    ".type \\name, @function",
    ".p2align 3",
    "\\name:",
    ".endm",
    ".macro ENDFUNC name",
    ".globl \\name\\()_end",
    "\\name\\()_end:",
    ".size \\name, \\name\\()_end - \\name",
    ".endm",
    ".macro BRANCH2 name, op",
    "FUNC \\name",
    "\\op $a0, $a1, 1f",
    "addi.d $a2, $zero, 1",
    "ret",
    "1: addi.d $a2, $zero, 2",
    "ret",
    "ENDFUNC \\name",
    ".endm",
    ".macro BRANCH1 name, op",
    "FUNC \\name",
    "\\op $a0, 1f",
    "addi.d $a2, $zero, 1",
    "ret",
    "1: addi.d $a2, $zero, 2",
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
    // ---- simulated: conditional branches
    "BRANCH2 t_beq, beq",
    "BRANCH2 t_bne, bne",
    "BRANCH2 t_blt, blt",
    "BRANCH2 t_bge, bge",
    "BRANCH2 t_bltu, bltu",
    "BRANCH2 t_bgeu, bgeu",
    "BRANCH1 t_beqz, beqz",
    "BRANCH1 t_bnez, bnez",
    // ---- simulated: jumps and calls
    "FUNC t_b",
    "b 1f",
    "addi.d $a2, $zero, 1",
    "ret",
    "1: addi.d $a2, $zero, 2",
    "ret",
    "ENDFUNC t_b",
    "FUNC t_bl",
    "move $t0, $ra",
    "bl 1f",
    "move $ra, $t0",
    "ret",
    "1: move $a2, $ra",
    "ret",
    "ENDFUNC t_bl",
    "FUNC t_jirl",
    "move $t0, $ra",
    "pcaddi $t1, 4",
    "jirl $ra, $t1, 0",
    "move $ra, $t0",
    "ret",
    "move $a2, $ra",
    "ret",
    "ENDFUNC t_jirl",
    "FUNC t_jirl_same",
    "move $t0, $ra",
    "pcaddi $t1, 4",
    "jirl $t1, $t1, 0",
    "move $ra, $t0",
    "ret",
    "move $a2, $t1",
    "jirl $zero, $t1, 0",
    "ENDFUNC t_jirl_same",
    "FUNC t_bnez_loop",
    "move $a2, $zero",
    "1: addi.d $a2, $a2, 1",
    "addi.d $a0, $a0, -1",
    "bnez $a0, 1b",
    "ret",
    "ENDFUNC t_bnez_loop",
    // ---- simulated: pc-relative arithmetic, negative then positive
    "FUNC t_pcaddi",
    "pcaddi $a2, -3",
    "pcaddi $a3, 5",
    "ret",
    "ENDFUNC t_pcaddi",
    "FUNC t_pcalau12i",
    "pcalau12i $a2, -1",
    "pcalau12i $a3, 2",
    "ret",
    "ENDFUNC t_pcalau12i",
    "FUNC t_pcaddu12i",
    "pcaddu12i $a2, -1",
    "pcaddu12i $a3, 3",
    "ret",
    "ENDFUNC t_pcaddu12i",
    "FUNC t_pcaddu18i",
    "pcaddu18i $a2, -1",
    "pcaddu18i $a3, 1",
    "ret",
    "ENDFUNC t_pcaddu18i",
    // ---- stepped out of line: ALU, shifts, bit fields
    "ONE t_add_d, add.d $a2, $a0, $a1",
    "ONE t_sub_w, sub.w $a2, $a0, $a1",
    "ONE t_mul_d, mul.d $a2, $a0, $a1",
    "ONE t_mulh_du, mulh.du $a2, $a0, $a1",
    "ONE t_div_d, div.d $a2, $a0, $a1",
    "ONE t_mod_du, mod.du $a2, $a0, $a1",
    "ONE t_slli_d, slli.d $a2, $a0, 13",
    "ONE t_srai_d, srai.d $a2, $a0, 7",
    "ONE t_rotri_w, rotri.w $a2, $a0, 5",
    "ONE t_sll_w, sll.w $a2, $a0, $a1",
    "ONE t_alsl_d, alsl.d $a2, $a0, $a1, 3",
    "ONE t_bstrpick_d, bstrpick.d $a2, $a0, 47, 8",
    "ONE t_maskeqz, maskeqz $a2, $a0, $a1",
    "ONE t_sltui, sltui $a2, $a0, 100",
    "FUNC t_lu",
    "lu12i.w $a2, -2",
    "lu32i.d $a2, 0x12345",
    "lu52i.d $a2, $a2, 0x7ff",
    "ret",
    "ENDFUNC t_lu",
    "ONE t_cpucfg, cpucfg $a2, $a0",
    // ---- stepped: loads and stores
    "ONE t_ld_d, ld.d $a2, $a0, 8",
    "ONE t_ld_b, ld.b $a2, $a0, 3",
    "ONE t_ldx_d, ldx.d $a2, $a0, $a1",
    "ONE t_st_d, st.d $a1, $a0, 16",
    "ONE t_st_b, st.b $a1, $a0, 5",
    "FUNC t_stack",
    "addi.d $sp, $sp, -32",
    "st.d $a0, $sp, 8",
    "ld.d $a2, $sp, 8",
    "addi.d $sp, $sp, 32",
    "ret",
    "ENDFUNC t_stack",
    // ---- stepped: floating point (results moved to a2)
    "FUNC t_fadd_d",
    "movgr2fr.d $fa0, $a0",
    "movgr2fr.d $fa1, $a1",
    "fadd.d $fa2, $fa0, $fa1",
    "movfr2gr.d $a2, $fa2",
    "ret",
    "ENDFUNC t_fadd_d",
    "FUNC t_fmul_d",
    "movgr2fr.d $fa0, $a0",
    "movgr2fr.d $fa1, $a1",
    "fmul.d $fa2, $fa0, $fa1",
    "movfr2gr.d $a2, $fa2",
    "ret",
    "ENDFUNC t_fmul_d",
    "FUNC t_ffint",
    "movgr2fr.d $fa0, $a0",
    "ffint.d.l $fa1, $fa0",
    "movfr2gr.d $a2, $fa1",
    "ret",
    "ENDFUNC t_ffint",
    "FUNC t_fcmp",
    "movgr2fr.d $fa0, $a0",
    "movgr2fr.d $fa1, $a1",
    "fcmp.clt.d $fcc0, $fa0, $fa1",
    "movcf2gr $a2, $fcc0",
    "ret",
    "ENDFUNC t_fcmp",
    // ---- return probes: sum 0..=n, recursively
    "FUNC t_recur",
    "beqz $a0, 1f",
    "addi.d $sp, $sp, -16",
    "st.d $ra, $sp, 8",
    "st.d $a0, $sp, 0",
    "addi.d $a0, $a0, -1",
    "bl t_recur",
    "ld.d $t0, $sp, 0",
    "add.d $a0, $a0, $t0",
    "ld.d $ra, $sp, 8",
    "addi.d $sp, $sp, 16",
    "1: ret",
    "ENDFUNC t_recur",
    // a0 + a1, the callable function for aggregate, re-entry and
    // return-value checks
    "FUNC t_add2",
    "add.d $a0, $a0, $a1",
    "ret",
    "ENDFUNC t_add2",
    // ---- a load that may fault, with its fix-up (-EFAULT)
    "FUNC t_load",
    "ld.d $a0, $a0, 0",
    "ret",
    "t_load_fixup:",
    "addi.d $a0, $zero, -14",
    "ret",
    "ENDFUNC t_load",
    ".pushsection .ex_table, \"a\"",
    ".p2align 3",
    ".dword t_load, t_load_fixup",
    ".popsection",
    // ---- vector and LBT instructions (stepped, QEMU 7.2 does not implement them:
    // they raise a fault in place or in the slot), each with a fix-up that
    // returns -38 (-ENOSYS) as a kernel's unit-enabling fault path would
    // stand in for. Encoded as words: the target has no LSX/LASX feature.
    "FUNC t_vadd",
    ".word 0x700a0820", // vadd.b $vr0, $vr1, $vr2
    "addi.d $a0, $zero, 1",
    "ret",
    "t_vadd_fixup:",
    "addi.d $a0, $zero, -38",
    "ret",
    "ENDFUNC t_vadd",
    "FUNC t_xvld",
    ".word 0x2c8000a4", // xvld $xr4, $a1, 0
    "addi.d $a0, $zero, 2",
    "ret",
    "t_xvld_fixup:",
    "addi.d $a0, $zero, -38",
    "ret",
    "ENDFUNC t_xvld",
    "FUNC t_lbt",
    ".word 0x003f0480", // x86add.wu $a0, $ra (LBT)
    "addi.d $a0, $zero, 3",
    "ret",
    "t_lbt_fixup:",
    "addi.d $a0, $zero, -38",
    "ret",
    "ENDFUNC t_lbt",
    ".pushsection .ex_table, \"a\"",
    ".p2align 3",
    ".dword t_vadd, t_vadd_fixup",
    ".dword t_xvld, t_xvld_fixup",
    ".dword t_lbt, t_lbt_fixup",
    ".popsection",
    // ---- an atomic increment of *a0 with an LL/SC loop; returns the old
    // value
    "FUNC t_atomic_inc",
    "move $t1, $a0",
    "1: ll.w $a2, $t1, 0",
    "addi.w $t0, $a2, 1",
    "sc.w $t0, $t1, 0",
    "beqz $t0, 1b",
    "move $a0, $a2",
    "ret",
    "ENDFUNC t_atomic_inc",
    // ---- instructions that must be refused (never executed)
    "FUNC t_refused",
    "amswap.w $t0, $t1, $a0",
    "bceqz $fcc0, 1f",
    "break 0",
    "syscall 0",
    "ertn",
    "idle 0",
    "csrrd $t0, 0x5",
    "1: ret",
    "ENDFUNC t_refused",
    // ---- two CPUs: 3x + 7 for x != 0 (+0 stepped, +8 simulated)
    "FUNC t_hot",
    "slli.d $t0, $a0, 1",
    "add.d $a0, $a0, $t0",
    "bnez $a0, 1f",
    "addi.d $a0, $zero, -1",
    "1: addi.d $a0, $a0, 7",
    "ret",
    "ENDFUNC t_hot",
    // (x ^ 0x55) + 1: probed and unprobed again and again by CPU 0
    "FUNC t_churn",
    "xori $a0, $a0, 0x55",
    "addi.d $a0, $a0, 1",
    "pcaddi $t0, 0",
    "ret",
    "ENDFUNC t_churn",
    // ---- probe events (checks::events): t_ev_target(a, b, p, s) = a + b,
    // probed at +4 (the `add.d`, arguments still in $a0..$a3 = r4..r7);
    // t_ev_caller calls it, the `bl` returning to +12
    "FUNC t_ev_target",
    "move $t0, $a0",
    "add.d $a0, $t0, $a1",
    "ret",
    "ENDFUNC t_ev_target",
    "FUNC t_ev_caller",
    "addi.d $sp, $sp, -16",
    "st.d $ra, $sp, 8",
    "bl t_ev_target",
    "ld.d $ra, $sp, 8",
    "addi.d $sp, $sp, 16",
    "ret",
    "ENDFUNC t_ev_caller",
    // ---- jump optimisation (checks::optimized): n + (n - 1) + … + 0,
    // recursively, with a stepped entry (`addi.d $sp`) that can be
    // optimised; and `t_opt_anon` (a0 + 5), a function the symbol table
    // does not list (its size is unknown), placed before it so the text
    // fingerprint covers it
    "FUNC t_opt_anon_area",
    "ret",
    ".globl t_opt_anon",
    "t_opt_anon:",
    "addi.d $a0, $a0, 5",
    "ret",
    "ENDFUNC t_opt_anon_area",
    "FUNC t_opt_rsum",
    "addi.d $sp, $sp, -16",
    "st.d $ra, $sp, 8",
    "st.d $a0, $sp, 0",
    "beqz $a0, 1f",
    "addi.d $a0, $a0, -1",
    "bl t_opt_rsum",
    "ld.d $a1, $sp, 0",
    "add.d $a0, $a0, $a1",
    "1: ld.d $ra, $sp, 8",
    "addi.d $sp, $sp, 16",
    "ret",
    "ENDFUNC t_opt_rsum",
    ".purgem FUNC",
    ".purgem ENDFUNC",
    ".purgem BRANCH2",
    ".purgem BRANCH1",
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
    t_blt / t_blt_end,
    t_bge / t_bge_end,
    t_bltu / t_bltu_end,
    t_bgeu / t_bgeu_end,
    t_beqz / t_beqz_end,
    t_bnez / t_bnez_end,
    t_b / t_b_end,
    t_bl / t_bl_end,
    t_jirl / t_jirl_end,
    t_jirl_same / t_jirl_same_end,
    t_bnez_loop / t_bnez_loop_end,
    t_pcaddi / t_pcaddi_end,
    t_pcalau12i / t_pcalau12i_end,
    t_pcaddu12i / t_pcaddu12i_end,
    t_pcaddu18i / t_pcaddu18i_end,
    t_add_d / t_add_d_end,
    t_sub_w / t_sub_w_end,
    t_mul_d / t_mul_d_end,
    t_mulh_du / t_mulh_du_end,
    t_div_d / t_div_d_end,
    t_mod_du / t_mod_du_end,
    t_slli_d / t_slli_d_end,
    t_srai_d / t_srai_d_end,
    t_rotri_w / t_rotri_w_end,
    t_sll_w / t_sll_w_end,
    t_alsl_d / t_alsl_d_end,
    t_bstrpick_d / t_bstrpick_d_end,
    t_maskeqz / t_maskeqz_end,
    t_sltui / t_sltui_end,
    t_lu / t_lu_end,
    t_cpucfg / t_cpucfg_end,
    t_ld_d / t_ld_d_end,
    t_ld_b / t_ld_b_end,
    t_ldx_d / t_ldx_d_end,
    t_st_d / t_st_d_end,
    t_st_b / t_st_b_end,
    t_stack / t_stack_end,
    t_fadd_d / t_fadd_d_end,
    t_fmul_d / t_fmul_d_end,
    t_ffint / t_ffint_end,
    t_fcmp / t_fcmp_end,
    t_recur / t_recur_end,
    t_add2 / t_add2_end,
    t_load / t_load_end,
    t_vadd / t_vadd_end,
    t_xvld / t_xvld_end,
    t_lbt / t_lbt_end,
    t_atomic_inc / t_atomic_inc_end,
    t_refused / t_refused_end,
    t_hot / t_hot_end,
    t_churn / t_churn_end,
    t_ev_target / t_ev_target_end,
    t_ev_caller / t_ev_caller_end,
    t_opt_rsum / t_opt_rsum_end,
);

extern "C" {
    static t_opt_anon: u8;
}

/// Address of `t_opt_anon` (a0 + 5), inside `t_opt_anon_area`'s range but
/// listed in no symbol: the engine cannot know its function's size.
pub fn t_opt_anon_addr() -> usize {
    core::ptr::addr_of!(t_opt_anon) as usize
}

/// The code range holding every test function.
pub fn text_range() -> core::ops::Range<usize> {
    let s = symbols();
    let start = s.iter().map(|f| f.start).min().unwrap_or(0);
    let end = s.iter().map(|f| f.end).max().unwrap_or(0);
    start..end
}

/// The instruction word at `addr` (kernel text).
pub fn word_at(addr: usize) -> u32 {
    // SAFETY: callers pass addresses of test-function instructions:
    // aligned, mapped kernel text.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Call the C-ABI test function at `addr` with two arguments.
pub fn call(addr: usize, a0: usize, a1: usize) -> usize {
    // SAFETY: `addr` is one of the callable test functions above
    // (`t_recur`, `t_add2`, `t_load`, `t_atomic_inc`, `t_hot`,
    // `t_churn`, `t_opt_rsum`, `t_opt_anon`), each a C-ABI function of (at most) two integer arguments
    // returning an integer in a0, clobbering only caller-saved registers.
    let f: extern "C" fn(usize, usize) -> usize = unsafe { core::mem::transmute(addr) };
    f(a0, a1)
}

/// Call the C-ABI test function at `addr` with four arguments
/// (`t_ev_caller`).
pub fn call4(addr: usize, a0: usize, a1: usize, a2: usize, a3: usize) -> usize {
    // SAFETY: `addr` is `t_ev_caller`, a C-ABI function of four integer
    // arguments returning an integer in a0, which saves and restores ra and
    // clobbers only caller-saved registers otherwise.
    let f: extern "C" fn(usize, usize, usize, usize) -> usize =
        unsafe { core::mem::transmute(addr) };
    f(a0, a1, a2, a3)
}
