//! Features 5, 6 and 7: the trap entry points, re-entry, and unregister
//! racing with a hit that is mid-step (the interleavings are set by hand).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use custom_arch::isa::FLAG_IE;
use custom_arch::machine::{Cpu, Stop};
use custom_arch::world::{World, SLOT_AREA};
use custom_arch::ToyEngine;
use probe_core::{ExecMode, Kprobe, PreAction, ProbeContext, Space, TrapOutcome};
use probe_hal::Registers;

#[test]
fn a_breakpoint_the_engine_never_wrote_is_not_ours() {
    let fx: Fx = Fx::new();
    fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count).data(seen()))
        .unwrap();
    let mut cpu = fx.cpu_calling(0, 0, Space::Kernel, REFUSED_FN, &[]);
    assert_eq!(
        cpu.run(fx.w, fx.e, 100),
        Stop::ForeignBreakpoint(REFUSED_FN)
    );
}

#[test]
fn a_breakpoint_removed_while_the_cpu_trapped_re_executes_the_original() {
    let fx: Fx = Fx::new();
    let s = seen();
    let id =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count).data(s))
            .unwrap();
    let mut cpu = fx.cpu_calling(1, 1, Space::Kernel, ARITH, &[]);
    while cpu.regs.pc as usize != ARITH + 8 {
        assert_eq!(cpu.step(fx.w, fx.e), None);
    }
    // CPU 1 fetched the breakpoint and is entering its trap handler; CPU 0
    // unregisters in between: CPU 1's lookup happens inside the grace
    // period (which cannot end before CPU 1 leaves trap context).
    let outcome = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (o, e, w) = (outcome.clone(), fx.e, fx.w);
    let regs = std::sync::Arc::new(std::sync::Mutex::new(cpu.regs));
    let r = regs.clone();
    fx.w.on_synchronize(move || {
        if o.lock().unwrap().is_some() {
            return;
        }
        w.switch_to(1, 1);
        let mut regs = r.lock().unwrap();
        // SAFETY: one simulated CPU at a time; CPU 1 takes its trap.
        let got = unsafe { e.handle_breakpoint(&mut *regs, ExecMode::Kernel) };
        *o.lock().unwrap() = Some(got);
        w.switch_to(0, 0);
    });
    fx.w.switch_to(0, 0);
    fx.e.unregister(id).unwrap();
    fx.w.clear_sync_hook();
    fx.w.switch_to(1, 1);
    assert_eq!(*outcome.lock().unwrap(), Some(TrapOutcome::Handled));
    cpu.regs = *regs.lock().unwrap();
    assert_eq!(
        cpu.regs.pc as usize,
        ARITH + 8,
        "pc back on the original instruction"
    );
    assert_eq!(cpu.run(fx.w, fx.e, 100), Stop::Halted);
    assert_eq!(cpu.regs.r[1], 13);
    assert_eq!(hits(s), 0);
}

#[test]
fn a_fault_in_a_kernel_slot_reaches_the_kernels_fixup_at_the_probe_address() {
    let fx: Fx = Fx::new();
    let s = seen();
    fx.e.register_kprobe(&Kprobe::at(LOAD_FN).pre(pre_count).post(post_count).data(s))
        .unwrap();
    let mut cpu = fx.cpu_calling(0, 0, Space::Kernel, LOAD_FN, &[0x10]);
    assert_eq!(cpu.run(fx.w, fx.e, 100), Stop::Halted);
    assert_eq!(
        cpu.regs.r[1], 0xffff_ffff_ffff_dead,
        "the kernel's fix-up for LOAD_FN ran"
    );
    assert_eq!(cpu.regs.flags & FLAG_IE, FLAG_IE, "interrupt flag restored");
    assert_eq!((hits(s), s.post.load(Ordering::SeqCst)), (1, 0));
    // the CPU's step state was reset: a normal hit works
    fx.w.load(Space::Kernel, 0x6000, &99u64.to_le_bytes());
    assert_eq!(fx.call(LOAD_FN, &[0x6000]).r[1], 99);
    assert_eq!((hits(s), s.post.load(Ordering::SeqCst)), (2, 1));
    // a fault nowhere near a slot is not the engine's
    let mut regs = cpu.regs;
    regs.pc = 0x2222;
    assert_eq!(
        // SAFETY: one simulated CPU; traps taken one at a time.
        unsafe { fx.e.handle_fault(&mut regs, ExecMode::Kernel) },
        probe_core::FaultOutcome::NotOurs
    );
    assert_eq!(regs.pc, 0x2222);
}

