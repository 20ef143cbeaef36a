//! `XolArea`: out-of-line slots carved from executable pages the kernel
//! gives, one bit per slot. Touched only under the registration lock.

use probe_hal::{Capacity, ProbeError, ProbeErrorKind};

use crate::services::Space;

/// Most slots one page holds (the bitmap size).
const MAX_SLOTS_PER_PAGE: usize = 256;

#[derive(Clone, Copy)]
struct SlotPage {
    space: Space,
    base: usize,
    used: [u64; MAX_SLOTS_PER_PAGE / 64],
}

impl SlotPage {
    fn in_use(&self) -> usize {
        self.used.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// See the module documentation.
pub(crate) struct XolArea<const PAGES: usize> {
    pages: [Option<SlotPage>; PAGES],
}

/// A page to give back to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EmptyPage {
    pub(crate) space: Space,
    pub(crate) base: usize,
}

impl<const PAGES: usize> XolArea<PAGES> {
    pub(crate) const fn new() -> Self {
        Self {
            pages: [None; PAGES],
        }
    }

    fn per_page(page_size: usize, slot_len: usize) -> usize {
        (page_size / slot_len).min(MAX_SLOTS_PER_PAGE)
    }

    /// A free slot of `slot_len` bytes in `space`, taking a new page from
    /// `new_page` when every page of the space is full.
    pub(crate) fn alloc(
        &mut self,
        space: Space,
        slot_len: usize,
        page_size: usize,
        new_page: impl FnOnce() -> Option<usize>,
    ) -> Result<usize, ProbeError> {
        let per_page = Self::per_page(page_size, slot_len);
        for page in self.pages.iter_mut().flatten() {
            if page.space != space {
                continue;
            }
            if let Some(i) = (0..per_page).find(|&i| page.used[i / 64] & (1 << (i % 64)) == 0) {
                page.used[i / 64] |= 1 << (i % 64);
                return Ok(page.base + i * slot_len);
            }
        }
        let Some(free) = self.pages.iter_mut().find(|p| p.is_none()) else {
            return Err(ProbeError::new(
                ProbeErrorKind::CapacityFull(Capacity::SlotPages),
                0,
            ));
        };
        let base = new_page().ok_or(ProbeError::new(ProbeErrorKind::SlotMemoryExhausted, 0))?;
        let mut page = SlotPage {
            space,
            base,
            used: [0; MAX_SLOTS_PER_PAGE / 64],
        };
        page.used[0] = 1;
        *free = Some(page);
        Ok(base)
    }

    /// Mark the page at `base` as belonging to `space` with the slot at
    /// `slot` in use (a page inherited through fork).
    pub(crate) fn adopt(
        &mut self,
        space: Space,
        base: usize,
        slot: usize,
        slot_len: usize,
    ) -> Result<(), ProbeError> {
        let Some(free) = self.pages.iter_mut().find(|p| p.is_none()) else {
            return Err(ProbeError::new(
                ProbeErrorKind::CapacityFull(Capacity::SlotPages),
                0,
            ));
        };
        let i = (slot - base) / slot_len;
        let mut used = [0; MAX_SLOTS_PER_PAGE / 64];
        used[i / 64] |= 1 << (i % 64);
        *free = Some(SlotPage { space, base, used });
        Ok(())
    }

    /// Free the slot at `addr`; returns the page when it became empty (the
    /// caller gives it back to the kernel, after a grace period).
    pub(crate) fn free(
        &mut self,
        space: Space,
        addr: usize,
        slot_len: usize,
        page_size: usize,
    ) -> Option<EmptyPage> {
        for entry in self.pages.iter_mut() {
            let Some(page) = entry else { continue };
            if page.space != space || addr < page.base || addr >= page.base + page_size {
                continue;
            }
            let i = (addr - page.base) / slot_len;
            page.used[i / 64] &= !(1 << (i % 64));
            if page.in_use() == 0 {
                let empty = EmptyPage {
                    space,
                    base: page.base,
                };
                *entry = None;
                return Some(empty);
            }
            return None;
        }
        None
    }

    /// Whether `addr` lies in a slot page of `space`.
    pub(crate) fn contains(&self, space: Space, addr: usize, page_size: usize) -> bool {
        self.pages
            .iter()
            .flatten()
            .any(|p| p.space == space && addr >= p.base && addr < p.base + page_size)
    }

    /// Forget every page of `space`, calling `give_back` for each.
    pub(crate) fn drop_space(&mut self, space: Space, mut give_back: impl FnMut(usize)) {
        for entry in self.pages.iter_mut() {
            if let Some(p) = entry {
                if p.space == space {
                    give_back(p.base);
                    *entry = None;
                }
            }
        }
    }

    /// Base of the page of `space` holding `addr`.
    pub(crate) fn page_of(&self, space: Space, addr: usize, page_size: usize) -> Option<usize> {
        self.pages
            .iter()
            .flatten()
            .find(|p| p.space == space && addr >= p.base && addr < p.base + page_size)
            .map(|p| p.base)
    }

    /// The space and base of page entry `i`, if in use.
    pub(crate) fn page(&self, i: usize) -> Option<(Space, usize)> {
        self.pages.get(i)?.as_ref().map(|p| (p.space, p.base))
    }

    /// Slots in use across all pages.
    pub(crate) fn slots_in_use(&self) -> usize {
        self.pages.iter().flatten().map(SlotPage::in_use).sum()
    }

    /// Pages held.
    pub(crate) fn pages_held(&self) -> usize {
        self.pages.iter().flatten().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_a_page_then_takes_another_and_gives_empty_pages_back() {
        let mut x = XolArea::<2>::new();
        let mut next = [0x10_000usize, 0x20_000].into_iter();
        let mut got = [0usize; 5];
        for g in got.iter_mut() {
            *g = x.alloc(Space::Kernel, 32, 128, || next.next()).unwrap();
        }
        assert_eq!(got, [0x10_000, 0x10_020, 0x10_040, 0x10_060, 0x20_000]);
        assert_eq!(x.pages_held(), 2);
        assert_eq!(
            x.free(Space::Kernel, 0x20_000, 32, 128),
            Some(EmptyPage {
                space: Space::Kernel,
                base: 0x20_000
            })
        );
        assert_eq!(x.free(Space::Kernel, 0x10_020, 32, 128), None);
        assert_eq!(x.slots_in_use(), 3);
        // the freed slot is reused first
        assert_eq!(x.alloc(Space::Kernel, 32, 128, || None).unwrap(), 0x10_020);
    }

    #[test]
    fn spaces_never_share_pages_and_capacity_is_reported() {
        let mut x = XolArea::<1>::new();
        x.alloc(Space::Kernel, 32, 4096, || Some(0x1000)).unwrap();
        let e = x
            .alloc(Space::User(3), 32, 4096, || Some(0x9000))
            .unwrap_err();
        assert_eq!(e.kind(), ProbeErrorKind::CapacityFull(Capacity::SlotPages));
        let mut x = XolArea::<1>::new();
        let e = x.alloc(Space::Kernel, 32, 4096, || None).unwrap_err();
        assert_eq!(e.kind(), ProbeErrorKind::SlotMemoryExhausted);
    }
}
