//! Events through the engine: definitions parsed from text become probes on
//! examples/custom-arch's made-up ISA, their handlers are plain `fn`s with the
//! definition as user data, records go through the ring buffer and come out
//! as Linux's trace lines.

use custom_arch::isa::asm::*;
use custom_arch::machine::{Cpu, Stop};
use custom_arch::world::World;
use probe_core::{Kprobe, Kretprobe, PreAction, ProbeContext, Space};
use probe_events::fetch::{fetch_all, flags, Fault, FetchEnv, Record};
use probe_events::format::{write_trace_line, LineStyle, SymInfo, Symbolizer};
use probe_events::{
    parse, Command, CpuRing, EventDef, FullMode, Point, RegRef, RegisterNames, RingBuffer,
};
use probe_hal::Registers;

const ARITH: usize = 0x1000; // r1 = 5; r2 = 7; r1 += r2; r1 += 1; ret  (13)
const CALLER: usize = 0x1200; // push lr; call arith; pop lr; r1 += 1; ret  (14)
const STUB: usize = 0x3000;
const SYMS: &[(&str, usize, usize)] = &[
    ("arith", ARITH, 14),
    ("caller", CALLER, 14),
    ("stub", STUB, 8),
];

/// The made-up ISA's names: `r0`…`r15` (r14 the link register, which the
/// kretprobe on `arith` has redirected by the time of `arith+8`, r15 the
/// stack pointer) and `pc`.
struct ToyNames;
impl RegisterNames for ToyNames {
    fn lookup(&self, name: &str) -> Option<RegRef> {
        if name == "pc" {
            return Some(RegRef::Pc);
        }
        let n: u8 = name.strip_prefix('r')?.parse().ok()?;
        (n < 16 && !name[1..].starts_with('+')).then_some(RegRef::Gpr(n))
    }
}

struct Syms;
impl Symbolizer for Syms {
    fn lookup(&self, addr: usize) -> Option<SymInfo<'_>> {
        SYMS.iter()
            .find(|&&(_, a, s)| (a..a + s).contains(&addr))
            .map(|&(name, a, size)| SymInfo {
                name,
                offset: addr - a,
                size,
            })
    }
}

