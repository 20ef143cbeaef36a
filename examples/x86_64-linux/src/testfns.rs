//! The probed code: test functions written in assembly, so every byte and
//! every instruction class is known, with tables the assembler fills in.
//!
//! Three assembler macros build the tables while the functions are written:
//! - `TF_BEGIN name` / `TF_END name` open and close an exported function and
//!   add `(start, name, size)` to the function table (the harness's symbol
//!   table: `symbol_containing`, `lookup_symbol`);
//! - `PT func, label` names an instruction boundary inside `func` and adds
//!   `(func, offset, label)` to the point table (where the cases probe);
//! - `EXTABLE fault, fixup` adds an exception-table entry: a fault at
//!   `fault` continues at `fixup` (the harness's own fault recovery, as a
//!   kernel's `__ex_table`).
//!
//! Offsets therefore come from the assembler, not from the decoder under
//! test. The functions follow the System V ABI (arguments in rdi, rsi, rdx;
//! result in rax) unless they are one of the `tf_ref_*` functions, which
//! hold an instruction the backend must refuse and are never called.

use core::arch::global_asm;
use core::ffi::{c_char, CStr};

global_asm!(
    r#"
.pushsection .data.rel.ro.x86_64_linux_fns,"aw",@progbits
.p2align 3
.globl x86_64_linux_fns_start
x86_64_linux_fns_start:
.popsection
.pushsection .data.rel.ro.x86_64_linux_points,"aw",@progbits
.p2align 3
.globl x86_64_linux_points_start
x86_64_linux_points_start:
.popsection
.pushsection .data.rel.ro.x86_64_linux_extable,"aw",@progbits
.p2align 3
.globl x86_64_linux_extable_start
x86_64_linux_extable_start:
.popsection

.macro TF_BEGIN name
    .pushsection .text.x86_64_linux_testfns,"ax",@progbits
    .p2align 4
    .globl \name
    .type \name,@function
\name:
    .pushsection .data.rel.ro.x86_64_linux_fns,"aw",@progbits
    .quad \name
    .quad \name\()_str
    .quad \name\()_end - \name
    .popsection
    .pushsection .rodata.x86_64_linux_names,"a",@progbits
\name\()_str: .asciz "\name"
    .popsection
.endm

.macro TF_END name
\name\()_end:
    .size \name, \name\()_end - \name
    .popsection
.endm

.macro PT func, label
\label:
    .pushsection .data.rel.ro.x86_64_linux_points,"aw",@progbits
    .quad \func
    .quad \label - \func
    .quad \label\()_pstr
    .popsection
    .pushsection .rodata.x86_64_linux_names,"a",@progbits
\label\()_pstr: .asciz "\label"
    .popsection
.endm

.macro EXTABLE fault, fixup
    .pushsection .data.rel.ro.x86_64_linux_extable,"aw",@progbits
    .quad \fault
    .quad \fixup
    .popsection
.endm

// ---- data the rip-relative instructions use ---------------------------------
.pushsection .data.x86_64_linux_data,"aw",@progbits
.p2align 4
.globl tf_data
tf_data:
    .quad 0x1122334455667788, 0x1000
.globl tf_scratch
tf_scratch:
    .quad 0, 0, 0, 0
.popsection

// ---- plain ALU: (((a + b) ^ 0x55) * 3 - b) << 2 -----------------------------
TF_BEGIN tf_alu
PT tf_alu, alu_entry
    mov rax, rdi
PT tf_alu, alu_add
    add rax, rsi
PT tf_alu, alu_xor
    xor rax, 0x55
PT tf_alu, alu_imul
    imul rax, rax, 3
PT tf_alu, alu_sub
    sub rax, rsi
PT tf_alu, alu_shl
    shl rax, 2
PT tf_alu, alu_ret
    ret
TF_END tf_alu

// ---- push/pop: a + b + 0x1234 ----------------------------------------------
TF_BEGIN tf_pushpop
PT tf_pushpop, pp_push_rbx
    push rbx
PT tf_pushpop, pp_push_rdi
    push rdi
PT tf_pushpop, pp_push_imm
    push 0x1234
PT tf_pushpop, pp_mov
    mov rbx, rsi
PT tf_pushpop, pp_pop_rcx
    pop rcx
PT tf_pushpop, pp_pop_rax
    pop rax
PT tf_pushpop, pp_add
    add rax, rbx
PT tf_pushpop, pp_add2
    add rax, rcx
PT tf_pushpop, pp_pop_rbx
    pop rbx
PT tf_pushpop, pp_ret
    ret
TF_END tf_pushpop

// ---- rip-relative loads: data[0] + a + data[1] + byte 1 of data[0] ------------
TF_BEGIN tf_rip_load
PT tf_rip_load, rl_load
    mov rax, qword ptr [rip + tf_data]
PT tf_rip_load, rl_add
    add rax, rdi
PT tf_rip_load, rl_add_mem
    add rax, qword ptr [rip + tf_data + 8]
PT tf_rip_load, rl_cmp
    cmp qword ptr [rip + tf_data], 0x10
    jne 1f
    add rax, 1000
1:
PT tf_rip_load, rl_movzx
    movzx ecx, byte ptr [rip + tf_data + 1]
    add rax, rcx
    ret
TF_END tf_rip_load

// ---- rip-relative stores: scratch[0] = a + 1, scratch[1] = 0x12345 ----------
TF_BEGIN tf_rip_store
PT tf_rip_store, rs_store
    mov qword ptr [rip + tf_scratch], rdi
PT tf_rip_store, rs_imm
    mov qword ptr [rip + tf_scratch + 8], 0x12345
PT tf_rip_store, rs_inc
    inc qword ptr [rip + tf_scratch]
PT tf_rip_store, rs_load
    mov rax, qword ptr [rip + tf_scratch]
PT tf_rip_store, rs_add
    add rax, qword ptr [rip + tf_scratch + 8]
    ret
TF_END tf_rip_store

// ---- rip-relative lea: &tf_data + &tf_rip_lea --------------------------------
TF_BEGIN tf_rip_lea
PT tf_rip_lea, le_lea
    lea rax, [rip + tf_data]
PT tf_rip_lea, le_lea_self
    lea rcx, [rip + tf_rip_lea]
PT tf_rip_lea, le_add
    add rax, rcx
    ret
TF_END tf_rip_lea

// ---- call rel32: 2a + 1 -------------------------------------------------------
TF_BEGIN tf_call
PT tf_call, ca_call
    call tf_double
PT tf_call, ca_after
    add rax, 1
    ret
TF_END tf_call

TF_BEGIN tf_double
PT tf_double, db_entry
    lea rax, [rdi + rdi]
PT tf_double, db_ret
    ret
TF_END tf_double

// ---- jmp rel8 and jmp rel32: a + 7 -----------------------------------------
TF_BEGIN tf_jmp
PT tf_jmp, jm_short
    jmp 1f
    ud2
1:
PT tf_jmp, jm_near
    .byte 0xe9
    .long 2f - (. + 4)
    ud2
2:
PT tf_jmp, jm_land
    lea rax, [rdi + 7]
    ret
TF_END tf_jmp

// ---- jcc rel8 / rel32: (a < b ? 100 : 200) + (a != b) ------------------------
TF_BEGIN tf_jcc
PT tf_jcc, jc_cmp
    cmp rdi, rsi
PT tf_jcc, jc_short
    jl 1f
PT tf_jcc, jc_fall
    mov eax, 200
    jmp 2f
1:
PT tf_jcc, jc_target
    mov eax, 100
2:
PT tf_jcc, jc_near
    .byte 0x0f, 0x84
    .long 3f - (. + 4)
PT tf_jcc, jc_nfall
    add eax, 1
3:
PT tf_jcc, jc_ret
    ret
TF_END tf_jcc

// ---- every condition code: bit n set when condition n holds for cmp a, b -----
.macro CCTEST cc, bit
    cmp rdi, rsi
PT tf_cond, cc_\cc
    j\cc 1f
    or eax, \bit
1:
.endm
TF_BEGIN tf_cond
    xor eax, eax
    CCTEST o, 0x1
    CCTEST no, 0x2
    CCTEST b, 0x4
    CCTEST ae, 0x8
    CCTEST e, 0x10
    CCTEST ne, 0x20
    CCTEST be, 0x40
    CCTEST a, 0x80
    CCTEST s, 0x100
    CCTEST ns, 0x200
    CCTEST p, 0x400
    CCTEST np, 0x800
    CCTEST l, 0x1000
    CCTEST ge, 0x2000
    CCTEST le, 0x4000
    CCTEST g, 0x8000
    not eax
    and eax, 0xffff
    ret
TF_END tf_cond
.purgem CCTEST

// ---- loop, jrcxz, loopne, loope: n(n+1)/2 + 5 ---------------------------------
TF_BEGIN tf_loop
    mov rcx, rdi
    xor eax, eax
1:
PT tf_loop, lo_body
    add rax, rcx
PT tf_loop, lo_loop
    loop 1b
PT tf_loop, lo_jrcxz
    jrcxz 2f
    add rax, 1000
2:
PT tf_loop, lo_after_jrcxz
    mov ecx, 5
    xor edx, edx
3:
    add edx, 1
    cmp edx, 2
PT tf_loop, lo_loopne
    loopne 3b
    add rax, rcx
    add rax, rdx
    mov ecx, 4
4:
    cmp ecx, ecx
PT tf_loop, lo_loope
    loope 4b
    add rax, rcx
    ret
TF_END tf_loop

// ---- ret and ret imm16: 2a + 1 ------------------------------------------------
TF_BEGIN tf_ret
PT tf_ret, rt_push
    push rdi
PT tf_ret, rt_call
    call tf_ret_imm
PT tf_ret, rt_after
    lea rax, [rax + 1]
PT tf_ret, rt_ret
    ret
TF_END tf_ret

TF_BEGIN tf_ret_imm
    mov rax, qword ptr [rsp + 8]
    add rax, rax
PT tf_ret_imm, ri_ret
    ret 8
TF_END tf_ret_imm

// ---- call and jmp through registers: 4a + 3 ----------------------------------
TF_BEGIN tf_indirect
    lea rcx, [rip + tf_double]
PT tf_indirect, in_call
    call rcx
    mov rdi, rax
    lea r11, [rip + tf_double]
PT tf_indirect, in_call_r11
    call r11
    lea rdx, [rip + 1f]
PT tf_indirect, in_jmp
    jmp rdx
    ud2
1:
PT tf_indirect, in_land
    add rax, 3
    ret
TF_END tf_indirect

// ---- pushf/popf: low half flags after cmp a, 5; high half the same with
// CF and OF toggled through popf ----------------------------------------------
TF_BEGIN tf_flags
    cmp rdi, 5
PT tf_flags, fl_pushf
    pushfq
    pop rax
    mov rcx, rax
    xor rcx, 0x801
    push rcx
PT tf_flags, fl_popf
    popfq
PT tf_flags, fl_pushf2
    pushfq
    pop rdx
    shl rdx, 32
    or rax, rdx
    ret
TF_END tf_flags

// ---- long instructions (10, 11 and 15 bytes) ---------------------------------
TF_BEGIN tf_long
PT tf_long, lg_movabs
    movabs rax, 0x1122334455667788
PT tf_long, lg_add
    add rax, rdi
PT tf_long, lg_store
    mov qword ptr [rip + tf_scratch + 16], 0x7654321
PT tf_long, lg_lea
    lea rcx, [rax + rdi*8 + 0x12345678]
PT tf_long, lg_nop11
    .byte 0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00
PT tf_long, lg_nop15
    .byte 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00
PT tf_long, lg_sub
    sub rcx, qword ptr [rip + tf_scratch + 16]
PT tf_long, lg_xor
    xor rax, rcx
    ret
TF_END tf_long

// ---- a function entry with endbr64: a + 5 ----------------------------------
TF_BEGIN tf_endbr
    .byte 0xf3, 0x0f, 0x1e, 0xfa
PT tf_endbr, eb_lea
    lea rax, [rdi + 5]
    ret
TF_END tf_endbr

// ---- recursion: n! -----------------------------------------------------------
TF_BEGIN tf_fact
PT tf_fact, fa_entry
    cmp rdi, 1
    jbe 1f
    push rdi
    dec rdi
    call tf_fact
PT tf_fact, fa_after
    pop rdi
    imul rax, rdi
    ret
1:
    mov eax, 1
    ret
TF_END tf_fact

// ---- recursion with a frame first: 1 + 2 + ... + n (its entry, push and
// two movs, can take a jump: the jump-optimisation checks) -------------------
TF_BEGIN tf_sum
    push rbx
    mov rbx, rdi
    mov rax, rdi
    cmp rdi, 1
    jbe 1f
    lea rdi, [rbx - 1]
    call tf_sum
    add rax, rbx
1:
    pop rbx
    ret
TF_END tf_sum

// ---- a callback: f(x) + 1 (f is a Rust extern "C" function) ----------------
TF_BEGIN tf_callback
    push rbx
    mov rax, rdi
    mov rdi, rsi
    call rax
    add rax, 1
    pop rbx
    ret
TF_END tf_callback

// ---- stops itself with SIGSTOP (kill(getpid(), SIGSTOP)) mid-way: a + 1 ----
TF_BEGIN tf_stop_inside
PT tf_stop_inside, si_entry
    push rdi
    mov eax, 39
    syscall
    mov edi, eax
    mov esi, 19
    mov eax, 62
    syscall
PT tf_stop_inside, si_after_stop
    pop rax
    add rax, 1
    ret
TF_END tf_stop_inside

// ---- a load that may fault; its fix-up returns -14 (-EFAULT) ---------------
TF_BEGIN tf_load
PT tf_load, ld_load
    mov rax, qword ptr [rdi]
    ret
PT tf_load, ld_fixup
    mov rax, -14
    ret
TF_END tf_load
EXTABLE ld_load, ld_fixup

// ---- the instruction-boundary sweep: straight-line code, 22 instructions ----
TF_BEGIN tf_sweep
PT tf_sweep, sw00
    push rbx
PT tf_sweep, sw01
    mov rbx, rdi
PT tf_sweep, sw02
    movabs rax, 0x0102030405060708
PT tf_sweep, sw03
    add rax, rbx
PT tf_sweep, sw04
    lea rcx, [rax + rbx*4 + 0x100]
PT tf_sweep, sw05
    xor edx, edx
PT tf_sweep, sw06
    imul rcx, rcx, 7
PT tf_sweep, sw07
    mov rdx, qword ptr [rip + tf_data]
PT tf_sweep, sw08
    add rcx, rdx
PT tf_sweep, sw09
    cmp rcx, rax
PT tf_sweep, sw10
    je 1f
1:
PT tf_sweep, sw11
    shl rdx, 3
PT tf_sweep, sw12
    sub rcx, rdx
PT tf_sweep, sw13
    mov qword ptr [rip + tf_scratch + 24], rcx
PT tf_sweep, sw14
    add rax, qword ptr [rip + tf_scratch + 24]
PT tf_sweep, sw15
    rol rax, 13
PT tf_sweep, sw16
    not rax
PT tf_sweep, sw17
    mov r8, 0x12345678
PT tf_sweep, sw18
    add rax, r8
PT tf_sweep, sw19
    .byte 0x0f, 0x1f, 0x44, 0x00, 0x00
PT tf_sweep, sw20
    pop rbx
PT tf_sweep, sw21
    ret
TF_END tf_sweep

// ---- concurrency: hot (fixed probes) and cold (probes come and go) ----------
TF_BEGIN tf_hot
PT tf_hot, hot_a
    lea rax, [rdi + rdi*2]
PT tf_hot, hot_b
    add rax, 1
PT tf_hot, hot_c
    jmp 1f
    ud2
1:
    ret
TF_END tf_hot

TF_BEGIN tf_cold
PT tf_cold, cold_a
    mov rax, rdi
PT tf_cold, cold_b
    xor rax, 0x5a5a
PT tf_cold, cold_c
    add rax, 9
PT tf_cold, cold_d
    ret
TF_END tf_cold

// ---- benchmark targets -------------------------------------------------------
TF_BEGIN tf_bench_int3
    int3
    lea rax, [rdi + 1]
    ret
TF_END tf_bench_int3

TF_BEGIN tf_bench_probe
PT tf_bench_probe, bench_insn
    lea rax, [rdi + 1]
    ret
TF_END tf_bench_probe

TF_BEGIN tf_bench_ret
    lea rax, [rdi + 1]
    ret
TF_END tf_bench_ret

// The jump-optimisation benchmark: its first two instructions (7 bytes,
// both boostable) take the 5-byte jump.
TF_BEGIN tf_bench_opt
    mov rax, rdi
    add rax, 1
    ret
TF_END tf_bench_opt

TF_BEGIN tf_bench_opt_ret
    mov rax, rdi
    add rax, 1
    ret
TF_END tf_bench_opt_ret

TF_BEGIN tf_bench_opt_plain
    mov rax, rdi
    add rax, 1
    ret
TF_END tf_bench_opt_plain

TF_BEGIN tf_bench_plain
    lea rax, [rdi + 1]
    ret
TF_END tf_bench_plain

// ---- refused instructions: never called --------------------------------------
.macro REFUSED name, bytes:vararg
TF_BEGIN \name
    .byte \bytes
TF_END \name
.endm
REFUSED tf_ref_int3, 0xcc
REFUSED tf_ref_int_n, 0xcd, 0x80
REFUSED tf_ref_int1, 0xf1
REFUSED tf_ref_into, 0xce
REFUSED tf_ref_iretq, 0x48, 0xcf
REFUSED tf_ref_iretd, 0xcf
REFUSED tf_ref_syscall, 0x0f, 0x05
REFUSED tf_ref_sysenter, 0x0f, 0x34
REFUSED tf_ref_sysretq, 0x48, 0x0f, 0x07
REFUSED tf_ref_swapgs, 0x0f, 0x01, 0xf8
REFUSED tf_ref_hlt, 0xf4
REFUSED tf_ref_ud2, 0x0f, 0x0b
REFUSED tf_ref_ud1, 0x0f, 0xb9, 0xc0
REFUSED tf_ref_jmp_far_mem, 0xff, 0x2f
REFUSED tf_ref_call_far_mem, 0xff, 0x1f
REFUSED tf_ref_jmp_far_ptr, 0xea, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00
REFUSED tf_ref_call_far_ptr, 0x9a, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00
REFUSED tf_ref_retf, 0xcb
REFUSED tf_ref_jmp_mem, 0xff, 0x27
REFUSED tf_ref_jmp_rip_mem, 0xff, 0x25, 0x00, 0x00, 0x00, 0x00
REFUSED tf_ref_call_mem, 0xff, 0x17
REFUSED tf_ref_jz_rel16, 0x66, 0x0f, 0x84, 0x00, 0x00
REFUSED tf_ref_jz_rel8_o16, 0x66, 0x74, 0x00
REFUSED tf_ref_jmp_o16, 0x66, 0xe9, 0x00, 0x00
REFUSED tf_ref_call_o16, 0x66, 0xe8, 0x00, 0x00
REFUSED tf_ref_ret_o16, 0x66, 0xc3
REFUSED tf_ref_xbegin, 0xc7, 0xf8, 0x00, 0x00, 0x00, 0x00
REFUSED tf_ref_xend, 0x0f, 0x01, 0xd5
REFUSED tf_ref_xabort, 0xc6, 0xf8, 0x01
REFUSED tf_ref_mov_ss, 0x8e, 0xd0
REFUSED tf_ref_pop_ss, 0x17
REFUSED tf_ref_mwait, 0x0f, 0x01, 0xc9
REFUSED tf_ref_vmcall, 0x0f, 0x01, 0xc1
.purgem REFUSED

// An endbr64 that is not at the function entry (a probe may not replace it).
TF_BEGIN tf_ref_endbr_inside
    nop
PT tf_ref_endbr_inside, ref_endbr
    .byte 0xf3, 0x0f, 0x1e, 0xfa
    ret
TF_END tf_ref_endbr_inside

.purgem TF_BEGIN
.purgem TF_END
.purgem PT
.purgem EXTABLE

.pushsection .data.rel.ro.x86_64_linux_fns,"aw",@progbits
.globl x86_64_linux_fns_end
x86_64_linux_fns_end:
.popsection
.pushsection .data.rel.ro.x86_64_linux_points,"aw",@progbits
.globl x86_64_linux_points_end
x86_64_linux_points_end:
.popsection
.pushsection .data.rel.ro.x86_64_linux_extable,"aw",@progbits
.globl x86_64_linux_extable_end
x86_64_linux_extable_end:
.popsection
"#
);

