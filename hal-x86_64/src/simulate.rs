//! Instructions emulated on the trap frame instead of being stepped out of
//! line: everything that reads or writes rip (a copy in a slot would compute
//! from the slot's address), and in kernel mode the instructions that change
//! or reveal the interrupt flag (the step runs with IF cleared).
//!
//! Follows Linux `prepare_emulation` and the `kprobe_emulate_*` functions in
//! arch/x86/kernel/kprobes/core.c, and the `int3_emulate_*` helpers of
//! arch/x86/include/asm/text-patching.h; flag semantics from the Intel SDM
//! Vol. 2 (Jcc, LOOPcc, JrCXZ, PUSHF, POPF).
//!
//! Beyond Linux's kprobes, `call [mem]` and `jmp [mem]` (ff /2, ff /4 with a
//! memory operand) are simulated too: the effective address is computed
//! from the frame ([`MemOperand::address`], rip-relative to the original
//! instruction), the 8-byte target is read through the [`DataAccess`] the
//! engine passes (the probed space's), and `call` pushes the return
//! address through it. A fault on either access comes back as
//! [`MemoryFault`] with the frame untouched (the engine reports
//! `TrapOutcome::Fault` at the probe address). The target is read before
//! the push, as the CPU does, so `call [rsp]` reads the old top of stack.
//! Forms whose address is not in the frame (fs:/gs: overrides) and the far
//! forms (ff /3, ff /5) stay refused.
//!
//! ## CET shadow stacks
//! The simulated `call rel32`, `call reg`, `call [mem]`, `ret` and
//! `ret imm16` update the ordinary stack only: **they do not push to or pop
//! from a CET shadow stack**, and nothing in the [`Registers`] contract
//! reaches the shadow-stack pointer. Kernel code does not run on a shadow
//! stack (Linux has no kernel shadow stacks), so kernel probes are
//! unaffected. A user task running with a shadow stack would take a #CP at
//! its next real `ret` after a simulated call or return. Linux's uprobes
//! push to the shadow stack instead (`shstk_push`, `shstk_pop`); this
//! backend cannot, so a kernel that enables user shadow stacks must use
//! [`crate::X86_64UserShadowStack`], which refuses user probes on the
//! simulated calls and returns (and keep user return probes off such
//! tasks: their return address is replaced on the ordinary stack only).

use probe_hal::{DataAccess, MemoryFault, Registers};
use yaxpeax_x86::long_mode::Opcode;

