//! The independent disassembler: GNU objdump (x86_64, riscv64, aarch64)
//! or nightly llvm-objdump (loongarch64), run on a file and parsed into
//! instruction boundaries with their text.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::elf::Elf;

/// One instruction as the disassembler sees it.
pub struct DisInsn {
    /// Index of its section in the ELF file.
    pub section: usize,
    /// Its address (section-relative in a relocatable object).
    pub addr: u64,
    /// Its length in bytes.
    pub len: u8,
    /// Mnemonic and operands as printed.
    pub text: String,
}

/// A disassembler program and the options it needs.
#[derive(Clone)]
pub struct Tool {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl Tool {
    pub fn describe(&self) -> String {
        let version = Command::new(&self.program)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .find(|l| l.contains("version") || l.contains("objdump"))
                    .map(|l| l.trim().to_string())
            })
            .unwrap_or_default();
        let name = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{name} {} ({version})", self.args.join(" "))
    }
}

/// Disassemble `file` (its ELF already parsed as `elf`). `range` limits
/// the addresses (`--start-address`/`--stop-address`); `only` the section.
pub fn disassemble(
    tool: &Tool,
    file: &Path,
    elf: &Elf,
    only: Option<&str>,
    range: Option<(u64, u64)>,
) -> Result<Vec<DisInsn>, String> {
    let mut cmd = Command::new(&tool.program);
    cmd.args(&tool.args).arg("-d").arg("-z");
    if let Some(section) = only {
        cmd.arg("-j").arg(section);
    }
    if let Some((start, stop)) = range {
        cmd.arg(format!("--start-address={start:#x}"))
            .arg(format!("--stop-address={stop:#x}"));
    }
    cmd.arg(file).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", tool.program.display()))?;
    let stdout = child.stdout.take().expect("piped");

    // Section headers name sections; the n-th header of a name is the n-th
    // code section of that name (the disassembler goes in section order).
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for s in elf.sections.iter().filter(|s| s.is_code()) {
        by_name.entry(s.name.as_str()).or_default().push(s.index);
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut section: Option<usize> = None;
    let mut out: Vec<DisInsn> = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading {} output: {e}", tool.program.display()))?;
        if let Some(name) = line
            .strip_prefix("Disassembly of section ")
            .and_then(|l| l.strip_suffix(':'))
        {
            let n = seen.entry(name.to_string()).or_insert(0);
            section = by_name.get(name).and_then(|v| v.get(*n)).copied();
            *n += 1;
            continue;
        }
        let Some(section) = section else { continue };
        if let Some(insn) = parse_line(&line, section) {
            match insn {
                Parsed::Insn(i) => out.push(i),
                Parsed::MoreBytes(n) => {
                    if let Some(last) = out.last_mut() {
                        last.len += n;
                    }
                }
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("{}: {e}", tool.program.display()))?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!(
            "{} failed on {}: {}",
            tool.program.display(),
            file.display(),
            err.trim()
        ));
    }
    Ok(out)
}

enum Parsed {
    Insn(DisInsn),
    /// A continuation line holding only bytes.
    MoreBytes(u8),
}

/// `  1f:\t48 8d 15 00 00 00 00 \tlea ...` (GNU), `  1f: 63 40 fd 02 \taddi.d ...`
/// (LLVM), `  1f:\t00a50533 \tadd ...` (GNU, riscv and aarch64 words).
fn parse_line(line: &str, section: usize) -> Option<Parsed> {
    let (addr, rest) = line.split_once(':')?;
    let addr = u64::from_str_radix(addr.trim(), 16).ok()?;
    let rest = rest.strip_prefix('\t').unwrap_or(rest).trim_start();
    let (bytes, text) = match rest.split_once('\t') {
        Some((b, t)) => (b, Some(t)),
        None => (rest, None),
    };
    let mut digits = 0usize;
    for token in bytes.split_whitespace() {
        if !token.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        digits += token.len();
    }
    if digits == 0 || digits & 1 != 0 {
        return None;
    }
    let len = u8::try_from(digits / 2).ok()?;
    match text {
        Some(t) if !t.trim().is_empty() => Some(Parsed::Insn(DisInsn {
            section,
            addr,
            len,
            text: t.split_whitespace().collect::<Vec<_>>().join(" "),
        })),
        _ => Some(Parsed::MoreBytes(len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(line: &str) -> (u64, u8, String) {
        match parse_line(line, 0) {
            Some(Parsed::Insn(i)) => (i.addr, i.len, i.text),
            _ => panic!("no instruction in {line:?}"),
        }
    }

    #[test]
    fn gnu_and_llvm_lines() {
        assert_eq!(
            insn("  1f:\t48 8d 15 00 00 00 00 \tlea    0x0(%rip),%rdx        # 26 <x+0x26>"),
            (0x1f, 7, "lea 0x0(%rip),%rdx # 26 <x+0x26>".into())
        );
        assert_eq!(
            insn("   10:\t1141                \taddi\tsp,sp,-16"),
            (0x10, 2, "addi sp,sp,-16".into())
        );
        assert_eq!(insn("     400:\td503201f \tnop"), (0x400, 4, "nop".into()));
        assert_eq!(
            insn("      34: 6a f9 02 6c  \tbgeu\t$a7, $a6, 760 <.L0 +0xa8>"),
            (0x34, 4, "bgeu $a7, $a6, 760 <.L0 +0xa8>".into())
        );
        assert!(parse_line("0000000000000000 <foo>:", 0).is_none());
        assert!(parse_line("Disassembly of section .text:", 0).is_none());
    }
}
