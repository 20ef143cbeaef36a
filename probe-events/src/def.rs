//! Event definitions: the types, and the parser of `kprobe_events` /
//! `uprobe_events` lines.
//!
//! Grammar (Linux `Documentation/trace/kprobetrace.rst` and
//! `uprobetracer.rst`, torvalds/linux at commit `010e85f9e47c`):
//!
//! ```text
//! p[:[GRP/][EVENT]] [MOD:]SYM[+offs]|MEMADDR [FETCHARGS]       kprobe
//! r[MAXACTIVE][:[GRP/][EVENT]] [MOD:]SYM[+0] [FETCHARGS]       kretprobe
//! p[:[GRP/][EVENT]] PATH:OFFSET[(REF_CTR_OFFSET)] [FETCHARGS]  uprobe
//! r[:[GRP/][EVENT]] PATH:OFFSET[(REF_CTR_OFFSET)] [FETCHARGS]  uretprobe
//! -:[GRP/]EVENT                                                delete
//! FETCHARG = [NAME=]BODY[:TYPE]
//! BODY = %REG | @ADDR | @SYM[+|-offs] | @+OFFSET | $stackN | $stack | $retval
//!      | $comm | $argN | +|-[u]OFFS(BODY) | \IMM
//! TYPE = u8…u64 | s8…s64 | x8…x64 | char | string | ustring | symbol
//!      | b<width>@<offset>/<container>, each optionally followed by [N]
//! ```

use core::fmt::{self, Write};

use heapless::{String, Vec};

use crate::error::{ParseError, Reason};
use crate::regs::{RegRef, RegisterNames};

/// Arguments per event (Linux: 128).
pub const MAX_ARGS: usize = 16;
/// Bytes in a group, event or argument name, exclusive bound (Linux: 64).
pub const MAX_NAME: usize = 32;
/// Bytes in a `[MOD:]SYM` (Linux: unbounded, KSYM_NAME_LEN per part).
pub const MAX_SYM: usize = 64;
/// Bytes in a uprobe's `PATH` (Linux: PATH_MAX).
pub const MAX_PATH: usize = 128;
/// Bytes in one fetch argument's text after `NAME=` (Linux: 63).
pub const MAX_ARG_TEXT: usize = 64;
/// Nested dereferences in one fetch argument (Linux: about 16 operations).
pub const MAX_DEPTH: usize = 4;
/// Elements in an array type `TYPE[N]` (Linux: below 64).
pub const MAX_ARRAY: usize = 16;
/// Deepest `$stackN` (Linux: the rest of the kernel stack page).
pub const MAX_STACK_NUM: u32 = 1024;
/// Highest `$argN` (Linux: 128 args).
pub const MAX_ARG_NUM: u32 = 64;
/// Largest `rMAXACTIVE` (Linux's KRETPROBE_MAXACTIVE_MAX).
pub const MAX_MAXACTIVE: u32 = 4096;

/// A group, event or argument name.
pub type Name = String<MAX_NAME>;

/// Which file the definition is written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `kprobe_events`: kernel code, by symbol or address.
    Kprobe,
    /// `uprobe_events`: user code, by file and offset.
    Uprobe,
}

impl Flavor {
    /// The default group.
    pub const fn default_group(self) -> &'static str {
        match self {
            Flavor::Kprobe => "kprobes",
            Flavor::Uprobe => "uprobes",
        }
    }
}

/// Where the event's probe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Point {
    /// `[MOD:]SYM[+offs]` (`sym` holds the `MOD:` part too).
    Symbol {
        /// `[MOD:]SYM`.
        sym: String<MAX_SYM>,
        /// `+offs`.
        offset: u64,
    },
    /// `MEMADDR`.
    Addr(u64),
    /// `PATH:OFFSET[(REF_CTR_OFFSET)]`.
    File {
        /// The file.
        path: String<MAX_PATH>,
        /// Offset of the probed instruction in it.
        offset: u64,
        /// Offset of the USDT semaphore.
        ref_ctr: Option<u64>,
    },
}

