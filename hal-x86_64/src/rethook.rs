//! Return probes: redirecting a function's return, matching its frame, and
//! the code trampoline the redirected return lands on.
//!
//! At the entry of a probed function `[rsp]` is the return address. The
//! engine swaps it for the trampoline; the function's `ret` then lands on the
//! trampoline with `rsp` 8 bytes higher than at entry, so the frame identity
//! is the entry `rsp`, recovered at return as `rsp - 8`.
//!
//! The trampoline ([`trampoline_address`]) is plain code reached by that
//! `ret`: it saves every general register and the flags into a [`PtRegs`]
//! on the stack (`rsp` = its value on arrival), calls
//! [`probe_hal::rethook::dispatch_return`] through an `extern "C"` function,
//! writes the address it returns into the stack slot its final `ret` uses,
//! restores the registers (so a return handler's changes to them take
//! effect) and returns to the real caller. It runs in whatever privilege it
//! is reached in, so it serves kernel return probes and, in a process that
//! probes its own code, user-space ones. Built with SSE (user space), it
//! also keeps `xmm0`/`xmm1`, the floating-point return registers, from the
//! handlers' code; built without (a kernel target), there is nothing to
//! keep. Linux's counterpart is `arch_rethook_trampoline`
//! (arch/x86/kernel/rethook.c).

use probe_hal::{DataAccess, MemoryFault, Registers};

#[cfg(doc)]
use crate::regs::PtRegs;

/// Swap the return address at `[rsp]` (function entry) for `trampoline`;
/// returns the real one.
pub(crate) fn hijack<R: Registers + ?Sized>(
    regs: &mut R,
    mem: &dyn DataAccess,
    trampoline: usize,
) -> Result<usize, MemoryFault> {
    let sp = regs.sp();
    let real = mem.read_word(sp)?;
    mem.write_word(sp, trampoline)?;
    Ok(real)
}

/// The frame identity at function entry: `rsp`, pointing at the return address.
pub(crate) fn entry_frame<R: Registers + ?Sized>(regs: &R) -> usize {
    regs.sp()
}

/// The frame identity on arrival at the trampoline: the `ret` popped 8 bytes.
pub(crate) fn return_frame<R: Registers + ?Sized>(regs: &R) -> usize {
    regs.sp().wrapping_sub(8)
}

#[cfg(all(
    target_arch = "x86_64",
    not(target_os = "windows"),
    not(target_vendor = "apple")
))]
mod trampoline {
    use crate::regs::PtRegs;

    /// Called by the trampoline with the frame it built.
    #[link_section = "probe_trap_text"]
    extern "C" fn return_handler(frame: *mut PtRegs) -> usize {
        // SAFETY: the trampoline passes the address of the `PtRegs` it just
        // built on its own stack; nothing else refers to it during this call.
        let frame = unsafe { &mut *frame };
        // SAFETY: the trampoline runs on behalf of the task whose return it
        // caught, with interrupts masked (ring 0: `cli` above; ring 3, a
        // process probing its own code: the host's signal handling plays
        // the interrupts and its hook masks them).
        let resume = unsafe { probe_hal::rethook::dispatch_return(frame) };
        frame.rip = resume as u64;
        resume
    }

    // Offsets into the frame: PtRegs (168 bytes), then two xmm registers
    // (32 bytes), then the slot the final `ret` pops (8 bytes). 208 is a
    // multiple of 16, so the frame keeps the alignment `rsp` had.
    #[cfg(target_feature = "sse2")]
    macro_rules! save_xmm {
        () => {
            "movdqu [rsp + 168], xmm0\nmovdqu [rsp + 184], xmm1\n"
        };
    }
    #[cfg(target_feature = "sse2")]
    macro_rules! restore_xmm {
        () => {
            "movdqu xmm0, [rsp + 168]\nmovdqu xmm1, [rsp + 184]\n"
        };
    }
    #[cfg(not(target_feature = "sse2"))]
    macro_rules! save_xmm {
        () => {
            ""
        };
    }
    #[cfg(not(target_feature = "sse2"))]
    macro_rules! restore_xmm {
        () => {
            ""
        };
    }

