//! Our decisions against LLVM's LoongArch disassembler.
//!
//! Run with `cargo test -p probe-hal-loongarch64 --release -- --ignored llvm`.
//! Needs `llvm-objdump` and `llvm-objcopy` from nightly's `llvm-tools`
//! (`rustup component add llvm-tools --toolchain nightly`; Debian's
//! llvm-objdump cannot disassemble LoongArch). `LLVM_OBJDUMP` and
//! `LLVM_OBJCOPY` override the paths.
//!
//! About 6.7 million words (every value of bits [31:10] once, every value
//! of bits [31:15] with three fillings of the low bits, 2 million random
//! words, and the LSX/LASX register operations with low bits clear) are wrapped in an ELF file and disassembled. For each word:
//! 1. LLVM says `<unknown>` ⇒ we refuse it;
//! 2. LLVM's mnemonic is a branch or pc-relative add ⇔ we simulate it;
//! 3. we accept it ⇒ LLVM disassembles it with the same mnemonic (modulo
//!    LLVM's aliases such as `nop`, `move`, `ret`, `bgez`);
//! 4. we refuse it by name ⇒ LLVM has that name too;
//! 5. LLVM knows it ⇒ we know it too (accepted or refused by name): the
//!    LSX/LASX vector and LBT binary-translation instructions included, which
//!    we decode one by one and step.
//!
//! The sample holds every value of bits [31:10], so each of the 1,451
//! LSX/LASX instructions is compared at least once (asserted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use probe_hal_loongarch64::decode::{decode_word, Op, Verdict};

/// Mnemonics (LLVM spelling, aliases included) of instructions we simulate.
const SIMULATED: &[&str] = &[
    "b",
    "bl",
    "beqz",
    "bnez",
    "beq",
    "bne",
    "blt",
    "bge",
    "bltu",
    "bgeu",
    "jirl",
    "pcaddi",
    "pcalau12i",
    "pcaddu12i",
    "pcaddu18i", // the base forms
    "bltz",
    "bgtz",
    "bgez",
    "blez",
    "jr",
    "ret", // LLVM's aliases of them
];

/// LLVM alias → the instruction we name.
const ALIASES: &[(&str, &str)] = &[
    ("bltz", "blt"),
    ("bgtz", "blt"),
    ("bgez", "bge"),
    ("blez", "bge"),
    ("jr", "jirl"),
    ("ret", "jirl"),
    ("nop", "andi"),
    ("move", "or"),
];

fn canonical(llvm: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == llvm)
        .map_or(llvm, |(_, base)| base)
}

fn tool(name: &str, env: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let missing = |why: String| -> ! {
        panic!(
            "{name} not found ({why}). Install it with \
             `rustup component add llvm-tools --toolchain nightly`, or set {env}."
        )
    };
    let out = |args: &[&str]| match Command::new("rustc").args(args).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => missing(format!(
            "`rustc {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => missing(format!("cannot run rustc: {e}")),
    };
    let sysroot = out(&["+nightly", "--print", "sysroot"]);
    let host = out(&["+nightly", "-vV"])
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap_or_else(|| missing("no host triple in `rustc -vV`".into()));
    let path = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin")
        .join(name);
    if !path.exists() {
        missing(format!("{} does not exist", path.display()));
    }
    path
}

/// The words to compare, deterministic.
fn sample() -> Vec<u32> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    };
    let mut words = Vec::with_capacity(7_000_000);
    for hi in 0..1u32 << 22 {
        words.push(hi << 10 | (rnd() & 0x3ff));
    }
    for hi in 0..1u32 << 17 {
        words.push(hi << 15);
        words.push(hi << 15 | 0x7fff);
        words.push(hi << 15 | (rnd() & 0x7fff));
    }
    for _ in 0..2_000_000 {
        words.push(rnd());
    }
    // The LSX/LASX register operations (0x70-0x77) again with the low ten
    // bits clear: some fix bits [4:3] (`vseteqz.v` and the other mask tests
    // into $fcc), which random low bits leave unmatched three times in four.
    for hi in (0x70u32 << 14)..(0x78 << 14) {
        words.push(hi << 10);
    }
    words
}

