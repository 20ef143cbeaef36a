//! The `Arch` trait: everything the engine needs to know about an ISA.

use crate::{DataAccess, Decoded, ExecMode, MemoryFault, ProbeError, Registers, SlotImage};

/// A breakpoint instruction as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breakpoint {
    /// Encoding; the first `len` bytes are the instruction.
    pub bytes: [u8; 8],
    /// Length in bytes.
    pub len: usize,
}

impl Breakpoint {
    /// A breakpoint made of `bytes` (at most 8).
    pub const fn new(bytes: &[u8]) -> Self {
        let mut b = [0u8; 8];
        let mut i = 0;
        while i < bytes.len() {
            b[i] = bytes[i];
            i += 1;
        }
        Self {
            bytes: b,
            len: bytes.len(),
        }
    }

    /// The encoding.
    #[inline]
    #[link_section = "probe_trap_text"]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// An instruction-set backend.
///
/// All methods are associated functions (no `self`): a backend is a type, not
/// a value. Methods taking registers are generic over the kernel's frame type.
///
/// The engine's use of a backend, for one probe hit:
/// 1. registration: [`decode`](Self::decode) the instruction, run
///    [`check_sequence`](Self::check_sequence) on the bytes before it,
///    [`build_slot`](Self::build_slot) when it is stepped out of line, then
///    write [`breakpoint`](Self::breakpoint) over it;
/// 2. breakpoint trap: [`trap_address`](Self::trap_address) gives the probe
///    address; after the handlers, either [`simulate`](Self::simulate) or
///    [`prepare_step`](Self::prepare_step) (pc moves into the slot);
/// 3. the step-end marker traps at `slot + step_end`:
///    [`finish_step`](Self::finish_step) moves the pc back to the original
///    code; a fault inside the slot calls [`abort_step`](Self::abort_step).
pub trait Arch: Sized + Send + Sync + 'static {
    /// Short name, e.g. `"riscv64"`.
    const NAME: &'static str;
    /// Required alignment of an instruction address.
    const INSN_ALIGN: usize;
    /// Longest instruction in bytes.
    const MAX_INSN_LEN: usize;
    /// Bytes one out-of-line slot occupies (at most [`crate::MAX_SLOT_LEN`],
    /// a multiple of `INSN_ALIGN`).
    const SLOT_LEN: usize;
    /// How many bytes before a probe address [`Self::check_sequence`] wants
    /// to see (0: no look-back).
    const LOOK_BACK: usize = 0;
    /// How far above its entry frame a function may leave the stack when it
    /// returns (x86_64 `ret imm16` pops up to 0xffff bytes of arguments);
    /// [`Self::return_frame`] then exceeds [`Self::entry_frame`] by at most
    /// this much. 0 where returns never pop arguments.
    const RETURN_FRAME_SLACK: usize = 0;

    /// The backend's decoded form of an accepted instruction.
    type Insn: Copy + Send + Sync + 'static;
    /// What [`Self::prepare_step`] saves for [`Self::finish_step`] (for
    /// example the interrupt flag it cleared).
    type StepState: Copy + Default + Send + Sync + 'static;

    /// Length of the instruction starting at `bytes[0]`, or `None` if it does
    /// not decode. Used to walk forward from a symbol start.
    fn insn_len(bytes: &[u8]) -> Option<usize>;

    /// Decide about the instruction at `addr` whose bytes start at
    /// `bytes[0]` (at least `MAX_INSN_LEN` bytes when available): refuse it
    /// (an error saying why), simulate it, or step it out of line.
    fn decode(addr: usize, bytes: &[u8], mode: ExecMode)
        -> Result<Decoded<Self::Insn>, ProbeError>;

    /// Refuse addresses inside sequences that must not be interrupted (an
    /// LL/SC window). `before` holds the `LOOK_BACK` bytes ending at `addr`
    /// (fewer near the start of a function when the symbol start is known).
    fn check_sequence(addr: usize, before: &[u8], mode: ExecMode) -> Result<(), ProbeError> {
        let _ = (addr, before, mode);
        Ok(())
    }

    /// Bytes at a function entry that a probe on that entry skips (x86_64
    /// `endbr64`, as Linux does); 0 when there is nothing to skip.
    fn entry_skip(bytes: &[u8]) -> usize {
        let _ = bytes;
        0
    }

