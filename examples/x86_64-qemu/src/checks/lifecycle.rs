//! Probe lifecycle: several probes on one address with one disabled,
//! enable/disable writing and restoring the breakpoint byte, a probe hit
//! inside a handler (missed), batches, probes by symbol (and past
//! `endbr64`), and at the end every byte of the probed code as it was.

use core::sync::atomic::Ordering;

use probe_core::{Kprobe, PreAction, ProbeContext, ProbeErrorKind, ProbeSpec, Registers, Space};

use super::{counting_traps, kprobe, unregister};
use crate::handlers::{count_pre, fresh, seen, Seen};
use crate::probed_code::*;
use crate::report::{check, fail};
use crate::services::{grace_periods, page_counts, peek, ENGINE};

pub fn run() {
    aggregate_with_one_disabled();
    disable_restores_enable_rewrites();
    hit_inside_a_handler_is_missed();
    batch();
    by_symbol();
    past_endbr64();
}

const INT3: u8 = 0xcc;

fn aggregate_with_one_disabled() {
    let name = "two probes on one address, one registered disabled";
    let at = addr(xq_alu_add);
    let orig = peek(at);
    let (a, b) = (fresh(), fresh());
    let Some(ia) = kprobe(name, &Kprobe::at(at).pre(count_pre).data(a)) else {
        return;
    };
    let Some(ib) = kprobe(name, &Kprobe::at(at).pre(count_pre).data(b).disabled()) else {
        unregister(name, ia);
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let v1 = unsafe { xq_alu(1) };
    let first = (a.pre(), b.pre());
    let enabled = ENGINE.enable(ib);
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let v2 = unsafe { xq_alu(1) };
    let second = (a.pre(), b.pre());
    let byte_armed = peek(at);
    unregister(name, ia);
    unregister(name, ib);
    let byte_after = peek(at);
    check(
        name,
        (v1, v2) == (18, 18)
            && first == (1, 0)
            && enabled.is_ok()
            && second == (2, 1)
            && byte_armed == INT3
            && byte_after == orig,
        format_args!(
            "hits with one disabled {first:?} (want (1, 0)), after enabling it {second:?} \
             (want (2, 1)), byte {byte_armed:#04x} while armed, {byte_after:#04x} after \
             unregistering (want {orig:#04x})"
        ),
    );
}

fn disable_restores_enable_rewrites() {
    let name = "disabling every probe restores the byte, enabling writes int3 again";
    let at = addr(xq_jcc_site);
    let orig = peek(at);
    let s = fresh();
    let Some(id) = kprobe(name, &Kprobe::at(at).pre(count_pre).data(s)) else {
        return;
    };
    let armed = (peek(at), ENGINE.is_armed(Space::Kernel, at));
    let disabled = ENGINE.disable(id);
    let off = (peek(at), ENGINE.is_armed(Space::Kernel, at));
    let fmt = |(b, a): (u8, bool)| Byte(b, a);
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let v1 = unsafe { xq_jcc(1) };
    let hits_off = s.pre();
    let enabled = ENGINE.enable(id);
    let on = peek(at);
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let v2 = unsafe { xq_jcc(1) };
    unregister(name, id);
    check(
        name,
        armed == (INT3, true)
            && disabled.is_ok()
            && off == (orig, false)
            && hits_off == 0
            && enabled.is_ok()
            && on == INT3
            && s.pre() == 1
            && (v1, v2) == (100, 100),
        format_args!(
            "enabled: {}, disabled: {} (want {}), hits while disabled {hits_off} (want 0), \
             re-enabled byte {on:#04x}, hits {} (want 1)",
            fmt(armed),
            fmt(off),
            Byte(orig, false),
            s.pre()
        ),
    );
}

/// A text byte and whether the engine says the point is armed.
struct Byte(u8, bool);

impl core::fmt::Display for Byte {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = if self.1 { "armed" } else { "not armed" };
        write!(f, "byte {:#04x}, {state}", self.0)
    }
}

/// Pre-handler that calls the probed `xq_alu` and keeps its result.
fn call_probed_function(ctx: &ProbeContext, _regs: &mut dyn Registers) -> PreAction {
    let s = seen(ctx);
    s.pre.fetch_add(1, Ordering::SeqCst);
    // SAFETY: a probed_code function (C ABI); its own probe traps into the engine, which is
    // re-entrant for a hit from a handler (counted as missed).
    let v = unsafe { xq_alu(2) };
    s.value.store(v, Ordering::SeqCst);
    PreAction::Continue
}

