//! What both benchmarks measure with: callgrind instruction counts of a
//! child run of the benchmark itself, medians, and the machine's name.

use std::process::Command;

/// Instructions callgrind counts for the benchmark executable run with
/// `args` (the child mode of the benchmark).
pub fn callgrind_total(args: &[&str]) -> Result<u64, String> {
    callgrind_output(&[], args)?
        .lines()
        .find_map(|l| {
            l.strip_prefix("summary: ")
                .or_else(|| l.strip_prefix("totals: "))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| "no summary line in callgrind output".into())
}

/// Callgrind's output file for the benchmark executable run with `args`
/// (the child mode), with `options` for valgrind (e.g. `--smc-check=all`).
#[allow(dead_code)] // each bench target uses what it needs
pub fn callgrind_output(options: &[&str], args: &[&str]) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::env::temp_dir().join(format!(
        "engine-bench-{}-{}.callgrind",
        std::process::id(),
        args.join("-")
    ));
    let run = Command::new("valgrind")
        .arg("--tool=callgrind")
        .args(options)
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .args(args)
        .output()
        .map_err(|e| format!("valgrind not runnable ({e}); install it (cargo xtask setup does)"))?;
    if !run.status.success() {
        return Err(format!(
            "valgrind failed: {}",
            String::from_utf8_lossy(&run.stderr)
        ));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&out);
    Ok(text)
}

/// The median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The CPU's model name from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Median ns per hit of each of `configs` configurations, over `rounds`
/// rounds of one batch of `batch` hits each (`run(i, batch)` runs
/// configuration `i`), the starting configuration rotating from round to
/// round so that no configuration always runs first.
pub fn interleaved_ns(
    configs: usize,
    rounds: usize,
    batch: usize,
    run: impl Fn(usize, usize),
) -> Vec<f64> {
    let mut samples = vec![Vec::with_capacity(rounds); configs];
    for round in 0..rounds {
        for k in 0..configs {
            let i = (round + k) % configs;
            let t = std::time::Instant::now();
            run(i, batch);
            samples[i].push(t.elapsed().as_nanos() as f64 / batch as f64);
        }
    }
    samples.iter_mut().map(|s| median(s)).collect()
}
