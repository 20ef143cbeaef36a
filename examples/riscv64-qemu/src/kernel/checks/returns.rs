//! Kernel return probes: through the backend's asm trampoline
//! (`Riscv64::kernel_trampoline`, installed with `set_return_hook`), on a
//! recursive function (values in order), with a `maxactive` quota, an
//! entry handler that declines calls, a handler that changes the return
//! value, and a kprobe sharing the entry.

use core::sync::atomic::Ordering;

use probe_core::{EntryAction, Kprobe, Kretprobe, ProbeContext};
use probe_hal::{Arch, Registers};
use probe_hal_riscv64::Riscv64;

use super::regfile::call2;
use super::report::{check, ensure, ensure_eq, note, Outcome};
use super::seen::{entry_save_arg, post_count, pre_count, ret_double, ret_record, Returns, Seen};
use crate::kernel::services::{ENGINE, INSTANCES};
use crate::kernel::symbols::{self, kernel_fn};
use crate::kernel::tasks;

// sum(0..=a0), recursively.
kernel_fn!(
    "t_recur",
    "rvc",
    [
        "beqz a0, 1f",
        "addi sp, sp, -16",
        "sd ra, 8(sp)",
        "sd a0, 0(sp)",
        "addi a0, a0, -1",
        "jal ra, t_recur",
        "ld a1, 0(sp)",
        "add a0, a0, a1",
        "ld ra, 8(sp)",
        "addi sp, sp, 16",
        "1:",
        "ret",
    ]
);

static R: Returns = Returns::new();
static K: Seen = Seen::new();

/// Everything a return probe borrowed is back.
fn all_returned() -> Outcome {
    ensure_eq!(ENGINE.free_instances(), INSTANCES, "free return instances");
    ensure_eq!(
        ENGINE.pending_returns(tasks::kernel_task()),
        0,
        "instances pending on the kernel task"
    );
    note!("")
}

fn recursive() -> Outcome {
    let f = symbols::get("t_recur");
    R.reset();
    let id = ENGINE.register_kretprobe(
        &Kretprobe::at(f.start)
            .entry(entry_save_arg)
            .ret(ret_record)
            .data_size(8)
            .data(&R),
    )?;
    let got = call2(f.start, 5, 0);
    let info = ENGINE.info(id)?;
    ENGINE.unregister(id)?;
    ensure_eq!(got, 15, "t_recur(5)");
    ensure_eq!(
        R.values(6)[..],
        [0, 1, 3, 6, 10, 15],
        "return values, innermost first"
    );
    ensure_eq!(
        R.args(6)[..],
        [0, 1, 2, 3, 4, 5],
        "arguments saved at entry, in return order"
    );
    ensure_eq!(
        (R.entries(), R.returns()),
        (6, 6),
        "entry and return handler runs"
    );
    ensure_eq!((info.hits, info.missed), (6, 0), "hits and missed");
    ensure_eq!(
        R.bad.load(Ordering::SeqCst),
        0,
        "handler runs on the wrong hart"
    );
    let trampoline = Riscv64::kernel_trampoline().unwrap_or(0);
    ensure_eq!(
        R.trampoline_pc.load(Ordering::SeqCst),
        trampoline,
        "pc of the return frame (the hal's asm trampoline)"
    );
    // The five inner calls return right after the recursive `jal`.
    let inner = R.return_addresses[0].load(Ordering::SeqCst);
    ensure!(
        f.range().contains(&inner),
        "inner return address {inner:#x} outside t_recur"
    );
    for i in 1..5 {
        ensure_eq!(
            R.return_addresses[i].load(Ordering::SeqCst),
            inner,
            "return address {i}"
        );
    }
    let outer = R.return_addresses[5].load(Ordering::SeqCst);
    ensure!(
        !f.range().contains(&outer),
        "outermost return address {outer:#x} inside t_recur"
    );
    all_returned()?;
    note!("values [0, 1, 3, 6, 10, 15] in order through the trampoline at {trampoline:#x}")
}

fn quota() -> Outcome {
    let f = symbols::get("t_recur");
    R.reset();
    let id =
        ENGINE.register_kretprobe(&Kretprobe::at(f.start).ret(ret_record).maxactive(3).data(&R))?;
    let got = call2(f.start, 5, 0);
    let info = ENGINE.info(id)?;
    ENGINE.unregister(id)?;
    ensure_eq!(got, 15, "t_recur(5) with untracked calls");
    ensure_eq!((info.hits, info.missed), (3, 3), "hits and missed");
    ensure_eq!(
        R.values(3)[..],
        [6, 10, 15],
        "the three outermost calls, innermost first"
    );
    all_returned()?;
    note!("3 tracked, 3 missed, all 6 calls return right")
}

fn decline_odd(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) -> EntryAction {
    let action = if regs.arg(0).unwrap_or(0) % 2 == 1 {
        EntryAction::Decline
    } else {
        EntryAction::Track
    };
    let _ = entry_save_arg(ctx, regs, data);
    action
}

