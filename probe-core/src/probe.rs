//! `ProbeRecord`: one registered probe (handlers, counters, generation).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::spec::{EntryHandler, PostHandler, PreHandler, ReturnHandler, UserData};

/// The handlers of a probe.
#[derive(Clone, Copy)]
pub(crate) enum Handlers {
    Kprobe {
        pre: Option<PreHandler>,
        post: Option<PostHandler>,
    },
    Kretprobe {
        entry: Option<EntryHandler>,
        ret: Option<ReturnHandler>,
        maxactive: u32,
        data_size: usize,
        /// Where hijacked returns go (the trampoline of the probe's space).
        trampoline: usize,
    },
}

/// A probe's configuration, fixed between registration and release.
#[derive(Clone, Copy)]
pub(crate) struct ProbeConfig {
    pub(crate) point: u32,
    pub(crate) handlers: Handlers,
    pub(crate) data: UserData,
}

/// See the module documentation.
pub(crate) struct ProbeRecord {
    /// Bumped when the record is freed, so stale ids and stale return
    /// instances never reach a later probe in the same record.
    pub(crate) generation: AtomicU32,
    pub(crate) enabled: AtomicBool,
    /// Next probe on the same point (index + 1; 0: none).
    pub(crate) next: AtomicU32,
    pub(crate) hits: AtomicU64,
    pub(crate) missed: AtomicU64,
    /// Live return instances of this probe (its `maxactive` quota).
    pub(crate) active: AtomicU32,
    config: UnsafeCell<Option<ProbeConfig>>,
}

// SAFETY: `config` is written only under the registration lock while the
// record is unreachable from the trap path (before it is linked into a
// point's chain, or after it was unlinked and a grace period passed).
unsafe impl Sync for ProbeRecord {}

impl ProbeRecord {
    pub(crate) const fn new() -> Self {
        Self {
            generation: AtomicU32::new(1),
            enabled: AtomicBool::new(false),
            next: AtomicU32::new(0),
            hits: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            active: AtomicU32::new(0),
            config: UnsafeCell::new(None),
        }
    }

    /// The configuration (`None` for a free record).
    pub(crate) fn config(&self) -> Option<&ProbeConfig> {
        // SAFETY: see the `Sync` impl: no writer runs while a reader can
        // reach the record.
        unsafe { (*self.config.get()).as_ref() }
    }

    /// Set up or clear the record.
    ///
    /// # Safety
    /// The registration lock is held and the record is not reachable from
    /// the trap path.
    pub(crate) unsafe fn set_config(&self, config: Option<ProbeConfig>) {
        self.hits.store(0, Ordering::Relaxed);
        self.missed.store(0, Ordering::Relaxed);
        self.active.store(0, Ordering::Relaxed);
        self.next.store(0, Ordering::Relaxed);
        // SAFETY: the caller guarantees exclusive access.
        unsafe { *self.config.get() = config };
    }
}
