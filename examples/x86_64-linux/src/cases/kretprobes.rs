//! Return probes on real returns: the entry breakpoint swaps the return
//! address for the backend's code trampoline (`probe-hal-x86_64`'s assembly),
//! which calls back into the engine through probe-hal's return hook.

use core::sync::atomic::Ordering;
use std::sync::Mutex;

use probe_core::{Kretprobe, ProbeId};
use x86_64_linux::recorder::{
    entry_even_only, entry_record, ret_adjust, ret_record, Recorder, ENTRY, INSTANCE, RETURN,
    RETURN_ADDRESS,
};
use x86_64_linux::report::Report;
use x86_64_linux::testfns;
use x86_64_linux::{ensure, ensure_eq};

use super::{call_fn, CheckResult, Probes};
use crate::{threads, ENGINE};

fn kretprobe(name: &str, rec: &'static Recorder) -> Kretprobe<'static> {
    Kretprobe::at(testfns::func(name).start)
        .entry(entry_record)
        .ret(ret_record)
        .data_size(8)
        .data(rec)
}

fn pool_is_full() -> Result<(), String> {
    ensure_eq!(ENGINE.free_instances(), 64, "free return instances");
    ensure_eq!(
        ENGINE.pending_returns(threads::task_state()),
        0,
        "instances still on this thread"
    );
    Ok(())
}

fn recursion() -> CheckResult {
    let rec = Recorder::leak();
    let mut probes = Probes::new();
    let id = probes.add(
        "kretprobe tf_fact",
        ENGINE.register_kretprobe(&kretprobe("tf_fact", rec)),
    )?;
    ensure_eq!(call_fn("tf_fact", 6, 0, 0).ret, 720, "6!");
    ensure_eq!(
        rec.log.values(ENTRY),
        vec![6, 5, 4, 3, 2, 1],
        "arguments at entry"
    );
    ensure_eq!(
        rec.log.values(RETURN),
        vec![1, 2, 6, 24, 120, 720],
        "return values, in order"
    );
    ensure_eq!(
        rec.log.values(INSTANCE),
        vec![1, 2, 3, 4, 5, 6],
        "per-instance data at each return"
    );
    let ret_addrs = rec.log.values(RETURN_ADDRESS);
    let after = testfns::point("fa_after").addr() as u64;
    ensure_eq!(
        ret_addrs[..5],
        [after; 5],
        "real return addresses of the inner calls"
    );
    ensure!(
        !testfns::func("tf_fact").contains(ret_addrs[5] as usize),
        "outermost return address {:#x} inside tf_fact",
        ret_addrs[5]
    );
    let info = ENGINE.info(id).map_err(|e| e.to_string())?;
    ensure_eq!((info.hits, info.missed), (6, 0), "hits and missed");
    probes.clear()?;
    pool_is_full()?;
    ensure_eq!(call_fn("tf_fact", 6, 0, 0).ret, 720, "6! after unregister");
    Ok("6! = 720: six entries, six returns in order".into())
}

fn maxactive() -> CheckResult {
    let rec = Recorder::leak();
    let mut probes = Probes::new();
    let id = probes.add(
        "kretprobe tf_fact maxactive 3",
        ENGINE.register_kretprobe(&kretprobe("tf_fact", rec).maxactive(3)),
    )?;
    ensure_eq!(call_fn("tf_fact", 6, 0, 0).ret, 720, "6!");
    ensure_eq!(rec.log.values(ENTRY), vec![6, 5, 4], "tracked calls");
    ensure_eq!(
        rec.log.values(RETURN),
        vec![24, 120, 720],
        "returns of the tracked calls"
    );
    let info = ENGINE.info(id).map_err(|e| e.to_string())?;
    ensure_eq!((info.hits, info.missed), (3, 3), "hits and missed");
    probes.clear()?;
    pool_is_full()?;
    Ok("3 tracked, 3 counted missed".into())
}

fn decline_and_rewrite() -> CheckResult {
    let rec = Recorder::leak();
    rec.adjust.store(1000, Ordering::Relaxed);
    let mut probes = Probes::new();
    probes.add(
        "kretprobe tf_double",
        ENGINE.register_kretprobe(
            &Kretprobe::at(testfns::func("tf_double").start)
                .entry(entry_even_only)
                .ret(ret_adjust)
                .data_size(8)
                .data(rec),
        ),
    )?;
    ensure_eq!(
        call_fn("tf_double", 3, 0, 0).ret,
        6,
        "declined call (odd argument)"
    );
    ensure_eq!(
        call_fn("tf_double", 4, 0, 0).ret,
        1008,
        "tracked call, return value rewritten"
    );
    ensure_eq!(
        call_fn("tf_call", 4, 0, 0).ret,
        1009,
        "tracked call through call rel32"
    );
    ensure_eq!(rec.log.values(ENTRY), vec![4, 4], "entries tracked");
    ensure_eq!(
        rec.log.values(RETURN),
        vec![8, 8],
        "return values before the rewrite"
    );
    let ra = rec.log.values(RETURN_ADDRESS);
    ensure_eq!(
        ra[1],
        testfns::point("ca_after").addr() as u64,
        "return address inside tf_call"
    );
    probes.clear()?;
    pool_is_full()?;
    Ok(String::new())
}

fn on_simulated_and_endbr_entries() -> CheckResult {
    // tf_jmp starts with a simulated jmp; tf_endbr with endbr64, which the
    // entry probe skips.
    let (a, b) = (Recorder::leak(), Recorder::leak());
    let mut probes = Probes::new();
    probes.add(
        "kretprobe tf_jmp",
        ENGINE.register_kretprobe(&kretprobe("tf_jmp", a)),
    )?;
    probes.add(
        "kretprobe tf_endbr",
        ENGINE.register_kretprobe(&kretprobe("tf_endbr", b)),
    )?;
    let endbr = testfns::func("tf_endbr").start;
    ensure!(
        ENGINE.is_armed(probe_core::Space::Kernel, endbr + 4),
        "the tf_endbr probe is not just after endbr64"
    );
    ensure_eq!(
        super::peek(endbr, 4)?,
        vec![0xf3, 0x0f, 0x1e, 0xfa],
        "endbr64 untouched"
    );
    ensure_eq!(call_fn("tf_jmp", 1, 0, 0).ret, 8, "tf_jmp");
    ensure_eq!(call_fn("tf_endbr", 1, 0, 0).ret, 6, "tf_endbr");
    ensure_eq!(a.log.values(RETURN), vec![8], "tf_jmp return");
    ensure_eq!(b.log.values(RETURN), vec![6], "tf_endbr return");
    probes.clear()?;
    pool_is_full()?;
    Ok(String::new())
}

/// The probe the callback unregisters.
static LIVE_PROBE: Mutex<Option<ProbeId>> = Mutex::new(None);

extern "C" fn unregister_while_inside(x: u64) -> u64 {
    let Some(id) = *LIVE_PROBE.lock().unwrap() else {
        return u64::MAX;
    };
    match ENGINE.unregister(id) {
        Ok(()) => x * 2,
        Err(_) => u64::MAX,
    }
}

fn unregister_with_live_instance() -> CheckResult {
    let rec = Recorder::leak();
    let id = ENGINE
        .register_kretprobe(&kretprobe("tf_callback", rec))
        .map_err(|e| e.to_string())?;
    *LIVE_PROBE.lock().unwrap() = Some(id);
    let cb = unregister_while_inside as *const () as u64;
    // tf_callback's return address is the trampoline while the callback
    // unregisters the probe.
    let r = call_fn("tf_callback", cb, 20, 0).ret;
    ensure_eq!(
        r,
        41,
        "tf_callback(cb, 20) (u64::MAX + 1 = 0 means unregister failed)"
    );
    ensure_eq!(rec.hits(), 1, "entry handler");
    ensure_eq!(
        rec.post_hits(),
        0,
        "return handler of an unregistered probe"
    );
    ensure!(ENGINE.info(id).is_err(), "probe still registered");
    pool_is_full()?;
    Ok("returned through the trampoline to the real caller, no handler".into())
}

fn several_threads() -> CheckResult {
    const THREADS: usize = 3;
    const CALLS: u64 = 200;
    let rec = Recorder::leak();
    let mut probes = Probes::new();
    let id = probes.add(
        "kretprobe tf_fact",
        ENGINE.register_kretprobe(&kretprobe("tf_fact", rec)),
    )?;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let me = threads::register_current();
                let mut bad = 0;
                for i in 0..CALLS {
                    let n = 1 + (i + t as u64) % 5;
                    let want: u64 = (1..=n).product();
                    if call_fn("tf_fact", n, 0, 0).ret != want {
                        bad += 1;
                    }
                }
                let pending = ENGINE.pending_returns(me.task());
                (bad, pending)
            })
        })
        .collect();
    let mut depth_sum = 0;
    for t in 0..THREADS {
        depth_sum += (0..CALLS).map(|i| 1 + (i + t as u64) % 5).sum::<u64>();
    }
    for w in workers {
        let (bad, pending) = w.join().map_err(|_| "worker panicked".to_string())?;
        ensure_eq!(bad, 0, "wrong results in a worker");
        ensure_eq!(pending, 0, "instances left on a worker");
    }
    let info = ENGINE.info(id).map_err(|e| e.to_string())?;
    ensure_eq!(
        (info.hits, info.missed),
        (depth_sum, 0),
        "calls tracked and missed"
    );
    ensure_eq!(rec.post_hits(), info.hits, "returns of tracked calls");
    probes.clear()?;
    pool_is_full()?;
    Ok(format!(
        "{THREADS} threads, {depth_sum} calls, {} tracked, {} missed",
        info.hits, info.missed
    ))
}