impl Point {
    /// For `MOD:SYM`, the module.
    pub fn module(&self) -> Option<&str> {
        match self {
            Point::Symbol { sym, .. } => sym.split_once(':').map(|(m, _)| m),
            _ => None,
        }
    }
    /// For `[MOD:]SYM`, the symbol.
    pub fn symbol(&self) -> Option<&str> {
        match self {
            Point::Symbol { sym, .. } => Some(sym.split_once(':').map_or(sym.as_str(), |(_, s)| s)),
            _ => None,
        }
    }
}

/// Where a fetch argument's value comes from, before dereferences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `%REG`.
    Reg(RegRef),
    /// `@ADDR`: memory at ADDR.
    Addr(u64),
    /// `@SYM[+|-offs]`: memory at SYM's address plus offs.
    Symbol {
        /// The data symbol.
        name: String<MAX_SYM>,
        /// The signed offset.
        offset: i64,
    },
    /// `@+OFFSET`: memory at a file offset of the probed binary (uprobes).
    FileOffset(u64),
    /// `$stackN`: the N-th word of the stack.
    Stack(u32),
    /// `$stack`: the stack pointer.
    StackAddr,
    /// `$retval`.
    Retval,
    /// `$comm`: the current task's name.
    Comm,
    /// `$argN` (1-based).
    Arg(u32),
    /// `\IMM`.
    Imm(u64),
}

impl Base {
    /// Whether the value is read from memory (so string/array types apply).
    pub const fn is_memory(&self) -> bool {
        matches!(
            self,
            Base::Addr(_) | Base::Symbol { .. } | Base::FileOffset(_)
        )
    }
}

/// One `+|-[u]OFFS(…)` level, innermost first in [`FetchArg::derefs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deref {
    /// Signed offset added to the inner value.
    pub offset: i64,
    /// `u`: a user-space address.
    pub user: bool,
}

/// The value type of a fetch argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    /// No `:TYPE`: `x64` (or `x32` on a 32-bit ISA), `string` for `$comm`.
    Default,
    /// `uN`, with N/8 bytes.
    U(u8),
    /// `sN`.
    S(u8),
    /// `xN`.
    X(u8),
    /// `char`.
    Char,
    /// `string`.
    String,
    /// `ustring`.
    UString,
    /// `symbol` (kprobes only).
    Symbol,
    /// `b<width>@<offset>/<container>` (container in bytes).
    Bitfield {
        /// Bits in the field.
        width: u8,
        /// Bit offset of the field in the container.
        offset: u8,
        /// Bytes in the container.
        container: u8,
    },
}

/// A type: kind plus optional array length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgType {
    /// The element type.
    pub kind: TypeKind,
    /// `[N]`.
    pub array: Option<u8>,
}

/// One `NAME=FETCHARG[:TYPE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchArg {
    /// `NAME` (or `argN` when omitted).
    pub name: Name,
    /// The text after `NAME=`, printed back verbatim as Linux does.
    pub text: String<MAX_ARG_TEXT>,
    /// The innermost value.
    pub base: Base,
    /// Dereferences, innermost first.
    pub derefs: Vec<Deref, MAX_DEPTH>,
    /// The type.
    pub ty: ArgType,
}

impl FetchArg {
    /// Whether the final value is read from memory.
    pub fn reads_memory(&self) -> bool {
        self.base.is_memory() || !self.derefs.is_empty()
    }
}

/// A parsed event definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDef {
    /// `kprobe_events` or `uprobe_events`.
    pub flavor: Flavor,
    /// `r`.
    pub is_return: bool,
    /// `rMAXACTIVE` (0: the default).
    pub maxactive: u32,
    /// The group (default filled in).
    pub group: Name,
    /// The event name (generated when omitted).
    pub event: Name,
    /// The probe point.
    pub point: Point,
    /// The fetch arguments.
    pub args: Vec<FetchArg, MAX_ARGS>,
    /// Bytes in a pointer on the ISA the names came from.
    pub pointer_bytes: u8,
}

/// What one line asks for.
// No `Box` without `alloc`: the definition is moved once, into the table.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Define an event.
    Define(EventDef),
    /// `-:[GRP/]EVENT`.
    Delete {
        /// `GRP`, if given.
        group: Option<Name>,
        /// `EVENT`.
        event: Name,
    },
    /// An empty line or a `#` comment.
    Nothing,
}

