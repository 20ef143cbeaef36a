//! A probed load (and store) that faults: the copy in the slot touches the
//! page PMP denies to S-mode, the access fault goes to the engine's fault
//! entry, which abandons the step and puts the pc back on the probed
//! instruction, and the kernel's own fix-up table takes it from there, as
//! without a probe. The next hit is a normal one.

use probe_core::Kprobe;

use super::regfile::call2;
use super::report::{check, ensure, ensure_eq, note, Outcome};
use super::seen::{post_count, pre_count, Seen};
use crate::kernel::layout;
use crate::kernel::services::ENGINE;
use crate::kernel::slots;
use crate::kernel::symbols::{self, kernel_fn};
use crate::kernel::trap::{self, FaultRecord};

// *a0, or 0xbad after a fault (fix-up).
kernel_fn!(
    "t_load",
    "norvc",
    [
        "ld a0, 0(a0)",
        "ret",
        ".Lt_load_fixup:",
        "li a0, 0xbad",
        "ret",
        ".pushsection .rodata.kernel_fixups, \"a\", @progbits",
        ".p2align 3",
        ".quad t_load, .Lt_load_fixup",
        ".popsection",
    ]
);

// *a0 = a1 and 0, or 0xbad after a fault (fix-up).
kernel_fn!(
    "t_store",
    "rvc",
    [
        "c.sd a1, 0(a0)",
        "c.li a0, 0",
        "c.jr ra",
        ".Lt_store_fixup:",
        "li a0, 0xbad",
        "c.jr ra",
        ".pushsection .rodata.kernel_fixups, \"a\", @progbits",
        ".p2align 3",
        ".quad t_store, .Lt_store_fixup",
        ".popsection",
    ]
);

const LOAD_ACCESS_FAULT: usize = 5;
const STORE_ACCESS_FAULT: usize = 7;

static VALUE: u64 = 0x1122_3344_5566_7788;
static S: Seen = Seen::new();

/// The fault the call `f` caused, checked to be the only new one.
fn fault_of(f: impl FnOnce() -> usize) -> Result<(usize, FaultRecord), super::report::Fail> {
    let (before, _) = trap::last_fault();
    let result = f();
    let (after, record) = trap::last_fault();
    ensure_eq!(after - before, 1, "faults taken");
    Ok((result, record))
}

fn unprobed() -> Outcome {
    let load = symbols::get("t_load");
    let denied = layout::denied().start + 8;
    let (got, r) = fault_of(|| call2(load.start, denied, 0))?;
    ensure_eq!(got, 0xbad, "t_load(denied) through the fix-up");
    ensure_eq!(
        (r.cause, r.trap_pc, r.pc, r.badaddr, r.step_aborted),
        (LOAD_ACCESS_FAULT, load.start, load.start, denied, false),
        "cause, trap pc, pc, stval, aborted"
    );
    ensure_eq!(
        call2(load.start, &VALUE as *const u64 as usize, 0),
        VALUE as usize,
        "t_load(valid)"
    );
    note!("load access fault at {denied:#x} (PMP-denied page), fixed up")
}

fn probed_load() -> Outcome {
    let load = symbols::get("t_load");
    let denied = layout::denied().start + 16;
    S.reset();
    let id = ENGINE.register_kprobe(
        &Kprobe::at(load.start)
            .pre(pre_count)
            .post(post_count)
            .data(&S),
    )?;
    let faulted = fault_of(|| call2(load.start, denied, 0));
    let normal = call2(load.start, &VALUE as *const u64 as usize, 0);
    ENGINE.unregister(id)?;
    let (got, r) = faulted?;
    ensure_eq!(got, 0xbad, "t_load(denied) through the fix-up");
    ensure!(
        slots::KERNEL.range().contains(&r.trap_pc),
        "the fault was taken at {:#x}, not in a slot",
        r.trap_pc
    );
    ensure_eq!(
        (r.cause, r.pc, r.badaddr, r.step_aborted),
        (LOAD_ACCESS_FAULT, load.start, denied, true),
        "cause, pc after the engine, stval, step aborted"
    );
    ensure_eq!(normal, VALUE as usize, "t_load(valid) after the fault");
    ensure_eq!(
        (S.pre(), S.post()),
        (2, 1),
        "pre and post runs (no post for the faulted step)"
    );
    note!(
        "fault in the slot at {:#x} went back to {:#x}, then to the fix-up",
        r.trap_pc,
        r.pc
    )
}

fn probed_store() -> Outcome {
    let store = symbols::get("t_store");
    let denied = layout::denied().start + 24;
    let mut cell = 0u64;
    S.reset();
    let id = ENGINE.register_kprobe(
        &Kprobe::at(store.start)
            .pre(pre_count)
            .post(post_count)
            .data(&S),
    )?;
    let faulted = fault_of(|| call2(store.start, denied, 7));
    let normal = call2(store.start, &mut cell as *mut u64 as usize, 7);
    ENGINE.unregister(id)?;
    let (got, r) = faulted?;
    ensure_eq!(got, 0xbad, "t_store(denied) through the fix-up");
    ensure_eq!(
        (r.cause, r.pc, r.step_aborted),
        (STORE_ACCESS_FAULT, store.start, true),
        "cause, pc after the engine, step aborted"
    );
    // SAFETY: `cell` is a live local the probed store wrote through a
    // pointer; read it back volatile so the write is not assumed away.
    let stored = unsafe { core::ptr::read_volatile(&cell) };
    ensure_eq!(
        (normal, stored),
        (0, 7),
        "t_store(valid) result and stored value"
    );
    ensure_eq!((S.pre(), S.post()), (2, 1), "pre and post runs");
    note!("c.sd fault in the slot recovered the same way")
}

/// Run the checks.
pub fn run() {
    check("unprobed load fault goes to the kernel fix-up", unprobed);
    check(
        "probed load that faults recovers through the engine's fault entry",
        probed_load,
    );
    check(
        "probed store that faults recovers the same way",
        probed_store,
    );
}
