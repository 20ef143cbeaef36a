//! The decision table, instruction class by instruction class, with and
//! without prefixes, through the `Arch` interface; then sweeps over every
//! one- and two-byte opcode and the VEX/EVEX maps.

use std::collections::BTreeSet;
use std::string::ToString;
use std::vec::Vec;

use probe_hal::{Arch, Decoded, ExecMode, Handling, ProbeError, ProbeErrorKind};
use yaxpeax_arch::LengthedInstruction;
use yaxpeax_x86::long_mode::{InstDecoder, Opcode, Operand, RegSpec};

use crate::refusals::{self, contextual};
use crate::{Emulation, Insn, LoopKind, Op, RipRelative, Step, X86_64};

const ADDR: usize = 0xffff_ffff_8100_1000;
const K: ExecMode = ExecMode::Kernel;
const U: ExecMode = ExecMode::User;

fn decode(bytes: &[u8], mode: ExecMode) -> Result<Decoded<Insn>, ProbeError> {
    X86_64::decode(ADDR, bytes, mode)
}

/// The emulation chosen for `bytes`, checking the length too.
fn emulated(bytes: &[u8], mode: ExecMode) -> Emulation {
    let d = decode(bytes, mode).unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"));
    assert_eq!(d.len, bytes.len(), "{bytes:02x?}");
    assert_eq!(d.handling, Handling::Simulate, "{bytes:02x?}");
    match d.insn.op() {
        Op::Emulate(e) => e,
        Op::Step(_) => panic!("{bytes:02x?} is stepped"),
    }
}

/// The step chosen for `bytes`, checking the length and the handling.
fn stepped(bytes: &[u8], mode: ExecMode) -> Step {
    let d = decode(bytes, mode).unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"));
    assert_eq!(d.len, bytes.len(), "{bytes:02x?}");
    match d.insn.op() {
        Op::Step(s) => {
            assert_eq!(
                d.handling,
                Handling::StepOutOfLine {
                    boostable: s.boostable
                }
            );
            s
        }
        Op::Emulate(e) => panic!("{bytes:02x?} is emulated as {e:?}"),
    }
}

/// The refusal's mnemonic for `bytes`, in both modes.
fn refused(bytes: &[u8]) -> &'static str {
    let k = decode(bytes, K).unwrap_err();
    let u = decode(bytes, U).unwrap_err();
    assert_eq!(k, u, "{bytes:02x?}: same refusal in both modes");
    assert_eq!(k.addr(), ADDR);
    match k.kind() {
        ProbeErrorKind::Refused(r) => r.mnemonic,
        other => panic!("{bytes:02x?}: {other:?}"),
    }
}

fn plain(boostable: bool) -> Step {
    Step {
        rip_relative: None,
        boostable,
    }
}

fn rip(disp_offset: u8, disp: i32, boostable: bool) -> Step {
    Step {
        rip_relative: Some(RipRelative {
            disp_offset,
            disp,
            eip: false,
        }),
        boostable,
    }
}

// --- simulated ------------------------------------------------------------

#[test]
fn relative_jumps_and_calls() {
    assert_eq!(emulated(&[0xeb, 0xfe], K), Emulation::Jmp { rel: -2 });
    assert_eq!(
        emulated(&[0xe9, 0x10, 0, 0, 0], U),
        Emulation::Jmp { rel: 0x10 }
    );
    assert_eq!(
        emulated(&[0xe9, 0xf0, 0xff, 0xff, 0xff], K),
        Emulation::Jmp { rel: -0x10 }
    );
    // REX.W and the bnd (f2) prefix do not change a near jmp/call.
    assert_eq!(
        emulated(&[0x48, 0xe9, 0x10, 0, 0, 0], K),
        Emulation::Jmp { rel: 0x10 }
    );
    assert_eq!(
        emulated(&[0xf2, 0xe9, 0x10, 0, 0, 0], K),
        Emulation::Jmp { rel: 0x10 }
    );
    assert_eq!(
        emulated(&[0xe8, 0x00, 0x01, 0, 0], K),
        Emulation::Call { rel: 0x100 }
    );
    assert_eq!(
        emulated(&[0xf2, 0xe8, 0, 0, 0, 0x80], U),
        Emulation::Call { rel: i32::MIN }
    );
    // 0x67 has no effect on a near relative branch in 64-bit mode.
    assert_eq!(
        emulated(&[0x67, 0xe8, 4, 0, 0, 0], K),
        Emulation::Call { rel: 4 }
    );
}

#[test]
fn every_jcc_rel8_and_rel32() {
    for cc in 0..16u8 {
        assert_eq!(
            emulated(&[0x70 + cc, 0x10], K),
            Emulation::Jcc {
                cond: cc,
                rel: 0x10
            }
        );
        assert_eq!(
            emulated(&[0x0f, 0x80 + cc, 0x00, 0xff, 0xff, 0xff], U),
            Emulation::Jcc {
                cond: cc,
                rel: -0x100
            }
        );
    }
    // Branch hints (2e not taken, 3e taken) are segment-override bytes.
    assert_eq!(
        emulated(&[0x2e, 0x74, 0x10], K),
        Emulation::Jcc { cond: 4, rel: 0x10 }
    );
    assert_eq!(
        emulated(&[0x3e, 0x0f, 0x85, 1, 0, 0, 0], K),
        Emulation::Jcc { cond: 5, rel: 1 }
    );
}

#[test]
fn loop_family_with_and_without_address_size_prefix() {
    let lp = |kind, rel, ecx| Emulation::Loop { kind, rel, ecx };
    assert_eq!(emulated(&[0xe0, 0xfe], K), lp(LoopKind::Loopne, -2, false));
    assert_eq!(emulated(&[0xe1, 0x10], K), lp(LoopKind::Loope, 0x10, false));
    assert_eq!(emulated(&[0xe2, 0x10], U), lp(LoopKind::Loop, 0x10, false));
    assert_eq!(emulated(&[0xe3, 0x10], K), lp(LoopKind::Jrcxz, 0x10, false));
    assert_eq!(
        emulated(&[0x67, 0xe3, 0x10], K),
        lp(LoopKind::Jrcxz, 0x10, true)
    );
    assert_eq!(
        emulated(&[0x67, 0xe2, 0x80], U),
        lp(LoopKind::Loop, -0x80, true)
    );
    // REX.W does not make the count 64-bit: it already is.
    assert_eq!(
        emulated(&[0x48, 0xe2, 0x10], K),
        lp(LoopKind::Loop, 0x10, false)
    );
}

