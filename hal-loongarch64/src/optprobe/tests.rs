//! Unit tests: the rules on hand-assembled functions, the jump and its
//! reach, and the detour decoded back.

use probe_hal::{ExecMode, OptRegion, SiteRule, TextAt};

use super::detour::{self, *};
use super::region::analyze;
use super::{JUMP_LEN, REACH};
use crate::decode::{decode_word, offs16, offs21, offs26, rd, rj, si20, Op, Simulated, Verdict};

const BASE: usize = 0x9000_0000_0020_0000;

/// Hand assembly.
#[derive(Default)]
struct Asm(Vec<u8>);

impl Asm {
    fn w(&mut self, word: u32) -> usize {
        let at = self.here();
        self.0.extend_from_slice(&word.to_le_bytes());
        at
    }
    fn here(&self) -> usize {
        BASE + self.0.len()
    }
}

const ADDI_A0: u32 = addi_d(4, 4, 1); // addi.d $a0, $a0, 1
const RET: u32 = jirl(0, 1, 0); // jirl $zero, $ra, 0
const LD_A0: u32 = ld_d(4, 4, 0); // ld.d $a0, $a0, 0
const LL_W: u32 = 0x2000_00a4; // ll.w $a0, $a1, 0
const CSRRD: u32 = 0x0400_140c; // csrrd $t0, 0x5
const BREAK_0: u32 = 0x002a_0000;
const JISCR0: u32 = 0x4800_0200;

/// `beq rj, rd, offset` (bytes).
fn beq(rj: u32, rd: u32, offset: i32) -> u32 {
    0x5800_0000 | ((((offset >> 2) as u32) & 0xffff) << 10) | (rj << 5) | rd
}

/// `bceqz $fcc0, offset` (bytes).
fn bceqz(offset: i32) -> u32 {
    let w = (offset >> 2) as u32;
    0x4800_0000 | ((w & 0xffff) << 10) | ((w >> 16) & 0x1f)
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
fn the_region_is_the_probed_word() {
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    let q = a.w(LD_A0);
    a.w(RET);
    for (at, word) in [(p, ADDI_A0), (q, LD_A0)] {
        let r = run(&a, at).unwrap();
        assert_eq!((r.addr, r.len, r.insns, r.end()), (at, 4, 1, at + 4));
        assert_eq!(r.original(), &word.to_le_bytes());
        assert_eq!(r.mode, ExecMode::Kernel);
    }
    // The `ret` reads ra and writes the pc: simulated, not stepped.
    assert_eq!(run(&a, p + 8), Err(SiteRule::NotStepped { at: p + 8 }));
}

#[test]
fn pc_relative_and_control_flow_words_are_not_stepped() {
    let words = [
        pcaddi(12, 1),
        pcaddu18i(12, 1),
        0x1a00_000c, // pcalau12i $t0, 0
        0x1c00_000c, // pcaddu12i $t0, 0
        b(8).unwrap(),
        0x5400_0400, // bl 4
        bnez(4, 8),
        beq(4, 5, 8),
        jirl(1, 12, 0),
        RET,
    ];
    for w in words {
        assert!(matches!(decode_word(w), Verdict::Accept(i) if matches!(i.op, Op::Simulate(_))));
        let mut a = Asm::default();
        let p = a.w(w);
        a.w(ADDI_A0);
        a.w(ADDI_A0);
        a.w(RET);
        assert_eq!(run(&a, p), Err(SiteRule::NotStepped { at: p }), "{w:#010x}");
    }
    // Refused words (never probed at all) are not stepped either.
    for w in [LL_W, CSRRD, BREAK_0, ERTN] {
        let mut a = Asm::default();
        let p = a.w(w);
        a.w(RET);
        assert_eq!(run(&a, p), Err(SiteRule::NotStepped { at: p }), "{w:#010x}");
    }
    // An unknown word.
    let mut a = Asm::default();
    let p = a.w(0);
    a.w(RET);
    assert_eq!(run(&a, p), Err(SiteRule::Undecodable { at: p }));
}

#[test]
fn function_boundary_and_end() {
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
        analyze(p, p..p, &t, &none, ExecMode::Kernel),
        Err(SiteRule::FunctionSizeUnknown)
    );
    // A function said to start 2 bytes into a word.
    assert_eq!(
        analyze(p + 4, BASE + 2..a.here(), &t, &none, ExecMode::Kernel),
        Err(SiteRule::NotInstructionBoundary { insn: BASE + 2 })
    );
    // A function said to end 2 bytes after the probe.
    assert_eq!(
        analyze(p, BASE..p + 2, &t, &none, ExecMode::Kernel),
        Err(SiteRule::RegionPastFunction)
    );
    // The last word of the function is its own region.
    let mut a = Asm::default();
    a.w(RET);
    let p = a.w(ADDI_A0);
    assert!(run(&a, p).is_ok());
    // The text cannot be read to the end of the function.
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    let t = TextAt::new(BASE, &a.0);
    assert_eq!(
        analyze(p, BASE..BASE + 12, &t, &none, ExecMode::Kernel),
        Err(SiteRule::ReadFailed { addr: BASE + 4 })
    );
}