    /// The probe breakpoint written over an instruction of `insn_len` bytes.
    fn breakpoint(insn_len: usize, mode: ExecMode) -> Breakpoint;

    /// The breakpoint that serves as return trampoline where no code
    /// trampoline exists (user mode, or a backend without one).
    fn return_breakpoint(mode: ExecMode) -> Breakpoint;

    /// The address of the breakpoint instruction that trapped, given the pc
    /// the trap reported (x86_64 reports the byte after `int3`).
    fn trap_address(pc: usize) -> usize;

    /// Build the out-of-line slot for `insn` probed at `addr`, to live at
    /// `slot`: the (relocated) instruction followed by the end-of-step marker,
    /// or by a jump back when `boost` is asked and the instruction allows it.
    /// Refuses with [`crate::ProbeErrorKind::OutOfReach`] when a relocation
    /// cannot reach from `slot`.
    fn build_slot(
        insn: &Decoded<Self::Insn>,
        orig: &[u8],
        addr: usize,
        slot: usize,
        mode: ExecMode,
        boost: bool,
    ) -> Result<SlotImage, ProbeError>;

    /// Set up the out-of-line step: pc to `slot`, interrupts masked where
    /// the ISA needs it. `boosted`: the slot ends with a jump back, so no
    /// [`Self::finish_step`] follows.
    fn prepare_step<R: Registers + ?Sized>(
        insn: &Decoded<Self::Insn>,
        regs: &mut R,
        slot: usize,
        boosted: bool,
    ) -> Self::StepState;

    /// The end-of-step marker trapped: put the pc back into the original code
    /// and undo what `prepare_step` changed.
    fn finish_step<R: Registers + ?Sized>(
        insn: &Decoded<Self::Insn>,
        regs: &mut R,
        addr: usize,
        slot: usize,
        state: Self::StepState,
        mem: &dyn DataAccess,
    ) -> Result<(), MemoryFault>;

    /// A fault was taken inside the slot: put the pc back at the probe
    /// address and restore what `prepare_step` changed, so the kernel's fault
    /// fix-up sees the original address.
    fn abort_step<R: Registers + ?Sized>(
        insn: &Decoded<Self::Insn>,
        regs: &mut R,
        addr: usize,
        state: Self::StepState,
    );

    /// Emulate a [`crate::Handling::Simulate`] instruction at `addr` on
    /// `regs` (and `mem` for pushes/pops), leaving pc where it goes next.
    fn simulate<R: Registers + ?Sized>(
        insn: &Decoded<Self::Insn>,
        addr: usize,
        regs: &mut R,
        mem: &dyn DataAccess,
    ) -> Result<(), MemoryFault>;

    /// At a function entry, replace the return address with `trampoline`;
    /// returns the real return address.
    fn hijack_return<R: Registers + ?Sized>(
        regs: &mut R,
        mem: &dyn DataAccess,
        trampoline: usize,
    ) -> Result<usize, MemoryFault>;

    /// An identity of the stack frame at function entry, matched by
    /// [`Self::return_frame`] when the function returns.
    fn entry_frame<R: Registers + ?Sized>(regs: &R) -> usize;

    /// The identity of the frame that just returned into the trampoline
    /// (equal to the `entry_frame` of its call).
    fn return_frame<R: Registers + ?Sized>(regs: &R) -> usize;

    /// The kernel-mode return trampoline (a code address whose code calls
    /// [`crate::rethook::dispatch_return`]), or `None` to use a
    /// [`Self::return_breakpoint`] in a slot instead.
    fn kernel_trampoline() -> Option<usize>;

    /// Whether [`Self::kernel_trampoline`] reaches the engine through the
    /// return hook (so that registering a kernel return probe requires the
    /// hook, installed for that engine). True for every real backend; a
    /// simulator whose machine calls the engine's return entry directly
    /// (examples/custom-arch) says false.
    const TRAMPOLINE_USES_RETURN_HOOK: bool = true;

    // ---- Jump optimisation (optional; see `crate::optimize`) ----

