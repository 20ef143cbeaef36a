//! Managing probes: several probes sharing one breakpoint, disabling one
//! of them, registering disabled, unregistering (every byte restored,
//! every slot given back), probing by symbol and offset, and a pre-handler
//! that skips the probed instruction.

use core::sync::atomic::Ordering;

use probe_core::{Kprobe, PreAction, ProbeContext, ProbeId, Space};
use probe_hal::Registers;
use probe_hal_riscv64::breakpoint::{C_EBREAK, EBREAK};
use probe_hal_riscv64::decode::Verdict;

use super::regfile::call2;
use super::report::{check, ensure, ensure_eq, note, Outcome};
use super::seen::{pre_count, pre_count_b, seen_of, Seen};
use super::{boundaries, decision_at, snapshot};
use crate::kernel::services::ENGINE;
use crate::kernel::slots;
use crate::kernel::symbols;

static A: Seen = Seen::new();
static B: Seen = Seen::new();

fn bytes_at(addr: usize, len: usize) -> heapless::Vec<u8, 4> {
    super::stepped::read4(addr)[..len].iter().copied().collect()
}

fn aggregate() -> Outcome {
    let f = symbols::get("t_alu");
    let addr = f.start + 4; // sub a2, a0, a1
    let orig = bytes_at(addr, 4);
    A.reset();
    B.reset();
    let a = ENGINE.register_kprobe(&Kprobe::at(addr).pre(pre_count).data(&A))?;
    let b = ENGINE.register_kprobe(&Kprobe::at(addr).pre(pre_count_b).data(&B))?;
    let want = super::stepped::alu_result();
    ensure_eq!(
        bytes_at(addr, 4)[..],
        EBREAK.to_le_bytes(),
        "one ebreak for both probes"
    );
    ensure_eq!(ENGINE.slot_usage().0, 1, "slots for one address");
    ensure_eq!(
        call2(f.start, super::stepped::ARG_A, super::stepped::ARG_B),
        want,
        "t_alu"
    );
    ensure_eq!((A.pre(), B.pre()), (1, 1), "hits of both probes");

    ENGINE.disable(a)?;
    ensure!(
        ENGINE.is_armed(Space::Kernel, addr),
        "disarmed while a probe is enabled"
    );
    ensure_eq!(
        call2(f.start, super::stepped::ARG_A, super::stepped::ARG_B),
        want,
        "t_alu, one probe disabled"
    );
    ensure_eq!(
        (A.pre(), B.pre()),
        (1, 2),
        "hits with the first probe disabled"
    );
    ensure!(
        !ENGINE.info(a)?.enabled,
        "the disabled probe lists as enabled"
    );

    ENGINE.disable(b)?;
    ensure_eq!(bytes_at(addr, 4), orig, "bytes with both probes disabled");
    ensure_eq!(
        call2(f.start, super::stepped::ARG_A, super::stepped::ARG_B),
        want,
        "t_alu, both disabled"
    );
    ensure_eq!((A.pre(), B.pre()), (1, 2), "hits with both disabled");

    ENGINE.enable(a)?;
    ensure_eq!(
        bytes_at(addr, 4)[..],
        EBREAK.to_le_bytes(),
        "re-armed by enable"
    );
    ensure_eq!(
        call2(f.start, super::stepped::ARG_A, super::stepped::ARG_B),
        want,
        "t_alu, first re-enabled"
    );
    ensure_eq!(
        (A.pre(), B.pre()),
        (2, 2),
        "hits after enabling the first again"
    );
    ENGINE.unregister_batch(&[a, b])?;
    ensure_eq!(bytes_at(addr, 4), orig, "bytes after unregister");
    note!("two probes, one ebreak; disabling one leaves the other firing, both restores the bytes")
}

fn disabled_registration() -> Outcome {
    let f = symbols::get("t_alu");
    let addr = f.start + 8;
    let before = snapshot(&f);
    A.reset();
    let id = ENGINE.register_kprobe(&Kprobe::at(addr).pre(pre_count).data(&A).disabled())?;
    ensure!(snapshot(&f) == before, "registering disabled wrote text");
    let want = super::stepped::alu_result();
    ensure_eq!(
        call2(f.start, super::stepped::ARG_A, super::stepped::ARG_B),
        want,
        "t_alu"
    );
    ensure_eq!(A.pre(), 0, "hits while disabled");
    ENGINE.enable(id)?;
    ensure_eq!(
        call2(f.start, super::stepped::ARG_A, super::stepped::ARG_B),
        want,
        "t_alu"
    );
    ensure_eq!(A.pre(), 1, "hits once enabled");
    ENGINE.unregister(id)?;
    note!("no text written until enabled")
}

