//! Probe events for the perf layer: a probe per event, a program attached
//! to it while it is live, detached by dropping it.

use alloc::boxed::Box;
use core::pin::Pin;

use probe_core::{native::PtRegsProgram, Attachment, OwnedProbe};
use probe_core::{ProbeKind::*, ProbeSpec, Space, Target};

use super::ENGINE;
use crate::perf::{PerfAttr, PerfEvent, PerfKind, Program};

type Prog = Pin<Box<Attachment<'static, PtRegsProgram<Program>>>>;

/// The event's probe (unregistered when dropped) and its program.
struct ProbeEvent(OwnedProbe<'static>, Option<Prog>);

/// `perf_event_open` of a probe event: registers its probe.
pub fn open(a: &PerfAttr<'_>) -> Result<Box<dyn PerfEvent>, i32> {
    let target = Target::symbol_or_addr(a.symbol, a.addr);
    let spec = match a.kind {
        PerfKind::Kprobe => ProbeSpec::at(target, Space::Kernel, Kprobe),
        PerfKind::Kretprobe => ProbeSpec::at(target, Space::Kernel, Kretprobe),
        PerfKind::Uprobe => ProbeSpec::at(target, Space::User(a.asid), Kprobe),
        PerfKind::Uretprobe => ProbeSpec::at(target, Space::User(a.asid), Kretprobe),
    };
    Ok(Box::new(ProbeEvent(ENGINE.register_owned(&spec)?, None)))
}

impl PerfEvent for ProbeEvent {
    fn set_bpf(&mut self, prog: Program) -> Result<(), i32> {
        let prog = Box::pin(Attachment::new(PtRegsProgram(prog)));
        ENGINE.attach(self.0.id(), prog.as_ref())?;
        self.1 = Some(prog);
        Ok(())
    }
    fn clear_bpf(&mut self) {
        self.1 = None;
    }
}
