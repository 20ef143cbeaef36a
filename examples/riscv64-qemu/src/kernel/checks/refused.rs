//! What must not be probed is refused, with a reason a user can read: each
//! class of refused instruction (SYSTEM opcode, `c.ebreak`, LR/SC
//! and any address inside an LR/SC sequence), odd and mid-instruction
//! addresses, the kernel's and the engine's trap paths, the return
//! trampoline, return probes off a function entry, undecodable bytes and
//! unknown symbols. A refusal leaves nothing behind.

use core::sync::atomic::{AtomicUsize, Ordering};

use probe_core::{Kprobe, Kretprobe, ProbeError, ProbeErrorKind};
use probe_hal::Arch;
use probe_hal_riscv64::Riscv64;

use super::regfile::call2;
use super::report::{check, ensure, ensure_eq, note, Fail, Outcome};
use super::seen::{pre_count, Seen};
use super::{mnemonic_at, snapshot};
use crate::kernel::layout;
use crate::kernel::services::ENGINE;
use crate::kernel::symbols::{self, kernel_fn, TestFn};

// Never executed: one instruction of each refused class.
kernel_fn!(
    "t_refused",
    "norvc",
    [
        "ecall",
        "ebreak",
        "csrr a0, sstatus",
        ".option push",
        ".option rvc",
        "c.ebreak",
        ".option pop",
        "lr.w a0, (a1)",
        "sc.w a2, a0, (a1)",
        "sret",
        "wfi",
        "mret",
        // Reserved (the all-zero halfword is defined illegal).
        ".2byte 0",
        "ret",
    ]
);

// *a0 += a1 atomically with an LR/SC loop; returns the new value.
kernel_fn!(
    "t_llsc",
    "norvc",
    [
        "1:",
        "lr.d t0, (a0)",
        "add t0, t0, a1",
        "sc.d t1, t0, (a0)",
        "bnez t1, 1b",
        "mv a0, t0",
        "ret",
    ]
);

static CELL: AtomicUsize = AtomicUsize::new(40);
static S: Seen = Seen::new();

/// The refusal `e` is, or a failure naming what came instead.
fn refusal(e: Result<probe_core::ProbeId, ProbeError>) -> Result<ProbeError, Fail> {
    match e {
        Err(e) => Ok(e),
        Ok(id) => {
            let _ = ENGINE.unregister(id);
            Err(Fail::new(format_args!("accepted")))
        }
    }
}

fn expect_refused(f: &TestFn, mnemonic: &str, want: &str) -> Outcome {
    let before = snapshot(f);
    let Some(off) = super::boundaries(f)
        .into_iter()
        .find(|&o| mnemonic_at(f.start + o) == mnemonic)
    else {
        return Err(Fail::new(format_args!("no `{mnemonic}` in {}", f.name)));
    };
    let e = refusal(ENGINE.register_kprobe(&Kprobe::at(f.start + off)))?;
    let ProbeErrorKind::Refused(r) = e.kind() else {
        return Err(Fail::new(format_args!("{e}")));
    };
    ensure_eq!(r.mnemonic, want, "refused mnemonic");
    ensure_eq!(e.addr(), f.start + off, "address in the error");
    ensure!(!r.reason.is_empty(), "no reason given");
    ensure!(snapshot(f) == before, "text changed");
    note!("`{}`: {}", r.mnemonic, r.reason)
}

fn llsc_window() -> Outcome {
    let f = symbols::get("t_llsc");
    for (off, want) in [(0, "lr.d"), (8, "sc.d")] {
        let e = refusal(ENGINE.register_kprobe(&Kprobe::at(f.start + off)))?;
        ensure!(
            matches!(e.kind(), ProbeErrorKind::Refused(r) if r.mnemonic == want),
            "+{off:#x}: {e}"
        );
    }
    // Inside the sequence: refused although `add` itself is harmless.
    let e = refusal(ENGINE.register_kprobe(&Kprobe::at(f.start + 4)))?;
    let ProbeErrorKind::Refused(r) = e.kind() else {
        return Err(Fail::new(format_args!("+0x4: {e}")));
    };
    ensure_eq!(
        r.mnemonic,
        "lr.d/sc.d sequence",
        "refusal inside the sequence"
    );
    // After the sc: fine, and the loop still works.
    S.reset();
    let id = ENGINE.register_kprobe(&Kprobe::at(f.start + 12).pre(pre_count).data(&S))?;
    CELL.store(40, Ordering::SeqCst);
    let got = call2(f.start, CELL.as_ptr() as usize, 2);
    ENGINE.unregister(id)?;
    ensure_eq!(
        (got, CELL.load(Ordering::SeqCst)),
        (42, 42),
        "t_llsc result and cell"
    );
    ensure_eq!(S.pre(), 1, "hits on the bnez after the sc");
    note!(
        "`add` between lr.d and sc.d: {}; the bnez after sc.d probes fine",
        r.reason
    )
}

