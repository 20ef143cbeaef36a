//! An rcu-like grace period: every online CPU other than the caller has
//! passed a quiescent state (an interrupt taken with interrupts enabled, a
//! context switch) since the call began. Each such point is also a full
//! barrier (interrupt entry on both ISAs), and the counters are read and
//! written with `SeqCst` so a polling model keeps that property.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::platform;

/// CPUs the kernel supports.
pub const MAX_CPUS: usize = 8;

static QUIESCENT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The current CPU passed a quiescent state (called by the interrupt and
/// context-switch paths).
pub fn quiescent() {
    QUIESCENT[platform::get().cpu_id()].fetch_add(1, Ordering::SeqCst);
}

/// Wait for a grace period. May spin with interrupts enabled; never call
/// it with interrupts masked.
pub fn synchronize() {
    let p = platform::get();
    let me = p.cpu_id();
    let n = p.online_cpus().min(MAX_CPUS);
    let mut seen = [0u64; MAX_CPUS];
    for (cpu, s) in seen.iter_mut().enumerate().take(n) {
        *s = QUIESCENT[cpu].load(Ordering::SeqCst);
    }
    p.kick_other_cpus();
    for (cpu, s) in seen.iter().enumerate().take(n) {
        while cpu != me && QUIESCENT[cpu].load(Ordering::SeqCst) == *s {
            core::hint::spin_loop();
        }
    }
    core::sync::atomic::fence(Ordering::SeqCst);
}