/// `ret 8` pops an argument with the return address: the frame seen at
/// the return lies 8 bytes above the entry frame.
fn ret_imm16() -> CheckResult {
    let rec = Recorder::leak();
    let mut probes = Probes::new();
    probes.add(
        "kretprobe tf_ret_imm",
        ENGINE.register_kretprobe(&kretprobe("tf_ret_imm", rec)),
    )?;
    // tf_ret(50) pushes 50, calls tf_ret_imm (2 × 50, `ret 8`), adds 1
    ensure_eq!(call_fn("tf_ret", 50, 0, 0).ret, 101, "tf_ret(50)");
    ensure_eq!(rec.log.values(RETURN), vec![100], "return value seen");
    probes.clear()?;
    pool_is_full()?;
    Ok("returned through the trampoline after `ret 8`".into())
}

/// What registering a kretprobe answered before `main` installed the
/// return hook (see [`try_before_the_return_hook`]).
static BEFORE_HOOK: std::sync::OnceLock<(Result<(), probe_core::ProbeErrorKind>, usize)> =
    std::sync::OnceLock::new();

/// Called by `main` before `set_return_hook`: a kernel kretprobe must be
/// refused then (the first return would find no engine).
pub fn try_before_the_return_hook() {
    let r = ENGINE
        .register_kretprobe(&kretprobe("tf_fact", Recorder::leak()))
        .map(|_| ())
        .map_err(|e| e.kind());
    let _ = BEFORE_HOOK.set((r, ENGINE.list::<4>().len()));
}

