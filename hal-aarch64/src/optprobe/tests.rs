//! Unit tests: the rules on hand-assembled functions, the jump, and the
//! detour decoded back (encodings checked against GNU as 2.40).

use probe_hal::{ExecMode, OptRegion, SiteRule, TextAt};

use super::detour::{self, *};
use super::region::{analyze, classify, is_indirect_jump, is_landing_pad, Control};
use super::{JUMP_LEN, REACH};
use crate::decode::{decode_word, imm19, imm26, Op, Simulated, Verdict};

const BASE: usize = 0x4010_0000;

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

const ADD_X0: u32 = 0x9100_0400; // add x0, x0, #1
const LDR_X1: u32 = 0xf940_03e1; // ldr x1, [sp]
const RET: u32 = 0xd65f_03c0; // ret
const BR_X16: u32 = 0xd61f_0200; // br x16
const BLR_X8: u32 = 0xd63f_0100; // blr x8
const BRAA_X16_X17: u32 = 0xd71f_0a11; // braa x16, x17
const BRAAZ_X16: u32 = 0xd61f_0a1f; // braaz x16
const BLRAA_X8: u32 = 0xd73f_0911; // blraa x8, x17
const RETAA: u32 = 0xd65f_0bff; // retaa
const ADRP_X0: u32 = 0x9000_0000; // adrp x0, .
const LDR_LIT: u32 = 0x5800_0040; // ldr x0, .+8
const BTI_C: u32 = 0xd503_245f;
const BTI_J: u32 = 0xd503_249f;
const BTI_JC: u32 = 0xd503_24df;
const PACIASP: u32 = 0xd503_233f;
const PACIBSP: u32 = 0xd503_237f;
const UDF: u32 = 0x0000_0000; // udf #0
const BRK_1: u32 = 0xd420_0020; // brk #1

