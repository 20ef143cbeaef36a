//! Cross-check against an independent disassembler: GNU objdump from
//! `binutils-aarch64-linux-gnu` (binutils 2.40 on Debian 12).
//!
//! About 1.3 million words (every value of the top 12 bits with 64
//! pseudo-random fillings, every hint number, every `mrs` of op0 = 3 with
//! op1 in 0..8, 1,024 words of every stepped SVE and SME row, and 1 million
//! pseudo-random words) are written to a file
//! and disassembled with `aarch64-linux-gnu-objdump -D -b binary -m aarch64
//! -M no-aliases`. For each word:
//! 1. objdump's mnemonic is a branch, `adr`/`adrp` or an integer literal
//!    load ⇔ we simulate it;
//! 2. we step it ⇒ objdump's mnemonic is none of the pc-reading or
//!    pc-writing ones, nor an exception generator, exception return,
//!    `msr`, exclusive or one of the refused hints;
//! 3. objdump's mnemonic is one Linux refuses (exception generation,
//!    `eret*`, `msr`, exclusives, `aut*`, PAC branches, `mrs` of DAIF, hints
//!    outside the steppable list) ⇒ we refuse it;
//! 4. objdump calls it undefined (`.inst`) ⇒ we refuse it, except for the
//!    documented disagreements of [`STEPPED_UNDEFINED`] (encodings newer
//!    than binutils 2.40, and CONSTRAINED UNPREDICTABLE register choices
//!    binutils rejects), which are counted and printed by reason;
//! 5. objdump knows it and we call it undecodable ⇒ it is listed in
//!    [`KNOWN_UNDECODED`] with the reason.
//!
//! `AARCH64_OBJDUMP_RANDOM=<count>[,<seed>]` changes the random part.
//! Fails (does not skip) when objdump is missing. Override the tool with
//! `AARCH64_OBJDUMP=/path/to/objdump`.

use std::collections::BTreeMap;
use std::process::Command;

use probe_hal_aarch64::decode::{decode_word, for_each_row, Action, Op, Verdict};

/// objdump mnemonics (with `-M no-aliases`) of instructions we simulate;
/// `b.<cond>` and `bc.<cond>` are matched by prefix, literal loads by
/// their operand.
const SIMULATED: &[&str] = &[
    "b", "bl", "cbz", "cbnz", "tbz", "tbnz", "br", "blr", "ret", "adr", "adrp",
];

/// objdump mnemonics we must refuse (or call undecodable).
const MUST_REFUSE: &[&str] = &[
    "svc",
    "hvc",
    "smc",
    "brk",
    "hlt",
    "dcps1",
    "dcps2",
    "dcps3",
    "tcancel",
    "eret",
    "eretaa",
    "eretab",
    "drps",
    "msr",
    "yield",
    "wfe",
    "wfi",
    "sev",
    "sevl",
    "wfet",
    "wfit",
    "autia1716",
    "autib1716",
    "autiaz",
    "autiasp",
    "autibz",
    "autibsp",
    "retaa",
    "retab",
    "braa",
    "brab",
    "blraa",
    "blrab",
    "braaz",
    "brabz",
    "blraaz",
    "blrabz",
    "ldxr",
    "ldxrb",
    "ldxrh",
    "ldaxr",
    "ldaxrb",
    "ldaxrh",
    "stxr",
    "stxrb",
    "stxrh",
    "stlxr",
    "stlxrb",
    "stlxrh",
    "ldxp",
    "ldaxp",
    "stxp",
    "stlxp",
    "udf",
];

/// Words objdump disassembles and we refuse as undecodable, on purpose,
/// by objdump mnemonic prefix.
const KNOWN_UNDECODED: &[(&str, &str)] = &[
    ("hint", "unallocated hint numbers are refused (Linux: not steppable hints)"),
    ("tstart", "FEAT_TME (withdrawn): not decoded"),
    ("ttest", "FEAT_TME (withdrawn): not decoded"),
    ("tcommit", "FEAT_TME (withdrawn): not decoded"),
    ("mrs s0_*", "op0 = 0 outside hints, barriers and PSTATE is unallocated; objdump prints a generic register"),
    ("msr s0_*", "op0 = 0 outside hints, barriers and PSTATE is unallocated; objdump prints a generic register"),
    ("cfinv", "msr-immediate class (Linux refuses the whole PSTATE group)"),
    ("xaflag", "msr-immediate class (Linux refuses the whole PSTATE group)"),
    ("axflag", "msr-immediate class (Linux refuses the whole PSTATE group)"),
];

