//! Eligibility on hand-assembled functions (every [`SiteRule`]), the detour's
//! code decoded by iced-x86, and a differential test of the analysis against
//! iced-x86 over the functions of this test binary and the host's libc.

use super::detour::{self, DETOUR_LEN};
use super::region::analyze;
use crate::X86_64;
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind};
use probe_hal::{Arch, DataAccess, ExecMode, MemoryFault, OptRegion, SiteRule, MAX_OPT_REGION};
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

const BASE: usize = 0xffff_ff00_0100_0000;
const K: ExecMode = ExecMode::Kernel;

/// Text at `base`; reads outside it (or at `hole`) fail.
struct Mem {
    base: usize,
    bytes: Vec<u8>,
    hole: Option<usize>,
}

impl DataAccess for Mem {
    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        if let Some(h) = self.hole {
            if (addr..addr + buf.len()).contains(&h) {
                return Err(MemoryFault { addr: h });
            }
        }
        let off = addr.wrapping_sub(self.base);
        match self.bytes.get(off..off + buf.len()) {
            Some(b) => {
                buf.copy_from_slice(b);
                Ok(())
            }
            None => Err(MemoryFault { addr }),
        }
    }
    fn write(&self, addr: usize, _: &[u8]) -> Result<(), MemoryFault> {
        Err(MemoryFault { addr })
    }
}

fn mem(bytes: &[u8]) -> Mem {
    Mem {
        base: BASE,
        bytes: bytes.to_vec(),
        hole: None,
    }
}

fn never(_: usize) -> bool {
    false
}

/// Analyze the probe at `BASE + off` in a function made of `code`.
fn at(code: &[u8], off: usize) -> Result<OptRegion, SiteRule> {
    analyze(BASE + off, BASE..BASE + code.len(), &mem(code), &never, K)
}

/// push rbp; mov rbp, rsp; mov rax, rdi; add rax, rsi; pop rbp; ret
const PROLOGUE: &[u8] = &[
    0x55, 0x48, 0x89, 0xe5, 0x48, 0x89, 0xf8, 0x48, 0x01, 0xf0, 0x5d, 0xc3,
];

#[test]
fn a_plain_prologue_is_accepted() {
    let r = at(PROLOGUE, 0).unwrap();
    assert_eq!((r.addr, r.len, r.insns, r.mode), (BASE, 7, 3, K));
    assert_eq!(r.original(), &PROLOGUE[..7]);
    assert_eq!(r.end(), BASE + 7);
    assert!(r.orig[7..].iter().all(|&b| b == 0));
    // From the second instruction: mov rbp, rsp; mov rax, rdi = 6 bytes.
    let r = at(PROLOGUE, 1).unwrap();
    assert_eq!((r.len, r.insns), (6, 2));
    // Through the X86_64 Arch item as well.
    let r2 = X86_64::analyze_optimizable(
        BASE + 1,
        BASE..BASE + PROLOGUE.len(),
        &mem(PROLOGUE),
        &never,
        K,
    );
    assert_eq!(r2, Ok(r));
    // The shadow-stack variant refuses user mode only.
    let m = mem(PROLOGUE);
    let f = BASE..BASE + PROLOGUE.len();
    type S = crate::X86_64UserShadowStack;
    assert!(S::analyze_optimizable(BASE, f.clone(), &m, &never, K).is_ok());
    assert_eq!(
        S::analyze_optimizable(BASE, f, &m, &never, ExecMode::User),
        Err(SiteRule::NotSupported)
    );
}

#[test]
fn function_size_unknown() {
    assert_eq!(
        analyze(BASE, BASE..BASE, &mem(PROLOGUE), &never, K),
        Err(SiteRule::FunctionSizeUnknown)
    );
    assert_eq!(
        analyze(BASE + 12, BASE..BASE + 12, &mem(PROLOGUE), &never, K),
        Err(SiteRule::FunctionSizeUnknown)
    );
    assert_eq!(
        analyze(BASE - 1, BASE..BASE + 12, &mem(PROLOGUE), &never, K),
        Err(SiteRule::FunctionSizeUnknown)
    );
}

#[test]
fn region_past_function() {
    // Fewer than 5 bytes left: mov rax, rdi; ret (4 bytes).
    let code = [0x48, 0x89, 0xf8, 0xc3];
    assert_eq!(at(&code, 0), Err(SiteRule::RegionPastFunction));
    // 5 bytes left, but the second instruction crosses the end: the
    // function is mov rax, rdi; mov rcx, [rdx+8] cut after 2 of its 4 bytes.
    let text = [0x48, 0x89, 0xf8, 0x48, 0x8b, 0x4a, 0x08, 0xc3];
    let m = mem(&text);
    assert_eq!(
        analyze(BASE, BASE..BASE + 5, &m, &never, K),
        Err(SiteRule::RegionPastFunction)
    );
    // Exactly 5 bytes fit: accepted.
    let code = [0x48, 0x89, 0xf8, 0x90, 0x90];
    assert_eq!(at(&code, 0).unwrap().len, 5);
}

