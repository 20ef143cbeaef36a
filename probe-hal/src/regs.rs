//! Register access on a trap frame, whoever laid it out.

/// Where a C-ABI function finds its arguments and puts its return value, as
/// general-register numbers of [`Registers::gpr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallAbi {
    /// Registers holding the first arguments, in order.
    pub args: &'static [usize],
    /// Registers holding the return value (low part first).
    pub ret: [usize; 2],
}

/// Access to the registers of an interrupted context.
///
/// A kernel implements this on **its own** trap-frame type and hands that frame
/// to the engine's trap entry points, so no copying into a foreign layout is
/// needed. Each hal crate also ships a Linux-layout `PtRegs` implementing it,
/// and the frame its return trampoline builds implements it too: every
/// handler sees registers through this one trait (as `&mut dyn Registers`).
///
/// General registers are numbered as the ISA encodes them in instructions
/// (x86_64: 0 = rax … 15 = r15; riscv64 and loongarch64: x0/r0 … 31). Reading
/// a hard-wired zero register returns 0 and writing it is ignored.
///
/// ```
/// use probe_hal::{CallAbi, Registers};
/// struct Frame { r: [usize; 4], pc: usize }
/// static ABI: CallAbi = CallAbi { args: &[1, 2], ret: [1, 2] };
/// impl Registers for Frame {
///     fn pc(&self) -> usize { self.pc }
///     fn set_pc(&mut self, pc: usize) { self.pc = pc }
///     fn sp(&self) -> usize { self.r[3] }
///     fn set_sp(&mut self, sp: usize) { self.r[3] = sp }
///     fn gpr(&self, n: usize) -> usize { if n == 0 { 0 } else { self.r[n] } }
///     fn set_gpr(&mut self, n: usize, v: usize) { if n != 0 { self.r[n] = v } }
///     fn call_abi(&self) -> &'static CallAbi { &ABI }
/// }
/// let mut f = Frame { r: [0, 7, 9, 0x8000], pc: 0x1000 };
/// assert_eq!(f.arg(1), Some(9));
/// f.set_return_value(42);
/// assert_eq!(f.return_value(), 42);
/// assert_eq!(f.arg(5), None);
/// ```
pub trait Registers {
    /// Program counter (the address execution resumes at).
    fn pc(&self) -> usize;
    /// Set the program counter.
    fn set_pc(&mut self, pc: usize);
    /// Stack pointer.
    fn sp(&self) -> usize;
    /// Set the stack pointer.
    fn set_sp(&mut self, sp: usize);
    /// General register `n` (numbered as the ISA encodes it).
    fn gpr(&self, n: usize) -> usize;
    /// Set general register `n`.
    fn set_gpr(&mut self, n: usize, value: usize);
    /// The ISA's C calling convention (each hal crate exports its constant).
    fn call_abi(&self) -> &'static CallAbi;

    /// The flags word the backend uses to mask interrupts during an
    /// out-of-line step: x86_64 `rflags`, riscv64 `status` (sstatus),
    /// loongarch64 `csr_prmd`. A kernel implementing this on its own frame
    /// maps it to that field; a frame that returns 0 and ignores writes still
    /// works, but its steps then run with the interrupted context's
    /// interrupt state.
    #[link_section = "probe_trap_text"]
    fn flags(&self) -> usize {
        0
    }
    /// Set the flags word (see [`Registers::flags`]).
    #[link_section = "probe_trap_text"]
    fn set_flags(&mut self, _flags: usize) {}

    /// The `i`-th integer argument of a function entered at this frame, when it
    /// is passed in a register; `None` for stack-passed arguments.
    #[link_section = "probe_trap_text"]
    fn arg(&self, i: usize) -> Option<usize> {
        self.call_abi().args.get(i).map(|&r| self.gpr(r))
    }
    /// Set the `i`-th register-passed argument; returns false when argument
    /// `i` is not passed in a register.
    #[link_section = "probe_trap_text"]
    fn set_arg(&mut self, i: usize, value: usize) -> bool {
        match self.call_abi().args.get(i) {
            Some(&r) => {
                self.set_gpr(r, value);
                true
            }
            None => false,
        }
    }
    /// The (low word of the) return value, meaningful in a return handler.
    #[link_section = "probe_trap_text"]
    fn return_value(&self) -> usize {
        self.gpr(self.call_abi().ret[0])
    }
    /// Replace the (low word of the) return value.
    #[link_section = "probe_trap_text"]
    fn set_return_value(&mut self, value: usize) {
        let r = self.call_abi().ret[0];
        self.set_gpr(r, value)
    }

    /// The frame as [`Any`](core::any::Any), so that a handler can reach
    /// the concrete frame type without a copy when it knows it: each hal's
    /// `PtRegs` (and the frame its return trampoline builds) returns
    /// `Some(self)`, and the hal offers a downcast helper that gives a
    /// Linux `pt_regs` view, zero-copy when the frame is one (the case eBPF
    /// programs want). The default, `None`, is right for a kernel's own
    /// frame type (and required for one that borrows, which is not
    /// `'static`): the hal helpers then convert into a caller-provided
    /// `PtRegs` and write back what changed.
    #[inline(always)]
    fn as_any_mut(&mut self) -> Option<&mut dyn core::any::Any> {
        None
    }
}
