//! Features 1, 2 and 8: kprobes by address and symbol, pre/post handlers,
//! skipping the instruction, aggregation, enable/disable, unregister, and
//! the order of installation.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use custom_arch::isa::FLAG_IE;
use custom_arch::machine::Stop;
use custom_arch::world::Event;
use probe_core::{Kprobe, PreAction, ProbeContext, ProbeErrorKind, Space};
use probe_hal::Registers;

#[test]
fn every_instruction_class_returns_what_it_returns_unprobed() {
    let cases: &[(usize, &[usize], &[u64])] = &[
        (ARITH, ARITH_INSNS, &[]),
        (BRANCHY, BRANCHY_INSNS, &[3]),
        (BRANCHY, BRANCHY_INSNS, &[4]),
        (CALLER, CALLER_INSNS, &[]),
        (JUMPY, JUMPY_INSNS, &[]),
        (LDPC_FN, &[0, 4], &[]),
        (MEM_FN, &[0, 4, 8, 0xc], &[]),
        (RECUR, RECUR_INSNS, &[5]),
        (CLI_FN, &[0, 2, 6], &[]),
    ];
    for &(func, offsets, args) in cases {
        let fx: Fx = Fx::new();
        let want = fx.call(func, args);
        let visits = fx.visits(func, args);
        for &off in offsets {
            let s = seen();
            let id =
                fx.e.register_kprobe(
                    &Kprobe::at(func + off)
                        .pre(pre_count)
                        .post(post_count)
                        .data(s),
                )
                .unwrap();
            let got = fx.call(func, args);
            assert_eq!(got.r[1], want.r[1], "{func:#x}+{off:#x}: result");
            assert_eq!(got.r[15], want.r[15], "{func:#x}+{off:#x}: stack pointer");
            assert_eq!(got.flags, want.flags, "{func:#x}+{off:#x}: flags");
            let runs = visits.get(&(func + off)).copied().unwrap_or(0) as usize;
            assert_eq!(hits(s), runs, "{func:#x}+{off:#x}: one hit per execution");
            assert_eq!(
                hits(s),
                s.post.load(Ordering::SeqCst),
                "{func:#x}+{off:#x}: pre and post counts"
            );
            // every pre-handler saw the probed address as pc and IE still set
            assert!(s.pcs.lock().unwrap().iter().all(|&pc| pc == func + off));
            fx.e.unregister(id).unwrap();
        }
        assert_eq!(fx.snapshot().slots, (0, 0), "all slots released");
        assert_eq!(
            fx.w.peek(Space::Kernel, func, 0x40),
            Fx::<64>::new().w.peek(Space::Kernel, func, 0x40)
        );
    }
}

#[test]
fn pre_handler_sees_registers_before_and_post_handler_after() {
    let fx: Fx = Fx::new();
    let s = seen();
    // `add r1, r2` at ARITH+8: r1 is 5 before, 12 after
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .pre(pre_count)
            .post(post_count)
            .data(s),
    )
    .unwrap();
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!(s.r1_pre.load(Ordering::SeqCst), 5);
    assert_eq!(s.r1_post.load(Ordering::SeqCst), 12);
    assert_eq!(s.flags_pre.load(Ordering::SeqCst) & FLAG_IE, FLAG_IE);
    assert_eq!((hits(s), s.post.load(Ordering::SeqCst)), (1, 1));
}

#[test]
fn probe_by_symbol_and_offset() {
    let fx: Fx = Fx::new();
    let s = seen();
    let id =
        fx.e.register_kprobe(&Kprobe::symbol("arith", 8).pre(pre_count).data(s))
            .unwrap();
    assert_eq!(fx.e.info(id).unwrap().addr, ARITH + 8);
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!(hits(s), 1);
    assert_eq!(s.r1_pre.load(Ordering::SeqCst), 5);
}

#[test]
fn probe_by_module_qualified_symbol() {
    let fx: Fx = Fx::new();
    // A module's copy of a function name the kernel also has.
    fx.w.add_symbol("toymod:arith", BRANCHY, 0x18);
    let s = seen();
    let id =
        fx.e.register_kprobe(&Kprobe::symbol("toymod:arith", 8).pre(pre_count).data(s))
            .unwrap();
    assert_eq!(
        fx.e.info(id).unwrap().addr,
        BRANCHY + 8,
        "the module's symbol"
    );
    let plain = fx.e.register_kprobe(&Kprobe::symbol("arith", 8)).unwrap();
    assert_eq!(fx.e.info(plain).unwrap().addr, ARITH + 8, "the kernel's");
    let before = fx.snapshot();
    let kind = |name| {
        fx.e.register_kprobe(&Kprobe::symbol(name, 0))
            .unwrap_err()
            .kind()
    };
    assert_eq!(kind("othermod:arith"), ProbeErrorKind::UnknownSymbol);
    assert_eq!(kind("toymod:branchy"), ProbeErrorKind::UnknownSymbol);
    assert!(matches!(kind(":arith"), ProbeErrorKind::InvalidRequest(_)));
    assert!(matches!(kind("toymod:"), ProbeErrorKind::InvalidRequest(_)));
    assert!(before == fx.snapshot(), "refusals change nothing");
}

