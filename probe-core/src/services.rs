//! What the engine needs from the kernel.

use probe_hal::{Arch, MemoryFault};

use crate::symbols::SymbolTable;
use crate::task::TaskState;

/// Which address space a probe or an access is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Space {
    /// Kernel text and data (kprobes, kretprobes).
    Kernel,
    /// A user address space, named by the kernel's own identifier (uprobes).
    User(usize),
}

impl Space {
    /// The space as two plain words (user or not, the id), for the
    /// lock-free tables that keep it in atomics: injective, so no user
    /// space ever reads as the kernel.
    #[inline(always)]
    pub(crate) const fn parts(self) -> (bool, usize) {
        match self {
            Space::Kernel => (false, 0),
            Space::User(id) => (true, id),
        }
    }

    /// The privilege level code in this space runs at.
    pub const fn mode(self) -> probe_hal::ExecMode {
        match self {
            Space::Kernel => probe_hal::ExecMode::Kernel,
            Space::User(_) => probe_hal::ExecMode::User,
        }
    }
}

/// A symbol known to the kernel: where it starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    /// Start address.
    pub addr: usize,
    /// Size in bytes; 0 when unknown (a `/proc/kallsyms`-style table has no
    /// sizes). With an unknown size an offset is not checked against the
    /// symbol's end (a probe past it is refused only by the instruction
    /// boundary walk, which still runs from the start); prefer the next
    /// symbol's start minus this one's when the kernel can tell.
    pub size: usize,
}

/// Patching text failed (the kernel says why in its own log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextPatchError;

/// The services a kernel supplies to the engine.
///
/// A safe trait: a wrong answer makes the engine misbehave (a probe fires
/// on the wrong task, a slot is freed too early), never undefined
/// behaviour by itself; the obligations that soundness rests on are on the
/// `unsafe` trap entry points instead ([`crate::Engine::handle_breakpoint`]
/// and friends, [`crate::Engine::release_task`]).
///
/// **Contexts.** The trap path (breakpoint, single-step, fault and return
/// dispatch, interrupts masked) calls only [`cpu_id`](Self::cpu_id),
/// [`with_current_task`](Self::with_current_task), [`current_space`](Self::current_space),
/// [`read`](Self::read) and [`write_data`](Self::write_data): these must
/// not sleep, take no lock the interrupted code may hold, and be callable
/// with interrupts masked. Everything else is called only from
/// registration context (a `register_*`, `unregister*`, `enable`,
/// `disable`, `*_space` call), with the engine's registration lock `L`
/// held, never from a probe handler (those calls fail with
/// [`probe_hal::ProbeErrorKind::InTrapContext`] there).
///
/// **The grace period.** [`synchronize`](Self::synchronize) is the one
/// service that may block (sleep, or spin while taking interrupts). It
/// returns once every CPU and every task has passed a point where it cannot
/// be inside a probe handler, the trap path, or a kernel out-of-line slot
/// that the probes unpublished before the call could reach:
/// - every CPU has been outside trap context once since the call began
///   (handlers and steps run with interrupts masked: an interrupt taken
///   with interrupts enabled on each CPU, or a context switch, is enough);
/// - **and** every task preempted (or otherwise stopped) with its saved
///   kernel pc inside a slot page has moved on: [`crate::Engine::in_slot`]
///   tells, without a lock, whether a saved pc lies in one (Linux:
///   `synchronize_rcu_tasks`). A kernel that cannot wait for such tasks
///   returns false from
///   [`kernel_slots_covered_by_grace_period`](Self::kernel_slots_covered_by_grace_period):
///   kernel probes are then never boosted, so every kernel slot runs with
///   interrupts masked and cannot be preempted.
///
/// Like Linux's `synchronize_rcu`, a grace period is also a full memory
/// barrier between the caller and every CPU it waited for: stores the
/// engine made before the call (unlinking a probe or a handler) are seen by
/// everything those CPUs do after their quiescent point. An IPI, an
/// interrupt entry or a context switch is such a barrier on every ISA we
/// support; a kernel that detects quiescence by polling a per-CPU counter
/// needs a full fence on both sides (the custom-arch world does: Miri finds
/// the use-after-free without them).
///
/// User tasks need nothing from the grace period: a parked user step keeps
/// its point and slot alive by itself (see [`crate::Engine::release_task`]
/// and the signal hooks, [`crate::Engine::should_defer_signal`]).
///
/// **The registration lock.** `synchronize` runs with `L` held. `L` must
/// therefore be a lock whose waiters keep taking interrupts and IPIs while
/// they wait (a sleeping mutex, or a spinlock that spins with interrupts
/// enabled): a kernel whose grace period waits for every CPU to take an
/// interrupt deadlocks if another CPU spins on `L` with interrupts masked.
///
/// Protocols the engine relies on:
/// - [`write_text`](Self::write_text) must be safe against other CPUs
///   executing the bytes being changed (stop them, or write atomically what
///   can be written atomically); in a user space it must break
///   copy-on-write (the breakpoint lands in this process only, never in
///   the page cache or another process sharing the page). The engine calls
///   [`sync_icache`](Self::sync_icache) after every text write, before the
///   bytes can execute, and the kernel makes them visible to instruction
///   fetch on every CPU there.
pub trait KernelServices<A: Arch>: Sync {
    /// Index of the current CPU, below the engine's CPU capacity.
    fn cpu_id(&self) -> usize;

