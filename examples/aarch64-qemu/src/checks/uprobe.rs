//! Uprobes and uretprobes on a program running at EL0 in the user region:
//! the breakpoints are `brk #0x005`, the slots (ending in `brk #0x005`)
//! and the return trampoline live in user slot pages, and the engine
//! handles the traps with `ExecMode::User` on behalf of the user task.
//! A literal load at EL0 is simulated through the user data access.

use core::sync::atomic::Ordering;

use probe_core::{Kprobe, Kretprobe, Space};
use probe_hal_aarch64::regs::PSR_MODE_MASK;
use probe_hal_aarch64::slot::UPROBE_BRK;

use super::handlers::{entry_record, post_count, pre_count, ret_record, Returns, Seen};
use super::Report;
use crate::kernel::{self, linker_addr, ENGINE, USER_ASID, USER_TASK};
use crate::testfns::word_at;
use crate::user::{self, addr, Ending, UserRun};

static SEEN: Seen = Seen::new();
static RET: Returns = Returns::new();

const USER: Space = Space::User(USER_ASID);

fn exited(value: usize) -> UserRun {
    UserRun {
        value,
        ending: Ending::Exit,
        pc: 0,
    }
}

/// Run `func(a0, a1)` with a counting uprobe at `at`; checks everything a
/// uprobe hit must leave as it was.
fn probed_run(
    r: &mut Report,
    what: &str,
    func: usize,
    at: usize,
    args: (usize, usize),
    want: usize,
) {
    let unprobed = user::run(func, args.0, args.1);
    let orig = word_at(at);
    SEEN.reset();
    let id = ENGINE.register_kprobe(
        &Kprobe::at(at)
            .in_space(USER)
            .pre(pre_count)
            .post(post_count)
            .data(&SEEN),
    );
    let armed = word_at(at);
    let probed = user::run(func, args.0, args.1);
    let unregistered = id.map(|id| ENGINE.unregister(id));
    let spsr = SEEN.pre_flags.load(Ordering::SeqCst);
    r.check_eq(
        (
            unprobed,
            probed,
            SEEN.counts(),
            spsr & PSR_MODE_MASK,
            SEEN.space.load(Ordering::SeqCst),
            SEEN.pre_pc.load(Ordering::SeqCst),
            armed,
            unregistered,
            word_at(at),
        ),
        (
            exited(want),
            exited(want),
            (1, 1),
            0,
            USER_ASID + 1,
            at,
            UPROBE_BRK,
            Ok(Ok(())),
            orig,
        ),
        format_args!("uprobe at EL0 on {what}: same result, brk #0x005, bytes restored"),
    );
}

