//! Registration, enabling, disabling and unregistration.
//!
//! Order of installation (a probe is never reachable half-built):
//! 1. every check that can fail without side effects (address, symbol,
//!    alignment, blacklist, instruction boundary, decoding, capacity);
//! 2. out-of-line slots are written and made visible to instruction fetch;
//! 3. the point is published in the [`crate::table`] and the probe linked
//!    into its chain: from here the trap path recognises the address;
//! 4. only then is the breakpoint written.
//!
//! Any failure undoes what was done, in reverse, so memory, counters and
//! slots are exactly as before.
//!
//! Removal protocol: disarm (original bytes back, icache synced), unlink
//! the probe and unpublish an emptied point, wait for a grace period
//! ([`crate::KernelServices::synchronize`]): after it no CPU or task can be
//! in the probe's handlers or its slot, so the record, the point and the
//! slots are freed and may be reused.

use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::{Arch, Capacity, Handling, ProbeError, ProbeErrorKind};

use crate::engine::{Engine, Registry};
use crate::point::{PointInfo, PointKind, MAX_ORIG};
use crate::probe::{Handlers, ProbeConfig};
use crate::services::{KernelServices, Space, Symbol};
use crate::spec::{Kprobe, Kretprobe, ProbeId, ProbeSpec, Target, UserData};

/// Largest look-back window a backend may ask for.
const MAX_LOOK_BACK: usize = 128;

/// A batch registration failed at entry `index`; nothing of the batch stays
/// registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchError {
    /// Which entry failed.
    pub index: usize,
    /// Why.
    pub error: ProbeError,
}

impl core::fmt::Display for BatchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "batch entry {}: {}", self.index, self.error)
    }
}

