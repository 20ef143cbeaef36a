//! Time: the TSC, calibrated once against the PIT's channel 2 (the legacy
//! 8254 timer, 1.193182 MHz), so that waits and deadlines are in real
//! microseconds. Under TCG QEMU's TSC follows the host's, on every vCPU.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::cpu::{inb, outb, rdtsc};

/// PIT input clock, in Hz.
const PIT_HZ: u64 = 1_193_182;
/// The calibration window: 10 ms of PIT ticks.
const CALIBRATION_TICKS: u16 = (PIT_HZ / 100) as u16;
/// Port 0x61: bit 0 gates channel 2, bit 1 drives the speaker, bit 5
/// reads channel 2's output.
const PORT_B: u16 = 0x61;

/// TSC ticks per microsecond (0 until [`calibrate`] ran).
static TICKS_PER_US: AtomicU64 = AtomicU64::new(0);

/// Measure the TSC rate against 10 ms of PIT channel 2 (one-shot mode 0),
/// as Linux's `pit_calibrate_tsc` does. Call once, at boot.
pub fn calibrate() {
    // SAFETY: ports 0x61, 0x42 and 0x43 belong to the PIT's channel 2 and
    // its gate; the speaker stays off, and nothing else uses channel 2.
    let ticks = unsafe {
        let b = inb(PORT_B);
        outb(PORT_B, (b & !0x02) | 0x01);
        outb(0x43, 0xb0); // channel 2, low byte then high byte, mode 0
        outb(0x42, CALIBRATION_TICKS as u8);
        outb(0x42, (CALIBRATION_TICKS >> 8) as u8);
        let start = rdtsc();
        while inb(PORT_B) & 0x20 == 0 {
            core::hint::spin_loop();
        }
        rdtsc() - start
    };
    TICKS_PER_US.store((ticks / 10_000).max(1), Ordering::Relaxed);
}

/// TSC ticks per microsecond.
pub fn ticks_per_us() -> u64 {
    TICKS_PER_US.load(Ordering::Relaxed).max(1)
}

/// Microseconds since `start` (a [`now`] value).
pub fn us_since(start: u64) -> u64 {
    (rdtsc() - start) / ticks_per_us()
}

/// The current TSC.
pub fn now() -> u64 {
    rdtsc()
}

/// Spin for `us` microseconds.
pub fn delay_us(us: u64) {
    let end = Deadline::after_us(us);
    while !end.passed() {
        core::hint::spin_loop();
    }
}

/// A point in time to give up at.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(u64);

impl Deadline {
    /// `us` microseconds from now.
    pub fn after_us(us: u64) -> Self {
        Self(rdtsc() + us * ticks_per_us())
    }

    /// `ms` milliseconds from now.
    pub fn after_ms(ms: u64) -> Self {
        Self::after_us(ms * 1000)
    }

    /// Whether the point has passed.
    pub fn passed(&self) -> bool {
        rdtsc() >= self.0
    }
}
