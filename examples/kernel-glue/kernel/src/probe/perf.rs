//! Probe events for the perf layer: a probe per event, programs attached
//! to it while it is live, detached by dropping them.

use alloc::boxed::Box;
use core::pin::Pin;

use probe_core::{Attachment, OwnedProbe, PreAction, ProbeContext, ProbeHandler, ProbeKind};
use probe_core::{ProbeSpec, Registers, Space, Target};

use super::{errno::errno, traps::ENGINE, with_pt_regs};
use crate::perf::{PerfAttr, PerfEvent, PerfKind::*, Program};

/// A program and whether it runs at the return.
pub struct Prog(Program, bool);

impl ProbeHandler for Prog {
    fn on_hit(&self, _: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
        if !self.1 {
            with_pt_regs(regs, |pt| (self.0)(pt));
        }
        PreAction::Continue
    }
    fn on_return(&self, _: &ProbeContext, regs: &mut dyn Registers) {
        with_pt_regs(regs, |pt| (self.0)(pt));
    }
}

/// The event's probe (unregistered when dropped), whether it is a return
/// probe, its program.
struct ProbeEvent(
    OwnedProbe<'static>,
    bool,
    Option<Pin<Box<Attachment<'static, Prog>>>>,
);

/// `perf_event_open` of a probe event: registers its probe.
pub fn open(a: &PerfAttr<'_>) -> Result<Box<dyn PerfEvent>, i32> {
    let space = [Space::Kernel, Space::User(a.asid)][matches!(a.kind, Uprobe | Uretprobe) as usize];
    let target = match a.symbol {
        "" => Target::Addr(a.addr),
        name => Target::Symbol {
            name,
            offset: a.addr,
        },
    };
    let ret = matches!(a.kind, Kretprobe | Uretprobe);
    let kind = [ProbeKind::Kprobe, ProbeKind::Kretprobe][ret as usize];
    let probe = ENGINE.register_owned(&ProbeSpec::at(target, space, kind));
    Ok(Box::new(ProbeEvent(probe.map_err(errno)?, ret, None)))
}

impl PerfEvent for ProbeEvent {
    fn set_bpf(&mut self, prog: Program) -> Result<(), i32> {
        let att = Box::pin(Attachment::new(Prog(prog, self.1)));
        ENGINE.attach(self.0.id(), att.as_ref()).map_err(errno)?;
        self.2 = Some(att);
        Ok(())
    }
    fn clear_bpf(&mut self) {
        self.2 = None;
    }
}
