//! Jump-optimised probes ("optprobes"): what a backend reports about a site
//! and the region a jump displaces.
//!
//! A probe hit normally costs a breakpoint trap. Where the ISA has a jump
//! long enough to reach nearby code, Linux replaces the breakpoint by a jump
//! to a *detour* (arch/x86/kernel/kprobes/opt.c): the detour saves the
//! registers into a frame, calls the engine, restores the registers, runs
//! the instructions the jump displaced (the *region*) and jumps back after
//! them. A backend that supports it implements the jump-optimisation items
//! of [`crate::Arch`] ([`crate::Arch::analyze_optimizable`],
//! [`crate::Arch::build_detour`], [`crate::Arch::optimized_jump`]) and its
//! detour calls [`crate::opthook::dispatch_optimized`]. A backend that does
//! not keeps the provided defaults, which answer [`SiteRule::NotSupported`].

use core::fmt;

/// Longest displaced region any backend may report, in bytes (x86_64: a
/// 5-byte `jmp rel32` may end 1 byte into an instruction of up to 15 bytes,
/// so at most 4 + 15 = 19 bytes; one more for good measure).
pub const MAX_OPT_REGION: usize = 20;

/// Why a site cannot be jump-optimised. The probe then stays a breakpoint
/// probe; none of these is an error of the probe itself.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteRule {
    /// The backend has no jump optimisation (the provided default of every
    /// [`crate::Arch`] item).
    NotSupported,
    /// The function containing the probe is not known, or the range given
    /// does not contain the probe address. Linux: `can_optimize()` refuses
    /// when `kallsyms_lookup_size_offset()` fails.
    FunctionSizeUnknown,
    /// The displaced region would run past the end of the function. Linux:
    /// `can_optimize()` refuses when `size - offset < JMP32_INSN_SIZE`, and
    /// the region is copied instruction by instruction within the function.
    RegionPastFunction,
    /// An instruction of the region is not one the backend steps out of line
    /// and may boost: it is simulated (a branch, or in kernel mode `cli`,
    /// `sti`, `pushf`, `popf` on x86_64), refused, or not boostable. Linux:
    /// `copy_optimized_instructions()` requires `can_boost()` of each one.
    NotStepped {
        /// Address of that instruction.
        at: usize,
    },
    /// An instruction of the function has an exception-table entry: its
    /// fault fix-up may jump back into the function, possibly into the
    /// region. Linux: `can_optimize()` refuses on `search_exception_tables()`
    /// for any instruction of the function.
    MayFault {
        /// Address of that instruction.
        at: usize,
    },
    /// A direct branch somewhere in the function targets the inside of the
    /// region (after its first byte), which the jump overwrites. Linux:
    /// `insn_jump_into_range()` in `can_optimize()`.
    JumpIntoRegion {
        /// Address of the branch.
        from: usize,
    },
    /// The function contains an indirect jump: a jump table could land
    /// inside the region. Linux: `insn_is_indirect_jump()` in
    /// `can_optimize()`.
    IndirectJump {
        /// Address of the indirect jump.
        at: usize,
    },
    /// The bytes at this address do not decode (walking from the function
    /// start). Linux: `can_optimize()` refuses when decoding fails.
    Undecodable {
        /// Address of the bytes.
        at: usize,
    },
    /// Walking the function from its start, no instruction starts at the
    /// probe address (it falls inside an instruction).
    NotInstructionBoundary {
        /// The start of the instruction that covers the probe address.
        insn: usize,
    },
    /// The detour is out of the jump's reach from the probe (or a relocated
    /// pc-relative operand of the region does not reach its data from the
    /// detour). Linux allocates detours within ±2 GiB so it never happens
    /// there.
    OutOfReach,
    /// Reading the text at this address failed.
    ReadFailed {
        /// The address that could not be read.
        addr: usize,
    },
    /// The output buffer is shorter than the code to write (a caller bug:
    /// give [`crate::Arch::DETOUR_LEN`] or [`crate::Arch::OPT_JUMP_LEN`]
    /// bytes).
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
}

