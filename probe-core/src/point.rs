//! `ProbePoint`: one probed address, shared by every probe registered there.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use probe_hal::{Arch, Breakpoint, Decoded};

use crate::services::Space;
use crate::table::Key;

/// Longest original byte sequence a point keeps.
pub(crate) const MAX_ORIG: usize = 16;

/// What trapping at a point means.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PointKind {
    /// A probed instruction.
    Probe,
    /// A breakpoint that serves as return trampoline.
    ReturnTrampoline,
}

/// The immutable description of a point, written before it is published
/// and unchanged until it is freed after a grace period.
pub(crate) struct PointInfo<A: Arch> {
    pub(crate) kind: PointKind,
    pub(crate) space: Space,
    pub(crate) addr: usize,
    pub(crate) decoded: Option<Decoded<A::Insn>>,
    /// The bytes the breakpoint replaced.
    pub(crate) orig: [u8; MAX_ORIG],
    pub(crate) breakpoint: Breakpoint,
    /// Slot ending with the step-end marker (0: simulated, no slot).
    pub(crate) step_slot: usize,
    /// Address of the step-end marker in `step_slot` (computed once here,
    /// not on every hit).
    pub(crate) step_end: usize,
    /// Slot jumping back by itself (0: none).
    pub(crate) boost_slot: usize,
}

/// See the module documentation.
pub(crate) struct ProbePoint<A: Arch> {
    /// In use (registration bookkeeping; the trap path does not read it).
    pub(crate) used: AtomicBool,
    /// The breakpoint is in memory.
    pub(crate) armed: AtomicBool,
    /// First probe of the chain (probe index + 1; 0: none).
    pub(crate) head: AtomicU32,
    /// Enabled probes with a post-handler: while non-zero, no boost.
    pub(crate) post_handlers: AtomicU32,
    pub(crate) space_key: AtomicUsize,
    pub(crate) addr: AtomicUsize,
    info: UnsafeCell<Option<PointInfo<A>>>,
}

// SAFETY: `info` is written only by registration (lock held) while the point
// is unreachable from the trap path (not in the table, or after removal and a
// grace period); the trap path reads it only after finding the point in the
// table (Acquire pairs with the table's Release publication).
unsafe impl<A: Arch> Sync for ProbePoint<A> {}

impl<A: Arch> ProbePoint<A> {
    pub(crate) const fn new() -> Self {
        Self {
            used: AtomicBool::new(false),
            armed: AtomicBool::new(false),
            head: AtomicU32::new(0),
            post_handlers: AtomicU32::new(0),
            space_key: AtomicUsize::new(0),
            addr: AtomicUsize::new(0),
            info: UnsafeCell::new(None),
        }
    }

    pub(crate) fn key(&self) -> Key {
        Key {
            space: self.space_key.load(Ordering::Relaxed),
            addr: self.addr.load(Ordering::Relaxed),
        }
    }

    /// The point's description.
    ///
    /// Valid while the point is published, or under the registration lock.
    pub(crate) fn info(&self) -> &PointInfo<A> {
        // SAFETY: see the `Sync` impl: `info` is not written while a reader
        // can reach the point; callers reach it through the table or hold
        // the registration lock. A used point always has `Some` info.
        match unsafe { &*self.info.get() } {
            Some(i) => i,
            None => unreachable!("probe point read before it was set up"),
        }
    }

    /// Set the description of an unpublished point.
    ///
    /// # Safety
    /// The registration lock is held and the point is not reachable from
    /// the trap path (not in the table, no grace period pending).
    pub(crate) unsafe fn set_info(&self, info: Option<PointInfo<A>>) {
        if let Some(i) = &info {
            self.space_key.store(space_key(i.space), Ordering::Relaxed);
            self.addr.store(i.addr, Ordering::Relaxed);
        }
        // SAFETY: the caller guarantees no reader can reach this point.
        unsafe { *self.info.get() = info };
    }
}

/// The table key of an address space.
pub(crate) fn space_key(space: Space) -> usize {
    match space {
        Space::Kernel => 0,
        Space::User(id) => id.wrapping_add(1),
    }
}
