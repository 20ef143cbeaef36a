//! The real-mode trampoline the second CPU starts in.
//!
//! A STARTUP IPI starts an application processor in 16-bit real mode at
//! `CS:IP = (page >> 4):0`, so its first code must lie in a page below
//! 1 MiB. The blob below is assembled into `.rodata` and copied by
//! [`install`] to [`TRAMPOLINE_PAGE`] (identity-mapped, writable, unused
//! by the kernel and by QEMU's multiboot loader, which keeps its
//! information at 0x9000). It goes:
//! 1. 16-bit: load its own GDT (null, 32-bit code 0x08, data 0x10, 64-bit
//!    code 0x18), set CR0.PE, far jump to 32-bit code;
//! 2. 32-bit: PAE, the boot CPU's CR3, EFER.LME, then paging and CR0.WP
//!    (as the boot CPU runs), far jump to the 64-bit segment;
//! 3. 64-bit: data segments, the stack [`install`] wrote, then a call to
//!    the entry it wrote, with the CPU index in `rdi`.
//!
//! Every absolute address in the blob is `TRAMPOLINE_PAGE + (label -
//! start)`: the code runs at the copy, not where it was linked. The
//! parameters sit at the end of the blob, at offsets the Rust side gets
//! from the labels.

use core::arch::global_asm;
use core::ptr;

/// Where the trampoline runs: the STARTUP vector is this page number.
pub const TRAMPOLINE_PAGE: usize = 0x8000;

global_asm!(
    ".pushsection .rodata.xq_ap_trampoline, \"a\", @progbits",
    ".p2align 12",
    ".global xq_ap_tramp_start, xq_ap_tramp_end",
    ".global xq_ap_tramp_cr3, xq_ap_tramp_stack, xq_ap_tramp_entry, xq_ap_tramp_cpu",
    "xq_ap_tramp_start:",
    ".code16",
    "cli",
    "cld",
    "xorw %ax, %ax",
    "movw %ax, %ds",
    "lgdtl ({base} + xq_ap_tramp_gdtr - xq_ap_tramp_start)",
    "movl %cr0, %eax",
    "orl $1, %eax",
    "movl %eax, %cr0",
    "ljmpl $0x08, $({base} + xq_ap_tramp_32 - xq_ap_tramp_start)",
    ".code32",
    "xq_ap_tramp_32:",
    "movw $0x10, %ax",
    "movw %ax, %ds",
    "movw %ax, %es",
    "movw %ax, %ss",
    "movl %cr4, %eax",
    "orl $0x20, %eax", // PAE
    "movl %eax, %cr4",
    "movl ({base} + xq_ap_tramp_cr3 - xq_ap_tramp_start), %eax",
    "movl %eax, %cr3",
    "movl $0xc0000080, %ecx", // EFER
    "rdmsr",
    "orl $0x100, %eax", // LME
    "wrmsr",
    "movl %cr0, %eax",
    "orl $0x80010001, %eax", // PG | WP | PE
    "movl %eax, %cr0",
    "ljmpl $0x18, $({base} + xq_ap_tramp_64 - xq_ap_tramp_start)",
    ".code64",
    "xq_ap_tramp_64:",
    "movw $0x10, %ax",
    "movw %ax, %ds",
    "movw %ax, %es",
    "movw %ax, %ss",
    "xorl %eax, %eax",
    "movw %ax, %fs",
    "movw %ax, %gs",
    "movq ({base} + xq_ap_tramp_stack - xq_ap_tramp_start), %rsp",
    "movq ({base} + xq_ap_tramp_cpu - xq_ap_tramp_start), %rdi",
    "movq ({base} + xq_ap_tramp_entry - xq_ap_tramp_start), %rax",
    "xorl %ebp, %ebp",
    "callq *%rax",
    "xq_ap_tramp_halt:",
    "cli",
    "hlt",
    "jmp xq_ap_tramp_halt",
    ".p2align 3",
    "xq_ap_tramp_gdt:",
    ".quad 0",
    ".quad 0x00cf9a000000ffff", // 0x08: 32-bit code
    ".quad 0x00cf92000000ffff", // 0x10: data
    ".quad 0x00af9a000000ffff", // 0x18: 64-bit code
    "xq_ap_tramp_gdtr:",
    ".word 31",
    ".long {base} + xq_ap_tramp_gdt - xq_ap_tramp_start",
    ".p2align 3",
    "xq_ap_tramp_cr3: .quad 0",
    "xq_ap_tramp_stack: .quad 0",
    "xq_ap_tramp_entry: .quad 0",
    "xq_ap_tramp_cpu: .quad 0",
    "xq_ap_tramp_end:",
    ".popsection",
    base = const TRAMPOLINE_PAGE,
    options(att_syntax),
);

extern "C" {
    static xq_ap_tramp_start: u8;
    static xq_ap_tramp_end: u8;
    static xq_ap_tramp_cr3: u8;
    static xq_ap_tramp_stack: u8;
    static xq_ap_tramp_entry: u8;
    static xq_ap_tramp_cpu: u8;
}

/// Offset of a parameter label inside the blob.
fn offset_of(label: *const u8) -> usize {
    label as usize - &raw const xq_ap_tramp_start as usize
}

/// Copy the trampoline to [`TRAMPOLINE_PAGE`] with its parameters: the
/// page tables (`cr3`), the top of the new CPU's stack, the 64-bit entry
/// and the CPU index it gets in `rdi`. Call before the STARTUP IPI, while
/// no other CPU runs the page.
pub fn install(cr3: u64, stack_top: usize, entry: extern "C" fn(usize) -> !, cpu: usize) {
    let start = &raw const xq_ap_tramp_start as usize;
    let len = &raw const xq_ap_tramp_end as usize - start;
    assert!(len <= 4096, "AP trampoline is {len} bytes");
    assert!(
        cr3 < 1 << 32,
        "page tables above 4 GiB: 32-bit code cannot load them"
    );
    // SAFETY: the source is the blob in .rodata; the destination page is
    // identity-mapped, writable, and used by nothing else (see the module
    // documentation); no CPU executes it until the STARTUP IPI, which
    // follows this copy.
    unsafe { ptr::copy_nonoverlapping(start as *const u8, TRAMPOLINE_PAGE as *mut u8, len) };
    let params = [
        (offset_of(&raw const xq_ap_tramp_cr3), cr3),
        (offset_of(&raw const xq_ap_tramp_stack), stack_top as u64),
        (
            offset_of(&raw const xq_ap_tramp_entry),
            entry as usize as u64,
        ),
        (offset_of(&raw const xq_ap_tramp_cpu), cpu as u64),
    ];
    for (offset, value) in params {
        // SAFETY: each offset is an 8-byte aligned `.quad` inside the copy
        // just made.
        unsafe { ptr::write_volatile((TRAMPOLINE_PAGE + offset) as *mut u64, value) };
    }
}
