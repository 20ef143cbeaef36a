//! The code of a detour and of the jump to it (the layout is documented in
//! [`super`]).

use probe_hal::{Handling, OptRegion, SiteRule};

use crate::decode::{self, Op};
use crate::slot::{rel32, relocated_disp};

use super::JUMP_LEN;

/// Upper bound of a detour's size: the far forms of the entry call and of
/// the jump back, a region of 19 bytes and the literals (checked by the
/// tests against the worst case).
pub(crate) const DETOUR_LEN: usize = 320;

/// Offset in every detour of the entry call: the code before it has the
/// same length whatever the detour's address or interrupt masking.
const CALL_AT: usize = 87;
/// Length of the code from the end of the entry call to the copy of the
/// displaced instructions (`mov rsp, rbx`, `test`, `jnz`, path (a)'s
/// restore). [`displaced_at`] adds the call's length: reached with the
/// registers as the probed code had them at the probe address, the copy
/// runs the region and continues after it, which is where the engine's
/// breakpoint path resumes while a jump is being installed or removed.
const AFTER_CALL: usize = 44;

/// Distance from the probed code's `rsp` down to the frame: the red zone
/// (128), the resume slot (8) and the frame (168).
pub(crate) const FRAME_BELOW_SP: usize = SLOT_BELOW_SP + PT_REGS_LEN;
/// Distance from the resumed code's `rsp` down to its resume slot.
pub(crate) const SLOT_BELOW_SP: usize = RED_ZONE as usize + 8;
/// The System V red zone below `rsp`, which the detour never writes.
const RED_ZONE: u16 = 128;
const PT_REGS_LEN: usize = 168;
const _: () = assert!(core::mem::size_of::<crate::PtRegs>() == PT_REGS_LEN);

// Frame offsets (`PtRegs`).
const OFF_RIP: u32 = 128;
const OFF_RSP: u32 = 152;

/// Appends code to a fixed buffer.
struct Code {
    buf: [u8; DETOUR_LEN],
    len: usize,
}

