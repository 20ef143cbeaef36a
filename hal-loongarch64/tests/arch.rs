//! The backend through its `Arch` interface, on hand-checked encodings.
//!
//! Every instruction word below was written by hand from the LoongArch
//! Reference Manual's formats and checked against `llvm-objdump` (the
//! disassembly is in the comment next to it).

use probe_hal::{
    Arch, DataAccess, Decoded, ExecMode, Handling, MemoryFault, ProbeErrorKind, Refusal, Registers,
};
use probe_hal_loongarch64::decode::{WHY_ATOMIC, WHY_CSR, WHY_FCC_BRANCH, WHY_LLSC, WHY_TRAP};
use probe_hal_loongarch64::sequence::WHY_INSIDE_LLSC;
use probe_hal_loongarch64::{LoongArch64, PtRegs};

/// Simulation and stepping must never touch data memory on loongarch64.
struct NoMemory;

impl DataAccess for NoMemory {
    fn read(&self, addr: usize, _buf: &mut [u8]) -> Result<(), MemoryFault> {
        panic!("unexpected read at {addr:#x}")
    }
    fn write(&self, addr: usize, _data: &[u8]) -> Result<(), MemoryFault> {
        panic!("unexpected write at {addr:#x}")
    }
}

const ADDR: usize = 0x9000_0000_0020_1a34;
const A0: usize = 4;
const A1: usize = 5;
const T0: usize = 12;
const RA: usize = 1;

fn decode(word: u32, mode: ExecMode) -> Decoded<<LoongArch64 as Arch>::Insn> {
    LoongArch64::decode(ADDR, &word.to_le_bytes(), mode)
        .unwrap_or_else(|e| panic!("{word:#010x}: {e}"))
}

fn refusal(word: u32) -> Refusal {
    match LoongArch64::decode(ADDR, &word.to_le_bytes(), ExecMode::Kernel) {
        Err(e) => match e.kind() {
            ProbeErrorKind::Refused(r) => {
                assert_eq!(e.addr(), ADDR);
                r
            }
            other => panic!("{word:#010x}: expected a refusal, got {other}"),
        },
        Ok(d) => panic!("{word:#010x}: accepted as {}", d.insn.mnemonic),
    }
}

/// A frame where every register holds a distinct value, so any unexpected
/// write shows up.
fn frame() -> PtRegs {
    let mut f = PtRegs::new();
    for (i, r) in f.regs.iter_mut().enumerate().skip(1) {
        *r = 0x1000 + i;
    }
    f.csr_era = ADDR;
    f.csr_prmd = 0b111;
    f
}

/// Simulate `word` at `ADDR` on `frame()` with `set` applied; returns the
/// frame before and after.
fn sim(word: u32, set: &[(usize, usize)]) -> (PtRegs, PtRegs) {
    let d = decode(word, ExecMode::Kernel);
    assert_eq!(d.handling, Handling::Simulate, "{}", d.insn.mnemonic);
    assert_eq!(d.len, 4);
    let mut before = frame();
    for &(r, v) in set {
        before.set_gpr(r, v);
    }
    let mut after = before;
    LoongArch64::simulate(&d, ADDR, &mut after, &NoMemory).unwrap();
    (before, after)
}

/// The branch went to `target` and changed nothing else.
fn assert_branch(word: u32, set: &[(usize, usize)], target: usize) {
    let (before, after) = sim(word, set);
    let mut expected = before;
    expected.csr_era = target;
    assert_eq!(after, expected, "{word:#010x}");
}

/// `rd` became `value`, pc moved to the next instruction, nothing else.
fn assert_writes(word: u32, set: &[(usize, usize)], rd: usize, value: usize) {
    let (before, after) = sim(word, set);
    let mut expected = before;
    expected.csr_era = ADDR + 4;
    expected.regs[rd] = value;
    assert_eq!(after, expected, "{word:#010x}");
}

const fn neg(v: isize) -> usize {
    v as usize
}

