//! `call`/`jmp` through memory, simulated (beyond Linux's kprobes, which
//! refuse them): an absolute jump table `jmp [rcx*8 + table]` (the form a
//! non-PIC kernel's switch compiles to), a GOT-style `call [rip + x]`, and a
//! `call [rax]` whose target read faults. Each is run unprobed first and
//! must give the same results probed; the faulting one must reach the
//! exception table's fix-up both times, the probed one through the
//! engine's `TrapOutcome::Fault` at the probe address.

use probe_core::{Arch, ExecMode, Kprobe};
use probe_hal::Handling;
use probe_hal_x86_64::{Base, Emulation, Op, X86_64};

use super::{counting_traps, kprobe, unregister};
use crate::entry;
use crate::handlers::{count_pre, fresh};
use crate::probed_code::*;
use crate::report::check;
use crate::services::peek;

/// An address above the 1 GiB identity map: reading it faults.
const UNMAPPED: u64 = 0x4000_0000;

pub fn run() {
    jump_table();
    call_rip_relative();
    call_through_a_faulting_pointer();
}

/// The backend's emulation of the instruction at `at`, if it simulates it.
fn emulation(at: usize) -> Option<Emulation> {
    let mut bytes = [0u8; 15];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = peek(at + i);
    }
    let d = X86_64::decode(at, &bytes, ExecMode::Kernel).ok()?;
    match (d.handling, d.insn.op()) {
        (Handling::Simulate, Op::Emulate(e)) => Some(e),
        _ => None,
    }
}

fn jump_table() {
    let name = "jmp [rcx*8 + table] (absolute jump table, simulated): same as unprobed";
    // The form the assembler chose: SIB with rcx*8 and no base.
    let form = emulation(addr(xq_jtab_site));
    let form_ok = matches!(
        form,
        Some(Emulation::JmpMem { mem }) if mem.base == Base::None && mem.index == Some(1) && mem.scale == 8 && !mem.addr32
    );
    let run = || {
        let mut r = [0u64; 8];
        for (i, v) in r.iter_mut().enumerate() {
            // SAFETY: a probed_code function: C ABI, touches only its own stack.
            *v = unsafe { xq_jtab(i as u64) };
        }
        r
    };
    let unprobed = run();
    let s = fresh();
    let Some(id) = kprobe(name, &Kprobe::at(addr(xq_jtab_site)).pre(count_pre).data(s)) else {
        return;
    };
    let (probed, traps) = counting_traps(run);
    unregister(name, id);
    let want = [10, 21, 32, 43, 10, 21, 32, 43];
    check(
        name,
        form_ok && unprobed == want && probed == unprobed && s.pre() == 8 && traps == 8,
        format_args!(
            "decoded {form:?}; unprobed {unprobed:?} (want {want:?}), probed {probed:?}, \
             hits {} (want 8), traps {traps} (want 8: simulated, one per hit)",
            s.pre()
        ),
    );
}

fn call_rip_relative() {
    let name = "call [rip + x] (simulated): result and return address as unprobed";
    let form = emulation(addr(xq_callmem_site));
    let form_ok = matches!(form, Some(Emulation::CallMem { mem }) if mem.base == Base::Rip);
    // SAFETY: a probed_code function: C ABI, touches only its own stack.
    let unprobed = unsafe { [xq_callmem(20), xq_callmem(7)] };
    let s = fresh();
    let Some(id) = kprobe(
        name,
        &Kprobe::at(addr(xq_callmem_site)).pre(count_pre).data(s),
    ) else {
        return;
    };
    // SAFETY: as above.
    let (probed, traps) = counting_traps(|| unsafe { [xq_callmem(20), xq_callmem(7)] });
    unregister(name, id);
    let back = addr(xq_callmem_back) as u64;
    let want = [Pair { a: 41, b: back }, Pair { a: 15, b: back }];
    check(
        name,
        form_ok && unprobed == want && probed == unprobed && s.pre() == 2 && traps == 2,
        format_args!(
            "decoded {form:?}; unprobed {unprobed:x?}, probed {probed:x?} (want {want:x?}), \
             hits {} (want 2), traps {traps} (want 2)",
            s.pre()
        ),
    );
}

fn call_through_a_faulting_pointer() {
    let name =
        "call [rax] through an unmapped pointer (simulated): the fault reaches the exception table";
    let target = addr(xq_callptr_target) as u64;
    let good = &target as *const u64 as u64;
    // Unprobed: a real #PF on the target read, fixed up by the table.
    let (_, fixups0) = entry::fault_counts();
    // SAFETY: a probed_code function (C ABI); `target` lives across the
    // call; the fault is fixed up through the exception table.
    let unprobed = unsafe { [xq_callptr(good), xq_callptr(UNMAPPED)] };
    let (aborted1, fixups1) = entry::fault_counts();
    let s = fresh();
    let Some(id) = kprobe(
        name,
        &Kprobe::at(addr(xq_callptr_site)).pre(count_pre).data(s),
    ) else {
        return;
    };
    let (sim0, _) = entry::simulated_faults();
    // SAFETY: as above.
    let probed = unsafe { [xq_callptr(good), xq_callptr(UNMAPPED)] };
    let (sim1, fault_addr) = entry::simulated_faults();
    let (aborted2, fixups2) = entry::fault_counts();
    unregister(name, id);
    let want = [77, EFAULT];
    check(
        name,
        unprobed == want
            && probed == want
            && fixups1 - fixups0 == 1
            && fixups2 - fixups1 == 1
            && sim1 - sim0 == 1
            && fault_addr == UNMAPPED as usize
            && aborted2 == aborted1
            && s.pre() == 2,
        format_args!(
            "unprobed {unprobed:x?}, probed {probed:x?} (want {want:x?}), fix-ups {}/{} (want 1/1), \
             simulated faults {} at {fault_addr:#x} (want 1 at {UNMAPPED:#x}), steps aborted {} \
             (want 0), hits {} (want 2)",
            fixups1 - fixups0,
            fixups2 - fixups1,
            sim1 - sim0,
            aborted2 - aborted1,
            s.pre()
        ),
    );
}
