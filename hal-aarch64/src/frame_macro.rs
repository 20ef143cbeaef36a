//! [`frame_registers!`](crate::frame_registers): a kernel's own trap frame,
//! defined in another crate, seen by the engine.

/// Declares a local wrapper over an aarch64 trap frame defined in another
/// crate (where `impl Registers for TrapFrame` would break the orphan rule)
/// and implements [`Registers`](probe_hal::Registers) for it by mapping
/// fields, without `unsafe`.
///
/// `struct Name<'a>(&'a mut Frame)` borrows the frame; `struct Name(Frame)`
/// is `#[repr(transparent)]` over it and reached with the safe
/// `Name::from_mut(&mut Frame) -> &mut Name`. The body maps, in this order,
/// `pc:` (the saved `ELR_EL1`), `sp:` (the interrupted stack pointer: not
/// a general register on aarch64), optionally `flags:` (the saved
/// `SPSR_EL1`: the step masks DAIF there, `b.cond` reads NZCV from it and
/// simulated branches set BTYPE in it, so map it), and `gprs:`: one array
/// field of `x0` … `x30`, or those 31 fields in order. As in
/// [`PtRegs`](crate::PtRegs), register 31 ([`ZR`](crate::regs::ZR)) reads 0
/// and ignores writes, and the calling convention is
/// [`CALL_ABI`](crate::CALL_ABI).
///
/// ```
/// use probe_hal::Registers;
///
/// mod cpu {
///     // The CPU crate's frame (foreign to the kernel crate in real life).
///     pub struct TrapFrame {
///         pub r: [u64; 31],
///         pub usp: u64,
///         pub elr: u64,
///         pub spsr: u64,
///     }
/// }
///
/// probe_hal_aarch64::frame_registers! {
///     /// The CPU crate's frame, seen by the probe engine.
///     pub struct ProbeFrame<'a>(pub &'a mut cpu::TrapFrame) {
///         pc: elr,
///         sp: usp,
///         flags: spsr,
///         gprs: r,
///     }
/// }
///
/// let mut tf = cpu::TrapFrame { r: [0; 31], usp: 0x8000, elr: 0x40_1000, spsr: 0 };
/// tf.r[0] = 7;
/// let mut frame = ProbeFrame(&mut tf);
/// let regs: &mut dyn Registers = &mut frame; // what the engine and handlers see
/// assert_eq!((regs.arg(0), regs.pc(), regs.sp()), (Some(7), 0x40_1000, 0x8000));
/// regs.set_return_value(42);
/// regs.set_pc(0x40_1004);
/// assert_eq!((tf.r[0], tf.elr), (42, 0x40_1004));
/// ```
#[macro_export]
macro_rules! frame_registers {
    ($($frame:tt)*) => {
        $crate::__probe_hal::__frame_registers! {
            isa { abi: $crate::CALL_ABI, gprs: 0..31, sp: field }
            $($frame)*
        }
    };
}