#[test]
fn two_register_branches_taken_and_not_taken() {
    // beq $a0, $a1, 16
    assert_branch(0x5800_1085, &[(A0, 7), (A1, 7)], ADDR + 16);
    assert_branch(0x5800_1085, &[(A0, 7), (A1, 8)], ADDR + 4);
    // beq $a0, $a1, -16
    assert_branch(0x5bff_f085, &[(A0, 7), (A1, 7)], ADDR - 16);
    // bne $a0, $a1, 64
    assert_branch(0x5c00_4085, &[(A0, 7), (A1, 8)], ADDR + 64);
    assert_branch(0x5c00_4085, &[(A0, 7), (A1, 7)], ADDR + 4);
    // blt $a0, $a1, -131072: signed compare
    assert_branch(0x6200_0085, &[(A0, neg(-5)), (A1, 3)], ADDR - 0x20000);
    assert_branch(0x6200_0085, &[(A0, 3), (A1, neg(-5))], ADDR + 4);
    assert_branch(0x6200_0085, &[(A0, 3), (A1, 3)], ADDR + 4);
    // bge $a0, $a1, 131068: signed compare, equal is taken
    assert_branch(0x65ff_fc85, &[(A0, 3), (A1, neg(-5))], ADDR + 0x1fffc);
    assert_branch(0x65ff_fc85, &[(A0, 3), (A1, 3)], ADDR + 0x1fffc);
    assert_branch(0x65ff_fc85, &[(A0, neg(-5)), (A1, 3)], ADDR + 4);
    // bltu $a0, $a1, 8: unsigned compare
    assert_branch(0x6800_0885, &[(A0, 3), (A1, neg(-5))], ADDR + 8);
    assert_branch(0x6800_0885, &[(A0, neg(-5)), (A1, 3)], ADDR + 4);
    // bgeu $a0, $a1, -8: unsigned compare
    assert_branch(0x6fff_f885, &[(A0, neg(-5)), (A1, 3)], ADDR - 8);
    assert_branch(0x6fff_f885, &[(A0, 3), (A1, 3)], ADDR - 8);
    assert_branch(0x6fff_f885, &[(A0, 3), (A1, neg(-5))], ADDR + 4);
}

#[test]
fn zero_compare_branches_taken_and_not_taken() {
    // beqz $a0, 32
    assert_branch(0x4000_2080, &[(A0, 0)], ADDR + 32);
    assert_branch(0x4000_2080, &[(A0, 1)], ADDR + 4);
    // beqz $t0, -4194304 (the most negative offs21)
    assert_branch(0x4000_0190, &[(T0, 0)], ADDR - 0x40_0000);
    // bnez $a0, -8
    assert_branch(0x47ff_f89f, &[(A0, 7)], ADDR - 8);
    assert_branch(0x47ff_f89f, &[(A0, 0)], ADDR + 4);
    // bnez $a1, 4194300 (the largest offs21)
    assert_branch(0x47ff_fcaf, &[(A1, 1)], ADDR + 0x3f_fffc);
    assert_branch(0x47ff_fcaf, &[(A1, 0)], ADDR + 4);
}

#[test]
fn b_and_bl() {
    // b 4096
    assert_branch(0x5010_0000, &[], ADDR + 0x1000);
    // b -4
    assert_branch(0x53ff_ffff, &[], ADDR - 4);
    // b -134217728 (the most negative offs26)
    assert_branch(0x5000_0200, &[], ADDR - 0x800_0000);
    // bl 1048576: links ra = addr + 4
    let (before, after) = sim(0x5400_0004, &[]);
    let mut expected = before;
    expected.csr_era = ADDR + 0x10_0000;
    expected.regs[RA] = ADDR + 4;
    assert_eq!(after, expected);
    // bl -16
    let (before, after) = sim(0x57ff_f3ff, &[]);
    let mut expected = before;
    expected.csr_era = ADDR - 16;
    expected.regs[RA] = ADDR + 4;
    assert_eq!(after, expected);
}

#[test]
fn jirl_links_rd_and_jumps_relative_to_rj() {
    let target = 0x9000_0000_0030_0000;
    // jirl $ra, $a0, 8
    let (before, after) = sim(0x4c00_0881, &[(A0, target)]);
    let mut expected = before;
    expected.csr_era = target + 8;
    expected.regs[RA] = ADDR + 4;
    assert_eq!(after, expected);
    // ret = jirl $zero, $ra, 0: the link to r0 is discarded
    let (before, after) = sim(0x4c00_0020, &[(RA, target)]);
    let mut expected = before;
    expected.csr_era = target;
    assert_eq!(after, expected);
    assert_eq!(after.gpr(0), 0);
    // jirl $a0, $a0, -4: the target uses rj before rd is written
    let (before, after) = sim(0x4fff_fc84, &[(A0, target)]);
    let mut expected = before;
    expected.csr_era = target - 4;
    expected.regs[A0] = ADDR + 4;
    assert_eq!(after, expected);
}

