//! The kernel-integration snippet of the workspace README, compiled as a
//! doctest here (the README is outside this crate, so it is copied, not
//! included: keep the two the same).

/// ```no_run
/// use probe_core::{Engine, ExecMode, KernelServices, Kprobe, PreAction, ProbeContext, Registers};
/// use probe_core::{FaultOutcome, ProbeError, ProbeId, Space, TaskState, TextPatchError, TrapOutcome};
/// use probe_hal::MemoryFault;
/// use probe_hal_riscv64::Riscv64;
///
/// // The kernel's task, with a `probe_core::TaskState` in it.
/// struct Task {
///     probe_state: TaskState<Riscv64>,
/// }
///
/// // 1. The kernel's services: read/patch text (safe against other CPUs, and
/// //    visible to instruction fetch: flush in `write_text` or implement
/// //    `sync_icache`), executable pages for out-of-line slots, the current CPU
/// //    and task, a grace period (`synchronize`, the one that may block),
/// //    symbol lookup, a blacklist. See docs/integration.md for the contracts.
/// struct Services;
/// impl KernelServices<Riscv64> for Services {
///     fn cpu_id(&self) -> usize { todo!("this CPU's index") }
///     fn with_current_task<R>(&self, f: impl FnOnce(&TaskState<Riscv64>) -> R) -> Option<R> {
///         todo!("current_task().map(|task| f(&task.probe_state))")
///     }
///     fn current_space(&self) -> usize { todo!("the current user address space") }
///     fn read(&self, space: Space, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> { todo!() }
///     fn write_data(&self, space: Space, addr: usize, data: &[u8]) -> Result<(), MemoryFault> { todo!() }
///     fn write_text(&self, space: Space, addr: usize, bytes: &[u8]) -> Result<(), TextPatchError> { todo!() }
///     fn alloc_slot_page(&self, space: Space, near: usize) -> Option<usize> { todo!() }
///     fn free_slot_page(&self, space: Space, page: usize) { todo!() }
///     fn synchronize(&self) { todo!("wait for a grace period") }
/// }
///
/// // 2. One engine, in a static: ISA, registration lock, services, then the
/// //    capacities (probes, return-probe instances, CPUs).
/// static ENGINE: Engine<Riscv64, spin::Mutex<()>, Services, 256, 64, 8> = Engine::new(Services);
///
/// // 3. The trap frame is the CPU crate's type (here a module standing for
/// //    it), so `impl Registers for TrapFrame` would break the orphan rule: a
/// //    local wrapper maps its fields instead, without `unsafe` and without
/// //    copying the registers anywhere.
/// mod cpu {
///     pub struct TrapFrame { pub regs: [usize; 32], pub sepc: usize, pub sstatus: usize }
/// }
/// probe_hal_riscv64::frame_registers! {
///     /// The CPU crate's frame, seen by the probe engine.
///     pub struct Frame<'a>(&'a mut cpu::TrapFrame) { pc: sepc, flags: sstatus, gprs: regs }
/// }
///
/// // 4. The trap handlers hand their frame to the engine first (interrupts
/// //    masked, on the CPU and task the services name: the `# Safety` terms).
/// fn breakpoint_trap(tf: &mut cpu::TrapFrame, from_user: bool) {
///     let mode = if from_user { ExecMode::User } else { ExecMode::Kernel };
///     // SAFETY: a trap handler with interrupts masked, on the current CPU/task.
///     match unsafe { ENGINE.handle_breakpoint(&mut Frame(tf), mode) } {
///         TrapOutcome::Handled => {}
///         TrapOutcome::Fault { addr } => { /* deliver it as the original's fault at addr */ }
///         _ => { /* the kernel's own breakpoint handling */ }
///     }
/// }
/// fn fault_trap(tf: &mut cpu::TrapFrame, mode: ExecMode) {
///     // SAFETY: as above. A fault in a slot: pc goes back to the probe.
///     let _: FaultOutcome = unsafe { ENGINE.handle_fault(&mut Frame(tf), mode) };
///     /* then the kernel's own fault handling (exception tables, signals) */
/// }
/// fn task_exit(task: &Task) {
///     // Safe: the task state has its own lock. (exec: `exec_task`; signals:
///     // `should_defer_signal` / `abort_user_step`, see docs/integration.md)
///     let _ = ENGINE.release_task(&task.probe_state); // Err only from a handler
/// }
///
/// // 5. Probes. An eBPF program reads Linux's riscv64 `pt_regs`:
/// //    `probe_hal_riscv64::with_pt_regs(regs, |pt| ...)` gives it one, and
/// //    `probe_core::native::PtRegsProgram(f)` attaches a closure over it.
/// fn on_hit(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
///     log::info!("{:#x}: first argument {:?}", ctx.addr, regs.arg(0));
///     PreAction::Continue
/// }
/// fn attach() -> Result<ProbeId, ProbeError> {
///     ENGINE.register_kprobe(&Kprobe::symbol("do_sys_open", 0).pre(on_hit))
/// }
/// ```
pub struct ReadmeIntegrationSnippet;
