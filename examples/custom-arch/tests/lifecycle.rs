//! A real kernel's life: address spaces released and reused, signals during
//! a user step, preemption, handlers calling back into the engine, failures
//! halfway through, leaked steps. One test per scenario of the reliability
//! review, named after it.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use common::*;
use custom_arch::isa::asm::*;
use custom_arch::isa::SP;
use custom_arch::machine::{Cpu, Stop};
use custom_arch::world::{Event, SLOT_AREA};
use custom_arch::ToyEngine;
use probe_core::{
    Kprobe, Kretprobe, PreAction, ProbeContext, ProbeError, ProbeErrorKind, ProbeId, ProbeSpec,
    Space, TrapOutcome,
};
use probe_hal::{Capacity, ExecMode, Registers};

fn user_fx() -> Fx {
    let fx: Fx = Fx::new();
    for asid in [1, 2] {
        fx.load_user(asid);
        fx.w.set_task_space(asid, asid);
    }
    fx
}

/// A signal handler on `cpu`'s CPU and task: a call of `func` on a stack
/// below the interrupted one, run to its end.
fn run_signal_handler(fx: &Fx, cpu: &Cpu, func: usize, args: &[u64]) -> Cpu {
    let mut h = fx.cpu_calling(cpu.index, cpu.task, cpu.space, func, args);
    h.regs.r[SP] = cpu.regs.r[SP] - 0x100;
    assert_eq!(h.run(fx.w, fx.e, 10_000), Stop::Halted, "signal handler");
    h
}

#[test]
fn release_space_leaves_no_stale_chain_head() {
    // One record and one point: the next probe must reuse them.
    let fx: Fx<1> = Fx::new();
    fx.load_user(1);
    fx.w.set_task_space(1, 1);
    let (a, b) = (seen(), seen());
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .in_space(Space::User(1))
            .pre(pre_count)
            .data(a),
    )
    .unwrap();
    fx.e.release_space(1).unwrap();
    // The freed point and record are the first free ones: the next probe
    // reuses them, at another address and in another space.
    let id =
        fx.e.register_kprobe(&Kprobe::at(BRANCHY + 8).pre(pre_count).data(b))
            .unwrap();
    assert_eq!(fx.call(BRANCHY, &[4]).r[1], 200);
    assert_eq!((hits(a), hits(b)), (0, 1));
    fx.e.unregister(id).unwrap();
    assert!(!fx.e.is_armed(Space::Kernel, BRANCHY + 8));
    let lib = library();
    let branchy = &lib.iter().find(|l| l.0 == BRANCHY).unwrap().2;
    assert_eq!(&fx.w.peek(Space::Kernel, BRANCHY, branchy.len()), branchy);
    assert_eq!(fx.call(BRANCHY, &[4]).r[1], 200);
    assert_eq!(hits(b), 1, "an unregistered probe's handler never runs");
}

#[test]
fn a_signal_handler_hitting_another_uprobe_during_a_step() {
    let fx = user_fx();
    let (a, b) = (seen(), seen());
    // post-handlers force trapping steps
    for (addr, s) in [(ARITH + 8, a), (BRANCHY, b)] {
        fx.e.register_kprobe(
            &Kprobe::at(addr)
                .in_space(Space::User(1))
                .pre(pre_count)
                .post(post_count)
                .data(s),
        )
        .unwrap();
    }
    let mut cpu = fx.cpu_calling(0, 1, Space::User(1), ARITH, &[]);
    fx.step_into_slot(&mut cpu);
    assert!(fx.e.should_defer_signal(&fx.w.tasks[1]));
    // A kernel that does not defer delivers a signal now; its handler hits
    // the other uprobe, then sigreturn resumes the step.
    let saved = cpu.regs;
    let h = run_signal_handler(&fx, &cpu, BRANCHY, &[3]);
    assert_eq!(h.regs.r[1], 100);
    cpu.regs = saved;
    assert_eq!(cpu.run(fx.w, fx.e, 10_000), Stop::Halted);
    assert_eq!(cpu.regs.r[1], 13);
    for s in [a, b] {
        assert_eq!((hits(s), s.post.load(Ordering::SeqCst)), (1, 1));
    }
    assert!(!fx.e.should_defer_signal(&fx.w.tasks[1]));
    assert_eq!(fx.e.leaked_steps(), 0);
}

