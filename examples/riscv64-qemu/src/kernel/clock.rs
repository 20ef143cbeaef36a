//! Time, for bounding waits on the other hart (the `time` CSR counts at
//! 10 MHz on the virt machine).

/// Ticks of the `time` CSR per millisecond.
const TICKS_PER_MS: u64 = 10_000;

/// The `time` CSR.
pub fn now() -> u64 {
    let t: u64;
    // SAFETY: reading `time` has no side effect; M-mode allowed it
    // (mcounteren.TM).
    unsafe { core::arch::asm!("rdtime {}", out(reg) t) };
    t
}

/// A point in time `ms` milliseconds from now.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(u64);

impl Deadline {
    /// `ms` milliseconds from now.
    pub fn after_ms(ms: u64) -> Self {
        Self(now() + ms * TICKS_PER_MS)
    }

    /// Whether it has passed.
    pub fn passed(&self) -> bool {
        now() >= self.0
    }
}

/// Milliseconds since `start` (a [`now`] value).
pub fn ms_since(start: u64) -> u64 {
    (now() - start) / TICKS_PER_MS
}
