//! The riscv64 glue's register mapping, compiled for the host: the CPU
//! crate's riscv64 frame seen by the engine through `probe::registers::Rv64Frame`,
//! and a perf-style program run on it through the riscv64 `pt_regs` view.
#![cfg(not(target_os = "none"))]

use glue_cpu::riscv64::{GeneralRegisters, TrapFrame};
use glue_kernel::probe::registers::Rv64Frame;
use probe_hal::Registers;
use probe_hal_riscv64::{pt_regs_mut, with_pt_regs, PtRegs};

fn numbered() -> TrapFrame {
    let mut tf = TrapFrame {
        regs: GeneralRegisters::default(),
        sepc: 0xffff_ffc0_8020_0000,
        sstatus: 1 << 8, // SPP: from supervisor mode
    };
    let mut f = Rv64Frame(&mut tf);
    for n in 1..32 {
        f.set_gpr(n, 0x100 + n);
    }
    tf
}

#[test]
fn the_frame_maps_every_register_by_number() {
    let mut tf = numbered();
    assert_eq!(
        (tf.regs.ra, tf.regs.sp, tf.regs.a0, tf.regs.t6),
        (0x101, 0x102, 0x10a, 0x11f)
    );
    assert!(!tf.from_user());
    let f = Rv64Frame(&mut tf);
    assert_eq!(
        (f.gpr(0), f.sp(), f.pc()),
        (0, 0x102, 0xffff_ffc0_8020_0000)
    );
    assert_eq!(
        (f.arg(0), f.arg(1), f.return_value()),
        (Some(0x10a), Some(0x10b), 0x10a)
    );
    assert_eq!(f.flags(), 1 << 8);
}

#[test]
fn a_program_reads_and_changes_the_frame_through_pt_regs() {
    let mut tf = numbered();
    let mut f = Rv64Frame(&mut tf);
    // A foreign frame is not a PtRegs: the view is a capture, written
    // back field by field where the program changed it.
    assert!(pt_regs_mut(&mut f).is_none());
    let seen = with_pt_regs(&mut f, |pt: &mut PtRegs| {
        let a1 = pt.a1;
        pt.a0 = 4242;
        pt.epc += 4;
        a1
    });
    assert_eq!(seen, 0x10b);
    assert_eq!((tf.regs.a0, tf.sepc), (4242, 0xffff_ffc0_8020_0004));
    assert_eq!(
        (tf.regs.a1, tf.regs.sp),
        (0x10b, 0x102),
        "unchanged fields stay"
    );
}
