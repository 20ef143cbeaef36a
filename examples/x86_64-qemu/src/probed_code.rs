//! The functions the checks probe, written in assembly so that every probed
//! instruction is exactly the one named (a compiler could reorder, merge or
//! drop them). They live in `.text.xq_probed`, between the linker symbols
//! `__probed_start` and `__probed_end`, in read-only text.
//!
//! Each function follows the System V ABI; a `Pair` result comes back in
//! rax:rdx. Labels named `*_site`, `*_insn` and the like mark the probed
//! instructions; `*_end` labels give each function's size for the symbol
//! table (see [`crate::symbols`]).

use core::arch::global_asm;

/// Two words returned in rax and rdx.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// rax
    pub a: u64,
    /// rdx
    pub b: u64,
}

/// The word `xq_riprel` loads through a rip-relative operand.
pub const RIPREL_VALUE: u64 = 0x0123_4567_89ab_cdef;
/// The canary `xq_call` keeps above its call site.
const CANARY: u64 = 0x5a5a_5a5a_5a5a_5a5a;
/// What `xq_load` returns when its load faults (-EFAULT).
pub const EFAULT: u64 = -14i64 as u64;

global_asm!(
    ".pushsection .text.xq_probed, \"ax\", @progbits",
    ".p2align 4",
    // u64 xq_alu(x) = (x + 5) * 3: a plain ALU instruction to step.
    ".global xq_alu, xq_alu_add, xq_alu_ret, xq_alu_end",
    "xq_alu:",
    "mov rax, rdi",
    "xq_alu_add:",
    "add rax, 5",
    "imul rax, rax, 3",
    "xq_alu_ret:",
    "ret",
    "xq_alu_end:",
    // Pair xq_push(a, b) = (a, b), through two stepped pushes.
    ".global xq_push, xq_push_rsi, xq_push_rdi, xq_push_end",
    "xq_push:",
    "xq_push_rsi:",
    "push rsi",
    "xq_push_rdi:",
    "push rdi",
    "pop rax",
    "pop rdx",
    "ret",
    "xq_push_end:",
    // Pair xq_call(): a `call rel32` (simulated: the engine writes the
    // return address at rsp - 8, the stack-gap case) with canaries above
    // the call site. a = the return address the callee found at [rsp],
    // b = 0 when the canaries and rsp survived (else a bit per damage:
    // 1, 2 canaries, 4 rsp after the call, 8 rsp inside the callee).
    ".global xq_call, xq_call_site, xq_call_back, xq_call_end",
    "xq_call:",
    "push rbx",
    "sub rsp, 16",
    "mov rax, {canary}",
    "mov [rsp], rax",
    "mov [rsp + 8], rax",
    "mov rbx, rsp",
    "xor edx, edx",
    "xq_call_site:",
    "call xq_call_leaf",
    "xq_call_back:",
    "mov rcx, {canary}",
    "cmp [rsp], rcx",
    "je 1f",
    "or edx, 1",
    "1:",
    "cmp [rsp + 8], rcx",
    "je 2f",
    "or edx, 2",
    "2:",
    "cmp rsp, rbx",
    "je 3f",
    "or edx, 4",
    "3:",
    "add rsp, 16",
    "pop rbx",
    "ret",
    "xq_call_leaf:",
    "mov rax, [rsp]",
    "lea rcx, [rsp + 8]",
    "cmp rcx, rbx",
    "je 4f",
    "or edx, 8",
    "4:",
    "ret",
    "xq_call_end:",
    // u64 xq_pushf(want_if): the image a probed `pushfq` pushes with IF set
    // as asked (simulated in kernel mode; also the stack-gap case).
    ".global xq_pushf, xq_pushf_site, xq_pushf_end",
    "xq_pushf:",
    "test rdi, rdi",
    "jz 1f",
    "sti",
    "jmp 2f",
    "1:",
    "cli",
    "2:",
    "xq_pushf_site:",
    "pushfq",
    "pop rax",
    "cli",
    "ret",
    "xq_pushf_end:",
    // Pair xq_popf(image, start_if): a = flags after a probed `popfq` of
    // `image`, b = flags just before it (IF = start_if).
    ".global xq_popf, xq_popf_site, xq_popf_end",
    "xq_popf:",
    "test rsi, rsi",
    "jz 1f",
    "sti",
    "jmp 2f",
    "1:",
    "cli",
    "2:",
    "pushfq",
    "pop rdx",
    "push rdi",
    "xq_popf_site:",
    "popfq",
    "pushfq",
    "pop rax",
    "cli",
    "cld",
    "ret",
    "xq_popf_end:",
    // u64 xq_cli(): flags after a probed `cli` run with IF set.
    ".global xq_cli, xq_cli_site, xq_cli_end",
    "xq_cli:",
    "sti",
    "xq_cli_site:",
    "cli",
    "pushfq",
    "pop rax",
    "ret",
    "xq_cli_end:",
    // u64 xq_sti(): flags after a probed `sti` run with IF clear.
    ".global xq_sti, xq_sti_site, xq_sti_end",
    "xq_sti:",
    "cli",
    "xq_sti_site:",
    "sti",
    "pushfq",
    "pop rax",
    "cli",
    "ret",
    "xq_sti_end:",
    // u64 xq_if_step(want_if): flags after a stepped `add` run with IF as
    // asked (the step itself runs with IF clear).
    ".global xq_if_step, xq_if_step_site, xq_if_step_end",
    "xq_if_step:",
    "test rdi, rdi",
    "jz 1f",
    "sti",
    "jmp 2f",
    "1:",
    "cli",
    "2:",
    "xq_if_step_site:",
    "add rdi, 1",
    "pushfq",
    "pop rax",
    "cli",
    "ret",
    "xq_if_step_end:",
    // Pair xq_if_opt(want_if, pc_change) = (flags after, want_if + 3): two
    // boostable adds (one jump-optimisable region) run with IF as asked;
    // the probe's handler may return at once (rsi = 1 tells the caller's
    // check which; the function itself ignores it).
    ".global xq_if_opt, xq_if_opt_site, xq_if_opt_end",
    "xq_if_opt:",
    "mov rdx, rdi",
    "test rdi, rdi",
    "jz 1f",
    "sti",
    "1:",
    "xq_if_opt_site:",
    "add rdx, 1",
    "add rdx, 2",
    "pushfq",
    "pop rax",
    "cli",
    "ret",
    "xq_if_opt_end:",
    // Pair xq_riprel() = (RIPREL_VALUE, &xq_riprel_data): a rip-relative
    // load and a rip-relative lea, both fixed up in the slot.
    ".global xq_riprel, xq_riprel_load, xq_riprel_lea, xq_riprel_end, xq_riprel_data",
    "xq_riprel:",
    "xq_riprel_load:",
    "mov rax, [rip + xq_riprel_data]",
    "xq_riprel_lea:",
    "lea rdx, [rip + xq_riprel_data]",
    "ret",
    "xq_riprel_end:",
    // u64 xq_jcc(x) = 100 if x < 10 else 200: a jcc and a jmp rel8.
    ".global xq_jcc, xq_jcc_site, xq_jcc_jmp, xq_jcc_end",
    "xq_jcc:",
    "cmp rdi, 10",
    "xq_jcc_site:",
    "jl 1f",
    "mov eax, 200",
    "xq_jcc_jmp:",
    "jmp 2f",
    "1:",
    "mov eax, 100",
    "2:",
    "ret",
    "xq_jcc_end:",
    // u64 xq_loop(n) = 2n for n >= 1, through `loop`.
    ".global xq_loop, xq_loop_body, xq_loop_site, xq_loop_end",
    "xq_loop:",
    "xor eax, eax",
    "mov rcx, rdi",
    "1:",
    "xq_loop_body:",
    "add rax, 2",
    "xq_loop_site:",
    "loop 1b",
    "ret",
    "xq_loop_end:",
    // u64 xq_callreg(x) = 2x + 1, through `call rax`.
    ".global xq_callreg, xq_callreg_site, xq_callreg_end",
    "xq_callreg:",
    "lea rax, [rip + xq_double]",
    "xq_callreg_site:",
    "call rax",
    "add rax, 1",
    "ret",
    "xq_double:",
    "lea rax, [rdi + rdi]",
    "ret",
    "xq_callreg_end:",
    // u64 xq_sum(n) = n + (n - 1) + … + 0, recursively (return probes).
    ".global xq_sum, xq_sum_back, xq_sum_end",
    "xq_sum:",
    "test rdi, rdi",
    "jz 1f",
    "push rdi",
    "dec rdi",
    "call xq_sum",
    "xq_sum_back:",
    "pop rdi",
    "add rax, rdi",
    "ret",
    "1:",
    "xor eax, eax",
    "ret",
    "xq_sum_end:",
    // u64 xq_leaf(x) = x + 1.
    ".global xq_leaf, xq_leaf_end",
    "xq_leaf:",
    "lea rax, [rdi + 1]",
    "ret",
    "xq_leaf_end:",
    // u64 xq_rsum(n) = n + (n - 1) + ... + 0, recursively; its entry
    // (push, mov, xor: 6 bytes, all boostable, no branch into them) can
    // carry a jump-optimised probe, unlike xq_sum's (a jz at +3).
    ".global xq_rsum, xq_rsum_end",
    "xq_rsum:",
    "push rbx",
    "mov rbx, rdi",
    "xor eax, eax",
    "test rbx, rbx",
    "jz 1f",
    "lea rdi, [rbx - 1]",
    "call xq_rsum",
    "add rax, rbx",
    "1:",
    "pop rbx",
    "ret",
    "xq_rsum_end:",
    // u64 xq_ev_target(a, b, p, s) = a + b, probed by the events check at
    // xq_ev_target_add (arguments still in rdi, rsi, rdx, rcx);
    // xq_ev_caller calls it once, returning to xq_ev_caller_back.
    ".global xq_ev_target, xq_ev_target_add, xq_ev_target_end",
    "xq_ev_target:",
    "mov rax, rdi",
    "xq_ev_target_add:",
    "add rax, rsi",
    "ret",
    "xq_ev_target_end:",
    ".global xq_ev_caller, xq_ev_caller_back, xq_ev_caller_end",
    "xq_ev_caller:",
    "call xq_ev_target",
    "xq_ev_caller_back:",
    "ret",
    "xq_ev_caller_end:",
    // Pair xq_load(p, want_if) = (*p, flags after), or (EFAULT, flags after)
    // when the load faults: the exception table sends a fault at
    // xq_load_insn to xq_load_fixup.
    ".global xq_load, xq_load_insn, xq_load_fixup, xq_load_end",
    "xq_load:",
    "test rsi, rsi",
    "jz 1f",
    "sti",
    "jmp 2f",
    "1:",
    "cli",
    "2:",
    "xq_load_insn:",
    "mov rax, [rdi]",
    "3:",
    "pushfq",
    "pop rdx",
    "cli",
    "ret",
    "xq_load_fixup:",
    "mov rax, {efault}",
    "jmp 3b",
    "xq_load_end:",
    // u64 xq_endbr(x) = x + 2, starting with endbr64.
    ".global xq_endbr, xq_endbr_body, xq_endbr_end",
    "xq_endbr:",
    "endbr64",
    "xq_endbr_body:",
    "lea rax, [rdi + 2]",
    "ret",
    "xq_endbr_end:",
    // u64 xq_jtab(i) = [10, 21, 32, 43][i & 3], through `jmp [rcx*8 +
    // table]`: the absolute jump table of a non-PIC kernel (SIB without a
    // base, a sign-extended disp32; the kernel is linked without PIE).
    // Simulated: the target is read from the table through the services.
    ".global xq_jtab, xq_jtab_site, xq_jtab_end",
    "xq_jtab:",
    "mov rcx, rdi",
    "and ecx, 3",
    "xq_jtab_site:",
    "jmp qword ptr [8 * rcx + xq_jtab_table]",
    "xq_jtab_c0:",
    "mov eax, 10",
    "ret",
    "xq_jtab_c1:",
    "mov eax, 21",
    "ret",
    "xq_jtab_c2:",
    "mov eax, 32",
    "ret",
    "xq_jtab_c3:",
    "mov eax, 43",
    "ret",
    "xq_jtab_end:",
    // Pair xq_callmem(x) = (2x + 1, the return address the callee found at
    // [rsp]), through `call [rip + xq_callmem_ptr]` (a GOT-style call;
    // simulated: the pointer is read rip-relative to the original
    // instruction, the return address pushed into the int3 entry's gap).
    ".global xq_callmem, xq_callmem_site, xq_callmem_back, xq_callmem_end",
    "xq_callmem:",
    "xq_callmem_site:",
    "call qword ptr [rip + xq_callmem_ptr]",
    "xq_callmem_back:",
    "add rax, 1",
    "ret",
    "xq_callmem_callee:",
    "lea rax, [rdi + rdi]",
    "mov rdx, [rsp]",
    "ret",
    "xq_callmem_end:",
    // u64 xq_callptr(p) = (*p)() through `call [rax]` (rax = p), or EFAULT
    // when reading *p faults: the exception table sends a fault at
    // xq_callptr_site to xq_callptr_fixup. xq_callptr_target returns 77.
    ".global xq_callptr, xq_callptr_site, xq_callptr_fixup, xq_callptr_target, xq_callptr_end",
    "xq_callptr:",
    "mov rax, rdi",
    "xq_callptr_site:",
    "call qword ptr [rax]",
    "ret",
    "xq_callptr_fixup:",
    "mov rax, {efault}",
    "ret",
    "xq_callptr_target:",
    "mov eax, 77",
    "ret",
    "xq_callptr_end:",
    // Never executed: instructions the backend must refuse.
    ".global xq_refused, xq_refused_hlt, xq_refused_iretq, xq_refused_int3, xq_refused_ud2",
    ".global xq_refused_int80, xq_refused_movss, xq_refused_callmem, xq_refused_sysret",
    ".global xq_refused_end",
    "xq_refused:",
    "xq_refused_hlt:",
    "hlt",
    "xq_refused_iretq:",
    "iretq",
    "xq_refused_int3:",
    "int3",
    "xq_refused_ud2:",
    "ud2",
    "xq_refused_int80:",
    "int 0x80",
    "xq_refused_movss:",
    "mov ss, ax",
    "xq_refused_callmem:",
    "call qword ptr gs:[rax]",
    "xq_refused_sysret:",
    "sysretq",
    "xq_refused_end:",
    ".popsection",
    ".pushsection .rodata.xq_riprel_data, \"a\", @progbits",
    ".p2align 3",
    "xq_riprel_data:",
    ".quad {riprel}",
    "xq_jtab_table:",
    ".quad xq_jtab_c0, xq_jtab_c1, xq_jtab_c2, xq_jtab_c3",
    "xq_callmem_ptr:",
    ".quad xq_callmem_callee",
    ".popsection",
    canary = const CANARY,
    efault = const EFAULT,
    riprel = const RIPREL_VALUE,
);

