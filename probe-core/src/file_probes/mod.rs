//! Uprobes by file: a probe on an instruction of a file (an executable or
//! library) applies to every address space that maps the file, now and
//! later, as Linux's `uprobe_register(inode, offset)` does.
//!
//! The engine's own uprobes are per address space. [`FileUprobes`] sits on
//! top of it and keeps, under its own lock, the file probes, the mappings
//! of probed files the kernel reported, and the per-space uprobes it
//! registered for them. The kernel calls its hooks:
//!
//! | event | hook |
//! |---|---|
//! | a file is mapped executable (mmap, exec, dlopen), or a data mapping of it that may hold a USDT semaphore | [`FileUprobes::mapped`] |
//! | a mapping goes (munmap), before its memory does | [`FileUprobes::unmapped`] |
//! | fork, after [`crate::Engine::fork_space`] | [`FileUprobes::forked`] |
//! | an address space is torn down, after [`crate::Engine::release_space`] | [`FileUprobes::space_released`] |
//!
//! **Fork.** An address-space uprobe does not follow a fork: `fork_space`
//! gives the child its original bytes back. A file uprobe does, as in Linux
//! (the child's copied breakpoints fire there): `forked` registers the
//! file's probes in the child, and the child's USDT semaphores keep the
//! values they were copied with (they already count the events).
//!
//! **USDT semaphores** (`REF_CTR_OFFSET`, Linux's `ref_ctr_offset`): a
//! 16-bit counter at a file offset that the probed program tests before
//! doing the work of a probe site. While a file probe with one is enabled,
//! the counter is incremented once in every address space that has the
//! probe and a mapping of the counter's offset (it may come later than the
//! text's: data is usually a separate mapping), and decremented when the
//! probe goes from that space (disable, unregister, unmap).

use lock_api::{Mutex, RawMutex};
use probe_hal::{Capacity, ProbeError, ProbeErrorKind};

use crate::services::Space;
use crate::spec::{ProbeId, ProbeSpec, Target};

mod host;
mod semaphore;

pub use host::UprobeHost;
use semaphore::{add_to_semaphore, count_semaphore};

/// The kernel's identity of a file (device and inode number, as
/// `/proc/PID/maps` shows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// A uprobe on a file.
#[derive(Clone, Copy)]
pub struct FileUprobe {
    /// The file.
    pub file: FileId,
    /// File offset of the probed instruction.
    pub offset: u64,
    /// File offset of the USDT semaphore, if any.
    pub ref_ctr: Option<u64>,
    /// The probe to place in each space: a [`crate::Kprobe`] or a
    /// [`crate::Kretprobe`] whose target and space are ignored (each
    /// instance is placed at the mapped address of `offset`), with its
    /// handlers, data and enabled state.
    pub spec: ProbeSpec<'static>,
}

/// Identifies a file uprobe (stale after [`FileUprobes::unregister`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileProbeId {
    index: u32,
    generation: u32,
}

#[derive(Clone, Copy)]
struct Def {
    probe: FileUprobe,
    enabled: bool,
    generation: u32,
}

#[derive(Clone, Copy)]
pub(crate) struct Instance {
    def: u32,
    space: usize,
    id: ProbeId,
    /// The semaphore's address in this space once it was counted.
    counted: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mapping {
    space: usize,
    file: FileId,
    region: FileMapping,
}

/// One mapping of a file, as the kernel reports it to
/// [`FileUprobes::mapped`] (a line of `/proc/PID/maps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMapping {
    /// Its start address.
    pub start: usize,
    /// Its length in bytes.
    pub len: usize,
    /// The file offset mapped at `start`.
    pub file_off: u64,
    /// Mapped executable (`x`).
    pub exec: bool,
    /// Mapped writable (`w`).
    pub write: bool,
    /// Shared (`s`) rather than private (`p`).
    pub shared: bool,
}

impl FileMapping {
    /// Where file offset `off` is mapped in this mapping, if it is.
    fn addr_of(&self, off: u64) -> Option<usize> {
        let rel = off.checked_sub(self.file_off)?;
        (rel < self.len as u64).then(|| self.start + rel as usize)
    }

