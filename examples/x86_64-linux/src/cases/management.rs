//! Managing probes on live code: aggregate probes and enable/disable,
//! unregister restoring every byte, all-or-nothing batches, symbols,
//! handlers that redirect execution or change arguments, and the
//! registration errors a user meets.

use core::sync::atomic::Ordering;

use probe_core::{
    Kprobe, Kretprobe, PreAction, ProbeContext, ProbeErrorKind, ProbeId, ProbeKind, ProbeSpec,
    Registers, Space,
};
use probe_hal_x86_64::gpr::RAX;
use x86_64_linux::recorder::{entry_record, post_record, pre_record, ret_record, Recorder};
use x86_64_linux::report::Report;
use x86_64_linux::testfns;
use x86_64_linux::{ensure, ensure_eq};

use super::{call_fn, kprobe, peek, CheckResult, Probes};
use crate::{services, signals, ENGINE};

fn tf_alu(a: u64, b: u64) -> u64 {
    (((a + b) ^ 0x55) * 3 - b) << 2
}

fn hits(recs: &[&Recorder]) -> Vec<u64> {
    recs.iter().map(|r| r.hits()).collect()
}

fn aggregate() -> CheckResult {
    let addr = testfns::point("alu_add").addr();
    let orig = peek(addr, 1)?;
    let recs = [Recorder::leak(), Recorder::leak(), Recorder::leak()];
    let mut probes = Probes::new();
    let ids: Vec<_> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            probes.add(
                &format!("probe {i}"),
                ENGINE.register_kprobe(&kprobe(addr, r, false)),
            )
        })
        .collect::<Result<_, _>>()?;
    let traps = signals::traps();
    ensure_eq!(call_fn("tf_alu", 10, 32, 0).ret, 1396, "result");
    ensure_eq!(hits(&recs), vec![1, 1, 1], "three probes, one breakpoint");
    ensure_eq!(
        signals::traps() - traps,
        1,
        "SIGTRAPs for three boosted probes at one address"
    );
    ENGINE.disable(ids[1]).map_err(|e| e.to_string())?;
    ensure!(
        ENGINE.is_armed(Space::Kernel, addr),
        "disarmed with two probes enabled"
    );
    call_fn("tf_alu", 10, 32, 0);
    ensure_eq!(hits(&recs), vec![2, 1, 2], "middle one disabled");
    ENGINE.enable(ids[1]).map_err(|e| e.to_string())?;
    call_fn("tf_alu", 10, 32, 0);
    ensure_eq!(hits(&recs), vec![3, 2, 3], "enabled again");
    for &id in &ids {
        ENGINE.disable(id).map_err(|e| e.to_string())?;
    }
    ensure!(
        !ENGINE.is_armed(Space::Kernel, addr),
        "armed with every probe disabled"
    );
    ensure_eq!(peek(addr, 1)?, orig, "original byte while all are disabled");
    let traps = signals::traps();
    call_fn("tf_alu", 10, 32, 0);
    ensure_eq!(
        signals::traps() - traps,
        0,
        "SIGTRAPs with every probe disabled"
    );
    ensure_eq!(hits(&recs), vec![3, 2, 3], "nothing fires while disabled");
    // A post-handler among them makes the hit a real step (two traps).
    let post = Recorder::leak();
    probes.add(
        "probe with post",
        ENGINE.register_kprobe(&kprobe(addr, post, true)),
    )?;
    ENGINE.enable(ids[0]).map_err(|e| e.to_string())?;
    let traps = signals::traps();
    ensure_eq!(call_fn("tf_alu", 10, 32, 0).ret, 1396, "result");
    ensure_eq!(
        signals::traps() - traps,
        2,
        "SIGTRAPs with a post-handler at the point"
    );
    ensure_eq!(
        (recs[0].hits(), post.hits(), post.post_hits()),
        (4, 1, 1),
        "pre, pre, post"
    );
    let info = ENGINE.info(ids[2]).map_err(|e| e.to_string())?;
    ensure!(
        !info.enabled && info.hits == 3 && info.kind == ProbeKind::Kprobe,
        "info {info:?}"
    );
    probes.clear()?;
    ensure_eq!(peek(addr, 1)?, orig, "original byte after unregister");
    Ok(String::new())
}