// ---------------------------------------------------------------- numbers

/// `kstrtoul(s, 0)`: `0x` hex, leading `0` octal, else decimal.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// `kstrtol(s, 0)`: an optional sign, then [`parse_u64`].
pub(crate) fn parse_i64(s: &str) -> Option<i64> {
    if let Some(rest) = s.strip_prefix('-') {
        let v = parse_u64(rest)?;
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        let v = parse_u64(s.strip_prefix('+').unwrap_or(s))?;
        i64::try_from(v).ok()
    }
}

fn is_c_ident(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn name_from(s: &str) -> Name {
    let mut n = Name::new();
    for c in s.chars() {
        if n.push(c).is_err() {
            break;
        }
    }
    n
}

// ---------------------------------------------------------------- parser

struct Ctx<'n> {
    flavor: Flavor,
    is_return: bool,
    /// Probe at a function entry (offset 0 of a symbol), for `$argN`.
    at_entry: bool,
    names: &'n dyn RegisterNames,
}

fn err<T>(pos: usize, reason: Reason) -> Result<T, ParseError> {
    Err(ParseError::new(pos, reason))
}

/// Parse one line of `kprobe_events` (`flavor` Kprobe) or `uprobe_events`.
pub fn parse(line: &str, flavor: Flavor, names: &dyn RegisterNames) -> Result<Command, ParseError> {
    let mut tokens = line
        .split(|c: char| c.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| (t.as_ptr() as usize - line.as_ptr() as usize, t));
    let Some((p0, head)) = tokens.next() else {
        return Ok(Command::Nothing);
    };
    if head.starts_with('#') {
        return Ok(Command::Nothing);
    }
    let kind = head.as_bytes()[0];
    if !matches!(kind, b'p' | b'r' | b'-') {
        return err(p0, Reason::BadProbeType);
    }
    let rest = &head[1..];
    if kind == b'-' {
        let Some(spec) = rest.strip_prefix(':') else {
            return err(p0, Reason::BadProbeType);
        };
        let (group, event) = parse_name_spec(spec, p0 + 2)?;
        let Some(event) = event else {
            return err(p0 + 2 + spec.len(), Reason::NoEventName);
        };
        if let Some((p, _)) = tokens.next() {
            return err(p, Reason::TooManyArgs);
        }
        return Ok(Command::Delete { group, event });
    }
    let is_return = match kind {
        b'p' => false,
        b'r' => true,
        _ => return err(p0, Reason::BadProbeType),
    };
    let digits_end = rest.bytes().position(|b| b == b':').unwrap_or(rest.len());
    let digits = &rest[..digits_end];
    let mut maxactive = 0;
    if !digits.is_empty() {
        if !is_return {
            return err(
                p0 + 1,
                if digits.as_bytes()[0].is_ascii_digit() {
                    Reason::MaxactNoKprobe
                } else {
                    Reason::BadProbeType
                },
            );
        }
        if !digits.as_bytes()[0].is_ascii_digit() {
            return err(p0 + 1, Reason::BadProbeType);
        }
        if flavor == Flavor::Uprobe || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return err(p0 + 1, Reason::BadMaxact);
        }
        maxactive = match digits.parse::<u32>() {
            Ok(v) if v <= MAX_MAXACTIVE => v,
            _ => return err(p0 + 1, Reason::MaxactTooBig),
        };
    }
    let (group, event) = match rest[digits_end..].strip_prefix(':') {
        Some(spec) => parse_name_spec(spec, p0 + 1 + digits_end + 1)?,
        None => (None, None),
    };

    let Some((pp, point_text)) = tokens.next() else {
        return err(line.trim_end().len(), Reason::NoProbePoint);
    };
    let point = match flavor {
        Flavor::Kprobe => parse_kprobe_point(point_text, pp, is_return)?,
        Flavor::Uprobe => parse_uprobe_point(point_text, pp)?,
    };
    let at_entry = matches!(point, Point::Symbol { offset: 0, .. });
    let ctx = Ctx {
        flavor,
        is_return,
        at_entry,
        names,
    };

    let mut args: Vec<FetchArg, MAX_ARGS> = Vec::new();
    for (i, (pos, text)) in tokens.enumerate() {
        if i >= MAX_ARGS {
            return err(pos, Reason::TooManyArgs);
        }
        let arg = parse_arg(text, pos, i, &ctx)?;
        if args.iter().any(|a| a.name == arg.name) {
            return err(pos, Reason::UsedArgName);
        }
        // Cannot fail: `i < MAX_ARGS`.
        let _ = args.push(arg);
    }

    let group = group.unwrap_or_else(|| name_from(flavor.default_group()));
    let event = match event {
        Some(e) => e,
        None => generated_name(&point, is_return),
    };
    Ok(Command::Define(EventDef {
        flavor,
        is_return,
        maxactive,
        group,
        event,
        point,
        args,
        pointer_bytes: names.pointer_bytes() as u8,
    }))
}

