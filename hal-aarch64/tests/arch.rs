//! The backend through its `Arch` interface, on hand-checked encodings.
//!
//! Every instruction word below was assembled with `aarch64-linux-gnu-as`
//! (binutils 2.40, `-march=armv9-a+pauth+lse`) and checked with
//! `aarch64-linux-gnu-objdump`; the disassembly is next to it.

use std::cell::RefCell;
use std::collections::BTreeMap;

use probe_hal::{
    Arch, DataAccess, Decoded, ExecMode, Handling, MemoryFault, ProbeErrorKind, Refusal, Registers,
};
use probe_hal_aarch64::decode::{
    WHY_AUT, WHY_BRK, WHY_ERET, WHY_EXCEPTION, WHY_EXCLUSIVE, WHY_HINT, WHY_MRS_DAIF, WHY_MRS_EXC,
    WHY_MSR, WHY_PAC_BRANCH, WHY_SIMD_LITERAL, WHY_SVE, WHY_UDF,
};
use probe_hal_aarch64::sequence::WHY_INSIDE_EXCLUSIVE;
use probe_hal_aarch64::slot::{KPROBE_BRK, KPROBE_STEP_END, UPROBE_BRK};
use probe_hal_aarch64::{Aarch64, PtRegs};

/// Byte-addressed memory for literal loads; reads outside it fault.
#[derive(Default)]
struct Memory(RefCell<BTreeMap<usize, u8>>);

impl Memory {
    fn with(addr: usize, bytes: &[u8]) -> Self {
        let m = Memory::default();
        for (i, b) in bytes.iter().enumerate() {
            m.0.borrow_mut().insert(addr + i, *b);
        }
        m
    }
}

impl DataAccess for Memory {
    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = *self
                .0
                .borrow()
                .get(&(addr + i))
                .ok_or(MemoryFault { addr: addr + i })?;
        }
        Ok(())
    }
    fn write(&self, addr: usize, _data: &[u8]) -> Result<(), MemoryFault> {
        panic!("unexpected write at {addr:#x}")
    }
}

const ADDR: usize = 0xffff_8000_1020_1a34;

fn decode(word: u32) -> Decoded<<Aarch64 as Arch>::Insn> {
    Aarch64::decode(ADDR, &word.to_le_bytes(), ExecMode::Kernel)
        .unwrap_or_else(|e| panic!("{word:#010x}: {e}"))
}

fn refusal(word: u32) -> Refusal {
    match Aarch64::decode(ADDR, &word.to_le_bytes(), ExecMode::Kernel) {
        Err(e) => match e.kind() {
            ProbeErrorKind::Refused(r) => r,
            k => panic!("{word:#010x}: {k:?}"),
        },
        Ok(d) => panic!("{word:#010x} accepted as {}", d.insn.mnemonic),
    }
}

fn frame() -> PtRegs {
    let mut f = PtRegs::new();
    for i in 0..31 {
        f.regs[i] = 0x1000 + i;
    }
    f.sp = 0xffff_8000_0900_0000;
    f.pc = ADDR;
    f.pstate = 0x3c5 | 0b10 << 10; // EL1h, DAIF masked, BTYPE 0b10 from the call
    f
}

/// Simulate `word` at `ADDR` on `f` with `mem`.
fn sim_with(word: u32, f: &mut PtRegs, mem: &Memory) -> Result<(), MemoryFault> {
    let d = decode(word);
    assert_eq!(d.handling, Handling::Simulate, "{word:#010x}");
    Aarch64::simulate(&d, ADDR, f, mem)
}

fn sim(word: u32, f: &mut PtRegs) {
    sim_with(word, f, &Memory::default()).unwrap()
}

const NEXT: usize = ADDR + 4;
const N: usize = 1 << 31;
const Z: usize = 1 << 30;
const C: usize = 1 << 29;
const V: usize = 1 << 28;

#[test]
fn breakpoints_are_linux_arm64_brk_immediates() {
    assert_eq!(
        (KPROBE_BRK, KPROBE_STEP_END, UPROBE_BRK),
        (0xd420_0080, 0xd420_00c0, 0xd420_00a0)
    );
    assert_eq!(
        Aarch64::breakpoint(4, ExecMode::Kernel).as_bytes(),
        0xd420_0080u32.to_le_bytes()
    );
    assert_eq!(
        Aarch64::breakpoint(4, ExecMode::User).as_bytes(),
        0xd420_00a0u32.to_le_bytes()
    );
    assert_eq!(
        Aarch64::return_breakpoint(ExecMode::User).as_bytes(),
        0xd420_00a0u32.to_le_bytes()
    );
    assert_eq!(Aarch64::trap_address(ADDR), ADDR);
    assert_eq!(probe_hal_aarch64::slot::brk_immediate(0xf200_0006), 6);
}

