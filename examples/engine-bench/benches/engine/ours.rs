//! Our engine (probe-core with the hal-x86_64 backend) on the host: kernel
//! services over a [`Region`], driven with synthetic `PtRegs` frames.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use hal_x86_64::{PtRegs, X86_64};
use probe_core::{
    ExecMode, KernelServices, Kprobe, PreAction, ProbeContext, Space, TaskState, TextPatchError,
    TrapOutcome,
};
use probe_hal::{MemoryFault, Registers};

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
}

impl KernelServices<X86_64> for HostServices {
    fn cpu_id(&self) -> usize {
        0
    }

    fn task_state(&self) -> &TaskState<X86_64> {
        &TASK
    }

    fn current_space(&self) -> usize {
        0
    }

    fn read(&self, _space: Space, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
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
        let services = HostServices {
            region,
            next_page: AtomicUsize::new(0),
        };
        let engine: &'static OurEngine = Box::leak(Box::new(OurEngine::new(services)));
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
const X86_64_SLOT_LEN: usize = <X86_64 as probe_hal::Arch>::SLOT_LEN;

/// One hit of the probe at `addr`: the `int3` there traps (rip = addr + 1),
/// the engine sends rip into the slot; the copy "runs" and the `int3` after
/// it traps (rip = slot + len + 1); the engine sends rip back after the
/// original instruction.
#[inline(never)]
fn hit(engine: &OurEngine, regs: &mut PtRegs, addr: usize) {
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