#[test]
fn not_stepped() {
    // A branch in the region: mov rax, rdi; jmp +0; ret …
    let code = [0x48, 0x89, 0xf8, 0xeb, 0x00, 0xc3, 0x90, 0x90];
    assert_eq!(at(&code, 0), Err(SiteRule::NotStepped { at: BASE + 3 }));
    // Kernel mode: pushf, popf, cli, sti are simulated.
    for op in [0x9c, 0x9d, 0xfa, 0xfb] {
        let code = [0x48, 0x89, 0xf8, op, 0x90, 0x90, 0xc3];
        assert_eq!(
            at(&code, 0),
            Err(SiteRule::NotStepped { at: BASE + 3 }),
            "{op:#x}"
        );
        // In user mode they are stepped and boostable like any other.
        let u = analyze(BASE, BASE..BASE + 7, &mem(&code), &never, ExecMode::User);
        assert_eq!(u.map(|r| r.len), Ok(5), "{op:#x} in user mode");
    }
    // Refused: int3 in the region.
    let code = [0x90, 0xcc, 0x90, 0x90, 0x90, 0xc3];
    assert_eq!(at(&code, 0), Err(SiteRule::NotStepped { at: BASE + 1 }));
    // Stepped but not boostable: fld st(0).
    let code = [0x90, 0xd9, 0xc0, 0x90, 0x90, 0xc3];
    assert_eq!(at(&code, 0), Err(SiteRule::NotStepped { at: BASE + 1 }));
    // A call in the region.
    let code = [0xe8, 0, 0, 0, 0, 0xc3];
    assert_eq!(at(&code, 0), Err(SiteRule::NotStepped { at: BASE }));
}

#[test]
fn may_fault_anywhere_in_the_function() {
    for bad in [BASE + 4, BASE + 10] {
        let r = analyze(BASE, BASE..BASE + 12, &mem(PROLOGUE), &|a| a == bad, K);
        assert_eq!(r, Err(SiteRule::MayFault { at: bad }));
    }
}

#[test]
fn jump_into_region() {
    // jz +3 (to BASE + 2 + 3 = BASE + 5, inside the region BASE+2..BASE+9);
    // region at 2: mov rax, rdi; mov rcx, rsi; ret.
    let code = [0x74, 0x03, 0x48, 0x89, 0xf8, 0x48, 0x89, 0xf1, 0xc3];
    assert_eq!(at(&code, 2), Err(SiteRule::JumpIntoRegion { from: BASE }));
    // A branch after the region, backwards into it: region at 0 (6 bytes),
    // then jmp to BASE + 3.
    let code = [0x48, 0x89, 0xf8, 0x48, 0x89, 0xf1, 0xeb, 0xfb, 0xc3];
    assert_eq!(
        at(&code, 0),
        Err(SiteRule::JumpIntoRegion { from: BASE + 6 })
    );
    // Targets exactly the probe address or the end of the region: fine.
    let code = [0x48, 0x89, 0xf8, 0x48, 0x89, 0xf1, 0xeb, 0xf8, 0xc3];
    assert_eq!(at(&code, 0).map(|r| r.len), Ok(6));
    let code = [0x74, 0x06, 0x48, 0x89, 0xf8, 0x48, 0x89, 0xf1, 0xc3];
    assert_eq!(at(&code, 2).map(|r| r.len), Ok(6));
    // call rel32 and loop/jrcxz count as well.
    let code = [
        0xe8, 0x01, 0, 0, 0, 0x48, 0x89, 0xf8, 0x48, 0x89, 0xf1, 0xc3,
    ];
    // call from BASE lands at BASE + 6, inside the region at 5 (5..11).
    assert_eq!(at(&code, 5), Err(SiteRule::JumpIntoRegion { from: BASE }));
    let code = [0xe3, 0x01, 0x48, 0x89, 0xf8, 0x48, 0x89, 0xf1, 0xc3];
    assert_eq!(at(&code, 2), Err(SiteRule::JumpIntoRegion { from: BASE }));
    // xbegin's abort handler: c7 f8 rel32 from BASE lands at BASE + 6 + 2.
    let code = [
        0xc7, 0xf8, 0x02, 0, 0, 0, 0x48, 0x89, 0xf8, 0x48, 0x89, 0xf1, 0xc3,
    ];
    assert_eq!(at(&code, 6), Err(SiteRule::JumpIntoRegion { from: BASE }));
}

#[test]
fn indirect_jump_anywhere_in_the_function() {
    // jmp rax; jmp [rip + 0]; jmp far [rax]; notrack jmp [rax + rcx*8]
    for (jmp, len) in [
        (&[0xff, 0xe0][..], 2),
        (&[0xff, 0x25, 0, 0, 0, 0][..], 6),
        (&[0xff, 0x28][..], 2),
        (&[0x3e, 0xff, 0x24, 0xc8][..], 4),
    ] {
        let mut code = PROLOGUE[..10].to_vec();
        code.extend_from_slice(jmp);
        code.push(0xc3);
        assert_eq!(
            at(&code, 0),
            Err(SiteRule::IndirectJump { at: BASE + 10 }),
            "{jmp:x?}"
        );
        assert_eq!(code.len(), 11 + len);
    }
    // An indirect call is not a jump.
    let mut code = PROLOGUE[..10].to_vec();
    code.extend_from_slice(&[0xff, 0xd0, 0xc3]);
    assert!(at(&code, 0).is_ok());
}

