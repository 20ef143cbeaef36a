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
use probe_hal::{Arch, Capacity, ProbeError, ProbeErrorKind};

use crate::engine::{Engine, Registry};
use crate::optimize::NotOptimized;
use crate::point::PointKind;
use crate::probe::{Handlers, ProbeConfig};
use crate::services::{KernelServices, Space};
use crate::spec::{
    Kprobe, Kretprobe, ProbeContext, ProbeId, ProbeKind, ProbeSpec, Target, UserData,
};

/// A batch registration failed at entry `index`.
///
/// The entries registered before it are unregistered again. When that
/// rollback itself fails (the kernel cannot restore some text), the probes
/// it could not remove stay registered **but disabled**: their ids are left
/// in the caller's `ids` (every other id there is [`ProbeId::NONE`]) and
/// `left_registered` counts them; unregister them later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchError {
    /// Which entry failed.
    pub index: usize,
    /// Why.
    pub error: ProbeError,
    /// Probes of this batch that could not be rolled back (0 normally).
    pub left_registered: usize,
}

impl core::fmt::Display for BatchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "batch entry {}: {}", self.index, self.error)?;
        if self.left_registered > 0 {
            write!(
                f,
                " ({} earlier entries could not be rolled back and stay registered, disabled)",
                self.left_registered
            )?;
        }
        Ok(())
    }
}

