//! Every one of the 2^32 instruction words through the decoder.
//!
//! Run it (once, in release) with
//! `cargo test -p probe-hal-loongarch64 --release -- --ignored sweep`.
//!
//! The pc test below is written from the opcode map of the LoongArch
//! Reference Manual (vol. 1, appendix B) on its own, not from the decoder's
//! tables, so the sweep checks the tables against a second reading.

use std::sync::atomic::{AtomicU64, Ordering};

use probe_hal::{Arch, ExecMode, Handling, ProbeErrorKind};
use probe_hal_loongarch64::LoongArch64;

/// The word reads or writes the pc: a branch or jump (major opcodes
/// 0x10-0x1b: `beqz`, `bnez`, `bceqz`/`bcnez`/`jiscr*`, `jirl`, `b`, `bl`,
/// `beq`, `bne`, `blt`, `bge`, `bltu`, `bgeu`), pc-relative arithmetic
/// (bits [31:27] = 0b00011: `pcaddi`, `pcalau12i`, `pcaddu12i`,
/// `pcaddu18i`), an instruction whose exception records the pc (`break`,
/// `dbcl`, `syscall`, `hvcl`: 0x002a_0000-0x002b_ffff), or `ertn`.
fn touches_pc(w: u32) -> bool {
    (0x10..=0x1b).contains(&(w >> 26))
        || w >> 27 == 0b00011
        || w >> 17 == 0x002a_0000 >> 17
        || w == 0x0648_3800
}

/// Every encoding of these major opcodes is a valid branch, and every
/// encoding with bits [31:27] = 0b00011 a valid pc-relative add: all must be
/// simulated. (Major opcode 0x12, the `$fcc` branches, is refused.)
fn must_simulate(w: u32) -> bool {
    let op = w >> 26;
    ((0x10..=0x1b).contains(&op) && op != 0x12) || w >> 27 == 0b00011
}

/// The opcode regions vol. 1 appendix B gives the LSX/LASX instructions:
/// fused multiply-add (`0x09`, `0x0a`), compares (`0x0c5`, `0x0c6`, `0x0c9`,
/// `0x0ca`), select and shuffle (`0x0d1`, `0x0d2`, `0x0d5`, `0x0d6`), loads
/// and stores (`0x2c`), replicating loads and element stores (`0x30`-
/// `0x33`), indexed loads and stores (`0x384`), and the register
/// operations (`0x70`-`0x7f`).
fn vector_region(w: u32) -> bool {
    matches!(w >> 24, 0x09 | 0x0a | 0x2c)
        || matches!(
            w >> 20,
            0x0c5 | 0x0c6 | 0x0c9 | 0x0ca | 0x0d1 | 0x0d2 | 0x0d5 | 0x0d6 | 0x384
        )
        || w >> 26 == 0x0c
        || w >> 28 == 0x7
}

/// Words in [`vector_region`] that are LSX/LASX instructions: the sum of
/// 2^(free bits) over the 1,451 encodings of binutils' `lsx`/`lasx`
/// tables (66,772,480 of them LASX), computed apart from the decoder.
const VECTOR_WORDS: u64 = 125_128_704;

#[derive(Default)]
struct Counts {
    step: AtomicU64,
    simulate: AtomicU64,
    refused: AtomicU64,
    undecodable: AtomicU64,
    vector_step: AtomicU64,
    vector_refused: AtomicU64,
}

#[test]
#[ignore = "2^32 words: run in release with --ignored sweep"]
fn sweep_all_words() {
    let counts = Counts::default();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let span = (1u64 << 32) / threads;
    std::thread::scope(|s| {
        for t in 0..threads {
            let counts = &counts;
            s.spawn(move || {
                let (lo, hi) = (t * span, if t + 1 == threads { 1 << 32 } else { (t + 1) * span });
                let (mut step, mut simulate, mut refused, mut undecodable) = (0, 0, 0, 0);
                let (mut vector_step, mut vector_refused) = (0, 0);
                for w in lo..hi {
                    let w = w as u32;
                    match LoongArch64::decode(0x9000_0000_0000_1000, &w.to_le_bytes(), ExecMode::Kernel) {
                        Ok(d) => match d.handling {
                            Handling::StepOutOfLine { boostable } => {
                                assert!(!touches_pc(w), "{w:#010x} ({}) touches the pc but is stepped", d.insn.mnemonic);
                                assert!(!must_simulate(w), "{w:#010x} must be simulated");
                                assert!(!boostable);
                                assert_eq!(d.len, 4);
                                step += 1;
                                if vector_region(w) {
                                    vector_step += 1;
                                }
                            }
                            Handling::Simulate => {
                                assert!(must_simulate(w), "{w:#010x} ({}) is simulated but is no branch or pc-relative add", d.insn.mnemonic);
                                simulate += 1;
                            }
                        },
                        Err(e) => {
                            assert!(!must_simulate(w), "{w:#010x} must be simulated, got: {e}");
                            match e.kind() {
                                ProbeErrorKind::Refused(_) => {
                                    refused += 1;
                                    if vector_region(w) {
                                        vector_refused += 1;
                                    }
                                }
                                ProbeErrorKind::Undecodable => undecodable += 1,
                                other => panic!("{w:#010x}: unexpected error {other}"),
                            }
                        }
                    }
                }
                counts.step.fetch_add(step, Ordering::Relaxed);
                counts.simulate.fetch_add(simulate, Ordering::Relaxed);
                counts.refused.fetch_add(refused, Ordering::Relaxed);
                counts.undecodable.fetch_add(undecodable, Ordering::Relaxed);
                counts.vector_step.fetch_add(vector_step, Ordering::Relaxed);
                counts.vector_refused.fetch_add(vector_refused, Ordering::Relaxed);
            });
        }
    });
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (step, simulate, refused, undecodable) = (
        c(&counts.step),
        c(&counts.simulate),
        c(&counts.refused),
        c(&counts.undecodable),
    );
    println!("stepped {step}, simulated {simulate}, refused {refused}, undecodable {undecodable}");
    assert_eq!(step + simulate + refused + undecodable, 1 << 32);
    // Simulated: 11 branch major opcodes (2^26 words each) and 4 pc-relative
    // opcodes (2^25 words each).
    assert_eq!(simulate, 11 * (1 << 26) + 4 * (1 << 25));
    // Every LSX/LASX instruction is stepped (none reads the pc, checked
    // above), and nothing in their regions is refused: the rest is
    // undecodable.
    let (vector_step, vector_refused) = (c(&counts.vector_step), c(&counts.vector_refused));
    println!("vector regions: stepped {vector_step}, refused {vector_refused}");
    assert_eq!(vector_step, VECTOR_WORDS);
    assert_eq!(vector_refused, 0);
}