#[test]
fn pc_relative_arithmetic_with_both_signs() {
    // pcaddi $a0, 1 / -1
    assert_writes(0x1800_0024, &[], A0, ADDR + 4);
    assert_writes(0x19ff_ffe4, &[], A0, ADDR - 4);
    // pcaddu12i $t0, 1 / -1
    assert_writes(0x1c00_002c, &[], T0, ADDR + 0x1000);
    assert_writes(0x1dff_ffec, &[], T0, ADDR - 0x1000);
    // pcaddu18i $ra, 2 / -2
    assert_writes(0x1e00_0041, &[], RA, ADDR + 0x8_0000);
    assert_writes(0x1fff_ffc1, &[], RA, ADDR - 0x8_0000);
    // pcalau12i $a0, 1 / -1: the page of pc + (si20 << 12)
    assert_writes(0x1a00_0024, &[], A0, 0x9000_0000_0020_2000);
    assert_writes(0x1bff_ffe4, &[], A0, 0x9000_0000_0020_0000);
    // pcaddi $zero, 5: only the pc moves
    let (before, after) = sim(0x1800_00a0, &[]);
    let mut expected = before;
    expected.csr_era = ADDR + 4;
    assert_eq!(after, expected);
}

#[test]
fn refusals_name_the_instruction_and_say_why() {
    let cases: &[(u32, &str, &str)] = &[
        (0x2000_00a4, "ll.w", WHY_LLSC),       // ll.w $a0, $a1, 0
        (0x2200_088c, "ll.d", WHY_LLSC),       // ll.d $t0, $a0, 8
        (0x2100_008d, "sc.w", WHY_LLSC),       // sc.w $t1, $a0, 0
        (0x2300_008d, "sc.d", WHY_LLSC),       // sc.d $t1, $a0, 0
        (0x3857_80a4, "llacq.w", WHY_LLSC),    // llacq.w $a0, $a1
        (0x3857_18a4, "sc.q", WHY_LLSC),       // sc.q $a0, $a2, $a1
        (0x3860_18a4, "amswap.w", WHY_ATOMIC), // amswap.w $a0, $a2, $a1
        (0x386a_98a4, "amadd_db.d", WHY_ATOMIC),
        (0x3859_18a4, "amcas.w", WHY_ATOMIC),
        (0x3871_98a4, "ammin_db.du", WHY_ATOMIC),
        (0x4800_0820, "bceqz", WHY_FCC_BRANCH), // bceqz $fcc1, 8
        (0x4bff_fd1f, "bcnez", WHY_FCC_BRANCH), // bcnez $fcc0, -4
        (0x002a_0000, "break", WHY_TRAP),
        (0x002a_000a, "break", WHY_TRAP),
        (0x002b_0000, "syscall", WHY_TRAP),
        (0x002a_8000, "dbcl", WHY_TRAP),
        (0x0400_0404, "csrrd", WHY_CSR),   // csrrd $a0, 1
        (0x0400_0424, "csrwr", WHY_CSR),   // csrwr $a0, 1
        (0x0400_04a4, "csrxchg", WHY_CSR), // csrxchg $a0, $a1, 1
    ];
    for &(word, mnemonic, reason) in cases {
        assert_eq!(
            refusal(word),
            Refusal::new(mnemonic, reason),
            "{word:#010x}"
        );
    }
    // The privileged rest: only the mnemonic is checked here.
    let privileged: &[(u32, &str)] = &[
        (0x0648_3800, "ertn"),
        (0x0648_8000, "idle"),  // idle 0
        (0x0600_0080, "cacop"), // cacop 0, $a0, 0
        (0x0648_2800, "tlbsrch"),
        (0x0648_3400, "tlbfill"),
        (0x0649_9480, "invtlb"),    // invtlb 0, $a0, $a1
        (0x0648_08a4, "iocsrrd.w"), // iocsrrd.w $a0, $a1
        (0x0648_1ca4, "iocsrwr.d"), // iocsrwr.d $a0, $a1
        (0x0640_04a4, "lddir"),     // lddir $a0, $a1, 1
        (0x0644_0480, "ldpte"),     // ldpte $a0, 1
    ];
    for &(word, mnemonic) in privileged {
        assert_eq!(refusal(word).mnemonic, mnemonic, "{word:#010x}");
    }
}

