//! Data memory as a backend sees it while simulating an instruction or
//! redirecting a return: the stack of the probed task, in whatever address
//! space it lives (the engine supplies the implementation).

/// A read or write of data memory failed at this address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryFault {
    /// The address that could not be accessed.
    pub addr: usize,
}

/// Reads and writes data memory of the probed context.
///
/// In a kernel probe this is the kernel's own memory; in a uprobe it is the
/// probed task's address space. Neither may sleep: both run in trap context.
pub trait DataAccess {
    /// Fill `buf` from `addr`.
    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault>;
    /// Write `data` at `addr`.
    fn write(&self, addr: usize, data: &[u8]) -> Result<(), MemoryFault>;

    /// Read one native-endian machine word.
    fn read_word(&self, addr: usize) -> Result<usize, MemoryFault> {
        let mut b = [0u8; core::mem::size_of::<usize>()];
        self.read(addr, &mut b)?;
        Ok(usize::from_ne_bytes(b))
    }

    /// Write one native-endian machine word.
    fn write_word(&self, addr: usize, value: usize) -> Result<(), MemoryFault> {
        self.write(addr, &value.to_ne_bytes())
    }
}

/// Read-only bytes at a base address, as a [`DataAccess`]: e.g. a copy of a
/// function's text for [`crate::Arch::analyze_optimizable`] or a decoder
/// test (the backends' unit tests use it). A read outside `base ..
/// base + bytes.len()` fails at the first address past the bytes (or at
/// `addr` when it is below `base`); every write fails.
///
/// ```
/// use probe_hal::{DataAccess, MemoryFault, TextAt};
/// let text = TextAt::new(0x1000, &[1, 2, 3, 4]);
/// let mut b = [0u8; 2];
/// text.read(0x1002, &mut b).unwrap();
/// assert_eq!(b, [3, 4]);
/// assert_eq!(text.read(0x1003, &mut b), Err(MemoryFault { addr: 0x1004 }));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TextAt<'a> {
    base: usize,
    bytes: &'a [u8],
}

impl<'a> TextAt<'a> {
    /// `bytes` at `base`.
    pub const fn new(base: usize, bytes: &'a [u8]) -> Self {
        Self { base, bytes }
    }
}

impl DataAccess for TextAt<'_> {
    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        let off = addr.checked_sub(self.base).ok_or(MemoryFault { addr })?;
        let src = off
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(off..end))
            .ok_or(MemoryFault {
                addr: self.base + self.bytes.len(),
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&self, addr: usize, _: &[u8]) -> Result<(), MemoryFault> {
        Err(MemoryFault { addr })
    }
}