#[test]
fn unregister_while_the_task_runs_a_signal_handler_mid_step() {
    let fx = user_fx();
    let (a, b) = (seen(), seen());
    let id =
        fx.e.register_kprobe(
            &Kprobe::at(ARITH + 8)
                .in_space(Space::User(1))
                .pre(pre_count)
                .post(post_count)
                .data(a),
        )
        .unwrap();
    let mut cpu = fx.cpu_calling(0, 1, Space::User(1), ARITH, &[]);
    fx.step_into_slot(&mut cpu);
    let saved = cpu.regs;
    // The task is in its signal handler (its pc outside every slot): the
    // grace period ends, the probe goes, another probe comes.
    fx.w.switch_to(1, 0);
    fx.e.unregister(id).unwrap();
    assert!(!fx.e.is_armed(Space::User(1), ARITH + 8));
    assert_eq!(
        fx.e.slot_usage().0,
        1,
        "the parked step keeps its slot alive"
    );
    let id2 =
        fx.e.register_kprobe(
            &Kprobe::at(ARITH + 4)
                .in_space(Space::User(1))
                .pre(pre_count)
                .post(post_count)
                .data(b),
        )
        .unwrap();
    // sigreturn: back into the slot.
    cpu.regs = saved;
    assert_eq!(cpu.run(fx.w, fx.e, 10_000), Stop::Halted);
    assert_eq!(cpu.regs.r[1], 13, "the displaced instruction ran right");
    assert_eq!(
        (hits(a), a.post.load(Ordering::SeqCst)),
        (1, 0),
        "no handler of an unregistered probe runs"
    );
    assert_eq!(
        hits(b),
        0,
        "the new probe was registered after the call passed it"
    );
    // The next registration call frees the point whose last step ended.
    fx.e.unregister(id2).unwrap();
    assert_eq!(fx.e.slot_usage(), (0, 0));
    assert_eq!(fx.call_in(Space::User(1), 1, ARITH, &[]).r[1], 13);
}

#[test]
fn abort_user_step_rewinds_to_the_probe_address() {
    let fx = user_fx();
    let a = seen();
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .in_space(Space::User(1))
            .pre(pre_count)
            .post(post_count)
            .data(a),
    )
    .unwrap();
    let mut cpu = fx.cpu_calling(0, 1, Space::User(1), ARITH, &[]);
    fx.step_into_slot(&mut cpu);
    fx.w.switch_to(0, 1);
    let mut outside = cpu.regs;
    outside.pc = ARITH as u64;
    // SAFETY: the current task's frame, one simulated CPU.
    assert!(
        !unsafe { fx.e.abort_user_step(&mut outside) },
        "pc not in a slot"
    );
    // SAFETY: as above.
    assert!(unsafe { fx.e.abort_user_step(&mut cpu.regs) });
    assert_eq!(cpu.regs.pc as usize, ARITH + 8);
    assert!(!fx.e.should_defer_signal(&fx.w.tasks[1]));
    assert_eq!(cpu.run(fx.w, fx.e, 10_000), Stop::Halted);
    assert_eq!(cpu.regs.r[1], 13);
    assert_eq!(
        (hits(a), a.post.load(Ordering::SeqCst)),
        (2, 1),
        "the probe fires again after the abort"
    );
}

#[test]
fn kernel_probes_are_not_boosted_when_the_grace_period_ignores_preempted_tasks() {
    let fx: Fx = Fx::new();
    fx.w.grace_period_ignores_preempted_tasks();
    let a = seen();
    fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count).data(a))
        .unwrap();
    assert_eq!(fx.e.slot_usage().0, 1, "a step slot only, no boost slot");
    let mut cpu = fx.cpu_calling(0, 0, Space::Kernel, ARITH, &[]);
    assert_eq!(cpu.run(fx.w, fx.e, 1000), Stop::Halted);
    assert_eq!((cpu.regs.r[1], cpu.traps, hits(a)), (13, 2, 1));
}

#[test]
fn in_slot_tells_a_grace_period_whether_a_saved_pc_is_in_a_slot() {
    let fx = user_fx();
    fx.e.register_kprobe(&Kprobe::at(ARITH + 8).post(post_count).data(seen()))
        .unwrap();
    let mut cpu = fx.cpu_calling(0, 0, Space::Kernel, ARITH, &[]);
    fx.step_into_slot(&mut cpu);
    let pc = cpu.regs.pc as usize;
    assert!(fx.e.in_slot(Space::Kernel, pc));
    assert!(!fx.e.in_slot(Space::User(1), pc));
    assert!(!fx.e.in_slot(Space::Kernel, ARITH + 8));
    assert_eq!(cpu.run(fx.w, fx.e, 1000), Stop::Halted);
}

