//! Exhaustive sweeps: every 16-bit and every 32-bit word through the
//! decoder (and the slot builder or the simulator for what it accepts).
//! Asserts that nothing panics, that no instruction reading or writing the
//! pc is ever stepped out of line, that only such instructions are
//! simulated, and that each class holds exactly as many encodings as the
//! ISA manual's tables give (counted here by hand from the field widths).
//!
//! Slow in a debug build; run in release:
//! `cargo test -p probe-hal-riscv64 --release -- --ignored`.

use probe_hal::{Arch, DataAccess, ExecMode, Handling, MemoryFault, ProbeErrorKind};
use probe_hal_riscv64::{PtRegs, Riscv64};

struct NoMemory;

impl DataAccess for NoMemory {
    fn read(&self, addr: usize, _: &mut [u8]) -> Result<(), MemoryFault> {
        Err(MemoryFault { addr })
    }
    fn write(&self, addr: usize, _: &[u8]) -> Result<(), MemoryFault> {
        Err(MemoryFault { addr })
    }
}

/// Does the instruction starting with `word` read or write the pc (or
/// trap, which writes it)? Written from the opcode map alone, independent
/// of the decoder's tables: only the major opcode (32-bit) or quadrant,
/// funct3 and rs2 field (16-bit) are looked at, never validity.
fn reads_or_writes_pc(word: u32) -> bool {
    match word & 0b11 {
        // auipc, branch, jalr, jal, and SYSTEM funct3 000 (ecall, ebreak,
        // xret, wfi) or 100 (no RV64GC instruction). The Zicsr accesses
        // (the other funct3 values) never read the pc, but which of them
        // may be stepped is [`stepped_system_is_location_independent`]'s.
        0b11 => {
            matches!(word & 0x7f, 0x17 | 0x63 | 0x67 | 0x6f)
                || (word & 0x7f == 0x73 && (word >> 12) & 0b11 == 0)
        }
        quadrant => {
            let funct3 = (word >> 13) & 0b111;
            match (quadrant, funct3) {
                // c.j, c.beqz, c.bnez.
                (0b01, 0b101..=0b111) => true,
                // c.jr, c.jalr, c.ebreak (rs2 field = 0).
                (0b10, 0b100) => (word >> 2) & 0x1f == 0,
                _ => false,
            }
        }
    }
}

/// A stepped SYSTEM-opcode word must be a Zicsr access whose effect does
/// not depend on where it runs: any form on fflags, frm or fcsr (CSR 1-3),
/// or a read that cannot write (csrrs/csrrc with rs1 = x0, csrrsi/csrrci
/// with uimm = 0; unprivileged manual §9.1) of cycle, time or instret
/// (0xC00-0xC02). Written from the manual, not from the decoder's tables.
fn stepped_system_is_location_independent(word: u32) -> bool {
    let (funct3, rs1, csr) = ((word >> 12) & 7, (word >> 15) & 0x1f, word >> 20);
    let zicsr = matches!(funct3, 1 | 2 | 3 | 5 | 6 | 7);
    let read_only = matches!(funct3, 2 | 3 | 6 | 7) && rs1 == 0;
    zicsr && ((1..=3).contains(&csr) || ((0xc00..=0xc02).contains(&csr) && read_only))
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    step: u64,
    simulate: u64,
    refused: u64,
    undecodable: u64,
}

impl core::ops::Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts {
            step: self.step + o.step,
            simulate: self.simulate + o.simulate,
            refused: self.refused + o.refused,
            undecodable: self.undecodable + o.undecodable,
        }
    }
}

/// Decode `bytes` (its first bytes are `word`) and check the invariants.
fn check(word: u32, bytes: &[u8], counts: &mut Counts) {
    let addr = 0x8020_0002;
    match Riscv64::decode(addr, bytes, ExecMode::Kernel) {
        Ok(insn) => {
            assert_eq!(Riscv64::insn_len(bytes), Some(insn.len), "{word:#010x}");
            match insn.handling {
                Handling::Simulate => {
                    assert!(reads_or_writes_pc(word), "{word:#010x} simulated");
                    let mut regs = PtRegs {
                        epc: addr,
                        ..PtRegs::default()
                    };
                    Riscv64::simulate(&insn, addr, &mut regs, &NoMemory).unwrap();
                    counts.simulate += 1;
                }
                Handling::StepOutOfLine { boostable } => {
                    assert!(!reads_or_writes_pc(word), "{word:#010x} stepped");
                    if word & 0x7f == 0x73 {
                        assert!(
                            stepped_system_is_location_independent(word),
                            "{word:#010x}: a SYSTEM instruction stepped"
                        );
                    }
                    assert!(!boostable);
                    let slot = Riscv64::build_slot(
                        &insn,
                        bytes,
                        addr,
                        0x9000_0000,
                        ExecMode::Kernel,
                        true,
                    )
                    .unwrap();
                    assert_eq!(slot.step_end, Some(insn.len));
                    assert!(slot.len <= Riscv64::SLOT_LEN);
                    counts.step += 1;
                }
            }
        }
        Err(e) => match e.kind() {
            ProbeErrorKind::Refused(r) => {
                assert!(!r.mnemonic.is_empty() && !r.reason.is_empty());
                counts.refused += 1;
            }
            ProbeErrorKind::Undecodable => counts.undecodable += 1,
            other => panic!("{word:#010x}: {other:?}"),
        },
    }
}

