//! The kernel's exception fix-up table (Linux's `__ex_table`): a faulting
//! kernel pc and where to continue instead.
//!
//! Test functions add rows to the section `.rodata.kernel_fixups` next to
//! the instruction that may fault, as pairs of addresses.

extern "C" {
    static __kernel_fixups_start: [usize; 2];
    static __kernel_fixups_end: [usize; 2];
}

fn rows() -> &'static [[usize; 2]] {
    let start = core::ptr::addr_of!(__kernel_fixups_start);
    let end = core::ptr::addr_of!(__kernel_fixups_end);
    // SAFETY: link.ld puts the 8-byte-aligned pairs of the fix-up section,
    // and nothing else, between the two symbols.
    unsafe { core::slice::from_raw_parts(start, end.offset_from(start) as usize) }
}

/// Where to continue after a kernel fault at `pc`, if the table says.
#[link_section = "kernel_trap_text"]
pub fn lookup(pc: usize) -> Option<usize> {
    rows().iter().find(|r| r[0] == pc).map(|r| r[1])
}