/// LLVM's mnemonic for every word (`None` for `<unknown>`).
fn disassemble(words: &[u32]) -> Vec<Option<String>> {
    let objdump = tool("llvm-objdump", "LLVM_OBJDUMP");
    let objcopy = tool("llvm-objcopy", "LLVM_OBJCOPY");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let bin = dir.join("la64-words.bin");
    let obj = dir.join("la64-words.o");
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    std::fs::write(&bin, bytes).unwrap();
    let st = Command::new(&objcopy)
        .args(["-I", "binary", "-O", "elf64-loongarch"])
        .arg(&bin)
        .arg(&obj)
        .status()
        .unwrap();
    assert!(st.success(), "{} failed", objcopy.display());
    let out = Command::new(&objdump)
        .args(["-D", "-z", "-j", ".data", "--no-show-raw-insn"])
        .arg(&obj)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        objdump.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut result = Vec::with_capacity(words.len());
    for line in text.lines() {
        let Some((addr, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        assert_eq!(
            addr,
            4 * result.len() as u64,
            "objdump skipped a word near {addr:#x}"
        );
        let mnemonic = rest.split_whitespace().next().unwrap_or("<unknown>");
        result.push((mnemonic != "<unknown>").then(|| mnemonic.to_owned()));
    }
    assert_eq!(
        result.len(),
        words.len(),
        "objdump output does not cover every word"
    );
    result
}

#[test]
#[ignore = "needs nightly llvm-tools: run in release with --ignored llvm"]
fn llvm_cross_check() {
    let words = sample();
    let llvm = disassemble(&words);
    // Disagreements, grouped: (what, count, first word).
    let mut failures: BTreeMap<String, (u64, u32)> = BTreeMap::new();
    let mut not_ours: BTreeMap<String, u64> = BTreeMap::new();
    let mut refused_known: BTreeMap<&str, u64> = BTreeMap::new();
    let mut vectors = 0u64;
    let mut vector_names = std::collections::BTreeSet::new();
    let mut fail = |w: u32, what: String| failures.entry(what).or_insert((0, w)).0 += 1;
    for (&w, l) in words.iter().zip(&llvm) {
        let ours = decode_word(w);
        let l = l.as_deref();
        let llvm_sim = l.is_some_and(|m| SIMULATED.contains(&m));
        let we_sim = matches!(ours, Verdict::Accept(i) if matches!(i.op, Op::Simulate(_)));
        if llvm_sim != we_sim {
            fail(
                w,
                format!("simulate sets differ: llvm {l:?}, ours {ours:?}"),
            );
        }
        match (l, ours) {
            (None, Verdict::Accept(i)) => {
                fail(w, format!("llvm <unknown>, we accept {}", i.mnemonic))
            }
            (Some(m), Verdict::Accept(i)) if canonical(m) != i.mnemonic => {
                fail(w, format!("llvm {m}, we accept {}", i.mnemonic))
            }
            (Some(m), Verdict::Refuse(r)) => {
                if canonical(m) != r.mnemonic {
                    fail(w, format!("llvm {m}, we refuse {}", r.mnemonic));
                }
                *refused_known.entry(r.mnemonic).or_default() += 1;
            }
            (Some(m), Verdict::Undecodable) => {
                fail(w, format!("llvm knows {m}, we do not"));
                *not_ours.entry(m.to_owned()).or_default() += 1;
            }
            (Some(m), Verdict::Accept(_)) if m.starts_with('v') || m.starts_with("xv") => {
                vectors += 1;
                vector_names.insert(m.to_owned());
            }
            _ => {}
        }
    }
    println!("{} words compared", words.len());
    println!("known to LLVM, refused by us: {refused_known:?}");
    println!("known to LLVM, undecodable for us: {not_ours:?}");
    println!(
        "{vectors} LSX/LASX words of {} instructions accepted with LLVM's mnemonic",
        vector_names.len()
    );
    // Bits [31:10] once each puts every one of the 1,451 LSX/LASX
    // instructions in the sample at least once.
    assert_eq!(vector_names.len(), 1451, "LSX/LASX instructions compared");
    let report: Vec<String> = failures
        .iter()
        .map(|(what, (n, w))| format!("{n:>8} × {what} (e.g. {w:#010x})"))
        .collect();
    assert!(failures.is_empty(), "disagreements:\n{}", report.join("\n"));
}
