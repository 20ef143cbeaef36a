//! The bad-input table: every way a caller can get a request wrong, each
//! answered with a typed error that leaves memory, probes, counters, slots
//! and instances exactly as they were. The table is `docs/errors.md`: this
//! test renders it and fails when the document differs (run it with
//! `UPDATE_ERRORS_DOC=1` to rewrite the document).

mod common;

use std::sync::Mutex;

use common::*;
use custom_arch::arch::TRAMPOLINE;
use custom_arch::world::SLOT_AREA;
use probe_core::{
    Kprobe, Kretprobe, PreAction, ProbeContext, ProbeError, ProbeErrorKind, ProbeId, ProbeSpec,
    Space,
};
use probe_hal::Registers;

/// One row: what was asked, and the error.
struct Row {
    case: &'static str,
    call: &'static str,
    error: ProbeError,
}

/// Run `f` on a fresh fixture prepared by `setup`, and check it fails and
/// leaves everything as it was.
fn case<const P: usize>(
    rows: &mut Vec<Row>,
    case: &'static str,
    call: &'static str,
    setup: impl FnOnce(&Fx<P>),
    f: impl FnOnce(&Fx<P>) -> Result<(), ProbeError>,
    want: fn(ProbeErrorKind) -> bool,
) {
    case_fired(rows, case, call, setup, f, want, false)
}

/// As [`case`]; `fired`: the request ran probed code, so hit counts may
/// have grown (nothing else may change).
fn case_fired<const P: usize>(
    rows: &mut Vec<Row>,
    case: &'static str,
    call: &'static str,
    setup: impl FnOnce(&Fx<P>),
    f: impl FnOnce(&Fx<P>) -> Result<(), ProbeError>,
    want: fn(ProbeErrorKind) -> bool,
    fired: bool,
) {
    let fx: Fx<P> = Fx::new();
    fx.load_user(1);
    fx.w.set_task_space(1, 1);
    setup(&fx);
    let before = fx.snapshot();
    let user_before = fx.w.peek(Space::User(1), 0x1000, 0x1000);
    let pages_before = fx.w.pages_held();
    let error = f(&fx).expect_err(case);
    assert!(want(error.kind()), "{case}: unexpected {error:?}");
    let mut after = fx.snapshot();
    if fired {
        for (a, b) in after.probes.iter_mut().zip(&before.probes) {
            assert!(a.hits >= b.hits);
            a.hits = b.hits;
        }
    }
    assert_eq!(after, before, "{case}: state changed");
    assert_eq!(
        fx.w.peek(Space::User(1), 0x1000, 0x1000),
        user_before,
        "{case}: user memory changed"
    );
    assert_eq!(fx.w.pages_held(), pages_before, "{case}: pages changed");
    rows.push(Row { case, call, error });
}

fn kprobe<const P: usize>(fx: &Fx<P>, p: Kprobe<'_>) -> Result<(), ProbeError> {
    fx.e.register_kprobe(&p).map(|_| ())
}

/// A pre-handler that registers a probe, for the trap-context row.
fn registers_from_handler(ctx: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    let slot = ctx.data.downcast_ref::<HandlerCall>().unwrap();
    let r = slot.e.register_kprobe(&Kprobe::at(BRANCHY)).map(|_| ());
    *slot.result.lock().unwrap() = Some(r);
    PreAction::Continue
}

struct HandlerCall {
    e: &'static custom_arch::ToyEngine,
    result: Mutex<Option<Result<(), ProbeError>>>,
}

extern "C" {
    static __start_probe_trap_text: u8;
}

