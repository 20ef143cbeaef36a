//! The Toy ISA: a made-up 64-bit instruction set with 2- and 4-byte
//! instructions, interpreted in software.
//!
//! Registers `r0`..`r15`: `r0` reads as zero, `r14` is the link register,
//! `r15` the stack pointer. A flags word holds one bit, [`FLAG_IE`]
//! (interrupts enabled), which out-of-line steps must preserve.
//!
//! Opcodes below 0x80 are 2 bytes `[op, a]`, the others 4 bytes
//! `[op, a, b, c]`. `a` packs two registers as `rd << 4 | rs` unless noted.

/// Interrupt-enable bit of the flags word.
pub const FLAG_IE: u64 = 1;
/// Link register.
pub const RA: usize = 14;
/// Stack pointer.
pub const SP: usize = 15;

/// Opcodes.
pub mod op {
    /// `nop`
    pub const NOP: u8 = 0x01;
    /// `mov rd, rs`
    pub const MOV: u8 = 0x02;
    /// `add rd, rs`
    pub const ADD: u8 = 0x03;
    /// `inc rd` (a = rd)
    pub const INC: u8 = 0x04;
    /// `ret`: pc = r14
    pub const RET: u8 = 0x05;
    /// `brk code`: breakpoint (code 0 kernel probe, 1 user probe, 2 return
    /// trampoline)
    pub const BRK: u8 = 0x06;
    /// `stepend code`: end of an out-of-line step
    pub const STEPEND: u8 = 0x07;
    /// `push rs` (a = rs)
    pub const PUSH: u8 = 0x08;
    /// `pop rd` (a = rd)
    pub const POP: u8 = 0x09;
    /// `halt`: stop this CPU
    pub const HALT: u8 = 0x0a;
    /// `sc rd, rs`: store r`rd` at [r`rs`] if the link from `ll` holds;
    /// r`rd` = 1 on success, 0 on failure
    pub const SC: u8 = 0x0b;
    /// `cli`: clear the interrupt-enable flag
    pub const CLI: u8 = 0x0c;
    /// `li rd, imm16` (a = rd, imm16 little-endian, sign-extended)
    pub const LI: u8 = 0x80;
    /// `addi rd, rs, imm8` (b = imm8 signed)
    pub const ADDI: u8 = 0x81;
    /// `ld rd, [rs + imm8]`
    pub const LD: u8 = 0x82;
    /// `st rd, [rs + imm8]`: store r`rd`
    pub const ST: u8 = 0x83;
    /// `jmp rel16`: pc = addr + rel16 (b, c)
    pub const JMP: u8 = 0x84;
    /// `beq rd, rs, rel8`: if equal pc = addr + rel8 (b)
    pub const BEQ: u8 = 0x85;
    /// `call rel16`: r14 = addr + 4; pc = addr + rel16
    pub const CALL: u8 = 0x86;
    /// `ldpc rd, rel16`: rd = mem64[addr + rel16] (pc-relative load)
    pub const LDPC: u8 = 0x87;
    /// `ll rd, [rs]`: load-linked
    pub const LL: u8 = 0x88;
    /// `sys`: system call
    pub const SYS: u8 = 0x89;
    /// `callm [rs + imm8]`: r14 = addr + 4; pc = mem64[rs + imm8] (a call
    /// through memory, like x86 `call [rax + 8]`)
    pub const CALLM: u8 = 0x8a;
    /// `ojmp rel16`: pc = addr + 2 * rel16 (b, c): the jump of an
    /// optimised probe (reach ±64 KiB). Engine-reserved: never probed.
    pub const OJMP: u8 = 0x8b;
    /// `dentry mask, cookie16`: a detour's entry (engine-reserved). The
    /// 8 bytes after it hold the probe address; the machine builds a frame
    /// of the registers with pc = that address, calls its engine's
    /// `OptHook::on_optimized_hit(cookie, frame)` and then resumes at the
    /// frame's pc (true) or runs the displaced copy at addr + 12 (false).
    /// a = 1: interrupts masked around the call.
    pub const DENTRY: u8 = 0x8c;
}

/// Bytes of a detour before its copy of the displaced instructions: the
/// `dentry` instruction and the probe address (u64, little-endian).
pub const DETOUR_HEADER: usize = 12;

/// Length of the instruction starting with opcode `op`, if it is one.
pub fn insn_len(op: u8) -> Option<usize> {
    if crate::arch::DECISIONS.iter().any(|d| d.op == op) {
        Some(if op < 0x80 { 2 } else { 4 })
    } else {
        None
    }
}

