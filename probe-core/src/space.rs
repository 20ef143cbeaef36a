//! Address-space lifecycle for uprobes: teardown, fork and detach.
//!
//! Fork policy: **the child gets its original bytes back** (no uprobe
//! follows a fork, as in Linux). Return instances the forking task holds
//! are copied to the child as "orphans" (they run no handler) together with
//! a trampoline point in the child's space, so the child's pending returns
//! still reach their real callers through its copy of the trampoline page.

use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::{Arch, ProbeError, ProbeErrorKind};

use crate::engine::Engine;
use crate::point::{space_key, PointKind};
use crate::services::{KernelServices, Space};
use crate::table::Key;
use crate::task::TaskState;

/// The generation orphaned instances carry: records start at 1 and a probe
/// would need 2^32 re-registrations in one record to reach 0 again.
const ORPHAN: u32 = 0;

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
    fn points_in(&self, space: Space) -> heapless::Vec<u32, PROBES> {
        let mut v = heapless::Vec::new();
        for i in 0..PROBES {
            let p = &self.points[i];
            if p.used.load(Ordering::Relaxed) && p.info().space == space {
                let _ = v.push(i as u32);
            }
        }
        v
    }

    /// The address space `asid` is being torn down: drop every probe and
    /// slot page in it without touching its (dying) memory. Its tasks'
    /// instances are released by [`Engine::release_task`].
    pub fn release_space(&self, asid: usize) {
        let mut reg = self.registry.lock();
        let space = Space::User(asid);
        let points = self.points_in(space);
        let mut probes = heapless::Vec::<u32, PROBES>::new();
        for &p in &points {
            for r in self.chain(p) {
                let _ = probes.push(r);
            }
            let info = self.points[p as usize].info();
            self.table.remove(
                Key {
                    space: space_key(info.space),
                    addr: info.addr,
                },
                p,
            );
            self.points[p as usize]
                .armed
                .store(false, Ordering::Relaxed);
        }
        self.services.synchronize();
        for &r in &probes {
            let rec = &self.probes[r as usize];
            rec.enabled.store(false, Ordering::Relaxed);
            rec.generation.fetch_add(1, Ordering::AcqRel);
            // SAFETY: lock held; unpublished and a grace period passed.
            unsafe { rec.set_config(None) };
        }
        self.free_points(&mut reg, &points);
        let services = &self.services;
        reg.xol
            .drop_space(space, |base| services.free_slot_page(space, base));
    }

    /// Detach from address space `asid` (a tracer letting go of a live
    /// process): first `put_back(frame, trampoline, real)` is called for
    /// every pending return instance of `tasks` in that space so the caller
    /// can write the real return addresses back (on x86_64 the return
    /// address sits at `frame`), and the instances are released; then every
    /// probe in the space is unregistered, restoring its text, and the
    /// slot pages are given back.
    pub fn detach_space(
        &self,
        asid: usize,
        tasks: &[&TaskState<A>],
        mut put_back: impl FnMut(usize, usize, usize),
    ) -> Result<(), ProbeError> {
        for task in tasks {
            self.pending_return_frames(task, &mut put_back);
            self.release_task(task);
        }
        let mut reg = self.registry.lock();
        let space = Space::User(asid);
        for p in self.points_in(space) {
            if self.points[p as usize].info().kind == PointKind::Probe {
                self.disarm(p)?;
            }
        }
        drop(reg);
        self.release_space(asid);
        reg = self.registry.lock();
        drop(reg);
        Ok(())
    }

    /// A task of address space `parent` forked into the new space `child`
    /// (whose memory is a copy of the parent's). Writes the original bytes
    /// back over every breakpoint in the child, and copies the forking
    /// task's pending return instances to `child_task` as orphans (see the
    /// module documentation).
    pub fn fork_space(
        &self,
        parent: usize,
        child: usize,
        parent_task: &TaskState<A>,
        child_task: &TaskState<A>,
    ) -> Result<(), ProbeError> {
        let mut reg = self.registry.lock();
        let (ps, cs) = (Space::User(parent), Space::User(child));
        for p in self.points_in(ps) {
            let pt = &self.points[p as usize];
            let info = pt.info();
            if info.kind == PointKind::Probe && pt.armed.load(Ordering::Relaxed) {
                self.patch(cs, info.addr, &info.orig[..info.breakpoint.len])?;
            }
        }
        let Some(tp) = self.trampoline_point(ps) else {
            return Ok(());
        };
        let tramp = self.points[tp as usize].info().addr;
        // Copy the parent's pending instances that return through the
        // user trampoline, oldest first so the child's list keeps the order.
        let mut pending = heapless::Vec::<(usize, usize), INSTANCES>::new();
        self.pending_return_frames(parent_task, |frame, t, real| {
            if t == tramp {
                let _ = pending.push((frame, real));
            }
        });
        if pending.is_empty() {
            return Ok(());
        }
        let page_size = self.services.slot_page_size();
        if self.trampoline_point(cs).is_none() {
            let base = reg
                .xol
                .page_of(ps, tramp, page_size)
                .ok_or(ProbeError::new(ProbeErrorKind::NoSuchProbe, tramp))?;
            reg.xol.adopt(cs, base, tramp, A::SLOT_LEN)?;
            self.adopt_trampoline(cs, tp)?;
        }
        for &(frame, real) in pending.iter().rev() {
            let Some(i) = self.pool.alloc() else {
                return Err(ProbeError::new(
                    ProbeErrorKind::CapacityFull(probe_hal::Capacity::Probes),
                    tramp,
                ));
            };
            // SAFETY: freshly allocated: owned here.
            let inst = unsafe { self.pool.get(i) };
            inst.probe = 0;
            inst.generation = ORPHAN;
            inst.real_ret = real;
            inst.frame = frame;
            inst.trampoline = tramp;
            inst.addr = 0;
            self.pool
                .set_prev(i, child_task.ret_head.load(Ordering::Relaxed));
            child_task.ret_head.store(i + 1, Ordering::Release);
        }
        Ok(())
    }

    /// Publish a copy of trampoline point `from` in space `space`.
    fn adopt_trampoline(&self, space: Space, from: u32) -> Result<(), ProbeError> {
        let Some(index) = (0..PROBES).find(|&i| !self.points[i].used.load(Ordering::Relaxed))
        else {
            return Err(ProbeError::new(
                ProbeErrorKind::CapacityFull(probe_hal::Capacity::ProbePoints),
                0,
            ));
        };
        let src = self.points[from as usize].info();
        let info = crate::point::PointInfo {
            kind: PointKind::ReturnTrampoline,
            space,
            addr: src.addr,
            decoded: None,
            orig: src.orig,
            breakpoint: src.breakpoint,
            step_slot: src.step_slot,
            step_end: 0,
            boost_slot: 0,
        };
        let pt = &self.points[index];
        pt.used.store(true, Ordering::Relaxed);
        // SAFETY: registration lock held by the caller; the point is free
        // and unpublished.
        unsafe { pt.set_info(Some(info)) };
        self.table.insert(pt.key(), index as u32);
        Ok(())
    }
}