#[repr(C)]
struct RawFn {
    start: usize,
    name: *const c_char,
    size: usize,
}

#[repr(C)]
struct RawPoint {
    func: usize,
    offset: usize,
    name: *const c_char,
}

#[repr(C)]
struct RawFixup {
    fault: usize,
    fixup: usize,
}

extern "C" {
    static x86_64_linux_fns_start: RawFn;
    static x86_64_linux_fns_end: RawFn;
    static x86_64_linux_points_start: RawPoint;
    static x86_64_linux_points_end: RawPoint;
    static x86_64_linux_extable_start: RawFixup;
    static x86_64_linux_extable_end: RawFixup;
    static tf_data: [u64; 2];
    static tf_scratch: [u64; 4];
}

/// A test function: where it starts, how long it is, its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestFn {
    /// Name of the exported symbol.
    pub name: &'static str,
    /// Address of its first byte.
    pub start: usize,
    /// Size in bytes.
    pub size: usize,
}

impl TestFn {
    /// Whether `addr` lies inside the function.
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.start && addr < self.start + self.size
    }
}

/// A named instruction boundary inside a test function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// The label.
    pub name: &'static str,
    /// Start of the function holding it.
    pub func: usize,
    /// Offset from the function start.
    pub offset: usize,
}

impl Point {
    /// Its address.
    pub fn addr(&self) -> usize {
        self.func + self.offset
    }
}

