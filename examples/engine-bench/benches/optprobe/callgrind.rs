//! Callgrind runs of the benchmark's child mode, with the instructions of
//! every function (self cost, from the output file).

use std::collections::BTreeMap;

/// What callgrind counted in one run.
#[derive(Debug, Default)]
pub struct Profile {
    /// Instructions in all (the `summary:` / `totals:` line).
    pub total: u64,
    /// Instructions executed in each function's own code (callees
    /// excluded), by the name callgrind gives it (`0x…` for code without
    /// a symbol: the copies of the victim and the detour).
    pub self_cost: BTreeMap<String, u64>,
}

/// Run this executable with `args` under callgrind (`--smc-check=all`: the
/// detour and the jump are written at run time into an anonymous mapping).
pub fn run(args: &[&str]) -> Result<Profile, String> {
    parse(&crate::measure::callgrind_output(
        &["--smc-check=all"],
        args,
    )?)
}

/// Parse callgrind's output format (one event, `Ir`; positions `line`):
/// `fn=` selects the function the following cost lines belong to, and the
/// cost line after a `calls=` line is the inclusive cost of that call,
/// which belongs to the callee.
fn parse(text: &str) -> Result<Profile, String> {
    let mut p = Profile::default();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut current = String::new();
    let mut skip_next_cost = false;
    // `(id) name` defines a compressed name, `(id)` refers to one.
    let mut name_of = |spec: &str| -> String {
        let spec = spec.trim();
        if let Some(rest) = spec.strip_prefix('(') {
            if let Some((id, name)) = rest.split_once(')') {
                let name = name.trim();
                if name.is_empty() {
                    return names.get(id).cloned().unwrap_or_default();
                }
                names.insert(id.to_string(), name.to_string());
                return name.to_string();
            }
        }
        spec.to_string()
    };
    for line in text.lines() {
        if let Some(v) = line
            .strip_prefix("summary: ")
            .or_else(|| line.strip_prefix("totals: "))
        {
            p.total = v
                .split_whitespace()
                .next()
                .and_then(|t| t.parse().ok())
                .ok_or("bad summary line")?;
        } else if let Some(spec) = line.strip_prefix("fn=") {
            current = name_of(spec);
        } else if let Some(spec) = line.strip_prefix("cfn=") {
            // Defines the name for later `fn=(id)` references too.
            name_of(spec);
        } else if line.starts_with("calls=") {
            skip_next_cost = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || "+-*".contains(c)) {
            if skip_next_cost {
                skip_next_cost = false;
                continue;
            }
            let cost: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            *p.self_cost.entry(current.clone()).or_default() += cost;
        }
    }
    if p.total == 0 {
        return Err("no summary line in callgrind output".into());
    }
    Ok(p)
}
