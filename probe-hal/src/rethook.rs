//! The call-back from a backend's return trampoline into the engine.
//!
//! A backend's kernel-mode trampoline saves the registers into a frame that
//! implements [`Registers`], calls [`dispatch_return`], and resumes at the
//! address it returns. The engine installs itself with [`set_return_hook`]
//! once at start-up. The hook is read without a lock on the trap path.

pub use crate::hook_cell::HookAlreadySet;
use crate::hook_cell::HookCell;
use crate::Registers;

/// What a return trampoline calls back into (implemented by the engine).
pub trait ReturnHook: Sync {
    /// A probed function returned into the trampoline with `regs`; run the
    /// return handlers and give the real return address. Implementations
    /// also set `regs`'s pc to it.
    ///
    /// # Safety
    /// Called by a return trampoline on behalf of the current task, with
    /// interrupts masked for the whole call (return handlers run like
    /// trap handlers), and `regs` the frame the trampoline saved.
    unsafe fn on_return(&self, regs: &mut dyn Registers) -> usize;

    /// The engine this hook dispatches to, as its address: the engine
    /// refuses kernel-mode return probes unless the installed hook reaches
    /// it ([`crate::ProbeErrorKind::ReturnHookMissing`]). The default, the
    /// hook's own address, is right when the engine itself is the hook; a
    /// wrapper that forwards to an engine returns that engine's address.
    fn engine(&self) -> *const () {
        self as *const Self as *const ()
    }
}

static HOOK: HookCell<dyn ReturnHook> = HookCell::new();

/// Install the engine that return trampolines call back into. Once per boot.
pub fn set_return_hook(hook: &'static dyn ReturnHook) -> Result<(), HookAlreadySet> {
    HOOK.set(hook)
}

/// The installed hook, if any.
#[link_section = "probe_trap_text"]
pub fn return_hook() -> Option<&'static dyn ReturnHook> {
    HOOK.get()
}

/// Called by a backend's return trampoline: runs the engine's return
/// handling and gives the address to resume at.
///
/// # Safety
/// As for [`ReturnHook::on_return`]: the trampoline masked interrupts and
/// runs on behalf of the current task.
///
/// # Panics
/// If no hook was installed: a trampoline can only be reached after the
/// engine hijacked a return, which it does only once installed.
#[link_section = "probe_trap_text"]
pub unsafe fn dispatch_return(regs: &mut dyn Registers) -> usize {
    match return_hook() {
        // SAFETY: the caller's promise, passed on.
        Some(h) => unsafe { h.on_return(regs) },
        None => panic!("return trampoline reached with no return hook installed"),
    }
}
