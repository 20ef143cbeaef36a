//! The decoder against hand-checked encodings of every instruction class
//! (each encoding was also confirmed with GNU as 2.40, `-march=rv64gc`).

use probe_hal::{Arch, ExecMode, Handling, ProbeErrorKind};
use probe_hal_riscv64::decode::{decode_insn, Decision, Verdict};
use probe_hal_riscv64::{Cond, Flow, Riscv64};

fn d32(word: u32) -> Decision {
    decode_insn(&word.to_le_bytes()).expect("4 bytes decode")
}

fn d16(half: u16) -> Decision {
    decode_insn(&half.to_le_bytes()).expect("2 bytes decode")
}

fn simulated(d: Decision) -> Flow {
    match d.verdict {
        Verdict::Simulate(flow) => flow,
        other => panic!("{} not simulated: {other:?}", d.mnemonic),
    }
}

#[test]
fn jal_with_and_without_link() {
    let cases = [
        (0x001000ef, 1, 0x800),      // jal ra, .+0x800
        (0xffdff06f, 0, -4),         // jal zero, .-4
        (0x7ffff0ef, 1, 0xffffe),    // jal ra, .+0xffffe (largest)
        (0x800002ef, 5, -0x10_0000), // jal t0, .-0x100000 (smallest)
    ];
    for (word, rd, offset) in cases {
        let d = d32(word);
        assert_eq!((d.len, d.mnemonic), (4, "jal"));
        assert_eq!(simulated(d), Flow::Jal { rd, offset }, "{word:#x}");
    }
}

#[test]
fn jalr_forms() {
    let cases = [
        (0x010500e7, 1, 10, 16),   // jalr ra, 16(a0)
        (0x00008067, 0, 1, 0),     // jalr zero, 0(ra) = ret
        (0x800302e7, 5, 6, -2048), // jalr t0, -2048(t1)
    ];
    for (word, rd, rs1, offset) in cases {
        let d = d32(word);
        assert_eq!((d.len, d.mnemonic), (4, "jalr"));
        assert_eq!(simulated(d), Flow::Jalr { rd, rs1, offset }, "{word:#x}");
    }
    // funct3 != 0 is not jalr.
    assert_eq!(d32(0x00001067).verdict, Verdict::Undecodable);
}

#[test]
fn auipc_positive_negative_and_x0() {
    let cases = [
        (0x12345517, 10, 0x1234_5000), // auipc a0, 0x12345
        (0xfffff317, 6, -4096),        // auipc t1, 0xfffff
        (0x80000797, 15, i32::MIN),    // auipc a5, 0x80000
        (0x00001017, 0, 4096),         // auipc zero, 1 (a HINT, still simulated)
    ];
    for (word, rd, offset) in cases {
        let d = d32(word);
        assert_eq!((d.len, d.mnemonic), (4, "auipc"));
        assert_eq!(simulated(d), Flow::Auipc { rd, offset }, "{word:#x}");
    }
}

#[test]
fn every_branch() {
    let cases = [
        (0x00b50463, "beq", Cond::Eq, 10, 11, 8),
        (0xfeb51ce3, "bne", Cond::Ne, 10, 11, -8),
        (0x7eb54fe3, "blt", Cond::Lt, 10, 11, 4094),
        (0x80b55063, "bge", Cond::Ge, 10, 11, -4096),
        (0x00d66863, "bltu", Cond::Ltu, 12, 13, 16),
        (0xfe02ffe3, "bgeu", Cond::Geu, 5, 0, -2),
    ];
    for (word, mnemonic, cond, rs1, rs2, offset) in cases {
        let d = d32(word);
        assert_eq!((d.len, d.mnemonic), (4, mnemonic));
        assert_eq!(
            simulated(d),
            Flow::Branch {
                cond,
                rs1,
                rs2,
                offset
            },
            "{mnemonic}"
        );
    }
    // funct3 010 and 011 are not branches.
    assert_eq!(d32(0x00002063).verdict, Verdict::Undecodable);
    assert_eq!(d32(0x00003063).verdict, Verdict::Undecodable);
}

