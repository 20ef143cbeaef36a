//! The "kernel text" both engines probe: a leaked, page-aligned buffer
//! holding one simple instruction per probe, followed by spare pages (our
//! engine's slot pages). Nothing in it ever executes; the engines only read
//! and patch it.

use std::alloc::Layout;

/// Page size of the synthetic kernel.
pub const PAGE: usize = 4096;

/// The probed instruction: `mov rax, rbx` (REX.W 89 /r). Stepped out of line
/// by both engines (boostable in ours, but the post-handler prevents it).
pub const INSN: [u8; 3] = [0x48, 0x89, 0xd8];

/// Its length.
pub const INSN_LEN: usize = INSN.len();

/// Bytes kept after the last probed instruction: the kprobe crate copies 15
/// bytes from the probe address whatever the instruction's length.
const TAIL: usize = 16;

/// A leaked buffer: `text_len` bytes of code at `base`, then `spare_pages`
/// zeroed pages.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    /// Start of the code (page aligned).
    pub base: usize,
    /// Bytes of code (whole pages; `nop` after the probed instructions).
    pub text_len: usize,
    /// Bytes in all (code and spare pages).
    pub len: usize,
}

impl Region {
    /// `probes` copies of [`INSN`] at the start of a fresh region with
    /// `spare_pages` pages after the code.
    pub fn leak(probes: usize, spare_pages: usize) -> Self {
        let text_len = (probes * INSN_LEN + TAIL).div_ceil(PAGE) * PAGE;
        let len = text_len + spare_pages * PAGE;
        let layout = Layout::from_size_align(len, PAGE).expect("region layout");
        // SAFETY: `layout` has a non-zero size (at least one page of text).
        let base = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!base.is_null(), "out of memory for the benchmark region");
        let mut code = vec![0x90u8; text_len];
        for i in 0..probes {
            code[i * INSN_LEN..(i + 1) * INSN_LEN].copy_from_slice(&INSN);
        }
        // SAFETY: `base` points to `len >= text_len` fresh bytes nobody else
        // references, and `code` is a separate allocation.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), base, text_len) };
        // Never freed: the engines keep addresses into it for the whole run.
        Self {
            base: base as usize,
            text_len,
            len,
        }
    }

    /// Address of the `i`-th probed instruction.
    pub fn probe_addr(&self, i: usize) -> usize {
        self.base + i * INSN_LEN
    }

    /// Whether `[addr, addr + n)` lies inside the region.
    pub fn contains(&self, addr: usize, n: usize) -> bool {
        addr >= self.base
            && addr
                .checked_add(n)
                .is_some_and(|end| end <= self.base + self.len)
    }

    /// Copy `buf.len()` bytes at `addr` into `buf`; `false` outside the region.
    pub fn read(&self, addr: usize, buf: &mut [u8]) -> bool {
        if !self.contains(addr, buf.len()) {
            return false;
        }
        // SAFETY: the range lies inside the leaked region, which lives for
        // the rest of the process; the benchmark is single-threaded, so no
        // write overlaps this read.
        unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
        true
    }

    /// Write `data` at `addr`; `false` outside the region.
    pub fn write(&self, addr: usize, data: &[u8]) -> bool {
        if !self.contains(addr, data.len()) {
            return false;
        }
        // SAFETY: the range lies inside the leaked region, to which no Rust
        // reference exists (only its address is kept), and the benchmark
        // is single-threaded.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
        true
    }
}
