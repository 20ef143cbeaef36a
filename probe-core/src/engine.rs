//! `Engine`: the probe engine's storage and its read-only queries.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use lock_api::RawMutex;
use probe_hal::{Arch, DataAccess, MemoryFault, ProbeError, ProbeErrorKind};

use crate::cpu::CpuState;
use crate::instances::InstancePool;
use crate::point::ProbePoint;
use crate::probe::ProbeRecord;
use crate::removed::RecentlyRemoved;
use crate::services::{KernelServices, Space};
use crate::spec::{ProbeId, ProbeInfo};
use crate::table::{Key, ProbeTable};
use crate::task::TaskState;
use crate::xol::XolArea;

/// State that only registration touches, behind the registration lock.
pub(crate) struct Registry<const PAGES: usize> {
    pub(crate) xol: XolArea<PAGES>,
    /// Detours of optimised probes.
    pub(crate) detours: crate::optimize::detours::DetourArea<PAGES>,
    /// The last instruction boundary the boundary walk reached: a batch in
    /// one function walks it once (cleared when the lock is taken anew).
    pub(crate) walk: Option<WalkCursor>,
    /// Where the search for a free probe record starts (the one after the
    /// last taken), so registering many probes stays linear.
    pub(crate) record_hint: usize,
    /// The same for probe points.
    pub(crate) point_hint: usize,
}

/// Where the boundary walk of one symbol stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalkCursor {
    pub(crate) space: Space,
    pub(crate) sym: crate::services::Symbol,
    /// An instruction boundary of `sym` the walk reached.
    pub(crate) at: usize,
}

/// A lock-free copy of one slot page's place, for [`Engine::in_slot`].
pub(crate) struct SlotPageMirror {
    /// Page base; 0 when the entry is unused.
    pub(crate) base: AtomicUsize,
    pub(crate) user: AtomicBool,
    pub(crate) id: AtomicUsize,
}

/// The probe engine.
///
/// Generic over the ISA backend `A`, the registration lock `L` (any
/// `lock_api::RawMutex`: a kernel's spinlock, `spin::Mutex`), the kernel's
/// services `K`, and its capacities:
/// - `PROBES`: registered probes of every kind, and distinct probed
///   addresses (each address needs at least one probe);
/// - `INSTANCES`: return-probe instances (tracked calls in flight), shared
///   by every return probe, each probe limited by its `maxactive`;
/// - `CPUS`: CPUs (`cpu_id()` is below it);
/// - `PAGES`: slot pages held at once (kernel and all user spaces);
/// - `DATA`: bytes of per-instance data a return probe may ask for.
///
/// Place it in a `static`: [`Engine::new`] is `const`. The trap path takes
/// no lock; registration takes `L` and may wait for a grace period.
pub struct Engine<
    A: Arch,
    L: RawMutex,
    K: KernelServices<A>,
    const PROBES: usize,
    const INSTANCES: usize,
    const CPUS: usize,
    const PAGES: usize = 8,
    const DATA: usize = 64,
> {
    pub(crate) services: K,
    pub(crate) registry: lock_api::Mutex<L, Registry<PAGES>>,
    pub(crate) probes: [ProbeRecord; PROBES],
    pub(crate) points: [ProbePoint<A>; PROBES],
    pub(crate) table: ProbeTable<PROBES>,
    pub(crate) cpus: [CpuState<A>; CPUS],
    pub(crate) pool: InstancePool<INSTANCES, DATA>,
    pub(crate) removed: RecentlyRemoved,
    pub(crate) slot_pages: [SlotPageMirror; PAGES],
    /// User steps dropped because their task left the slot without
    /// reaching its end (non-local jump out of a signal handler).
    pub(crate) leaked_user_steps: AtomicU32,
    /// The engine-wide jump-optimisation switch.
    pub(crate) optimize_on: AtomicBool,
    _arch: PhantomData<A>,
}

