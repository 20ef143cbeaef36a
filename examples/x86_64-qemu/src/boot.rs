//! From QEMU's multiboot loader to Rust: the multiboot-1 header, the 32-bit
//! entry that builds identity page tables and enters long mode, and the
//! 64-bit start that calls [`crate::kernel_main`].
//!
//! QEMU's `-kernel` loader takes a 64-bit ELF only when the header sets the
//! a.out-kludge flag (bit 16) and gives the load addresses itself; it then
//! jumps to `entry_addr` in 32-bit protected mode, paging off, interrupts
//! off, `eax` = 0x2BADB002 and `ebx` = the multiboot information.
//!
//! The memory map this builds (identity, 0 .. [`MAPPED_END`]):
//! - page 0 is not mapped (a null pointer faults);
//! - the first [`SMALL_PAGES_END`] bytes use 4 KiB pages so that the kernel
//!   text `[__text_start, __text_end)`, slot area included, is read-only
//!   (CR0.WP is set: ring 0 cannot write it either, except through
//!   `KernelServices::write_text`, which clears WP around the write);
//! - the rest, up to 1 GiB, uses writable 2 MiB pages;
//! - everything is executable (no NX), so slot pages need no extra mapping;
//! - one more 2 MiB page, uncached (PCD | PWT), maps the local APIC's
//!   registers at [`APIC_BASE`] (identity), outside the 1 GiB above.
//!
//! The second CPU reuses these tables: the AP trampoline
//! ([`crate::ap_trampoline`]) loads the same CR3.

use core::arch::global_asm;
use core::mem::size_of;

use crate::apic::APIC_BASE;
use crate::gdt::{Gdt, BOOT_GDT, KERNEL_CS, KERNEL_DS};

/// End of the identity map: addresses at or above it fault.
pub const MAPPED_END: usize = 1 << 30;
/// End of the part mapped with 4 KiB pages (8 page tables).
pub const SMALL_PAGES_END: usize = 16 << 20;
/// Lowest mapped address (page 0 stays unmapped).
pub const MAPPED_START: usize = 0x1000;
/// Bytes of the boot CPU's stack (no tasks: the second CPU has its own,
/// see [`crate::smp`]).
const STACK_SIZE: usize = 256 * 1024;
/// Page tables mapping [`SMALL_PAGES_END`] with 4 KiB pages.
const PAGE_TABLES: usize = SMALL_PAGES_END >> 21;
/// The APIC's page-directory entry: present, writable, write-through,
/// cache disabled, 2 MiB page.
const APIC_PDE: u32 = APIC_BASE as u32 | 0x9b;
/// Its indexes in the PDPT (which GiB) and in that GiB's page directory.
const APIC_PDPT_INDEX: usize = APIC_BASE >> 30;
const APIC_PD_INDEX: usize = (APIC_BASE >> 21) & 511;

const MULTIBOOT_MAGIC: u32 = 0x1bad_b002;
/// Only the a.out kludge: the header gives the load addresses.
const MULTIBOOT_FLAGS: u32 = 0x0001_0000;
const MULTIBOOT_CHECKSUM: u32 = 0u32
    .wrapping_sub(MULTIBOOT_MAGIC)
    .wrapping_sub(MULTIBOOT_FLAGS);

