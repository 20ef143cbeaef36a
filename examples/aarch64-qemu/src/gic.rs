//! The GICv2 of QEMU's `virt` machine (distributor at 0x0800_0000, CPU
//! interface at 0x0801_0000): just enough to send and take one
//! software-generated interrupt, [`SGI_KICK`], with which CPU 0 makes the
//! other CPUs answer its requests (instruction-fetch sync, grace period,
//! stop-machine; see [`crate::smp`]).

const GICD: usize = 0x0800_0000;
const GICC: usize = 0x0801_0000;
const GICD_CTLR: usize = 0x000;
const GICD_ISENABLER0: usize = 0x100;
const GICD_SGIR: usize = 0xf00;
const GICC_CTLR: usize = 0x000;
const GICC_PMR: usize = 0x004;
const GICC_IAR: usize = 0x00c;
const GICC_EOIR: usize = 0x010;

/// The SGI CPU 0 sends: "answer my request".
pub const SGI_KICK: u32 = 1;
/// Interrupt ids at and above this are spurious (1020-1023).
const SPURIOUS: u32 = 1020;

fn write(addr: usize, v: u32) {
    // SAFETY: a GICv2 register of the `virt` machine, mapped as device
    // memory; 32-bit accesses are what the GIC expects.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

fn read(addr: usize) -> u32 {
    // SAFETY: as in `write`.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Enable the distributor (CPU 0, once).
pub fn init_distributor() {
    write(GICD + GICD_CTLR, 1);
}

/// Enable [`SGI_KICK`] and this CPU's interface, every priority unmasked.
pub fn init_cpu() {
    write(GICD + GICD_ISENABLER0, 1 << SGI_KICK);
    write(GICC + GICC_PMR, 0xff);
    write(GICC + GICC_CTLR, 1);
}

/// Send [`SGI_KICK`] to CPU `cpu`.
pub fn kick(cpu: usize) {
    write(GICD + GICD_SGIR, (1 << (16 + cpu)) | SGI_KICK);
}

/// Acknowledge the pending interrupt: its id, or `None` when spurious.
#[link_section = ".text.kernel_trap"]
pub fn acknowledge() -> Option<u32> {
    let iar = read(GICC + GICC_IAR);
    if iar & 0x3ff >= SPURIOUS {
        None
    } else {
        Some(iar)
    }
}

/// Signal the end of the interrupt `iar` returned by [`acknowledge`].
#[link_section = ".text.kernel_trap"]
pub fn end(iar: u32) {
    write(GICC + GICC_EOIR, iar);
}