    /// Probes go in private executable mappings only (Linux's
    /// `valid_vma`: the program runs that copy of the page; a read-only
    /// alias of the same file page at a segment boundary is never run).
    fn holds_probes(&self) -> bool {
        self.exec && !self.shared
    }

    /// Semaphores count in private writable mappings only (Linux's
    /// `valid_ref_ctr_vma`: the program reads that copy).
    fn holds_counters(&self) -> bool {
        self.write && !self.shared
    }
}

impl Mapping {
    /// Where probe offset `off` is placed in this mapping, if it is.
    fn probe_addr(&self, off: u64) -> Option<usize> {
        self.region
            .holds_probes()
            .then(|| self.region.addr_of(off))
            .flatten()
    }

    /// Where counter offset `off` lives in this mapping, if it does.
    fn counter_addr(&self, off: u64) -> Option<usize> {
        self.region
            .holds_counters()
            .then(|| self.region.addr_of(off))
            .flatten()
    }

    fn start(&self) -> usize {
        self.region.start
    }
}

struct State<const N: usize, const M: usize> {
    defs: [Option<Def>; N],
    generations: [u32; N],
    instances: heapless::Vec<Instance, M>,
    mappings: heapless::Vec<Mapping, M>,
}

/// Up to `N` file uprobes with `M` per-space instances (and `M` recorded
/// mappings of probed files), under the lock `L` (same rules as the
/// engine's registration lock: every method may wait for grace periods).
///
/// Every method is for registration context; those that take the engine
/// refuse a call from a probe handler with
/// [`ProbeErrorKind::InTrapContext`] before taking `L`, and
/// [`FileUprobes::address_of`] never waits. `space_released` and
/// `placements` take `L` unconditionally: never call them from a handler.
pub struct FileUprobes<L: RawMutex, const N: usize, const M: usize> {
    state: Mutex<L, State<N, M>>,
}

fn full() -> ProbeError {
    ProbeError::new(ProbeErrorKind::CapacityFull(Capacity::Probes), 0)
}

fn in_trap() -> ProbeError {
    ProbeError::new(ProbeErrorKind::InTrapContext, 0)
}

fn no_such() -> ProbeError {
    ProbeError::new(ProbeErrorKind::NoSuchProbe, 0)
}

/// `spec` placed at `addr` in user space `space`.
fn placed(
    spec: &ProbeSpec<'static>,
    space: usize,
    addr: usize,
    enabled: bool,
) -> ProbeSpec<'static> {
    let mut s = *spec;
    match &mut s {
        ProbeSpec::Kprobe(p) => {
            p.target = Target::Addr(addr);
            p.space = Space::User(space);
            p.enabled = enabled;
        }
        ProbeSpec::Kretprobe(p) => {
            p.target = Target::Addr(addr);
            p.space = Space::User(space);
            p.enabled = enabled;
        }
    }
    s
}

fn spec_enabled(spec: &ProbeSpec<'_>) -> bool {
    match spec {
        ProbeSpec::Kprobe(p) => p.enabled,
        ProbeSpec::Kretprobe(p) => p.enabled,
    }
}

impl<L: RawMutex, const N: usize, const M: usize> Default for FileUprobes<L, N, M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<L: RawMutex, const N: usize, const M: usize> FileUprobes<L, N, M> {
    /// No file probes, no mappings.
    pub const fn new() -> Self {
        Self {
            state: Mutex::const_new(
                L::INIT,
                State {
                    defs: [None; N],
                    generations: [1; N],
                    instances: heapless::Vec::new(),
                    mappings: heapless::Vec::new(),
                },
            ),
        }
    }

