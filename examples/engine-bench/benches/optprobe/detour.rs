//! The detour the engine wrote, checked against the backend's own build and
//! decoded with iced-x86: the instructions path (a) (the handler did not
//! move the pc) executes, counted statically.

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Formatter, Instruction, IntelFormatter, Register,
};
use probe_hal::{Arch, DataAccess, ExecMode, MemoryFault, OptRegion};
use probe_hal_x86_64::X86_64;

use crate::setup::Setup;

/// Reads the probed function as it was: from the unprobed copy.
struct Original<'a>(&'a Setup);

impl DataAccess for Original<'_> {
    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        let from = addr
            .wrapping_sub(self.0.probed)
            .wrapping_add(self.0.unprobed);
        // SAFETY: the benchmark reads only the victim's bytes, which lie in
        // our mapping.
        unsafe { core::ptr::copy_nonoverlapping(from as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
    fn write(&self, addr: usize, _: &[u8]) -> Result<(), MemoryFault> {
        Err(MemoryFault { addr })
    }
}

/// The instructions of path (a), by part.
pub struct PathA {
    /// The region the jump displaces.
    pub region: OptRegion,
    /// Whether the entry is called with `call rel32` (else `movabs rax;
    /// call rax`): two instructions either way.
    pub near_call: bool,
    /// Up to and including the call of the entry.
    pub save: Vec<Instruction>,
    /// After the call, up to the displaced instructions.
    pub restore: Vec<Instruction>,
    /// The displaced instructions (relocated copies).
    pub displaced: Vec<Instruction>,
    /// The jump back after the region.
    pub jump_back: Instruction,
}

fn decode(addr: usize, len: usize) -> Vec<Instruction> {
    // SAFETY: `addr..addr + len` lies in our mapping.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
    let mut d = Decoder::with_ip(64, bytes, addr as u64, DecoderOptions::NONE);
    let mut out = Vec::new();
    while d.can_decode() {
        out.push(d.decode());
    }
    out
}

/// Check the engine's detour and jump against
/// `X86_64::{analyze_optimizable, build_detour, optimized_jump,
/// detour_displaced_offset}` for the same site, and split path (a).
pub fn path_a(s: &Setup) -> PathA {
    let detour = s.detour();
    let function = s.probed..s.probed + crate::setup::victim_len();
    let region = X86_64::analyze_optimizable(
        s.probed,
        function,
        &Original(s),
        &|_| false,
        ExecMode::Kernel,
    )
    .expect("the victim's entry is optimisable");
    let displaced_at =
        X86_64::detour_displaced_offset(&region, detour).expect("x86_64 has a displaced offset");

    // The cookie (the engine's point index) is the `movabs rsi, imm64`.
    let before = decode(detour, displaced_at);
    let cookie = before
        .iter()
        .find(|i| i.code() == Code::Mov_r64_imm64 && i.op0_register() == Register::RSI)
        .map(|i| i.immediate64() as usize)
        .expect("movabs rsi, cookie");
    let mut built = [0u8; <X86_64 as Arch>::DETOUR_LEN];
    let n = X86_64::build_detour(&region, detour, cookie, false, &mut built)
        .expect("the backend builds the detour");
    // SAFETY: the engine wrote `n` bytes there (it built the same detour).
    let written = unsafe { core::slice::from_raw_parts(detour as *const u8, n) };
    assert_eq!(written, &built[..n], "the engine's detour is the backend's");
    let mut jump = [0u8; 5];
    assert_eq!(X86_64::optimized_jump(s.probed, detour, &mut jump), Ok(5));
    // SAFETY: the 5 bytes at the probe, in our mapping.
    let at_probe = unsafe { core::slice::from_raw_parts(s.probed as *const u8, 5) };
    assert_eq!(at_probe, jump, "the engine's jump is the backend's");

    // Before the displaced copy, path (a) runs every instruction once: the
    // only branches are the call of the entry and the `jnz` to path (b)
    // (not taken), which lies after the copy.
    let call = before
        .iter()
        .position(|i| {
            i.flow_control() == FlowControl::Call || i.flow_control() == FlowControl::IndirectCall
        })
        .expect("the entry call");
    for i in &before {
        match i.flow_control() {
            FlowControl::Next | FlowControl::Call | FlowControl::IndirectCall => {}
            FlowControl::ConditionalBranch => assert!(
                i.near_branch_target() as usize >= detour + displaced_at + region.len,
                "the jnz goes to path (b)"
            ),
            f => panic!("unexpected {f:?} at {:#x}", i.ip()),
        }
    }
    let near_call = before[call].flow_control() == FlowControl::Call;
    let after = decode(detour + displaced_at, n - displaced_at);
    let displaced: Vec<Instruction> = after[..region.insns].to_vec();
    let jump_back = after[region.insns];
    assert_eq!(jump_back.flow_control(), FlowControl::UnconditionalBranch);
    PathA {
        region,
        near_call,
        save: before[..=call].to_vec(),
        restore: before[call + 1..].to_vec(),
        displaced,
        jump_back,
    }
}

/// One instruction in Intel syntax, with its address.
pub fn show(i: &Instruction) -> String {
    let mut f = IntelFormatter::new();
    let mut s = String::new();
    f.format(i, &mut s);
    format!("{:#x}: {s}", i.ip())
}

/// Whether `i` pushes or pops a register or the flags.
pub fn is_push_pop(i: &Instruction) -> bool {
    use iced_x86::Mnemonic::*;
    matches!(i.mnemonic(), Push | Pushfq | Pop | Popfq)
}
