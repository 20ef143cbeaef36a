//! [`frame_registers!`](crate::frame_registers): a kernel's own trap frame,
//! defined in another crate, seen by the engine.

/// Declares a local wrapper over a trap frame defined in another crate and
/// implements [`Registers`](probe_hal::Registers) for it by mapping fields.
///
/// In a modular kernel the trap frame lives in a CPU crate, so
/// `impl Registers for TrapFrame` in the kernel crate breaks the orphan
/// rule; the wrapper is local, and mapping it takes a few lines and no
/// `unsafe`. Two forms:
///
/// - `struct Name<'a>(&'a mut Frame)`: borrows the frame (`Name(frame)`);
///   no `unsafe` anywhere;
/// - `struct Name(Frame)`: `#[repr(transparent)]` over the frame, reached
///   with the safe `Name::from_mut(&mut Frame) -> &mut Name` (the one
///   pointer cast it needs is inside the macro, with its SAFETY
///   argument).
///
/// The body maps fields of the frame (paths like `regs.x` are allowed):
/// `pc:` (the saved `sepc`), optionally `flags:` (the saved `sstatus`: the
/// out-of-line step masks interrupts there through SPIE), then `gprs:`,
/// either one array field indexed by register number (`x[n]` is register
/// `x<n>`, 32 entries) or the 31 fields of `x1` … `x31` in encoding order
/// (`[ra, sp, gp, tp, t0, …, t6]`). Numbering follows [`PtRegs`](crate::PtRegs):
/// `x0` reads 0 and ignores writes (the frame's slot for it is never
/// touched), `sp` is `x2` ([`SP`](crate::regs::SP)), and the calling
/// convention is [`CALL_ABI`](crate::CALL_ABI).
///
/// ```
/// use probe_hal::Registers;
///
/// mod cpu {
///     // The CPU crate's frame (foreign to the kernel crate in real life).
///     pub struct GeneralRegisters {
///         pub x: [usize; 32],
///     }
///     pub struct TrapFrame {
///         pub regs: GeneralRegisters,
///         pub sepc: usize,
///         pub sstatus: usize,
///     }
/// }
///
/// probe_hal_riscv64::frame_registers! {
///     /// The CPU crate's frame, seen by the probe engine.
///     pub struct ProbeFrame<'a>(pub &'a mut cpu::TrapFrame) {
///         pc: sepc,
///         flags: sstatus,
///         gprs: regs.x,
///     }
/// }
///
/// let mut tf = cpu::TrapFrame { regs: cpu::GeneralRegisters { x: [0; 32] }, sepc: 0x8020_0000, sstatus: 0 };
/// tf.regs.x[10] = 7; // a0
/// let mut frame = ProbeFrame(&mut tf);
/// let regs: &mut dyn Registers = &mut frame; // what the engine and handlers see
/// assert_eq!((regs.arg(0), regs.pc()), (Some(7), 0x8020_0000));
/// regs.set_return_value(42);
/// regs.set_pc(0x8020_0004);
/// regs.set_gpr(0, 1); // x0: ignored
/// assert_eq!((tf.regs.x[10], tf.sepc, tf.regs.x[0]), (42, 0x8020_0004, 0));
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
