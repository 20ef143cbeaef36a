//! Unit tests: the rules on hand-assembled functions, the jump, and the
//! detour decoded back.

use probe_hal::{ExecMode, OptRegion, SiteRule, TextAt};

use super::detour::{self, *};
use super::region::analyze;
use super::{JUMP_LEN, REACH};
use crate::decode::{decode_insn, Flow, Verdict};

const BASE: usize = 0x8020_0000;

/// Hand assembly.
#[derive(Default)]
struct Asm(Vec<u8>);

impl Asm {
    fn w(&mut self, word: u32) -> usize {
        let at = BASE + self.0.len();
        self.0.extend_from_slice(&word.to_le_bytes());
        at
    }
    fn h(&mut self, half: u16) -> usize {
        let at = BASE + self.0.len();
        self.0.extend_from_slice(&half.to_le_bytes());
        at
    }
    fn here(&self) -> usize {
        BASE + self.0.len()
    }
}

const ADDI_A0: u32 = addi(10, 10, 1); // addi a0, a0, 1
const C_NOP: u16 = 0x0001;
const C_ADDI_A0: u16 = 0x0505; // c.addi a0, 1
const RET: u32 = jalr(0, 1, 0);
const C_JR_RA: u16 = 0x8082; // c.jr ra (ret)
const C_JR_T0: u16 = 0x8282; // c.jr t0
const C_JALR_T0: u16 = 0x9282; // c.jalr t0
const LR_W: u32 = 0x1005_272f; // lr.w a4, (a0)
const SC_W: u32 = 0x18b5_27af; // sc.w a5, a1, (a0)

fn beq(rs1: u32, rs2: u32, offset: i32) -> u32 {
    let o = offset as u32;
    (((o >> 12) & 1) << 31)
        | (((o >> 5) & 0x3f) << 25)
        | (rs2 << 20)
        | (rs1 << 15)
        | (((o >> 1) & 0xf) << 8)
        | (((o >> 11) & 1) << 7)
        | 0x63
}

/// `c.j offset`.
fn c_j(offset: i32) -> u16 {
    let o = offset as u32;
    let imm = (((o >> 11) & 1) << 12)
        | (((o >> 4) & 1) << 11)
        | (((o >> 8) & 3) << 9)
        | (((o >> 10) & 1) << 8)
        | (((o >> 6) & 1) << 7)
        | (((o >> 7) & 1) << 6)
        | (((o >> 1) & 7) << 3)
        | (((o >> 5) & 1) << 2);
    (0xa001 | imm) as u16
}

fn run(a: &Asm, addr: usize) -> Result<OptRegion, SiteRule> {
    analyze(
        addr,
        BASE..a.here(),
        &TextAt::new(BASE, &a.0),
        &|_| false,
        ExecMode::Kernel,
    )
}

#[test]
fn a_four_byte_instruction_is_its_own_region() {
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(RET);
    let r = run(&a, p).unwrap();
    assert_eq!((r.addr, r.len, r.insns), (p, 4, 1));
    assert_eq!(r.original(), &ADDI_A0.to_le_bytes());
    // The `ret` at the end reads the pc: not stepped.
    assert_eq!(run(&a, p + 4), Err(SiteRule::NotStepped { at: p + 4 }));
}

#[test]
fn a_two_byte_instruction_takes_what_follows() {
    let mut a = Asm::default();
    let p = a.h(C_ADDI_A0);
    a.h(C_NOP);
    let q = a.h(C_ADDI_A0);
    a.w(ADDI_A0);
    a.h(C_JR_RA);
    assert_eq!(run(&a, p).map(|r| (r.len, r.insns)), Ok((4, 2)));
    // 2 + 4 bytes: the jump covers the first 4, the jump back goes to q + 6.
    let r = run(&a, q).unwrap();
    assert_eq!((r.len, r.insns, r.end()), (6, 2, q + 6));
}

#[test]
fn pc_relative_instructions_are_not_stepped() {
    let mut a = Asm::default();
    let p = a.h(C_ADDI_A0);
    let j = a.h(c_j(4)); // c.j over the next halfword
    a.h(C_NOP);
    let au = a.w(auipc(5, 1));
    a.w(RET);
    assert_eq!(run(&a, p), Err(SiteRule::NotStepped { at: j }));
    assert_eq!(run(&a, j), Err(SiteRule::NotStepped { at: j }));
    assert_eq!(run(&a, au), Err(SiteRule::NotStepped { at: au }));
}