#[test]
fn near_returns() {
    assert_eq!(emulated(&[0xc3], K), Emulation::Ret { release: 0 });
    assert_eq!(
        emulated(&[0xc2, 0x10, 0x00], U),
        Emulation::Ret { release: 0x10 }
    );
    assert_eq!(
        emulated(&[0xc2, 0xff, 0xff], K),
        Emulation::Ret { release: 0xffff }
    );
    // rep ret (the old AMD idiom), REX.W ret.
    assert_eq!(emulated(&[0xf3, 0xc3], K), Emulation::Ret { release: 0 });
    assert_eq!(emulated(&[0x48, 0xc3], K), Emulation::Ret { release: 0 });
}

#[test]
fn calls_and_jumps_through_registers() {
    assert_eq!(emulated(&[0xff, 0xd0], K), Emulation::CallReg { reg: 0 });
    assert_eq!(
        emulated(&[0x41, 0xff, 0xd3], U),
        Emulation::CallReg { reg: 11 }
    );
    assert_eq!(emulated(&[0xff, 0xe0], K), Emulation::JmpReg { reg: 0 });
    assert_eq!(
        emulated(&[0x41, 0xff, 0xe7], K),
        Emulation::JmpReg { reg: 15 }
    );
    // notrack (3e) indirect jump, as in switch tables under CET.
    assert_eq!(
        emulated(&[0x3e, 0xff, 0xe1], K),
        Emulation::JmpReg { reg: 1 }
    );
    assert_eq!(
        emulated(&[0x67, 0xff, 0xd4], K),
        Emulation::CallReg { reg: 4 }
    );
}

#[test]
fn calls_and_jumps_through_memory_are_simulated() {
    use crate::{Base, MemOperand};
    let m = |base, index, scale, disp, addr32| MemOperand {
        base,
        index,
        scale,
        disp,
        addr32,
    };
    let call = |bytes: &[u8], mode| match emulated(bytes, mode) {
        Emulation::CallMem { mem } => mem,
        e => panic!("{bytes:02x?}: {e:?}"),
    };
    let jmp = |bytes: &[u8], mode| match emulated(bytes, mode) {
        Emulation::JmpMem { mem } => mem,
        e => panic!("{bytes:02x?}: {e:?}"),
    };
    for mode in [K, U] {
        // call [rax], call [rip + 0x10] (GOT), call [rax + 8] (vtable).
        assert_eq!(
            call(&[0xff, 0x10], mode),
            m(Base::Reg(0), None, 1, 0, false)
        );
        assert_eq!(
            call(&[0xff, 0x15, 0x10, 0, 0, 0], mode),
            m(Base::Rip, None, 1, 0x10, false)
        );
        assert_eq!(
            call(&[0xff, 0x50, 0x08], mode),
            m(Base::Reg(0), None, 1, 8, false)
        );
        // call [r12] (SIB), call [rsp + 8], REX.W call [r11 + 0x100].
        assert_eq!(
            call(&[0x41, 0xff, 0x14, 0x24], mode),
            m(Base::Reg(12), None, 1, 0, false)
        );
        assert_eq!(
            call(&[0xff, 0x54, 0x24, 0x08], mode),
            m(Base::Reg(4), None, 1, 8, false)
        );
        assert_eq!(
            call(&[0x49, 0xff, 0x93, 0, 1, 0, 0], mode),
            m(Base::Reg(11), None, 1, 0x100, false)
        );
        // jmp [rcx*8 + table] (SIB without a base: a non-PIC jump table),
        // notrack, and with a base.
        assert_eq!(
            jmp(&[0xff, 0x24, 0xcd, 0, 0x10, 0x20, 0], mode),
            m(Base::None, Some(1), 8, 0x20_1000, false)
        );
        assert_eq!(
            jmp(&[0x3e, 0xff, 0x24, 0xc5, 0, 0x10, 0, 0], mode),
            m(Base::None, Some(0), 8, 0x1000, false)
        );
        assert_eq!(
            jmp(&[0x42, 0xff, 0x24, 0xc8], mode),
            m(Base::Reg(0), Some(9), 8, 0, false)
        );
        // jmp [rip - 6] (PLT), and the 0x67 forms: [eip + disp], [eax].
        assert_eq!(
            jmp(&[0xff, 0x25, 0xfa, 0xff, 0xff, 0xff], mode),
            m(Base::Rip, None, 1, -6, false)
        );
        assert_eq!(
            jmp(&[0x67, 0xff, 0x25, 0x10, 0, 0, 0], mode),
            m(Base::Rip, None, 1, 0x10, true)
        );
        assert_eq!(
            call(&[0x67, 0xff, 0x10], mode),
            m(Base::Reg(0), None, 1, 0, true)
        );
        // Segment overrides whose base is 0 in 64-bit mode.
        for seg in [0x26, 0x2e, 0x36, 0x3e] {
            assert_eq!(
                call(&[seg, 0xff, 0x10], mode),
                m(Base::Reg(0), None, 1, 0, false)
            );
        }
    }
    // The far forms stay refused, and so does 0x66.
    assert_eq!(refused(&[0xff, 0x18]), "call far [mem]");
    assert_eq!(refused(&[0xff, 0x28]), "jmp far [mem]");
    assert_eq!(refused(&[0x66, 0xff, 0x20]), "66-prefixed branch");
}

#[test]
fn user_shadow_stacks_refuse_simulated_calls_and_returns_in_user_mode() {
    use crate::X86_64UserShadowStack as S;
    let calls_and_returns: [&[u8]; 5] = [
        &[0xe8, 0, 0, 0, 0],
        &[0xff, 0xd0],
        &[0xff, 0x15, 0x10, 0, 0, 0],
        &[0xc3],
        &[0xc2, 0x08, 0],
    ];
    for b in calls_and_returns {
        let e = S::decode(ADDR, b, U).unwrap_err();
        assert_eq!(
            e.kind(),
            ProbeErrorKind::Refused(contextual::USER_SHADOW_STACK),
            "{b:02x?}"
        );
        assert_eq!(e.addr(), ADDR);
        // Kernel mode, and the plain backend, simulate them.
        assert_eq!(S::decode(ADDR, b, K).unwrap().handling, Handling::Simulate);
        assert_eq!(
            X86_64::decode(ADDR, b, U).unwrap().handling,
            Handling::Simulate
        );
    }
    // Jumps and ordinary instructions are untouched in user mode.
    for b in [
        &[0xff, 0x25, 0, 0, 0, 0][..],
        &[0xeb, 0x00],
        &[0xff, 0xe0],
        &[0x74, 0x02],
    ] {
        assert_eq!(
            S::decode(ADDR, b, U).unwrap().handling,
            Handling::Simulate,
            "{b:02x?}"
        );
    }
    assert_eq!(
        S::decode(ADDR, &[0x48, 0x89, 0xe5], U).unwrap().handling,
        Handling::StepOutOfLine { boostable: true }
    );
}

