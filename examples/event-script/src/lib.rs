//! # event-script: the probe-events check the example kernels share
//!
//! Every QEMU kernel runs the same check at boot, on its own test
//! functions and with its own register names:
//!
//! 1. a short `kprobe_events` script is applied as text: a kprobe with
//!    register and memory arguments and a string, a kretprobe with
//!    `$retval`, and an event on an inlined-away symbol, which must fail
//!    with the engine's `UnknownSymbol` and register nothing;
//! 2. a workload calls the probed function a few times with known
//!    arguments (one a pointer to a NUL-terminated string in a static);
//! 3. the per-CPU ring is drained, every record printed as Linux's
//!    `trace_pipe` prints it, and checked line by line against the line
//!    the known arguments must give (count, event names, values, the
//!    string, `(sym+0xoff/0xsize)` and `(caller+… <- sym)`);
//! 4. the events are deleted (attachments detached, probes unregistered)
//!    and the probed text must be the original byte for byte.
//!
//! The kernel supplies the [`Sink`] (its register names, fault-safe memory,
//! its rings: [`sink!`]), its symbol table ([`Table`]), the two functions
//! ([`Setup`]) and a [`Report`] that prints its check lines.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

use core::fmt::{self, Write};
use core::pin::pin;

use heapless::{String, Vec};
use lock_api::RawMutex;
use probe_core::{Attachment, Engine, KernelServices, ProbeErrorKind};
use probe_events::live::RECORD_WORDS;
use probe_events::{
    parse, register_probe, write_trace_line, Command, CpuRing, EventDef, EventHandler, EventSink,
    Fault, FetchEnv, Flavor, FullMode, LineStyle, Record, RegisterNames, RingBuffer, SymInfo,
    Symbolizer,
};
use probe_hal::Arch;

pub use probe_core;
pub use probe_events;

/// Records each CPU's ring holds.
pub const SLOTS: usize = 16;

/// One CPU's ring (a kernel keeps a `static` array of them, one per CPU).
pub type Ring = CpuRing<SLOTS, RECORD_WORDS>;

/// Fault-safe kernel memory: copy `buf.len()` bytes from an address, or
/// `Err` (never a crash) where nothing readable is.
pub type ReadFn = fn(usize, &mut [u8]) -> Result<(), Fault>;

/// [`FetchEnv`] over a [`ReadFn`]: kernel memory only (no user task here).
pub struct Memory(ReadFn);

impl FetchEnv for Memory {
    fn read(&self, addr: usize, buf: &mut [u8], user: bool) -> Result<(), Fault> {
        if user {
            return Err(Fault);
        }
        (self.0)(addr, buf)
    }
}

/// The kernel's side of events: register names, memory, rings. No clock
/// and no task: lines print `<idle>-0` and `0.000000`, as Linux prints
/// absent values.
pub struct Sink<N: 'static> {
    names: N,
    memory: Memory,
    ring: RingBuffer<'static, SLOTS, RECORD_WORDS>,
}

impl<N: 'static> Sink<N> {
    /// A sink writing into `rings` (one per CPU), dropping the newest
    /// record when a ring is full (the drop is counted as lost).
    pub const fn new(names: N, read: ReadFn, rings: &'static [Ring]) -> Self {
        Self {
            names,
            memory: Memory(read),
            ring: RingBuffer::new(rings, FullMode::DropNewest),
        }
    }

    /// The rings.
    pub fn ring(&self) -> &RingBuffer<'static, SLOTS, RECORD_WORDS> {
        &self.ring
    }

    /// The register names.
    pub fn names(&self) -> &N {
        &self.names
    }
}

impl<N: RegisterNames + Sync + 'static> EventSink for Sink<N> {
    fn names(&self) -> &dyn RegisterNames {
        &self.names
    }
    fn env(&self) -> &dyn FetchEnv {
        &self.memory
    }
    fn write(&self, cpu: usize, words: &[u64]) -> bool {
        self.ring.write(cpu, words)
    }
}