fn expect_kind(
    what: Result<probe_core::ProbeId, ProbeError>,
    want: ProbeErrorKind,
    addr: usize,
) -> Outcome {
    let e = refusal(what)?;
    ensure_eq!(e.kind(), want, "error kind");
    if addr != usize::MAX {
        ensure_eq!(e.addr(), addr, "address in the error");
    }
    note!("{e}")
}

extern "C" {
    fn strap_entry();
    static __start_probe_trap_text: u8;
}

/// Run the checks.
pub fn run() {
    let f = symbols::get("t_refused");
    for (mnemonic, want, label) in [
        ("ecall", "ecall", "refuse ecall"),
        ("ebreak", "ebreak", "refuse ebreak"),
        ("csrrs", "csrrs", "refuse csrr (csrrs)"),
        ("c.ebreak", "c.ebreak", "refuse c.ebreak"),
        ("lr.w", "lr.w", "refuse lr.w"),
        ("sc.w", "sc.w", "refuse sc.w"),
        ("sret", "sret", "refuse sret"),
        ("wfi", "wfi", "refuse wfi"),
        ("mret", "mret", "refuse mret"),
    ] {
        check(label, || expect_refused(&f, mnemonic, want));
    }
    check("refuse a probe inside an LR/SC loop", llsc_window);
    let alu = symbols::get("t_alu");
    check("refuse an odd address", || {
        expect_kind(
            ENGINE.register_kprobe(&Kprobe::at(alu.start + 1)),
            ProbeErrorKind::Misaligned { align: 2 },
            alu.start + 1,
        )
    });
    check("refuse the middle of an instruction", || {
        expect_kind(
            ENGINE.register_kprobe(&Kprobe::at(alu.start + 2)),
            ProbeErrorKind::NotInsnBoundary {
                insn_start: alu.start,
                insn_len: 4,
            },
            alu.start + 2,
        )
    });
    check("refuse undecodable bytes", || {
        let off = f.size() - 6; // the .2byte 0 before the final ret
        expect_kind(
            ENGINE.register_kprobe(&Kprobe::at(f.start + off)),
            ProbeErrorKind::Undecodable,
            f.start + off,
        )
    });
    check(
        "refuse the kernel's trap vector (services blacklist)",
        || {
            let vector = strap_entry as *const () as usize;
            ensure!(
                layout::kernel_trap_text().contains(&vector),
                "strap_entry outside kernel_trap_text"
            );
            expect_kind(
                ENGINE.register_kprobe(&Kprobe::at(vector)),
                ProbeErrorKind::Blacklisted,
                vector,
            )
        },
    );
    check("refuse the engine's own trap path", || {
        let start = core::ptr::addr_of!(__start_probe_trap_text) as usize;
        expect_kind(
            ENGINE.register_kprobe(&Kprobe::at(start)),
            ProbeErrorKind::Blacklisted,
            start,
        )
    });
    check("refuse the return trampoline", || {
        let t = Riscv64::kernel_trampoline().unwrap_or(0);
        expect_kind(
            ENGINE.register_kprobe(&Kprobe::at(t)),
            ProbeErrorKind::Blacklisted,
            t,
        )
    });
    check("refuse a kretprobe off a function entry", || {
        expect_kind(
            ENGINE.register_kretprobe(&Kretprobe::at(alu.start + 4)),
            ProbeErrorKind::NotFunctionEntry,
            alu.start + 4,
        )
    });
    check("refuse unknown symbols and offsets outside them", || {
        let e = refusal(ENGINE.register_kprobe(&Kprobe::symbol("no_such_function", 0)))?;
        ensure_eq!(e.kind(), ProbeErrorKind::UnknownSymbol, "unknown symbol");
        let ret = symbols::get("t_ret");
        let e = refusal(ENGINE.register_kprobe(&Kprobe::symbol("t_ret", 64)))?;
        ensure_eq!(
            e.kind(),
            ProbeErrorKind::OffsetOutsideSymbol { size: ret.size() },
            "offset 64 into t_ret"
        );
        note!("{e}")
    });
    check("refuse the same probe twice", || {
        S.reset();
        let id = ENGINE.register_kprobe(&Kprobe::at(alu.start).pre(pre_count).data(&S))?;
        let again = ENGINE.register_kprobe(&Kprobe::at(alu.start).pre(pre_count).data(&S));
        ENGINE.unregister(id)?;
        expect_kind(again, ProbeErrorKind::AlreadyRegistered, alu.start)
    });
    check("refusals leave nothing behind", || {
        ensure_eq!(ENGINE.list::<4>().len(), 0, "probes listed");
        ensure_eq!(ENGINE.slot_usage(), (0, 0), "slots and pages held");
        note!("no probe, no slot, no page")
    });
}