#[test]
fn undecodable_and_boundaries() {
    // 0x06 (push es) is invalid in 64-bit mode, before the probe.
    let code = [0x06, 0x48, 0x89, 0xf8, 0x48, 0x89, 0xf1, 0xc3];
    assert_eq!(at(&code, 1), Err(SiteRule::Undecodable { at: BASE }));
    // After the region.
    let code = [0x48, 0x89, 0xf8, 0x48, 0x89, 0xf1, 0x06, 0xc3];
    assert_eq!(at(&code, 0), Err(SiteRule::Undecodable { at: BASE + 6 }));
    // Inside the region.
    let code = [0x48, 0x89, 0xf8, 0x06, 0x90, 0x90, 0xc3];
    assert_eq!(at(&code, 0), Err(SiteRule::Undecodable { at: BASE + 3 }));
    // The probe address inside mov rbp, rsp.
    assert_eq!(
        at(PROLOGUE, 2),
        Err(SiteRule::NotInstructionBoundary { insn: BASE + 1 })
    );
}

#[test]
fn read_failures_are_reported() {
    let mut m = mem(PROLOGUE);
    m.hole = Some(BASE + 9);
    assert_eq!(
        analyze(BASE, BASE..BASE + 12, &m, &never, K),
        Err(SiteRule::ReadFailed { addr: BASE + 9 })
    );
}

#[test]
fn long_functions_are_read_in_chunks() {
    // 300 bytes of nops, a jump back into the region at the very end.
    let mut code = vec![0x90u8; 300];
    code.extend_from_slice(&[0x48, 0x89, 0xf8, 0x48, 0x89, 0xf1]); // region at 300
    code.extend_from_slice(&[0x90; 200]);
    let from = code.len();
    let target = 302isize;
    let rel = target - (from as isize + 5);
    code.push(0xe9);
    code.extend_from_slice(&(rel as i32).to_le_bytes());
    code.push(0xc3);
    assert_eq!(
        at(&code, 300),
        Err(SiteRule::JumpIntoRegion { from: BASE + from })
    );
    // Without the jump: accepted.
    code.truncate(from);
    code.push(0xc3);
    assert_eq!(at(&code, 300).map(|r| r.len), Ok(6));
}

// ---- the detour's code ----

fn decode_all(bytes: &[u8], ip: u64) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let mut v = Vec::new();
    while d.can_decode() {
        let i = d.decode();
        assert!(!i.is_invalid(), "invalid instruction at {:#x}", i.ip());
        // jmp [rip + 0] is followed by its 8-byte target, not code.
        if i.mnemonic() == Mnemonic::Jmp
            && i.is_ip_rel_memory_operand()
            && i.ip_rel_memory_address() == i.next_ip()
        {
            let pos = d.position() + 8;
            d.set_position(pos).unwrap();
            d.set_ip(i.next_ip() + 8);
        }
        let end = i.mnemonic() == Mnemonic::Ret && i.immediate16() == 128;
        v.push(i);
        if end {
            // Path (b)'s `ret 128` ends the code; the literals follow.
            break;
        }
    }
    v
}

/// The 8-byte literal a `push qword [rip + disp]` of `insns` at `out`
/// (built for `base`) reads, for each such push in order.
fn pushed_literals(insns: &[Instruction], out: &[u8], base: usize) -> Vec<u64> {
    insns
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Push && i.is_ip_rel_memory_operand())
        .map(|i| {
            let at = i.ip_rel_memory_address() as usize - base;
            u64::from_le_bytes(out[at..at + 8].try_into().unwrap())
        })
        .collect()
}

const DETOUR: usize = BASE + 0x10_0000;

fn region(code: &[u8]) -> OptRegion {
    at(code, 0).unwrap()
}

