//! The instructions that must not be probed, each with the reason a user reads.
//!
//! The rules follow Linux: `arch/x86/kernel/kprobes/core.c` (`can_probe`,
//! `is_exception_insn`, `__copy_instruction`, `prepare_emulation`),
//! `arch/x86/include/asm/insn.h` (`insn_masking_exception`) and
//! `arch/x86/kernel/uprobes.c` (`good_insns_64`), plus the Intel SDM and AMD
//! APM for the reasons. Everything not refused here is either simulated
//! (branches, and in kernel mode the IF modifiers) or copied to an
//! out-of-line slot that ends with `int3` (or a `jmp` back when boosted), so
//! an instruction is refused when its copy would behave differently from the
//! original in the slot, or would never reach the trap after the copy.

use probe_hal::Refusal;
use yaxpeax_x86::long_mode::Opcode;

// --- exceptions raised on purpose (Linux `is_exception_insn`) ---------------

/// `int3` (0xcc).
pub(crate) const INT3: Refusal = Refusal::new(
    "int3",
    "a breakpoint already sits here (a debugger or another tool owns it); stepping a copy would report it at the slot address",
);
/// `int n` (0xcd ib).
pub(crate) const INT_N: Refusal = Refusal::new(
    "int n",
    "a software interrupt: its handler would see the slot as the interrupted address and return there",
);
/// `int1` / `icebp` (0xf1).
pub(crate) const INT1: Refusal = Refusal::new(
    "int1",
    "raises a debug exception on purpose; the debugger that handles it expects the original address",
);

/// Contextual refusals: the opcode alone does not decide, its operands or
/// prefixes do.
pub(crate) mod contextual {
    use probe_hal::Refusal;

    /// `mov ss, r/m` (8e /2). Linux `insn_masking_exception`.
    pub(crate) const MOV_SS: Refusal = Refusal::new(
        "mov ss",
        "loading SS holds off interrupts and debug exceptions for one instruction, so the trap that ends the step would be taken in that shadow (the CVE-2018-8897 class of bugs)",
    );
    /// `call fs:[mem]` / `call gs:[mem]` (ff /2). Other `call [mem]` forms
    /// are simulated (Linux's kprobes refuse them all: `prepare_emulation`,
    /// "TODO: support memory addressing").
    pub(crate) const CALL_MEM_FS_GS: Refusal = Refusal::new(
        "call fs:/gs:[mem]",
        "an indirect call through an fs- or gs-relative operand: the segment base (the thread pointer, the per-CPU area, or the other one around swapgs) is not in the trap frame, so the simulation cannot compute the target's address",
    );
    /// `jmp fs:[mem]` / `jmp gs:[mem]` (ff /4).
    pub(crate) const JMP_MEM_FS_GS: Refusal = Refusal::new(
        "jmp fs:/gs:[mem]",
        "an indirect jump through an fs- or gs-relative operand: the segment base (the thread pointer, the per-CPU area, or the other one around swapgs) is not in the trap frame, so the simulation cannot compute the target's address",
    );
    /// A simulated call or return in user mode when user tasks may run with
    /// a CET shadow stack ([`crate::X86_64UserShadowStack`]).
    pub(crate) const USER_SHADOW_STACK: Refusal = Refusal::new(
        "call/ret (user shadow stack)",
        "a call or return the backend would simulate on the ordinary stack only: in a task with a CET shadow stack the next real return would not match it and fault (#CP); this backend has no access to the shadow stack",
    );
    /// Any near branch (jmp, call, jcc, loop, jrcxz, ret, call/jmp reg) with
    /// the 0x66 operand-size prefix.
    pub(crate) const BRANCH_O16: Refusal = Refusal::new(
        "66-prefixed branch",
        "Intel ignores the operand-size prefix on near branches in 64-bit mode while AMD truncates the target to 16 bits (and reads a 16-bit displacement), so neither the length nor the target is certain",
    );
    /// A rip-relative operand the decoder reported but whose displacement
    /// could not be located in the bytes (a decoder bug; never seen).
    pub(crate) const RIP_DISP_UNKNOWN: Refusal = Refusal::new(
        "rip-relative operand",
        "the displacement to relocate could not be located in the encoding",
    );
}