/// Data for a handler that calls a probed function itself.
struct Reentrant {
    w: &'static World,
    e: &'static ToyEngine,
    seen: Seen,
    inner_result: AtomicU64,
}

fn call_arith_from_handler(ctx: &ProbeContext, _regs: &mut dyn Registers) -> PreAction {
    let r = ctx.data.downcast_ref::<Reentrant>().unwrap();
    r.seen.pre.fetch_add(1, Ordering::SeqCst);
    // same CPU (0), another stack
    let mut nested = Cpu::new(0, 7, Space::Kernel, STUBS + 0x700, 0x9000);
    r.w.load(
        Space::Kernel,
        STUBS + 0x700,
        &cat(&[
            &custom_arch::isa::asm::call((ARITH as i64 - (STUBS + 0x700) as i64) as i16),
            &custom_arch::isa::asm::halt(),
        ]),
    );
    assert_eq!(nested.run(r.w, r.e, 1000), Stop::Halted);
    r.inner_result.store(nested.regs.r[1], Ordering::SeqCst);
    r.w.switch_to(0, 0);
    PreAction::Continue
}

#[test]
fn a_probe_hit_inside_a_handler_is_missed_but_its_instruction_still_runs() {
    let fx: Fx = Fx::new();
    let r: &'static Reentrant = Box::leak(Box::new(Reentrant {
        w: fx.w,
        e: fx.e,
        seen: Seen::default(),
        inner_result: AtomicU64::new(0),
    }));
    let outer =
        fx.e.register_kprobe(&Kprobe::at(CALLER).pre(call_arith_from_handler).data(r))
            .unwrap();
    let s = seen();
    let inner =
        fx.e.register_kprobe(
            &Kprobe::at(ARITH + 8)
                .pre(pre_count)
                .post(post_count)
                .data(s),
        )
        .unwrap();
    assert_eq!(fx.call(CALLER, &[]).r[1], 14);
    assert_eq!(
        r.inner_result.load(Ordering::SeqCst),
        13,
        "the nested call computed right"
    );
    let (i, o) = (fx.e.info(inner).unwrap(), fx.e.info(outer).unwrap());
    // nested hit (inside the handler): missed; the outer call's own arith(): hit
    assert_eq!((i.hits, i.missed), (1, 1));
    assert_eq!((o.hits, o.missed), (1, 0));
    assert_eq!((hits(s), s.post.load(Ordering::SeqCst)), (1, 1));
}

#[test]
fn a_probe_hit_while_another_step_is_in_flight_keeps_the_outer_state() {
    let fx: Fx = Fx::new();
    let (a, b) = (seen(), seen());
    let ia =
        fx.e.register_kprobe(
            &Kprobe::at(ARITH + 8)
                .pre(pre_count)
                .post(post_count)
                .data(a),
        )
        .unwrap();
    let ib =
        fx.e.register_kprobe(
            &Kprobe::at(JUMPY + 0xc)
                .pre(pre_count)
                .post(post_count)
                .data(b),
        )
        .unwrap();
    let mut outer = fx.cpu_calling(0, 0, Space::Kernel, ARITH, &[]);
    fx.step_into_slot(&mut outer);
    // an interrupt on CPU 0 while A's step is in flight runs probed code
    let mut irq = fx.cpu_calling(0, 5, Space::Kernel, JUMPY, &[]);
    assert_eq!(irq.run(fx.w, fx.e, 1000), Stop::Halted);
    assert_eq!(irq.regs.r[1], 2);
    assert_eq!(outer.run(fx.w, fx.e, 1000), Stop::Halted);
    assert_eq!(outer.regs.r[1], 13);
    let (ia, ib) = (fx.e.info(ia).unwrap(), fx.e.info(ib).unwrap());
    assert_eq!(
        (ia.hits, ia.missed, a.post.load(Ordering::SeqCst)),
        (1, 0, 1)
    );
    assert_eq!(
        (ib.hits, ib.missed, hits(b), b.post.load(Ordering::SeqCst)),
        (0, 1, 0, 0)
    );
    assert_eq!(
        a.r1_post.load(Ordering::SeqCst),
        12,
        "outer post-handler saw its own step's result"
    );
    // afterwards both fire normally
    assert_eq!(fx.call(JUMPY, &[]).r[1], 2);
    assert_eq!(hits(b), 1);
}

