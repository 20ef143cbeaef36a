//! The Linux loongarch64 `pt_regs` view eBPF programs read, zero-copy
//! when the frame is a [`PtRegs`].
//!
//! eBPF programs attached to kprobes read their context at Linux's
//! `struct pt_regs` offsets (arch/loongarch/include/asm/ptrace.h; libbpf's
//! `PT_REGS_PARM1` is `regs[4]`, offset 32), so [`PtRegs`]' layout is ABI:
//! 40 words, 320 bytes, checked field by field at compile time
//! (Linux's trailing `__last[]` is empty).
//!
//! | offset | size | field | Linux name |
//! | --- | --- | --- | --- |
//! | 0 | 256 | `regs[0..32]` (`r0`-`r31`; `regs[n]` at 8n) | `regs[32]` |
//! | 256 | 8 | `orig_a0` | `orig_a0` |
//! | 264 | 8 | `csr_era` | `csr_era` |
//! | 272 | 8 | `csr_badvaddr` | `csr_badvaddr` |
//! | 280 | 8 | `csr_crmd` | `csr_crmd` |
//! | 288 | 8 | `csr_prmd` | `csr_prmd` |
//! | 296 | 8 | `csr_euen` | `csr_euen` |
//! | 304 | 8 | `csr_ecfg` | `csr_ecfg` |
//! | 312 | 8 | `csr_estat` | `csr_estat` |
//!
//! [`with_pt_regs`] is what an eBPF dispatcher calls with the frame a
//! handler got: the frame itself when it is a [`PtRegs`] (the return
//! trampoline's frame, or a kernel whose trap frame is one:
//! [`pt_regs_mut`]), otherwise a [`PtRegs::capture`] of it and, after the
//! program ran, a [`PtRegs::write_back`] of what the program changed. Only
//! `regs[1..32]`, `csr_era` (the pc) and `csr_prmd` (the flags) are exposed
//! by [`Registers`](probe_hal::Registers): a captured view has the other
//! fields 0 and their changes are not written back.

use crate::regs::PtRegs;

probe_hal::__pt_regs_view! {
    isa: "loongarch64",
    type: PtRegs,
    blank: PtRegs::new(),
    gprs: 1..32,
    size: 320,
    offsets: {
        regs: 0,
        orig_a0: 256,
        csr_era: 264,
        csr_badvaddr: 272,
        csr_crmd: 280,
        csr_prmd: 288,
        csr_euen: 296,
        csr_ecfg: 304,
        csr_estat: 312,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe_hal::Registers;

    /// A frame of another crate's shape (ArceOS-like: the registers as an
    /// array indexed by number, then the CSRs).
    #[derive(Debug, Default, Clone, PartialEq)]
    struct TrapFrame {
        regs: [usize; 32],
        prmd: usize,
        era: usize,
    }

    crate::frame_registers! {
        /// Borrowed.
        struct Frame<'a>(&'a mut TrapFrame) {
            pc: era,
            flags: prmd,
            gprs: regs,
        }
    }

    crate::frame_registers! {
        /// Owned.
        struct Owned(TrapFrame) {
            pc: era,
            gprs: regs,
        }
    }

    fn numbered() -> TrapFrame {
        let mut tf = TrapFrame {
            era: 0x9000_0000_0020_0000,
            prmd: 0b111,
            ..TrapFrame::default()
        };
        for n in 0..32 {
            tf.regs[n] = 0x1000 + n;
        }
        tf
    }

    #[test]
    fn capture_reads_every_register_the_trait_exposes() {
        let mut tf = numbered();
        let mut f = Frame(&mut tf);
        assert!(pt_regs_mut(&mut f).is_none());
        assert_eq!((f.gpr(0), f.sp(), f.arg(0)), (0, 0x1003, Some(0x1004)));
        let p = PtRegs::capture(&f);
        for n in 1..32 {
            assert_eq!(p.regs[n], 0x1000 + n, "r{n}");
        }
        assert_eq!(p.regs[0], 0);
        assert_eq!((p.csr_era, p.csr_prmd), (0x9000_0000_0020_0000, 0b111));
        assert_eq!((p.orig_a0, p.csr_estat), (0, 0));
    }

    #[test]
    fn write_back_writes_only_what_the_program_changed() {
        let mut tf = numbered();
        let before = PtRegs::capture(&Frame(&mut tf));
        let mut now = before;
        now.regs[4] = 0xa0; // the program changes a0 and r31
        now.regs[31] = 0x31;
        tf.regs[5] = 0xa1; // meanwhile someone else changes a1, r31 and era
        tf.regs[31] = 0xbad;
        tf.era += 4;
        let mut expected = tf.clone();
        expected.regs[4] = 0xa0;
        expected.regs[31] = 0x31;
        now.write_back(&before, &mut Frame(&mut tf));
        assert_eq!(tf, expected);
    }

    #[test]
    fn with_pt_regs_converts_a_foreign_frame() {
        let mut tf = numbered();
        let pc = with_pt_regs(&mut Frame(&mut tf), |p| {
            p.set_return_value(7);
            p.set_gpr(0, 9);
            p.csr_era += 4;
            p.csr_era
        });
        let mut expected = numbered();
        expected.regs[4] = 7;
        expected.era += 4;
        assert_eq!((pc, tf), (expected.era, expected));
    }

    #[test]
    fn the_owned_wrapper_is_the_frame() {
        let mut tf = numbered();
        let w = Owned::from_mut(&mut tf);
        w.set_return_value(1);
        w.set_gpr(0, 4);
        w.set_sp(0x10);
        w.set_flags(2); // not mapped: ignored
        assert_eq!((w.gpr(0), w.return_value(), w.flags()), (0, 1, 0));
        assert_eq!(
            (tf.regs[0], tf.regs[4], tf.regs[3], tf.prmd),
            (0x1000, 1, 0x10, 0b111)
        );
    }
}
