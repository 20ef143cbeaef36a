//! `RecentlyRemoved`: breakpoints being taken away right now.
//!
//! A CPU can trap on one of our breakpoints and look the address up only
//! after the point was unpublished: the trap is ours, and the CPU must
//! re-execute the original instruction at the address. Any other breakpoint
//! trap with no point is not ours, even when the bytes there are no
//! breakpoint of ours: an `int $3` (`cd 03`) of the program itself traps
//! one byte after the `03`, and must not be "restarted" inside itself.
//!
//! Registration (lock held) records each address before unpublishing it, in
//! a ring of the last [`ENTRIES`] removals. The grace period that follows
//! an unpublication is enough on a correct machine (no CPU can still be
//! between such a trap and its lookup afterwards), but the ring keeps the
//! addresses longer: a CPU that executes a stale copy of a removed
//! breakpoint (an instruction cache or emulator translation that missed the
//! sync; QEMU's multi-threaded TCG does this) still just re-executes the
//! original instruction. When one removal window (one unregistration)
//! removes more addresses than the ring holds, the window falls back to
//! "any address whose bytes are no breakpoint any more" until its grace
//! period ends.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::services::Space;

/// Removed addresses remembered.
pub(crate) const ENTRIES: usize = 64;

struct Entry {
    /// 0: empty.
    addr: AtomicUsize,
    user: AtomicBool,
    id: AtomicUsize,
}

/// See the module documentation.
pub(crate) struct RecentlyRemoved {
    entries: [Entry; ENTRIES],
    /// Next entry to write (wraps).
    next: AtomicUsize,
    /// Addresses recorded in the current removal window.
    window: AtomicUsize,
    overflow: AtomicBool,
}

impl RecentlyRemoved {
    pub(crate) const fn new() -> Self {
        Self {
            entries: [const {
                Entry {
                    addr: AtomicUsize::new(0),
                    user: AtomicBool::new(false),
                    id: AtomicUsize::new(0),
                }
            }; ENTRIES],
            next: AtomicUsize::new(0),
            window: AtomicUsize::new(0),
            overflow: AtomicBool::new(false),
        }
    }

    /// Remember `addr` in `space` before it is unpublished (registration
    /// lock held).
    pub(crate) fn record(&self, space: Space, addr: usize) {
        let window = self.window.load(Ordering::Relaxed) + 1;
        self.window.store(window, Ordering::Relaxed);
        if window > ENTRIES {
            // This window overwrites its own entries: fall back until its
            // grace period ends.
            self.overflow.store(true, Ordering::Release);
        }
        let n = self.next.load(Ordering::Relaxed);
        let e = &self.entries[n % ENTRIES];
        let (user, id) = space.parts();
        // Invalidate the entry while it changes.
        e.addr.store(0, Ordering::Release);
        e.user.store(user, Ordering::Release);
        e.id.store(id, Ordering::Release);
        e.addr.store(addr, Ordering::Release);
        self.next.store(n.wrapping_add(1), Ordering::Release);
    }

    /// The grace period after a removal window ended (registration lock
    /// held): the window's addresses stay in the ring, the fallback ends.
    pub(crate) fn end_window(&self) {
        self.window.store(0, Ordering::Relaxed);
        self.overflow.store(false, Ordering::Release);
    }

    /// Whether `addr` in `space` may have been one of our breakpoints that
    /// was removed while a CPU was trapping on it.
    #[link_section = "probe_trap_text"]
    pub(crate) fn recently_removed(&self, space: Space, addr: usize) -> bool {
        if self.overflow.load(Ordering::Acquire) {
            return true;
        }
        let (user, id) = space.parts();
        let mut i = 0;
        while i < ENTRIES {
            let e = &self.entries[i];
            if e.addr.load(Ordering::Acquire) == addr
                && e.user.load(Ordering::Relaxed) == user
                && e.id.load(Ordering::Relaxed) == id
            {
                return true;
            }
            i += 1;
        }
        false
    }
}