#[test]
fn interrupt_flag_modifiers_are_simulated_in_kernel_mode_only() {
    assert_eq!(emulated(&[0xfa], K), Emulation::Cli);
    assert_eq!(emulated(&[0xfb], K), Emulation::Sti);
    assert_eq!(emulated(&[0x9c], K), Emulation::Pushf { word: false });
    assert_eq!(emulated(&[0x48, 0x9c], K), Emulation::Pushf { word: false });
    assert_eq!(emulated(&[0x66, 0x9c], K), Emulation::Pushf { word: true });
    assert_eq!(emulated(&[0x9d], K), Emulation::Popf { word: false });
    assert_eq!(emulated(&[0x66, 0x9d], K), Emulation::Popf { word: true });
    // User mode: the CPU applies IOPL; the step leaves IF alone.
    for b in [[0xfa], [0xfb], [0x9c], [0x9d]] {
        assert_eq!(stepped(&b, U), plain(true), "{b:02x?}");
    }
    assert_eq!(stepped(&[0x66, 0x9d], U), plain(true));
}

#[test]
fn simulation_through_the_arch_interface() {
    use crate::PtRegs;
    use probe_hal::{DataAccess, MemoryFault};
    use std::cell::RefCell;

    struct Mem(RefCell<Vec<u8>>);
    const BASE: usize = 0x9000;
    impl DataAccess for Mem {
        fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
            let m = self.0.borrow();
            let at = addr.checked_sub(BASE).filter(|a| a + buf.len() <= m.len());
            let at = at.ok_or(MemoryFault { addr })?;
            buf.copy_from_slice(&m[at..at + buf.len()]);
            Ok(())
        }
        fn write(&self, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
            let mut m = self.0.borrow_mut();
            let at = addr.checked_sub(BASE).filter(|a| a + data.len() <= m.len());
            let at = at.ok_or(MemoryFault { addr })?;
            m[at..at + data.len()].copy_from_slice(data);
            Ok(())
        }
    }
    let mem = Mem(RefCell::new(std::vec![0; 64]));
    let mut r = PtRegs {
        rsp: BASE as u64 + 32,
        rip: ADDR as u64 + 1,
        r11: 0x1234_5678,
        ..PtRegs::zeroed()
    };
    // call r11, then ret: back to the instruction after the call.
    let call = decode(&[0x41, 0xff, 0xd3], K).unwrap();
    X86_64::simulate(&call, ADDR, &mut r, &mem).unwrap();
    assert_eq!((r.rip, r.rsp), (0x1234_5678, BASE as u64 + 24));
    assert_eq!(mem.read_word(BASE + 24).unwrap(), ADDR + 3);
    let ret = decode(&[0xc3], K).unwrap();
    X86_64::simulate(&ret, 0x1234_5678, &mut r, &mem).unwrap();
    assert_eq!((r.rip as usize, r.rsp), (ADDR + 3, BASE as u64 + 32));
    // A stack out of reach: the fault is reported, nothing moves.
    r.rsp = 0x10;
    let before = r;
    assert_eq!(
        X86_64::simulate(&call, ADDR, &mut r, &mem),
        Err(MemoryFault { addr: 0x8 })
    );
    assert_eq!(r, before);
}

// --- refused --------------------------------------------------------------

