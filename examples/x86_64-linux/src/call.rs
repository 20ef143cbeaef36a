//! Calling a test function by address, noting the stack pointer it starts
//! with (the cases check stack offsets that handlers see against it).

use core::arch::asm;

/// What a call returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// `rax` on return.
    pub ret: u64,
    /// `rsp` at the function's first instruction (pointing at the return
    /// address).
    pub entry_sp: usize,
}

/// Call the function at `f` with `a`, `b`, `c` in rdi, rsi, rdx.
///
/// # Safety
/// `f` is a test function that follows the System V ABI and takes at most
/// three integer arguments, for which `a`, `b`, `c` are valid.
pub unsafe fn call(f: usize, a: u64, b: u64, c: u64) -> Call {
    let ret: u64;
    let sp: usize;
    // SAFETY: the caller vouches for `f`; the asm saves rsp in r12 (callee
    // saved, declared as an output) and declares every register the C ABI
    // lets the callee clobber. Not `nostack`: the compiler keeps the red
    // zone free and the stack aligned for the call.
    unsafe {
        asm!(
            "mov r12, rsp",
            "call {f}",
            f = in(reg) f,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            out("r12") sp,
            lateout("rax") ret,
            clobber_abi("C"),
        );
    }
    Call {
        ret,
        entry_sp: sp - 8,
    }
}

/// Call the test function named `name` (see [`call`]).
///
/// # Safety
/// As for [`call`].
pub unsafe fn call_named(name: &str, a: u64, b: u64, c: u64) -> Call {
    let f = crate::testfns::func(name).start;
    // SAFETY: forwarded from the caller.
    unsafe { call(f, a, b, c) }
}
