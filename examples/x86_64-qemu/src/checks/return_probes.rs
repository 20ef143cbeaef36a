//! Kretprobes: returns go through probe-hal-x86_64's code trampoline (no trap at
//! return), every return of a recursion is seen in order with its value,
//! a return handler can change the result, `maxactive` is honoured, and
//! every instance goes back to the pool.

use probe_core::Kretprobe;

use super::{counting_traps, kretprobe, unregister};
use crate::handlers::{
    clear_returns, entry_keep_arg, fresh, ret_add_1000, ret_log, ret_note_if, returns, RET_IF,
};
use crate::probed_code::*;
use crate::report::check;
use crate::services::{ENGINE, INSTANCES, TASKS};

pub fn run() {
    recursion_through_the_trampoline();
    return_handlers_run_masked();
    return_value_changed();
    maxactive();
    instances_returned();
}

fn recursion_through_the_trampoline() {
    let name = "kretprobe on recursive xq_sum(4): every return, in order, via the trampoline";
    let s = fresh();
    clear_returns();
    let Some(id) = kretprobe(
        name,
        &Kretprobe::symbol("xq_sum")
            .entry(entry_keep_arg)
            .ret(ret_log)
            .data_size(8)
            .data(s),
    ) else {
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let (v, traps) = counting_traps(|| unsafe { xq_sum(4) });
    let info = ENGINE.info(id);
    unregister(name, id);
    let (log, n) = returns();
    let values: [u64; 5] = core::array::from_fn(|i| log[i].value);
    let args: [u64; 5] = core::array::from_fn(|i| log[i].arg);
    let back = addr(xq_sum_back) as u64;
    let tramp = probe_hal_x86_64::trampoline_address().unwrap_or(0) as u64;
    let inner_to_back = log[..4].iter().all(|r| r.to == back);
    let at_trampoline = log[..n.min(5)].iter().all(|r| r.pc == tramp);
    let hits = info.map(|i| i.hits).unwrap_or(0);
    check(
        name,
        v == 10
            && n == 5
            && values == [0, 1, 3, 6, 10]
            && args == [0, 1, 2, 3, 4]
            && inner_to_back
            && at_trampoline
            && (s.pre(), s.post(), hits) == (5, 5, 5)
            && traps == 5,
        format_args!(
            "result {v} (want 10), returns {values:?} (want [0, 1, 3, 6, 10]), entry args {args:?} \
             (want [0, 1, 2, 3, 4]), inner returns to xq_sum_back {inner_to_back}, handler pc = \
             trampoline {tramp:#x} {at_trampoline}, entries/returns/hits {}/{}/{hits} (want 5/5/5), \
             traps {traps} (want 5: one per entry, none at return)",
            s.pre(),
            s.post()
        ),
    );
}

fn return_handlers_run_masked() {
    let name = "return handlers run with interrupts masked; IF is back after the trampoline";
    let s = fresh();
    let Some(id) = kretprobe(
        name,
        &Kretprobe::at(xq_leaf as *const () as usize)
            .ret(ret_note_if)
            .data(s),
    ) else {
        return;
    };
    RET_IF.store(2, core::sync::atomic::Ordering::SeqCst);
    // SAFETY: every legacy PIC line is masked and no other interrupt source
    // is programmed: setting IF lets nothing in; it is cleared again below.
    unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let v = unsafe { xq_leaf(1) };
    let after = crate::cpu::interrupts_enabled();
    crate::cpu::disable_interrupts();
    unregister(name, id);
    let seen_if = RET_IF.load(core::sync::atomic::Ordering::SeqCst);
    check(
        name,
        v == 2 && s.post() == 1 && seen_if == 0 && after,
        format_args!(
            "result {v} (want 2), return handler ran {} (want 1), IF in the handler {seen_if} \
             (want 0), IF after the return {after} (want true)",
            s.post()
        ),
    );
}

fn return_value_changed() {
    let name = "kretprobe return handler changes the return value";
    let s = fresh();
    let Some(id) = kretprobe(
        name,
        &Kretprobe::at(xq_leaf as *const () as usize)
            .ret(ret_add_1000)
            .data(s),
    ) else {
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let v = unsafe { xq_leaf(1) };
    unregister(name, id);
    check(
        name,
        v == 1002 && s.post() == 1,
        format_args!(
            "xq_leaf(1) = {v} (want 2 + 1000), returns seen {} (want 1)",
            s.post()
        ),
    );
}

fn maxactive() {
    let name = "kretprobe with maxactive 2 on xq_sum(4): 2 tracked, 3 missed, result intact";
    let s = fresh();
    clear_returns();
    let Some(id) = kretprobe(
        name,
        &Kretprobe::at(xq_sum as *const () as usize)
            .entry(entry_keep_arg)
            .ret(ret_log)
            .data_size(8)
            .maxactive(2)
            .data(s),
    ) else {
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let v = unsafe { xq_sum(4) };
    let info = ENGINE.info(id);
    unregister(name, id);
    let (log, n) = returns();
    let (hits, missed) = info.map(|i| (i.hits, i.missed)).unwrap_or((0, 0));
    // The two outermost calls (n = 4, 3) were tracked; they return last.
    check(
        name,
        v == 10 && (hits, missed) == (2, 3) && n == 2 && (log[0].value, log[1].value) == (6, 10),
        format_args!(
            "result {v} (want 10), hits/missed {hits}/{missed} (want 2/3), returns {:?} (want [6, 10])",
            &[log[0].value, log[1].value][..n.min(2)]
        ),
    );
}

fn instances_returned() {
    let name = "return instances all back in the pool, none pending on the task";
    let free = ENGINE.free_instances();
    let pending = ENGINE.pending_returns(&TASKS[0]);
    check(
        name,
        free == INSTANCES && pending == 0,
        format_args!("free {free} (want {INSTANCES}), pending {pending} (want 0)"),
    );
}