/// Handler data that lets a handler call back into the engine.
struct CallBack {
    e: &'static ToyEngine,
    unregister: Mutex<Option<Result<(), ProbeError>>>,
    register: Mutex<Option<Result<ProbeId, ProbeError>>>,
    listed: Mutex<Option<usize>>,
}

fn pre_calls_back(ctx: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    let c = ctx.data.downcast_ref::<CallBack>().unwrap();
    *c.unregister.lock().unwrap() = Some(c.e.unregister(ctx.id));
    *c.register.lock().unwrap() = Some(c.e.register_kprobe(&Kprobe::at(BRANCHY)));
    *c.listed.lock().unwrap() = Some(c.e.list::<8>().len());
    PreAction::Continue
}

#[test]
fn a_handler_that_unregisters_its_own_probe_gets_an_error() {
    let fx: Fx = Fx::new();
    let cb: &'static CallBack = Box::leak(Box::new(CallBack {
        e: fx.e,
        unregister: Mutex::new(None),
        register: Mutex::new(None),
        listed: Mutex::new(None),
    }));
    let id =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_calls_back).data(cb))
            .unwrap();
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    fn kind<T>(r: &Option<Result<T, ProbeError>>) -> ProbeErrorKind {
        match r {
            Some(Err(e)) => e.kind(),
            _ => panic!("the call from the handler succeeded"),
        }
    }
    assert_eq!(
        kind(&cb.unregister.lock().unwrap()),
        ProbeErrorKind::InTrapContext
    );
    assert_eq!(
        kind(&cb.register.lock().unwrap()),
        ProbeErrorKind::InTrapContext
    );
    // queries do not wait for the lock from a handler, and still answer
    assert_eq!(*cb.listed.lock().unwrap(), Some(1));
    assert!(fx.e.info(id).is_ok(), "still registered");
    assert!(!fx.e.is_armed(Space::Kernel, BRANCHY));
    fx.e.unregister(id).unwrap();
}

#[test]
#[should_panic(expected = "beyond the engine's CPUS")]
fn a_cpu_id_beyond_the_capacity_is_never_clamped() {
    let fx: Fx = Fx::new();
    fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count).data(seen()))
        .unwrap();
    // The engine has 4 CPUs: CPU 9 would share CPU 3's state if clamped.
    let mut cpu = fx.cpu_calling(9, 0, Space::Kernel, ARITH, &[]);
    let _ = cpu.run(fx.w, fx.e, 1000);
}

const CALLM_FN: usize = 0x2000;

#[test]
fn a_simulated_call_through_a_bad_pointer_reports_a_fault() {
    let fx: Fx = Fx::new();
    fx.w.load(Space::Kernel, CALLM_FN, &cat(&[&callm(1, 0), &ret()]));
    // unprobed: the call faults at the instruction, no fix-up: stop
    let mut plain = fx.cpu_calling(0, 0, Space::Kernel, CALLM_FN, &[0x10]);
    assert_eq!(plain.run(fx.w, fx.e, 1000), Stop::Fault(0x10));
    let a = seen();
    fx.e.register_kprobe(&Kprobe::at(CALLM_FN).pre(pre_count).data(a))
        .unwrap();
    let mut cpu = fx.cpu_calling(0, 0, Space::Kernel, CALLM_FN, &[0x10]);
    assert_eq!(cpu.run(fx.w, fx.e, 1000), Stop::Fault(0x10));
    assert_eq!(cpu.regs.pc as usize, CALLM_FN, "pc at the probe");
    assert_eq!(hits(a), 1, "the handler ran once: no re-trap loop");
    // The trap outcome itself names the data address.
    let mut regs = cpu.regs;
    regs.pc = CALLM_FN as u64;
    fx.w.switch_to(0, 0);
    assert_eq!(
        // SAFETY: one simulated CPU; traps taken one at a time.
        unsafe { fx.e.handle_breakpoint(&mut regs, ExecMode::Kernel) },
        TrapOutcome::Fault { addr: 0x10 }
    );
    // With a fix-up the kernel delivers it as the original's fault.
    fx.w.fixups.lock().unwrap().push((CALLM_FN, LOAD_FIXUP));
    let mut fixed = fx.cpu_calling(0, 0, Space::Kernel, CALLM_FN, &[0x10]);
    assert_eq!(fixed.run(fx.w, fx.e, 1000), Stop::Halted);
    assert_eq!(fixed.regs.r[1] as i64, 0xdead_u16 as i16 as i64);
    // A good pointer is simulated as a call through memory.
    fx.w.load(Space::Kernel, 0x2100, &(ARITH as u64).to_le_bytes());
    fx.w.load(Space::Kernel, 0x2200, &cat(&[&callm(1, 0), &halt()]));
    fx.e.register_kprobe(&Kprobe::at(0x2200).pre(pre_count).data(a))
        .unwrap();
    let mut good = Cpu::new(0, 0, Space::Kernel, 0x2200, 0xf000);
    good.regs.r[1] = 0x2100;
    assert_eq!(good.run(fx.w, fx.e, 1000), Stop::Halted);
    assert_eq!(good.regs.r[1], 13, "arith ran through the pointer");
    assert_eq!(good.regs.pc as usize, 0x2204);
}

