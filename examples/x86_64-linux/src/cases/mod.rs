//! The checks, one printed line each, grouped by what they prove:
//! - [`insn`]: every instruction class user mode can execute, probed at
//!   several offsets, with and without a post-handler;
//! - [`refusals`]: every refused instruction class, with its reason;
//! - [`sweep`]: offsets 0..=63 of a function, each refused or correct;
//! - [`kretprobes`]: return probes on real returns, recursion included;
//! - [`management`]: aggregate probes, enable/disable, unregister, batch,
//!   symbols and registration errors;
//! - [`traps`]: faults in a slot, re-entry from a handler, trap counts of
//!   boosted and stepped probes;
//! - [`kernel`]: the harness plays the kernel faithfully (signals masked
//!   in the trap path and during steps, threads adopted, the trap path and
//!   the glibc code it runs refused as probe targets);
//! - [`concurrency`]: threads hitting probes while another thread
//!   registers and unregisters others.

pub(crate) mod concurrency;
mod insn;
mod kernel;
pub(crate) mod kretprobes;
mod management;
mod memory_calls;
mod optimized;
mod refusals;
mod sweep;
mod traps;
mod vex;

use probe_core::{Arch, ExecMode, KernelServices, Kprobe, ProbeError, ProbeId, Space};
use probe_hal::Decoded;
use probe_hal_x86_64::{Insn, X86_64};
use x86_64_linux::call::{call, Call};
use x86_64_linux::recorder::{post_record, pre_record, Recorder};
use x86_64_linux::report::Report;
use x86_64_linux::testfns;
use x86_64_linux::{ensure, ensure_eq};

use crate::{services, ENGINE};

/// What a check returns: a note to print, or why it failed.
pub(crate) type CheckResult = Result<String, String>;

/// Probes a check registered; unregistered together when dropped, so a
/// failing check leaves nothing armed behind.
#[derive(Default)]
pub(crate) struct Probes(pub(crate) Vec<ProbeId>);

impl Probes {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Keep `r`'s id, or turn its error into a check failure.
    pub(crate) fn add(
        &mut self,
        what: &str,
        r: Result<ProbeId, ProbeError>,
    ) -> Result<ProbeId, String> {
        match r {
            Ok(id) => {
                self.0.push(id);
                Ok(id)
            }
            Err(e) => Err(format!("registering {what}: {e}")),
        }
    }

    /// Unregister now (with one grace period), reporting errors.
    pub(crate) fn clear(&mut self) -> Result<(), String> {
        let ids = std::mem::take(&mut self.0);
        ENGINE
            .unregister_batch(&ids)
            .map_err(|e| format!("unregister: {e}"))
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = ENGINE.unregister_batch(&self.0);
        }
    }
}

/// A kprobe at `addr` recording into `rec`, with a post-handler if `post`.
pub(crate) fn kprobe(addr: usize, rec: &'static Recorder, post: bool) -> Kprobe<'static> {
    let k = Kprobe::at(addr).pre(pre_record).data(rec);
    if post {
        k.post(post_record)
    } else {
        k
    }
}

/// Call test function `name`.
pub(crate) fn call_fn(name: &str, a: u64, b: u64, c: u64) -> Call {
    let f = testfns::func(name).start;
    // SAFETY: every function in the test table follows the System V ABI
    // and takes at most three integer arguments; the cases only call the
    // ones meant to be called, with arguments they accept.
    unsafe { call(f, a, b, c) }
}

/// Read `len` bytes of this process's memory (through the services, so
/// an unmapped address is an error).
pub(crate) fn peek(addr: usize, len: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len];
    services::Services
        .read(Space::Kernel, addr, &mut buf)
        .map_err(|f| format!("reading {:#x}: fault at {:#x}", addr, f.addr))?;
    Ok(buf)
}

/// The backend's decision for the instruction at `addr`, as the engine
/// will see it (kernel mode: the harness plays the kernel).
pub(crate) fn decode(addr: usize) -> Result<Decoded<Insn>, String> {
    let bytes = peek(addr, 15)?;
    X86_64::decode(addr, &bytes, ExecMode::Kernel).map_err(|e| e.to_string())
}

/// Run every check and print the closing line; true when all passed.
pub fn run_all(sync_core: bool) -> bool {
    let mut r = Report::new();
    println!(
        "x86_64-linux: probing this process's own code with real int3 traps \
         (membarrier SYNC_CORE: {})",
        if sync_core { "yes" } else { "no" }
    );
    // The breakpoint cases first, with jump optimisation off (they count
    // traps); `optimized` switches it on for its own checks.
    if let Err(e) = ENGINE.set_optimization(false) {
        println!("x86_64-linux: switching optimisation off: {e}");
    }
    if std::env::var_os("X86_64_LINUX_ONLY_OPTIMIZED").is_some() {
        optimized::run(&mut r);
        return r.finish();
    }
    insn::run(&mut r);
    refusals::run(&mut r);
    sweep::run(&mut r);
    kretprobes::run(&mut r);
    management::run(&mut r);
    memory_calls::run(&mut r);
    vex::run(&mut r);
    traps::run(&mut r);
    kernel::run(&mut r);
    concurrency::run(&mut r);
    optimized::run(&mut r);
    r.check("nothing left behind: no probe registered, no slot page held", || {
        let left = ENGINE.list::<8>();
        ensure!(left.is_empty(), "{} probes still registered", left.len());
        ensure_eq!(ENGINE.slot_usage(), (0, 0), "engine slots and pages");
        ensure_eq!(services::slot_pages_held(), 0, "pages mapped by the services");
        ensure_eq!(ENGINE.detours_in_use(), 0, "detours in use");
        ensure_eq!(services::detour_pages_held(), 0, "detour pages mapped by the services");
        let (writes, syncs, graces, pages) = services::counters();
        ensure!(syncs >= writes, "{writes} text writes but {syncs} icache syncs");
        Ok(format!(
            "{writes} text writes, {syncs} icache syncs, {graces} grace periods, {pages} slot pages mapped in all"
        ))
    });
    if !r.failed().is_empty() {
        println!("failed: {}", r.failed().join(", "));
    }
    r.finish()
}