#[test]
fn b_and_bl() {
    let mut f = frame();
    sim(0x1400_0008, &mut f); // b .+0x20
    assert_eq!(
        (f.pc, f.regs[30], f.pstate >> 10 & 3),
        (ADDR + 0x20, 0x101e, 0)
    );
    let mut f = frame();
    sim(0x9400_0007, &mut f); // bl .+0x1c
    assert_eq!((f.pc, f.regs[30]), (ADDR + 0x1c, NEXT));
    let mut f = frame();
    sim(0x17ff_ffff, &mut f); // b .-4
    assert_eq!(f.pc, ADDR - 4);
    let mut f = frame();
    sim(0x1600_0000, &mut f); // b .-128 MiB
    assert_eq!(f.pc, ADDR - (128 << 20));
}

#[test]
fn b_cond_every_condition_taken_and_not_taken() {
    // (cond, flags that make it hold, flags that make it fail)
    let cases: [(u32, usize, usize); 14] = [
        (0x0, Z, 0),     // eq
        (0x1, 0, Z),     // ne
        (0x2, C, 0),     // cs
        (0x3, 0, C),     // cc
        (0x4, N, 0),     // mi
        (0x5, 0, N),     // pl
        (0x6, V, 0),     // vs
        (0x7, 0, V),     // vc
        (0x8, C, C | Z), // hi
        (0x9, Z, C),     // ls
        (0xa, N | V, N), // ge
        (0xb, N, 0),     // lt
        (0xc, 0, Z),     // gt
        (0xd, Z, 0),     // le
    ];
    for (cond, hold, fail) in cases {
        let word = 0x5400_00c0 | cond; // b.<cond> .+0x18
        let mut f = frame();
        f.pstate = (f.pstate & 0x0fff_ffff) | hold;
        sim(word, &mut f);
        assert_eq!(f.pc, ADDR + 0x18, "cond {cond:#x} should hold");
        let mut f = frame();
        f.pstate = (f.pstate & 0x0fff_ffff) | fail;
        sim(word, &mut f);
        assert_eq!(f.pc, NEXT, "cond {cond:#x} should fail");
    }
    for cond in [0xe, 0xf] {
        let mut f = frame();
        sim(0x5400_00c0 | cond, &mut f);
        assert_eq!(f.pc, ADDR + 0x18);
    }
    // Backward, and the FEAT_HBC form bc.eq.
    let mut f = frame();
    f.pstate |= Z;
    sim(0x54ff_ffe0, &mut f); // b.eq .-4
    assert_eq!(f.pc, ADDR - 4);
    let mut f = frame();
    f.pstate |= Z;
    sim(0x5400_0050, &mut f); // bc.eq .+8
    assert_eq!(f.pc, ADDR + 8);
}

#[test]
fn cbz_cbnz_both_widths() {
    let cases = [
        (0xb400_0080u32, 0usize, true), // cbz x0, .+16
        (0xb400_0080, 1 << 40, false),
        (0x3400_0080, 1 << 40, true), // cbz w0: the upper half is ignored
        (0x3400_0080, 1, false),
        (0xb500_0080, 1 << 40, true), // cbnz x0
        (0xb500_0080, 0, false),
        (0x3500_0080, 1 << 40, false), // cbnz w0
        (0x3500_0080, 5, true),
    ];
    for (word, x0, taken) in cases {
        let mut f = frame();
        f.regs[0] = x0;
        sim(word, &mut f);
        assert_eq!(
            f.pc,
            if taken { ADDR + 16 } else { NEXT },
            "{word:#010x} x0={x0:#x}"
        );
    }
    // cbz xzr is always taken.
    let mut f = frame();
    sim(0xb400_009f, &mut f);
    assert_eq!(f.pc, ADDR + 16);
}

