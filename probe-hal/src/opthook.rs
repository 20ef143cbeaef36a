//! The call-back from a backend's detour (a jump-optimised probe) into the
//! engine.
//!
//! A backend's detour (see [`crate::optimize`]) saves the registers into a
//! frame that implements [`Registers`], calls [`dispatch_optimized`] with
//! the cookie the engine gave [`crate::Arch::build_detour`], restores the
//! registers from the frame and then either runs the displaced instructions
//! and jumps back after the region, or, when the call returned true,
//! resumes at the frame's pc. The engine installs itself with
//! [`set_opt_hook`] once at start-up; the hook is read without a lock on the
//! probe path. The publication is the same once-only protocol as
//! [`crate::rethook`].

use crate::Registers;

pub use crate::hook_cell::HookAlreadySet;
use crate::hook_cell::HookCell;

/// What a detour calls back into (implemented by the engine).
pub trait OptHook: Sync {
    /// The jump-optimised probe identified by `cookie` (the value the engine
    /// passed to [`crate::Arch::build_detour`]) was hit; `regs` is the frame
    /// the detour saved, whose pc reads the probe address. Run the probe's
    /// handlers. Return true when a handler changed the pc and execution
    /// must resume at `regs.pc()` instead of running the displaced
    /// instructions; false to run them and continue after the region (the
    /// frame's pc and stack pointer are then not read back). Other register
    /// changes take effect either way.
    ///
    /// # Safety
    /// Called by a detour on behalf of the current task or context: in
    /// kernel mode with interrupts masked for the whole call when the detour
    /// was built with `mask_interrupts` (handlers then run like trap
    /// handlers), and `regs` the frame the detour saved on its own stack,
    /// valid only for this call.
    unsafe fn on_optimized_hit(&self, cookie: usize, regs: &mut dyn Registers) -> bool;

    /// The engine this hook dispatches to, as its address. The default, the
    /// hook's own address, is right when the engine itself is the hook; a
    /// wrapper that forwards to an engine returns that engine's address.
    fn engine(&self) -> *const () {
        self as *const Self as *const ()
    }
}

static HOOK: HookCell<dyn OptHook> = HookCell::new();

/// Install the engine that detours call back into. Once per boot; a second
/// call fails with [`HookAlreadySet`].
pub fn set_opt_hook(hook: &'static dyn OptHook) -> Result<(), HookAlreadySet> {
    HOOK.set(hook)
}

/// The installed hook, if any.
#[inline]
#[link_section = "probe_trap_text"]
pub fn installed_opt_hook() -> Option<&'static dyn OptHook> {
    HOOK.get()
}

/// Called by a backend's detour entry: runs the engine's handling of the
/// optimised probe `cookie` on `regs`. Returns true when execution must
/// resume at `regs.pc()`, false to run the displaced instructions. With no
/// hook installed it returns false: the detour then behaves as the original
/// code.
///
/// # Safety
/// As for [`OptHook::on_optimized_hit`]: called from a detour, on behalf of
/// the current context, with interrupts masked in kernel mode when the detour
/// masks them, and `regs` the detour's saved frame with pc = the probe
/// address.
#[inline]
#[link_section = "probe_trap_text"]
pub unsafe fn dispatch_optimized(cookie: usize, regs: &mut dyn Registers) -> bool {
    match installed_opt_hook() {
        // SAFETY: the caller's promise, passed on.
        Some(h) => unsafe { h.on_optimized_hit(cookie, regs) },
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallAbi;
    use core::sync::atomic::{AtomicUsize, Ordering};

    static ABI: CallAbi = CallAbi {
        args: &[0],
        ret: [0, 1],
    };

    struct Regs {
        pc: usize,
    }
    impl Registers for Regs {
        fn pc(&self) -> usize {
            self.pc
        }
        fn set_pc(&mut self, pc: usize) {
            self.pc = pc;
        }
        fn sp(&self) -> usize {
            0
        }
        fn set_sp(&mut self, _: usize) {}
        fn gpr(&self, _: usize) -> usize {
            0
        }
        fn set_gpr(&mut self, _: usize, _: usize) {}
        fn flags(&self) -> usize {
            0
        }
        fn set_flags(&mut self, _: usize) {}
        fn call_abi(&self) -> &'static CallAbi {
            &ABI
        }
    }

    static SEEN: AtomicUsize = AtomicUsize::new(0);
    struct Hook;
    impl OptHook for Hook {
        unsafe fn on_optimized_hit(&self, cookie: usize, regs: &mut dyn Registers) -> bool {
            SEEN.store(cookie ^ regs.pc(), Ordering::SeqCst);
            if cookie == 2 {
                regs.set_pc(0x5000);
                return true;
            }
            false
        }
    }
    static HOOK_A: Hook = Hook;
    static HOOK_B: Hook = Hook;

    /// One test, because the hook is once per process.
    #[test]
    fn no_hook_runs_the_region_then_the_hook_is_installed_once() {
        let mut r = Regs { pc: 0x1000 };
        assert!(installed_opt_hook().is_none());
        // SAFETY: a test frame; nothing runs on behalf of any task.
        assert!(!unsafe { dispatch_optimized(7, &mut r) });
        set_opt_hook(&HOOK_A).unwrap();
        assert_eq!(set_opt_hook(&HOOK_B), Err(HookAlreadySet));
        let h = installed_opt_hook().unwrap();
        assert_eq!(h.engine(), &HOOK_A as *const Hook as *const ());
        // SAFETY: as above.
        assert!(!unsafe { dispatch_optimized(1, &mut r) });
        assert_eq!(SEEN.load(Ordering::SeqCst), 0x1001);
        // SAFETY: as above.
        assert!(unsafe { dispatch_optimized(2, &mut r) });
        assert_eq!(r.pc, 0x5000);
    }
}