#[test]
fn a_uprobe_inside_an_already_probed_instruction_is_refused() {
    let fx = user_fx();
    fx.e.register_kprobe(&Kprobe::at(ARITH).in_space(Space::User(1)))
        .unwrap();
    let before = fx.w.peek(Space::User(1), ARITH, 16);
    let snap = fx.snapshot();
    // ARITH+2 decodes (as a 2-byte instruction inside the 4-byte `li`).
    let e =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 2).in_space(Space::User(1)))
            .unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::Overlaps { other: ARITH });
    assert_eq!(fx.w.peek(Space::User(1), ARITH, 16), before);
    assert_eq!(fx.snapshot(), snap);
    // the same address in another space is fine
    fx.e.register_kprobe(&Kprobe::at(ARITH + 2).in_space(Space::User(2)))
        .unwrap();
}

#[test]
fn user_space_usize_max_is_not_the_kernel() {
    let fx: Fx = Fx::new();
    fx.load_user(usize::MAX);
    fx.w.set_task_space(3, usize::MAX);
    let (k, u) = (seen(), seen());
    fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count).data(k))
        .unwrap();
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .in_space(Space::User(usize::MAX))
            .pre(pre_count)
            .data(u),
    )
    .unwrap();
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!((hits(k), hits(u)), (1, 0));
    assert_eq!(fx.call_in(Space::User(usize::MAX), 3, ARITH, &[]).r[1], 13);
    assert_eq!((hits(k), hits(u)), (1, 1));
    assert_eq!(fx.e.list::<8>().len(), 2);
}

#[test]
fn fork_with_too_few_instances_gives_the_child_none() {
    let fx = user_fx();
    fx.e.register_kretprobe(
        &Kretprobe::at(RECUR)
            .in_space(Space::User(1))
            .maxactive(16)
            .data(seen()),
    )
    .unwrap();
    fx.e.register_kretprobe(&Kretprobe::at(RECUR).maxactive(16).data(seen()))
        .unwrap();
    // task 1 holds 6 user instances
    let mut user = fx.cpu_calling(0, 1, Space::User(1), RECUR, &[8]);
    fx.step_until_pending(&mut user, 6);
    // task 2 takes the other 10 in the kernel
    let mut kernel = fx.cpu_calling(1, 2, Space::Kernel, RECUR, &[15]);
    fx.step_until_pending(&mut kernel, 10);
    assert_eq!(fx.e.free_instances(), 0);
    fx.w.clone_space(Space::User(1), Space::User(5));
    let e =
        fx.e.fork_space(1, 5, &fx.w.tasks[1], &fx.w.tasks[6])
            .unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::CapacityFull(Capacity::Instances));
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[6]), 0, "all or nothing");
    assert_eq!(fx.e.free_instances(), 0);
    // Both calls still finish right.
    assert_eq!(kernel.run(fx.w, fx.e, 100_000), Stop::Halted);
    assert_eq!(kernel.regs.r[1], 120);
    assert_eq!(user.run(fx.w, fx.e, 100_000), Stop::Halted);
    assert_eq!(user.regs.r[1], 36);
    assert_eq!(fx.e.free_instances(), 16);
}

