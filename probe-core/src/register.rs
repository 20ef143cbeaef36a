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
use crate::point::PointKind;
use crate::probe::{Handlers, ProbeConfig};
use crate::services::{KernelServices, Space};
use crate::spec::{Kprobe, Kretprobe, ProbeId, ProbeSpec, Target, UserData};

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