#[test]
fn tbz_tbnz_low_and_high_bits() {
    let cases = [
        (0xb608_0041u32, 0usize, true), // tbz x1, #33, .+8
        (0xb608_0041, 1 << 33, false),
        (0xb708_0041, 1 << 33, true), // tbnz x1, #33
        (0xb708_0041, !(1 << 33), false),
        (0x3718_0021, 1 << 3, true), // tbnz w1, #3, .+4
        (0x3718_0021, 0, false),
        (0x3618_0021, 0, true), // tbz w1, #3
        (0x3618_0021, 8, false),
    ];
    for (word, x1, taken) in cases {
        let mut f = frame();
        f.regs[1] = x1;
        sim(word, &mut f);
        let target = if word & 0x40 != 0 { ADDR + 8 } else { ADDR + 4 };
        assert_eq!(
            f.pc,
            if taken { target } else { NEXT },
            "{word:#010x} x1={x1:#x}"
        );
    }
    // Backward: tbz x0, #0, .-8.
    let mut f = frame();
    f.regs[0] = 2;
    sim(0x367f_ffc0, &mut f);
    assert_eq!(f.pc, ADDR - 8);
}

#[test]
fn br_blr_ret_and_btype() {
    let mut f = frame();
    f.regs[16] = 0xffff_8000_2000_0000;
    sim(0xd61f_0200, &mut f); // br x16
    assert_eq!(
        (f.pc, f.regs[30], f.pstate >> 10 & 3),
        (0xffff_8000_2000_0000, 0x101e, 0b01)
    );
    let mut f = frame();
    f.regs[8] = 0xffff_8000_2000_0100;
    sim(0xd63f_0100, &mut f); // blr x8
    assert_eq!(
        (f.pc, f.regs[30], f.pstate >> 10 & 3),
        (0xffff_8000_2000_0100, NEXT, 0b10)
    );
    let mut f = frame();
    f.regs[30] = 0xffff_8000_2000_0200;
    sim(0xd63f_03c0, &mut f); // blr x30: jumps to the old x30
    assert_eq!((f.pc, f.regs[30]), (0xffff_8000_2000_0200, NEXT));
    let mut f = frame();
    f.regs[30] = 0xffff_8000_2000_0300;
    sim(0xd65f_03c0, &mut f); // ret
    assert_eq!(
        (f.pc, f.pstate >> 10 & 3, f.pstate & 0x3c0),
        (0xffff_8000_2000_0300, 0, 0x3c0)
    );
    let mut f = frame();
    f.regs[2] = 0x4444;
    sim(0xd65f_0040, &mut f); // ret x2
    assert_eq!(f.pc, 0x4444);
}

#[test]
fn adr_and_adrp_negative_and_positive() {
    let mut f = frame();
    sim(0x10ff_ffe2, &mut f); // adr x2, .-4
    assert_eq!((f.regs[2], f.pc), (ADDR - 4, NEXT));
    let mut f = frame();
    sim(0x7000_0003, &mut f); // adr x3, .+3
    assert_eq!(f.regs[3], ADDR + 3);
    let mut f = frame();
    sim(0x9000_0043, &mut f); // adrp x3, page +8 (immhi = 2, immlo = 0)
    assert_eq!(f.regs[3], (ADDR & !0xfff) + (8 << 12));
    let mut f = frame();
    sim(0xf0ff_ffe3, &mut f); // adrp x3, page -1
    assert_eq!(f.regs[3], (ADDR & !0xfff) - 4096);
    let mut f = frame();
    sim(0x9000_001f, &mut f); // adrp xzr: discarded
    assert_eq!((f.regs, f.pc), (frame().regs, NEXT));
}

#[test]
fn literal_loads_through_data_access() {
    let lit = ADDR + 8;
    let mem = Memory::with(lit, &0x8765_4321_dead_beefu64.to_le_bytes());
    let mut f = frame();
    sim_with(0x1800_0044, &mut f, &mem).unwrap(); // ldr w4, .+8
    assert_eq!((f.regs[4], f.pc), (0xdead_beef, NEXT));
    let mut f = frame();
    sim_with(0x5800_0045, &mut f, &mem).unwrap(); // ldr x5, .+8
    assert_eq!(f.regs[5], 0x8765_4321_dead_beef);
    let mut f = frame();
    sim_with(0x9800_0046, &mut f, &mem).unwrap(); // ldrsw x6, .+8
    assert_eq!(f.regs[6], 0xffff_ffff_dead_beef);
    let mem = Memory::with(ADDR - 8, &0x7fff_0001u32.to_le_bytes());
    let mut f = frame();
    sim_with(0x98ff_ffc6, &mut f, &mem).unwrap(); // ldrsw x6, .-8
    assert_eq!(f.regs[6], 0x7fff_0001);
    // A load that faults changes nothing and reports the address.
    let mut f = frame();
    let e = sim_with(0x5800_0045, &mut f, &Memory::default()).unwrap_err();
    assert_eq!((e.addr, f), (lit, frame()));
    // prfm (literal) is a hint: only the pc moves.
    let mut f = frame();
    sim(0xd800_0080, &mut f);
    assert_eq!((f.regs, f.pc), (frame().regs, NEXT));
}