#[test]
fn a_refusal_reads_well() {
    let e = LoongArch64::decode(0x1000, &0x2000_00a4u32.to_le_bytes(), ExecMode::User).unwrap_err();
    assert_eq!(
        e.to_string(),
        std::format!("cannot probe 0x1000: refused instruction `ll.w`: {WHY_LLSC}")
    );
}

#[test]
fn unknown_words_misalignment_and_short_input() {
    // 0, all ones, and holes in the LSX/LASX/indexed-vector opcode space
    // (LLVM: `<unknown>` too) are refused as undecodable.
    for word in [0u32, 0xffff_ffff, 0x7300_0000, 0x77ff_fc00, 0x3850_0000] {
        let e = LoongArch64::decode(ADDR, &word.to_le_bytes(), ExecMode::Kernel).unwrap_err();
        assert_eq!((e.kind(), e.addr()), (ProbeErrorKind::Undecodable, ADDR));
    }
    let nop = 0x0340_0000u32.to_le_bytes();
    let e = LoongArch64::decode(ADDR + 2, &nop, ExecMode::Kernel).unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::Misaligned { align: 4 });
    let e = LoongArch64::decode(ADDR, &nop[..3], ExecMode::Kernel).unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::Undecodable);
    assert_eq!(LoongArch64::insn_len(&nop), Some(4));
    assert_eq!(LoongArch64::insn_len(&[0xff; 4]), Some(4));
    assert_eq!(LoongArch64::insn_len(&nop[..3]), None);
}

/// Ordinary compiled code: each is stepped out of line, unboosted.
const STEPPED: &[(u32, &str)] = &[
    (0x0010_9484, "add.d"),      // add.d $a0, $a0, $a1
    (0x02ff_c063, "addi.d"),     // addi.d $sp, $sp, -16
    (0x28c0_2064, "ld.d"),       // ld.d $a0, $sp, 8
    (0x29ff_e061, "st.d"),       // st.d $ra, $sp, -8
    (0x3808_18a4, "ldx.w"),      // ldx.w $a0, $a1, $a2
    (0x0041_0ca4, "slli.d"),     // slli.d $a0, $a1, 3
    (0x0048_fca4, "srai.w"),     // srai.w $a0, $a1, 31
    (0x2b80_4080, "fld.d"),      // fld.d $fa0, $a0, 16
    (0x2b40_1061, "fst.s"),      // fst.s $fa1, $sp, 4
    (0x0101_0820, "fadd.d"),     // fadd.d $fa0, $fa1, $fa2
    (0x0821_8820, "fmadd.d"),    // fmadd.d $fa0, $fa1, $fa2, $fa3
    (0x0c21_0400, "fcmp.clt.d"), // fcmp.clt.d $fcc0, $fa0, $fa1
    (0x0114_a880, "movgr2fr.d"), // movgr2fr.d $fa0, $a0
    (0x1424_68a4, "lu12i.w"),    // lu12i.w $a0, 74565
    (0x0399_e084, "ori"),        // ori $a0, $a0, 1656
    (0x00df_00a4, "bstrpick.d"), // bstrpick.d $a0, $a1, 31, 0
    (0x3872_0000, "dbar"),       // dbar 0
    (0x001d_98a4, "mul.d"),      // mul.d $a0, $a1, $a2
    (0x0023_98a4, "mod.du"),     // mod.du $a0, $a1, $a2
    (0x0000_5ca4, "ext.w.b"),    // ext.w.b $a0, $a1
    (0x0340_0000, "andi"),       // nop
    (0x0015_00ec, "or"),         // move $t0, $a3
    (0x0000_6804, "rdtime.d"),   // rdtime.d $a0, $zero
];