#[test]
fn the_region_must_end_inside_the_function() {
    let mut a = Asm::default();
    a.w(ADDI_A0);
    let p = a.h(C_ADDI_A0);
    assert_eq!(run(&a, p), Err(SiteRule::RegionPastFunction));
    let mut a = Asm::default();
    let p = a.h(C_ADDI_A0);
    a.w(ADDI_A0);
    // The function is said to end in the middle of the 4-byte instruction.
    let r = analyze(
        p,
        BASE..BASE + 4,
        &TextAt::new(BASE, &a.0),
        &|_| false,
        ExecMode::Kernel,
    );
    assert_eq!(r, Err(SiteRule::RegionPastFunction));
    let mut a = Asm::default();
    let p = a.h(C_ADDI_A0);
    a.h(C_NOP);
    assert!(run(&a, p).is_ok());
}

#[test]
fn function_and_boundary() {
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(ADDI_A0);
    a.w(RET);
    let t = TextAt::new(BASE, &a.0);
    let none = |_: usize| false;
    assert_eq!(
        analyze(p, p + 4..p + 12, &t, &none, ExecMode::Kernel),
        Err(SiteRule::FunctionSizeUnknown)
    );
    assert_eq!(
        analyze(p + 2, BASE..a.here(), &t, &none, ExecMode::Kernel),
        Err(SiteRule::NotInstructionBoundary { insn: p })
    );
}

#[test]
fn branches_into_the_region_refuse_it() {
    // beq later in the function back to p + 2 (inside the region of p).
    let mut a = Asm::default();
    let p = a.h(C_ADDI_A0);
    a.h(C_NOP);
    a.w(ADDI_A0);
    let b = a.here();
    a.w(beq(10, 11, (p + 2) as i32 - b as i32));
    a.w(RET);
    assert_eq!(run(&a, p), Err(SiteRule::JumpIntoRegion { from: b }));
    // To the probe address itself: fine.
    let mut a = Asm::default();
    let p = a.h(C_ADDI_A0);
    a.h(C_NOP);
    let b = a.here();
    a.w(beq(10, 11, p as i32 - b as i32));
    a.w(RET);
    assert!(run(&a, p).is_ok());
    // c.j into the region, before it.
    let mut a = Asm::default();
    let j = a.here();
    a.h(c_j(4));
    let p = a.h(C_ADDI_A0);
    a.h(C_NOP);
    a.w(RET);
    assert_eq!(j + 4, p + 2);
    assert_eq!(run(&a, p), Err(SiteRule::JumpIntoRegion { from: j }));
    // jal x0 into the region.
    let mut a = Asm::default();
    let p = a.h(C_ADDI_A0);
    a.h(C_NOP);
    let b = a.here();
    a.w(detour::jal(0, (p + 2) as isize - b as isize).unwrap());
    assert_eq!(run(&a, p), Err(SiteRule::JumpIntoRegion { from: b }));
}

#[test]
fn indirect_jumps_refuse_the_function_but_not_ret_or_calls() {
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    let j = a.h(C_JR_T0);
    a.w(RET);
    assert_eq!(run(&a, p), Err(SiteRule::IndirectJump { at: j }));
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    let j = a.w(jalr(0, 6, 8)); // jr 8(t1)
    assert_eq!(run(&a, p), Err(SiteRule::IndirectJump { at: j }));
    // Calls through a register and both forms of `ret`: fine.
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.h(C_JALR_T0);
    a.w(jalr(1, 6, 0));
    a.h(C_JR_RA);
    a.w(RET);
    assert!(run(&a, p).is_ok());
    // auipc t1 + jr t1 (a far tail jump): a direct jump; into the region is refused.
    let mut a = Asm::default();
    let p = a.h(C_ADDI_A0);
    a.h(C_NOP);
    let au = a.w(auipc(6, 0));
    let jr = a.w(jalr(0, 6, (p + 2) as i32 - au as i32));
    assert_eq!(run(&a, p), Err(SiteRule::JumpIntoRegion { from: jr }));
    let mut a = Asm::default();
    let p = a.h(C_ADDI_A0);
    a.h(C_NOP);
    a.w(auipc(6, 1));
    a.w(jalr(0, 6, 0));
    assert!(run(&a, p).is_ok());
    // The auipc is of another register: indirect.
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(auipc(7, 1));
    let j = a.w(jalr(0, 6, 0));
    assert_eq!(run(&a, p), Err(SiteRule::IndirectJump { at: j }));
}

#[test]
fn may_fault_undecodable_and_c_unimp() {
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    let f = a.w(ld(10, 10, 0));
    a.w(RET);
    let r = analyze(
        p,
        BASE..a.here(),
        &TextAt::new(BASE, &a.0),
        &|x| x == f,
        ExecMode::Kernel,
    );
    assert_eq!(r, Err(SiteRule::MayFault { at: f }));
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(RET);
    a.h(0); // c.unimp
    assert!(run(&a, p).is_ok());
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(RET);
    let u = a.w(0xffff_ffff);
    assert_eq!(run(&a, p), Err(SiteRule::Undecodable { at: u }));
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    let t = TextAt::new(BASE, &a.0);
    let r = analyze(p, BASE..BASE + 8, &t, &|_| false, ExecMode::Kernel);
    assert_eq!(r, Err(SiteRule::ReadFailed { addr: BASE + 4 }));
}

