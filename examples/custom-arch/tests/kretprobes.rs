//! Feature 3: return probes.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use custom_arch::machine::Stop;
use probe_core::{EntryAction, Kprobe, Kretprobe, ProbeContext, ProbeErrorKind, Space};
use probe_hal::Registers;

#[test]
fn return_handler_sees_the_return_value_and_the_entry_data() {
    let fx: Fx = Fx::new();
    let s = seen();
    fx.e.register_kretprobe(
        &Kretprobe::symbol("branchy")
            .entry(entry_count)
            .ret(ret_record)
            .data_size(8)
            .data(s),
    )
    .unwrap();
    assert_eq!(fx.call(BRANCHY, &[3]).r[1], 100);
    assert_eq!(fx.call(BRANCHY, &[4]).r[1], 200);
    assert_eq!(s.entry.load(Ordering::SeqCst), 2);
    assert_eq!(*s.values.lock().unwrap(), vec![100, 200]);
    // the argument saved at entry in the instance data came back at return
    assert_eq!(*s.pcs.lock().unwrap(), vec![3, 4]);
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[0]), 0);
    assert_eq!(fx.e.free_instances(), 16);
}

#[test]
fn recursive_calls_return_in_order_and_nested_calls_work() {
    let fx: Fx = Fx::new();
    let s = seen();
    fx.e.register_kretprobe(&Kretprobe::at(RECUR).ret(ret_record).data(s))
        .unwrap();
    assert_eq!(fx.call(RECUR, &[5]).r[1], 15);
    // innermost first: sum(0), sum(1) … sum(5)
    assert_eq!(*s.values.lock().unwrap(), vec![0, 1, 3, 6, 10, 15]);
    // nested: caller() calls arith(), both probed
    let (a, b) = (seen(), seen());
    fx.e.register_kretprobe(&Kretprobe::at(CALLER).ret(ret_record).data(a))
        .unwrap();
    fx.e.register_kretprobe(&Kretprobe::at(ARITH).ret(ret_record).data(b))
        .unwrap();
    assert_eq!(fx.call(CALLER, &[]).r[1], 14);
    assert_eq!(*a.values.lock().unwrap(), vec![14]);
    assert_eq!(*b.values.lock().unwrap(), vec![13]);
}

#[test]
fn maxactive_limits_tracked_calls_and_counts_the_rest_as_missed() {
    let fx: Fx = Fx::new();
    let s = seen();
    let id =
        fx.e.register_kretprobe(&Kretprobe::at(RECUR).ret(ret_record).maxactive(3).data(s))
            .unwrap();
    assert_eq!(
        fx.call(RECUR, &[5]).r[1],
        15,
        "untracked calls still return right"
    );
    let info = fx.e.info(id).unwrap();
    assert_eq!((info.hits, info.missed), (3, 3));
    assert_eq!(
        *s.values.lock().unwrap(),
        vec![6, 10, 15],
        "the three outermost calls, innermost first"
    );
    assert_eq!(fx.e.free_instances(), 16);
}

#[test]
#[cfg_attr(miri, ignore)] // heavy under Miri (the miri step runs the rest)
fn the_engine_wide_pool_is_shared_and_exhaustion_is_missed_not_fatal() {
    let fx: Fx = Fx::new();
    let s = seen();
    let id =
        fx.e.register_kretprobe(&Kretprobe::at(RECUR).ret(ret_record).maxactive(100).data(s))
            .unwrap();
    // 21 nested calls, 16 instances in the pool
    assert_eq!(fx.call(RECUR, &[20]).r[1], 210);
    let info = fx.e.info(id).unwrap();
    assert_eq!((info.hits, info.missed), (16, 5));
    assert_eq!(fx.e.free_instances(), 16);
}

fn decline_odd(ctx: &ProbeContext, regs: &mut dyn Registers, _data: &mut [u8]) -> EntryAction {
    seen_of(ctx).entry.fetch_add(1, Ordering::SeqCst);
    if regs.arg(0).unwrap() % 2 == 1 {
        EntryAction::Decline
    } else {
        EntryAction::Track
    }
}

#[test]
fn entry_handler_may_decline_a_call() {
    let fx: Fx = Fx::new();
    let s = seen();
    let id =
        fx.e.register_kretprobe(
            &Kretprobe::at(RECUR)
                .entry(decline_odd)
                .ret(ret_record)
                .data(s),
        )
        .unwrap();
    assert_eq!(fx.call(RECUR, &[4]).r[1], 10);
    assert_eq!(s.entry.load(Ordering::SeqCst), 5);
    assert_eq!(
        *s.values.lock().unwrap(),
        vec![0, 3, 10],
        "sum(0), sum(2), sum(4)"
    );
    assert_eq!(fx.e.info(id).unwrap().missed, 0, "declined is not missed");
}