#[test]
fn ordinary_instructions_are_stepped_in_a_slot_ending_in_break_11() {
    for &(word, mnemonic) in STEPPED {
        let d = decode(word, ExecMode::Kernel);
        assert_eq!(d.insn.mnemonic, mnemonic, "{word:#010x}");
        assert_eq!(d.handling, Handling::StepOutOfLine { boostable: false });
        let slot = LoongArch64::build_slot(
            &d,
            &word.to_le_bytes(),
            ADDR,
            0x9000_0000_0800_0000,
            ExecMode::Kernel,
            true,
        )
        .unwrap();
        let w = word.to_le_bytes();
        assert_eq!(
            slot.as_bytes(),
            [w[0], w[1], w[2], w[3], 0x0b, 0x00, 0x2a, 0x00]
        );
        assert_eq!(slot.step_end, Some(4));
        assert!(slot.len <= LoongArch64::SLOT_LEN);
        // A user-mode slot ends in break 13.
        let d = decode(word, ExecMode::User);
        let slot = LoongArch64::build_slot(&d, &w, ADDR, 0x1_2000, ExecMode::User, false).unwrap();
        assert_eq!(&slot.as_bytes()[4..], [0x0d, 0x00, 0x2a, 0x00]);
    }
}

/// LSX, LASX and LBT instructions (each word checked with nightly
/// llvm-objdump): memory forms with base + offset or base + index
/// addressing, register forms, and the LBT flag/scratch/unaligned forms.
const EXTENSIONS: &[(u32, &str)] = &[
    (0x2c00_00a4, "vld"),          // vld $vr4, $a1, 0
    (0x2c40_00a4, "vst"),          // vst $vr4, $a1, 0
    (0x3840_18a4, "vldx"),         // vldx $vr4, $a1, $a2
    (0x3844_18a4, "vstx"),         // vstx $vr4, $a1, $a2
    (0x3010_00a4, "vldrepl.d"),    // vldrepl.d $vr4, $a1, 0
    (0x3114_00a4, "vstelm.d"),     // vstelm.d $vr4, $a1, 0, 1
    (0x700a_0820, "vadd.b"),       // vadd.b $vr0, $vr1, $vr2
    (0x2c80_00a4, "xvld"),         // xvld $xr4, $a1, 0
    (0x2cc0_00a4, "xvst"),         // xvst $xr4, $a1, 0
    (0x3848_18a4, "xvldx"),        // xvldx $xr4, $a1, $a2
    (0x740a_0820, "xvadd.b"),      // xvadd.b $xr0, $xr1, $xr2
    (0x0910_c820, "vfmadd.s"),     // vfmadd.s $vr0, $vr1, $vr18, $vr1
    (0x0c50_0820, "vfcmp.caf.s"),  // vfcmp.caf.s $vr0, $vr1, $vr2
    (0x0d10_c820, "vbitsel.v"),    // vbitsel.v $vr0, $vr1, $vr18, $vr1
    (0x0d50_c820, "vshuf.b"),      // vshuf.b $vr0, $vr1, $vr18, $vr1
    (0x3280_00a4, "xvldrepl.b"),   // xvldrepl.b $xr4, $a1, 0
    (0x3324_0ca4, "xvstelm.w"),    // xvstelm.w $xr4, $a1, 12, 1
    (0x73e0_0020, "vldi"),         // vldi $vr0, 1
    (0x729c_9800, "vseteqz.v"),    // vseteqz.v $fcc0, $vr0
    (0x72ef_e4a4, "vpickve2gr.w"), // vpickve2gr.w $a0, $vr5, 1
    (0x729f_00a4, "vreplgr2vr.b"), // vreplgr2vr.b $vr4, $a1
    (0x003f_0480, "x86add.wu"),    // x86add.wu $a0, $ra
    (0x2e00_00a4, "ldl.w"),        // ldl.w $a0, $a1, 0
    (0x0000_0880, "movgr2scr"),    // movgr2scr $scr0, $a0
    (0x0036_800c, "setx86j"),      // setx86j $t0, 0
];