fn hit_inside_a_handler_is_missed() {
    let name = "a probe hit inside a handler runs no handler and is counted as missed";
    let (outer, inner) = (fresh(), fresh());
    let Some(io) = kprobe(
        name,
        &Kprobe::at(addr(xq_jcc_site))
            .pre(call_probed_function)
            .data(outer),
    ) else {
        return;
    };
    let Some(ii) = kprobe(
        name,
        &Kprobe::at(addr(xq_alu_add)).pre(count_pre).data(inner),
    ) else {
        unregister(name, io);
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let v = unsafe { xq_jcc(3) };
    let nested = Seen::get(&outer.value);
    let info = ENGINE.info(ii);
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let direct = unsafe { xq_alu(2) };
    let info_after = ENGINE.info(ii);
    unregister(name, io);
    unregister(name, ii);
    let (hits, missed) = info.map(|i| (i.hits, i.missed)).unwrap_or((9, 9));
    let hits_after = info_after.map(|i| i.hits).unwrap_or(9);
    check(
        name,
        v == 100 && nested == 21 && (hits, missed) == (0, 1) && inner.pre() == 1 && direct == 21 && hits_after == 1,
        format_args!(
            "xq_jcc(3) = {v} (want 100), xq_alu(2) in the handler = {nested} (want 21), inner \
             hits/missed {hits}/{missed} (want 0/1), then called directly: hits {hits_after} (want 1)"
        ),
    );
}

fn batch() {
    let name = "batch of three probes registered and unregistered together";
    let sites = [
        addr(xq_loop_body),
        addr(xq_callreg_site),
        addr(xq_riprel_load),
    ];
    let orig = sites.map(peek);
    let s = [fresh(), fresh(), fresh()];
    let specs = [
        ProbeSpec::Kprobe(Kprobe::at(sites[0]).pre(count_pre).data(s[0])),
        ProbeSpec::Kprobe(Kprobe::at(sites[1]).pre(count_pre).data(s[1])),
        ProbeSpec::Kprobe(Kprobe::at(sites[2]).pre(count_pre).data(s[2])),
    ];
    // `ProbeId` has no public constructor, so the array the batch fills
    // starts out as copies of a stale id.
    let Some(stale) = kprobe(name, &Kprobe::at(sites[0]).pre(count_pre).data(s[0])) else {
        return;
    };
    unregister(name, stale);
    let mut ids = [stale; 3];
    if let Err(e) = ENGINE.register_batch(&specs, &mut ids) {
        fail(name, format_args!("{e}"));
        return;
    }
    let grace_before = grace_periods();
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let (v, traps) = counting_traps(|| unsafe { (xq_loop(3), xq_callreg(1), xq_riprel().a) });
    let gone = ENGINE.unregister_batch(&ids);
    let bytes = sites.map(peek);
    let hits = s.map(|x| x.pre());
    let graces = grace_periods() - grace_before;
    check(
        name,
        v == (6, 3, RIPREL_VALUE)
            && hits == [3, 1, 1]
            && traps == 5
            && gone.is_ok()
            && bytes == orig
            && graces == 1,
        format_args!(
            "hits {hits:?} (want [3, 1, 1]), traps {traps} (want 5), bytes restored {}, \
             grace periods for the batch {graces} (want 1)",
            bytes == orig
        ),
    );
}

fn by_symbol() {
    let name = "probe by symbol + offset, and the symbol checks";
    let s = fresh();
    let Some(id) = kprobe(name, &Kprobe::symbol("xq_alu", 3).pre(count_pre).data(s)) else {
        return;
    };
    let at = ENGINE.info(id).map(|i| i.addr).unwrap_or(0);
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let v = unsafe { xq_alu(4) };
    unregister(name, id);
    let outside = ENGINE.register_kprobe(&Kprobe::symbol("xq_alu", 100).pre(count_pre).data(s));
    let unknown =
        ENGINE.register_kprobe(&Kprobe::symbol("no_such_function", 0).pre(count_pre).data(s));
    let size = addr(xq_alu_end) - xq_alu as *const () as usize;
    check(
        name,
        at == addr(xq_alu_add)
            && v == 27
            && s.pre() == 1
            && matches!(outside.map_err(|e| e.kind()), Err(ProbeErrorKind::OffsetOutsideSymbol { size: n }) if n == size)
            && matches!(
                unknown.map_err(|e| e.kind()),
                Err(ProbeErrorKind::UnknownSymbol)
            ),
        format_args!(
            "xq_alu+3 at {at:#x} (want {:#x}), result {v} (want 27), hits {} (want 1), \
             xq_alu+100: {:?}, unknown symbol: {:?}",
            addr(xq_alu_add),
            s.pre(),
            outside.err().map(|e| e.kind()),
            unknown.err().map(|e| e.kind())
        ),
    );
}

fn past_endbr64() {
    let name = "probe on a function entry starting with endbr64 goes after it";
    let s = fresh();
    let Some(id) = kprobe(name, &Kprobe::symbol("xq_endbr", 0).pre(count_pre).data(s)) else {
        return;
    };
    let at = ENGINE.info(id).map(|i| i.addr).unwrap_or(0);
    let entry_byte = peek(xq_endbr as *const () as usize);
    // SAFETY: C ABI (endbr64 is a no-op without CET).
    let v = unsafe { xq_endbr(1) };
    unregister(name, id);
    check(
        name,
        at == addr(xq_endbr_body) && entry_byte == 0xf3 && v == 3 && s.pre() == 1,
        format_args!(
            "probe at {at:#x} (want {:#x}, after the 4-byte endbr64), entry byte {entry_byte:#04x} \
             (want 0xf3, untouched), result {v} (want 3), hits {} (want 1)",
            addr(xq_endbr_body),
            s.pre()
        ),
    );
}

/// The last check: every probe is gone and so is every trace of it.
pub fn everything_restored(before: &[u8]) {
    let name = "after unregistering everything: probed code byte-identical, no slots, no probes";
    let (start, _) = range();
    let differing = before
        .iter()
        .enumerate()
        .filter(|&(i, &b)| peek(start + i) != b)
        .count();
    let first = before
        .iter()
        .enumerate()
        .find(|&(i, &b)| peek(start + i) != b)
        .map(|(i, _)| start + i);
    let slots = ENGINE.slot_usage();
    let listed = ENGINE.list::<4>().len();
    let (allocs, frees) = page_counts();
    check(
        name,
        differing == 0 && slots == (0, 0) && listed == 0 && allocs == frees && allocs > 0,
        format_args!(
            "{} bytes compared, {differing} differ (first at {first:?}), slots/pages in use \
             {slots:?} (want (0, 0)), probes listed {listed} (want 0), slot pages taken/given \
             back {allocs}/{frees}",
            before.len()
        ),
    );
}