/// Words we step although objdump 2.40 calls them undefined, by the
/// decoder's row (mnemonic), with the reason. Every such word must be
/// covered here: the architecture allocates it and binutils 2.40 does not
/// know it yet, or the Arm ARM makes it CONSTRAINED UNPREDICTABLE (not
/// UNDEFINED) where binutils rejects it ([`constrained_unpredictable`]
/// checks those words one by one).
const STEPPED_UNDEFINED: &[(&str, &str)] = &[
    ("addpt/subpt", "FEAT_CPA (Armv9.5): not in binutils 2.40"),
    ("maddpt/msubpt", "FEAT_CPA (Armv9.5): not in binutils 2.40"),
    ("ldap1/stl1 (SIMD&FP)", "FEAT_LRCPC3 (Armv8.9): not in binutils 2.40"),
    ("ldapur/stlur (SIMD&FP)", "FEAT_LRCPC3 (Armv8.9): not in binutils 2.40"),
    ("ldiapp/stilp", "FEAT_LRCPC3 (Armv8.9): not in binutils 2.40"),
    ("ldapr/stlr (writeback)", "FEAT_LRCPC3 (Armv8.9): not in binutils 2.40"),
    ("ldclrp/ldsetp", "FEAT_LSE128 (Armv9.4): not in binutils 2.40"),
    ("swpp", "FEAT_LSE128 (Armv9.4): not in binutils 2.40"),
    ("gcsstr/gcssttr", "FEAT_GCS (Armv9.4): not in binutils 2.40"),
    ("rcwcas/rcwcasp", "FEAT_THE (Armv8.9): not in binutils 2.40"),
    ("rcwclr", "FEAT_THE (Armv8.9): not in binutils 2.40"),
    ("rcwswp/rcwset", "FEAT_THE (Armv8.9): not in binutils 2.40"),
    (
        "stllr/stlr/ldlar/ldar",
        "Rs or Rt2 not all ones (\"should be one\"): CONSTRAINED UNPREDICTABLE; binutils rejects some",
    ),
    (
        "cpy*/set*",
        "two of Rd, Rs, Rn the same register: CONSTRAINED UNPREDICTABLE; binutils rejects them",
    ),
    (
        "stp/ldp/stgp/ldpsw",
        "writeback with Rn = Rt or Rt2, or a load with Rt = Rt2: CONSTRAINED UNPREDICTABLE; binutils rejects them",
    ),
];

/// The word is one of the CONSTRAINED UNPREDICTABLE cases of
/// [`STEPPED_UNDEFINED`] for the row `mnemonic` (the feature rows need no
/// check: the whole row is newer than binutils 2.40).
fn constrained_unpredictable(mnemonic: &str, w: u32) -> bool {
    let (rt, rn, r16, rt2) = (w & 31, (w >> 5) & 31, (w >> 16) & 31, (w >> 10) & 31);
    match mnemonic {
        "stllr/stlr/ldlar/ldar" => r16 != 31 || rt2 != 31,
        "cpy*/set*" => rt == rn || rt == r16 || rn == r16,
        "stp/ldp/stgp/ldpsw" => {
            let writeback = (w >> 23) & 1 == 1;
            let load = (w >> 22) & 1 == 1;
            (writeback && rn != 31 && (rn == rt || rn == rt2)) || (load && rt == rt2)
        }
        _ => true,
    }
}

/// objdump's view of one word.
#[derive(Debug)]
struct Theirs {
    mnemonic: String,
    operands: String,
}