#[test]
fn vector_and_lbt_instructions_are_stepped_unrelocated() {
    for &(word, mnemonic) in EXTENSIONS {
        for mode in [ExecMode::Kernel, ExecMode::User] {
            let d = decode(word, mode);
            assert_eq!((d.insn.mnemonic, d.len), (mnemonic, 4), "{word:#010x}");
            assert_eq!(d.handling, Handling::StepOutOfLine { boostable: false });
            // No pc relocation: the same four bytes in slots far apart and
            // far from the probe, then the step-end break.
            let w = word.to_le_bytes();
            let end = match mode {
                ExecMode::Kernel => 0x0b,
                _ => 0x0d,
            };
            for slot_addr in [0x9000_0000_0800_0000, 0x1_2000, 0x7fff_ffff_f000] {
                let slot = LoongArch64::build_slot(&d, &w, ADDR, slot_addr, mode, true).unwrap();
                assert_eq!(
                    slot.as_bytes(),
                    [w[0], w[1], w[2], w[3], end, 0x00, 0x2a, 0x00],
                    "{mnemonic} in a slot at {slot_addr:#x}"
                );
                assert_eq!(slot.step_end, Some(4));
            }
        }
    }
    // jiscr0/jiscr1 (LBT) write the pc: still refused.
    assert_eq!(refusal(0x4800_0200).mnemonic, "jiscr0");
    assert_eq!(refusal(0x4800_0300).mnemonic, "jiscr1");
}

#[test]
fn a_simulated_instruction_gets_no_slot() {
    let d = decode(0x5010_0000, ExecMode::Kernel); // b 4096
    let e =
        LoongArch64::build_slot(&d, &[0; 4], ADDR, 0x8000, ExecMode::Kernel, false).unwrap_err();
    assert!(matches!(e.kind(), ProbeErrorKind::InvalidRequest(_)));
}

#[test]
fn breakpoints_and_trap_address() {
    assert_eq!(
        LoongArch64::breakpoint(4, ExecMode::Kernel).as_bytes(),
        [0x0a, 0x00, 0x2a, 0x00]
    );
    assert_eq!(
        LoongArch64::breakpoint(4, ExecMode::User).as_bytes(),
        [0x0c, 0x00, 0x2a, 0x00]
    );
    assert_eq!(
        LoongArch64::return_breakpoint(ExecMode::Kernel).as_bytes(),
        [0x0a, 0x00, 0x2a, 0x00]
    );
    assert_eq!(
        LoongArch64::return_breakpoint(ExecMode::User).as_bytes(),
        [0x0c, 0x00, 0x2a, 0x00]
    );
    assert_eq!(LoongArch64::trap_address(ADDR), ADDR);
    assert_eq!(
        (
            LoongArch64::INSN_ALIGN,
            LoongArch64::MAX_INSN_LEN,
            LoongArch64::SLOT_LEN
        ),
        (4, 4, 8)
    );
    assert_eq!(LoongArch64::LOOK_BACK, 64);
    assert_eq!(LoongArch64::kernel_trampoline(), None); // host build
}

#[test]
fn a_step_masks_interrupts_and_finishing_or_aborting_restores_them() {
    let slot = 0x9000_0000_0800_0040;
    let d = decode(0x0010_9484, ExecMode::Kernel); // add.d $a0, $a0, $a1
    let mut f = frame(); // PRMD = PPLV 3 | PIE
    let state = LoongArch64::prepare_step(&d, &mut f, slot, false);
    assert_eq!((f.csr_era, f.csr_prmd), (slot, 0b011));
    assert!(state.interrupts_were_enabled);
    let mut finished = f;
    LoongArch64::finish_step(&d, &mut finished, ADDR, slot, state, &NoMemory).unwrap();
    assert_eq!((finished.csr_era, finished.csr_prmd), (ADDR + 4, 0b111));
    let mut aborted = f;
    LoongArch64::abort_step(&d, &mut aborted, ADDR, state);
    assert_eq!((aborted.csr_era, aborted.csr_prmd), (ADDR, 0b111));
    // Interrupts that were off stay off.
    let mut f = frame();
    f.csr_prmd = 0b011;
    let state = LoongArch64::prepare_step(&d, &mut f, slot, false);
    assert!(!state.interrupts_were_enabled);
    LoongArch64::finish_step(&d, &mut f, ADDR, slot, state, &NoMemory).unwrap();
    assert_eq!((f.csr_era, f.csr_prmd), (ADDR + 4, 0b011));
    // Only pc and PRMD changed.
    let mut expected = frame();
    expected.csr_era = ADDR + 4;
    expected.csr_prmd = 0b011;
    assert_eq!(f, expected);
}

