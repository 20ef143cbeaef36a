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
