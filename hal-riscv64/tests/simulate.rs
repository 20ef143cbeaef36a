//! The simulator: each simulated instruction run on a trap frame, through
//! the `Arch` entry points, with exact register results.

use probe_hal::{Arch, DataAccess, ExecMode, Handling, MemoryFault, Registers};
use probe_hal_riscv64::{PtRegs, Riscv64};

/// Simulation never touches memory: any access fails the test.
struct NoMemory;

impl DataAccess for NoMemory {
    fn read(&self, addr: usize, _: &mut [u8]) -> Result<(), MemoryFault> {
        panic!("simulation read memory at {addr:#x}")
    }
    fn write(&self, addr: usize, _: &[u8]) -> Result<(), MemoryFault> {
        panic!("simulation wrote memory at {addr:#x}")
    }
}

/// A frame whose every register x<n> holds 0x1000 + n, pc at `addr`.
fn frame(addr: usize) -> PtRegs {
    let mut regs = PtRegs::default();
    for n in 1..32 {
        regs.set_gpr(n, 0x1000 + n);
    }
    regs.set_pc(addr);
    regs
}

/// Simulate the instruction `bytes` at `addr` on `regs`.
fn run(bytes: &[u8], addr: usize, regs: &mut PtRegs) {
    let insn = Riscv64::decode(addr, bytes, ExecMode::Kernel).expect("decodes");
    assert_eq!(insn.handling, Handling::Simulate);
    Riscv64::simulate(&insn, addr, regs, &NoMemory).expect("simulates");
}

fn run32(word: u32, addr: usize, regs: &mut PtRegs) {
    run(&word.to_le_bytes(), addr, regs);
}

fn run16(half: u16, addr: usize, regs: &mut PtRegs) {
    run(&half.to_le_bytes(), addr, regs);
}

/// `regs` equals `frame(0)` except for the listed registers and the pc.
fn assert_only(regs: &PtRegs, pc: usize, changed: &[(usize, usize)]) {
    assert_eq!(regs.pc(), pc, "pc");
    for n in 0..32 {
        let expected = match changed.iter().find(|(r, _)| *r == n) {
            Some(&(_, v)) => v,
            None if n == 0 => 0,
            None => 0x1000 + n,
        };
        assert_eq!(regs.gpr(n), expected, "x{n}");
    }
}

const A: usize = 0x8020_0000;

#[test]
fn jal_links_and_jumps() {
    let mut r = frame(A);
    run32(0x001000ef, A, &mut r); // jal ra, .+0x800
    assert_only(&r, A + 0x800, &[(1, A + 4)]);

    let mut r = frame(A);
    run32(0x800002ef, A, &mut r); // jal t0, .-0x100000
    assert_only(&r, A - 0x10_0000, &[(5, A + 4)]);
}

#[test]
fn jal_without_link_discards_rd() {
    let mut r = frame(A);
    run32(0xffdff06f, A, &mut r); // jal zero, .-4
    assert_only(&r, A - 4, &[]);
}

#[test]
fn jalr_computes_target_before_linking() {
    let mut r = frame(A);
    r.a0 = 0x9000_0001; // odd base: bit 0 of the target is cleared
    run32(0x010500e7, A, &mut r); // jalr ra, 16(a0)
    assert_only(&r, 0x9000_0010, &[(1, A + 4), (10, 0x9000_0001)]);

    // jalr t0, -2048(t1)
    let mut r = frame(A);
    run32(0x800302e7, A, &mut r);
    assert_only(&r, (0x1006usize).wrapping_sub(2048) & !1, &[(5, A + 4)]);

    // ret: no link.
    let mut r = frame(A);
    run32(0x00008067, A, &mut r);
    assert_only(&r, 0x1000, &[]);

    // c.jalr ra: target from the old ra, then ra = pc + 2.
    let mut r = frame(A);
    r.ra = 0x8030_0000;
    run16(0x9082, A, &mut r);
    assert_only(&r, 0x8030_0000, &[(1, A + 2)]);
}

#[test]
fn compressed_jumps() {
    let mut r = frame(A);
    run16(0xb001, A, &mut r); // c.j .-2048
    assert_only(&r, A - 2048, &[]);

    let mut r = frame(A);
    run16(0xaffd, A, &mut r); // c.j .+2046
    assert_only(&r, A + 2046, &[]);

    let mut r = frame(A);
    r.a0 = 0x8040_0002;
    run16(0x8502, A, &mut r); // c.jr a0
    assert_only(&r, 0x8040_0002, &[(10, 0x8040_0002)]);

    let mut r = frame(A);
    r.a5 = 0x8050_0000;
    run16(0x9782, A, &mut r); // c.jalr a5
    assert_only(&r, 0x8050_0000, &[(1, A + 2), (15, 0x8050_0000)]);
}