#[test]
fn refusals_name_the_instruction_and_the_reason() {
    let cases: [(u32, &str, &str); 32] = [
        (0xd400_0001, "svc", WHY_EXCEPTION),
        (0xd400_0002, "hvc", WHY_EXCEPTION),
        (0xd400_0003, "smc", WHY_EXCEPTION),
        (0xd420_0080, "brk", WHY_BRK),
        (0xd45e_0000, "hlt", WHY_EXCEPTION),
        (0xd4a0_0001, "dcps1", WHY_EXCEPTION),
        (0xd69f_03e0, "eret", WHY_ERET),
        (0xd69f_0bff, "eretaa", WHY_ERET),
        (0xd503_42df, "msr (immediate)", WHY_MSR),
        (0xd518_1000, "msr", WHY_MSR),
        (0xd53b_4220, "mrs daif", WHY_MRS_DAIF),
        (0xd538_4020, "mrs elr_el1", WHY_MRS_EXC),
        (0xd538_4001, "mrs spsr_el1", WHY_MRS_EXC),
        (0xd538_5202, "mrs esr_el1", WHY_MRS_EXC),
        (0xd538_6003, "mrs far_el1", WHY_MRS_EXC),
        (0xd503_203f, "yield", WHY_HINT),
        (0xd503_207f, "wfi", WHY_HINT),
        (0xd503_23bf, "autiasp", WHY_AUT),
        (0xd503_219f, "autia1716", WHY_AUT),
        (0xd65f_0bff, "retaa", WHY_PAC_BRANCH),
        (0xd71f_0801, "braa", WHY_PAC_BRANCH),
        (0xd63f_083f, "blraaz", WHY_PAC_BRANCH),
        (0x885f_7c01, "ldxr", WHY_EXCLUSIVE),
        (0xc85f_fc01, "ldaxr", WHY_EXCLUSIVE),
        (0x8802_7c01, "stxr", WHY_EXCLUSIVE),
        (0xc802_fc01, "stlxr", WHY_EXCLUSIVE),
        (0xc87f_0801, "ldxp", WHY_EXCLUSIVE),
        (0xc823_0801, "stxp", WHY_EXCLUSIVE),
        (0x9c00_0080, "ldr (literal, SIMD&FP)", WHY_SIMD_LITERAL),
        (0x0000_0000, "udf", WHY_UDF),
        (0xd503_229f, "hint", WHY_HINT), // hint #20 (csdb)
        (0xd503_205f, "wfe", WHY_HINT),
    ];
    for (word, mnemonic, reason) in cases {
        assert_eq!(
            refusal(word),
            Refusal::new(mnemonic, reason),
            "{word:#010x}"
        );
    }
}

#[test]
fn stepped_instructions_and_steppable_hints() {
    let cases: [(u32, &str); 22] = [
        (0xc8df_fc01, "stllr/stlr/ldlar/ldar"), // ldar x1, [x0]
        (0xc8a1_7c02, "cas"),                   // cas x1, x2, [x0]
        (0x4820_7c82, "casp"),                  // casp
        (0xf821_0002, "ld<op>"),                // ldadd x1, x2, [x0]
        (0xf821_8002, "swp"),
        (0xf940_07e0, "str/ldr/ldrs/prfm (unsigned immediate)"), // ldr x0, [sp, #8]
        (0xf801_0c01, "str/ldr/ldrs (immediate, indexed)"),      // str x1, [x0, #16]!
        (0x8b02_0020, "add/adds/sub/subs (shifted register)"),   // add x0, x1, x2
        (0x1e62_2820, "fmul/fdiv/fadd/fsub/fmax/fmin/fmaxnm/fminnm"), // fadd d0, d1, d2
        (0xd50b_7b20, "sys/sysl"),                               // dc cvau, x0
        (0xd50b_7520, "sys/sysl"),                               // ic ivau, x0
        (0xd503_3b9f, "dsb"),                                    // dsb ish
        (0xd503_3fdf, "isb"),
        (0xd538_d084, "mrs"),            // mrs x4, tpidr_el1
        (0xd280_00a0, "movn/movz/movk"), // mov x0, #5
        (0xf2a0_0020, "movn/movz/movk"), // movk
        (0xd503_201f, "nop"),
        (0xd503_245f, "bti c"),
        (0xd503_233f, "paciasp"),
        (0xd503_237f, "pacibsp"),
        (0xd503_20ff, "xpaclri"),
        (0x9100_0400, "add/sub (immediate)"), // add x0, x0, #1
    ];
    assert_stepped(&cases);
}