#[test]
fn detour_code_decodes_as_documented() {
    let r = region(PROLOGUE);
    let entry = DETOUR + 0x1000; // in reach: call rel32
    let mut out = [0u8; DETOUR_LEN];
    let n = detour::build(&r, DETOUR, 0xc0ffee, true, entry, &mut out).unwrap();
    let insns = decode_all(&out[..n], DETOUR as u64);
    let m: Vec<Mnemonic> = insns.iter().map(|i| i.mnemonic()).collect();
    // Starts over the red zone with lea (flags untouched), never sub.
    assert_eq!(m[0], Mnemonic::Lea);
    assert_eq!(insns[0].memory_displacement64() as i64, -136);
    let call_at = m.iter().position(|&x| x == Mnemonic::Call).unwrap();
    assert!(!m[..call_at].contains(&Mnemonic::Sub));
    // pushfq comes before the first instruction that changes flags (and).
    let pushf = m.iter().position(|&x| x == Mnemonic::Pushfq).unwrap();
    let first_flags = m
        .iter()
        .position(|&x| {
            matches!(
                x,
                Mnemonic::Add | Mnemonic::And | Mnemonic::Test | Mnemonic::Cli | Mnemonic::Cld
            )
        })
        .unwrap();
    assert!(pushf < first_flags);
    // cli after the flags are saved, then cld.
    let cli = m.iter().position(|&x| x == Mnemonic::Cli).unwrap();
    assert!(cli > pushf && m[cli + 1] == Mnemonic::Cld);
    // 21 words pushed before the frame is filled: the frame is 168 bytes.
    let pushes = m[..first_flags]
        .iter()
        .filter(|&&x| matches!(x, Mnemonic::Push | Mnemonic::Pushfq))
        .count();
    assert_eq!(pushes, 21);
    // ss, cs and the probe address are pushed from literals after the
    // code (no segment register is read per hit); the frame's rsp is the
    // pushed one corrected by 144; the cookie is an immediate.
    let lits = pushed_literals(&insns, &out[..n], DETOUR);
    assert_eq!(lits.len(), 3);
    assert_eq!(lits[2], BASE as u64);
    assert!(lits[0] < 0x10000, "a selector: {:#x}", lits[0]);
    assert!(
        lits[1] > 0 && lits[1] < 0x10000,
        "a selector: {:#x}",
        lits[1]
    );
    assert!(!insns.iter().any(|i| i.op_count() == 2
        && i.op_kind(1) == OpKind::Register
        && i.op1_register().is_segment_register()));
    assert!(
        lits.iter().all(|_| n % 8 == 0),
        "literals aligned at the end"
    );
    let add = insns
        .iter()
        .find(|i| i.mnemonic() == Mnemonic::Add)
        .unwrap();
    assert_eq!(add.memory_displacement64(), 152);
    assert_eq!(add.immediate32(), 144);
    assert!(insns
        .iter()
        .any(|i| i.mnemonic() == Mnemonic::Mov && i.immediate64() == 0xc0ffee));
    // call rel32 to the entry.
    let call = insns
        .iter()
        .find(|i| i.mnemonic() == Mnemonic::Call)
        .unwrap();
    assert_eq!(call.near_branch_target(), entry as u64);
    // jnz to path (b), which ends with mov rsp, [rsp]; ret 128.
    let jnz = insns
        .iter()
        .find(|i| i.mnemonic() == Mnemonic::Jne)
        .unwrap();
    let b = insns
        .iter()
        .position(|i| i.ip() == jnz.near_branch_target())
        .unwrap();
    let last = insns.last().unwrap();
    assert_eq!(last.mnemonic(), Mnemonic::Ret);
    assert_eq!(last.immediate16(), 128);
    assert_eq!(insns[insns.len() - 2].mnemonic(), Mnemonic::Mov);
    // Both paths pop 15 registers and popfq.
    for path in [&insns[..b], &insns[b..]] {
        let pops = path
            .iter()
            .filter(|i| i.mnemonic() == Mnemonic::Pop)
            .count();
        assert_eq!(pops, 15);
        assert_eq!(
            path.iter()
                .filter(|i| i.mnemonic() == Mnemonic::Popfq)
                .count(),
            1
        );
    }
    // Path (a) ends with the displaced instructions and a jmp to BASE + 7.
    let jmp_back = &insns[b - 1];
    assert_eq!(jmp_back.mnemonic(), Mnemonic::Jmp);
    assert_eq!(jmp_back.near_branch_target(), BASE as u64 + 7);
    let displaced: Vec<Mnemonic> = insns[b - 4..b - 1].iter().map(|i| i.mnemonic()).collect();
    assert_eq!(displaced, [Mnemonic::Push, Mnemonic::Mov, Mnemonic::Mov]);
    assert_eq!(
        &out[insns[b - 4].ip() as usize - DETOUR..jmp_back.ip() as usize - DETOUR],
        &PROLOGUE[..7]
    );
    // Without mask_interrupts: a nop instead of cli, the same length.
    let n2 = detour::build(&r, DETOUR, 0xc0ffee, false, entry, &mut out).unwrap();
    assert_eq!(n2, n);
    let insns2 = decode_all(&out[..n2], DETOUR as u64);
    assert!(!insns2.iter().any(|i| i.mnemonic() == Mnemonic::Cli));
    assert_eq!(insns2[cli].mnemonic(), Mnemonic::Nop);
}

