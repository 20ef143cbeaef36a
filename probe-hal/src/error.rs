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
    /// File exists: what a probe-events layer returns for a duplicate event
    /// name (no [`ProbeErrorKind`](super::ProbeErrorKind) maps to it).
    pub const EEXIST: i32 = 17;
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
    /// Linux's `register_kprobe`/`register_kretprobe`, `uprobe_register`,
    /// kprobe_events and the architectures' `arch_prepare_kprobe` return
    /// them. Each row cites the Linux source line that returns it.
    ///
    /// <!-- errno-table -->
    /// Linux version cited: **v6.12.118** (6.12 LTS stable tag; the lines were
    /// read in the 6.12.118 tree as Debian's `linux-source-6.12` package
    /// ships it). `file:line` is the line that returns the errno (`→` follows
    /// the error up to where it is returned); "differs" marks a kind whose
    /// errno is not the one Linux returns for the closest case, with the
    /// reason; "no Linux equivalent" cites the closest line.
    ///
    /// | `ProbeErrorKind` | errno | Linux v6.12.118 | the condition there |
    /// |---|---|---|---|
    /// | `NotInsnBoundary` | `EILSEQ` | `arch/x86/kernel/kprobes/core.c:328` → `:797`; `arch/riscv/kernel/probes/kprobes.c:80` | x86 `can_probe()` decodes from the symbol's start and does not land on the address; riscv `arch_check_kprobe()` likewise. kprobe_events reports `-EILSEQ` as `BAD_INSN_BNDRY` (`kernel/trace/trace_kprobe.c:1057`) |
    /// | `Undecodable` | `EILSEQ` | `arch/x86/kernel/kprobes/core.c:335` → `:797` | x86 `can_probe()`: `insn_decode_kernel()` fails on the bytes there (x86 uprobes answer `-ENOEXEC`, `arch/x86/kernel/uprobes.c:286`; the kprobe answer is kept for both) |
    /// | `Misaligned` | `EILSEQ` | `arch/riscv/kernel/probes/kprobes.c:77`; `arch/loongarch/kernel/kprobes.c:32` | `arch_prepare_kprobe`: the address is not 2- (riscv) or 4-byte (loongarch) aligned. arm64 answers `-EINVAL` (`arch/arm64/kernel/probes/kprobes.c:114`), as does `uprobe_register` (`kernel/events/uprobes.c:1223`); riscv's and loongarch's answer is kept: a misaligned address is off an instruction boundary |
    /// | `Overlaps` | `EILSEQ` | no Linux equivalent; closest `arch/x86/kernel/kprobes/core.c:328` → `:797` | two intersecting instructions cannot both start on instruction boundaries, so one of the two probe addresses is off a boundary: x86 `can_probe()`'s case (Linux's uprobes do not check). Not `EBUSY`: Linux uses that for "in use, try later" (`kernel/trace/trace_kprobe.c:547`) |
    /// | `Refused` | `EINVAL` | `arch/riscv/kernel/probes/kprobes.c:90`; `arch/loongarch/kernel/kprobes.c:40`; `arch/arm64/kernel/probes/kprobes.c:125`; uprobes `arch/riscv/kernel/probes/uprobes.c:42`, `arch/arm64/kernel/probes/uprobes.c:49` | the decoder rejects the instruction (`INSN_REJECTED`, `insns_not_supported()`). x86 differs by class: `int3`/`int n`/`ud2` fail `can_probe()` with `-EILSEQ` (`core.c:339` → `:797`), far `jmp`/`call`, `iret` and VMX with `-EOPNOTSUPP` (`core.c:665`), exception-masking instructions with `-EINVAL` (`core.c:431` → `:765`); x86 uprobes `-ENOTSUPP` (`arch/x86/kernel/uprobes.c:308`) |
    /// | `Blacklisted` | `EINVAL` | `kernel/kprobes.c:1600` | `check_kprobe_address_safe()`: gate area, `within_kprobe_blacklist()`, jump-label or static-call text, a `BUG()` site, a CFI preamble; also not kernel or module text (`:1589`), x86 alternatives (`arch/x86/kernel/kprobes/core.c:794`), arm64 exception-table entries (`arch/arm64/kernel/probes/kprobes.c:120`) |
    /// | `NotFunctionEntry` | `EINVAL` | `kernel/kprobes.c:2210` → `:2223` | `kprobe_on_func_entry()`, called by `register_kretprobe`: the address is not a function entry |
    /// | `AlreadyRegistered` | `EINVAL` | `kernel/kprobes.c:1542` → `:1650`; `:2227` | `warn_kprobe_rereg()`: `register_kprobe` (and `register_kretprobe` by address) of a probe already registered. kprobe_events answers `-EEXIST` for the same probe on an event (`kernel/trace/trace_kprobe.c:608`) |
    /// | `NoSuchProbe` | `ENOENT` | `kernel/events/uprobes.c:1261`; `kernel/trace/trace_dynevent.c:76` | `uprobe_apply()`: the consumer is not registered on the uprobe; `dyn_event_release()`: no probe event of that name to remove. The kprobe API's `enable_kprobe`/`disable_kprobe` answer `-EINVAL` for an unregistered probe (`kernel/kprobes.c:2434`, `:1735`) and `unregister_kprobe` returns nothing; the id-based interfaces' answer is kept |
    /// | `UnknownSymbol` | `ENOENT` | `kernel/kprobes.c:1477` | `_kprobe_addr()`: `kprobe_lookup_name()` found no such symbol (also `:1486`: no symbol covers the address) |
    /// | `OffsetOutsideSymbol` | `EINVAL` | no direct equivalent; `kernel/kprobes.c:1485`; `kernel/trace/trace_kprobe.c:959` → `:1075` | `_kprobe_addr()` re-resolves symbol + offset to whatever symbol contains it (`-ENOENT` only if none); kprobe_events refuses an offset it cannot use as `BAD_PROBE_ADDR` with `-EINVAL` |
    /// | `InvalidRequest` | `EINVAL` | `kernel/kprobes.c:1465`; `:1848` | `_kprobe_addr()`: both or neither of `addr` and `symbol_name`; `register_kprobes()` with `num <= 0`. Linux answers `-E2BIG` for kretprobe data above its limit (`:2241`); here that is an `InvalidRequest` |
    /// | `SlotMemoryExhausted` | `ENOMEM` | `arch/x86/kernel/kprobes/core.c:804`; `arch/riscv/kernel/probes/kprobes.c:99`; `arch/loongarch/kernel/kprobes.c:47`; `arch/arm64/kernel/probes/kprobes.c:134` | `arch_prepare_kprobe`: `get_insn_slot()` found no slot and no new slot page |
    /// | `CapacityFull` | `ENOMEM` | `kernel/kprobes.c:1320`; `:2267`, `:2274` | Linux has no fixed tables: its capacity failures are allocations (the aggregate probe for a second probe at an address; the kretprobe instance pool). `register_kprobes()` has no batch limit |
    /// | `OutOfReach` | `ENOMEM` | differs: `arch/x86/kernel/kprobes/core.c:453` → `:765` answers `-EINVAL` | x86 `__copy_instruction()`: the rip-relative displacement does not fit from the slot. Linux takes slot pages within ±2 GiB of the kernel, so there it is a "cannot happen"; here it means the kernel's slot pages are out of reach, a slot-memory shortage like `SlotMemoryExhausted` |
    /// | `TextPatchFailed` | `EFAULT` | `mm/gup.c:1477` → `kernel/events/uprobes.c:497` | `uprobe_write_opcode()` returns the page lookup's error: `-EFAULT` where no mapping covers the address. Linux's kernel text patching (`text_poke`) cannot fail |
    /// | `MemoryUnreadable` | `EFAULT` | differs: `mm/maccess.c:46` | `copy_from_kernel_nofault()` fails with `-EFAULT`; `register_kprobe` turns that into `-EINVAL` (`arch/x86/kernel/kprobes/core.c:383` → `kernel/kprobes.c:1496`) and uprobes read the file with `-EIO` (`kernel/events/uprobes.c:888`); the access's own errno is kept, which says what went wrong |
    /// | `ReturnHookMissing` | `EINVAL` | no Linux equivalent; closest `kernel/trace/rethook.c:109` → `kernel/kprobes.c:2255` | Linux's return trampoline is built in; `rethook_alloc()`, called by `register_kretprobe`, refuses a rethook without a handler with `-EINVAL` |
    /// | `InTrapContext` | `EDEADLK` | no Linux equivalent; `kernel/kprobes.c:1661` → `kernel/locking/mutex.c:283` | `register_kprobe` takes `kprobe_mutex`, whose `might_sleep()` only warns in atomic context and may then deadlock: Linux has no errno for it, `EDEADLK` says what would happen |
    /// | (none: a probe-events layer) | `EEXIST` | `kernel/trace/trace_probe.c:2178`; `kernel/trace/trace_kprobe.c:645`, `:608` | kprobe_events: an event of that name already exists in the group; the name is taken by a probe of the other type; the same probe again on the event. A kernel's probe-events layer returns it for a duplicate event name; the engine has no names, so no kind maps to it |
    /// <!-- /errno-table -->
    ///
    /// ```
    /// use probe_hal::{errno, ProbeErrorKind};
    /// assert_eq!(ProbeErrorKind::UnknownSymbol.errno(), errno::ENOENT);
    /// assert_eq!(ProbeErrorKind::Overlaps { other: 0x1000 }.errno(), errno::EILSEQ);
    /// ```
    pub const fn errno(&self) -> i32 {
        use errno::*;
        match self {
            Self::NotInsnBoundary { .. }
            | Self::Undecodable
            | Self::Misaligned { .. }
            | Self::Overlaps { .. } => EILSEQ,
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

/// A probe error as the negative errno a system call returns (Linux's
/// `register_kprobe` convention: `-EINVAL`, `-EILSEQ`, …; the table is on
/// [`ProbeErrorKind::errno`]), so `?` works in kernel code that returns
/// `Result<_, i32>`.
///
/// ```
/// use probe_hal::{ProbeError, ProbeErrorKind};
/// fn open() -> Result<u32, i32> {
///     Err(ProbeError::new(ProbeErrorKind::UnknownSymbol, 0))?
/// }
/// assert_eq!(open(), Err(-2)); // -ENOENT
/// ```
impl From<ProbeError> for i32 {
    fn from(e: ProbeError) -> i32 {
        -e.kind().errno()
    }
}

/// As the `i32` conversion, for kernels whose system calls return `isize`.
impl From<ProbeError> for isize {
    fn from(e: ProbeError) -> isize {
        -(e.kind().errno() as isize)
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
    /// `cannot probe 0x…: why`; without the address when the error is about
    /// none (0: an unknown symbol, a stale id, a full table).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            0 => write!(f, "cannot probe: {}", self.kind),
            a => write!(f, "cannot probe {a:#x}: {}", self.kind),
        }
    }
}

impl core::error::Error for ProbeError {}

#[cfg(test)]
mod tests {
    use super::errno::*;
    use super::*;

    /// The errno of every kind, as the table in `errno()`'s doc cites it.
    #[test]
    fn every_kind_maps_to_the_documented_errno() {
        use ProbeErrorKind as K;
        let r = Refusal::new("brk", "test");
        let rows = [
            (
                K::NotInsnBoundary {
                    insn_start: 0,
                    insn_len: 4,
                },
                EILSEQ,
            ),
            (K::Undecodable, EILSEQ),
            (K::Misaligned { align: 4 }, EILSEQ),
            // an intersecting instruction is off an instruction boundary
            (K::Overlaps { other: 0 }, EILSEQ),
            (K::Refused(r), EINVAL),
            (K::Blacklisted, EINVAL),
            (K::NotFunctionEntry, EINVAL),
            (K::AlreadyRegistered, EINVAL),
            (K::NoSuchProbe, ENOENT),
            (K::UnknownSymbol, ENOENT),
            (K::OffsetOutsideSymbol { size: 8 }, EINVAL),
            (K::InvalidRequest("test"), EINVAL),
            (K::SlotMemoryExhausted, ENOMEM),
            (K::CapacityFull(Capacity::Probes), ENOMEM),
            (K::CapacityFull(Capacity::Batch), ENOMEM),
            (K::OutOfReach { slot: 0 }, ENOMEM),
            (K::TextPatchFailed, EFAULT),
            (K::MemoryUnreadable, EFAULT),
            (
                K::ReturnHookMissing {
                    other_engine: false,
                },
                EINVAL,
            ),
            (K::InTrapContext, EDEADLK),
        ];
        for (kind, want) in rows {
            assert_eq!(kind.errno(), want, "{kind:?}");
        }
    }
}