#[test]
fn refused_instructions_and_lr_sc_sequences() {
    // A CSR access is refused (not stepped).
    let mut a = Asm::default();
    let p = a.h(C_ADDI_A0);
    let c = a.w(0x1000_2573); // csrr a0, sstatus
    a.w(RET);
    assert_eq!(run(&a, p), Err(SiteRule::NotStepped { at: c }));
    // The second region instruction lies inside an LR/SC sequence.
    let mut a = Asm::default();
    a.w(LR_W);
    let p = a.h(C_ADDI_A0);
    let q = a.w(ADDI_A0);
    a.w(SC_W);
    a.w(RET);
    assert_eq!(run(&a, p), Err(SiteRule::NotStepped { at: q }));
}

#[test]
fn the_jump_and_its_reach() {
    let mut out = [0u8; 4];
    let addr = 0x8000_1002;
    for detour in [
        addr + 0x1000 - 2,
        addr - 0x400,
        addr + REACH - 2,
        addr - REACH,
    ] {
        assert_eq!(detour::jump(addr, detour, &mut out), Ok(JUMP_LEN));
        let d = decode_insn(&out).unwrap();
        assert_eq!(d.len, 4);
        match d.verdict {
            Verdict::Simulate(Flow::Jal { rd: 0, offset }) => {
                assert_eq!(addr.wrapping_add(offset as isize as usize), detour)
            }
            v => panic!("{v:?}"),
        }
    }
    assert_eq!(
        detour::jump(addr, addr + REACH + 2, &mut out),
        Err(SiteRule::OutOfReach)
    );
    assert_eq!(
        detour::jump(addr, addr - (1 << 21), &mut out),
        Err(SiteRule::OutOfReach)
    );
    assert_eq!(
        detour::jump(addr, addr + 16, &mut [0u8; 2]),
        Err(SiteRule::BufferTooSmall { needed: 4 })
    );
    // jal's own limits.
    assert!(detour::jal(0, (1 << 20) - 2).is_some());
    assert!(detour::jal(0, 1 << 20).is_none());
    assert!(detour::jal(0, -(1 << 20)).is_some());
    assert!(detour::jal(0, 3).is_none());
}

fn word(code: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(code[at..at + 4].try_into().unwrap())
}

/// Decode the detour back: the saves, the call, the branch, both restores,
/// the displaced copy with its jump back, the `sret` and the literals.
fn check_detour(region: &OptRegion, detour_addr: usize, entry: usize, mask: bool) {
    let mut out = [0u8; DETOUR_LEN];
    let len = build(region, detour_addr, 77, mask, entry, &mut out).unwrap();
    assert_eq!(len, DETOUR_LEN);
    let code = &out[..];
    assert_eq!(word(code, 0), addi(2, 2, -288));
    let regs: Vec<u32> = core::iter::once(1).chain(3..32).collect();
    for (i, &r) in regs.iter().enumerate() {
        assert_eq!(word(code, 4 + 4 * i), sd(r, 2, 8 * r as i32));
        assert_eq!(word(code, 156 + 4 * i), ld(r, 2, 8 * r as i32));
        assert_eq!(word(code, RESUME_AT + 4 * i), ld(r, 2, 8 * r as i32));
    }
    assert_eq!(word(code, 156 + 120), ld(2, 2, 16));
    assert_eq!(word(code, RESUME_AT + 120), ld(2, 2, 16));
    // csrrci t0, sstatus, 2 or csrr t0, sstatus.
    let csr = word(code, 124);
    assert_eq!(csr >> 20, 0x100);
    assert_eq!((csr >> 12) & 7, if mask { 7 } else { 2 });
    assert_eq!((csr >> 15) & 0x1f, if mask { 2 } else { 0 });
    assert_eq!(word(code, 128), sd(5, 2, 256));
    assert_eq!(word(code, 132), addi(10, 2, 0));
    // a1 = the literals.
    assert_eq!(word(code, 136), auipc(11, 0));
    let a1 = word(code, 140);
    assert_eq!(a1 & 0xfffff, addi(11, 11, 0));
    assert_eq!(136 + ((a1 as i32) >> 20) as usize, LITERALS);
    assert_eq!(
        &code[LITERALS..LITERALS + 8],
        &(region.addr as u64).to_le_bytes()
    );
    assert_eq!(&code[LITERALS + 8..LITERALS + 16], &77u64.to_le_bytes());
    // The call reaches the entry.
    let au = word(code, CALL_AT);
    let jr = word(code, CALL_AT + 4);
    assert_eq!(au & 0xfff, auipc(1, 0));
    assert_eq!(jr & 0xfffff, jalr(1, 1, 0));
    let target = (detour_addr + CALL_AT)
        .wrapping_add((au & 0xffff_f000) as i32 as isize as usize)
        .wrapping_add(((jr as i32) >> 20) as isize as usize);
    assert_eq!(target, entry);
    // bnez a0, resume.
    match decode_insn(&code[BNEZ_AT..]).unwrap().verdict {
        Verdict::Simulate(Flow::Branch {
            rs1: 10,
            rs2: 0,
            offset,
            ..
        }) => {
            assert_eq!(BNEZ_AT as i32 + offset, RESUME_AT as i32)
        }
        v => panic!("{v:?}"),
    }
    // The displaced copy and the jump back.
    assert_eq!(
        &code[DISPLACED_AT..DISPLACED_AT + region.len],
        region.original()
    );
    let j = DISPLACED_AT + region.len;
    match decode_insn(&code[j..]).unwrap().verdict {
        Verdict::Simulate(Flow::Jal { rd: 0, offset }) => assert_eq!(
            (detour_addr + j).wrapping_add(offset as isize as usize),
            region.end()
        ),
        v => panic!("{v:?}"),
    }
    assert!(code[j + 4..RESUME_AT].iter().all(|&b| b == 0));
    assert_eq!(word(code, SRET_AT), SRET);
    assert_eq!(decode_insn(&code[SRET_AT..]).unwrap().mnemonic, "sret");
}

