//! Just enough ELF64 (little-endian) and `ar` to find code and symbols:
//! section headers, `.symtab`/`.dynsym`, the GNU build-id note, and the
//! members of an rlib.

use std::path::Path;

/// `SHT_SYMTAB`.
const SHT_SYMTAB: u32 = 2;
/// `SHT_NOBITS`.
const SHT_NOBITS: u32 = 8;
/// `SHT_DYNSYM`.
const SHT_DYNSYM: u32 = 11;
/// `SHF_EXECINSTR`.
const SHF_EXECINSTR: u64 = 4;
/// `ET_REL`: a relocatable object (each section starts at address 0).
const ET_REL: u16 = 1;

/// One section header.
#[derive(Debug, Clone)]
pub struct Section {
    pub index: usize,
    pub name: String,
    pub kind: u32,
    pub flags: u64,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
}

impl Section {
    pub fn is_code(&self) -> bool {
        self.flags & SHF_EXECINSTR != 0 && self.kind != SHT_NOBITS && self.size > 0
    }
}

/// A function symbol: where it starts and how long it is. In a relocatable
/// object `value` is an offset in section `shndx`; elsewhere an address.
#[derive(Debug, Clone)]
pub struct Symbol {
    pub name: String,
    pub value: u64,
    pub size: u64,
    pub shndx: usize,
}

/// A parsed ELF file (the bytes are kept).
pub struct Elf {
    pub data: Vec<u8>,
    pub sections: Vec<Section>,
    pub relocatable: bool,
}

fn u16_at(d: &[u8], o: usize) -> Result<u16, String> {
    d.get(o..o + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| format!("truncated ELF at {o:#x}"))
}