/// Each word is stepped out of line, decided by the row `mnemonic`.
fn assert_stepped(cases: &[(u32, &str)]) {
    for &(word, mnemonic) in cases {
        let d = decode(word);
        assert_eq!(
            (d.handling, d.insn.mnemonic),
            (Handling::StepOutOfLine { boostable: false }, mnemonic),
            "{word:#010x}"
        );
    }
}

#[test]
fn slot_masks_daif_clears_btype_and_restores() {
    let d = decode(0x8b02_0020);
    let slot = 0xffff_8000_3000_0000;
    let img = Aarch64::build_slot(&d, &[], ADDR, slot, ExecMode::Kernel, true).unwrap();
    assert_eq!(img.as_bytes()[..4], 0x8b02_0020u32.to_le_bytes());
    assert_eq!(img.as_bytes()[4..], KPROBE_STEP_END.to_le_bytes());
    assert_eq!(img.step_end, Some(4));
    let user = Aarch64::build_slot(&d, &[], ADDR, slot, ExecMode::User, false).unwrap();
    assert_eq!(user.as_bytes()[4..], UPROBE_BRK.to_le_bytes());

    let mut f = frame();
    f.pstate = 0x6000_0005 | 0b11 << 10; // EL1h, Z and C, interrupts enabled, BTYPE 3
    let st = Aarch64::prepare_step(&d, &mut f, slot, false);
    assert_eq!((f.pc, f.pstate), (slot, 0x6000_0005 | 0x3c0));
    f.pstate |= 1 << 31; // the stepped instruction set N
    Aarch64::finish_step(&d, &mut f, ADDR, slot, st, &Memory::default()).unwrap();
    assert_eq!((f.pc, f.pstate), (NEXT, 0xe000_0005));

    let mut f = frame();
    f.pstate = 0x80; // only I masked before
    let st = Aarch64::prepare_step(&d, &mut f, slot, false);
    Aarch64::abort_step(&d, &mut f, ADDR, st);
    assert_eq!((f.pc, f.pstate), (ADDR, 0x80));

    // Simulated instructions have no slot.
    let b = decode(0x1400_0008);
    assert!(Aarch64::build_slot(&b, &[], ADDR, slot, ExecMode::Kernel, false).is_err());
}

#[test]
fn return_hijack_uses_x30_and_the_stack_pointer() {
    let mut f = frame();
    f.regs[30] = 0xffff_8000_0000_1234;
    let real = Aarch64::hijack_return(&mut f, &Memory::default(), 0xffff_8000_0000_9990).unwrap();
    assert_eq!(
        (real, f.regs[30]),
        (0xffff_8000_0000_1234, 0xffff_8000_0000_9990)
    );
    assert_eq!(Aarch64::entry_frame(&f), f.sp);
    assert_eq!(Aarch64::return_frame(&f), f.sp);
    assert_eq!(f.call_abi().ret, [0, 1]);
}