#[test]
fn indirect_jumps_refuse_the_function_but_not_ret_or_calls() {
    // jirl $zero, $t0, 0 (a jump table's jump).
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    let j = a.w(jirl(0, 12, 0));
    a.w(RET);
    assert_eq!(run(&a, p), Err(SiteRule::IndirectJump { at: j }));
    // jirl $zero, $ra, 8: not a plain `ret`.
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    let j = a.w(jirl(0, 1, 2));
    assert_eq!(run(&a, p), Err(SiteRule::IndirectJump { at: j }));
    // The LBT jumps.
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    let j = a.w(JISCR0);
    a.w(RET);
    assert_eq!(run(&a, p), Err(SiteRule::IndirectJump { at: j }));
    // Calls through a register, and `ret`: fine.
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(jirl(1, 12, 0));
    a.w(jirl(13, 13, 0));
    a.w(RET);
    assert!(run(&a, p).is_ok());
    // pcaddu18i + jirl $zero of the same register (a far tail jump): direct.
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(pcaddu18i(12, 1));
    a.w(jirl(0, 12, 0));
    assert!(run(&a, p).is_ok());
    // pcaddi of another register: indirect.
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(pcaddi(13, 2));
    let j = a.w(jirl(0, 12, 0));
    assert_eq!(run(&a, p), Err(SiteRule::IndirectJump { at: j }));
    // pcaddi, then something else, then the jirl: indirect.
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(pcaddi(12, 2));
    a.w(ADDI_A0);
    let j = a.w(jirl(0, 12, 0));
    assert_eq!(run(&a, p), Err(SiteRule::IndirectJump { at: j }));
}

#[test]
fn branches_land_on_whole_words_so_no_branch_enters_a_region() {
    // Branches to the probe address itself and around it: fine (the region
    // is one word; a branch target is word-aligned).
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(ADDI_A0);
    let b1 = a.here();
    a.w(beq(4, 5, p as i32 - b1 as i32));
    let b2 = a.here();
    a.w(bceqz(p as i32 - b2 as i32 + 4));
    let b3 = a.here();
    a.w(b(p as isize - b3 as isize).unwrap());
    a.w(RET);
    assert!(run(&a, p).is_ok());
    // A pc-relative pair (pcaddi + jirl $zero) back to the probe address:
    // a direct jump to a whole word, fine. Its target is a multiple of 4
    // too: no rule of the function can name a byte inside a region.
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(pcaddi(12, -1));
    a.w(jirl(0, 12, 0));
    assert!(run(&a, p).is_ok());
}

#[test]
fn may_fault_anywhere_in_the_function_refuses_it() {
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    let f = a.w(LD_A0);
    a.w(RET);
    for fault in [p, f] {
        let r = analyze(
            p,
            BASE..a.here(),
            &TextAt::new(BASE, &a.0),
            &|x| x == fault,
            ExecMode::Kernel,
        );
        assert_eq!(r, Err(SiteRule::MayFault { at: fault }));
    }
    // An unknown word later in the function.
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(RET);
    let u = a.w(0xffff_ffff);
    assert_eq!(run(&a, p), Err(SiteRule::Undecodable { at: u }));
}

