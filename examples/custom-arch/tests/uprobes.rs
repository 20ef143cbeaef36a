//! Feature 4: uprobes and uretprobes, per address space and per task.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use custom_arch::machine::{Cpu, Stop};
use custom_arch::world::{Event, SLOT_AREA};
use probe_core::{Kprobe, Kretprobe, Space};

fn user_fx() -> Fx {
    let fx: Fx = Fx::new();
    for asid in [1, 2] {
        fx.load_user(asid);
        fx.w.set_task_space(asid, asid);
    }
    fx
}

#[test]
fn a_uprobe_fires_only_in_its_own_address_space() {
    let fx = user_fx();
    let (a, b) = (seen(), seen());
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .in_space(Space::User(1))
            .pre(pre_count)
            .post(post_count)
            .data(a),
    )
    .unwrap();
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .in_space(Space::User(2))
            .pre(pre_count)
            .data(b),
    )
    .unwrap();
    assert_eq!(fx.call_in(Space::User(1), 1, ARITH, &[]).r[1], 13);
    assert_eq!((hits(a), a.post.load(Ordering::SeqCst), hits(b)), (1, 1, 0));
    assert_eq!(fx.call_in(Space::User(2), 2, ARITH, &[]).r[1], 13);
    assert_eq!((hits(a), hits(b)), (1, 1));
    // the kernel's copy was never touched
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!((hits(a), hits(b)), (1, 1));
    assert_eq!(
        fx.w.count(|e| matches!(
            e,
            Event::TextWrite {
                space: Space::Kernel,
                ..
            }
        )),
        0,
        "no kernel text written for uprobes"
    );
    // slots live in the probed address space
    assert!(fx.w.count(|e| matches!(e, Event::PageAlloc(Space::User(1), _))) == 1);
    assert!(fx.w.count(|e| matches!(e, Event::PageAlloc(Space::User(2), _))) == 1);
}

#[test]
fn a_user_step_survives_preemption_and_migration() {
    let fx = user_fx();
    let (a, b) = (seen(), seen());
    // post-handlers force real (trapping) steps
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .in_space(Space::User(1))
            .pre(pre_count)
            .post(post_count)
            .data(a),
    )
    .unwrap();
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .in_space(Space::User(2))
            .pre(pre_count)
            .post(post_count)
            .data(b),
    )
    .unwrap();
    let mut t1 = fx.cpu_calling(0, 1, Space::User(1), ARITH, &[]);
    fx.step_into_slot(&mut t1);
    // task 1 is preempted inside its slot; task 2 runs on the same CPU and
    // goes through its own step
    let mut t2 = fx.cpu_calling(0, 2, Space::User(2), ARITH, &[]);
    assert_eq!(t2.run(fx.w, fx.e, 1000), Stop::Halted);
    assert_eq!(t2.regs.r[1], 13);
    // task 1 resumes on CPU 3
    t1.index = 3;
    assert_eq!(t1.run(fx.w, fx.e, 1000), Stop::Halted);
    assert_eq!(t1.regs.r[1], 13);
    assert_eq!((hits(a), a.post.load(Ordering::SeqCst)), (1, 1));
    assert_eq!((hits(b), b.post.load(Ordering::SeqCst)), (1, 1));
    assert_eq!(a.r1_post.load(Ordering::SeqCst), 12);
}

#[test]
fn uretprobes_return_through_a_breakpoint_in_the_tasks_own_space() {
    let fx = user_fx();
    let s = seen();
    let id =
        fx.e.register_kretprobe(
            &Kretprobe::at(RECUR)
                .in_space(Space::User(1))
                .ret(ret_record)
                .data(s),
        )
        .unwrap();
    assert_eq!(fx.call_in(Space::User(1), 1, RECUR, &[3]).r[1], 6);
    assert_eq!(*s.values.lock().unwrap(), vec![0, 1, 3, 6]);
    assert_eq!(fx.e.info(id).unwrap().hits, 4);
    // the other space runs unprobed
    assert_eq!(fx.call_in(Space::User(2), 2, RECUR, &[3]).r[1], 6);
    assert_eq!(s.values.lock().unwrap().len(), 4);
    assert_eq!(fx.e.free_instances(), 16);
}