#[test]
fn auipc_positive_negative() {
    let mut r = frame(A);
    run32(0x12345517, A, &mut r); // auipc a0, 0x12345
    assert_only(&r, A + 4, &[(10, A + 0x1234_5000)]);

    let mut r = frame(A);
    run32(0xfffff317, A, &mut r); // auipc t1, 0xfffff
    assert_only(&r, A + 4, &[(6, A - 4096)]);

    // auipc a5, 0x80000: -2 GiB, sign-extended to 64 bits.
    let high = 0xffff_ffff_8000_1000usize;
    let mut r = frame(high);
    run32(0x80000797, high, &mut r);
    assert_only(&r, high + 4, &[(15, 0xffff_ffff_0000_1000)]);

    // auipc zero, 1 only advances.
    let mut r = frame(A);
    run32(0x00001017, A, &mut r);
    assert_only(&r, A + 4, &[]);
}

#[test]
fn pc_arithmetic_wraps() {
    // jal zero, .-4 at address 0 wraps to the top of the address space.
    let mut r = frame(0);
    run32(0xffdff06f, 0, &mut r);
    assert_only(&r, usize::MAX - 3, &[]);

    // auipc a0, 0x12345 near the top wraps past 0.
    let top = usize::MAX - 0xfff;
    let mut r = frame(top);
    run32(0x12345517, top, &mut r);
    assert_only(&r, top + 4, &[(10, top.wrapping_add(0x1234_5000))]);
}

/// Run branch `word` with rs1 = `a`, rs2 = `b` (a0/a1 unless the branch
/// uses other registers, given as `rs`); return the resulting pc.
fn branch(word: u32, rs: (usize, usize), a: usize, b: usize) -> usize {
    let mut r = frame(A);
    r.set_gpr(rs.0, a);
    r.set_gpr(rs.1, b);
    run32(word, A, &mut r);
    let mut expected = frame(A);
    expected.set_gpr(rs.0, a);
    expected.set_gpr(rs.1, b);
    expected.set_pc(r.pc());
    assert_eq!(r, expected, "a branch changes only the pc");
    r.pc()
}

#[test]
fn every_branch_taken_and_not_taken() {
    let ab = (10, 11);
    let minus1 = usize::MAX;
    // beq a0, a1, .+8
    assert_eq!(branch(0x00b50463, ab, 5, 5), A + 8);
    assert_eq!(branch(0x00b50463, ab, 5, 6), A + 4);
    // bne a0, a1, .-8
    assert_eq!(branch(0xfeb51ce3, ab, 5, 6), A - 8);
    assert_eq!(branch(0xfeb51ce3, ab, 5, 5), A + 4);
    // blt a0, a1, .+4094: signed
    assert_eq!(branch(0x7eb54fe3, ab, minus1, 1), A + 4094);
    assert_eq!(branch(0x7eb54fe3, ab, 1, minus1), A + 4);
    assert_eq!(branch(0x7eb54fe3, ab, 3, 3), A + 4);
    // bge a0, a1, .-4096: signed, equal is taken
    assert_eq!(branch(0x80b55063, ab, 3, 3), A - 4096);
    assert_eq!(branch(0x80b55063, ab, 1, minus1), A - 4096);
    assert_eq!(branch(0x80b55063, ab, minus1, 1), A + 4);
    // bltu a2, a3, .+16: unsigned
    assert_eq!(branch(0x00d66863, (12, 13), 1, minus1), A + 16);
    assert_eq!(branch(0x00d66863, (12, 13), minus1, 1), A + 4);
    // bgeu t0, zero, .-2: always taken (x0 = 0)
    assert_eq!(branch(0xfe02ffe3, (5, 0), 0, 0), A - 2);
    assert_eq!(branch(0xfe02ffe3, (5, 0), minus1, 0), A - 2);
}

#[test]
fn compressed_branches_taken_and_not_taken() {
    // c.beqz s0, .+254
    let mut r = frame(A);
    r.s0 = 0;
    run16(0xcc7d, A, &mut r);
    assert_only(&r, A + 254, &[(8, 0)]);
    let mut r = frame(A);
    run16(0xcc7d, A, &mut r);
    assert_only(&r, A + 2, &[]);

    // c.bnez a5, .-256
    let mut r = frame(A);
    run16(0xf381, A, &mut r);
    assert_only(&r, A - 256, &[]);
    let mut r = frame(A);
    r.a5 = 0;
    run16(0xf381, A, &mut r);
    assert_only(&r, A + 2, &[(15, 0)]);
}
