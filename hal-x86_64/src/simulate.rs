//! Instructions emulated on the trap frame instead of being stepped out of
//! line: everything that reads or writes rip (a copy in a slot would compute
//! from the slot's address), and in kernel mode the instructions that change
//! or reveal the interrupt flag (the step runs with IF cleared).
//!
//! Follows Linux `prepare_emulation` and the `kprobe_emulate_*` functions in
//! arch/x86/kernel/kprobes/core.c, and the `int3_emulate_*` helpers of
//! arch/x86/include/asm/text-patching.h; flag semantics from the Intel SDM
//! Vol. 2 (Jcc, LOOPcc, JrCXZ, PUSHF, POPF).

use probe_hal::{DataAccess, MemoryFault, Registers};
use yaxpeax_x86::long_mode::Opcode;

use crate::regs::{gpr, rflags};

/// The kind of a `loop`-family instruction (opcodes e0-e3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopKind {
    /// `loopne`/`loopnz` (e0): decrement the count, branch if it is not 0 and ZF is clear.
    Loopne,
    /// `loope`/`loopz` (e1): decrement the count, branch if it is not 0 and ZF is set.
    Loope,
    /// `loop` (e2): decrement the count, branch if it is not 0.
    Loop,
    /// `jrcxz`/`jecxz` (e3): branch if the count is 0 (no decrement).
    Jrcxz,
}

/// Emulate the instruction instead of stepping a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulation {
    /// `jmp rel8` / `jmp rel32`: continue at `next + rel`.
    Jmp {
        /// Displacement from the next instruction.
        rel: i32,
    },
    /// `call rel32`: push `next`, continue at `next + rel`.
    Call {
        /// Displacement from the next instruction.
        rel: i32,
    },
    /// `jcc rel8` / `jcc rel32`.
    Jcc {
        /// Condition code: the low nibble of the opcode (0 = o, 1 = no, 2 = b,
        /// 3 = ae, 4 = e, 5 = ne, 6 = be, 7 = a, 8 = s, 9 = ns, a = p, b = np,
        /// c = l, d = ge, e = le, f = g).
        cond: u8,
        /// Displacement from the next instruction.
        rel: i32,
    },
    /// `loop`, `loope`, `loopne`, `jrcxz` (and `jecxz`).
    Loop {
        /// Which of the four.
        kind: LoopKind,
        /// Displacement from the next instruction.
        rel: i8,
        /// 0x67 prefix: the count is ecx instead of rcx.
        ecx: bool,
    },
    /// `ret` / `ret imm16`: pop the return address, then release `release`
    /// more bytes of stack.
    Ret {
        /// The immediate of `ret imm16` (0 for `ret`).
        release: u16,
    },
    /// `jmp reg`: continue at the register's value.
    JmpReg {
        /// General register number (0 = rax … 15 = r15).
        reg: u8,
    },
    /// `call reg`: push `next`, continue at the register's value.
    CallReg {
        /// General register number (0 = rax … 15 = r15).
        reg: u8,
    },
    /// `cli` (kernel mode only).
    Cli,
    /// `sti` (kernel mode only). The one-instruction interrupt shadow of a
    /// real `sti` is not reproduced (Linux does not either): do not probe
    /// the `sti` of an `sti; hlt` pair.
    Sti,
    /// `pushf` (kernel mode only).
    Pushf {
        /// 0x66 prefix: push the low 16 bits only.
        word: bool,
    },
    /// `popf` (kernel mode only), with ring-0 semantics.
    Popf {
        /// 0x66 prefix: pop 16 bits into the low half of flags.
        word: bool,
    },
}

/// What decides how an opcode is simulated; operands and prefixes refine it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// `jmp`: rel8/rel32 simulated, register simulated, memory refused.
    Jmp,
    /// `call`: rel32 simulated, register simulated, memory refused.
    Call,
    /// Near `ret` and `ret imm16`.
    Ret,
    /// Conditional jump with its condition code.
    Jcc(u8),
    /// The loop family.
    Loop(LoopKind),
    /// `cli`, `sti`, `pushf`, `popf`: simulated in kernel mode, stepped in
    /// user mode (where the CPU enforces IOPL and the step leaves IF alone).
    IfModifier(IfOp),
}

