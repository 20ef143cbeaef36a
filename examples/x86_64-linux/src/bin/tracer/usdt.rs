//! A USDT probe site in the tracer's own binary (the file every child
//! maps), and what a tool needs to probe it by file: its SystemTap SDT note,
//! file offsets from the program headers, and the file's mappings in a
//! process from `/proc/PID/maps`.
//!
//! The site is `tracer:usdt_work`: the first instruction (a `nop`, as
//! `sys/sdt.h` emits) of [`usdt_work`], described by a `.note.stapsdt` note
//! (owner `stapsdt`, type 3; desc: pc, `_.stapsdt.base`, semaphore address,
//! provider, name, argument string), with its 2-byte semaphore in the
//! `.probes` section. The children's [`usdt_loop`] tests the semaphore
//! before calling the site, as code built with `sys/sdt.h` does.

use core::arch::global_asm;
use std::fs;

global_asm!(
    // The probed function: `usdt_work(n, s) -> n + 1`, its first
    // instruction the SDT site.
    ".pushsection .text.tracer_usdt_work,\"ax\",@progbits",
    ".globl tracer_usdt_work",
    ".hidden tracer_usdt_work",
    ".type tracer_usdt_work,@function",
    ".p2align 4",
    "tracer_usdt_work:",
    ".Ltracer_usdt_site:",
    "nop",
    "lea 1(%rdi), %rax",
    "ret",
    ".size tracer_usdt_work, .-tracer_usdt_work",
    ".popsection",
    // The semaphore: a 2-byte counter in `.probes` (writable, in the file).
    ".pushsection .probes,\"aw\",@progbits",
    ".globl tracer_usdt_work_semaphore",
    ".hidden tracer_usdt_work_semaphore",
    ".type tracer_usdt_work_semaphore,@object",
    ".p2align 1",
    "tracer_usdt_work_semaphore:",
    ".2byte 0",
    ".size tracer_usdt_work_semaphore, 2",
    ".popsection",
    // `_.stapsdt.base`, as sys/sdt.h defines it (prelink adjustments).
    ".ifndef _.stapsdt.base",
    ".pushsection .stapsdt.base,\"aGR\",@progbits,.stapsdt.base,comdat",
    ".weak _.stapsdt.base",
    ".hidden _.stapsdt.base",
    "_.stapsdt.base:",
    ".space 1",
    ".size _.stapsdt.base, 1",
    ".popsection",
    ".endif",
    // The note.
    ".pushsection .note.stapsdt,\"\",@note",
    ".balign 4",
    ".4byte .Ltracer_sdt_owner_end - .Ltracer_sdt_owner",
    ".4byte .Ltracer_sdt_desc_end - .Ltracer_sdt_desc",
    ".4byte 3",
    ".Ltracer_sdt_owner:",
    ".asciz \"stapsdt\"",
    ".Ltracer_sdt_owner_end:",
    ".balign 4",
    ".Ltracer_sdt_desc:",
    ".8byte .Ltracer_usdt_site",
    ".8byte _.stapsdt.base",
    ".8byte tracer_usdt_work_semaphore",
    ".asciz \"tracer\"",
    ".asciz \"usdt_work\"",
    ".asciz \"8@%rdi 8@%rsi\"",
    ".Ltracer_sdt_desc_end:",
    ".balign 4",
    ".popsection",
    options(att_syntax)
);

extern "C" {
    fn tracer_usdt_work(n: u64, s: *const u8) -> u64;
    static mut tracer_usdt_work_semaphore: u16;
}

/// The string the site passes in `rsi`.
pub const USDT_STRING: &str = "usdt says hi";
const USDT_CSTR: &[u8] = b"usdt says hi\0";

/// The probed function's address in this process (and in its forks).
pub fn usdt_work() -> usize {
    tracer_usdt_work as *const () as usize
}

/// The semaphore's address in this process (and in its forks).
pub fn semaphore() -> usize {
    core::ptr::addr_of!(tracer_usdt_work_semaphore) as usize
}