/// `[GRP/][EVENT]` starting at byte `pos`.
fn parse_name_spec(spec: &str, pos: usize) -> Result<(Option<Name>, Option<Name>), ParseError> {
    let (group, event, epos) = match spec.split_once('/') {
        Some((g, e)) => {
            if g.is_empty() {
                return err(pos, Reason::NoGroupName);
            }
            if g.len() >= MAX_NAME {
                return err(pos, Reason::GroupTooLong);
            }
            if !is_c_ident(g) {
                return err(pos, Reason::BadGroupName);
            }
            (Some(name_from(g)), e, pos + g.len() + 1)
        }
        None => (None, spec, pos),
    };
    if event.is_empty() {
        return Ok((group, None));
    }
    if event.len() >= MAX_NAME {
        return err(epos, Reason::EventTooLong);
    }
    if !is_c_ident(event) {
        return err(epos, Reason::BadEventName);
    }
    Ok((group, Some(name_from(event))))
}

fn sym_string(s: &str, pos: usize) -> Result<String<MAX_SYM>, ParseError> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()=%$@\\\"+-/[]".contains(&b))
        && s.split(':').count() <= 2
        && s.split(':').all(|p| !p.is_empty());
    if !ok {
        return err(pos, Reason::BadProbeAddr);
    }
    String::try_from(s).or(err(pos, Reason::SymbolTooLong))
}

fn parse_kprobe_point(t: &str, pos: usize, is_return: bool) -> Result<Point, ParseError> {
    if t.as_bytes()[0].is_ascii_digit() {
        let addr = parse_u64(t).ok_or(ParseError::new(pos, Reason::BadProbeAddr))?;
        return Ok(Point::Addr(addr));
    }
    let (sym, offset) = match t.find(['+', '-']) {
        Some(i) => {
            if t.as_bytes()[i] == b'-' {
                return err(pos + i, Reason::BadProbeAddr);
            }
            let off =
                parse_u64(&t[i + 1..]).ok_or(ParseError::new(pos + i, Reason::BadProbeAddr))?;
            (&t[..i], off)
        }
        None => (t, 0),
    };
    let sym = sym_string(sym, pos)?;
    if is_return && offset != 0 {
        return err(pos, Reason::BadRetprobe);
    }
    Ok(Point::Symbol { sym, offset })
}

fn parse_uprobe_point(t: &str, pos: usize) -> Result<Point, ParseError> {
    let (body, ref_ctr) = match t.find('(') {
        Some(i) => {
            let inner = &t[i + 1..];
            let Some(close) = inner.find(')') else {
                return err(pos + i, Reason::RefcntOpenBrace);
            };
            if close + 1 != inner.len() {
                return err(pos + i + 1 + close + 1, Reason::BadRefcntSuffix);
            }
            let v = parse_u64(&inner[..close])
                .ok_or(ParseError::new(pos + i + 1, Reason::BadRefcnt))?;
            (&t[..i], Some(v))
        }
        None => (t, None),
    };
    let Some(colon) = body.rfind(':') else {
        return err(pos, Reason::BadUprobeOffs);
    };
    let (path, off) = (&body[..colon], &body[colon + 1..]);
    if path.is_empty() {
        return err(pos, Reason::BadUprobeOffs);
    }
    let offset = parse_u64(off).ok_or(ParseError::new(pos + colon + 1, Reason::BadUprobeOffs))?;
    let path = String::try_from(path).or(err(pos, Reason::SymbolTooLong))?;
    Ok(Point::File {
        path,
        offset,
        ref_ctr,
    })
}

