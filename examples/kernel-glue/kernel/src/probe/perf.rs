//! Probe events for the perf layer: a probe per event, programs attached
//! to it while it is live, detached by dropping them.

use alloc::boxed::Box;
use core::pin::Pin;

use probe_core::{Attachment, Kprobe, Kretprobe, PreAction, ProbeContext, ProbeHandler, ProbeId};
use probe_core::{Registers, Space};

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

struct ProbeEvent(ProbeId, bool, Option<Pin<Box<Attachment<'static, Prog>>>>);

/// `perf_event_open` of a probe event: registers its probe.
pub fn open(a: &PerfAttr<'_>) -> Result<Box<dyn PerfEvent>, i32> {
    let space = [Space::Kernel, Space::User(a.asid)][matches!(a.kind, Uprobe | Uretprobe) as usize];
    let k = match a.symbol {
        "" => Kprobe::at(a.addr),
        name => Kprobe::symbol(name, a.addr),
    }
    .in_space(space);
    let mut r = Kretprobe::at(0).in_space(space);
    r.target = k.target;
    let ret = matches!(a.kind, Kretprobe | Uretprobe);
    let id = match ret {
        false => ENGINE.register_kprobe(&k),
        true => ENGINE.register_kretprobe(&r),
    };
    Ok(Box::new(ProbeEvent(id.map_err(errno)?, ret, None)))
}

impl PerfEvent for ProbeEvent {
    fn set_bpf(&mut self, prog: Program) -> Result<(), i32> {
        let att = Box::pin(Attachment::new(Prog(prog, self.1)));
        ENGINE.attach(self.0, att.as_ref()).map_err(errno)?;
        self.2 = Some(att);
        Ok(())
    }
    fn clear_bpf(&mut self) {
        self.2 = None;
    }
}

impl Drop for ProbeEvent {
    fn drop(&mut self) {
        let _ = ENGINE.unregister(self.0);
    }
}