/// Data memory of one address space, through the kernel services.
pub(crate) struct SpaceMemory<'a, A: Arch, K: KernelServices<A>> {
    pub(crate) services: &'a K,
    pub(crate) space: Space,
    pub(crate) _arch: PhantomData<A>,
}

impl<A: Arch, K: KernelServices<A>> DataAccess for SpaceMemory<'_, A, K> {
    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        self.services.read(self.space, addr, buf)
    }
    fn write(&self, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
        self.services.write_data(self.space, addr, data)
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
    /// An engine with nothing registered, using `services`.
    pub const fn new(services: K) -> Self {
        Self {
            services,
            registry: lock_api::Mutex::const_new(
                L::INIT,
                Registry {
                    xol: XolArea::new(),
                    detours: crate::optimize::detours::DetourArea::new(),
                    walk: None,
                    record_hint: 0,
                    point_hint: 0,
                },
            ),
            probes: [const { ProbeRecord::new() }; PROBES],
            points: [const { ProbePoint::new() }; PROBES],
            table: ProbeTable::new(),
            cpus: [const { CpuState::new() }; CPUS],
            pool: InstancePool::new(),
            removed: RecentlyRemoved::new(),
            slot_pages: [const {
                SlotPageMirror {
                    base: AtomicUsize::new(0),
                    user: AtomicBool::new(false),
                    id: AtomicUsize::new(0),
                }
            }; PAGES],
            leaked_user_steps: AtomicU32::new(0),
            optimize_on: AtomicBool::new(true),
            _arch: PhantomData,
        }
    }

    /// Whether a probe handler (pre, post, return, or an attached handler
    /// object) is running on CPU `cpu` right now; false for an index out
    /// of range. For a host whose probe path runs with its interrupts
    /// enabled (the user-space harness, where signals play interrupts): its
    /// grace period asks, from an interrupt taken on `cpu`, whether the
    /// interrupted context is inside a handler. A kernel masks interrupts
    /// on the probe path and never needs it.
    #[link_section = "probe_trap_text"]
    pub fn handler_running(&self, cpu: usize) -> bool {
        self.cpus.get(cpu).is_some_and(|s| s.in_handler())
    }

    /// Whether the current CPU runs a probe handler or is inside the trap
    /// path (a step in flight): registration from there must fail, since
    /// it may wait for a grace period, and the interrupted context may
    /// hold the registration lock.
    pub(crate) fn in_trap_context(&self) -> bool {
        let cpu = self.services.cpu_id();
        let Some(state) = self.cpus.get(cpu) else {
            return false;
        };
        let busy = state.in_handler() || state.steps.depth() > 0;
        // A preempted registration may read another CPU's flags if it
        // migrated in between: only trust an answer given on one CPU.
        busy && self.services.cpu_id() == cpu
    }

    /// A free probe record, searching on from the last one taken.
    pub(crate) fn free_record(&self, reg: &mut Registry<PAGES>) -> Option<usize> {
        let i = (0..PROBES)
            .map(|k| (reg.record_hint + k) % PROBES)
            .find(|&i| self.probes[i].config().is_none())?;
        reg.record_hint = (i + 1) % PROBES;
        Some(i)
    }

    /// A free probe point, searching on from the last one taken.
    pub(crate) fn free_point(&self, reg: &mut Registry<PAGES>) -> Option<usize> {
        let i = (0..PROBES)
            .map(|k| (reg.point_hint + k) % PROBES)
            .find(|&i| !self.points[i].used.load(Ordering::Relaxed))?;
        reg.point_hint = (i + 1) % PROBES;
        Some(i)
    }

    /// Take the registration lock for a registration call: refused from
    /// trap context; frees points whose last parked user step ended.
    pub(crate) fn lock_registry(
        &self,
    ) -> Result<lock_api::MutexGuard<'_, L, Registry<PAGES>>, ProbeError> {
        if self.in_trap_context() {
            return Err(ProbeError::new(ProbeErrorKind::InTrapContext, 0));
        }
        let mut reg = self.registry.lock();
        reg.walk = None;
        self.reap_zombies(&mut reg);
        Ok(reg)
    }

    /// The registration lock for a query: from trap context only when it
    /// is free right now (waiting there could deadlock), else `None`.
    pub(crate) fn lock_for_query(&self) -> Option<lock_api::MutexGuard<'_, L, Registry<PAGES>>> {
        if self.in_trap_context() {
            self.registry.try_lock()
        } else {
            Some(self.registry.lock())
        }
    }

    /// Copy the slot pages' places where [`Engine::in_slot`] reads them
    /// without the lock (after every change of the slot area).
    pub(crate) fn mirror_slot_pages(&self, reg: &Registry<PAGES>) {
        for (i, m) in self.slot_pages.iter().enumerate() {
            match reg.xol.page(i) {
                Some((space, base)) => {
                    let (user, id) = space.parts();
                    m.user.store(user, Ordering::Relaxed);
                    m.id.store(id, Ordering::Relaxed);
                    m.base.store(base, Ordering::Release);
                }
                None => m.base.store(0, Ordering::Release),
            }
        }
    }

    /// Whether `pc` lies in one of the engine's out-of-line slot pages of
    /// `space`. Takes no lock: a kernel's grace period
    /// ([`KernelServices::synchronize`]) uses it to tell whether a
    /// preempted task (or a task stopped in user mode) still has its saved
    /// pc inside a slot, and must be waited for.
    pub fn in_slot(&self, space: Space, pc: usize) -> bool {
        let page = self.services.slot_page_size();
        let (user, id) = space.parts();
        self.slot_pages.iter().any(|m| {
            let base = m.base.load(Ordering::Acquire);
            base != 0
                && pc >= base
                && pc - base < page
                && m.user.load(Ordering::Relaxed) == user
                && m.id.load(Ordering::Relaxed) == id
        })
    }

    /// The kernel services the engine was built with.
    pub fn services(&self) -> &K {
        &self.services
    }

    #[link_section = "probe_trap_text"]
    pub(crate) fn memory(&self, space: Space) -> SpaceMemory<'_, A, K> {
        SpaceMemory {
            services: &self.services,
            space,
            _arch: PhantomData,
        }
    }

    /// The point registered at `addr` in `space`, if any (trap path: no lock).
    #[link_section = "probe_trap_text"]
    #[inline(always)]
    pub(crate) fn find_point(&self, space: Space, addr: usize) -> Option<u32> {
        let key = Key { space, addr };
        self.table.lookup(key, |i| self.points[i as usize].key())
    }

    /// The record of a live probe `id`, or `NoSuchProbe`.
    pub(crate) fn record(&self, id: ProbeId) -> Result<&ProbeRecord, ProbeError> {
        let no = ProbeError::new(ProbeErrorKind::NoSuchProbe, 0);
        let rec = self.probes.get(id.index as usize).ok_or(no)?;
        if rec.generation() != id.generation || rec.config().is_none() {
            return Err(no);
        }
        Ok(rec)
    }

    fn info_of(&self, index: usize) -> Option<ProbeInfo> {
        let rec = &self.probes[index];
        let cfg = rec.config()?;
        let point = self.points[cfg.point as usize].info();
        Some(ProbeInfo {
            id: ProbeId {
                index: index as u32,
                generation: rec.generation(),
            },
            addr: point.addr,
            space: point.space,
            kind: cfg.kind(),
            enabled: rec.enabled.load(Ordering::Relaxed),
            hits: rec.hits.load(Ordering::Relaxed),
            missed: rec.missed.load(Ordering::Relaxed),
            attached: Self::count_attached(rec),
            optimization: self.optimization_of(cfg.point),
        })
    }

    /// Address, kind, state and counters of probe `id`.
    pub fn info(&self, id: ProbeId) -> Result<ProbeInfo, ProbeError> {
        let _reg = self
            .lock_for_query()
            .ok_or(ProbeError::new(ProbeErrorKind::InTrapContext, 0))?;
        self.record(id)?;
        self.info_of(id.index as usize)
            .ok_or(ProbeError::new(ProbeErrorKind::NoSuchProbe, 0))
    }

    /// Every registered probe, in table order (at most `N`; see also
    /// [`Engine::list_into`]).
    pub fn list<const N: usize>(&self) -> heapless::Vec<ProbeInfo, N> {
        let mut out = heapless::Vec::new();
        let Some(_reg) = self.lock_for_query() else {
            return out;
        };
        for i in 0..PROBES {
            if let Some(info) = self.info_of(i) {
                if out.push(info).is_err() {
                    break;
                }
            }
        }
        out
    }

    /// Write the probe list, one line per probe in table order, each
    /// [`ProbeInfo`]'s `Display` (Linux's `/sys/kernel/debug/kprobes/list`
    /// shape). Formats under the registration lock: `out` must not call
    /// into the engine. From trap context it writes nothing unless the lock
    /// is free.
    pub fn write_list(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        let Some(_reg) = self.lock_for_query() else {
            return Ok(());
        };
        (0..PROBES)
            .filter_map(|i| self.info_of(i))
            .try_for_each(|info| writeln!(out, "{info}"))
    }

    /// Fill `out` with registered probes; returns how many there are in all
    /// (possibly more than `out` holds).
    pub fn list_into(&self, out: &mut [ProbeInfo]) -> usize {
        let Some(_reg) = self.lock_for_query() else {
            return 0;
        };
        let mut n = 0;
        for i in 0..PROBES {
            if let Some(info) = self.info_of(i) {
                if let Some(slot) = out.get_mut(n) {
                    *slot = info;
                }
                n += 1;
            }
        }
        n
    }

    /// Return-probe instances not in use (the pool's free count).
    pub fn free_instances(&self) -> usize {
        let Some(_reg) = self.lock_for_query() else {
            return 0;
        };
        self.pool.init();
        self.pool.free_count()
    }

    /// Steps dropped as leaked: a context (a CPU's nested trap, a task's
    /// signal handler) that left an out-of-line slot without reaching its
    /// end, e.g. by a non-local jump. Each is logged when it happens; the
    /// CPU or task goes on probing.
    pub fn leaked_steps(&self) -> u64 {
        let cpus: u64 = self
            .cpus
            .iter()
            .map(|c| c.steps.evicted.load(Ordering::Relaxed) as u64)
            .sum();
        cpus + self.leaked_user_steps.load(Ordering::Relaxed) as u64
    }

    /// Return-probe instances held by `task`. Takes no lock (a diagnostic
    /// must not make the task's own return probes miss, nor make its
    /// kernel returns find the list busy): the links are atomic and the
    /// walk is bounded, so counting a list that changes meanwhile gives a
    /// stale or off count, never undefined behaviour.
    pub fn pending_returns(&self, task: &TaskState<A>) -> usize {
        self.pool.chain_len(task.ret_head.load(Ordering::Acquire))
    }

    /// Out-of-line slots in use and slot pages held (diagnostics).
    pub fn slot_usage(&self) -> (usize, usize) {
        let Some(reg) = self.lock_for_query() else {
            return (0, 0);
        };
        (reg.xol.slots_in_use(), reg.xol.pages_held())
    }

    /// Whether a breakpoint is currently written at `addr` in `space`.
    pub fn is_armed(&self, space: Space, addr: usize) -> bool {
        let Some(_reg) = self.lock_for_query() else {
            return false;
        };
        self.find_point(space, addr)
            .is_some_and(|p| self.points[p as usize].armed.load(Ordering::Relaxed))
    }
}
