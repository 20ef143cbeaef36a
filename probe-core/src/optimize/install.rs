//! Deciding, installing and removing a point's jump, with the registration
//! lock held.
//!
//! **Install** (Linux: `optimize_kprobe` → `arch_optimize_kprobes`, and
//! `text_poke_bp`'s order on x86): with the breakpoint armed, (1) write the
//! detour; (2) *stage*: from now on the breakpoint path resumes in the
//! detour's copy of the whole displaced region, never inside the region;
//! (3) wait for a grace period, after which no CPU or preempted task is
//! inside the region (a step of its first instruction resumed there, or a
//! task was preempted there); (4) write the jump's bytes after the
//! breakpoint, each write synchronised on every CPU by the services (a CPU
//! reaching the address still traps on the breakpoint); (5) write the
//! jump's first bytes over the breakpoint.
//!
//! **Remove**, in reverse: stage, write the breakpoint over the jump's first
//! bytes, restore the rest of the region, back to a breakpoint probe, and
//! free the detour only after a grace period (a CPU may still run it).

use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::{Arch, DataAccess, ExecMode, MemoryFault, ProbeError, SiteRule, MAX_OPT_REGION};

use super::{NotOptimized, OptData, Optimization, ACTIVE, NONE, STAGED};
use crate::engine::{Engine, Registry};
use crate::point::PointKind;
use crate::probe::Handlers;
use crate::services::{KernelServices, Space};

/// Largest detour the engine builds (its stack buffer).
pub(crate) const MAX_DETOUR: usize = 512;

/// Kernel text as it is without our breakpoints and jumps.
struct OriginalText<'e, E>(&'e E);

impl<
        A: Arch,
        L: RawMutex,
        K: KernelServices<A>,
        const PROBES: usize,
        const INSTANCES: usize,
        const CPUS: usize,
        const PAGES: usize,
        const DATA: usize,
    > DataAccess for OriginalText<'_, Engine<A, L, K, PROBES, INSTANCES, CPUS, PAGES, DATA>>
{
    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        self.0.read_original(Space::Kernel, addr, buf)
    }
    fn write(&self, addr: usize, _: &[u8]) -> Result<(), MemoryFault> {
        Err(MemoryFault { addr })
    }
}