fn unregister_restores_bytes() -> CheckResult {
    let funcs = ["tf_alu", "tf_pushpop", "tf_call", "tf_double", "tf_loop"];
    let before: Vec<Vec<u8>> = funcs
        .iter()
        .map(|f| {
            let f = testfns::func(f);
            peek(f.start, f.size)
        })
        .collect::<Result<_, _>>()?;
    let mut probes = Probes::new();
    let mut addrs = Vec::new();
    for (i, p) in testfns::points()
        .filter(|p| funcs.iter().any(|f| testfns::func(f).start == p.func))
        .filter(|p| p.name != "ca_after")
        .enumerate()
    {
        let rec = Recorder::leak();
        probes.add(
            p.name,
            ENGINE.register_kprobe(&kprobe(p.addr(), rec, i % 3 == 0)),
        )?;
        addrs.push(p.addr());
    }
    let rec = Recorder::leak();
    probes.add(
        "kretprobe tf_double",
        ENGINE.register_kretprobe(
            &Kretprobe::at(testfns::func("tf_double").start)
                .entry(entry_record)
                .ret(ret_record)
                .data(rec),
        ),
    )?;
    for &a in &addrs {
        ensure_eq!(peek(a, 1)?, vec![0xcc], "int3 at {a:#x}");
    }
    let (slots, pages) = ENGINE.slot_usage();
    ensure!(slots > 0 && pages > 0, "no slots in use");
    ensure_eq!(call_fn("tf_call", 21, 0, 0).ret, 43, "tf_call probed");
    ensure_eq!(call_fn("tf_loop", 5, 0, 0).ret, 20, "tf_loop probed");
    probes.clear()?;
    for (f, old) in funcs.iter().zip(&before) {
        let t = testfns::func(f);
        ensure!(
            peek(t.start, t.size)? == *old,
            "{f}: bytes differ after unregister"
        );
    }
    ensure_eq!(
        ENGINE.slot_usage(),
        (0, 0),
        "slots and pages after unregister"
    );
    ensure_eq!(services::slot_pages_held(), 0, "slot pages still mapped");
    Ok(format!(
        "{} probes in {} functions ({} slots on {} pages), every byte back",
        addrs.len() + 1,
        funcs.len(),
        slots,
        pages
    ))
}

fn batch() -> CheckResult {
    let (a, b) = (Recorder::leak(), Recorder::leak());
    let add = testfns::point("alu_add").addr();
    let hlt = testfns::func("tf_ref_hlt").start;
    let before = (peek(add, 1)?, peek(testfns::func("tf_double").start, 1)?);
    let mut ids = [ProbeId::NONE; 3];
    let bad = [
        ProbeSpec::Kprobe(kprobe(add, a, false)),
        ProbeSpec::Kretprobe(
            Kretprobe::at(testfns::func("tf_double").start)
                .ret(ret_record)
                .data(b),
        ),
        ProbeSpec::Kprobe(Kprobe::at(hlt).pre(pre_record)),
    ];
    let e = ENGINE.register_batch(&bad, &mut ids).unwrap_err();
    ensure_eq!(e.index, 2, "failing entry");
    ensure!(
        matches!(e.error.kind(), ProbeErrorKind::Refused(r) if r.mnemonic == "hlt"),
        "{e}"
    );
    ensure!(
        ENGINE.list::<4>().is_empty(),
        "probes left from a failed batch"
    );
    ensure_eq!(
        (peek(add, 1)?, peek(testfns::func("tf_double").start, 1)?),
        before,
        "bytes after a failed batch"
    );
    let good = [
        ProbeSpec::Kprobe(kprobe(add, a, true)),
        ProbeSpec::Kretprobe(
            Kretprobe::at(testfns::func("tf_double").start)
                .entry(entry_record)
                .ret(ret_record)
                .data(b),
        ),
    ];
    let mut ids = [ProbeId::NONE; 2];
    ENGINE
        .register_batch(&good, &mut ids)
        .map_err(|e| e.to_string())?;
    ensure_eq!(call_fn("tf_alu", 10, 32, 0).ret, 1396, "tf_alu");
    ensure_eq!(call_fn("tf_call", 1, 0, 0).ret, 3, "tf_call");
    ensure_eq!(
        (a.hits(), a.post_hits(), b.hits(), b.post_hits()),
        (1, 1, 1, 1),
        "hits"
    );
    let listed = ENGINE.list::<4>();
    ensure_eq!(listed.len(), 2, "listed probes");
    ENGINE.unregister_batch(&ids).map_err(|e| e.to_string())?;
    ensure!(
        ENGINE.list::<4>().is_empty(),
        "probes left after unregister_batch"
    );
    Ok(e.to_string())
}

