//! Features 8 and 10 and every error case: bad input gets a typed error
//! and leaves memory, tables, counters and slots exactly as before.

mod common;

use common::*;
use custom_arch::arch::TRAMPOLINE;
use custom_arch::world::SLOT_AREA;
use probe_core::{BatchError, Kprobe, Kretprobe, ProbeErrorKind, ProbeSpec, Space};
use probe_hal::{Capacity, Refusal};

fn refused_mnemonic(k: ProbeErrorKind) -> &'static str {
    match k {
        ProbeErrorKind::Refused(Refusal { mnemonic, .. }) => mnemonic,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn every_refused_class_is_refused_with_its_reason() {
    let fx: Fx = Fx::new();
    let before = fx.snapshot();
    for (addr, mnemonic) in [
        (REFUSED_FN, "brk"),
        (REFUSED_FN + 2, "stepend"),
        (REFUSED_FN + 4, "halt"),
        (REFUSED_FN + 6, "sys"),
        (LLSC_FN, "ll"),
        (LLSC_FN + 8, "sc"),
        (LLSC_FN + 4, "(inside ll/sc)"),
    ] {
        let e =
            fx.e.register_kprobe(&Kprobe::at(addr).pre(pre_count))
                .unwrap_err();
        assert_eq!(refused_mnemonic(e.kind()), mnemonic, "at {addr:#x}");
        assert_eq!(e.addr(), addr);
        let text = e.to_string();
        assert!(
            text.contains(mnemonic) && text.contains(&format!("{addr:#x}")),
            "{text}"
        );
    }
    assert_eq!(fx.snapshot(), before);
    // after the sc the sequence is closed: probing there works, and the
    // atomic increment still succeeds
    let s = seen();
    fx.e.register_kprobe(&Kprobe::at(LLSC_FN + 0xa).pre(pre_count).data(s))
        .unwrap();
    fx.w.load(Space::Kernel, 0x6100, &41u64.to_le_bytes());
    assert_eq!(fx.call(LLSC_FN, &[0, 0x6100]).r[1], 1);
    assert_eq!(fx.w.load_u64(Space::Kernel, 0x6100).unwrap(), 42);
    assert_eq!(hits(s), 1);
}

#[test]
fn addresses_are_checked_before_anything_is_written() {
    let fx: Fx = Fx::new();
    // a probe puts a slot page in place, so its addresses can be tried too
    fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count))
        .unwrap();
    fx.w.load(Space::Kernel, 0x2f00, &[0x7f, 0x7f, 0x7f, 0x7f]);
    let before = fx.snapshot();
    let cases: [(usize, ProbeErrorKind); 6] = [
        (ARITH + 1, ProbeErrorKind::Misaligned { align: 2 }),
        (
            ARITH + 2,
            ProbeErrorKind::NotInsnBoundary {
                insn_start: ARITH,
                insn_len: 4,
            },
        ),
        (0x2f00, ProbeErrorKind::Undecodable),
        (BLACK + 0x10, ProbeErrorKind::Blacklisted),
        (SLOT_AREA + 8, ProbeErrorKind::Blacklisted),
        (TRAMPOLINE, ProbeErrorKind::Blacklisted),
    ];
    for (addr, kind) in cases {
        let e =
            fx.e.register_kprobe(&Kprobe::at(addr).pre(pre_count_b))
                .unwrap_err();
        assert_eq!((e.kind(), e.addr()), (kind, addr));
    }
    let e =
        fx.e.register_kprobe(&Kprobe::at(0x10).pre(pre_count_b))
            .unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::MemoryUnreadable);
    let e =
        fx.e.register_kprobe(&Kprobe::symbol("arith", 2).pre(pre_count_b))
            .unwrap_err();
    assert_eq!(
        e.kind(),
        ProbeErrorKind::NotInsnBoundary {
            insn_start: ARITH,
            insn_len: 4
        }
    );
    let e =
        fx.e.register_kprobe(&Kprobe::symbol("arith", 0x20).pre(pre_count_b))
            .unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::OffsetOutsideSymbol { size: 14 });
    let e =
        fx.e.register_kprobe(&Kprobe::symbol("no_such_fn", 0).pre(pre_count_b))
            .unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::UnknownSymbol);
    let e =
        fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count))
            .unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::AlreadyRegistered);
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn every_offset_of_a_function_is_refused_or_probed_correctly() {
    let fx: Fx = Fx::new();
    let want = fx.call(RECUR, &[4]).r[1];
    let mut probed = 0;
    for off in 0..0x22 {
        match fx.e.register_kprobe(
            &Kprobe::at(RECUR + off)
                .pre(pre_count)
                .post(post_count)
                .data(seen()),
        ) {
            Ok(id) => {
                assert_eq!(fx.call(RECUR, &[4]).r[1], want, "probe at +{off:#x}");
                fx.e.unregister(id).unwrap();
                probed += 1;
            }
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    ProbeErrorKind::Misaligned { .. } | ProbeErrorKind::NotInsnBoundary { .. }
                ),
                "+{off:#x}: {e}"
            ),
        }
    }
    assert_eq!(
        probed, 13,
        "every instruction start (including the padding nops)"
    );
}

