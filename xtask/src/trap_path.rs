//! The `trap-path` check: nothing the trap path runs may be probeable.
//!
//! The engine refuses probes inside its `probe_trap_text` section; every
//! function of the trap path (engine, backend, return dispatch, the
//! backend frame's `Registers` methods) is placed there. This check
//! disassembles that section of a real kernel build (the x86_64 QEMU
//! kernel, release) and fails on any direct call or jump that leaves it,
//! except the documented list a kernel must blacklist itself (see
//! `docs/integration.md`, "What the trap path calls"):
//! - the kernel's own `KernelServices` implementation;
//! - the `log` backend (`log::Log::log`);
//! - `core::panicking::*` and `core::slice::index::*` (the panic path:
//!   a failed bounds check on the trap path is a fatal bug anyway).
//!
//! Not even `memcpy`/`memset`: a kernel may probe them (a kretprobe on
//! `memset` would miss every call the trap path makes itself).
//!
//! Indirect calls (the probe handlers, `dyn Registers` methods of the
//! kernel's frame, services reached through a vtable) cannot be resolved
//! statically: they are counted and printed. Calls through a GOT slot are
//! resolved by reading the slot from the file (the kernel is linked
//! statically).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness;
use crate::process;

/// Name prefixes and substrings of allowed call targets outside the section.
const ALLOWED: &[&str] = &[
    "as probe_core::services::KernelServices",
    "as log::Log>::log",
    "core::panicking::",
    "core::slice::index::",
];

struct Section {
    addr: u64,
    offset: u64,
    size: u64,
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = process::capture(cmd, Duration::from_secs(300)).map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{}: {}", process::display(cmd), out.stderr));
    }
    Ok(out.stdout)
}

/// Disassemble the x86_64 kernel's trap path and check its calls.
pub fn check(root: &Path) -> Result<(), String> {
    let k = harness::kernel("x86_64")?;
    let mut build = Command::new("cargo");
    build.current_dir(root).args(k.build);
    process::run(&mut build, Duration::from_secs(900)).map_err(|e| e.to_string())?;
    let elf = root.join(k.elf);
    let elf_s = elf.to_string_lossy().to_string();

    let nm = output(Command::new("nm").args(["-C", &elf_s]))?;
    let mut symbols = BTreeMap::new();
    let (mut lo, mut hi) = (None, None);
    for line in nm.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(a), Some(_), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(addr) = u64::from_str_radix(a, 16) else {
            continue;
        };
        match name {
            "__start_probe_trap_text" => lo = Some(addr),
            "__stop_probe_trap_text" => hi = Some(addr),
            _ => {}
        }
        symbols.entry(addr).or_insert_with(|| name.to_string());
    }
    let (lo, hi) = lo
        .zip(hi)
        .ok_or("no probe_trap_text symbols in the kernel")?;

    let bytes = std::fs::read(&elf).map_err(|e| format!("{elf_s}: {e}"))?;
    let sections = sections(&output(Command::new("readelf").args(["-S", "-W", &elf_s]))?);
    let word = |addr: u64| -> Option<u64> {
        let s = sections
            .iter()
            .find(|s| s.addr != 0 && addr >= s.addr && addr + 8 <= s.addr + s.size)?;
        let at = (s.offset + addr - s.addr) as usize;
        Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    let name_at = |t: u64| -> String {
        match symbols.range(..=t).next_back() {
            Some((a, n)) if *a == t => n.clone(),
            Some((a, n)) => format!("{n}+{:#x}", t - a),
            None => format!("{t:#x}"),
        }
    };

    let dis = output(Command::new("objdump").args([
        "-d",
        "-C",
        "--no-show-raw-insn",
        &format!("--start-address={lo:#x}"),
        &format!("--stop-address={hi:#x}"),
        &elf_s,
    ]))?;
    let mut inside = 0usize;
    let mut allowed = BTreeMap::<String, usize>::new();
    let mut indirect = 0usize;
    let mut bad = BTreeMap::<String, String>::new();
    let mut current = String::new();
    for line in dis.lines() {
        if let Some(name) = line.strip_suffix(">:").and_then(|l| l.split_once(" <")) {
            current = name.1.to_string();
            continue;
        }
        let Some((_, insn)) = line.split_once(":\t") else {
            continue;
        };
        let insn = insn.trim();
        let Some(operand) = insn
            .strip_prefix("call")
            .or_else(|| insn.strip_prefix("jmp"))
            .map(str::trim)
        else {
            continue;
        };
        let target = if let Some(star) = operand.strip_prefix('*') {
            // through memory: resolvable only for a rip-relative GOT slot
            match (star.contains("(%rip)"), operand.split_once("# ")) {
                (true, Some((_, c))) => c
                    .split_whitespace()
                    .next()
                    .and_then(|a| u64::from_str_radix(a, 16).ok())
                    .and_then(word),
                _ => None,
            }
        } else {
            operand
                .split_whitespace()
                .next()
                .and_then(|a| u64::from_str_radix(a, 16).ok())
        };
        let Some(t) = target else {
            indirect += 1;
            continue;
        };
        if (lo..hi).contains(&t) {
            inside += 1;
            continue;
        }
        let name = name_at(t);
        match ALLOWED.iter().find(|a| name.contains(*a)) {
            Some(a) => *allowed.entry(a.to_string()).or_default() += 1,
            None => {
                bad.entry(name).or_insert_with(|| current.clone());
            }
        }
    }
    println!(
        "trap path of {}: {:#x}..{:#x} ({} bytes), {inside} calls/jumps inside, {indirect} indirect",
        k.elf,
        lo,
        hi,
        hi - lo
    );
    for (a, n) in &allowed {
        println!("  allowed outside: {a} ({n})");
    }
    if bad.is_empty() {
        println!("0 calls leave the trap path except the documented list");
        return Ok(());
    }
    for (target, from) in &bad {
        println!("  LEAVES: {target}  (from {from})");
    }
    Err(format!(
        "{} functions outside probe_trap_text are called from the trap path",
        bad.len()
    ))
}

fn sections(readelf: &str) -> Vec<Section> {
    readelf
        .lines()
        .filter_map(|l| {
            let l = l.split_once(']')?.1;
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(Section {
                addr: u64::from_str_radix(f.get(2)?, 16).ok()?,
                offset: u64::from_str_radix(f.get(3)?, 16).ok()?,
                size: u64::from_str_radix(f.get(4)?, 16).ok()?,
            })
        })
        .collect()
}