/// One-byte opcodes that are invalid in 64-bit mode but that users will know
/// by their legacy name: refused with that name rather than "undecodable".
/// Intel SDM Vol. 2, Appendix A.2.5 (opcodes marked i64).
pub(crate) static INVALID_IN_LONG_MODE: &[(u8, Refusal)] = &[
    (
        0x17,
        Refusal::new(
            "pop ss",
            "invalid in 64-bit mode (#UD); where it exists it holds off interrupts and debug exceptions for one instruction",
        ),
    ),
    (
        0x9a,
        Refusal::new(
            "call far ptr16:32",
            "direct far call: invalid in 64-bit mode (#UD), and a far transfer loads CS, which the trap handler does not emulate",
        ),
    ),
    (
        0xce,
        Refusal::new("into", "invalid in 64-bit mode (#UD); elsewhere a software interrupt"),
    ),
    (
        0xea,
        Refusal::new(
            "jmp far ptr16:32",
            "direct far jump: invalid in 64-bit mode (#UD), and a far transfer loads CS, which the trap handler does not emulate",
        ),
    ),
];

const FAR: &str = "a far transfer loads CS (and a privilege change, stack and flags) from memory; the trap handler does not emulate segment loads";
const SYSTEM_CALL: &str =
    "a privilege transition that saves or loads rip itself: run from the slot, the return address would be the slot";
const VM_TRANSITION: &str = "a transition to or from a hypervisor or enclave: control does not come back to the trap after the copy, or the other side reads and may rewrite the instruction at the guest's rip, which would be the slot";
const UNDEFINED: &str =
    "raises #UD on purpose (BUG()/WARN() and the Xen/KVM emulation prefix): the kernel's handler looks the faulting address up in its bug table, and the slot address is not in it";
const TSX: &str = "a transactional region boundary: xbegin's fallback is rip-relative, and the trap after the copy would abort the transaction every time";

