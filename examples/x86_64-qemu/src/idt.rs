//! The interrupt descriptor table: every exception vector (0-31) gets an
//! interrupt gate (IF cleared on entry, as the engine's trap path needs),
//! pointing at the entries of [`crate::entry`].

use core::cell::UnsafeCell;
use core::mem::size_of;

use crate::entry;
use crate::gdt::KERNEL_CS;

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
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist: 0,
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

// SAFETY: written only by `install`, once, on the only CPU, before any
// interrupt can use it; the CPU reads it afterwards.
unsafe impl Sync for Table {}

static IDT: Table = Table(UnsafeCell::new([Gate::MISSING; 256]));

/// The operand of `lidt`.
#[repr(C, packed)]
struct Idtr {
    limit: u16,
    base: u64,
}

/// Fill the table and load it.
pub fn install() {
    let table = IDT.0.get();
    for vector in 0..32u8 {
        let gate = Gate::interrupt(entry::address_for(vector) as u64);
        // SAFETY: nothing reads the table before `lidt` below, and this is
        // the only writer (called once, on the only CPU).
        unsafe { (*table)[vector as usize] = gate };
    }
    let idtr = Idtr {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: table as u64,
    };
    // SAFETY: the table is static, filled above, and every present gate
    // points at an entry of `crate::entry` in the kernel code segment.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &idtr, options(readonly, nostack, preserves_flags))
    };
}