/// A second engine: the installed hook does not reach it.
static OTHER_ENGINE: crate::HarnessEngine = probe_core::Engine::new(crate::services::Services);

fn return_hook_required() -> CheckResult {
    let Some((before, left)) = BEFORE_HOOK.get() else {
        return Err("main did not try a kretprobe before installing the hook".into());
    };
    ensure_eq!(
        *before,
        Err(probe_core::ProbeErrorKind::ReturnHookMissing {
            other_engine: false
        }),
        "before set_return_hook"
    );
    ensure_eq!(*left, 0, "probes registered by the refused request");
    let other = OTHER_ENGINE
        .register_kretprobe(&kretprobe("tf_fact", Recorder::leak()))
        .map(|_| ())
        .map_err(|e| e.kind());
    ensure_eq!(
        other,
        Err(probe_core::ProbeErrorKind::ReturnHookMissing { other_engine: true }),
        "on an engine the hook does not reach"
    );
    ensure_eq!(
        OTHER_ENGINE.list::<4>().len(),
        0,
        "probes on the other engine"
    );
    ensure_eq!(
        OTHER_ENGINE.slot_usage(),
        (0, 0),
        "slots of the other engine"
    );
    Ok(String::new())
}

pub(super) fn run(r: &mut Report) {
    r.check(
        "kretprobe: refused before set_return_hook and on an engine the hook does not reach",
        return_hook_required,
    );
    r.check(
        "kretprobe: recursive function, every return value in order",
        recursion,
    );
    r.check("kretprobe: maxactive 3 on depth 6", maxactive);
    r.check("kretprobe: a function returning with ret imm16", ret_imm16);
    r.check(
        "kretprobe: entry handler declines, return handler rewrites rax",
        decline_and_rewrite,
    );
    r.check(
        "kretprobe: on a simulated entry (jmp) and after endbr64",
        on_simulated_and_endbr_entries,
    );
    r.check(
        "kretprobe: unregistered while an instance is live",
        unregister_with_live_instance,
    );
    r.check(
        "kretprobe: three threads, per-task instance stacks",
        several_threads,
    );
}