    /// Length of the jump that replaces the start of an optimised region
    /// (x86_64: 5, `jmp rel32`); 0 when this backend does not optimise,
    /// which is the default.
    const OPT_JUMP_LEN: usize = 0;
    /// Upper bound of the size of a detour built by
    /// [`Self::build_detour`], in bytes (0: no jump optimisation).
    const DETOUR_LEN: usize = 0;
    /// How far from the probe address a detour may start (the largest
    /// `|detour - addr|` for which [`Self::optimized_jump`] reaches and the
    /// detour's jump back reaches), in bytes (0: no jump optimisation).
    const OPT_REACH: usize = 0;

    /// Whether the probe at `addr` can be replaced by a jump to a detour,
    /// and which instructions the jump displaces. `function` is the range
    /// of the function containing `addr` (from the kernel's symbol table);
    /// the backend decodes the **whole** function from its start, reading it
    /// through `text` (in chunks, without allocating), which must return the
    /// original bytes (other probes' breakpoints replaced by the bytes they
    /// cover). `may_fault(a)` says whether the instruction at `a` has an
    /// exception-table entry. The default answers
    /// [`SiteRule::NotSupported`](crate::SiteRule::NotSupported).
    ///
    /// The engine must still check what only it knows: no other probe
    /// inside `(addr, addr + len)` (Linux `arch_check_optimized_kprobe`),
    /// and that the region is not reserved by other text patching.
    fn analyze_optimizable(
        addr: usize,
        function: core::ops::Range<usize>,
        text: &dyn DataAccess,
        may_fault: &dyn Fn(usize) -> bool,
        mode: ExecMode,
    ) -> Result<crate::OptRegion, crate::SiteRule> {
        let _ = (addr, function, text, may_fault, mode);
        Err(crate::SiteRule::NotSupported)
    }

    /// Write into `out` the detour for `region`, to live at `detour_addr`:
    /// code that saves the registers into a frame (pc = the probe address),
    /// masks interrupts when `mask_interrupts`, calls
    /// [`crate::opthook::dispatch_optimized`] with `cookie`, restores the
    /// registers and then runs the displaced instructions (relocated) and
    /// jumps back to `region.end()`, or resumes at the frame's pc when the
    /// hook returned true. Returns the detour's length (at most
    /// [`Self::DETOUR_LEN`]). The default answers
    /// [`SiteRule::NotSupported`](crate::SiteRule::NotSupported).
    fn build_detour(
        region: &crate::OptRegion,
        detour_addr: usize,
        cookie: usize,
        mask_interrupts: bool,
        out: &mut [u8],
    ) -> Result<usize, crate::SiteRule> {
        let _ = (region, detour_addr, cookie, mask_interrupts, out);
        Err(crate::SiteRule::NotSupported)
    }

    /// Write into `out` the jump that replaces the start of the region at
    /// `addr` and leads to `detour_addr`; returns its length
    /// ([`Self::OPT_JUMP_LEN`]), or
    /// [`SiteRule::OutOfReach`](crate::SiteRule::OutOfReach). The default
    /// answers [`SiteRule::NotSupported`](crate::SiteRule::NotSupported).
    fn optimized_jump(
        addr: usize,
        detour_addr: usize,
        out: &mut [u8],
    ) -> Result<usize, crate::SiteRule> {
        let _ = (addr, detour_addr, out);
        Err(crate::SiteRule::NotSupported)
    }

    /// Where, in the detour [`Self::build_detour`] writes for `region` at
    /// `detour_addr`, the relocated displaced instructions start (followed
    /// by the jump back to the region's end): an offset into the detour.
    /// The engine's breakpoint path resumes there, with the registers as
    /// the probed code had them at the probe address, while a jump is being
    /// installed or removed (so no CPU ever resumes inside the region, where
    /// the jump's bytes land). `None` (the default): not supported, and the
    /// engine does not optimise.
    fn detour_displaced_offset(region: &crate::OptRegion, detour_addr: usize) -> Option<usize> {
        let _ = (region, detour_addr);
        None
    }

    /// Whether detours reach the engine through
    /// [`crate::opthook::dispatch_optimized`] (true for every real backend:
    /// the engine then optimises only when the installed hook is its own).
    /// A simulated ISA whose machine calls its engine's
    /// [`crate::opthook::OptHook`] directly says false.
    const DETOUR_USES_OPT_HOOK: bool = true;
}