    core::arch::global_asm!(
        concat!(
            // In the engine's trap-path section, so no probe can be placed
            // anywhere inside the trampoline.
            ".pushsection probe_trap_text, \"ax\", @progbits\n",
            ".globl hal_x86_64_return_trampoline\n",
            ".type hal_x86_64_return_trampoline, @function\n",
            ".p2align 4\n",
            "hal_x86_64_return_trampoline:\n",
            // Reached by `ret`: rsp is the caller's, flags are live.
            "lea rsp, [rsp - 208]\n", // lea leaves the flags alone
            "mov [rsp + 80], rax\n",
            "pushfq\n",
            "pop rax\n",
            "mov [rsp + 144], rax\n", // eflags
            "lea rax, [rsp + 208]\n",
            "mov [rsp + 152], rax\n", // rsp on arrival
            "mov [rsp + 0], r15\n",
            "mov [rsp + 8], r14\n",
            "mov [rsp + 16], r13\n",
            "mov [rsp + 24], r12\n",
            "mov [rsp + 32], rbp\n",
            "mov [rsp + 40], rbx\n",
            "mov [rsp + 48], r11\n",
            "mov [rsp + 56], r10\n",
            "mov [rsp + 64], r9\n",
            "mov [rsp + 72], r8\n",
            "mov [rsp + 88], rcx\n",
            "mov [rsp + 96], rdx\n",
            "mov [rsp + 104], rsi\n",
            "mov [rsp + 112], rdi\n",
            "mov qword ptr [rsp + 120], -1\n", // orig_rax: not a syscall
            "lea rax, [rip + hal_x86_64_return_trampoline]\n",
            "mov [rsp + 128], rax\n", // rip
            "xor eax, eax\n",
            "mov ax, cs\n",
            "mov [rsp + 136], rax\n",
            "mov ax, ss\n",
            "mov [rsp + 160], rax\n",
            save_xmm!(),
            // Return handlers run like trap handlers, with interrupts
            // masked; the `popfq` below restores IF. Only in ring 0: `cli`
            // faults in user mode.
            "test byte ptr [rsp + 136], 3\n",
            "jnz 2f\n",
            "cli\n",
            "2:\n",
            "cld\n",
            // Call the handler on a 16-byte aligned stack; rbx (saved above)
            // keeps the frame address across the call.
            "mov rbx, rsp\n",
            "and rsp, -16\n",
            "mov rdi, rbx\n",
            "call {handler}\n",
            "mov rsp, rbx\n",
            "mov [rsp + 200], rax\n", // where to resume, popped by `ret`
            restore_xmm!(),
            "mov r15, [rsp + 0]\n",
            "mov r14, [rsp + 8]\n",
            "mov r13, [rsp + 16]\n",
            "mov r12, [rsp + 24]\n",
            "mov rbp, [rsp + 32]\n",
            "mov rbx, [rsp + 40]\n",
            "mov r11, [rsp + 48]\n",
            "mov r10, [rsp + 56]\n",
            "mov r9, [rsp + 64]\n",
            "mov r8, [rsp + 72]\n",
            "mov rax, [rsp + 80]\n",
            "mov rcx, [rsp + 88]\n",
            "mov rdx, [rsp + 96]\n",
            "mov rsi, [rsp + 104]\n",
            "mov rdi, [rsp + 112]\n",
            "push qword ptr [rsp + 144]\n",
            "popfq\n",
            "lea rsp, [rsp + 200]\n",
            "ret\n",
            ".size hal_x86_64_return_trampoline, . - hal_x86_64_return_trampoline\n",
            ".popsection\n",
        ),
        handler = sym return_handler,
    );

    extern "C" {
        fn hal_x86_64_return_trampoline();
    }

    /// Address of the trampoline.
    pub(crate) fn address() -> usize {
        hal_x86_64_return_trampoline as *const () as usize
    }
}

/// The address of the code trampoline that redirected returns land on, or
/// `None` where this crate does not build it (non-ELF targets).
pub fn trampoline_address() -> Option<usize> {
    #[cfg(all(
        target_arch = "x86_64",
        not(target_os = "windows"),
        not(target_vendor = "apple")
    ))]
    {
        Some(trampoline::address())
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        not(target_os = "windows"),
        not(target_vendor = "apple")
    )))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regs::PtRegs;
    use core::cell::RefCell;

    struct Stack(RefCell<[u64; 4]>);
    const SP: usize = 0x8000;
    impl DataAccess for Stack {
        fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
            if !(SP..SP + 32).contains(&addr) || buf.len() != 8 {
                return Err(MemoryFault { addr });
            }
            buf.copy_from_slice(&self.0.borrow()[(addr - SP) / 8].to_le_bytes());
            Ok(())
        }
        fn write(&self, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
            if !(SP..SP + 32).contains(&addr) || data.len() != 8 {
                return Err(MemoryFault { addr });
            }
            self.0.borrow_mut()[(addr - SP) / 8] = u64::from_le_bytes(data.try_into().unwrap());
            Ok(())
        }
    }

    #[test]
    fn hijack_swaps_the_return_address_and_frames_match() {
        let mem = Stack(RefCell::new([0x40_1234, 0, 0, 0]));
        let mut at_entry = PtRegs {
            rsp: SP as u64,
            ..PtRegs::zeroed()
        };
        assert_eq!(hijack(&mut at_entry, &mem, 0xabc0).unwrap(), 0x40_1234);
        assert_eq!(mem.0.borrow()[0], 0xabc0);
        assert_eq!(entry_frame(&at_entry), SP);
        // The function's `ret` pops the trampoline address.
        let at_return = PtRegs {
            rsp: SP as u64 + 8,
            rip: 0xabc0,
            ..PtRegs::zeroed()
        };
        assert_eq!(return_frame(&at_return), entry_frame(&at_entry));
    }

    #[test]
    fn hijack_with_an_unreadable_stack_fails_cleanly() {
        let mem = Stack(RefCell::new([7, 0, 0, 0]));
        let mut r = PtRegs {
            rsp: 0x10,
            ..PtRegs::zeroed()
        };
        assert_eq!(hijack(&mut r, &mem, 1), Err(MemoryFault { addr: 0x10 }));
    }
}