impl fmt::Display for SiteRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotSupported => f.write_str("this backend has no jump optimisation"),
            Self::FunctionSizeUnknown => {
                f.write_str("the function containing the probe and its size are not known")
            }
            Self::RegionPastFunction => {
                f.write_str("the instructions the jump displaces run past the end of the function")
            }
            Self::NotStepped { at } => write!(
                f,
                "the instruction at {at:#x}, which the jump displaces, is simulated, refused or not boostable"
            ),
            Self::MayFault { at } => write!(
                f,
                "the instruction at {at:#x} has an exception-table entry (its fix-up may jump into the region)"
            ),
            Self::JumpIntoRegion { from } => write!(
                f,
                "the branch at {from:#x} targets the inside of the displaced region"
            ),
            Self::IndirectJump { at } => write!(
                f,
                "the function has an indirect jump at {at:#x} (a jump table could land in the region)"
            ),
            Self::Undecodable { at } => write!(f, "the bytes at {at:#x} do not decode"),
            Self::NotInstructionBoundary { insn } => write!(
                f,
                "the probe address falls inside the instruction at {insn:#x}"
            ),
            Self::OutOfReach => f.write_str("the detour is out of the jump's reach"),
            Self::ReadFailed { addr } => write!(f, "reading the text at {addr:#x} failed"),
            Self::BufferTooSmall { needed } => {
                write!(f, "the output buffer is too small ({needed} bytes needed)")
            }
        }
    }
}

/// The instructions a jump displaces at a probe address, as
/// [`crate::Arch::analyze_optimizable`] found them; the detour runs copies of
/// them ([`crate::Arch::build_detour`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptRegion {
    /// The probe address: the first byte the jump overwrites.
    pub addr: usize,
    /// Length of the region in bytes: whole instructions, at least
    /// [`crate::Arch::OPT_JUMP_LEN`] and at most [`MAX_OPT_REGION`].
    pub len: usize,
    /// Number of instructions in the region.
    pub insns: usize,
    /// The mode the region was decoded for.
    pub mode: crate::ExecMode,
    /// The original bytes of the region; the first `len` are used.
    pub orig: [u8; MAX_OPT_REGION],
}

impl OptRegion {
    /// The original bytes of the region.
    pub fn original(&self) -> &[u8] {
        &self.orig[..self.len]
    }

    /// The address after the region, where the detour jumps back.
    pub fn end(&self) -> usize {
        self.addr.wrapping_add(self.len)
    }
}

/// A function's text read in chunks for a backend's site analysis
/// ([`crate::Arch::analyze_optimizable`] decodes the whole function from its
/// start, without allocating): windows of at most `max` bytes, never past
/// the function's end. Read failures become [`SiteRule::ReadFailed`].
pub struct FunctionText<'a> {
    text: &'a dyn crate::DataAccess,
    end: usize,
    max: usize,
    buf: [u8; FUNCTION_TEXT_CHUNK],
    base: usize,
    filled: usize,
}

/// Bytes [`FunctionText`] reads at a time.
pub const FUNCTION_TEXT_CHUNK: usize = 64;

impl<'a> FunctionText<'a> {
    /// The text of a function ending at `end`, in windows of at most `max`
    /// bytes (the ISA's longest instruction; at most
    /// [`FUNCTION_TEXT_CHUNK`]).
    pub fn new(text: &'a dyn crate::DataAccess, end: usize, max: usize) -> Self {
        Self {
            text,
            end,
            max: max.min(FUNCTION_TEXT_CHUNK),
            buf: [0; FUNCTION_TEXT_CHUNK],
            base: 0,
            filled: 0,
        }
    }

    /// The bytes at `at` (below the end): up to `max` of them, fewer at the
    /// end of the function.
    pub fn window(&mut self, at: usize) -> Result<&[u8], SiteRule> {
        let want = (self.end - at).min(self.max);
        let cached = at >= self.base && at + want <= self.base + self.filled;
        if !cached {
            let n = (self.end - at).min(FUNCTION_TEXT_CHUNK);
            self.text
                .read(at, &mut self.buf[..n])
                .map_err(|f| SiteRule::ReadFailed { addr: f.addr })?;
            self.base = at;
            self.filled = n;
        }
        let from = at - self.base;
        Ok(&self.buf[from..from + want])
    }

