//! Instructions stepped out of line: integer ALU, multiply/divide, loads
//! and stores (sp-relative and through a register), AMOs, compressed ALU
//! (with `c.addiw`, quadrant 1 funct3 1 on RV64), compressed sp-relative
//! loads and stores, a 32-bit instruction at a 2-byte-aligned address, and
//! floating point (with `sstatus.FS` on). Every instruction of each function
//! is probed in turn and the registers compared with the unprobed call.

use probe_core::Kprobe;
use probe_hal_riscv64::breakpoint::EBREAK;

use super::report::{check, ensure, ensure_eq, note};
use super::{key_offset, probe_each_kernel_insn, Case};
use crate::kernel::services::ENGINE;
use crate::kernel::symbols::{self, kernel_fn};
use crate::kernel::trap::{self, SSTATUS_FS};

kernel_fn!(
    "t_alu",
    "norvc",
    [
        "add a0, a0, a1",
        "sub a2, a0, a1",
        "slli a3, a2, 5",
        "xori a3, a3, 0x5a",
        "or a0, a3, a1",
        "sra a4, a0, a1",
        "sltu a5, a1, a0",
        "lui a6, 0x12345",
        "addiw a7, a6, -1",
        "and a2, a7, a0",
        "add a0, a0, a2",
        "add a0, a0, a4",
        "add a0, a0, a5",
        "ret",
    ]
);

kernel_fn!(
    "t_muldiv",
    "norvc",
    [
        "mul a2, a0, a1",
        "mulh a3, a0, a1",
        "mulhu a4, a0, a1",
        "div a5, a2, a1",
        "divu a6, a0, a1",
        "rem a7, a0, a1",
        "remuw t0, a0, a1",
        "mulw t1, a0, a1",
        "add a0, a2, a3",
        "add a0, a0, a4",
        "add a0, a0, a5",
        "add a0, a0, a6",
        "add a0, a0, a7",
        "add a0, a0, t0",
        "add a0, a0, t1",
        "ret",
    ]
);

// Stores and loads of every width on the stack, and through a register.
kernel_fn!(
    "t_mem",
    "norvc",
    [
        "addi sp, sp, -32",
        "sd a0, 8(sp)",
        "sw a1, 16(sp)",
        "sh a1, 20(sp)",
        "sb a0, 22(sp)",
        "ld t0, 8(sp)",
        "lw t1, 16(sp)",
        "lhu t2, 20(sp)",
        "lbu t3, 22(sp)",
        "lh t4, 20(sp)",
        "lwu t5, 16(sp)",
        "addi a2, sp, 8",
        "ld a3, 0(a2)",
        "sd a3, 24(sp)",
        "ld a4, 24(sp)",
        "add a0, t0, t1",
        "add a0, a0, t2",
        "add a0, a0, t3",
        "add a0, a0, t4",
        "add a0, a0, t5",
        "add a0, a0, a4",
        "addi sp, sp, 32",
        "ret",
    ]
);

// AMOs on a word the function first sets, so every call starts alike.
kernel_fn!(
    "t_amo",
    "norvc",
    [
        "lla t0, t_amo_cell",
        "sd a0, 0(t0)",
        "amoadd.d a2, a1, (t0)",
        "amoswap.w a3, a1, (t0)",
        "amoor.d a4, a0, (t0)",
        "amomaxu.d a5, a1, (t0)",
        "ld a6, 0(t0)",
        "add a0, a2, a3",
        "add a0, a0, a4",
        "add a0, a0, a5",
        "add a0, a0, a6",
        "ret",
        ".pushsection .bss.t_amo_cell, \"aw\", @nobits",
        ".p2align 3",
        "t_amo_cell:",
        ".zero 8",
        ".popsection",
    ]
);

// Compressed ALU, with c.addiw.
kernel_fn!(
    "t_calu",
    "rvc",
    [
        "c.mv a2, a0",
        "c.addi a2, 7",
        "c.addiw a2, -3",
        "c.li a3, 12",
        "c.add a2, a3",
        "c.slli a2, 2",
        "c.srli a2, 1",
        "c.srai a2, 1",
        "c.andi a2, 31",
        "c.sub a2, a3",
        "c.xor a2, a0",
        "c.or a2, a1",
        "c.and a2, a0",
        "c.addw a2, a3",
        "c.subw a2, a1",
        "c.lui a4, 3",
        "c.add a2, a4",
        "c.mv a0, a2",
        "c.jr ra",
    ]
);

