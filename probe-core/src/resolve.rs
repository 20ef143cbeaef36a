//! Where a probe goes, and whether it may go there: symbol resolution,
//! alignment, the instruction-boundary walk from the symbol start, the
//! blacklist, and reading text as it is without our own breakpoints.

use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::{Arch, ProbeError, ProbeErrorKind};

use crate::engine::{Engine, Registry};
use crate::point::{PointKind, MAX_ORIG};
use crate::services::{KernelServices, Space, Symbol};
use crate::spec::Target;

impl<
        A: Arch,
        L: RawMutex,
        K: KernelServices<A>,
        const PROBES: usize,
        const INSTANCES: usize,
        const CPUS: usize,
        const PAGES: usize,
        const DATA: usize,
    > Engine<A, L, K, PROBES, INSTANCES, CPUS, PAGES, DATA>
{
    /// Find where a target points, with the checks that depend on its symbol.
    pub(crate) fn resolve(
        &self,
        target: Target<'_>,
        space: Space,
        is_return: bool,
    ) -> Result<usize, ProbeError> {
        let (addr, sym) = match target {
            Target::Symbol { name, offset } => {
                if space != Space::Kernel {
                    return Err(ProbeError::new(
                        ProbeErrorKind::InvalidRequest(
                            "symbols name kernel functions; give a user address",
                        ),
                        0,
                    ));
                }
                let sym = self
                    .services
                    .lookup_symbol(name)
                    .ok_or(ProbeError::new(ProbeErrorKind::UnknownSymbol, 0))?;
                if offset >= sym.size.max(1) {
                    return Err(ProbeError::new(
                        ProbeErrorKind::OffsetOutsideSymbol { size: sym.size },
                        sym.addr.wrapping_add(offset),
                    ));
                }
                (sym.addr + offset, Some(sym))
            }
            Target::Addr(a) => (a, self.services.symbol_containing(space, a)),
        };
        if addr % A::INSN_ALIGN != 0 {
            return Err(ProbeError::new(
                ProbeErrorKind::Misaligned {
                    align: A::INSN_ALIGN,
                },
                addr,
            ));
        }
        let at_entry = sym.is_some_and(|s| s.addr == addr);
        // Kernel return probes need the kernel's word that `addr` starts a
        // function. In user space symbols are the tracer's business (Linux
        // uretprobes take a file offset): without one, the caller vouches.
        if is_return && !at_entry && (space == Space::Kernel || sym.is_some()) {
            return Err(ProbeError::new(ProbeErrorKind::NotFunctionEntry, addr));
        }
        match sym {
            Some(_) if at_entry => {
                let mut bytes = [0u8; MAX_ORIG];
                let n = self.read_insn_bytes(space, addr, &mut bytes)?;
                Ok(addr + A::entry_skip(&bytes[..n]))
            }
            Some(s) => {
                self.check_boundary(space, s, addr)?;
                Ok(addr)
            }
            None => Ok(addr),
        }
    }

    /// Walk instructions from the symbol start; `addr` must be on a boundary.
    pub(crate) fn check_boundary(
        &self,
        space: Space,
        sym: Symbol,
        addr: usize,
    ) -> Result<(), ProbeError> {
        let mut at = sym.addr;
        let mut bytes = [0u8; MAX_ORIG];
        while at < addr {
            let n = self.read_insn_bytes(space, at, &mut bytes)?;
            let len =
                A::insn_len(&bytes[..n]).ok_or(ProbeError::new(ProbeErrorKind::Undecodable, at))?;
            if at + len > addr {
                return Err(ProbeError::new(
                    ProbeErrorKind::NotInsnBoundary {
                        insn_start: at,
                        insn_len: len,
                    },
                    addr,
                ));
            }
            at += len;
        }
        Ok(())
    }

    /// Read up to `MAX_INSN_LEN` original bytes at `addr` (see
    /// [`Self::read_original`]), fewer near the end of readable memory;
    /// returns how many.
    pub(crate) fn read_insn_bytes(
        &self,
        space: Space,
        addr: usize,
        buf: &mut [u8; MAX_ORIG],
    ) -> Result<usize, ProbeError> {
        let mut n = A::MAX_INSN_LEN.min(MAX_ORIG);
        while n > 0 {
            if self.read_original(space, addr, &mut buf[..n]).is_ok() {
                return Ok(n);
            }
            n = n.saturating_sub(A::INSN_ALIGN);
        }
        Err(ProbeError::new(ProbeErrorKind::MemoryUnreadable, addr))
    }

    /// Read text as it is without our breakpoints: bytes under an armed
    /// point of the same space are replaced by the original ones, so
    /// decoding and the boundary walk never see a breakpoint of ours.
    pub(crate) fn read_original(
        &self,
        space: Space,
        addr: usize,
        buf: &mut [u8],
    ) -> Result<(), probe_hal::MemoryFault> {
        self.services.read(space, addr, buf)?;
        let end = addr + buf.len();
        for p in &self.points {
            if !p.used.load(Ordering::Relaxed) || !p.armed.load(Ordering::Relaxed) {
                continue;
            }
            let info = p.info();
            let bp_end = info.addr + info.breakpoint.len;
            if info.space != space
                || info.kind != PointKind::Probe
                || bp_end <= addr
                || info.addr >= end
            {
                continue;
            }
            for a in info.addr.max(addr)..bp_end.min(end) {
                buf[a - addr] = info.orig[a - info.addr];
            }
        }
        Ok(())
    }

    pub(crate) fn check_address(
        &self,
        reg: &Registry<PAGES>,
        space: Space,
        addr: usize,
    ) -> Result<(), ProbeError> {
        let blacklisted = ProbeError::new(ProbeErrorKind::Blacklisted, addr);
        if reg
            .xol
            .contains(space, addr, self.services.slot_page_size())
        {
            return Err(blacklisted);
        }
        if space == Space::Kernel {
            if crate::trap_text::trap_text().contains(&addr)
                || self.services.blacklist().iter().any(|r| r.contains(&addr))
            {
                return Err(blacklisted);
            }
            if A::kernel_trampoline() == Some(addr) {
                return Err(blacklisted);
            }
        }
        Ok(())
    }
}
