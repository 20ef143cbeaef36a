//! Cross-check against an independent disassembler: GNU objdump from
//! `binutils-riscv64-linux-gnu` (binutils 2.40 on Debian 12).
//!
//! Every 16-bit encoding and a deterministic sample of 32-bit ones are
//! written to a file and disassembled with
//! `riscv64-linux-gnu-objdump -D -z -b binary -m riscv:rv64 -M no-aliases`.
//! For each encoding we compare the length, the class (objdump's mnemonic in
//! our simulated set ⇔ we simulate; in our refused set ⇔ we refuse; `.2byte`
//! or `.4byte` ⇔ we call it undecodable) and, for accepted instructions, the
//! mnemonic. The places where we knowingly differ are listed in
//! [`EXCEPTIONS`], each with its reason.
//!
//! Fails (does not skip) when objdump is missing. Override the tool with
//! `RISCV_OBJDUMP=/path/to/objdump`.

use std::collections::BTreeMap;
use std::process::Command;

use probe_hal_riscv64::decode::{decode_insn, Decision, Verdict};

/// objdump's view of one encoding.
#[derive(Debug)]
struct Theirs {
    len: usize,
    mnemonic: String,
    operands: String,
}

impl Theirs {
    fn unknown(&self) -> bool {
        self.mnemonic.starts_with('.')
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Step,
    Simulate,
    Refuse,
    Undecodable,
}

fn our_class(d: &Decision) -> Class {
    match d.verdict {
        Verdict::Step => Class::Step,
        Verdict::Simulate(_) => Class::Simulate,
        Verdict::Refuse(_) => Class::Refuse,
        Verdict::Undecodable => Class::Undecodable,
    }
}

/// Mnemonics we simulate (arch/riscv/kernel/probes/decode-insn.c).
const SIMULATED: &[&str] = &[
    "jal", "jalr", "auipc", "beq", "bne", "blt", "bge", "bltu", "bgeu", "c.j", "c.jr", "c.jalr",
    "c.beqz", "c.bnez",
];

/// Mnemonics (as binutils prints them) we refuse. The Zicsr instructions
/// are classed by their CSR operand instead: see [`csr_class`].
const REFUSED: &[&str] = &[
    "ecall",
    "ebreak",
    "c.ebreak",
    "uret",
    "sret",
    "mret",
    "dret",
    "wfi",
    "sfence.vma",
    "lr.w",
    "lr.d",
    "sc.w",
    "sc.d",
    "unimp",
];

/// The class of a Zicsr instruction from objdump's operands (`rd,csr,src`
/// with `-M no-aliases`): the floating-point CSRs in any form, and reads of
/// cycle/time/instret that cannot write (source `zero` or immediate 0),
/// are stepped; every other CSR access is refused.
fn csr_class(mnemonic: &str, operands: &str) -> Option<Class> {
    if !matches!(
        mnemonic,
        "csrrw" | "csrrs" | "csrrc" | "csrrwi" | "csrrsi" | "csrrci"
    ) {
        return None;
    }
    let mut ops = operands.split(',');
    let (_rd, csr, src) = (ops.next()?, ops.next()?, ops.next()?);
    let read_only = match mnemonic {
        "csrrs" | "csrrc" => src == "zero",
        "csrrsi" | "csrrci" => src == "0",
        _ => false,
    };
    let stepped = matches!(csr, "fflags" | "frm" | "fcsr")
        || (matches!(csr, "cycle" | "time" | "instret") && read_only);
    Some(if stepped { Class::Step } else { Class::Refuse })
}

fn their_class(t: &Theirs) -> Class {
    let m = base_mnemonic(&t.mnemonic);
    if t.unknown() {
        Class::Undecodable
    } else if let Some(class) = csr_class(m, &t.operands) {
        class
    } else if SIMULATED.contains(&m) {
        Class::Simulate
    } else if REFUSED.contains(&m) {
        Class::Refuse
    } else {
        Class::Step
    }
}

/// binutils' mnemonic without the AMO ordering suffixes, and with its names
/// for the RV64C shift HINTs (shamt = 0) mapped to ours.
fn base_mnemonic(m: &str) -> &str {
    let m = m
        .strip_suffix(".aqrl")
        .or_else(|| m.strip_suffix(".aq"))
        .or_else(|| m.strip_suffix(".rl"))
        .unwrap_or(m);
    match m {
        "c.slli64" => "c.slli",
        "c.srli64" => "c.srli",
        "c.srai64" => "c.srai",
        other => other,
    }
}

/// A known, deliberate difference.
struct Exception {
    why: &'static str,
    applies: fn(word: u32, ours: &Decision, theirs: &Theirs) -> bool,
}

const EXCEPTIONS: &[Exception] = &[
    Exception {
        why: "0x0000 is the defined illegal instruction; binutils names it c.unimp, we call it undecodable",
        applies: |w, o, t| w == 0 && t.mnemonic == "c.unimp" && our_class(o) == Class::Undecodable,
    },
    Exception {
        why: "the whole SYSTEM opcode outside the stepped CSR accesses is refused, including encodings binutils does not know (reserved fields, H extension)",
        applies: |w, o, t| {
            w & 3 == 3 && w & 0x7f == 0x73 && t.unknown() && our_class(o) == Class::Refuse
        },
    },
    Exception {
        why: "binutils prints csrrw zero, cycle, zero (a write to a read-only CSR) as `unimp`, the conventional illegal instruction; both refuse it",
        applies: |w, o, t| w == 0xc000_1073 && t.mnemonic == "unimp" && o.mnemonic == "csrrw" && our_class(o) == Class::Refuse,
    },
    Exception {
        why: "binutils 2.40 predates Zihintpause: it prints `pause` (fence w,0) as `fence w,unknown`",
        applies: |w, o, t| {
            w == 0x0100_000f && t.mnemonic == "fence" && o.mnemonic == "pause" && our_class(o) == Class::Step
        },
    },
    Exception {
        why: "rounding modes 101 and 110 are reserved (ISA manual §11.2); binutils prints them as `unknown`, we call them undecodable",
        applies: |w, o, t| {
            matches!((w >> 12) & 7, 5 | 6) && t.operands.ends_with("unknown") && our_class(o) == Class::Undecodable
        },
    },
    Exception {
        why: "c.addi16sp with nzimm = 0 is reserved (ISA manual table 16.6); binutils accepts it",
        applies: |w, o, t| {
            w & 0xef83 == 0x6101 && w & 0x107c == 0 && t.mnemonic == "c.addi16sp" && our_class(o) == Class::Undecodable
        },
    },
    Exception {
        why: "fcvt.d.w, fcvt.d.wu and fcvt.d.s have a valid rm field the ISA ignores (exact results); binutils 2.40 only knows rm = 000",
        applies: |w, o, t| {
            t.unknown()
                && matches!(o.mnemonic, "fcvt.d.w" | "fcvt.d.wu" | "fcvt.d.s")
                && (w >> 12) & 7 != 0
                && our_class(o) == Class::Step
        },
    },
];

/// xorshift64*: a fixed, reproducible sample.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

/// Every 16-bit encoding, then 3,000 32-bit words per 32-bit major opcode
/// (a third of them with a small rs2 field, where the F/D conversions and
/// moves live), then 20,000 random 32-bit words, then the neighbourhood of
/// the stepped fences and CSR accesses (random words rarely hit them):
/// every fence pred/succ pair and reserved-field variant, every Zicsr form
/// on CSRs 0x000-0x004, 0xC00-0xC03 and 0xC80-0xC82 with rs1/uimm 0, 1 and
/// 31 and rd 0, 10 and 31.
fn sample() -> Vec<(u32, usize)> {
    let mut out: Vec<(u32, usize)> = (0..=0xffffu32)
        .filter(|h| h & 3 != 3)
        .map(|h| (h, 2))
        .collect();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for opcode in (0..32u32).map(|i| i << 2 | 3).filter(|o| o & 0x1c != 0x1c) {
        for i in 0..3000 {
            let mut w = rng.next() & !0x7f | opcode;
            if i % 3 == 0 {
                w = w & !0x01f0_0000 | (rng.next() % 4) << 20;
            }
            out.push((w, 4));
        }
    }
    while out.iter().filter(|(_, l)| *l == 4).count() < 84_000 + 20_000 {
        let w = rng.next() | 3;
        if w & 0x1c != 0x1c {
            out.push((w, 4));
        }
    }
    for pred_succ in 0..256u32 {
        out.push((pred_succ << 20 | 0x0f, 4));
    }
    for w in [
        0x8330_000f,
        0x8000_000f,
        0x1ff0_000f,
        0x0ff0_008f,
        0x0ff0_800f,
        0x0000_100f,
        0x0010_100f,
        0x0000_108f,
        0x0008_100f,
    ] {
        out.push((w, 4));
    }
    let csrs = [
        0x000, 0x001, 0x002, 0x003, 0x004, 0xc00, 0xc01, 0xc02, 0xc03, 0xc80, 0xc81, 0xc82,
    ];
    for csr in csrs {
        for funct3 in [1u32, 2, 3, 5, 6, 7] {
            for rs1 in [0u32, 1, 31] {
                for rd in [0u32, 10, 31] {
                    out.push((csr << 20 | rs1 << 15 | funct3 << 12 | rd << 7 | 0x73, 4));
                }
            }
        }
    }
    out
}

fn objdump() -> String {
    std::env::var("RISCV_OBJDUMP").unwrap_or_else(|_| "riscv64-linux-gnu-objdump".into())
}

#[test]
#[ignore = "needs riscv64-linux-gnu-objdump; run by `cargo xtask` or with --ignored"]
fn agrees_with_gnu_objdump() {
    let tool = objdump();
    let version = Command::new(&tool).arg("--version").output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{tool}` ({e}): install it with `apt-get install -y binutils-riscv64-linux-gnu` \
             or point RISCV_OBJDUMP at a riscv objdump"
        )
    });
    assert!(version.status.success(), "`{tool} --version` failed");

    let words = sample();
    let mut bytes = Vec::new();
    let mut at = BTreeMap::new();
    for &(w, len) in &words {
        at.insert(bytes.len(), (w, len));
        bytes.extend_from_slice(&w.to_le_bytes()[..len]);
    }
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("riscv64-sample.bin");
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new(&tool)
        .args([
            "-D",
            "-z",
            "-b",
            "binary",
            "-m",
            "riscv:rv64",
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
    let text = String::from_utf8(out.stdout).unwrap();

    // "   4a:\t001000ef          \tjal\tra,84a <.data+0x84a>"
    let mut theirs = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (Some(addr), Some(raw), Some(mnemonic)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some(addr) = addr.trim().strip_suffix(':') else {
            continue;
        };
        let Ok(addr) = usize::from_str_radix(addr, 16) else {
            continue;
        };
        let raw: String = raw.split_whitespace().collect();
        theirs.insert(
            addr,
            Theirs {
                len: raw.len() / 2,
                mnemonic: mnemonic.trim().to_string(),
                operands: fields.next().unwrap_or("").trim().to_string(),
            },
        );
    }

    let mut mismatches = Vec::new();
    let mut used = vec![0usize; EXCEPTIONS.len()];
    for (offset, &(word, len)) in &at {
        let ours = decode_insn(&word.to_le_bytes()[..len]).expect("decodes");
        let Some(t) = theirs.get(offset) else {
            mismatches.push(format!(
                "{word:#010x}: no objdump line at offset {offset:#x}"
            ));
            continue;
        };
        if t.len != ours.len {
            mismatches.push(format!(
                "{word:#010x}: length {} vs objdump {}",
                ours.len, t.len
            ));
            continue;
        }
        let (oc, tc) = (our_class(&ours), their_class(t));
        let same_name = oc == Class::Undecodable || ours.mnemonic == base_mnemonic(&t.mnemonic);
        if oc == tc && same_name {
            continue;
        }
        if let Some(i) = EXCEPTIONS.iter().position(|e| (e.applies)(word, &ours, t)) {
            used[i] += 1;
            continue;
        }
        mismatches.push(format!(
            "{word:#010x}: ours {oc:?} `{}`, objdump {tc:?} `{} {}`",
            ours.mnemonic, t.mnemonic, t.operands
        ));
    }
    for (e, n) in EXCEPTIONS.iter().zip(&used) {
        println!("{n:6} x {}", e.why);
    }
    println!("{} encodings compared", at.len());
    assert!(
        mismatches.is_empty(),
        "{} mismatches with objdump, e.g.:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
