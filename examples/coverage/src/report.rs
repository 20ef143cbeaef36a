//! Printing: one block per corpus, then the summary table (Markdown with
//! `--markdown`, as in docs/coverage.md).

use std::time::Duration;

use crate::corpus::{Corpus, Goal};
use crate::measure::{ModeCounts, Report};

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.3} %", n as f64 * 100.0 / of as f64)
    }
}

fn share(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 * 100.0 / of as f64
    }
}

/// The goal's verdict, in words.
pub fn goal(corpus: &Corpus, r: &Report) -> String {
    let refused = share(r.kernel.refused_total(), r.insns);
    match corpus.spec.goal {
        Goal::AtMost {
            percent,
            no_walk_loss,
        } => {
            let met_share = refused <= percent;
            let met_walk = !no_walk_loss || r.walk_lost == 0;
            let verdict = if met_share && met_walk {
                "met"
            } else {
                "not met"
            };
            let mut s = format!("≤ {percent} %");
            if no_walk_loss {
                s.push_str(", 0 lost to the walk");
            }
            format!("{s}: {verdict}")
        }
        Goal::LinuxRules => match r.linux_refused {
            Some(linux) => format!(
                "≤ Linux's rules ({linux}, {}): {}",
                pct(linux, r.insns),
                if r.kernel.refused_total() <= linux {
                    "met"
                } else {
                    "not met"
                }
            ),
            None => "no model of Linux's rules: figure reported".into(),
        },
        Goal::Report => "no goal: figure reported".into(),
    }
}

fn top_refusals(c: &ModeCounts, n: usize) -> Vec<(u64, String, String)> {
    let mut v: Vec<(u64, String, String)> = c
        .refusals
        .iter()
        .map(|(k, (count, e))| (*count, k.clone(), e.show()))
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    v.truncate(n);
    v
}

pub fn print(corpus: &Corpus, r: &Report, loaded: Duration, measured: Duration) {
    let k = &r.kernel;
    println!("\n== {} ==", corpus.spec.name);
    println!("code        {}", corpus.code);
    println!("symbols     {}", corpus.symbols);
    println!("boundaries  {}", corpus.boundaries);
    println!(
        "time        {:.1} s loading and disassembling, {:.1} s measuring",
        loaded.as_secs_f64(),
        measured.as_secs_f64()
    );
    println!(
        "instructions              {:>9}   (disassembler could not decode {}; reading/writing pc: {} pc-relative, {} other transfers)",
        r.insns, r.dis_unknown, r.pc_relative, r.pc_transfer
    );
    println!(
        "zero padding              {:>9}   (zero words outside every function symbol: not counted)",
        r.outside_functions
    );
    println!("kernel mode (kprobes):");
    print_mode(k, r.insns);
    println!(
        "user mode (uprobes): stepped {} ({} fixed up), simulated {}, refused {} ({}); {} decisions differ from kernel mode",
        r.user.stepped,
        r.user.fixed_up,
        r.user.simulated,
        r.user.refused_total(),
        pct(r.user.refused_total(), r.insns),
        r.mode_differs
    );
    if r.user.unsafe_steps > 0 {
        println!(
            "  user mode: {} pc-reading instructions STEPPED WITHOUT A FIX-UP",
            r.user.unsafe_steps
        );
        for e in &r.user.unsafe_examples {
            println!("    {}", e.show());
        }
    }
    if r.user.panics > 0 {
        println!("  user mode: decode PANICKED {} times", r.user.panics);
    }
    println!(
        "length disagreements      {:>9}   (ours vs the disassembler's)",
        r.len_disagree
    );
    for e in &r.len_examples {
        println!("    {}", e.show());
    }
    println!(
        "boundary walk             {} symbols cover {} instructions; the walk from the symbol start loses {} ({}), {} of them otherwise probeable; it stops early in {} symbols",
        r.symbols,
        r.in_symbols,
        r.walk_lost,
        pct(r.walk_lost, r.in_symbols),
        r.walk_lost_accepted,
        r.walk_stops
    );
    for (lost, at, e) in &r.walk_stop_examples {
        println!("    {lost:>6} lost after {at}: {}", e.show());
    }
    for w in &r.extra_walks {
        println!(
            "boundary walk ({})  {} symbols cover {} instructions; the walk loses {} ({}), {} of them otherwise probeable; it stops early in {} symbols",
            w.source,
            w.symbols,
            w.in_symbols,
            w.lost,
            pct(w.lost, w.in_symbols),
            w.lost_accepted,
            w.stops
        );
    }
    println!(
        "goal        refused {} of all instructions; {}",
        pct(k.refused_total(), r.insns),
        goal(corpus, r)
    );
    if let Some(linux) = corpus.spec.linux {
        println!("            (Linux's rules: {linux}, issue 13)");
    }
}

