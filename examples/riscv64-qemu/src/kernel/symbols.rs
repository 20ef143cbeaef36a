//! The symbol table of the test functions, and the macro that defines them.
//!
//! Every test function is written in assembly with [`test_fn!`], which
//! places it in its own section and adds a row `(start, end, name)` to the
//! table section `.rodata.probe_symbols` (kept by link.ld), as a kernel's
//! kallsyms would. The services answer `lookup_symbol` and
//! `symbol_containing` from it, and the checks find their functions by
//! name.

use core::ops::Range;

use probe_core::Symbol;

use super::layout;

/// Define a test function in assembly.
///
/// `section` is `.text.probe_test` for kernel functions and `.user_text`
/// for U-mode ones; `isa` is `"rvc"` (the assembler compresses what it can)
/// or `"norvc"` (only 32-bit encodings, unless a line switches back).
/// Module-level assembly is assembled for the base ISA only, so the macro
/// names the extensions the kernel runs with.
macro_rules! test_fn {
    ($section:literal, $name:literal, $isa:literal, [$($line:literal),* $(,)?]) => {
        core::arch::global_asm!(
            concat!(".pushsection ", $section, ".", $name, ", \"ax\", @progbits"),
            ".option push",
            ".option arch, +m, +a, +f, +d, +c, +zicsr, +zifencei",
            concat!(".option ", $isa),
            ".p2align 2",
            concat!(".globl ", $name),
            concat!(".type ", $name, ", @function"),
            concat!($name, ":"),
            $($line,)*
            concat!(".L", $name, "_end:"),
            concat!(".size ", $name, ", .L", $name, "_end - ", $name),
            ".option pop",
            ".popsection",
            ".pushsection .rodata.probe_symbol_names, \"a\", @progbits",
            concat!(".L", $name, "_name:"),
            concat!(".ascii \"", $name, "\""),
            concat!(".L", $name, "_name_end:"),
            ".popsection",
            ".pushsection .rodata.probe_symbols, \"a\", @progbits",
            ".p2align 3",
            concat!(
                ".quad ", $name, ", .L", $name, "_end, .L", $name, "_name, .L", $name,
                "_name_end - .L", $name, "_name"
            ),
            ".popsection",
        );
    };
}

/// A kernel (S-mode) test function.
macro_rules! kernel_fn {
    ($name:literal, $isa:literal, [$($line:literal),* $(,)?]) => {
        $crate::kernel::symbols::test_fn!(".text.probe_test", $name, $isa, [$($line),*]);
    };
}

/// A U-mode test function (placed in the user region).
macro_rules! user_fn {
    ($name:literal, $isa:literal, [$($line:literal),* $(,)?]) => {
        $crate::kernel::symbols::test_fn!(".user_text", $name, $isa, [$($line),*]);
    };
}

pub(crate) use {kernel_fn, test_fn, user_fn};

/// One row of the table, as `test_fn!` emits it.
#[repr(C)]
struct Row {
    start: usize,
    end: usize,
    name: *const u8,
    name_len: usize,
}

extern "C" {
    static __probe_symbols_start: Row;
    static __probe_symbols_end: Row;
}

/// A test function: name and address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestFn {
    /// Its name.
    pub name: &'static str,
    /// Its start address.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
}

impl TestFn {
    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.end - self.start
    }

    /// The engine's view of it.
    pub fn symbol(&self) -> Symbol {
        Symbol {
            addr: self.start,
            size: self.size(),
        }
    }

    /// Whether it runs in U-mode (lies in the user region).
    pub fn is_user(&self) -> bool {
        layout::contains(&layout::user(), self.start, self.size())
    }

    /// Its bytes.
    pub fn bytes(&self) -> &'static [u8] {
        // SAFETY: the range is the function's code, in RAM that S-mode may
        // read (text is never unmapped; nothing here writes it while the
        // returned slice is compared, except the engine's own patching,
        // which callers account for).
        unsafe { core::slice::from_raw_parts(self.start as *const u8, self.size()) }
    }

    /// Its address range.
    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

fn rows() -> &'static [Row] {
    let start = core::ptr::addr_of!(__probe_symbols_start);
    let end = core::ptr::addr_of!(__probe_symbols_end);
    // SAFETY: link.ld places every row `test_fn!` emitted (8-byte aligned,
    // four words each) between the two symbols, and nothing else.
    unsafe { core::slice::from_raw_parts(start, end.offset_from(start) as usize) }
}

fn test_fn_of(row: &Row) -> TestFn {
    // SAFETY: `name` points at the `.ascii` name `test_fn!` emitted, of
    // `name_len` bytes, in read-only data that lives for the whole run.
    let bytes = unsafe { core::slice::from_raw_parts(row.name, row.name_len) };
    TestFn {
        name: core::str::from_utf8(bytes).unwrap_or("?"),
        start: row.start,
        end: row.end,
    }
}

/// Every test function.
pub fn all() -> impl Iterator<Item = TestFn> {
    rows().iter().map(test_fn_of)
}

/// The test function called `name`.
pub fn find(name: &str) -> Option<TestFn> {
    all().find(|f| f.name == name)
}

/// The test function called `name`; panics when there is none (a typo in
/// a check is a bug of the kernel, not a finding about the engine).
pub fn get(name: &str) -> TestFn {
    match find(name) {
        Some(f) => f,
        None => panic!("no test function `{name}`"),
    }
}

/// The test function containing `addr`, kernel (`user` false) or U-mode.
pub fn containing(addr: usize, user: bool) -> Option<TestFn> {
    all().find(|f| f.is_user() == user && f.range().contains(&addr))
}