/// Build a slice from the start and end symbols of one assembler table.
///
/// # Safety
/// `start` and `end` delimit one table of `T` emitted by the assembly above.
unsafe fn table<T>(start: *const T, end: *const T) -> &'static [T] {
    // SAFETY: both pointers come from the same table (the caller's promise);
    // the table is read-only data living for the whole program.
    unsafe {
        let n = end.offset_from(start) as usize;
        core::slice::from_raw_parts(start, n)
    }
}

/// The name a table entry points to.
///
/// # Safety
/// `p` points to a NUL-terminated string of the tables above.
unsafe fn name(p: *const c_char) -> &'static str {
    // SAFETY: the assembler emitted the string with `.asciz`; it lives in
    // read-only data for the whole program.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().unwrap_or("?")
}

fn raw_fns() -> &'static [RawFn] {
    // SAFETY: the start and end labels bracket the function table, which
    // only the `TF_BEGIN` macro writes (three quads per entry).
    unsafe {
        table(
            core::ptr::addr_of!(x86_64_linux_fns_start),
            core::ptr::addr_of!(x86_64_linux_fns_end),
        )
    }
}

fn raw_points() -> &'static [RawPoint] {
    // SAFETY: as above, for the point table written by `PT`.
    unsafe {
        table(
            core::ptr::addr_of!(x86_64_linux_points_start),
            core::ptr::addr_of!(x86_64_linux_points_end),
        )
    }
}