fn generated_name(point: &Point, is_return: bool) -> Name {
    let c = if is_return { 'r' } else { 'p' };
    let mut buf: String<128> = String::new();
    // Overflow only truncates, as Linux's snprintf does.
    let _ = match point {
        Point::Symbol { sym, offset } => write!(buf, "{c}_{sym}_{offset}"),
        Point::Addr(a) => write!(buf, "{c}_0x{a:x}"),
        Point::File { path, offset, .. } => {
            // Linux: basename cut at the first of ".-_", and always 'p'.
            let base = path.rsplit('/').next().unwrap_or(path);
            let tail = base.split(['.', '-', '_']).next().unwrap_or(base);
            write!(buf, "p_{tail}_0x{offset:x}")
        }
    };
    let mut n = Name::new();
    // Linux replaces ':' and '.'; anything else that is not an identifier
    // character goes too, so that the listing always parses back.
    for ch in buf.chars().take(MAX_NAME - 1) {
        let _ = n.push(if ch.is_ascii_alphanumeric() { ch } else { '_' });
    }
    n
}

fn parse_arg(text: &str, pos: usize, index: usize, ctx: &Ctx<'_>) -> Result<FetchArg, ParseError> {
    let (name, body, bpos) = match text.find('=') {
        Some(i) => {
            let n = &text[..i];
            if n.is_empty() {
                return err(pos, Reason::NoArgName);
            }
            if n.len() >= MAX_NAME {
                return err(pos, Reason::ArgNameTooLong);
            }
            if !is_c_ident(n) {
                return err(pos, Reason::BadArgName);
            }
            (name_from(n), &text[i + 1..], pos + i + 1)
        }
        None => {
            let mut n = Name::new();
            let _ = write!(n, "arg{}", index + 1);
            (n, text, pos)
        }
    };
    if body.is_empty() {
        return err(bpos, Reason::NoArgBody);
    }
    if body.len() >= MAX_ARG_TEXT {
        return err(bpos, Reason::ArgTooLong);
    }
    let (expr, ty_text) = match body.find(':') {
        Some(i) => (&body[..i], Some((&body[i + 1..], bpos + i + 1))),
        None => (body, None),
    };
    let mut derefs: Vec<Deref, MAX_DEPTH> = Vec::new();
    let base = parse_body(expr, bpos, ctx, &mut derefs)?;
    derefs.reverse();
    let memory = base.is_memory() || !derefs.is_empty();
    let ty = match ty_text {
        Some((t, tpos)) => parse_type(t, tpos, ctx)?,
        None => ArgType {
            kind: TypeKind::Default,
            array: None,
        },
    };
    let tpos = ty_text.map_or(bpos, |(_, p)| p);
    if base == Base::Comm {
        if !matches!(ty.kind, TypeKind::Default | TypeKind::String) || ty.array.is_some() {
            return err(tpos, Reason::BadType);
        }
    } else {
        if matches!(ty.kind, TypeKind::String | TypeKind::UString) && !memory {
            return err(tpos, Reason::BadString);
        }
        if ty.array.is_some() && !memory {
            return err(tpos, Reason::ArrayNoMem);
        }
    }
    Ok(FetchArg {
        name,
        // Cannot fail: checked against MAX_ARG_TEXT above.
        text: String::try_from(body).unwrap_or_default(),
        base,
        derefs,
        ty,
    })
}

