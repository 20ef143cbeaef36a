//! Leaving QEMU: power off through the GED (exit status 0) on success, the
//! pvpanic PCI device (exit status 1 with `-action panic=exit-failure`) on
//! failure. The panic handler lives here too.

use crate::csr;

/// The GED "sleep control" register: writing `SLP_EN | S5` powers off.
const GED_SLEEP_CTL: usize = csr::UNCACHED_BASE + 0x100e_001c;
const GED_POWER_OFF: u8 = 0x34;

/// PCI ECAM of the `virt` machine and the function `-device
/// pvpanic-pci,addr=7` sits at (bus 0, device 7, function 0).
const ECAM: usize = csr::UNCACHED_BASE + 0x2000_0000;
const PVPANIC_CFG: usize = ECAM + (7 << 15);
/// Configuration-space offsets: the command register (bit 1: memory
/// space enable) and BAR0.
const PCI_COMMAND: usize = 0x04;
const PCI_COMMAND_MEMORY: u32 = 1 << 1;
const PCI_BAR0: usize = 0x10;
/// Where we place the device's BAR0, in the PCI memory window.
const PVPANIC_BAR: usize = 0x4000_0000;
/// pvpanic: "guest panicked".
const PVPANIC_PANICKED: u8 = 1;

/// Power off: QEMU exits with status 0.
pub fn pass() -> ! {
    // SAFETY: the GED register of the `virt` machine, mapped uncached; the
    // write powers the machine off and nothing runs after it.
    unsafe { core::ptr::write_volatile(GED_SLEEP_CTL as *mut u8, GED_POWER_OFF) };
    halt()
}

/// Report a failure: QEMU exits with status 1.
pub fn fail() -> ! {
    // SAFETY: PCI configuration space of device 7 through the ECAM window
    // (uncached), 32-bit accesses to BAR0 and the command register; then
    // BAR0's first byte is the pvpanic event register. These are the
    // device's documented registers, and QEMU stops after the last write.
    unsafe {
        let bar0 = (PVPANIC_CFG + PCI_BAR0) as *mut u32;
        let command = (PVPANIC_CFG + PCI_COMMAND) as *mut u32;
        core::ptr::write_volatile(bar0, PVPANIC_BAR as u32);
        let cmd = core::ptr::read_volatile(command);
        core::ptr::write_volatile(command, cmd | PCI_COMMAND_MEMORY);
        core::ptr::write_volatile(
            (csr::UNCACHED_BASE + PVPANIC_BAR) as *mut u8,
            PVPANIC_PANICKED,
        );
    }
    halt()
}

/// Spin forever (after an exit request, or on a CPU with nothing to do).
pub fn halt() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::println!("PANIC on CPU {}: {}", csr::cpu_id(), info);
    fail()
}