fn rows() -> Vec<Row> {
    let mut r = Vec::new();
    use ProbeErrorKind as K;
    case::<64>(
        &mut r,
        "inside an instruction",
        "register_kprobe(arith+2)",
        |_| {},
        |fx| kprobe(fx, Kprobe::at(ARITH + 2)),
        |k| matches!(k, K::NotInsnBoundary { .. }),
    );
    case::<64>(
        &mut r,
        "misaligned address",
        "register_kprobe(arith+1)",
        |_| {},
        |fx| kprobe(fx, Kprobe::at(ARITH + 1)),
        |k| matches!(k, K::Misaligned { .. }),
    );
    case::<64>(
        &mut r,
        "overlapping an instruction already probed",
        "uprobe at arith+2 after one at arith",
        |fx| {
            fx.e.register_kprobe(&Kprobe::at(ARITH).in_space(Space::User(1)))
                .unwrap();
        },
        |fx| kprobe(fx, Kprobe::at(ARITH + 2).in_space(Space::User(1))),
        |k| matches!(k, K::Overlaps { .. }),
    );
    case::<64>(
        &mut r,
        "refused instruction",
        "register_kprobe(brk)",
        |_| {},
        |fx| kprobe(fx, Kprobe::at(REFUSED_FN)),
        |k| matches!(k, K::Refused(_)),
    );
    case::<64>(
        &mut r,
        "inside an ll/sc sequence",
        "register_kprobe(llsc_fn+4)",
        |_| {},
        |fx| kprobe(fx, Kprobe::at(LLSC_FN + 4)),
        |k| matches!(k, K::Refused(_)),
    );
    case::<64>(
        &mut r,
        "undecodable bytes",
        "uprobe on 0xff 0xff",
        |fx| {
            fx.w.load(Space::User(1), 0x6000, &[0xff, 0xff, 0xff, 0xff]);
        },
        |fx| kprobe(fx, Kprobe::at(0x6000).in_space(Space::User(1))),
        |k| matches!(k, K::Undecodable),
    );
    case::<1>(
        &mut r,
        "probe table full",
        "a second probe in a 1-probe engine",
        |fx| {
            fx.e.register_kprobe(&Kprobe::at(ARITH)).unwrap();
        },
        |fx| kprobe(fx, Kprobe::at(ARITH).pre(pre_count)),
        |k| k == K::CapacityFull(probe_hal::Capacity::Probes),
    );
    case::<2>(
        &mut r,
        "probe-point table full",
        "a kprobe after a uretprobe (probe + trampoline points) in a 2-probe engine",
        |fx| {
            fx.e.register_kretprobe(&Kretprobe::at(RECUR).in_space(Space::User(1)))
                .unwrap();
        },
        |fx| kprobe(fx, Kprobe::at(ARITH)),
        |k| k == K::CapacityFull(probe_hal::Capacity::ProbePoints),
    );
    case::<64>(
        &mut r,
        "slot pages exhausted (the kernel gives none)",
        "register_kprobe with no slot page left",
        |fx| {
            fx.w.limit_pages(0);
        },
        |fx| kprobe(fx, Kprobe::at(ARITH)),
        |k| k == K::SlotMemoryExhausted,
    );
    case::<64>(
        &mut r,
        "slot-page table full",
        "a uprobe in a 33rd address space (32 slot pages)",
        |fx| {
            for asid in 10..42 {
                fx.load_user(asid);
                fx.e.register_kprobe(&Kprobe::at(ARITH).in_space(Space::User(asid)))
                    .unwrap();
            }
            fx.load_user(42);
        },
        |fx| kprobe(fx, Kprobe::at(ARITH).in_space(Space::User(42))),
        |k| k == K::CapacityFull(probe_hal::Capacity::SlotPages),
    );
    case::<64>(
        &mut r,
        "batch larger than its id array",
        "register_batch(2 specs, 1 id)",
        |_| {},
        |fx| {
            let specs = [
                ProbeSpec::Kprobe(Kprobe::at(ARITH)),
                ProbeSpec::Kprobe(Kprobe::at(BRANCHY)),
            ];
            let mut ids = [ProbeId::NONE; 1];
            fx.e.register_batch(&specs, &mut ids).map_err(|b| b.error)
        },
        |k| k == K::CapacityFull(probe_hal::Capacity::Batch),
    );
    case::<64>(
        &mut r,
        "batch entry fails",
        "register_batch([arith, arith+1])",
        |_| {},
        |fx| {
            let specs = [
                ProbeSpec::Kprobe(Kprobe::at(ARITH)),
                ProbeSpec::Kprobe(Kprobe::at(ARITH + 1)),
            ];
            let mut ids = [ProbeId::NONE; 2];
            fx.e.register_batch(&specs, &mut ids).map_err(|b| b.error)
        },
        |k| matches!(k, K::Misaligned { .. }),
    );
    case::<64>(
        &mut r,
        "return instances exhausted at fork",
        "fork_space with no free instance",
        |fx| {
            fx.e.register_kretprobe(&Kretprobe::at(RECUR).in_space(Space::User(1)).maxactive(16))
                .unwrap();
            fx.e.register_kretprobe(&Kretprobe::at(RECUR).maxactive(16))
                .unwrap();
            let mut user = fx.cpu_calling(0, 1, Space::User(1), RECUR, &[5]);
            fx.step_until_pending(&mut user, 2);
            let mut kernel = fx.cpu_calling(1, 2, Space::Kernel, RECUR, &[15]);
            fx.step_until_pending(&mut kernel, 14);
            fx.w.clone_space(Space::User(1), Space::User(5));
        },
        |fx| fx.e.fork_space(1, 5, &fx.w.tasks[1], &fx.w.tasks[6]),
        |k| k == K::CapacityFull(probe_hal::Capacity::Instances),
    );
    case::<64>(
        &mut r,
        "unregister twice",
        "unregister(id) after unregister(id)",
        |_| {},
        |fx| {
            let id = fx.e.register_kprobe(&Kprobe::at(ARITH)).unwrap();
            fx.e.unregister(id).unwrap();
            fx.e.unregister(id)
        },
        |k| k == K::NoSuchProbe,
    );
    case::<1>(
        &mut r,
        "stale id after its record was reused",
        "enable(old id)",
        |_| {},
        |fx| {
            let old = fx.e.register_kprobe(&Kprobe::at(ARITH)).unwrap();
            fx.e.unregister(old).unwrap();
            let new = fx.e.register_kprobe(&Kprobe::at(BRANCHY)).unwrap();
            let r = fx.e.enable(old);
            fx.e.unregister(new).unwrap();
            r
        },
        |k| k == K::NoSuchProbe,
    );
    case::<64>(
        &mut r,
        "id never issued",
        "disable(ProbeId::NONE)",
        |_| {},
        |fx| fx.e.disable(ProbeId::NONE),
        |k| k == K::NoSuchProbe,
    );
    case::<64>(
        &mut r,
        "blacklisted by the kernel",
        "register_kprobe(blacklisted range)",
        |_| {},
        |fx| kprobe(fx, Kprobe::at(BLACK + 4)),
        |k| k == K::Blacklisted,
    );
    case::<64>(
        &mut r,
        "the engine's own trap path",
        "register_kprobe(__start_probe_trap_text)",
        |_| {},
        |fx| {
            // Only the address of the linker-defined symbol is taken.
            let at = core::ptr::addr_of!(__start_probe_trap_text) as usize;
            kprobe(fx, Kprobe::at(at & !1))
        },
        |k| k == K::Blacklisted,
    );
    case::<64>(
        &mut r,
        "the return trampoline",
        "register_kprobe(trampoline)",
        |_| {},
        |fx| kprobe(fx, Kprobe::at(TRAMPOLINE)),
        |k| k == K::Blacklisted,
    );
    case::<64>(
        &mut r,
        "inside an out-of-line slot page",
        "register_kprobe(slot area)",
        |fx| {
            fx.e.register_kprobe(&Kprobe::at(ARITH)).unwrap();
        },
        |fx| kprobe(fx, Kprobe::at(SLOT_AREA + 8)),
        |k| k == K::Blacklisted,
    );
    case::<64>(
        &mut r,
        "return probe off a function entry",
        "register_kretprobe(arith+4)",
        |_| {},
        |fx| {
            fx.e.register_kretprobe(&Kretprobe::at(ARITH + 4))
                .map(|_| ())
        },
        |k| k == K::NotFunctionEntry,
    );
    case::<64>(
        &mut r,
        "unknown symbol",
        "register_kprobe(\"no_such_fn\"+0)",
        |_| {},
        |fx| kprobe(fx, Kprobe::symbol("no_such_fn", 0)),
        |k| k == K::UnknownSymbol,
    );
    case::<64>(
        &mut r,
        "offset outside the symbol",
        "register_kprobe(\"arith\"+0x40)",
        |_| {},
        |fx| kprobe(fx, Kprobe::symbol("arith", 0x40)),
        |k| matches!(k, K::OffsetOutsideSymbol { .. }),
    );
    case::<64>(
        &mut r,
        "symbol in a user space",
        "uprobe by symbol name",
        |_| {},
        |fx| kprobe(fx, Kprobe::symbol("arith", 0).in_space(Space::User(1))),
        |k| matches!(k, K::InvalidRequest(_)),
    );
    case::<64>(
        &mut r,
        "slot out of reach of a pc-relative operand",
        "register_kprobe(ldpc) with far slot pages",
        |fx| {
            fx.w.far_pages(true);
        },
        |fx| kprobe(fx, Kprobe::at(LDPC_FN)),
        |k| matches!(k, K::OutOfReach { .. }),
    );
    case::<64>(
        &mut r,
        "the same probe twice",
        "register_kprobe(p) twice",
        |fx| {
            fx.e.register_kprobe(&Kprobe::at(ARITH).pre(pre_count))
                .unwrap();
        },
        |fx| kprobe(fx, Kprobe::at(ARITH).pre(pre_count)),
        |k| k == K::AlreadyRegistered,
    );
    case::<64>(
        &mut r,
        "per-instance data larger than the engine's",
        "register_kretprobe(data_size 65)",
        |_| {},
        |fx| {
            fx.e.register_kretprobe(&Kretprobe::at(ARITH).data_size(65))
                .map(|_| ())
        },
        |k| matches!(k, K::InvalidRequest(_)),
    );
    case::<64>(
        &mut r,
        "one probe twice in an unregister batch",
        "unregister_batch([id, id])",
        |fx| {
            fx.e.register_kprobe(&Kprobe::at(ARITH)).unwrap();
        },
        |fx| {
            let id = fx.e.list::<1>()[0].id;
            fx.e.unregister_batch(&[id, id])
        },
        |k| matches!(k, K::InvalidRequest(_)),
    );
    case::<64>(
        &mut r,
        "unreadable memory",
        "uprobe at an unmapped address",
        |_| {},
        |fx| kprobe(fx, Kprobe::at(0x40).in_space(Space::User(1))),
        |k| k == K::MemoryUnreadable,
    );
    case::<64>(
        &mut r,
        "text write refused by the kernel",
        "register_kprobe where write_text fails",
        |fx| {
            fx.w.fail_writes_at(ARITH + 8);
        },
        |fx| kprobe(fx, Kprobe::at(ARITH + 8)),
        |k| k == K::TextPatchFailed,
    );
    case::<64>(
        &mut r,
        "restoring text fails at unregister",
        "unregister(id) where write_text fails",
        |fx| {
            fx.e.register_kprobe(&Kprobe::at(ARITH + 8)).unwrap();
            fx.w.fail_writes_at(ARITH + 8);
        },
        |fx| {
            let id = fx.e.list::<1>()[0].id;
            fx.e.unregister(id)
        },
        |k| k == K::TextPatchFailed,
    );
    case_fired::<64>(
        &mut r,
        "registration from a probe handler",
        "register_kprobe inside a pre-handler",
        |fx| {
            let hc: &'static HandlerCall = Box::leak(Box::new(HandlerCall {
                e: fx.e,
                result: Mutex::new(None),
            }));
            fx.e.register_kprobe(&Kprobe::at(ARITH + 8).pre(registers_from_handler).data(hc))
                .unwrap();
            HANDLER_CALL.lock().unwrap().replace(hc);
        },
        |fx| {
            assert_eq!(fx.call(ARITH, &[]).r[1], 13);
            let hc = HANDLER_CALL.lock().unwrap().take().unwrap();
            let got = hc.result.lock().unwrap().take().unwrap();
            got
        },
        |k| k == K::InTrapContext,
        true,
    );
    r
}

