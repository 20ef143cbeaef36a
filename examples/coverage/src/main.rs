//! Probe coverage on real code: runs each backend's `decode` (kernel and
//! user mode), `check_sequence` and the instruction-boundary walk over every
//! instruction of real binaries, with the boundaries taken from an
//! independent disassembler (GNU objdump, or nightly llvm-objdump for
//! loongarch64), never from our own decoders.
//!
//! `cargo xtask coverage` runs it on every corpus (release build);
//! `cargo xtask test` runs it on the first functions of each (`--sample`).
//! It fails when an instruction that reads or writes the pc is stepped out
//! of line unchanged (no fix-up): that rule must hold everywhere. The
//! refused share is compared with the goals and reported, not enforced.
//!
//! ```text
//! coverage [--sample N] [--corpus NAME]... [--loongarch64-core RLIB] [--markdown]
//! ```

mod classify;
mod corpus;
mod disasm;
mod elf;
mod linux;
mod measure;
mod report;

use std::process::ExitCode;
use std::time::Instant;

use corpus::{Corpus, Isa};
use measure::{measure, Report};

struct Options {
    sample: Option<usize>,
    corpora: Vec<String>,
    loongarch64_core: Option<std::path::PathBuf>,
    markdown: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        sample: None,
        corpora: Vec::new(),
        loongarch64_core: None,
        markdown: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sample" => {
                let n = args.next().ok_or("--sample needs a number")?;
                o.sample = Some(n.parse().map_err(|_| format!("bad --sample {n}"))?);
            }
            "--corpus" => o.corpora.push(args.next().ok_or("--corpus needs a name")?),
            "--loongarch64-core" => {
                o.loongarch64_core =
                    Some(args.next().ok_or("--loongarch64-core needs a path")?.into())
            }
            "--markdown" => o.markdown = true,
            "-h" | "--help" => {
                println!(
                    "usage: coverage [--sample N] [--corpus NAME]... [--loongarch64-core RLIB] [--markdown]\n\
                     corpora: {}",
                    corpus::NAMES.join(", ")
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(o)
}

fn run(corpus: &Corpus) -> Report {
    match corpus.isa {
        Isa::X86_64 => measure::<probe_hal_x86_64::X86_64>(&corpus.units, classify::x86_64, None),
        Isa::Riscv64 => {
            measure::<probe_hal_riscv64::Riscv64>(&corpus.units, classify::riscv64, None)
        }
        Isa::Loongarch64 => measure::<probe_hal_loongarch64::LoongArch64>(
            &corpus.units,
            classify::loongarch64,
            None,
        ),
        Isa::Aarch64 => measure::<probe_hal_aarch64::Aarch64>(
            &corpus.units,
            classify::aarch64,
            Some(linux::aarch64_refuses),
        ),
    }
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("coverage: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A panicking decoder is counted and reported, not printed per hit.
    std::panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();
    let mut results = Vec::new();
    let mut failed = false;
    for spec in corpus::SPECS {
        if !options.corpora.is_empty()
            && !options
                .corpora
                .iter()
                .any(|c| spec.name.contains(c.as_str()))
        {
            continue;
        }
        let t = Instant::now();
        let corpus = match corpus::load(spec, options.sample, options.loongarch64_core.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("coverage: {}: {e}", spec.name);
                failed = true;
                continue;
            }
        };
        let loaded = t.elapsed();
        let report = run(&corpus);
        let measured = t.elapsed() - loaded;
        report::print(&corpus, &report, loaded, measured);
        if report.kernel.unsafe_steps + report.user.unsafe_steps > 0 {
            failed = true;
        }
        results.push((corpus, report));
    }
    println!();
    report::summary(&results, options.markdown);
    println!(
        "\ncoverage: {} corpora in {:.1} s{}",
        results.len(),
        started.elapsed().as_secs_f64(),
        if options.sample.is_some() {
            " (sample)"
        } else {
            ""
        }
    );
    if failed {
        eprintln!(
            "coverage: FAILED (a pc-reading or pc-writing instruction stepped without a fix-up, or a corpus could not be loaded)"
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
