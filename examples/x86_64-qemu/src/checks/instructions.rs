//! Kprobes on each instruction class the kernel can run: stepped out of
//! line (plain, pushes, rip-relative), simulated (call, jcc, jmp, ret,
//! loop, call through a register), boosted or not.

use core::sync::atomic::Ordering;

use probe_core::Kprobe;

use super::{counting_traps, kprobe, unregister};
use crate::handlers::{count_post, count_pre, fresh, Seen};
use crate::probed_code::*;
use crate::report::check;
use crate::services::ENGINE;

pub fn run() {
    stepped_boosted();
    stepped_with_post();
    stepped_pushes();
    simulated_call();
    rip_relative(false);
    rip_relative(true);
    jcc();
    jmp_and_ret();
    loop_and_call_through_register();
    pre_and_post_counts_over_a_loop();
}

fn stepped_boosted() {
    let name = "add r64, imm8 (stepped, boosted: one trap per hit)";
    let s = fresh();
    let at = addr(xq_alu_add);
    let Some(id) = kprobe(name, &Kprobe::at(at).pre(count_pre).data(s)) else {
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let (results, traps) = counting_traps(|| unsafe { [xq_alu(7), xq_alu(1), xq_alu(0)] });
    let seen_rax = Seen::get(&s.pre_rax);
    // A pre-handler sees the pc at the probed instruction (the engine moves
    // it back from the byte after the int3, so handlers read the same on
    // every ISA).
    let pc = Seen::get(&s.pre_pc) as usize;
    unregister(name, id);
    check(
        name,
        results == [36, 18, 15] && s.pre() == 3 && traps == 3 && seen_rax == 0 && pc == at,
        format_args!(
            "results {results:?} (want [36, 18, 15]), hits {} (want 3), traps {traps} (want 3), \
             last rax before {seen_rax} (want 0), pc {pc:#x} (want {:#x}, the probe)",
            s.pre(),
            at
        ),
    );
}

fn stepped_with_post() {
    let name = "add r64, imm8 with a post-handler (int3 after the copy: two traps per hit)";
    let s = fresh();
    let Some(id) = kprobe(
        name,
        &Kprobe::at(addr(xq_alu_add))
            .pre(count_pre)
            .post(count_post)
            .data(s),
    ) else {
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let (v, traps) = counting_traps(|| unsafe { xq_alu(7) });
    unregister(name, id);
    let (pre_rax, post_rax) = (Seen::get(&s.pre_rax), Seen::get(&s.post_rax));
    check(
        name,
        v == 36 && (s.pre(), s.post()) == (1, 1) && traps == 2 && (pre_rax, post_rax) == (7, 12),
        format_args!(
            "result {v} (want 36), pre/post {}/{} (want 1/1), traps {traps} (want 2), \
             rax before/after {pre_rax}/{post_rax} (want 7/12)",
            s.pre(),
            s.post()
        ),
    );
}

fn stepped_pushes() {
    let name = "push r64 twice (stepped): stack contents";
    let (a, b) = (fresh(), fresh());
    let Some(i1) = kprobe(name, &Kprobe::at(addr(xq_push_rsi)).pre(count_pre).data(a)) else {
        return;
    };
    let Some(i2) = kprobe(name, &Kprobe::at(addr(xq_push_rdi)).pre(count_pre).data(b)) else {
        unregister(name, i1);
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let p = unsafe { xq_push(0x1111_2222_3333_4444, 0x5555_6666_7777_8888) };
    unregister(name, i1);
    unregister(name, i2);
    check(
        name,
        p == Pair {
            a: 0x1111_2222_3333_4444,
            b: 0x5555_6666_7777_8888,
        } && (a.pre(), b.pre()) == (1, 1),
        format_args!(
            "popped {:#x}, {:#x}, hits {}/{} (want 1/1)",
            p.a,
            p.b,
            a.pre(),
            b.pre()
        ),
    );
}

fn simulated_call() {
    let name = "call rel32 (simulated, stack gap): return address, canaries and rsp";
    let s = fresh();
    let Some(id) = kprobe(name, &Kprobe::at(addr(xq_call_site)).pre(count_pre).data(s)) else {
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let (calls, traps) = counting_traps(|| unsafe { [xq_call(), xq_call(), xq_call()] });
    unregister(name, id);
    let back = addr(xq_call_back) as u64;
    check(
        name,
        calls.iter().all(|p| *p == Pair { a: back, b: 0 }) && s.pre() == 3 && traps == 3,
        format_args!(
            "callee saw return address {:#x} (want {back:#x}), damage bits {:#x} (want 0), \
             hits {} (want 3), traps {traps} (want 3)",
            calls[0].a,
            calls.iter().fold(0, |acc, p| acc | p.b),
            s.pre()
        ),
    );
}

fn rip_relative(with_post: bool) {
    let name = if with_post {
        "rip-relative mov and lea (fixed up, stepped with a trap)"
    } else {
        "rip-relative mov and lea (fixed up, boosted)"
    };
    let (a, b) = (fresh(), fresh());
    let probe = |at, s| {
        let p = Kprobe::at(at).pre(count_pre).data(s);
        if with_post {
            p.post(count_post)
        } else {
            p
        }
    };
    let Some(i1) = kprobe(name, &probe(addr(xq_riprel_load), a)) else {
        return;
    };
    let Some(i2) = kprobe(name, &probe(addr(xq_riprel_lea), b)) else {
        unregister(name, i1);
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let (p, traps) = counting_traps(|| unsafe { xq_riprel() });
    unregister(name, i1);
    unregister(name, i2);
    let data = addr(xq_riprel_data) as u64;
    let want_traps = if with_post { 4 } else { 2 };
    check(
        name,
        p == Pair {
            a: RIPREL_VALUE,
            b: data,
        } && (a.pre(), b.pre()) == (1, 1)
            && traps == want_traps,
        format_args!(
            "loaded {:#x} (want {RIPREL_VALUE:#x}), lea {:#x} (want {data:#x}), \
             traps {traps} (want {want_traps})",
            p.a, p.b
        ),
    );
}

fn jcc() {
    let s = fresh();
    let name = "jl rel8 (simulated): taken and not taken";
    let Some(id) = kprobe(name, &Kprobe::at(addr(xq_jcc_site)).pre(count_pre).data(s)) else {
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let (taken, not_taken) = unsafe { (xq_jcc(3), xq_jcc(20)) };
    unregister(name, id);
    check(
        "jl rel8 (simulated): taken",
        taken == 100,
        format_args!("xq_jcc(3) = {taken} (want 100)"),
    );
    check(
        "jl rel8 (simulated): not taken",
        not_taken == 200 && s.pre() == 2,
        format_args!(
            "xq_jcc(20) = {not_taken} (want 200), hits {} (want 2)",
            s.pre()
        ),
    );
}

fn jmp_and_ret() {
    let name = "jmp rel8 and ret (simulated)";
    let (j, r) = (fresh(), fresh());
    let Some(i1) = kprobe(name, &Kprobe::at(addr(xq_jcc_jmp)).pre(count_pre).data(j)) else {
        return;
    };
    let Some(i2) = kprobe(name, &Kprobe::at(addr(xq_alu_ret)).pre(count_pre).data(r)) else {
        unregister(name, i1);
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let (v1, v2, v3) = unsafe { (xq_jcc(20), xq_jcc(3), xq_alu(1)) };
    unregister(name, i1);
    unregister(name, i2);
    check(
        name,
        (v1, v2, v3) == (200, 100, 18) && (j.pre(), r.pre()) == (1, 1),
        format_args!(
            "results {v1}, {v2}, {v3} (want 200, 100, 18), jmp hits {} (want 1), ret hits {} (want 1)",
            j.pre(),
            r.pre()
        ),
    );
}

fn loop_and_call_through_register() {
    let name = "loop rel8 and call rax (simulated)";
    let (l, c) = (fresh(), fresh());
    let Some(i1) = kprobe(name, &Kprobe::at(addr(xq_loop_site)).pre(count_pre).data(l)) else {
        return;
    };
    let Some(i2) = kprobe(
        name,
        &Kprobe::at(addr(xq_callreg_site)).pre(count_pre).data(c),
    ) else {
        unregister(name, i1);
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let (lv, cv) = unsafe { (xq_loop(5), xq_callreg(20)) };
    unregister(name, i1);
    unregister(name, i2);
    check(
        name,
        (lv, cv) == (10, 41) && (l.pre(), c.pre()) == (5, 1),
        format_args!(
            "xq_loop(5) = {lv} (want 10), xq_callreg(20) = {cv} (want 41), hits {}/{} (want 5/1)",
            l.pre(),
            c.pre()
        ),
    );
}

fn pre_and_post_counts_over_a_loop() {
    let name = "pre- and post-handlers over 5 loop iterations";
    let s = fresh();
    let Some(id) = kprobe(
        name,
        &Kprobe::at(addr(xq_loop_body))
            .pre(count_pre)
            .post(count_post)
            .data(s),
    ) else {
        return;
    };
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let (v, traps) = counting_traps(|| unsafe { xq_loop(5) });
    let info = ENGINE.info(id);
    unregister(name, id);
    let (pre_rax, post_rax) = (
        s.pre_rax.load(Ordering::SeqCst),
        s.post_rax.load(Ordering::SeqCst),
    );
    let hits = info.map(|i| i.hits).unwrap_or(0);
    check(
        name,
        v == 10
            && (s.pre(), s.post()) == (5, 5)
            && hits == 5
            && traps == 10
            && (pre_rax, post_rax) == (8, 10),
        format_args!(
            "result {v} (want 10), pre/post {}/{} (want 5/5), engine hits {hits} (want 5), \
             traps {traps} (want 10), last rax before/after {pre_rax}/{post_rax} (want 8/10)",
            s.pre(),
            s.post()
        ),
    );
}