/// The children's side: `times` rounds, each calling the site with the
/// round number and [`USDT_STRING`] when the semaphore is set (as
/// `if (PROVIDER_NAME_ENABLED()) PROVIDER_NAME(...)` does); returns the
/// rounds that saw it set.
pub extern "C" fn usdt_loop(times: u64, _: u64, _: u64) -> u64 {
    let mut seen = 0;
    for i in 0..times {
        // SAFETY: the semaphore is a plain u16 the tracer changes only
        // while this process is stopped; read fresh every round.
        if unsafe { core::ptr::read_volatile(core::ptr::addr_of!(tracer_usdt_work_semaphore)) } != 0
        {
            // SAFETY: the site takes an integer and a NUL-terminated string.
            let r = unsafe { tracer_usdt_work(i, USDT_CSTR.as_ptr()) };
            if r == i + 1 {
                seen += 1;
            }
        }
    }
    seen
}

/// One SystemTap SDT note (version 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdtNote {
    /// Link-time address of the probe site (adjusted by `.stapsdt.base`).
    pub pc: u64,
    /// Link-time address of the semaphore (0: none).
    pub semaphore: u64,
    /// Provider.
    pub provider: String,
    /// Probe name.
    pub name: String,
    /// Argument description.
    pub args: String,
}

fn u16_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as u64)
}
fn u32_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as u64)
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?).into()
}
fn cstr(b: &[u8], at: usize) -> Option<(String, usize)> {
    let rest = b.get(at..)?;
    let n = rest.iter().position(|&c| c == 0)?;
    Some((String::from_utf8_lossy(&rest[..n]).into_owned(), at + n + 1))
}

/// The parts of an ELF64 file a USDT tool needs.
pub struct Elf {
    bytes: Vec<u8>,
    /// (type, file offset, vaddr, file size) of the program headers.
    phdrs: Vec<(u32, u64, u64, u64)>,
    /// (name, type, address, file offset, size) of the sections.
    sections: Vec<(String, u32, u64, u64, u64)>,
}

impl Elf {
    /// Read and index `path`.
    pub fn read(path: &str) -> Result<Elf, String> {
        let bytes = fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let bad = || format!("{path}: not a readable ELF64 file");
        if bytes.get(..4) != Some(b"\x7fELF") || bytes.get(4) != Some(&2) {
            return Err(bad());
        }
        let (phoff, shoff) = (
            u64_at(&bytes, 32).ok_or_else(bad)?,
            u64_at(&bytes, 40).ok_or_else(bad)?,
        );
        let phnum = u16_at(&bytes, 56).ok_or_else(bad)?;
        let (shnum, shstrndx) = (
            u16_at(&bytes, 60).ok_or_else(bad)?,
            u16_at(&bytes, 62).ok_or_else(bad)?,
        );
        let mut phdrs = Vec::new();
        for i in 0..phnum {
            let p = (phoff + i * 56) as usize;
            phdrs.push((
                u32_at(&bytes, p).ok_or_else(bad)? as u32,
                u64_at(&bytes, p + 8).ok_or_else(bad)?,
                u64_at(&bytes, p + 16).ok_or_else(bad)?,
                u64_at(&bytes, p + 32).ok_or_else(bad)?,
            ));
        }
        let sh = |i: u64, field: usize, wide: bool| {
            let at = (shoff + i * 64) as usize + field;
            if wide {
                u64_at(&bytes, at)
            } else {
                u32_at(&bytes, at)
            }
        };
        let strtab = sh(shstrndx, 24, true).ok_or_else(bad)?;
        let mut sections = Vec::new();
        for i in 0..shnum {
            let name_off = sh(i, 0, false).ok_or_else(bad)?;
            let (name, _) = cstr(&bytes, (strtab + name_off) as usize).ok_or_else(bad)?;
            sections.push((
                name,
                sh(i, 4, false).ok_or_else(bad)? as u32,
                sh(i, 16, true).ok_or_else(bad)?,
                sh(i, 24, true).ok_or_else(bad)?,
                sh(i, 32, true).ok_or_else(bad)?,
            ));
        }
        Ok(Elf {
            bytes,
            phdrs,
            sections,
        })
    }

    fn section(&self, name: &str) -> Option<&(String, u32, u64, u64, u64)> {
        self.sections.iter().find(|s| s.0 == name)
    }