static HANDLER_CALL: Mutex<Option<&'static HandlerCall>> = Mutex::new(None);

fn render(rows: &[Row]) -> String {
    let mut s = String::from(
        "# Bad input: every refusal, typed\n\n\
         Generated by `examples/custom-arch/tests/bad_input.rs` (run it with\n\
         `UPDATE_ERRORS_DOC=1` to rewrite this file; the test fails when it is\n\
         out of date). Each row is a request the engine refuses with the error\n\
         shown, and the test checks that the refusal left memory, the probe list,\n\
         counters, slots, slot pages and return instances exactly as they were.\n\n\
         The errno column is `ProbeErrorKind::errno()`: what a kernel returns\n\
         (negated), as Linux's `register_kprobe` would. The table under\n\
         [Errno per kind](#errno-per-kind) cites the Linux line behind each.\n\n\
         | # | case | request | `ProbeErrorKind` | errno | message |\n\
         |---|---|---|---|---|---|\n",
    );
    for (i, r) in rows.iter().enumerate() {
        let kind = format!("{:?}", r.error.kind());
        let kind = kind.split(['(', ' ', '{']).next().unwrap_or("").to_string();
        s.push_str(&format!(
            "| {} | {} | `{}` | `{}` | {} | {} |\n",
            i + 1,
            r.case,
            r.call,
            kind,
            errno_name(r.error.kind().errno()),
            r.error.kind()
        ));
    }
    s.push_str(
        "\n## Errno per kind\n\n\
         Copied from the doc comment of `ProbeErrorKind::errno()`\n\
         (`probe-hal/src/error.rs`, between its `errno-table` markers).\n\n",
    );
    s.push_str(&errno_table());
    s
}