#[test]
fn unregister_waits_for_a_cpu_that_is_mid_step() {
    for post in [false, true] {
        let fx: Fx = Fx::new();
        let before = fx.snapshot();
        let s = seen();
        let mut p = Kprobe::at(ARITH + 8).pre(pre_count).data(s);
        if post {
            p = p.post(post_count); // trapping step
        } // else boosted: the slot jumps back by itself
        let id = fx.e.register_kprobe(&p).unwrap();
        let cpu1 = Arc::new(Mutex::new(fx.cpu_calling(1, 1, Space::Kernel, ARITH, &[])));
        {
            let mut c = cpu1.lock().unwrap();
            fx.step_into_slot(&mut c);
        }
        // CPU 0 unregisters; the grace period lets CPU 1 leave the slot
        let (w, e, c1) = (fx.w, fx.e, cpu1.clone());
        let left_slot = Arc::new(Mutex::new(None));
        let left = left_slot.clone();
        fx.w.on_synchronize(move || {
            let mut c = c1.lock().unwrap();
            let r = c.run_while_in(w, e, SLOT_AREA, SLOT_AREA + 0x2000, 100);
            *left.lock().unwrap() = Some((r, c.regs.pc as usize));
            w.switch_to(0, 0);
        });
        fx.w.switch_to(0, 0);
        fx.e.unregister(id).unwrap();
        fx.w.clear_sync_hook();
        let (r, pc) = left_slot.lock().unwrap().take().expect("grace period ran");
        assert_eq!(
            r, None,
            "post={post}: CPU 1 left the slot during the grace period"
        );
        assert_eq!(
            pc,
            ARITH + 0xa,
            "post={post}: and continued after the probed instruction"
        );
        let mut c = cpu1.lock().unwrap();
        assert_eq!(c.run(fx.w, fx.e, 100), Stop::Halted);
        assert_eq!(c.regs.r[1], 13);
        assert_eq!(hits(s), 1);
        // Once unregister has unlinked the probe no handler of it starts
        // (running ones finish before unregister returns): the post-handler
        // of the step in flight is skipped.
        assert_eq!(
            s.post.load(Ordering::SeqCst),
            0,
            "no handler starts after the unlink"
        );
        assert_eq!(fx.snapshot(), before, "bytes, slots and pages all back");
    }
}

#[test]
#[cfg_attr(miri, ignore)] // heavy under Miri (the miri step runs the rest)
fn two_cpus_share_probes_with_exact_counts() {
    let fx: Fx = Fx::new();
    let s = seen();
    for &off in ARITH_INSNS {
        fx.e.register_kprobe(
            &Kprobe::at(ARITH + off)
                .pre(pre_count)
                .post(post_count)
                .data(s),
        )
        .unwrap();
    }
    let mut cpus: Vec<Cpu> = (0..4)
        .map(|i| fx.cpu_calling(i, i, Space::Kernel, ARITH, &[]))
        .collect();
    let mut runs = [0u32; 4];
    // round-robin one instruction at a time: steps of different CPUs
    // interleave in every way
    for round in 0..4000 {
        let i = round % 4;
        if runs[i] == 25 {
            continue;
        }
        match cpus[i].step(fx.w, fx.e) {
            None => {}
            Some(Stop::Halted) => {
                assert_eq!(cpus[i].regs.r[1], 13);
                runs[i] += 1;
                cpus[i] = fx.cpu_calling(i, i, Space::Kernel, ARITH, &[]);
            }
            Some(other) => panic!("cpu {i}: {other:?}"),
        }
    }
    assert_eq!(runs, [25; 4]);
    assert_eq!(hits(s), 100 * ARITH_INSNS.len());
    assert_eq!(s.post.load(Ordering::SeqCst), 100 * ARITH_INSNS.len());
}

