//! Return probes: tracking a call at function entry and catching its return.
//!
//! At entry the probe takes an instance from the engine-wide pool (its
//! `maxactive` is a quota on it), runs the entry handler, replaces the
//! return address with the trampoline and pushes the instance on the
//! current task's LIFO. When the function returns into the trampoline (a
//! backend's code trampoline calling [`probe_hal::rethook::dispatch_return`]
//! or a breakpoint the engine recognises), the task's newest instance for
//! that frame gives the real return address. An instance whose probe was
//! unregistered meanwhile (its generation no longer matches) runs no
//! handler but still returns to the real caller.

use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::rethook::ReturnHook;
use probe_hal::{Arch, Registers};

use crate::engine::Engine;
use crate::instances::Instance;
use crate::probe::Handlers;
use crate::services::{KernelServices, Space};
use crate::spec::{EntryAction, ProbeContext, ProbeId, ProbeKind};
use crate::task::{TaskGuard, TaskState, HELD_BY_LIFECYCLE, HELD_BY_TRAP};

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
    /// At a return probe's function entry: track this call, for the
    /// current task (with none, the call counts as missed).
    #[link_section = "probe_trap_text"]
    #[inline(never)]
    pub(crate) fn track_call<R: Registers>(
        &self,
        regs: &mut R,
        probe: u32,
        ctx: &ProbeContext,
        space: Space,
        handlers: &Handlers,
    ) {
        let tracked = self
            .services
            .with_current_task(|task| self.track_call_of(task, regs, probe, ctx, space, handlers));
        if tracked.is_none() {
            self.probes[probe as usize]
                .missed
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    #[link_section = "probe_trap_text"]
    #[inline(always)]
    fn track_call_of<R: Registers>(
        &self,
        task: &TaskState<A>,
        regs: &mut R,
        probe: u32,
        ctx: &ProbeContext,
        space: Space,
        handlers: &Handlers,
    ) {
        let Handlers::Kretprobe {
            entry,
            maxactive,
            data_size,
            trampoline,
            ..
        } = *handlers
        else {
            return;
        };
        let rec = &self.probes[probe as usize];
        if !rec.acquire_instance(ctx.id.generation, maxactive) {
            rec.missed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(i) = self.pool.alloc() else {
            rec.release_instance(ctx.id.generation);
            rec.missed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // SAFETY: `i` was just taken from the pool: this CPU owns it, and
        // no other reference to its data exists.
        unsafe { self.pool.zero_data(i, data_size) };
        if let Some(entry) = entry {
            // SAFETY: as above; the reference ends with the call.
            let data = unsafe { self.pool.data(i, data_size) };
            if entry(ctx, regs, data) == EntryAction::Decline {
                rec.release_instance(ctx.id.generation);
                self.pool.release(i);
                return;
            }
        }
        // The task's list is busy (a lifecycle call on another CPU, or a
        // walker): the call is missed, with no instance taken.
        let Some(_guard) = task.try_lock(HELD_BY_TRAP) else {
            rec.release_instance(ctx.id.generation);
            rec.missed.fetch_add(1, Ordering::Relaxed);
            self.pool.release(i);
            return;
        };
        let mem = self.memory(space);
        let frame = A::entry_frame(regs);
        let real_ret = match A::hijack_return(regs, &mem, trampoline) {
            Ok(r) => r,
            Err(_) => {
                rec.release_instance(ctx.id.generation);
                rec.missed.fetch_add(1, Ordering::Relaxed);
                self.pool.release(i);
                return;
            }
        };
        // SAFETY: owned since `alloc`.
        unsafe {
            self.pool.set_meta(
                i,
                Instance {
                    probe,
                    generation: ctx.id.generation,
                    real_ret,
                    frame,
                    trampoline,
                    addr: ctx.addr,
                    user: space != Space::Kernel,
                },
            )
        };
        self.pool.set_prev(i, task.ret_head.load(Ordering::Relaxed));
        task.ret_head.store(i + 1, Ordering::Release);
        rec.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// The current task returned into a trampoline: run the return handlers
    /// of its instances for this frame and set the pc to the real return
    /// address, which is also returned.
    ///
    /// `None` (nothing changed) when the task holds no instance for this
    /// frame: a user task that jumped to its trampoline by itself gets its
    /// trap back as foreign instead of corrupting its return stack.
    #[link_section = "probe_trap_text"]
    #[inline(never)]
    pub(crate) fn return_from(&self, regs: &mut dyn Registers, space: Space) -> Option<usize> {
        self.services
            .with_current_task(|task| self.return_from_task(task, regs, space))
            .flatten()
    }

    #[link_section = "probe_trap_text"]
    #[inline(always)]
    fn return_from_task(
        &self,
        task: &TaskState<A>,
        regs: &mut dyn Registers,
        space: Space,
    ) -> Option<usize> {
        // Held: a lifecycle call or a walker runs on this task's list, which
        // no legitimate return meets (the task is running this return):
        // not ours (a kernel return panics in `on_return`).
        let _guard = task.try_lock(HELD_BY_TRAP)?;
        let frame = self.matching_frame(task, A::return_frame(&*regs))?;
        let cpu_index = self.cpu_index();
        let cpu = &self.cpus[cpu_index];
        let mut real = 0;
        loop {
            let head = task.ret_head.load(Ordering::Acquire);
            if head == 0 {
                break;
            }
            let i = head - 1;
            // SAFETY: the instance is on the current task's list: only this
            // task (running here) touches it.
            let inst = unsafe { self.pool.meta(i) };
            if inst.frame < frame {
                // A deeper frame that never returned (longjmp, unwinding):
                // drop its instance.
                self.retire(i, task);
                continue;
            }
            if inst.frame != frame {
                break;
            }
            real = inst.real_ret;
            let rec = &self.probes[inst.probe as usize];
            if rec.generation() == inst.generation {
                if let Some(cfg) = rec.config() {
                    if let Handlers::Kretprobe { ret, data_size, .. } = cfg.handlers {
                        if !cpu.enter_handler() {
                            rec.missed.fetch_add(1, Ordering::Relaxed);
                        } else {
                            let ctx = ProbeContext {
                                id: ProbeId {
                                    index: inst.probe,
                                    generation: inst.generation,
                                },
                                addr: inst.addr,
                                data: cfg.data,
                                cpu: cpu_index,
                                space,
                                return_address: real,
                                kind: ProbeKind::Kretprobe,
                            };
                            if let Some(ret) = ret {
                                // SAFETY: the current task's instance; the
                                // data reference is the only one and ends
                                // with the call (unwinders read `meta`).
                                let data = unsafe { self.pool.data(i, data_size) };
                                ret(&ctx, regs, data);
                            }
                            Self::run_attached_returns(rec, &ctx, regs);
                            cpu.leave_handler();
                        }
                    }
                }
            }
            self.retire(i, task);
            // Two return probes on one function: the inner one's "real"
            // return address is the trampoline again; go on with the next.
            if real != inst.trampoline {
                break;
            }
        }
        regs.set_pc(real);
        Some(real)
    }

    /// The entry frame of the instance that `observed` (the frame seen at
    /// the return) belongs to: an exact match, or else the newest instance
    /// at most [`Arch::RETURN_FRAME_SLACK`] below it (x86_64 `ret imm16`
    /// pops its arguments too). Newer instances of deeper frames may lie
    /// above it on the list. `None` when the task holds none.
    #[link_section = "probe_trap_text"]
    fn matching_frame(&self, task: &TaskState<A>, observed: usize) -> Option<usize> {
        let mut cur = task.ret_head.load(Ordering::Acquire);
        let mut near = None;
        while cur != 0 {
            // SAFETY: read-only walk of the current task's own list.
            let inst = unsafe { self.pool.meta(cur - 1) };
            if inst.frame == observed {
                return Some(observed);
            }
            if inst.frame > observed {
                break;
            }
            if near.is_none() && observed - inst.frame <= A::RETURN_FRAME_SLACK {
                near = Some(inst.frame);
            }
            cur = self.pool.prev(cur - 1);
        }
        near
    }

    /// Pop instance `i` (the head of `task`'s list) and free it. The caller
    /// holds the task's lock.
    #[link_section = "probe_trap_text"]
    fn retire(&self, i: u32, task: &TaskState<A>) {
        // SAFETY: `i` heads the current (or a stopped) task's list; only it
        // touches the instance.
        let inst = unsafe { self.pool.meta(i) };
        self.probes[inst.probe as usize].release_instance(inst.generation);
        task.ret_head.store(self.pool.prev(i), Ordering::Release);
        self.pool.release(i);
    }

    /// Drop the return instances of the guarded task that `drop` selects
    /// (the others stay, in order) and all its parked user steps.
    pub(crate) fn drop_task_state(
        &self,
        guard: &TaskGuard<'_, A>,
        mut drop: impl FnMut(&Instance) -> bool,
    ) {
        let task = guard.task;
        // Walk the list, relinking around dropped instances.
        let mut prev_kept: Option<u32> = None;
        let mut cur = task.ret_head.load(Ordering::Acquire);
        while cur != 0 {
            let i = cur - 1;
            let older = self.pool.prev(i);
            // SAFETY: the task's own list; its lock is held (no trap path
            // or other lifecycle call touches it).
            let inst = unsafe { self.pool.meta(i) };
            if drop(&inst) {
                match prev_kept {
                    None => task.ret_head.store(older, Ordering::Release),
                    Some(k) => self.pool.set_prev(k, older),
                }
                self.probes[inst.probe as usize].release_instance(inst.generation);
                self.pool.release(i);
            } else {
                prev_kept = Some(i);
            }
            cur = older;
        }
        // SAFETY: the task's lock is held: no trap path touches its steps.
        unsafe { task.steps.clear(|frame| self.unpin(&frame)) };
    }

    /// Every instance on the guarded task's list, newest first (copies).
    pub(crate) fn walk_list(&self, guard: &TaskGuard<'_, A>, mut f: impl FnMut(&Instance)) {
        let mut cur = guard.task.ret_head.load(Ordering::Acquire);
        while cur != 0 {
            // SAFETY: a copy of a record on the task's list; its lock is
            // held, so the instance is not freed or rewritten meanwhile.
            let inst = unsafe { self.pool.meta(cur - 1) };
            f(&inst);
            cur = self.pool.prev(cur - 1);
        }
    }

    /// For unwinders: if `addr` (a return address found on a stack) is a
    /// return trampoline, the real return address it stands for, given the
    /// task and the frame identity ([`Arch::entry_frame`] of the call).
    /// `None` when `addr` is no trampoline or no instance matches.
    ///
    /// Takes the task's lock, waiting for a lifecycle call on it (from
    /// task context) or answering `None` when one holds it and the caller
    /// is inside the probe machinery.
    ///
    /// # Safety
    /// `task` is the current task (an unwinder walking its own stack, a
    /// return handler of it), or a task that cannot run meanwhile: when its
    /// own trap path holds the lock (a return handler calling this), the
    /// list is read without it. Not from a context (an NMI) that may have
    /// interrupted a lifecycle call on the same task on this CPU outside
    /// a probe handler: it would wait for that call forever.
    pub unsafe fn unwind_return_address(
        &self,
        task: &TaskState<A>,
        addr: usize,
        frame: usize,
    ) -> Option<usize> {
        let _guard = self.lock_for_walk(task).ok()?;
        let mut cur = task.ret_head.load(Ordering::Acquire);
        while cur != 0 {
            // SAFETY: a copy of the instance's record, read through a raw
            // pointer: it never overlaps the data a return handler holds.
            // The caller stops the task or is the task (an unwinder of the
            // current stack).
            let inst = unsafe { self.pool.meta(cur - 1) };
            if inst.trampoline == addr && inst.frame == frame && inst.real_ret != addr {
                return Some(inst.real_ret);
            }
            cur = self.pool.prev(cur - 1);
        }
        None
    }

    /// Real return addresses of `task`'s pending instances, newest first,
    /// as `(frame, trampoline, real return address)`: what a debugger or a
    /// detaching tracer needs to put the real addresses back.
    ///
    /// Reports nothing when a lifecycle call holds the task's lock and the
    /// caller is inside the probe machinery (see
    /// [`Engine::unwind_return_address`]).
    ///
    /// # Safety
    /// As for [`Engine::unwind_return_address`].
    pub unsafe fn pending_return_frames(
        &self,
        task: &TaskState<A>,
        mut f: impl FnMut(usize, usize, usize),
    ) {
        let Ok(_guard) = self.lock_for_walk(task) else {
            return;
        };
        let mut cur = task.ret_head.load(Ordering::Acquire);
        while cur != 0 {
            // SAFETY: as in `unwind_return_address`.
            let inst = unsafe { self.pool.meta(cur - 1) };
            f(inst.frame, inst.trampoline, inst.real_ret);
            cur = self.pool.prev(cur - 1);
        }
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
    /// The task's lock for a read-only walk of its list: `Ok(Some(_))`
    /// when taken, `Ok(None)` when a trap path (or another walker) holds
    /// it (a walker's caller promises that holder is the task's own trap
    /// path beneath it, or only reads), `Err(())` when a lifecycle call
    /// holds it and the caller is inside the probe machinery (waiting could
    /// deadlock). From task context a lifecycle holder is waited for.
    pub(crate) fn lock_for_walk<'t>(
        &self,
        task: &'t TaskState<A>,
    ) -> Result<Option<TaskGuard<'t, A>>, ()> {
        loop {
            if let Some(g) = task.try_lock(HELD_BY_TRAP) {
                return Ok(Some(g));
            }
            match task.holder() {
                HELD_BY_TRAP => return Ok(None),
                HELD_BY_LIFECYCLE if self.in_trap_context() => return Err(()),
                _ => core::hint::spin_loop(),
            }
        }
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
    > ReturnHook for Engine<A, L, K, PROBES, INSTANCES, CPUS, PAGES, DATA>
{
    /// Kernel-mode code trampolines land here.
    #[link_section = "probe_trap_text"]
    unsafe fn on_return(&self, regs: &mut dyn Registers) -> usize {
        match self.return_from(regs, Space::Kernel) {
            Some(real) => real,
            // The code trampoline has nowhere else to go: the task's return
            // stack does not match its real stack.
            None => panic!(
                "kernel return trampoline reached with no return-probe instance for this frame"
            ),
        }
    }
}
