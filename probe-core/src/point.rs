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

impl<A: Arch> Clone for PointInfo<A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<A: Arch> Copy for PointInfo<A> {}

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
    /// User steps of this point parked in tasks: while non-zero the point
    /// and its slot are not freed (a task may still come back to the slot,
    /// e.g. after running a signal handler).
    pub(crate) parked: AtomicU32,
    /// Unpublished and waiting for its parked steps to end before it is
    /// freed.
    pub(crate) zombie: AtomicBool,
    pub(crate) space_user: AtomicBool,
    pub(crate) space_id: AtomicUsize,
    pub(crate) addr: AtomicUsize,
    /// Jump optimisation (see `crate::optimize`).
    pub(crate) opt: crate::optimize::OptSlot,
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
            parked: AtomicU32::new(0),
            zombie: AtomicBool::new(false),
            space_user: AtomicBool::new(false),
            space_id: AtomicUsize::new(0),
            addr: AtomicUsize::new(0),
            opt: crate::optimize::OptSlot::new(),
            info: UnsafeCell::new(None),
        }
    }

    #[link_section = "probe_trap_text"]
    pub(crate) fn key(&self) -> Key {
        let id = self.space_id.load(Ordering::Relaxed);
        Key {
            space: if self.space_user.load(Ordering::Relaxed) {
                Space::User(id)
            } else {
                Space::Kernel
            },
            addr: self.addr.load(Ordering::Relaxed),
        }
    }

    /// Whether the point is live in `space` (in use, not waiting to be
    /// freed).
    pub(crate) fn live_in(&self, space: Space) -> bool {
        self.used.load(Ordering::Relaxed)
            && !self.zombie.load(Ordering::Relaxed)
            && self.info().space == space
    }

    /// The point's description.
    ///
    /// Valid while the point is published, or under the registration lock.
    #[link_section = "probe_trap_text"]
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
            let (user, id) = i.space.parts();
            self.space_user.store(user, Ordering::Relaxed);
            self.space_id.store(id, Ordering::Relaxed);
            self.addr.store(i.addr, Ordering::Relaxed);
        }
        // SAFETY: the caller guarantees no reader can reach this point.
        unsafe { *self.info.get() = info };
    }
}
