//! # glue-cpu: the model kernel's CPU crate
//!
//! In a modular kernel (ArceOS's `axcpu`, StarryOS on top of it) the trap
//! frame belongs to a CPU crate that knows nothing of probes. This crate
//! plays that part for `examples/kernel-glue/kernel`: its frames have their
//! own field names and order (the order its entry code pushes them), which
//! is not the probe backends' `PtRegs`, so the kernel crate cannot
//! `impl Registers for TrapFrame` (orphan rule) and cannot hand the frame to
//! an eBPF program as a Linux `pt_regs` without a conversion.
//!
//! Both ISAs' frames are compiled everywhere (they are plain data), so the
//! kernel's host tests can build riscv64 frames too.
#![no_std]

/// What a trap was, as the entry code decodes it (vector, `scause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapKind {
    /// A breakpoint instruction (`int3`, `ebreak`).
    Breakpoint,
    /// A hardware single step (x86_64 `#DB` with TF).
    SingleStep,
    /// A page fault at `addr`.
    PageFault {
        /// The faulting address (`cr2`, `stval`).
        addr: usize,
        /// A write access.
        write: bool,
    },
    /// An illegal or privileged instruction.
    IllegalInstruction,
    /// An external interrupt (timer, IPI).
    Interrupt(usize),
    /// A system call.
    Syscall,
}

/// The x86_64 trap frame: general registers in the order the entry stub
/// pushes them, then the vector, the error code and the frame the CPU
/// pushed (ArceOS's layout, not Linux's `pt_regs`).
pub mod x86_64 {
    /// The registers of an interrupted x86_64 context.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub struct TrapFrame {
        pub rax: u64,
        pub rbx: u64,
        pub rcx: u64,
        pub rdx: u64,
        pub rsi: u64,
        pub rdi: u64,
        pub rbp: u64,
        pub r8: u64,
        pub r9: u64,
        pub r10: u64,
        pub r11: u64,
        pub r12: u64,
        pub r13: u64,
        pub r14: u64,
        pub r15: u64,
        pub vector: u64,
        pub error_code: u64,
        /// Pushed by the CPU from here on.
        pub rip: u64,
        pub cs: u64,
        pub rflags: u64,
        pub rsp: u64,
        pub ss: u64,
    }

    impl TrapFrame {
        /// Whether the trap came from user mode (CPL 3 in `cs`).
        pub fn from_user(&self) -> bool {
            self.cs & 3 == 3
        }

        /// The pc to resume at.
        pub fn pc(&self) -> usize {
            self.rip as usize
        }

        /// Resume at `pc`.
        pub fn set_pc(&mut self, pc: usize) {
            self.rip = pc as u64;
        }
    }
}

/// The riscv64 trap frame: the general registers by ABI name (x0 is not
/// saved), then `sepc` and `sstatus` (ArceOS's layout).
pub mod riscv64 {
    /// x1..x31 by their ABI names.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub struct GeneralRegisters {
        pub ra: usize,
        pub sp: usize,
        pub gp: usize,
        pub tp: usize,
        pub t0: usize,
        pub t1: usize,
        pub t2: usize,
        pub s0: usize,
        pub s1: usize,
        pub a0: usize,
        pub a1: usize,
        pub a2: usize,
        pub a3: usize,
        pub a4: usize,
        pub a5: usize,
        pub a6: usize,
        pub a7: usize,
        pub s2: usize,
        pub s3: usize,
        pub s4: usize,
        pub s5: usize,
        pub s6: usize,
        pub s7: usize,
        pub s8: usize,
        pub s9: usize,
        pub s10: usize,
        pub s11: usize,
        pub t3: usize,
        pub t4: usize,
        pub t5: usize,
        pub t6: usize,
    }

    /// The registers of an interrupted riscv64 context.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct TrapFrame {
        /// x1..x31.
        pub regs: GeneralRegisters,
        /// The pc to resume at.
        pub sepc: usize,
        /// The status register (SPP: the previous mode, SPIE).
        pub sstatus: usize,
    }

    impl TrapFrame {
        /// Whether the trap came from user mode (`sstatus.SPP` clear).
        pub fn from_user(&self) -> bool {
            self.sstatus & (1 << 8) == 0
        }

        /// The pc to resume at.
        pub fn pc(&self) -> usize {
            self.sepc
        }

        /// Resume at `pc`.
        pub fn set_pc(&mut self, pc: usize) {
            self.sepc = pc;
        }
    }
}