fn skip_add(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    seen_of(ctx).pre.fetch_add(1, Ordering::SeqCst);
    // emulate "add r1, r2" as "r1 = 1000" and move past it
    regs.set_gpr(1, 1000);
    regs.set_pc(ctx.addr + 2);
    PreAction::SkipInstruction
}

#[test]
fn pre_handler_can_skip_the_instruction_and_its_post_handler() {
    let fx: Fx = Fx::new();
    let s = seen();
    fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(skip_add).post(post_count).data(s))
        .unwrap();
    // inc after the skipped add: 1001
    assert_eq!(fx.call(ARITH, &[]).r[1], 1001);
    assert_eq!(hits(s), 1);
    assert_eq!(s.post.load(Ordering::SeqCst), 0, "post-handler skipped too");
}

#[test]
fn boosted_slot_costs_one_trap_and_a_post_handler_disables_boost() {
    let fx: Fx = Fx::new();
    let s = seen();
    let id =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count).data(s))
            .unwrap();
    let mut cpu = fx.cpu_calling(0, 0, Space::Kernel, ARITH, &[]);
    assert_eq!(cpu.run(fx.w, fx.e, 1000), Stop::Halted);
    assert_eq!(
        (cpu.regs.r[1], cpu.traps),
        (13, 1),
        "boosted: breakpoint only"
    );
    fx.e.unregister(id).unwrap();

    let s2 = seen();
    fx.e.register_kprobe(
        &Kprobe::at(ARITH + 8)
            .pre(pre_count)
            .post(post_count)
            .data(s2),
    )
    .unwrap();
    let mut cpu = fx.cpu_calling(0, 0, Space::Kernel, ARITH, &[]);
    assert_eq!(cpu.run(fx.w, fx.e, 1000), Stop::Halted);
    assert_eq!(
        (cpu.regs.r[1], cpu.traps),
        (13, 2),
        "breakpoint and step end"
    );
    assert_eq!(s2.post.load(Ordering::SeqCst), 1);
}

#[test]
fn non_boostable_step_keeps_the_flag_the_instruction_set() {
    let fx: Fx = Fx::new();
    let s = seen();
    fx.e.register_kprobe(&Kprobe::at(CLI_FN).pre(pre_count).data(s))
        .unwrap();
    let mut cpu = fx.cpu_calling(0, 0, Space::Kernel, CLI_FN, &[]);
    assert_eq!(cpu.run(fx.w, fx.e, 1000), Stop::Halted);
    assert_eq!(
        cpu.regs.flags & FLAG_IE,
        0,
        "cli's effect survives the step"
    );
    assert_eq!(cpu.traps, 2, "cli is never boosted");
    // and a step over another instruction gives IE back
    let s = seen();
    fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count).post(post_count).data(s))
        .unwrap();
    let regs = fx.call(ARITH, &[]);
    assert_eq!(regs.flags & FLAG_IE, FLAG_IE);
    assert_eq!(s.flags_pre.load(Ordering::SeqCst) & FLAG_IE, FLAG_IE);
}

#[test]
fn probes_on_one_address_share_one_breakpoint_and_disable_individually() {
    let fx: Fx = Fx::new();
    let orig = fx.w.peek(Space::Kernel, ARITH + 8, 2);
    let (a, b) = (seen(), seen());
    let bp_writes = |fx: &Fx| {
        fx.w.count(|e| matches!(e, Event::TextWrite { addr, .. } if *addr == ARITH + 8))
    };
    let ia =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count).data(a))
            .unwrap();
    let ib =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count_b).data(b))
            .unwrap();
    assert_eq!(bp_writes(&fx), 1, "one breakpoint for two probes");
    assert_eq!(fx.e.slot_usage().0, 2, "one step slot and one boost slot");
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!((hits(a), hits(b)), (1, 1));

    fx.e.disable(ia).unwrap();
    assert!(fx.e.is_armed(Space::Kernel, ARITH + 8));
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!((hits(a), hits(b)), (1, 2));
    assert!(!fx.e.info(ia).unwrap().enabled);

    fx.e.disable(ib).unwrap();
    assert_eq!(
        fx.w.peek(Space::Kernel, ARITH + 8, 2),
        orig,
        "no enabled probe: original bytes back"
    );
    assert!(!fx.e.is_armed(Space::Kernel, ARITH + 8));
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!((hits(a), hits(b)), (1, 2));

    fx.e.enable(ia).unwrap();
    assert_ne!(fx.w.peek(Space::Kernel, ARITH + 8, 2), orig);
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!((hits(a), hits(b)), (2, 2));

    // disabling twice and enabling twice are no-ops
    fx.e.enable(ia).unwrap();
    fx.e.disable(ib).unwrap();
    fx.e.unregister(ia).unwrap();
    fx.e.unregister(ib).unwrap();
    assert_eq!(fx.w.peek(Space::Kernel, ARITH + 8, 2), orig);
}