#[test]
fn a_failed_batch_rollback_leaves_the_probe_registered_disabled() {
    let fx: Fx = Fx::new();
    let a = seen();
    let w = fx.w;
    // The batch's second probe cannot be armed; rolling back the first
    // then cannot restore its text either.
    fx.w.fail_writes_at(BRANCHY + 8);
    fx.w.on_text_write(move || {
        let armed_first = matches!(
            w.log.lock().unwrap().last(),
            Some(Event::TextWrite { addr, .. }) if *addr == ARITH + 8
        );
        if armed_first {
            w.fail_writes_at(ARITH + 8);
        }
    });
    let specs = [
        ProbeSpec::Kprobe(Kprobe::at(ARITH + 8).pre(pre_count).data(a)),
        ProbeSpec::Kprobe(Kprobe::at(BRANCHY + 8).pre(pre_count).data(a)),
    ];
    let mut ids = [ProbeId::NONE; 2];
    let e = fx.e.register_batch(&specs, &mut ids).unwrap_err();
    fx.w.clear_text_write_hook();
    assert_eq!((e.index, e.left_registered), (1, 1));
    assert_eq!(e.error.kind(), ProbeErrorKind::TextPatchFailed);
    assert_ne!(ids[0], ProbeId::NONE, "the stuck probe's id is kept");
    assert_eq!(ids[1], ProbeId::NONE);
    let info = fx.e.info(ids[0]).unwrap();
    assert!(!info.enabled);
    assert!(fx.e.is_armed(Space::Kernel, ARITH + 8));
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!(hits(a), 0, "a disabled probe runs no handler");
    assert!(e.to_string().contains("could not be rolled back"));
    fx.w.clear_failures();
    fx.e.unregister(ids[0]).unwrap();
    assert!(!fx.e.is_armed(Space::Kernel, ARITH + 8));
    assert!(fx.e.list::<8>().is_empty());
}

#[test]
fn a_failed_batch_unregister_keeps_every_live_probe_armed() {
    let fx: Fx = Fx::new();
    let (a, b) = (seen(), seen());
    let ida =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count).data(a))
            .unwrap();
    let idb =
        fx.e.register_kprobe(&Kprobe::at(BRANCHY + 8).pre(pre_count).data(b))
            .unwrap();
    fx.w.fail_writes_at(BRANCHY + 8);
    let e = fx.e.unregister_batch(&[ida, idb]).unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::TextPatchFailed);
    for (id, addr) in [(ida, ARITH + 8), (idb, BRANCHY + 8)] {
        assert!(fx.e.info(id).unwrap().enabled);
        assert!(fx.e.is_armed(Space::Kernel, addr), "{addr:#x} armed");
    }
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!(hits(a), 1, "the probe disarmed first fires again");
    fx.w.clear_failures();
    fx.e.unregister_batch(&[ida, idb]).unwrap();
    assert!(fx.e.list::<8>().is_empty());
}

#[test]
fn registration_cost_is_linear_in_the_function_length() {
    let fx: Fx<512> = Fx::new();
    fx.w.grace_period_ignores_preempted_tasks();
    // one probe far into a 514-byte function
    let before = fx.w.reads.load(Ordering::SeqCst);
    let id = fx.e.register_kprobe(&Kprobe::at(NOPS + 510)).unwrap();
    let one = fx.w.reads.load(Ordering::SeqCst) - before;
    assert!(one <= 16, "one registration read {one} times");
    fx.e.unregister(id).unwrap();
    // every boundary of it, in one batch: one walk
    let specs: Vec<_> = (0..256)
        .map(|i| ProbeSpec::Kprobe(Kprobe::at(NOPS + 2 * i)))
        .collect();
    let mut ids = vec![ProbeId::NONE; 256];
    let before = fx.w.reads.load(Ordering::SeqCst);
    fx.e.register_batch(&specs, &mut ids).unwrap();
    let batch = fx.w.reads.load(Ordering::SeqCst) - before;
    assert!(
        batch <= 256 * 4,
        "a batch of 256 probes read {batch} times (quadratic would be ~33,000)"
    );
    assert_eq!(fx.call(NOPS, &[7]).r[1], 7);
    fx.e.unregister_batch(&ids).unwrap();
}

#[test]
fn a_fifth_nested_hit_makes_progress_with_a_counted_miss() {
    let fx: Fx = Fx::new();
    let a = seen();
    let id =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 4).post(post_count).data(a))
            .unwrap();
    // Contexts that leave the slot without reaching its end (a non-local
    // jump out of a nested handler) leak their step frames.
    for _ in 0..5 {
        let mut cpu = fx.cpu_calling(0, 0, Space::Kernel, ARITH, &[]);
        fx.step_into_slot(&mut cpu);
    }
    let mut cpu = fx.cpu_calling(0, 0, Space::Kernel, ARITH, &[]);
    assert_eq!(cpu.run(fx.w, fx.e, 1000), Stop::Halted);
    assert_eq!(cpu.regs.r[1], 13);
    assert!(fx.e.leaked_steps() >= 2, "leaked {}", fx.e.leaked_steps());
    let info = fx.e.info(id).unwrap();
    assert_eq!(info.hits + info.missed, 6);
    assert!(info.missed >= 5);
}