/// The four IF modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfOp {
    Cli,
    Sti,
    Pushf,
    Popf,
}

/// Opcodes that are simulated (in some mode, for some operands), by the
/// decoder's opcode. Linux `prepare_emulation`.
pub(crate) static SIMULATED: &[(Opcode, Class)] = &[
    (Opcode::JMP, Class::Jmp),
    (Opcode::CALL, Class::Call),
    (Opcode::RETURN, Class::Ret),
    (Opcode::JO, Class::Jcc(0x0)),
    (Opcode::JNO, Class::Jcc(0x1)),
    (Opcode::JB, Class::Jcc(0x2)),
    (Opcode::JNB, Class::Jcc(0x3)),
    (Opcode::JZ, Class::Jcc(0x4)),
    (Opcode::JNZ, Class::Jcc(0x5)),
    (Opcode::JNA, Class::Jcc(0x6)),
    (Opcode::JA, Class::Jcc(0x7)),
    (Opcode::JS, Class::Jcc(0x8)),
    (Opcode::JNS, Class::Jcc(0x9)),
    (Opcode::JP, Class::Jcc(0xa)),
    (Opcode::JNP, Class::Jcc(0xb)),
    (Opcode::JL, Class::Jcc(0xc)),
    (Opcode::JGE, Class::Jcc(0xd)),
    (Opcode::JLE, Class::Jcc(0xe)),
    (Opcode::JG, Class::Jcc(0xf)),
    (Opcode::LOOPNZ, Class::Loop(LoopKind::Loopne)),
    (Opcode::LOOPZ, Class::Loop(LoopKind::Loope)),
    (Opcode::LOOP, Class::Loop(LoopKind::Loop)),
    (Opcode::JRCXZ, Class::Loop(LoopKind::Jrcxz)),
    (Opcode::JECXZ, Class::Loop(LoopKind::Jrcxz)),
    (Opcode::CLI, Class::IfModifier(IfOp::Cli)),
    (Opcode::STI, Class::IfModifier(IfOp::Sti)),
    (Opcode::PUSHF, Class::IfModifier(IfOp::Pushf)),
    (Opcode::POPF, Class::IfModifier(IfOp::Popf)),
];

/// The simulation class of `opcode`, if it has one.
pub(crate) fn class_of(opcode: Opcode) -> Option<Class> {
    SIMULATED
        .iter()
        .find(|(op, _)| *op == opcode)
        .map(|(_, c)| *c)
}

/// Whether condition code `cond` (0-15, the low nibble of a jcc opcode) holds
/// for `flags`. Even codes test a flag combination, odd codes its negation.
pub fn condition_holds(cond: u8, flags: usize) -> bool {
    let set = |bit: usize| flags & bit != 0;
    let base = match (cond >> 1) & 7 {
        0 => set(rflags::OF),
        1 => set(rflags::CF),
        2 => set(rflags::ZF),
        3 => set(rflags::CF) || set(rflags::ZF),
        4 => set(rflags::SF),
        5 => set(rflags::PF),
        6 => set(rflags::SF) != set(rflags::OF),
        _ => set(rflags::ZF) || (set(rflags::SF) != set(rflags::OF)),
    };
    base != (cond & 1 != 0)
}

/// Flags a ring-0 `popf` may change (Intel SDM POPF: all but RF, VM, VIF,
/// VIP and the reserved bits).
const POPF_WRITABLE: usize = rflags::CF
    | rflags::PF
    | rflags::AF
    | rflags::ZF
    | rflags::SF
    | rflags::TF
    | rflags::IF
    | rflags::DF
    | rflags::OF
    | rflags::IOPL
    | rflags::NT
    | rflags::AC
    | rflags::ID;

/// Flags a ring-0 `popf` leaves as they are.
const POPF_KEPT: usize = rflags::VM | rflags::VIF | rflags::VIP;