/// The copy of the region is where `displaced_at` says: one offset per
/// form of the entry call (near or far), with or without cli, near or far
/// jump back; the engine's `detour_displaced_offset` is the one for the
/// real entry.
#[test]
fn the_displaced_copy_is_where_displaced_at_says() {
    let r = region(PROLOGUE);
    let mut out = [0u8; DETOUR_LEN];
    let mut offsets = std::collections::BTreeSet::new();
    for (det, entry) in [
        (DETOUR, DETOUR + 0x1000),
        (DETOUR, DETOUR.wrapping_add(1 << 40)),
        (BASE.wrapping_add(3 << 30), DETOUR),
    ] {
        for mask in [false, true] {
            let n = detour::build(&r, det, 7, mask, entry, &mut out).unwrap();
            let at = detour::displaced_at(det, entry);
            offsets.insert(at);
            assert_eq!(&out[at..at + 7], &PROLOGUE[..7]);
            // What precedes it is path (a)'s lea rsp, [rsp + 152].
            let insns = decode_all(&out[..n], det as u64);
            let i = insns
                .iter()
                .position(|i| i.ip() == (det + at) as u64)
                .expect("an instruction boundary");
            assert_eq!(insns[i - 1].mnemonic(), Mnemonic::Lea);
            assert_eq!(insns[i - 1].memory_displacement64(), 152);
        }
    }
    assert_eq!(offsets.len(), 2, "near and far call: {offsets:?}");
    if let Some(entry) = super::entry::entry_address() {
        assert_eq!(
            X86_64::detour_displaced_offset(&r, DETOUR),
            Some(detour::displaced_at(DETOUR, entry))
        );
    }
}

#[test]
fn detour_far_forms_and_the_worst_case_size() {
    // The longest region: a 4-byte instruction, then a 15-byte one
    // (ds ds ds ds add qword [rip + d32], imm32) whose rip-relative operand is
    // relocated.
    let mut code = vec![0x48, 0x8d, 0x04, 0x80]; // lea rax, [rax + rax*4]
    code.extend_from_slice(&[0x3e, 0x3e, 0x3e, 0x3e, 0x48, 0x81, 0x05]);
    code.extend_from_slice(&0x100i32.to_le_bytes());
    code.extend_from_slice(&0x11223344i32.to_le_bytes());
    code.push(0xc3);
    let r = region(&code);
    assert_eq!((r.len, r.insns), (19, 2));
    assert!(r.len <= MAX_OPT_REGION);
    // Detour 1 GiB away (rel32 jump back would still reach, so put the
    // entry far instead) and then 3 GiB away (the rip-relative operand no
    // longer reaches).
    let far_entry = DETOUR.wrapping_add(1 << 40);
    let near = BASE - (1 << 30);
    let mut out = [0u8; DETOUR_LEN];
    let n = detour::build(&r, near, 1, true, far_entry, &mut out).unwrap();
    let insns = decode_all(&out[..n], near as u64);
    let call = insns
        .iter()
        .find(|i| i.mnemonic() == Mnemonic::Call)
        .unwrap();
    assert_eq!(call.op0_kind(), OpKind::Register);
    // The relocated operand still addresses BASE + 19 + 0x100.
    let add = insns
        .iter()
        .find(|i| i.mnemonic() == Mnemonic::Add && i.is_ip_rel_memory_operand())
        .unwrap();
    assert_eq!(add.ip_rel_memory_address(), BASE as u64 + 19 + 0x100);
    assert_eq!(add.immediate32(), 0x11223344);
    assert_eq!(
        detour::build(&r, BASE + (3 << 30), 1, true, far_entry, &mut out),
        Err(SiteRule::OutOfReach)
    );
    // Without the rip-relative instruction, 3 GiB away: jmp [rip + 0].
    // ds×6 add qword [rsp + d32], imm8 (83 /0): 6+1+1+1+1+4+1 = 15 bytes.
    let mut code2 = vec![0x48, 0x8d, 0x04, 0x80];
    code2.extend_from_slice(&[0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x48, 0x83, 0x84, 0x24]);
    code2.extend_from_slice(&0x100i32.to_le_bytes());
    code2.push(0x7f);
    code2.push(0xc3);
    let r2 = region(&code2);
    assert_eq!(r2.len, 19);
    let far = BASE.wrapping_add(3 << 30);
    let n = detour::build(&r2, far, 1, true, far_entry, &mut out).unwrap();
    let insns = decode_all(&out[..n], far as u64);
    let b = insns
        .iter()
        .find(|i| i.mnemonic() == Mnemonic::Jne)
        .unwrap();
    let b_at = insns
        .iter()
        .position(|i| i.ip() == b.near_branch_target())
        .unwrap();
    let jmp = &insns[b_at - 1];
    assert_eq!(jmp.mnemonic(), Mnemonic::Jmp);
    assert!(jmp.is_ip_rel_memory_operand());
    let q = jmp.next_ip() as usize - far;
    assert_eq!(&out[q..q + 8], &(BASE as u64 + 19).to_le_bytes());
    // The worst case: far call, far jump back, cli, 19 bytes, the literals.
    assert_eq!(n, 288);
    assert!(n <= DETOUR_LEN && X86_64::DETOUR_LEN == DETOUR_LEN);
    // A buffer one byte short.
    assert_eq!(
        detour::build(&r2, far, 1, true, far_entry, &mut out[..n - 1]),
        Err(SiteRule::BufferTooSmall { needed: n })
    );
}