    /// Run `f` with the probe state of the current task (a [`TaskState`]
    /// embedded in the kernel's task structure: it holds the task's
    /// return-probe instances and, for user tasks, its in-flight
    /// out-of-line step) and give back its result; `None`, without calling
    /// `f`, when no task is current (boot, idle, an interrupt taken with no
    /// task context).
    ///
    /// A closure rather than a reference, so that a kernel whose `current()`
    /// returns a guard or an `Arc` meets it without `unsafe`:
    ///
    /// ```ignore
    /// fn with_current_task<R>(&self, f: impl FnOnce(&TaskState<Riscv64>) -> R) -> Option<R> {
    ///     current_task().map(|task| f(&task.probe_state)) // task: Arc<Task>
    /// }
    /// ```
    ///
    /// Called from the trap path (interrupts masked): taking the current
    /// task's reference must not sleep or take a lock the interrupted code
    /// may hold (an `Arc` clone is fine). With no task: kernel kprobes work
    /// as usual (their state is per CPU); a kretprobe entry is not tracked
    /// (counted in `missed`, like a call beyond `maxactive`); a user-mode
    /// breakpoint is not the engine's ([`crate::TrapOutcome::NotOurs`]).
    fn with_current_task<R>(&self, f: impl FnOnce(&TaskState<A>) -> R) -> Option<R>;

    /// The address space of the current user task (for user-mode traps).
    fn current_space(&self) -> usize;