#[test]
fn every_compressed_control_flow_form() {
    let cases: [(u16, &str, Flow); 10] = [
        (
            0xb001,
            "c.j",
            Flow::Jal {
                rd: 0,
                offset: -2048,
            },
        ),
        (
            0xaffd,
            "c.j",
            Flow::Jal {
                rd: 0,
                offset: 2046,
            },
        ),
        (0xa019, "c.j", Flow::Jal { rd: 0, offset: 6 }),
        (
            0x8502,
            "c.jr",
            Flow::Jalr {
                rd: 0,
                rs1: 10,
                offset: 0,
            },
        ),
        (
            0x8082,
            "c.jr",
            Flow::Jalr {
                rd: 0,
                rs1: 1,
                offset: 0,
            },
        ),
        (
            0x9782,
            "c.jalr",
            Flow::Jalr {
                rd: 1,
                rs1: 15,
                offset: 0,
            },
        ),
        (
            0x9082,
            "c.jalr",
            Flow::Jalr {
                rd: 1,
                rs1: 1,
                offset: 0,
            },
        ),
        (
            0xcc7d,
            "c.beqz",
            Flow::Branch {
                cond: Cond::Eq,
                rs1: 8,
                rs2: 0,
                offset: 254,
            },
        ),
        (
            0xf381,
            "c.bnez",
            Flow::Branch {
                cond: Cond::Ne,
                rs1: 15,
                rs2: 0,
                offset: -256,
            },
        ),
        (
            0xc109,
            "c.beqz",
            Flow::Branch {
                cond: Cond::Eq,
                rs1: 10,
                rs2: 0,
                offset: 2,
            },
        ),
    ];
    for (half, mnemonic, flow) in cases {
        let d = d16(half);
        assert_eq!((d.len, d.mnemonic), (2, mnemonic), "{half:#x}");
        assert_eq!(simulated(d), flow, "{half:#x}");
    }
}

#[test]
fn stepped_instructions() {
    let words: [(u32, &str); 17] = [
        (0xfff58513, "addi"),
        (0x12345537, "lui"),
        (0x00813503, "ld"),
        (0xfe113c23, "sd"),
        (0x00b6252f, "amoadd.w"),
        (0x0eb6352f, "amoswap.d"),
        (0x02c58533, "mul"),
        (0x02c5f553, "fadd.d"),
        (0x68c58543, "fmadd.s"),
        (0xd2050553, "fcvt.d.w"),
        (0x01f5151b, "slliw"),
        (0x4015551b, "sraiw"),
        (0x43f55513, "srai"),
        (0x02001013, "slli"),   // slli zero, zero, 32: RV64 6-bit shamt
        (0x00a57553, "fadd.s"), // rm = dyn
        (0xe0051553, "fclass.s"),
        (0x5805f553, "fsqrt.s"),
    ];
    for (word, mnemonic) in words {
        let d = d32(word);
        assert_eq!(
            d,
            Decision {
                len: 4,
                mnemonic,
                verdict: Verdict::Step
            },
            "{word:#x}"
        );
    }
    let halves: [(u16, &str); 14] = [
        (0x2505, "c.addiw"), // c.addiw a0, 1: RV64 quadrant 1 funct3 001, not c.jal
        (0x3501, "c.addiw"),
        (0x7139, "c.addi16sp"),
        (0x6505, "c.lui"),
        (0x852e, "c.mv"),
        (0x952e, "c.add"),
        (0x0001, "c.addi"), // c.nop
        (0x60a2, "c.ldsp"),
        (0xe406, "c.sdsp"),
        (0x2508, "c.fld"),
        (0x0808, "c.addi4spn"),
        (0x9d0d, "c.subw"),
        (0x957d, "c.srai"),
        (0x8006, "c.mv"), // c.mv zero, ra: a HINT
    ];
    for (half, mnemonic) in halves {
        let d = d16(half);
        assert_eq!(
            d,
            Decision {
                len: 2,
                mnemonic,
                verdict: Verdict::Step
            },
            "{half:#x}"
        );
    }
}

