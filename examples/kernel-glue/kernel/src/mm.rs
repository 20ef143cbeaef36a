//! Memory: kernel memory with fault recovery, kernel text patching through
//! stop-machine, executable pages, and user address spaces whose pages are
//! shared copy-on-write after a fork.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use crate::{platform, stop_machine::stop_machine};

/// Page size.
pub const PAGE: usize = 4096;

/// Copy kernel memory at `addr` into `buf`; `Err(addr)` of the fault.
pub fn read_kernel(addr: usize, buf: &mut [u8]) -> Result<(), usize> {
    platform::get()
        .copy_nofault(buf, addr)
        .then_some(())
        .ok_or(addr)
}

/// Write kernel data memory; `Err(addr)` of the fault.
pub fn write_kernel(addr: usize, data: &[u8]) -> Result<(), usize> {
    platform::get()
        .write_nofault(addr, data)
        .then_some(())
        .ok_or(addr)
}

/// Patch kernel text with every other CPU parked, then flush; `Err(addr)`
/// when it cannot be written.
pub fn patch_text(addr: usize, bytes: &[u8]) -> Result<(), usize> {
    let p = platform::get();
    let ok = stop_machine(|| {
        p.set_text_writable(addr, bytes.len(), true)
            && p.write_nofault(addr, bytes)
            && p.set_text_writable(addr, bytes.len(), false)
    });
    p.flush_icache(addr, bytes.len());
    ok.then_some(()).ok_or(addr)
}

/// An executable kernel page near `near`.
pub fn alloc_exec_page(near: usize) -> Option<usize> {
    platform::get().alloc_exec_page(near)
}

/// Give back an executable kernel page.
pub fn free_exec_page(page: usize) {
    platform::get().free_exec_page(page)
}

/// Where kernel-made executable pages go in a user space.
const XOL_BASE: usize = 0x7fff_0000_0000;

/// One physical page of a user space.
type Page = spin::Mutex<[u8; PAGE]>;

#[derive(Clone)]
struct Mapping {
    page: Arc<Page>,
    writable: bool,
}

/// A user address space: pages by address, shared copy-on-write after a
/// fork (a page is private when its `Arc` has one owner); or a space the
/// machine's page tables back (`direct`), reached through the platform
/// (the host tests: the test process itself, whose private file mappings
/// the host kernel copies on write).
pub struct AddrSpace {
    /// Its id (the probe engine's `Space::User(asid)`).
    pub asid: usize,
    direct: bool,
    pages: spin::Mutex<BTreeMap<usize, Mapping>>,
}

static SPACES: spin::Mutex<BTreeMap<usize, Arc<AddrSpace>>> = spin::Mutex::new(BTreeMap::new());

/// The address space `asid`.
pub fn space(asid: usize) -> Option<Arc<AddrSpace>> {
    SPACES.lock().get(&asid).cloned()
}

/// Forget the address space `asid` (the last task using it is gone).
pub fn remove_space(asid: usize) {
    SPACES.lock().remove(&asid);
}

impl AddrSpace {
    /// A new, empty address space.
    pub fn new(asid: usize) -> Arc<Self> {
        Self::create(asid, false)
    }

    /// The space the machine's page tables back (see [`AddrSpace`]).
    pub fn new_direct(asid: usize) -> Arc<Self> {
        Self::create(asid, true)
    }

    fn create(asid: usize, direct: bool) -> Arc<Self> {
        let s = Arc::new(Self {
            asid,
            direct,
            pages: spin::Mutex::new(BTreeMap::new()),
        });
        SPACES.lock().insert(asid, s.clone());
        s
    }

    /// Map `data` at the page-aligned `addr` (text when not `writable`).
    pub fn map(&self, addr: usize, data: &[u8], writable: bool) {
        for (i, chunk) in data.chunks(PAGE).enumerate() {
            let mut bytes = [0u8; PAGE];
            bytes[..chunk.len()].copy_from_slice(chunk);
            let m = Mapping {
                page: Arc::new(spin::Mutex::new(bytes)),
                writable,
            };
            self.pages.lock().insert(addr + i * PAGE, m);
        }
    }

    /// A child space sharing every page copy-on-write (model spaces: a
    /// direct space's pages are the machine's).
    pub fn fork(&self, child: usize) -> Arc<Self> {
        let s = Self::new(child);
        *s.pages.lock() = self.pages.lock().clone();
        s
    }

    /// Map a fresh executable page (a `mmap` of the kernel's own, as
    /// Linux's uprobes "xol area"), near `near` in a direct space; its
    /// address.
    pub fn map_exec_page(&self, near: usize) -> Option<usize> {
        if self.direct {
            return platform::get().alloc_exec_page(near);
        }
        let mut pages = self.pages.lock();
        let addr = (XOL_BASE..).step_by(PAGE).find(|a| !pages.contains_key(a));
        let addr = addr.unwrap_or(XOL_BASE);
        let page = Arc::new(spin::Mutex::new([0u8; PAGE]));
        pages.insert(
            addr,
            Mapping {
                page,
                writable: false,
            },
        );
        Some(addr)
    }

    /// Unmap the page at `addr`.
    pub fn unmap(&self, addr: usize) {
        if self.direct {
            return platform::get().free_exec_page(addr);
        }
        self.pages.lock().remove(&addr);
    }

    /// Whether `self` and `other` share the physical page of `addr`.
    pub fn shares_page(&self, other: &AddrSpace, addr: usize) -> bool {
        let base = addr & !(PAGE - 1);
        let (a, b) = (self.pages.lock(), other.pages.lock());
        matches!((a.get(&base), b.get(&base)), (Some(x), Some(y)) if Arc::ptr_eq(&x.page, &y.page))
    }

    /// Copy user memory at `addr` into `buf`; `Err(addr)` of a hole.
    pub fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), usize> {
        if self.direct {
            return read_kernel(addr, buf);
        }
        let pages = self.pages.lock();
        for (i, b) in buf.iter_mut().enumerate() {
            let a = addr + i;
            let m = pages.get(&(a & !(PAGE - 1))).ok_or(a)?;
            *b = m.page.lock()[a % PAGE];
        }
        Ok(())
    }

    /// Write user memory, breaking copy-on-write page by page (the write
    /// lands in this space only). `force` writes read-only (text) pages
    /// too, as a debugger's `FOLL_FORCE`.
    pub fn write(&self, addr: usize, data: &[u8], force: bool) -> Result<(), usize> {
        if self.direct && force {
            let p = platform::get();
            let ok = p.set_text_writable(addr, data.len(), true)
                && p.write_nofault(addr, data)
                && p.set_text_writable(addr, data.len(), false);
            p.flush_icache(addr, data.len());
            return ok.then_some(()).ok_or(addr);
        }
        if self.direct {
            return write_kernel(addr, data);
        }
        let mut pages = self.pages.lock();
        for (i, &b) in data.iter().enumerate() {
            let a = addr + i;
            let m = pages.get_mut(&(a & !(PAGE - 1))).ok_or(a)?;
            if !m.writable && !force {
                return Err(a);
            }
            if Arc::strong_count(&m.page) > 1 {
                let copy = *m.page.lock();
                m.page = Arc::new(spin::Mutex::new(copy));
            }
            m.page.lock()[a % PAGE] = b;
        }
        Ok(())
    }
}