// Compressed sp-relative and register-relative loads and stores.
kernel_fn!(
    "t_csp",
    "rvc",
    [
        "c.addi16sp sp, -32",
        "c.sdsp a0, 8(sp)",
        "c.swsp a1, 16(sp)",
        "c.ldsp a2, 8(sp)",
        "c.lwsp a3, 16(sp)",
        "c.addi4spn a4, sp, 8",
        "c.ld a5, 0(a4)",
        "c.sw a1, 12(a4)",
        "c.lw a4, 12(a4)",
        "c.add a2, a3",
        "c.add a2, a5",
        "c.add a2, a4",
        "c.mv a0, a2",
        "c.addi16sp sp, 32",
        "c.jr ra",
    ]
);

// 32-bit instructions at addresses that are 2 mod 4.
kernel_fn!(
    "t_odd32",
    "rvc",
    [
        "c.addi a0, 1",
        ".option push",
        ".option norvc",
        "add a0, a0, a1",
        "mul a0, a0, a1",
        "xori a0, a0, 0x3c",
        ".option pop",
        "c.jr ra",
    ]
);

// Floating point: conversions, arithmetic, moves, FP loads and stores.
kernel_fn!(
    "t_fp",
    "norvc",
    [
        "fcvt.d.l fa0, a0",
        "fcvt.d.l fa1, a1",
        "fmul.d fa2, fa0, fa1",
        "fadd.d fa2, fa2, fa0",
        "fsqrt.d fa3, fa2",
        "fmadd.d fa4, fa3, fa1, fa0",
        "fcvt.s.d fa5, fa4",
        "fcvt.d.s fa5, fa5",
        "addi sp, sp, -16",
        "fsd fa4, 8(sp)",
        "fld fa6, 8(sp)",
        ".option push",
        ".option rvc",
        "c.fsdsp fa3, 0(sp)",
        "c.fldsp fa7, 0(sp)",
        ".option pop",
        "addi sp, sp, 16",
        "feq.d a3, fa6, fa4",
        "fmv.x.d a2, fa7",
        "fcvt.l.d a0, fa2, rtz",
        "fcvt.l.d a4, fa5, rtz",
        "add a0, a0, a4",
        "add a0, a0, a3",
        "xor a0, a0, a2",
        "ret",
    ]
);

const fn step(
    label: &'static str,
    func: &'static str,
    args: &'static [usize],
    want: usize,
    key: &'static str,
) -> Case {
    Case {
        label,
        func,
        args,
        want,
        key,
        key_hits: 1,
        simulated: false,
    }
}

const fn alu(a: usize, b: usize) -> usize {
    let a0 = a.wrapping_add(b);
    let a2 = a0.wrapping_sub(b);
    let a3 = (a2 << 5) ^ 0x5a;
    let a0 = a3 | b;
    let a4 = ((a0 as isize) >> (b & 63)) as usize;
    let a5 = (b < a0) as usize;
    let a6 = 0x1234_5000usize;
    let a7 = (a6 as u32).wrapping_sub(1) as i32 as isize as usize;
    let a2 = a7 & a0;
    a0.wrapping_add(a2).wrapping_add(a4).wrapping_add(a5)
}

const fn muldiv(a: usize, b: usize) -> usize {
    let a2 = a.wrapping_mul(b);
    let a3 = ((a as i64 as i128 * b as i64 as i128) >> 64) as usize;
    let a4 = ((a as u128 * b as u128) >> 64) as usize;
    let a5 = (a2 as i64 / b as i64) as usize;
    let a6 = a / b;
    let a7 = (a as i64 % b as i64) as usize;
    let t0 = (a as u32 % b as u32) as i32 as isize as usize;
    let t1 = (a as u32).wrapping_mul(b as u32) as i32 as isize as usize;
    a2.wrapping_add(a3)
        .wrapping_add(a4)
        .wrapping_add(a5)
        .wrapping_add(a6)
        .wrapping_add(a7)
        .wrapping_add(t0)
        .wrapping_add(t1)
}

const fn mem(a: usize, b: usize) -> usize {
    let t0 = a;
    let t1 = b as u32 as i32 as isize as usize;
    let t2 = b as u16 as usize;
    let t3 = a as u8 as usize;
    let t4 = b as u16 as i16 as isize as usize;
    let t5 = b as u32 as usize;
    t0.wrapping_add(t1)
        .wrapping_add(t2)
        .wrapping_add(t3)
        .wrapping_add(t4)
        .wrapping_add(t5)
        .wrapping_add(a)
}

const fn amo(a: usize, b: usize) -> usize {
    let a2 = a;
    let cell = a.wrapping_add(b);
    let a3 = cell as u32 as i32 as isize as usize;
    let cell = (cell & !0xffff_ffff) | (b & 0xffff_ffff);
    let a4 = cell;
    let cell = cell | a;
    let a5 = cell;
    let cell = if b > cell { b } else { cell };
    a2.wrapping_add(a3)
        .wrapping_add(a4)
        .wrapping_add(a5)
        .wrapping_add(cell)
}