#[test]
fn registering_disabled_writes_nothing_until_enabled() {
    let fx: Fx = Fx::new();
    let before = fx.w.peek(Space::Kernel, ARITH, 16);
    let s = seen();
    let id =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 4).pre(pre_count).data(s).disabled())
            .unwrap();
    assert_eq!(fx.w.peek(Space::Kernel, ARITH, 16), before);
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!(hits(s), 0);
    fx.e.enable(id).unwrap();
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!(hits(s), 1);
}

#[test]
fn unregister_restores_every_byte_and_releases_slots_after_a_grace_period() {
    let fx: Fx = Fx::new();
    let before = fx.snapshot();
    let mut ids = Vec::new();
    for &off in ARITH_INSNS {
        ids.push(
            fx.e.register_kprobe(&Kprobe::at(ARITH + off).pre(pre_count).data(seen()))
                .unwrap(),
        );
    }
    assert_ne!(
        fx.w.peek(Space::Kernel, ARITH, 16),
        before.kernel_text[..16]
    );
    let graces = fx.w.count(|e| *e == Event::GracePeriod);
    fx.e.unregister_batch(&ids).unwrap();
    assert_eq!(
        fx.w.count(|e| *e == Event::GracePeriod),
        graces + 1,
        "one grace period for the batch"
    );
    assert_eq!(fx.snapshot(), before);
    // pages went back to the kernel, after the grace period (the mock checks)
    assert_eq!(
        fx.w.count(|e| matches!(e, Event::PageFree(..))),
        fx.w.count(|e| matches!(e, Event::PageAlloc(..)))
    );
    // stale ids are refused
    let e = fx.e.unregister(ids[0]).unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::NoSuchProbe);
    assert_eq!(
        fx.e.enable(ids[1]).unwrap_err().kind(),
        ProbeErrorKind::NoSuchProbe
    );
}

#[test]
fn slot_is_written_and_synced_and_probe_published_before_the_breakpoint() {
    let fx: Fx = Fx::new();
    fx.e.register_kprobe(&Kprobe::at(ARITH + 4).pre(pre_count).data(seen()))
        .unwrap();
    let log = fx.w.log.lock().unwrap().clone();
    let bp = log
        .iter()
        .position(|e| matches!(e, Event::TextWrite { addr, .. } if *addr == ARITH + 4))
        .expect("breakpoint written");
    let slot_writes: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::TextWrite { addr, .. } if *addr >= custom_arch::world::SLOT_AREA))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(slot_writes.len(), 2, "step slot and boost slot");
    for w in slot_writes {
        assert!(w < bp, "slot written before the breakpoint");
        assert!(
            matches!(log[w + 1], Event::IcacheSync { .. }),
            "slot write followed by an icache sync"
        );
    }
    assert!(matches!(log[bp + 1], Event::IcacheSync { addr, .. } if addr == ARITH + 4));
}

#[test]
fn a_failed_breakpoint_write_leaves_everything_as_before() {
    let fx: Fx = Fx::new();
    let before = fx.snapshot();
    fx.w.fail_writes_at(ARITH + 4);
    let e =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 4).pre(pre_count).data(seen()))
            .unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::TextPatchFailed);
    assert_eq!(e.addr(), ARITH + 4);
    assert_eq!(fx.snapshot(), before);
    fx.w.clear_failures();
    // the table has no stale entry: the same probe registers fine now
    let s = seen();
    fx.e.register_kprobe(&Kprobe::at(ARITH + 4).pre(pre_count).data(s))
        .unwrap();
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!(hits(s), 1);
}

#[test]
fn a_failed_disarm_keeps_the_probe_registered() {
    let fx: Fx = Fx::new();
    let s = seen();
    let id =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 4).pre(pre_count).data(s))
            .unwrap();
    fx.w.fail_writes_at(ARITH + 4);
    assert_eq!(
        fx.e.unregister(id).unwrap_err().kind(),
        ProbeErrorKind::TextPatchFailed
    );
    assert_eq!(
        fx.e.disable(id).unwrap_err().kind(),
        ProbeErrorKind::TextPatchFailed
    );
    assert!(fx.e.info(id).unwrap().enabled);
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!(hits(s), 1);
    fx.w.clear_failures();
    fx.e.unregister(id).unwrap();
}