fn sweep16() -> Counts {
    let mut counts = Counts::default();
    for half in 0..=u16::MAX {
        let alone = half.to_le_bytes();
        check(u32::from(half), &alone, &mut counts);
        // What follows a 16-bit instruction never changes its decision.
        if half & 0b11 != 0b11 {
            let expected = Riscv64::decode(0x1000, &alone, ExecMode::Kernel);
            for upper in [0x0000u16, 0xffff, 0x0073, 0x9002, half] {
                let word = u32::from(half) | u32::from(upper) << 16;
                let got = Riscv64::decode(0x1000, &word.to_le_bytes(), ExecMode::Kernel);
                assert_eq!(got, expected, "{word:#010x}");
            }
        }
    }
    counts
}

/// Classes of the 16-bit space (quadrants 0-2; quadrant 3 starts longer
/// instructions, undecodable from 2 bytes), from tables 16.5-16.7.
const C_SIMULATE: u64 = 3 * 2048 // c.j, c.beqz, c.bnez: 11 free bits each
    + 2 * 31; // c.jr, c.jalr: rs1 != 0
const C_REFUSED: u64 = 1; // c.ebreak
const C_UNDECODABLE: u64 = 8 // c.addi4spn, nzuimm = 0 (rd' free)
    + 2048 // quadrant 0, funct3 100
    + 64 // c.addiw rd = 0 (6 immediate bits free)
    + 32 // c.lui / c.addi16sp, nzimm = 0 (rd free)
    + 2 * 64 // CA format, bit 12 set, funct2 10/11 (rs1', rs2' free)
    + 2 * 64 // c.lwsp / c.ldsp rd = 0
    + 1 // c.jr x0
    + 16384; // quadrant 3
const C_STEP: u64 = 65536 - C_SIMULATE - C_REFUSED - C_UNDECODABLE;

#[test]
#[ignore = "exhaustive sweep; run with --release -- --ignored"]
fn every_16_bit_word() {
    assert_eq!(
        sweep16(),
        Counts {
            step: C_STEP,
            simulate: C_SIMULATE,
            refused: C_REFUSED,
            undecodable: C_UNDECODABLE,
        }
    );
}

#[test]
#[ignore = "exhaustive sweep of 2^30 words; run with --release -- --ignored"]
fn every_32_bit_word() {
    // Every word whose low two bits are 11 (the other 3 x 2^30 words are
    // 16-bit instructions followed by anything: see every_16_bit_word).
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let total: u64 = 1 << 30;
    let chunk = total.div_ceil(threads);
    let counts = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut counts = Counts::default();
                    let end = ((t + 1) * chunk).min(total);
                    for i in (t * chunk)..end {
                        let word = (i as u32) << 2 | 0b11;
                        check(word, &word.to_le_bytes(), &mut counts);
                    }
                    counts
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold(Counts::default(), |a, b| a + b)
    });

    const M: u64 = 1 << 22; // one funct3 value of one major opcode
    let simulate = 2 * (1 << 25) // jal, auipc
        + M // jalr (funct3 000)
        + 6 * M; // the branches
                 // SYSTEM steps: the FP CSRs (3 CSRs x 6 forms, rd and rs1 free) and
                 // the counter reads (3 CSRs x 4 read-only forms, rd free).
    let system_step = 3 * 6 * (1 << 10) + 3 * 4 * (1 << 5);
    let refused = (1 << 25) - system_step // the rest of SYSTEM
        + 2 * (1 << 12) // lr.w/lr.d: aq, rl, rs1, rd free
        + 2 * (1 << 17); // sc.w/sc.d: aq, rl, rs2, rs1, rd free
    let rm = 6; // valid rounding modes of 8
    let step = system_step
        + (1 << 8) // fence: fm, rs1, rd zero, pred and succ free (pause among them)
        + 2 // fence.tso, fence.i
        + 7 * M // LOAD
        + 2 * M // LOAD-FP: flw, fld
        + 6 * M + 3 * (1 << 16) // OP-IMM; slli/srli/srai with imm[11:6] fixed
        + (1 << 25) // LUI
        + M + 3 * (1 << 15) // OP-IMM-32; slliw/srliw/sraiw with funct7 fixed
        + 4 * M // STORE
        + 2 * M // STORE-FP
        + 18 * (1 << 17) // 9 AMOs x 2 widths
        + 18 * (1 << 15) // OP: 10 base + 8 M
        + 10 * (1 << 15) // OP-32: 5 base + 5 M
        + 4 * 2 * rm * (1 << 20) // fused multiply-adds, S and D
        + 8 * rm * (1 << 15) // fadd/fsub/fmul/fdiv .s/.d
        + 20 * rm * (1 << 10) // fsqrt, fcvt int<->fp, fcvt.s.d, fcvt.d.s
        + 16 * (1 << 15) // fsgnj*, fmin/fmax, feq/flt/fle
        + 6 * (1 << 10); // fmv.x.w, fmv.w.x, fclass.s, and the .d ones
                         // The rest, among them the 2^27 words with low five bits 11111
                         // (48-bit and longer encodings).
    let undecodable = (1 << 30) - simulate - refused - step;
    assert!(undecodable > 1 << 27);
    assert_eq!(
        counts,
        Counts {
            step,
            simulate,
            refused,
            undecodable,
        }
    );
}
