//! Building and tearing down probe points: decoding the instruction,
//! writing its out-of-line slots, the return trampolines, and writing or
//! restoring the breakpoint. Called with the registration lock held.

use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::{Arch, Capacity, Handling, ProbeError, ProbeErrorKind};

use crate::engine::{Engine, Registry};
use crate::point::{PointInfo, PointKind, MAX_ORIG};
use crate::services::{KernelServices, Space};

/// Largest look-back window a backend may ask for.
const MAX_LOOK_BACK: usize = 128;

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
    /// Decode the instruction at `addr`, build its slots and publish a new
    /// (unarmed) point. On failure nothing stays allocated.
    pub(crate) fn create_point(
        &self,
        reg: &mut Registry<PAGES>,
        space: Space,
        addr: usize,
    ) -> Result<u32, ProbeError> {
        let Some(index) = self.free_point(reg) else {
            return Err(ProbeError::new(
                ProbeErrorKind::CapacityFull(Capacity::ProbePoints),
                addr,
            ));
        };
        let mode = space.mode();
        let mut orig = [0u8; MAX_ORIG];
        let n = self.read_insn_bytes(space, addr, &mut orig)?;
        let decoded = A::decode(addr, &orig[..n], mode).map_err(|e| e.at(addr))?;
        self.check_overlap(space, addr, decoded.len)?;
        if A::LOOK_BACK > 0 {
            let look = A::LOOK_BACK.min(MAX_LOOK_BACK);
            let start = match self.services.symbol_containing(space, addr) {
                Some(s) if s.addr <= addr => addr - (addr - s.addr).min(look),
                _ => addr.saturating_sub(look),
            };
            let mut before = [0u8; MAX_LOOK_BACK];
            let len = addr - start;
            // Unreadable look-back (start of a mapping) is checked as empty.
            let window = if self.read_original(space, start, &mut before[..len]).is_ok() {
                &before[..len]
            } else {
                &before[..0]
            };
            A::check_sequence(addr, window, mode).map_err(|e| e.at(addr))?;
        }
        let breakpoint = A::breakpoint(decoded.len, mode);

        let mut info = PointInfo {
            kind: PointKind::Probe,
            space,
            addr,
            decoded: Some(decoded),
            orig,
            breakpoint,
            step_slot: 0,
            step_end: 0,
            boost_slot: 0,
        };
        if let Handling::StepOutOfLine { boostable } = decoded.handling {
            let (slot, image) = self.install_slot(reg, space, addr, |slot| {
                A::build_slot(&decoded, &orig[..decoded.len], addr, slot, mode, false)
            })?;
            info.step_slot = slot;
            info.step_end = match image.step_end {
                Some(offset) => slot + offset,
                None => {
                    self.release_slot(reg, space, slot);
                    return Err(ProbeError::new(
                        ProbeErrorKind::InvalidRequest(
                            "backend built a step slot without a step-end marker",
                        ),
                        addr,
                    ));
                }
            };
            // Boost only kernel probes the kernel does not expect to fault
            // (a fault in a boosted slot has no step in flight to map it
            // back to the probe address), and only where the grace period
            // covers tasks preempted in a slot (a boosted slot runs with
            // interrupts on). User tasks take their faults as signals with
            // the pc they see, so they are never boosted either.
            if boostable
                && space == Space::Kernel
                && self.services.kernel_slots_covered_by_grace_period()
                && !self.services.may_fault(addr)
            {
                let boost = self.install_slot(reg, space, addr, |slot| {
                    A::build_slot(&decoded, &orig[..decoded.len], addr, slot, mode, true)
                });
                match boost {
                    Ok((b, image)) if image.step_end.is_none() => info.boost_slot = b,
                    Ok((b, _)) => self.release_slot(reg, space, b),
                    // A boost slot is an optimisation: without one, the point
                    // still works through the step slot.
                    Err(_) => {}
                }
            }
        }
        let pt = &self.points[index];
        pt.used.store(true, Ordering::Relaxed);
        // SAFETY: lock held; the point is free and not in the table.
        unsafe { pt.set_info(Some(info)) };
        self.table.insert(pt.key(), index as u32);
        Ok(index as u32)
    }

    /// Refuse a point whose instruction `[addr, addr + len)` intersects the
    /// instruction of another live point in `space` (disarming either would
    /// otherwise leave the other's breakpoint bytes inside it).
    ///
    /// Looks up every address where an instruction covering the range
    /// could start (O(1) each): no scan of the point table.
    fn check_overlap(&self, space: Space, addr: usize, len: usize) -> Result<(), ProbeError> {
        let first = addr.saturating_sub(A::MAX_INSN_LEN - 1);
        let mut a = first - first % A::INSN_ALIGN;
        while a < addr + len {
            if let Some(p) = self.find_point(space, a) {
                let info = self.points[p as usize].info();
                let other_len = info.decoded.map_or(info.breakpoint.len, |d| d.len);
                if info.kind == PointKind::Probe
                    && info.addr < addr + len
                    && addr < info.addr + other_len
                {
                    return Err(ProbeError::new(
                        ProbeErrorKind::Overlaps { other: info.addr },
                        addr,
                    ));
                }
            }
            a += A::INSN_ALIGN;
        }
        Ok(())
    }

    /// Allocate a slot near `addr`, build it with `build` and write it.
    pub(crate) fn install_slot(
        &self,
        reg: &mut Registry<PAGES>,
        space: Space,
        addr: usize,
        build: impl FnOnce(usize) -> Result<probe_hal::SlotImage, ProbeError>,
    ) -> Result<(usize, probe_hal::SlotImage), ProbeError> {
        let page_size = self.services.slot_page_size();
        let slot = reg
            .xol
            .alloc(space, A::SLOT_LEN, page_size, || {
                self.services.alloc_slot_page(space, addr)
            })
            .map_err(|e| e.at(addr))?;
        self.mirror_slot_pages(reg);
        let image = match build(slot) {
            Ok(i) => i,
            Err(e) => {
                self.release_slot(reg, space, slot);
                return Err(e.at(addr));
            }
        };
        if let Err(e) = self.patch(space, slot, image.as_bytes()) {
            self.release_slot(reg, space, slot);
            return Err(e.at(addr));
        }
        Ok((slot, image))
    }

    /// Free a slot no CPU can have executed (never published).
    ///
    /// A page that empties goes back only after a grace period: other slots
    /// of it may have been executed until recently.
    pub(crate) fn release_slot(&self, reg: &mut Registry<PAGES>, space: Space, slot: usize) {
        if let Some(page) = reg
            .xol
            .free(space, slot, A::SLOT_LEN, self.services.slot_page_size())
        {
            self.mirror_slot_pages(reg);
            self.services.synchronize();
            self.services.free_slot_page(page.space, page.base);
        }
    }

    /// The return trampoline of `space`, creating its breakpoint point when
    /// the space has none yet (returned as the second value, for rollback).
    pub(crate) fn trampoline_for(
        &self,
        reg: &mut Registry<PAGES>,
        space: Space,
    ) -> Result<(usize, Option<u32>), ProbeError> {
        if space == Space::Kernel {
            if let Some(t) = A::kernel_trampoline() {
                if A::TRAMPOLINE_USES_RETURN_HOOK {
                    self.check_return_hook()?;
                }
                return Ok((t, None));
            }
        }
        if let Some(p) = self.trampoline_point(space) {
            return Ok((self.points[p as usize].info().addr, None));
        }
        let Some(index) = self.free_point(reg) else {
            return Err(ProbeError::new(
                ProbeErrorKind::CapacityFull(Capacity::ProbePoints),
                0,
            ));
        };
        let mode = space.mode();
        let bp = A::return_breakpoint(mode);
        let (slot, _) = self.install_slot(reg, space, 0, |_| {
            let mut image = probe_hal::SlotImage::new();
            image.push(bp.as_bytes());
            Ok(image)
        })?;
        let mut orig = [0u8; MAX_ORIG];
        orig[..bp.len].copy_from_slice(bp.as_bytes());
        let info = PointInfo {
            kind: PointKind::ReturnTrampoline,
            space,
            addr: slot,
            decoded: None,
            orig,
            breakpoint: bp,
            // The trampoline owns its slot: freeing the point frees it.
            step_slot: slot,
            step_end: 0,
            boost_slot: 0,
        };
        let pt = &self.points[index];
        pt.used.store(true, Ordering::Relaxed);
        // SAFETY: lock held; the point is free and unpublished.
        unsafe { pt.set_info(Some(info)) };
        // The breakpoint is the slot's whole content, so `armed` stays false:
        // nothing ever writes "original bytes" over it.
        self.table.insert(pt.key(), index as u32);
        Ok((slot, Some(index as u32)))
    }

    /// The kernel trampoline calls back through the return hook: it must
    /// be installed, for this engine (else the first return would find no
    /// engine, or another one).
    fn check_return_hook(&self) -> Result<(), ProbeError> {
        let me = self as *const Self as *const ();
        match probe_hal::rethook::return_hook() {
            Some(h) if h.engine() == me => Ok(()),
            Some(_) => Err(ProbeError::new(
                ProbeErrorKind::ReturnHookMissing { other_engine: true },
                0,
            )),
            None => Err(ProbeError::new(
                ProbeErrorKind::ReturnHookMissing {
                    other_engine: false,
                },
                0,
            )),
        }
    }

    pub(crate) fn trampoline_point(&self, space: Space) -> Option<u32> {
        (0..PROBES as u32).find(|&i| {
            let p = &self.points[i as usize];
            p.live_in(space) && p.info().kind == PointKind::ReturnTrampoline
        })
    }

    pub(crate) fn undo_trampoline(&self, reg: &mut Registry<PAGES>, created: Option<u32>) {
        if let Some(p) = created {
            self.destroy_points(reg, &[p]);
        }
    }

    /// Remove points that were published but never armed (or already
    /// disarmed): unpublish, wait a grace period, free.
    pub(crate) fn destroy_points(&self, reg: &mut Registry<PAGES>, points: &[u32]) {
        for &p in points {
            let info = self.points[p as usize].info();
            self.table.remove(
                crate::table::Key {
                    space: info.space,
                    addr: info.addr,
                },
                p,
            );
        }
        self.services.synchronize();
        self.free_points(reg, points);
    }

    /// Free unpublished points and their slots (grace period passed). A
    /// point some task still has a user step of parked (it may come back
    /// to the slot after a signal handler) becomes a zombie instead: it
    /// keeps its slot and is freed by [`Self::reap_zombies`] once the last
    /// such step ended.
    pub(crate) fn free_points(&self, reg: &mut Registry<PAGES>, points: &[u32]) {
        let page_size = self.services.slot_page_size();
        for &p in points {
            let pt = &self.points[p as usize];
            pt.head.store(0, Ordering::Release);
            pt.armed.store(false, Ordering::Relaxed);
            pt.post_handlers.store(0, Ordering::Relaxed);
            if pt.parked.load(Ordering::Acquire) > 0 {
                pt.zombie.store(true, Ordering::Relaxed);
                continue;
            }
            let info = pt.info();
            let space = info.space;
            for slot in [info.step_slot, info.boost_slot] {
                if slot != 0 {
                    if let Some(page) = reg.xol.free(space, slot, A::SLOT_LEN, page_size) {
                        self.services.free_slot_page(page.space, page.base);
                    }
                }
            }
            pt.zombie.store(false, Ordering::Relaxed);
            // SAFETY: lock held; a disarmed point has no jump (`disarm`
            // removed it), so only its recorded reason is reset.
            unsafe { pt.opt.set_data(crate::optimize::OptData::unused()) };
            // SAFETY: lock held, point unpublished and a grace period passed.
            unsafe { pt.set_info(None) };
            pt.used.store(false, Ordering::Release);
        }
        self.mirror_slot_pages(reg);
    }

    /// Free zombie points whose last parked user step has ended (after a
    /// grace period: the trap path that ended it may still read the point).
    pub(crate) fn reap_zombies(&self, reg: &mut Registry<PAGES>) {
        let mut done = heapless::Vec::<u32, PROBES>::new();
        for (i, pt) in self.points.iter().enumerate() {
            if pt.used.load(Ordering::Relaxed)
                && pt.zombie.load(Ordering::Relaxed)
                && pt.parked.load(Ordering::Acquire) == 0
            {
                let _ = done.push(i as u32);
            }
        }
        if done.is_empty() {
            return;
        }
        self.services.synchronize();
        self.free_points(reg, &done);
    }

    /// Write the breakpoint at `point` (no-op when armed).
    pub(crate) fn arm(&self, point: u32) -> Result<(), ProbeError> {
        let pt = &self.points[point as usize];
        if pt.armed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let info = pt.info();
        self.patch(info.space, info.addr, info.breakpoint.as_bytes())?;
        pt.armed.store(true, Ordering::Release);
        Ok(())
    }

    /// Write the original bytes back at `point` (no-op when disarmed),
    /// removing its jump first if it is optimised.
    pub(crate) fn disarm(&self, reg: &mut Registry<PAGES>, point: u32) -> Result<(), ProbeError> {
        let pt = &self.points[point as usize];
        if !pt.armed.load(Ordering::Relaxed) {
            return Ok(());
        }
        if pt.opt.state.load(Ordering::Relaxed) != crate::optimize::NONE {
            self.unoptimize(reg, point, crate::optimize::NotOptimized::Disabled)?;
        }
        let info = pt.info();
        self.patch(info.space, info.addr, &info.orig[..info.breakpoint.len])?;
        pt.armed.store(false, Ordering::Release);
        Ok(())
    }

    /// Write text and make it visible to instruction fetch.
    pub(crate) fn patch(&self, space: Space, addr: usize, bytes: &[u8]) -> Result<(), ProbeError> {
        self.services
            .write_text(space, addr, bytes)
            .map_err(|_| ProbeError::new(ProbeErrorKind::TextPatchFailed, addr))?;
        self.services.sync_icache(space, addr, bytes.len());
        Ok(())
    }
}
