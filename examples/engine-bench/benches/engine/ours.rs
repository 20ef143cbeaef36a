//! Our engine (probe-core with the probe-hal-x86_64 backend) on the host: kernel
//! services over a [`Region`], driven with synthetic `PtRegs` frames.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use probe_core::{
    ExecMode, KernelServices, Kprobe, PreAction, ProbeContext, ProbeId, ProbeSpec, Space, Symbol,
    TaskState, TextPatchError, TrapOutcome,
};
use probe_hal::{MemoryFault, Registers};
use probe_hal_x86_64::{PtRegs, X86_64};

use crate::counters;
use crate::region::{Region, INSN_LEN, PAGE};

/// Capacities of the measured engine (and of the one whose size is shown).
pub const PROBES: usize = 1024;
/// Return-probe instances.
pub const INSTANCES: usize = 256;
/// CPUs.
pub const CPUS: usize = 4;
/// Slot pages held at once.
pub const PAGES: usize = 64;
/// Bytes of per-instance data of a return probe.
pub const DATA: usize = 64;

/// The engine as a kernel would configure it for 1,024 probes.
pub type OurEngine =
    probe_core::Engine<X86_64, spin::Mutex<()>, HostServices, PROBES, INSTANCES, CPUS, PAGES, DATA>;

/// Reach of a `rel32` (slots must be this close to the probed code).
const REACH: usize = 1 << 31;

/// The single task of the synthetic kernel.
static TASK: TaskState<X86_64> = TaskState::new();

/// Kernel services of the synthetic kernel: one CPU, one task, text and slot
/// pages in one [`Region`], nothing to wait for.
pub struct HostServices {
    region: Region,
    /// Next spare page of the region to hand out as a slot page.
    next_page: AtomicUsize,
    /// The one function the code forms, when the boundary walk is measured.
    function: Option<Symbol>,
}

impl HostServices {
    /// Services over `region`, its spare pages handed out as slot pages.
    pub fn new(region: Region) -> Self {
        Self {
            region,
            next_page: AtomicUsize::new(0),
            function: None,
        }
    }
}

impl KernelServices<X86_64> for HostServices {
    fn cpu_id(&self) -> usize {
        0
    }

    fn with_current_task<R>(&self, f: impl FnOnce(&TaskState<X86_64>) -> R) -> Option<R> {
        Some(f(&TASK))
    }

    fn current_space(&self) -> usize {
        0
    }

    fn read(&self, _space: Space, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        READS.fetch_add(1, Ordering::Relaxed);
        self.region
            .read(addr, buf)
            .then_some(())
            .ok_or(MemoryFault { addr })
    }

    fn write_data(&self, _space: Space, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
        self.region
            .write(addr, data)
            .then_some(())
            .ok_or(MemoryFault { addr })
    }

    fn write_text(&self, _space: Space, addr: usize, bytes: &[u8]) -> Result<(), TextPatchError> {
        self.region
            .write(addr, bytes)
            .then_some(())
            .ok_or(TextPatchError)
    }

    fn sync_icache(&self, _space: Space, _addr: usize, _len: usize) {}

    fn alloc_slot_page(&self, _space: Space, near: usize) -> Option<usize> {
        let r = &self.region;
        let page = r.base + r.text_len + self.next_page.load(Ordering::Relaxed) * PAGE;
        if page + PAGE > r.base + r.len {
            return None;
        }
        self.next_page.fetch_add(1, Ordering::Relaxed);
        assert!(
            page.abs_diff(near) < REACH - PAGE,
            "slot page {page:#x} out of rel32 reach of {near:#x}"
        );
        Some(page)
    }

    fn free_slot_page(&self, _space: Space, _page: usize) {}

    fn synchronize(&self) {}

    fn symbol_containing(&self, _space: Space, addr: usize) -> Option<Symbol> {
        self.function
            .filter(|f| addr >= f.addr && addr < f.addr + f.size)
    }
}

fn pre(_: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    counters::pre();
    PreAction::Continue
}

fn post(_: &ProbeContext, _: &mut dyn Registers) {
    counters::post();
}

/// Our engine with `probes` probes registered, each with a pre- and a
/// post-handler (so no probe is boosted: every hit takes two traps).
pub struct Bench {
    engine: &'static OurEngine,
    region: Region,
    probes: usize,
}

impl Bench {
    /// Register `probes` probes on consecutive instructions of a new region.
    pub fn setup(probes: usize) -> Self {
        assert!((1..=PROBES).contains(&probes));
        // Two slots (step and boost) per probe, 128 slots per page.
        let slot_pages = (2 * probes).div_ceil(PAGE / X86_64_SLOT_LEN) + 1;
        let region = Region::leak(probes, slot_pages);
        let engine: &'static OurEngine =
            Box::leak(Box::new(OurEngine::new(HostServices::new(region))));
        for i in 0..probes {
            engine
                .register_kprobe(&Kprobe::at(region.probe_addr(i)).pre(pre).post(post))
                .expect("register a probe on mov rax, rbx");
        }
        Self {
            engine,
            region,
            probes,
        }
    }

