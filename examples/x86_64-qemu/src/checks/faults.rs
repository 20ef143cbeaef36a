//! A fault inside an out-of-line slot: the engine puts rip back at the
//! probe address (and IF as it was), so the kernel's exception table finds
//! the original instruction and the fix-up runs as if it had not been
//! probed.

use probe_core::Kprobe;

use crate::cpu::IF;
use crate::entry;
use crate::handlers::{count_post, count_pre, fresh};
use crate::probed_code::*;
use crate::report::check;

use super::{kprobe, unregister};

/// An address above the 1 GiB identity map: loading from it page-faults.
const UNMAPPED: u64 = 0x4000_0000;

pub fn run() {
    unprobed_fixup();
    fault_in_slot();
    no_boost_where_a_fault_is_expected();
}

fn no_boost_where_a_fault_is_expected() {
    let name = "no boost where the exception table expects a fault: pre-handler only, fix-up runs";
    let s = fresh();
    let Some(id) = kprobe(name, &Kprobe::at(addr(xq_load_insn)).pre(count_pre).data(s)) else {
        return;
    };
    let (aborted_before, fixups_before) = entry::fault_counts();
    // SAFETY: a probed_code function (C ABI); the fault is fixed up through the exception table.
    let bad = unsafe { xq_load(UNMAPPED, 1) };
    let (aborted, fixups) = entry::fault_counts();
    unregister(name, id);
    check(
        name,
        bad.a == EFAULT && aborted - aborted_before == 1 && fixups - fixups_before == 1 && s.pre() == 1,
        format_args!(
            "faulting load {:#x} (want {EFAULT:#x}), steps aborted {}, fix-ups {} (want 1, 1), pre {} (want 1)",
            bad.a,
            aborted - aborted_before,
            fixups - fixups_before,
            s.pre()
        ),
    );
}

fn unprobed_fixup() {
    let name = "exception table without probes: a faulting load returns -EFAULT";
    let (_, fixups_before) = entry::fault_counts();
    // SAFETY: a probed_code function (C ABI); the fault is fixed up through the exception table.
    let p = unsafe { xq_load(UNMAPPED, 0) };
    let (_, fixups) = entry::fault_counts();
    check(
        name,
        p.a == EFAULT && fixups - fixups_before == 1,
        format_args!(
            "result {:#x} (want {EFAULT:#x}), fix-ups {}",
            p.a,
            fixups - fixups_before
        ),
    );
}

fn fault_in_slot() {
    let name = "a fault in the slot goes back to the probe address: fix-up runs, IF restored";
    let s = fresh();
    // With a post-handler the step always ends with a trap.
    let Some(id) = kprobe(
        name,
        &Kprobe::at(addr(xq_load_insn))
            .pre(count_pre)
            .post(count_post)
            .data(s),
    ) else {
        return;
    };
    let value = 0x600d_cafe_u64;
    let (aborted_before, fixups_before) = entry::fault_counts();
    // SAFETY: a probed_code function (C ABI); `value` lives across the call.
    let good = unsafe { xq_load(&value as *const u64 as u64, 1) };
    // SAFETY: a probed_code function (C ABI); the fault is fixed up through the exception table.
    let bad = unsafe { xq_load(UNMAPPED, 1) };
    let (aborted, fixups) = entry::fault_counts();
    unregister(name, id);
    check(
        name,
        good.a == value
            && bad.a == EFAULT
            && aborted - aborted_before == 1
            && fixups - fixups_before == 1
            && good.b & IF != 0
            && bad.b & IF != 0
            && (s.pre(), s.post()) == (2, 1),
        format_args!(
            "good load {:#x}, faulting load {:#x} (want {EFAULT:#x}), steps aborted {}, fix-ups {} \
             (want 1, 1), IF after {}/{} (want set), pre/post {}/{} (want 2/1)",
            good.a,
            bad.a,
            aborted - aborted_before,
            fixups - fixups_before,
            good.b & IF != 0,
            bad.b & IF != 0,
            s.pre(),
            s.post()
        ),
    );
}
