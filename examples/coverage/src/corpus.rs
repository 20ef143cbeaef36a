//! The corpora: which binaries, where their symbols come from, which
//! disassembler gives their boundaries, and the goal for each.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::disasm::{disassemble, Tool};
use crate::elf::{ar_objects, Elf};
use crate::measure::Unit;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    X86_64,
    Riscv64,
    Loongarch64,
    Aarch64,
}

/// Where a corpus's code comes from.
pub enum Source {
    /// `.text` of a shared glibc; symbols from the libc6-dbg debug file
    /// (found by build id) or from `.dynsym` only.
    Glibc {
        path: &'static str,
        package: &'static str,
        debug_symbols: bool,
    },
    /// Rust's `core` as shipped in the stable sysroot for `target`.
    CoreRlib { target: &'static str },
    /// Rust's `core` built by nightly `-Zbuild-std=core` (loongarch64).
    BuiltCore { target: &'static str },
}

/// What the refused share is held against.
pub enum Goal {
    /// At most this share refused (percent); `no_walk_loss`: and nothing
    /// lost to the boundary walk.
    AtMost { percent: f64, no_walk_loss: bool },
    /// At or below what Linux's rules refuse on the same instructions
    /// (modelled in `linux.rs`).
    LinuxRules,
    /// No goal: the figure is reported.
    Report,
}

pub struct Spec {
    pub name: &'static str,
    pub isa: Isa,
    pub source: Source,
    pub goal: Goal,
    /// What Linux's rules refuse on it, as issue 13 measured (percent).
    pub linux: Option<&'static str>,
}

pub const SPECS: &[Spec] = &[
    Spec {
        name: "x86_64 glibc",
        isa: Isa::X86_64,
        source: Source::Glibc {
            path: "/usr/lib/x86_64-linux-gnu/libc.so.6",
            package: "libc6",
            debug_symbols: true,
        },
        goal: Goal::AtMost {
            percent: 0.2,
            no_walk_loss: true,
        },
        linux: Some("0.27 % (kprobe rules)"),
    },
    Spec {
        name: "x86_64 core (x86_64-unknown-none)",
        isa: Isa::X86_64,
        source: Source::CoreRlib {
            target: "x86_64-unknown-none",
        },
        goal: Goal::AtMost {
            percent: 0.5,
            no_walk_loss: false,
        },
        linux: None,
    },
    Spec {
        name: "x86_64 core (x86_64-unknown-linux-gnu)",
        isa: Isa::X86_64,
        source: Source::CoreRlib {
            target: "x86_64-unknown-linux-gnu",
        },
        goal: Goal::AtMost {
            percent: 0.5,
            no_walk_loss: false,
        },
        linux: Some("2.6 % (kprobe rules)"),
    },
    Spec {
        name: "riscv64 glibc",
        isa: Isa::Riscv64,
        source: Source::Glibc {
            path: "/usr/riscv64-linux-gnu/lib/libc.so.6",
            package: "libc6-riscv64-cross",
            debug_symbols: false,
        },
        goal: Goal::AtMost {
            percent: 0.65,
            no_walk_loss: false,
        },
        linux: Some("0.38 % (without LL/SC windows)"),
    },
    Spec {
        name: "riscv64 core (riscv64gc-unknown-none-elf)",
        isa: Isa::Riscv64,
        source: Source::CoreRlib {
            target: "riscv64gc-unknown-none-elf",
        },
        goal: Goal::Report,
        linux: None,
    },
    Spec {
        name: "loongarch64 core (loongarch64-unknown-none)",
        isa: Isa::Loongarch64,
        source: Source::BuiltCore {
            target: "loongarch64-unknown-none",
        },
        goal: Goal::AtMost {
            percent: 0.05,
            no_walk_loss: false,
        },
        linux: Some("0.01 %"),
    },
    Spec {
        name: "aarch64 glibc",
        isa: Isa::Aarch64,
        source: Source::Glibc {
            path: "/usr/aarch64-linux-gnu/lib/libc.so.6",
            package: "libc6-arm64-cross",
            debug_symbols: false,
        },
        goal: Goal::LinuxRules,
        linux: None,
    },
    Spec {
        name: "aarch64 core (aarch64-unknown-none)",
        isa: Isa::Aarch64,
        source: Source::CoreRlib {
            target: "aarch64-unknown-none",
        },
        goal: Goal::LinuxRules,
        linux: None,
    },
];

/// Corpus names, for `--help`.
pub const NAMES: &[&str] = &[
    "x86_64 glibc",
    "x86_64 core (x86_64-unknown-none)",
    "x86_64 core (x86_64-unknown-linux-gnu)",
    "riscv64 glibc",
    "riscv64 core (riscv64gc-unknown-none-elf)",
    "loongarch64 core (loongarch64-unknown-none)",
    "aarch64 glibc",
    "aarch64 core (aarch64-unknown-none)",
];

/// A loaded corpus, ready to measure.
pub struct Corpus {
    pub spec: &'static Spec,
    pub isa: Isa,
    pub units: Vec<Unit>,
    /// Where the code, the symbols and the boundaries come from.
    pub code: String,
    pub symbols: String,
    pub boundaries: String,
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn find_program(name: &str) -> Result<PathBuf, String> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("`{name}` is not on PATH (run `cargo xtask setup`)"))
}

fn tool(isa: Isa) -> Result<Tool, String> {
    let (program, args): (PathBuf, &[&str]) = match isa {
        Isa::X86_64 => (find_program("objdump")?, &["--insn-width=16", "-w"]),
        Isa::Riscv64 => (
            find_program("riscv64-linux-gnu-objdump")?,
            &["-M", "no-aliases"],
        ),
        Isa::Aarch64 => (find_program("aarch64-linux-gnu-objdump")?, &[]),
        Isa::Loongarch64 => {
            let sysroot = output("rustc", &["+nightly", "--print", "sysroot"])
                .ok_or("nightly rustc does not run (run `cargo xtask setup`)")?;
            let host = output("rustc", &["+nightly", "-vV"])
                .and_then(|v| {
                    v.lines()
                        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
                })
                .ok_or("cannot ask nightly rustc for its host")?;
            let p = Path::new(&sysroot)
                .join("lib/rustlib")
                .join(host)
                .join("bin/llvm-objdump");
            if !p.is_file() {
                return Err(format!(
                    "no llvm-objdump at {} (rustup component add llvm-tools --toolchain nightly)",
                    p.display()
                ));
            }
            (p, &["-M", "no-aliases"])
        }
    };
    Ok(Tool {
        program,
        args: args.iter().map(|s| s.to_string()).collect(),
    })
}

fn package_version(package: &str) -> String {
    output("dpkg-query", &["-W", "-f", "${Version}", package]).unwrap_or_else(|| "?".into())
}

/// Sort and deduplicate symbols (aliases share a start; keep the longest).
fn tidy(mut symbols: Vec<(u64, u64, String)>) -> Vec<(u64, u64, String)> {
    symbols.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    symbols.dedup_by(|later, first| later.0 == first.0);
    symbols
}

/// Load a corpus: `sample` keeps only the first N function symbols.
pub fn load(
    spec: &'static Spec,
    sample: Option<usize>,
    loongarch64_core: Option<&Path>,
) -> Result<Corpus, String> {
    let tool = tool(spec.isa)?;
    let boundaries = tool.describe();
    match spec.source {
        Source::Glibc {
            path,
            package,
            debug_symbols,
        } => load_glibc(spec, path, package, debug_symbols, tool, boundaries, sample),
        Source::CoreRlib { target } => {
            let sysroot =
                output("rustc", &["--print", "sysroot"]).ok_or("`rustc --print sysroot` failed")?;
            let dir = Path::new(&sysroot)
                .join("lib/rustlib")
                .join(target)
                .join("lib");
            let rlib = newest_core(&dir)?.ok_or_else(|| {
                format!(
                    "no libcore-*.rlib in {} (rustup target add {target})",
                    dir.display()
                )
            })?;
            let version = output("rustc", &["--version"]).unwrap_or_default();
            let code = format!("{} ({version}, shipped for {target})", rlib.display());
            load_rlib(spec, &rlib, code, tool, boundaries, sample)
        }
        Source::BuiltCore { target } => {
            let rlib = match loongarch64_core {
                Some(p) => p.to_path_buf(),
                None => {
                    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
                    let dirs = [
                        std::env::var_os("CARGO_TARGET_DIR")
                            .map(|d| PathBuf::from(d).join("nightly")),
                        Some(root.join("target/nightly")),
                    ];
                    let mut found = None;
                    for d in dirs.into_iter().flatten() {
                        if let Some(p) = newest_core(&d.join(target).join("release/deps"))? {
                            found = Some(p);
                            break;
                        }
                    }
                    found.ok_or(
                        "no loongarch64 core built (pass --loongarch64-core RLIB; `cargo xtask coverage` builds it)",
                    )?
                }
            };
            let version = output("rustc", &["+nightly", "--version"]).unwrap_or_default();
            let code = format!(
                "{} ({version}, -Zbuild-std=core for {target}, target features +f,+d,+ual (no lsx/lasx))",
                rlib.display()
            );
            load_rlib(spec, &rlib, code, tool, boundaries, sample)
        }
    }
}

fn newest_core(dir: &Path) -> Result<Option<PathBuf>, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("libcore-") && name.ends_with(".rlib") {
            let t = e.metadata().and_then(|m| m.modified()).ok();
            if let Some(t) = t {
                if best.as_ref().is_none_or(|b| t > b.0) {
                    best = Some((t, e.path()));
                }
            }
        }
    }
    Ok(best.map(|b| b.1))
}