    /// `hits` hits spread round-robin over the probes.
    pub fn run(&self, hits: usize) {
        let mut regs = PtRegs {
            eflags: 0x202, // IF set, as in a kernel with interrupts on
            rsp: 0x7fff_0000,
            cs: 0x10,
            ss: 0x18,
            ..PtRegs::zeroed()
        };
        let mut i = 0;
        for _ in 0..hits {
            hit(self.engine, black_box(&mut regs), self.region.probe_addr(i));
            i += 1;
            if i == self.probes {
                i = 0;
            }
        }
    }
}

/// `SLOT_LEN` of the backend.
pub const X86_64_SLOT_LEN: usize = <X86_64 as probe_hal::Arch>::SLOT_LEN;

/// One hit of the probe at `addr`: the `int3` there traps (rip = addr + 1),
/// the engine sends rip into the slot; the copy "runs" and the `int3` after
/// it traps (rip = slot + len + 1); the engine sends rip back after the
/// original instruction.
#[inline(never)]
pub fn hit(engine: &OurEngine, regs: &mut PtRegs, addr: usize) {
    regs.rip = (addr + 1) as u64;
    // SAFETY: one simulated CPU, traps taken one at a time.
    let first = unsafe { engine.handle_breakpoint(regs, ExecMode::Kernel) };
    regs.rip += INSN_LEN as u64 + 1;
    // SAFETY: as above.
    let second = unsafe { engine.handle_breakpoint(regs, ExecMode::Kernel) };
    assert!(
        first == TrapOutcome::Handled
            && second == TrapOutcome::Handled
            && regs.rip == (addr + INSN_LEN) as u64,
        "hit at {addr:#x} did not end after the instruction"
    );
}

/// Instructions in the function whose registration cost is measured: as
/// many as glibc's `__vfscanf_internal` has (7,415 in 35 KB).
pub const REG_INSNS: usize = 7_415;

/// An engine large enough for a probe on every one of them.
type RegEngine = probe_core::Engine<X86_64, spin::Mutex<()>, HostServices, 8192, 16, 1, 64, 8>;

/// What registering probes in one long function costs.
pub struct RegistrationCost {
    /// Bytes of the function.
    pub function_len: usize,
    /// One probe on its last instruction (the boundary walk covers it all).
    pub one: std::time::Duration,
    /// Service reads that one registration made.
    pub one_reads: usize,
    /// A batch with a probe on every instruction, in address order.
    pub batch: std::time::Duration,
    /// Probes in that batch.
    pub batch_probes: usize,
}

/// Measure [`RegistrationCost`] (on a thread with room for the engine).
pub fn registration_cost() -> RegistrationCost {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(measure_registration)
        .expect("spawn")
        .join()
        .expect("registration measurement")
}

fn measure_registration() -> RegistrationCost {
    let slot_pages = REG_INSNS.div_ceil(PAGE / X86_64_SLOT_LEN) + 2;
    let region = Region::leak(REG_INSNS, slot_pages);
    let function_len = REG_INSNS * INSN_LEN;
    let services = HostServices {
        region,
        next_page: AtomicUsize::new(0),
        function: Some(Symbol {
            addr: region.base,
            size: function_len,
        }),
    };
    let engine: &'static RegEngine = Box::leak(Box::new(RegEngine::new(services)));
    let last = region.probe_addr(REG_INSNS - 1);
    let reads = READS.load(Ordering::Relaxed);
    let t = std::time::Instant::now();
    let id = engine
        .register_kprobe(&Kprobe::at(last).pre(pre))
        .expect("a probe on the last instruction");
    let one = t.elapsed();
    let one_reads = READS.load(Ordering::Relaxed) - reads;
    engine.unregister(id).expect("unregister");
    let specs: Vec<ProbeSpec<'_>> = (0..REG_INSNS)
        .map(|i| ProbeSpec::Kprobe(Kprobe::at(region.probe_addr(i)).pre(pre)))
        .collect();
    let mut ids = vec![ProbeId::NONE; REG_INSNS];
    let t = std::time::Instant::now();
    engine
        .register_batch(&specs, &mut ids)
        .expect("a probe on every instruction");
    let batch = t.elapsed();
    RegistrationCost {
        function_len,
        one,
        one_reads,
        batch,
        batch_probes: REG_INSNS,
    }
}

/// Service reads (the registration cost counts them).
static READS: AtomicUsize = AtomicUsize::new(0);