fn print_mode(k: &ModeCounts, insns: u64) {
    println!(
        "  stepped                 {:>9}   ({}), {} with a pc-relative fix-up{}",
        k.stepped,
        pct(k.stepped, insns),
        k.fixed_up,
        if k.fixed_up_not_pc > 0 {
            format!(
                " ({} of them not pc-relative by the disassembler)",
                k.fixed_up_not_pc
            )
        } else {
            String::new()
        }
    );
    println!(
        "  simulated               {:>9}   ({})",
        k.simulated,
        pct(k.simulated, insns)
    );
    println!(
        "  refused                 {:>9}   ({}): {} by decode, {} by check_sequence",
        k.refused_total(),
        pct(k.refused_total(), insns),
        k.refused,
        k.refused_sequence
    );
    let top = top_refusals(k, 10);
    for (count, key, example) in &top {
        println!("    {count:>8}  {key}");
        println!("              e.g. {example}");
    }
    if k.refusals.len() > top.len() {
        let shown: u64 = top.iter().map(|t| t.0).sum();
        println!(
            "    {:>8}  in {} more reasons",
            k.refused_total() - shown,
            k.refusals.len() - top.len()
        );
    }
    println!(
        "  pc-reading stepped without a fix-up: {}{}",
        k.unsafe_steps,
        if k.unsafe_steps > 0 {
            "   <== MUST BE 0"
        } else {
            ""
        }
    );
    for e in &k.unsafe_examples {
        println!("    {}", e.show());
    }
    if k.slot_errors > 0 {
        println!(
            "  build_slot failed for {} stepped instructions",
            k.slot_errors
        );
    }
    if k.panics > 0 {
        println!("  decode PANICKED {} times:", k.panics);
        for e in &k.panic_examples {
            println!("    {}", e.show());
        }
    }
}

pub fn summary(results: &[(Corpus, Report)], markdown: bool) {
    let header = [
        "corpus",
        "instructions",
        "stepped (fix-up)",
        "simulated",
        "refused",
        "refused share",
        "goal",
        "length disagreements",
        "pc-reading stepped unfixed",
        "lost to the walk (symbols)",
    ];
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|(c, r)| {
            let k = &r.kernel;
            vec![
                c.spec.name.to_string(),
                r.insns.to_string(),
                format!("{} ({})", k.stepped, k.fixed_up),
                k.simulated.to_string(),
                k.refused_total().to_string(),
                pct(k.refused_total(), r.insns),
                goal(c, r),
                r.len_disagree.to_string(),
                (k.unsafe_steps + r.user.unsafe_steps).to_string(),
                format!(
                    "{} ({}, {})",
                    r.walk_lost,
                    pct(r.walk_lost, r.in_symbols),
                    if c.symbols.starts_with(".dynsym") {
                        ".dynsym"
                    } else if c.symbols.starts_with(".symtab of /usr/lib/debug") {
                        "libc6-dbg"
                    } else {
                        ".symtab"
                    }
                ),
            ]
        })
        .collect();
    if markdown {
        println!("| {} |", header.join(" | "));
        println!("|{}", "---|".repeat(header.len()));
        for row in &rows {
            println!("| {} |", row.join(" | "));
        }
    } else {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                .collect();
            println!("{}", padded.join("  ").trim_end());
        };
        line(header.iter().map(|s| s.to_string()).collect());
        for row in rows {
            line(row);
        }
    }
}
