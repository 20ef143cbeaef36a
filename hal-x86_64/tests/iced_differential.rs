//! hal-x86_64's decoder against `iced-x86` (test-only oracle), through the
//! harness in `iced_oracle`.
//!
//! - `iced_differential_small`: ~10^5 mixed strings, in every `cargo test`;
//! - `iced_differential_sweep` (ignored): 10^8 mixed strings, run in release
//!   by `cargo xtask test decoder-sweeps`;
//! - `iced_every_vex_evex_map` (ignored) and its small variant: every VEX
//!   and EVEX map and opcode with random operands.
//!
//! Each fails on any unsafe disagreement (length, control flow or
//! rip-relative operand of an instruction we accept), and prints the counts.

mod iced_oracle;

use iced_oracle::{
    generate, hex, mixed, sweep, threads, Class, Family, Form, Kind, Rng, Tally, ANY_MAP,
};

/// The VEX classes of the opmask instructions.
fn is_opmask(c: &Class) -> bool {
    matches!(c.form, Form::Vex2 | Form::Vex3)
        && match c.map {
            1 => matches!(c.opcode, 0x41..=0x4b | 0x90..=0x93 | 0x98 | 0x99),
            3 => matches!(c.opcode, 0x30..=0x33),
            _ => false,
        }
}

/// No unsafe disagreement, and no opmask encoding that iced accepts and we
/// refuse (the fallback leaves no gap in VEX map 0f 41-4b, 90-93, 98-99
/// and 0f3a 30-33).
fn check(tally: &Tally, what: &str) {
    println!("== {what}\n{}", tally.report(40));
    assert_eq!(
        tally.unsafe_count(),
        0,
        "{what}: unsafe disagreements with iced:\n{}",
        tally.report(0)
    );
    let opmask_gaps: Vec<_> = tally
        .classes_of(Kind::Gap)
        .into_iter()
        .chain(tally.classes_of(Kind::GapDecodeOnly))
        .filter(|(c, _)| is_opmask(c))
        .map(|(c, e)| (c.describe(), hex(&e.example)))
        .collect();
    assert!(
        opmask_gaps.is_empty(),
        "{what}: opmask gaps: {opmask_gaps:#?}"
    );
}

#[test]
fn iced_differential_small() {
    let t = sweep(100_000, 1, threads(2), mixed);
    check(&t, "mixed, 10^5 strings");
    // The sweep must reach real instructions of every kind, or it tests
    // nothing.
    assert!(t.both > t.strings / 4, "only {} accepted by both", t.both);
    assert!(
        t.rip_fixups > t.strings / 50,
        "only {} rip fix-ups",
        t.rip_fixups
    );
}

#[test]
#[ignore = "10^8 strings: run in release with --ignored (xtask decoder-sweeps)"]
fn iced_differential_sweep() {
    let start = std::time::Instant::now();
    let n = 100_000_000;
    let t = sweep(n, 0x1ced, threads(2), mixed);
    println!(
        "{} strings in {:.1} s",
        t.strings,
        start.elapsed().as_secs_f64()
    );
    check(&t, "mixed, 10^8 strings");
    assert_eq!(t.strings, n);
}

/// Every (form, map, opcode) of VEX and EVEX with `per_opcode` random
/// operand strings each.
fn every_vex_evex_map(per_opcode: u64) -> Tally {
    let mut total = Tally::default();
    // Per opcode: c5 (map 0f), c4 with the maps 0f/0f38/0f3a and with a
    // random other map field, EVEX with maps 1, 2, 3, 5, 6 and a random
    // map field.
    let mut families = Vec::new();
    for opcode in 0..=255u8 {
        for map in [0, 1, 2, 3, ANY_MAP] {
            families.push(Family::VexOperands { map, opcode });
        }
        for map in [1, 2, 3, 5, 6, ANY_MAP] {
            families.push(Family::EvexOperands { map, opcode });
        }
    }
    let families = &families;
    let t = sweep(
        families.len() as u64 * per_opcode,
        0xe7e,
        threads(2),
        |rng: &mut Rng, buf: &mut Vec<u8>| {
            let f = families[rng.below(families.len() as u32) as usize];
            generate(rng, f, buf)
        },
    );
    total.merge(t);
    total
}

#[test]
fn iced_every_vex_evex_map_small() {
    let t = every_vex_evex_map(8);
    check(&t, "every VEX/EVEX map and opcode, 8 strings each");
}

#[test]
#[ignore = "every VEX/EVEX opcode with 4,000 operand strings: run in release with --ignored"]
fn iced_every_vex_evex_map() {
    let t = every_vex_evex_map(4_000);
    check(&t, "every VEX/EVEX map and opcode, 4,000 strings each");
}
