//! Fences and CSR accesses whose effect does not depend on where they run,
//! stepped out of line on real traps: `fence`, `fence.tso`, `pause`,
//! `fence.i` (a self-modifying call that needs it), the floating-point CSRs
//! (`frflags`, `fsflags`, `frrm`, `fsrmi`, `frcsr`, `fscsr`, with
//! `sstatus.FS` on) and the counter reads (`rdtime`, `rdcycle`,
//! `rdinstret`). Every instruction of each function is probed in turn and
//! the registers compared with the unprobed call; the fences and two FP CSR
//! reads also as uprobes in U-mode.

use probe_core::{Kprobe, ProbeErrorKind};

use super::report::{check, ensure, ensure_eq, note, Fail};
use super::{probe_each_kernel_insn, probe_each_user_insn, snapshot, Case};
use crate::kernel::services::ENGINE;
use crate::kernel::symbols::{self, kernel_fn, user_fn};
use crate::kernel::trap::{self, SSTATUS_FS};

// Every fence form between ALU steps (`pause` is Zihintpause's `fence w,0`,
// which the assembler's ISA string does not name).
kernel_fn!(
    "t_fence",
    "norvc",
    [
        "fence rw, rw",
        "add a0, a0, a1",
        "fence.tso",
        "xori a0, a0, 0x55",
        ".4byte 0x0100000f",
        "fence iorw, iorw",
        "slli a0, a0, 1",
        "fence r, w",
        "ret",
    ]
);

// Writes the instruction word a1 over the first instruction of
// t_smc_target, makes it visible to instruction fetch with `fence.i`, and
// calls it: the result is what the new instruction computes.
kernel_fn!(
    "t_fence_i",
    "norvc",
    [
        "lla t0, t_smc_target",
        "sw a1, 0(t0)",
        "fence.i",
        "mv t1, ra",
        "jalr ra, 0(t0)",
        "mv ra, t1",
        "ret",
    ]
);

// Patched by t_fence_i (never probed: the patch would overwrite a probe).
kernel_fn!("t_smc_target", "norvc", ["addi a0, a0, 0", "ret"]);

// Rounding down (fsrmi 2, RDN) and the inexact flag, through every FP CSR
// access; frm and fflags are put back before returning.
kernel_fn!(
    "t_fcsr",
    "norvc",
    [
        "csrwi fflags, 0",
        "frrm t0",
        "fsrmi 2",
        "fcvt.d.l fa0, a0",
        "fcvt.d.l fa1, a1",
        "fdiv.d fa2, fa0, fa1",
        "fcvt.l.d a2, fa2",
        "frflags a3",
        "frcsr a4",
        "fsrm t0",
        "fsflags t1, zero",
        "fscsr t2, a4",
        "csrci fcsr, 1",
        "frcsr a5",
        "fscsr zero, zero",
        "fsrm t0",
        "slli a0, a2, 12",
        "slli a4, a4, 4",
        "add a0, a0, a4",
        "add a0, a0, a3",
        "slli t1, t1, 8",
        "add a0, a0, t1",
        "slli t2, t2, 16",
        "add a0, a0, t2",
        "slli a5, a5, 24",
        "add a0, a0, a5",
        "li a2, 0",
        "li a3, 0",
        "li a4, 0",
        "li a5, 0",
        "li t1, 0",
        "li t2, 0",
        "ret",
    ]
);

// Counter reads: each read is no earlier than the one before it of the
// same counter, and instret is not zero. a0 = 1 when all hold; the
// counter values are cleared so the registers compare across calls.
kernel_fn!(
    "t_counters",
    "norvc",
    [
        "rdtime t5",
        "rdcycle t6",
        "rdtime t0",
        "rdcycle t1",
        "rdinstret t2",
        "rdtime t3",
        "rdcycle t4",
        "rdinstret a4",
        "sltu a2, t0, t5",
        "sltu a3, t3, t0",
        "or a2, a2, a3",
        "sltu a3, t1, t6",
        "or a2, a2, a3",
        "sltu a3, t4, t1",
        "or a2, a2, a3",
        "sltu a3, a4, t2",
        "or a2, a2, a3",
        "seqz a3, t2",
        "or a2, a2, a3",
        "seqz a3, t3",
        "or a2, a2, a3",
        "xori a0, a2, 1",
        "li a2, 0",
        "li a3, 0",
        "li a4, 0",
        "li t0, 0",
        "li t1, 0",
        "li t2, 0",
        "li t3, 0",
        "li t4, 0",
        "li t5, 0",
        "li t6, 0",
        "ret",
    ]
);

// The fences and two FP CSR reads in U-mode (uprobes): (((a0 + a1) ^
// 0x55) << 1) + frm.
user_fn!(
    "u_fence",
    "norvc",
    [
        "fence rw, rw",
        "add a0, a0, a1",
        "fence.i",
        "xori a0, a0, 0x55",
        ".4byte 0x0100000f",
        "fence.tso",
        "slli a0, a0, 1",
        "frflags a2",
        "frrm a3",
        "add a0, a0, a3",
        "ret",
    ]
);

// Never executed: CSR accesses that stay refused.
kernel_fn!(
    "t_refused_csr",
    "norvc",
    [
        ".4byte 0xc8002573", // rdcycleh a0: RV32 only
        ".4byte 0xc010a573", // csrrs a0, time, ra: a write to a read-only CSR
        ".4byte 0xc0302573", // rdhpmcounter3 a0: not one of the three
        "ecall",
        "ret",
    ]
);

const fn step(
    label: &'static str,
    func: &'static str,
    args: &'static [usize],
    want: usize,
    key: &'static str,
) -> Case {
    Case {
        label,
        func,
        args,
        want,
        key,
        key_hits: 1,
        simulated: false,
    }
}

