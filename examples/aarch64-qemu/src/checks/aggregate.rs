//! Several probes on one address, enabling and disabling, skipping the
//! instruction, re-entry, symbols, batches, and unregister restoring bytes.

use core::sync::atomic::{AtomicUsize, Ordering};

use probe_core::{Kprobe, PreAction, ProbeContext, ProbeSpec, Registers};
use probe_hal_aarch64::slot::KPROBE_BRK;

use super::handlers::{post_count, pre_count, seen, Seen};
use super::Report;
use crate::kernel::ENGINE;
use crate::testfns::{addr, call, word_at};

static A: Seen = Seen::new();
static B: Seen = Seen::new();
static C: Seen = Seen::new();

fn pres() -> (u64, u64, u64) {
    (A.counts().0, B.counts().0, C.counts().0)
}

/// Replaces `add x0, x0, x1` by `x0 = 77` and skips it.
fn pre_skip(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    seen(ctx).pre.fetch_add(1, Ordering::SeqCst);
    regs.set_gpr(0, 77);
    regs.set_pc(ctx.addr + 4);
    PreAction::SkipInstruction
}

static INNER_RESULT: AtomicUsize = AtomicUsize::new(0);

/// Calls the probed function from inside its own handler.
fn pre_reenter(ctx: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    seen(ctx).pre.fetch_add(1, Ordering::SeqCst);
    INNER_RESULT.store(call(addr::t_add2(), 100, 23), Ordering::SeqCst);
    PreAction::Continue
}

pub fn run(r: &mut Report) {
    let add2 = addr::t_add2();
    let orig = word_at(add2);
    for s in [&A, &B, &C] {
        s.reset();
    }

    // Three probes on one instruction, the middle one disabled.
    let ids = [&A, &B, &C]
        .map(|s| ENGINE.register_kprobe(&Kprobe::at(add2).pre(pre_count).post(post_count).data(s)));
    let [Ok(a), Ok(b), Ok(c)] = ids else {
        r.check(
            false,
            format_args!("aggregate: registering three probes on t_add2: {ids:?}"),
        );
        return;
    };
    let disabled = ENGINE.disable(b);
    let result = call(add2, 3, 4);
    r.check_eq(
        (
            disabled,
            result,
            pres(),
            word_at(add2),
            ENGINE.is_armed(probe_core::Space::Kernel, add2),
        ),
        (Ok(()), 7, (1, 0, 1), KPROBE_BRK, true),
        format_args!("aggregate: 3 probes on one brk #0x004, the disabled one does not run"),
    );
    let enabled = ENGINE.enable(b);
    let result = call(add2, 3, 4);
    r.check_eq(
        (
            enabled,
            result,
            pres(),
            (A.counts().1, B.counts().1, C.counts().1),
        ),
        (Ok(()), 7, (2, 1, 2), (2, 1, 2)),
        format_args!("aggregate: enabled again, every pre- and post-handler runs"),
    );
    let all_disabled = [a, b, c].map(|id| ENGINE.disable(id));
    let bytes_back = word_at(add2);
    let result = call(add2, 3, 4);
    r.check_eq(
        (all_disabled, bytes_back, result, pres()),
        ([Ok(()); 3], orig, 7, (2, 1, 2)),
        format_args!("aggregate: all disabled, the original instruction is back"),
    );
    let _ = ENGINE.enable(a);
    let _ = ENGINE.enable(c);
    let un_a = ENGINE.unregister(a);
    let result = call(add2, 3, 4);
    r.check_eq(
        (un_a, word_at(add2), result, pres()),
        (Ok(()), KPROBE_BRK, 7, (2, 1, 3)),
        format_args!("aggregate: unregistering one keeps the breakpoint for the others"),
    );
    let un_bc = ENGINE.unregister_batch(&[b, c]);
    r.check_eq(
        (
            un_bc,
            word_at(add2),
            call(add2, 3, 4),
            pres(),
            ENGINE.slot_usage(),
        ),
        (Ok(()), orig, 7, (2, 1, 3), (0, 0)),
        format_args!("unregister restores the original bytes and frees the slot"),
    );

    // A pre-handler that moves the pc skips the instruction and the post.
    A.reset();
    let id = ENGINE.register_kprobe(&Kprobe::at(add2).pre(pre_skip).post(post_count).data(&A));
    let result = call(add2, 3, 4);
    let _ = id.map(|id| ENGINE.unregister(id));
    r.check_eq(
        (result, A.counts()),
        (77, (1, 0)),
        format_args!("a pre-handler returning SkipInstruction replaces the instruction"),
    );

    // A probe hit inside a handler on the same CPU: missed, still executed.
    A.reset();
    INNER_RESULT.store(0, Ordering::SeqCst);
    let id = ENGINE.register_kprobe(&Kprobe::at(add2).pre(pre_reenter).data(&A));
    let result = call(add2, 3, 4);
    let info = id
        .ok()
        .and_then(|id| ENGINE.info(id).ok())
        .map(|i| (i.hits, i.missed));
    let _ = id.map(|id| ENGINE.unregister(id));
    r.check_eq(
        (
            result,
            INNER_RESULT.load(Ordering::SeqCst),
            A.counts().0,
            info,
        ),
        (7, 123, 1, Some((1, 1))),
        format_args!("re-entered probe: counted as missed, its instruction still runs"),
    );

    // By symbol and offset.
    A.reset();
    let id = ENGINE.register_kprobe(&Kprobe::symbol("t_mov", 4).pre(pre_count).data(&A));
    let at = id.ok().and_then(|id| ENGINE.info(id).ok()).map(|i| i.addr);
    let mut regs = crate::runner::pattern();
    regs[0] = 0;
    let out = crate::runner::run(addr::t_mov(), &regs);
    let _ = id.map(|id| ENGINE.unregister(id));
    r.check_eq(
        (at, out[2], A.counts().0),
        (Some(addr::t_mov() + 4), 0x1234_0000_abcd, 1),
        format_args!("kprobe by symbol + offset (t_mov+4) resolves and fires"),
    );

    // A batch is all or nothing.
    let refused = addr::t_refused();
    let specs = [
        ProbeSpec::Kprobe(Kprobe::at(add2).pre(pre_count).data(&A)),
        ProbeSpec::Kprobe(Kprobe::at(addr::t_add()).pre(pre_count).data(&B)),
        ProbeSpec::Kprobe(Kprobe::at(refused).pre(pre_count).data(&C)),
    ];
    let mut out_ids = [probe_core::ProbeId::NONE; 3];
    let batch = ENGINE.register_batch(&specs, &mut out_ids);
    r.check(
        matches!(batch, Err(e) if e.index == 2)
            && word_at(add2) == orig
            && ENGINE.list::<4>().is_empty(),
        format_args!(
            "a batch with a refused entry registers nothing ({:?})",
            batch.err().map(|e| e.index)
        ),
    );
    let specs = &specs[..2];
    let batch = ENGINE.register_batch(specs, &mut out_ids);
    let armed = (word_at(add2), word_at(addr::t_add()));
    let un = ENGINE.unregister_batch(&out_ids[..2]);
    r.check_eq(
        (batch.is_ok(), armed, un, word_at(add2)),
        (true, (KPROBE_BRK, KPROBE_BRK), Ok(()), orig),
        format_args!("a batch of two registers both and unregisters both"),
    );
}