/// The flags after a ring-0 `popf` (`word`: `popfw`) popped `popped` while
/// the flags were `old`.
pub fn popf_result(old: usize, popped: usize, word: bool) -> usize {
    if word {
        (old & !0xffff) | (popped & POPF_WRITABLE & 0xffff) | rflags::RESERVED_ONE
    } else {
        (popped & POPF_WRITABLE) | (old & POPF_KEPT) | rflags::RESERVED_ONE
    }
}

fn target(next: usize, rel: i32) -> usize {
    next.wrapping_add(rel as isize as usize)
}

/// Push `value` (`size` bytes) on the stack of `regs`. Memory first, so a
/// fault leaves the registers untouched.
fn push<R: Registers + ?Sized>(
    regs: &mut R,
    mem: &dyn DataAccess,
    value: usize,
    size: usize,
) -> Result<(), MemoryFault> {
    let sp = regs.sp().wrapping_sub(size);
    mem.write(sp, &value.to_le_bytes()[..size])?;
    regs.set_sp(sp);
    Ok(())
}

/// Pop `size` bytes from the stack of `regs`.
fn pop<R: Registers + ?Sized>(
    regs: &mut R,
    mem: &dyn DataAccess,
    size: usize,
) -> Result<usize, MemoryFault> {
    let sp = regs.sp();
    let mut b = [0u8; 8];
    mem.read(sp, &mut b[..size])?;
    regs.set_sp(sp.wrapping_add(size));
    Ok(usize::from_le_bytes(b))
}