/// A body; dereferences are pushed outermost first.
fn parse_body(
    s: &str,
    pos: usize,
    ctx: &Ctx<'_>,
    derefs: &mut Vec<Deref, MAX_DEPTH>,
) -> Result<Base, ParseError> {
    let Some(&first) = s.as_bytes().first() else {
        return err(pos, Reason::BadFetchArg);
    };
    match first {
        b'$' => parse_var(&s[1..], pos, ctx),
        b'%' => ctx
            .names
            .lookup(&s[1..])
            .map(Base::Reg)
            .ok_or(ParseError::new(pos + 1, Reason::BadRegName)),
        b'@' => {
            let a = &s[1..];
            if let Some(off) = a.strip_prefix('+') {
                if ctx.flavor == Flavor::Kprobe {
                    return err(pos, Reason::FileOnKprobe);
                }
                return parse_u64(off)
                    .map(Base::FileOffset)
                    .ok_or(ParseError::new(pos + 2, Reason::BadFileOffs));
            }
            if a.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                return parse_u64(a)
                    .map(Base::Addr)
                    .ok_or(ParseError::new(pos + 1, Reason::BadMemAddr));
            }
            if ctx.flavor == Flavor::Uprobe {
                return err(pos, Reason::SymOnUprobe);
            }
            let (name, offset) = match a.find(['+', '-']) {
                Some(i) => (
                    &a[..i],
                    parse_i64(&a[i..]).ok_or(ParseError::new(pos + 1 + i, Reason::BadMemAddr))?,
                ),
                None => (a, 0),
            };
            let name = sym_string(name, pos + 1)
                .map_err(|e| ParseError::new(e.pos, Reason::BadMemAddr))?;
            Ok(Base::Symbol { name, offset })
        }
        b'+' | b'-' => {
            let Some(open) = s.find('(') else {
                return err(pos, Reason::DerefNeedBrace);
            };
            let mut off_text = &s[1..open];
            let user = off_text.starts_with('u');
            if user {
                off_text = &off_text[1..];
            }
            let mag = parse_u64(off_text)
                .filter(|&v| v <= i64::MAX as u64)
                .ok_or(ParseError::new(pos + 1, Reason::BadDerefOffs))?;
            let offset = if first == b'-' {
                -(mag as i64)
            } else {
                mag as i64
            };
            if !s.ends_with(')') {
                return err(pos + open, Reason::DerefOpenBrace);
            }
            let inner = &s[open + 1..s.len() - 1];
            // Uprobes read only user memory: Linux ignores the `u`.
            let user = user && ctx.flavor == Flavor::Kprobe;
            if derefs.push(Deref { offset, user }).is_err() {
                return err(pos, Reason::TooManyOps);
            }
            let base = parse_body(inner, pos + open + 1, ctx, derefs)?;
            if base == Base::Comm {
                return err(pos + open + 1, Reason::CommCantDeref);
            }
            Ok(base)
        }
        b'\\' => parse_u64(&s[1..])
            .map(Base::Imm)
            .ok_or(ParseError::new(pos + 1, Reason::BadImm)),
        _ => err(pos, Reason::BadFetchArg),
    }
}

fn parse_var(v: &str, pos: usize, ctx: &Ctx<'_>) -> Result<Base, ParseError> {
    match v {
        "retval" => {
            if ctx.is_return {
                Ok(Base::Retval)
            } else {
                err(pos, Reason::RetvalOnProbe)
            }
        }
        "stack" => Ok(Base::StackAddr),
        "comm" | "COMM" => Ok(Base::Comm),
        _ => {
            if let Some(n) = v.strip_prefix("stack") {
                return match parse_dec(n) {
                    Some(n) if n <= MAX_STACK_NUM => Ok(Base::Stack(n)),
                    _ => err(pos, Reason::BadStackNum),
                };
            }
            if let Some(n) = v.strip_prefix("arg") {
                if ctx.flavor == Flavor::Uprobe {
                    return err(pos, Reason::BadVar);
                }
                return match parse_dec(n) {
                    Some(k) if (1..=MAX_ARG_NUM).contains(&k) => {
                        if ctx.at_entry {
                            Ok(Base::Arg(k))
                        } else {
                            err(pos, Reason::NofentryArgs)
                        }
                    }
                    _ => err(pos, Reason::BadArgNum),
                };
            }
            err(pos, Reason::BadVar)
        }
    }
}

