//! Every instruction class the backend refuses, each in a never-called
//! function of its own (or at a named point): registration must fail with
//! `Refused`, naming the instruction and giving a reason, and leave the
//! code and the slot pages exactly as they were.

use probe_core::{Kprobe, ProbeErrorKind};
use x86_64_linux::recorder::pre_record;
use x86_64_linux::report::Report;
use x86_64_linux::testfns;
use x86_64_linux::{ensure, ensure_eq};

use super::{peek, CheckResult};
use crate::ENGINE;

/// `(function or point, mnemonic the refusal names)`.
static REFUSED: &[(&str, &str)] = &[
    ("tf_ref_int3", "int3"),
    ("tf_ref_int_n", "int n"),
    ("tf_ref_int1", "int1"),
    ("tf_ref_into", "into"),
    ("tf_ref_iretq", "iretq"),
    ("tf_ref_iretd", "iretd"),
    ("tf_ref_syscall", "syscall"),
    ("tf_ref_sysenter", "sysenter"),
    ("tf_ref_sysretq", "sysret"),
    ("tf_ref_swapgs", "swapgs"),
    ("tf_ref_hlt", "hlt"),
    ("tf_ref_ud2", "ud2"),
    ("tf_ref_ud1", "ud1"),
    ("tf_ref_jmp_far_mem", "jmp far [mem]"),
    ("tf_ref_call_far_mem", "call far [mem]"),
    ("tf_ref_jmp_far_ptr", "jmp far ptr16:32"),
    ("tf_ref_call_far_ptr", "call far ptr16:32"),
    ("tf_ref_retf", "retf"),
    ("tf_ref_jz_rel16", "66-prefixed branch"),
    ("tf_ref_jz_rel8_o16", "66-prefixed branch"),
    ("tf_ref_jmp_o16", "66-prefixed branch"),
    ("tf_ref_call_o16", "66-prefixed branch"),
    ("tf_ref_ret_o16", "66-prefixed branch"),
    ("tf_ref_xbegin", "xbegin"),
    ("tf_ref_xend", "xend"),
    ("tf_ref_xabort", "xabort"),
    ("tf_ref_mov_ss", "mov ss"),
    ("tf_ref_pop_ss", "pop ss"),
    ("tf_ref_mwait", "mwait"),
    ("tf_ref_vmcall", "vmcall"),
    ("ref_endbr", "endbr64"),
];

fn refused(target: &str, mnemonic: &str) -> CheckResult {
    let addr = testfns::addr_of(target);
    let before = peek(addr, 8)?;
    let usage = ENGINE.slot_usage();
    let r = ENGINE.register_kprobe(&Kprobe::at(addr).pre(pre_record));
    if let Ok(id) = r {
        let _ = ENGINE.unregister(id);
        return Err(format!(
            "{target}: registered, expected a refusal of `{mnemonic}`"
        ));
    }
    let e = r.unwrap_err();
    ensure_eq!(e.addr(), addr, "{target}: error address");
    match e.kind() {
        ProbeErrorKind::Refused(refusal) => {
            ensure_eq!(refusal.mnemonic, mnemonic, "{target}: mnemonic");
            ensure!(
                refusal.reason.len() > 20,
                "{target}: no real reason: {:?}",
                refusal.reason
            );
        }
        other => {
            return Err(format!(
                "{target}: {other}, expected a refusal of `{mnemonic}`"
            ))
        }
    }
    ensure_eq!(peek(addr, 8)?, before, "{target}: bytes after the refusal");
    ensure_eq!(
        ENGINE.slot_usage(),
        usage,
        "{target}: slot usage after the refusal"
    );
    Ok(e.kind().to_string())
}

pub(super) fn run(r: &mut Report) {
    for &(target, mnemonic) in REFUSED {
        r.check(&format!("refused: {mnemonic} ({target})"), || {
            refused(target, mnemonic)
        });
    }
}