    /// Register a file uprobe and place it in every space that maps its
    /// offset now. All or nothing: on an error (the engine's, or
    /// [`Capacity::Probes`] when this table is full) nothing is registered.
    pub fn register(
        &self,
        host: &dyn UprobeHost,
        probe: FileUprobe,
    ) -> Result<FileProbeId, ProbeError> {
        if host.in_trap_context() {
            return Err(in_trap());
        }
        let mut st = self.state.lock();
        let Some(index) = st.defs.iter().position(Option::is_none) else {
            return Err(full());
        };
        let generation = st.generations[index];
        st.defs[index] = Some(Def {
            probe,
            enabled: spec_enabled(&probe.spec),
            generation,
        });
        let maps: heapless::Vec<Mapping, M> = st
            .mappings
            .iter()
            .filter(|m| m.file == probe.file)
            .copied()
            .collect();
        let before = st.instances.len();
        for m in &maps {
            if let Err(e) = place(&mut st, host, index as u32, m) {
                remove_instances(&mut st, host, |i| i.def == index as u32, before);
                st.defs[index] = None;
                return Err(e);
            }
        }
        Ok(FileProbeId {
            index: index as u32,
            generation,
        })
    }

    /// Unregister a file uprobe from every space (its semaphores counted
    /// down).
    pub fn unregister(&self, host: &dyn UprobeHost, id: FileProbeId) -> Result<(), ProbeError> {
        if host.in_trap_context() {
            return Err(in_trap());
        }
        let mut st = self.state.lock();
        let index = live(&st, id)?;
        remove_instances(&mut st, host, |i| i.def == index, 0);
        st.defs[index as usize] = None;
        st.generations[index as usize] = st.generations[index as usize].wrapping_add(1).max(1);
        Ok(())
    }

    /// Enable or disable a file uprobe in every space (semaphores follow).
    /// All or nothing: when the engine cannot switch one space (its text
    /// write failed), the spaces switched before it are switched back.
    pub fn set_enabled(
        &self,
        host: &dyn UprobeHost,
        id: FileProbeId,
        on: bool,
    ) -> Result<(), ProbeError> {
        if host.in_trap_context() {
            return Err(in_trap());
        }
        let mut st = self.state.lock();
        let index = live(&st, id)?;
        let st = &mut *st;
        let def = st.defs[index as usize].as_mut().ok_or_else(no_such)?;
        if def.enabled == on {
            return Ok(());
        }
        let ref_ctr = def.probe.ref_ctr;
        let file = def.probe.file;
        let switch = |inst: &mut Instance, on: bool| -> Result<(), ProbeError> {
            host.set_enabled(inst.id, on)?;
            if on {
                count_semaphore(&st.mappings, host, inst, file, ref_ctr);
            } else if let Some(addr) = inst.counted.take() {
                add_to_semaphore(host, inst.space, addr, -1);
            }
            Ok(())
        };
        let mine = |i: &&mut Instance| i.def == index;
        let mut done = 0;
        let mut failure = None;
        for inst in st.instances.iter_mut().filter(mine) {
            if let Err(e) = switch(inst, on) {
                failure = Some(e);
                break;
            }
            done += 1;
        }
        if let Some(e) = failure {
            // All or nothing: the spaces already switched go back (a write
            // that fails again leaves that one as the engine left it).
            for inst in st.instances.iter_mut().filter(mine).take(done) {
                let _ = switch(inst, !on);
            }
            return Err(e);
        }
        def.enabled = on;
        Ok(())
    }

