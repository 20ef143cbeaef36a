//! The CPU crate's trap frames seen by the engine: a borrowing wrapper
//! each, no copy, no `unsafe`.

#[cfg(target_arch = "x86_64")]
probe_hal_x86_64::frame_registers! {
    /// The x86_64 frame: `rip`, `rflags`, the registers in encoding order.
    pub struct Frame<'a>(pub &'a mut glue_cpu::x86_64::TrapFrame) {
        pc: rip,
        flags: rflags,
        gprs: [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15],
    }
}

#[cfg(any(target_arch = "riscv64", not(target_os = "none")))]
probe_hal_riscv64::frame_registers! {
    /// The riscv64 frame: `sepc`, `sstatus`, x1..x31 by ABI name.
    pub struct Rv64Frame<'a>(pub &'a mut glue_cpu::riscv64::TrapFrame) {
        pc: sepc,
        flags: sstatus,
        gprs: [
            regs.ra, regs.sp, regs.gp, regs.tp, regs.t0, regs.t1, regs.t2, regs.s0, regs.s1,
            regs.a0, regs.a1, regs.a2, regs.a3, regs.a4, regs.a5, regs.a6, regs.a7, regs.s2,
            regs.s3, regs.s4, regs.s5, regs.s6, regs.s7, regs.s8, regs.s9, regs.s10, regs.s11,
            regs.t3, regs.t4, regs.t5, regs.t6,
        ],
    }
}

#[cfg(target_arch = "riscv64")]
pub use Rv64Frame as Frame;
