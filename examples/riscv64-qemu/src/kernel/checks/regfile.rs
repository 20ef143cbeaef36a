//! Calling a test function with every register set, and capturing every
//! register it leaves: the state a probed call must reproduce exactly.
//!
//! `run_regs(func, regs)` loads x5-x30 from `regs` (t6 carries the function
//! address), keeps sp, gp and tp, calls the function, and stores x1-x31
//! back; the x2 slot then holds "sp after minus sp before" (0 for a
//! balanced function), so results compare across call sites.

use core::arch::global_asm;

/// x0..x31 (x0's slot is scratch).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegFile {
    /// The registers.
    pub x: [usize; 32],
}

/// a0, the first argument and return register.
pub const A0: usize = 10;

impl RegFile {
    /// Every register a recognisable value, arguments in a0, a1, ….
    pub fn seeded(args: &[usize]) -> Self {
        let mut x = [0usize; 32];
        for (i, r) in x.iter_mut().enumerate().skip(5) {
            *r = 0x5eed_0000_0000_0000 | (i << 8) | i;
        }
        for (i, a) in args.iter().enumerate() {
            x[A0 + i] = *a;
        }
        Self { x }
    }

    /// a0.
    pub fn a0(&self) -> usize {
        self.x[A0]
    }

    /// The first register that differs from `other`: (number, self's value,
    /// other's value).
    pub fn first_difference(&self, other: &RegFile) -> Option<(usize, usize, usize)> {
        (1..32)
            .find(|&i| self.x[i] != other.x[i])
            .map(|i| (i, self.x[i], other.x[i]))
    }
}

global_asm!(
    ".pushsection .text.run_regs, \"ax\", @progbits",
    ".option push",
    ".option arch, +m, +a, +f, +d, +c",
    ".p2align 2",
    "run_regs:",
    "addi sp, sp, -144",
    "sd ra, 0(sp)",
    "sd gp, 8(sp)",
    "sd tp, 16(sp)",
    "sd s0, 24(sp)",
    "sd s1, 32(sp)",
    "sd s2, 40(sp)",
    "sd s3, 48(sp)",
    "sd s4, 56(sp)",
    "sd s5, 64(sp)",
    "sd s6, 72(sp)",
    "sd s7, 80(sp)",
    "sd s8, 88(sp)",
    "sd s9, 96(sp)",
    "sd s10, 104(sp)",
    "sd s11, 112(sp)",
    "sd a1, 120(sp)",
    "mv t6, a0",
    "sd sp, 0(a1)",
    ".irp n, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30",
    "ld x\\n, \\n*8(a1)",
    ".endr",
    "ld a1, 88(a1)",
    "jalr ra, 0(t6)",
    "sd t6, 128(sp)",
    "ld t6, 120(sp)",
    ".irp n, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30",
    "sd x\\n, \\n*8(t6)",
    ".endr",
    "ld t5, 128(sp)",
    "sd t5, 248(t6)",
    "ld t5, 0(t6)",
    "sub t5, sp, t5",
    "sd t5, 16(t6)",
    "sd zero, 0(t6)",
    "ld ra, 0(sp)",
    "ld gp, 8(sp)",
    "ld tp, 16(sp)",
    "ld s0, 24(sp)",
    "ld s1, 32(sp)",
    "ld s2, 40(sp)",
    "ld s3, 48(sp)",
    "ld s4, 56(sp)",
    "ld s5, 64(sp)",
    "ld s6, 72(sp)",
    "ld s7, 80(sp)",
    "ld s8, 88(sp)",
    "ld s9, 96(sp)",
    "ld s10, 104(sp)",
    "ld s11, 112(sp)",
    "addi sp, sp, 144",
    "ret",
    ".option pop",
    ".popsection",
);

extern "C" {
    fn run_regs(func: usize, regs: *mut RegFile);
}

/// Call the kernel function at `func` with `input`'s registers; every
/// register it leaves.
pub fn call(func: usize, input: &RegFile) -> RegFile {
    let mut regs = *input;
    // SAFETY: `func` is a test function following the psABI (it preserves
    // sp and the s-registers, which run_regs restores anyway, and returns
    // through ra); `regs` is a valid RegFile for the duration of the call.
    unsafe { run_regs(func, &mut regs) };
    regs
}

/// Call `func(a0, a1)` through the psABI and return a0.
pub fn call2(func: usize, a0: usize, a1: usize) -> usize {
    // SAFETY: test functions follow the psABI with up to two integer
    // arguments and an integer result.
    let f: extern "C" fn(usize, usize) -> usize =
        unsafe { core::mem::transmute::<usize, extern "C" fn(usize, usize) -> usize>(func) };
    f(a0, a1)
}