#[test]
fn a_fault_in_a_user_slot_goes_back_to_the_probe_address() {
    let fx = user_fx();
    let s = seen();
    fx.e.register_kprobe(
        &Kprobe::at(LOAD_FN)
            .in_space(Space::User(1))
            .pre(pre_count)
            .post(post_count)
            .data(s),
    )
    .unwrap();
    // the mock kernel's fix-up for a fault at LOAD_FN sends it to LOAD_FIXUP
    let r = fx.call_in(Space::User(1), 1, LOAD_FN, &[0x10]);
    assert_eq!(r.r[1], 0xffff_ffff_ffff_dead, "the fix-up ran");
    assert_eq!((hits(s), s.post.load(Ordering::SeqCst)), (1, 0));
    // the next hit is a normal one
    fx.w.load(Space::User(1), 0x6000, &7u64.to_le_bytes());
    assert_eq!(fx.call_in(Space::User(1), 1, LOAD_FN, &[0x6000]).r[1], 7);
    assert_eq!((hits(s), s.post.load(Ordering::SeqCst)), (2, 1));
}

#[test]
fn tearing_down_an_address_space_drops_its_probes_and_pages() {
    let fx = user_fx();
    let (a, b) = (seen(), seen());
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 4)
            .in_space(Space::User(1))
            .pre(pre_count)
            .data(a),
    )
    .unwrap();
    fx.e.register_kretprobe(
        &Kretprobe::at(RECUR)
            .in_space(Space::User(1))
            .ret(ret_record)
            .data(seen()),
    )
    .unwrap();
    let kb =
        fx.e.register_kprobe(
            &Kprobe::at(ARITH + 4)
                .in_space(Space::User(2))
                .pre(pre_count)
                .data(b),
        )
        .unwrap();
    fx.e.release_space(1).unwrap();
    assert_eq!(
        fx.e.list::<8>().iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![kb]
    );
    assert_eq!(
        fx.w.count(|e| matches!(e, Event::PageFree(Space::User(1), _))),
        1
    );
    assert_eq!(fx.call_in(Space::User(2), 2, ARITH, &[]).r[1], 13);
    assert_eq!((hits(a), hits(b)), (0, 1));
}

#[test]
fn a_forked_child_gets_original_bytes_and_its_pending_returns_still_work() {
    let fx = user_fx();
    let s = seen();
    let k = seen();
    fx.e.register_kretprobe(
        &Kretprobe::at(RECUR)
            .in_space(Space::User(1))
            .ret(ret_record)
            .data(s),
    )
    .unwrap();
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .in_space(Space::User(1))
            .pre(pre_count)
            .data(k),
    )
    .unwrap();
    let orig_arith = fx.w.peek(Space::User(2), ARITH, 16);
    let mut parent = fx.cpu_calling(0, 1, Space::User(1), RECUR, &[4]);
    fx.step_until_pending(&mut parent, 3);
    // fork: the child (task 3, space 3) is a copy of the parent
    fx.w.clone_space(Space::User(1), Space::User(3));
    fx.w.set_task_space(3, 3);
    fx.e.fork_space(1, 3, &fx.w.tasks[1], &fx.w.tasks[3])
        .unwrap();
    assert_eq!(
        fx.w.peek(Space::User(3), ARITH, 16),
        orig_arith,
        "child text is original"
    );
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[3]), 3);
    let mut child = Cpu {
        index: 1,
        task: 3,
        space: Space::User(3),
        ..parent.clone()
    };
    assert_eq!(child.run(fx.w, fx.e, 10_000), Stop::Halted);
    assert_eq!(
        child.regs.r[1], 10,
        "child returns through its copy of the trampoline"
    );
    assert_eq!(fx.e.pending_returns(&fx.w.tasks[3]), 0);
    let seen_by_child = s.values.lock().unwrap().len();
    assert_eq!(parent.run(fx.w, fx.e, 10_000), Stop::Halted);
    assert_eq!(parent.regs.r[1], 10);
    assert_eq!(*s.values.lock().unwrap(), vec![0, 1, 3, 6, 10]);
    assert_eq!(
        seen_by_child, 0,
        "the child's orphaned returns run no handler"
    );
    // a uprobe hit in the child? none: its text is original
    assert_eq!(fx.call_in(Space::User(3), 3, ARITH, &[]).r[1], 13);
    assert_eq!(hits(k), 0);
}

