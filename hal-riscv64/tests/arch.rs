//! Breakpoints, slots, the out-of-line step, return hooks and the LR/SC
//! look-back, through the `Arch` entry points.

use probe_hal::{Arch, DataAccess, Decoded, ExecMode, MemoryFault, ProbeErrorKind};
use probe_hal_riscv64::regs::SSTATUS_SPIE;
use probe_hal_riscv64::{PtRegs, Riscv64, StepState};

struct NoMemory;

impl DataAccess for NoMemory {
    fn read(&self, addr: usize, _: &mut [u8]) -> Result<(), MemoryFault> {
        panic!("unexpected read at {addr:#x}")
    }
    fn write(&self, addr: usize, _: &[u8]) -> Result<(), MemoryFault> {
        panic!("unexpected write at {addr:#x}")
    }
}

const K: ExecMode = ExecMode::Kernel;
const U: ExecMode = ExecMode::User;

fn decode(bytes: &[u8], mode: ExecMode) -> Decoded<probe_hal_riscv64::Insn> {
    Riscv64::decode(0x8020_0000, bytes, mode).expect("decodes")
}

#[test]
fn constants() {
    assert_eq!(Riscv64::NAME, "riscv64");
    assert_eq!(Riscv64::INSN_ALIGN, 2);
    assert_eq!(Riscv64::MAX_INSN_LEN, 4);
    assert_eq!(Riscv64::SLOT_LEN, 8);
    assert_eq!(Riscv64::LOOK_BACK, 64);
    assert_eq!(Riscv64::trap_address(0x8020_0006), 0x8020_0006);
}

#[test]
fn breakpoint_matches_the_instruction_length() {
    for mode in [K, U] {
        assert_eq!(Riscv64::breakpoint(2, mode).as_bytes(), &[0x02, 0x90]); // c.ebreak
        assert_eq!(
            Riscv64::breakpoint(4, mode).as_bytes(),
            &[0x73, 0x00, 0x10, 0x00]
        ); // ebreak
        assert_eq!(
            Riscv64::return_breakpoint(mode).as_bytes(),
            &[0x73, 0x00, 0x10, 0x00]
        );
    }
}

#[test]
fn slot_is_the_copy_then_ebreak() {
    // mul a0, a1, a2
    let mul = 0x02c58533u32.to_le_bytes();
    let insn = decode(&mul, K);
    let slot = Riscv64::build_slot(&insn, &mul, 0x8020_0000, 0x9000_0000, K, true).unwrap();
    assert_eq!(
        slot.as_bytes(),
        &[0x33, 0x85, 0xc5, 0x02, 0x73, 0x00, 0x10, 0x00]
    );
    assert_eq!(slot.step_end, Some(4));

    // c.addiw a0, 1, followed in memory by other bytes that must not be copied.
    let orig = [0x05, 0x25, 0xaa, 0xbb];
    let insn = decode(&orig, K);
    let slot = Riscv64::build_slot(&insn, &orig, 0x8020_0000, 0x9000_0008, K, false).unwrap();
    assert_eq!(slot.as_bytes(), &[0x05, 0x25, 0x73, 0x00, 0x10, 0x00]);
    assert_eq!(slot.step_end, Some(2));
    assert!(slot.len <= Riscv64::SLOT_LEN);
}

#[test]
fn simulated_instructions_get_no_slot() {
    let jal = 0x001000efu32.to_le_bytes();
    let insn = decode(&jal, K);
    let e = Riscv64::build_slot(&insn, &jal, 0x8020_0000, 0x9000_0000, K, false).unwrap_err();
    assert!(matches!(e.kind(), ProbeErrorKind::InvalidRequest(_)));
    assert_eq!(e.addr(), 0x8020_0000);
}

