//! How the kernel tells QEMU its verdict: a 32-bit write to the
//! `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`)
//! makes QEMU exit with status `(value << 1) | 1`. Every such status is odd,
//! and QEMU exits 0 on its own (a triple fault under `-no-reboot`, a
//! shutdown), so "passed" is a status QEMU cannot produce by accident.

/// The I/O port of the isa-debug-exit device.
pub const PORT: u16 = 0xf4;

/// What the kernel reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed: QEMU exits 33.
    Passed,
    /// At least one check failed: QEMU exits 35.
    Failed,
    /// A panic or an unexpected trap stopped the run: QEMU exits 37.
    Crashed,
}

impl Verdict {
    /// The value written to the device.
    pub const fn value(self) -> u32 {
        match self {
            Verdict::Passed => 0x10,
            Verdict::Failed => 0x11,
            Verdict::Crashed => 0x12,
        }
    }

    /// QEMU's exit status for this verdict.
    pub const fn qemu_status(self) -> u32 {
        (self.value() << 1) | 1
    }
}

const _: () = assert!(Verdict::Passed.qemu_status() == 33);
const _: () = assert!(Verdict::Failed.qemu_status() == 35);
const _: () = assert!(Verdict::Crashed.qemu_status() == 37);

/// Leave QEMU with `verdict`.
#[cfg(target_os = "none")]
pub fn exit(verdict: Verdict) -> ! {
    // SAFETY: a write to the isa-debug-exit device ends the VM; without the
    // device the write is ignored and the CPU halts below.
    unsafe { crate::cpu::outl(PORT, verdict.value()) };
    crate::cpu::halt()
}