/// The kernel's symbol table of its test functions, as a function giving
/// its rows: a [`Symbolizer`] (address to name) and a lookup by name.
pub struct Table<F>(pub F);

impl<F: Fn() -> I, I: IntoIterator<Item = Sym>> Table<F> {
    /// The function called `name` (size 0 at address 0 when there is none:
    /// the check then fails on its trace lines).
    pub fn get(&self, name: &str) -> Sym {
        (self.0)()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or(Sym {
                name: "?",
                addr: 0,
                size: 0,
            })
    }
}

impl<F: Fn() -> I, I: IntoIterator<Item = Sym>> Symbolizer for Table<F> {
    fn lookup(&self, addr: usize) -> Option<SymInfo<'_>> {
        let s = (self.0)()
            .into_iter()
            .find(|s| (s.addr..s.addr + s.size).contains(&addr))?;
        Some(SymInfo {
            name: s.name,
            offset: addr - s.addr,
            size: s.size,
        })
    }
}

/// `static NAME: Sink<Names> = sink!(names, ENGINE, CPUS);`: a [`Sink`]
/// with one ring per CPU, reading memory through `ENGINE`'s kernel
/// services (`KernelServices::read` of the kernel space, which the kernels
/// bound to mapped memory: a fault, never a crash).
#[macro_export]
macro_rules! sink {
    ($names:expr, $engine:path, $cpus:expr) => {{
        static RINGS: [$crate::Ring; $cpus] = [const { $crate::Ring::new() }; $cpus];
        fn read(addr: usize, buf: &mut [u8]) -> Result<(), $crate::probe_events::Fault> {
            $crate::probe_core::KernelServices::read(
                $engine.services(),
                $crate::probe_core::Space::Kernel,
                addr,
                buf,
            )
            .map_err(|_| $crate::probe_events::Fault)
        }
        $crate::Sink::new($names, read, &RINGS)
    }};
}

/// Where the kernel's check lines go.
pub trait Report {
    /// One check: `ok`, and what was checked.
    fn check(&mut self, ok: bool, what: fmt::Arguments<'_>);
    /// A line of output that is not a check (the script, the trace).
    fn print(&mut self, line: fmt::Arguments<'_>);
}

/// A [`Report`] from two closures: `check(ok, what)` and `print(line)`.
pub struct Reporter<C, P>(pub C, pub P);

impl<C: FnMut(bool, fmt::Arguments<'_>), P: FnMut(fmt::Arguments<'_>)> Report for Reporter<C, P> {
    fn check(&mut self, ok: bool, what: fmt::Arguments<'_>) {
        (self.0)(ok, what)
    }
    fn print(&mut self, line: fmt::Arguments<'_>) {
        (self.1)(line)
    }
}

/// A function of the kernel's symbol table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sym {
    /// Its name.
    pub name: &'static str,
    /// Its first byte.
    pub addr: usize,
    /// Its size in bytes.
    pub size: usize,
}

impl Sym {
    /// The function `name` at `start..end`.
    pub fn new(name: &'static str, start: usize, end: usize) -> Self {
        Self {
            name,
            addr: start,
            size: end - start,
        }
    }
}

/// What the check needs to know about the kernel.
pub struct Setup {
    /// The registers of the first four integer arguments, as Linux spells
    /// them after `%` on this ISA.
    pub arg_regs: [&'static str; 4],
    /// `target(a, b, p, s) = a + b` (p and s unused): the probed function.
    pub target: Sym,
    /// The offset in `target` of the kprobe (an instruction boundary where
    /// the four argument registers still hold the arguments).
    pub probe_offset: usize,
    /// `caller(a, b, p, s) = target(a, b, p, s)`: calls `target` once.
    pub caller: Sym,
    /// The offset in `caller` of the instruction after its call of
    /// `target` (the return address).
    pub return_offset: usize,
    /// Call `caller` with four arguments.
    pub call: fn(usize, usize, usize, usize) -> usize,
    /// The CPU the check runs on.
    pub cpu: usize,
}

/// Calls of the workload.
pub const CALLS: usize = 3;

/// The strings the workload passes (NUL-terminated, in static memory).
static STRINGS: [&[u8]; CALLS] = [b"hello\0", b"probe events\0", b"from the kernel\0"];
/// What the `mem` argument reads (`+8(%p)`: the second word).
static WORDS: [[u64; 2]; CALLS] = [
    [0, 0x5eed_0000_0000_0001],
    [0, 0x5eed_0000_0000_0002],
    [0, 0x5eed_0000_0000_0003],
];

/// The arguments of call `i`: `a` printed as hex, `b` cut to `u32`.
fn args(i: usize) -> (usize, usize, usize, usize) {
    (
        0x1000 + i,
        0xab_0000_0000 + 7 * (i + 1),
        WORDS[i].as_ptr() as usize,
        STRINGS[i].as_ptr() as usize,
    )
}

/// A trace line.
pub type Line = String<256>;

struct Bytes<'a>(&'a [u8]);
impl fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            f.write_char(b as char)?;
        }
        Ok(())
    }
}

