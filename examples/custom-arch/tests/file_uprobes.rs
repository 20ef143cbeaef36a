//! Uprobes by file: a probe on a file offset applies to every address space
//! that maps the file, now and later, follows a fork (unlike the engine's
//! address-space uprobes), goes with an unmap, and counts a USDT semaphore
//! up and down in each space.

mod common;

use common::*;
use custom_arch::lock::NoWaitLock;
use probe_core::{
    FileId, FileMapping, FileUprobe, FileUprobes, Kprobe, ProbeErrorKind, ProbeSpec, Space,
};

const LIB: FileId = FileId { dev: 8, ino: 4242 };
/// The library's text: file offset 0x1000.. is mapped at 0x1000 in spaces
/// 1 and 3 and at 0x9000 in space 2 (ARITH only: it is position
/// independent).
const TEXT_OFF: u64 = 0x1000;
/// Its data: file offset 0x8000.. mapped at 0xa000 (the USDT semaphore at
/// file offset 0x8010).
const DATA_OFF: u64 = 0x8000;
const DATA_AT: usize = 0xa000;
const SEM_OFF: u64 = 0x8010;

type Files = FileUprobes<NoWaitLock, 4, 16>;

/// A private writable mapping (where semaphores count).
fn data_mapping(start: usize, len: usize, file_off: u64) -> FileMapping {
    FileMapping {
        start,
        len,
        file_off,
        exec: false,
        write: true,
        shared: false,
    }
}

fn semaphore(fx: &Fx, asid: usize) -> u16 {
    let b = fx.w.peek(
        Space::User(asid),
        DATA_AT + (SEM_OFF - DATA_OFF) as usize,
        2,
    );
    u16::from_ne_bytes([b[0], b[1]])
}

fn map_text<const N: usize>(
    fx: &Fx,
    files: &FileUprobes<NoWaitLock, N, 16>,
    asid: usize,
    at: usize,
    len: usize,
) {
    let text = FileMapping {
        start: at,
        len,
        file_off: TEXT_OFF,
        exec: true,
        write: false,
        shared: false,
    };
    files.mapped(fx.e, asid, LIB, text).unwrap();
}

fn map_data(fx: &Fx, files: &Files, asid: usize) {
    files
        .mapped(fx.e, asid, LIB, data_mapping(DATA_AT, 0x100, DATA_OFF))
        .unwrap();
}

#[test]
fn a_file_uprobe_reaches_every_space_that_maps_the_file_and_follows_a_fork() {
    let fx: Fx = Fx::new();
    for asid in [1, 2] {
        fx.load_user(asid);
        fx.w.set_task_space(asid, asid);
    }
    // Space 2 has its own copy of ARITH at 0x9000.
    let arith = fx.w.peek(Space::User(2), ARITH, 0x10);
    fx.w.load(Space::User(2), 0x9000, &arith);
    let files = Files::new();
    let s = seen();
    // Space 1 maps the library before the probe exists, with a read-only
    // alias of its first text pages first (a segment boundary shares a
    // file page): probes never go there, nor counters.
    let alias = FileMapping {
        start: 0xc000,
        len: 0x2000,
        file_off: TEXT_OFF,
        exec: false,
        write: false,
        shared: false,
    };
    files.mapped(fx.e, 1, LIB, alias).unwrap();
    let alias_bytes = fx.w.peek(Space::User(1), 0xc000, 0x100);
    map_text(&fx, &files, 1, 0x1000, 0x3000);
    map_data(&fx, &files, 1);
    let id = files
        .register(
            fx.e,
            FileUprobe {
                file: LIB,
                offset: (ARITH + 8) as u64,
                ref_ctr: Some(SEM_OFF),
                spec: ProbeSpec::Kprobe(Kprobe::at(0).pre(pre_count).data(s)),
            },
        )
        .unwrap();
    assert_eq!(semaphore(&fx, 1), 1, "counted in the space that maps it");
    assert_eq!(
        fx.w.peek(Space::User(1), 0xc000, 0x100),
        alias_bytes,
        "nothing written in the read-only alias"
    );
    assert_eq!(fx.call_in(Space::User(1), 1, ARITH, &[]).r[1], 13);
    assert_eq!(hits(s), 1);

    // Space 2 maps it later, at another address, the data later still.
    map_text(&fx, &files, 2, 0x9000, 0x100);
    assert_eq!(fx.call_in(Space::User(2), 2, 0x9000, &[]).r[1], 13);
    assert_eq!(hits(s), 2, "placed at the mapped address of the offset");
    assert_eq!(files.address_of(2, LIB, (ARITH + 8) as u64), Some(0x9008));
    assert_eq!(
        files.address_of(2, LIB, 0x7000),
        None,
        "not mapped in space 2"
    );
    assert_eq!(semaphore(&fx, 2), 0, "its counter is not mapped yet");
    map_data(&fx, &files, 2);
    assert_eq!(semaphore(&fx, 2), 1, "counted when its mapping arrives");

    // An address-space uprobe beside it, for the fork contrast.
    let own = seen();
    fx.e.register_kprobe(
        &Kprobe::at(BRANCHY)
            .in_space(Space::User(1))
            .pre(pre_count)
            .data(own),
    )
    .unwrap();
    // Fork space 1 into space 3.
    fx.w.clone_space(Space::User(1), Space::User(3));
    fx.w.set_task_space(3, 3);
    fx.e.fork_space(1, 3, &fx.w.tasks[1], &fx.w.tasks[3])
        .unwrap();
    files.forked(fx.e, 1, 3).unwrap();
    assert_eq!(fx.call_in(Space::User(3), 3, ARITH, &[]).r[1], 13);
    assert_eq!(hits(s), 3, "the file uprobe followed the fork");
    assert_eq!(fx.call_in(Space::User(3), 3, BRANCHY, &[3]).r[1], 100);
    assert_eq!(hits(own), 0, "the address-space uprobe did not");
    assert_eq!(
        semaphore(&fx, 3),
        1,
        "the child's counter keeps its copied count"
    );
    assert_eq!(files.placements::<8>(id).len(), 3);

    // Disabled: every space's counter goes down, nothing fires.
    files.set_enabled(fx.e, id, false).unwrap();
    assert_eq!(
        [semaphore(&fx, 1), semaphore(&fx, 2), semaphore(&fx, 3)],
        [0, 0, 0]
    );
    fx.call_in(Space::User(2), 2, 0x9000, &[]);
    assert_eq!(hits(s), 3);
    files.set_enabled(fx.e, id, true).unwrap();
    assert_eq!(
        [semaphore(&fx, 1), semaphore(&fx, 2), semaphore(&fx, 3)],
        [1, 1, 1]
    );

    // Unmapped in space 2: its probe goes, its text is the original again.
    files.unmapped(fx.e, 2, 0x9000, 0x100).unwrap();
    assert_eq!(fx.w.peek(Space::User(2), 0x9000, 0x10), arith);
    assert_eq!(files.placements::<8>(id).len(), 2);
    assert_eq!(
        semaphore(&fx, 2),
        0,
        "the probe left space 2: its counter (still mapped) counts down"
    );

    // Unregistered: every space's text and counter are back.
    files.unregister(fx.e, id).unwrap();
    for asid in [1, 3] {
        assert_eq!(fx.w.peek(Space::User(asid), ARITH, 0x10), arith);
        assert_eq!(semaphore(&fx, asid), 0);
    }
}