struct Env(&'static World);
impl FetchEnv for Env {
    fn read(&self, addr: usize, buf: &mut [u8], _user: bool) -> Result<(), Fault> {
        let v = self.0.load_u64(Space::Kernel, addr).map_err(|_| Fault)?;
        buf.copy_from_slice(&v.to_le_bytes()[..buf.len()]);
        Ok(())
    }
}

/// One event: what its handler needs.
struct Ev {
    index: u16,
    def: EventDef,
    world: &'static World,
}

static RINGS: [CpuRing<64, 64>; 4] = [const { CpuRing::new() }; 4];
static BUFFER: RingBuffer<'static, 64, 64> = RingBuffer::new(&RINGS, FullMode::Overwrite);

fn emit(ev: &Ev, ctx: &ProbeContext, regs: &dyn Registers, ip: usize, func: usize) {
    let mut rec = Record {
        event: ev.index,
        cpu: ctx.cpu as u16,
        flags: flags::IRQS_OFF,
        pid: Some(100),
        timestamp_ns: Some(5_000_001_000),
        ip: ip as u64,
        func: func as u64,
        ..Default::default()
    };
    fetch_all(&ev.def, regs, &ToyNames, &Env(ev.world), &mut rec);
    let mut words = [0u64; 64];
    let n = rec.encode(&mut words).expect("record fits");
    BUFFER.write(ctx.cpu, &words[..n]);
}

fn on_entry(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let ev = ctx.data.downcast_ref::<Ev>().expect("an event");
    emit(ev, ctx, regs, ctx.addr, 0);
    PreAction::Continue
}

fn on_return(ctx: &ProbeContext, regs: &mut dyn Registers, _data: &mut [u8]) {
    let ev = ctx.data.downcast_ref::<Ev>().expect("an event");
    emit(ev, ctx, regs, ctx.return_address, ctx.addr);
}

/// The world both tests run in: `arith`, `caller` and a stub calling
/// `caller` then halting; gives `arith`'s bytes too.
fn toy_world() -> (&'static World, Vec<u8>) {
    let w = World::leak(&[]);
    let arith = [&li(1, 5)[..], &li(2, 7), &add(1, 2), &inc(1), &ret()].concat();
    let caller = [
        &push(14)[..],
        &call((ARITH as i64 - (CALLER + 2) as i64) as i16),
        &pop(14),
        &addi(1, 1, 1),
        &ret(),
    ]
    .concat();
    w.load(Space::Kernel, ARITH, &arith);
    w.add_symbol("arith", ARITH, arith.len());
    w.load(Space::Kernel, CALLER, &caller);
    w.add_symbol("caller", CALLER, caller.len());
    w.load(
        Space::Kernel,
        STUB,
        &[&call((CALLER as i64 - STUB as i64) as i16)[..], &halt()].concat(),
    );
    (w, arith)
}

#[test]
fn events_from_text_through_the_engine() {
    let (w, _) = toy_world();
    let engine = custom_arch::leak_engine::<16>(w);

    let lines = [
        "p:arith_mid arith+8 x=%r1 y=%r2:u32 saved=+0($stack):symbol code=+2(%pc):x16 bad=+0(%r0):u64",
        "r:arith_ret arith $retval:s64",
    ];
    let mut defs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Ok(Command::Define(def)) = parse(line, probe_events::Flavor::Kprobe, &ToyNames) else {
            panic!("{line}")
        };
        let ev: &'static Ev = Box::leak(Box::new(Ev {
            index: i as u16,
            def,
            world: w,
        }));
        let Point::Symbol { sym, offset } = &ev.def.point else {
            unreachable!()
        };
        if ev.def.is_return {
            engine
                .register_kretprobe(&Kretprobe::symbol(sym).ret(on_return).data(ev))
                .unwrap();
        } else {
            engine
                .register_kprobe(&Kprobe::symbol(sym, *offset as usize).pre(on_entry).data(ev))
                .unwrap();
        }
        defs.push(ev);
    }

    for _ in 0..2 {
        let mut cpu = Cpu::new(1, 0, Space::Kernel, STUB, 0x8000);
        assert_eq!(cpu.run(w, engine, 10_000), Stop::Halted);
        assert_eq!(cpu.regs.r[1], 14);
    }

    let mut out = [0u64; 64];
    let mut text = String::new();
    while let Some(n) = BUFFER.read(1, &mut out) {
        let rec = Record::decode(&out[..n]).unwrap();
        write_trace_line(
            &mut text,
            &defs[rec.event as usize].def,
            &rec,
            &Syms,
            LineStyle::Modern,
        )
        .unwrap();
        text.push('\n');
    }
    // The probed instruction reads back as the breakpoint: look one past it.
    let inc_insn = u16::from_le_bytes(inc(1));
    let entry = format!(
        "           <...>-100     [001] d....     5.000001: arith_mid: (arith+0x8/0xe) x=0x5 y=7 saved=stub+0x4/0x8 code=0x{inc_insn:x} bad=(fault)\n"
    );
    let ret = "           <...>-100     [001] d....     5.000001: arith_ret: (caller+0x6/0xe <- arith) arg1=13\n";
    assert_eq!(text, [entry.as_str(), ret, entry.as_str(), ret].concat());
    assert_eq!(BUFFER.lost(1), 0);
}

/// The kernel side of live events on the Toy machine: names, memory and a
/// ring of their own.
struct Sink(Env, &'static RingBuffer<'static, 64, 64>);
impl probe_events::EventSink for Sink {
    fn names(&self) -> &dyn RegisterNames {
        &ToyNames
    }
    fn env(&self) -> &dyn FetchEnv {
        &self.0
    }
    fn write(&self, cpu: usize, words: &[u64]) -> bool {
        self.1.write(cpu, words)
    }
    fn timestamp_ns(&self) -> Option<u64> {
        Some(5_000_001_000)
    }
    fn pid(&self) -> Option<u32> {
        Some(100)
    }
}

fn drain(ring: &RingBuffer<'static, 64, 64>, defs: &[EventDef]) -> Vec<String> {
    let mut out = [0u64; 64];
    let mut lines = Vec::new();
    while let Some(n) = ring.read(1, &mut out) {
        let rec = Record::decode(&out[..n]).unwrap();
        let mut text = String::new();
        write_trace_line(
            &mut text,
            &defs[rec.event as usize],
            &rec,
            &Syms,
            LineStyle::Modern,
        )
        .unwrap();
        lines.push(text);
    }
    // Events on one instruction fire in registration order (as Linux's
    // aggregate kprobe); the lines of one run are compared as a set, so
    // the check is about the records, not the order.
    lines.sort();
    lines
}

fn sorted(lines: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    v.sort();
    v
}

