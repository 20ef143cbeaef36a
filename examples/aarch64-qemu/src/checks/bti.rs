//! Branch Target Identification on guarded pages: the test functions in
//! `guarded_text` sit in a block mapped with GP = 1, so an indirect branch
//! into them must land on `bti c` (or `paciasp`), or it raises a Branch
//! Target exception.
//!
//! What this shows: a `brk` written over a landing pad raises no Branch
//! Target exception (BRK is compatible with every BTYPE), the stepped `bti
//! c`/`paciasp` copies run in the (unguarded) slot with BTYPE cleared, and a
//! simulated `blr` sets BTYPE as the hardware does: into a landing pad it
//! works, into a guarded function without one it faults exactly as the
//! unprobed `blr` does.

use probe_core::Kprobe;

use super::handlers::{post_count, pre_count, Seen};
use super::Report;
use crate::kernel::ENGINE;
use crate::testfns::{addr, call};
use crate::trap::{ec, last_fault};

static SEEN: Seen = Seen::new();

/// What the fix-up of `t_no_bti` returns.
const EBTI: usize = (-13isize) as usize;

fn bti_fault_at(at: usize) -> bool {
    last_fault()
        .1
        .is_some_and(|f| f.ec == ec::BTI && f.elr == at)
}

/// `t_call_via(3, target)` with a probe at `probe` (if any): its result,
/// the hits, and whether the last fault was a BTI fault at `fault_at`.
fn via(target: usize, probe: Option<usize>) -> (usize, u64, bool) {
    SEEN.reset();
    let id = probe.map(|at| {
        ENGINE.register_kprobe(&Kprobe::at(at).pre(pre_count).post(post_count).data(&SEEN))
    });
    let (n0, _) = last_fault();
    let got = call(addr::t_call_via(), 3, target);
    let (n1, _) = last_fault();
    let faulted = n1 == n0 + 1 && bti_fault_at(target);
    if let Some(Ok(id)) = id {
        let _ = ENGINE.unregister(id);
    }
    (got, SEEN.counts().0, faulted)
}

pub fn run(r: &mut Report) {
    let (add, no_bti, pac) = (addr::t_bti_add(), addr::t_no_bti(), addr::t_pac());
    let blr = addr::t_call_via() + 12;

    r.check_eq(
        (via(add, None), via(no_bti, None)),
        ((7, 0, false), (EBTI, 0, true)),
        format_args!("BTI is enforced on the guarded block: blr to `bti c` works, to a plain function faults"),
    );
    r.check_eq(
        (via(add, Some(add)), via(add, Some(add + 4))),
        ((7, 1, false), (7, 1, false)),
        format_args!("a kprobe on a `bti c` landing pad (brk there, bti stepped) and on the instruction after it"),
    );
    r.check_eq(
        (via(add, Some(blr)), via(no_bti, Some(blr))),
        ((7, 1, false), (EBTI, 1, true)),
        format_args!("a simulated blr sets BTYPE: into `bti c` it works, into a function without one it faults as unprobed"),
    );
    SEEN.reset();
    let id = ENGINE.register_kprobe(
        &Kprobe::at(pac + 4)
            .pre(pre_count)
            .post(post_count)
            .data(&SEEN),
    );
    let got = call(pac, 5, 0);
    let unregistered = id.map(|id| ENGINE.unregister(id));
    r.check_eq(
        (got, SEEN.counts(), unregistered),
        (15, (1, 1), Ok(Ok(()))),
        format_args!(
            "a kprobe on `paciasp` on a guarded page: signed in the slot, authenticated on return"
        ),
    );
}
