//! Vector (LSX, LASX) and LBT instructions: decoded as stepped, and on a
//! real trap the fault their copy raises in the slot comes back at the
//! probe address. QEMU 7.2 implements neither, so the instruction faults
//! (instruction-not-exist, or SXD/ASXD/BTD where the unit is known but
//! disabled) both unprobed and in its slot: the engine's fault entry must
//! put the pc back on the probed instruction, so the kernel's fix-up (a
//! stand-in for enabling the unit) sees the original address.

use probe_core::Kprobe;
use probe_hal_loongarch64::decode::{decode_word, Op, Verdict};

use super::handlers::{post_count, pre_count, Seen};
use super::Report;
use crate::kernel::ENGINE;
use crate::testfns::{addr, call, word_at};
use crate::trap::{ecode, last_fault};

static SEEN: Seen = Seen::new();

/// -ENOSYS, what the fix-ups return.
const FIXED_UP: usize = (-38isize) as usize;

pub fn run(r: &mut Report) {
    for (name, at, mnemonic) in [
        ("vadd.b (LSX)", addr::t_vadd(), "vadd.b"),
        ("xvld (LASX load)", addr::t_xvld(), "xvld"),
        ("x86add.wu (LBT)", addr::t_lbt(), "x86add.wu"),
    ] {
        let decoded = decode_word(word_at(at));
        r.check(
            matches!(decoded, Verdict::Accept(i) if i.op == Op::Step && i.mnemonic == mnemonic),
            format_args!("{name} at {at:#x} decodes as stepped `{mnemonic}`"),
        );

        // Unprobed: the kernel's fix-up alone, at the instruction itself.
        let (n0, _) = last_fault();
        let unprobed = call(at, 0x9000_0000_0000_0000, 0);
        let (n1, f) = last_fault();
        let code = f.map_or(0, |f| f.ecode);
        let vector_fault = matches!(code, ecode::INE | ecode::SXD | ecode::ASXD | ecode::BTD);
        r.check(
            unprobed == FIXED_UP
                && n1 == n0 + 1
                && vector_fault
                && f.is_some_and(|f| f.era == at && !f.step_aborted),
            format_args!("unprobed {name} faults in place (Ecode {code:#x}) and its fix-up runs"),
        );

        // Probed: the copy faults in the slot, the engine puts the pc back
        // at the probe, and the same fix-up runs.
        SEEN.reset();
        let id =
            ENGINE.register_kprobe(&Kprobe::at(at).pre(pre_count).post(post_count).data(&SEEN));
        let probed = call(at, 0x9000_0000_0000_0000, 0);
        let (n2, f) = last_fault();
        r.check(
            id.is_ok()
                && probed == FIXED_UP
                && n2 == n1 + 1
                && SEEN.counts() == (1, 0)
                && f.is_some_and(|f| {
                    f.ecode == code && f.era != at && f.step_aborted && f.pc_after_engine == at
                }),
            format_args!(
                "probed {name}: the slot's fault (Ecode {code:#x}) comes back at the probe address through handle_fault"
            ),
        );
        if let Some(f) = f {
            r.note(format_args!(
                "fault in the slot at {:#x}, pc after the engine {:#x}, pre/post handlers {:?}",
                f.era,
                f.pc_after_engine,
                SEEN.counts()
            ));
        }
        r.check_eq(
            id.map(|id| ENGINE.unregister(id)),
            Ok(Ok(())),
            format_args!("the probe on {name} unregisters"),
        );
    }
}
