//! `Engine`: the probe engine's storage and its read-only queries.

use core::marker::PhantomData;
use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::{Arch, DataAccess, MemoryFault, ProbeError, ProbeErrorKind};

use crate::cpu::CpuState;
use crate::instances::InstancePool;
use crate::point::{space_key, ProbePoint};
use crate::probe::{Handlers, ProbeRecord};
use crate::services::{KernelServices, Space};
use crate::spec::{ProbeId, ProbeInfo, ProbeKind};
use crate::table::{Key, ProbeTable};
use crate::task::TaskState;
use crate::xol::XolArea;

/// State that only registration touches, behind the registration lock.
pub(crate) struct Registry<const PAGES: usize> {
    pub(crate) xol: XolArea<PAGES>,
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
                },
            ),
            probes: [const { ProbeRecord::new() }; PROBES],
            points: [const { ProbePoint::new() }; PROBES],
            table: ProbeTable::new(),
            cpus: [const { CpuState::new() }; CPUS],
            pool: InstancePool::new(),
            _arch: PhantomData,
        }
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
    pub(crate) fn find_point(&self, space: Space, addr: usize) -> Option<u32> {
        let key = Key {
            space: space_key(space),
            addr,
        };
        self.table.lookup(key, |i| self.points[i as usize].key())
    }

    /// The record of a live probe `id`, or `NoSuchProbe`.
    pub(crate) fn record(&self, id: ProbeId) -> Result<&ProbeRecord, ProbeError> {
        let no = ProbeError::new(ProbeErrorKind::NoSuchProbe, 0);
        let rec = self.probes.get(id.index as usize).ok_or(no)?;
        if rec.generation.load(Ordering::Acquire) != id.generation || rec.config().is_none() {
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
                generation: rec.generation.load(Ordering::Relaxed),
            },
            addr: point.addr,
            space: point.space,
            kind: match cfg.handlers {
                Handlers::Kprobe { .. } => ProbeKind::Kprobe,
                Handlers::Kretprobe { .. } => ProbeKind::Kretprobe,
            },
            enabled: rec.enabled.load(Ordering::Relaxed),
            hits: rec.hits.load(Ordering::Relaxed),
            missed: rec.missed.load(Ordering::Relaxed),
        })
    }

    /// Address, kind, state and counters of probe `id`.
    pub fn info(&self, id: ProbeId) -> Result<ProbeInfo, ProbeError> {
        let _reg = self.registry.lock();
        self.record(id)?;
        self.info_of(id.index as usize)
            .ok_or(ProbeError::new(ProbeErrorKind::NoSuchProbe, 0))
    }

    /// Every registered probe, in table order (at most `N`; see also
    /// [`Engine::list_into`]).
    pub fn list<const N: usize>(&self) -> heapless::Vec<ProbeInfo, N> {
        let mut out = heapless::Vec::new();
        let _reg = self.registry.lock();
        for i in 0..PROBES {
            if let Some(info) = self.info_of(i) {
                if out.push(info).is_err() {
                    break;
                }
            }
        }
        out
    }

    /// Fill `out` with registered probes; returns how many there are in all
    /// (possibly more than `out` holds).
    pub fn list_into(&self, out: &mut [ProbeInfo]) -> usize {
        let _reg = self.registry.lock();
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
        let _reg = self.registry.lock();
        self.pool.init();
        self.pool.free_count()
    }

    /// Return-probe instances held by `task`.
    pub fn pending_returns(&self, task: &TaskState<A>) -> usize {
        self.pool.chain_len(task.ret_head.load(Ordering::Acquire))
    }

    /// Out-of-line slots in use and slot pages held (diagnostics).
    pub fn slot_usage(&self) -> (usize, usize) {
        let reg = self.registry.lock();
        (reg.xol.slots_in_use(), reg.xol.pages_held())
    }

    /// Whether a breakpoint is currently written at `addr` in `space`.
    pub fn is_armed(&self, space: Space, addr: usize) -> bool {
        let _reg = self.registry.lock();
        self.find_point(space, addr)
            .is_some_and(|p| self.points[p as usize].armed.load(Ordering::Relaxed))
    }
}