/// The errno table of `ProbeErrorKind::errno()`'s doc comment: its lines
/// between the `<!-- errno-table -->` markers, without the `/// `.
fn errno_table() -> String {
    let src = include_str!("../../../probe-hal/src/error.rs");
    let mut lines = src.lines().map(str::trim_start);
    lines
        .by_ref()
        .find(|l| *l == "/// <!-- errno-table -->")
        .expect("errno-table marker in probe-hal/src/error.rs");
    let mut table = String::new();
    for l in lines.take_while(|l| *l != "/// <!-- /errno-table -->") {
        let l = l.strip_prefix("///").expect("the table is a doc comment");
        table.push_str(l.strip_prefix(' ').unwrap_or(l));
        table.push('\n');
    }
    table
}

fn errno_name(e: i32) -> &'static str {
    use probe_hal::errno::*;
    match e {
        ENOENT => "ENOENT",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EINVAL => "EINVAL",
        ENOMEM => "ENOMEM",
        EDEADLK => "EDEADLK",
        EILSEQ => "EILSEQ",
        _ => panic!("errno {e} has no name here"),
    }
}

#[test]
// Needs the trap path's section symbols, which Miri does not support
// (under Miri the engine's trap_text() is empty).
#[cfg_attr(miri, ignore)]
fn every_bad_input_gets_a_typed_error_and_changes_nothing() {
    let rows = rows();
    assert!(rows.len() >= 20, "{} cases", rows.len());
    let doc = render(&rows);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md");
    if std::env::var_os("UPDATE_ERRORS_DOC").is_some() {
        std::fs::write(path, &doc).unwrap();
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        on_disk == doc,
        "docs/errors.md is out of date: run UPDATE_ERRORS_DOC=1 cargo test -p custom-arch --test bad_input"
    );
}

#[test]
fn a_symbol_without_a_size_is_probed_by_offset_with_the_boundary_walk() {
    let fx: Fx = Fx::new();
    fx.w.add_symbol("arith_nosize", ARITH, 0);
    let s = seen();
    fx.e.register_kprobe(&Kprobe::symbol("arith_nosize", 8).pre(pre_count).data(s))
        .unwrap();
    assert_eq!(fx.call(ARITH, &[]).r[1], 13);
    assert_eq!(hits(s), 1);
    // still refused off an instruction boundary
    let e =
        fx.e.register_kprobe(&Kprobe::symbol("arith_nosize", 6))
            .unwrap_err();
    assert!(
        matches!(e.kind(), ProbeErrorKind::NotInsnBoundary { .. }),
        "{e}"
    );
}
