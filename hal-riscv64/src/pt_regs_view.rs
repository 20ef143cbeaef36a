//! The Linux riscv64 `pt_regs` view eBPF programs read, zero-copy when
//! the frame is a [`PtRegs`].
//!
//! eBPF programs attached to kprobes read their context at Linux's
//! `struct pt_regs` offsets (arch/riscv/include/asm/ptrace.h; libbpf's
//! `PT_REGS_PARM1` is `a0` at offset 80), so [`PtRegs`]' layout is ABI:
//! 36 words, 288 bytes, checked field by field at compile time.
//!
//! | offset | size | field | Linux name |
//! | --- | --- | --- | --- |
//! | 0 | 8 | `epc` | `epc` |
//! | 8 | 8 | `ra` | `ra` |
//! | 16 | 8 | `sp` | `sp` |
//! | 24 | 8 | `gp` | `gp` |
//! | 32 | 8 | `tp` | `tp` |
//! | 40 | 8 | `t0` | `t0` |
//! | 48 | 8 | `t1` | `t1` |
//! | 56 | 8 | `t2` | `t2` |
//! | 64 | 8 | `s0` | `s0` |
//! | 72 | 8 | `s1` | `s1` |
//! | 80 | 8 | `a0` | `a0` |
//! | 88 | 8 | `a1` | `a1` |
//! | 96 | 8 | `a2` | `a2` |
//! | 104 | 8 | `a3` | `a3` |
//! | 112 | 8 | `a4` | `a4` |
//! | 120 | 8 | `a5` | `a5` |
//! | 128 | 8 | `a6` | `a6` |
//! | 136 | 8 | `a7` | `a7` |
//! | 144 | 8 | `s2` | `s2` |
//! | 152 | 8 | `s3` | `s3` |
//! | 160 | 8 | `s4` | `s4` |
//! | 168 | 8 | `s5` | `s5` |
//! | 176 | 8 | `s6` | `s6` |
//! | 184 | 8 | `s7` | `s7` |
//! | 192 | 8 | `s8` | `s8` |
//! | 200 | 8 | `s9` | `s9` |
//! | 208 | 8 | `s10` | `s10` |
//! | 216 | 8 | `s11` | `s11` |
//! | 224 | 8 | `t3` | `t3` |
//! | 232 | 8 | `t4` | `t4` |
//! | 240 | 8 | `t5` | `t5` |
//! | 248 | 8 | `t6` | `t6` |
//! | 256 | 8 | `status` | `status` |
//! | 264 | 8 | `badaddr` | `badaddr` |
//! | 272 | 8 | `cause` | `cause` |
//! | 280 | 8 | `orig_a0` | `orig_a0` |
//!
//! [`with_pt_regs`] is what an eBPF dispatcher calls with the frame a
//! handler got: the frame itself when it is a [`PtRegs`] (the return
//! trampoline's frame, or a kernel whose trap frame is one:
//! [`pt_regs_mut`]), otherwise a [`PtRegs::capture`] of it and, after the
//! program ran, a [`PtRegs::write_back`] of what the program changed.
//! `badaddr`, `cause` and `orig_a0` are not exposed by
//! [`Registers`](probe_hal::Registers): a captured view has them 0 and
//! their changes are not written back.

use crate::regs::PtRegs;

