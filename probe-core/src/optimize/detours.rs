//! The detour allocator: pages of executable kernel memory from the kernel
//! ([`crate::KernelServices::alloc_detour_page`]), each cut into equal
//! chunks of the backend's detour size, at most 64 per page.

/// Bytes a chunk is rounded up to.
const CHUNK_ALIGN: usize = 64;

#[derive(Clone, Copy)]
struct DetourPage {
    /// Base address (0: unused entry).
    base: usize,
    /// Chunks in use.
    used: u64,
}

/// Up to `PAGES` detour pages.
pub(crate) struct DetourArea<const PAGES: usize> {
    pages: [DetourPage; PAGES],
}

/// A page to give back to the kernel (the caller waits for a grace period
/// first, if a CPU could still run a detour in it).
pub(crate) struct EmptyPage(pub(crate) usize);

impl<const PAGES: usize> DetourArea<PAGES> {
    pub(crate) const fn new() -> Self {
        Self {
            pages: [DetourPage { base: 0, used: 0 }; PAGES],
        }
    }

    /// The chunk size for detours of `len` bytes.
    pub(crate) const fn chunk(len: usize) -> usize {
        len.div_ceil(CHUNK_ALIGN) * CHUNK_ALIGN
    }

    /// A chunk of `len` bytes whose whole page lies within `reach` of
    /// `near` (a new page from `alloc_page(near)` when no page in use has
    /// room). `None` when no memory within reach is to be had.
    pub(crate) fn alloc(
        &mut self,
        near: usize,
        reach: usize,
        len: usize,
        page_size: usize,
        alloc_page: impl FnOnce() -> Option<usize>,
    ) -> Option<usize> {
        let chunk = Self::chunk(len);
        let per_page = (page_size / chunk).min(64);
        if per_page == 0 {
            return None;
        }
        let full = if per_page == 64 {
            u64::MAX
        } else {
            (1u64 << per_page) - 1
        };
        let in_reach =
            |base: usize| within(near, base, reach) && within(near, base + page_size, reach);
        for p in self.pages.iter_mut() {
            if p.base != 0 && p.used != full && in_reach(p.base) {
                let i = (!p.used).trailing_zeros() as usize;
                p.used |= 1 << i;
                return Some(p.base + i * chunk);
            }
        }
        let slot = self.pages.iter_mut().find(|p| p.base == 0)?;
        let base = alloc_page().filter(|&b| b != 0)?;
        if !in_reach(base) {
            // No use here: kept unused, so the caller gives it back
            // (`take_unused`).
            *slot = DetourPage { base, used: 0 };
            return None;
        }
        *slot = DetourPage { base, used: 1 };
        Some(base)
    }

    /// Free the chunk at `addr`; a page left empty is returned for the
    /// caller to give back.
    pub(crate) fn free(&mut self, addr: usize, len: usize, page_size: usize) -> Option<EmptyPage> {
        let chunk = Self::chunk(len);
        let p = self
            .pages
            .iter_mut()
            .find(|p| p.base != 0 && addr >= p.base && addr < p.base + page_size)?;
        p.used &= !(1 << ((addr - p.base) / chunk));
        if p.used == 0 {
            let base = p.base;
            p.base = 0;
            return Some(EmptyPage(base));
        }
        None
    }

    /// Pages holding no detour (kept after a page out of reach came back
    /// from the kernel): removed and returned.
    pub(crate) fn take_unused(&mut self) -> Option<EmptyPage> {
        let p = self.pages.iter_mut().find(|p| p.base != 0 && p.used == 0)?;
        let base = p.base;
        p.base = 0;
        Some(EmptyPage(base))
    }

    /// Chunks in use in all pages.
    pub(crate) fn in_use(&self) -> usize {
        self.pages
            .iter()
            .map(|p| p.used.count_ones() as usize)
            .sum()
    }
}

/// Whether `to` is within `reach` bytes of `from`.
fn within(from: usize, to: usize, reach: usize) -> bool {
    from.abs_diff(to) <= reach
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fill_a_page_then_a_new_one_and_empty_pages_go_back() {
        let mut area = DetourArea::<2>::new();
        let mut next = [0x10_0000usize, 0x20_0000].into_iter();
        let mut got = std::vec::Vec::new();
        for _ in 0..16 {
            got.push(
                area.alloc(0x10_0000, 1 << 30, 256, 4096, || next.next())
                    .unwrap(),
            );
        }
        assert_eq!(got[0], 0x10_0000);
        assert_eq!(got[15], 0x10_0000 + 15 * 256);
        let second = area
            .alloc(0x10_0000, 1 << 30, 256, 4096, || next.next())
            .unwrap();
        assert_eq!(second, 0x20_0000, "page 1 full: a new page");
        assert_eq!(area.in_use(), 17);
        assert_eq!(area.alloc(0, 1 << 30, 256, 4096, || None), Some(0x20_0100));
        assert!(area.free(0x20_0000, 256, 4096).is_none(), "one chunk left");
        assert!(area
            .free(0x20_0100, 256, 4096)
            .is_some_and(|p| p.0 == 0x20_0000));
        assert_eq!(area.in_use(), 16);
    }

    #[test]
    fn a_page_out_of_reach_is_not_used_and_is_handed_back() {
        let mut area = DetourArea::<2>::new();
        assert_eq!(
            area.alloc(0x1000, 0x10_0000, 256, 4096, || Some(0x4000_0000)),
            None
        );
        assert_eq!(area.in_use(), 0);
        assert!(area.take_unused().is_some_and(|p| p.0 == 0x4000_0000));
        assert!(area.take_unused().is_none());
    }

    #[test]
    fn freeing_the_last_chunk_empties_the_page() {
        let mut area = DetourArea::<1>::new();
        let a = area.alloc(0, 1 << 20, 200, 4096, || Some(0x8000)).unwrap();
        let b = area.alloc(0, 1 << 20, 200, 4096, || None).unwrap();
        assert_eq!(b, a + 256);
        assert!(area.free(a, 200, 4096).is_none());
        assert!(area.free(b, 200, 4096).is_some_and(|p| p.0 == 0x8000));
        assert_eq!(area.in_use(), 0);
    }
}