impl Theirs {
    fn unknown(&self) -> bool {
        self.mnemonic.starts_with('.')
    }
    fn literal(&self) -> bool {
        matches!(self.mnemonic.as_str(), "ldr" | "ldrsw" | "prfm") && !self.operands.contains('[')
    }
    fn simd_register(&self) -> bool {
        matches!(self.operands.chars().next(), Some('s' | 'd' | 'q'))
    }
    fn sve_operand(&self) -> bool {
        matches!(self.operands.chars().next(), Some('z' | 'p'))
    }
    fn must_simulate(&self) -> bool {
        (SIMULATED.contains(&self.mnemonic.as_str()) && !self.sve_operand())
            || self.mnemonic.starts_with("b.")
            || self.mnemonic.starts_with("bc.")
            || (self.literal() && !self.simd_register())
    }
    fn must_refuse(&self) -> bool {
        let m = self.mnemonic.as_str();
        let sysreg = self.operands.to_ascii_lowercase();
        MUST_REFUSE.contains(&m)
            || (self.literal() && self.simd_register())
            || (m == "mrs"
                && ["daif", "elr_el", "spsr_el", "esr_el", "far_el"]
                    .iter()
                    .any(|r| sysreg.contains(&format!(", {r}"))))
    }
    fn touches_pc(&self) -> bool {
        self.must_simulate()
            || self.literal()
            || [
                "svc", "hvc", "smc", "brk", "hlt", "eret", "eretaa", "eretab", "drps",
            ]
            .contains(&self.mnemonic.as_str())
            || self.mnemonic.starts_with("bra")
            || self.mnemonic.starts_with("blra")
            || self.mnemonic.starts_with("reta")
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

fn sample() -> Vec<u32> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut words = Vec::new();
    for top in 0..1u32 << 12 {
        for _ in 0..64 {
            words.push(top << 20 | (rng.next() & 0xf_ffff));
        }
    }
    for hint in 0..128u32 {
        words.push(0xd503_201f | hint << 5);
    }
    for sysreg in 0..1u32 << 14 {
        // mrs x0, S3_<op1>_C<n>_C<m>_<op2>
        words.push(0xd538_0000 | sysreg << 5);
    }
    // Every stepped row of the SVE group (op0 = 0010) and of SME (bit 31
    // set, op0 = 0000), densely: a random sample reaches their narrow
    // classes too rarely.
    for_each_row(&mut |e| {
        let sve = e.mask & 0x1e00_0000 == 0x1e00_0000 && e.bits & 0x1e00_0000 == 0x0400_0000;
        let sme = e.mask & 0x9e00_0000 == 0x9e00_0000 && e.bits & 0x9e00_0000 == 0x8000_0000;
        if e.action == Action::Step && (sve || sme) {
            for _ in 0..1024 {
                words.push(e.bits | (rng.next() & !e.mask));
            }
        }
    });
    // `AARCH64_OBJDUMP_RANDOM=<count>[,<seed>]` draws a different random
    // part (for a one-off deeper run).
    let (count, seed) = std::env::var("AARCH64_OBJDUMP_RANDOM").map_or((1_000_000, 0), |v| {
        let mut it = v
            .split(',')
            .map(|x| x.trim().parse::<u64>().expect("a number"));
        (it.next().unwrap_or(1_000_000), it.next().unwrap_or(0))
    });
    if seed != 0 {
        rng = Rng(seed | 1);
    }
    for _ in 0..count {
        words.push(rng.next());
    }
    words
}

fn objdump() -> String {
    std::env::var("AARCH64_OBJDUMP").unwrap_or_else(|_| "aarch64-linux-gnu-objdump".into())
}

#[test]
#[ignore = "needs aarch64-linux-gnu-objdump; run by `cargo xtask` or with --ignored"]
fn agrees_with_gnu_objdump() {
    let tool = objdump();
    let version = Command::new(&tool).arg("--version").output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{tool}` ({e}): install it with `apt-get install -y binutils-aarch64-linux-gnu` \
             or point AARCH64_OBJDUMP at an aarch64 objdump"
        )
    });
    assert!(version.status.success(), "`{tool} --version` failed");

    let words = sample();
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("aarch64-sample.bin");
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new(&tool)
        .args([
            "-D",
            "-z",
            "-b",
            "binary",
            "-m",
            "aarch64",
            "-M",
            "no-aliases",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);

    // "   4a:\t14000008 \tb\t20 <.data+0x20>"
    let mut theirs = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (Some(addr), Some(_raw), Some(mnemonic)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some(addr) = addr.trim().strip_suffix(':') else {
            continue;
        };
        let Ok(addr) = usize::from_str_radix(addr, 16) else {
            continue;
        };
        let operands = fields.next().unwrap_or("").trim().to_string();
        theirs.insert(
            addr / 4,
            Theirs {
                mnemonic: mnemonic.trim().to_string(),
                operands,
            },
        );
    }
    assert_eq!(
        theirs.len(),
        words.len(),
        "objdump output does not cover every word"
    );

    let mut errors = Vec::new();
    let mut stepped_unknown = BTreeMap::<&str, u64>::new();
    let mut undecoded_known = BTreeMap::<String, u64>::new();
    let (mut simulated, mut stepped, mut refused, mut undecodable) = (0u64, 0u64, 0u64, 0u64);
    for (i, &w) in words.iter().enumerate() {
        let t = &theirs[&i];
        let ours = decode_word(w);
        let err = |why: &str| {
            format!(
                "{w:#010x}: objdump `{} {}`, ours {ours:?}: {why}",
                t.mnemonic, t.operands
            )
        };
        match ours {
            Verdict::Accept(insn) => match insn.op {
                Op::Simulate(_) => {
                    simulated += 1;
                    if !t.must_simulate() {
                        errors.push(err(
                            "simulated but objdump shows no pc-relative instruction",
                        ));
                    }
                }
                Op::Step => {
                    stepped += 1;
                    if t.touches_pc() || t.must_simulate() {
                        errors.push(err("stepped but it reads or writes the pc"));
                    }
                    if t.must_refuse() {
                        errors.push(err("stepped but Linux's rules refuse it"));
                    }
                    if t.unknown() {
                        match STEPPED_UNDEFINED.iter().find(|(m, _)| *m == insn.mnemonic) {
                            Some((m, why)) if constrained_unpredictable(m, w) => {
                                *stepped_unknown.entry(why).or_default() += 1;
                            }
                            _ => errors.push(err("stepped but objdump calls it undefined")),
                        }
                    }
                }
            },
            Verdict::Refuse(_) | Verdict::Undecodable => {
                if matches!(ours, Verdict::Refuse(_)) {
                    refused += 1;
                } else {
                    undecodable += 1;
                    if !t.unknown() {
                        let key = if t.operands.contains("s0_") {
                            format!("{} s0_*", t.mnemonic)
                        } else {
                            t.mnemonic.clone()
                        };
                        *undecoded_known.entry(key).or_default() += 1;
                    }
                }
                if t.must_simulate() {
                    errors.push(err("objdump shows a simulated instruction"));
                }
            }
        }
    }
    println!(
        "{} words: simulated {simulated}, stepped {stepped}, refused {refused}, undecodable {undecodable}",
        words.len()
    );
    println!(
        "stepped although objdump calls them undefined: {} (the documented disagreements)",
        stepped_unknown.values().sum::<u64>()
    );
    for (why, n) in &stepped_unknown {
        println!("{n:8} x {why}");
    }
    println!("undecodable although objdump knows them: {undecoded_known:?}");

    for m in undecoded_known.keys() {
        if !KNOWN_UNDECODED.iter().any(|(p, _)| m.starts_with(p)) {
            errors.push(format!("objdump knows `{m}`, which we call undecodable"));
        }
    }
    let mut kinds = BTreeMap::<String, (u64, String)>::new();
    for e in &errors {
        let key = e.split_once(": ").map_or(e.as_str(), |(_, k)| k);
        let key = key
            .split(", ours")
            .next()
            .unwrap_or(key)
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string()
            + " / "
            + e.rsplit(": ").next().unwrap_or("");
        let k = kinds.entry(key).or_insert((0, e.clone()));
        k.0 += 1;
    }
    for (k, (n, example)) in &kinds {
        println!("{n:6} x {k}\n         e.g. {example}");
    }
    assert!(errors.is_empty(), "{} disagreements", errors.len());
}

/// Every instruction of real compiled code (the arm64 glibc of Debian's
/// `libc6-arm64-cross`, or `AARCH64_REAL_CODE=/path/to/elf`) that objdump
/// decodes is decoded by us too: none is refused as undecodable.
#[test]
#[ignore = "needs aarch64-linux-gnu-objdump and an arm64 ELF; run with --ignored"]
fn real_code_is_never_undecodable() {
    let elf = std::env::var("AARCH64_REAL_CODE")
        .unwrap_or_else(|_| "/usr/aarch64-linux-gnu/lib/libc.so.6".into());
    let out = Command::new(objdump())
        .args(["-d", "-M", "no-aliases", &elf])
        .output()
        .unwrap_or_else(|e| panic!("cannot run objdump on {elf}: {e}"));
    assert!(out.status.success(), "objdump -d {elf} failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut seen, mut bad) = (0u64, Vec::new());
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (Some(addr), Some(raw), Some(mnemonic)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !addr.trim().ends_with(':') || mnemonic.starts_with('.') {
            continue;
        }
        let Ok(w) = u32::from_str_radix(raw.trim(), 16) else {
            continue;
        };
        seen += 1;
        if decode_word(w) == Verdict::Undecodable {
            bad.push(format!(
                "{w:#010x} {mnemonic} {}",
                fields.next().unwrap_or("")
            ));
        }
    }
    println!("{seen} instructions of {elf}, {} undecodable", bad.len());
    assert!(seen > 10_000, "only {seen} instructions in {elf}");
    assert!(bad.is_empty(), "{:#?}", &bad[..bad.len().min(50)]);
}
