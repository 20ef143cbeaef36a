//! The kernel's exception fix-up table, as Linux keeps one: code that may
//! fault on purpose (a load from an address a caller handed in) lists
//! `(faulting instruction, continuation)` pairs in the `.ex_table` section;
//! the fault handler resumes at the continuation instead of dying.

/// One entry, as the assembler emits it (`.dword insn, fixup`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Entry {
    insn: usize,
    fixup: usize,
}

extern "C" {
    static __ex_table_start: Entry;
    static __ex_table_end: Entry;
}

#[link_section = ".text.kernel_trap"]
fn table() -> &'static [Entry] {
    let start = core::ptr::addr_of!(__ex_table_start);
    let end = core::ptr::addr_of!(__ex_table_end);
    // SAFETY: the linker script places every `.ex_table` input section
    // between these two symbols, 8-byte aligned; the entries are read-only
    // data for the whole run.
    unsafe { core::slice::from_raw_parts(start, end.offset_from(start) as usize) }
}

/// Where to continue after a fault at `pc`, if `pc` may fault.
#[link_section = ".text.kernel_trap"]
pub fn lookup(pc: usize) -> Option<usize> {
    table().iter().find(|e| e.insn == pc).map(|e| e.fixup)
}