    /// The kernel mapped part of `file` in `space` (`region`): every file
    /// probe whose offset falls inside a private executable mapping is
    /// placed there, and semaphores that fall inside a private writable one
    /// are counted; other mappings are recorded and ignored. Report every
    /// mapping of a file that has file probes (text and data). All or
    /// nothing for this mapping.
    pub fn mapped(
        &self,
        host: &dyn UprobeHost,
        space: usize,
        file: FileId,
        region: FileMapping,
    ) -> Result<(), ProbeError> {
        if host.in_trap_context() {
            return Err(in_trap());
        }
        let mut st = self.state.lock();
        let m = Mapping {
            space,
            file,
            region,
        };
        if st.mappings.push(m).is_err() {
            return Err(full());
        }
        let before = st.instances.len();
        for d in 0..N {
            let Some(def) = st.defs[d] else { continue };
            if def.probe.file != file {
                continue;
            }
            if let Err(e) = place(&mut st, host, d as u32, &m) {
                remove_instances(&mut st, host, |i| i.space == space, before);
                st.mappings.pop();
                return Err(e);
            }
        }
        // Semaphores of probes already placed in this space whose counter
        // this mapping brings.
        let st = &mut *st;
        for inst in st.instances.iter_mut().filter(|i| i.space == space) {
            let Some(def) = st.defs[inst.def as usize] else {
                continue;
            };
            if def.enabled && def.probe.file == file {
                count_semaphore(&st.mappings, host, inst, file, def.probe.ref_ctr);
            }
        }
        Ok(())
    }

    /// The kernel is about to unmap `start..start + len` of `space`: the
    /// file probes placed there go (original bytes written back), their
    /// semaphores there are counted down. If the engine fails to remove
    /// one (its text cannot be written back), the ones removed before it
    /// stay removed and the mapping stays recorded: the error says which
    /// probe, and a later call retries the rest.
    pub fn unmapped(
        &self,
        host: &dyn UprobeHost,
        space: usize,
        start: usize,
        len: usize,
    ) -> Result<(), ProbeError> {
        if host.in_trap_context() {
            return Err(in_trap());
        }
        let mut st = self.state.lock();
        let inside = |a: usize| a >= start && a - start < len;
        // Semaphores whose counter goes with this mapping stop counting.
        for inst in st.instances.iter_mut().filter(|i| i.space == space) {
            if inst.counted.is_some_and(inside) {
                inst.counted = None;
            }
        }
        let mut k = 0;
        while k < st.instances.len() {
            let inst = st.instances[k];
            if inst.space == space && instance_addr(&st, &inst).is_some_and(inside) {
                host.unregister(inst.id)?;
                if let Some(c) = inst.counted {
                    add_to_semaphore(host, space, c, -1);
                }
                st.instances.swap_remove(k);
            } else {
                k += 1;
            }
        }
        st.mappings
            .retain(|m| !(m.space == space && inside(m.start())));
        Ok(())
    }

    /// After [`crate::Engine::fork_space`]`(parent, child, …)`: the child
    /// maps what the parent mapped, and the parent's file probes follow
    /// into it (its semaphores keep their copied values). All or nothing.
    pub fn forked(
        &self,
        host: &dyn UprobeHost,
        parent: usize,
        child: usize,
    ) -> Result<(), ProbeError> {
        if host.in_trap_context() {
            return Err(in_trap());
        }
        let mut st = self.state.lock();
        let (maps_before, inst_before) = (st.mappings.len(), st.instances.len());
        let parents: heapless::Vec<Mapping, M> = st
            .mappings
            .iter()
            .filter(|m| m.space == parent)
            .copied()
            .collect();
        for m in &parents {
            let mut c = *m;
            c.space = child;
            if st.mappings.push(c).is_err() {
                st.mappings.truncate(maps_before);
                return Err(full());
            }
        }
        let placed_in_parent: heapless::Vec<Instance, M> = st
            .instances
            .iter()
            .filter(|i| i.space == parent)
            .copied()
            .collect();
        for pi in &placed_in_parent {
            let Some(def) = st.defs[pi.def as usize] else {
                continue;
            };
            let Some(addr) = instance_addr(&st, pi) else {
                continue;
            };
            let spec = placed(&def.probe.spec, child, addr, def.enabled);
            let result = host.register(&spec).and_then(|id| {
                st.instances
                    .push(Instance {
                        def: pi.def,
                        space: child,
                        id,
                        // The copied counter already counts this probe.
                        counted: pi.counted,
                    })
                    .map_err(|_| {
                        let _ = host.unregister(id);
                        full()
                    })
            });
            if let Err(e) = result {
                while st.instances.len() > inst_before {
                    if let Some(i) = st.instances.pop() {
                        let _ = host.unregister(i.id);
                    }
                }
                st.mappings.truncate(maps_before);
                return Err(e);
            }
        }
        Ok(())
    }

