//! Uprobes and uretprobes on code running in U-mode (`sret` with SPP = 0,
//! no paging): breakpoint traps from U-mode reach the engine with
//! `ExecMode::User`, probes live in `Space::User(asid)`, and their slots
//! and the uretprobe trampoline sit in slot pages of the user region.

use core::sync::atomic::Ordering;

use probe_core::{Kprobe, Kretprobe, Space};

use super::report::{check, ensure, ensure_eq, note, Outcome};
use super::seen::{entry_save_arg, post_count, pre_count, ret_record, Returns, Seen};
use super::{probe_each_user_insn, Case};
use crate::kernel::layout;
use crate::kernel::services::{ENGINE, INSTANCES};
use crate::kernel::symbols::{self, user_fn};
use crate::kernel::trap;
use crate::kernel::{slots, tasks, user};

// ((a0 + 1) * a1 + 7) ^ 0x5a, with a 32-bit mul at 2 mod 4 and stack use.
user_fn!(
    "u_arith",
    "rvc",
    [
        "c.addi a0, 1",
        ".option push",
        ".option norvc",
        "mul a0, a0, a1",
        ".option pop",
        "c.li a2, 7",
        "c.add a0, a2",
        "addi sp, sp, -16",
        "sd a0, 8(sp)",
        "ld a3, 8(sp)",
        "addi sp, sp, 16",
        "xori a0, a3, 0x5a",
        "ret",
    ]
);

user_fn!(
    "u_bltu",
    "norvc",
    [
        "bltu a0, a1, 1f",
        "li a0, 2",
        "ret",
        "1:",
        "li a0, 1",
        "ret"
    ]
);

// c.beqz taken, then a c.jr through a register.
user_fn!(
    "u_cflow",
    "rvc",
    [
        "c.beqz a0, 1f",
        "c.li a0, 2",
        "c.jr ra",
        "1:",
        "lla t1, 2f",
        "c.jr t1",
        "c.li a0, 9",
        "2:",
        "c.li a0, 1",
        "c.jr ra",
    ]
);

user_fn!("u_leaf", "norvc", ["addi a0, a0, 10", "ret"]);
user_fn!(
    "u_call",
    "norvc",
    [
        "mv t0, ra",
        "jal ra, u_leaf",
        "mv ra, t0",
        "addi a0, a0, 1",
        "ret"
    ]
);

user_fn!(
    "u_recur",
    "rvc",
    [
        "beqz a0, 1f",
        "addi sp, sp, -16",
        "sd ra, 8(sp)",
        "sd a0, 0(sp)",
        "addi a0, a0, -1",
        "jal ra, u_recur",
        "ld a1, 0(sp)",
        "add a0, a0, a1",
        "ld ra, 8(sp)",
        "addi sp, sp, 16",
        "1:",
        "ret",
    ]
);

user_fn!("u_load", "norvc", ["ld a0, 0(a0)", "ret"]);

// Legal in S-mode only: proves the privilege level.
user_fn!("u_csr", "norvc", ["csrr a0, sstatus", "ret"]);

const ILLEGAL_INSN: usize = 2;
const LOAD_ACCESS_FAULT: usize = 5;

static USER_VALUE: u64 = 0x0bad_cafe_f00d;
static S: Seen = Seen::new();
static R: Returns = Returns::new();

const fn uprobe(
    label: &'static str,
    func: &'static str,
    args: &'static [usize],
    want: usize,
    key: &'static str,
    simulated: bool,
) -> Case {
    Case {
        label,
        func,
        args,
        want,
        key,
        key_hits: 1,
        simulated,
    }
}

const CASES: &[Case] = &[
    uprobe(
        "uprobes on every instruction in U-mode",
        "u_arith",
        &[3, 5],
        (4 * 5 + 7) ^ 0x5a,
        "mul",
        false,
    ),
    uprobe(
        "uprobe on a simulated bltu, taken",
        "u_bltu",
        &[3, 5],
        1,
        "bltu",
        true,
    ),
    uprobe(
        "uprobe on a simulated bltu, not taken",
        "u_bltu",
        &[5, 3],
        2,
        "bltu",
        true,
    ),
    uprobe(
        "uprobes on c.beqz and c.jr in U-mode",
        "u_cflow",
        &[0],
        1,
        "c.beqz",
        true,
    ),
    uprobe(
        "uprobe on jal with link in U-mode",
        "u_call",
        &[5],
        16,
        "jal",
        true,
    ),
];

fn runs_in_user_mode() -> Outcome {
    let f = symbols::get("u_arith");
    ensure!(f.is_user(), "u_arith lies outside the user region");
    let got = user::run(f.start, 3, 5);
    ensure_eq!(got, (4 * 5 + 7) ^ 0x5a, "u_arith(3, 5)");
    // An S-mode CSR read is illegal there: the run really is in U-mode.
    let csr = symbols::get("u_csr");
    let (before, _) = trap::last_fault();
    let denied = user::run(csr.start, 0, 0);
    let (after, r) = trap::last_fault();
    ensure_eq!(denied, user::FAULTED, "u_csr (csrr sstatus) in U-mode");
    ensure_eq!(after - before, 1, "faults taken");
    ensure_eq!(
        (r.cause, r.trap_pc, r.user),
        (ILLEGAL_INSN, csr.start, true),
        "cause, pc, from U-mode"
    );
    note!(
        "u_arith at {:#x} returned through ecall; csrr sstatus there is illegal",
        f.start
    )
}