pub use crate::memop::{Base, MemOperand};
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
    /// `jmp [mem]` (ff /4): continue at the 8 bytes read from the operand's
    /// address.
    JmpMem {
        /// The memory operand.
        mem: MemOperand,
    },
    /// `call [mem]` (ff /2): read the target from the operand's address,
    /// push `next`, continue at the target.
    CallMem {
        /// The memory operand.
        mem: MemOperand,
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
    /// `jmp`: rel8/rel32, register and memory (not fs:/gs:) simulated.
    Jmp,
    /// `call`: rel32, register and memory (not fs:/gs:) simulated.
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

/// The 8-byte target of a `call`/`jmp` through `mem`.
#[link_section = "probe_trap_text"]
fn load_target<R: Registers + ?Sized>(
    regs: &R,
    mem: &dyn DataAccess,
    op: &MemOperand,
    next: usize,
) -> Result<usize, MemoryFault> {
    let mut b = [0u8; 8];
    mem.read(op.address(regs, next), &mut b)?;
    Ok(u64::from_le_bytes(b) as usize)
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
/// In the trap-path section: the engine calls it from a breakpoint trap
/// (it stays out of line when the compiler chooses not to inline it).
#[link_section = "probe_trap_text"]
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
        Emulation::JmpMem { mem: op } => {
            let to = load_target(regs, mem, &op, next)?;
            regs.set_pc(to);
        }
        Emulation::CallMem { mem: op } => {
            // The target first (from the frame before the push: `call
            // [rsp]` reads the old top of stack), then the push; either
            // fault leaves the frame as it was.
            let to = load_target(regs, mem, &op, next)?;
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

    fn mo(base: Base, index: Option<u8>, scale: u8, disp: i32, addr32: bool) -> MemOperand {
        MemOperand {
            base,
            index,
            scale,
            disp,
            addr32,
        }
    }

    #[test]
    fn call_mem_reads_the_target_then_pushes() {
        let mem = Stack::new();
        // call [rax + 8]: a vtable slot.
        mem.set_word(BASE + 0x18, 0x4444_0000);
        let mut r = frame();
        r.rax = BASE as u64 + 0x10;
        let e = Emulation::CallMem {
            mem: mo(Base::Reg(0), None, 1, 8, false),
        };
        run(e, 3, &mut r, &mem);
        assert_eq!(r.rip, 0x4444_0000);
        assert_eq!(r.rsp as usize, TOP - 8);
        assert_eq!(mem.word(TOP - 8), ADDR as u64 + 3);
        assert_eq!(r.rax, BASE as u64 + 0x10, "rax unchanged");
    }

    #[test]
    fn call_mem_through_rsp_reads_the_old_top_of_stack() {
        let mem = Stack::new();
        mem.set_word(TOP, 0x1111_0000);
        mem.set_word(TOP - 8, 0x2222_0000);
        // call [rsp]: the target is [rsp] before the push.
        let mut r = frame();
        run(
            Emulation::CallMem {
                mem: mo(Base::Reg(4), None, 1, 0, false),
            },
            3,
            &mut r,
            &mem,
        );
        assert_eq!(r.rip, 0x1111_0000);
        assert_eq!(mem.word(TOP - 8), ADDR as u64 + 3);
        assert_eq!(r.rsp as usize, TOP - 8);
    }

    #[test]
    fn jmp_mem_through_a_jump_table_without_a_base() {
        let mem = Stack::new();
        // jmp [rcx*8 + table]: table at BASE + 0x20, entry 3.
        mem.set_word(BASE + 0x20 + 24, 0x5555_0000);
        let mut r = frame();
        r.rcx = 3;
        run(
            Emulation::JmpMem {
                mem: mo(Base::None, Some(1), 8, BASE as i32 + 0x20, false),
            },
            7,
            &mut r,
            &mem,
        );
        assert_eq!(r.rip, 0x5555_0000);
        assert_eq!(r.rsp as usize, TOP, "a jump pushes nothing");
        // Base + index * scale + disp, every scale.
        for (scale, rdx) in [(1u8, 40u64), (2, 20), (4, 10), (8, 5)] {
            mem.set_word(BASE + 0x30 + 40, 0x6666_0000 + scale as u64);
            let mut r = frame();
            r.rbx = BASE as u64;
            r.rdx = rdx;
            let e = Emulation::JmpMem {
                mem: mo(Base::Reg(3), Some(2), scale, 0x30, false),
            };
            run(e, 4, &mut r, &mem);
            assert_eq!(r.rip, 0x6666_0000 + scale as u64, "scale {scale}");
        }
    }

    #[test]
    fn rip_relative_is_relative_to_the_original_instruction() {
        let mem = Stack::new();
        mem.set_word(BASE + 0x40, 0x7777_0000);
        // call [rip + disp] at 0x6000, 6 bytes: [0x6006 + disp]. The frame's
        // pc (after the int3, or anywhere) plays no part.
        let at = 0x6000;
        let disp = (BASE + 0x40 - (at + 6)) as i32;
        let mut r = frame();
        r.rip = 0xdead_0000;
        let e = Emulation::CallMem {
            mem: mo(Base::Rip, None, 1, disp, false),
        };
        emulate(e, at, 6, &mut r, &mem).unwrap();
        assert_eq!(r.rip, 0x7777_0000);
        assert_eq!(mem.word(TOP - 8), at as u64 + 6);
        // 0x67 jmp [eip + disp] at 0x1_0000_6000 (7 bytes): the address is
        // (0x1_0000_6007 + disp) mod 2^32 = BASE + 0x40.
        let at = 0x1_0000_6000;
        let disp = (BASE + 0x40 - 0x6007) as i32;
        let mut r = frame();
        let e = Emulation::JmpMem {
            mem: mo(Base::Rip, None, 1, disp, true),
        };
        emulate(e, at, 7, &mut r, &mem).unwrap();
        assert_eq!(r.rip, 0x7777_0000);
    }

    #[test]
    fn address_size_override_truncates_registers_and_sum() {
        let mem = Stack::new();
        mem.set_word(BASE + 0x48, 0x8888_0000);
        // 0x67 call [eax + ecx*2 + 8] with garbage in the high halves.
        let mut r = frame();
        r.rax = 0xffff_ffff_0000_0000 | BASE as u64;
        r.rcx = 0x8000_0000_0000_0000 | 0x20;
        let e = Emulation::CallMem {
            mem: mo(Base::Reg(0), Some(1), 2, 8, true),
        };
        run(e, 4, &mut r, &mem);
        assert_eq!(r.rip, 0x8888_0000);
        // Without 0x67 the same registers address far away: a fault.
        let mut r2 = frame();
        r2.rax = r.rax;
        r2.rcx = r.rcx;
        let before = r2;
        let e = Emulation::CallMem {
            mem: mo(Base::Reg(0), Some(1), 2, 8, false),
        };
        let err = emulate(e, ADDR, 4, &mut r2, &mem).unwrap_err();
        assert_eq!(
            err.addr,
            (r2.rax.wrapping_add(r2.rcx.wrapping_mul(2)) + 8) as usize
        );
        assert_eq!(r2, before);
    }

    #[test]
    fn faults_on_the_target_or_the_push_change_nothing() {
        let mem = Stack::new();
        // The target read faults: call [rax] and jmp [rax] with rax unmapped.
        for e in [
            Emulation::CallMem {
                mem: mo(Base::Reg(0), None, 1, 0, false),
            },
            Emulation::JmpMem {
                mem: mo(Base::Reg(0), None, 1, 0, false),
            },
        ] {
            let mut r = frame();
            r.rax = 0x4000_0000;
            let before = r;
            let err = emulate(e, ADDR, 2, &mut r, &mem).unwrap_err();
            assert_eq!(err.addr, 0x4000_0000, "{e:?}");
            assert_eq!(r, before, "{e:?}");
            assert_eq!(mem.word(TOP - 8), 0xeeee_eeee_eeee_eeee, "nothing pushed");
        }
        // The target is good, the push faults.
        mem.set_word(BASE + 0x50, 0x9999_0000);
        let mut r = frame();
        r.rsp = BASE as u64 + 4;
        r.rax = BASE as u64 + 0x50;
        let before = r;
        let e = Emulation::CallMem {
            mem: mo(Base::Reg(0), None, 1, 0, false),
        };
        let err = emulate(e, ADDR, 2, &mut r, &mem).unwrap_err();
        assert_eq!(err.addr, BASE - 4);
        assert_eq!(r, before);
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
