//! What the engine needs from the kernel.

use probe_hal::{Arch, MemoryFault};

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
    /// Size in bytes.
    pub size: usize,
}

/// Patching text failed (the kernel says why in its own log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextPatchError;

/// The services a kernel supplies to the engine.
///
/// **Every method may be called with interrupts off, from trap context, and
/// none may sleep.** Registration calls them with the engine's registration
/// lock held; the trap path calls only [`cpu_id`](Self::cpu_id),
/// [`task_state`](Self::task_state), [`current_space`](Self::current_space),
/// [`read`](Self::read) and [`write_data`](Self::write_data).
///
/// Protocols the engine relies on:
/// - [`write_text`](Self::write_text) must be safe against other CPUs
///   executing the bytes being changed (stop them, or write atomically what
///   can be written atomically); the engine calls
///   [`sync_icache`](Self::sync_icache) after every text write, before the
///   bytes can execute, and the kernel makes them visible to instruction
///   fetch on every CPU there;
/// - [`synchronize`](Self::synchronize) returns once every CPU and every
///   task has passed a point where it cannot be inside a probe handler or an
///   out-of-line slot (Linux: `synchronize_rcu_tasks`). Steps run with
///   interrupts masked, so "every CPU took an interrupt with interrupts
///   enabled" plus "every task that was stopped in a user slot moved on" is
///   enough.
pub trait KernelServices<A: Arch>: Sync {
    /// Index of the current CPU, below the engine's CPU capacity.
    fn cpu_id(&self) -> usize;

    /// The probe state of the current task (embedded in the kernel's task
    /// structure). Holds the task's return-probe instances and, for user
    /// tasks, its in-flight out-of-line step.
    fn task_state(&self) -> &TaskState<A>;

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
    /// every CPU.
    fn sync_icache(&self, space: Space, addr: usize, len: usize);

    /// An executable page for out-of-line slots in `space`, as close to
    /// `near` as the ISA needs (x86_64: within ±2 GiB). `None` if none.
    fn alloc_slot_page(&self, space: Space, near: usize) -> Option<usize>;

    /// Give back a page from [`alloc_slot_page`](Self::alloc_slot_page).
    fn free_slot_page(&self, space: Space, page: usize);

    /// Size of a slot page in bytes.
    fn slot_page_size(&self) -> usize {
        4096
    }

    /// Wait for a grace period (see the trait documentation).
    fn synchronize(&self);

    /// Resolve a kernel symbol.
    fn lookup_symbol(&self, name: &str) -> Option<Symbol> {
        let _ = name;
        None
    }

    /// The symbol (function) containing `addr` in `space`, for the
    /// instruction-boundary and function-entry checks.
    fn symbol_containing(&self, space: Space, addr: usize) -> Option<Symbol> {
        let _ = (space, addr);
        None
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
