//! The error every fallible probe operation returns.

use core::fmt;

/// Why an instruction cannot be probed: its mnemonic and the reason, both
/// fixed strings from the backend's decision table.
///
/// ```
/// use probe_hal::Refusal;
/// const INT3: Refusal = Refusal::new("int3", "a breakpoint cannot be stepped out of line");
/// assert_eq!(INT3.mnemonic, "int3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The instruction (or instruction class) refused, e.g. `"sc.w"`.
    pub mnemonic: &'static str,
    /// Why it is refused, in words a user can act on.
    pub reason: &'static str,
}

impl Refusal {
    /// A refusal of `mnemonic` because of `reason`.
    pub const fn new(mnemonic: &'static str, reason: &'static str) -> Self {
        Self { mnemonic, reason }
    }
}

/// Which fixed-capacity resource ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Capacity {
    /// The probe table (registered probes of every kind).
    Probes,
    /// The probe-point table (distinct probed addresses).
    ProbePoints,
    /// Out-of-line slots: every slot page is full and no new page may be taken.
    SlotPages,
    /// A batch is larger than the engine can hold.
    Batch,
    /// Return-probe instances: the engine-wide pool is empty (copying a
    /// forking task's pending returns).
    Instances,
}

/// What went wrong, precisely enough for a user to fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeErrorKind {
    /// The address is inside an instruction, not at its start.
    NotInsnBoundary {
        /// Start of the instruction that covers the address.
        insn_start: usize,
        /// Length of that instruction.
        insn_len: usize,
    },
    /// The instruction at the address must not be probed.
    Refused(Refusal),
    /// The bytes at the address are no instruction the backend knows.
    Undecodable,
    /// The address does not have the alignment the ISA requires.
    Misaligned {
        /// Required alignment in bytes.
        align: usize,
    },
    /// A fixed-capacity table is full.
    CapacityFull(Capacity),
    /// The address lies in a range that must never be probed.
    Blacklisted,
    /// A return probe was asked for an address that is not a function entry.
    NotFunctionEntry,
    /// The same probe (same handlers at the same place) is already registered.
    AlreadyRegistered,
    /// No probe with this id (or at this address) is registered.
    NoSuchProbe,
    /// The kernel gave no executable memory for an out-of-line slot.
    SlotMemoryExhausted,
    /// A pc-relative operand cannot reach its target from the slot.
    OutOfReach {
        /// The slot the instruction would run in.
        slot: usize,
    },
    /// The kernel could not write the text (read-only, not mapped, refused).
    TextPatchFailed,
    /// Reading the memory at the address failed.
    MemoryUnreadable,
    /// The kernel does not know the symbol.
    UnknownSymbol,
    /// The offset lies beyond the end of the symbol.
    OffsetOutsideSymbol {
        /// Size of the symbol in bytes.
        size: usize,
    },
    /// The request itself is malformed (the text says how).
    InvalidRequest(&'static str),
    /// The instruction at the address would overlap the instruction of
    /// another probe point (its bytes intersect the other point's).
    Overlaps {
        /// Address of the probed instruction it would overlap.
        other: usize,
    },
    /// Registration, unregistration, enabling or disabling was called from
    /// a probe handler or another trap-path context (it may wait for a
    /// grace period, which a handler running with interrupts masked would
    /// never see end).
    InTrapContext,
    /// A kernel-mode return probe needs the backend's code trampoline to
    /// reach this engine, and the return hook
    /// ([`crate::rethook::set_return_hook`]) does not: it is not installed
    /// yet, or it is installed for another engine.
    ReturnHookMissing {
        /// The hook is installed, but for another engine.
        other_engine: bool,
    },
}

/// Linux errno values ([`ProbeErrorKind::errno`] returns them positive;
/// kernels return them negated, as Linux's `register_kprobe` does).
pub mod errno {
    /// No such file or directory.
    pub const ENOENT: i32 = 2;
    /// Bad address.
    pub const EFAULT: i32 = 14;
    /// Device or resource busy.
    pub const EBUSY: i32 = 16;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// Out of memory.
    pub const ENOMEM: i32 = 12;
    /// Resource deadlock would occur.
    pub const EDEADLK: i32 = 35;
    /// Illegal byte sequence.
    pub const EILSEQ: i32 = 84;
}

