//! Every one of the 2^32 instruction words through the decoder.
//!
//! Run it (once, in release) with
//! `cargo test -p probe-hal-aarch64 --release -- --ignored sweep`.
//!
//! The pc test below is written from the top-level encoding tables of the
//! Arm ARM (C4.1) on their own, not from the decoder's tables, so the sweep
//! checks the tables against a second reading.

use std::sync::atomic::{AtomicU64, Ordering};

use probe_hal::{Arch, ExecMode, Handling, ProbeErrorKind};
use probe_hal_aarch64::Aarch64;

/// The word reads or writes the pc: an immediate branch (`b`, `bl`,
/// `cbz`/`cbnz`, `tbz`/`tbnz`, `b.cond` and its neighbours), a register
/// branch or exception return (bits \[31:25\] = 1101011), an
/// exception-generating instruction (its exception records the pc), a
/// pc-relative address (`adr`, `adrp`) or a literal load of any kind.
fn touches_pc(w: u32) -> bool {
    w & 0x7c00_0000 == 0x1400_0000 // b, bl
        || w & 0x7c00_0000 == 0x3400_0000 // cbz, cbnz, tbz, tbnz
        || w & 0xfe00_0000 == 0x5400_0000 // b.cond, bc.cond
        || w & 0xfe00_0000 == 0xd600_0000 // br, blr, ret, eret, pac branches
        || w & 0xff00_0000 == 0xd400_0000 // svc, hvc, smc, brk, hlt, dcps
        || w & 0x1f00_0000 == 0x1000_0000 // adr, adrp
        || w & 0x3b00_0000 == 0x1800_0000 // ldr/ldrsw/prfm literal, SIMD&FP too
}

/// Words that must be simulated: every encoding of these opcodes is one of
/// Linux's simulated instructions (plus `prfm` literal).
fn must_simulate(w: u32) -> bool {
    w & 0x7c00_0000 == 0x1400_0000
        || w & 0x7c00_0000 == 0x3400_0000
        || w & 0xff00_0000 == 0x5400_0000
        || matches!(w & 0xffff_fc1f, 0xd61f_0000 | 0xd63f_0000 | 0xd65f_0000)
        || w & 0x1f00_0000 == 0x1000_0000
        || matches!(
            w & 0xff00_0000,
            0x1800_0000 | 0x5800_0000 | 0x9800_0000 | 0xd800_0000
        )
}

#[derive(Default)]
struct Counts {
    step: AtomicU64,
    simulate: AtomicU64,
    refused: AtomicU64,
    undecodable: AtomicU64,
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
                for w in lo..hi {
                    let w = w as u32;
                    match Aarch64::decode(0xffff_8000_1000_0000, &w.to_le_bytes(), ExecMode::Kernel) {
                        Ok(d) => match d.handling {
                            Handling::StepOutOfLine { boostable } => {
                                assert!(!touches_pc(w), "{w:#010x} ({}) touches the pc but is stepped", d.insn.mnemonic);
                                assert!(!boostable);
                                step += 1;
                            }
                            Handling::Simulate => {
                                assert!(must_simulate(w), "{w:#010x} ({}) is simulated but is no branch or pc-relative instruction", d.insn.mnemonic);
                                simulate += 1;
                            }
                        },
                        Err(e) => {
                            assert!(!must_simulate(w), "{w:#010x} must be simulated, got: {e}");
                            match e.kind() {
                                ProbeErrorKind::Refused(_) => refused += 1,
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
    // b/bl (2 x 2^26), cbz/cbnz/tbz/tbnz (8 x 2^24), b.cond/bc.cond (2^24),
    // adr/adrp (2 x 2^26), the four integer literal loads (4 x 2^24) and
    // br/blr/ret (3 x 32 registers).
    assert_eq!(simulate, (1 << 27) + (1 << 27) + 13 * (1 << 24) + 96);
}