    /// Walk from `start` to `addr` by instruction lengths (`insn_len` of a
    /// window, `None`: undecodable): `addr` must be an instruction
    /// boundary ([`SiteRule::NotInstructionBoundary`] names the instruction
    /// that covers it).
    pub fn check_boundary(
        &mut self,
        start: usize,
        addr: usize,
        insn_len: impl Fn(&[u8]) -> Option<usize>,
    ) -> Result<(), SiteRule> {
        let mut at = start;
        while at < addr {
            let len = insn_len(self.window(at)?).ok_or(SiteRule::Undecodable { at })?;
            if at + len > addr {
                return Err(SiteRule::NotInstructionBoundary { insn: at });
            }
            at += len;
        }
        Ok(())
    }
}

/// The jump of a fixed-width ISA (one little-endian 32-bit word) from
/// `addr` to `detour`, written into `out`, for
/// [`crate::Arch::optimized_jump`]: [`SiteRule::OutOfReach`] when the
/// distance exceeds `reach` or `encode` cannot express it (`encode` gets
/// the signed byte offset `detour - addr`), [`SiteRule::BufferTooSmall`]
/// when `out` is shorter than 4 bytes. Returns 4.
///
/// ```
/// use probe_hal::{optimize::word_jump, SiteRule};
/// // A made-up `b`: the offset in words in the low 26 bits.
/// let b = |off: isize| Some(0x1400_0000 | ((off >> 2) as u32 & 0x03ff_ffff));
/// let mut out = [0u8; 4];
/// assert_eq!(word_jump(0x1000, 0x2000, 1 << 27, b, &mut out), Ok(4));
/// assert_eq!(u32::from_le_bytes(out), 0x1400_0400);
/// assert_eq!(word_jump(0, 1 << 28, 1 << 27, b, &mut out), Err(SiteRule::OutOfReach));
/// ```
pub fn word_jump(
    addr: usize,
    detour: usize,
    reach: usize,
    encode: impl Fn(isize) -> Option<u32>,
    out: &mut [u8],
) -> Result<usize, SiteRule> {
    let offset = detour.wrapping_sub(addr) as isize;
    if offset.unsigned_abs() > reach {
        return Err(SiteRule::OutOfReach);
    }
    let word = encode(offset).ok_or(SiteRule::OutOfReach)?;
    let out = out
        .get_mut(..4)
        .ok_or(SiteRule::BufferTooSmall { needed: 4 })?;
    out.copy_from_slice(&word.to_le_bytes());
    Ok(4)
}

#[cfg(test)]
mod function_text_tests {
    use super::*;
    use crate::{DataAccess, MemoryFault};

    struct Mem(std::vec::Vec<u8>);
    impl DataAccess for Mem {
        fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
            let src = self
                .0
                .get(addr..addr + buf.len())
                .ok_or(MemoryFault { addr })?;
            buf.copy_from_slice(src);
            Ok(())
        }
        fn write(&self, addr: usize, _: &[u8]) -> Result<(), MemoryFault> {
            Err(MemoryFault { addr })
        }
    }

    #[test]
    fn windows_stop_at_the_function_end_and_cross_chunks() {
        let mem = Mem((0..200u8).collect());
        let mut t = FunctionText::new(&mem, 150, 15);
        assert_eq!(
            t.window(0).unwrap(),
            &(0..15u8).collect::<std::vec::Vec<_>>()[..]
        );
        assert_eq!(t.window(60).unwrap()[0], 60, "across the first chunk");
        assert_eq!(t.window(145).unwrap().len(), 5, "the end of the function");
        let mut bad = FunctionText::new(&mem, 300, 15);
        assert_eq!(bad.window(190), Err(SiteRule::ReadFailed { addr: 190 }));
    }

    #[test]
    fn the_boundary_walk_names_the_covering_instruction() {
        let mem = Mem(std::vec![0; 64]);
        let mut t = FunctionText::new(&mem, 64, 4);
        let four = |_: &[u8]| Some(4);
        assert_eq!(t.check_boundary(0, 8, four), Ok(()));
        assert_eq!(
            t.check_boundary(0, 10, four),
            Err(SiteRule::NotInstructionBoundary { insn: 8 })
        );
        assert_eq!(
            t.check_boundary(0, 4, |_: &[u8]| None),
            Err(SiteRule::Undecodable { at: 0 })
        );
    }
}
