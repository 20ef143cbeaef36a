//! `World`: the mock kernel the Toy machine runs in. It implements the
//! engine's `KernelServices`, records every call, and asserts the protocol
//! the engine owes a kernel:
//! - every text write is followed by an instruction-cache sync before the
//!   bytes execute (the interpreter refuses to fetch unsynced bytes);
//! - no slot page is given back while a CPU executes in it, nor before a
//!   grace period that followed the last breakpoint removal.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

use probe_core::{KernelServices, Space, Symbol, TaskState, TextPatchError};
use probe_hal::MemoryFault;

use crate::arch::Toy;

/// Bytes of memory in every address space.
pub const MEM_SIZE: usize = 0x2_0000;
/// Addresses below this fault (an unmapped first page).
pub const GUARD: usize = 0x100;
/// Where slot pages are handed out from.
pub const SLOT_AREA: usize = 0x8000;
/// Slot page size (small, so tests cross page boundaries).
pub const PAGE: usize = 256;
/// Number of tasks the world has.
pub const TASKS: usize = 8;
/// Where detour pages are handed out from (above the slot pages, below the
/// stacks; within `ojmp` reach of all kernel text).
pub const DETOUR_AREA: usize = 0xa000;
/// Detour pages in [`DETOUR_AREA`].
pub const DETOUR_AREA_PAGES: usize = 32;
/// Pages a misbehaving kernel hands out as detour memory out of reach
/// ([`World::far_detours`]).
pub const FAR_DETOUR_AREA: usize = 0x1e000;

/// How the world answers `alloc_detour_page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detours {
    /// No detour memory (the default: nothing is jump-optimised).
    Off,
    /// Pages of [`DETOUR_AREA`], `None` when out of the reach asked for.
    Near,
    /// Pages of [`FAR_DETOUR_AREA`] whatever the reach asked for (the
    /// engine must check the reach itself and give them back).
    Far,
}

/// One recorded service call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `write_text`
    TextWrite {
        /// Where.
        space: Space,
        /// Address.
        addr: usize,
        /// Bytes written.
        len: usize,
    },
    /// `sync_icache`
    IcacheSync {
        /// Where.
        space: Space,
        /// Address.
        addr: usize,
        /// Length.
        len: usize,
    },
    /// `synchronize`
    GracePeriod,
    /// `alloc_slot_page`
    PageAlloc(Space, usize),
    /// `free_slot_page`
    PageFree(Space, usize),
    /// `alloc_detour_page`
    DetourAlloc(usize),
    /// `free_detour_page`
    DetourFree(usize),
}

struct SpaceMem {
    bytes: Vec<u8>,
    /// Written text not yet synced to instruction fetch.
    dirty: Vec<Range<usize>>,
}

