//! Kernel return probes through the backend's asm trampoline.

use core::sync::atomic::{AtomicU64, Ordering};

use probe_core::{EntryAction, Kretprobe, ProbeContext, Registers};

use super::handlers::{entry_record, ret_record, Returns};
use super::Report;
use crate::kernel::{self, ENGINE};
use crate::testfns::{addr, call};

static RET: Returns = Returns::new();

/// Declines the call with argument 0.
fn entry_skip_zero(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) -> EntryAction {
    if regs.arg(0) == Some(0) {
        return EntryAction::Decline;
    }
    entry_record(ctx, regs, data)
}

/// Saves both arguments in the instance data.
fn entry_save_args(_: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) -> EntryAction {
    data[..8].copy_from_slice(&(regs.arg(0).unwrap_or(0) as u64).to_le_bytes());
    data[8..16].copy_from_slice(&(regs.arg(1).unwrap_or(0) as u64).to_le_bytes());
    EntryAction::Track
}

static DATA_OK: AtomicU64 = AtomicU64::new(0);

/// Checks the saved arguments against the result and multiplies it by 10.
fn ret_times_ten(_: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) {
    let a = u64::from_le_bytes(data[..8].try_into().unwrap_or([0; 8]));
    let b = u64::from_le_bytes(data[8..16].try_into().unwrap_or([0; 8]));
    if a + b == regs.return_value() as u64 {
        DATA_OK.fetch_add(1, Ordering::SeqCst);
    }
    regs.set_return_value(regs.return_value() * 10);
}

pub fn run(r: &mut Report) {
    let recur = addr::t_recur();
    let inner_return = recur + 24;
    let trampoline = probe_hal_loongarch64::rethook::kernel_trampoline().unwrap_or(0);
    let task = kernel::task(0);

    // Every level of a recursion, in order.
    RET.reset();
    let id = ENGINE.register_kretprobe(
        &Kretprobe::at(recur)
            .entry(entry_record)
            .ret(ret_record)
            .data(&RET),
    );
    let result = call(recur, 3, 0);
    let hits = id
        .ok()
        .and_then(|id| ENGINE.info(id).ok())
        .map(|i| (i.hits, i.missed));
    let ras = RET.return_addresses.values();
    r.check_eq(
        (
            result,
            RET.args.values().as_slice(),
            RET.values.values().as_slice(),
            hits,
        ),
        (6, &[3, 2, 1, 0][..], &[0, 1, 3, 6][..], Some((4, 0))),
        format_args!("kretprobe on recursive t_recur(3): entries 3,2,1,0, returns 0,1,3,6"),
    );
    r.check(
        ras.as_slice().len() == 4
            && ras.as_slice()[..3].iter().all(|&a| a == inner_return)
            && RET.pcs.values().as_slice().iter().all(|&pc| pc == trampoline)
            && trampoline != 0,
        format_args!(
            "kretprobe returns go through the hal's asm trampoline ({trampoline:#x}) back to each caller"
        ),
    );
    r.check_eq(
        (
            ENGINE.pending_returns(task),
            id.map(|id| ENGINE.unregister(id)),
            ENGINE.free_instances(),
        ),
        (0, Ok(Ok(())), 32),
        format_args!("kretprobe: no pending instance after the calls, unregistered"),
    );

    // maxactive 2: only the two outer calls are tracked.
    RET.reset();
    let id =
        ENGINE.register_kretprobe(&Kretprobe::at(recur).ret(ret_record).maxactive(2).data(&RET));
    let result = call(recur, 3, 0);
    let info = id
        .ok()
        .and_then(|id| ENGINE.info(id).ok())
        .map(|i| (i.hits, i.missed));
    r.check_eq(
        (result, RET.values.values().as_slice(), info),
        (6, &[3, 6][..], Some((2, 2))),
        format_args!("kretprobe maxactive 2 on t_recur(3): 2 tracked, 2 missed"),
    );
    if let Ok(id) = id {
        let _ = ENGINE.unregister(id);
    }

    // An entry handler that declines a call.
    RET.reset();
    let id = ENGINE.register_kretprobe(
        &Kretprobe::symbol("t_recur")
            .entry(entry_skip_zero)
            .ret(ret_record)
            .data(&RET),
    );
    let result = call(recur, 3, 0);
    let hits = id.ok().and_then(|id| ENGINE.info(id).ok()).map(|i| i.hits);
    r.check_eq(
        (result, RET.values.values().as_slice(), hits),
        (6, &[1, 3, 6][..], Some(3)),
        format_args!("kretprobe by symbol, entry handler declining t_recur(0)"),
    );
    if let Ok(id) = id {
        let _ = ENGINE.unregister(id);
    }

    // Per-instance data, and a return handler changing the return value.
    DATA_OK.store(0, Ordering::SeqCst);
    let add2 = addr::t_add2();
    let id = ENGINE.register_kretprobe(
        &Kretprobe::at(add2)
            .entry(entry_save_args)
            .ret(ret_times_ten)
            .data_size(16),
    );
    let probed = call(add2, 4, 5);
    let unregistered = id.map(|id| ENGINE.unregister(id));
    let unprobed = call(add2, 4, 5);
    r.check_eq(
        (
            probed,
            DATA_OK.load(Ordering::SeqCst),
            unregistered,
            unprobed,
        ),
        (90, 1, Ok(Ok(())), 9),
        format_args!("kretprobe instance data and return value override (t_add2(4, 5) = 9 -> 90)"),
    );

    // Return handlers run with interrupts masked: the trampoline clears
    // CRMD.IE around them and restores it.
    IE_SEEN.store(2, Ordering::SeqCst);
    let id = ENGINE.register_kretprobe(&Kretprobe::at(add2).ret(ret_note_ie));
    set_ie(true);
    let got = call(add2, 4, 5);
    let after = crate::csr::read::<{ crate::csr::CRMD }>() & CRMD_IE != 0;
    set_ie(false);
    let unregistered = id.map(|id| ENGINE.unregister(id));
    r.check_eq(
        (got, IE_SEEN.load(Ordering::SeqCst), after, unregistered),
        (9, 0, true, Ok(Ok(()))),
        format_args!("return handlers run with interrupts masked (CRMD.IE clear), IE back after"),
    );
}

/// `CRMD.IE`.
pub(crate) const CRMD_IE: usize = 1 << 2;

/// `CRMD.IE` as the last [`ret_note_ie`] saw it (2: never ran).
static IE_SEEN: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(2);

fn ret_note_ie(_: &ProbeContext, _: &mut dyn Registers, _: &mut [u8]) {
    let ie = crate::csr::read::<{ crate::csr::CRMD }>() & CRMD_IE != 0;
    IE_SEEN.store(ie as usize, Ordering::SeqCst);
}

/// Set or clear `CRMD.IE`. ECFG is 0 (every interrupt line disabled), so
/// enabling lets nothing in.
pub(crate) fn set_ie(on: bool) {
    let value: usize = if on { CRMD_IE } else { 0 };
    // SAFETY: csrxchg changes only CRMD.IE (the mask); with ECFG = 0 no
    // interrupt can be taken either way.
    unsafe {
        core::arch::asm!(
            "csrxchg {v}, {m}, 0x0",
            v = inout(reg) value => _,
            m = in(reg) CRMD_IE,
            options(nostack)
        )
    };
}
