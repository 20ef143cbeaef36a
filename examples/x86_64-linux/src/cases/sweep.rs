//! The instruction-boundary sweep: a probe at each of the offsets 0..=63 of
//! `tf_sweep` is either refused with `NotInsnBoundary` (naming the
//! instruction that covers it) or registered, hit once, and the function
//! still returns what it returns unprobed. Where the boundaries are comes
//! from the assembler's labels, not from the decoder under test.

use probe_core::ProbeErrorKind;
use x86_64_linux::recorder::Recorder;
use x86_64_linux::report::Report;
use x86_64_linux::testfns;
use x86_64_linux::{ensure, ensure_eq};

use super::{call_fn, kprobe, peek, CheckResult, Probes};
use crate::ENGINE;

const ARG: u64 = 0x1234;

fn sweep() -> CheckResult {
    let f = testfns::func("tf_sweep");
    ensure!(f.size > 64, "tf_sweep is only {} bytes", f.size);
    let mut bounds: Vec<usize> = testfns::points()
        .filter(|p| p.func == f.start)
        .map(|p| p.offset)
        .collect();
    bounds.sort_unstable();
    bounds.push(f.size);
    let unprobed = call_fn("tf_sweep", ARG, 0, 0).ret;
    let (mut probed, mut refused) = (0, 0);
    for off in 0..=63usize {
        let addr = f.start + off;
        let before = peek(addr, 1)?;
        let rec = Recorder::leak();
        let mut probes = Probes::new();
        let r = ENGINE.register_kprobe(&kprobe(addr, rec, off % 2 == 1));
        if bounds.contains(&off) {
            probes.add(&format!("offset {off}"), r)?;
            let got = call_fn("tf_sweep", ARG, 0, 0).ret;
            ensure_eq!(got, unprobed, "offset {off}: result");
            ensure_eq!(rec.hits(), 1, "offset {off}: hits");
            probes.clear()?;
            probed += 1;
        } else {
            let i = bounds.partition_point(|&b| b <= off);
            let (start, end) = (bounds[i - 1], bounds[i]);
            match r {
                Ok(id) => {
                    let _ = ENGINE.unregister(id);
                    return Err(format!("offset {off} (inside {start}..{end}) was accepted"));
                }
                Err(e) => {
                    ensure_eq!(
                        e.kind(),
                        ProbeErrorKind::NotInsnBoundary {
                            insn_start: f.start + start,
                            insn_len: end - start,
                        },
                        "offset {off}"
                    );
                    ensure_eq!(e.addr(), addr, "offset {off}: error address");
                }
            }
            refused += 1;
        }
        ensure_eq!(peek(addr, 1)?, before, "offset {off}: byte afterwards");
    }
    Ok(format!(
        "{probed} boundaries probed and correct, {refused} offsets refused as inside an instruction"
    ))
}

pub(super) fn run(r: &mut Report) {
    r.check(
        "sweep: offsets 0..=63 of tf_sweep, each refused or probed and correct",
        sweep,
    );
}