impl<
        A: Arch,
        L: RawMutex,
        K: KernelServices<A>,
        const PROBES: usize,
        const INSTANCES: usize,
        const CPUS: usize,
        const PAGES: usize,
        const DATA: usize,
    > Engine<A, L, K, PROBES, INSTANCES, CPUS, PAGES, DATA>
{
    /// Switch jump optimisation on or off for the whole engine (Linux's
    /// `debug.kprobes-optimization`; on by default). Off un-optimises every
    /// optimised probe; on optimises every eligible one. May block (grace
    /// periods); not from a handler.
    pub fn set_optimization(&self, on: bool) -> Result<(), ProbeError> {
        let mut reg = self.lock_registry()?;
        self.optimize_on.store(on, Ordering::Relaxed);
        for p in 0..PROBES as u32 {
            let pt = &self.points[p as usize];
            if pt.used.load(Ordering::Relaxed)
                && !pt.zombie.load(Ordering::Relaxed)
                && pt.info().kind == PointKind::Probe
            {
                self.refresh_optimization(&mut reg, p)?;
            }
        }
        Ok(())
    }

    /// Detours in use (one per optimised probe address, and one per
    /// address whose jump is being removed).
    pub fn detours_in_use(&self) -> usize {
        self.lock_for_query().map_or(0, |reg| reg.detours.in_use())
    }

    /// Whether `pc` lies in a displaced region of a probe whose jump is
    /// being installed, is in place, or is being removed, or in its
    /// detour. Lock-free, for a kernel's grace period
    /// ([`KernelServices::synchronize`]): a CPU or task stopped at such a
    /// pc has not passed a quiescent point (resuming there after the jump
    /// changed would run half an instruction; a detour is freed after the
    /// grace period). A kernel whose grace period waits only for voluntary
    /// context switches (Linux's RCU-tasks) never stops a task there and
    /// need not ask. As [`Engine::in_slot`] for out-of-line slots.
    #[link_section = "probe_trap_text"]
    pub fn in_optimized_code(&self, pc: usize) -> bool {
        self.points.iter().any(|pt| {
            let o = &pt.opt;
            if o.state.load(Ordering::Acquire) == NONE && o.region_end.load(Ordering::Acquire) == 0
            {
                return false;
            }
            let (start, end) = (
                o.region_start.load(Ordering::Relaxed),
                o.region_end.load(Ordering::Relaxed),
            );
            let detour = o.detour.load(Ordering::Relaxed);
            (start..end).contains(&pc)
                || (detour != 0 && (detour..detour + A::DETOUR_LEN).contains(&pc))
        })
    }

    /// Whether jump optimisation is switched on.
    pub fn optimization_enabled(&self) -> bool {
        self.optimize_on.load(Ordering::Relaxed)
    }

    /// The point's optimisation as the listing shows it (lock held).
    pub(crate) fn optimization_of(&self, point: u32) -> Optimization {
        let pt = &self.points[point as usize];
        if pt.opt.state.load(Ordering::Relaxed) == ACTIVE {
            return Optimization::Optimized;
        }
        // SAFETY: callers hold the registration lock.
        let reason = unsafe { pt.opt.data() }.reason;
        Optimization::NotOptimized(reason.unwrap_or(NotOptimized::Disabled))
    }

    /// Bring `point`'s optimisation in line with the policy: optimise it
    /// when eligible, un-optimise it when not. A site that cannot be
    /// optimised is not an error (the reason is recorded); an error is a
    /// failed text write while un-optimising.
    pub(crate) fn refresh_optimization(
        &self,
        reg: &mut Registry<PAGES>,
        point: u32,
    ) -> Result<(), ProbeError> {
        let pt = &self.points[point as usize];
        match self.policy(point) {
            Some(reason) => self.unoptimize(reg, point, reason),
            None if pt.opt.state.load(Ordering::Relaxed) != NONE => Ok(()),
            None => {
                if let Err(reason) = self.optimize(reg, point) {
                    self.set_reason(point, reason);
                }
                Ok(())
            }
        }
    }

    fn set_reason(&self, point: u32, reason: NotOptimized) {
        let opt = &self.points[point as usize].opt;
        // SAFETY: the registration lock is held by every caller.
        unsafe {
            let mut d = opt.data();
            d.reason = Some(reason);
            opt.set_data(d);
        }
    }

    /// Why the engine's policy keeps `point` a breakpoint probe (`None`:
    /// try to optimise it).
    fn policy(&self, point: u32) -> Option<NotOptimized> {
        let pt = &self.points[point as usize];
        let info = pt.info();
        if info.space != Space::Kernel {
            return Some(NotOptimized::UserSpace);
        }
        if A::OPT_JUMP_LEN == 0 {
            return Some(NotOptimized::Site(SiteRule::NotSupported));
        }
        if !self.optimize_on.load(Ordering::Relaxed) {
            return Some(NotOptimized::SwitchedOff);
        }
        if !pt.armed.load(Ordering::Relaxed) {
            return Some(NotOptimized::Disabled);
        }
        for p in self.chain(point) {
            let rec = &self.probes[p as usize];
            let Some(cfg) = rec.config() else { continue };
            if !rec.enabled.load(Ordering::Relaxed) {
                continue;
            }
            if matches!(cfg.handlers, Handlers::Kprobe { post: Some(_), .. }) {
                return Some(NotOptimized::PostHandler);
            }
            if !cfg.optimize {
                return Some(NotOptimized::OptedOut);
            }
        }
        if !self.services.kernel_slots_covered_by_grace_period() {
            return Some(NotOptimized::GracePeriod);
        }
        let me = self as *const Self as *const ();
        if A::DETOUR_USES_OPT_HOOK
            && probe_hal::opthook::installed_opt_hook().map(|h| h.engine()) != Some(me)
        {
            return Some(NotOptimized::HookMissing);
        }
        None
    }

    /// Install the jump at `point` (armed, staged nothing yet).
    fn optimize(&self, reg: &mut Registry<PAGES>, point: u32) -> Result<(), NotOptimized> {
        let pt = &self.points[point as usize];
        let info = *pt.info();
        let addr = info.addr;
        let site = NotOptimized::Site;
        let sym = self
            .services
            .symbol_containing(Space::Kernel, addr)
            .filter(|s| s.size > 0 && s.addr <= addr && addr - s.addr < s.size)
            .ok_or(site(SiteRule::FunctionSizeUnknown))?;
        let region = A::analyze_optimizable(
            addr,
            sym.addr..sym.addr + sym.size,
            &OriginalText(self),
            &|a| self.services.may_fault(a),
            ExecMode::Kernel,
        )
        .map_err(site)?;
        for a in addr + 1..addr + region.len {
            if let Some(q) = self.find_point(Space::Kernel, a) {
                if self.points[q as usize].info().kind == PointKind::Probe {
                    return Err(NotOptimized::ProbeInRegion { addr: a });
                }
            }
        }
        if self.services.text_patch_site_in(addr..addr + region.len) {
            return Err(NotOptimized::TextPatchSite);
        }
        if A::DETOUR_LEN > MAX_DETOUR {
            return Err(site(SiteRule::BufferTooSmall {
                needed: A::DETOUR_LEN,
            }));
        }
        let mut jump = [0u8; MAX_OPT_REGION];
        let page_size = self.services.slot_page_size();
        let detour = reg
            .detours
            .alloc(addr, A::OPT_REACH, A::DETOUR_LEN, page_size, || {
                self.services.alloc_detour_page(addr, A::OPT_REACH)
            });
        while let Some(p) = reg.detours.take_unused() {
            self.services.free_detour_page(p.0);
        }
        let detour = detour.ok_or(NotOptimized::NoDetourMemory)?;
        let built = (|| {
            let mut image = [0u8; MAX_DETOUR];
            let mask = self.services.detours_mask_interrupts();
            let len = A::build_detour(
                &region,
                detour,
                point as usize,
                mask,
                &mut image[..A::DETOUR_LEN],
            )
            .map_err(site)?;
            let off = A::detour_displaced_offset(&region, detour)
                .filter(|&o| o < len)
                .ok_or(site(SiteRule::NotSupported))?;
            let jl = A::optimized_jump(addr, detour, &mut jump).map_err(site)?;
            if jl < info.breakpoint.len || jl > region.len {
                return Err(site(SiteRule::NotSupported));
            }
            self.patch(Space::Kernel, detour, &image[..len])
                .map_err(|_| NotOptimized::PatchFailed)?;
            Ok((off, jl))
        })();
        let (off, jl) = match built {
            Ok(v) => v,
            Err(e) => {
                // Never executed: no grace period needed.
                self.free_detour(reg, detour);
                return Err(e);
            }
        };
        // SAFETY: the registration lock is held.
        unsafe {
            pt.opt.set_data(OptData {
                region: Some(region),
                detour,
                reason: None,
            })
        };
        pt.opt.resume.store(detour + off, Ordering::Relaxed);
        pt.opt.region_start.store(addr, Ordering::Relaxed);
        pt.opt
            .region_end
            .store(addr + region.len, Ordering::Relaxed);
        pt.opt.detour.store(detour, Ordering::Relaxed);
        pt.opt.state.store(STAGED, Ordering::SeqCst);
        self.services.synchronize();
        let bp = info.breakpoint.len;
        if jl > bp && self.patch(Space::Kernel, addr + bp, &jump[bp..jl]).is_err() {
            let _ = self.patch(Space::Kernel, addr + bp, &region.orig[bp..jl]);
            self.unstage(reg, point, NotOptimized::PatchFailed);
            return Err(NotOptimized::PatchFailed);
        }
        if self.patch(Space::Kernel, addr, &jump[..bp]).is_err() {
            if self
                .patch(Space::Kernel, addr + bp, &region.orig[bp..jl])
                .is_err()
            {
                // The jump's tail is still in the text: stay staged (the
                // breakpoint path resumes in the detour, whose copy is
                // whole; un-optimising restores the tail later). Unstaged,
                // the step slot of the first instruction jumped back into
                // the tail's bytes (found by examples/custom-arch's
                // tests/optimized.rs, two failed writes in one install).
                self.set_reason(point, NotOptimized::PatchFailed);
                return Err(NotOptimized::PatchFailed);
            }
            self.unstage(reg, point, NotOptimized::PatchFailed);
            return Err(NotOptimized::PatchFailed);
        }
        pt.opt.state.store(ACTIVE, Ordering::Release);
        Ok(())
    }

    /// Make `point` a breakpoint probe again (no-op when it is one), and
    /// record `reason`. On a failed write the point stays as safe as it
    /// was: still optimised (the breakpoint could not be written), or
    /// staged (a breakpoint whose path resumes in the detour).
    pub(crate) fn unoptimize(
        &self,
        reg: &mut Registry<PAGES>,
        point: u32,
        reason: NotOptimized,
    ) -> Result<(), ProbeError> {
        let pt = &self.points[point as usize];
        let state = pt.opt.state.load(Ordering::Relaxed);
        if state == NONE {
            self.set_reason(point, reason);
            return Ok(());
        }
        let info = *pt.info();
        // SAFETY: the registration lock is held.
        let region = unsafe { pt.opt.data() }
            .region
            .expect("an optimised point has its region");
        let bp = info.breakpoint;
        if state == ACTIVE {
            pt.opt.state.store(STAGED, Ordering::Release);
            if let Err(e) = self.patch(Space::Kernel, info.addr, bp.as_bytes()) {
                pt.opt.state.store(ACTIVE, Ordering::Release);
                return Err(e);
            }
        }
        // Restore the jump's tail on every attempt, also from STAGED: a
        // point left staged because this write failed before still has the
        // tail in the text. (It was restored only coming from ACTIVE, so
        // the retry after a failed tail restore freed the detour and left
        // the jump's tail bytes in the original code for good: found by
        // examples/custom-arch/tests/optimized.rs, failure injection.)
        let jl = A::OPT_JUMP_LEN.min(region.len);
        if jl > bp.len {
            self.patch(Space::Kernel, info.addr + bp.len, &region.orig[bp.len..jl])?;
        }
        self.unstage(reg, point, reason);
        Ok(())
    }

    /// Back to a breakpoint probe from the staged state: wait until no CPU
    /// can be in the detour, then free it.
    fn unstage(&self, reg: &mut Registry<PAGES>, point: u32, reason: NotOptimized) {
        let pt = &self.points[point as usize];
        pt.opt.state.store(NONE, Ordering::Release);
        self.services.synchronize();
        pt.opt.region_end.store(0, Ordering::Relaxed);
        pt.opt.region_start.store(0, Ordering::Relaxed);
        pt.opt.detour.store(0, Ordering::Relaxed);
        // SAFETY: the registration lock is held.
        let d = unsafe { pt.opt.data() };
        if d.detour != 0 {
            self.free_detour(reg, d.detour);
        }
        // SAFETY: the registration lock is held.
        unsafe {
            pt.opt.set_data(OptData {
                region: None,
                detour: 0,
                reason: Some(reason),
            })
        };
    }

    /// Give a detour chunk back (no CPU can run it any more).
    fn free_detour(&self, reg: &mut Registry<PAGES>, detour: usize) {
        let page_size = self.services.slot_page_size();
        if let Some(page) = reg.detours.free(detour, A::DETOUR_LEN, page_size) {
            self.services.free_detour_page(page.0);
        }
    }

    /// Refresh the points kept un-optimised because a probe was inside
    /// their region, around `addr` (that probe is gone, or its
    /// registration failed).
    pub(crate) fn reoptimize_covering(&self, reg: &mut Registry<PAGES>, space: Space, addr: usize) {
        if space != Space::Kernel || A::OPT_JUMP_LEN == 0 {
            return;
        }
        for start in addr.saturating_sub(MAX_OPT_REGION - 1)..addr {
            let Some(q) = self.find_point(space, start) else {
                continue;
            };
            let pt = &self.points[q as usize];
            if pt.info().kind != PointKind::Probe {
                continue;
            }
            // SAFETY: the registration lock is held.
            let reason = unsafe { pt.opt.data() }.reason;
            if matches!(reason, Some(NotOptimized::ProbeInRegion { .. })) {
                let _ = self.refresh_optimization(reg, q);
            }
        }
    }

    /// Un-optimise the optimised point whose displaced region holds `addr`
    /// after its first byte (a probe is about to be registered there).
    pub(crate) fn unoptimize_covering(
        &self,
        reg: &mut Registry<PAGES>,
        space: Space,
        addr: usize,
    ) -> Result<(), ProbeError> {
        if space != Space::Kernel || A::OPT_JUMP_LEN == 0 {
            return Ok(());
        }
        for start in addr.saturating_sub(MAX_OPT_REGION - 1)..addr {
            let Some(q) = self.find_point(space, start) else {
                continue;
            };
            let opt = &self.points[q as usize].opt;
            // SAFETY: the registration lock is held.
            if let Some(r) = unsafe { opt.patched_region() } {
                if addr < r.addr + r.len {
                    self.unoptimize(reg, q, NotOptimized::ProbeInRegion { addr })?;
                }
            }
        }
        Ok(())
    }
}
