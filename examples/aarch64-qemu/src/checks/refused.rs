//! Every class of instruction the backend refuses, with its reason, and
//! the addresses the engine or the kernel refuse.

use probe_core::{Kprobe, Kretprobe, ProbeErrorKind};
use probe_hal::Refusal;

use super::handlers::{pre_count, Seen};
use super::Report;
use crate::kernel::{ProbeEngine, ENGINE};
use crate::testfns::{addr, call, word_at};

static SEEN: Seen = Seen::new();

fn refusal_of(at: usize) -> Result<Refusal, ProbeErrorKind> {
    match ENGINE.register_kprobe(&Kprobe::at(at).pre(pre_count).data(&SEEN)) {
        Ok(id) => {
            let _ = ENGINE.unregister(id);
            Err(ProbeErrorKind::AlreadyRegistered)
        }
        Err(e) => match e.kind() {
            ProbeErrorKind::Refused(r) => Ok(r),
            other => Err(other),
        },
    }
}

fn kind_of(at: usize) -> Option<ProbeErrorKind> {
    match ENGINE.register_kprobe(&Kprobe::at(at)) {
        Ok(id) => {
            let _ = ENGINE.unregister(id);
            None
        }
        Err(e) => Some(e.kind()),
    }
}

pub fn run(r: &mut Report) {
    let refused = addr::t_refused();
    let inc = addr::t_atomic_inc();
    let cases: [(&str, usize, &str); 18] = [
        ("ldaxr", inc + 4, "ldaxr"),
        ("stlxr", inc + 12, "stlxr"),
        (
            "a probe inside an ldaxr/stlxr loop",
            inc + 8,
            "ldaxr … stlxr sequence",
        ),
        ("svc", refused, "svc"),
        ("hvc", refused + 4, "hvc"),
        ("brk", refused + 8, "brk"),
        ("hlt", refused + 12, "hlt"),
        ("eret", refused + 16, "eret"),
        ("msr (immediate)", refused + 20, "msr (immediate)"),
        ("msr (register)", refused + 24, "msr"),
        ("mrs daif", refused + 28, "mrs daif"),
        ("mrs elr_el1", refused + 32, "mrs elr_el1"),
        ("mrs esr_el1", refused + 36, "mrs esr_el1"),
        ("wfi", refused + 40, "wfi"),
        ("autiasp", refused + 44, "autiasp"),
        ("retaa", refused + 48, "retaa"),
        ("ldxr", refused + 52, "ldxr"),
        ("ldr q0 (literal)", refused + 56, "ldr (literal, SIMD&FP)"),
    ];
    for (what, at, mnemonic) in cases {
        let before = word_at(at);
        let got = refusal_of(at);
        let ok = matches!(got, Ok(ref f) if f.mnemonic == mnemonic && !f.reason.is_empty())
            && word_at(at) == before;
        match got {
            Ok(f) => r.check(
                ok,
                format_args!("refused {what}: `{}`: {}", f.mnemonic, f.reason),
            ),
            Err(e) => r.check(false, format_args!("refused {what}: got {e:?}")),
        };
    }

    // The LL/SC loop still works with probes just outside its window.
    SEEN.reset();
    let counter = core::sync::atomic::AtomicU32::new(41);
    let ids =
        [inc, inc + 16].map(|a| ENGINE.register_kprobe(&Kprobe::at(a).pre(pre_count).data(&SEEN)));
    let old = call(inc, counter.as_ptr() as usize, 0);
    for id in ids.iter().flatten() {
        let _ = ENGINE.unregister(*id);
    }
    r.check_eq(
        (
            ids.map(|i| i.is_ok()),
            old,
            counter.load(core::sync::atomic::Ordering::SeqCst),
            SEEN.counts().0,
        ),
        ([true, true], 41, 42, 2),
        format_args!("probes before ldaxr and after stlxr: the exclusive increment still works"),
    );

    // Addresses refused by the engine and the kernel.
    r.check_eq(
        kind_of(addr::t_add2() + 2),
        Some(ProbeErrorKind::Misaligned { align: 4 }),
        format_args!("refused: an address that is not a multiple of 4"),
    );
    r.check_eq(
        kind_of(crate::trap::entry_range().start + 8),
        Some(ProbeErrorKind::Blacklisted),
        format_args!("refused: the kernel's exception vectors (blacklist)"),
    );
    r.check_eq(
        kind_of(probe_hal_aarch64::rethook::kernel_trampoline().unwrap_or(0)),
        Some(ProbeErrorKind::Blacklisted),
        format_args!("refused: the return trampoline"),
    );
    let engine_trap_path =
        ProbeEngine::handle_breakpoint::<probe_hal_aarch64::PtRegs> as *const () as usize;
    r.check_eq(
        kind_of(engine_trap_path),
        Some(ProbeErrorKind::Blacklisted),
        format_args!("refused: the engine's own breakpoint handler"),
    );
    let not_entry = ENGINE
        .register_kretprobe(&Kretprobe::at(addr::t_recur() + 4))
        .err()
        .map(|e| e.kind());
    r.check_eq(
        not_entry,
        Some(ProbeErrorKind::NotFunctionEntry),
        format_args!("refused: a kretprobe that is not on a function entry"),
    );
    let unknown = ENGINE
        .register_kprobe(&Kprobe::symbol("no_such_function", 0))
        .err()
        .map(|e| e.kind());
    let size = crate::testfns::symbols()
        .iter()
        .find(|s| s.name == "t_add2")
        .map_or(0, |s| s.end - s.start);
    let outside = ENGINE
        .register_kprobe(&Kprobe::symbol("t_add2", size))
        .err()
        .map(|e| e.kind());
    r.check_eq(
        (unknown, outside),
        (
            Some(ProbeErrorKind::UnknownSymbol),
            Some(ProbeErrorKind::OffsetOutsideSymbol { size }),
        ),
        format_args!("refused: an unknown symbol, an offset past the symbol's end"),
    );
}