#[test]
fn the_jump_and_its_reach() {
    let mut out = [0u8; 8];
    assert_eq!(X86_64::optimized_jump(BASE, BASE + 0x1000, &mut out), Ok(5));
    assert_eq!(&out[..5], &[0xe9, 0xfb, 0x0f, 0, 0]);
    let max = BASE + 5 + i32::MAX as usize;
    assert_eq!(X86_64::optimized_jump(BASE, max, &mut out), Ok(5));
    assert_eq!(
        X86_64::optimized_jump(BASE, max + 1, &mut out),
        Err(SiteRule::OutOfReach)
    );
    assert_eq!(
        X86_64::optimized_jump(BASE, BASE + 5 - (1 << 31) - 1, &mut out),
        Err(SiteRule::OutOfReach)
    );
    assert_eq!(
        X86_64::optimized_jump(BASE, BASE, &mut out[..4]),
        Err(SiteRule::BufferTooSmall { needed: 5 })
    );
    // OPT_REACH leaves room for the whole detour on both sides.
    assert_eq!(X86_64::OPT_JUMP_LEN, 5);
    let reach = X86_64::OPT_REACH;
    assert!(X86_64::optimized_jump(BASE, BASE + reach, &mut out).is_ok());
    assert!(X86_64::optimized_jump(BASE, BASE - reach, &mut out).is_ok());
    let r = region(PROLOGUE);
    let mut d = [0u8; DETOUR_LEN];
    for det in [BASE + reach, BASE - reach] {
        let n = detour::build(&r, det, 0, true, det + 0x100, &mut d).unwrap();
        let insns = decode_all(&d[..n], det as u64);
        // The jump back is the short form.
        assert!(insns
            .iter()
            .any(|i| i.mnemonic() == Mnemonic::Jmp && i.near_branch_target() == BASE as u64 + 7));
    }
}

/// The provided defaults: a backend that does not optimise.
#[test]
fn the_defaults_say_not_supported() {
    #[derive(Debug)]
    struct NoOpt;
    impl Arch for NoOpt {
        const NAME: &'static str = "no-opt";
        const INSN_ALIGN: usize = 1;
        const MAX_INSN_LEN: usize = 15;
        const SLOT_LEN: usize = 32;
        type Insn = <X86_64 as Arch>::Insn;
        type StepState = <X86_64 as Arch>::StepState;
        fn insn_len(b: &[u8]) -> Option<usize> {
            X86_64::insn_len(b)
        }
        fn decode(
            a: usize,
            b: &[u8],
            m: ExecMode,
        ) -> Result<probe_hal::Decoded<Self::Insn>, probe_hal::ProbeError> {
            X86_64::decode(a, b, m)
        }
        fn breakpoint(l: usize, m: ExecMode) -> probe_hal::Breakpoint {
            X86_64::breakpoint(l, m)
        }
        fn return_breakpoint(m: ExecMode) -> probe_hal::Breakpoint {
            X86_64::return_breakpoint(m)
        }
        fn trap_address(pc: usize) -> usize {
            pc
        }
        fn build_slot(
            _: &probe_hal::Decoded<Self::Insn>,
            _: &[u8],
            a: usize,
            _: usize,
            _: ExecMode,
            _: bool,
        ) -> Result<probe_hal::SlotImage, probe_hal::ProbeError> {
            Err(probe_hal::ProbeError::new(
                probe_hal::ProbeErrorKind::Undecodable,
                a,
            ))
        }
        fn prepare_step<R: probe_hal::Registers + ?Sized>(
            _: &probe_hal::Decoded<Self::Insn>,
            _: &mut R,
            _: usize,
            _: bool,
        ) -> Self::StepState {
            Default::default()
        }
        fn finish_step<R: probe_hal::Registers + ?Sized>(
            _: &probe_hal::Decoded<Self::Insn>,
            _: &mut R,
            _: usize,
            _: usize,
            _: Self::StepState,
            _: &dyn DataAccess,
        ) -> Result<(), MemoryFault> {
            Ok(())
        }
        fn abort_step<R: probe_hal::Registers + ?Sized>(
            _: &probe_hal::Decoded<Self::Insn>,
            _: &mut R,
            _: usize,
            _: Self::StepState,
        ) {
        }
        fn simulate<R: probe_hal::Registers + ?Sized>(
            _: &probe_hal::Decoded<Self::Insn>,
            _: usize,
            _: &mut R,
            _: &dyn DataAccess,
        ) -> Result<(), MemoryFault> {
            Ok(())
        }
        fn hijack_return<R: probe_hal::Registers + ?Sized>(
            _: &mut R,
            _: &dyn DataAccess,
            _: usize,
        ) -> Result<usize, MemoryFault> {
            Ok(0)
        }
        fn entry_frame<R: probe_hal::Registers + ?Sized>(_: &R) -> usize {
            0
        }
        fn return_frame<R: probe_hal::Registers + ?Sized>(_: &R) -> usize {
            0
        }
        fn kernel_trampoline() -> Option<usize> {
            None
        }
    }
    assert_eq!(
        (NoOpt::OPT_JUMP_LEN, NoOpt::DETOUR_LEN, NoOpt::OPT_REACH),
        (0, 0, 0)
    );
    let e = Err(SiteRule::NotSupported);
    assert_eq!(
        NoOpt::analyze_optimizable(BASE, BASE..BASE + 12, &mem(PROLOGUE), &never, K),
        e
    );
    let r = region(PROLOGUE);
    let mut out = [0u8; 300];
    assert_eq!(
        NoOpt::build_detour(&r, DETOUR, 0, true, &mut out),
        e.map(|_: OptRegion| 0)
    );
    assert_eq!(
        NoOpt::optimized_jump(BASE, DETOUR, &mut out),
        e.map(|_: OptRegion| 0)
    );
    assert_eq!(
        SiteRule::NotSupported.to_string(),
        "this backend has no jump optimisation"
    );
}

