//! Time from the stable counter (`rdtime.d`; its frequency from `cpucfg`
//! words 4 and 5, LoongArch vol. 1 §2.2.10.5): deadlines for the SMP
//! handshakes and the run time of the checks.

/// The stable counter.
#[inline(always)]
pub fn ticks() -> u64 {
    let t: u64;
    // SAFETY: reads the stable counter into a register (the counter id
    // goes to r0, discarded); no memory, no side effects.
    unsafe { core::arch::asm!("rdtime.d {t}, $zero", t = out(reg) t, options(nomem, nostack)) };
    t
}

/// The counter's frequency in Hz: `CC_FREQ * CC_MUL / CC_DIV`.
pub fn hz() -> u64 {
    let (freq, muldiv): (u64, u64);
    // SAFETY: `cpucfg` reads configuration words into registers; no memory.
    unsafe {
        core::arch::asm!(
            "cpucfg {f}, {w4}",
            "cpucfg {m}, {w5}",
            f = out(reg) freq,
            m = out(reg) muldiv,
            w4 = in(reg) 4u64,
            w5 = in(reg) 5u64,
            options(nomem, nostack)
        )
    };
    let (mul, div) = (muldiv & 0xffff, (muldiv >> 16) & 0xffff);
    let hz = freq.saturating_mul(mul.max(1)) / div.max(1);
    if hz == 0 {
        100_000_000
    } else {
        hz
    }
}

/// Milliseconds since `start` (a [`ticks`] value).
pub fn ms_since(start: u64) -> u64 {
    ticks().wrapping_sub(start) / (hz() / 1000).max(1)
}