/// A label in the code above (only its address is used).
pub type Label = unsafe extern "C" fn();

/// The address of `label`.
pub fn addr(label: Label) -> usize {
    label as usize
}

extern "C" {
    pub fn xq_alu(x: u64) -> u64;
    pub fn xq_alu_add();
    pub fn xq_alu_ret();
    pub fn xq_alu_end();
    pub fn xq_push(a: u64, b: u64) -> Pair;
    pub fn xq_push_rsi();
    pub fn xq_push_rdi();
    pub fn xq_push_end();
    pub fn xq_call() -> Pair;
    pub fn xq_call_site();
    pub fn xq_call_back();
    pub fn xq_call_end();
    pub fn xq_pushf(want_if: u64) -> u64;
    pub fn xq_pushf_site();
    pub fn xq_pushf_end();
    pub fn xq_popf(image: u64, start_if: u64) -> Pair;
    pub fn xq_popf_site();
    pub fn xq_popf_end();
    pub fn xq_cli() -> u64;
    pub fn xq_cli_site();
    pub fn xq_cli_end();
    pub fn xq_sti() -> u64;
    pub fn xq_sti_site();
    pub fn xq_sti_end();
    pub fn xq_if_step(want_if: u64) -> u64;
    pub fn xq_if_step_site();
    pub fn xq_if_step_end();
    pub fn xq_if_opt(want_if: u64, pc_change: u64) -> Pair;
    pub fn xq_if_opt_site();
    pub fn xq_if_opt_end();
    pub fn xq_riprel() -> Pair;
    pub fn xq_riprel_load();
    pub fn xq_riprel_lea();
    pub fn xq_riprel_end();
    pub fn xq_riprel_data();
    pub fn xq_jcc(x: u64) -> u64;
    pub fn xq_jcc_site();
    pub fn xq_jcc_jmp();
    pub fn xq_jcc_end();
    pub fn xq_loop(n: u64) -> u64;
    pub fn xq_loop_body();
    pub fn xq_loop_site();
    pub fn xq_loop_end();
    pub fn xq_callreg(x: u64) -> u64;
    pub fn xq_callreg_site();
    pub fn xq_callreg_end();
    pub fn xq_sum(n: u64) -> u64;
    pub fn xq_sum_back();
    pub fn xq_sum_end();
    pub fn xq_leaf(x: u64) -> u64;
    pub fn xq_leaf_end();
    pub fn xq_rsum(n: u64) -> u64;
    pub fn xq_rsum_end();
    pub fn xq_ev_target(a: u64, b: u64, p: u64, s: u64) -> u64;
    pub fn xq_ev_target_add();
    pub fn xq_ev_target_end();
    pub fn xq_ev_caller(a: u64, b: u64, p: u64, s: u64) -> u64;
    pub fn xq_ev_caller_back();
    pub fn xq_ev_caller_end();
    pub fn xq_load(p: u64, want_if: u64) -> Pair;
    pub fn xq_load_insn();
    pub fn xq_load_fixup();
    pub fn xq_load_end();
    pub fn xq_endbr(x: u64) -> u64;
    pub fn xq_endbr_body();
    pub fn xq_endbr_end();
    pub fn xq_jtab(i: u64) -> u64;
    pub fn xq_jtab_site();
    pub fn xq_jtab_end();
    pub fn xq_callmem(x: u64) -> Pair;
    pub fn xq_callmem_site();
    pub fn xq_callmem_back();
    pub fn xq_callmem_end();
    pub fn xq_callptr(p: u64) -> u64;
    pub fn xq_callptr_site();
    pub fn xq_callptr_fixup();
    pub fn xq_callptr_target();
    pub fn xq_callptr_end();
    pub fn xq_refused();
    pub fn xq_refused_hlt();
    pub fn xq_refused_iretq();
    pub fn xq_refused_int3();
    pub fn xq_refused_ud2();
    pub fn xq_refused_int80();
    pub fn xq_refused_movss();
    pub fn xq_refused_callmem();
    pub fn xq_refused_sysret();
    pub fn xq_refused_end();
    static __probed_start: u8;
    static __probed_end: u8;
}

/// Where the probed code lies: `[start, end)`.
pub fn range() -> (usize, usize) {
    (
        &raw const __probed_start as usize,
        &raw const __probed_end as usize,
    )
}
