//! Address-space lifecycle for uprobes: teardown, fork and detach.
//!
//! Fork policy: **the child gets its original bytes back** (no uprobe
//! follows a fork, as in Linux). Return instances the forking task holds
//! are copied to the child as "orphans" (they run no handler) together with
//! a trampoline point in the child's space, so the child's pending returns
//! still reach their real callers through its copy of the trampoline page.

use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::{Arch, Capacity, ProbeError, ProbeErrorKind};

use crate::engine::{Engine, Registry};
use crate::instances::Instance;
use crate::point::PointKind;
use crate::services::{KernelServices, Space};
use crate::table::Key;
use crate::task::{TaskState, HELD_BY_LIFECYCLE};

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
            if self.points[i].live_in(space) {
                let _ = v.push(i as u32);
            }
        }
        v
    }

    /// The address space `asid` is being torn down (process exit, or the
    /// old space of an exec): drop every probe and slot page in it without
    /// touching its (dying) memory. Its tasks' parked steps and return
    /// instances go with [`Engine::release_task`] (exit) or
    /// [`Engine::exec_task`] (exec).
    ///
    /// Fails only with [`ProbeErrorKind::InTrapContext`] (called from a
    /// probe handler).
    pub fn release_space(&self, asid: usize) -> Result<(), ProbeError> {
        let mut reg = self.lock_registry()?;
        self.release_space_locked(&mut reg, asid);
        Ok(())
    }

    fn release_space_locked(&self, reg: &mut Registry<PAGES>, asid: usize) {
        let space = Space::User(asid);
        let points = self.points_in(space);
        let mut probes = heapless::Vec::<u32, PROBES>::new();
        for &p in &points {
            for r in self.chain(p) {
                let _ = probes.push(r);
                // Before the grace period, as in `unregister_locked`.
                self.probes[r as usize].next_generation();
            }
            let info = self.points[p as usize].info();
            self.removed.record(info.space, info.addr);
            self.table.remove(
                Key {
                    space: info.space,
                    addr: info.addr,
                },
                p,
            );
            self.points[p as usize]
                .armed
                .store(false, Ordering::Relaxed);
        }
        self.services.synchronize();
        self.removed.end_window();
        for &r in &probes {
            let rec = &self.probes[r as usize];
            rec.enabled.store(false, Ordering::Relaxed);
            Self::detach_all(rec);
            // SAFETY: lock held; unpublished and a grace period passed.
            unsafe { rec.set_config(None) };
        }
        // The space's pages go back whole: points that stay as zombies
        // (a task of the space still has a step parked: it will never run
        // in this space again) must not free slots in a later page.
        let services = &self.services;
        reg.xol
            .drop_space(space, |base| services.free_slot_page(space, base));
        for &p in &points {
            let pt = &self.points[p as usize];
            let mut info = *pt.info();
            info.step_slot = 0;
            info.boost_slot = 0;
            // SAFETY: lock held; the point is unpublished, a grace period
            // passed, and the only frames still naming it belong to tasks
            // that will never run in this space again (the step end reads
            // `decoded` and `addr`, not the slot fields).
            unsafe { pt.set_info(Some(info)) };
        }
        self.free_points(reg, &points);
    }

    /// Detach from address space `asid` (a tracer letting go of a live
    /// process): first `put_back(frame, trampoline, real)` is called for
    /// every pending return instance of `tasks` in that space so the caller
    /// can write the real return addresses back (on x86_64 the return
    /// address sits at `frame`), and the instances are released; then every
    /// probe in the space is unregistered, restoring its text, and the
    /// slot pages are given back. The tasks must be stopped outside their
    /// out-of-line steps ([`Engine::should_defer_signal`] false, or their
    /// steps settled with [`Engine::abort_user_step`]): a task stopped
    /// inside a slot would resume in a page that is gone.
    ///
    /// Each task's lock is taken (waited for) while its state changes.
    ///
    /// # Safety
    /// None of `tasks` runs during the call (a tracer detaching: the real
    /// return addresses `put_back` reports must be written back before
    /// they run again).
    pub unsafe fn detach_space(
        &self,
        asid: usize,
        tasks: &[&TaskState<A>],
        mut put_back: impl FnMut(usize, usize, usize),
    ) -> Result<(), ProbeError> {
        let mut reg = self.lock_registry()?;
        let space = Space::User(asid);
        for p in self.points_in(space) {
            if self.points[p as usize].info().kind == PointKind::Probe {
                self.disarm(&mut reg, p)?;
            }
        }
        for task in tasks {
            let guard = task.lock(HELD_BY_LIFECYCLE);
            let page = self.services.slot_page_size();
            self.walk_list(&guard, |inst| {
                if reg.xol.contains(space, inst.trampoline, page) {
                    put_back(inst.frame, inst.trampoline, inst.real_ret);
                }
            });
            // Only their returns into this space go: kernel return
            // instances of a task stopped inside the kernel stay.
            self.drop_task_state(&guard, |inst| inst.user);
        }
        self.release_space_locked(&mut reg, asid);
        Ok(())
    }

    /// A task of address space `parent` forked into the new space `child`
    /// (whose memory is a copy of the parent's). Writes the original bytes
    /// back over every breakpoint in the child, and copies the forking
    /// task's pending return instances to `child_task` as orphans (see the
    /// module documentation).
    ///
    /// All or nothing for the instances: when the pool cannot hold them
    /// all, the child gets none ([`Capacity::Instances`]); the kernel then
    /// fails the fork (its pending returns would trap with no instance).
    /// `write_text` into the child must break copy-on-write.
    ///
    /// `child_task` must hold no return instance and be a different state
    /// from `parent_task` (else [`ProbeErrorKind::InvalidRequest`], nothing
    /// changed). Both tasks' locks are taken (waited for; from a probe
    /// handler the call fails with [`ProbeErrorKind::InTrapContext`]); the
    /// parent's instances are read under its lock, the child's list is
    /// built under its own.
    pub fn fork_space(
        &self,
        parent: usize,
        child: usize,
        parent_task: &TaskState<A>,
        child_task: &TaskState<A>,
    ) -> Result<(), ProbeError> {
        let mut reg = self.lock_registry()?;
        if core::ptr::eq(parent_task, child_task) {
            return Err(ProbeError::new(
                ProbeErrorKind::InvalidRequest("fork_space: the child task is the parent task"),
                0,
            ));
        }
        // Held to the end: the child's list is checked and built under it.
        // Lock order child then parent; concurrent calls are serialised by
        // the registration lock, and other holders take one lock only.
        let child_guard = child_task.lock(HELD_BY_LIFECYCLE);
        if child_task.ret_head.load(Ordering::Relaxed) != 0 {
            return Err(ProbeError::new(
                ProbeErrorKind::InvalidRequest("fork_space: the child task holds return instances"),
                0,
            ));
        }
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
        {
            let parent_guard = parent_task.lock(HELD_BY_LIFECYCLE);
            self.walk_list(&parent_guard, |inst| {
                if inst.trampoline == tramp {
                    let _ = pending.push((inst.frame, inst.real_ret));
                }
            });
        }
        if pending.is_empty() {
            return Ok(());
        }
        // Take every instance first: all or nothing.
        let mut taken = heapless::Vec::<u32, INSTANCES>::new();
        for _ in 0..pending.len() {
            match self.pool.alloc() {
                Some(i) => {
                    let _ = taken.push(i);
                }
                None => {
                    for &i in &taken {
                        self.pool.release(i);
                    }
                    return Err(ProbeError::new(
                        ProbeErrorKind::CapacityFull(Capacity::Instances),
                        tramp,
                    ));
                }
            }
        }
        if let Err(e) = self.adopt_trampoline_page(&mut reg, ps, cs, tp, tramp) {
            for &i in &taken {
                self.pool.release(i);
            }
            return Err(e);
        }
        for (&(frame, real), &i) in pending.iter().rev().zip(taken.iter()) {
            // SAFETY: freshly allocated: owned here.
            unsafe {
                self.pool.set_meta(
                    i,
                    Instance {
                        probe: 0,
                        generation: ORPHAN,
                        real_ret: real,
                        frame,
                        trampoline: tramp,
                        addr: 0,
                        user: true,
                    },
                )
            };
            let child_task = child_guard.task;
            self.pool
                .set_prev(i, child_task.ret_head.load(Ordering::Relaxed));
            child_task.ret_head.store(i + 1, Ordering::Release);
        }
        drop(child_guard);
        Ok(())
    }

    /// Give the child space `cs` the parent's trampoline page (its memory
    /// is a copy) and a trampoline point in it, unless it has one.
    fn adopt_trampoline_page(
        &self,
        reg: &mut Registry<PAGES>,
        ps: Space,
        cs: Space,
        tp: u32,
        tramp: usize,
    ) -> Result<(), ProbeError> {
        if self.trampoline_point(cs).is_some() {
            return Ok(());
        }
        let page_size = self.services.slot_page_size();
        let base = reg
            .xol
            .page_of(ps, tramp, page_size)
            .ok_or(ProbeError::new(ProbeErrorKind::NoSuchProbe, tramp))?;
        reg.xol.adopt(cs, base, tramp, A::SLOT_LEN)?;
        if let Err(e) = self.adopt_trampoline(cs, tp) {
            reg.xol.drop_space(cs, |_| {});
            self.mirror_slot_pages(reg);
            return Err(e);
        }
        self.mirror_slot_pages(reg);
        Ok(())
    }

    /// Publish a copy of trampoline point `from` in space `space`.
    fn adopt_trampoline(&self, space: Space, from: u32) -> Result<(), ProbeError> {
        let Some(index) = (0..PROBES).find(|&i| !self.points[i].used.load(Ordering::Relaxed))
        else {
            return Err(ProbeError::new(
                ProbeErrorKind::CapacityFull(Capacity::ProbePoints),
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