/// One encoding for every refusal, with the mnemonic it must produce.
const REFUSED: &[(&[u8], &str)] = &[
    (&[0xcc], "int3"),
    (&[0xcd, 0x80], "int n"),
    (&[0xcd, 0x03], "int n"),
    (&[0xf1], "int1"),
    (&[0xce], "into"),
    (&[0x17], "pop ss"),
    (&[0x9a, 0, 0, 0, 0, 0x10, 0], "call far ptr16:32"),
    (&[0xea, 0, 0, 0, 0, 0x10, 0], "jmp far ptr16:32"),
    (&[0x66, 0xcf], "iret"),
    (&[0xcf], "iretd"),
    (&[0x48, 0xcf], "iretq"),
    (&[0xf3, 0x0f, 0x01, 0xec], "uiret"),
    (&[0xcb], "retf"),
    (&[0x48, 0xcb], "retf"),
    (&[0xca, 0x08, 0x00], "retf"),
    (&[0xff, 0x18], "call far [mem]"),
    (&[0x41, 0xff, 0x2c, 0x24], "jmp far [mem]"),
    (&[0x0f, 0x05], "syscall"),
    (&[0x0f, 0x07], "sysret"),
    (&[0x48, 0x0f, 0x07], "sysret"),
    (&[0x0f, 0x34], "sysenter"),
    (&[0x0f, 0x35], "sysexit"),
    (&[0x0f, 0x01, 0xf8], "swapgs"),
    (&[0x0f, 0xaa], "rsm"),
    (&[0xf4], "hlt"),
    (&[0x0f, 0x01, 0xc9], "mwait"),
    (&[0x0f, 0x01, 0xfb], "mwaitx"),
    (&[0x0f, 0xff, 0x00], "ud0"),
    (&[0x0f, 0xb9, 0x00], "ud1"),
    (&[0x0f, 0x0b], "ud2"),
    (&[0x0f, 0x0b, 0x78, 0x65, 0x6e], "ud2"), // Xen's emulate prefix
    (&[0xc7, 0xf8, 0, 0, 0, 0], "xbegin"),
    (&[0x0f, 0x01, 0xd5], "xend"),
    (&[0xc6, 0xf8, 0x01], "xabort"),
    (&[0x0f, 0x01, 0xc1], "vmcall"),
    (&[0x0f, 0x01, 0xd9], "vmmcall"),
    (&[0x0f, 0x01, 0xc2], "vmlaunch"),
    (&[0x0f, 0x01, 0xc3], "vmresume"),
    (&[0x0f, 0x01, 0xd8], "vmrun"),
    (&[0x0f, 0x01, 0xc4], "vmxoff"),
    (&[0x0f, 0x01, 0xd4], "vmfunc"),
    (&[0x0f, 0x01, 0xc5], "pconfig"),
    (&[0x66, 0x0f, 0x01, 0xcc], "tdcall"),
    (&[0x66, 0x0f, 0x01, 0xcf], "seamcall"),
    (&[0x66, 0x0f, 0x01, 0xcd], "seamret"),
    (&[0x66, 0x0f, 0x01, 0xce], "seamops"),
    (&[0x0f, 0x01, 0xcf], "encls"),
    (&[0x0f, 0x01, 0xd7], "enclu"),
    (&[0x0f, 0x01, 0xc0], "enclv"),
    (&[0x0f, 0x37], "getsec"),
    (&[0x0f, 0x01, 0xde], "skinit"),
    (&[0xf3, 0x0f, 0x1e, 0xfa], "endbr64"),
    (&[0xf3, 0x0f, 0x1e, 0xfb], "endbr32"),
    // mov ss: register, memory, REX.B register.
    (&[0x8e, 0xd0], "mov ss"),
    (&[0x8e, 0x10], "mov ss"),
    (&[0x41, 0x8e, 0xd0], "mov ss"),
    // call/jmp through fs:/gs: memory (every other memory form is
    // simulated): gs-absolute, fs with a base, after other prefixes.
    (
        &[0x65, 0xff, 0x14, 0x25, 0x10, 0, 0, 0],
        "call fs:/gs:[mem]",
    ),
    (&[0x64, 0xff, 0x10], "call fs:/gs:[mem]"),
    (
        &[0x65, 0x67, 0x41, 0xff, 0x54, 0x24, 0x08],
        "call fs:/gs:[mem]",
    ),
    (&[0x64, 0xff, 0x24, 0x25, 0x28, 0, 0, 0], "jmp fs:/gs:[mem]"),
    (&[0x3e, 0x65, 0xff, 0x20], "jmp fs:/gs:[mem]"),
    // 0x66 on every kind of near branch.
    (&[0x66, 0xeb, 0x10], "66-prefixed branch"),
    (&[0x66, 0xe9, 0, 0, 0, 0], "66-prefixed branch"),
    (&[0x66, 0xe8, 0, 0, 0, 0], "66-prefixed branch"),
    (&[0x66, 0x74, 0x10], "66-prefixed branch"),
    (&[0x66, 0x0f, 0x84, 0, 0, 0, 0], "66-prefixed branch"),
    (&[0x66, 0xe2, 0x10], "66-prefixed branch"),
    (&[0x66, 0xe3, 0x10], "66-prefixed branch"),
    (&[0x66, 0xc3], "66-prefixed branch"),
    (&[0x66, 0xc2, 0x10, 0], "66-prefixed branch"),
    (&[0x66, 0xff, 0xd0], "66-prefixed branch"),
    (&[0x66, 0xff, 0xe0], "66-prefixed branch"),
    (&[0x66, 0xff, 0x10], "66-prefixed branch"),
];

#[test]
fn every_refusal_with_its_encoding() {
    for (bytes, mnemonic) in REFUSED {
        assert_eq!(refused(bytes), *mnemonic, "{bytes:02x?}");
    }
}

#[test]
fn every_table_row_is_exercised() {
    let produced: BTreeSet<&str> = REFUSED.iter().map(|(_, m)| *m).collect();
    let mut expected: Vec<&str> = refusals::BY_OPCODE
        .iter()
        .map(|(_, r)| r.mnemonic)
        .collect();
    expected.extend(
        refusals::INVALID_IN_LONG_MODE
            .iter()
            .map(|(_, r)| r.mnemonic),
    );
    expected.extend([
        refusals::INT3.mnemonic,
        refusals::INT_N.mnemonic,
        refusals::INT1.mnemonic,
        contextual::MOV_SS.mnemonic,
        contextual::CALL_MEM_FS_GS.mnemonic,
        contextual::JMP_MEM_FS_GS.mnemonic,
        contextual::BRANCH_O16.mnemonic,
    ]);
    for m in expected {
        assert!(produced.contains(m), "no test encoding produces `{m}`");
    }
}

#[test]
fn refusal_message_names_the_instruction_and_the_reason() {
    let e = decode(&[0xf4], K).unwrap_err();
    assert_eq!(
        e.to_string(),
        std::format!(
            "cannot probe {ADDR:#x}: refused instruction `hlt`: halts until an interrupt arrives, but the out-of-line step runs with interrupts masked: the CPU would never wake"
        )
    );
}

#[test]
fn undecodable_bytes() {
    for bytes in [
        &[][..],
        &[0x06],                   // push es: invalid in 64-bit mode
        &[0xd6],                   // salc
        &[0x0f, 0x04],             // reserved
        &[0xf0, 0x90],             // lock nop
        &[0xe8, 0x00],             // truncated call
        &[0x66; 16],               // prefixes only, longer than 15 bytes
        &[0x0f, 0xb8, 0xc0, 0, 0], // jmpe: not in 64-bit mode
    ] {
        assert_eq!(
            decode(bytes, K).unwrap_err().kind(),
            ProbeErrorKind::Undecodable,
            "{bytes:02x?}"
        );
        assert_eq!(X86_64::insn_len(bytes), None);
    }
}

// --- stepped --------------------------------------------------------------