#[test]
fn listing_shows_address_kind_state_and_counters() {
    let fx: Fx = Fx::new();
    let a =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(pre_count).data(seen()))
            .unwrap();
    let b =
        fx.e.register_kretprobe(
            &probe_core::Kretprobe::at(ARITH)
                .ret(ret_record)
                .data(seen()),
        )
        .unwrap();
    fx.e.disable(a).unwrap();
    fx.call(ARITH, &[]);
    fx.e.enable(a).unwrap();
    fx.call(ARITH, &[]);
    let list = fx.e.list::<8>();
    assert_eq!(list.len(), 2);
    let ia = list.iter().find(|i| i.id == a).unwrap();
    let ib = list.iter().find(|i| i.id == b).unwrap();
    assert_eq!(
        (ia.addr, ia.kind, ia.enabled, ia.hits, ia.missed),
        (ARITH + 8, probe_core::ProbeKind::Kprobe, true, 1, 0)
    );
    assert_eq!(
        (ib.addr, ib.kind, ib.hits),
        (ARITH, probe_core::ProbeKind::Kretprobe, 2)
    );
    let mut buf = [*ia; 1];
    assert_eq!(fx.e.list_into(&mut buf), 2, "list_into reports the total");
    let mut text = String::new();
    fx.e.write_list(&mut text).unwrap();
    let want: String = list.iter().map(|p| format!("{p}\n")).collect();
    assert_eq!(
        text, want,
        "write_list: a Display line per probe, in table order"
    );
}

#[test]
fn two_hundred_fifty_six_probes_at_once() {
    let fx: Fx<300> = Fx::new();
    let before = fx.snapshot();
    let s = seen();
    let ids: Vec<_> = (0..256)
        .map(|i| {
            fx.e.register_kprobe(&Kprobe::at(NOPS + 2 * i).pre(pre_count).data(s))
                .unwrap()
        })
        .collect();
    let regs = fx.call(NOPS, &[77]);
    assert_eq!(regs.r[1], 77);
    assert_eq!(hits(s), 256);
    for id in &ids {
        assert_eq!(fx.e.info(*id).unwrap().hits, 1);
    }
    fx.e.unregister_batch(&ids).unwrap();
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn an_owned_probe_of_either_kind_is_unregistered_when_dropped() {
    use probe_core::{ProbeKind, ProbeSpec, Target};
    let fx: Fx = Fx::new();
    let arith = fx.w.peek(Space::Kernel, ARITH, 0x10);
    let entry =
        fx.e.register_owned(&ProbeSpec::at(
            Target::Addr(ARITH + 8),
            Space::Kernel,
            ProbeKind::Kprobe,
        ))
        .unwrap();
    let ret =
        fx.e.register_owned(&ProbeSpec::at(
            Target::Symbol {
                name: "arith",
                offset: 0,
            },
            Space::Kernel,
            ProbeKind::Kretprobe,
        ))
        .unwrap();
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    let kinds: Vec<_> = fx.e.list::<4>().iter().map(|p| (p.kind, p.hits)).collect();
    assert_eq!(kinds, [(ProbeKind::Kprobe, 1), (ProbeKind::Kretprobe, 1)]);
    let line = fx.e.info(ret.id()).unwrap().to_string();
    assert_eq!(
        line,
        format!("{ARITH:#x} r kernel hits=1 missed=0 attached=0 [unoptimized: no-detour-memory]")
    );
    drop(entry);
    assert_eq!(fx.e.list::<4>().len(), 1);
    drop(ret);
    assert!(fx.e.list::<4>().is_empty());
    assert_eq!(
        fx.w.peek(Space::Kernel, ARITH, 0x10),
        arith,
        "text restored"
    );
}

static ORDER: std::sync::Mutex<Vec<probe_core::ProbeId>> = std::sync::Mutex::new(Vec::new());

fn record_order(ctx: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    ORDER.lock().unwrap().push(ctx.id);
    PreAction::Continue
}

#[test]
fn probes_on_one_address_run_in_registration_order() {
    let fx: Fx = Fx::new();
    let data: Vec<&'static Seen> = (0..3).map(|_| seen()).collect();
    let ids: Vec<_> = data
        .iter()
        .map(|d| {
            fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(record_order).data(*d))
                .unwrap()
        })
        .collect();
    // The middle one goes and comes back: it is the newest then.
    fx.e.unregister(ids[1]).unwrap();
    let again =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(record_order).data(data[1]))
            .unwrap();
    ORDER.lock().unwrap().clear();
    fx.call(ARITH, &[]);
    assert_eq!(
        *ORDER.lock().unwrap(),
        [ids[0], ids[2], again],
        "Linux's order: registration"
    );
}