#[test]
fn a_programs_own_breakpoint_is_not_restarted_inside_itself() {
    let fx: Fx = Fx::new();
    // A trap reported at ARITH+2, in the middle of a `li`, where the engine
    // never wrote (nor removed) a breakpoint: not ours.
    let mut regs = fx.cpu_calling(0, 0, Space::Kernel, ARITH, &[]).regs;
    regs.pc = (ARITH + 2) as u64;
    fx.w.switch_to(0, 0);
    assert_eq!(
        // SAFETY: one simulated CPU; traps taken one at a time.
        unsafe { fx.e.handle_breakpoint(&mut regs, ExecMode::Kernel) },
        TrapOutcome::NotOurs
    );
    assert_eq!(regs.pc as usize, ARITH + 2);
}

#[test]
fn exec_drops_user_state_and_keeps_kernel_instances() {
    let fx = user_fx();
    let (u, k) = (seen(), seen());
    fx.e.register_kretprobe(
        &Kretprobe::at(RECUR)
            .in_space(Space::User(1))
            .ret(ret_record)
            .data(u),
    )
    .unwrap();
    fx.e.register_kretprobe(&Kretprobe::at(RECUR).ret(ret_record).data(k))
        .unwrap();
    // User calls pending, then the task enters the kernel (exec) with a
    // kernel return pending too.
    let mut user = fx.cpu_calling(0, 1, Space::User(1), RECUR, &[3]);
    fx.step_until_pending(&mut user, 2);
    let mut kernel = fx.cpu_calling(0, 1, Space::Kernel, RECUR, &[2]);
    fx.step_until_pending(&mut kernel, 3);
    fx.w.switch_to(0, 1);
    // task 1 is the current task, in its exec path
    fx.e.exec_task(&fx.w.tasks[1]).unwrap();
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[1]), 1);
    fx.e.release_space(1).unwrap();
    assert_eq!(kernel.run(fx.w, fx.e, 100_000), Stop::Halted);
    assert_eq!(kernel.regs.r[1], 3);
    assert!(k.ret.load(Ordering::SeqCst) >= 1);
    assert_eq!(u.ret.load(Ordering::SeqCst), 0);
    assert_eq!(fx.e.free_instances(), 16);
    assert!(
        !fx.e.in_slot(Space::User(1), SLOT_AREA),
        "the old space's pages are gone"
    );
    assert!(fx.w.count(|e| matches!(e, Event::PageFree(Space::User(1), _))) >= 1);
}

#[test]
fn a_step_left_by_a_longjmp_is_dropped_at_the_next_hit() {
    let fx: Fx = Fx::new();
    let a = seen();
    let id =
        fx.e.register_kprobe(
            &Kprobe::at(ARITH + 4)
                .pre(pre_count)
                .post(post_count)
                .data(a),
        )
        .unwrap();
    // A context hits the probe deep in a stack and leaves the slot by a
    // non-local jump to a frame higher up the same stack.
    let mut deep = fx.cpu_calling(0, 0, Space::Kernel, ARITH, &[]);
    deep.regs.r[SP] -= 0x200;
    fx.step_into_slot(&mut deep);
    let mut after = fx.cpu_calling(0, 0, Space::Kernel, ARITH, &[]);
    assert_eq!(after.run(fx.w, fx.e, 1000), Stop::Halted);
    assert_eq!(after.regs.r[1], 13);
    assert_eq!(fx.e.leaked_steps(), 1, "the abandoned step is reported");
    let info = fx.e.info(id).unwrap();
    assert_eq!(
        (info.hits, info.missed),
        (2, 0),
        "the later hit is no re-entry"
    );
    assert_eq!((hits(a), a.post.load(Ordering::SeqCst)), (2, 1));
    // Registration from that CPU works again.
    fx.w.switch_to(0, 0);
    fx.e.unregister(id).unwrap();
}

/// Handler data for lifecycle calls made (wrongly) from a handler.
struct LifecycleFromHandler {
    e: &'static ToyEngine,
    w: &'static custom_arch::world::World,
    results: Mutex<Vec<Result<(), ProbeError>>>,
}

fn pre_calls_lifecycle(ctx: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    let c = ctx.data.downcast_ref::<LifecycleFromHandler>().unwrap();
    let t = &c.w.tasks[0];
    let mut r = c.results.lock().unwrap();
    r.push(c.e.release_task(t));
    r.push(c.e.exec_task(t));
    r.push(c.e.fork_space(1, 2, t, &c.w.tasks[3]));
    PreAction::Continue
}

