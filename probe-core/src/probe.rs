//! `ProbeRecord`: one registered probe (handlers, counters, generation).

use crate::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use core::cell::UnsafeCell;

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
    /// The probe allows jump optimisation of its address.
    pub(crate) optimize: bool,
    /// The context its entry handlers get, filled at registration (`cpu`
    /// 0 and `return_address` 0: a hit copies it and sets the CPU).
    pub(crate) ctx: crate::spec::ProbeContext,
}

impl ProbeConfig {
    /// Entry or return probe.
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    pub(crate) fn kind(&self) -> crate::spec::ProbeKind {
        match self.handlers {
            Handlers::Kprobe { .. } => crate::spec::ProbeKind::Kprobe,
            Handlers::Kretprobe { .. } => crate::spec::ProbeKind::Kretprobe,
        }
    }
}

/// See the module documentation.
pub(crate) struct ProbeRecord {
    /// The generation (high 32 bits) and the live return instances of this
    /// probe (its `maxactive` quota, low 32 bits), in one atomic: the
    /// generation is bumped when the record is freed, so stale ids and
    /// stale return instances never reach a later probe in the same record,
    /// and an instance retired late (a task exit preempted between its
    /// check and its decrement) can never decrement a later probe's count.
    gen_active: AtomicU64,
    pub(crate) enabled: AtomicBool,
    /// Next probe on the same point (index + 1; 0: none).
    pub(crate) next: AtomicU32,
    pub(crate) hits: AtomicU64,
    pub(crate) missed: AtomicU64,
    /// Handler objects attached at run time (see `attach`): the head of
    /// their list, null when none.
    pub(crate) attached: core::sync::atomic::AtomicPtr<crate::attach::AttachNode>,
    config: UnsafeCell<Option<ProbeConfig>>,
}

// SAFETY: `config` is written only under the registration lock while the
// record is unreachable from the trap path (before it is linked into a
// point's chain, or after it was unlinked and a grace period passed).
unsafe impl Sync for ProbeRecord {}

impl ProbeRecord {
    pub(crate) const fn new() -> Self {
        Self {
            gen_active: AtomicU64::new(1 << 32),
            enabled: AtomicBool::new(false),
            next: AtomicU32::new(0),
            hits: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            attached: core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
            config: UnsafeCell::new(None),
        }
    }

    /// Under loom: [`Self::new`], its atomics created now (see `sync`).
    #[cfg(all(test, loom))]
    pub(crate) fn new_loom() -> Self {
        let r = Self::new();
        r.gen_active.touch();
        r.enabled.touch();
        r.next.touch();
        r.hits.touch();
        r.missed.touch();
        r
    }

    /// The record's generation.
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    pub(crate) fn generation(&self) -> u32 {
        (self.gen_active.load(Ordering::Acquire) >> 32) as u32
    }