#[test]
fn the_jump_and_its_reach() {
    let mut out = [0u8; 4];
    let addr = 0x9000_0000_0020_1004;
    for detour in [
        addr + 0x1000,
        addr - 0x400,
        addr + REACH - 4,
        addr - REACH,
        addr + 4,
    ] {
        assert_eq!(detour::jump(addr, detour, &mut out), Ok(JUMP_LEN));
        let w = u32::from_le_bytes(out);
        match decode_word(w) {
            Verdict::Accept(i) => {
                assert_eq!(i.op, Op::Simulate(Simulated::B));
                assert_eq!(addr.wrapping_add_signed((offs26(w) << 2) as isize), detour);
            }
            v => panic!("{v:?}"),
        }
    }
    assert_eq!(
        detour::jump(addr, addr + REACH + 4, &mut out),
        Err(SiteRule::OutOfReach)
    );
    assert_eq!(
        detour::jump(addr, addr - (1 << 28), &mut out),
        Err(SiteRule::OutOfReach)
    );
    assert_eq!(
        detour::jump(addr, addr + 16, &mut [0u8; 2]),
        Err(SiteRule::BufferTooSmall { needed: 4 })
    );
    // b's own limits.
    assert!(detour::b((1 << 27) - 4).is_some());
    assert!(detour::b(1 << 27).is_none());
    assert!(detour::b(-(1 << 27)).is_some());
    assert!(detour::b(-(1 << 27) - 4).is_none());
    assert!(detour::b(2).is_none());
    // The far call's.
    assert_eq!(hi_lo(0), Some((0, 0)));
    assert_eq!(hi_lo(6), None);
    for off in [
        4isize,
        -4,
        0x1_fffc,
        0x2_0000,
        -0x2_0000,
        0x7000_0000,
        -0x7000_0000,
        (1 << 37) - (1 << 17) - 4,
    ] {
        let (hi, lo) = hi_lo(off).unwrap();
        assert_eq!(
            ((hi as isize) << 18) + ((lo as isize) << 2),
            off,
            "{off:#x}"
        );
        assert!((-(1 << 15)..1 << 15).contains(&lo));
    }
    assert_eq!(hi_lo(1 << 37), None);
}

fn word(code: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(code[at..at + 4].try_into().unwrap())
}

/// Decode the detour back: the saves, the interrupt mask, the call, the
/// branch, both restores, the displaced copy with its jump back, the
/// `ertn` and the literals.
fn check_detour(region: &OptRegion, detour_addr: usize, entry: usize, mask: bool) {
    let mut out = [0u8; DETOUR_LEN];
    let len = build(region, detour_addr, 77, mask, entry, &mut out).unwrap();
    assert_eq!(len, DETOUR_LEN);
    let code = &out[..];
    let mnemonic = |at: usize| match decode_word(word(code, at)) {
        Verdict::Accept(i) => i.mnemonic,
        Verdict::Refuse(r) => r.mnemonic,
        Verdict::Undecodable => "?",
    };
    assert_eq!(word(code, 0), addi_d(3, 3, -320));
    let regs: Vec<u32> = [1, 2].into_iter().chain(4..32).collect();
    for (i, &r) in regs.iter().enumerate() {
        assert_eq!(word(code, 4 + 4 * i), st_d(r, 3, 8 * r as i32));
        assert_eq!(word(code, RESTORE_A_AT + 4 * i), ld_d(r, 3, 8 * r as i32));
        assert_eq!(word(code, RESUME_AT + 4 * i), ld_d(r, 3, 8 * r as i32));
    }
    assert_eq!(word(code, RESTORE_A_AT + 120), ld_d(3, 3, 24));
    assert_eq!(word(code, RESUME_AT + 120), ld_d(3, 3, 24));
    // t0 = 0, t1 = the mask, csrxchg t0, t1, CRMD (rj = t1, not r0/r1).
    assert_eq!(word(code, 124), addi_d(12, 0, 0));
    assert_eq!(word(code, MASK_AT), addi_d(13, 0, if mask { 4 } else { 0 }));
    let x = word(code, 132);
    assert_eq!(mnemonic(132), "csrxchg");
    assert_eq!((rd(x), rj(x), (x >> 10) & 0x3fff), (12, 13, 0));
    assert_eq!(word(code, 136), st_d(12, 3, 280));
    assert_eq!(mnemonic(140), "or");
    assert_eq!(word(code, 140), or(4, 3, 0));
    // a1 = the literals.
    let pc = word(code, PCADDI_A1_AT);
    assert_eq!((mnemonic(PCADDI_A1_AT), rd(pc)), ("pcaddi", 5));
    assert_eq!(PCADDI_A1_AT as i64 + (si20(pc) << 2), LITERALS as i64);
    assert_eq!(
        &code[LITERALS..LITERALS + 8],
        &(region.addr as u64).to_le_bytes()
    );
    assert_eq!(&code[LITERALS + 8..LITERALS + 16], &77u64.to_le_bytes());
    // The call reaches the entry and links ra.
    let (hi, jr) = (word(code, CALL_AT), word(code, CALL_AT + 4));
    assert_eq!((mnemonic(CALL_AT), rd(hi)), ("pcaddu18i", 1));
    assert_eq!((mnemonic(CALL_AT + 4), rd(jr), rj(jr)), ("jirl", 1, 1));
    let target = (detour_addr + CALL_AT)
        .wrapping_add_signed((si20(hi) << 18) as isize)
        .wrapping_add_signed((offs16(jr) << 2) as isize);
    assert_eq!(target, entry);
    // bnez a0, resume.
    let bz = word(code, BNEZ_AT);
    assert_eq!((mnemonic(BNEZ_AT), rj(bz)), ("bnez", 4));
    assert_eq!(BNEZ_AT as i64 + (offs21(bz) << 2), RESUME_AT as i64);
    // The displaced copy and the jump back.
    assert_eq!(
        &code[DISPLACED_AT..DISPLACED_AT + region.len],
        region.original()
    );
    let j = DISPLACED_AT + 4;
    assert_eq!(mnemonic(j), "b");
    assert_eq!(
        (detour_addr + j).wrapping_add_signed((offs26(word(code, j)) << 2) as isize),
        region.end()
    );
    assert_eq!(word(code, ERTN_AT), ERTN);
    assert_eq!(mnemonic(ERTN_AT), "ertn");
    assert_eq!(word(code, ERTN_AT + 4), 0);
}

