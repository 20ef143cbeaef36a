//! What a probe event costs per hit on x86_64, beside a bare kprobe, and how
//! fast the per-CPU ring buffer takes records.
//!
//! The probe is the engine benchmark's (`benches/engine.rs`): probe-core with
//! probe-hal-x86_64 on the host, synthetic trap frames, one probe on a
//! `mov rax, rbx` stepped out of line (the breakpoint trap, then the trap
//! that ends the step). It is registered for the definition
//!
//! ```text
//! p:bench/open 0x<addr> dfd=%di flags=%si path=+0(%dx):string
//! ```
//!
//! (two registers and a string, as `do_sys_open` is traced) by
//! `probe_events::register_probe`, and one handler object is attached:
//! - `bare`: an empty [`ProbeHandler`];
//! - `event`: the definition's [`EventHandler`]: fetch the three arguments,
//!   `$comm`, pid and a timestamp, encode the record and write it into CPU
//!   0's ring (overwrite mode, nobody reading).
//!
//! Measured, in one run: instructions per hit with callgrind (the child mode
//! `events --hits <bare|event> <hits>`, N hits minus 0 hits, divided by N)
//! and the median ns per hit over interleaved batches; then the ring
//! buffer's write throughput, records/s, with the event's record (as it
//! came out of the ring) written by 1 and by 2 threads, each its own CPU's
//! ring (one writer per ring, as the ring's protocol has it).

#[path = "engine/counters.rs"]
#[allow(dead_code)]
mod counters;
#[path = "engine/measure.rs"]
mod measure;
#[path = "engine/ours.rs"]
#[allow(dead_code)]
mod ours;
#[path = "engine/region.rs"]
#[allow(dead_code)]
mod region;

use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Instant;

use probe_core::{Attachment, ProbeHandler};
use probe_events::fetch::{Fault, FetchEnv, Record, Value, COMM_LEN};
use probe_events::live::RECORD_WORDS;
use probe_events::{
    parse, register_probe, Command, CpuRing, EventDef, EventHandler, EventSink, Flavor, FullMode,
    RegisterNames, RingBuffer,
};
use probe_hal_x86_64::{PtRegs, RegNames};

use measure::{callgrind_total, cpu_model, interleaved_ns, median};
use ours::{HostServices, OurEngine, X86_64_SLOT_LEN};
use region::{Region, PAGE};

/// Hits per timed batch.
const BATCH: usize = 50_000;
/// Timed batches per configuration.
const ROUNDS: usize = 15;
/// Hits in the callgrind child (N).
const CALLGRIND_HITS: usize = 20_000;
/// Records each writer thread writes per timed round.
const RING_RECORDS: usize = 2_000_000;
/// Timed rounds of the ring throughput.
const RING_ROUNDS: usize = 7;
/// Records one CPU's ring holds.
const RING_SLOTS: usize = 256;

/// The string `path=+0(%dx):string` reads (NUL-terminated).
static PATH: [u8; 24] = *b"/etc/ld.so.cache\0\0\0\0\0\0\0\0";
/// What `$comm` would give (the record carries the task's name).
const COMM: [u8; COMM_LEN] = *b"bench\0\0\0\0\0\0\0\0\0\0\0";

/// Fault-safe memory: [`PATH`] and nothing else.
struct Env;

impl FetchEnv for Env {
    fn read(&self, addr: usize, buf: &mut [u8], _user: bool) -> Result<(), Fault> {
        let off = addr.checked_sub(PATH.as_ptr() as usize).ok_or(Fault)?;
        let src = PATH.get(off..off + buf.len()).ok_or(Fault)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn comm(&self) -> Option<[u8; COMM_LEN]> {
        Some(COMM)
    }
}

static RINGS: [CpuRing<RING_SLOTS, RECORD_WORDS>; 2] = [const { CpuRing::new() }; 2];
static RING: RingBuffer<'static, RING_SLOTS, RECORD_WORDS> =
    RingBuffer::new(&RINGS, FullMode::Overwrite);

/// The kernel side of the event: x86_64's names, [`Env`], [`RING`], a
/// clock that moves 1 us per read, pid 1.
struct Sink;

static CLOCK: AtomicU64 = AtomicU64::new(5_000_000_000);

impl EventSink for Sink {
    fn names(&self) -> &dyn RegisterNames {
        &RegNames
    }
    fn env(&self) -> &dyn FetchEnv {
        &Env
    }
    fn write(&self, cpu: usize, words: &[u64]) -> bool {
        RING.write(cpu, words)
    }
    fn timestamp_ns(&self) -> Option<u64> {
        Some(CLOCK.fetch_add(1_000, Ordering::Relaxed))
    }
    fn pid(&self) -> Option<u32> {
        Some(1)
    }
}

static SINK: Sink = Sink;

/// The bare probe's handler: nothing.
struct Empty;
impl ProbeHandler for Empty {}

/// What is attached to the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Bare,
    Event,
}