#[test]
#[cfg_attr(miri, ignore)] // heavy under Miri (the miri step runs the rest)
fn probes_fire_while_registration_holds_its_lock() {
    // The Toy world's registration lock panics instead of waiting, so a
    // trap path that touched it while registration holds it would fail here.
    let fx: Fx = Fx::new();
    let s = seen();
    let r = seen();
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .pre(pre_count)
            .post(post_count)
            .data(s),
    )
    .unwrap();
    fx.e.register_kretprobe(&probe_core::Kretprobe::at(RECUR).ret(ret_record).data(r))
        .unwrap();
    let (w, e) = (fx.w, fx.e);
    let results = Arc::new(Mutex::new(Vec::new()));
    let out = results.clone();
    // every text write below happens with the registration lock held
    fx.w.on_text_write(move || {
        let mut arith = Cpu::new(1, 1, Space::Kernel, ARITH, 0xc000);
        arith.regs.r[14] = STUBS as u64 + 0x50; // return into a halt
        w.load(Space::Kernel, STUBS + 0x50, &custom_arch::isa::asm::halt());
        assert_eq!(arith.run(w, e, 1000), Stop::Halted);
        let mut recur = Cpu::new(1, 1, Space::Kernel, RECUR, 0xb000);
        recur.regs.r[1] = 3;
        recur.regs.r[14] = STUBS as u64 + 0x50;
        assert_eq!(recur.run(w, e, 1000), Stop::Halted);
        out.lock().unwrap().push((arith.regs.r[1], recur.regs.r[1]));
        w.switch_to(0, 0);
    });
    let other =
        fx.e.register_kprobe(&Kprobe::at(JUMPY).pre(pre_count).data(seen()))
            .unwrap();
    fx.e.disable(other).unwrap();
    fx.e.unregister(other).unwrap();
    fx.w.clear_text_write_hook();
    let results = results.lock().unwrap();
    assert!(
        results.len() >= 3,
        "the other CPU ran during every text write"
    );
    assert!(results.iter().all(|&r| r == (13, 6)));
    assert_eq!(
        (hits(s), s.post.load(Ordering::SeqCst)),
        (results.len(), results.len())
    );
    assert_eq!(r.values.lock().unwrap().len(), 4 * results.len());
}

#[test]
fn a_hardware_single_step_trap_can_end_a_step() {
    let fx: Fx = Fx::new();
    let s = seen();
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .pre(pre_count)
            .post(post_count)
            .data(s),
    )
    .unwrap();
    let mut regs = custom_arch::arch::ToyRegs {
        pc: (ARITH + 8) as u64,
        flags: FLAG_IE,
        ..Default::default()
    };
    regs.r[1] = 5;
    regs.r[2] = 7;
    fx.w.switch_to(0, 0);
    assert_eq!(
        // SAFETY: one simulated CPU; traps taken one at a time.
        unsafe { fx.e.handle_breakpoint(&mut regs, ExecMode::Kernel) },
        TrapOutcome::Handled
    );
    let slot = regs.pc as usize;
    assert!(slot >= SLOT_AREA);
    // nothing in flight on another CPU
    fx.w.switch_to(1, 0);
    assert_eq!(
        // SAFETY: one simulated CPU; traps taken one at a time.
        unsafe { fx.e.handle_single_step(&mut regs, ExecMode::Kernel) },
        TrapOutcome::NotOurs
    );
    fx.w.switch_to(0, 0);
    // the CPU executed the copy (add r1, r2) and single-stepped
    regs.r[1] = 12;
    regs.pc = (slot + 2) as u64;
    assert_eq!(
        // SAFETY: one simulated CPU; traps taken one at a time.
        unsafe { fx.e.handle_single_step(&mut regs, ExecMode::Kernel) },
        TrapOutcome::Handled
    );
    assert_eq!(regs.pc as usize, ARITH + 0xa);
    assert_eq!(regs.flags & FLAG_IE, FLAG_IE);
    assert_eq!((hits(s), s.post.load(Ordering::SeqCst)), (1, 1));
    assert_eq!(s.r1_post.load(Ordering::SeqCst), 12);
    assert_eq!(
        // SAFETY: one simulated CPU; traps taken one at a time.
        unsafe { fx.e.handle_single_step(&mut regs, ExecMode::Kernel) },
        TrapOutcome::NotOurs
    );
}