#[test]
fn the_detour_decodes_back() {
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    let q = a.w(LD_A0);
    let s = a.w(st_d(4, 3, 8));
    a.w(RET);
    for at in [p, q, s] {
        let r = run(&a, at).unwrap();
        for mask in [true, false] {
            check_detour(&r, at + 0x8000, at - 0x10_0000, mask);
            check_detour(&r, at - (REACH - 0x1000), at + 0x7000_0000, mask);
            check_detour(&r, at + (REACH - DETOUR_LEN), at + 0x1000, mask);
        }
    }
}

#[test]
fn the_layout_is_fixed_and_the_detour_refuses_what_it_cannot_do() {
    assert_eq!(
        (
            DISPLACED_AT,
            RESUME_AT,
            ERTN_AT,
            LITERALS,
            RESTORE_A_AT,
            BNEZ_AT,
            CALL_AT
        ),
        (284, 292, 416, 424, 160, 156, 148)
    );
    assert_eq!(DETOUR_LEN, 440);
    assert_eq!(LITERALS % 8, 0);
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(RET);
    let r = run(&a, p).unwrap();
    let mut out = [0u8; DETOUR_LEN];
    // The entry beyond ±128 GiB.
    assert_eq!(
        build(&r, p + 0x1000, 1, true, p + (1 << 38), &mut out),
        Err(SiteRule::OutOfReach)
    );
    // The jump back beyond ±128 MiB.
    assert_eq!(
        build(&r, p + (1 << 28), 1, true, p, &mut out),
        Err(SiteRule::OutOfReach)
    );
    assert_eq!(
        build(&r, p + 0x1000, 1, true, p, &mut out[..100]),
        Err(SiteRule::BufferTooSmall { needed: DETOUR_LEN })
    );
    // A misaligned detour, a region that is not one word.
    assert_eq!(
        build(&r, p + 0x1002, 1, true, p, &mut out),
        Err(SiteRule::NotSupported)
    );
    let mut long = r;
    long.len = 8;
    assert_eq!(
        build(&long, p + 0x1000, 1, true, p, &mut out),
        Err(SiteRule::NotSupported)
    );
    // A region with a pc-relative instruction (a forged one).
    let mut bad = r;
    bad.orig[..4].copy_from_slice(&pcaddi(12, 0).to_le_bytes());
    assert_eq!(
        build(&bad, p + 0x1000, 1, true, p, &mut out),
        Err(SiteRule::NotStepped { at: p })
    );
}

#[test]
fn the_arch_items() {
    use crate::LoongArch64;
    use probe_hal::Arch;
    assert_eq!(LoongArch64::OPT_JUMP_LEN, 4);
    assert_eq!(LoongArch64::DETOUR_LEN, DETOUR_LEN);
    assert_eq!(LoongArch64::OPT_REACH, REACH);
    let mut a = Asm::default();
    let p = a.w(ADDI_A0);
    a.w(RET);
    let r = LoongArch64::analyze_optimizable(
        p,
        BASE..a.here(),
        &TextAt::new(BASE, &a.0),
        &|_| false,
        ExecMode::Kernel,
    )
    .unwrap();
    assert_eq!(
        LoongArch64::detour_displaced_offset(&r, p + 0x1000),
        Some(284)
    );
    let mut jump = [0u8; 4];
    assert_eq!(LoongArch64::optimized_jump(p, p + 0x1000, &mut jump), Ok(4));
    // The host has no entry to call.
    let mut out = [0u8; DETOUR_LEN];
    assert_eq!(
        LoongArch64::build_detour(&r, p + 0x1000, 1, true, &mut out),
        Err(SiteRule::NotSupported)
    );
}
