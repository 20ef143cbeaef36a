//! Where a probe goes, and whether it may go there: symbol resolution,
//! alignment, the instruction-boundary walk from the symbol start, the
//! blacklist, and reading text as it is without our own breakpoints.

use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::{Arch, ProbeError, ProbeErrorKind};

use crate::engine::{Engine, Registry, WalkCursor};
use crate::point::{PointKind, MAX_ORIG};
use crate::services::{KernelServices, Space, Symbol};
use crate::spec::Target;

/// Bytes the boundary walk reads at once.
const WALK_CHUNK: usize = 128;

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
        reg: &mut Registry<PAGES>,
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
                // `MOD:SYM` names a module's symbol (Linux's syntax).
                let found = match name.split_once(':') {
                    Some((module, sym)) if !module.is_empty() && !sym.is_empty() => {
                        self.services.lookup_module_symbol(module, sym)
                    }
                    Some(_) => {
                        return Err(ProbeError::new(
                            ProbeErrorKind::InvalidRequest(
                                "a qualified symbol is MOD:SYM, both parts non-empty",
                            ),
                            0,
                        ))
                    }
                    None => self.services.lookup_symbol(name),
                };
                let sym = found.ok_or(ProbeError::new(ProbeErrorKind::UnknownSymbol, 0))?;
                // Size 0: unknown (a kallsyms-style table): the offset is
                // not checked, the boundary walk from the start still is.
                if sym.size != 0 && offset >= sym.size {
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
                self.check_boundary(reg, space, s, addr)?;
                Ok(addr)
            }
            None => Ok(addr),
        }
    }

    /// Walk instructions from the symbol start; `addr` must be on a boundary.
    ///
    /// Linear in the distance walked: text is read in chunks, and a walk
    /// of the same symbol in the same registration call (a batch) goes on
    /// from the boundary the previous one reached when `addr` lies beyond
    /// it.
    pub(crate) fn check_boundary(
        &self,
        reg: &mut Registry<PAGES>,
        space: Space,
        sym: Symbol,
        addr: usize,
    ) -> Result<(), ProbeError> {
        let mut at = match reg.walk {
            Some(c) if c.space == space && c.sym == sym && c.at <= addr => c.at,
            _ => sym.addr,
        };
        let mut chunk = [0u8; WALK_CHUNK];
        while at < addr {
            let n = self.read_chunk(space, at, &mut chunk)?;
            let mut off = 0;
            // Decode while a whole instruction surely fits in what was read
            // (or what was read is all there is).
            while at < addr && (off + A::MAX_INSN_LEN <= n || (n < WALK_CHUNK && off < n)) {
                let len = A::insn_len(&chunk[off..n])
                    .ok_or(ProbeError::new(ProbeErrorKind::Undecodable, at))?;
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
                off += len;
            }
            if off == 0 {
                return Err(ProbeError::new(ProbeErrorKind::MemoryUnreadable, at));
            }
        }
        reg.walk = Some(WalkCursor { space, sym, at });
        Ok(())
    }

    /// Read up to `buf.len()` original bytes at `addr`, fewer near the end
    /// of readable memory; returns how many (at least one instruction's
    /// alignment, or an error).
    fn read_chunk(&self, space: Space, addr: usize, buf: &mut [u8]) -> Result<usize, ProbeError> {
        let mut n = buf.len();
        while n > 0 {
            if self.read_original(space, addr, &mut buf[..n]).is_ok() {
                return Ok(n);
            }
            n = if n > A::MAX_INSN_LEN {
                A::MAX_INSN_LEN
            } else {
                n.saturating_sub(A::INSN_ALIGN)
            };
        }
        Err(ProbeError::new(ProbeErrorKind::MemoryUnreadable, addr))
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
    ///
    /// Looks up each address where a breakpoint covering the range could
    /// start (O(1) each), so the cost grows with the length read, not with
    /// the number of probes.
    pub(crate) fn read_original(
        &self,
        space: Space,
        addr: usize,
        buf: &mut [u8],
    ) -> Result<(), probe_hal::MemoryFault> {
        self.services.read(space, addr, buf)?;
        let end = addr + buf.len();
        // A breakpoint is at most as long as the longest instruction; a
        // jump covers at most a displaced region.
        let reach = (A::MAX_INSN_LEN.min(8) - 1).max(A::OPT_JUMP_LEN.saturating_sub(1));
        let first = addr.saturating_sub(reach);
        let mut a = first - first % A::INSN_ALIGN;
        while a < end {
            if let Some(p) = self.find_point(space, a) {
                let pt = &self.points[p as usize];
                // SAFETY: callers hold the registration lock.
                if let Some(r) = unsafe { pt.opt.patched_region() } {
                    // A jump (or a half-written one): its original bytes.
                    for b in r.addr.max(addr)..(r.addr + r.len).min(end) {
                        buf[b - addr] = r.orig[b - r.addr];
                    }
                } else if pt.armed.load(Ordering::Relaxed) {
                    let info = pt.info();
                    let bp_end = info.addr + info.breakpoint.len;
                    if info.kind == PointKind::Probe && bp_end > addr {
                        for b in info.addr.max(addr)..bp_end.min(end) {
                            buf[b - addr] = info.orig[b - info.addr];
                        }
                    }
                }
            }
            a += A::INSN_ALIGN;
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