pub fn run(r: &mut Report) {
    let arith = addr::u_arith();
    r.check_eq(
        user::run(arith, 10, 0),
        exited(30),
        format_args!("a user program runs at EL0 and exits with a system call"),
    );

    probed_run(r, "a stepped add", arith, arith, (10, 0), 30);
    let slot_page = kernel::last_user_slot_page();
    r.check(
        kernel::user_slot_area().contains(&slot_page),
        format_args!("the uprobe's slot page {slot_page:#x} is in the user region"),
    );
    probed_run(r, "a stepped lsl", arith, arith + 4, (10, 0), 30);
    let branch = addr::u_branch();
    probed_run(r, "a simulated b.lo (taken)", branch, branch + 4, (1, 2), 2);
    probed_run(
        r,
        "a simulated b.lo (not taken)",
        branch,
        branch + 4,
        (2, 1),
        1,
    );
    let adr = addr::u_adr();
    probed_run(r, "a simulated adr", adr, adr, (0, 0), adr - 8);
    let lit = addr::u_ldr_lit();
    probed_run(
        r,
        "a simulated ldr (literal) through the user data access",
        lit,
        lit,
        (0, 0),
        0x5555_6666_7777_8888,
    );

    // A uretprobe on a recursive user function.
    let recur = addr::u_recur();
    RET.reset();
    let id = ENGINE.register_kretprobe(
        &Kretprobe::at(recur)
            .in_space(USER)
            .entry(entry_record)
            .ret(ret_record)
            .data(&RET),
    );
    let run = user::run(recur, 3, 0);
    let hits = id.ok().and_then(|id| ENGINE.info(id).ok()).map(|i| i.hits);
    r.check_eq(
        (
            run,
            RET.args.values().as_slice(),
            RET.values.values().as_slice(),
            hits,
        ),
        (exited(6), &[3, 2, 1, 0][..], &[0, 1, 3, 6][..], Some(4)),
        format_args!("uretprobe on recursive u_recur(3) at EL0: entries 3,2,1,0, returns 0,1,3,6"),
    );
    let inner = recur + 20;
    let ret_addrs = RET.return_addresses.values();
    let pcs = RET.pcs.values();
    let trampoline = pcs.as_slice().first().copied().unwrap_or(0);
    r.check_eq(
        (
            ret_addrs.as_slice(),
            pcs.as_slice().iter().all(|&pc| pc == trampoline),
            kernel::user_slot_area().contains(&trampoline),
            ENGINE.pending_returns(kernel::task(USER_TASK)),
        ),
        (
            &[inner, inner, inner, addr::u_start_ret()][..],
            true,
            true,
            0,
        ),
        format_args!(
            "uretprobe returns through a brk #0x005 trampoline in a user slot page ({trampoline:#x})"
        ),
    );
    let _ = id.map(|id| ENGINE.unregister(id));

    // A simulated literal load that faults: the engine reports the fault
    // (TrapOutcome::Fault) and the task dies at the probed address, as it
    // does unprobed.
    let bad = addr::u_ldr_bad();
    let unprobed = user::run(bad, 0, 0);
    SEEN.reset();
    let id = ENGINE.register_kprobe(&Kprobe::at(bad).in_space(USER).pre(pre_count).data(&SEEN));
    let probed = user::run(bad, 0, 0);
    let unregistered = id.map(|id| ENGINE.unregister(id));
    r.check_eq(
        (
            (unprobed.ending, unprobed.pc),
            (probed.ending, probed.pc),
            SEEN.counts().0,
            unregistered,
        ),
        ((Ending::Fault, bad), (Ending::Fault, bad), 1, Ok(Ok(()))),
        format_args!("a simulated ldr (literal) at EL0 from memory EL0 may not read faults at the probed address, as unprobed"),
    );

    // A fault inside a user slot: the task sees it at the probed address.
    let load = addr::u_load();
    let data = linker_addr!(__user_data_start);
    // SAFETY: the first word of the user data area, mapped and unused by
    // anything else; no user program runs while the kernel writes it.
    unsafe { core::ptr::write_volatile(data as *mut u64, 0x7777) };
    SEEN.reset();
    let id = ENGINE.register_kprobe(
        &Kprobe::at(load)
            .in_space(USER)
            .pre(pre_count)
            .post(post_count)
            .data(&SEEN),
    );
    let faulted = user::run(load, super::fault::BAD_ADDRESS, 0);
    let (_, fault) = crate::trap::last_fault();
    let in_slot = fault.is_some_and(|f| {
        f.step_aborted && kernel::user_slot_area().contains(&f.elr) && f.pc_after_engine == load
    });
    r.check(
        faulted.ending == Ending::Fault && faulted.pc == load && in_slot && SEEN.counts() == (1, 0),
        format_args!(
            "a fault in a user slot is reported at the probed address ({:#x})",
            faulted.pc
        ),
    );
    let good = user::run(load, data, 0);
    r.check_eq(
        (good, SEEN.counts(), id.map(|id| ENGINE.unregister(id))),
        (exited(0x7777), (2, 1), Ok(Ok(()))),
        format_args!("the same uprobe then steps the load normally"),
    );

    // The address space goes away: its slot pages and trampoline with it.
    let released = ENGINE.release_space(USER_ASID);
    r.check(released.is_ok(), format_args!("release_space succeeds"));
    r.check_eq(
        kernel::pages_held().1,
        0,
        format_args!("tearing down the user space gives every user slot page back"),
    );
}