#[test]
fn the_detour_decodes_back() {
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    let q = a.h(C_ADDI_A0);
    a.w(ld(11, 2, 8));
    a.h(C_NOP);
    a.h(C_NOP);
    a.w(RET);
    let r4 = run(&a, p).unwrap();
    let r6 = run(&a, q).unwrap();
    assert_eq!(r6.len, 6);
    let r22 = run(&a, q + 6).unwrap();
    assert_eq!(r22.len, 4);
    for r in [r4, r6, r22] {
        for mask in [true, false] {
            check_detour(&r, p + 0x8000, p - 0x10_0000, mask);
            check_detour(&r, p - (REACH - 0x1000), p + 0x7000_0000, mask);
        }
    }
}

#[test]
fn the_layout_is_fixed_and_the_detour_refuses_what_it_cannot_do() {
    assert_eq!(
        (DISPLACED_AT, RESUME_AT, SRET_AT, LITERALS),
        (280, 292, 416, 424)
    );
    assert_eq!(DETOUR_LEN, 440);
    assert_eq!(LITERALS % 8, 0);
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(RET);
    let r = run(&a, p).unwrap();
    let mut out = [0u8; DETOUR_LEN];
    // The entry beyond ±2 GiB.
    assert_eq!(
        build(&r, p + 0x1000, 1, true, p + (1 << 32), &mut out),
        Err(SiteRule::OutOfReach)
    );
    // The jump back beyond ±1 MiB.
    assert_eq!(
        build(&r, p + (1 << 21), 1, true, p, &mut out),
        Err(SiteRule::OutOfReach)
    );
    assert_eq!(
        build(&r, p + 0x1000, 1, true, p, &mut out[..100]),
        Err(SiteRule::BufferTooSmall { needed: DETOUR_LEN })
    );
    // A region with a pc-relative instruction (a forged one).
    let mut bad = r;
    bad.orig[..4].copy_from_slice(&auipc(5, 0).to_le_bytes());
    assert_eq!(
        build(&bad, p + 0x1000, 1, true, p, &mut out),
        Err(SiteRule::NotStepped { at: p })
    );
}

#[test]
fn the_arch_items() {
    use crate::Riscv64;
    use probe_hal::Arch;
    assert_eq!(Riscv64::OPT_JUMP_LEN, 4);
    assert_eq!(Riscv64::DETOUR_LEN, DETOUR_LEN);
    assert_eq!(Riscv64::OPT_REACH, REACH);
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(RET);
    let r = Riscv64::analyze_optimizable(
        p,
        BASE..a.here(),
        &TextAt::new(BASE, &a.0),
        &|_| false,
        ExecMode::Kernel,
    )
    .unwrap();
    assert_eq!(Riscv64::detour_displaced_offset(&r, p + 0x1000), Some(280));
    // The host has no entry to call.
    let mut out = [0u8; DETOUR_LEN];
    assert_eq!(
        Riscv64::build_detour(&r, p + 0x1000, 1, true, &mut out),
        Err(SiteRule::NotSupported)
    );
}