#[test]
fn return_hijack_swaps_ra_and_frames_are_the_stack_pointer() {
    let mut f = frame();
    f.regs[RA] = 0x9000_0000_0021_0000;
    f.regs[3] = 0x9000_0000_00ff_fe00;
    assert_eq!(LoongArch64::entry_frame(&f), 0x9000_0000_00ff_fe00);
    let old = LoongArch64::hijack_return(&mut f, &NoMemory, 0x9000_0000_0022_0000).unwrap();
    assert_eq!(
        (old, f.regs[RA]),
        (0x9000_0000_0021_0000, 0x9000_0000_0022_0000)
    );
    assert_eq!(LoongArch64::return_frame(&f), LoongArch64::entry_frame(&f));
}

fn words(ws: &[u32]) -> std::vec::Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn addresses_inside_an_ll_sc_loop_are_refused() {
    // 1: ll.w $a0, $a1, 0
    //    bne $a0, $a2, 16
    //    move $t0, $a3
    //    sc.w $t0, $a1, 0
    //    beqz $t0, -16
    let code = [
        0x2000_00a4,
        0x5c00_1086,
        0x0015_00ec,
        0x2100_00ac,
        0x43ff_f19f,
    ];
    let bytes = words(&code);
    let check =
        |k: usize| LoongArch64::check_sequence(ADDR + 4 * k, &bytes[..4 * k], ExecMode::Kernel);
    // The ll itself is refused by decode; the sequence check looks before it.
    assert_eq!(check(0), Ok(()));
    for k in 1..=3 {
        let e = check(k).unwrap_err();
        assert_eq!(e.addr(), ADDR + 4 * k);
        assert_eq!(
            e.kind(),
            ProbeErrorKind::Refused(Refusal::new("ll.w … sc.w sequence", WHY_INSIDE_LLSC))
        );
    }
    // After the sc the window is closed.
    assert_eq!(check(4), Ok(()));
    assert_eq!(check(5), Ok(()));
}

#[test]
fn ll_sc_window_edges() {
    // llacq.w $a0, $a1 ; nop ; screl.w $t0, $a1
    let acq = words(&[0x3857_80a4, 0x0340_0000, 0x3857_84ac]);
    let e = LoongArch64::check_sequence(ADDR, &acq[..8], ExecMode::User).unwrap_err();
    assert!(
        matches!(e.kind(), ProbeErrorKind::Refused(r) if r.mnemonic == "llacq.w … screl.w sequence")
    );
    assert_eq!(
        LoongArch64::check_sequence(ADDR, &acq, ExecMode::User),
        Ok(())
    );
    // An ll 15 instructions back is seen; a ragged start (not whole words) is
    // ignored, since the words must end at the probe address.
    let mut code = std::vec![0x2200_088cu32]; // ll.d $t0, $a0, 8
    code.extend([0x0340_0000u32; 15]);
    let mut bytes = std::vec![0xffu8; 3];
    bytes.extend(words(&code));
    assert_eq!(bytes.len(), 67);
    let e = LoongArch64::check_sequence(ADDR, &bytes[bytes.len() - 64..], ExecMode::Kernel)
        .unwrap_err();
    assert!(matches!(e.kind(), ProbeErrorKind::Refused(r) if r.mnemonic == "ll.d … sc.d sequence"));
    let e = LoongArch64::check_sequence(ADDR, &bytes, ExecMode::Kernel).unwrap_err();
    assert!(matches!(e.kind(), ProbeErrorKind::Refused(r) if r.mnemonic == "ll.d … sc.d sequence"));
    // Straight-line code without ll is fine, and so is no look-back at all.
    assert_eq!(
        LoongArch64::check_sequence(ADDR, &words(&[0x0340_0000; 16]), ExecMode::Kernel),
        Ok(())
    );
    assert_eq!(
        LoongArch64::check_sequence(ADDR, &[], ExecMode::Kernel),
        Ok(())
    );
}