/// The SVE classes `decode/sve.rs` takes apart (glibc's SVE `memcpy`:
/// `whilelo`, `ptrue`, `cntb`, `ld1b`, `st1b`, `dup`) and the SME outer
/// products and ZA tile-slice loads/stores are stepped, their unallocated
/// encodings are undecodable, the other SVE and SME classes are refused as
/// not decoded, and `smstart`/`smstop` (msr SVCR*) stay refused as `msr`
/// (immediate).
#[test]
fn sve_classes_stepped_unallocated_undecodable_rest_refused() {
    let stepped: [(u32, &str); 19] = [
        (0x0420_e3e7, "cntb/cnth/cntw/cntd"),                 // cntb x7
        (0x04a0_e3e0, "cntb/cnth/cntw/cntd"),                 // cntw x0
        (0x2522_1cc1, "while*"),                              // whilelo p1.b, x6, x2
        (0x2518_e3e0, "ptrue/ptrues"),                        // ptrue p0.b
        (0xa400_a020, "ld1*/ldnf1* (scalar plus immediate)"), // ld1b {z0.b}, p0/z, [x1]
        (0xa5e0_e000, "ldnt1*/ld2*/ld3*/ld4* (scalar plus immediate)"), // ld4d
        (0xe400_e000, "st1b (scalar plus immediate)"),        // st1b {z0.b}, p0, [x0]
        (0xe400_4000, "st1b (scalar plus scalar)"),           // st1b {z0.b}, p0, [x0, x0]
        (0x0520_3820, "dup (scalar)"),                        // dup z0.b, w1
        (0x8580_4000, "ldr (vector)"),                        // ldr z0, [x0]
        (0xe580_4000, "str (vector)"),                        // str z0, [x0]
        (
            0x8400_4000,
            "ld1b/ld1h/ld1sb/ld1sh/ldff1b/ldff1h/ldff1sb/ldff1sh (gather, 32-bit)",
        ), // ld1b {z0.s}, p0/z, [x0, z0.s, uxtw]
        (0x8080_0000, "bfmopa/bfmops/fmopa/fmops"),           // fmopa za0.s, p0/m, p0/m, z0.s, z0.s
        (
            0xe000_0000,
            "ld1b/ld1h/ld1w/ld1d/st1b/st1h/st1w/st1d (ZA tile slice)",
        ), // ld1b {za0h.b[w12, 0]}, p0/z, [x0, x0]
        (0x0420_4000, "index"),                               // index z0.b, #0, #0
        (0x0420_5000, "addvl/addpl"),                         // addvl x0, x0, #0
        (0x04bf_5020, "rdvl"),                                // rdvl x0, #1
        (0x04a0_a000, "adr (vector)"),                        // adr z0.s, [z0.s, z0.s]
        (0x65a0_0000, "fmla/fmls/fnmla/fnmls (vectors)"),     // fmla z0.s, p0/m, z0.s, z0.s
    ];
    assert_stepped(&stepped);
    for word in [
        0xa41f_4000u32, // ld1b (scalar plus scalar) with Rm = 11111
        0xe41f_4000,    // st1b (scalar plus scalar) with Rm = 11111
        0x0420_c000,    // inc (vector) with size = 00
        0x658b_8000,    // fp arithmetic (predicated) with opc = 1011
    ] {
        let e = Aarch64::decode(ADDR, &word.to_le_bytes(), ExecMode::Kernel).unwrap_err();
        assert_eq!(e.kind(), ProbeErrorKind::Undecodable, "{word:#010x}");
    }
    assert_eq!(refusal(0x6594_a000), Refusal::new("sve", WHY_SVE)); // scvtf (not decoded)
    assert_eq!(refusal(0xc008_0000), Refusal::new("sme", WHY_SVE)); // zero {}
    assert_eq!(
        refusal(0xd503_477f),
        Refusal::new("msr (immediate)", WHY_MSR)
    ); // smstart
    assert_eq!(
        refusal(0xd503_467f),
        Refusal::new("msr (immediate)", WHY_MSR)
    ); // smstop
}

/// Unallocated words of the load/store, data processing (register) and
/// SIMD&FP groups are refused as undecodable (each is `.inst` to objdump).
#[test]
fn unallocated_loads_stores_register_and_simd_words_are_undecodable() {
    for word in [
        0xf8a0_0800u32, // register offset with option<1> = 0
        0xf9c0_0000,    // unsigned immediate, size = 11, opc = 11
        0xecc0_0000,    // register pair, opc = 11 (V = 1)
        0xe8c0_0000,    // register pair, opc = 11 (V = 0)
        0x0c40_1000,    // ld/st multiple structures, opcode 0001
        0x3ac0_0000,    // data-processing (2 source) with S = 1
        0x5ac0_0c00,    // rev (64-bit form) with sf = 0
        0x0b60_0000,    // add (shifted register) with shift = 11
        0x1b40_0000,    // data-processing (3 source) smulh with sf = 0
        0x4ee0_9c00,    // mul (vector) with size = 11
        0x1ea0_4000,    // fp 1 source with ftype = 10
        0x5e00_0400,    // scalar copy with imm5 = 00000
        0xcee0_0000,    // crypto four-register, Op0 = 11
    ] {
        let e = Aarch64::decode(ADDR, &word.to_le_bytes(), ExecMode::Kernel).unwrap_err();
        assert_eq!(e.kind(), ProbeErrorKind::Undecodable, "{word:#010x}");
    }
}