#[test]
fn kernel_step_masks_interrupts_and_restores_them() {
    let addr = 0x8020_0002;
    let slot = 0x9000_0000;
    let mul = 0x02c58533u32.to_le_bytes();
    let insn = decode(&mul, K);
    let mut regs = PtRegs {
        epc: addr,
        status: SSTATUS_SPIE | 0x100, // SPIE and SPP set
        ..PtRegs::default()
    };
    let state = Riscv64::prepare_step(&insn, &mut regs, slot, false);
    assert_eq!((regs.epc, regs.status), (slot, 0x100));

    // The step-end trap: the hardware reports the slot's ebreak, with FS
    // (bits 14:13) now dirty; only SPIE comes back.
    regs.epc = slot + 4;
    regs.status = 0x100 | 0x6000;
    Riscv64::finish_step(&insn, &mut regs, addr, slot, state, &NoMemory).unwrap();
    assert_eq!((regs.epc, regs.status), (addr + 4, 0x6100 | SSTATUS_SPIE));
}

#[test]
fn kernel_step_with_interrupts_already_off_keeps_them_off() {
    let c_mv = 0x852eu16.to_le_bytes();
    let insn = decode(&c_mv, K);
    let mut regs = PtRegs {
        epc: 0x8020_0000,
        status: 0x100,
        ..PtRegs::default()
    };
    let state = Riscv64::prepare_step(&insn, &mut regs, 0x9000_0000, false);
    assert_eq!(state, StepState::default());
    Riscv64::finish_step(&insn, &mut regs, 0x8020_0000, 0x9000_0000, state, &NoMemory).unwrap();
    assert_eq!((regs.epc, regs.status), (0x8020_0002, 0x100));
}

#[test]
fn user_step_leaves_status_alone() {
    let c_mv = 0x852eu16.to_le_bytes();
    let insn = decode(&c_mv, U);
    let mut regs = PtRegs {
        epc: 0x1_0000,
        status: SSTATUS_SPIE,
        ..PtRegs::default()
    };
    let state = Riscv64::prepare_step(&insn, &mut regs, 0x2_0000, false);
    assert_eq!((regs.epc, regs.status), (0x2_0000, SSTATUS_SPIE));
    Riscv64::finish_step(&insn, &mut regs, 0x1_0000, 0x2_0000, state, &NoMemory).unwrap();
    assert_eq!((regs.epc, regs.status), (0x1_0002, SSTATUS_SPIE));
}

#[test]
fn abort_puts_the_pc_back_and_restores_interrupts() {
    let ld = 0x00813503u32.to_le_bytes();
    let insn = decode(&ld, K);
    let mut regs = PtRegs {
        epc: 0x8020_0000,
        status: SSTATUS_SPIE,
        ..PtRegs::default()
    };
    let state = Riscv64::prepare_step(&insn, &mut regs, 0x9000_0000, false);
    assert_eq!(regs.status, 0);
    regs.epc = 0x9000_0000; // the load faulted in the slot
    Riscv64::abort_step(&insn, &mut regs, 0x8020_0000, state);
    assert_eq!((regs.epc, regs.status), (0x8020_0000, SSTATUS_SPIE));
}

#[test]
fn return_hijack_swaps_ra_and_frames_match_on_sp() {
    let mut regs = PtRegs {
        ra: 0x8020_1234,
        sp: 0x8100_0000,
        ..PtRegs::default()
    };
    let entry = Riscv64::entry_frame(&regs);
    let real = Riscv64::hijack_return(&mut regs, &NoMemory, 0x8030_0000).unwrap();
    assert_eq!((real, regs.ra), (0x8020_1234, 0x8030_0000));
    // At the return, sp is back to its entry value.
    assert_eq!(Riscv64::return_frame(&regs), entry);
    assert_eq!(entry, 0x8100_0000);
}

#[test]
fn no_kernel_trampoline_on_the_host() {
    assert_eq!(Riscv64::kernel_trampoline(), None);
}