#[test]
fn events_attached_to_live_probes_record_until_deleted() {
    use probe_core::Attachment;
    use probe_events::{register_probe, EventHandler};
    static RINGS: [CpuRing<64, 64>; 4] = [const { CpuRing::new() }; 4];
    static RING: RingBuffer<'static, 64, 64> = RingBuffer::new(&RINGS, FullMode::DropNewest);

    let (w, arith) = toy_world();
    let engine = custom_arch::leak_engine::<16>(w);
    let sink: &'static Sink = Box::leak(Box::new(Sink(Env(w), &RING)));
    let run = || {
        let mut cpu = Cpu::new(1, 0, Space::Kernel, STUB, 0x8000);
        assert_eq!(cpu.run(w, engine, 10_000), Stop::Halted);
        assert_eq!(cpu.regs.r[1], 14, "the probed code still computes the same");
    };

    let defs: Vec<EventDef> = [
        "p:arith_mid arith+8 x=%r1 y=%r2:u32",
        "p:arith_mid2 arith+8 x=%r1:s64",
        "r:arith_ret arith $retval:s64",
        "p:gone inlined_away_fn",
    ]
    .iter()
    .map(
        |l| match parse(l, probe_events::Flavor::Kprobe, &ToyNames) {
            Ok(Command::Define(d)) => d,
            other => panic!("{l}: {other:?}"),
        },
    )
    .collect();

    // The kernel's own address-to-name lookup serves the formatter.
    let names = probe_events::ServicesSymbols::new(engine.services());
    let at = probe_events::Symbolizer::lookup(&names, ARITH + 8).unwrap();
    assert_eq!((at.name, at.offset, at.size), ("arith", 8, 14));
    assert!(probe_events::Symbolizer::lookup(&names, 0x7000).is_none());

    // An inlined-away symbol: the engine's error, nothing registered.
    assert_eq!(
        register_probe(engine, &defs[3]).unwrap_err().kind(),
        probe_core::ProbeErrorKind::UnknownSymbol
    );
    assert!(engine.list::<8>().is_empty());

    // Two events on one instruction are two probes, each with its event.
    let mut ids = Vec::new();
    let mut events = Vec::new();
    for (i, def) in defs[..3].iter().enumerate() {
        let id = register_probe(engine, def).unwrap();
        let ev = Box::pin(Attachment::new(EventHandler::new(
            i as u16,
            def.clone(),
            sink,
        )));
        engine.attach(id, ev.as_ref()).unwrap();
        ids.push(id);
        events.push(Some(ev));
    }
    run();
    let mid =
        "           <...>-100     [001] d....     5.000001: arith_mid: (arith+0x8/0xe) x=0x5 y=7";
    let mid2 = "           <...>-100     [001] d....     5.000001: arith_mid2: (arith+0x8/0xe) x=5";
    let ret = "           <...>-100     [001] d....     5.000001: arith_ret: (caller+0x6/0xe <- arith) arg1=13";
    assert_eq!(drain(&RING, &defs), sorted(&[mid, mid2, ret]));

    // Disabled: no record, the others go on.
    engine.disable(ids[0]).unwrap();
    // The probe list as Linux's kprobes/list prints it.
    let mut list = String::new();
    for p in engine.list::<8>() {
        let sym = probe_events::Symbolizer::lookup(&names, p.addr);
        probe_events::format::write_probe_list_line(&mut list, &p, sym, None).unwrap();
    }
    assert_eq!(
        list,
        format!(
            "{:016x}  k  arith+0x8    [DISABLED]\n{:016x}  k  arith+0x8    \n{:016x}  r  arith+0x0    \n",
            ARITH + 8,
            ARITH + 8,
            ARITH
        )
    );
    run();
    assert_eq!(drain(&RING, &defs), sorted(&[mid2, ret]));

    // Deleted: the attachment dropped (after a grace period), the probe
    // unregistered; the first event enabled again.
    events[1] = None;
    engine.unregister(ids[1]).unwrap();
    engine.enable(ids[0]).unwrap();
    run();
    assert_eq!(drain(&RING, &defs), sorted(&[mid, ret]));
    let hits: Vec<u64> = [0, 2]
        .iter()
        .map(|&i| events[i].as_ref().unwrap().handler().hits())
        .collect();
    assert_eq!(hits, [2, 3]);
    assert_eq!(RING.lost(1), 0);

    // Everything deleted: the text is the original again.
    events.clear();
    engine.unregister_batch(&[ids[0], ids[2]]).unwrap();
    assert!(engine.list::<8>().is_empty());
    assert_eq!(w.peek(Space::Kernel, ARITH, arith.len()), arith);
}