    /// Copy memory of `space` at `addr` into `buf`.
    fn read(&self, space: Space, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault>;

    /// Write data memory (a user stack while simulating a `call`).
    fn write_data(&self, space: Space, addr: usize, data: &[u8]) -> Result<(), MemoryFault>;

    /// Write `bytes` into text (or slot) memory of `space`, even where it is
    /// mapped read-only, safely against other CPUs executing it.
    fn write_text(&self, space: Space, addr: usize, bytes: &[u8]) -> Result<(), TextPatchError>;

    /// Make `len` bytes at `addr` in `space` visible to instruction fetch on
    /// every CPU; called after every [`write_text`](Self::write_text). The
    /// default does nothing: right when `write_text` already leaves the new
    /// bytes visible to every CPU's instruction fetch (Linux's `patch_text`
    /// and `text_poke` flush as part of the write), and on x86_64, whose
    /// instruction caches are coherent with stores (a serializing event on
    /// each CPU is still the writer's job: stop-machine gives one). A
    /// kernel whose `write_text` does not flush implements it (riscv64:
    /// `fence.i` on every hart; loongarch64: `ibar`; aarch64: clean to the
    /// point of unification, then invalidate).
    fn sync_icache(&self, space: Space, addr: usize, len: usize) {
        let _ = (space, addr, len);
    }

    /// An executable page for out-of-line slots in `space`, as close to
    /// `near` as the ISA needs (x86_64: within ±2 GiB). `None` if none.
    fn alloc_slot_page(&self, space: Space, near: usize) -> Option<usize>;

    /// Give back a page from [`alloc_slot_page`](Self::alloc_slot_page).
    fn free_slot_page(&self, space: Space, page: usize);

    /// Size of a slot page in bytes.
    fn slot_page_size(&self) -> usize {
        4096
    }

    /// An executable kernel page (of [`slot_page_size`](Self::slot_page_size)
    /// bytes) for detours of jump-optimised probes, whole within `reach`
    /// bytes of `near`, or `None`. The default has none, so nothing is
    /// optimised ([`crate::NotOptimized::NoDetourMemory`]). A kernel that
    /// opts in reserves an area next to its text (a linker-script section)
    /// and hands out its pages; the engine writes them with
    /// [`write_text`](Self::write_text).
    fn alloc_detour_page(&self, near: usize, reach: usize) -> Option<usize> {
        let _ = (near, reach);
        None
    }

    /// Give back a page from [`alloc_detour_page`](Self::alloc_detour_page)
    /// (no CPU runs a detour in it any more).
    fn free_detour_page(&self, page: usize) {
        let _ = page;
    }

    /// Whether a text-patching site of the kernel (a static key, an
    /// alternative, an ftrace site) lies inside `range`: a jump is not
    /// written over one. The default knows none.
    fn text_patch_site_in(&self, range: core::ops::Range<usize>) -> bool {
        let _ = range;
        false
    }

    /// Whether a detour masks interrupts around the handlers, as a trap
    /// does (the default; kernel code). A harness that runs "kernel" code
    /// in user mode, where the instruction faults, answers false.
    fn detours_mask_interrupts(&self) -> bool {
        true
    }

    /// Wait for a grace period (see the trait documentation). The one
    /// service that may block; called with the registration lock held,
    /// never from trap context.
    fn synchronize(&self);

    /// Whether [`synchronize`](Self::synchronize) also waits for tasks
    /// preempted inside a kernel slot (see the trait documentation). Only
    /// then are kernel probes boosted (their slot jumps back by itself and
    /// runs with interrupts as they were, so a task can be preempted in
    /// it). Defaults to false: no boosting, every kernel step runs masked.
    fn kernel_slots_covered_by_grace_period(&self) -> bool {
        false
    }

    /// The kernel's symbol table, if it has one: the defaults of
    /// [`lookup_symbol`](Self::lookup_symbol),
    /// [`symbol_name`](Self::symbol_name) and
    /// [`symbol_containing`](Self::symbol_containing) (kernel space) answer
    /// from it. A `/proc/kallsyms`-style slice of `(start, name)` sorted by
    /// address is one ([`SymbolTable`]'s slice implementation sizes each
    /// symbol up to the next start). The default has none.
    fn symbols(&self) -> Option<&dyn SymbolTable> {
        None
    }

    /// Resolve a kernel symbol. The default asks [`symbols`](Self::symbols).
    fn lookup_symbol(&self, name: &str) -> Option<Symbol> {
        self.symbols()?.lookup(name)
    }

    /// Resolve symbol `name` of the loaded module `module` (a target
    /// written `MOD:SYM`, as Linux's kprobes and kprobe_events accept).
    /// The default knows no modules: such targets fail with
    /// [`probe_hal::ProbeErrorKind::UnknownSymbol`]. A kernel with
    /// loadable modules looks the name up in that module's symbol table
    /// only (a module-local name may exist in several modules); module
    /// text that goes away must have its probes unregistered first (Linux
    /// does this from its module notifier).
    fn lookup_module_symbol(&self, module: &str, name: &str) -> Option<Symbol> {
        let _ = (module, name);
        None
    }

    /// The name and extent of the kernel symbol containing `addr` (the
    /// address-to-name direction of `kallsyms`), for trace output such as
    /// probe events' `(do_sys_open+0x0/0xd6)`. Not called by the engine
    /// itself; the default asks [`symbols`](Self::symbols).
    fn symbol_name(&self, addr: usize) -> Option<(&str, Symbol)> {
        self.symbols()?.containing(addr)
    }

    /// The symbol (function) containing `addr` in `space`, for the
    /// instruction-boundary and function-entry checks. The default asks
    /// [`symbols`](Self::symbols) for kernel addresses and knows no user
    /// symbols.
    fn symbol_containing(&self, space: Space, addr: usize) -> Option<Symbol> {
        match space {
            Space::Kernel => Some(self.symbols()?.containing(addr)?.1),
            Space::User(_) => None,
        }
    }

    /// Whether the instruction at kernel address `addr` may fault with a
    /// fix-up the kernel expects (an exception-table entry). The engine then
    /// never boosts a probe there, so such a fault is always seen at the
    /// probe address (Linux's `can_boost` makes the same check).
    fn may_fault(&self, addr: usize) -> bool {
        let _ = addr;
        false
    }

    /// Kernel address ranges that must never be probed (trap entry code,
    /// the engine itself, anything running with the trap path).
    fn blacklist(&self) -> &[core::ops::Range<usize>] {
        &[]
    }
}