struct Request<'a> {
    target: Target<'a>,
    space: Space,
    enabled: bool,
    handlers: Handlers,
    data: UserData,
    optimize: bool,
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
    ///
    /// Like every registration call, this may wait for a grace period
    /// ([`KernelServices::synchronize`]) and fails with
    /// [`ProbeErrorKind::InTrapContext`] when called from a probe handler.
    pub fn register_kprobe(&self, p: &Kprobe<'_>) -> Result<ProbeId, ProbeError> {
        let mut reg = self.lock_registry()?;
        self.register_locked(&mut reg, &ProbeSpec::Kprobe(*p))
    }

    /// Register a kretprobe (or uretprobe) on a function entry.
    pub fn register_kretprobe(&self, p: &Kretprobe<'_>) -> Result<ProbeId, ProbeError> {
        let mut reg = self.lock_registry()?;
        self.register_locked(&mut reg, &ProbeSpec::Kretprobe(*p))
    }

    /// Register a probe of either kind (for layers that handle both, such
    /// as a perf-event or trace-event layer).
    pub fn register(&self, spec: &ProbeSpec<'_>) -> Result<ProbeId, ProbeError> {
        let mut reg = self.lock_registry()?;
        self.register_locked(&mut reg, spec)
    }

    /// [`Engine::register`], with a handle that unregisters the probe when
    /// dropped (which, like `unregister`, may block for a grace period:
    /// drop it in registration context).
    pub fn register_owned(&self, spec: &ProbeSpec<'_>) -> Result<OwnedProbe<'_>, ProbeError>
    where
        Self: Sync,
    {
        let id = self.register(spec)?;
        Ok(OwnedProbe { engine: self, id })
    }

    /// Register every probe of `specs`, writing their ids to `ids` (at least
    /// as long as `specs`). All or nothing: on failure the ones already
    /// registered are unregistered again (see [`BatchError`] for a rollback
    /// the kernel's text writes make impossible). Probes in one function are
    /// checked with one walk over it when given in address order.
    pub fn register_batch(
        &self,
        specs: &[ProbeSpec<'_>],
        ids: &mut [ProbeId],
    ) -> Result<(), BatchError> {
        if ids.len() < specs.len() {
            return Err(BatchError {
                index: ids.len(),
                error: ProbeError::new(ProbeErrorKind::CapacityFull(Capacity::Batch), 0),
                left_registered: 0,
            });
        }
        let mut reg = self.lock_registry().map_err(|error| BatchError {
            index: 0,
            error,
            left_registered: 0,
        })?;
        for (i, spec) in specs.iter().enumerate() {
            match self.register_locked(&mut reg, spec) {
                Ok(id) => ids[i] = id,
                Err(error) => {
                    let left_registered = self.roll_back(&mut reg, &mut ids[..i]);
                    for id in &mut ids[i..specs.len()] {
                        *id = ProbeId::NONE;
                    }
                    return Err(BatchError {
                        index: i,
                        error,
                        left_registered,
                    });
                }
            }
        }
        Ok(())
    }

    /// Unregister the probes of a failed batch, newest first. A probe whose
    /// removal fails stays registered, disabled, with its id kept in `ids`;
    /// the others' ids become [`ProbeId::NONE`]. Returns how many stay.
    fn roll_back(&self, reg: &mut Registry<PAGES>, ids: &mut [ProbeId]) -> usize {
        if self.unregister_locked(reg, ids).is_ok() {
            ids.fill(ProbeId::NONE);
            return 0;
        }
        let mut stuck = 0;
        for id in ids.iter_mut().rev() {
            if self
                .unregister_locked(reg, core::slice::from_ref(id))
                .is_ok()
            {
                *id = ProbeId::NONE;
                continue;
            }
            stuck += 1;
            // Its point stays armed (the text could not be restored); the
            // probe itself stops firing.
            if let Ok(rec) = self.record(*id) {
                let cfg = *rec.config().expect("live record has a config");
                if rec.enabled.swap(false, Ordering::AcqRel) && has_post(&cfg.handlers) {
                    self.points[cfg.point as usize]
                        .post_handlers
                        .fetch_sub(1, Ordering::AcqRel);
                }
            }
            log::error!(
                "probe engine: a probe of a failed batch could not be rolled back; it stays registered, disabled"
            );
        }
        stuck
    }

    /// Unregister probe `id`. When it returns, no CPU or task runs the
    /// probe's handlers or its slot, and the original bytes are back if no
    /// other enabled probe shares the address.
    pub fn unregister(&self, id: ProbeId) -> Result<(), ProbeError> {
        let mut reg = self.lock_registry()?;
        self.unregister_locked(&mut reg, &[id])
    }

    /// Unregister several probes with a single grace period. Checks every
    /// id first: on an unknown id nothing is unregistered. When restoring
    /// some text fails, nothing is unregistered either: every point this
    /// call disarmed is armed again (a probe whose point cannot be re-armed
    /// is left registered and disabled).
    pub fn unregister_batch(&self, ids: &[ProbeId]) -> Result<(), ProbeError> {
        let mut reg = self.lock_registry()?;
        self.unregister_locked(&mut reg, ids)
    }

    /// Let probe `id` fire again (writes the breakpoint if it was the only
    /// disabled one at its address, or if an earlier failure left its point
    /// disarmed).
    pub fn enable(&self, id: ProbeId) -> Result<(), ProbeError> {
        let mut reg = self.lock_registry()?;
        let rec = self.record(id)?;
        let cfg = *rec.config().expect("live record has a config");
        if !rec.enabled.load(Ordering::Relaxed) {
            // Back to breakpoints before a post-handler or an opt-out joins.
            if has_post(&cfg.handlers) {
                self.unoptimize(&mut reg, cfg.point, NotOptimized::PostHandler)?;
            } else if !cfg.optimize {
                self.unoptimize(&mut reg, cfg.point, NotOptimized::OptedOut)?;
            }
        }
        self.enable_locked(id)?;
        let _ = self.refresh_optimization(&mut reg, cfg.point);
        Ok(())
    }

    fn enable_locked(&self, id: ProbeId) -> Result<(), ProbeError> {
        let rec = self.record(id)?;
        let cfg = *rec.config().expect("live record has a config");
        if rec.enabled.load(Ordering::Relaxed) {
            return self.arm(cfg.point);
        }
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
        let mut reg = self.lock_registry()?;
        let rec = self.record(id)?;
        if !rec.enabled.load(Ordering::Relaxed) {
            return Ok(());
        }
        let cfg = *rec.config().expect("live record has a config");
        if self.enabled_probes(cfg.point) == 1 {
            self.disarm(&mut reg, cfg.point)?;
        }
        rec.enabled.store(false, Ordering::Release);
        if has_post(&cfg.handlers) {
            self.points[cfg.point as usize]
                .post_handlers
                .fetch_sub(1, Ordering::AcqRel);
        }
        // The probes left may now allow a jump (or the point is disarmed,
        // which the policy records).
        let _ = self.refresh_optimization(&mut reg, cfg.point);
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
                optimize: p.optimize,
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
                    optimize: p.optimize,
                }
            }
        };
        let is_return = matches!(req.handlers, Handlers::Kretprobe { .. });
        let addr = self.resolve(reg, req.target, req.space, is_return)?;
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
        let Some(index) = self.free_record(reg) else {
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
        // A jump must not cover the new probe, nor skip the single step a
        // post-handler needs: back to breakpoints first.
        let unopt = match existing {
            Some(p) if has_post(&req.handlers) => {
                self.unoptimize(reg, p, NotOptimized::PostHandler)
            }
            Some(p) if !req.optimize => self.unoptimize(reg, p, NotOptimized::OptedOut),
            Some(_) => Ok(()),
            None => self.unoptimize_covering(reg, req.space, addr),
        };
        if let Err(e) = unopt {
            self.undo_trampoline(reg, new_trampoline);
            return Err(e.at(addr));
        }
        let (point, new_point) = match existing {
            Some(p) => (p, false),
            None => match self.create_point(reg, req.space, addr) {
                Ok(p) => (p, true),
                Err(e) => {
                    self.undo_trampoline(reg, new_trampoline);
                    // Nothing registered: the covering point's jump back.
                    self.reoptimize_covering(reg, req.space, addr);
                    return Err(e);
                }
            },
        };

        let rec = &self.probes[index];
        let kind = match req.handlers {
            Handlers::Kprobe { .. } => ProbeKind::Kprobe,
            Handlers::Kretprobe { .. } => ProbeKind::Kretprobe,
        };
        let cfg = ProbeConfig {
            point,
            handlers: req.handlers,
            data: req.data,
            optimize: req.optimize,
            ctx: ProbeContext {
                id: ProbeId {
                    index: index as u32,
                    generation: rec.generation(),
                },
                addr,
                data: req.data,
                cpu: 0,
                space: req.space,
                return_address: 0,
                kind,
            },
        };
        // SAFETY: the registration lock is held and the record is free
        // (no config), so nothing on the trap path can reach it.
        unsafe { rec.set_config(Some(cfg)) };
        rec.enabled.store(req.enabled, Ordering::Relaxed);
        let pt = &self.points[point as usize];
        if req.enabled && has_post(&req.handlers) {
            pt.post_handlers.fetch_add(1, Ordering::AcqRel);
        }
        // Publish: link at the end of the point's chain, so the probes of
        // one address run in registration order (as Linux's aggregate
        // kprobe runs its list).
        rec.next.store(0, Ordering::Relaxed);
        self.link_at_tail(point, index as u32);

        if req.enabled {
            if let Err(e) = self.arm(point) {
                self.unlink(point, index as u32);
                if has_post(&req.handlers) {
                    pt.post_handlers.fetch_sub(1, Ordering::AcqRel);
                }
                rec.enabled.store(false, Ordering::Relaxed);
                if new_point {
                    self.destroy_points(reg, &[point]);
                    self.reoptimize_covering(reg, req.space, addr);
                }
                // SAFETY: lock held; the record was never reachable through
                // an armed breakpoint and is unlinked again.
                unsafe { rec.set_config(None) };
                self.undo_trampoline(reg, new_trampoline);
                return Err(e.at(addr));
            }
        }
        // Best effort: a site that cannot be optimised keeps its breakpoint
        // (the reason is in the listing); un-optimising cannot be needed.
        let _ = self.refresh_optimization(reg, point);
        Ok(ProbeId {
            index: index as u32,
            generation: rec.generation(),
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
        //    leaves every probe registered and armed as before.
        let mut disarmed = heapless::Vec::<u32, PROBES>::new();
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
            if enabled_left == 0
                && self.points[cfg.point as usize]
                    .armed
                    .load(Ordering::Relaxed)
            {
                if let Err(e) = self.disarm(reg, cfg.point) {
                    self.rearm_after_failure(&disarmed);
                    return Err(e);
                }
                let _ = disarmed.push(cfg.point);
            }
        }
        // 2. Unlink the probes and unpublish emptied points.
        let mut emptied = heapless::Vec::<u32, PROBES>::new();
        let mut emptied_at = heapless::Vec::<(Space, usize), PROBES>::new();
        let mut kept = heapless::Vec::<u32, PROBES>::new();
        for id in ids {
            let rec = &self.probes[id.index as usize];
            let cfg = *rec.config().expect("checked above");
            if rec.enabled.swap(false, Ordering::AcqRel) && has_post(&cfg.handlers) {
                self.points[cfg.point as usize]
                    .post_handlers
                    .fetch_sub(1, Ordering::AcqRel);
            }
            self.unlink(cfg.point, id.index);
            // The new generation before the grace period: a return
            // dispatch (which reaches the record through its instance, not
            // through the point) that saw the old one is in trap context,
            // so the grace period below waits for it; later ones see the
            // record gone. Only then are the config and the attached
            // handlers released.
            rec.next_generation();
            let pt = &self.points[cfg.point as usize];
            if pt.head.load(Ordering::Relaxed) == 0 && !emptied.contains(&cfg.point) {
                let info = pt.info();
                self.removed.record(info.space, info.addr);
                self.table.remove(
                    crate::table::Key {
                        space: info.space,
                        addr: info.addr,
                    },
                    cfg.point,
                );
                let _ = emptied.push(cfg.point);
                let _ = emptied_at.push((info.space, info.addr));
            } else if pt.head.load(Ordering::Relaxed) != 0 && !kept.contains(&cfg.point) {
                let _ = kept.push(cfg.point);
            }
        }
        // 3. Grace period: nobody is in these handlers or slots any more
        //    (user steps still parked keep their point alive: see
        //    `free_points`).
        self.services.synchronize();
        self.removed.end_window();
        // 4. Free.
        for id in ids {
            let rec = &self.probes[id.index as usize];
            Self::detach_all(rec);
            // SAFETY: lock held; unlinked and a grace period has passed.
            unsafe { rec.set_config(None) };
        }
        self.free_points(reg, &emptied);
        // Points that keep probes may now allow a jump (a post-handler or
        // an opt-out left).
        // A probe that left a displaced region gives the covering point
        // its jump back (Linux re-optimises it too).
        for &(space, addr) in &emptied_at {
            self.reoptimize_covering(reg, space, addr);
        }
        for &p in &kept {
            let pt = &self.points[p as usize];
            // A later probe of the batch may have emptied it after all.
            if pt.used.load(Ordering::Relaxed) && pt.head.load(Ordering::Relaxed) != 0 {
                let _ = self.refresh_optimization(reg, p);
            }
        }
        Ok(())
    }

    /// Restoring text failed halfway through an unregistration: write the
    /// breakpoints back on the points this call had disarmed, so their
    /// still registered, enabled probes keep firing. A point that cannot be
    /// re-armed either gets its probes disabled (the state then says what
    /// the text is).
    fn rearm_after_failure(&self, disarmed: &[u32]) {
        for &p in disarmed.iter().rev() {
            if self.arm(p).is_ok() {
                continue;
            }
            log::error!("probe engine: a point could not be re-armed; its probes are now disabled");
            for r in self.chain(p) {
                let rec = &self.probes[r as usize];
                let cfg = *rec.config().expect("chained record is live");
                if rec.enabled.swap(false, Ordering::AcqRel) && has_post(&cfg.handlers) {
                    self.points[p as usize]
                        .post_handlers
                        .fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
    }

    /// Iterate the probe indices chained on `point`.
    #[link_section = "probe_trap_text"]
    #[inline(always)]
    pub(crate) fn chain(&self, point: u32) -> impl Iterator<Item = u32> + '_ {
        let mut cur = self.points[point as usize].head.load(Ordering::Acquire);
        // A chain holds at most every record once: the bound makes even a
        // corrupted chain end.
        let mut left = PROBES;
        core::iter::from_fn(move || {
            if cur == 0 || left == 0 {
                return None;
            }
            left -= 1;
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
    /// Append record `index` (its `next` already 0) to `point`'s chain with
    /// one Release store (registration lock held).
    fn link_at_tail(&self, point: u32, index: u32) {
        let pt = &self.points[point as usize];
        let mut cur = pt.head.load(Ordering::Relaxed);
        if cur == 0 {
            pt.head.store(index + 1, Ordering::Release);
            return;
        }
        loop {
            let rec = &self.probes[cur as usize - 1];
            let next = rec.next.load(Ordering::Relaxed);
            if next == 0 {
                rec.next.store(index + 1, Ordering::Release);
                return;
            }
            cur = next;
        }
    }

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
}

fn has_post(h: &Handlers) -> bool {
    matches!(h, Handlers::Kprobe { post: Some(_), .. })
}

fn contains_index(ids: &[ProbeId], index: u32) -> bool {
    ids.iter().any(|i| i.index == index)
}

/// What an [`OwnedProbe`] needs from its engine (object-safe).
pub trait Unregister {
    /// Unregister probe `id`.
    fn unregister_probe(&self, id: ProbeId) -> Result<(), ProbeError>;
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
    > Unregister for Engine<A, L, K, PROBES, INSTANCES, CPUS, PAGES, DATA>
{
    fn unregister_probe(&self, id: ProbeId) -> Result<(), ProbeError> {
        self.unregister(id)
    }
}

/// A registered probe that is unregistered when the handle is dropped
/// ([`Engine::register_owned`]). The drop may block for a grace period; an
/// unregistration that fails there (the text could not be written back)
/// leaves the probe registered and disabled, as `unregister` does, and is
/// logged.
pub struct OwnedProbe<'e> {
    engine: &'e (dyn Unregister + Sync),
    id: ProbeId,
}

impl OwnedProbe<'_> {
    /// The probe's id (for `attach`, `enable`, `info`…).
    pub fn id(&self) -> ProbeId {
        self.id
    }
}

impl Drop for OwnedProbe<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.engine.unregister_probe(self.id) {
            log::error!("dropping an owned probe: {e}");
        }
    }
}

/// Whether a new probe would repeat a registered one (Linux refuses
/// registering the same `struct kprobe` twice). A probe with no handlers of
/// its own is never a repeat: it hosts attached handler objects (one per
/// perf or trace event, as Linux gives each event its own kprobe), and two
/// events on one instruction are two users.
fn same_probe(c: &ProbeConfig, handlers: &Handlers, data: UserData) -> bool {
    let own = match handlers {
        Handlers::Kprobe { pre, post } => pre.is_some() || post.is_some(),
        Handlers::Kretprobe { entry, ret, .. } => entry.is_some() || ret.is_some(),
    };
    if !own {
        return false;
    }
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