#[test]
fn file_uprobe_errors_change_nothing() {
    let fx: Fx = Fx::new();
    fx.load_user(1);
    fx.w.set_task_space(1, 1);
    let files = FileUprobes::<NoWaitLock, 1, 16>::new();
    map_text(&fx, &files, 1, 0x1000, 0x3000);
    let probe = |offset: u64| FileUprobe {
        file: LIB,
        offset,
        ref_ctr: None,
        spec: ProbeSpec::Kprobe(Kprobe::at(0).pre(pre_count).data(seen())),
    };
    let before = fx.snapshot();
    // Inside an instruction: the engine's error, nothing placed.
    let e = files.register(fx.e, probe((ARITH + 1) as u64)).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ProbeErrorKind::NotInsnBoundary { .. } | ProbeErrorKind::Misaligned { .. }
        ),
        "{e}"
    );
    assert!(before == fx.snapshot());
    // The table holds one file probe.
    let id = files.register(fx.e, probe(ARITH as u64)).unwrap();
    assert_eq!(
        files
            .register(fx.e, probe(BRANCHY as u64))
            .unwrap_err()
            .kind(),
        ProbeErrorKind::CapacityFull(probe_hal::Capacity::Probes)
    );
    files.unregister(fx.e, id).unwrap();
    assert_eq!(
        files.unregister(fx.e, id).unwrap_err().kind(),
        ProbeErrorKind::NoSuchProbe
    );
    assert!(before == fx.snapshot());
}

#[test]
fn enabling_is_all_or_nothing_when_one_space_cannot_be_written() {
    let fx: Fx = Fx::new();
    for asid in [1, 2] {
        fx.load_user(asid);
        fx.w.set_task_space(asid, asid);
    }
    let arith = fx.w.peek(Space::User(2), ARITH, 0x10);
    fx.w.load(Space::User(2), 0x9000, &arith);
    let files = Files::new();
    map_text(&fx, &files, 1, 0x1000, 0x3000);
    map_text(&fx, &files, 2, 0x9000, 0x100);
    for asid in [1, 2] {
        map_data(&fx, &files, asid);
    }
    let s = seen();
    let id = files
        .register(
            fx.e,
            FileUprobe {
                file: LIB,
                offset: (ARITH + 8) as u64,
                ref_ctr: Some(SEM_OFF),
                spec: ProbeSpec::Kprobe(Kprobe::at(0).pre(pre_count).data(s)),
            },
        )
        .unwrap();
    files.set_enabled(fx.e, id, false).unwrap();
    // Space 2's breakpoint cannot be written back: enabling fails, and
    // space 1 (switched first) is switched back.
    fx.w.fail_writes_at(0x9008);
    assert_eq!(
        files.set_enabled(fx.e, id, true).unwrap_err().kind(),
        ProbeErrorKind::TextPatchFailed
    );
    assert_eq!([semaphore(&fx, 1), semaphore(&fx, 2)], [0, 0]);
    assert_eq!(fx.w.peek(Space::User(1), ARITH, 0x10), arith);
    fx.call_in(Space::User(1), 1, ARITH, &[]);
    assert_eq!(hits(s), 0, "space 1 stayed disabled");
    // Once writes work, enabling reaches both.
    fx.w.clear_failures();
    files.set_enabled(fx.e, id, true).unwrap();
    assert_eq!([semaphore(&fx, 1), semaphore(&fx, 2)], [1, 1]);
    fx.call_in(Space::User(2), 2, 0x9000, &[]);
    assert_eq!(hits(s), 1);
}