fn symbols() -> CheckResult {
    let rec = Recorder::leak();
    let off = testfns::point("alu_xor").offset;
    let mut probes = Probes::new();
    probes.add(
        "tf_alu+off",
        ENGINE.register_kprobe(&Kprobe::symbol("tf_alu", off).pre(pre_record).data(rec)),
    )?;
    ensure_eq!(call_fn("tf_alu", 10, 32, 0).ret, 1396, "result");
    ensure_eq!(rec.hits(), 1, "hits through the symbol");
    ensure_eq!(rec.pre.seen().gpr[RAX], 42, "rax at alu_xor");
    probes.clear()?;
    let size = testfns::func("tf_alu").size;
    let e = ENGINE
        .register_kprobe(&Kprobe::symbol("tf_alu", size).pre(pre_record))
        .unwrap_err();
    ensure_eq!(
        e.kind(),
        ProbeErrorKind::OffsetOutsideSymbol { size },
        "offset past the end"
    );
    let e = ENGINE
        .register_kprobe(&Kprobe::symbol("no_such_function", 0).pre(pre_record))
        .unwrap_err();
    ensure_eq!(e.kind(), ProbeErrorKind::UnknownSymbol, "unknown symbol");
    // An entry probe through the symbol lands after endbr64.
    let rec = Recorder::leak();
    probes.add(
        "tf_endbr",
        ENGINE.register_kprobe(&Kprobe::symbol("tf_endbr", 0).pre(pre_record).data(rec)),
    )?;
    ensure_eq!(call_fn("tf_endbr", 1, 0, 0).ret, 6, "tf_endbr");
    let entry = testfns::func("tf_endbr").start;
    ensure_eq!(
        rec.pre.seen().pc,
        (entry + 4) as u64,
        "hit just after endbr64"
    );
    probes.clear()?;
    Ok(String::new())
}

fn errors() -> CheckResult {
    let mut probes = Probes::new();
    let add = testfns::point("alu_add").addr();
    let e = ENGINE
        .register_kretprobe(&Kretprobe::at(add).ret(ret_record))
        .unwrap_err();
    ensure_eq!(
        e.kind(),
        ProbeErrorKind::NotFunctionEntry,
        "kretprobe inside a function"
    );
    let rec = Recorder::leak();
    let id = probes.add("first", ENGINE.register_kprobe(&kprobe(add, rec, false)))?;
    let e = ENGINE
        .register_kprobe(&kprobe(add, rec, false))
        .unwrap_err();
    ensure_eq!(
        e.kind(),
        ProbeErrorKind::AlreadyRegistered,
        "the same probe twice"
    );
    let copy = services::copy_routine().start;
    let e = ENGINE
        .register_kprobe(&Kprobe::at(copy).pre(pre_record))
        .unwrap_err();
    ensure_eq!(
        e.kind(),
        ProbeErrorKind::Blacklisted,
        "the services' copy routine"
    );
    let tramp = probe_hal_x86_64::trampoline_address().ok_or("no trampoline")?;
    let e = ENGINE
        .register_kprobe(&Kprobe::at(tramp).pre(pre_record))
        .unwrap_err();
    ensure_eq!(
        e.kind(),
        ProbeErrorKind::Blacklisted,
        "the return trampoline"
    );
    let page = services::any_slot_page().ok_or("no slot page mapped")?;
    let e = ENGINE
        .register_kprobe(&Kprobe::at(page).pre(pre_record))
        .unwrap_err();
    ensure_eq!(e.kind(), ProbeErrorKind::Blacklisted, "a slot page");
    let e = ENGINE
        .register_kretprobe(&Kretprobe::at(testfns::func("tf_fact").start).data_size(65))
        .unwrap_err();
    ensure!(
        matches!(e.kind(), ProbeErrorKind::InvalidRequest(_)),
        "instance data too big: {e}"
    );
    probes.clear()?;
    let e = ENGINE.unregister(id).unwrap_err();
    ensure_eq!(
        e.kind(),
        ProbeErrorKind::NoSuchProbe,
        "unregister a stale id"
    );
    ensure!(
        ENGINE.enable(id).is_err() && ENGINE.info(id).is_err(),
        "stale id accepted"
    );
    Ok(String::new())
}