/// Runs the real trampoline on the host: a function returns into it by hand,
/// the hook sees the registers and the real caller gets control back with
/// the registers the hook left.
#[cfg(all(test, target_arch = "x86_64", target_os = "linux"))]
mod trampoline_tests {
    use super::*;
    use core::arch::{asm, global_asm};
    use core::sync::atomic::{AtomicUsize, Ordering};
    use probe_hal::rethook::{set_return_hook, ReturnHook};
    use std::sync::Mutex;

    // rdi = trampoline, rsi = where to store the real return address.
    // Returns 41 in rax and 7 in rdx, and 1.5f64 in xmm0.
    global_asm!(
        ".pushsection .text.hal_x86_64_test_victim, \"ax\", @progbits",
        ".globl hal_x86_64_test_victim",
        "hal_x86_64_test_victim:",
        "mov rax, [rsp]",
        "mov [rsi], rax",
        "mov [rsp], rdi",
        "mov rax, 0x3ff8000000000000",
        "movq xmm0, rax",
        "mov eax, 41",
        "mov edx, 7",
        "ret",
        ".popsection",
    );
    extern "C" {
        fn hal_x86_64_test_victim();
    }

    static REAL: AtomicUsize = AtomicUsize::new(0);

    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    struct Seen {
        rax: usize,
        rdx: usize,
        r12: usize,
        r15: usize,
        rbx: usize,
        rbp: usize,
        sp: usize,
        pc: usize,
    }
    static SEEN: Mutex<Option<Seen>> = Mutex::new(None);

    struct Hook;
    impl ReturnHook for Hook {
        unsafe fn on_return(&self, regs: &mut dyn Registers) -> usize {
            *SEEN.lock().unwrap() = Some(Seen {
                rax: regs.gpr(0),
                rdx: regs.gpr(2),
                r12: regs.gpr(12),
                r15: regs.gpr(15),
                rbx: regs.gpr(3),
                rbp: regs.gpr(5),
                sp: regs.sp(),
                pc: regs.pc(),
            });
            // Change the result and a register; clobber the xmm return
            // registers the way compiled handler code may.
            regs.set_return_value(regs.return_value() + 1);
            regs.set_gpr(2, 8);
            // SAFETY: only zeroes two caller-saved registers declared as clobbered.
            unsafe { asm!("xorps xmm0, xmm0", "xorps xmm1, xmm1", out("xmm0") _, out("xmm1") _) };
            let real = REAL.load(Ordering::SeqCst);
            regs.set_pc(real);
            real
        }
    }
    static HOOK: Hook = Hook;

    #[test]
    fn trampoline_returns_to_the_real_caller_with_the_hooks_registers() {
        set_return_hook(&HOOK).unwrap();
        let tramp = trampoline_address().unwrap();
        let (rax, rdx, r12, r13, r14, r15, rbx, rbp, sp_before, sp_after): (
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
        );
        let xmm0: u64;
        // SAFETY: the victim follows the C ABI except that it returns
        // through the trampoline, which restores every register; rbx and rbp
        // are saved and restored around the call by the asm itself.
        unsafe {
            asm!(
                "push rbx",
                "push rbp",
                "mov rbx, 0x3333",
                "mov rbp, 0x5555",
                "mov r8, rsp",
                "call {victim}",
                "mov r9, rsp",
                "mov r10, rbx",
                "mov r11, rbp",
                "movq rcx, xmm0",
                "pop rbp",
                "pop rbx",
                victim = sym hal_x86_64_test_victim,
                out("r8") sp_before,
                out("r9") sp_after,
                out("r10") rbx,
                out("r11") rbp,
                out("rcx") xmm0,
                in("rdi") tramp,
                in("rsi") REAL.as_ptr(),
                lateout("rax") rax,
                lateout("rdx") rdx,
                inout("r12") 0x1212usize => r12,
                inout("r13") 0x1313usize => r13,
                inout("r14") 0x1414usize => r14,
                inout("r15") 0x1515usize => r15,
                clobber_abi("C"),
            );
        }
        assert_eq!((rax, rdx), (42, 8), "the hook's return value and rdx");
        assert_eq!((r12, r13, r14, r15), (0x1212, 0x1313, 0x1414, 0x1515));
        assert_eq!((rbx, rbp), (0x3333, 0x5555));
        assert_eq!(sp_after, sp_before, "the stack is balanced");
        assert_eq!(f64::from_bits(xmm0), 1.5, "xmm0 survives the handler");
        let seen = SEEN.lock().unwrap().unwrap();
        assert_eq!(
            seen,
            Seen {
                rax: 41,
                rdx: 7,
                r12: 0x1212,
                r15: 0x1515,
                rbx: 0x3333,
                rbp: 0x5555,
                // The call pushed at sp_before - 8; the ret popped it.
                sp: sp_before,
                pc: tramp,
            }
        );
        // What the engine would compute: return_frame = the entry rsp.
        assert_eq!(seen.sp - 8, sp_before - 8);
    }
}