global_asm!(
    // --- the multiboot-1 header (first section of the image) -------------
    ".pushsection .multiboot, \"a\", @progbits",
    ".p2align 2",
    "xq_multiboot_header:",
    ".long {magic}",
    ".long {flags}",
    ".long {checksum}",
    ".long xq_multiboot_header", // header_addr
    ".long __image_start",       // load_addr
    ".long __load_end",          // load_end_addr: copy the file up to here
    ".long __bss_end",           // bss_end_addr: zero up to here
    ".long xq_start32",          // entry_addr
    ".popsection",
    // --- page tables and the stack (in .bss, zeroed below) ----------------
    ".pushsection .bss.xq_boot, \"aw\", @nobits",
    ".p2align 12",
    "xq_pml4: .zero 4096",
    "xq_pdpt: .zero 4096",
    "xq_pd: .zero 4096",
    "xq_pd_apic: .zero 4096",
    "xq_pt: .zero {pt_bytes}",
    ".p2align 4",
    "xq_stack: .zero {stack_size}",
    ".global xq_stack_top",
    "xq_stack_top:",
    ".popsection",
    // --- 32-bit entry ------------------------------------------------------
    ".pushsection .xq_boot32, \"ax\", @progbits",
    ".code32",
    ".global xq_start32",
    "xq_start32:",
    "cli",
    "cld",
    // Zero .bss: the loader is asked to, but the page tables must be zero.
    "mov edi, offset __bss_start",
    "mov ecx, offset __bss_end",
    "sub ecx, edi",
    "xor eax, eax",
    "rep stosb",
    "mov esp, offset xq_stack_top",
    // PML4[0] -> PDPT -> PD (present, writable).
    "mov eax, offset xq_pdpt",
    "or eax, 3",
    "mov dword ptr [xq_pml4], eax",
    "mov eax, offset xq_pd",
    "or eax, 3",
    "mov dword ptr [xq_pdpt], eax",
    // The APIC's GiB -> its own PD, with one uncached 2 MiB page.
    "mov eax, offset xq_pd_apic",
    "or eax, 3",
    "mov dword ptr [xq_pdpt + {apic_pdpt} * 8], eax",
    "mov dword ptr [xq_pd_apic + {apic_pd} * 8], {apic_pde}",
    // PD[i] for i < PAGE_TABLES -> the i-th page table; above, 2 MiB pages.
    "xor ecx, ecx",
    "2:",
    "cmp ecx, {page_tables}",
    "jae 3f",
    "mov eax, ecx",
    "shl eax, 12",
    "add eax, offset xq_pt",
    "or eax, 3",
    "jmp 4f",
    "3:",
    "mov eax, ecx",
    "shl eax, 21",
    "or eax, 0x83", // present, writable, 2 MiB page
    "4:",
    "mov dword ptr [xq_pd + ecx * 8], eax",
    "inc ecx",
    "cmp ecx, 512",
    "jne 2b",
    // 4 KiB pages: page 0 absent, text read-only, the rest writable.
    "mov ecx, 1",
    "5:",
    "mov eax, ecx",
    "shl eax, 12",
    "mov edx, 3",
    "cmp eax, offset __text_start",
    "jb 6f",
    "cmp eax, offset __text_end",
    "jae 6f",
    "mov edx, 1",
    "6:",
    "or eax, edx",
    "mov dword ptr [xq_pt + ecx * 8], eax",
    "inc ecx",
    "cmp ecx, {small_pages}",
    "jne 5b",
    // Long mode: PAE, CR3, EFER.LME, then paging with write protection.
    "mov eax, cr4",
    "or eax, 0x20",
    "mov cr4, eax",
    "mov eax, offset xq_pml4",
    "mov cr3, eax",
    "mov ecx, 0xc0000080",
    "rdmsr",
    "or eax, 0x100",
    "wrmsr",
    "mov eax, cr0",
    "or eax, 0x80010001", // PG | WP | PE
    "mov cr0, eax",
    "lgdt [xq_gdtr]",
    // Far return into the 64-bit code segment.
    "push {cs}",
    "mov eax, offset xq_start64",
    "push eax",
    "retf",
    ".p2align 3",
    "xq_gdtr:",
    ".word {gdt_limit}",
    ".long {gdt}",
    // --- 64-bit start ------------------------------------------------------
    ".code64",
    "xq_start64:",
    "mov ax, {ds}",
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "xor eax, eax",
    "mov fs, ax",
    "mov gs, ax",
    "lea rsp, [rip + xq_stack_top]",
    "xor ebp, ebp",
    "call {main}",
    "7:",
    "hlt",
    "jmp 7b",
    ".popsection",
    magic = const MULTIBOOT_MAGIC,
    flags = const MULTIBOOT_FLAGS,
    checksum = const MULTIBOOT_CHECKSUM,
    pt_bytes = const PAGE_TABLES * 4096,
    stack_size = const STACK_SIZE,
    page_tables = const PAGE_TABLES,
    small_pages = const SMALL_PAGES_END / 4096,
    cs = const KERNEL_CS,
    ds = const KERNEL_DS,
    gdt_limit = const size_of::<Gdt>() - 1,
    apic_pdpt = const APIC_PDPT_INDEX,
    apic_pd = const APIC_PD_INDEX,
    apic_pde = const APIC_PDE,
    gdt = sym BOOT_GDT,
    main = sym crate::kernel_main,
);

const _: () = assert!(
    MULTIBOOT_MAGIC
        .wrapping_add(MULTIBOOT_FLAGS)
        .wrapping_add(MULTIBOOT_CHECKSUM)
        == 0
);
const _: () = assert!(PAGE_TABLES == 8 && SMALL_PAGES_END < MAPPED_END);
const _: () = assert!(APIC_BASE % (2 << 20) == 0 && APIC_BASE >= MAPPED_END);
const _: () = assert!(APIC_PDPT_INDEX == 3 && APIC_PD_INDEX == 503);
