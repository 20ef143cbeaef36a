//! Parse errors: a reason (Linux's wording, from `kernel/trace/trace_probe.h`)
//! and the byte position in the definition where Linux's error log would put
//! its caret.

use core::fmt;

/// Why a definition was refused. The `Display` text is Linux's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The line does not start with `p`, `r` or `-`.
    BadProbeType,
    /// A digit after `p` (maxactive only exists for return probes).
    MaxactNoKprobe,
    /// `rN` with a malformed number (or on a uprobe).
    BadMaxact,
    /// `rN` above 4096.
    MaxactTooBig,
    /// `p:/…`.
    NoGroupName,
    /// Group name longer than the capacity.
    GroupTooLong,
    /// Group name is not a C identifier.
    BadGroupName,
    /// `-:` without an event name.
    NoEventName,
    /// Event name longer than the capacity.
    EventTooLong,
    /// Event name is not a C identifier.
    BadEventName,
    /// The group/event pair is already defined.
    EventExist,
    /// No probe point after the name.
    NoProbePoint,
    /// The symbol or address of the probe point is malformed.
    BadProbeAddr,
    /// `r` with a non-zero offset.
    BadRetprobe,
    /// A uprobe point without `PATH:OFFSET`.
    BadUprobeOffs,
    /// `(REF_CTR_OFFSET)` malformed.
    BadRefcnt,
    /// `(REF_CTR_OFFSET` without `)`.
    RefcntOpenBrace,
    /// Text after `(REF_CTR_OFFSET)`.
    BadRefcntSuffix,
    /// `$retval` on an entry probe.
    RetvalOnProbe,
    /// `$stackN` malformed or too deep.
    BadStackNum,
    /// `$argN` malformed, zero or too large.
    BadArgNum,
    /// `$argN` on a probe that is not at a function entry.
    NofentryArgs,
    /// Unknown `$` variable.
    BadVar,
    /// Unknown register name.
    BadRegName,
    /// `@ADDR` malformed.
    BadMemAddr,
    /// `\IMM` malformed.
    BadImm,
    /// `@+OFFSET` on a kprobe.
    FileOnKprobe,
    /// `@+OFFSET` malformed.
    BadFileOffs,
    /// `@SYM` on a uprobe.
    SymOnUprobe,
    /// Dereferences nested deeper than the capacity.
    TooManyOps,
    /// `+OFFS` without `(`.
    DerefNeedBrace,
    /// `+OFFS(` with a malformed offset.
    BadDerefOffs,
    /// `+OFFS(…` without `)`.
    DerefOpenBrace,
    /// `+0($comm)`.
    CommCantDeref,
    /// Anything else that is not a fetch argument.
    BadFetchArg,
    /// `TYPE[N` without `]`.
    ArrayNoClose,
    /// Text after `TYPE[N]`.
    BadArraySuffix,
    /// `TYPE[N]` with N malformed or 0.
    BadArrayNum,
    /// `TYPE[N]` with N above the capacity.
    ArrayTooBig,
    /// An array of something that is not read from memory.
    ArrayNoMem,
    /// Unknown type name (or `symbol` on a uprobe, a non-string `$comm`).
    BadType,
    /// `string` on something that is not read from memory.
    BadString,
    /// `b<width>@<offset>/<container>` malformed.
    BadBitfield,
    /// Argument name longer than the capacity.
    ArgNameTooLong,
    /// `=FETCHARG`.
    NoArgName,
    /// Argument name is not a C identifier.
    BadArgName,
    /// Two arguments with one name.
    UsedArgName,
    /// Argument text longer than the capacity.
    ArgTooLong,
    /// `NAME=`.
    NoArgBody,
    /// More arguments than the capacity.
    TooManyArgs,
    /// A symbol or path longer than the capacity.
    SymbolTooLong,
    /// The event table is full.
    TooManyEvents,
    /// `-:` names no defined event.
    EventNotFound,
    /// `-:` names an event that is enabled.
    EventBusy,
}

impl Reason {
    /// Linux's message for this reason.
    pub const fn message(self) -> &'static str {
        use Reason::*;
        match self {
            BadProbeType => "Probe type is not specified or invalid",
            MaxactNoKprobe => "Maxactive is not for kprobe",
            BadMaxact => "Invalid maxactive number",
            MaxactTooBig => "Maxactive is too big",
            NoGroupName => "Group name is not specified",
            GroupTooLong => "Group name is too long",
            BadGroupName => "Group name must follow the same rules as C identifiers",
            NoEventName => "Event name is not specified",
            EventTooLong => "Event name is too long",
            BadEventName => "Event name must follow the same rules as C identifiers",
            EventExist => "Given group/event name is already used by another event",
            NoProbePoint => "Probe point is not specified",
            BadProbeAddr => "Invalid probed address or symbol",
            BadRetprobe => "Retprobe address must be an function entry",
            BadUprobeOffs => "Invalid uprobe offset",
            BadRefcnt => "Invalid reference counter offset",
            RefcntOpenBrace => "Reference counter brace is not closed",
            BadRefcntSuffix => "Reference counter has wrong suffix",
            RetvalOnProbe => "$retval is not available on probe",
            BadStackNum => "Invalid stack number",
            BadArgNum => "Invalid argument number",
            NofentryArgs => "$arg* can be used only on function entry",
            BadVar => "Invalid $-valiable specified",
            BadRegName => "Invalid register name",
            BadMemAddr => "Invalid memory address",
            BadImm => "Invalid immediate value",
            FileOnKprobe => "File offset is not available with kprobe",
            BadFileOffs => "Invalid file offset value",
            SymOnUprobe => "Symbol is not available with uprobe",
            TooManyOps => "Dereference is too much nested",
            DerefNeedBrace => "Dereference needs a brace",
            BadDerefOffs => "Invalid dereference offset",
            DerefOpenBrace => "Dereference is not closed",
            CommCantDeref => "$comm can not be dereferenced",
            BadFetchArg => "Invalid fetch argument",
            ArrayNoClose => "Array is not closed",
            BadArraySuffix => "Array has wrong suffix",
            BadArrayNum => "Invalid array size",
            ArrayTooBig => "Array number is too big",
            ArrayNoMem => "Array only accepts memory argument",
            BadType => "Unknown type is specified",
            BadString => "String accepts only memory argument",
            BadBitfield => "Invalid bitfield",
            ArgNameTooLong => "Argument name is too long",
            NoArgName => "Argument name is not specified",
            BadArgName => "Argument name must follow the same rules as C identifiers",
            UsedArgName => "This argument name is already used",
            ArgTooLong => "Argument expression is too long",
            NoArgBody => "No argument expression",
            TooManyArgs => "Too many arguments are specified",
            SymbolTooLong => "Symbol or path is too long",
            TooManyEvents => "Too many events are defined",
            EventNotFound => "No such event",
            EventBusy => "Event is enabled",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A refused definition: why, and the byte offset in the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the definition (where Linux puts the caret).
    pub pos: usize,
    /// Why.
    pub reason: Reason,
}

impl ParseError {
    pub(crate) const fn new(pos: usize, reason: Reason) -> Self {
        Self { pos, reason }
    }

    /// Linux's error-log form: the command, then a caret under `pos`.
    pub fn write_log(&self, line: &str, w: &mut dyn fmt::Write) -> fmt::Result {
        writeln!(w, "error: {}", self.reason)?;
        writeln!(w, "  Command: {line}")?;
        write!(w, "           ")?;
        for _ in 0..self.pos {
            w.write_char(' ')?;
        }
        w.write_char('^')
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.reason, self.pos)
    }
}
