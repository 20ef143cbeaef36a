//! What must not be probed is refused, with the reason, and nothing is
//! written: instructions whose out-of-line copy would be wrong, addresses
//! inside an instruction, the trap entry and the return trampoline, and a
//! return probe away from a function entry.

use probe_core::{Kprobe, Kretprobe, ProbeError, ProbeErrorKind, ProbeId};

use crate::entry;
use crate::handlers::{count_pre, fresh};
use crate::probed_code::*;
use crate::report::check;
use crate::services::{peek, ENGINE};

pub fn run() {
    refused("hlt", xq_refused_hlt);
    refused("iretq", xq_refused_iretq);
    refused("int3", xq_refused_int3);
    refused("ud2", xq_refused_ud2);
    refused("int n", xq_refused_int80);
    refused("mov ss", xq_refused_movss);
    refused("call fs:/gs:[mem]", xq_refused_callmem);
    refused("sysret", xq_refused_sysret);
    inside_an_instruction();
    blacklisted();
    kretprobe_off_entry();
}

fn refused(mnemonic: &str, site: Label) {
    let at = addr(site);
    let before = peek(at);
    let r = ENGINE.register_kprobe(&Kprobe::at(at).pre(count_pre).data(fresh()));
    let after = peek(at);
    let name = Name::of(mnemonic);
    let name = name.as_str();
    match r {
        Err(e) => {
            let ok = matches!(e.kind(), ProbeErrorKind::Refused(r) if r.mnemonic == mnemonic && !r.reason.is_empty());
            check(name, ok && after == before, format_args!("{e}"));
        }
        Ok(id) => {
            let _ = ENGINE.unregister(id);
            check(name, false, format_args!("registered instead of refused"));
        }
    }
}

/// "refused: <mnemonic>" without allocating.
struct Name {
    buf: [u8; 48],
    len: usize,
}

impl Name {
    fn of(mnemonic: &str) -> Self {
        let mut n = Name {
            buf: [0; 48],
            len: 0,
        };
        for part in ["refused with its reason: ", mnemonic] {
            let b = part.as_bytes();
            let take = b.len().min(n.buf.len() - n.len);
            n.buf[n.len..n.len + take].copy_from_slice(&b[..take]);
            n.len += take;
        }
        n
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("refused")
    }
}

fn inside_an_instruction() {
    let name = "an offset inside an instruction is refused (boundary walk from the symbol)";
    // xq_alu starts with the 3-byte `mov rax, rdi`.
    let start = xq_alu as *const () as usize;
    let r = refusal(ENGINE.register_kprobe(&Kprobe::at(start + 1).pre(count_pre).data(fresh())));
    check(
        name,
        matches!(r, Some(ProbeErrorKind::NotInsnBoundary { insn_start, insn_len: 3 }) if insn_start == start),
        format_args!("{r:?}"),
    );
}

/// The kind of a registration error; `None` when it was registered after
/// all (and is unregistered again).
fn refusal(r: Result<ProbeId, ProbeError>) -> Option<ProbeErrorKind> {
    match r {
        Ok(id) => {
            let _ = ENGINE.unregister(id);
            None
        }
        Err(e) => Some(e.kind()),
    }
}

fn blacklisted() {
    let name = "the int3 entry and the return trampoline are refused (blacklisted)";
    let entry = entry::int3_entry();
    let tramp = probe_hal_x86_64::trampoline_address().unwrap_or(0);
    let a = refusal(ENGINE.register_kprobe(&Kprobe::at(entry).pre(count_pre).data(fresh())));
    let b = refusal(ENGINE.register_kprobe(&Kprobe::at(tramp).pre(count_pre).data(fresh())));
    check(
        name,
        a == Some(ProbeErrorKind::Blacklisted) && b == Some(ProbeErrorKind::Blacklisted),
        format_args!("int3 entry {entry:#x}: {a:?}; trampoline {tramp:#x}: {b:?}"),
    );
}

fn kretprobe_off_entry() {
    let name = "a kretprobe inside a function is refused";
    let r = refusal(ENGINE.register_kretprobe(&Kretprobe::at(addr(xq_alu_add)).data(fresh())));
    check(
        name,
        r == Some(ProbeErrorKind::NotFunctionEntry),
        format_args!("{r:?}"),
    );
}
