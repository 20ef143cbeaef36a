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
    let inner_return = recur + 20;
    let trampoline = probe_hal_aarch64::rethook::kernel_trampoline().unwrap_or(0);
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

    // A function entered through `bti c; paciasp` (signed return address,
    // SCTLR_EL1.EnIA on): the entry probe replaces x30 before `paciasp`
    // signs it, so `autiasp` authenticates the trampoline's address.
    RET.reset();
    let pac = addr::t_pac();
    let id = ENGINE.register_kretprobe(
        &Kretprobe::at(pac)
            .entry(entry_record)
            .ret(ret_record)
            .data(&RET),
    );
    let result = call(pac, 7, 0);
    let unregistered = id.map(|id| ENGINE.unregister(id));
    let signed = call(addr::t_pac_sign(), 0, 0);
    let ret_addr_bits = 0x0000_ffff_ffff_ffffusize;
    r.check_eq(
        (
            result,
            RET.values.values().as_slice(),
            unregistered,
            signed != signed & ret_addr_bits,
        ),
        (21, &[21][..], Ok(Ok(())), true),
        format_args!(
            "kretprobe on a `bti c; paciasp … autiasp; ret` function (PAC on: {signed:#x}): the signed trampoline address authenticates"
        ),
    );

    // Return handlers run with interrupts masked: the trampoline masks
    // DAIF around them and restores it.
    IE_SEEN.store(2, Ordering::SeqCst);
    let id = ENGINE.register_kretprobe(&Kretprobe::at(add2).ret(ret_note_ie));
    set_ie(true);
    let got = call(add2, 4, 5);
    let after = irqs_enabled();
    set_ie(false);
    let unregistered = id.map(|id| ENGINE.unregister(id));
    r.check_eq(
        (got, IE_SEEN.load(Ordering::SeqCst), after, unregistered),
        (9, 0, true, Ok(Ok(()))),
        format_args!(
            "return handlers run with interrupts masked (DAIF.I set), unmasked again after"
        ),
    );
}

/// `PSTATE.I` is clear.
fn irqs_enabled() -> bool {
    let daif: usize;
    // SAFETY: reading DAIF has no side effect.
    unsafe { core::arch::asm!("mrs {}, daif", out(reg) daif, options(nomem, nostack)) };
    daif & (1 << 7) == 0
}

/// Whether IRQs were enabled when the last [`ret_note_ie`] ran (2: never
/// ran).
static IE_SEEN: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(2);

fn ret_note_ie(_: &ProbeContext, _: &mut dyn Registers, _: &mut [u8]) {
    IE_SEEN.store(irqs_enabled() as usize, Ordering::SeqCst);
}

/// Unmask or mask IRQs. No interrupt source is configured (the GIC is left
/// off), so unmasking lets nothing in.
fn set_ie(on: bool) {
    // SAFETY: changes only PSTATE.I; no interrupt can be taken either way.
    unsafe {
        if on {
            core::arch::asm!("msr daifclr, #2", options(nostack));
        } else {
            core::arch::asm!("msr daifset, #2", options(nostack));
        }
    }
}
