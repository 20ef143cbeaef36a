//! Functions the trap path runs are refused as probe targets: the engine's
//! own entry points and helpers, the backend's trap-path functions, the
//! return trampoline and dispatch, and the `Registers` methods of the
//! backend's frame. They all live in the `probe_trap_text` section, whose
//! range the engine refuses (`cargo xtask test` runs this in debug and in
//! release; its `trap-path` step also disassembles that section and fails
//! on any call that leaves it, except the documented list).

use probe_core::{
    ExecMode, KernelServices, Kprobe, ProbeErrorKind, Space, TaskState, TextPatchError, TrapOutcome,
};
use probe_hal::{Arch, DataAccess, Decoded, MemoryFault, Registers};
use probe_hal_x86_64::{PtRegs, X86_64};

struct NoKernel;
static TASK: TaskState<X86_64> = TaskState::new();

impl KernelServices<X86_64> for NoKernel {
    fn cpu_id(&self) -> usize {
        0
    }
    fn with_current_task<R>(&self, f: impl FnOnce(&TaskState<X86_64>) -> R) -> Option<R> {
        Some(f(&TASK))
    }
    fn current_space(&self) -> usize {
        0
    }
    fn read(&self, _: Space, addr: usize, _: &mut [u8]) -> Result<(), MemoryFault> {
        Err(MemoryFault { addr })
    }
    fn write_data(&self, _: Space, addr: usize, _: &[u8]) -> Result<(), MemoryFault> {
        Err(MemoryFault { addr })
    }
    fn write_text(&self, _: Space, _: usize, _: &[u8]) -> Result<(), TextPatchError> {
        Err(TextPatchError)
    }
    fn sync_icache(&self, _: Space, _: usize, _: usize) {}
    fn alloc_slot_page(&self, _: Space, _: usize) -> Option<usize> {
        None
    }
    fn free_slot_page(&self, _: Space, _: usize) {}
    fn synchronize(&self) {}
}

type E = probe_core::Engine<X86_64, spin::Mutex<()>, NoKernel, 8, 4, 1>;
type Insn = <X86_64 as Arch>::Insn;
type Step = <X86_64 as Arch>::StepState;
type Simulate = fn(&Decoded<Insn>, usize, &mut PtRegs, &dyn DataAccess) -> Result<(), MemoryFault>;
type Finish =
    fn(&Decoded<Insn>, &mut PtRegs, usize, usize, Step, &dyn DataAccess) -> Result<(), MemoryFault>;

#[inline(never)]
fn ordinary_function(x: usize) -> usize {
    x.wrapping_mul(3) + 1
}

fn refused(engine: &E, name: &str, addr: usize) {
    let e = engine.register_kprobe(&Kprobe::at(addr)).expect_err(name);
    assert_eq!(
        e.kind(),
        ProbeErrorKind::Blacklisted,
        "{name} at {addr:#x}: {e}"
    );
}

#[test]
fn trap_path_functions_are_blacklisted() {
    let engine = E::new(NoKernel);
    let simulate: Simulate = <X86_64 as Arch>::simulate::<PtRegs>;
    let finish: Finish = <X86_64 as Arch>::finish_step::<PtRegs>;
    let prepare: fn(&Decoded<Insn>, &mut PtRegs, usize, bool) -> Step =
        <X86_64 as Arch>::prepare_step::<PtRegs>;
    let abort: fn(&Decoded<Insn>, &mut PtRegs, usize, Step) =
        <X86_64 as Arch>::abort_step::<PtRegs>;
    let hijack: fn(&mut PtRegs, &dyn DataAccess, usize) -> Result<usize, MemoryFault> =
        <X86_64 as Arch>::hijack_return::<PtRegs>;
    let trap_address: fn(usize) -> usize = <X86_64 as Arch>::trap_address;
    let breakpoint: fn(usize, ExecMode) -> probe_hal::Breakpoint = <X86_64 as Arch>::breakpoint;
    let set_pc: fn(&mut PtRegs, usize) = <PtRegs as Registers>::set_pc;
    let dispatch: unsafe fn(&mut dyn Registers) -> usize = probe_hal::rethook::dispatch_return;
    let handle: unsafe fn(&E, &mut PtRegs, ExecMode) -> TrapOutcome =
        E::handle_breakpoint::<PtRegs>;
    let fault: unsafe fn(&E, &mut PtRegs, ExecMode) -> probe_core::FaultOutcome =
        E::handle_fault::<PtRegs>;
    for (name, addr) in [
        ("X86_64::simulate", simulate as usize),
        ("X86_64::finish_step", finish as usize),
        ("X86_64::prepare_step", prepare as usize),
        ("X86_64::abort_step", abort as usize),
        ("X86_64::hijack_return", hijack as usize),
        ("X86_64::trap_address", trap_address as usize),
        ("X86_64::breakpoint", breakpoint as usize),
        ("PtRegs::set_pc", set_pc as usize),
        ("dispatch_return", dispatch as usize),
        ("Engine::handle_breakpoint", handle as usize),
        ("Engine::handle_fault", fault as usize),
    ] {
        refused(&engine, name, addr);
    }
    // Inside the return trampoline, not only at its start.
    let tramp = probe_hal_x86_64::trampoline_address().expect("built on x86_64 ELF hosts");
    refused(&engine, "return trampoline", tramp);
    refused(&engine, "inside the return trampoline", tramp + 4);
    // Control: an ordinary function is not refused as blacklisted (here
    // the kernel cannot read it, so the error is another one).
    let f: fn(usize) -> usize = ordinary_function;
    let e = engine.register_kprobe(&Kprobe::at(f as usize)).unwrap_err();
    assert_ne!(e.kind(), ProbeErrorKind::Blacklisted);
    assert_eq!(ordinary_function(1), 4);
}
