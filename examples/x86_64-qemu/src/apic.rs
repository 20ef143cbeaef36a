//! The local APIC in xAPIC mode: its registers are memory at
//! [`APIC_BASE`], which the boot page tables map uncached (a 2 MiB page,
//! PCD | PWT; see [`crate::boot`]). Used to start the second CPU
//! (INIT, then STARTUP twice) and to send it the kernel's one IPI.

use core::ptr;

use crate::clock;
use crate::cpu::{rdmsr, wrmsr};

/// Physical (and, identity-mapped, virtual) address of the registers.
pub const APIC_BASE: usize = 0xfee0_0000;
/// The vector of the kernel's IPI (see [`crate::smp`]).
pub const IPI_VECTOR: u8 = 0xf0;
/// The spurious-interrupt vector (its entry returns without an EOI).
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
/// IA32_APIC_BASE bit 11: the APIC is enabled (xAPIC mode).
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;

// Register offsets (Intel SDM Vol. 3A, Table 11-1).
const ID: usize = 0x20;
const EOI: usize = 0xb0;
const SVR: usize = 0xf0;
const ICR_LOW: usize = 0x300;
const ICR_HIGH: usize = 0x310;
const LVT_TIMER: usize = 0x320;
const TIMER_INITIAL: usize = 0x380;
const TIMER_DIVIDE: usize = 0x3e0;

/// Timer divide configuration 0b0011: divide the bus clock by 16.
const DIVIDE_BY_16: u32 = 0b0011;

/// SVR bit 8: the APIC is software-enabled.
const SVR_ENABLE: u32 = 1 << 8;
/// ICR: delivery status (1 = send pending).
const ICR_PENDING: u32 = 1 << 12;
/// ICR: level assert (required for INIT and STARTUP on older parts).
const ICR_ASSERT: u32 = 1 << 14;
const ICR_FIXED: u32 = 0 << 8;
const ICR_INIT: u32 = 5 << 8;
const ICR_STARTUP: u32 = 6 << 8;

fn read(reg: usize) -> u32 {
    // SAFETY: `reg` is one of the register offsets above, inside the
    // APIC's 4 KiB page, which is mapped uncached; 32-bit aligned reads
    // are how the registers are accessed.
    unsafe { ptr::read_volatile((APIC_BASE + reg) as *const u32) }
}

fn write(reg: usize, value: u32) {
    // SAFETY: as in `read`; every write below follows the register's
    // documented meaning.
    unsafe { ptr::write_volatile((APIC_BASE + reg) as *mut u32, value) };
}

/// Enable this CPU's APIC (globally in the MSR, then in software, with the
/// spurious vector), so that it accepts the kernel's IPI. Every CPU calls
/// it once; the IDT must already have the IPI and spurious gates.
pub fn enable() {
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC (QEMU's
    // x86_64 CPUs all have one); setting the enable bit keeps the base
    // the firmware chose, which is `APIC_BASE`, checked below.
    let base = unsafe { rdmsr(IA32_APIC_BASE) };
    assert_eq!(
        base & 0xffff_f000,
        APIC_BASE as u64,
        "the local APIC is not at {APIC_BASE:#x}"
    );
    // SAFETY: as above: only the enable bit changes.
    unsafe { wrmsr(IA32_APIC_BASE, base | APIC_GLOBAL_ENABLE) };
    write(SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
}

/// This CPU's APIC id.
pub fn id() -> u32 {
    read(ID) >> 24
}

/// Signal the end of the interrupt being handled.
pub fn eoi() {
    write(EOI, 0);
}

fn send(dest: u32, command: u32) {
    write(ICR_HIGH, dest << 24);
    write(ICR_LOW, command);
    while read(ICR_LOW) & ICR_PENDING != 0 {
        core::hint::spin_loop();
    }
}

/// Raise [`IPI_VECTOR`] on this CPU once, `ticks` × 16 bus clocks from
/// now (one-shot timer): the wake-up of a `hlt` whose real wake-up never
/// came. QEMU's APIC bus runs at 1 GHz, so 62,500 ticks are 1 ms.
pub fn arm_timer_once(ticks: u32) {
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(LVT_TIMER, u32::from(IPI_VECTOR)); // one-shot, not masked
    write(TIMER_INITIAL, ticks);
}

/// Send the fixed IPI [`IPI_VECTOR`] to the CPU with APIC id `dest`.
pub fn send_ipi(dest: u32) {
    send(dest, ICR_FIXED | ICR_ASSERT | u32::from(IPI_VECTOR));
}

/// INIT, then STARTUP twice at `page` (the trampoline's physical address,
/// 4 KiB aligned, below 1 MiB), with the delays of the SDM's MP
/// initialisation protocol (Vol. 3A §9.4.4.1): 10 ms, then 200 µs.
pub fn start_cpu(dest: u32, page: usize) {
    assert!(
        page % 4096 == 0 && page < 0x10_0000,
        "bad startup page {page:#x}"
    );
    send(dest, ICR_INIT | ICR_ASSERT);
    clock::delay_us(10_000);
    for _ in 0..2 {
        send(dest, ICR_STARTUP | ICR_ASSERT | (page >> 12) as u32);
        clock::delay_us(200);
    }
}