#[test]
fn capacities_are_reported_and_nothing_leaks() {
    let fx: Fx<4> = Fx::new();
    for &off in &ARITH_INSNS[..4] {
        fx.e.register_kprobe(&Kprobe::at(ARITH + off).pre(pre_count))
            .unwrap();
    }
    let before = fx.snapshot();
    let e =
        fx.e.register_kprobe(&Kprobe::at(ARITH + 0xc).pre(pre_count))
            .unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::CapacityFull(Capacity::Probes));
    assert_eq!(fx.snapshot(), before);

    // slot memory: the kernel gives no more pages
    let fx: Fx = Fx::new();
    let before = fx.snapshot();
    fx.w.limit_pages(0);
    let e =
        fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count))
            .unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::SlotMemoryExhausted);
    assert_eq!(fx.snapshot(), before);
    // simulated instructions need no slot
    fx.e.register_kprobe(&Kprobe::at(ARITH + 0xc).pre(pre_count))
        .unwrap();

    // the engine's own page table: every user space needs a page
    let fx: Fx = Fx::new();
    for asid in 1..=32 {
        fx.load_user(asid);
        fx.e.register_kprobe(&Kprobe::at(ARITH).in_space(Space::User(asid)).pre(pre_count))
            .unwrap();
    }
    fx.load_user(33);
    let before = fx.snapshot();
    let e =
        fx.e.register_kprobe(&Kprobe::at(ARITH).in_space(Space::User(33)).pre(pre_count))
            .unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::CapacityFull(Capacity::SlotPages));
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn a_pc_relative_operand_out_of_reach_is_refused_cleanly() {
    let fx: Fx = Fx::new();
    let before = fx.snapshot();
    fx.w.far_pages(true);
    let e =
        fx.e.register_kprobe(&Kprobe::at(LDPC_FN).pre(pre_count))
            .unwrap_err();
    assert!(matches!(e.kind(), ProbeErrorKind::OutOfReach { .. }), "{e}");
    assert_eq!(e.addr(), LDPC_FN);
    assert_eq!(fx.snapshot(), before, "the page taken for it went back");
    // near pages: relocated, and the load reads the original location
    fx.w.far_pages(false);
    let s = seen();
    fx.e.register_kprobe(&Kprobe::at(LDPC_FN).pre(pre_count).post(post_count).data(s))
        .unwrap();
    assert_eq!(fx.call(LDPC_FN, &[]).r[1], LDPC_VALUE);
    assert_eq!(hits(s), 1);
}

#[test]
fn a_batch_is_all_or_nothing() {
    let fx: Fx = Fx::new();
    let before = fx.snapshot();
    let (a, b) = (seen(), seen());
    let specs = [
        ProbeSpec::Kprobe(Kprobe::at(ARITH).pre(pre_count).data(a)),
        ProbeSpec::Kretprobe(Kretprobe::at(ARITH).ret(ret_record).data(b)),
        ProbeSpec::Kprobe(Kprobe::at(JUMPY + 4).pre(pre_count).data(a)),
        ProbeSpec::Kprobe(Kprobe::at(ARITH + 2).pre(pre_count)),
    ];
    let mut ids = [probe_core::ProbeId::NONE; 4];
    let e: BatchError = fx.e.register_batch(&specs, &mut ids).unwrap_err();
    assert_eq!(e.index, 3);
    assert_eq!(
        e.error.kind(),
        ProbeErrorKind::NotInsnBoundary {
            insn_start: ARITH,
            insn_len: 4
        }
    );
    assert!(e.to_string().starts_with("batch entry 3: cannot probe"));
    assert_eq!(fx.snapshot(), before);
    // without the bad entry
    fx.e.register_batch(&specs[..3], &mut ids).unwrap();
    assert_eq!(fx.call(JUMPY, &[]).r[1], 2);
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!(hits(a), 2);
    assert_eq!(*b.values.lock().unwrap(), vec![13]);
    // unregistering a batch checks every id first
    let stale = ids[0];
    fx.e.unregister(stale).unwrap();
    let e = fx.e.unregister_batch(&ids[..3]).unwrap_err();
    assert_eq!(e.kind(), ProbeErrorKind::NoSuchProbe);
    assert_eq!(fx.e.list::<8>().len(), 2, "nothing unregistered");
    let e = fx.e.unregister_batch(&[ids[1], ids[1]]).unwrap_err();
    assert!(matches!(e.kind(), ProbeErrorKind::InvalidRequest(_)));
    fx.e.unregister_batch(&ids[1..3]).unwrap();
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn errors_read_well() {
    let fx: Fx = Fx::new();
    let e = fx.e.register_kprobe(&Kprobe::at(ARITH + 2)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot probe 0x1002: not an instruction boundary (inside the 4-byte instruction at 0x1000)"
    );
    let e =
        fx.e.register_kprobe(&Kprobe::at(REFUSED_FN + 4))
            .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot probe 0x1a04: refused instruction `halt`: stops the CPU; a trap after it would never come"
    );
}

#[test]
fn the_engines_own_trap_path_cannot_be_probed() {
    let fx: Fx = Fx::new();
    let entry = custom_arch::ToyEngine::<64>::handle_breakpoint::<custom_arch::arch::ToyRegs>
        as *const () as usize;
    let fault = custom_arch::ToyEngine::<64>::handle_fault::<custom_arch::arch::ToyRegs>
        as *const () as usize;
    for addr in [entry, fault] {
        let e =
            fx.e.register_kprobe(&Kprobe::at(addr & !1).pre(pre_count))
                .unwrap_err();
        assert_eq!(e.kind(), ProbeErrorKind::Blacklisted, "{addr:#x}");
    }
}