impl Which {
    fn arg(self) -> &'static str {
        match self {
            Which::Bare => "bare",
            Which::Event => "event",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Which::Bare => "kprobe + empty handler",
            Which::Event => "kprobe + event (2 regs, 1 string)",
        }
    }
}

/// The event's definition on `addr`.
fn definition(addr: usize) -> EventDef {
    let line = format!("p:bench/open {addr:#x} dfd=%di flags=%si path=+0(%dx):string");
    match parse(&line, Flavor::Kprobe, &RegNames) {
        Ok(Command::Define(d)) => d,
        other => panic!("{line}: {other:?}"),
    }
}

/// One engine, one probe, one attachment.
struct Bench {
    engine: &'static OurEngine,
    addr: usize,
    event: Option<&'static EventHandler<'static, Sink>>,
}

impl Bench {
    fn setup(which: Which) -> Self {
        let slot_pages = 2usize.div_ceil(PAGE / X86_64_SLOT_LEN) + 1;
        let region = Region::leak(1, slot_pages);
        let engine: &'static OurEngine =
            Box::leak(Box::new(OurEngine::new(HostServices::new(region))));
        let addr = region.probe_addr(0);
        let def = definition(addr);
        let id = register_probe(engine, &def).expect("register the event's probe");
        let event = match which {
            Which::Bare => {
                let att: &'static Attachment<'static, Empty> =
                    Box::leak(Box::new(Attachment::new(Empty)));
                engine.attach(id, Pin::static_ref(att)).expect("attach");
                None
            }
            Which::Event => {
                let att: &'static Attachment<'static, EventHandler<'static, Sink>> =
                    Box::leak(Box::new(Attachment::new(EventHandler::new(0, def, &SINK))));
                engine.attach(id, Pin::static_ref(att)).expect("attach");
                Some(att.handler())
            }
        };
        Self {
            engine,
            addr,
            event,
        }
    }

    /// `hits` hits on the probe, `%di %si %dx` as an `open` would have them.
    fn run(&self, hits: usize) {
        let mut regs = PtRegs {
            eflags: 0x202,
            rsp: 0x7fff_0000,
            cs: 0x10,
            ss: 0x18,
            rdi: (-100i64) as u64, // AT_FDCWD
            rsi: 0x8000,           // O_LARGEFILE
            rdx: PATH.as_ptr() as u64,
            ..PtRegs::zeroed()
        };
        let before = self.event.map_or(0, |e| e.hits());
        for _ in 0..hits {
            ours::hit(self.engine, black_box(&mut regs), self.addr);
        }
        if let Some(e) = self.event {
            assert_eq!(e.hits() - before, hits as u64, "every hit wrote a record");
        }
    }
}

/// The callgrind child: set up, hit `hits` times.
fn child(args: &[String]) {
    let usage = "usage: events --hits <bare|event> <hits>";
    let which = match args.first().map(String::as_str) {
        Some("bare") => Which::Bare,
        Some("event") => Which::Event,
        _ => panic!("{usage}"),
    };
    let hits: usize = args.get(1).and_then(|s| s.parse().ok()).expect(usage);
    Bench::setup(which).run(hits);
}

/// Instructions per hit: (N hits − 0 hits) / N.
fn instructions_per_hit(which: Which) -> Result<f64, String> {
    let total = |hits: usize| callgrind_total(&["--hits", which.arg(), &hits.to_string()]);
    let zero = total(0)?;
    let n = total(CALLGRIND_HITS)?;
    Ok(n.saturating_sub(zero) as f64 / CALLGRIND_HITS as f64)
}