#[test]
fn ordinary_instructions_are_stepped_and_boosted_like_linux() {
    assert_eq!(stepped(&[0x90], K), plain(true));
    assert_eq!(stepped(&[0x48, 0x89, 0xe5], K), plain(true)); // mov rbp, rsp (REX.W)
    assert_eq!(stepped(&[0x55], K), plain(true)); // push rbp
    assert_eq!(stepped(&[0x41, 0x5f], U), plain(true)); // pop r15 (REX.B)
    assert_eq!(stepped(&[0xc8, 0x10, 0, 0], K), plain(true)); // enter
    assert_eq!(stepped(&[0xc9], K), plain(true)); // leave
    assert_eq!(stepped(&[0xf3, 0x48, 0xa5], K), plain(true)); // rep movsq
    assert_eq!(stepped(&[0x0f, 0x31], K), plain(true)); // rdtsc
    assert_eq!(stepped(&[0x0f, 0xa2], K), plain(false)); // cpuid
    assert_eq!(stepped(&[0x0f, 0x20, 0xc0], K), plain(true)); // mov rax, cr0
    assert_eq!(stepped(&[0x0f, 0x01, 0xca], K), plain(false)); // clac
    assert_eq!(stepped(&[0xe4, 0x60], K), plain(true)); // in al, 0x60
    assert_eq!(stepped(&[0xd9, 0xc0], K), plain(false)); // fld st0 (x87)
    assert_eq!(stepped(&[0x9b], K), plain(true)); // wait
    assert_eq!(stepped(&[0x8e, 0xd8], K), plain(true)); // mov ds, ax (not ss)
    assert_eq!(stepped(&[0x8c, 0xd0], K), plain(true)); // mov eax, ss (reads ss)
    assert_eq!(stepped(&[0x0f, 0x01, 0xc8], K), plain(false)); // monitor
    assert_eq!(stepped(&[0xff, 0x30], K), plain(false)); // push [rax]
    assert_eq!(stepped(&[0xff, 0xc0], K), plain(true)); // inc eax
    assert_eq!(stepped(&[0xf7, 0xd8], K), plain(true)); // neg eax
    assert_eq!(stepped(&[0xf0, 0x48, 0x0f, 0xc1, 0x07], K), plain(true)); // lock xadd [rdi], rax
                                                                          // Segment override and CS override.
    assert_eq!(
        stepped(&[0x65, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0], K),
        plain(true)
    );
    assert_eq!(stepped(&[0x2e, 0x48, 0x89, 0xe5], K), plain(false));
    // Address-size prefix on a memory operand: stepped, not boosted.
    assert_eq!(stepped(&[0x67, 0x8b, 0x07], K), plain(false));
    // Operand-size prefix on a non-branch.
    assert_eq!(stepped(&[0x66, 0x89, 0xc8], K), plain(true));
}

#[test]
fn long_instructions() {
    // movabs rax, imm64 (10 bytes)
    let movabs = [0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8];
    assert_eq!(stepped(&movabs, K), plain(true));
    // mov qword [rsp + 0x100], imm32 (12 bytes)
    let store = [0x48, 0xc7, 0x84, 0x24, 0, 1, 0, 0, 0x78, 0x56, 0x34, 0x12];
    assert_eq!(stepped(&store, K), plain(true));
    // A 15-byte nop: six 66 prefixes and a cs override.
    let nop15 = [
        0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0,
    ];
    assert_eq!(stepped(&nop15, K), plain(false));
    assert_eq!(X86_64::insn_len(&nop15), Some(15));
    // Trailing bytes beyond the instruction are ignored.
    let mut more = movabs.to_vec();
    more.extend([0xcc; 8]);
    assert_eq!(X86_64::decode(ADDR, &more, K).unwrap().len, 10);
}

#[test]
fn rip_relative_operands_are_located() {
    // mov rax, [rip + 0x10]; lea rax, [rip + 0x10]
    assert_eq!(
        stepped(&[0x48, 0x8b, 0x05, 0x10, 0, 0, 0], K),
        rip(3, 0x10, true)
    );
    assert_eq!(
        stepped(&[0x48, 0x8d, 0x05, 0xf0, 0xff, 0xff, 0xff], U),
        rip(3, -0x10, true)
    );
    // A zero displacement (decoded as [rip]).
    assert_eq!(stepped(&[0x8b, 0x05, 0, 0, 0, 0], K), rip(2, 0, true));
    // mov dword [rip + 0x10], imm32: the immediate follows the displacement.
    assert_eq!(
        stepped(&[0xc7, 0x05, 0x10, 0, 0, 0, 0x78, 0x56, 0x34, 0x12], K),
        rip(2, 0x10, true)
    );
    // cmp word [rip + 0x10], imm16 with the operand-size prefix.
    assert_eq!(
        stepped(&[0x66, 0x81, 0x3d, 0x10, 0, 0, 0, 0x78, 0x56], K),
        rip(3, 0x10, true)
    );
    // cmp byte [rip + x], imm8
    assert_eq!(
        stepped(&[0x80, 0x3d, 0x44, 0x33, 0x22, 0x11, 0x7f], K),
        rip(2, 0x1122_3344, true)
    );
    // push qword [rip]: fixed up, not boosted (ff /6).
    assert_eq!(stepped(&[0xff, 0x35, 8, 0, 0, 0], K), rip(2, 8, false));
    // fs: segment override: the relocation keeps fs.base + target.
    assert_eq!(
        stepped(&[0x64, 0x48, 0x8b, 0x05, 0x10, 0, 0, 0], K),
        rip(4, 0x10, true)
    );
    // lock cmpxchg [rip], rcx
    assert_eq!(
        stepped(&[0xf0, 0x48, 0x0f, 0xb1, 0x0d, 0, 0, 0, 0], K),
        rip(5, 0, true)
    );
    // cs override: located, not boosted.
    assert_eq!(
        stepped(&[0x2e, 0x48, 0x8b, 0x05, 0x10, 0, 0, 0], K),
        rip(4, 0x10, false)
    );
    // 0x67: [eip + disp]
    assert_eq!(
        stepped(&[0x67, 0x48, 0x8b, 0x05, 0x10, 0, 0, 0], K),
        Step {
            rip_relative: Some(RipRelative {
                disp_offset: 4,
                disp: 0x10,
                eip: true
            }),
            boostable: false
        }
    );
    // VEX: vmovdqa xmm0, [rip]
    assert_eq!(
        stepped(&[0xc5, 0xf9, 0x6f, 0x05, 0x20, 0, 0, 0], K),
        rip(4, 0x20, true)
    );
    // VEX with an is4 register byte after the displacement: vblendvps.
    assert_eq!(
        stepped(&[0xc4, 0xe3, 0x79, 0x4a, 0x05, 0x20, 0, 0, 0, 0x10], K),
        rip(5, 0x20, true)
    );
    // EVEX: vmovups zmm0, [rip + 0x40] (no disp8*N compression for rip)
    assert_eq!(
        stepped(&[0x62, 0xf1, 0x7c, 0x48, 0x10, 0x05, 0x40, 0, 0, 0], K),
        rip(6, 0x40, true)
    );
    // Three-byte map with an imm8: palignr xmm0, [rip], 8.
    assert_eq!(
        stepped(&[0x66, 0x0f, 0x3a, 0x0f, 0x05, 0, 1, 0, 0, 0x08], K),
        rip(5, 0x100, false)
    );
    // 3DNow!: the opcode byte comes after the displacement.
    assert_eq!(
        stepped(&[0x0f, 0x0f, 0x05, 0, 0, 1, 0, 0xb4], K),
        rip(3, 0x10000, false)
    );
    // fxsave [rip] (REX.W)
    assert_eq!(
        stepped(&[0x48, 0x0f, 0xae, 0x05, 0, 0, 0, 0], K),
        rip(4, 0, false)
    );
}

