//! A call-back installed once per boot and read without a lock on the trap
//! path: the cell behind [`crate::rethook`] and [`crate::opthook`].

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, Ordering};

const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

/// The hook was installed before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookAlreadySet;

impl core::fmt::Display for HookAlreadySet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the hook is already installed")
    }
}

/// One `&'static T`, written at most once.
pub(crate) struct HookCell<T: ?Sized + 'static> {
    state: AtomicU8,
    hook: UnsafeCell<Option<&'static T>>,
}

// SAFETY: `hook` is written exactly once, by the caller that moved `state`
// from EMPTY to WRITING, and read only after `state` is READY (Acquire pairs
// with the Release store that publishes it); `&'static T` is shared, so `T`
// must be `Sync`.
unsafe impl<T: ?Sized + Sync + 'static> Sync for HookCell<T> {}

impl<T: ?Sized + 'static> HookCell<T> {
    pub(crate) const fn new() -> Self {
        Self {
            state: AtomicU8::new(EMPTY),
            hook: UnsafeCell::new(None),
        }
    }

    /// Install `hook`; fails if one was installed (or is being installed).
    pub(crate) fn set(&self, hook: &'static T) -> Result<(), HookAlreadySet> {
        if self
            .state
            .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(HookAlreadySet);
        }
        // SAFETY: the compare-exchange above made us the only writer, and no
        // reader looks at `hook` before `state` is READY.
        unsafe { *self.hook.get() = Some(hook) };
        self.state.store(READY, Ordering::Release);
        Ok(())
    }

    /// The installed hook, if any.
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    pub(crate) fn get(&self) -> Option<&'static T> {
        if self.state.load(Ordering::Acquire) != READY {
            return None;
        }
        // SAFETY: READY is stored (Release) only after the single write of
        // `Some(hook)` completed, and `hook` is never written again.
        Some(unsafe { (*self.hook.get()).unwrap_unchecked() })
    }
}