#[test]
fn misaligned_short_and_undecodable() {
    let e = Aarch64::decode(ADDR + 2, &[0; 4], ExecMode::Kernel).unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::Misaligned { align: 4 });
    let e = Aarch64::decode(ADDR, &[0x1f, 0x20], ExecMode::Kernel).unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::Undecodable);
    assert_eq!(Aarch64::insn_len(&[1, 2, 3]), None);
    assert_eq!(Aarch64::insn_len(&[1, 2, 3, 4]), Some(4));
    for word in [
        0x0200_0000u32,
        0x0600_0000,
        0xd500_0000,
        0x5500_0000,
        0xd6ff_0000,
    ] {
        let e = Aarch64::decode(ADDR, &word.to_le_bytes(), ExecMode::Kernel).unwrap_err();
        assert_eq!(e.kind(), ProbeErrorKind::Undecodable, "{word:#010x}");
    }
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn exclusive_windows_are_refused_up_to_the_store() {
    let ldaxr = 0xc85f_fc01; // ldaxr x1, [x0]
    let add = 0x9100_0421; // add x1, x1, #1
    let stlxr = 0xc802_fc01; // stlxr w2, x1, [x0]
    let cbnz = 0x35ff_ffa2; // cbnz w2, back
                            // After the load-exclusive: refused.
    let e = Aarch64::check_sequence(ADDR, &words(&[add, ldaxr]), ExecMode::Kernel).unwrap_err();
    assert_eq!(
        e.kind(),
        ProbeErrorKind::Refused(Refusal::new("ldaxr … stlxr sequence", WHY_INSIDE_EXCLUSIVE))
    );
    assert!(Aarch64::check_sequence(ADDR, &words(&[ldaxr, add]), ExecMode::Kernel).is_err());
    // After the store-exclusive: fine.
    assert!(Aarch64::check_sequence(ADDR, &words(&[ldaxr, add, stlxr]), ExecMode::Kernel).is_ok());
    assert!(
        Aarch64::check_sequence(ADDR, &words(&[ldaxr, add, stlxr, cbnz]), ExecMode::Kernel).is_ok()
    );
    // Nothing before: fine; a partial word at the front is skipped.
    assert!(Aarch64::check_sequence(ADDR, &[], ExecMode::Kernel).is_ok());
    let mut b = vec![0xaa];
    b.extend(words(&[ldaxr]));
    assert!(Aarch64::check_sequence(ADDR, &b, ExecMode::User).is_err());
    // Ordered (non-exclusive) accesses and LSE atomics open no window.
    let ldar = 0xc8df_fc01;
    let cas = 0xc8a1_7c02;
    assert!(Aarch64::check_sequence(ADDR, &words(&[ldar, cas]), ExecMode::Kernel).is_ok());
    assert_eq!(Aarch64::LOOK_BACK, 128);
}

#[test]
fn every_row_is_consistent() {
    let mut n = 0;
    probe_hal_aarch64::decode::for_each_row(&mut |e| {
        n += 1;
        assert_eq!(
            e.bits & !e.mask,
            0,
            "row {} has bits outside its mask",
            e.mnemonic
        );
    });
    assert!(n > 300, "{n} rows");
}

#[test]
fn every_aut_is_refused_and_pac_is_stepped() {
    use probe_hal::{Arch, ExecMode, Handling, ProbeErrorKind};
    use probe_hal_aarch64::Aarch64;
    // autia x0, x1 / autdzb x3: refused; pacia x0, x1 / paciza x2: stepped.
    for word in [0xdac1_1020u32, 0xdac1_3fe3] {
        let e = Aarch64::decode(0x1000, &word.to_le_bytes(), ExecMode::Kernel).unwrap_err();
        assert!(
            matches!(e.kind(), ProbeErrorKind::Refused(_)),
            "{word:#x}: {e}"
        );
    }
    for word in [0xdac1_0020u32, 0xdac1_23e2] {
        let d = Aarch64::decode(0x1000, &word.to_le_bytes(), ExecMode::Kernel).unwrap();
        assert!(
            matches!(d.handling, Handling::StepOutOfLine { .. }),
            "{word:#x}"
        );
    }
}
