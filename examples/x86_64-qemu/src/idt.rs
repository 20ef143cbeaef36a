//! The interrupt descriptor table, shared by both CPUs: every exception
//! vector (0-31) gets an interrupt gate (IF cleared on entry, as the
//! engine's trap path needs), pointing at the entries of [`crate::entry`];
//! so do the kernel's IPI and the APIC's spurious vector. Only the double
//! fault switches stacks (IST1, each CPU's own, see [`crate::gdt`]).

use core::cell::UnsafeCell;
use core::mem::size_of;

use crate::apic::{IPI_VECTOR, SPURIOUS_VECTOR};
use crate::entry;
use crate::gdt::{DOUBLE_FAULT_IST, KERNEL_CS};

/// A 64-bit IDT gate (Intel SDM Vol. 3A §6.14.1).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

/// Present, DPL 0, 64-bit interrupt gate (type 0xe).
const INTERRUPT_GATE: u8 = 0x8e;

impl Gate {
    /// A gate that is not present (a trap through it is a #GP, then a
    /// double fault).
    pub const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// An interrupt gate to `handler` in the kernel code segment, on the
    /// interrupted stack (IST 0).
    pub const fn interrupt(handler: u64) -> Gate {
        Gate::interrupt_on(handler, 0)
    }

    /// An interrupt gate to `handler` on IST stack `ist` (1-7; 0: the
    /// interrupted stack).
    pub const fn interrupt_on(handler: u64, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist,
            type_attr: INTERRUPT_GATE,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

const _: () = assert!(size_of::<Gate>() == 16);
// The bytes of a gate to 0x1234_5678_9abc_def0, as the SDM's figure lays them out.
const _: () = {
    let g = Gate::interrupt(0x1234_5678_9abc_def0);
    assert!(g.offset_low == 0xdef0 && g.offset_mid == 0x9abc && g.offset_high == 0x1234_5678);
    assert!(g.selector == 8 && g.type_attr == 0x8e && g.ist == 0);
};

/// The table, filled once by [`install`].
struct Table(UnsafeCell<[Gate; 256]>);

// SAFETY: written only by `install`, once, on the boot CPU, before any
// interrupt can use it and before the second CPU starts; the CPUs only
// read it afterwards.
unsafe impl Sync for Table {}

static IDT: Table = Table(UnsafeCell::new([Gate::MISSING; 256]));

/// The operand of `lidt`.
#[repr(C, packed)]
struct Idtr {
    limit: u16,
    base: u64,
}

/// Fill the table (once, on the boot CPU) and load it.
pub fn install() {
    let table = IDT.0.get();
    let gate_for = |vector: u8| match vector {
        8 => Gate::interrupt_on(entry::address_for(8) as u64, DOUBLE_FAULT_IST),
        v if v < 32 => Gate::interrupt(entry::address_for(v) as u64),
        IPI_VECTOR => Gate::interrupt(entry::ipi_entry() as u64),
        SPURIOUS_VECTOR => Gate::interrupt(entry::spurious_entry() as u64),
        _ => Gate::MISSING,
    };
    for vector in 0..=255u8 {
        // SAFETY: nothing reads the table before `lidt` below, and this is
        // the only writer (called once, on the boot CPU, before the second
        // CPU starts).
        unsafe { (*table)[vector as usize] = gate_for(vector) };
    }
    load();
}

/// Load the table on this CPU (the boot CPU through [`install`], the
/// second CPU when it starts).
pub fn load() {
    let idtr = Idtr {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: IDT.0.get() as u64,
    };
    // SAFETY: the table is static, filled by `install` before any CPU
    // loads it, and every present gate points at an entry of
    // `crate::entry` in the kernel code segment; the double-fault gate's
    // IST1 is set in every CPU's TSS (`gdt::load` runs first).
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &idtr, options(readonly, nostack, preserves_flags))
    };
}