fn u32_at(d: &[u8], o: usize) -> Result<u32, String> {
    d.get(o..o + 4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .ok_or_else(|| format!("truncated ELF at {o:#x}"))
}

fn u64_at(d: &[u8], o: usize) -> Result<u64, String> {
    d.get(o..o + 8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .ok_or_else(|| format!("truncated ELF at {o:#x}"))
}

fn c_str(d: &[u8], o: usize) -> String {
    let tail = d.get(o..).unwrap_or(&[]);
    let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
    String::from_utf8_lossy(&tail[..end]).into_owned()
}

impl Elf {
    pub fn read(path: &Path) -> Result<Self, String> {
        let data =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(data).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(data: Vec<u8>) -> Result<Self, String> {
        if data.get(..4) != Some(b"\x7fELF") || data.get(4) != Some(&2) || data.get(5) != Some(&1) {
            return Err("not a little-endian ELF64 file".into());
        }
        let relocatable = u16_at(&data, 0x10)? == ET_REL;
        let shoff = u64_at(&data, 0x28)? as usize;
        let shentsize = u16_at(&data, 0x3a)? as usize;
        let mut shnum = u16_at(&data, 0x3c)? as usize;
        let mut shstrndx = u16_at(&data, 0x3e)? as usize;
        // Extended numbering: the real values live in section 0.
        if shoff != 0 && shnum == 0 {
            shnum = u64_at(&data, shoff + 32)? as usize;
        }
        if shoff != 0 && shstrndx == 0xffff {
            shstrndx = u32_at(&data, shoff + 40)? as usize;
        }
        let mut sections = Vec::with_capacity(shnum);
        for index in 0..shnum {
            let o = shoff + index * shentsize;
            sections.push(Section {
                index,
                name: String::new(),
                kind: u32_at(&data, o + 4)?,
                flags: u64_at(&data, o + 8)?,
                addr: u64_at(&data, o + 16)?,
                offset: u64_at(&data, o + 24)?,
                size: u64_at(&data, o + 32)?,
                link: u32_at(&data, o + 40)?,
            });
            let name = u32_at(&data, o)? as usize;
            sections[index].name = name.to_string(); // resolved below
        }
        if let Some(strtab) = sections.get(shstrndx).map(|s| s.offset as usize) {
            for s in &mut sections {
                let off: usize = s.name.parse().unwrap_or(0);
                s.name = c_str(&data, strtab + off);
            }
        }
        Ok(Self {
            data,
            sections,
            relocatable,
        })
    }

    /// The bytes of a section (empty for `NOBITS`).
    pub fn bytes(&self, s: &Section) -> &[u8] {
        if s.kind == SHT_NOBITS {
            return &[];
        }
        let start = s.offset as usize;
        self.data.get(start..start + s.size as usize).unwrap_or(&[])
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Function symbols (`STT_FUNC` and `STT_GNU_IFUNC`, non-zero size) of
    /// `.symtab` (`dynamic`: `.dynsym`).
    pub fn functions(&self, dynamic: bool) -> Vec<Symbol> {
        let want = if dynamic { SHT_DYNSYM } else { SHT_SYMTAB };
        let mut out = Vec::new();
        for tab in self.sections.iter().filter(|s| s.kind == want) {
            let Some(strtab) = self.sections.get(tab.link as usize) else {
                continue;
            };
            let d = self.bytes(tab);
            for e in d.chunks_exact(24) {
                let kind = e[4] & 0xf;
                if kind != 2 && kind != 10 {
                    continue;
                }
                let shndx = u16::from_le_bytes([e[6], e[7]]) as usize;
                let value = u64::from_le_bytes(e[8..16].try_into().unwrap());
                let size = u64::from_le_bytes(e[16..24].try_into().unwrap());
                if size == 0 || shndx == 0 || shndx >= 0xff00 {
                    continue;
                }
                let name = u32::from_le_bytes(e[0..4].try_into().unwrap()) as usize;
                out.push(Symbol {
                    name: c_str(&self.data, strtab.offset as usize + name),
                    value,
                    size,
                    shndx,
                });
            }
        }
        out
    }

    /// The GNU build id, as lowercase hex.
    pub fn build_id(&self) -> Option<String> {
        let note = self.section(".note.gnu.build-id")?;
        let d = self.bytes(note);
        let namesz = u32_at(d, 0).ok()? as usize;
        let descsz = u32_at(d, 4).ok()? as usize;
        let desc = 12 + namesz.div_ceil(4) * 4;
        let id = d.get(desc..desc + descsz)?;
        Some(id.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// The members of an `ar` archive (GNU format, as rustc writes rlibs) whose
/// names end in `.o`: (name, bytes).
pub fn ar_objects(path: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !data.starts_with(b"!<arch>\n") {
        return Err(format!("{} is not an ar archive", path.display()));
    }
    let mut out = Vec::new();
    let mut long_names: &[u8] = &[];
    let mut at = 8;
    while at + 60 <= data.len() {
        let header = &data[at..at + 60];
        let raw_name = String::from_utf8_lossy(&header[..16])
            .trim_end()
            .to_string();
        let size: usize = String::from_utf8_lossy(&header[48..58])
            .trim()
            .parse()
            .map_err(|_| format!("{}: bad member size", path.display()))?;
        let body = data
            .get(at + 60..at + 60 + size)
            .ok_or_else(|| format!("{}: truncated member", path.display()))?;
        at += 60 + size + (size & 1);
        let name = if raw_name == "//" {
            long_names = body;
            continue;
        } else if raw_name == "/" || raw_name == "/SYM64/" {
            continue;
        } else if let Some(off) = raw_name.strip_prefix('/') {
            let off: usize = off
                .parse()
                .map_err(|_| format!("bad member name {raw_name}"))?;
            let tail = long_names.get(off..).unwrap_or(&[]);
            let end = tail.iter().position(|&b| b == b'\n').unwrap_or(tail.len());
            String::from_utf8_lossy(&tail[..end])
                .trim_end_matches('/')
                .to_string()
        } else {
            raw_name.trim_end_matches('/').to_string()
        };
        if name.ends_with(".o") {
            out.push((name, body.to_vec()));
        }
    }
    Ok(out)
}