impl ProbeErrorKind {
    /// The errno a kernel returns for this error (positive: negate it), as
    /// Linux's `register_kprobe`/`register_kretprobe` (kernel/kprobes.c)
    /// and the architectures' `arch_prepare_kprobe` return them:
    ///
    /// | kind | errno | where Linux returns it |
    /// |---|---|---|
    /// | `NotInsnBoundary`, `Undecodable` | `EILSEQ` | `check_kprobe_address_safe`/`arch_prepare_kprobe`: x86 `can_probe()` false, the address is not an instruction boundary |
    /// | `Misaligned` | `EILSEQ` | riscv/loongarch/arm64 `arch_prepare_kprobe`: a misaligned address |
    /// | `Refused` | `EINVAL` | `arch_prepare_kprobe`: the decoder rejects the instruction |
    /// | `Blacklisted`, `InvalidRequest`, `OffsetOutsideSymbol`, `NotFunctionEntry`, `AlreadyRegistered` | `EINVAL` | `check_kprobe_address_safe` (blacklist, reserved text), `_kprobe_addr` (offset), `register_kretprobe` (`kprobe_on_func_entry`), `register_kprobe` (re-registration) |
    /// | `UnknownSymbol`, `NoSuchProbe` | `ENOENT` | `_kprobe_addr`: `kprobe_lookup_name` found nothing; unregistering an unknown probe |
    /// | `CapacityFull`, `SlotMemoryExhausted`, `OutOfReach` | `ENOMEM` | `get_insn_slot` failed (no slot memory, or none close enough) |
    /// | `TextPatchFailed`, `MemoryUnreadable` | `EFAULT` | copying or patching the text failed |
    /// | `Overlaps` | `EBUSY` | (Linux has no such case: the bytes belong to another probe) |
    /// | `ReturnHookMissing` | `EINVAL` | (no Linux equivalent: Linux's trampoline is built in; a kernel that forgot `set_return_hook` made an invalid request) |
    /// | `InTrapContext` | `EDEADLK` | (Linux would sleep in atomic context: waiting for a grace period from a handler would deadlock) |
    ///
    /// ```
    /// use probe_hal::{errno, ProbeErrorKind};
    /// assert_eq!(ProbeErrorKind::UnknownSymbol.errno(), errno::ENOENT);
    /// ```
    pub const fn errno(&self) -> i32 {
        use errno::*;
        match self {
            Self::NotInsnBoundary { .. } | Self::Undecodable | Self::Misaligned { .. } => EILSEQ,
            Self::Refused(_)
            | Self::Blacklisted
            | Self::InvalidRequest(_)
            | Self::OffsetOutsideSymbol { .. }
            | Self::NotFunctionEntry
            | Self::AlreadyRegistered
            | Self::ReturnHookMissing { .. } => EINVAL,
            Self::UnknownSymbol | Self::NoSuchProbe => ENOENT,
            Self::CapacityFull(_) | Self::SlotMemoryExhausted | Self::OutOfReach { .. } => ENOMEM,
            Self::TextPatchFailed | Self::MemoryUnreadable => EFAULT,
            Self::Overlaps { .. } => EBUSY,
            Self::InTrapContext => EDEADLK,
        }
    }
}

/// The error of every fallible probe operation: what went wrong and where.
///
/// ```
/// use probe_hal::{ProbeError, ProbeErrorKind};
/// let e = ProbeError::new(ProbeErrorKind::Misaligned { align: 4 }, 0x1002);
/// assert_eq!(e.addr(), 0x1002);
/// assert_eq!(e.to_string(), "cannot probe 0x1002: address is not 4-byte aligned");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeError {
    kind: ProbeErrorKind,
    addr: usize,
}

impl ProbeError {
    /// An error of `kind` about address `addr`.
    pub const fn new(kind: ProbeErrorKind, addr: usize) -> Self {
        Self { kind, addr }
    }

    /// A refusal of the instruction at `addr`.
    pub const fn refused(refusal: Refusal, addr: usize) -> Self {
        Self::new(ProbeErrorKind::Refused(refusal), addr)
    }

    /// What went wrong.
    pub const fn kind(&self) -> ProbeErrorKind {
        self.kind
    }

    /// The address the error is about (0 when there is none).
    pub const fn addr(&self) -> usize {
        self.addr
    }

    /// The same error about another address.
    pub const fn at(self, addr: usize) -> Self {
        Self {
            kind: self.kind,
            addr,
        }
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capacity::Probes => "probe table",
            Capacity::ProbePoints => "probe-point table",
            Capacity::SlotPages => "out-of-line slot pages",
            Capacity::Batch => "batch",
            Capacity::Instances => "return-probe instance pool",
        })
    }
}

impl fmt::Display for ProbeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInsnBoundary {
                insn_start,
                insn_len,
            } => write!(
                f,
                "not an instruction boundary (inside the {insn_len}-byte instruction at {insn_start:#x})"
            ),
            Self::Refused(r) => write!(f, "refused instruction `{}`: {}", r.mnemonic, r.reason),
            Self::Undecodable => f.write_str("the bytes there do not decode as an instruction"),
            Self::Misaligned { align } => write!(f, "address is not {align}-byte aligned"),
            Self::CapacityFull(c) => write!(f, "{c} is full"),
            Self::Blacklisted => f.write_str("address is in a range that must not be probed"),
            Self::NotFunctionEntry => f.write_str("a return probe must be placed on a function entry"),
            Self::AlreadyRegistered => f.write_str("this probe is already registered"),
            Self::NoSuchProbe => f.write_str("no such probe is registered"),
            Self::SlotMemoryExhausted => {
                f.write_str("the kernel gave no executable memory for an out-of-line slot")
            }
            Self::OutOfReach { slot } => write!(
                f,
                "a pc-relative operand cannot reach its target from the slot at {slot:#x}"
            ),
            Self::TextPatchFailed => f.write_str("the kernel could not patch the text"),
            Self::MemoryUnreadable => f.write_str("the memory there cannot be read"),
            Self::UnknownSymbol => f.write_str("unknown symbol"),
            Self::OffsetOutsideSymbol { size } => {
                write!(f, "offset lies outside the {size}-byte symbol")
            }
            Self::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            Self::Overlaps { other } => write!(
                f,
                "the instruction overlaps the instruction probed at {other:#x}"
            ),
            Self::InTrapContext => f.write_str(
                "called from a probe handler (trap context): registration may wait for a grace period",
            ),
            Self::ReturnHookMissing {
                other_engine: false,
            } => f.write_str(
                "no return hook installed: call probe_hal::rethook::set_return_hook(&ENGINE) before the first kretprobe",
            ),
            Self::ReturnHookMissing { other_engine: true } => f.write_str(
                "the return hook is installed for another engine: kretprobes can only use the engine it reaches",
            ),
        }
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot probe {:#x}: {}", self.addr, self.kind)
    }
}

impl core::error::Error for ProbeError {}