/// An LR/SC loop as GNU as 2.40 assembles it (`-march=rv64gc`):
/// ```text
///  0: c.addi sp,-16
///  2: lr.w t0,(a0)          <- 1:
///  6: bne t0,a1,2f
///  a: sc.w t1,a2,(a0)
///  e: bne t1,zero,1b
/// 12: c.addi sp,16          <- 2:
/// 14: lr.d.aq a5,(a0)       <- 3:
/// 18: c.bnez a5,4f
/// 1a: c.addi a3,1
/// 1c: sc.d.rl a4,a3,(a0)
/// 20: c.bnez a4,3b
/// 22: c.jr ra               <- 4:
/// ```
const LOOPS: [u8; 36] = [
    0x41, 0x11, 0xaf, 0x22, 0x05, 0x10, 0x63, 0x96, 0xb2, 0x00, 0x2f, 0x23, 0xc5, 0x18, 0xe3, 0x1a,
    0x03, 0xfe, 0x41, 0x01, 0xaf, 0x37, 0x05, 0x14, 0x89, 0xe7, 0x85, 0x06, 0x2f, 0x37, 0xd5, 0x1a,
    0x75, 0xfb, 0x82, 0x80,
];

/// What a probe at offset `at` of `code` (based at 0x8020_0000) meets:
/// `Ok(())` or the refused mnemonic, from decode and the look-back.
fn probe_at(code: &[u8], at: usize) -> Result<(), &'static str> {
    let addr = 0x8020_0000 + at;
    let before = &code[at.saturating_sub(Riscv64::LOOK_BACK)..at];
    let refused = |e: probe_hal::ProbeError| match e.kind() {
        ProbeErrorKind::Refused(r) => r.mnemonic,
        other => panic!("{other:?}"),
    };
    Riscv64::decode(addr, &code[at..], K).map_err(refused)?;
    Riscv64::check_sequence(addr, before, K).map_err(refused)
}

#[test]
fn addresses_inside_lr_sc_sequences_are_refused() {
    let expected: [(usize, Result<(), &str>); 12] = [
        (0x00, Ok(())),
        (0x02, Err("lr.w")),
        (0x06, Err("lr.w/sc.w sequence")),
        (0x0a, Err("sc.w")),
        (0x0e, Ok(())),
        (0x12, Ok(())),
        (0x14, Err("lr.d")),
        (0x18, Err("lr.d/sc.d sequence")),
        (0x1a, Err("lr.d/sc.d sequence")),
        (0x1c, Err("sc.d")),
        (0x20, Ok(())),
        (0x22, Ok(())),
    ];
    for (at, verdict) in expected {
        assert_eq!(probe_at(&LOOPS, at), verdict, "offset {at:#x}");
    }
    // The sc itself is inside the sequence, whatever decode says.
    let e = Riscv64::check_sequence(0x8020_000a, &LOOPS[..0x0a], K).unwrap_err();
    assert_eq!(e.addr(), 0x8020_000a);
    assert!(e.to_string().contains("may clear the reservation"));
}

#[test]
fn look_back_covers_the_isa_bound_and_no_more() {
    // lr.w t0,(a0) then 17 `addi zero,zero,0` (4 bytes each): the last
    // instruction of a 16-instruction sequence is 60 bytes after the lr.
    let mut code = Vec::from(0x100522afu32.to_le_bytes());
    for _ in 0..17 {
        code.extend_from_slice(&0x00000013u32.to_le_bytes());
    }
    assert_eq!(probe_at(&code, 60), Err("lr.w/sc.w sequence"));
    // The 64-byte window still sees an lr 64 bytes back (a false positive
    // the ISA bound would allow), not one 68 bytes back.
    assert_eq!(probe_at(&code, 64), Err("lr.w/sc.w sequence"));
    assert_eq!(probe_at(&code, 68), Ok(()));
}

#[test]
fn look_back_handles_short_and_odd_windows() {
    assert_eq!(Riscv64::check_sequence(0x1000, &[], K), Ok(()));
    assert_eq!(Riscv64::check_sequence(0x1000, &[0x2f], K), Ok(()));
    // An odd-length window: the first byte is not at an even address, the
    // lr starts at offset 1.
    let mut before = vec![0xff];
    before.extend_from_slice(&0x100522afu32.to_le_bytes());
    before.extend_from_slice(&[0x01, 0x00]);
    assert!(Riscv64::check_sequence(0x1000, &before, U).is_err());
    // The same bytes seen from an even start are misaligned for the lr.
    assert_eq!(Riscv64::check_sequence(0x1000, &before[..6], U), Ok(()));
}
