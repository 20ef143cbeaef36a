//! `cli`, `sti`, `pushf`, `popf` (simulated in kernel mode) and a stepped
//! instruction run with IF set: IF must come out exactly as the unprobed
//! code would leave it, and the out-of-line copy must run with IF clear.

use probe_core::Kprobe;

use super::{counting_traps, kprobe, unregister};
use crate::cpu::{self, IF};
use crate::entry;
use crate::handlers::{count_post, count_pre, fresh, Seen};
use crate::probed_code::*;
use crate::report::check;

pub fn run() {
    cli();
    sti();
    pushf(true);
    pushf(false);
    popf(true);
    popf(false);
    stepped_with_if_set();
}

fn if_of(flags: u64) -> bool {
    flags & IF != 0
}

fn cli() {
    let name = "cli (simulated): IF cleared, handler saw it set";
    let s = fresh();
    let Some(id) = kprobe(name, &Kprobe::at(addr(xq_cli_site)).pre(count_pre).data(s)) else {
        return;
    };
    // SAFETY: a probed_code function (C ABI); xq_cli leaves IF clear.
    let flags = unsafe { xq_cli() };
    let now = cpu::interrupts_enabled();
    unregister(name, id);
    let pre = Seen::get(&s.pre_flags);
    check(
        name,
        !if_of(flags) && !now && if_of(pre) && s.pre() == 1,
        format_args!(
            "flags after {flags:#x} (IF clear wanted), IF at return {now}, flags in the handler {pre:#x} (IF set wanted)"
        ),
    );
}

fn sti() {
    let name = "sti (simulated): IF set, handler saw it clear";
    let s = fresh();
    let Some(id) = kprobe(name, &Kprobe::at(addr(xq_sti_site)).pre(count_pre).data(s)) else {
        return;
    };
    // SAFETY: a probed_code function (C ABI); xq_sti clears IF again before returning.
    let flags = unsafe { xq_sti() };
    unregister(name, id);
    let pre = Seen::get(&s.pre_flags);
    check(
        name,
        if_of(flags) && !if_of(pre) && s.pre() == 1,
        format_args!("flags after {flags:#x} (IF set wanted), flags in the handler {pre:#x} (IF clear wanted)"),
    );
}

fn pushf(want_if: bool) {
    let name = if want_if {
        "pushfq (simulated, stack gap) with IF set: pushed image"
    } else {
        "pushfq (simulated, stack gap) with IF clear: pushed image"
    };
    let s = fresh();
    let Some(id) = kprobe(
        name,
        &Kprobe::at(addr(xq_pushf_site)).pre(count_pre).data(s),
    ) else {
        return;
    };
    // SAFETY: a probed_code function (C ABI); xq_pushf clears IF before returning.
    let (image, traps) = counting_traps(|| unsafe { xq_pushf(want_if as u64) });
    unregister(name, id);
    let pre = Seen::get(&s.pre_flags);
    // The image is what the interrupted code's flags were: the handler's
    // view of them, RF and VM cleared as PUSHF does.
    check(
        name,
        if_of(image) == want_if
            && image == pre & !(1 << 16 | 1 << 17)
            && image & 2 == 2
            && traps == 1,
        format_args!("popped {image:#x}, flags at the probe {pre:#x}, traps {traps} (want 1)"),
    );
}

fn popf(to_if: bool) {
    const CF: u64 = 1;
    const ZF: u64 = 1 << 6;
    let (name, image) = if to_if {
        (
            "popfq (simulated) setting IF from clear",
            0x2 | CF | ZF | IF,
        )
    } else {
        ("popfq (simulated) clearing IF from set", 0x2 | CF)
    };
    let s = fresh();
    let Some(id) = kprobe(name, &Kprobe::at(addr(xq_popf_site)).pre(count_pre).data(s)) else {
        return;
    };
    // SAFETY: a probed_code function (C ABI); xq_popf clears IF and DF before returning.
    let p = unsafe { xq_popf(image, !to_if as u64) };
    unregister(name, id);
    let (after, before) = (p.a, p.b);
    check(
        name,
        after & 0xfff == image && if_of(before) != to_if && s.pre() == 1,
        format_args!(
            "flags before {before:#x}, popped {image:#x}, after {after:#x} (low 12 bits must equal the image)"
        ),
    );
}

fn stepped_with_if_set() {
    let name = "stepped add with IF set: copy runs with IF clear, IF set again after";
    let s = fresh();
    let Some(id) = kprobe(
        name,
        &Kprobe::at(addr(xq_if_step_site))
            .pre(count_pre)
            .post(count_post)
            .data(s),
    ) else {
        return;
    };
    let (ends_before, _) = entry::step_ends();
    // SAFETY: a probed_code function (C ABI); xq_if_step clears IF before returning.
    let flags_on = unsafe { xq_if_step(1) };
    let (ends_mid, flags_in_slot) = entry::step_ends();
    let post_on = Seen::get(&s.post_flags);
    // SAFETY: as above.
    let flags_off = unsafe { xq_if_step(0) };
    let (ends_after, _) = entry::step_ends();
    unregister(name, id);
    let post_off = Seen::get(&s.post_flags);
    check(
        name,
        if_of(flags_on)
            && !if_of(flags_in_slot)
            && ends_mid - ends_before == 1
            && !if_of(flags_off)
            && ends_after - ends_mid == 1
            && (s.pre(), s.post()) == (2, 2)
            && if_of(post_on)
            && !if_of(post_off),
        format_args!(
            "IF set: flags after {flags_on:#x}, in the slot {flags_in_slot:#x} (IF clear wanted), \
             in the post-handler {post_on:#x}; IF clear: flags after {flags_off:#x}, in the \
             post-handler {post_off:#x}; step ends {} (want 2)",
            ends_after - ends_before
        ),
    );
}