impl Code {
    fn put(&mut self, bytes: &[u8]) -> usize {
        let at = self.len;
        self.buf[at..at + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        at
    }

    /// `push qword [rip + disp32]` of a literal placed by
    /// [`Self::patch_literal`]; returns where the instruction starts.
    fn push_literal(&mut self) -> usize {
        self.put(&[0xff, 0x35, 0, 0, 0, 0])
    }

    /// Append the 8-byte literal `value` and point the `push` at `push`
    /// to it.
    fn patch_literal(&mut self, push: usize, value: u64) {
        let lit = self.put(&value.to_le_bytes());
        let disp = (lit - (push + 6)) as u32;
        self.buf[push + 2..push + 6].copy_from_slice(&disp.to_le_bytes());
    }

    /// Path (b)'s resume slot, with rsp at the frame (`R - 304`): the slot
    /// is 136 bytes below the frame's rsp raised to at least `R`; it gets
    /// the frame's rip and the frame's rsp field gets its address. rax,
    /// rcx and the flags are clobbered (the restore reloads them).
    fn prepare_resume(&mut self) {
        self.put(&[0x48, 0x8b, 0x84, 0x24]); // mov rax, [rsp + 152]
        self.put(&OFF_RSP.to_le_bytes());
        self.put(&[0x48, 0x8d, 0x8c, 0x24]); // lea rcx, [rsp + 304]: R
        self.put(&(FRAME_BELOW_SP as u32).to_le_bytes());
        self.put(&[
            0x48, 0x39, 0xc8, // cmp rax, rcx
            0x48, 0x0f, 0x42, 0xc1, // cmovb rax, rcx
            0x48, 0x2d, // sub rax, 136
        ]);
        self.put(&(SLOT_BELOW_SP as u32).to_le_bytes());
        self.put(&[0x48, 0x8b, 0x8c, 0x24]); // mov rcx, [rsp + 128]
        self.put(&OFF_RIP.to_le_bytes());
        self.put(&[0x48, 0x89, 0x08]); // mov [rax], rcx
        self.put(&[0x48, 0x89, 0x84, 0x24]); // mov [rsp + 152], rax
        self.put(&OFF_RSP.to_le_bytes());
    }

    /// `pop r15 … rdi` (the frame's first 15 words), then over `orig_rax`,
    /// `rip` and `cs`, and `popfq`: rsp ends at the frame's rsp field.
    fn restore(&mut self) {
        self.put(&[
            0x41, 0x5f, // pop r15
            0x41, 0x5e, // pop r14
            0x41, 0x5d, // pop r13
            0x41, 0x5c, // pop r12
            0x5d, // pop rbp
            0x5b, // pop rbx
            0x41, 0x5b, // pop r11
            0x41, 0x5a, // pop r10
            0x41, 0x59, // pop r9
            0x41, 0x58, // pop r8
            0x58, // pop rax
            0x59, // pop rcx
            0x5a, // pop rdx
            0x5e, // pop rsi
            0x5f, // pop rdi
            0x48, 0x8d, 0x64, 0x24, 0x18, // lea rsp, [rsp + 24]
            0x9d, // popfq
        ]);
    }
}

/// The detour for `region` at `detour`, calling `entry` with `cookie`.
pub(crate) fn build(
    region: &OptRegion,
    detour: usize,
    cookie: usize,
    mask_interrupts: bool,
    entry: usize,
    out: &mut [u8],
) -> Result<usize, SiteRule> {
    let mut c = Code {
        buf: [0; DETOUR_LEN],
        len: 0,
    };
    // Save.
    c.put(&[0x48, 0x8d, 0xa4, 0x24]); // lea rsp, [rsp - 136]
    c.put(&(-(SLOT_BELOW_SP as i32)).to_le_bytes());
    // ss from a literal, as cs: reading the ss register (`mov r/m16, ss`)
    // costs as much as the rest of the save together on the machines
    // measured (docs/performance.md), and Linux's template pushes a
    // constant too.
    let ss_push = c.push_literal(); // ss
    c.put(&[
        0x54, // push rsp: rsp, R - 144 (corrected below)
        0x9c, // pushfq: eflags
    ]);
    let cs_push = c.push_literal(); // cs
    let rip_push = c.push_literal(); // rip
    c.put(&[
        0x6a, 0xff, // push -1: orig_rax
        0x57, // push rdi
        0x56, // push rsi
        0x52, // push rdx
        0x51, // push rcx
        0x50, // push rax
        0x41, 0x50, // push r8
        0x41, 0x51, // push r9
        0x41, 0x52, // push r10
        0x41, 0x53, // push r11
        0x53, // push rbx
        0x55, // push rbp
        0x41, 0x54, // push r12
        0x41, 0x55, // push r13
        0x41, 0x56, // push r14
        0x41, 0x57, // push r15
    ]);
    c.put(&[0x48, 0x81, 0x84, 0x24]); // add qword [rsp + 152], 144: rsp = R
    c.put(&OFF_RSP.to_le_bytes());
    c.put(&(SLOT_BELOW_SP as u32 + 8).to_le_bytes());
    // cli, or a nop of the same length: the layout does not depend on it.
    c.put(&[if mask_interrupts { 0xfa } else { 0x90 }]);
    c.put(&[0xfc]); // cld
    c.put(&[
        0x48, 0x89, 0xe3, // mov rbx, rsp
        0x48, 0x83, 0xe4, 0xf0, // and rsp, -16
        0x48, 0x89, 0xdf, // mov rdi, rbx
        0x48, 0xbe, // movabs rsi, cookie
    ]);
    c.put(&(cookie as u64).to_le_bytes());
    // Call the entry: rel32 when it reaches, else through rax (saved).
    match rel32(detour.wrapping_add(c.len + 5), entry) {
        Some(rel) => {
            c.put(&[0xe8]);
            c.put(&rel.to_le_bytes());
        }
        None => {
            c.put(&[0x48, 0xb8]);
            c.put(&(entry as u64).to_le_bytes());
            c.put(&[0xff, 0xd0]); // call rax
        }
    }
    c.put(&[
        0x48, 0x89, 0xdc, // mov rsp, rbx
        0x84, 0xc0, // test al, al
        0x75, 0x00, // jnz resume (rel8 patched below)
    ]);
    let jnz_end = c.len;

    // Path (a): restore, run the displaced instructions, jump back.
    c.restore();
    c.put(&[0x48, 0x8d, 0xa4, 0x24]); // lea rsp, [rsp + 152]
    c.put(&(FRAME_BELOW_SP as u32 - OFF_RSP).to_le_bytes());
    debug_assert_eq!(c.len, displaced_at(detour, entry));
    let mut at = 0;
    while at < region.len {
        let orig_addr = region.addr.wrapping_add(at);
        let bytes = &region.orig[at..region.len];
        let d = decode::decode(orig_addr, bytes, region.mode)
            .map_err(|_| SiteRule::NotStepped { at: orig_addr })?;
        let step = match (d.insn.op(), d.handling) {
            (Op::Step(step), Handling::StepOutOfLine { boostable: true }) => step,
            _ => return Err(SiteRule::NotStepped { at: orig_addr }),
        };
        let new_addr = detour.wrapping_add(c.len);
        let start = c.put(&bytes[..d.len]);
        if let Some(rip) = step.rip_relative {
            let disp = if rip.eip {
                let target = orig_addr
                    .wrapping_add(d.len)
                    .wrapping_add(rip.disp as isize as usize);
                target.wrapping_sub(new_addr.wrapping_add(d.len)) as u32 as i32
            } else {
                relocated_disp(orig_addr, new_addr, d.len, rip.disp).ok_or(SiteRule::OutOfReach)?
            };
            let o = start + rip.disp_offset as usize;
            c.buf[o..o + 4].copy_from_slice(&disp.to_le_bytes());
        }
        at += d.len;
    }
    match rel32(detour.wrapping_add(c.len + JUMP_LEN), region.end()) {
        Some(rel) => {
            c.put(&[0xe9]);
            c.put(&rel.to_le_bytes());
        }
        None => {
            c.put(&[0xff, 0x25, 0, 0, 0, 0]); // jmp [rip + 0]
            c.put(&(region.end() as u64).to_le_bytes());
        }
    }

    // Path (b): the resume slot, restore, resume at the frame's rip with
    // its rsp.
    let resume = c.len;
    let rel = resume - jnz_end;
    c.buf[jnz_end - 1] = u8::try_from(rel).expect("path (a) is shorter than 128 bytes");
    c.prepare_resume();
    c.restore();
    c.put(&[0x48, 0x8b, 0x24, 0x24]); // mov rsp, [rsp]
    c.put(&[0xc2]); // ret 128: the slot, then the red zone
    c.put(&RED_ZONE.to_le_bytes());

    // The literals the save pushes.
    c.len = c.len.next_multiple_of(8);
    let (cs, ss) = current_selectors();
    c.patch_literal(ss_push, ss);
    c.patch_literal(cs_push, cs);
    c.patch_literal(rip_push, region.addr as u64);

    let out = out
        .get_mut(..c.len)
        .ok_or(SiteRule::BufferTooSmall { needed: c.len })?;
    out.copy_from_slice(&c.buf[..c.len]);
    Ok(c.len)
}

/// Offset of the copy of the displaced instructions (followed by the jump
/// back) in a detour at `detour` that calls `entry`: the code before it has
/// one length per form of the entry call.
pub(crate) fn displaced_at(detour: usize, entry: usize) -> usize {
    match rel32(detour.wrapping_add(CALL_AT + 5), entry) {
        Some(_) => CALL_AT + 5 + AFTER_CALL,
        None => CALL_AT + 12 + AFTER_CALL,
    }
}

/// The code and stack segment selectors the detour pushes as the frame's
/// `cs` and `ss`: the ones this code runs with. The engine builds detours
/// at registration, at the privilege level of the (kernel) code it
/// optimises, where `cs` is the same (Linux's `optimized_callback` sets
/// `__KERNEL_CS`; its template pushes `__KERNEL_DS` as `ss`). Neither is
/// loaded back: path (b) ends with a `ret`, not an `iretq`.
fn current_selectors() -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        let (cs, ss): (u64, u64);
        // SAFETY: reading the cs and ss selectors has no side effect.
        unsafe {
            core::arch::asm!(
                "mov {0:r}, cs",
                "mov {1:r}, ss",
                out(reg) cs,
                out(reg) ss,
                options(nomem, nostack, preserves_flags)
            )
        };
        (cs, ss)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (0, 0)
    }
}

/// The `jmp rel32` written at `addr` to reach `detour`.
pub(crate) fn jump(addr: usize, detour: usize, out: &mut [u8]) -> Result<usize, SiteRule> {
    let rel = rel32(addr.wrapping_add(JUMP_LEN), detour).ok_or(SiteRule::OutOfReach)?;
    let out = out
        .get_mut(..JUMP_LEN)
        .ok_or(SiteRule::BufferTooSmall { needed: JUMP_LEN })?;
    out[0] = 0xe9;
    out[1..].copy_from_slice(&rel.to_le_bytes());
    Ok(JUMP_LEN)
}
