//! The boundary sweep: a probe at every byte offset of several callable
//! functions, one at a time. Each offset is either refused with the right
//! reason (not 4-byte aligned; inside the exclusive window of
//! `t_atomic_inc`; `autiasp`) or probed, and then the function still
//! returns exactly what it returns unprobed, with the probe hit whenever
//! its instruction runs.

use core::sync::atomic::{AtomicU32, Ordering};

use probe_core::{Kprobe, ProbeErrorKind};

use super::handlers::{pre_count, Seen};
use super::Report;
use crate::kernel::ENGINE;
use crate::testfns::{addr, call, symbols};

static SEEN: Seen = Seen::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Call the function named `name` with its sweep arguments.
fn call_named(name: &str) -> usize {
    match name {
        "t_recur" => call(addr::t_recur(), 4, 0),
        "t_add2" => call(addr::t_add2(), 3, 4),
        "t_hot" => call(addr::t_hot(), 5, 0),
        "t_churn" => call(addr::t_churn(), 7, 0),
        "t_pac" => call(addr::t_pac(), 5, 0),
        "t_call_via" => call(addr::t_call_via(), 3, addr::t_bti_add()),
        "t_atomic_inc" => {
            COUNTER.store(41, Ordering::SeqCst);
            let old = call(addr::t_atomic_inc(), COUNTER.as_ptr() as usize, 0);
            old * 1000 + COUNTER.load(Ordering::SeqCst) as usize
        }
        _ => usize::MAX,
    }
}

pub fn run(r: &mut Report) {
    const NAMES: [&str; 7] = [
        "t_recur",
        "t_add2",
        "t_hot",
        "t_churn",
        "t_pac",
        "t_call_via",
        "t_atomic_inc",
    ];
    let inc = addr::t_atomic_inc();
    for name in NAMES {
        let Some(f) = symbols().into_iter().find(|s| s.name == name) else {
            r.check(false, format_args!("boundary sweep: no symbol {name}"));
            continue;
        };
        let want = call_named(name);
        let (mut probed, mut refused, mut bad) = (0, 0, 0);
        for off in 0..f.end - f.start {
            let at = f.start + off;
            SEEN.reset();
            match ENGINE.register_kprobe(&Kprobe::at(at).pre(pre_count).data(&SEEN)) {
                Ok(id) => {
                    let got = call_named(name);
                    let hits = SEEN.counts().0;
                    let _ = ENGINE.unregister(id);
                    probed += 1;
                    // (t_hot+12 only runs for x = 0: no hit there.)
                    if got != want || (hits == 0) != (name == "t_hot" && off == 12) {
                        bad += 1;
                        r.note(format_args!(
                            "{name}+{off}: got {got:#x} (want {want:#x}), {hits} hits"
                        ));
                    }
                }
                Err(e) => {
                    refused += 1;
                    let expected = match e.kind() {
                        ProbeErrorKind::Misaligned { align: 4 } => off % 4 != 0,
                        ProbeErrorKind::Refused(why) => {
                            (name == "t_atomic_inc" && (inc + 4..=inc + 12).contains(&at))
                                || why.mnemonic == "autiasp"
                        }
                        _ => false,
                    };
                    if !expected {
                        bad += 1;
                        r.note(format_args!("{name}+{off}: {e}"));
                    }
                }
            }
        }
        r.check(
            bad == 0,
            format_args!(
                "boundary sweep {name}: {probed} offsets probed with the right result, {refused} refused for the right reason"
            ),
        );
    }
}