/// The newest record in CPU 0's ring, checked against what was fetched.
fn sample_record() -> Vec<u64> {
    let mut out = [0u64; RECORD_WORDS];
    let mut last = None;
    while let Some(n) = RING.read(0, &mut out) {
        last = Some(out[..n].to_vec());
    }
    let words = last.expect("the event wrote records");
    let rec = Record::decode(&words).expect("a record decodes");
    let path = &PATH[..PATH.iter().position(|&b| b == 0).unwrap()];
    assert_eq!(
        rec.values.as_slice(),
        [
            Value::Int((-100i64) as u64),
            Value::Int(0x8000),
            Value::Str(path.iter().copied().collect()),
        ],
    );
    assert_eq!(rec.comm, Some(COMM));
    words
}

/// Records per second `threads` writers put into their own rings, `record`
/// each time: the median of [`RING_ROUNDS`] rounds.
fn ring_throughput(threads: usize, record: &[u64]) -> f64 {
    let mut samples = Vec::with_capacity(RING_ROUNDS);
    for _ in 0..RING_ROUNDS {
        let start = Barrier::new(threads + 1);
        let t = std::thread::scope(|s| {
            for cpu in 0..threads {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    for _ in 0..RING_RECORDS {
                        assert!(RING.write(cpu, black_box(record)));
                    }
                });
            }
            start.wait();
            Instant::now()
        });
        let secs = t.elapsed().as_secs_f64();
        samples.push((threads * RING_RECORDS) as f64 / secs);
    }
    median(&mut samples)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--hits") {
        child(&args[at + 1..]);
        return;
    }

    println!("probe event cost per hit on x86_64, synthetic trap frames (breakpoint + step-end trap, one probe)");
    println!(
        "machine: {}, {} CPUs",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let configs = [Which::Bare, Which::Event];
    let benches: Vec<Bench> = configs.iter().map(|&w| Bench::setup(w)).collect();
    for b in &benches {
        b.run(BATCH / 4); // warm up
    }
    let ns = interleaved_ns(configs.len(), ROUNDS, BATCH, |i, n| benches[i].run(n));
    let record = sample_record();

    let mut failed = None;
    let instr: Vec<Option<f64>> = configs
        .iter()
        .map(|&w| match instructions_per_hit(w) {
            Ok(v) => Some(v),
            Err(e) => {
                failed.get_or_insert(e);
                None
            }
        })
        .collect();

    let show = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.1}"));
    println!();
    println!("  {:<36} {:>10} {:>8}", "probe", "instr/hit", "ns/hit");
    for (i, w) in configs.iter().enumerate() {
        println!("  {:<36} {:>10} {:>8.1}", w.label(), show(instr[i]), ns[i]);
    }
    let instr_ratio = match (instr[0], instr[1]) {
        (Some(b), Some(e)) => format!("{:.2} (the event itself: {:.0} instructions)", e / b, e - b),
        _ => "n/a".into(),
    };
    println!(
        "  ratio event/bare: instructions {instr_ratio}, ns {:.2}",
        ns[1] / ns[0]
    );
    println!(
        "  (callgrind: instructions for {CALLGRIND_HITS} hits minus for 0 hits; ns: median of {ROUNDS} interleaved batches of {BATCH} hits)"
    );

    println!();
    println!(
        "ring buffer write throughput: the event's record ({} words), overwrite mode, {RING_SLOTS} slots, one ring per writer thread",
        record.len()
    );
    let one = ring_throughput(1, &record);
    let two = ring_throughput(2, &record);
    println!("  1 thread : {:>7.1} M records/s", one / 1e6);
    println!(
        "  2 threads: {:>7.1} M records/s in all ({:.1} per thread), ratio 2/1 {:.2}",
        two / 1e6,
        two / 2e6,
        two / one
    );
    println!(
        "  (median of {RING_ROUNDS} rounds of {RING_RECORDS} records per thread, from a barrier to the last thread's end)"
    );
    if let Some(e) = failed {
        eprintln!("callgrind: {e}");
        std::process::exit(1);
    }
}