    /// Take one instance of the quota for a probe of generation `gen`;
    /// false when the quota is used up or the record changed generation.
    #[link_section = "probe_trap_text"]
    pub(crate) fn acquire_instance(&self, gen: u32, maxactive: u32) -> bool {
        let mut cur = self.gen_active.load(Ordering::Acquire);
        loop {
            if (cur >> 32) as u32 != gen || (cur as u32) >= maxactive {
                return false;
            }
            match self.gen_active.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Give back one instance taken by a probe of generation `gen`; nothing
    /// happens when the record has moved on to another generation.
    #[link_section = "probe_trap_text"]
    pub(crate) fn release_instance(&self, gen: u32) {
        let mut cur = self.gen_active.load(Ordering::Acquire);
        loop {
            if (cur >> 32) as u32 != gen || cur as u32 == 0 {
                return;
            }
            match self.gen_active.compare_exchange_weak(
                cur,
                cur - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Move to the next generation with no live instances (the record is
    /// being freed; registration lock held).
    pub(crate) fn next_generation(&self) {
        let gen = self.generation().wrapping_add(1).max(1);
        // A swap, not a store: the same here (only this function, under the
        // registration lock, changes the generation), and loom orders an
        // RMW correctly against a concurrent `release_instance`, while it
        // may let a plain store slip between that CAS's read and write
        // (tokio-rs/loom#254), a false report.
        self.gen_active.swap((gen as u64) << 32, Ordering::AcqRel);
    }

    /// The configuration (`None` for a free record).
    pub(crate) fn config(&self) -> Option<&ProbeConfig> {
        // SAFETY: see the `Sync` impl: no writer runs while a reader can
        // reach the record.
        unsafe { (*self.config.get()).as_ref() }
    }

    /// The configuration of a record known to be in use (reached through
    /// a point's chain, where `config()` is always `Some`): saves the
    /// check on the optimised hit's fast path (checked in debug builds).
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    pub(crate) fn config_unchecked(&self) -> &ProbeConfig {
        match self.config() {
            Some(cfg) => cfg,
            None => {
                debug_assert!(false, "a record in a chain has a configuration");
                // SAFETY: records linked into a chain are configured (set
                // before linking, cleared only after unlinking and a grace
                // period), and callers reach `self` through a chain.
                unsafe { core::hint::unreachable_unchecked() }
            }
        }
    }

    /// Set up or clear the record.
    ///
    /// # Safety
    /// The registration lock is held and the record is not reachable from
    /// the trap path.
    pub(crate) unsafe fn set_config(&self, config: Option<ProbeConfig>) {
        self.hits.store(0, Ordering::Relaxed);
        self.missed.store(0, Ordering::Relaxed);
        self.next.store(0, Ordering::Relaxed);
        // SAFETY: the caller guarantees exclusive access.
        unsafe { *self.config.get() = config };
    }
}

/// Exhaustive interleavings (`RUSTFLAGS="--cfg loom"`) of the generation
/// and instance count of one record: return instances taken and retired on
/// one CPU while registration frees the record and reuses it.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = None;
        b.check(f);
    }

    fn active(r: &ProbeRecord) -> u32 {
        r.gen_active.load(Ordering::Acquire) as u32
    }

    /// An instance of generation 1 retired late (a task exit preempted
    /// anywhere in `release_instance`) while the record moves to generation
    /// 2 and a new probe takes its one instance: the new probe's count is
    /// never decremented by the old instance, never wraps, and the new
    /// probe's quota is never refused.
    #[test]
    fn loom_late_retire_against_record_reuse() {
        model(|| {
            let r = Arc::new(ProbeRecord::new_loom());
            assert_eq!(r.generation(), 1);
            assert!(r.acquire_instance(1, 1));
            let exiting = {
                let r = r.clone();
                thread::spawn(move || r.release_instance(1))
            };
            // Unregister (after its grace period) and register again.
            r.next_generation();
            assert_eq!(r.generation(), 2);
            assert!(r.acquire_instance(2, 1), "the new probe's quota is free");
            exiting.join().unwrap();
            assert_eq!(active(&r), 1, "the old instance touched the new count");
            r.release_instance(2);
            assert_eq!(active(&r), 0);
        });
    }

    /// Calls of one probe take and retire instances on two CPUs against its
    /// quota of one while the record is freed: a call that took the quota
    /// before the record moved on retires without effect, one after it is
    /// refused, and the new generation starts at 0 and ends at 0.
    #[test]
    fn loom_acquire_release_against_next_generation() {
        model(|| {
            let r = Arc::new(ProbeRecord::new_loom());
            let cpus: [_; 2] = core::array::from_fn(|_| {
                let r = r.clone();
                thread::spawn(move || {
                    if r.acquire_instance(1, 1) {
                        r.release_instance(1);
                        true
                    } else {
                        false
                    }
                })
            });
            r.next_generation();
            let gen2 = r.acquire_instance(2, 1);
            assert!(gen2);
            let took = cpus.map(|t| t.join().unwrap());
            let _ = took;
            assert_eq!(r.generation(), 2);
            assert_eq!(active(&r), 1);
            r.release_instance(2);
            assert_eq!(active(&r), 0);
        });
    }
}