#[test]
fn refusals_name_the_instruction() {
    let words: [(u32, &str); 25] = [
        (0x00000073, "ecall"),
        (0x00100073, "ebreak"),
        (0x14051073, "csrrw"),
        (0x10002573, "csrrs"), // csrr a0, sstatus
        (0x10405073, "csrrwi"),
        (0x10017073, "csrrci"),
        (0xc0102573 | 1 << 15, "csrrs"), // csrrs a0, time, ra: a write, illegal
        (0xc0101573, "csrrw"),           // csrrw a0, time, zero: a write, illegal
        (0xc010e573, "csrrsi"),          // csrrsi a0, time, 1: a write, illegal
        (0xc0302573, "csrrs"),           // rdhpmcounter3: not stepped
        (0xc8002573, "csrrs"),           // rdcycleh: RV32 only
        (0xc8102573, "csrrs"),           // rdtimeh: RV32 only
        (0xc8202573, "csrrs"),           // rdinstreth: RV32 only
        (0x00402573, "csrrs"),           // csr 0x004 (uie, gone): not an FP CSR
        (0x30200073, "mret"),
        (0x10200073, "sret"),
        (0x10500073, "wfi"),
        (0x12000073, "sfence.vma"),
        (0x12b50073, "sfence.vma"),
        (0x20004073, "system"), // funct3 100: no RV64GC instruction, still SYSTEM
        (0x1005a52f, "lr.w"),
        (0x1605b52f, "lr.d"),
        (0x18d5a62f, "sc.w"),
        (0x1ad5b62f, "sc.d"),
        (0x7b200073, "dret"),
    ];
    for (word, mnemonic) in words {
        let d = d32(word);
        match d.verdict {
            Verdict::Refuse(r) => {
                assert_eq!((d.len, r.mnemonic), (4, mnemonic), "{word:#x}");
                assert!(r.reason.len() > 20, "{mnemonic}: reason too short");
            }
            other => panic!("{word:#x} ({mnemonic}) not refused: {other:?}"),
        }
    }
    let d = d16(0x9002);
    assert!(matches!(d.verdict, Verdict::Refuse(r) if r.mnemonic == "c.ebreak"));
    assert_eq!(d.len, 2);
    // The RV32-only counters and ecall say why in their own words.
    let reason = |w: u32| match d32(w).verdict {
        Verdict::Refuse(r) => r.reason,
        other => panic!("{w:#x}: {other:?}"),
    };
    assert!(reason(0xc8102573).contains("RV32 only"));
    assert!(reason(0x00000073).contains("forked child"));
    assert!(reason(0x00000073).contains("rt_sigreturn"));
}

#[test]
fn fences_and_location_independent_csrs_are_stepped() {
    let words: [(u32, &str); 30] = [
        (0x0ff0000f, "fence"), // fence iorw, iorw
        (0x0330000f, "fence"), // fence rw, rw
        (0x0220000f, "fence"), // fence r, r
        (0x0000000f, "fence"), // fence 0, 0 (a HINT, still a fence)
        (0x8330000f, "fence.tso"),
        (0x0100000f, "pause"), // fence w, 0 (Zihintpause)
        (0x0000100f, "fence.i"),
        (0x00102573, "csrrs"),  // frflags a0
        (0x001595f3, "csrrw"),  // fsflags a1, a1
        (0x00105073, "csrrwi"), // fsflagsi zero, 0
        (0x0010f5f3, "csrrci"), // csrrci a1, fflags, 1
        (0x00202573, "csrrs"),  // frrm a0
        (0x00251073, "csrrw"),  // fsrm a0
        (0x0020d073, "csrrwi"), // fsrmi zero, 1
        (0x00302573, "csrrs"),  // frcsr a0
        (0x003515f3, "csrrw"),  // fscsr a1, a0
        (0x0035a5f3, "csrrs"),  // csrrs a1, fcsr, a1 (sets bits)
        (0x0035b5f3, "csrrc"),  // csrrc a1, fcsr, a1 (clears bits)
        (0x00376073, "csrrsi"), // csrsi fcsr, 14
        (0x00317073, "csrrci"), // csrci fcsr, 2
        (0xc0002573, "csrrs"),  // rdcycle a0
        (0xc01025f3, "csrrs"),  // rdtime a1
        (0xc0202673, "csrrs"),  // rdinstret a2
        (0xc0003573, "csrrc"),  // csrrc a0, cycle, zero: a read
        (0xc0106573, "csrrsi"), // csrrsi a0, time, 0: a read
        (0xc0207573, "csrrci"), // csrrci a0, instret, 0: a read
        (0xc0002073, "csrrs"),  // csrrs zero, cycle, zero
        (0xc01020f3, "csrrs"),  // rdtime ra
        (0xc0102ff3, "csrrs"),  // rdtime t6
        (0x00302073, "csrrs"),  // frcsr zero
    ];
    for (word, mnemonic) in words {
        assert_eq!(
            d32(word),
            Decision {
                len: 4,
                mnemonic,
                verdict: Verdict::Step
            },
            "{word:#010x}"
        );
        // Through the Arch interface: stepped, not boostable, no flow.
        let d = Riscv64::decode(0x8000_0000, &word.to_le_bytes(), ExecMode::Kernel).unwrap();
        assert_eq!(d.handling, Handling::StepOutOfLine { boostable: false });
        assert_eq!((d.len, d.insn.flow), (4, None));
    }
}