/// Emulates `xor rax, 0x55` (4 bytes) itself and skips it.
fn skip_xor(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    if let Some(r) = ctx.data.downcast_ref::<Recorder>() {
        r.hits.fetch_add(1, Ordering::AcqRel);
    }
    regs.set_gpr(RAX, regs.gpr(RAX) ^ 0x55);
    regs.set_pc(ctx.addr + 4);
    PreAction::SkipInstruction
}

/// Replaces the first argument with 100.
fn set_arg_100(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    if let Some(r) = ctx.data.downcast_ref::<Recorder>() {
        r.hits.fetch_add(1, Ordering::AcqRel);
    }
    regs.set_arg(0, 100);
    PreAction::Continue
}

fn handlers_redirect() -> CheckResult {
    let xor = testfns::point("alu_xor");
    ensure_eq!(
        testfns::point("alu_imul").offset - xor.offset,
        4,
        "length of xor rax, 0x55"
    );
    let rec = Recorder::leak();
    let mut probes = Probes::new();
    probes.add(
        "skip",
        ENGINE.register_kprobe(
            &Kprobe::at(xor.addr())
                .pre(skip_xor)
                .post(post_record)
                .data(rec),
        ),
    )?;
    let traps = signals::traps();
    ensure_eq!(
        call_fn("tf_alu", 10, 32, 0).ret,
        1396,
        "result with the xor skipped and emulated"
    );
    ensure_eq!(signals::traps() - traps, 1, "SIGTRAPs (no step)");
    ensure_eq!(
        (rec.hits(), rec.post_hits()),
        (1, 0),
        "pre ran, post skipped"
    );
    probes.clear()?;
    let rec = Recorder::leak();
    probes.add(
        "set arg",
        ENGINE.register_kprobe(
            &Kprobe::at(testfns::func("tf_alu").start)
                .pre(set_arg_100)
                .data(rec),
        ),
    )?;
    ensure_eq!(
        call_fn("tf_alu", 10, 32, 0).ret,
        tf_alu(100, 32),
        "result with rdi = 100"
    );
    ensure_eq!(rec.hits(), 1, "hits");
    probes.clear()?;
    Ok(String::new())
}

pub(super) fn run(r: &mut Report) {
    r.check(
        "aggregate: three probes at one address, one disabled",
        aggregate,
    );
    r.check(
        "unregister restores the original bytes, byte for byte",
        unregister_restores_bytes,
    );
    r.check("batch: all or nothing", batch);
    r.check(
        "symbols: symbol + offset, past the end, unknown, endbr64 entry",
        symbols,
    );
    r.check(
        "errors: not an entry, twice, blacklisted (copy routine, trampoline, slot page), stale id",
        errors,
    );
    r.check(
        "handlers: skip the instruction, change an argument",
        handlers_redirect,
    );
}