fn slots_in_user_region() -> Outcome {
    let f = symbols::get("u_arith");
    let mul = f.start + 2;
    let (kernel_before, _) = slots::KERNEL.history();
    let (user_before, _) = slots::USER.history();
    S.reset();
    let id = ENGINE.register_kprobe(
        &Kprobe::at(mul)
            .in_space(Space::User(user::ASID))
            .pre(pre_count)
            .post(post_count)
            .data(&S),
    )?;
    let (user_after, page) = slots::USER.history();
    let (kernel_after, _) = slots::KERNEL.history();
    let armed = ENGINE.is_armed(Space::User(user::ASID), mul);
    let armed_in_kernel = ENGINE.is_armed(Space::Kernel, mul);
    let got = user::run(f.start, 3, 5);
    ENGINE.unregister(id)?;
    ensure_eq!(got, (4 * 5 + 7) ^ 0x5a, "u_arith(3, 5)");
    ensure_eq!(user_after - user_before, 1, "user slot pages taken");
    ensure_eq!(kernel_after - kernel_before, 0, "kernel slot pages taken");
    ensure!(
        layout::contains(&layout::user(), page, layout::PAGE_SIZE),
        "slot page {page:#x} outside the user region"
    );
    ensure!(armed && !armed_in_kernel, "armed in the user space only");
    ensure_eq!((S.pre(), S.post(), S.bad()), (1, 1, 0), "pre, post, bad");
    ensure_eq!(slots::USER.in_use(), 0, "user slot pages after unregister");
    note!("slot page {page:#x} in the user region, the step ran there in U-mode")
}

fn uretprobe() -> Outcome {
    let f = symbols::get("u_recur");
    R.reset();
    let id = ENGINE.register_kretprobe(
        &Kretprobe::at(f.start)
            .in_space(Space::User(user::ASID))
            .entry(entry_save_arg)
            .ret(ret_record)
            .data_size(8)
            .data(&R),
    )?;
    let got = user::run(f.start, 5, 0);
    let info = ENGINE.info(id)?;
    ENGINE.unregister(id)?;
    ensure_eq!(got, 15, "u_recur(5)");
    ensure_eq!(
        R.values(6)[..],
        [0, 1, 3, 6, 10, 15],
        "return values, innermost first"
    );
    ensure_eq!(
        R.args(6)[..],
        [0, 1, 2, 3, 4, 5],
        "arguments saved at entry"
    );
    ensure_eq!((info.hits, info.missed), (6, 0), "hits and missed");
    ensure_eq!(
        R.bad.load(Ordering::SeqCst),
        0,
        "handler runs with a wrong mode or hart"
    );
    let tramp = R.trampoline_pc.load(Ordering::SeqCst);
    ensure!(
        slots::USER.range().contains(&tramp),
        "return trampoline {tramp:#x} is not in a user slot page"
    );
    ensure_eq!(ENGINE.free_instances(), INSTANCES, "free return instances");
    ensure_eq!(
        ENGINE.pending_returns(tasks::user_task()),
        0,
        "instances pending on the user task"
    );
    // The space keeps its trampoline page until it is torn down.
    ensure_eq!(
        slots::USER.in_use(),
        1,
        "user slot pages after unregister (the trampoline's)"
    );
    ensure!(ENGINE.release_space(user::ASID).is_ok(), "release_space");
    ensure_eq!(
        slots::USER.in_use(),
        0,
        "user slot pages after release_space"
    );
    note!(
        "values [0, 1, 3, 6, 10, 15] through the ebreak trampoline at {tramp:#x} (user slot page)"
    )
}

fn user_fault_in_slot() -> Outcome {
    let f = symbols::get("u_load");
    let denied = layout::denied().start + 32;
    S.reset();
    let id = ENGINE.register_kprobe(
        &Kprobe::at(f.start)
            .in_space(Space::User(user::ASID))
            .pre(pre_count)
            .post(post_count)
            .data(&S),
    )?;
    let (before, _) = trap::last_fault();
    let faulted = user::run(f.start, denied, 0);
    let (after, r) = trap::last_fault();
    let normal = user::run(f.start, &USER_VALUE as *const u64 as usize, 0);
    ENGINE.unregister(id)?;
    ensure_eq!(faulted, user::FAULTED, "u_load(denied) ends in a fault");
    ensure_eq!(after - before, 1, "faults taken");
    ensure!(
        slots::USER.range().contains(&r.trap_pc),
        "fault taken at {:#x}, not in a user slot",
        r.trap_pc
    );
    ensure_eq!(
        (r.cause, r.pc, r.badaddr, r.step_aborted, r.user),
        (LOAD_ACCESS_FAULT, f.start, denied, true, true),
        "cause, pc the kernel sees, stval, step aborted, from U-mode"
    );
    ensure_eq!(normal, USER_VALUE as usize, "u_load(valid) after the fault");
    ensure_eq!((S.pre(), S.post()), (2, 1), "pre and post runs");
    note!(
        "the user fault in the slot at {:#x} is reported at the probed {:#x}",
        r.trap_pc,
        r.pc
    )
}

/// Run the checks.
pub fn run() {
    check(
        "U-mode code runs and returns through ecall",
        runs_in_user_mode,
    );
    for case in CASES {
        check(case.label, || probe_each_user_insn(case));
    }
    check("uprobe slots live in the user region", slots_in_user_region);
    check("uretprobe on a recursive U-mode function", uretprobe);
    check(
        "a fault in a user slot is reported at the probe address",
        user_fault_in_slot,
    );
}