/// Every test function, in the order of the source.
pub fn functions() -> impl Iterator<Item = TestFn> {
    raw_fns().iter().map(|f| TestFn {
        // SAFETY: the name field of a table entry is an `.asciz` string.
        name: unsafe { name(f.name) },
        start: f.start,
        size: f.size,
    })
}

/// The test function called `name`.
///
/// # Panics
/// If there is none (a typo in a case table).
pub fn func(name: &str) -> TestFn {
    functions()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no test function {name}"))
}

/// The test function containing `addr`, if any.
pub fn func_containing(addr: usize) -> Option<TestFn> {
    functions().find(|f| f.contains(addr))
}

/// Every named point, in the order of the source.
pub fn points() -> impl Iterator<Item = Point> {
    raw_points().iter().map(|p| Point {
        // SAFETY: the name field of a table entry is an `.asciz` string.
        name: unsafe { name(p.name) },
        func: p.func,
        offset: p.offset,
    })
}

/// The point called `name`.
///
/// # Panics
/// If there is none (a typo in a case table).
pub fn point(name: &str) -> Point {
    points()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no point {name}"))
}

/// Address of a point or, failing that, of a function called `name`.
pub fn addr_of(name: &str) -> usize {
    match points().find(|p| p.name == name) {
        Some(p) => p.addr(),
        None => func(name).start,
    }
}

