//! Linux's text formats: trace lines, `kprobe_events`, `kprobe_profile`.

use core::fmt::{self, Write};

use crate::def::{EventDef, Flavor, TypeKind};
use crate::fetch::{flags, Record, Value};

/// A symbol an address falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymInfo<'a> {
    /// Its name.
    pub name: &'a str,
    /// The address's offset into it.
    pub offset: usize,
    /// Its size.
    pub size: usize,
}

/// Address-to-name lookup (the kernel's `kallsyms`).
pub trait Symbolizer {
    /// The symbol containing `addr`.
    fn lookup(&self, addr: usize) -> Option<SymInfo<'_>>;
}

/// No symbols: addresses print as hex.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSymbols;

impl Symbolizer for NoSymbols {
    fn lookup(&self, _addr: usize) -> Option<SymInfo<'_>> {
        None
    }
}

/// Which vintage of Linux's trace line to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStyle {
    /// Current Linux with `irq-info` on (the default):
    /// `%16s-%-7d [%03d] <5 flags> %5llu.%06lu: `, `x` values with `0x`.
    Modern,
    /// Current Linux with `irq-info` off.
    ModernNoIrqInfo,
    /// The sample in the pinned documents (Linux 2.6.3x):
    /// `%16s-%-5d [%03d] %5lu.%06lu: `, `x` values without `0x`.
    Legacy,
}

fn write_sym(
    w: &mut dyn Write,
    syms: &dyn Symbolizer,
    addr: u64,
    with_offset: bool,
) -> fmt::Result {
    match syms.lookup(addr as usize) {
        Some(s) if with_offset => write!(w, "{}+0x{:x}/0x{:x}", s.name, s.offset, s.size),
        Some(s) => w.write_str(s.name),
        None => write!(w, "0x{addr:x}"),
    }
}

/// Linux's five-column latency flags (`trace_print_lat_fmt`).
pub fn write_lat_flags(w: &mut dyn Write, f: u8, preempt: u8) -> fmt::Result {
    let irqs = if f & flags::IRQS_OFF != 0 { 'd' } else { '.' };
    let resched = match (
        f & flags::NEED_RESCHED != 0,
        f & flags::PREEMPT_RESCHED != 0,
    ) {
        (true, true) => 'N',
        (true, false) => 'n',
        (false, true) => 'p',
        _ => '.',
    };
    let (nmi, hard, soft) = (
        f & flags::NMI != 0,
        f & flags::HARDIRQ != 0,
        f & flags::SOFTIRQ != 0,
    );
    let ctx = if nmi && hard {
        'Z'
    } else if nmi {
        'z'
    } else if hard && soft {
        'H'
    } else if hard {
        'h'
    } else if soft {
        's'
    } else {
        '.'
    };
    w.write_char(irqs)?;
    w.write_char(resched)?;
    w.write_char(ctx)?;
    for nib in [preempt & 0xf, preempt >> 4] {
        if nib == 0 {
            w.write_char('.')?;
        } else {
            write!(w, "{nib:x}")?;
        }
    }
    Ok(())
}