    /// After [`crate::Engine::release_space`]`(space)`: forget the space's
    /// mappings and instances (the engine already removed its probes; its
    /// memory is gone, so no semaphore is written).
    pub fn space_released(&self, space: usize) {
        let mut st = self.state.lock();
        st.instances.retain(|i| i.space != space);
        st.mappings.retain(|m| m.space != space);
    }

    /// Where file offset `off` of `file` is mapped in `space` (any mapping),
    /// for fetch arguments such as `@+OFFSET`. Callable from a probe
    /// handler: `None` when the table is busy right now (never waits).
    pub fn address_of(&self, space: usize, file: FileId, off: u64) -> Option<usize> {
        let st = self.state.try_lock()?;
        st.mappings
            .iter()
            .filter(|m| m.space == space && m.file == file)
            .find_map(|m| m.region.addr_of(off))
    }

    /// The spaces a file uprobe is placed in right now, with their probe
    /// ids (at most `K`).
    pub fn placements<const K: usize>(
        &self,
        id: FileProbeId,
    ) -> heapless::Vec<(usize, ProbeId), K> {
        let st = self.state.lock();
        let mut out = heapless::Vec::new();
        if let Ok(index) = live(&st, id) {
            for i in st.instances.iter().filter(|i| i.def == index) {
                let _ = out.push((i.space, i.id));
            }
        }
        out
    }
}

/// The index of a live file probe.
fn live<const N: usize, const M: usize>(
    st: &State<N, M>,
    id: FileProbeId,
) -> Result<u32, ProbeError> {
    match st.defs.get(id.index as usize) {
        Some(Some(d)) if d.generation == id.generation => Ok(id.index),
        _ => Err(no_such()),
    }
}

/// Where an instance's probe sits (through the mapping it was placed in).
fn instance_addr<const N: usize, const M: usize>(
    st: &State<N, M>,
    inst: &Instance,
) -> Option<usize> {
    let def = st.defs[inst.def as usize]?;
    st.mappings
        .iter()
        .filter(|m| m.space == inst.space && m.file == def.probe.file)
        .find_map(|m| m.probe_addr(def.probe.offset))
}

/// Place file probe `d` in mapping `m` if its offset falls inside (and it
/// is not placed in that space already).
fn place<const N: usize, const M: usize>(
    st: &mut State<N, M>,
    host: &dyn UprobeHost,
    d: u32,
    m: &Mapping,
) -> Result<(), ProbeError> {
    let Some(def) = st.defs[d as usize] else {
        return Ok(());
    };
    let Some(addr) = m.probe_addr(def.probe.offset) else {
        return Ok(());
    };
    if st
        .instances
        .iter()
        .any(|i| i.def == d && i.space == m.space)
    {
        return Ok(());
    }
    if st.instances.is_full() {
        return Err(full());
    }
    let id = host.register(&placed(&def.probe.spec, m.space, addr, def.enabled))?;
    let mut inst = Instance {
        def: d,
        space: m.space,
        id,
        counted: None,
    };
    if def.enabled {
        count_semaphore(
            &st.mappings,
            host,
            &mut inst,
            def.probe.file,
            def.probe.ref_ctr,
        );
    }
    let _ = st.instances.push(inst);
    Ok(())
}

/// Unregister the instances from index `from` on that `pick` selects,
/// counting their semaphores down.
fn remove_instances<const N: usize, const M: usize>(
    st: &mut State<N, M>,
    host: &dyn UprobeHost,
    pick: impl Fn(&Instance) -> bool,
    from: usize,
) {
    let mut k = from;
    while k < st.instances.len() {
        let inst = st.instances[k];
        if pick(&inst) {
            let _ = host.unregister(inst.id);
            if let Some(c) = inst.counted {
                add_to_semaphore(host, inst.space, c, -1);
            }
            st.instances.swap_remove(k);
        } else {
            k += 1;
        }
    }
}