/// Decimal digits only (`kstrtouint(s, 10)` without the sign).
fn parse_dec(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_type(t: &str, pos: usize, ctx: &Ctx<'_>) -> Result<ArgType, ParseError> {
    let (base, array) = match t.find('[') {
        Some(i) => {
            let inner = &t[i + 1..];
            let Some(close) = inner.find(']') else {
                return err(pos + i, Reason::ArrayNoClose);
            };
            if close + 1 != inner.len() {
                return err(pos + i + 1 + close + 1, Reason::BadArraySuffix);
            }
            let n = parse_u64(&inner[..close])
                .filter(|&n| n > 0)
                .ok_or(ParseError::new(pos + i + 1, Reason::BadArrayNum))?;
            if n > MAX_ARRAY as u64 {
                return err(pos + i + 1, Reason::ArrayTooBig);
            }
            (&t[..i], Some(n as u8))
        }
        None => (t, None),
    };
    let kind = match base {
        "string" => TypeKind::String,
        "ustring" if ctx.flavor == Flavor::Kprobe => TypeKind::UString,
        "symbol" if ctx.flavor == Flavor::Kprobe => TypeKind::Symbol,
        "char" => TypeKind::Char,
        _ if base.starts_with('b') && base.contains('@') => parse_bitfield(&base[1..], pos)?,
        _ => {
            let bits = match base.get(1..) {
                Some("8") => 1,
                Some("16") => 2,
                Some("32") => 4,
                Some("64") => 8,
                _ => return err(pos, Reason::BadType),
            };
            match base.as_bytes()[0] {
                b'u' => TypeKind::U(bits),
                b's' => TypeKind::S(bits),
                b'x' => TypeKind::X(bits),
                _ => return err(pos, Reason::BadType),
            }
        }
    };
    if array.is_some() && matches!(kind, TypeKind::String | TypeKind::UString) {
        // `string[N]` (an array of string pointers) is left out.
        return err(pos, Reason::BadType);
    }
    Ok(ArgType { kind, array })
}

fn parse_bitfield(s: &str, pos: usize) -> Result<TypeKind, ParseError> {
    let bad = ParseError::new(pos, Reason::BadBitfield);
    let (w, rest) = s.split_once('@').ok_or(bad)?;
    let (o, c) = rest.split_once('/').ok_or(bad)?;
    let num = |x: &str| -> Option<u8> {
        if x.is_empty() || x.len() > 2 || !x.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        x.parse().ok()
    };
    let (w, o, c) = (num(w).ok_or(bad)?, num(o).ok_or(bad)?, num(c).ok_or(bad)?);
    if !matches!(c, 8 | 16 | 32 | 64) || w == 0 || w as u32 + o as u32 > c as u32 {
        return Err(bad);
    }
    Ok(TypeKind::Bitfield {
        width: w,
        offset: o,
        container: c / 8,
    })
}

// ---------------------------------------------------------------- printing

impl EventDef {
    /// The definition as `kprobe_events` / `uprobe_events` list it (no
    /// newline). Parsing this text gives this definition back.
    pub fn write_listing(&self, w: &mut dyn Write) -> fmt::Result {
        w.write_char(if self.is_return { 'r' } else { 'p' })?;
        if self.is_return && self.maxactive != 0 {
            write!(w, "{}", self.maxactive)?;
        }
        write!(w, ":{}/{}", self.group, self.event)?;
        match &self.point {
            Point::Symbol { sym, offset: 0 } => write!(w, " {sym}")?,
            Point::Symbol { sym, offset } => write!(w, " {sym}+{offset}")?,
            Point::Addr(a) => write!(w, " 0x{a:016x}")?,
            Point::File {
                path,
                offset,
                ref_ctr,
            } => {
                let width = self.pointer_bytes as usize * 2;
                write!(w, " {path}:0x{offset:0width$x}")?;
                if let Some(r) = ref_ctr {
                    write!(w, "(0x{r:x})")?;
                }
            }
        }
        for a in &self.args {
            write!(w, " {}={}", a.name, a.text)?;
        }
        Ok(())
    }

    /// The value type an argument's values are printed with.
    pub fn effective_kind(&self, arg: &FetchArg) -> TypeKind {
        match arg.ty.kind {
            TypeKind::Default if arg.base == Base::Comm => TypeKind::String,
            TypeKind::Default => TypeKind::X(self.pointer_bytes),
            k => k,
        }
    }
}

impl fmt::Display for EventDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_listing(f)
    }
}
