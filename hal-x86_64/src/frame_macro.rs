//! [`frame_registers!`](crate::frame_registers): a kernel's own trap frame,
//! defined in another crate, seen by the engine.

/// Declares a local wrapper over an x86_64 trap frame defined in another
/// crate (where `impl Registers for TrapFrame` would break the orphan rule)
/// and implements [`Registers`](probe_hal::Registers) for it by mapping
/// fields, without `unsafe`.
///
/// `struct Name<'a>(&'a mut Frame)` borrows the frame; `struct Name(Frame)`
/// is `#[repr(transparent)]` over it and reached with the safe
/// `Name::from_mut(&mut Frame) -> &mut Name`. The body maps `pc:` (the
/// saved `rip`), optionally `flags:` (the saved `rflags`: the step clears
/// IF and sets TF there, so map it), and `gprs:`, the 16 fields in
/// encoding order ([`gpr`](crate::gpr): `rax, rcx, rdx, rbx, rsp, rbp,
/// rsi, rdi, r8` … `r15`; `rsp` is usually the one the CPU pushed), or one
/// array field in that order. As in [`PtRegs`](crate::PtRegs), the stack
/// pointer is register 4 and the calling convention is
/// [`CALL_ABI`](crate::CALL_ABI). Fields may be `u64` or `usize`.
///
/// ```
/// use probe_hal::Registers;
///
/// mod cpu {
///     // The CPU crate's frame (foreign to the kernel crate in real life).
///     #[derive(Default)]
///     pub struct TrapFrame {
///         pub rax: u64, pub rcx: u64, pub rdx: u64, pub rbx: u64, pub rbp: u64,
///         pub rsi: u64, pub rdi: u64, pub r8: u64, pub r9: u64, pub r10: u64,
///         pub r11: u64, pub r12: u64, pub r13: u64, pub r14: u64, pub r15: u64,
///         pub vector: u64, pub error_code: u64,
///         pub rip: u64, pub cs: u64, pub rflags: u64, pub rsp: u64, pub ss: u64,
///     }
/// }
///
/// probe_hal_x86_64::frame_registers! {
///     /// The CPU crate's frame, seen by the probe engine.
///     pub struct ProbeFrame<'a>(pub &'a mut cpu::TrapFrame) {
///         pc: rip,
///         flags: rflags,
///         gprs: [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15],
///     }
/// }
///
/// let mut tf = cpu::TrapFrame { rdi: 7, rip: 0x40_1000, ..Default::default() };
/// let mut frame = ProbeFrame(&mut tf);
/// let regs: &mut dyn Registers = &mut frame; // what the engine and handlers see
/// assert_eq!((regs.arg(0), regs.pc()), (Some(7), 0x40_1000));
/// regs.set_return_value(42);
/// regs.set_pc(0x40_1001);
/// assert_eq!((tf.rax, tf.rip), (42, 0x40_1001));
/// ```
#[macro_export]
macro_rules! frame_registers {
    ($($frame:tt)*) => {
        $crate::__probe_hal::__frame_registers! {
            isa { abi: $crate::CALL_ABI, gprs: 0..16, sp: gpr $crate::gpr::RSP }
            $($frame)*
        }
    };
}
