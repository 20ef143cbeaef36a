//! Where things are: the regions the linker script defines, as addresses.

use core::ops::Range;

/// Harts this kernel runs (and the engine's CPU capacity).
pub const MAX_HARTS: usize = 2;
/// Bytes of kernel stack per hart (as in link.ld).
pub const HART_STACK_SIZE: usize = 0x1_0000;
/// End of RAM (`-m 128M`, QEMU's default for virt).
pub const RAM_END: usize = 0x8800_0000;
/// Size of a slot page and of the denied region.
pub const PAGE_SIZE: usize = 4096;

extern "C" {
    static __kernel_start: u8;
    static __kernel_trap_start: u8;
    static __kernel_trap_end: u8;
    static __detours_start: u8;
    static __detours_end: u8;
    static __denied_start: u8;
    static __denied_end: u8;
    static __user_start: u8;
    static __user_end: u8;
}

macro_rules! addr {
    ($sym:ident) => {
        // Only the address of the linker-defined symbol is taken.
        core::ptr::addr_of!($sym) as usize
    };
}

/// All memory the kernel may touch (its image, user memory, free RAM),
/// including the denied page.
pub fn ram() -> Range<usize> {
    addr!(__kernel_start)..RAM_END
}

/// The kernel's own trap path (vector and dispatch): never probed.
pub fn kernel_trap_text() -> Range<usize> {
    addr!(__kernel_trap_start)..addr!(__kernel_trap_end)
}

/// The detour area (link.ld's `.detours`, right after `.text`): pages for
/// the detours of jump-optimised probes.
pub fn detours() -> Range<usize> {
    addr!(__detours_start)..addr!(__detours_end)
}

/// The page PMP denies to S and U mode.
pub fn denied() -> Range<usize> {
    addr!(__denied_start)..addr!(__denied_end)
}

/// U-mode memory: user text, stack and slot pages.
pub fn user() -> Range<usize> {
    addr!(__user_start)..addr!(__user_end)
}

/// Whether `addr..addr+len` lies inside `range`.
pub fn contains(range: &Range<usize>, addr: usize, len: usize) -> bool {
    addr >= range.start && addr.checked_add(len).is_some_and(|end| end <= range.end)
}

/// Whether `addr..addr+len` overlaps `range`.
pub fn overlaps(range: &Range<usize>, addr: usize, len: usize) -> bool {
    addr < range.end && addr.saturating_add(len) > range.start
}
