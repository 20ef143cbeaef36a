//! The engine's registration lock: a spin lock whose waiters keep serving
//! their hart's mailbox, so a hart waiting for the lock never blocks the
//! holder's stop-machine or `fence.i` request to it.

use core::sync::atomic::{AtomicBool, Ordering};

use lock_api::{GuardSend, RawMutex};

use super::smp;

/// See the module documentation.
pub struct RegistrationLock(AtomicBool);

// SAFETY: `lock` returns only after this hart's compare-exchange moved the
// flag from false to true (Acquire), and only the holder clears it
// (Release), so at most one holder exists at a time.
unsafe impl RawMutex for RegistrationLock {
    const INIT: Self = Self(AtomicBool::new(false));
    type GuardMarker = GuardSend;

    fn lock(&self) {
        while !self.try_lock() {
            smp::serve_requests();
            core::hint::spin_loop();
        }
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
