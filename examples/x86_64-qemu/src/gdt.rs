//! Global descriptor tables and task-state segments.
//!
//! [`BOOT_GDT`] (null, 64-bit code, data) is what the 32-bit boot entry
//! loads before its far jump to long mode. Each CPU then loads its own
//! [`CpuTables`]: the same two segments at the same selectors, plus a TSS
//! whose IST1 is a per-CPU stack for the double fault (vector 8), so a
//! broken kernel stack is still reported. Nothing else uses an IST: the
//! breakpoint entry leaves a gap on the interrupted stack instead (see
//! [`crate::entry`]), on every CPU alike.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::mem::size_of;

use crate::smp::MAX_CPUS;

/// Selector of the 64-bit kernel code segment.
pub const KERNEL_CS: u16 = 0x08;
/// Selector of the kernel data segment.
pub const KERNEL_DS: u16 = 0x10;
/// Selector of this CPU's TSS (in its own GDT).
pub const TSS_SEL: u16 = 0x18;
/// The IST slot (1-7) of the double-fault stack.
pub const DOUBLE_FAULT_IST: u8 = 1;
/// Bytes of each CPU's double-fault stack.
const DOUBLE_FAULT_STACK: usize = 16 * 1024;

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

/// The boot table: null, code (0x08), data (0x10).
#[repr(C, align(8))]
pub struct Gdt(pub [u64; 3]);

/// The GDT of the 32-bit boot entry (read by its `lgdt`).
pub static BOOT_GDT: Gdt = Gdt([0, CODE64, DATA]);

const _: () = assert!(KERNEL_CS as usize == 8 && KERNEL_DS as usize == 16);

/// The 64-bit task-state segment (Intel SDM Vol. 3A §8.7): only the IST
/// entries matter in a ring-0-only kernel.
#[repr(C, packed(4))]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

const _: () = assert!(size_of::<Tss>() == 104);

/// The two descriptor words of an available 64-bit TSS at `base`
/// (type 9, present, DPL 0; SDM Vol. 3A §8.2.3).
const fn tss_descriptor(base: u64, limit: u64) -> [u64; 2] {
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

// The example of the SDM's figure: base 0x1234_5678_9abc_def0, limit 103.
const _: () = {
    let [low, high] = tss_descriptor(0x1234_5678_9abc_def0, 103);
    assert!(low == 0x9a00_89bc_def0_0067 && high == 0x1234_5678);
};

/// One CPU's GDT (null, code, data, TSS: two words), TSS and IST stack.
#[repr(C, align(16))]
struct CpuTables {
    gdt: [u64; 5],
    tss: Tss,
    double_fault_stack: [u8; DOUBLE_FAULT_STACK],
}

/// Every CPU's tables, each written only by [`load`] on its own CPU.
struct AllTables(UnsafeCell<[CpuTables; MAX_CPUS]>);

// SAFETY: CPU `i` writes only entry `i`, once, in `load`, before loading
// it; afterwards only that CPU's hardware uses it (the busy bit of the TSS
// descriptor, the IST stack during a double fault).
unsafe impl Sync for AllTables {}

static TABLES: AllTables = AllTables(UnsafeCell::new(
    [const {
        CpuTables {
            gdt: [0; 5],
            tss: Tss {
                reserved0: 0,
                rsp: [0; 3],
                reserved1: 0,
                ist: [0; 7],
                reserved2: 0,
                reserved3: 0,
                iomap_base: 0,
            },
            double_fault_stack: [0; DOUBLE_FAULT_STACK],
        }
    }; MAX_CPUS],
));

/// The operand of `lgdt`.
#[repr(C, packed)]
struct Gdtr {
    limit: u16,
    base: u64,
}

/// Fill CPU `cpu`'s GDT and TSS, load them, reload every segment register
/// (CS through a far return) and the task register. Call once per CPU,
/// on that CPU, with interrupts masked.
pub fn load(cpu: usize) {
    assert!(cpu < MAX_CPUS, "cpu {cpu} beyond MAX_CPUS");
    // SAFETY: see `AllTables`: entry `cpu` belongs to this CPU, which is
    // the only one to touch it, and nothing uses it before the `lgdt`.
    let t = unsafe { &mut (*TABLES.0.get())[cpu] };
    let stack_top = t.double_fault_stack.as_ptr() as u64 + DOUBLE_FAULT_STACK as u64;
    // (Copied out and back: a packed field cannot be borrowed.)
    let mut ist = [0u64; 7];
    ist[DOUBLE_FAULT_IST as usize - 1] = stack_top & !0xf;
    t.tss.ist = ist;
    // No I/O permission bitmap (ring 0 needs none): it starts at the limit.
    t.tss.iomap_base = size_of::<Tss>() as u16;
    let [tss_low, tss_high] = tss_descriptor(&raw const t.tss as u64, size_of::<Tss>() as u64 - 1);
    t.gdt = [0, CODE64, DATA, tss_low, tss_high];
    let gdtr = Gdtr {
        limit: (size_of::<[u64; 5]>() - 1) as u16,
        base: t.gdt.as_ptr() as u64,
    };
    // Why the block below is sound:
    // the table is static and keeps the code and data selectors the kernel
    // runs with, so reloading CS (far return to the next instruction), DS, ES,
    // SS with them changes nothing but the cached descriptors; `ltr` marks
    // this CPU's own TSS descriptor busy. FS and GS keep their bases (GS holds
    // the per-CPU pointer, see `crate::percpu`): they are not reloaded.
    // SAFETY: reloads selectors of this static GDT and this CPU's TSS (see above).
    unsafe {
        asm!(
            "lgdt [{gdtr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov {tmp:e}, {ds}",
            "mov ds, {tmp:x}",
            "mov es, {tmp:x}",
            "mov ss, {tmp:x}",
            "mov {tmp:e}, {tss}",
            "ltr {tmp:x}",
            gdtr = in(reg) &gdtr,
            cs = const KERNEL_CS as u64,
            ds = const KERNEL_DS as u32,
            tss = const TSS_SEL as u32,
            tmp = out(reg) _,
        )
    };
}