#[test]
fn reserved_and_unknown_encodings_are_undecodable() {
    let halves: [u16; 12] = [
        0x0000, // all zero: the defined illegal instruction (c.unimp)
        0x0004, // c.addi4spn with nzuimm = 0
        0x4002, // c.lwsp rd = x0
        0x6002, // c.ldsp rd = x0
        0x8002, // c.jr x0
        0x2001, // c.addiw x0
        0x6001, // c.lui x0, 0
        0x6081, // c.lui ra, 0
        0x6101, // c.addi16sp sp, 0
        0x8000, // quadrant 0 funct3 100
        0x9c41, // quadrant 1 CA, bit 12 set, funct2 10
        0x9c61, // quadrant 1 CA, bit 12 set, funct2 11
    ];
    for half in halves {
        assert_eq!(d16(half).verdict, Verdict::Undecodable, "{half:#06x}");
        assert_eq!(d16(half).len, 2);
    }
    let words: [u32; 16] = [
        0x8000000f, // fence with the reserved fm 1000 and pred/succ not rw,rw
        0x1ff0000f, // fence with the reserved fm 0001
        0x0ff0008f, // fence with rd != 0 (reserved for finer-grained fences)
        0x0ff0800f, // fence with rs1 != 0
        0x0010100f, // fence.i with imm != 0
        0x0000108f, // fence.i with rd != 0
        0x0000000b, // custom-0
        0x0000007b, // custom-3
        0x00007003, // LOAD funct3 111
        0x00a5d553, // fadd.s with reserved rm 101
        0x00a5e553, // fadd.s with reserved rm 110
        0x101520af, // lr.w with rs2 != 0
        0x60051513, // clz (Zbb), not RV64GC
        0x0800c533, // funct7 0x04 (Zbkb pack), not RV64GC
        0x0000200f, // MISC-MEM funct3 010 (Zicbom), not RV64GC
        0x0600f043, // fmadd.q (Q), not RV64GC
    ];
    for word in words {
        assert_eq!(d32(word).verdict, Verdict::Undecodable, "{word:#010x}");
    }
    // 48-bit and longer length encodings, and too few bytes.
    assert_eq!(decode_insn(&[0x1f, 0, 0, 0, 0, 0]), None);
    assert_eq!(decode_insn(&[0x13, 0x05, 0xf5]), None);
    assert_eq!(decode_insn(&[0x01]), None);
}

#[test]
fn arch_decode_maps_verdicts() {
    let k = ExecMode::Kernel;
    // A 32-bit instruction at a 2-byte-aligned address is accepted.
    let d = Riscv64::decode(0x8000_0002, &0x02c58533u32.to_le_bytes(), k).unwrap();
    assert_eq!(d.len, 4);
    assert_eq!(d.handling, Handling::StepOutOfLine { boostable: false });
    assert_eq!(
        (d.insn.mnemonic, d.insn.flow, d.insn.mode),
        ("mul", None, k)
    );

    let d = Riscv64::decode(0x8000_0000, &[0x82, 0x80, 0x13, 0x00], ExecMode::User).unwrap();
    assert_eq!(d.len, 2);
    assert_eq!(d.handling, Handling::Simulate);
    assert_eq!(
        d.insn.flow,
        Some(Flow::Jalr {
            rd: 0,
            rs1: 1,
            offset: 0
        })
    );
    assert_eq!(d.insn.mode, ExecMode::User);

    let e = Riscv64::decode(0x8000_0004, &0x1005a52fu32.to_le_bytes(), k).unwrap_err();
    assert_eq!(e.addr(), 0x8000_0004);
    match e.kind() {
        ProbeErrorKind::Refused(r) => assert_eq!(r.mnemonic, "lr.w"),
        other => panic!("{other:?}"),
    }
    assert!(e
        .to_string()
        .starts_with("cannot probe 0x80000004: refused instruction `lr.w`: "));

    let e = Riscv64::decode(0x10, &[0, 0, 0, 0], k).unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::Undecodable);
    let e = Riscv64::decode(0x10, &[0x13, 0x00], k).unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::Undecodable);
    let e = Riscv64::decode(0x11, &[0x01, 0x00], k).unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::Misaligned { align: 2 });
}

#[test]
fn insn_len_walks_mixed_code() {
    // c.addi sp,-16; sd ra,8(sp); c.mv a0,a1; a 48-bit prefix.
    let code = [0x41, 0x11, 0x23, 0x34, 0x11, 0x00, 0x2e, 0x85, 0x1f, 0x00];
    let mut at = 0;
    let mut lens = Vec::new();
    while let Some(len) = Riscv64::insn_len(&code[at..]) {
        lens.push(len);
        at += len;
    }
    assert_eq!(lens, [2, 4, 2]);
    assert_eq!(at, 8);
}
