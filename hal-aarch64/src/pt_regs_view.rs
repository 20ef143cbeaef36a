//! The Linux arm64 `pt_regs` view eBPF programs read, zero-copy when the
//! frame is a [`PtRegs`].
//!
//! eBPF programs attached to kprobes read their context as Linux's
//! `struct user_pt_regs` (arch/arm64/include/uapi/asm/ptrace.h; libbpf's
//! `PT_REGS_PARM1` is `regs[0]`), the first 272 bytes of `struct pt_regs`
//! (arch/arm64/include/asm/ptrace.h), so [`PtRegs`]' layout is ABI: its
//! 288 bytes are Linux's up to `syscallno`, checked field by field at
//! compile time below. Linux's later fields (`sdei_ttbr1`, `pmr`,
//! `stackframe`, …) are kernel-internal and not part of the view.
//!
//! | offset | size | field | Linux name |
//! | --- | --- | --- | --- |
//! | 0 | 248 | `regs[0..31]` (`x0`-`x30`; `regs[n]` at 8n) | `regs[31]` (`user_pt_regs`) |
//! | 248 | 8 | `sp` | `sp` |
//! | 256 | 8 | `pc` | `pc` |
//! | 264 | 8 | `pstate` | `pstate` (end of `user_pt_regs`, 272 bytes) |
//! | 272 | 8 | `orig_x0` | `orig_x0` |
//! | 280 | 8 | `syscallno` | `syscallno` (`s32`) and `unused2` (`u32`): one little-endian word here |
//!
//! [`with_pt_regs`] is what an eBPF dispatcher calls with the frame a
//! handler got: the frame itself when it is a [`PtRegs`] (the return
//! trampoline's frame, or a kernel whose trap frame is one:
//! [`pt_regs_mut`]), otherwise a [`PtRegs::capture`] of it and, after the
//! program ran, a [`PtRegs::write_back`] of what the program changed.
//! `orig_x0` and `syscallno` are not exposed by
//! [`Registers`](probe_hal::Registers): a captured view has them 0 and their
//! changes are not written back.

use crate::regs::PtRegs;

probe_hal::__pt_regs_view! {
    isa: "aarch64",
    type: PtRegs,
    blank: PtRegs::new(),
    gprs: 0..31,
    size: 288,
    offsets: {
        regs: 0,
        sp: 248,
        pc: 256,
        pstate: 264,
        orig_x0: 272,
        syscallno: 280,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe_hal::Registers;

    /// A frame of another crate's shape (ArceOS-like, `u64` fields).
    #[derive(Debug, Default, Clone, PartialEq)]
    struct TrapFrame {
        r: [u64; 31],
        usp: u64,
        elr: u64,
        spsr: u64,
    }

    crate::frame_registers! {
        /// Borrowed.
        struct Frame<'a>(&'a mut TrapFrame) {
            pc: elr,
            sp: usp,
            flags: spsr,
            gprs: r,
        }
    }

    /// A frame with named registers, owned.
    #[derive(Debug, Default)]
    #[rustfmt::skip]
    struct Named {
        x0: u64, x1: u64, x2: u64, x3: u64, x4: u64, x5: u64, x6: u64, x7: u64, x8: u64,
        x9: u64, x10: u64, x11: u64, x12: u64, x13: u64, x14: u64, x15: u64, x16: u64,
        x17: u64, x18: u64, x19: u64, x20: u64, x21: u64, x22: u64, x23: u64, x24: u64,
        x25: u64, x26: u64, x27: u64, x28: u64, fp: u64, lr: u64, sp: u64, pc: u64,
    }

    crate::frame_registers! {
        /// Owned, named.
        struct Owned(Named) {
            pc: pc,
            sp: sp,
            gprs: [
                x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15, x16,
                x17, x18, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, fp, lr,
            ],
        }
    }

    fn numbered() -> TrapFrame {
        let mut tf = TrapFrame {
            usp: 0xffff_0000_0010_0000,
            elr: 0xffff_0000_0020_0000,
            spsr: 0x3c5,
            ..TrapFrame::default()
        };
        for n in 0..31 {
            tf.r[n] = 0x1000 + n as u64;
        }
        tf
    }

    #[test]
    fn capture_reads_every_register_the_trait_exposes() {
        let mut tf = numbered();
        let mut f = Frame(&mut tf);
        assert!(pt_regs_mut(&mut f).is_none());
        assert_eq!((f.gpr(31), f.arg(7)), (0, Some(0x1007)));
        let p = PtRegs::capture(&f);
        for n in 0..31 {
            assert_eq!(p.regs[n], 0x1000 + n, "x{n}");
        }
        assert_eq!(
            (p.sp, p.pc, p.pstate),
            (0xffff_0000_0010_0000, 0xffff_0000_0020_0000, 0x3c5)
        );
        assert_eq!((p.orig_x0, p.syscallno), (0, 0));
    }

    #[test]
    fn write_back_writes_only_what_the_program_changed() {
        let mut tf = numbered();
        let before = PtRegs::capture(&Frame(&mut tf));
        let mut now = before;
        now.regs[0] = 0xa0; // the program changes x0 and sp
        now.sp -= 16;
        tf.r[1] = 0xa1; // meanwhile someone else changes x1, sp and spsr
        tf.usp = 0xbad;
        tf.spsr = 0x3c0;
        let mut expected = tf.clone();
        expected.r[0] = 0xa0;
        expected.usp = now.sp as u64;
        now.write_back(&before, &mut Frame(&mut tf));
        assert_eq!(tf, expected);
    }

    #[test]
    fn with_pt_regs_converts_a_foreign_frame() {
        let mut tf = numbered();
        let pc = with_pt_regs(&mut Frame(&mut tf), |p| {
            p.set_return_value(7);
            p.set_gpr(31, 9);
            p.pc += 4;
            p.pc
        });
        let mut expected = numbered();
        expected.r[0] = 7;
        expected.elr += 4;
        assert_eq!((pc as u64, tf), (expected.elr, expected));
    }

    #[test]
    fn the_owned_named_wrapper_is_the_frame() {
        let mut n = Named::default();
        let w = Owned::from_mut(&mut n);
        for r in 0..32 {
            w.set_gpr(r, 0x100 + r);
        }
        w.set_sp(0x10);
        w.set_flags(2); // not mapped: ignored
        assert_eq!(
            (w.gpr(31), w.gpr(30), w.flags(), w.sp()),
            (0, 0x11e, 0, 0x10)
        );
        assert_eq!(
            (n.x0, n.x28, n.fp, n.lr, n.sp),
            (0x100, 0x11c, 0x11d, 0x11e, 0x10)
        );
    }
}
