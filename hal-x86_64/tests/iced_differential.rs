//! probe-hal-x86_64's decoder against `iced-x86` (test-only oracle), through the
//! harness in `iced_oracle`.
//!
//! - `iced_differential_small`: ~10^5 mixed strings, in every `cargo test`;
//! - `iced_differential_sweep` (ignored): 10^8 mixed strings, run in release
//!   by `cargo xtask test decoder-sweeps`;
//! - `iced_every_vex_evex_map` (ignored) and its small variant: every VEX
//!   and EVEX map and opcode with random operands;
//! - `gap_reproducers_in_docs_hold`: the reproducers of
//!   docs/x86-decoder-gaps.md still show what the document says.
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
    assert!(
        t.mem_branches >= 10,
        "only {} call/jmp [mem] simulated",
        t.mem_branches
    );
}

/// `call`/`jmp` through memory, every addressing form: ff /2 and /4 (and
/// the far /3, /5 beside them) after random prefixes (REX, 0x67, segment
/// overrides, 0x66), with random ModRM, SIB and displacement bytes. Each
/// simulated one must read the address iced computes.
#[test]
fn iced_calls_and_jumps_through_memory() {
    let t = sweep(
        200_000,
        0xff24,
        threads(2),
        |rng: &mut Rng, buf: &mut Vec<u8>| {
            buf.clear();
            for _ in 0..rng.below(3) {
                buf.push(rng.pick(&[0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf2, 0xf3]));
            }
            if rng.chance(1, 2) {
                buf.push(0x40 | (rng.byte() & 0xf));
            }
            buf.push(0xff);
            let reg = rng.pick(&[2u8, 4, 2, 4, 3, 5]);
            buf.push((rng.byte() & 0xc7) | (reg << 3));
            let mut tail = [0u8; 10];
            rng.fill(&mut tail);
            buf.extend_from_slice(&tail);
        },
    );
    check(&t, "ff /2 - /5 with random operands");
    assert!(
        t.mem_branches > t.strings / 3,
        "only {} of {} simulated",
        t.mem_branches,
        t.strings
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

/// The reproducer tables of docs/x86-decoder-gaps.md: each row's bytes are
/// exactly one instruction for iced (or invalid for iced), yaxpeax-x86
/// disagrees, and our decoder does what the row says.
#[test]
fn gap_reproducers_in_docs_hold() {
    use iced_x86::DecoderOptions;
    use probe_hal::{Arch, ExecMode, ProbeErrorKind};

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/x86-decoder-gaps.md");
    let text = std::fs::read_to_string(path).expect("docs/x86-decoder-gaps.md");
    let mut rows = 0;
    for (begin, end) in [
        ("<!-- reproducers:begin -->", "<!-- reproducers:end -->"),
        ("<!-- accepted-ud:begin -->", "<!-- accepted-ud:end -->"),
    ] {
        let start = text.find(begin).expect(begin) + begin.len();
        let stop = text[start..].find(end).expect(end) + start;
        for line in text[start..stop].lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 5 || !cells[2].starts_with('`') {
                continue;
            }
            let what = cells[1];
            let bytes: Vec<u8> = cells[2]
                .trim_matches('`')
                .split(' ')
                .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
                .collect();
            let (mnemonic, ours) = (cells[3], cells[4]);
            let yax = yaxpeax_x86::long_mode::InstDecoder::default();
            let ic = iced_oracle::iced(&bytes, DecoderOptions::NONE);
            let ours_len = probe_hal_x86_64::X86_64::insn_len(&bytes);
            let decoded = probe_hal_x86_64::X86_64::decode(0x1000, &bytes, ExecMode::Kernel);
            match ours {
                "accepted-ud" => {
                    assert!(ic.insn.is_invalid(), "{what}: iced decodes it");
                    assert_eq!(ours_len, Some(bytes.len()), "{what}");
                    assert!(yax.decode_slice(&bytes).is_ok(), "{what}");
                }
                "stepped" | "refused" => {
                    assert_eq!(format!("{:?}", ic.insn.mnemonic()), mnemonic, "{what}");
                    assert_eq!(ic.insn.len(), bytes.len(), "{what}: iced length");
                    assert!(
                        yax.decode_slice(&bytes).is_err(),
                        "{what}: yaxpeax decodes it now"
                    );
                    if ours == "stepped" {
                        assert_eq!(ours_len, Some(bytes.len()), "{what}");
                        let d = decoded.unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert!(
                            matches!(d.insn.op(), probe_hal_x86_64::Op::Step(_)),
                            "{what}"
                        );
                    } else {
                        assert_eq!(ours_len, None, "{what}");
                        let e = decoded.expect_err(what);
                        assert_eq!(e.kind(), ProbeErrorKind::Undecodable, "{what}");
                    }
                }
                other => panic!("{what}: unknown verdict {other}"),
            }
            // And the harness agrees: no unsafe kind for any of them.
            let v = iced_oracle::compare(&bytes);
            assert!(!v.kind.is_some_and(|k| k.is_unsafe()), "{what}: {v:?}");
            rows += 1;
        }
    }
    assert!(rows >= 50, "only {rows} reproducer rows");
}