fn load_glibc(
    spec: &'static Spec,
    path: &str,
    package: &str,
    debug_symbols: bool,
    tool: Tool,
    boundaries: String,
    sample: Option<usize>,
) -> Result<Corpus, String> {
    let lib = Path::new(path);
    if !lib.is_file() {
        return Err(format!(
            "{path} is missing (apt-get install {package}; `cargo xtask setup` does)"
        ));
    }
    let elf = Elf::read(lib)?;
    let text = elf.section(".text").ok_or("no .text")?.clone();
    let dynsym = elf.functions(true);
    let (raw, symbols) = if debug_symbols {
        let id = elf.build_id().ok_or("no build id")?;
        let debug = PathBuf::from(format!(
            "/usr/lib/debug/.build-id/{}/{}.debug",
            &id[..2],
            &id[2..]
        ));
        if !debug.is_file() {
            return Err(format!(
                "{} is missing: install libc6-dbg (`cargo xtask setup` does)",
                debug.display()
            ));
        }
        let dbg = Elf::read(&debug)?;
        (
            dbg.functions(false),
            format!(
                ".symtab of {} (libc6-dbg {})",
                debug.display(),
                package_version("libc6-dbg")
            ),
        )
    } else {
        (dynsym.clone(), ".dynsym only".to_string())
    };
    // With debug symbols, the walk is also measured with `.dynsym` alone
    // (what a tracer without the debug package has).
    let mut extra_symbols = Vec::new();
    if debug_symbols {
        extra_symbols.push((
            ".dynsym",
            tidy(
                dynsym
                    .into_iter()
                    .filter(|s| s.value >= text.addr && s.value < text.addr + text.size)
                    .map(|s| (s.value, s.size, s.name))
                    .collect(),
            ),
        ));
    }
    let end = text.addr + text.size;
    let mut syms = tidy(
        raw.into_iter()
            .filter(|s| s.value >= text.addr && s.value < end)
            .map(|s| (s.value, s.size, s.name))
            .collect(),
    );
    let mut range = None;
    if let Some(n) = sample {
        syms.truncate(n);
        let last = syms.last().map_or(0, |s| s.0);
        for (_, extra) in &mut extra_symbols {
            extra.retain(|s| s.0 <= last);
        }
        if let Some(first) = syms.first() {
            let stop = syms
                .iter()
                .map(|s| s.0 + s.1)
                .max()
                .unwrap_or(first.0)
                .min(end);
            range = Some((first.0, stop));
        }
    }
    let insns = disassemble(&tool, lib, &elf, Some(".text"), range)?;
    let bytes = elf.bytes(&text).to_vec();
    Ok(Corpus {
        spec,
        isa: spec.isa,
        code: format!("`.text` of {path} ({package} {})", package_version(package)),
        symbols,
        boundaries,
        units: vec![Unit {
            file: path.to_string(),
            base: text.addr,
            bytes,
            symbols: syms,
            extra_symbols,
            insns,
        }],
    })
}