fn write_str_bytes(w: &mut dyn Write, s: &[u8]) -> fmt::Result {
    for &b in s {
        if (0x20..0x7f).contains(&b) {
            w.write_char(b as char)?;
        } else {
            write!(w, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

fn write_int(
    w: &mut dyn Write,
    v: u64,
    kind: TypeKind,
    style: LineStyle,
    syms: &dyn Symbolizer,
) -> fmt::Result {
    match kind {
        TypeKind::U(_) | TypeKind::Bitfield { .. } => write!(w, "{v}"),
        TypeKind::S(b) => {
            let shift = 64 - 8 * b as u32;
            write!(w, "{}", ((v << shift) as i64) >> shift)
        }
        TypeKind::Char => write!(w, "'{}'", v as u8 as char),
        TypeKind::Symbol => write_sym(w, syms, v, true),
        _ if style == LineStyle::Legacy => write!(w, "{v:x}"),
        _ => write!(w, "0x{v:x}"),
    }
}

/// Print one value as its argument's type says.
pub fn write_value(
    w: &mut dyn Write,
    v: &Value,
    kind: TypeKind,
    style: LineStyle,
    syms: &dyn Symbolizer,
) -> fmt::Result {
    match v {
        Value::Int(i) => write_int(w, *i, kind, style, syms),
        Value::Str(s) => {
            w.write_char('"')?;
            write_str_bytes(w, s)?;
            w.write_char('"')
        }
        Value::Array(a) => {
            w.write_char('{')?;
            for (i, &e) in a.iter().enumerate() {
                if i > 0 {
                    w.write_char(',')?;
                }
                write_int(w, e, kind, style, syms)?;
            }
            w.write_char('}')
        }
        Value::Fault => w.write_str("(fault)"),
    }
}

/// One trace line (no newline), as Linux's `trace` and `trace_pipe` print it.
pub fn write_trace_line(
    w: &mut dyn Write,
    def: &EventDef,
    rec: &Record,
    syms: &dyn Symbolizer,
    style: LineStyle,
) -> fmt::Result {
    let pid = rec.pid.unwrap_or(0);
    let mut comm_buf = [0u8; 24];
    let comm: &str = match (&rec.comm, rec.pid) {
        (Some(c), _) => {
            let n = c.iter().position(|&b| b == 0).unwrap_or(c.len());
            comm_buf[..n].copy_from_slice(&c[..n]);
            core::str::from_utf8(&comm_buf[..n]).unwrap_or("<...>")
        }
        (None, None) | (None, Some(0)) => "<idle>",
        (None, Some(_)) => "<...>",
    };
    let ts = rec.timestamp_ns.unwrap_or(0);
    let (secs, usecs) = (ts / 1_000_000_000, (ts % 1_000_000_000) / 1000);
    match style {
        LineStyle::Legacy => write!(
            w,
            "{comm:>16}-{pid:<5} [{:03}] {secs:>5}.{usecs:06}: ",
            rec.cpu
        )?,
        LineStyle::Modern => {
            write!(w, "{comm:>16}-{pid:<7} [{:03}] ", rec.cpu)?;
            write_lat_flags(w, rec.flags, rec.preempt_count)?;
            write!(w, " {secs:>5}.{usecs:06}: ")?;
        }
        LineStyle::ModernNoIrqInfo => write!(
            w,
            "{comm:>16}-{pid:<7} [{:03}]  {secs:>5}.{usecs:06}: ",
            rec.cpu
        )?,
    }
    write!(w, "{}: (", def.event)?;
    let user = def.flavor == Flavor::Uprobe;
    if user {
        write!(w, "0x{:x}", rec.ip)?;
        if def.is_return {
            write!(w, " <- 0x{:x}", rec.func)?;
        }
    } else {
        write_sym(w, syms, rec.ip, true)?;
        if def.is_return {
            w.write_str(" <- ")?;
            write_sym(w, syms, rec.func, false)?;
        }
    }
    w.write_char(')')?;
    for (a, v) in def.args.iter().zip(&rec.values) {
        write!(w, " {}=", a.name)?;
        write_value(w, v, def.effective_kind(a), style, syms)?;
    }
    Ok(())
}

/// One `kprobe_profile` line (with newline): name, hits, misses.
pub fn write_profile_line(w: &mut dyn Write, event: &str, hits: u64, misses: u64) -> fmt::Result {
    writeln!(w, "  {event:<44} {hits:>15} {misses:>15}")
}

/// One line (with newline) of the probe list, as Linux's
/// `/sys/kernel/debug/kprobes/list` prints it (`report_probe` in
/// kernel/kprobes.c): the address as a 16-digit pointer, `k` or `r`, then
/// `sym+0xoff` and the module (or a blank) when the address has a symbol,
/// else the address again, then `[DISABLED]` for a disabled probe. (Ours
/// are never `[GONE]`, `[OPTIMIZED]` or `[FTRACE]`.) User-space probes
/// (uprobes) have no such file in Linux; they print the same way with
/// `u`/`ur`, for the kernel's own listing.
///
/// ```
/// # use probe_events::format::{write_probe_list_line, SymInfo};
/// # use probe_core::{ProbeId, ProbeInfo, ProbeKind, Space};
/// let p = ProbeInfo { id: ProbeId::NONE, addr: 0xffff_ffff_8123_4560, space: Space::Kernel,
///     kind: ProbeKind::Kprobe, enabled: false, hits: 0, missed: 0, attached: 0,
///     optimization: probe_core::Optimization::NotOptimized(probe_core::NotOptimized::Disabled) };
/// let sym = SymInfo { name: "do_sys_open", offset: 0, size: 0xd6 };
/// let mut s = String::new();
/// write_probe_list_line(&mut s, &p, Some(sym), None).unwrap();
/// assert_eq!(s, "ffffffff81234560  k  do_sys_open+0x0    [DISABLED]\n");
/// ```
pub fn write_probe_list_line(
    w: &mut dyn Write,
    p: &probe_core::ProbeInfo,
    sym: Option<SymInfo<'_>>,
    module: Option<&str>,
) -> fmt::Result {
    use probe_core::{ProbeKind, Space};
    let kind = match (p.space, p.kind) {
        (Space::Kernel, ProbeKind::Kprobe) => "k",
        (Space::Kernel, ProbeKind::Kretprobe) => "r",
        (Space::User(_), ProbeKind::Kprobe) => "u",
        (Space::User(_), ProbeKind::Kretprobe) => "ur",
    };
    match sym {
        Some(s) => write!(
            w,
            "{:016x}  {kind}  {}+0x{:x}  {} ",
            p.addr,
            s.name,
            s.offset,
            module.unwrap_or(" ")
        )?,
        None => write!(w, "{:016x}  {kind}  {:016x} ", p.addr, p.addr)?,
    }
    if !p.enabled {
        w.write_str("[DISABLED]")?;
    }
    if p.optimization == probe_core::Optimization::Optimized {
        w.write_str("[OPTIMIZED]")?;
    }
    w.write_char('\n')
}
