//! Uprobes and uretprobes on a program running at PLV3 in the user region:
//! the breakpoints are `break 12`, the slots and the return trampoline live
//! in user slot pages, and the engine handles the traps with
//! `ExecMode::User` on behalf of the user task.

use core::sync::atomic::Ordering;

use probe_core::{Kprobe, Kretprobe, Space};
use probe_hal_loongarch64::slot::UPROBE_BREAK;

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
    let prmd = SEEN.pre_flags.load(Ordering::SeqCst);
    r.check_eq(
        (
            unprobed,
            probed,
            SEEN.counts(),
            prmd & crate::csr::PLV_MASK,
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
            3,
            USER_ASID + 1,
            at,
            UPROBE_BREAK,
            Ok(Ok(())),
            orig,
        ),
        format_args!("uprobe at PLV3 on {what}: same result, break 12, bytes restored"),
    );
}

pub fn run(r: &mut Report) {
    let arith = addr::u_arith();
    r.check_eq(
        user::run(arith, 10, 0),
        exited(30),
        format_args!("a user program runs at PLV3 and exits with a system call"),
    );

    probed_run(r, "a stepped addi.d", arith, arith, (10, 0), 30);
    let slot_page = kernel::last_user_slot_page();
    r.check(
        kernel::user_slot_area().contains(&slot_page),
        format_args!("the uprobe's slot page {slot_page:#x} is in the user region"),
    );
    probed_run(r, "a stepped slli.d", arith, arith + 4, (10, 0), 30);
    let branch = addr::u_branch();
    probed_run(r, "a simulated bltu (taken)", branch, branch, (1, 2), 2);
    probed_run(r, "a simulated bltu (not taken)", branch, branch, (2, 1), 1);
    let pcaddi = addr::u_pcaddi();
    probed_run(r, "a simulated pcaddi", pcaddi, pcaddi, (0, 0), pcaddi - 8);

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
        format_args!("uretprobe on recursive u_recur(3) at PLV3: entries 3,2,1,0, returns 0,1,3,6"),
    );
    let inner = recur + 24;
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
            "uretprobe returns through a break 12 trampoline in a user slot page ({trampoline:#x})"
        ),
    );
    let _ = id.map(|id| ENGINE.unregister(id));

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
        f.step_aborted && kernel::user_slot_area().contains(&f.era) && f.pc_after_engine == load
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