const fn fence(a: usize, b: usize) -> usize {
    ((a.wrapping_add(b)) ^ 0x55) << 1
}

/// `addi a0, a0, 7`, the word t_fence_i writes.
const ADDI_A0_7: usize = 0x0075_0513;
const A: usize = 0x0123_4567_89ab_cdef;
const B: usize = 13;
/// -7 and 3 for t_fcsr: -7 / 3 = -2.33…, -3 rounded down (inexact).
const MINUS_7: usize = -7isize as usize;

/// t_fcsr(-7, 3) when the caller's frm is `frm`: a2 = -3 (rounded down),
/// a3 = fflags = NX (1), a4 = fcsr = RDN << 5 | NX = 0x41, t1 = the flags
/// `fsflags` swapped out (1), t2 = the fcsr `fscsr` swapped out (the
/// caller's frm, no flags), a5 = fcsr after `csrci fcsr, 1` (0x40).
const fn fcsr_result(frm: usize) -> usize {
    let a2 = -3isize as usize;
    let a3 = 1;
    let a4 = (2 << 5) | 1;
    let t1 = 1; // fflags before `fsflags t1, zero`
    let t2 = frm << 5; // fcsr before `fscsr t2, a4`: caller's frm, no flags
    let a5 = 0x40; // fcsr after `fscsr a4` and `csrc fcsr, 1`
    (a2 << 12)
        .wrapping_add(a4 << 4)
        .wrapping_add(a3)
        .wrapping_add(t1 << 8)
        .wrapping_add(t2 << 16)
        .wrapping_add(a5 << 24)
}

fn frm_now() -> usize {
    let v: usize;
    // SAFETY: reads frm; sstatus.FS is on (checked by the caller).
    unsafe { core::arch::asm!("frrm {}", out(reg) v, options(nomem, nostack)) };
    v
}

/// Run the checks.
pub fn run() {
    check("step fence, fence.tso and pause (fence w,0)", || {
        let f = symbols::get("t_fence");
        let names: heapless::Vec<&str, 16> = super::boundaries(&f)
            .into_iter()
            .map(|o| super::mnemonic_at(f.start + o))
            .collect();
        for want in ["fence", "fence.tso", "pause"] {
            ensure!(names.contains(&want), "no `{want}` in t_fence: {names:?}");
        }
        probe_each_kernel_insn(&step("fence", "t_fence", &[A, B], fence(A, B), "pause"))?;
        note!(
            "{} probe points ({names:?}), all registers as unprobed",
            names.len()
        )
    });
    check("step fence.i before calling code it just wrote", || {
        let case = step(
            "fence.i",
            "t_fence_i",
            &[A, ADDI_A0_7],
            A.wrapping_add(7),
            "fence.i",
        );
        probe_each_kernel_insn(&case)?;
        let target = snapshot(&symbols::get("t_smc_target"));
        let word = (ADDI_A0_7 as u32).to_le_bytes();
        ensure!(
            target[..4] == word,
            "t_smc_target starts {:x?}",
            &target[..4]
        );
        note!(
            "every instruction of t_fence_i probed; the patched addi ran after the stepped fence.i"
        )
    });
    check(
        "step FP CSR accesses (frflags, fsrmi, frcsr, fscsr…)",
        || {
            let fs = trap::sstatus() & SSTATUS_FS;
            ensure!(fs != 0, "sstatus.FS is off");
            let frm = frm_now();
            let want = fcsr_result(frm);
            let before = frm_now();
            let case = Case {
                want,
                ..step("fcsr", "t_fcsr", &[MINUS_7, 3], 0, "csrrs")
            };
            probe_each_kernel_insn(&case)?;
            ensure_eq!(frm_now(), before, "frm after the calls");
            note!("frrm/fsrmi/frflags/frcsr/fsrm/fsflags/fscsr/csrci stepped, results as unprobed (caller's frm {frm})")
        },
    );
    check(
        "uprobes on fence.i, pause, fence.tso, frflags, frrm in U-mode",
        || {
            let frm = frm_now();
            let case = step(
                "u_fence",
                "u_fence",
                &[A, B],
                fence(A, B).wrapping_add(frm),
                "fence.i",
            );
            probe_each_user_insn(&case)
        },
    );
    check("step counter reads (rdtime, rdcycle, rdinstret)", || {
        probe_each_kernel_insn(&step("counters", "t_counters", &[A, B], 1, "csrrs"))
    });
    check(
        "refuse rdcycleh, a counter write, rdhpmcounter3 and ecall",
        || {
            let f = symbols::get("t_refused_csr");
            let before = snapshot(&f);
            for (off, want, why) in [
                (0, "csrrs", "RV32 only"),
                (4, "csrrs", "CSR"),
                (8, "csrrs", "CSR"),
                (12, "ecall", "forked child"),
            ] {
                let addr = f.start + off;
                let e = match ENGINE.register_kprobe(&Kprobe::at(addr)) {
                    Err(e) => e,
                    Ok(id) => {
                        let _ = ENGINE.unregister(id);
                        return Err(Fail::new(format_args!("+{off:#x} accepted")));
                    }
                };
                let ProbeErrorKind::Refused(r) = e.kind() else {
                    return Err(Fail::new(format_args!("+{off:#x}: {e}")));
                };
                ensure_eq!(r.mnemonic, want, "refused mnemonic at +{off:#x}");
                ensure!(r.reason.contains(why), "+{off:#x}: {}", r.reason);
            }
            ensure!(snapshot(&f) == before, "text changed");
            note!("cycleh (RV32 only), csrrs time with rs1 != x0, hpmcounter3 and ecall refused")
        },
    );
}