#[test]
fn detaching_restores_text_and_real_return_addresses() {
    let fx = user_fx();
    let orig = fx.w.peek(Space::User(1), 0x1000, 0x1000);
    fx.e.register_kretprobe(
        &Kretprobe::at(RECUR)
            .in_space(Space::User(1))
            .ret(ret_record)
            .data(seen()),
    )
    .unwrap();
    fx.e.register_kprobe(
        &Kprobe::at(RECUR + 0x18)
            .in_space(Space::User(1))
            .pre(pre_count)
            .data(seen()),
    )
    .unwrap();
    let mut cpu = fx.cpu_calling(0, 1, Space::User(1), RECUR, &[4]);
    fx.step_until_pending(&mut cpu, 4);
    let mut fixed = 0;
    // SAFETY: task 1 does not run during the call.
    let detached = unsafe {
        fx.e.detach_space(1, &[&fx.w.tasks[1]], |_frame, trampoline, real| {
            // the tracer knows its ABI: the newest return address is in r14,
            // older ones were pushed on the stack
            if cpu.regs.r[14] as usize == trampoline {
                cpu.regs.r[14] = real as u64;
                fixed += 1;
                return;
            }
            let sp = cpu.regs.r[15] as usize;
            for a in (sp..0x1_0000).step_by(8) {
                if fx.w.load_u64(Space::User(1), a).unwrap() as usize == trampoline {
                    fx.w.store_u64(Space::User(1), a, real as u64).unwrap();
                    fixed += 1;
                    return;
                }
            }
        })
    };
    detached.unwrap();
    assert_eq!(fixed, 4);
    assert_eq!(fx.w.peek(Space::User(1), 0x1000, 0x1000), orig);
    assert!(fx.e.list::<8>().is_empty());
    assert_eq!(cpu.run(fx.w, fx.e, 10_000), Stop::Halted);
    assert_eq!(cpu.regs.r[1], 10);
    assert_eq!(fx.e.free_instances(), 16);
}

#[test]
fn a_task_jumping_to_its_trampoline_by_itself_gets_a_foreign_trap() {
    let fx = user_fx();
    let s = seen();
    fx.e.register_kretprobe(
        &Kretprobe::at(RECUR)
            .in_space(Space::User(1))
            .ret(ret_record)
            .data(s),
    )
    .unwrap();
    // find the trampoline: the return address a tracked call gets
    let mut cpu = fx.cpu_calling(0, 1, Space::User(1), RECUR, &[2]);
    fx.step_until_pending(&mut cpu, 1);
    let trampoline = cpu.regs.r[14] as usize;
    assert!(trampoline >= SLOT_AREA);
    // another task of the space jumps there with nothing pending
    let mut rogue = Cpu::new(1, 2, Space::User(1), trampoline, 0x7000);
    fx.w.set_task_space(2, 1);
    assert_eq!(
        rogue.run(fx.w, fx.e, 10),
        Stop::ForeignBreakpoint(trampoline)
    );
    // the first task is unaffected
    assert_eq!(cpu.run(fx.w, fx.e, 10_000), Stop::Halted);
    assert_eq!(cpu.regs.r[1], 3);
    assert_eq!(*s.values.lock().unwrap(), vec![0, 1, 3]);
}