struct Request<'a> {
    target: Target<'a>,
    space: Space,
    enabled: bool,
    handlers: Handlers,
    data: UserData,
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
    /// Register a kprobe (or uprobe).
    pub fn register_kprobe(&self, p: &Kprobe<'_>) -> Result<ProbeId, ProbeError> {
        let mut reg = self.registry.lock();
        self.register_locked(&mut reg, &ProbeSpec::Kprobe(*p))
    }

    /// Register a kretprobe (or uretprobe) on a function entry.
    pub fn register_kretprobe(&self, p: &Kretprobe<'_>) -> Result<ProbeId, ProbeError> {
        let mut reg = self.registry.lock();
        self.register_locked(&mut reg, &ProbeSpec::Kretprobe(*p))
    }

    /// Register every probe of `specs`, writing their ids to `ids` (at least
    /// as long as `specs`). All or nothing: on failure the ones already
    /// registered are unregistered again.
    pub fn register_batch(
        &self,
        specs: &[ProbeSpec<'_>],
        ids: &mut [ProbeId],
    ) -> Result<(), BatchError> {
        if ids.len() < specs.len() {
            return Err(BatchError {
                index: ids.len(),
                error: ProbeError::new(ProbeErrorKind::CapacityFull(Capacity::Batch), 0),
            });
        }
        let mut reg = self.registry.lock();
        for (i, spec) in specs.iter().enumerate() {
            match self.register_locked(&mut reg, spec) {
                Ok(id) => ids[i] = id,
                Err(error) => {
                    self.unregister_locked(&mut reg, &ids[..i])
                        .expect("rolling back probes registered by this batch");
                    return Err(BatchError { index: i, error });
                }
            }
        }
        Ok(())
    }

    /// Unregister probe `id`. When it returns, no CPU or task runs the
    /// probe's handlers or its slot, and the original bytes are back if no
    /// other enabled probe shares the address.
    pub fn unregister(&self, id: ProbeId) -> Result<(), ProbeError> {
        let mut reg = self.registry.lock();
        self.unregister_locked(&mut reg, &[id])
    }

    /// Unregister several probes with a single grace period. Checks every
    /// id first: on an unknown id nothing is unregistered.
    pub fn unregister_batch(&self, ids: &[ProbeId]) -> Result<(), ProbeError> {
        let mut reg = self.registry.lock();
        self.unregister_locked(&mut reg, ids)
    }

    /// Let probe `id` fire again (writes the breakpoint if it was the only
    /// disabled one at its address).
    pub fn enable(&self, id: ProbeId) -> Result<(), ProbeError> {
        let _reg = self.registry.lock();
        let rec = self.record(id)?;
        if rec.enabled.load(Ordering::Relaxed) {
            return Ok(());
        }
        let cfg = *rec.config().expect("live record has a config");
        rec.enabled.store(true, Ordering::Release);
        if let Err(e) = self.arm(cfg.point) {
            rec.enabled.store(false, Ordering::Release);
            return Err(e);
        }
        if has_post(&cfg.handlers) {
            self.points[cfg.point as usize]
                .post_handlers
                .fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Stop probe `id` from firing; when no enabled probe is left at its
    /// address, the original bytes are written back.
    pub fn disable(&self, id: ProbeId) -> Result<(), ProbeError> {
        let _reg = self.registry.lock();
        let rec = self.record(id)?;
        if !rec.enabled.load(Ordering::Relaxed) {
            return Ok(());
        }
        let cfg = *rec.config().expect("live record has a config");
        if self.enabled_probes(cfg.point) == 1 {
            self.disarm(cfg.point)?;
        }
        rec.enabled.store(false, Ordering::Release);
        if has_post(&cfg.handlers) {
            self.points[cfg.point as usize]
                .post_handlers
                .fetch_sub(1, Ordering::AcqRel);
        }
        Ok(())
    }

    fn register_locked(
        &self,
        reg: &mut Registry<PAGES>,
        spec: &ProbeSpec<'_>,
    ) -> Result<ProbeId, ProbeError> {
        self.pool.init();
        let mut req = match spec {
            ProbeSpec::Kprobe(p) => Request {
                target: p.target,
                space: p.space,
                enabled: p.enabled,
                handlers: Handlers::Kprobe {
                    pre: p.pre,
                    post: p.post,
                },
                data: p.data,
            },
            ProbeSpec::Kretprobe(p) => {
                if p.data_size > DATA {
                    return Err(ProbeError::new(
                        ProbeErrorKind::InvalidRequest(
                            "per-instance data larger than the engine's DATA",
                        ),
                        0,
                    ));
                }
                let maxactive = if p.maxactive == 0 {
                    (2 * CPUS).max(10)
                } else {
                    p.maxactive
                };
                Request {
                    target: p.target,
                    space: p.space,
                    enabled: p.enabled,
                    handlers: Handlers::Kretprobe {
                        entry: p.entry,
                        ret: p.ret,
                        maxactive: maxactive.min(u32::MAX as usize) as u32,
                        data_size: p.data_size,
                        trampoline: 0,
                    },
                    data: p.data,
                }
            }
        };
        let is_return = matches!(req.handlers, Handlers::Kretprobe { .. });
        let addr = self.resolve(req.target, req.space, is_return)?;
        self.check_address(reg, req.space, addr)?;

        let existing = self.find_point(req.space, addr);
        if let Some(p) = existing {
            if self.points[p as usize].info().kind != PointKind::Probe {
                return Err(ProbeError::new(ProbeErrorKind::Blacklisted, addr));
            }
            if self.chain(p).any(|i| {
                let c = self.probes[i as usize]
                    .config()
                    .expect("chained record is live");
                same_probe(c, &req.handlers, req.data)
            }) {
                return Err(ProbeError::new(ProbeErrorKind::AlreadyRegistered, addr));
            }
        }
        let Some(index) = (0..PROBES).find(|&i| self.probes[i].config().is_none()) else {
            return Err(ProbeError::new(
                ProbeErrorKind::CapacityFull(Capacity::Probes),
                addr,
            ));
        };

        // Return probes need a trampoline in their space.
        let new_trampoline = match &mut req.handlers {
            Handlers::Kretprobe { trampoline, .. } => {
                let (t, created) = self.trampoline_for(reg, req.space)?;
                *trampoline = t;
                created
            }
            Handlers::Kprobe { .. } => None,
        };
        let (point, new_point) = match existing {
            Some(p) => (p, false),
            None => match self.create_point(reg, req.space, addr) {
                Ok(p) => (p, true),
                Err(e) => {
                    self.undo_trampoline(reg, new_trampoline);
                    return Err(e);
                }
            },
        };

        let rec = &self.probes[index];
        let cfg = ProbeConfig {
            point,
            handlers: req.handlers,
            data: req.data,
        };
        // SAFETY: the registration lock is held and the record is free
        // (no config), so nothing on the trap path can reach it.
        unsafe { rec.set_config(Some(cfg)) };
        rec.enabled.store(req.enabled, Ordering::Relaxed);
        let pt = &self.points[point as usize];
        if req.enabled && has_post(&req.handlers) {
            pt.post_handlers.fetch_add(1, Ordering::AcqRel);
        }
        // Publish: link at the head of the point's chain.
        rec.next
            .store(pt.head.load(Ordering::Relaxed), Ordering::Relaxed);
        pt.head.store(index as u32 + 1, Ordering::Release);

        if req.enabled {
            if let Err(e) = self.arm(point) {
                pt.head
                    .store(rec.next.load(Ordering::Relaxed), Ordering::Release);
                if has_post(&req.handlers) {
                    pt.post_handlers.fetch_sub(1, Ordering::AcqRel);
                }
                rec.enabled.store(false, Ordering::Relaxed);
                if new_point {
                    self.destroy_points(reg, &[point]);
                }
                // SAFETY: lock held; the record was never reachable through
                // an armed breakpoint and is unlinked again.
                unsafe { rec.set_config(None) };
                self.undo_trampoline(reg, new_trampoline);
                return Err(e.at(addr));
            }
        }
        Ok(ProbeId {
            index: index as u32,
            generation: rec.generation.load(Ordering::Relaxed),
        })
    }

    fn unregister_locked(
        &self,
        reg: &mut Registry<PAGES>,
        ids: &[ProbeId],
    ) -> Result<(), ProbeError> {
        for (i, id) in ids.iter().enumerate() {
            self.record(*id)?;
            if ids[..i].contains(id) {
                return Err(ProbeError::new(
                    ProbeErrorKind::InvalidRequest("the same probe twice in one unregister batch"),
                    0,
                ));
            }
        }
        // 1. Disarm every point left with no enabled probe. A failure here
        //    leaves the probes registered (the bytes are not ours to free).
        for id in ids {
            let cfg = *self.probes[id.index as usize]
                .config()
                .expect("checked above");
            let enabled_left = self
                .chain(cfg.point)
                .filter(|&p| {
                    self.probes[p as usize].enabled.load(Ordering::Relaxed)
                        && !contains_index(ids, p)
                })
                .count();
            if enabled_left == 0 {
                self.disarm(cfg.point)?;
            }
        }
        // 2. Unlink the probes and unpublish emptied points.
        let mut emptied = heapless::Vec::<u32, PROBES>::new();
        for id in ids {
            let rec = &self.probes[id.index as usize];
            let cfg = *rec.config().expect("checked above");
            if rec.enabled.swap(false, Ordering::AcqRel) && has_post(&cfg.handlers) {
                self.points[cfg.point as usize]
                    .post_handlers
                    .fetch_sub(1, Ordering::AcqRel);
            }
            self.unlink(cfg.point, id.index);
            let pt = &self.points[cfg.point as usize];
            if pt.head.load(Ordering::Relaxed) == 0 && !emptied.contains(&cfg.point) {
                let info = pt.info();
                self.table.remove(
                    crate::table::Key {
                        space: crate::point::space_key(info.space),
                        addr: info.addr,
                    },
                    cfg.point,
                );
                let _ = emptied.push(cfg.point);
            }
        }
        // 3. Grace period: nobody is in these handlers or slots any more.
        self.services.synchronize();
        // 4. Free.
        for id in ids {
            let rec = &self.probes[id.index as usize];
            rec.generation.fetch_add(1, Ordering::AcqRel);
            // SAFETY: lock held; unlinked and a grace period has passed.
            unsafe { rec.set_config(None) };
        }
        self.free_points(reg, &emptied);
        Ok(())
    }

    /// Remove points that were published but never armed (or already
    /// disarmed): unpublish, wait a grace period, free.
    pub(crate) fn destroy_points(&self, reg: &mut Registry<PAGES>, points: &[u32]) {
        for &p in points {
            let info = self.points[p as usize].info();
            self.table.remove(
                crate::table::Key {
                    space: crate::point::space_key(info.space),
                    addr: info.addr,
                },
                p,
            );
        }
        self.services.synchronize();
        self.free_points(reg, points);
    }

    /// Free unpublished points and their slots (grace period passed).
    pub(crate) fn free_points(&self, reg: &mut Registry<PAGES>, points: &[u32]) {
        let page_size = self.services.slot_page_size();
        for &p in points {
            let pt = &self.points[p as usize];
            let info = pt.info();
            let space = info.space;
            for slot in [info.step_slot, info.boost_slot] {
                if slot != 0 {
                    if let Some(page) = reg.xol.free(space, slot, A::SLOT_LEN, page_size) {
                        self.services.free_slot_page(page.space, page.base);
                    }
                }
            }
            pt.armed.store(false, Ordering::Relaxed);
            pt.post_handlers.store(0, Ordering::Relaxed);
            // SAFETY: lock held, point unpublished and a grace period passed.
            unsafe { pt.set_info(None) };
            pt.used.store(false, Ordering::Release);
        }
    }

    /// Iterate the probe indices chained on `point`.
    pub(crate) fn chain(&self, point: u32) -> impl Iterator<Item = u32> + '_ {
        let mut cur = self.points[point as usize].head.load(Ordering::Acquire);
        core::iter::from_fn(move || {
            if cur == 0 {
                return None;
            }
            let i = cur - 1;
            cur = self.probes[i as usize].next.load(Ordering::Acquire);
            Some(i)
        })
    }

    fn enabled_probes(&self, point: u32) -> usize {
        self.chain(point)
            .filter(|&p| self.probes[p as usize].enabled.load(Ordering::Relaxed))
            .count()
    }

    /// Remove probe `index` from `point`'s chain. A reader standing on it
    /// still follows its `next`, which stays intact until the record is freed
    /// after a grace period.
    fn unlink(&self, point: u32, index: u32) {
        let pt = &self.points[point as usize];
        let next = self.probes[index as usize].next.load(Ordering::Relaxed);
        if pt.head.load(Ordering::Relaxed) == index + 1 {
            pt.head.store(next, Ordering::Release);
            return;
        }
        let mut cur = pt.head.load(Ordering::Relaxed);
        while cur != 0 {
            let rec = &self.probes[cur as usize - 1];
            if rec.next.load(Ordering::Relaxed) == index + 1 {
                rec.next.store(next, Ordering::Release);
                return;
            }
            cur = rec.next.load(Ordering::Relaxed);
        }
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

    /// Write the original bytes back at `point` (no-op when disarmed).
    pub(crate) fn disarm(&self, point: u32) -> Result<(), ProbeError> {
        let pt = &self.points[point as usize];
        if !pt.armed.load(Ordering::Relaxed) {
            return Ok(());
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

    /// Find where a target points, with the checks that depend on its symbol.
    fn resolve(
        &self,
        target: Target<'_>,
        space: Space,
        is_return: bool,
    ) -> Result<usize, ProbeError> {
        let (addr, sym) = match target {
            Target::Symbol { name, offset } => {
                if space != Space::Kernel {
                    return Err(ProbeError::new(
                        ProbeErrorKind::InvalidRequest(
                            "symbols name kernel functions; give a user address",
                        ),
                        0,
                    ));
                }
                let sym = self
                    .services
                    .lookup_symbol(name)
                    .ok_or(ProbeError::new(ProbeErrorKind::UnknownSymbol, 0))?;
                if offset >= sym.size.max(1) {
                    return Err(ProbeError::new(
                        ProbeErrorKind::OffsetOutsideSymbol { size: sym.size },
                        sym.addr.wrapping_add(offset),
                    ));
                }
                (sym.addr + offset, Some(sym))
            }
            Target::Addr(a) => (a, self.services.symbol_containing(space, a)),
        };
        if addr % A::INSN_ALIGN != 0 {
            return Err(ProbeError::new(
                ProbeErrorKind::Misaligned {
                    align: A::INSN_ALIGN,
                },
                addr,
            ));
        }
        let at_entry = sym.is_some_and(|s| s.addr == addr);
        // Kernel return probes need the kernel's word that `addr` starts a
        // function. In user space symbols are the tracer's business (Linux
        // uretprobes take a file offset): without one, the caller vouches.
        if is_return && !at_entry && (space == Space::Kernel || sym.is_some()) {
            return Err(ProbeError::new(ProbeErrorKind::NotFunctionEntry, addr));
        }
        match sym {
            Some(_) if at_entry => {
                let mut bytes = [0u8; MAX_ORIG];
                let n = self.read_insn_bytes(space, addr, &mut bytes)?;
                Ok(addr + A::entry_skip(&bytes[..n]))
            }
            Some(s) => {
                self.check_boundary(space, s, addr)?;
                Ok(addr)
            }
            None => Ok(addr),
        }
    }

    /// Walk instructions from the symbol start; `addr` must be on a boundary.
    fn check_boundary(&self, space: Space, sym: Symbol, addr: usize) -> Result<(), ProbeError> {
        let mut at = sym.addr;
        let mut bytes = [0u8; MAX_ORIG];
        while at < addr {
            let n = self.read_insn_bytes(space, at, &mut bytes)?;
            let len =
                A::insn_len(&bytes[..n]).ok_or(ProbeError::new(ProbeErrorKind::Undecodable, at))?;
            if at + len > addr {
                return Err(ProbeError::new(
                    ProbeErrorKind::NotInsnBoundary {
                        insn_start: at,
                        insn_len: len,
                    },
                    addr,
                ));
            }
            at += len;
        }
        Ok(())
    }

    /// Read up to `MAX_INSN_LEN` original bytes at `addr` (see
    /// [`Self::read_original`]), fewer near the end of readable memory;
    /// returns how many.
    fn read_insn_bytes(
        &self,
        space: Space,
        addr: usize,
        buf: &mut [u8; MAX_ORIG],
    ) -> Result<usize, ProbeError> {
        let mut n = A::MAX_INSN_LEN.min(MAX_ORIG);
        while n > 0 {
            if self.read_original(space, addr, &mut buf[..n]).is_ok() {
                return Ok(n);
            }
            n = n.saturating_sub(A::INSN_ALIGN);
        }
        Err(ProbeError::new(ProbeErrorKind::MemoryUnreadable, addr))
    }

    /// Read text as it is without our breakpoints: bytes under an armed
    /// point of the same space are replaced by the original ones, so
    /// decoding and the boundary walk never see a breakpoint of ours.
    fn read_original(
        &self,
        space: Space,
        addr: usize,
        buf: &mut [u8],
    ) -> Result<(), probe_hal::MemoryFault> {
        self.services.read(space, addr, buf)?;
        let end = addr + buf.len();
        for p in &self.points {
            if !p.used.load(Ordering::Relaxed) || !p.armed.load(Ordering::Relaxed) {
                continue;
            }
            let info = p.info();
            let bp_end = info.addr + info.breakpoint.len;
            if info.space != space
                || info.kind != PointKind::Probe
                || bp_end <= addr
                || info.addr >= end
            {
                continue;
            }
            for a in info.addr.max(addr)..bp_end.min(end) {
                buf[a - addr] = info.orig[a - info.addr];
            }
        }
        Ok(())
    }

    fn check_address(
        &self,
        reg: &Registry<PAGES>,
        space: Space,
        addr: usize,
    ) -> Result<(), ProbeError> {
        let blacklisted = ProbeError::new(ProbeErrorKind::Blacklisted, addr);
        if reg
            .xol
            .contains(space, addr, self.services.slot_page_size())
        {
            return Err(blacklisted);
        }
        if space == Space::Kernel {
            if crate::trap_text::trap_text().contains(&addr)
                || self.services.blacklist().iter().any(|r| r.contains(&addr))
            {
                return Err(blacklisted);
            }
            if A::kernel_trampoline() == Some(addr) {
                return Err(blacklisted);
            }
        }
        Ok(())
    }

    /// Decode the instruction at `addr`, build its slots and publish a new
    /// (unarmed) point. On failure nothing stays allocated.
    fn create_point(
        &self,
        reg: &mut Registry<PAGES>,
        space: Space,
        addr: usize,
    ) -> Result<u32, ProbeError> {
        let Some(index) = (0..PROBES).find(|&i| !self.points[i].used.load(Ordering::Relaxed))
        else {
            return Err(ProbeError::new(
                ProbeErrorKind::CapacityFull(Capacity::ProbePoints),
                addr,
            ));
        };
        let mode = space.mode();
        let mut orig = [0u8; MAX_ORIG];
        let n = self.read_insn_bytes(space, addr, &mut orig)?;
        let decoded = A::decode(addr, &orig[..n], mode).map_err(|e| e.at(addr))?;
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
                Some(e) => e,
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
            if boostable {
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

    /// Allocate a slot near `addr`, build it with `build` and write it.
    fn install_slot(
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
    fn release_slot(&self, reg: &mut Registry<PAGES>, space: Space, slot: usize) {
        if let Some(page) = reg
            .xol
            .free(space, slot, A::SLOT_LEN, self.services.slot_page_size())
        {
            self.services.synchronize();
            self.services.free_slot_page(page.space, page.base);
        }
    }

    /// The return trampoline of `space`, creating its breakpoint point when
    /// the space has none yet (returned as the second value, for rollback).
    fn trampoline_for(
        &self,
        reg: &mut Registry<PAGES>,
        space: Space,
    ) -> Result<(usize, Option<u32>), ProbeError> {
        if space == Space::Kernel {
            if let Some(t) = A::kernel_trampoline() {
                return Ok((t, None));
            }
        }
        if let Some(p) = self.trampoline_point(space) {
            return Ok((self.points[p as usize].info().addr, None));
        }
        let Some(index) = (0..PROBES).find(|&i| !self.points[i].used.load(Ordering::Relaxed))
        else {
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

    pub(crate) fn trampoline_point(&self, space: Space) -> Option<u32> {
        (0..PROBES as u32).find(|&i| {
            let p = &self.points[i as usize];
            p.used.load(Ordering::Relaxed) && {
                let info = p.info();
                info.kind == PointKind::ReturnTrampoline && info.space == space
            }
        })
    }

    fn undo_trampoline(&self, reg: &mut Registry<PAGES>, created: Option<u32>) {
        if let Some(p) = created {
            self.destroy_points(reg, &[p]);
        }
    }
}

fn has_post(h: &Handlers) -> bool {
    matches!(h, Handlers::Kprobe { post: Some(_), .. })
}

fn contains_index(ids: &[ProbeId], index: u32) -> bool {
    ids.iter().any(|i| i.index == index)
}

fn same_probe(c: &ProbeConfig, handlers: &Handlers, data: UserData) -> bool {
    let same_data = core::ptr::addr_eq(c.data as *const _, data as *const _);
    let same_handlers = match (&c.handlers, handlers) {
        (Handlers::Kprobe { pre: a, post: b }, Handlers::Kprobe { pre: c2, post: d }) => {
            a.map(|f| f as usize) == c2.map(|f| f as usize)
                && b.map(|f| f as usize) == d.map(|f| f as usize)
        }
        (
            Handlers::Kretprobe {
                entry: a, ret: b, ..
            },
            Handlers::Kretprobe {
                entry: c2, ret: d, ..
            },
        ) => {
            a.map(|f| f as usize) == c2.map(|f| f as usize)
                && b.map(|f| f as usize) == d.map(|f| f as usize)
        }
        _ => false,
    };
    same_data && same_handlers
}