    /// The SDT notes (`.note.stapsdt`), their addresses adjusted for
    /// `.stapsdt.base` as SystemTap and perf do.
    pub fn sdt_notes(&self) -> Result<Vec<SdtNote>, String> {
        let (_, _, _, off, size) = self
            .section(".note.stapsdt")
            .ok_or("no .note.stapsdt section")?;
        let base_addr = self.section(".stapsdt.base").map(|s| s.2);
        let b = self
            .bytes
            .get(*off as usize..(off + size) as usize)
            .ok_or("note section past the end of the file")?;
        let mut notes = Vec::new();
        let mut at = 0;
        let align = |n: usize| (n + 3) & !3;
        while at + 12 <= b.len() {
            let bad = || format!("malformed note at {at:#x}");
            let namesz = u32_at(b, at).ok_or_else(bad)? as usize;
            let descsz = u32_at(b, at + 4).ok_or_else(bad)? as usize;
            let ty = u32_at(b, at + 8).ok_or_else(bad)?;
            let name_at = at + 12;
            let desc_at = name_at + align(namesz);
            let owner = b.get(name_at..name_at + namesz).ok_or_else(bad)?;
            if owner == b"stapsdt\0" && ty == 3 {
                let d = b.get(desc_at..desc_at + descsz).ok_or_else(bad)?;
                let mut pc = u64_at(d, 0).ok_or_else(bad)?;
                let base = u64_at(d, 8).ok_or_else(bad)?;
                let mut semaphore = u64_at(d, 16).ok_or_else(bad)?;
                if let (Some(actual), true) = (base_addr, base != 0) {
                    pc = pc.wrapping_add(actual).wrapping_sub(base);
                    if semaphore != 0 {
                        semaphore = semaphore.wrapping_add(actual).wrapping_sub(base);
                    }
                }
                let (provider, n) = cstr(d, 24).ok_or_else(bad)?;
                let (name, n) = cstr(d, n).ok_or_else(bad)?;
                let (args, _) = cstr(d, n).ok_or_else(bad)?;
                notes.push(SdtNote {
                    pc,
                    semaphore,
                    provider,
                    name,
                    args,
                });
            }
            at = desc_at + align(descsz);
        }
        Ok(notes)
    }

    /// The file offset of link-time address `vaddr` (through the `PT_LOAD`
    /// segment holding it in the file).
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        const PT_LOAD: u32 = 1;
        self.phdrs
            .iter()
            .find(|&&(ty, _, va, filesz)| ty == PT_LOAD && vaddr >= va && vaddr - va < filesz)
            .map(|&(_, off, va, _)| off + (vaddr - va))
    }
}

/// One line of `/proc/PID/maps` that maps a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMapping {
    /// First address.
    pub start: usize,
    /// Length in bytes.
    pub len: usize,
    /// `r`, `w`, `x`, `p`/`s` as the line shows them.
    pub perms: [u8; 4],
    /// File offset of `start`.
    pub file_off: u64,
    /// Device (as `st_dev` encodes it: `makedev(major, minor)`).
    pub dev: u64,
    /// Inode.
    pub ino: u64,
}

impl FileMapping {
    /// Executable (where the kernel places uprobes: Linux's `valid_vma`).
    pub fn exec(&self) -> bool {
        self.perms[2] == b'x'
    }
}

/// The file mappings of process `pid` (anonymous ones left out).
pub fn file_mappings(pid: i32) -> Result<Vec<FileMapping>, String> {
    let path = format!("/proc/{pid}/maps");
    let text = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let bad = || format!("{path}: unreadable line {line:?}");
        let mut f = line.split_ascii_whitespace();
        let (range, perms, off, dev, ino) = (
            f.next().ok_or_else(bad)?,
            f.next().ok_or_else(bad)?,
            f.next().ok_or_else(bad)?,
            f.next().ok_or_else(bad)?,
            f.next().ok_or_else(bad)?,
        );
        let ino: u64 = ino.parse().map_err(|_| bad())?;
        if ino == 0 {
            continue;
        }
        let (s, e) = range.split_once('-').ok_or_else(bad)?;
        let hex = |t: &str| u64::from_str_radix(t, 16).map_err(|_| bad());
        let (major, minor) = dev.split_once(':').ok_or_else(bad)?;
        let (start, end) = (hex(s)? as usize, hex(e)? as usize);
        out.push(FileMapping {
            start,
            len: end - start,
            perms: perms.as_bytes().try_into().map_err(|_| bad())?,
            file_off: hex(off)?,
            dev: libc::makedev(hex(major)? as u32, hex(minor)? as u32),
            ino,
        });
    }
    Ok(out)
}
