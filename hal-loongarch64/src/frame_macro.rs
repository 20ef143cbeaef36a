//! [`frame_registers!`](crate::frame_registers): a kernel's own trap frame,
//! defined in another crate, seen by the engine.

/// Declares a local wrapper over a loongarch64 trap frame defined in
/// another crate (where `impl Registers for TrapFrame` would break the
/// orphan rule) and implements [`Registers`](probe_hal::Registers) for it
/// by mapping fields, without `unsafe`.
///
/// `struct Name<'a>(&'a mut Frame)` borrows the frame; `struct Name(Frame)`
/// is `#[repr(transparent)]` over it and reached with the safe
/// `Name::from_mut(&mut Frame) -> &mut Name`. The body maps `pc:` (the
/// saved `era`), optionally `flags:` (the saved `prmd`: the out-of-line
/// step masks interrupts there through PIE), and `gprs:`: one array field
/// indexed by register number (`regs[n]` is `r<n>`), or the 31 fields of
/// `r1` … `r31` in encoding order. As in [`PtRegs`](crate::PtRegs), `r0`
/// reads 0 and ignores writes, `sp` is `r3` ([`SP`](crate::regs::SP)) and
/// the calling convention is [`CALL_ABI`](crate::CALL_ABI).
///
/// ```
/// use probe_hal::Registers;
///
/// mod cpu {
///     // The CPU crate's frame (foreign to the kernel crate in real life).
///     pub struct TrapFrame {
///         pub regs: [usize; 32],
///         pub prmd: usize,
///         pub era: usize,
///     }
/// }
///
/// probe_hal_loongarch64::frame_registers! {
///     /// The CPU crate's frame, seen by the probe engine.
///     pub struct ProbeFrame(pub cpu::TrapFrame) {
///         pc: era,
///         flags: prmd,
///         gprs: regs,
///     }
/// }
///
/// let mut tf = cpu::TrapFrame { regs: [0; 32], prmd: 0, era: 0x9000_0000_0020_0000 };
/// tf.regs[4] = 7; // a0
/// let regs: &mut dyn Registers = ProbeFrame::from_mut(&mut tf);
/// assert_eq!((regs.arg(0), regs.pc()), (Some(7), 0x9000_0000_0020_0000));
/// regs.set_return_value(42);
/// regs.set_pc(0x9000_0000_0020_0004);
/// assert_eq!((tf.regs[4], tf.era), (42, 0x9000_0000_0020_0004));
/// ```
#[macro_export]
macro_rules! frame_registers {
    ($($frame:tt)*) => {
        $crate::__probe_hal::__frame_registers! {
            isa { abi: $crate::CALL_ABI, gprs: 1..32, sp: gpr $crate::regs::SP }
            $($frame)*
        }
    };
}