fn declined() -> Outcome {
    let f = symbols::get("t_recur");
    R.reset();
    let id = ENGINE.register_kretprobe(
        &Kretprobe::at(f.start)
            .entry(decline_odd)
            .ret(ret_record)
            .data_size(8)
            .data(&R),
    )?;
    let got = call2(f.start, 4, 0);
    let info = ENGINE.info(id)?;
    ENGINE.unregister(id)?;
    ensure_eq!(got, 10, "t_recur(4)");
    ensure_eq!(R.entries(), 5, "entry handler runs");
    ensure_eq!(R.values(3)[..], [0, 3, 10], "sum(0), sum(2), sum(4)");
    ensure_eq!(R.returns(), 3, "return handler runs");
    ensure_eq!(info.missed, 0, "declined calls are not missed");
    all_returned()?;
    note!("odd calls declined, even ones tracked: [0, 3, 10]")
}

fn changes_value() -> Outcome {
    let helper = symbols::get("t_helper");
    R.reset();
    let id = ENGINE.register_kretprobe(&Kretprobe::at(helper.start).ret(ret_double).data(&R))?;
    // t_cjalr calls t_helper at its entry; t_jalr_link enters it at +4,
    // which is no function entry: no return probe there.
    let doubled = call2(symbols::get("t_cjalr").start, 4, 0);
    let bypassed = call2(symbols::get("t_jalr_link").start, 5, 0);
    ENGINE.unregister(id)?;
    ensure_eq!(
        doubled,
        (4 + 1010) * 2,
        "t_cjalr(4) with t_helper's result doubled"
    );
    ensure_eq!(
        bypassed,
        16,
        "t_jalr_link(5), entering t_helper past its entry"
    );
    ensure_eq!(R.returns(), 1, "return handler runs");
    all_returned()?;
    note!("t_helper's return value doubled by its return handler: {doubled}")
}

/// `sstatus.SIE` as the last [`ret_note_sie`] saw it (2: never ran).
static SIE_SEEN: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(2);

fn sstatus() -> usize {
    let v: usize;
    // SAFETY: reading sstatus in S-mode has no side effect.
    unsafe { core::arch::asm!("csrr {}, sstatus", out(reg) v, options(nomem, nostack)) };
    v
}

fn ret_note_sie(ctx: &ProbeContext, _regs: &mut dyn Registers, _data: &mut [u8]) {
    let _ = ctx;
    SIE_SEEN.store((sstatus() >> 1) & 1, Ordering::SeqCst);
}

fn masked() -> Outcome {
    let helper = symbols::get("t_helper");
    SIE_SEEN.store(2, Ordering::SeqCst);
    let id = ENGINE.register_kretprobe(&Kretprobe::at(helper.start).ret(ret_note_sie).data(&R))?;
    // SAFETY: no interrupt source is enabled in `sie`: setting SIE lets
    // nothing in; it is cleared again right after the call.
    unsafe { core::arch::asm!("csrsi sstatus, 2", options(nomem, nostack)) };
    let got = call2(symbols::get("t_cjalr").start, 4, 0);
    let after = (sstatus() >> 1) & 1;
    // SAFETY: clearing SIE only masks interrupts.
    unsafe { core::arch::asm!("csrci sstatus, 2", options(nomem, nostack)) };
    ENGINE.unregister(id)?;
    ensure_eq!(got, 4 + 1010, "t_cjalr(4)");
    ensure_eq!(
        SIE_SEEN.load(Ordering::SeqCst),
        0,
        "sstatus.SIE in the return handler"
    );
    ensure_eq!(after, 1, "sstatus.SIE after the trampoline");
    all_returned()?;
    note!("the trampoline cleared SIE around the return handler and set it back")
}

fn shares_entry() -> Outcome {
    let f = symbols::get("t_recur");
    R.reset();
    K.reset();
    let r = ENGINE.register_kretprobe(&Kretprobe::at(f.start).ret(ret_record).data(&R))?;
    let k =
        ENGINE.register_kprobe(&Kprobe::at(f.start).pre(pre_count).post(post_count).data(&K))?;
    let got = call2(f.start, 3, 0);
    ENGINE.unregister_batch(&[r, k])?;
    ensure_eq!(got, 6, "t_recur(3)");
    ensure_eq!(
        (K.pre(), K.post(), R.returns()),
        (4, 4, 4),
        "kprobe pre, post and return runs"
    );
    ensure_eq!(R.values(4)[..], [0, 1, 3, 6], "return values");
    all_returned()?;
    note!("a kprobe and a kretprobe on one entry: 4 hits each")
}

/// Run the checks.
pub fn run() {
    check("kretprobe on a recursive function", recursive);
    check("kretprobe maxactive quota counts missed calls", quota);
    check("kretprobe entry handler declines calls", declined);
    check(
        "kretprobe return handler changes the return value",
        changes_value,
    );
    check("kprobe and kretprobe share a function entry", shares_entry);
    check(
        "return handlers run with interrupts masked (sstatus.SIE clear)",
        masked,
    );
}