fn unregister_restores() -> Outcome {
    let mut ids = heapless::Vec::<ProbeId, 64>::new();
    let mut count = (0, 0);
    let mut stepped = 0;
    let mut before = heapless::Vec::<heapless::Vec<u8, 256>, 2>::new();
    for name in ["t_calu", "t_mem"] {
        let f = symbols::get(name);
        let _ = before.push(snapshot(&f));
        for off in boundaries(&f) {
            let addr = f.start + off;
            let decision = decision_at(addr);
            let len = decision.map_or(4, |d| d.len);
            if matches!(decision.map(|d| d.verdict), Some(Verdict::Step)) {
                stepped += 1;
            }
            let _ = ids.push(ENGINE.register_kprobe(&Kprobe::at(addr).pre(pre_count).data(&A))?);
            let bp: heapless::Vec<u8, 4> = if len == 2 {
                C_EBREAK.to_le_bytes().iter().copied().collect()
            } else {
                EBREAK.to_le_bytes().iter().copied().collect()
            };
            ensure_eq!(bytes_at(addr, len), bp, "breakpoint at {name}+{off:#x}");
            if len == 2 {
                count.0 += 1;
            } else {
                count.1 += 1;
            }
        }
    }
    let (slots_used, pages) = ENGINE.slot_usage();
    ensure_eq!(slots_used, stepped, "one slot per stepped instruction");
    ENGINE.unregister_batch(&ids)?;
    for (i, name) in ["t_calu", "t_mem"].iter().enumerate() {
        ensure!(
            snapshot(&symbols::get(name)) == before[i],
            "{name}: bytes differ after unregister"
        );
    }
    ensure_eq!(
        ENGINE.slot_usage(),
        (0, 0),
        "slots and pages held after unregister"
    );
    ensure_eq!(
        slots::KERNEL.in_use(),
        0,
        "kernel slot pages held by the engine"
    );
    ensure_eq!(
        ENGINE.list::<4>().len(),
        0,
        "probes listed after unregister"
    );
    let stale = ENGINE.unregister(ids[0]).map(|_| ()).unwrap_err();
    ensure_eq!(
        stale.kind(),
        probe_core::ProbeErrorKind::NoSuchProbe,
        "unregistering a stale id"
    );
    note!(
        "{} probes ({} c.ebreak, {} ebreak) on {} slots in {} page(s); every byte back, every page returned",
        ids.len(),
        count.0,
        count.1,
        slots_used,
        pages
    )
}

fn by_symbol() -> Outcome {
    let f = symbols::get("t_alu");
    A.reset();
    let id = ENGINE.register_kprobe(&Kprobe::symbol("t_alu", 8).pre(pre_count).data(&A))?;
    let addr = ENGINE.info(id)?.addr;
    let got = call2(f.start, super::stepped::ARG_A, super::stepped::ARG_B);
    ENGINE.unregister(id)?;
    ensure_eq!(addr, f.start + 8, "resolved address");
    ensure_eq!(got, super::stepped::alu_result(), "t_alu");
    ensure_eq!(A.pre(), 1, "hits");
    note!("`t_alu+8` resolved to {addr:#x} through lookup_symbol")
}

/// Emulates `add a0, a0, a1` as `a0 = 1000` and moves past it.
fn skip_add(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    seen_of(ctx).pre.fetch_add(1, Ordering::SeqCst);
    regs.set_gpr(10, 1000);
    regs.set_pc(ctx.addr + 4);
    PreAction::SkipInstruction
}

fn skip() -> Outcome {
    let f = symbols::get("t_odd32");
    let addr = f.start + 2; // add a0, a0, a1
    A.reset();
    let id = ENGINE.register_kprobe(
        &Kprobe::at(addr)
            .pre(skip_add)
            .post(super::seen::post_count)
            .data(&A),
    )?;
    let got = call2(f.start, 5, 3);
    ENGINE.unregister(id)?;
    ensure_eq!(
        got,
        (1000 * 3) ^ 0x3c,
        "t_odd32(5, 3) with the add replaced"
    );
    ensure_eq!((A.pre(), A.post()), (1, 0), "pre and post runs");
    note!("the pre-handler moved the pc; the add and the post-handler were skipped")
}

/// Run the checks.
pub fn run() {
    check("aggregate probes, one disabled", aggregate);
    check(
        "a probe registered disabled writes nothing",
        disabled_registration,
    );
    check(
        "unregister restores every byte and slot",
        unregister_restores,
    );
    check("kprobe by symbol and offset", by_symbol);
    check("pre-handler skips the instruction", skip);
}