/// Linux's line head with `irq-info` on, for the idle task, no clock, on
/// `cpu`, in a probe handler (interrupts off).
fn head(w: &mut Line, cpu: usize) {
    let _ = write!(
        w,
        "{:>16}-{:<7} [{:03}] d.... {:>5}.{:06}: ",
        "<idle>", 0, cpu, 0, 0
    );
}

/// The lines the workload must give, in order.
fn expected(setup: &Setup) -> Vec<Line, { 2 * CALLS }> {
    let mut out = Vec::new();
    let (t, c) = (&setup.target, &setup.caller);
    for i in 0..CALLS {
        let (a, b, p, s) = args(i);
        let _ = p;
        let _ = s;
        let mut entry = Line::new();
        head(&mut entry, setup.cpu);
        let _ = write!(
            entry,
            "myprobe: ({}+0x{:x}/0x{:x}) a0=0x{a:x} a1={} mem=0x{:x} s=\"{}\"",
            t.name,
            setup.probe_offset,
            t.size,
            b as u32,
            WORDS[i][1],
            Bytes(&STRINGS[i][..STRINGS[i].len() - 1]),
        );
        let mut ret = Line::new();
        head(&mut ret, setup.cpu);
        let _ = write!(
            ret,
            "myret: ({}+0x{:x}/0x{:x} <- {}) arg1=0x{:x}",
            c.name,
            setup.return_offset,
            c.size,
            t.name,
            a.wrapping_add(b)
        );
        let _ = out.push(entry);
        let _ = out.push(ret);
    }
    out
}

/// The script, with this ISA's register names.
fn script(setup: &Setup) -> [String<160>; 4] {
    let [r0, r1, r2, r3] = setup.arg_regs;
    let t = setup.target.name;
    let mut lines: [String<160>; 4] = Default::default();
    let _ = write!(lines[0], "# kprobe_events, as written on Linux");
    let _ = write!(
        lines[1],
        "p:myprobe {t}+{} a0=%{r0} a1=%{r1}:u32 mem=+8(%{r2}):x64 s=+0(%{r3}):string",
        setup.probe_offset
    );
    let _ = write!(lines[2], "r:myret {t} $retval");
    let _ = write!(lines[3], "p:gone no_such_inlined_fn");
    lines
}

/// `len` (at most 128) bytes of text at `addr`, through the sink's memory.
fn snapshot(read: &dyn FetchEnv, s: &Sym) -> Option<Vec<u8, 128>> {
    let mut buf = [0u8; 128];
    let n = s.size.min(buf.len());
    read.read(s.addr, &mut buf[..n], false).ok()?;
    Vec::from_slice(&buf[..n]).ok()
}

