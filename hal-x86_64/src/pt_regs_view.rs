//! The Linux x86_64 `pt_regs` view eBPF programs read, zero-copy when the
//! frame is a [`PtRegs`].
//!
//! eBPF programs attached to kprobes read their context at Linux's
//! `struct pt_regs` offsets (arch/x86/include/asm/ptrace.h, whose field
//! names are the "Linux name" column; the uapi header
//! arch/x86/include/uapi/asm/ptrace.h names them as [`PtRegs`] does; libbpf's
//! `PT_REGS_PARM1` is `di` at offset 112), so [`PtRegs`]' layout is ABI:
//! 21 words, 168 bytes, checked field by field at compile time.
//! `cs` and `ss` are 8-byte slots (Linux: a 16-bit selector and, with
//! FRED, extra bits in the rest of the word).
//!
//! | offset | size | field | Linux name |
//! | --- | --- | --- | --- |
//! | 0 | 8 | `r15` | `r15` |
//! | 8 | 8 | `r14` | `r14` |
//! | 16 | 8 | `r13` | `r13` |
//! | 24 | 8 | `r12` | `r12` |
//! | 32 | 8 | `rbp` | `bp` |
//! | 40 | 8 | `rbx` | `bx` |
//! | 48 | 8 | `r11` | `r11` |
//! | 56 | 8 | `r10` | `r10` |
//! | 64 | 8 | `r9` | `r9` |
//! | 72 | 8 | `r8` | `r8` |
//! | 80 | 8 | `rax` | `ax` |
//! | 88 | 8 | `rcx` | `cx` |
//! | 96 | 8 | `rdx` | `dx` |
//! | 104 | 8 | `rsi` | `si` |
//! | 112 | 8 | `rdi` | `di` |
//! | 120 | 8 | `orig_rax` | `orig_ax` |
//! | 128 | 8 | `rip` | `ip` |
//! | 136 | 8 | `cs` | `cs` |
//! | 144 | 8 | `eflags` | `flags` |
//! | 152 | 8 | `rsp` | `sp` |
//! | 160 | 8 | `ss` | `ss` |
//!
//! [`with_pt_regs`] is what an eBPF dispatcher calls with the frame a
//! handler got: the frame itself when it is a [`PtRegs`] (the return
//! trampoline's frame, or a kernel whose trap frame is one:
//! [`pt_regs_mut`]), otherwise a [`PtRegs::capture`] of it and, after the
//! program ran, a [`PtRegs::write_back`] of what the program changed.
//! `orig_rax`, `cs` and `ss` are not exposed by
//! [`Registers`](probe_hal::Registers): a captured view has them 0 and
//! their changes are not written back.

use crate::regs::PtRegs;

probe_hal::__pt_regs_view! {
    isa: "x86_64",
    type: PtRegs,
    blank: PtRegs::zeroed(),
    gprs: 0..16,
    size: 168,
    offsets: {
        r15: 0,
        r14: 8,
        r13: 16,
        r12: 24,
        rbp: 32,
        rbx: 40,
        r11: 48,
        r10: 56,
        r9: 64,
        r8: 72,
        rax: 80,
        rcx: 88,
        rdx: 96,
        rsi: 104,
        rdi: 112,
        orig_rax: 120,
        rip: 128,
        cs: 136,
        eflags: 144,
        rsp: 152,
        ss: 160,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe_hal::Registers;

    /// A frame of another crate's shape (ArceOS-like: the pushed
    /// registers, the vector and error code, then the CPU's frame).
    #[derive(Debug, Default, Clone, PartialEq)]
    #[rustfmt::skip]
    struct TrapFrame {
        rax: u64, rcx: u64, rdx: u64, rbx: u64, rbp: u64, rsi: u64, rdi: u64, r8: u64,
        r9: u64, r10: u64, r11: u64, r12: u64, r13: u64, r14: u64, r15: u64,
        vector: u64, error_code: u64, rip: u64, cs: u64, rflags: u64, rsp: u64, ss: u64,
    }

    crate::frame_registers! {
        /// Borrowed.
        struct Frame<'a>(&'a mut TrapFrame) {
            pc: rip,
            flags: rflags,
            gprs: [
                rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
            ],
        }
    }

    crate::frame_registers! {
        /// Owned.
        struct Owned(TrapFrame) {
            pc: rip,
            gprs: [
                rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
            ],
        }
    }

    fn numbered() -> TrapFrame {
        let mut tf = TrapFrame {
            rip: 0xffff_8000_0000_1000,
            rflags: 0x202,
            vector: 3,
            ..TrapFrame::default()
        };
        let mut f = Frame(&mut tf);
        for n in 0..16 {
            f.set_gpr(n, 0x1000 + n);
        }
        tf
    }

    #[test]
    fn capture_reads_every_register_the_trait_exposes() {
        let mut tf = numbered();
        assert_eq!(
            (tf.rax, tf.rsp, tf.rdi, tf.r15),
            (0x1000, 0x1004, 0x1007, 0x100f)
        );
        let mut f = Frame(&mut tf);
        assert!(pt_regs_mut(&mut f).is_none());
        assert_eq!((f.gpr(16), f.sp(), f.arg(0)), (0, 0x1004, Some(0x1007)));
        let p = PtRegs::capture(&f);
        for n in 0..16 {
            assert_eq!(p.gpr(n), 0x1000 + n, "gpr {n}");
        }
        assert_eq!(
            (p.rip, p.eflags, p.rsp),
            (0xffff_8000_0000_1000, 0x202, 0x1004)
        );
        assert_eq!((p.orig_rax, p.cs, p.ss), (0, 0, 0));
    }

    #[test]
    fn write_back_writes_only_what_the_program_changed() {
        let mut tf = numbered();
        let before = PtRegs::capture(&Frame(&mut tf));
        let mut now = before;
        now.rax = 0xa0; // the program changes rax and rsp
        now.rsp -= 8;
        tf.rdx = 0xd0; // meanwhile someone else changes rdx, rsp and rflags
        tf.rsp = 0xbad;
        tf.rflags = 0x2;
        let mut expected = tf.clone();
        expected.rax = 0xa0;
        expected.rsp = now.rsp;
        now.write_back(&before, &mut Frame(&mut tf));
        assert_eq!(tf, expected);
    }

    #[test]
    fn with_pt_regs_converts_a_foreign_frame() {
        let mut tf = numbered();
        let pc = with_pt_regs(&mut Frame(&mut tf), |p| {
            p.set_return_value(7);
            p.rip += 1;
            p.rip
        });
        let mut expected = numbered();
        expected.rax = 7;
        expected.rip += 1;
        assert_eq!((pc, tf), (expected.rip, expected));
    }

    #[test]
    fn the_owned_wrapper_is_the_frame() {
        let mut tf = numbered();
        let w = Owned::from_mut(&mut tf);
        w.set_return_value(1);
        w.set_sp(0x10);
        w.set_flags(0x46); // not mapped: ignored
        assert_eq!((w.return_value(), w.gpr(4), w.flags()), (1, 0x10, 0));
        assert_eq!((tf.rax, tf.rsp, tf.rflags), (1, 0x10, 0x202));
    }
}