const fn calu(a: usize, b: usize) -> usize {
    let mut x = a.wrapping_add(7);
    x = (x as u32).wrapping_sub(3) as i32 as isize as usize;
    x = x.wrapping_add(12);
    x <<= 2;
    x >>= 1;
    x = ((x as isize) >> 1) as usize;
    x &= 31;
    x = x.wrapping_sub(12);
    x ^= a;
    x |= b;
    x &= a;
    x = (x as u32).wrapping_add(12) as i32 as isize as usize;
    x = (x as u32).wrapping_sub(b as u32) as i32 as isize as usize;
    x.wrapping_add(3 << 12)
}

const fn csp(a: usize, b: usize) -> usize {
    let a3 = b as u32 as i32 as isize as usize;
    a.wrapping_add(a3).wrapping_add(a).wrapping_add(a3)
}

const fn odd32(a: usize, b: usize) -> usize {
    (a.wrapping_add(1).wrapping_add(b)).wrapping_mul(b) ^ 0x3c
}

/// Arguments most checks call the stepped functions with.
pub const ARG_A: usize = 0x0123_4567_89ab_cdef;
/// See [`ARG_A`].
pub const ARG_B: usize = 13;
const A: usize = ARG_A;
const B: usize = ARG_B;

/// `t_alu(ARG_A, ARG_B)`.
pub const fn alu_result() -> usize {
    alu(ARG_A, ARG_B)
}

const CASES: &[Case] = &[
    step(
        "step integer ALU (add, shifts, lui, addiw)",
        "t_alu",
        &[A, B],
        alu(A, B),
        "add",
    ),
    step(
        "step multiply and divide",
        "t_muldiv",
        &[A, B],
        muldiv(A, B),
        "div",
    ),
    step(
        "step loads and stores, sp-relative",
        "t_mem",
        &[A, B],
        mem(A, B),
        "sd",
    ),
    step("step AMOs", "t_amo", &[A, B], amo(A, B), "amoadd.d"),
    step(
        "step compressed ALU with c.addiw",
        "t_calu",
        &[A, B],
        calu(A, B),
        "c.addiw",
    ),
    step(
        "step compressed sp-relative loads/stores",
        "t_csp",
        &[A, B],
        csp(A, B),
        "c.sdsp",
    ),
    step(
        "step 32-bit instruction at 2 mod 4",
        "t_odd32",
        &[A, B],
        odd32(A, B),
        "add",
    ),
];

/// Run the checks.
pub fn run() {
    for case in CASES {
        check(case.label, || probe_each_kernel_insn(case));
    }
    check(
        "a 4-byte ebreak over a 32-bit instruction at 2 mod 4",
        || {
            let f = symbols::get("t_odd32");
            let addr = f.start + key_offset(&CASES[6], &f)?;
            ensure!(addr % 4 == 2, "`add` at {addr:#x} is 4-byte aligned");
            let orig = read4(addr);
            let id = ENGINE.register_kprobe(&Kprobe::at(addr))?;
            let armed = read4(addr);
            let prev = read2(addr - 2);
            ENGINE.unregister(id)?;
            ensure_eq!(
                armed,
                EBREAK.to_le_bytes(),
                "bytes at {addr:#x} while armed"
            );
            ensure_eq!(prev, [0x05, 0x05], "the c.addi before it (untouched)");
            ensure_eq!(read4(addr), orig, "bytes after unregister");
            note!("`add` at {addr:#x}: ebreak written over all 4 bytes and removed again")
        },
    );
    check("step floating point with sstatus.FS on", || {
        let fs = trap::sstatus() & SSTATUS_FS;
        ensure!(fs != 0, "sstatus.FS is off");
        // sqrt(7 * 3 + 7) = 5.29...: a result the integer helpers cannot
        // fake; compare with the unprobed call instead of a constant.
        let case = Case {
            want: fp_unprobed(),
            ..step("fp", "t_fp", &[7, 3], 0, "fmul.d")
        };
        probe_each_kernel_insn(&case)?;
        note!("every instruction of t_fp probed (fmul.d, fsqrt.d, fmadd.d, c.fsdsp…), sstatus.FS = {:#x}", fs >> 13)
    });
}

fn fp_unprobed() -> usize {
    super::regfile::call2(symbols::get("t_fp").start, 7, 3)
}

/// The 4 bytes at `addr`.
pub fn read4(addr: usize) -> [u8; 4] {
    let mut b = [0u8; 4];
    for (i, byte) in b.iter_mut().enumerate() {
        // SAFETY: kernel text, readable by S-mode.
        *byte = unsafe { core::ptr::read_volatile((addr + i) as *const u8) };
    }
    b
}

/// The 2 bytes at `addr`.
pub fn read2(addr: usize) -> [u8; 2] {
    let b = read4(addr);
    [b[0], b[1]]
}