#[test]
fn every_rule_has_a_message() {
    let rules = [
        SiteRule::NotSupported,
        SiteRule::FunctionSizeUnknown,
        SiteRule::RegionPastFunction,
        SiteRule::NotStepped { at: 1 },
        SiteRule::MayFault { at: 1 },
        SiteRule::JumpIntoRegion { from: 1 },
        SiteRule::IndirectJump { at: 1 },
        SiteRule::Undecodable { at: 1 },
        SiteRule::NotInstructionBoundary { insn: 1 },
        SiteRule::OutOfReach,
        SiteRule::ReadFailed { addr: 1 },
        SiteRule::BufferTooSmall { needed: 1 },
    ];
    let texts: HashSet<String> = rules.iter().map(|r| r.to_string()).collect();
    assert_eq!(texts.len(), rules.len());
}

// ---- differential: real code, decoded by iced-x86 ----

/// An ELF64 file's functions: (name, address range, bytes) from its
/// `.symtab` or `.dynsym`.
fn elf_functions(file: &[u8]) -> Vec<(String, Range<usize>, Vec<u8>)> {
    let u16_at = |o: usize| u16::from_le_bytes(file[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(file[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(file[o..o + 8].try_into().unwrap()) as usize;
    assert_eq!(&file[..5], b"\x7fELF\x02");
    let (shoff, shentsize, shnum) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c));
    let sh = |i: usize| shoff + i * shentsize;
    let symtab = (0..shnum)
        .find(|&i| u32_at(sh(i) + 4) == 2)
        .or_else(|| (0..shnum).find(|&i| u32_at(sh(i) + 4) == 11))
        .expect("a symbol table");
    let (sym_off, sym_size) = (u64_at(sh(symtab) + 24), u64_at(sh(symtab) + 32));
    let strtab = u32_at(sh(symtab) + 40);
    let str_off = u64_at(sh(strtab) + 24);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for s in (sym_off..sym_off + sym_size).step_by(24) {
        let (name, info, shndx) = (u32_at(s), file[s + 4], u16_at(s + 6));
        let (value, size) = (u64_at(s + 8), u64_at(s + 16));
        if info & 0xf != 2 || size == 0 || shndx == 0 || shndx >= shnum || !seen.insert(value) {
            continue;
        }
        let sec = sh(shndx);
        let (addr, off, len) = (u64_at(sec + 16), u64_at(sec + 24), u64_at(sec + 32));
        if u32_at(sec + 4) != 1 || value < addr || value + size > addr + len {
            continue;
        }
        let from = off + (value - addr);
        let nul = file[str_off + name..].iter().position(|&b| b == 0).unwrap();
        let name = String::from_utf8_lossy(&file[str_off + name..str_off + name + nul]).into();
        out.push((name, value..value + size, file[from..from + size].to_vec()));
    }
    out
}

#[derive(Default, Debug)]
struct Tally {
    sites: usize,
    accepted: usize,
    refused: BTreeMap<&'static str, usize>,
}

/// Analyze sites of every function and check each answer against iced-x86's
/// decoding of the function.
fn differential(functions: &[(String, Range<usize>, Vec<u8>)], per_function: usize) -> Tally {
    let mut t = Tally::default();
    for (name, range, bytes) in functions {
        let m = Mem {
            base: range.start,
            bytes: bytes.clone(),
            hole: None,
        };
        let mut d = Decoder::with_ip(64, bytes, range.start as u64, DecoderOptions::NONE);
        let mut insns = Vec::new();
        while d.can_decode() {
            insns.push(d.decode());
        }
        if insns.iter().any(|i| i.is_invalid()) {
            continue; // data or padding iced does not decode either
        }
        let starts: HashSet<usize> = insns.iter().map(|i| i.ip() as usize).collect();
        let by_ip: BTreeMap<usize, &Instruction> =
            insns.iter().map(|i| (i.ip() as usize, i)).collect();
        let targets: Vec<(usize, usize)> = insns
            .iter()
            .filter(|i| {
                matches!(
                    i.flow_control(),
                    FlowControl::UnconditionalBranch
                        | FlowControl::ConditionalBranch
                        | FlowControl::Call
                        | FlowControl::XbeginXabortXend
                ) && matches!(
                    i.op0_kind(),
                    OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
                )
            })
            .map(|i| (i.ip() as usize, i.near_branch_target() as usize))
            .collect();
        let indirect = insns
            .iter()
            .find(|i| i.flow_control() == FlowControl::IndirectBranch)
            .map(|i| i.ip() as usize);
        let step = insns.len().div_ceil(per_function).max(1);
        for i in insns.iter().step_by(step) {
            let addr = i.ip() as usize;
            t.sites += 1;
            let res = analyze(addr, range.clone(), &m, &never, K);
            let ctx = || format!("{name} at {addr:#x}: {res:?}");
            match res {
                Ok(r) => {
                    t.accepted += 1;
                    assert!((5..=19).contains(&r.len), "{}", ctx());
                    assert!(r.end() <= range.end, "{}", ctx());
                    assert!(
                        starts.contains(&r.end()) || r.end() == range.end,
                        "{}",
                        ctx()
                    );
                    assert_eq!(r.original(), &bytes[addr - range.start..][..r.len]);
                    // Each region instruction: a boundary for iced, not a
                    // branch, not an IF modifier (kernel mode).
                    let mut at = addr;
                    let mut n = 0;
                    while at < r.end() {
                        let insn = by_ip.get(&at).unwrap_or_else(|| panic!("{}", ctx()));
                        assert_eq!(insn.flow_control(), FlowControl::Next, "{}", ctx());
                        assert!(
                            !matches!(
                                insn.mnemonic(),
                                Mnemonic::Cli
                                    | Mnemonic::Sti
                                    | Mnemonic::Pushf
                                    | Mnemonic::Pushfq
                                    | Mnemonic::Popf
                                    | Mnemonic::Popfq
                            ),
                            "{}",
                            ctx()
                        );
                        at += insn.len();
                        n += 1;
                    }
                    assert_eq!(n, r.insns, "{}", ctx());
                    assert!(indirect.is_none(), "{}", ctx());
                    for &(from, to) in &targets {
                        assert!(
                            !(addr + 1..r.end()).contains(&to),
                            "{} from {from:#x}",
                            ctx()
                        );
                    }
                    // The detour builds, and its displaced copy decodes to
                    // the same instructions.
                    let mut out = [0u8; DETOUR_LEN];
                    let det = addr + 0x10_0000;
                    let len = detour::build(&r, det, 0, true, det + 0x8000, &mut out)
                        .unwrap_or_else(|e| panic!("{}: {e}", ctx()));
                    assert!(len <= DETOUR_LEN);
                }
                Err(e) => {
                    let key = match e {
                        SiteRule::IndirectJump { at } => {
                            let insn = by_ip[&at];
                            assert_eq!(
                                insn.flow_control(),
                                FlowControl::IndirectBranch,
                                "{}",
                                ctx()
                            );
                            "IndirectJump"
                        }
                        SiteRule::JumpIntoRegion { from } => {
                            let &(_, to) = targets
                                .iter()
                                .find(|(f, _)| *f == from)
                                .unwrap_or_else(|| panic!("{}", ctx()));
                            assert!(to > addr && to < addr + 19, "{}", ctx());
                            "JumpIntoRegion"
                        }
                        SiteRule::NotStepped { at } => {
                            assert!(
                                at >= addr && at < addr + 5 && starts.contains(&at),
                                "{}",
                                ctx()
                            );
                            "NotStepped"
                        }
                        SiteRule::RegionPastFunction => "RegionPastFunction",
                        SiteRule::Undecodable { .. } => "Undecodable",
                        other => panic!("unexpected {other:?}: {}", ctx()),
                    };
                    *t.refused.entry(key).or_default() += 1;
                }
            }
        }
    }
    t
}

#[test]
fn differential_against_iced_on_this_test_binary() {
    let file = std::fs::read("/proc/self/exe").unwrap();
    let functions = elf_functions(&file);
    assert!(functions.len() > 1000, "{} functions", functions.len());
    let t = differential(&functions, 12);
    eprintln!("test binary: {t:?}");
    assert!(t.accepted > 1000, "{t:?}");
    for rule in [
        "IndirectJump",
        "JumpIntoRegion",
        "NotStepped",
        "RegionPastFunction",
    ] {
        assert!(
            t.refused.get(rule).copied().unwrap_or(0) > 0,
            "{rule}: {t:?}"
        );
    }
}

#[test]
fn differential_against_iced_on_the_host_libc() {
    let Some(file) = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
    ]
    .iter()
    .find_map(|p| std::fs::read(p).ok()) else {
        panic!("no libc.so.6 on this host");
    };
    let functions = elf_functions(&file);
    assert!(functions.len() > 500, "{} functions", functions.len());
    let t = differential(&functions, 8);
    eprintln!("libc: {t:?}");
    assert!(t.accepted > 500, "{t:?}");
}
