//! The crate we replace, `kprobe` 0.6, on the host: its auxiliary operations
//! over plain process memory, driven with synthetic frames of its own
//! `PtRegs` through its two trap entry points.
//!
//! On x86_64 it single-steps with the trap flag: its breakpoint handler sets
//! TF and sends rip to the copy of the instruction; the debug trap then
//! reports rip = copy + len, and its debug handler sends rip back after the
//! original instruction.

use std::hint::black_box;

use kprobe::retprobe::RetprobeInstance;
use kprobe::{
    kprobe_handler_from_break, kprobe_handler_from_debug, register_kprobe, KprobeAuxiliaryOps,
    ProbeBuilder, ProbeData, ProbeManager, ProbePointList, PtRegs,
};

use crate::counters;
use crate::region::{Region, INSN_LEN, PAGE};

/// The host's side of the crate: memory copies, "executable" pages from the
/// heap (nothing executes them), no return probes.
#[derive(Debug)]
pub struct HostAux;

impl KprobeAuxiliaryOps for HostAux {
    fn copy_memory(src: *const u8, dst: *mut u8, len: usize, _user_pid: Option<i32>) {
        // SAFETY: the crate copies from a probe address inside our region
        // (at least 16 readable bytes follow every probed instruction) into
        // a page it got from `alloc_kernel_exec_memory`; they never overlap.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
    }

    fn set_writeable_for_address<F: FnOnce(*mut u8)>(
        address: usize,
        _len: usize,
        _user_pid: Option<i32>,
        action: F,
    ) {
        // The region is plain writable heap memory.
        action(address as *mut u8)
    }

    fn alloc_kernel_exec_memory() -> *mut u8 {
        Box::into_raw(Box::new([0u8; PAGE])).cast()
    }

    fn free_kernel_exec_memory(ptr: *mut u8) {
        // SAFETY: `ptr` came from `alloc_kernel_exec_memory`, a leaked
        // `Box<[u8; PAGE]>`, and the crate frees it once.
        drop(unsafe { Box::from_raw(ptr.cast::<[u8; PAGE]>()) });
    }

    fn alloc_user_exec_memory<F: FnOnce(*mut u8)>(_pid: Option<i32>, action: F) -> *mut u8 {
        let page = Self::alloc_kernel_exec_memory();
        action(page);
        page
    }

    fn free_user_exec_memory(_pid: Option<i32>, ptr: *mut u8) {
        Self::free_kernel_exec_memory(ptr)
    }

    fn insert_kretprobe_instance_to_task(_instance: RetprobeInstance) {
        unreachable!("the benchmark registers no return probe")
    }

    fn pop_kretprobe_instance_from_task() -> RetprobeInstance {
        unreachable!("the benchmark registers no return probe")
    }
}

type Manager = ProbeManager<spin::Mutex<()>, HostAux>;

fn pre(_: &dyn ProbeData, _: &mut PtRegs) {
    counters::pre();
}

fn post(_: &dyn ProbeData, _: &mut PtRegs) {
    counters::post();
}

/// The kprobe crate with `probes` probes registered, each with a pre- and a
/// post-handler.
pub struct Bench {
    manager: &'static Manager,
    region: Region,
    probes: usize,
}

impl Bench {
    /// Register `probes` probes on consecutive instructions of a new region.
    pub fn setup(probes: usize) -> Self {
        assert!(probes >= 1);
        let region = Region::leak(probes, 0);
        let manager: &'static Manager = Box::leak(Box::new(Manager::new()));
        // Dropping a point restores the original bytes: keep them all.
        let points: &'static mut ProbePointList<HostAux> = Box::leak(Box::default());
        for i in 0..probes {
            let builder = ProbeBuilder::new()
                .with_symbol_addr(region.probe_addr(i))
                .with_offset(0)
                .with_pre_handler(pre)
                .with_post_handler(post)
                .with_enable(true);
            // The manager keeps its own reference to the probe.
            register_kprobe(manager, points, builder).expect("kprobe 0.6 registers mov rax, rbx");
        }
        Self {
            manager,
            region,
            probes,
        }
    }

    /// `hits` hits spread round-robin over the probes.
    pub fn run(&self, hits: usize) {
        let mut regs = PtRegs {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            rbp: 0,
            rbx: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rax: 0,
            rcx: 0,
            rdx: 0,
            rsi: 0,
            rdi: 0,
            orig_rax: 0,
            rip: 0,
            cs: 0x10,
            rflags: 0x202,
            rsp: 0x7fff_0000,
            ss: 0x18,
        };
        let mut i = 0;
        for _ in 0..hits {
            hit(
                self.manager,
                black_box(&mut regs),
                self.region.probe_addr(i),
            );
            i += 1;
            if i == self.probes {
                i = 0;
            }
        }
    }
}

/// One hit of the probe at `addr`: the `int3` there traps (rip = addr + 1),
/// the crate sends rip to its copy with TF set; the copy "runs" and the
/// debug trap reports the next instruction (rip = copy + len); the crate
/// sends rip back after the original instruction.
#[inline(never)]
fn hit(manager: &Manager, regs: &mut PtRegs, addr: usize) {
    regs.rip = addr + 1;
    let first = kprobe_handler_from_break(manager, regs);
    regs.rip += INSN_LEN;
    let second = kprobe_handler_from_debug(manager, regs);
    assert!(
        first.is_some() && second.is_some() && regs.rip == addr + INSN_LEN,
        "hit at {addr:#x} did not end after the instruction"
    );
}