/// `b.ne offset`.
fn b_ne(offset: i32) -> u32 {
    0x5400_0001 | (((offset >> 2) as u32 & 0x7_ffff) << 5)
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
fn the_region_is_the_probed_instruction() {
    let mut a = Asm::default();
    let p = a.w(ADD_X0);
    let q = a.w(LDR_X1);
    a.w(RET);
    for (at, word) in [(p, ADD_X0), (q, LDR_X1)] {
        let r = run(&a, at).unwrap();
        assert_eq!((r.addr, r.len, r.insns, r.end()), (at, 4, 1, at + 4));
        assert_eq!(r.original(), &word.to_le_bytes());
        assert_eq!(r.mode, ExecMode::Kernel);
    }
}

#[test]
fn simulated_and_refused_instructions_are_not_stepped() {
    let mut a = Asm::default();
    let sites = [
        a.w(ADRP_X0),
        a.w(LDR_LIT),
        a.w(b_ne(8)),
        a.w(BLR_X8),
        a.w(imm_b(4)),
        a.w(BRK_1),
        a.w(UDF),
    ];
    a.w(RET);
    for at in sites {
        assert_eq!(run(&a, at), Err(SiteRule::NotStepped { at }), "{at:#x}");
    }
    assert_eq!(
        run(&a, a.here() - 4),
        Err(SiteRule::NotStepped { at: a.here() - 4 })
    );
}

fn imm_b(offset: isize) -> u32 {
    branch(false, offset).unwrap()
}

#[test]
fn landing_pads_are_not_optimised() {
    for w in [BTI_C, BTI_J, BTI_JC, 0xd503_241f, PACIASP, PACIBSP] {
        assert!(is_landing_pad(w), "{w:#x}");
        // The decoder steps them (a brk probe works on them).
        assert!(matches!(decode_word(w), Verdict::Accept(i) if i.op == Op::Step));
        let mut a = Asm::default();
        let p = a.w(w);
        a.w(ADD_X0);
        a.w(RET);
        assert_eq!(run(&a, p), Err(SiteRule::NotStepped { at: p }));
        assert!(run(&a, p + 4).is_ok());
    }
    for w in [ADD_X0, 0xd503_201f, 0xd503_23bf /* autiasp */] {
        assert!(!is_landing_pad(w), "{w:#x}");
    }
}

#[test]
fn function_region_and_boundary() {
    let mut a = Asm::default();
    let p = a.w(ADD_X0);
    let last = a.w(ADD_X0);
    let t = TextAt::new(BASE, &a.0);
    let end = a.here();
    let k = ExecMode::Kernel;
    assert!(analyze(last, BASE..end, &t, &|_| false, k).is_ok());
    assert_eq!(
        analyze(last, BASE..end - 2, &t, &|_| false, k),
        Err(SiteRule::RegionPastFunction)
    );
    assert_eq!(
        analyze(p, BASE..BASE, &t, &|_| false, k),
        Err(SiteRule::FunctionSizeUnknown)
    );
    assert_eq!(
        analyze(end, BASE..end, &t, &|_| false, k),
        Err(SiteRule::FunctionSizeUnknown)
    );
    assert_eq!(
        analyze(p + 2, BASE..end, &t, &|_| false, k),
        Err(SiteRule::NotInstructionBoundary { insn: p })
    );
    // A function whose text cannot be read.
    assert_eq!(
        analyze(p, BASE..end + 8, &t, &|_| false, k),
        Err(SiteRule::ReadFailed { addr: end })
    );
}

#[test]
fn indirect_jumps_refuse_the_function_but_not_calls_or_returns() {
    for (w, jump) in [
        (BR_X16, true),
        (BRAA_X16_X17, true),
        (BRAAZ_X16, true),
        (0xd61f_0e1f, true), // brabz x16
        (BLR_X8, false),
        (BLRAA_X8, false),
        (RET, false),
        (RETAA, false),
        (0xd69f_03e0, false), // eret
    ] {
        assert_eq!(is_indirect_jump(w), jump, "{w:#x}");
        let mut a = Asm::default();
        let p = a.w(ADD_X0);
        let at = a.w(w);
        a.w(RET);
        let r = run(&a, p);
        if jump {
            assert_eq!(r, Err(SiteRule::IndirectJump { at }), "{w:#x}");
        } else {
            assert!(r.is_ok(), "{w:#x}: {r:?}");
        }
    }
}

#[test]
fn branches_are_classified_with_their_targets() {
    let at = BASE + 0x100;
    assert_eq!(classify(at, imm_b(-0x40)), Some(Control::Direct(at - 0x40)));
    assert_eq!(
        classify(at, branch(true, 0x2000).unwrap()),
        Some(Control::Direct(at + 0x2000))
    );
    assert_eq!(classify(at, b_ne(-8)), Some(Control::Direct(at - 8)));
    // cbz x3, +12 ; tbnz w1, #3, -16
    assert_eq!(classify(at, 0xb400_0063), Some(Control::Direct(at + 12)));
    assert_eq!(classify(at, 0x371f_ff81), Some(Control::Direct(at - 16)));
    assert_eq!(classify(at, ADD_X0), Some(Control::Other));
    assert_eq!(classify(at, UDF), Some(Control::Other));
    assert_eq!(classify(at, BR_X16), Some(Control::IndirectJump));
    // A branch to the probe address itself or after the region is fine;
    // none can land inside a 4-byte region (JumpIntoRegion never fires).
    let mut a = Asm::default();
    a.w(imm_b(8));
    let p = a.w(ADD_X0);
    a.w(b_ne(-4));
    a.w(b_ne(-8));
    a.w(RET);
    assert!(run(&a, p).is_ok());
}

#[test]
fn may_fault_and_undecodable() {
    let mut a = Asm::default();
    let p = a.w(ADD_X0);
    let ld = a.w(LDR_X1);
    a.w(RET);
    let t = TextAt::new(BASE, &a.0);
    assert_eq!(
        analyze(p, BASE..a.here(), &t, &|x| x == ld, ExecMode::Kernel),
        Err(SiteRule::MayFault { at: ld })
    );
    // An unallocated word of the top-level table (op0 = 0b0011).
    let mut b = Asm::default();
    let p = b.w(ADD_X0);
    let bad = b.w(0x0600_0000);
    b.w(RET);
    assert_eq!(decode_word(0x0600_0000), Verdict::Undecodable);
    assert_eq!(run(&b, p), Err(SiteRule::Undecodable { at: bad }));
    // Refused words (udf, brk) are fine elsewhere in the function.
    let mut c = Asm::default();
    let p = c.w(ADD_X0);
    c.w(RET);
    c.w(UDF);
    c.w(BRK_1);
    assert!(run(&c, p).is_ok());
}

#[test]
fn the_jump_and_its_reach() {
    let mut out = [0u8; 4];
    let addr = 0x4008_1004;
    for detour in [addr + 0x1000, addr - 0x400, addr + REACH, addr - REACH] {
        assert_eq!(detour::jump(addr, detour, &mut out), Ok(JUMP_LEN));
        let w = u32::from_le_bytes(out);
        match decode_word(w) {
            Verdict::Accept(i) => assert_eq!(i.op, Op::Simulate(Simulated::B)),
            v => panic!("{v:?}"),
        }
        assert_eq!(addr.wrapping_add(imm26(w) as isize as usize), detour);
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
    // b's own limits, and the encodings GNU as gives.
    assert!(branch(false, (1 << 27) - 4).is_some());
    assert!(branch(false, 1 << 27).is_none());
    assert!(branch(false, -(1 << 27)).is_some());
    assert!(branch(false, 2).is_none());
    assert_eq!(branch(false, 8), Some(0x1400_0002));
    assert_eq!(branch(true, -4), Some(0x97ff_ffff));
}

#[test]
fn encodings_match_the_assembler() {
    // From `aarch64-linux-gnu-as` 2.40 and `objdump -d`.
    assert_eq!(sub_imm(31, 31, 816), 0xd10c_c3ff); // sub sp, sp, #0x330
    assert_eq!(add_imm(31, 31, 816), 0x910c_c3ff); // add sp, sp, #0x330
    assert_eq!(add_imm(0, 31, 0), 0x9100_03e0); // mov x0, sp
    assert_eq!(add_imm(30, 31, 0), 0x9100_03fe); // mov x30, sp
    assert_eq!(add_imm(31, 0, 0), 0x9100_001f); // mov sp, x0
    assert_eq!(stp(0, 1, 31, 0), 0xa900_07e0); // stp x0, x1, [sp]
    assert_eq!(stp(28, 29, 31, 224), 0xa90e_77fc); // stp x28, x29, [sp, #224]
    assert_eq!(ldp(2, 3, 30, 16), 0xa941_0fc2); // ldp x2, x3, [x30, #16]
    assert_eq!(str_x(30, 31, 240), 0xf900_7bfe); // str x30, [sp, #240]
    assert_eq!(ldr_x(30, 30, 240), 0xf940_7bde); // ldr x30, [x30, #240]
    assert_eq!(ldr_x(0, 30, 248), 0xf940_7fc0); // ldr x0, [x30, #248]
    assert_eq!(stp_q(0, 1, 31, 288), 0xad09_07e0); // stp q0, q1, [sp, #288]
    assert_eq!(ldp_q(30, 31, 31, 768), 0xad58_7ffe); // ldp q30, q31, [sp, #768]
    assert_eq!(mrs(9, NZCV), 0xd53b_4209); // mrs x9, nzcv
    assert_eq!(mrs(10, DAIF), 0xd53b_422a); // mrs x10, daif
    assert_eq!(mrs(9, FPCR), 0xd53b_4409); // mrs x9, fpcr
    assert_eq!(mrs(10, FPSR), 0xd53b_442a); // mrs x10, fpsr
    assert_eq!(msr(NZCV, 9), 0xd51b_4209); // msr nzcv, x9
    assert_eq!(msr(DAIF, 9), 0xd51b_4229); // msr daif, x9
    assert_eq!(orr(9, 9, 10), 0xaa0a_0129); // orr x9, x9, x10
    assert_eq!(MASK_DAIF, 0xd503_4fdf); // msr daifset, #0xf
    assert_eq!(ERET, 0xd69f_03e0);
    assert_eq!(adr(1, 256), 0x1000_0801); // adr x1, .+256
    assert_eq!(cbnz(0, 92), 0xb500_02e0); // cbnz x0, .+92
}

fn word(code: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(code[at..at + 4].try_into().unwrap())
}

/// Decode the detour back: the saves, the call, the branch, both restores,
/// the displaced copy with its jump back, the `eret` and the literals.
fn check_detour(region: &OptRegion, detour_addr: usize, entry: usize, mask: bool, fp: bool) {
    let mut out = [0u8; DETOUR_LEN];
    let len = build(region, detour_addr, 77, mask, fp, entry, &mut out).unwrap();
    assert_eq!(len, DETOUR_LEN);
    let code = &out[..];
    assert_eq!(word(code, 0), sub_imm(31, 31, FRAME_LEN as u32));
    for (i, r) in (0..30).step_by(2).enumerate() {
        assert_eq!(word(code, 4 + 4 * i), stp(r, r + 1, 31, 8 * r as usize));
        assert_eq!(word(code, 268 + 4 * i), ldp(r, r + 1, 31, 8 * r as usize));
        assert_eq!(
            word(code, RESUME_AT + 12 + 4 * i),
            ldp(r, r + 1, 30, 8 * r as usize)
        );
    }
    assert_eq!(word(code, 64), str_x(30, 31, 240));
    assert_eq!(word(code, 328), ldr_x(30, 31, 240));
    assert_eq!(word(code, ERET_AT - 4), ldr_x(30, 30, 240));
    assert_eq!(word(code, 332), add_imm(31, 31, FRAME_LEN as u32));
    // pstate: NZCV | DAIF, then DAIF masked or a nop.
    assert_eq!(
        [
            word(code, 68),
            word(code, 72),
            word(code, 76),
            word(code, 80)
        ],
        [
            mrs(9, NZCV),
            mrs(10, DAIF),
            orr(9, 9, 10),
            str_x(9, 31, 264)
        ]
    );
    assert_eq!(word(code, 84), if mask { MASK_DAIF } else { NOP });
    // FP/SIMD saved and restored, or nops of the same length.
    for i in 0..19 {
        let (s, l) = (word(code, 88 + 4 * i), word(code, 176 + 4 * i));
        if !fp {
            assert_eq!((s, l), (NOP, NOP));
        } else if i < 16 {
            let q = 2 * i as u32;
            assert_eq!(s, stp_q(q, q + 1, 31, OFF_Q + 32 * i));
            assert_eq!(l, ldp_q(q, q + 1, 31, OFF_Q + 32 * i));
        }
    }
    if fp {
        assert_eq!(word(code, 88 + 72), stp(9, 10, 31, OFF_FPCR));
        assert_eq!(word(code, 176 + 64), ldp(9, 10, 31, OFF_FPCR));
        assert_eq!(word(code, 176 + 72), msr(FPSR, 10));
    }
    // x0 = the frame, x1 = the literals.
    assert_eq!(word(code, 164), add_imm(0, 31, 0));
    let a = word(code, ADR_AT);
    assert_eq!(a & 0x9f00_001f, 0x1000_0001);
    let off = (((a >> 5) & 0x7_ffff) << 2) | ((a >> 29) & 3);
    assert_eq!(ADR_AT + off as usize, LITERALS);
    assert_eq!(
        &code[LITERALS..LITERALS + 8],
        &(region.addr as u64).to_le_bytes()
    );
    assert_eq!(&code[LITERALS + 8..LITERALS + 16], &77u64.to_le_bytes());
    // The call reaches the entry.
    let bl = word(code, CALL_AT);
    assert!(matches!(decode_word(bl), Verdict::Accept(i) if i.op == Op::Simulate(Simulated::Bl)));
    assert_eq!(
        (detour_addr + CALL_AT).wrapping_add(imm26(bl) as isize as usize),
        entry
    );
    // cbnz x0, resume.
    let cb = word(code, CBNZ_AT);
    assert!(matches!(decode_word(cb), Verdict::Accept(i) if i.op == Op::Simulate(Simulated::Cbnz)));
    assert_eq!(
        (cb & 0x1f, CBNZ_AT as i64 + imm19(cb)),
        (0, RESUME_AT as i64)
    );
    // Path (a): NZCV and DAIF back from the frame.
    assert_eq!(
        [word(code, 256), word(code, 260), word(code, 264)],
        [ldr_x(9, 31, 264), msr(NZCV, 9), msr(DAIF, 9)]
    );
    // The displaced copy and the jump back.
    assert_eq!(&code[DISPLACED_AT..DISPLACED_AT + 4], region.original());
    let back = word(code, DISPLACED_AT + 4);
    assert!(matches!(decode_word(back), Verdict::Accept(i) if i.op == Op::Simulate(Simulated::B)));
    assert_eq!(
        (detour_addr + DISPLACED_AT + 4).wrapping_add(imm26(back) as isize as usize),
        region.end()
    );
    // Path (b): x30 the base, sp from the frame, eret.
    assert_eq!(
        [
            word(code, RESUME_AT),
            word(code, RESUME_AT + 4),
            word(code, RESUME_AT + 8)
        ],
        [add_imm(30, 31, 0), ldr_x(0, 30, 248), add_imm(31, 0, 0)]
    );
    assert_eq!(word(code, ERET_AT), ERET);
    assert!(matches!(decode_word(ERET), Verdict::Refuse(_)));
    // Every instruction before the literals decodes (none is unallocated).
    for at in (0..LITERALS).step_by(4) {
        assert_ne!(decode_word(word(code, at)), Verdict::Undecodable, "+{at}");
    }
}

#[test]
fn the_detour_decodes_back() {
    let mut a = Asm::default();
    let p = a.w(ADD_X0);
    let q = a.w(LDR_X1);
    a.w(RET);
    for r in [run(&a, p).unwrap(), run(&a, q).unwrap()] {
        for mask in [true, false] {
            for fp in [true, false] {
                check_detour(&r, p + 0x8000, p - 0x10_0000, mask, fp);
                check_detour(&r, p - (REACH - 0x1000), p - 0x700_0000, mask, fp);
            }
        }
    }
}

#[test]
fn the_layout_is_fixed_and_the_detour_refuses_what_it_cannot_do() {
    assert_eq!(
        (
            ADR_AT,
            CALL_AT,
            CBNZ_AT,
            DISPLACED_AT,
            RESUME_AT,
            ERET_AT,
            LITERALS
        ),
        (168, 172, 252, 336, 344, 420, 424)
    );
    assert_eq!((DETOUR_LEN, FRAME_LEN, OFF_PSTATE), (440, 816, 264));
    let mut a = Asm::default();
    let p = a.w(ADD_X0);
    a.w(RET);
    let r = run(&a, p).unwrap();
    let mut out = [0u8; DETOUR_LEN];
    // The entry beyond ±128 MiB.
    assert_eq!(
        build(&r, p + 0x1000, 1, true, true, p + (1 << 28), &mut out),
        Err(SiteRule::OutOfReach)
    );
    // The jump back beyond ±128 MiB.
    assert_eq!(
        build(&r, p + (1 << 27), 1, true, true, p + (1 << 27), &mut out),
        Err(SiteRule::OutOfReach)
    );
    assert_eq!(
        build(&r, p + 0x1000, 1, true, true, p, &mut out[..100]),
        Err(SiteRule::BufferTooSmall { needed: DETOUR_LEN })
    );
    // A region with a pc-relative instruction (a forged one).
    let mut bad = r;
    bad.orig[..4].copy_from_slice(&ADRP_X0.to_le_bytes());
    assert_eq!(
        build(&bad, p + 0x1000, 1, true, true, p, &mut out),
        Err(SiteRule::NotStepped { at: p })
    );
}

#[test]
fn the_arch_items() {
    use crate::Aarch64;
    use probe_hal::Arch;
    assert_eq!(Aarch64::OPT_JUMP_LEN, 4);
    assert_eq!(Aarch64::DETOUR_LEN, DETOUR_LEN);
    assert_eq!(Aarch64::OPT_REACH, REACH);
    let mut a = Asm::default();
    let p = a.w(ADD_X0);
    a.w(RET);
    let r = Aarch64::analyze_optimizable(
        p,
        BASE..a.here(),
        &TextAt::new(BASE, &a.0),
        &|_| false,
        ExecMode::Kernel,
    )
    .unwrap();
    assert_eq!(Aarch64::detour_displaced_offset(&r, p + 0x1000), Some(336));
    // The host has no entry to call.
    let mut out = [0u8; DETOUR_LEN];
    assert_eq!(
        Aarch64::build_detour(&r, p + 0x1000, 1, true, &mut out),
        Err(SiteRule::NotSupported)
    );
}