probe_hal::__pt_regs_view! {
    isa: "riscv64",
    type: PtRegs,
    blank: PtRegs::default(),
    gprs: 1..32,
    size: 288,
    offsets: {
        epc: 0,
        ra: 8,
        sp: 16,
        gp: 24,
        tp: 32,
        t0: 40,
        t1: 48,
        t2: 56,
        s0: 64,
        s1: 72,
        a0: 80,
        a1: 88,
        a2: 96,
        a3: 104,
        a4: 112,
        a5: 120,
        a6: 128,
        a7: 136,
        s2: 144,
        s3: 152,
        s4: 160,
        s5: 168,
        s6: 176,
        s7: 184,
        s8: 192,
        s9: 200,
        s10: 208,
        s11: 216,
        t3: 224,
        t4: 232,
        t5: 240,
        t6: 248,
        status: 256,
        badaddr: 264,
        cause: 272,
        orig_a0: 280,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe_hal::Registers;

    /// A frame of another crate's shape (ArceOS-like: named registers,
    /// `zero` included, CSRs after them).
    #[derive(Debug, Default, Clone, PartialEq)]
    #[rustfmt::skip]
    struct GeneralRegisters {
        zero: usize, ra: usize, sp: usize, gp: usize, tp: usize, t0: usize, t1: usize,
        t2: usize, s0: usize, s1: usize, a0: usize, a1: usize, a2: usize, a3: usize,
        a4: usize, a5: usize, a6: usize, a7: usize, s2: usize, s3: usize, s4: usize,
        s5: usize, s6: usize, s7: usize, s8: usize, s9: usize, s10: usize, s11: usize,
        t3: usize, t4: usize, t5: usize, t6: usize,
    }

    #[derive(Debug, Default, Clone, PartialEq)]
    struct TrapFrame {
        regs: GeneralRegisters,
        sepc: usize,
        sstatus: usize,
    }

    crate::frame_registers! {
        /// Named fields, borrowed.
        struct Named<'a>(&'a mut TrapFrame) {
            pc: sepc,
            flags: sstatus,
            gprs: [
                regs.ra, regs.sp, regs.gp, regs.tp, regs.t0, regs.t1, regs.t2, regs.s0,
                regs.s1, regs.a0, regs.a1, regs.a2, regs.a3, regs.a4, regs.a5, regs.a6,
                regs.a7, regs.s2, regs.s3, regs.s4, regs.s5, regs.s6, regs.s7, regs.s8,
                regs.s9, regs.s10, regs.s11, regs.t3, regs.t4, regs.t5, regs.t6,
            ],
        }
    }

    /// The same frame as a `[usize; 32]` array, owned.
    #[derive(Debug, Default, Clone, PartialEq)]
    struct ArrayFrame {
        x: [usize; 32],
        sepc: usize,
        sstatus: usize,
    }

    crate::frame_registers! {
        /// Array, owned.
        struct Owned(ArrayFrame) {
            pc: sepc,
            flags: sstatus,
            gprs: x,
        }
    }

    fn numbered() -> TrapFrame {
        let mut tf = TrapFrame {
            sepc: 0x8020_0000,
            sstatus: 0x120,
            ..TrapFrame::default()
        };
        let mut f = Named(&mut tf);
        for n in 1..32 {
            f.set_gpr(n, 0x1000 + n);
        }
        tf
    }

    #[test]
    fn a_named_foreign_frame_maps_every_register() {
        let mut tf = numbered();
        assert_eq!((tf.regs.zero, tf.regs.ra, tf.regs.sp), (0, 0x1001, 0x1002));
        assert_eq!((tf.regs.a0, tf.regs.t6), (0x100a, 0x101f));
        let mut f = Named(&mut tf);
        f.set_gpr(0, 9);
        f.set_gpr(32, 9);
        assert_eq!(
            (f.gpr(0), f.gpr(32), f.sp(), f.arg(7)),
            (0, 0, 0x1002, Some(0x1011))
        );
        f.set_sp(0x9000);
        assert_eq!(tf.regs.sp, 0x9000);
        assert_eq!(tf.regs.zero, 0);
    }

    #[test]
    fn capture_reads_every_register_the_trait_exposes() {
        let mut tf = numbered();
        let mut f = Named(&mut tf);
        assert!(pt_regs_mut(&mut f).is_none());
        let p = PtRegs::capture(&f);
        for n in 1..32 {
            assert_eq!(p.gpr(n), 0x1000 + n, "x{n}");
        }
        assert_eq!(
            (p.epc, p.status, p.sp, p.a0),
            (0x8020_0000, 0x120, 0x1002, 0x100a)
        );
        assert_eq!((p.badaddr, p.cause, p.orig_a0), (0, 0, 0));
    }

    #[test]
    fn write_back_writes_only_what_the_program_changed() {
        let mut tf = numbered();
        let before = PtRegs::capture(&Named(&mut tf));
        let mut now = before;
        now.a0 = 0xa0; // the program changes a0 and t6
        now.t6 = 0x76;
        tf.regs.a1 = 0xa1; // meanwhile someone else changes a1, t6 and sepc
        tf.regs.t6 = 0xbad;
        tf.sepc = 0x8030_0000;
        let mut expected = tf.clone();
        expected.regs.a0 = 0xa0;
        expected.regs.t6 = 0x76;
        now.write_back(&before, &mut Named(&mut tf));
        assert_eq!(tf, expected);
    }

    #[test]
    fn with_pt_regs_converts_a_foreign_frame() {
        let mut tf = numbered();
        let pc = with_pt_regs(&mut Named(&mut tf), |p| {
            p.set_return_value(7);
            p.epc += 4;
            p.epc
        });
        let mut expected = numbered();
        expected.regs.a0 = 7;
        expected.sepc = 0x8020_0004;
        assert_eq!((pc, tf), (0x8020_0004, expected));
    }

    #[test]
    fn the_owned_wrapper_is_the_frame() {
        let mut af = ArrayFrame::default();
        af.x[0] = 3;
        let w = Owned::from_mut(&mut af);
        w.set_return_value(1);
        w.set_gpr(0, 4);
        w.set_sp(0x10);
        w.set_flags(2);
        assert_eq!((w.gpr(0), w.return_value(), w.flags()), (0, 1, 2));
        assert_eq!((af.x[0], af.x[10], af.x[2], af.sstatus), (3, 1, 0x10, 2));
    }
}