fn load_rlib(
    spec: &'static Spec,
    rlib: &Path,
    code: String,
    tool: Tool,
    boundaries: String,
    sample: Option<usize>,
) -> Result<Corpus, String> {
    let dir = std::env::temp_dir().join(format!(
        "probe-coverage-{}-{}",
        std::process::id(),
        spec.name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = (|| {
        let mut units = Vec::new();
        let mut budget = sample;
        for (name, data) in ar_objects(rlib)? {
            if budget == Some(0) {
                break;
            }
            let file = dir.join(&name);
            std::fs::write(&file, &data).map_err(|e| format!("{}: {e}", file.display()))?;
            let elf = Elf::parse(data).map_err(|e| format!("{name}: {e}"))?;
            if !elf.relocatable {
                return Err(format!("{name}: not a relocatable object"));
            }
            let functions = elf.functions(false);
            let mut file_units: Vec<(usize, Unit)> = Vec::new();
            for s in elf.sections.iter().filter(|s| s.is_code()) {
                let mut syms = tidy(
                    functions
                        .iter()
                        .filter(|f| f.shndx == s.index)
                        .map(|f| (f.value, f.size, f.name.clone()))
                        .collect(),
                );
                if let Some(left) = budget.as_mut() {
                    if *left == 0 {
                        break;
                    }
                    syms.truncate(*left);
                    *left -= syms.len();
                    if syms.is_empty() {
                        continue;
                    }
                }
                file_units.push((
                    s.index,
                    Unit {
                        file: format!("{}({name})", rlib.display()),
                        base: s.addr,
                        bytes: elf.bytes(s).to_vec(),
                        symbols: syms,
                        extra_symbols: Vec::new(),
                        insns: Vec::new(),
                    },
                ));
            }
            let insns = disassemble(&tool, &file, &elf, None, None)?;
            let _ = std::fs::remove_file(&file);
            let by_section: std::collections::HashMap<usize, usize> = file_units
                .iter()
                .enumerate()
                .map(|(k, (i, _))| (*i, k))
                .collect();
            for insn in insns {
                if let Some(&k) = by_section.get(&insn.section) {
                    file_units[k].1.insns.push(insn);
                }
            }
            units.extend(file_units.into_iter().map(|(_, u)| u));
        }
        Ok(units)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let mut units = result?;
    // In a sample, only the instructions of the chosen symbols.
    if sample.is_some() {
        for u in &mut units {
            let syms = &u.symbols;
            u.insns
                .retain(|i| syms.iter().any(|s| i.addr >= s.0 && i.addr < s.0 + s.1));
        }
    }
    Ok(Corpus {
        spec,
        isa: spec.isa,
        code,
        symbols: "`.symtab` of the object files".into(),
        boundaries,
        units,
    })
}