#[test]
fn lifecycle_calls_from_a_handler_are_refused_with_nothing_changed() {
    let fx: Fx = Fx::new();
    let k = seen();
    fx.e.register_kretprobe(&Kretprobe::at(RECUR).ret(ret_record).data(k))
        .unwrap();
    let c: &'static LifecycleFromHandler = Box::leak(Box::new(LifecycleFromHandler {
        e: fx.e,
        w: fx.w,
        results: Mutex::new(Vec::new()),
    }));
    fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_calls_lifecycle).data(c))
        .unwrap();
    // task 0 holds kernel return instances while the handler runs
    let mut kernel = fx.cpu_calling(1, 0, Space::Kernel, RECUR, &[3]);
    fx.step_until_pending(&mut kernel, 2);
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    let kinds: Vec<_> = c
        .results
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.map_err(|e| e.kind()))
        .collect();
    assert_eq!(kinds, vec![Err(ProbeErrorKind::InTrapContext); 3]);
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[0]), 2, "nothing released");
    assert_eq!(kernel.run(fx.w, fx.e, 100_000), Stop::Halted);
    assert_eq!(kernel.regs.r[1], 6);
    assert_eq!(k.ret.load(Ordering::SeqCst), 4);
    assert_eq!(fx.e.free_instances(), 16);
}

#[test]
fn fork_into_a_child_holding_instances_is_refused_with_nothing_changed() {
    let fx = user_fx();
    fx.e.register_kretprobe(&Kretprobe::at(RECUR).in_space(Space::User(1)))
        .unwrap();
    fx.e.register_kretprobe(&Kretprobe::at(RECUR)).unwrap();
    let mut user = fx.cpu_calling(0, 1, Space::User(1), RECUR, &[3]);
    fx.step_until_pending(&mut user, 2);
    // the "child" already holds kernel instances
    let mut kernel = fx.cpu_calling(1, 6, Space::Kernel, RECUR, &[3]);
    fx.step_until_pending(&mut kernel, 2);
    fx.w.clone_space(Space::User(1), Space::User(5));
    let before = fx.w.peek(Space::User(5), RECUR, 8);
    let free = fx.e.free_instances();
    let e =
        fx.e.fork_space(1, 5, &fx.w.tasks[1], &fx.w.tasks[6])
            .unwrap_err();
    assert!(matches!(e.kind(), ProbeErrorKind::InvalidRequest(_)));
    let e =
        fx.e.fork_space(1, 5, &fx.w.tasks[1], &fx.w.tasks[1])
            .unwrap_err();
    assert!(matches!(e.kind(), ProbeErrorKind::InvalidRequest(_)));
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[6]), 2);
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[1]), 2);
    assert_eq!(fx.e.free_instances(), free);
    assert_eq!(
        fx.w.peek(Space::User(5), RECUR, 8),
        before,
        "child untouched"
    );
    assert_eq!(kernel.run(fx.w, fx.e, 100_000), Stop::Halted);
    assert_eq!(user.run(fx.w, fx.e, 100_000), Stop::Halted);
    assert_eq!(fx.e.free_instances(), 16);
}

#[test]
fn release_of_a_task_that_still_runs_is_defined() {
    let fx = user_fx();
    let (u, a) = (seen(), seen());
    fx.e.register_kretprobe(
        &Kretprobe::at(RECUR)
            .in_space(Space::User(1))
            .ret(ret_record)
            .data(u),
    )
    .unwrap();
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .in_space(Space::User(1))
            .pre(pre_count)
            .post(post_count)
            .data(a),
    )
    .unwrap();
    // pending user returns, released while the task goes on running
    let mut user = fx.cpu_calling(0, 1, Space::User(1), RECUR, &[3]);
    fx.step_until_pending(&mut user, 2);
    fx.e.release_task(&fx.w.tasks[1]).unwrap();
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[1]), 0);
    assert_eq!(fx.e.free_instances(), 16);
    let stop = user.run(fx.w, fx.e, 100_000);
    assert!(
        matches!(stop, Stop::ForeignBreakpoint(_)),
        "its return into the trampoline is not the engine's: {stop:?}"
    );
    assert_eq!(
        u.ret.load(Ordering::SeqCst),
        2,
        "only the calls made after the release"
    );
    // a parked step, released while the task goes on running
    let mut cpu = fx.cpu_calling(0, 1, Space::User(1), ARITH, &[]);
    fx.step_into_slot(&mut cpu);
    assert!(fx.e.should_defer_signal(&fx.w.tasks[1]));
    fx.e.release_task(&fx.w.tasks[1]).unwrap();
    assert!(!fx.e.should_defer_signal(&fx.w.tasks[1]));
    let stop = cpu.run(fx.w, fx.e, 10_000);
    assert_ne!(stop, Stop::Halted, "the step end is no longer the engine's");
    assert_eq!(a.post.load(Ordering::SeqCst), 0);
    assert_eq!(fx.e.leaked_steps(), 0);
    assert_eq!(fx.e.free_instances(), 16);
    // the task state is usable again
    let mut cpu = fx.cpu_calling(0, 1, Space::User(1), ARITH, &[]);
    assert_eq!(cpu.run(fx.w, fx.e, 10_000), Stop::Halted);
    assert_eq!(cpu.regs.r[1], 13);
    assert_eq!((hits(a), a.post.load(Ordering::SeqCst)), (2, 1));
    let mut user = fx.cpu_calling(0, 1, Space::User(1), RECUR, &[3]);
    assert_eq!(user.run(fx.w, fx.e, 100_000), Stop::Halted);
    assert_eq!(u.ret.load(Ordering::SeqCst), 6);
    fx.e.release_space(1).unwrap();
    assert_eq!(fx.e.free_instances(), 16);
}

