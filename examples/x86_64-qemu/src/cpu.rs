//! The few privileged instructions the kernel uses, each in one place.

use core::arch::asm;

/// Interrupt enable flag in `rflags`.
pub const IF: u64 = 1 << 9;
/// Write-protect bit of CR0: when set, ring 0 cannot write read-only pages.
const CR0_WP: u64 = 1 << 16;

/// Write a byte to an I/O port.
///
/// # Safety
/// The port must belong to a device whose protocol the caller follows.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller vouches for the device; `out` touches no memory.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Read a byte from an I/O port.
///
/// # Safety
/// As for [`outb`].
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller vouches for the device; `in` touches no memory.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Write a 32-bit value to an I/O port.
///
/// # Safety
/// As for [`outb`].
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller vouches for the device; `out` touches no memory.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// The current `rflags`.
pub fn rflags() -> u64 {
    let flags: u64;
    // SAFETY: pushes and pops one word of the current stack, changes nothing.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags
}

/// Whether maskable interrupts are enabled.
pub fn interrupts_enabled() -> bool {
    rflags() & IF != 0
}

/// Disable maskable interrupts.
pub fn disable_interrupts() {
    // SAFETY: `cli` only masks interrupts; nothing in this kernel depends on
    // them being enabled.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// Interrupts masked until dropped, then put back as they were.
pub struct InterruptsMasked {
    were_enabled: bool,
}

impl InterruptsMasked {
    /// Mask interrupts, remembering whether they were enabled.
    pub fn mask() -> Self {
        let were_enabled = interrupts_enabled();
        disable_interrupts();
        Self { were_enabled }
    }
}

impl Drop for InterruptsMasked {
    fn drop(&mut self) {
        if self.were_enabled {
            // SAFETY: interrupts were enabled when the guard was made; the
            // PIC is masked, so enabling them again lets nothing in that the
            // kernel is not ready for.
            unsafe { asm!("sti", options(nomem, nostack)) };
        }
    }
}

/// Run `f` with CR0.WP cleared, so that ring 0 may write read-only pages,
/// with interrupts masked throughout.
pub fn with_write_protect_off<T>(f: impl FnOnce() -> T) -> T {
    let _masked = InterruptsMasked::mask();
    let cr0: u64;
    // SAFETY: reading CR0 has no side effect.
    unsafe { asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags)) };
    // SAFETY: clearing WP only lets ring 0 write read-only pages, on this
    // CPU only; interrupts are masked, so only `f` runs in this window here
    // (the caller keeps the other CPU away from the bytes `f` writes).
    unsafe { asm!("mov cr0, {}", in(reg) cr0 & !CR0_WP, options(nostack, preserves_flags)) };
    let result = f();
    // SAFETY: puts back the CR0 value read above.
    unsafe { asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags)) };
    result
}

/// A serialising instruction: after it, instruction fetch sees every
/// earlier store (Intel SDM Vol. 3A §8.1.3, self-modifying code).
pub fn serialize() {
    // SAFETY: `cpuid` leaf 0 only reads identification registers; rbx,
    // which LLVM reserves, is saved and restored around it.
    unsafe {
        asm!(
            "push rbx",
            "cpuid",
            "pop rbx",
            inout("eax") 0u32 => _,
            inout("ecx") 0u32 => _,
            out("edx") _,
            options(preserves_flags),
        )
    };
}

/// Enable maskable interrupts.
///
/// # Safety
/// Every vector that can arrive (the IPI and spurious vectors of
/// [`crate::apic`]; the legacy PIC is masked) must have its gate installed.
pub unsafe fn enable_interrupts() {
    // SAFETY: the caller vouches for the IDT.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: `rdtsc` only reads the counter (CR4.TSD is clear: ring 0 anyway).
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Read a model-specific register.
///
/// # Safety
/// `msr` must exist on this CPU (else #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller vouches for the MSR; reading it has no side effect.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Write a model-specific register.
///
/// # Safety
/// `msr` must exist, and the value must keep the kernel's invariants
/// (the caller says which).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller vouches for the MSR and the value.
    unsafe {
        asm!(
            "wrmsr",
            in("ecx") msr,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            options(nostack, preserves_flags),
        )
    };
}

/// CR3: the physical address of the page tables (the PML4).
pub fn cr3() -> u64 {
    let value: u64;
    // SAFETY: reading CR3 has no side effect.
    unsafe { asm!("mov {}, cr3", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// CR2: the linear address of the last page fault.
pub fn cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Mask every line of both legacy PICs. The BIOS leaves them programmed
/// with IRQ 0 (the timer) on vector 8, which would look like a double
/// fault the first time a test sets IF.
pub fn mask_legacy_pic() {
    // SAFETY: ports 0x21 and 0xa1 are the interrupt mask registers of the
    // master and slave 8259A; writing 0xff masks every line.
    unsafe {
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
    }
}

/// Halt forever with interrupts masked.
pub fn halt() -> ! {
    loop {
        // SAFETY: `cli; hlt` stops this CPU; nothing else runs.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
