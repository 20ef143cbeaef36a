//! A probed load that faults: the fault is taken in the out-of-line slot,
//! the engine's fault entry puts the pc back on the probed instruction,
//! and the kernel's fix-up table then resumes at the fix-up, exactly as if
//! there were no probe.

use core::sync::atomic::AtomicU64;

use probe_core::Kprobe;

use super::handlers::{post_count, pre_count, Seen};
use super::Report;
use crate::kernel::ENGINE;
use crate::testfns::{addr, call};
use crate::trap::{ec, last_fault};

/// Outside the identity map (level-1 entry 4 is invalid): a load from it
/// raises a translation fault (data abort).
pub const BAD_ADDRESS: usize = 0x1_0000_0000;

static SEEN: Seen = Seen::new();
static VALUE: AtomicU64 = AtomicU64::new(0x600d_f00d);

pub fn run(r: &mut Report) {
    let load = addr::t_load();
    let efault = (-14isize) as usize;

    // Unprobed: the kernel's fix-up alone.
    let (n0, _) = last_fault();
    let unprobed = call(load, BAD_ADDRESS, 0);
    let (n1, f) = last_fault();
    r.check(
        unprobed == efault
            && n1 == n0 + 1
            && f.is_some_and(|f| {
                f.ec == ec::DABT_CUR && f.far == BAD_ADDRESS as u64 && f.elr == load
            }),
        format_args!(
            "an unprobed faulting load raises a data abort and its fix-up returns -EFAULT"
        ),
    );

    SEEN.reset();
    let id = ENGINE.register_kprobe(&Kprobe::at(load).pre(pre_count).post(post_count).data(&SEEN));
    let probed = call(load, BAD_ADDRESS, 0);
    let (n2, f) = last_fault();
    let slot_fault = f.is_some_and(|f| {
        f.ec == ec::DABT_CUR
            && f.elr != load
            && f.step_aborted
            && f.pc_after_engine == load
            && f.far == BAD_ADDRESS as u64
    });
    r.check(
        id.is_ok() && probed == efault && n2 == n1 + 1 && slot_fault && SEEN.counts() == (1, 0),
        format_args!(
            "a probed load faulting in its slot goes back through the engine to the fix-up"
        ),
    );
    if let Some(f) = f {
        r.note(format_args!(
            "fault in the slot at {:#x}, pc after the engine {:#x}, FAR {:#x}",
            f.elr, f.pc_after_engine, f.far
        ));
    }
    let good = call(load, VALUE.as_ptr() as usize, 0);
    r.check_eq(
        (good, SEEN.counts(), id.map(|id| ENGINE.unregister(id))),
        (0x600d_f00d, (2, 1), Ok(Ok(()))),
        format_args!("the same probe then loads from a good address normally"),
    );
}