#[test]
fn trap_paths_meeting_a_held_task_lock_miss_or_retry() {
    let fx = user_fx();
    let (u, a) = (seen(), seen());
    let ret_id =
        fx.e.register_kretprobe(
            &Kretprobe::at(RECUR)
                .in_space(Space::User(1))
                .ret(ret_record)
                .data(u),
        )
        .unwrap();
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .in_space(Space::User(1))
            .pre(pre_count)
            .post(post_count)
            .data(a),
    )
    .unwrap();
    let k = seen();
    let kret_id =
        fx.e.register_kretprobe(&Kretprobe::at(RECUR).ret(ret_record).data(k))
            .unwrap();
    let mut outer = fx.cpu_calling(0, 1, Space::User(1), RECUR, &[3]);
    fx.step_until_pending(&mut outer, 1);
    let mut calls = 0;
    let mut stepper = fx.cpu_calling(2, 1, Space::User(1), ARITH, &[]);
    let mut inner = fx.cpu_calling(1, 1, Space::User(1), RECUR, &[0]);
    // The walker holds task 1's lock while it calls back; task 1's traps
    // then find its state busy.
    // SAFETY: the walk only reads; the traps of task 1 that run inside it
    // do not change its state (they find it busy).
    unsafe {
        fx.e.pending_return_frames(&fx.w.tasks[1], |_, _, _| {
            calls += 1;
            // the task in the kernel: its return probe's entries are
            // missed, no instance taken; the calls return normally
            let mut kernel = fx.cpu_calling(1, 1, Space::Kernel, RECUR, &[2]);
            assert_eq!(kernel.run(fx.w, fx.e, 10_000), Stop::Halted);
            assert_eq!(kernel.regs.r[1], 3);
            // the task in user mode: its breakpoints (which may be a step's
            // end) are retried, at the probe, until its state is free
            assert_eq!(inner.run(fx.w, fx.e, 200), Stop::Budget);
            assert_eq!(inner.regs.pc as usize, RECUR);
            assert_eq!(stepper.run(fx.w, fx.e, 200), Stop::Budget);
            assert_eq!(stepper.regs.pc as usize, ARITH + 8);
        })
    };
    assert_eq!(calls, 1);
    let info = fx.e.info(kret_id).unwrap();
    assert_eq!((info.hits, info.missed), (0, 3), "the entries met the lock");
    assert_eq!(k.ret.load(Ordering::SeqCst), 0);
    let info = fx.e.info(ret_id).unwrap();
    assert_eq!((info.hits, info.missed), (1, 0), "only the outer call");
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[1]), 1);
    assert_eq!(u.ret.load(Ordering::SeqCst), 0);
    assert_eq!(hits(a), 0);
    assert_eq!(a.post.load(Ordering::SeqCst), 0);
    assert!(!fx.e.should_defer_signal(&fx.w.tasks[1]));
    // the lock is free again: both complete normally
    assert_eq!(stepper.run(fx.w, fx.e, 10_000), Stop::Halted);
    assert_eq!(stepper.regs.r[1], 13);
    assert_eq!((hits(a), a.post.load(Ordering::SeqCst)), (1, 1));
    assert_eq!(inner.run(fx.w, fx.e, 10_000), Stop::Halted);
    assert_eq!(u.ret.load(Ordering::SeqCst), 1);
    assert_eq!(outer.run(fx.w, fx.e, 100_000), Stop::Halted);
    assert_eq!(fx.e.free_instances(), 16);
    assert_eq!(fx.e.leaked_steps(), 0);
}
