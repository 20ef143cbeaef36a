//! The global descriptor table: a flat 64-bit code segment and a data
//! segment, loaded by the 32-bit entry before the far jump to long mode.
//! No TSS: the breakpoint entry leaves a gap on the interrupted stack
//! instead of switching to an IST stack (see [`crate::entry`]).

/// Selector of the 64-bit kernel code segment.
pub const KERNEL_CS: u16 = 0x08;
/// Selector of the kernel data segment.
pub const KERNEL_DS: u16 = 0x10;

/// A code or data segment descriptor with base 0 and limit 0xfffff
/// (Intel SDM Vol. 3A §3.4.5): `access` is the P/DPL/S/type byte, `flags`
/// the G/D-B/L/AVL nibble.
pub const fn descriptor(access: u8, flags: u8) -> u64 {
    0xffff | (0xf << 48) | ((access as u64) << 40) | (((flags & 0xf) as u64) << 52)
}

/// Present, DPL 0, code, readable; 4 KiB granularity, 64-bit (L).
pub const CODE64: u64 = descriptor(0x9a, 0xa);
/// Present, DPL 0, data, writable; 4 KiB granularity, 32-bit (D/B).
pub const DATA: u64 = descriptor(0x92, 0xc);

// The descriptors every long-mode tutorial and Linux's early GDT use.
const _: () = assert!(CODE64 == 0x00af_9a00_0000_ffff);
const _: () = assert!(DATA == 0x00cf_9200_0000_ffff);

/// The table: null, code (0x08), data (0x10).
#[repr(C, align(8))]
pub struct Gdt(pub [u64; 3]);

/// The kernel's only GDT (read by `lgdt` in the 32-bit entry).
pub static BOOT_GDT: Gdt = Gdt([0, CODE64, DATA]);

const _: () = assert!(KERNEL_CS as usize == 8 && KERNEL_DS as usize == 16);
