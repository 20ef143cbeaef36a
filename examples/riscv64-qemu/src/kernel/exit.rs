//! Leaving QEMU through the virt machine's sifive_test device.

/// The sifive_test device's register.
const SIFIVE_TEST: usize = 0x10_0000;
/// "Pass": QEMU exits with status 0.
const PASS: u32 = 0x5555;
/// "Fail" marker; the exit status goes in the upper 16 bits.
const FAIL: u32 = 0x3333;

fn write(value: u32) -> ! {
    // SAFETY: SIFIVE_TEST is the test device's register on the virt machine,
    // mapped for every mode by PMP; writing it ends the emulation.
    unsafe { core::ptr::write_volatile(SIFIVE_TEST as *mut u32, value) };
    loop {
        core::hint::spin_loop();
    }
}

/// End the run successfully (QEMU exits 0).
pub fn pass() -> ! {
    write(PASS)
}

/// End the run with exit status `code` (1..=0xffff; 0 becomes 1).
pub fn fail(code: u16) -> ! {
    let code = u32::from(code.max(1));
    write((code << 16) | FAIL)
}