/// Drain every CPU's ring into trace lines.
fn drain<N>(
    sink: &Sink<N>,
    defs: &[EventDef],
    syms: &dyn Symbolizer,
    lines: &mut Vec<Line, 16>,
) -> usize {
    let mut words = [0u64; RECORD_WORDS];
    let mut records = 0;
    for cpu in 0..sink.ring.cpus() {
        while let Some(n) = sink.ring.read(cpu, &mut words) {
            records += 1;
            let mut line = Line::new();
            match Record::decode(&words[..n]) {
                Some(rec) => match defs.get(rec.event as usize) {
                    Some(def) => {
                        let _ = write_trace_line(&mut line, def, &rec, syms, LineStyle::Modern);
                    }
                    None => {
                        let _ = write!(line, "<record of unknown event {}>", rec.event);
                    }
                },
                None => {
                    let _ = write!(line, "<malformed record of {n} words>");
                }
            }
            let _ = lines.push(line);
        }
    }
    records
}

/// Run the check: apply the script, run the workload, print and check the
/// trace, delete the events. Every step is one or more [`Report::check`]s.
pub fn run<
    A: Arch,
    L: RawMutex,
    K: KernelServices<A>,
    N: RegisterNames + Sync + 'static,
    const PROBES: usize,
    const INSTANCES: usize,
    const CPUS: usize,
    const PAGES: usize,
    const DATA: usize,