/// See the module documentation.
pub struct World {
    spaces: Mutex<BTreeMap<(bool, usize), SpaceMem>>,
    /// Every service call, in order.
    pub log: Mutex<Vec<Event>>,
    cpu: AtomicUsize,
    task: AtomicUsize,
    /// The tasks' probe state.
    pub tasks: [TaskState<Toy>; TASKS],
    task_space: [AtomicUsize; TASKS],
    symbols: Mutex<Vec<(&'static str, Symbol)>>,
    blacklist: Vec<Range<usize>>,
    /// Addresses whose text writes fail, each after that many more
    /// successful writes there.
    failing_writes: Mutex<Vec<(usize, usize)>>,
    /// `read` calls the engine made (registration cost).
    pub reads: AtomicUsize,
    page_limit: AtomicUsize,
    far_pages: AtomicBool,
    no_preempt_wait: AtomicBool,
    pages: Mutex<Vec<(Space, usize)>>,
    /// Runs after every text write: a test runs other CPUs while the engine
    /// holds its registration lock.
    text_write_hook: Mutex<Option<Box<dyn FnMut() + Send>>>,
    /// Runs inside `synchronize`: a test lets other CPUs move on here.
    sync_hook: Mutex<Option<Box<dyn FnMut() + Send>>>,
    /// Runs after every icache sync (a text write complete and visible).
    synced_hook: Mutex<Option<Box<dyn FnMut() + Send>>>,
    /// pc of every CPU, kept by the interpreter (for the slot-release check).
    pub cpu_pcs: Mutex<BTreeMap<usize, (Space, usize)>>,
    /// Kernel fault fix-ups: faulting pc -> continuation pc.
    pub fixups: Mutex<Vec<(usize, usize)>>,
    detour_mode: AtomicU8,
    detour_page_limit: AtomicUsize,
    detour_pages: Mutex<Vec<usize>>,
    text_patch_sites: Mutex<Vec<usize>>,
    traps_taken: AtomicU64,
    detour_entries: AtomicU64,
    wait_for_patches: AtomicBool,
}

thread_local! {
    /// The CPU and task of a thread that plays a CPU of its own
    /// ([`World::per_thread_cpu`]); `None`: the world's shared ones.
    static THIS_THREAD: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

fn key(space: Space) -> (bool, usize) {
    match space {
        Space::Kernel => (false, 0),
        Space::User(a) => (true, a),
    }
}

impl World {
    /// A world with empty memory, the given kernel blacklist.
    pub fn new(blacklist: &[Range<usize>]) -> Self {
        Self {
            spaces: Mutex::new(BTreeMap::new()),
            log: Mutex::new(Vec::new()),
            cpu: AtomicUsize::new(0),
            task: AtomicUsize::new(0),
            tasks: [const { TaskState::new() }; TASKS],
            task_space: [const { AtomicUsize::new(0) }; TASKS],
            symbols: Mutex::new(Vec::new()),
            blacklist: blacklist.to_vec(),
            failing_writes: Mutex::new(Vec::new()),
            reads: AtomicUsize::new(0),
            page_limit: AtomicUsize::new(usize::MAX),
            far_pages: AtomicBool::new(false),
            no_preempt_wait: AtomicBool::new(false),
            pages: Mutex::new(Vec::new()),
            text_write_hook: Mutex::new(None),
            sync_hook: Mutex::new(None),
            synced_hook: Mutex::new(None),
            cpu_pcs: Mutex::new(BTreeMap::new()),
            fixups: Mutex::new(Vec::new()),
            detour_mode: AtomicU8::new(0),
            detour_page_limit: AtomicUsize::new(usize::MAX),
            detour_pages: Mutex::new(Vec::new()),
            text_patch_sites: Mutex::new(Vec::new()),
            traps_taken: AtomicU64::new(0),
            detour_entries: AtomicU64::new(0),
            wait_for_patches: AtomicBool::new(false),
        }
    }

    /// How `alloc_detour_page` answers from now on ([`Detours::Off`] by
    /// default: existing tests see no jump optimisation unless they opt
    /// in).
    pub fn set_detours(&self, mode: Detours) {
        let m = match mode {
            Detours::Off => 0,
            Detours::Near => 1,
            Detours::Far => 2,
        };
        self.detour_mode.store(m, Ordering::SeqCst);
    }

    /// Give at most `n` more detour pages.
    pub fn limit_detour_pages(&self, n: usize) {
        let held = self.detour_pages.lock().unwrap().len();
        self.detour_page_limit.store(held + n, Ordering::SeqCst);
    }

    /// Detour pages currently held by the engine.
    pub fn detour_pages_held(&self) -> usize {
        self.detour_pages.lock().unwrap().len()
    }

    /// Declare a kernel text-patching site (static key) at `addr`.
    pub fn add_text_patch_site(&self, addr: usize) {
        self.text_patch_sites.lock().unwrap().push(addr);
    }

    /// Breakpoint and fault traps taken by every CPU so far.
    pub fn traps_taken(&self) -> u64 {
        self.traps_taken.load(Ordering::SeqCst)
    }

    /// Detour entries (optimised hits) of every CPU so far.
    pub fn detour_entries(&self) -> u64 {
        self.detour_entries.load(Ordering::SeqCst)
    }

    /// The machine took a trap.
    pub fn count_trap(&self) {
        self.traps_taken.fetch_add(1, Ordering::SeqCst);
    }

    /// The machine entered a detour.
    pub fn count_detour_entry(&self) {
        self.detour_entries.fetch_add(1, Ordering::SeqCst);
    }

    /// Text writes stop the other CPUs (threads) until the bytes are
    /// synced, as a kernel's stop-machine patching does: a fetch of bytes
    /// written but not yet synced waits (up to 10 s) instead of failing
    /// the protocol check. For tests whose CPUs are real threads running
    /// code the engine patches.
    pub fn stop_machine_text_writes(&self, on: bool) {
        self.wait_for_patches.store(on, Ordering::SeqCst);
    }

    /// A leaked world (the engine needs `'static` services).
    pub fn leak(blacklist: &[Range<usize>]) -> &'static World {
        Box::leak(Box::new(World::new(blacklist)))
    }

    fn with_space<T>(&self, space: Space, f: impl FnOnce(&mut SpaceMem) -> T) -> T {
        let mut s = self.spaces.lock().unwrap();
        let m = s.entry(key(space)).or_insert_with(|| SpaceMem {
            bytes: vec![0; MEM_SIZE],
            dirty: Vec::new(),
        });
        f(m)
    }

    /// Load code or data (as the kernel's loader would: synced).
    pub fn load(&self, space: Space, addr: usize, bytes: &[u8]) {
        self.with_space(space, |m| {
            m.bytes[addr..addr + bytes.len()].copy_from_slice(bytes)
        });
    }

    /// Make `to` a copy of `from` (what fork does to memory).
    pub fn clone_space(&self, from: Space, to: Space) {
        let bytes = self.with_space(from, |m| m.bytes.clone());
        self.with_space(to, |m| m.bytes = bytes);
    }

    /// Copy of memory.
    pub fn peek(&self, space: Space, addr: usize, len: usize) -> Vec<u8> {
        self.with_space(space, |m| m.bytes[addr..addr + len].to_vec())
    }

    /// Fetch instruction bytes, asserting they were synced after writing.
    pub fn fetch(&self, space: Space, addr: usize) -> Result<[u8; 4], MemoryFault> {
        if !(GUARD..MEM_SIZE - 4).contains(&addr) {
            return Err(MemoryFault { addr });
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let got = self.with_space(space, |m| {
                if let Some(d) = m.dirty.iter().find(|d| d.start < addr + 4 && addr < d.end) {
                    return Err(d.clone());
                }
                let mut b = [0u8; 4];
                b.copy_from_slice(&m.bytes[addr..addr + 4]);
                Ok(b)
            });
            match got {
                Ok(b) => return Ok(b),
                Err(d)
                    if self.wait_for_patches.load(Ordering::SeqCst)
                        && std::time::Instant::now() < deadline =>
                {
                    let _ = d;
                    std::thread::yield_now();
                }
                Err(d) => panic!(
                    "protocol: executing {space:?} {addr:#x}, written at {d:?} with no icache sync since"
                ),
            }
        }
    }

    /// Data read by the machine.
    pub fn load_u64(&self, space: Space, addr: usize) -> Result<u64, MemoryFault> {
        let mut b = [0u8; 8];
        self.read_raw(space, addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Data write by the machine.
    pub fn store_u64(&self, space: Space, addr: usize, v: u64) -> Result<(), MemoryFault> {
        self.write_raw(space, addr, &v.to_le_bytes())
    }

    fn read_raw(&self, space: Space, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        if addr < GUARD || addr.checked_add(buf.len()).is_none_or(|e| e > MEM_SIZE) {
            return Err(MemoryFault { addr });
        }
        self.with_space(space, |m| {
            buf.copy_from_slice(&m.bytes[addr..addr + buf.len()])
        });
        Ok(())
    }

    fn write_raw(&self, space: Space, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
        if addr < GUARD || addr.checked_add(data.len()).is_none_or(|e| e > MEM_SIZE) {
            return Err(MemoryFault { addr });
        }
        self.with_space(space, |m| {
            m.bytes[addr..addr + data.len()].copy_from_slice(data)
        });
        Ok(())
    }

    /// Make the next service calls come from `cpu` running `task` (on this
    /// thread only, after [`World::per_thread_cpu`]; for every thread
    /// otherwise).
    pub fn switch_to(&self, cpu: usize, task: usize) {
        if THIS_THREAD.with(|t| t.get()).is_some() {
            THIS_THREAD.with(|t| t.set(Some((cpu, task))));
            return;
        }
        self.cpu.store(cpu, Ordering::SeqCst);
        self.task.store(task, Ordering::SeqCst);
    }

    /// Let the calling thread play CPU `cpu` running `task`: from now on
    /// its `switch_to` and the services it calls see its own current CPU
    /// and task, not the one other threads switch to (tests where real
    /// threads are the CPUs). Ends with [`World::shared_cpu`].
    pub fn per_thread_cpu(&self, cpu: usize, task: usize) {
        THIS_THREAD.with(|t| t.set(Some((cpu, task))));
    }

    /// The calling thread goes back to the world's shared current CPU.
    pub fn shared_cpu(&self) {
        THIS_THREAD.with(|t| t.set(None));
    }

    /// The current CPU.
    pub fn current_cpu(&self) -> usize {
        match THIS_THREAD.with(|t| t.get()) {
            Some((cpu, _)) => cpu,
            None => self.cpu.load(Ordering::SeqCst),
        }
    }

    /// The current task.
    pub fn current_task(&self) -> usize {
        match THIS_THREAD.with(|t| t.get()) {
            Some((_, task)) => task,
            None => self.task.load(Ordering::SeqCst),
        }
    }

    /// Put `task` in user address space `asid`.
    pub fn set_task_space(&self, task: usize, asid: usize) {
        self.task_space[task].store(asid, Ordering::SeqCst);
    }

    /// Add a symbol.
    pub fn add_symbol(&self, name: &'static str, addr: usize, size: usize) {
        self.symbols
            .lock()
            .unwrap()
            .push((name, Symbol { addr, size }));
    }

    /// Make text writes at `addr` fail.
    pub fn fail_writes_at(&self, addr: usize) {
        self.failing_writes.lock().unwrap().push((addr, 0));
    }

    /// Make text writes at `addr` fail after `skip` more successful ones
    /// there (a failure at a chosen step of a protocol).
    pub fn fail_writes_at_after(&self, addr: usize, skip: usize) {
        self.failing_writes.lock().unwrap().push((addr, skip));
    }

    /// Let text writes succeed again.
    pub fn clear_failures(&self) {
        self.failing_writes.lock().unwrap().clear();
    }

    /// Give at most `n` more slot pages.
    pub fn limit_pages(&self, n: usize) {
        let held = self.pages.lock().unwrap().len();
        self.page_limit.store(held + n, Ordering::SeqCst);
    }

    /// Hand out slot pages far from any code (beyond pc-relative reach).
    pub fn far_pages(&self, far: bool) {
        self.far_pages.store(far, Ordering::SeqCst);
    }

    /// Declare that the grace period does not wait for tasks preempted in
    /// a kernel slot (the engine then boosts no kernel probe).
    pub fn grace_period_ignores_preempted_tasks(&self) {
        self.no_preempt_wait.store(true, Ordering::SeqCst);
    }

    /// Run `hook` inside every grace period from now on.
    pub fn on_synchronize(&self, hook: impl FnMut() + Send + 'static) {
        *self.sync_hook.lock().unwrap() = Some(Box::new(hook));
    }

    /// Run `hook` after every text write from now on.
    pub fn on_text_write(&self, hook: impl FnMut() + Send + 'static) {
        *self.text_write_hook.lock().unwrap() = Some(Box::new(hook));
    }

    /// Run `hook` after every icache sync from now on: each text write of
    /// the engine is then complete and executable (another CPU may run
    /// the patched code there).
    pub fn on_text_synced(&self, hook: impl FnMut() + Send + 'static) {
        *self.synced_hook.lock().unwrap() = Some(Box::new(hook));
    }

    /// Stop running a hook after icache syncs.
    pub fn clear_text_synced_hook(&self) {
        *self.synced_hook.lock().unwrap() = None;
    }

    /// Stop running hooks after text writes.
    pub fn clear_text_write_hook(&self) {
        *self.text_write_hook.lock().unwrap() = None;
    }

    /// Stop running a hook in grace periods.
    pub fn clear_sync_hook(&self) {
        *self.sync_hook.lock().unwrap() = None;
    }

    /// Slot pages currently held by the engine.
    pub fn pages_held(&self) -> usize {
        self.pages.lock().unwrap().len()
    }

    /// Number of recorded events matching `f`.
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.log.lock().unwrap().iter().filter(|e| f(e)).count()
    }

    fn record(&self, e: Event) {
        self.log.lock().unwrap().push(e);
    }

    fn in_slot_area(addr: usize) -> bool {
        addr >= SLOT_AREA
    }
}

/// The engine's view of the world.
#[derive(Clone, Copy)]
pub struct Kernel(pub &'static World);

impl KernelServices<Toy> for Kernel {
    fn cpu_id(&self) -> usize {
        self.0.current_cpu()
    }

    fn with_current_task<R>(&self, f: impl FnOnce(&TaskState<Toy>) -> R) -> Option<R> {
        Some(f(&self.0.tasks[self.0.current_task()]))
    }

    fn current_space(&self) -> usize {
        self.0.task_space[self.0.current_task()].load(Ordering::SeqCst)
    }

    fn read(&self, space: Space, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        self.0.reads.fetch_add(1, Ordering::Relaxed);
        self.0.read_raw(space, addr, buf)
    }

    fn write_data(&self, space: Space, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
        self.0.write_raw(space, addr, data)
    }

    fn write_text(&self, space: Space, addr: usize, bytes: &[u8]) -> Result<(), TextPatchError> {
        {
            let mut failing = self.0.failing_writes.lock().unwrap();
            let mut fail = false;
            for (a, skip) in failing.iter_mut() {
                if *a == addr {
                    if *skip == 0 {
                        fail = true;
                    } else {
                        *skip -= 1;
                    }
                }
            }
            if fail {
                return Err(TextPatchError);
            }
        }
        self.0
            .write_raw(space, addr, bytes)
            .map_err(|_| TextPatchError)?;
        self.0
            .with_space(space, |m| m.dirty.push(addr..addr + bytes.len()));
        self.0.record(Event::TextWrite {
            space,
            addr,
            len: bytes.len(),
        });
        let hook = self.0.text_write_hook.lock().unwrap().take();
        if let Some(mut h) = hook {
            h();
            let mut slot = self.0.text_write_hook.lock().unwrap();
            if slot.is_none() {
                *slot = Some(h);
            }
        }
        Ok(())
    }

    fn sync_icache(&self, space: Space, addr: usize, len: usize) {
        self.0.with_space(space, |m| {
            m.dirty
                .retain(|d| !(d.start >= addr && d.end <= addr + len))
        });
        self.0.record(Event::IcacheSync { space, addr, len });
        let hook = self.0.synced_hook.lock().unwrap().take();
        if let Some(mut h) = hook {
            h();
            let mut slot = self.0.synced_hook.lock().unwrap();
            if slot.is_none() {
                *slot = Some(h);
            }
        }
    }

    fn alloc_slot_page(&self, space: Space, near: usize) -> Option<usize> {
        let _ = near;
        let mut pages = self.0.pages.lock().unwrap();
        if pages.len() >= self.0.page_limit.load(Ordering::SeqCst) {
            return None;
        }
        let base_of_area = if self.0.far_pages.load(Ordering::SeqCst) {
            MEM_SIZE - 4 * PAGE
        } else {
            SLOT_AREA
        };
        let used: Vec<usize> = pages.iter().filter(|p| p.0 == space).map(|p| p.1).collect();
        let base = (0..)
            .map(|i| base_of_area + i * PAGE)
            .take_while(|b| b + PAGE <= MEM_SIZE)
            .find(|b| !used.contains(b))?;
        pages.push((space, base));
        drop(pages);
        self.0.record(Event::PageAlloc(space, base));
        Some(base)
    }

    fn free_slot_page(&self, space: Space, page: usize) {
        // Protocol: nobody executes in the page…
        for (cpu, (s, pc)) in self.0.cpu_pcs.lock().unwrap().iter() {
            assert!(
                !(*s == space && *pc >= page && *pc < page + PAGE),
                "protocol: slot page {page:#x} freed while CPU {cpu} runs in it at {pc:#x}"
            );
        }
        // …and a grace period followed the last breakpoint removal.
        let log = self.0.log.lock().unwrap();
        let last_sync = log.iter().rposition(|e| *e == Event::GracePeriod);
        let last_disarm = log.iter().rposition(
            |e| matches!(e, Event::TextWrite { space: s, addr, .. } if *s == space && !World::in_slot_area(*addr)),
        );
        if let Some(d) = last_disarm {
            assert!(
                last_sync.is_some_and(|s| s > d),
                "protocol: slot page {page:#x} freed with no grace period after the last text change"
            );
        }
        drop(log);
        self.0
            .pages
            .lock()
            .unwrap()
            .retain(|p| !(p.0 == space && p.1 == page));
        self.0.record(Event::PageFree(space, page));
    }

    fn slot_page_size(&self) -> usize {
        PAGE
    }

    fn alloc_detour_page(&self, near: usize, reach: usize) -> Option<usize> {
        let (area, pages) = match self.0.detour_mode.load(Ordering::SeqCst) {
            1 => (DETOUR_AREA, DETOUR_AREA_PAGES),
            2 => (FAR_DETOUR_AREA, 4),
            _ => return None,
        };
        let mut held = self.0.detour_pages.lock().unwrap();
        if held.len() >= self.0.detour_page_limit.load(Ordering::SeqCst) {
            return None;
        }
        let near_mode = area == DETOUR_AREA;
        let base = (0..pages).map(|i| area + i * PAGE).find(|b| {
            !held.contains(b)
                && (!near_mode || (near.abs_diff(*b) <= reach && near.abs_diff(b + PAGE) <= reach))
        })?;
        held.push(base);
        drop(held);
        self.0.record(Event::DetourAlloc(base));
        Some(base)
    }

    fn free_detour_page(&self, page: usize) {
        assert!(
            self.0.detour_pages.lock().unwrap().contains(&page),
            "protocol: detour page {page:#x} freed but not held"
        );
        // Nobody executes in the page…
        for (cpu, (s, pc)) in self.0.cpu_pcs.lock().unwrap().iter() {
            assert!(
                !(*s == Space::Kernel && *pc >= page && *pc < page + PAGE),
                "protocol: detour page {page:#x} freed while CPU {cpu} runs in it at {pc:#x}"
            );
        }
        // …and no jump in the kernel text leads into it.
        let text = self.0.peek(Space::Kernel, GUARD, SLOT_AREA - GUARD);
        for (i, w) in text.windows(4).enumerate() {
            if i % 2 == 0 && w[0] == crate::isa::op::OJMP {
                let at = GUARD + i;
                let t = crate::arch::ojmp_target(at, &[w[0], w[1], w[2], w[3]]);
                assert!(
                    !(t >= page && t < page + PAGE),
                    "protocol: detour page {page:#x} freed while the jump at {at:#x} leads into it"
                );
            }
        }
        self.0.detour_pages.lock().unwrap().retain(|p| *p != page);
        self.0.record(Event::DetourFree(page));
    }

    fn text_patch_site_in(&self, range: Range<usize>) -> bool {
        self.0
            .text_patch_sites
            .lock()
            .unwrap()
            .iter()
            .any(|a| range.contains(a))
    }

    fn synchronize(&self) {
        // A grace period is also a full barrier on the waiting side (as
        // `synchronize_rcu` is): the unlinking stores before it are ordered
        // before the reads of the CPUs' quiescence counters.
        std::sync::atomic::fence(Ordering::SeqCst);
        self.0.record(Event::GracePeriod);
        let hook = self.0.sync_hook.lock().unwrap().take();
        if let Some(mut h) = hook {
            h();
            let mut slot = self.0.sync_hook.lock().unwrap();
            if slot.is_none() {
                *slot = Some(h);
            }
        }
    }

    fn may_fault(&self, addr: usize) -> bool {
        // The fix-up table is the kernel's exception table.
        self.0.fixups.lock().unwrap().iter().any(|f| f.0 == addr)
    }

    fn kernel_slots_covered_by_grace_period(&self) -> bool {
        // The world's grace period is checked against every CPU's pc (no
        // slot page is freed while a CPU runs in it).
        !self.0.no_preempt_wait.load(Ordering::SeqCst)
    }

    fn lookup_symbol(&self, name: &str) -> Option<Symbol> {
        self.0
            .symbols
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
    }

    fn symbol_name(&self, addr: usize) -> Option<(&str, Symbol)> {
        self.0
            .symbols
            .lock()
            .unwrap()
            .iter()
            .find(|(_, s)| (s.addr..s.addr + s.size).contains(&addr))
            .map(|&(n, s)| (n, s))
    }

    fn lookup_module_symbol(&self, module: &str, name: &str) -> Option<Symbol> {
        // Module symbols are listed as "module:name".
        self.0
            .symbols
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| n.split_once(':') == Some((module, name)))
            .map(|(_, s)| *s)
    }

    fn symbol_containing(&self, space: Space, addr: usize) -> Option<Symbol> {
        if space != Space::Kernel {
            return None;
        }
        self.0
            .symbols
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| *s)
            .find(|s| addr >= s.addr && addr < s.addr + s.size)
    }

    fn blacklist(&self) -> &[Range<usize>] {
        &self.0.blacklist
    }
}
