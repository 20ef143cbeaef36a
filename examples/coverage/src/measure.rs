//! One backend over one corpus: every decision, the pc rule, the
//! sequence check and the boundary walk, counted.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use probe_hal::{Arch, ExecMode, Handling, ProbeError, ProbeErrorKind};

use crate::classify::PcUse;
use crate::disasm::DisInsn;

/// Function symbols: (start, size, name), sorted by start.
pub type Symbols = Vec<(u64, u64, String)>;

/// One code section of one file, with its function symbols and what the
/// disassembler found in it.
pub struct Unit {
    /// File (and member) it comes from.
    #[allow(dead_code)]
    pub file: String,
    /// Address of its first byte.
    pub base: u64,
    pub bytes: Vec<u8>,
    /// (start, size, name), sorted by start.
    pub symbols: Vec<(u64, u64, String)>,
    /// Other symbol sources whose boundary walk is measured too (the
    /// decisions use `symbols`): (label, symbols sorted by start).
    pub extra_symbols: Vec<(&'static str, Symbols)>,
    pub insns: Vec<DisInsn>,
}

/// An instruction kept as an example: where, its bytes, the disassembler's
/// text, and a note.
pub struct Example {
    pub addr: u64,
    pub bytes: Vec<u8>,
    pub text: String,
    pub note: String,
}

impl Example {
    pub fn show(&self) -> String {
        let hex: Vec<String> = self.bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut s = format!("{:#x} [{}] `{}`", self.addr, hex.join(" "), self.text);
        if !self.note.is_empty() {
            s.push_str(&format!(" ({})", self.note));
        }
        s
    }
}

const EXAMPLES: usize = 8;

fn keep(list: &mut Vec<Example>, e: impl FnOnce() -> Example) {
    if list.len() < EXAMPLES {
        list.push(e());
    }
}

/// Decisions in one execution mode.
#[derive(Default)]
pub struct ModeCounts {
    pub stepped: u64,
    /// Stepped, and the slot's copy differs from the original (a
    /// displacement recomputed for the slot).
    pub fixed_up: u64,
    pub simulated: u64,
    /// `decode` refused (or could not decode).
    pub refused: u64,
    /// `check_sequence` refused an instruction `decode` accepted.
    pub refused_sequence: u64,
    /// `build_slot` failed for a stepped instruction.
    pub slot_errors: u64,
    /// Reads or writes the pc (disassembler's word) and stepped unchanged.
    pub unsafe_steps: u64,
    pub unsafe_examples: Vec<Example>,
    /// Slot differs from the original but the disassembler sees no pc use.
    pub fixed_up_not_pc: u64,
    /// `decode` panicked.
    pub panics: u64,
    pub panic_examples: Vec<Example>,
    /// Refusals by "mnemonic: reason", with a count and an example.
    pub refusals: HashMap<String, (u64, Example)>,
}

impl ModeCounts {
    pub fn refused_total(&self) -> u64 {
        self.refused + self.refused_sequence
    }
}

/// Everything measured on one corpus.
#[derive(Default)]
pub struct Report {
    pub insns: u64,
    /// Zero-filled words outside every function symbol (padding between
    /// functions), not counted in `insns`.
    pub outside_functions: u64,
    /// Instructions the disassembler could not decode (`(bad)`, `.word`…).
    pub dis_unknown: u64,
    /// Instructions that read (or write) the pc, by the disassembler.
    pub pc_relative: u64,
    pub pc_transfer: u64,
    pub kernel: ModeCounts,
    pub user: ModeCounts,
    /// User-mode decisions that differ from kernel mode.
    pub mode_differs: u64,
    /// Our length (decode, else insn_len) differs from the disassembler's.
    pub len_disagree: u64,
    pub len_examples: Vec<Example>,
    /// Symbols and the instructions inside one.
    pub symbols: u64,
    pub in_symbols: u64,
    /// Instructions inside a symbol that the walk from its start does not
    /// reach; and those of them that would otherwise be accepted.
    pub walk_lost: u64,
    pub walk_lost_accepted: u64,
    /// Symbols whose walk stops before their end (undecodable), with the
    /// instructions each loses.
    pub walk_stops: u64,
    pub walk_stop_examples: Vec<(u64, String, Example)>,
    /// What Linux's rules refuse, where we model them (arm64).
    pub linux_refused: Option<u64>,
    /// The boundary walk with other symbol sources.
    pub extra_walks: Vec<WalkStats>,
}

/// The boundary walk with one symbol source.
#[derive(Default)]
pub struct WalkStats {
    pub source: &'static str,
    pub symbols: u64,
    pub in_symbols: u64,
    pub lost: u64,
    pub lost_accepted: u64,
    pub stops: u64,
}

/// The walk over `unit` with `symbols`; `accepted[i]`: the i-th
/// instruction is not refused.
fn walk_pass<A: Arch>(
    unit: &Unit,
    symbols: &[(u64, u64, String)],
    accepted: &[bool],
    stats: &mut WalkStats,
) {
    stats.symbols += symbols.len() as u64;
    let mut walked: Option<(usize, Vec<bool>)> = None;
    for (insn, &ok) in unit.insns.iter().zip(accepted) {
        let i = symbols.partition_point(|s| s.0 <= insn.addr);
        let Some(j) = i
            .checked_sub(1)
            .filter(|&j| insn.addr < symbols[j].0 + symbols[j].1)
        else {
            continue;
        };
        stats.in_symbols += 1;
        if walked.as_ref().map(|w| w.0) != Some(j) {
            let (start, size, _) = symbols[j];
            let end = (start + size).min(unit.base + unit.bytes.len() as u64);
            let (reached, stop) = walk::<A>(unit, start, end);
            if stop.is_some() {
                stats.stops += 1;
            }
            walked = Some((j, reached));
        }
        let reached = &walked.as_ref().unwrap().1;
        if !reached
            .get((insn.addr - symbols[j].0) as usize)
            .copied()
            .unwrap_or(false)
        {
            stats.lost += 1;
            if ok {
                stats.lost_accepted += 1;
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Stepped,
    Simulated,
    Refused,
}

fn refusal_key(e: &ProbeError) -> String {
    match e.kind() {
        ProbeErrorKind::Refused(r) => format!("{}: {}", r.mnemonic, r.reason),
        ProbeErrorKind::Undecodable => "undecodable".to_string(),
        other => format!("{other:?}"),
    }
}

/// The slot is built at this distance from the probed address, so a
/// pc-relative fix-up shows as changed bytes.
const SLOT_DISTANCE: u64 = 0x10_0000;

/// Decide about one instruction in one mode and count it.
#[allow(clippy::too_many_arguments)]
fn decide<A: Arch>(
    counts: &mut ModeCounts,
    mode: ExecMode,
    addr: u64,
    bytes: &[u8],
    before: &[u8],
    pc: PcUse,
    example: &dyn Fn(&str) -> Example,
) -> (Verdict, Option<usize>) {
    let a = addr as usize;
    let decoded = match catch_unwind(AssertUnwindSafe(|| A::decode(a, bytes, mode))) {
        Ok(d) => d,
        Err(_) => {
            counts.panics += 1;
            keep(&mut counts.panic_examples, || example("decode panicked"));
            counts.refused += 1;
            return (Verdict::Refused, None);
        }
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => {
            counts.refused += 1;
            let entry = counts
                .refusals
                .entry(refusal_key(&e))
                .or_insert_with(|| (0, example("")));
            entry.0 += 1;
            return (Verdict::Refused, None);
        }
    };
    if let Err(e) = A::check_sequence(a, before, mode) {
        counts.refused_sequence += 1;
        let entry = counts
            .refusals
            .entry(format!("(sequence) {}", refusal_key(&e)))
            .or_insert_with(|| (0, example("")));
        entry.0 += 1;
        return (Verdict::Refused, Some(decoded.len));
    }
    match decoded.handling {
        Handling::Simulate => {
            counts.simulated += 1;
            (Verdict::Simulated, Some(decoded.len))
        }
        Handling::StepOutOfLine { .. } => {
            counts.stepped += 1;
            let orig = &bytes[..decoded.len.min(bytes.len())];
            let slot = (addr + SLOT_DISTANCE) as usize;
            match A::build_slot(&decoded, orig, a, slot, mode, false) {
                Ok(image) => {
                    let changed = image.as_bytes().get(..orig.len()) != Some(orig);
                    if changed {
                        counts.fixed_up += 1;
                        if pc == PcUse::None {
                            counts.fixed_up_not_pc += 1;
                        }
                    } else if pc != PcUse::None {
                        counts.unsafe_steps += 1;
                        keep(&mut counts.unsafe_examples, || example("stepped unchanged"));
                    }
                }
                Err(_) => {
                    counts.slot_errors += 1;
                }
            }
            (Verdict::Stepped, Some(decoded.len))
        }
    }
}

/// The boundaries the walk from `start` reaches before `end` (offsets
/// from `start`), and where it stopped if it could not decode.
fn walk<A: Arch>(unit: &Unit, start: u64, end: u64) -> (Vec<bool>, Option<u64>) {
    let size = (end - start) as usize;
    let mut reached = vec![false; size];
    let mut at = start;
    while at < end {
        reached[(at - start) as usize] = true;
        let off = (at - unit.base) as usize;
        let len = catch_unwind(|| A::insn_len(&unit.bytes[off..]))
            .ok()
            .flatten();
        match len {
            Some(len) if len > 0 => at += len as u64,
            _ => return (reached, Some(at)),
        }
    }
    (reached, None)
}

/// Run backend `A` over every instruction of `units`.
pub fn measure<A: Arch>(
    units: &[Unit],
    classify: fn(&str) -> PcUse,
    linux: Option<fn(&[u8]) -> bool>,
) -> Report {
    let mut r = Report {
        linux_refused: linux.map(|_| 0),
        ..Report::default()
    };
    for unit in units {
        r.symbols += unit.symbols.len() as u64;
        // The walk of the symbol last looked at: (symbol index, reached).
        let mut walked: Option<(usize, Vec<bool>)> = None;
        // Per instruction of the unit: not refused (kernel mode).
        let mut accepted = vec![false; unit.insns.len()];
        for (n, insn) in unit.insns.iter().enumerate() {
            let Some(off) = insn.addr.checked_sub(unit.base).map(|o| o as usize) else {
                continue;
            };
            if off >= unit.bytes.len() {
                continue;
            }
            // Zero-filled padding between functions is no instruction of
            // the program (`udf #0`, `c.unimp`): nobody probes it, and
            // Linux's rules are measured on the same set. Code outside the
            // symbols a corpus has (static functions of a library known by
            // `.dynsym` only) is counted.
            let inside = {
                let i = unit.symbols.partition_point(|s| s.0 <= insn.addr);
                i.checked_sub(1)
                    .is_some_and(|j| insn.addr < unit.symbols[j].0 + unit.symbols[j].1)
            };
            let len = (insn.len as usize).min(unit.bytes.len() - off);
            let zero = len > 0 && unit.bytes[off..off + len].iter().all(|&b| b == 0);
            if !inside && zero && !unit.symbols.is_empty() {
                r.outside_functions += 1;
                continue;
            }
            r.insns += 1;
            let bytes = &unit.bytes[off..];
            let exact = &bytes[..(insn.len as usize).min(bytes.len())];
            let text = insn.text.as_str();
            let example = |note: &str| Example {
                addr: insn.addr,
                bytes: exact.to_vec(),
                text: text.to_string(),
                note: note.to_string(),
            };
            if text.starts_with("(bad)")
                || text.starts_with(".word")
                || text.starts_with(".byte")
                || text.starts_with(".insn")
                || text.starts_with("<unknown>")
            {
                r.dis_unknown += 1;
            }
            let pc = classify(text);
            match pc {
                PcUse::Relative => r.pc_relative += 1,
                PcUse::Transfer => r.pc_transfer += 1,
                PcUse::None => {}
            }

            // The containing symbol: the nearest start at or below, if its
            // size covers the address.
            let i = unit.symbols.partition_point(|s| s.0 <= insn.addr);
            let sym = i
                .checked_sub(1)
                .filter(|&j| insn.addr < unit.symbols[j].0 + unit.symbols[j].1);
            let floor = match sym {
                Some(j) => unit.symbols[j].0,
                None => unit.base,
            };
            let look = A::LOOK_BACK.min(128) as u64;
            let from = insn.addr.saturating_sub(look).max(floor);
            let before = &unit.bytes[(from - unit.base) as usize..off];

            let (kv, klen) = decide::<A>(
                &mut r.kernel,
                ExecMode::Kernel,
                insn.addr,
                bytes,
                before,
                pc,
                &example,
            );
            let (uv, _) = decide::<A>(
                &mut r.user,
                ExecMode::User,
                insn.addr,
                bytes,
                before,
                pc,
                &example,
            );
            if kv != uv {
                r.mode_differs += 1;
            }
            accepted[n] = kv != Verdict::Refused;
            if let (Some(linux), Some(count)) = (linux, r.linux_refused.as_mut()) {
                // A refusal with a length is check_sequence's: Linux's
                // exclusive-window rule is the same look-back.
                let window = kv == Verdict::Refused && klen.is_some();
                if window || linux(exact) {
                    *count += 1;
                }
            }

            let ours = klen.or_else(|| catch_unwind(|| A::insn_len(bytes)).ok().flatten());
            if ours != Some(insn.len as usize) {
                r.len_disagree += 1;
                keep(&mut r.len_examples, || {
                    example(&format!(
                        "we say {}, the disassembler {}",
                        ours.map_or("undecodable".to_string(), |l| l.to_string()),
                        insn.len
                    ))
                });
            }

            if let Some(j) = sym {
                r.in_symbols += 1;
                let (start, size, ref name) = unit.symbols[j];
                if walked.as_ref().map(|w| w.0) != Some(j) {
                    let end = (start + size).min(unit.base + unit.bytes.len() as u64);
                    let (reached, stop) = walk::<A>(unit, start, end);
                    if let Some(stop) = stop {
                        r.walk_stops += 1;
                        let lost = (unit.insns.partition_point(|x| x.addr < end)
                            - unit.insns.partition_point(|x| x.addr <= stop))
                            as u64;
                        let so = (stop - unit.base) as usize;
                        let sb = &unit.bytes[so..(so + 8).min(unit.bytes.len())];
                        let stop_text = unit
                            .insns
                            .iter()
                            .find(|x| x.addr == stop)
                            .map_or(String::new(), |x| x.text.clone());
                        r.walk_stop_examples.push((
                            lost,
                            format!("{name}+{:#x}", stop - start),
                            Example {
                                addr: stop,
                                bytes: sb.to_vec(),
                                text: stop_text,
                                note: String::new(),
                            },
                        ));
                    }
                    walked = Some((j, reached));
                }
                let reached = &walked.as_ref().unwrap().1;
                let idx = (insn.addr - start) as usize;
                if !reached.get(idx).copied().unwrap_or(false) {
                    r.walk_lost += 1;
                    if kv != Verdict::Refused {
                        r.walk_lost_accepted += 1;
                    }
                }
            }
        }
        for (source, symbols) in &unit.extra_symbols {
            let k = match r.extra_walks.iter().position(|w| w.source == *source) {
                Some(k) => k,
                None => {
                    r.extra_walks.push(WalkStats {
                        source,
                        ..WalkStats::default()
                    });
                    r.extra_walks.len() - 1
                }
            };
            walk_pass::<A>(unit, symbols, &accepted, &mut r.extra_walks[k]);
        }
    }
    r.walk_stop_examples.sort_by_key(|e| std::cmp::Reverse(e.0));
    r.walk_stop_examples.truncate(EXAMPLES);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify;

    fn insn(addr: u64, len: u8, text: &str) -> DisInsn {
        DisInsn {
            section: 1,
            addr,
            len,
            text: text.into(),
        }
    }

    fn unit(bytes: &[u8], insns: Vec<DisInsn>) -> Unit {
        Unit {
            file: "test".into(),
            base: 0x1000,
            bytes: bytes.to_vec(),
            symbols: vec![(0x1000, bytes.len() as u64, "f".into())],
            extra_symbols: Vec::new(),
            insns,
        }
    }

    #[test]
    fn a_fixed_up_rip_operand_is_safe() {
        // lea 0x0(%rip),%rax; ret
        let u = unit(
            &[0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xc3],
            vec![
                insn(0x1000, 7, "lea 0x0(%rip),%rax"),
                insn(0x1007, 1, "ret"),
            ],
        );
        let r = measure::<probe_hal_x86_64::X86_64>(&[u], classify::x86_64, None);
        assert_eq!(r.insns, 2);
        assert_eq!(r.kernel.stepped, 1);
        assert_eq!(r.kernel.fixed_up, 1);
        assert_eq!(r.kernel.simulated, 1);
        assert_eq!(r.kernel.unsafe_steps + r.user.unsafe_steps, 0);
        assert_eq!(r.len_disagree, 0);
        assert_eq!(r.walk_lost, 0);
    }

    #[test]
    fn a_pc_reading_instruction_stepped_unchanged_is_caught() {
        // A nop the disassembler (here: the test) calls a relative jump:
        // the backend steps it unchanged, which the rule must report.
        let u = unit(&[0x90], vec![insn(0x1000, 1, "jmp 1234 <f>")]);
        let r = measure::<probe_hal_x86_64::X86_64>(&[u], classify::x86_64, None);
        assert_eq!(r.kernel.unsafe_steps, 1);
        assert_eq!(r.user.unsafe_steps, 1);
    }

    #[test]
    fn length_disagreements_and_walk_losses_are_counted() {
        // The disassembler claims a 2-byte instruction where we see two
        // nops: the second boundary it names is one the walk also reaches,
        // the third (at +2) is inside nothing we know.
        let u = unit(
            &[0x90, 0x90, 0x90],
            vec![insn(0x1000, 2, "xchg %ax,%ax"), insn(0x1002, 1, "nop")],
        );
        let r = measure::<probe_hal_x86_64::X86_64>(&[u], classify::x86_64, None);
        assert_eq!(r.len_disagree, 1);
        assert_eq!(r.walk_lost, 0);
        // `push %es` does not exist in 64-bit mode: the walk stops there,
        // and the nop after it is lost although it would be stepped.
        let u = unit(
            &[0x06, 0x90],
            vec![insn(0x1000, 1, "(bad)"), insn(0x1001, 1, "nop")],
        );
        let r = measure::<probe_hal_x86_64::X86_64>(&[u], classify::x86_64, None);
        assert_eq!(r.dis_unknown, 1);
        assert_eq!(r.walk_stops, 1);
        assert_eq!(r.walk_lost, 1);
        assert_eq!(r.walk_lost_accepted, 1);
    }
}