>(
    engine: &'static Engine<A, L, K, PROBES, INSTANCES, CPUS, PAGES, DATA>,
    sink: &'static Sink<N>,
    syms: &dyn Symbolizer,
    setup: &Setup,
    r: &mut dyn Report,
) {
    // ---- the script, as text
    let text = script(setup);
    let mut defs: Vec<EventDef, 4> = Vec::new();
    let mut parsed = true;
    for line in &text {
        r.print(format_args!("kprobe_events< {line}"));
        match parse(line, Flavor::Kprobe, &sink.names) {
            Ok(Command::Define(def)) => {
                let _ = defs.push(def);
            }
            Ok(Command::Nothing) => {}
            Ok(Command::Delete { .. }) => parsed = false,
            Err(e) => {
                parsed = false;
                let mut log: String<512> = String::new();
                let _ = e.write_log(line, &mut log);
                for l in log.lines() {
                    r.print(format_args!("{l}"));
                }
            }
        }
    }
    for d in &defs {
        r.print(format_args!("kprobe_events> {d}"));
    }
    r.check(
        parsed && defs.len() == 3,
        format_args!("the script's 3 definitions parse (register names of this ISA)"),
    );
    if defs.len() != 3 {
        return;
    }
    let probes_before = engine.list::<64>().len();

    // ---- an inlined-away symbol: the engine's error, nothing registered
    match register_probe(engine, &defs[2]) {
        Ok(id) => {
            let _ = engine.unregister(id);
            r.check(
                false,
                format_args!("p:gone no_such_inlined_fn registered a probe"),
            );
        }
        Err(e) => {
            let mut got: String<128> = String::new();
            let _ = write!(got, "{e}");
            let mut want: String<128> = String::new();
            let _ = write!(want, "{}", ProbeErrorKind::UnknownSymbol);
            r.print(format_args!(
                "kprobe_events: p:gone no_such_inlined_fn: {got} (errno {})",
                -e.kind().errno()
            ));
            r.check(
                e.kind() == ProbeErrorKind::UnknownSymbol
                    && got.ends_with(want.as_str())
                    && engine.list::<64>().len() == probes_before,
                format_args!(
                    "p:gone no_such_inlined_fn fails with the engine's UnknownSymbol (\"{got}\"), nothing registered"
                ),
            );
        }
    }

    // ---- the two events, live
    let before = (
        snapshot(&sink.memory, &setup.target),
        snapshot(&sink.memory, &setup.caller),
    );
    let entry = pin!(Attachment::new(EventHandler::new(0, defs[0].clone(), sink)));
    let ret = pin!(Attachment::new(EventHandler::new(1, defs[1].clone(), sink)));
    let ids = (
        register_probe(engine, &defs[0]),
        register_probe(engine, &defs[1]),
    );
    let (id0, id1) = match ids {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            r.check(
                false,
                format_args!("myprobe and myret registered ({a:?}, {b:?})"),
            );
            for id in [a, b].into_iter().flatten() {
                let _ = engine.unregister(id);
            }
            return;
        }
    };
    let attached = (
        engine.attach(id0, entry.as_ref()),
        engine.attach(id1, ret.as_ref()),
    );
    r.check(
        attached == (Ok(()), Ok(())),
        format_args!(
            "myprobe ({}+{}) and myret (its return) registered, their handlers attached",
            setup.target.name, setup.probe_offset
        ),
    );

    // ---- the workload
    let mut results_ok = true;
    for i in 0..CALLS {
        let (a, b, p, s) = args(i);
        results_ok &= (setup.call)(a, b, p, s) == a.wrapping_add(b);
    }
    r.check(
        results_ok,
        format_args!(
            "{CALLS} calls of {} through {} return a + b while traced",
            setup.target.name, setup.caller.name
        ),
    );

    // ---- the trace, line by line
    let mut lines: Vec<Line, 16> = Vec::new();
    let records = drain(sink, &defs, syms, &mut lines);
    r.print(format_args!(
        "# tracer: nop (trace_pipe of {} and {})",
        defs[0].event, defs[1].event
    ));
    for l in &lines {
        r.print(format_args!("trace_pipe| {l}"));
    }
    let lost: u64 = (0..sink.ring.cpus()).map(|c| sink.ring.lost(c)).sum();
    r.check(
        records == 2 * CALLS && lost == 0,
        format_args!("{records} trace lines (want {}), {lost} lost", 2 * CALLS),
    );
    let want = expected(setup);
    for (k, w) in want.iter().enumerate() {
        let got = lines.get(k);
        let ok = got == Some(w);
        let event = if k % 2 == 0 { "myprobe" } else { "myret" };
        r.check(
            ok,
            format_args!(
                "trace line {} ({event}, call {}) is exactly Linux's line for it",
                k + 1,
                k / 2 + 1
            ),
        );
        if !ok {
            r.print(format_args!(
                "  got  {}",
                got.map_or("(none)", |l| l.as_str())
            ));
            r.print(format_args!("  want {w}"));
        }
    }
    let counts = (
        entry.handler().hits(),
        ret.handler().hits(),
        entry.handler().dropped() + ret.handler().dropped(),
    );
    r.check(
        counts == (CALLS as u64, CALLS as u64, 0),
        format_args!(
            "kprobe_profile counts {} myprobe and {} myret hits, {} dropped",
            counts.0, counts.1, counts.2
        ),
    );

    // ---- deleted: detached, unregistered, the text is the original
    let deleted = (
        engine.detach(entry.as_ref()),
        engine.unregister(id0),
        engine.detach(ret.as_ref()),
        engine.unregister(id1),
    );
    let after = (
        snapshot(&sink.memory, &setup.target),
        snapshot(&sink.memory, &setup.caller),
    );
    r.check(
        deleted == (Ok(()), Ok(()), Ok(()), Ok(()))
            && before.0.is_some()
            && before.1.is_some()
            && after == before
            && engine.list::<64>().len() == probes_before,
        format_args!(
            "deleted (detached, unregistered): {} and {} are the original bytes again",
            setup.target.name, setup.caller.name
        ),
    );
    let (a, b, p, s) = args(0);
    let result = (setup.call)(a, b, p, s);
    let mut quiet: Vec<Line, 16> = Vec::new();
    let records = drain(sink, &defs, syms, &mut quiet);
    r.check(
        records == 0 && result == a.wrapping_add(b),
        format_args!("after deletion a call records nothing ({records} records)"),
    );
}