/// Emulate `e`, an instruction of `len` bytes at `addr`, on `regs`, leaving
/// pc where it goes next. On a memory fault the registers are unchanged.
pub(crate) fn emulate<R: Registers + ?Sized>(
    e: Emulation,
    addr: usize,
    len: usize,
    regs: &mut R,
    mem: &dyn DataAccess,
) -> Result<(), MemoryFault> {
    let next = addr.wrapping_add(len);
    match e {
        Emulation::Jmp { rel } => regs.set_pc(target(next, rel)),
        Emulation::Call { rel } => {
            push(regs, mem, next, 8)?;
            regs.set_pc(target(next, rel));
        }
        Emulation::Jcc { cond, rel } => {
            let to = if condition_holds(cond, regs.flags()) {
                target(next, rel)
            } else {
                next
            };
            regs.set_pc(to);
        }
        Emulation::Loop { kind, rel, ecx } => {
            let rcx = regs.gpr(gpr::RCX);
            // The count register, and its value after a loop's decrement. A
            // 32-bit count is written back zero-extended (a 32-bit register
            // write; checked on hardware: `67 e2` with rcx = 0x1_0000_0005
            // leaves rcx = 4).
            let (count, decremented) = if ecx {
                let c = rcx as u32;
                (c as usize, c.wrapping_sub(1) as usize)
            } else {
                (rcx, rcx.wrapping_sub(1))
            };
            let zf = regs.flags() & rflags::ZF != 0;
            let taken = match kind {
                LoopKind::Jrcxz => count == 0,
                LoopKind::Loop => decremented != 0,
                LoopKind::Loope => decremented != 0 && zf,
                LoopKind::Loopne => decremented != 0 && !zf,
            };
            if kind != LoopKind::Jrcxz {
                regs.set_gpr(gpr::RCX, decremented);
            }
            regs.set_pc(if taken {
                target(next, rel as i32)
            } else {
                next
            });
        }
        Emulation::Ret { release } => {
            let ra = pop(regs, mem, 8)?;
            regs.set_sp(regs.sp().wrapping_add(release as usize));
            regs.set_pc(ra);
        }
        Emulation::JmpReg { reg } => regs.set_pc(regs.gpr(reg as usize)),
        Emulation::CallReg { reg } => {
            // Read the target first: `call rsp` jumps to the old rsp.
            let to = regs.gpr(reg as usize);
            push(regs, mem, next, 8)?;
            regs.set_pc(to);
        }
        Emulation::Cli => {
            regs.set_flags(regs.flags() & !rflags::IF);
            regs.set_pc(next);
        }
        Emulation::Sti => {
            regs.set_flags(regs.flags() | rflags::IF);
            regs.set_pc(next);
        }
        Emulation::Pushf { word } => {
            // The pushed image has RF and VM cleared (Intel SDM PUSHF).
            let image = regs.flags() & !(rflags::RF | rflags::VM);
            push(regs, mem, image, if word { 2 } else { 8 })?;
            regs.set_pc(next);
        }
        Emulation::Popf { word } => {
            let popped = pop(regs, mem, if word { 2 } else { 8 })?;
            regs.set_flags(popf_result(regs.flags(), popped, word));
            regs.set_pc(next);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regs::PtRegs;
    use core::cell::RefCell;

    /// A stack of 256 bytes at `BASE`; any access outside faults.
    struct Stack {
        bytes: RefCell<[u8; 256]>,
    }
    const BASE: usize = 0x7000;
    const TOP: usize = BASE + 0x80;

    impl Stack {
        fn new() -> Self {
            Self {
                bytes: RefCell::new([0xee; 256]),
            }
        }
        fn range(&self, addr: usize, len: usize) -> Result<core::ops::Range<usize>, MemoryFault> {
            if addr < BASE || addr + len > BASE + 256 {
                return Err(MemoryFault { addr });
            }
            Ok(addr - BASE..addr - BASE + len)
        }
        fn word(&self, addr: usize) -> u64 {
            let r = self.range(addr, 8).unwrap();
            u64::from_le_bytes(self.bytes.borrow()[r].try_into().unwrap())
        }
        fn set_word(&self, addr: usize, v: u64) {
            let r = self.range(addr, 8).unwrap();
            self.bytes.borrow_mut()[r].copy_from_slice(&v.to_le_bytes());
        }
    }
    impl DataAccess for Stack {
        fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
            let r = self.range(addr, buf.len())?;
            buf.copy_from_slice(&self.bytes.borrow()[r]);
            Ok(())
        }
        fn write(&self, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
            let r = self.range(addr, data.len())?;
            self.bytes.borrow_mut()[r].copy_from_slice(data);
            Ok(())
        }
    }

    const ADDR: usize = 0xffff_ffff_8100_0000;

    fn frame() -> PtRegs {
        PtRegs {
            rip: ADDR as u64 + 1,
            rsp: TOP as u64,
            eflags: 0x202,
            ..PtRegs::zeroed()
        }
    }

    fn run(e: Emulation, len: usize, regs: &mut PtRegs, mem: &Stack) {
        emulate(e, ADDR, len, regs, mem).unwrap();
    }

    #[test]
    fn jmp_rel8_and_rel32() {
        let mem = Stack::new();
        let mut r = frame();
        run(Emulation::Jmp { rel: -2 }, 2, &mut r, &mem);
        assert_eq!(r.rip as usize, ADDR, "jmp $-2 loops on itself");
        let mut r = frame();
        run(Emulation::Jmp { rel: 0x1000 }, 5, &mut r, &mem);
        assert_eq!(r.rip as usize, ADDR + 5 + 0x1000);
        assert_eq!(r.rsp as usize, TOP);
    }

    #[test]
    fn call_rel32_pushes_the_next_address() {
        let mem = Stack::new();
        let mut r = frame();
        run(Emulation::Call { rel: -0x100 }, 5, &mut r, &mem);
        assert_eq!(r.rip as usize, ADDR + 5 - 0x100);
        assert_eq!(r.rsp as usize, TOP - 8);
        assert_eq!(mem.word(TOP - 8), ADDR as u64 + 5);
    }

    #[test]
    fn call_with_a_faulting_stack_changes_nothing() {
        let mem = Stack::new();
        let mut r = frame();
        r.rsp = BASE as u64 + 4; // the push would land below the stack
        let before = r;
        let err = emulate(Emulation::Call { rel: 0 }, ADDR, 5, &mut r, &mem).unwrap_err();
        assert_eq!(err.addr, BASE - 4);
        assert_eq!(r, before);
    }

    #[test]
    fn call_and_jmp_through_registers() {
        let mem = Stack::new();
        let mut r = frame();
        r.r11 = 0x4444_0000;
        run(Emulation::CallReg { reg: 11 }, 3, &mut r, &mem);
        assert_eq!(r.rip, 0x4444_0000);
        assert_eq!(mem.word(TOP - 8), ADDR as u64 + 3);
        let mut r = frame();
        r.rax = 0x5555_0000;
        run(Emulation::JmpReg { reg: 0 }, 2, &mut r, &mem);
        assert_eq!(r.rip, 0x5555_0000);
        assert_eq!(r.rsp as usize, TOP);
        // call rsp: the target is rsp before the push.
        let mut r = frame();
        run(Emulation::CallReg { reg: 4 }, 2, &mut r, &mem);
        assert_eq!(r.rip as usize, TOP);
        assert_eq!(r.rsp as usize, TOP - 8);
    }

    #[test]
    fn ret_and_ret_imm16() {
        let mem = Stack::new();
        mem.set_word(TOP, 0xdead_beef);
        let mut r = frame();
        run(Emulation::Ret { release: 0 }, 1, &mut r, &mem);
        assert_eq!(r.rip, 0xdead_beef);
        assert_eq!(r.rsp as usize, TOP + 8);
        let mut r = frame();
        run(Emulation::Ret { release: 0x10 }, 3, &mut r, &mem);
        assert_eq!(r.rip, 0xdead_beef);
        assert_eq!(r.rsp as usize, TOP + 8 + 0x10);
    }

    #[test]
    fn every_condition_code() {
        use rflags::{CF, OF, PF, SF, ZF};
        // (cond, flags that make it true, flags that make it false)
        let cases: [(u8, usize, usize); 16] = [
            (0x0, OF, 0),
            (0x1, 0, OF),
            (0x2, CF, 0),
            (0x3, 0, CF),
            (0x4, ZF, 0),
            (0x5, 0, ZF),
            (0x6, ZF, 0),
            (0x7, 0, CF),
            (0x8, SF, 0),
            (0x9, 0, SF),
            (0xa, PF, 0),
            (0xb, 0, PF),
            (0xc, SF, SF | OF),
            (0xd, SF | OF, OF),
            (0xe, ZF, SF | OF),
            (0xf, SF | OF, ZF),
        ];
        for (cond, yes, no) in cases {
            assert!(condition_holds(cond, yes), "cond {cond:x} with {yes:#x}");
            assert!(!condition_holds(cond, no), "cond {cond:x} with {no:#x}");
        }
        // be (6) is true on CF alone as well; a (7) false on ZF alone.
        assert!(condition_holds(0x6, CF));
        assert!(!condition_holds(0x7, ZF));
        // le (e) true on OF alone (SF != OF), g (f) false on SF alone.
        assert!(condition_holds(0xe, OF));
        assert!(!condition_holds(0xf, SF));
    }

    #[test]
    fn jcc_taken_and_not_taken() {
        let mem = Stack::new();
        let mut r = frame();
        r.eflags = 0x202 | rflags::ZF as u64;
        run(Emulation::Jcc { cond: 4, rel: 0x10 }, 2, &mut r, &mem);
        assert_eq!(r.rip as usize, ADDR + 2 + 0x10, "je taken");
        let mut r = frame();
        run(Emulation::Jcc { cond: 4, rel: 0x10 }, 6, &mut r, &mem);
        assert_eq!(r.rip as usize, ADDR + 6, "je not taken");
    }

    #[test]
    fn loop_family() {
        let mem = Stack::new();
        let lp = |kind, rcx: u64, zf: bool, ecx: bool| {
            let mut r = frame();
            r.rcx = rcx;
            if zf {
                r.eflags |= rflags::ZF as u64;
            }
            run(Emulation::Loop { kind, rel: -8, ecx }, 2, &mut r, &mem);
            (r.rip as usize == ADDR + 2 - 8, r.rcx)
        };
        assert_eq!(lp(LoopKind::Loop, 3, false, false), (true, 2));
        assert_eq!(lp(LoopKind::Loop, 1, false, false), (false, 0));
        assert_eq!(lp(LoopKind::Loop, 0, false, false), (true, u64::MAX));
        assert_eq!(lp(LoopKind::Loope, 3, true, false), (true, 2));
        assert_eq!(lp(LoopKind::Loope, 3, false, false), (false, 2));
        assert_eq!(lp(LoopKind::Loopne, 3, false, false), (true, 2));
        assert_eq!(lp(LoopKind::Loopne, 3, true, false), (false, 2));
        assert_eq!(lp(LoopKind::Jrcxz, 0, false, false), (true, 0));
        assert_eq!(lp(LoopKind::Jrcxz, 5, false, false), (false, 5));
        // 0x67: ecx is the count; its write zero-extends.
        assert_eq!(lp(LoopKind::Loop, 0x1_0000_0005, false, true), (true, 4));
        assert_eq!(lp(LoopKind::Loop, 0x1_0000_0001, false, true), (false, 0));
        assert_eq!(
            lp(LoopKind::Jrcxz, 0x1_0000_0000, false, true),
            (true, 0x1_0000_0000)
        );
        assert_eq!(
            lp(LoopKind::Jrcxz, 0x1_0000_0000, false, false),
            (false, 0x1_0000_0000)
        );
    }

    #[test]
    fn cli_sti() {
        let mem = Stack::new();
        let mut r = frame();
        run(Emulation::Cli, 1, &mut r, &mem);
        assert_eq!(r.eflags, 0x002);
        assert_eq!(r.rip as usize, ADDR + 1);
        run(Emulation::Sti, 1, &mut r, &mem);
        assert_eq!(r.eflags, 0x202);
    }

    #[test]
    fn pushf_clears_rf_and_vm_in_the_image() {
        let mem = Stack::new();
        let mut r = frame();
        r.eflags = 0x202 | rflags::RF as u64 | rflags::CF as u64 | rflags::TF as u64;
        run(Emulation::Pushf { word: false }, 1, &mut r, &mem);
        assert_eq!(mem.word(TOP - 8), 0x303);
        assert_eq!(r.rsp as usize, TOP - 8);
        assert_eq!(r.rip as usize, ADDR + 1);
        // pushfw: two bytes.
        let mut r = frame();
        mem.set_word(TOP - 8, 0);
        run(Emulation::Pushf { word: true }, 2, &mut r, &mem);
        assert_eq!(r.rsp as usize, TOP - 2);
        assert_eq!(mem.word(TOP - 8), 0x0202 << 48);
    }

    #[test]
    fn popf_ring0_semantics() {
        let mem = Stack::new();
        // popfq of a value with IF clear, TF set, RF and VM set, reserved bits set.
        mem.set_word(TOP, 0xffff_0000_0003_0100 | 0x8 | 0x20);
        let mut r = frame();
        r.eflags = 0x202 | rflags::VIF as u64;
        run(Emulation::Popf { word: false }, 1, &mut r, &mem);
        assert_eq!(
            r.eflags as usize,
            rflags::TF | rflags::RESERVED_ONE | rflags::VIF
        );
        assert_eq!(r.rsp as usize, TOP + 8);
        // popfw replaces the low 16 bits only.
        mem.set_word(TOP, 0x0001);
        let mut r = frame();
        r.eflags = 0x202 | rflags::AC as u64;
        run(Emulation::Popf { word: true }, 2, &mut r, &mem);
        assert_eq!(
            r.eflags as usize,
            rflags::AC | rflags::CF | rflags::RESERVED_ONE
        );
        assert_eq!(r.rsp as usize, TOP + 2);
    }

    #[test]
    fn popf_restores_if_when_popped() {
        assert_eq!(popf_result(0x002, 0x246, false), 0x246);
        assert_eq!(popf_result(0x246, 0x002, false), 0x002);
    }
}
