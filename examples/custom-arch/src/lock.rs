//! `NoWaitLock`: the registration lock of the Toy world. The world is
//! deterministic (CPUs are interleaved by hand on one thread), so any
//! attempt to wait for this lock would wait forever: it panics instead.
//! That turns "the trap path never waits on the registration lock" into an
//! assertion every test checks.

use std::sync::atomic::{AtomicBool, Ordering};

/// See the module documentation.
pub struct NoWaitLock(AtomicBool);

// SAFETY: `lock` only returns after it set the flag from false to true,
// and `unlock` clears it, so at most one holder exists at a time.
unsafe impl lock_api::RawMutex for NoWaitLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = NoWaitLock(AtomicBool::new(false));
    type GuardMarker = lock_api::GuardSend;

    fn lock(&self) {
        assert!(
            self.try_lock(),
            "the registration lock is held: waiting for it here would deadlock the Toy world"
        );
    }

    fn try_lock(&self) -> bool {
        self.0
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    unsafe fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }
}