#[test]
fn unregister_with_live_instances_still_returns_to_the_real_caller() {
    let fx: Fx = Fx::new();
    let s = seen();
    let id =
        fx.e.register_kretprobe(&Kretprobe::at(RECUR).ret(ret_record).data(s))
            .unwrap();
    let mut cpu = fx.cpu_calling(0, 0, Space::Kernel, RECUR, &[4]);
    // run until three calls are tracked (and the CPU is out of any slot:
    // this CPU is the one that unregisters next)
    fx.step_until_pending(&mut cpu, 3);
    fx.e.unregister(id).unwrap();
    // a new probe reuses the record: the old instances must not call it
    let s2 = seen();
    let id2 =
        fx.e.register_kretprobe(&Kretprobe::at(ARITH).ret(ret_record).data(s2))
            .unwrap();
    assert_ne!(id2, id, "a reused record gets a new generation");
    assert_eq!(cpu.run(fx.w, fx.e, 10_000), Stop::Halted);
    assert_eq!(cpu.regs.r[1], 10);
    assert!(
        s.values.lock().unwrap().is_empty(),
        "no handler after unregister"
    );
    assert!(
        s2.values.lock().unwrap().is_empty(),
        "stale instances never reach a later probe"
    );
    assert_eq!(fx.e.free_instances(), 16);
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[0]), 0);
}

#[test]
fn task_exit_releases_its_instances_and_the_unwinder_finds_real_returns() {
    let fx: Fx = Fx::new();
    fx.e.register_kretprobe(&Kretprobe::at(RECUR).ret(ret_record).data(seen()))
        .unwrap();
    let mut cpu = fx.cpu_calling(0, 2, Space::Kernel, RECUR, &[6]);
    fx.step_until_pending(&mut cpu, 4);
    // the innermost tracked call's ra is the trampoline; its real return is
    // inside RECUR (after the recursive call)
    let ra = cpu.regs.r[14] as usize;
    assert_eq!(ra, custom_arch::arch::TRAMPOLINE);
    let sp = cpu.regs.r[15] as usize;
    // SAFETY: task 2 is stopped (its CPU is not stepped meanwhile).
    let (found, none) = unsafe {
        (
            fx.e.unwind_return_address(&fx.w.tasks[2], ra, sp),
            fx.e.unwind_return_address(&fx.w.tasks[2], 0x1234, sp),
        )
    };
    assert_eq!(found, Some(RECUR + 0x14));
    assert_eq!(none, None);
    // the task dies mid-recursion
    assert_eq!(fx.e.free_instances(), 12);
    // task 2 runs no more
    fx.e.release_task(&fx.w.tasks[2]).unwrap();
    assert_eq!(fx.e.free_instances(), 16);
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[2]), 0);
}

#[test]
fn two_return_probes_on_one_function_both_fire() {
    let fx: Fx = Fx::new();
    let (a, b) = (seen(), seen());
    fx.e.register_kretprobe(&Kretprobe::at(ARITH).ret(ret_record).data(a))
        .unwrap();
    fx.e.register_kretprobe(&Kretprobe::at(ARITH).ret(ret_record).data(b))
        .unwrap();
    let k = seen();
    fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count).data(k))
        .unwrap();
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!(*a.values.lock().unwrap(), vec![13]);
    assert_eq!(*b.values.lock().unwrap(), vec![13]);
    assert_eq!(hits(k), 1);
}

fn set_return(ctx: &ProbeContext, regs: &mut dyn Registers, _data: &mut [u8]) {
    seen_of(ctx).ret.fetch_add(1, Ordering::SeqCst);
    regs.set_return_value(regs.return_value() * 2);
}

#[test]
fn return_handler_can_change_the_return_value() {
    let fx: Fx = Fx::new();
    fx.e.register_kretprobe(&Kretprobe::at(ARITH).ret(set_return).data(seen()))
        .unwrap();
    assert_eq!(fx.call(CALLER, &[]).r[1], 27, "arith() doubled, plus one");
}

#[test]
fn return_probes_only_go_on_function_entries() {
    let fx: Fx = Fx::new();
    let before = fx.snapshot();
    let e =
        fx.e.register_kretprobe(&Kretprobe::at(ARITH + 4).ret(ret_record))
            .unwrap_err();
    assert_eq!(
        (e.kind(), e.addr()),
        (ProbeErrorKind::NotFunctionEntry, ARITH + 4)
    );
    let e =
        fx.e.register_kretprobe(&Kretprobe::at(0x2f00).ret(ret_record))
            .unwrap_err();
    assert_eq!(
        e.kind(),
        ProbeErrorKind::NotFunctionEntry,
        "no symbol there"
    );
    let e =
        fx.e.register_kretprobe(&Kretprobe::symbol("nope").ret(ret_record))
            .unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::UnknownSymbol);
    let e =
        fx.e.register_kretprobe(&Kretprobe::at(ARITH).ret(ret_record).data_size(65))
            .unwrap_err();
    assert!(matches!(e.kind(), ProbeErrorKind::InvalidRequest(_)));
    assert_eq!(fx.snapshot(), before);
}