#[test]
fn a_rip_relative_copy_runs_the_same_access_from_the_slot() {
    // mov rax, [rip + 0x10] at ADDR, copied to a slot 1 GiB below: the copy
    // must address ADDR + 7 + 0x10.
    let orig = [0x48, 0x8b, 0x05, 0x10, 0, 0, 0];
    let d = decode(&orig, K).unwrap();
    let slot = ADDR - (1 << 30);
    let img = X86_64::build_slot(&d, &orig, ADDR, slot, K, false).unwrap();
    let copy = InstDecoder::default().decode_slice(img.as_bytes()).unwrap();
    assert_eq!(copy.len().to_const(), 7);
    match copy.operand(1) {
        Operand::Disp { base, disp } => {
            assert_eq!(base, RegSpec::rip());
            assert_eq!(slot + 7 + disp as usize, ADDR + 7 + 0x10);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(img.step_end, Some(7));
}

#[test]
fn entry_skip_and_breakpoints() {
    assert_eq!(X86_64::entry_skip(&[0xf3, 0x0f, 0x1e, 0xfa, 0x55]), 4);
    assert_eq!(X86_64::entry_skip(&[0xf3, 0x0f, 0x1e, 0xfb]), 0);
    assert_eq!(X86_64::entry_skip(&[0x55, 0x48, 0x89, 0xe5]), 0);
    assert_eq!(X86_64::entry_skip(&[0xf3, 0x0f, 0x1e]), 0);
    assert_eq!(X86_64::breakpoint(7, K).as_bytes(), &[0xcc]);
    assert_eq!(X86_64::return_breakpoint(U).as_bytes(), &[0xcc]);
    assert_eq!(X86_64::trap_address(ADDR + 1), ADDR);
    assert_eq!(X86_64::SLOT_LEN, 32);
    assert_eq!((X86_64::INSN_ALIGN, X86_64::MAX_INSN_LEN), (1, 15));
}

#[test]
fn insn_len_walks_a_function() {
    // endbr64; push rbp; mov rbp, rsp; mov eax, [rip+0x10]; pop rbp; ret
    let code = [
        0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5, 0x8b, 0x05, 0x10, 0, 0, 0, 0x5d, 0xc3,
    ];
    let mut at = 0;
    let mut starts = Vec::new();
    while at < code.len() {
        starts.push(at);
        at += X86_64::insn_len(&code[at..]).unwrap();
    }
    assert_eq!(starts, [0, 4, 5, 8, 14, 15]);
}

// --- sweeps ---------------------------------------------------------------

/// Opcodes that transfer control or leave the instruction stream: none of
/// them may ever be stepped out of line. Written independently of the
/// decision tables.
const NEVER_STEPPED: &[Opcode] = &[
    Opcode::JMP,
    Opcode::CALL,
    Opcode::RETURN,
    Opcode::JMPF,
    Opcode::CALLF,
    Opcode::RETF,
    Opcode::JO,
    Opcode::JNO,
    Opcode::JB,
    Opcode::JNB,
    Opcode::JZ,
    Opcode::JNZ,
    Opcode::JA,
    Opcode::JNA,
    Opcode::JS,
    Opcode::JNS,
    Opcode::JP,
    Opcode::JNP,
    Opcode::JL,
    Opcode::JGE,
    Opcode::JLE,
    Opcode::JG,
    Opcode::LOOP,
    Opcode::LOOPZ,
    Opcode::LOOPNZ,
    Opcode::JRCXZ,
    Opcode::JECXZ,
    Opcode::INT,
    Opcode::INTO,
    Opcode::IRET,
    Opcode::IRETD,
    Opcode::IRETQ,
    Opcode::UIRET,
    Opcode::SYSCALL,
    Opcode::SYSRET,
    Opcode::SYSENTER,
    Opcode::SYSEXIT,
    Opcode::XBEGIN,
    Opcode::XABORT,
    Opcode::UD0,
    Opcode::UD1,
    Opcode::UD2,
    Opcode::HLT,
    Opcode::RSM,
    Opcode::VMLAUNCH,
    Opcode::VMRESUME,
    Opcode::VMRUN,
    Opcode::VMCALL,
    Opcode::VMMCALL,
    Opcode::ENCLU,
    Opcode::ENCLS,
    Opcode::ENCLV,
];

/// In kernel mode these are simulated, never stepped.
const IF_MODIFIERS: &[Opcode] = &[Opcode::CLI, Opcode::STI, Opcode::PUSHF, Opcode::POPF];

/// Checks one encoding; returns whether it was accepted.
fn check(bytes: &[u8], mode: ExecMode) -> bool {
    let yax = InstDecoder::default().decode_slice(bytes);
    let Ok(d) = decode(bytes, mode) else {
        return false;
    };
    let Ok(insn) = yax else {
        // Only the opmask fallback accepts what yaxpeax rejects: stepped,
        // with its length (checked against iced in tests/iced_differential).
        let k = crate::opmask::decode(bytes).expect("accepted bytes decode");
        assert_eq!(d.len, k.len, "{bytes:02x?}");
        assert_eq!(X86_64::insn_len(bytes), Some(k.len));
        assert!(matches!(d.handling, Handling::StepOutOfLine { .. }));
        match d.insn.op() {
            Op::Step(step) => assert_eq!(
                step.rip_relative.map(|r| (r.disp_offset, r.disp, r.eip)),
                k.rip_relative.map(|r| (r.offset, r.disp, r.eip))
            ),
            Op::Emulate(e) => panic!("{bytes:02x?}: opmask emulated as {e:?}"),
        }
        return true;
    };
    let len = insn.len().to_const() as usize;
    assert_eq!(d.len, len, "{bytes:02x?}");
    assert_eq!(X86_64::insn_len(bytes), Some(len));
    let has_rip = (0..insn.operand_count()).any(|i| {
        matches!(
            insn.operand(i),
            Operand::Disp { base, .. } | Operand::MemDeref { base } | Operand::DispMasked { base, .. } | Operand::MemDerefMasked { base, .. }
                if base == RegSpec::rip() || base == RegSpec::eip()
        )
    });
    match d.insn.op() {
        Op::Emulate(Emulation::CallMem { mem } | Emulation::JmpMem { mem }) => {
            assert_eq!(mem.base == crate::Base::Rip, has_rip, "{bytes:02x?}");
            assert_eq!(yaxpeax_operand(&mem), insn.operand(0), "{bytes:02x?}");
        }
        Op::Emulate(_) => assert!(!has_rip, "{bytes:02x?}"),
        Op::Step(step) => {
            assert!(
                !NEVER_STEPPED.contains(&insn.opcode()),
                "{bytes:02x?} ({:?}) is stepped",
                insn.opcode()
            );
            if mode == K {
                assert!(!IF_MODIFIERS.contains(&insn.opcode()), "{bytes:02x?}");
            }
            assert_eq!(step.rip_relative.is_some(), has_rip, "{bytes:02x?}");
            if let Some(r) = step.rip_relative {
                // Rewriting the located bytes must change exactly the
                // displacement the decoder sees, nothing else.
                let at = r.disp_offset as usize;
                let new = r.disp ^ 0x5a3c_1e0f;
                let mut moved = bytes[..len].to_vec();
                moved[at..at + 4].copy_from_slice(&new.to_le_bytes());
                let again = InstDecoder::default().decode_slice(&moved).unwrap();
                assert_eq!(again.opcode(), insn.opcode(), "{bytes:02x?}");
                assert_eq!(again.len().to_const() as usize, len);
                let disp = (0..again.operand_count()).find_map(|i| match again.operand(i) {
                    Operand::Disp { disp, .. } | Operand::DispMasked { disp, .. } => Some(disp),
                    _ => None,
                });
                assert_eq!(disp, Some(new), "{bytes:02x?}: displacement at {at}");
            }
        }
    }
    true
}

/// The operand yaxpeax-x86 reports for our parsed memory operand (a second
/// opinion on the ModRM/SIB parsing; iced checks the addresses).
fn yaxpeax_operand(m: &crate::MemOperand) -> Operand {
    use crate::Base;
    let reg = |n: u8| {
        if m.addr32 {
            RegSpec::d(n)
        } else {
            RegSpec::q(n)
        }
    };
    let ip = if m.addr32 {
        RegSpec::eip()
    } else {
        RegSpec::rip()
    };
    let (disp, scale) = (m.disp, m.scale);
    match (m.base, m.index) {
        (Base::Rip, _) if disp == 0 => Operand::MemDeref { base: ip },
        (Base::Rip, _) => Operand::Disp { base: ip, disp },
        (Base::Reg(b), None) if disp == 0 => Operand::MemDeref { base: reg(b) },
        (Base::Reg(b), None) => Operand::Disp { base: reg(b), disp },
        // yaxpeax shows the disp32 as it is encoded; the CPU sign-extends
        // it without 0x67 (iced's addresses check that).
        (Base::None, None) => Operand::AbsoluteU32 { addr: disp as u32 },
        (Base::None, Some(i)) if disp == 0 => Operand::MemIndexScale {
            index: reg(i),
            scale,
        },
        (Base::None, Some(i)) => Operand::MemIndexScaleDisp {
            index: reg(i),
            scale,
            disp,
        },
        (Base::Reg(b), Some(i)) if disp == 0 => Operand::MemBaseIndexScale {
            base: reg(b),
            index: reg(i),
            scale,
        },
        (Base::Reg(b), Some(i)) => Operand::MemBaseIndexScaleDisp {
            base: reg(b),
            index: reg(i),
            scale,
            disp,
        },
    }
}

const TAILS: &[[u8; 6]] = &[
    [0x00, 0x11, 0x22, 0x33, 0x44, 0x55],
    [0x05, 0x78, 0x56, 0x34, 0x12, 0x7f], // rip-relative ModRM
    [0x3d, 0xf0, 0xff, 0xff, 0xff, 0x01], // rip-relative, reg = 7
    [0x15, 0x00, 0x00, 0x00, 0x00, 0x02], // rip-relative, reg = 2, disp 0
    [0x25, 0x10, 0x00, 0x00, 0x00, 0x03], // rip-relative, reg = 4
    [0xc0, 0x11, 0x22, 0x33, 0x44, 0x55],
    [0xd0, 0x11, 0x22, 0x33, 0x44, 0x55],
    [0xe0, 0x11, 0x22, 0x33, 0x44, 0x55],
    [0xf8, 0x11, 0x22, 0x33, 0x44, 0x55],
    [0x44, 0x24, 0x08, 0x33, 0x44, 0x55],
    [0x84, 0x24, 0x00, 0x01, 0x00, 0x00],
    [0x14, 0xcd, 0x00, 0x10, 0x20, 0x00], // SIB without a base, reg = 2
    [0x24, 0x25, 0xf0, 0xff, 0xff, 0xff], // SIB: disp32 alone, reg = 4
    [0x54, 0x8b, 0x20, 0x33, 0x44, 0x55], // SIB + disp8, reg = 2
    [0xa4, 0x61, 0x00, 0x01, 0x00, 0x00], // SIB (index 100) + disp32, reg = 4
];

const PREFIXES: &[&[u8]] = &[
    &[],
    &[0x66],
    &[0x67],
    &[0xf3],
    &[0xf2],
    &[0x48],
    &[0x41],
    &[0x2e],
    &[0x64],
    &[0xf0],
    &[0x66, 0x48],
];

fn encoding(prefix: &[u8], opcode: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.extend_from_slice(opcode);
    v.extend_from_slice(tail);
    v.extend_from_slice(&[0x11; 8]);
    v
}

#[test]
fn sweep_one_and_two_byte_opcodes() {
    let mut accepted = 0;
    let mut rip_relative = 0;
    for prefix in PREFIXES {
        for tail in TAILS {
            for op in 0..=255u8 {
                for opcode in [&[op][..], &[0x0f, op][..]] {
                    let bytes = encoding(prefix, opcode, tail);
                    for mode in [K, U] {
                        if check(&bytes, mode) {
                            accepted += 1;
                            if let Ok(Decoded { insn: i, .. }) = decode(&bytes, mode) {
                                if let Op::Step(Step {
                                    rip_relative: Some(_),
                                    ..
                                }) = i.op()
                                {
                                    rip_relative += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    std::println!("{accepted} accepted, {rip_relative} rip-relative");
    // The sweep must have covered a real share of the instruction set.
    assert!(accepted > 80_000, "only {accepted} encodings accepted");
    assert!(rip_relative > 15_000, "only {rip_relative} rip-relative");
}

#[test]
fn sweep_three_byte_vex_and_evex_maps() {
    let mut rip_relative = 0;
    for op in 0..=255u8 {
        let tail = [0x05, 0x44, 0x33, 0x22, 0x11, 0x08];
        let forms: [&[u8]; 8] = [
            &[0x0f, 0x38, op],
            &[0x66, 0x0f, 0x38, op],
            &[0x66, 0x0f, 0x3a, op],
            &[0xc5, 0xf9, op],
            &[0xc4, 0xe2, 0x79, op],
            &[0xc4, 0xe3, 0x79, op],
            &[0x62, 0xf1, 0x7c, 0x48, op],
            &[0x62, 0xf2, 0xfd, 0x48, op],
        ];
        for form in forms {
            let bytes = encoding(&[], form, &tail);
            if check(&bytes, K) {
                if let Op::Step(Step {
                    rip_relative: Some(r),
                    ..
                }) = decode(&bytes, K).unwrap().insn.op()
                {
                    assert_eq!(r.disp, 0x1122_3344);
                    rip_relative += 1;
                }
            }
        }
    }
    assert!(rip_relative > 400, "only {rip_relative} rip-relative");
}

// --- what yaxpeax rejects: the opmask fallback ------------------------------

#[test]
fn opmask_instructions_are_stepped_through_the_fallback() {
    // The reproducers of the coverage issue, all boosted like other VEX.
    for bytes in [
        &[0xc5, 0xfb, 0x93, 0xc0][..],         // kmovd eax, k0
        &[0xc4, 0xe1, 0xfb, 0x92, 0xcb],       // kmovq k1, rbx
        &[0xc4, 0xe1, 0xf8, 0x98, 0xc0],       // kortestq k0, k0
        &[0xc4, 0xe1, 0xfc, 0x46, 0xc9],       // kxnorq k1, k0, k1
        &[0xc5, 0xed, 0x4b, 0xcb],             // kunpckbw k1, k2, k3
        &[0xc4, 0xe3, 0xf9, 0x30, 0xca, 0x05], // kshiftrw k1, k2, 5
    ] {
        assert!(
            InstDecoder::default().decode_slice(bytes).is_err(),
            "{bytes:02x?}: yaxpeax decodes it now"
        );
        for mode in [K, U] {
            assert_eq!(stepped(bytes, mode), plain(true), "{bytes:02x?}");
        }
        assert_eq!(X86_64::insn_len(bytes), Some(bytes.len()));
    }
    // Memory forms: kmovw k1, [rip + 0x100]; kmovq [rsp + 8], k2.
    let load = [0xc5, 0xf8, 0x90, 0x0d, 0x00, 0x01, 0x00, 0x00];
    assert_eq!(stepped(&load, K), rip(4, 0x100, true));
    assert_eq!(
        stepped(&[0xc4, 0xe1, 0xf8, 0x91, 0x54, 0x24, 0x08], U),
        plain(true)
    );
    // Still undecodable: a register-form store, a k8 operand.
    for bytes in [&[0xc5, 0xf8, 0x91, 0xc8][..], &[0xc5, 0x7c, 0x45, 0xc1]] {
        let e = decode(bytes, K).unwrap_err();
        assert_eq!(e.kind(), ProbeErrorKind::Undecodable, "{bytes:02x?}");
        assert_eq!(X86_64::insn_len(bytes), None);
    }
}

#[test]
fn a_rip_relative_opmask_load_is_relocated_in_its_slot() {
    // kmovq k1, [rip - 0x20] at ADDR, copied to a slot 1 MiB below.
    let orig = [0xc4, 0xe1, 0xf8, 0x90, 0x0d, 0xe0, 0xff, 0xff, 0xff];
    let d = decode(&orig, K).unwrap();
    let slot = ADDR - 0x10_0000;
    let image = X86_64::build_slot(&d, &orig, ADDR, slot, K, false).unwrap();
    let bytes = image.as_bytes();
    assert_eq!(&bytes[..5], &orig[..5]);
    // The slot copy reads the same address: ADDR + 9 - 0x20.
    let disp = i32::from_le_bytes(bytes[5..9].try_into().unwrap());
    let target = (slot + 9).wrapping_add(disp as isize as usize);
    assert_eq!(target, ADDR + 9 - 0x20);
    assert_eq!(bytes[9], 0xcc);
    assert_eq!(image.step_end, Some(9));
}

#[test]
fn insn_len_walks_past_opmask_instructions() {
    // The shape of glibc's __strlen_evex: vpcmpeqb k0, ...; kmovd eax, k0;
    // test eax, eax; ret
    let code = [
        0x62, 0xb3, 0x7d, 0x20, 0x3f, 0x01, 0x00, // vpcmpb k0, ymm16, [rcx], 0 (vpcmpeqb)
        0xc5, 0xfb, 0x93, 0xc0, // kmovd eax, k0
        0x85, 0xc0, // test eax, eax
        0xc3, // ret
    ];
    let mut at = 0;
    let mut starts = Vec::new();
    while at < code.len() {
        starts.push(at);
        at += X86_64::insn_len(&code[at..]).unwrap_or_else(|| panic!("stuck at {at}"));
    }
    assert_eq!(starts, [0, 7, 11, 13]);
}

#[test]
fn pushf_and_popf_with_66_and_rex_w_are_64_bit() {
    // REX.W wins over 66 (found by the iced differential): pushfq/popfq.
    assert_eq!(
        emulated(&[0x66, 0x48, 0x9c], K),
        Emulation::Pushf { word: false }
    );
    assert_eq!(
        emulated(&[0x66, 0x48, 0x9d], K),
        Emulation::Popf { word: false }
    );
    assert_eq!(emulated(&[0x66, 0x9c], K), Emulation::Pushf { word: true });
    // A REX before the 66 is dropped by the CPU: 16-bit again.
    assert_eq!(
        emulated(&[0x48, 0x66, 0x9d], K),
        Emulation::Popf { word: true }
    );
}