/// Little assembler used by tests and the demo.
pub mod asm {
    use super::op;

    /// Registers packed in one byte.
    pub const fn rr(rd: usize, rs: usize) -> u8 {
        ((rd << 4) | rs) as u8
    }
    /// `nop`
    pub const fn nop() -> [u8; 2] {
        [op::NOP, 0]
    }
    /// `mov rd, rs`
    pub const fn mov(rd: usize, rs: usize) -> [u8; 2] {
        [op::MOV, rr(rd, rs)]
    }
    /// `add rd, rs`
    pub const fn add(rd: usize, rs: usize) -> [u8; 2] {
        [op::ADD, rr(rd, rs)]
    }
    /// `inc rd`
    pub const fn inc(rd: usize) -> [u8; 2] {
        [op::INC, rd as u8]
    }
    /// `ret`
    pub const fn ret() -> [u8; 2] {
        [op::RET, 0]
    }
    /// `brk code`
    pub const fn brk(code: u8) -> [u8; 2] {
        [op::BRK, code]
    }
    /// `push rs`
    pub const fn push(rs: usize) -> [u8; 2] {
        [op::PUSH, rs as u8]
    }
    /// `pop rd`
    pub const fn pop(rd: usize) -> [u8; 2] {
        [op::POP, rd as u8]
    }
    /// `halt`
    pub const fn halt() -> [u8; 2] {
        [op::HALT, 0]
    }
    /// `sc rd, rs`
    pub const fn sc(rd: usize, rs: usize) -> [u8; 2] {
        [op::SC, rr(rd, rs)]
    }
    /// `cli`
    pub const fn cli() -> [u8; 2] {
        [op::CLI, 0]
    }
    /// `li rd, imm`
    pub const fn li(rd: usize, imm: i16) -> [u8; 4] {
        let b = imm.to_le_bytes();
        [op::LI, rd as u8, b[0], b[1]]
    }
    /// `addi rd, rs, imm`
    pub const fn addi(rd: usize, rs: usize, imm: i8) -> [u8; 4] {
        [op::ADDI, rr(rd, rs), imm as u8, 0]
    }
    /// `ld rd, [rs + imm]`
    pub const fn ld(rd: usize, rs: usize, imm: i8) -> [u8; 4] {
        [op::LD, rr(rd, rs), imm as u8, 0]
    }
    /// `st rd, [rs + imm]`
    pub const fn st(rd: usize, rs: usize, imm: i8) -> [u8; 4] {
        [op::ST, rr(rd, rs), imm as u8, 0]
    }
    /// `jmp rel`
    pub const fn jmp(rel: i16) -> [u8; 4] {
        let b = rel.to_le_bytes();
        [op::JMP, 0, b[0], b[1]]
    }
    /// `beq rd, rs, rel`
    pub const fn beq(rd: usize, rs: usize, rel: i8) -> [u8; 4] {
        [op::BEQ, rr(rd, rs), rel as u8, 0]
    }
    /// `call rel`
    pub const fn call(rel: i16) -> [u8; 4] {
        let b = rel.to_le_bytes();
        [op::CALL, 0, b[0], b[1]]
    }
    /// `ldpc rd, rel`
    pub const fn ldpc(rd: usize, rel: i16) -> [u8; 4] {
        let b = rel.to_le_bytes();
        [op::LDPC, rd as u8, b[0], b[1]]
    }
    /// `ll rd, [rs]`
    pub const fn ll(rd: usize, rs: usize) -> [u8; 4] {
        [op::LL, rr(rd, rs), 0, 0]
    }
    /// `sys`
    pub const fn sys() -> [u8; 4] {
        [op::SYS, 0, 0, 0]
    }
    /// `ojmp` from `from` to `to` (both even, within ±64 KiB)
    pub const fn ojmp(rel_halfwords: i16) -> [u8; 4] {
        let b = rel_halfwords.to_le_bytes();
        [op::OJMP, 0, b[0], b[1]]
    }
    /// `dentry mask, cookie`
    pub const fn dentry(mask: bool, cookie: u16) -> [u8; 4] {
        let b = cookie.to_le_bytes();
        [op::DENTRY, mask as u8, b[0], b[1]]
    }
    /// `callm [rs + imm]`
    pub const fn callm(rs: usize, imm: i8) -> [u8; 4] {
        [op::CALLM, rs as u8, imm as u8, 0]
    }
}
