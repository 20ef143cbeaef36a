//! Making written text visible to instruction fetch on every CPU.
//!
//! Architecturally (LoongArch vol. 1 §2.2.8) a CPU sees new instructions
//! after `dbar 0` orders the stores and `ibar 0` runs on that CPU: locally
//! here, and on the other CPUs through [`crate::smp::request`].
//!
//! QEMU 7.2 with multi-threaded TCG (its default for `-smp 2`) can keep a
//! translation of the *old* bytes when another vCPU was translating the
//! page while the store happened: it then never sees the store, and
//! neither `ibar` nor a TLB flush drops that translation (we saw a CPU
//! trap forever on a `break` that memory no longer held, and a freshly
//! written `break` not trapping). Any later store to the bytes does drop
//! it, once the racing translation is finished. So after every other CPU
//! answered, the same bytes are stored once more: on hardware that store
//! changes nothing.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::smp::{self, Request};

/// Make `addr..addr + len` (already written) visible to instruction fetch
/// on every CPU. The caller is the only writer of these bytes (the
/// engine's registration lock is held).
pub fn sync(addr: usize, len: usize) {
    crate::csr::sync_instruction_fetch();
    smp::request(Request::Icache);
    let start = addr & !3;
    let end = (addr + len + 3) & !3;
    for word in (start..end).step_by(4) {
        // SAFETY: the caller checked that the range lies in mapped kernel
        // or user memory; `word` is aligned. The atomic OR with 0 rewrites
        // the word with its own value, so even a concurrent reader sees
        // either value, which are the same.
        unsafe { AtomicU32::from_ptr(word as *mut u32).fetch_or(0, Ordering::SeqCst) };
    }
    crate::csr::sync_instruction_fetch();
}
