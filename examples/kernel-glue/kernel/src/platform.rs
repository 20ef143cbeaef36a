//! What the kernel needs from the machine it runs on: a bare-metal board
//! (build only here) or the host (the tests play the hardware).

use spin::Once;

/// The machine under the kernel.
pub trait Platform: Sync {
    /// Index of the CPU running this call.
    fn cpu_id(&self) -> usize;
    /// CPUs online (indices `0..n`).
    fn online_cpus(&self) -> usize;
    /// Ask every other CPU to pass a quiescent state soon (an IPI).
    fn kick_other_cpus(&self) {}
    /// Stop every other CPU in a loop with interrupts masked.
    fn park_other_cpus(&self) {}
    /// Let the parked CPUs go on.
    fn resume_other_cpus(&self) {}
    /// Copy kernel memory at `src` to `dst`; false if a page is missing
    /// (the copy routine has an exception-table entry).
    fn copy_nofault(&self, dst: &mut [u8], src: usize) -> bool;
    /// Write kernel memory at `dst`; false if a page is missing.
    fn write_nofault(&self, dst: usize, src: &[u8]) -> bool;
    /// Make kernel text at `addr` writable (true) or read-only again.
    fn set_text_writable(&self, addr: usize, len: usize, writable: bool) -> bool;
    /// Make new instructions at `addr` visible to instruction fetch on
    /// every CPU.
    fn flush_icache(&self, addr: usize, len: usize);
    /// A kernel page mapped executable, within 2 GiB of `near`.
    fn alloc_exec_page(&self, near: usize) -> Option<usize>;
    /// Unmap a page of [`alloc_exec_page`](Self::alloc_exec_page).
    fn free_exec_page(&self, page: usize);
    /// The exception-table fix-up of the instruction at `pc`, if any.
    fn fixup(&self, pc: usize) -> Option<usize>;
}

static PLATFORM: Once<&'static dyn Platform> = Once::new();

/// Boot: name the machine (once).
pub fn init(p: &'static dyn Platform) {
    PLATFORM.call_once(|| p);
}

/// The machine.
///
/// # Panics
/// Before [`init`].
pub fn get() -> &'static dyn Platform {
    *PLATFORM.get().expect("platform::init not called")
}