/// The exception table: `(faulting instruction, where to continue)`.
/// Read from signal handlers: no allocation, no lock.
#[link_section = "probe_trap_text"]
pub fn fixup_for(pc: usize) -> Option<usize> {
    // SAFETY: the start and end labels bracket the exception table, which
    // only the `EXTABLE` macro writes (two quads per entry).
    let t = unsafe {
        table(
            core::ptr::addr_of!(x86_64_linux_extable_start),
            core::ptr::addr_of!(x86_64_linux_extable_end),
        )
    };
    t.iter().find(|e| e.fault == pc).map(|e| e.fixup)
}

/// Address of `tf_data` (two quads: 0x1122334455667788 and 0x1000).
pub fn data_addr() -> usize {
    core::ptr::addr_of!(tf_data) as usize
}

/// Address of `tf_scratch` (four quads the store tests write).
pub fn scratch_addr() -> usize {
    core::ptr::addr_of!(tf_scratch) as usize
}

/// Read `len` bytes of code at `addr` (a copy).
///
/// # Safety
/// `addr..addr + len` is mapped and readable.
pub unsafe fn code_bytes(addr: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            // SAFETY: the caller guarantees the range is readable; volatile
            // because other code patches these bytes behind the compiler's back.
            unsafe { core::ptr::read_volatile((addr + i) as *const u8) }
        })
        .collect()
}
