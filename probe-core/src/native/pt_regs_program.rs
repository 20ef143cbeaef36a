//! A handler object that runs an eBPF-style program over the backend's
//! Linux `pt_regs`, at the moment a perf probe event fires.

use super::{with_pt_regs, PtRegs};
use crate::attach::ProbeHandler;
use crate::spec::{PreAction, ProbeContext, ProbeKind};
use probe_hal::Registers;

/// A program over `pt_regs` (an eBPF program's context), as a handler
/// object: attach it to a live probe with [`crate::Engine::attach`].
///
/// It runs where Linux runs a probe event's program: at the hit of a kprobe
/// or uprobe, at the return of a kretprobe or uretprobe (not at its
/// entry). It sees the frame itself when the frame is the backend's
/// [`PtRegs`] (return trampolines, kernels whose trap frame is `PtRegs`),
/// else a copy whose changes are written back ([`with_pt_regs`]). The
/// program's result (an eBPF program's return value) is ignored, as for a
/// perf event. A program that changes the pc of a kprobe hit should
/// also skip the instruction: wrap it in a [`ProbeHandler`] of your own
/// that returns [`PreAction::SkipInstruction`].
///
/// ```
/// use probe_core::native::{PtRegs, PtRegsProgram};
/// use probe_core::Attachment;
/// fn count(_: &mut PtRegs) -> u64 { 0 }
/// static PROGRAM: Attachment<'static, PtRegsProgram<fn(&mut PtRegs) -> u64>> =
///     Attachment::new(PtRegsProgram(count));
/// assert!(!PROGRAM.is_attached());
/// ```
pub struct PtRegsProgram<F>(pub F);

impl<F, R> ProbeHandler for PtRegsProgram<F>
where
    F: Fn(&mut PtRegs) -> R + Sync,
{
    fn on_hit(&self, ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
        if ctx.kind == ProbeKind::Kprobe {
            with_pt_regs(regs, |pt| (self.0)(pt));
        }
        PreAction::Continue
    }

    fn on_return(&self, _: &ProbeContext, regs: &mut dyn Registers) {
        with_pt_regs(regs, |pt| (self.0)(pt));
    }
}
