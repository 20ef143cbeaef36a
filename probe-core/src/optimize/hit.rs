//! A hit through a detour: the engine as [`probe_hal::opthook::OptHook`].

use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::opthook::OptHook;
use probe_hal::{Arch, CallAbi, Registers};

use crate::engine::Engine;
use crate::probe::{Handlers, ProbeRecord};
use crate::services::{KernelServices, Space};
use crate::spec::{PreAction, PreHandler};

/// A detour's frame as a sized [`Registers`] for the engine's generic trap
/// code: every method forwards (so `as_any_mut` still reaches the frame
/// itself, the zero-copy `pt_regs` path).
pub(crate) struct DynFrame<'a>(pub(crate) &'a mut dyn Registers);

impl Registers for DynFrame<'_> {
    #[inline(always)]
    fn pc(&self) -> usize {
        self.0.pc()
    }
    #[inline(always)]
    fn set_pc(&mut self, pc: usize) {
        self.0.set_pc(pc)
    }
    #[inline(always)]
    fn sp(&self) -> usize {
        self.0.sp()
    }
    #[inline(always)]
    fn set_sp(&mut self, sp: usize) {
        self.0.set_sp(sp)
    }
    #[inline(always)]
    fn gpr(&self, n: usize) -> usize {
        self.0.gpr(n)
    }
    #[inline(always)]
    fn set_gpr(&mut self, n: usize, value: usize) {
        self.0.set_gpr(n, value)
    }
    #[inline(always)]
    fn call_abi(&self) -> &'static CallAbi {
        self.0.call_abi()
    }
    #[inline(always)]
    fn flags(&self) -> usize {
        self.0.flags()
    }
    #[inline(always)]
    fn set_flags(&mut self, flags: usize) {
        self.0.set_flags(flags)
    }
    #[inline(always)]
    fn arg(&self, i: usize) -> Option<usize> {
        self.0.arg(i)
    }
    #[inline(always)]
    fn set_arg(&mut self, i: usize, value: usize) -> bool {
        self.0.set_arg(i, value)
    }
    #[inline(always)]
    fn return_value(&self) -> usize {
        self.0.return_value()
    }
    #[inline(always)]
    fn set_return_value(&mut self, value: usize) {
        self.0.set_return_value(value)
    }
    #[inline(always)]
    fn as_any_mut(&mut self) -> Option<&mut dyn core::any::Any> {
        self.0.as_any_mut()
    }
}

impl<
        A: Arch,
        L: RawMutex + Sync + Send,
        K: KernelServices<A>,
        const PROBES: usize,
        const INSTANCES: usize,
        const CPUS: usize,
        const PAGES: usize,
        const DATA: usize,
    > OptHook for Engine<A, L, K, PROBES, INSTANCES, CPUS, PAGES, DATA>
{
    /// `cookie` is the point's index, trusted: the engine built the detour
    /// with it, and a detour runs only while its point is optimised or
    /// within the grace period after (the point and its handlers are alive
    /// until then), so it names a used kernel point at this pc (checked in
    /// debug builds). Only an index out of the table is refused.
    ///
    /// The common case, one enabled kprobe with a pre-handler and nothing
    /// attached at the point, calls the pre-handler with the detour's own
    /// frame; anything else takes the breakpoint path's handler chain.
    #[link_section = "probe_trap_text"]
    unsafe fn on_optimized_hit(&self, cookie: usize, regs: &mut dyn Registers) -> bool {
        let Some(pt) = self.points.get(cookie) else {
            return false;
        };
        debug_assert!(pt.used.load(Ordering::Acquire));
        debug_assert!(pt.info().space == Space::Kernel && pt.info().addr == regs.pc());
        let cpu = self.cpu_index();
        let state = &self.cpus[cpu];
        if !state.enter_idle() {
            return self.optimized_hit_busy(regs, cookie as u32, cpu);
        }
        let moved = 'hit: {
            let head = pt.head.load(Ordering::Acquire);
            if head != 0 {
                // SAFETY: chain links hold a record index plus one, written
                // only under the registration lock from indices of
                // `self.probes`.
                let rec = unsafe { self.probes.get_unchecked(head as usize - 1) };
                if let Some(pre) = lone_pre_handler(rec) {
                    rec.hits.fetch_add(1, Ordering::Relaxed);
                    // SAFETY: this CPU's handler was entered above and is
                    // left below; the reference does not outlive the call.
                    let ctx = unsafe { state.handler_ctx(&rec.config_unchecked().ctx, cpu) };
                    break 'hit pre(ctx, regs) == PreAction::SkipInstruction;
                }
            }
            self.optimized_chain(regs, cookie as u32, cpu)
        };
        state.leave_handler();
        moved
    }
}

impl<
        A: Arch,
        L: RawMutex + Sync + Send,
        K: KernelServices<A>,
        const PROBES: usize,
        const INSTANCES: usize,
        const CPUS: usize,
        const PAGES: usize,
        const DATA: usize,
    > Engine<A, L, K, PROBES, INSTANCES, CPUS, PAGES, DATA>
{
    /// Every other optimised hit: the whole chain, as the breakpoint path
    /// runs it (kept out of line so the common case stays small).
    #[inline(never)]
    #[link_section = "probe_trap_text"]
    fn optimized_chain(&self, regs: &mut dyn Registers, point: u32, cpu: usize) -> bool {
        self.run_chain(&mut DynFrame(regs), point, cpu)
    }

    /// An optimised hit on a CPU that is inside the probe machinery
    /// already (out of line, as every rare case of the hit): after
    /// `enter_after_unwind`, the whole chain if that entered the handler,
    /// else the hit counts as missed.
    #[cold]
    #[inline(never)]
    #[link_section = "probe_trap_text"]
    fn optimized_hit_busy(&self, regs: &mut dyn Registers, point: u32, cpu: usize) -> bool {
        let regs = &mut DynFrame(regs);
        if !self.enter_after_unwind(regs, point, cpu) {
            return false;
        }
        let moved = self.run_chain(regs, point, cpu);
        self.cpus[cpu].leave_handler();
        moved
    }
}

/// The pre-handler of `rec` when it is the only probe of its point,
/// enabled, a kprobe with a pre-handler and no handler object attached
/// (the common case of an optimised hit).
#[inline(always)]
#[link_section = "probe_trap_text"]
fn lone_pre_handler(rec: &ProbeRecord) -> Option<PreHandler> {
    if rec.next.load(Ordering::Acquire) != 0
        || !rec.enabled.load(Ordering::Acquire)
        || !rec.attached.load(Ordering::Acquire).is_null()
    {
        return None;
    }
    match rec.config_unchecked().handlers {
        Handlers::Kprobe { pre, .. } => pre,
        Handlers::Kretprobe { .. } => None,
    }
}