/// Instructions refused whatever their operands, by the decoder's opcode.
pub(crate) static BY_OPCODE: &[(Opcode, Refusal)] = &[
    // Interrupt returns pop rip, cs, rflags, rsp and ss.
    (Opcode::IRET, Refusal::new("iret", "returns from an interrupt by popping rip, cs and rflags: it never reaches the trap after the copy, and emulating it would skip the CPU's privilege checks")),
    (Opcode::IRETD, Refusal::new("iretd", "returns from an interrupt by popping rip, cs and rflags: it never reaches the trap after the copy, and emulating it would skip the CPU's privilege checks")),
    (Opcode::IRETQ, Refusal::new("iretq", "returns from an interrupt by popping rip, cs and rflags: it never reaches the trap after the copy, and emulating it would skip the CPU's privilege checks")),
    (Opcode::UIRET, Refusal::new("uiret", "returns from a user interrupt by popping rip and rflags: it never reaches the trap after the copy")),
    // Far transfers (Linux: "far call/jmp absolute -- segment is not supported").
    (Opcode::RETF, Refusal::new("retf", FAR)),
    (Opcode::CALLF, Refusal::new("call far [mem]", FAR)),
    (Opcode::JMPF, Refusal::new("jmp far [mem]", FAR)),
    // System calls and their returns.
    (Opcode::SYSCALL, Refusal::new("syscall", SYSTEM_CALL)),
    (Opcode::SYSRET, Refusal::new("sysret", SYSTEM_CALL)),
    (Opcode::SYSENTER, Refusal::new("sysenter", SYSTEM_CALL)),
    (Opcode::SYSEXIT, Refusal::new("sysexit", SYSTEM_CALL)),
    (Opcode::SWAPGS, Refusal::new("swapgs", "switches the GS base between user and kernel: it only sits on entry and exit paths, where the trap handler's per-CPU data is not reachable through GS")),
    (Opcode::RSM, Refusal::new("rsm", "returns from system-management mode, restoring rip from SMRAM: #UD outside SMM and never reaches the trap after the copy")),
    // Halting: the out-of-line step runs with interrupts masked.
    (Opcode::HLT, Refusal::new("hlt", "halts until an interrupt arrives, but the out-of-line step runs with interrupts masked: the CPU would never wake")),
    (Opcode::MWAIT, Refusal::new("mwait", "waits for a store or an interrupt, but the out-of-line step runs with interrupts masked: the CPU might never wake")),
    (Opcode::MWAITX, Refusal::new("mwaitx", "waits for a store or an interrupt, but the out-of-line step runs with interrupts masked: the CPU might never wake")),
    // Deliberate #UD (Linux `is_exception_insn`).
    (Opcode::UD0, Refusal::new("ud0", UNDEFINED)),
    (Opcode::UD1, Refusal::new("ud1", UNDEFINED)),
    (Opcode::UD2, Refusal::new("ud2", UNDEFINED)),
    // Transactional memory.
    (Opcode::XBEGIN, Refusal::new("xbegin", TSX)),
    (Opcode::XEND, Refusal::new("xend", TSX)),
    (Opcode::XABORT, Refusal::new("xabort", TSX)),
    // Virtualisation and enclaves (Linux: "VM extensions - not supported").
    (Opcode::VMCALL, Refusal::new("vmcall", VM_TRANSITION)),
    (Opcode::VMMCALL, Refusal::new("vmmcall", VM_TRANSITION)),
    (Opcode::VMLAUNCH, Refusal::new("vmlaunch", VM_TRANSITION)),
    (Opcode::VMRESUME, Refusal::new("vmresume", VM_TRANSITION)),
    (Opcode::VMRUN, Refusal::new("vmrun", VM_TRANSITION)),
    (Opcode::VMXOFF, Refusal::new("vmxoff", VM_TRANSITION)),
    (Opcode::VMFUNC, Refusal::new("vmfunc", VM_TRANSITION)),
    (Opcode::PCONFIG, Refusal::new("pconfig", VM_TRANSITION)),
    (Opcode::TDCALL, Refusal::new("tdcall", VM_TRANSITION)),
    (Opcode::SEAMCALL, Refusal::new("seamcall", VM_TRANSITION)),
    (Opcode::SEAMRET, Refusal::new("seamret", VM_TRANSITION)),
    (Opcode::SEAMOPS, Refusal::new("seamops", VM_TRANSITION)),
    (Opcode::ENCLS, Refusal::new("encls", VM_TRANSITION)),
    (Opcode::ENCLU, Refusal::new("enclu", VM_TRANSITION)),
    (Opcode::ENCLV, Refusal::new("enclv", VM_TRANSITION)),
    (Opcode::GETSEC, Refusal::new("getsec", "SMX leaf functions (SENTER) hand control to an authenticated code module and never come back to the trap after the copy")),
    (Opcode::SKINIT, Refusal::new("skinit", "starts a secure loader and never comes back to the trap after the copy")),
    // Indirect-branch landing pads (Linux moves probes past them:
    // `arch_adjust_kprobe_addr`).
    (Opcode::ENDBR64, Refusal::new("endbr64", "the landing pad of indirect branches under CET IBT: replaced by int3, an indirect call arriving here faults (#CP); probe the instruction after it (a function-entry probe skips it by itself)")),
    (Opcode::ENDBR32, Refusal::new("endbr32", "the landing pad of indirect branches under CET IBT: replaced by int3, an indirect call arriving here faults (#CP); probe the instruction after it")),
];

/// The refusal for `opcode` in [`BY_OPCODE`], if it is listed.
pub(crate) fn by_opcode(opcode: Opcode) -> Option<Refusal> {
    BY_OPCODE
        .iter()
        .find(|(op, _)| *op == opcode)
        .map(|(_, r)| *r)
}

/// The refusal for a one-byte opcode invalid in 64-bit mode, if it is listed.
pub(crate) fn invalid_in_long_mode(opcode: u8) -> Option<Refusal> {
    INVALID_IN_LONG_MODE
        .iter()
        .find(|(op, _)| *op == opcode)
        .map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_no_duplicates_and_every_reason_is_a_sentence() {
        for (i, (op, r)) in BY_OPCODE.iter().enumerate() {
            assert!(
                BY_OPCODE[i + 1..].iter().all(|(o, _)| o != op),
                "{op:?} listed twice"
            );
            assert!(!r.mnemonic.is_empty());
            assert!(r.reason.len() > 20, "{}: reason too short", r.mnemonic);
        }
        for (i, (b, _)) in INVALID_IN_LONG_MODE.iter().enumerate() {
            assert!(INVALID_IN_LONG_MODE[i + 1..].iter().all(|(o, _)| o != b));
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(by_opcode(Opcode::HLT).unwrap().mnemonic, "hlt");
        assert_eq!(by_opcode(Opcode::MOV), None);
        assert_eq!(invalid_in_long_mode(0xce).unwrap().mnemonic, "into");
        assert_eq!(invalid_in_long_mode(0x90), None);
    }
}
