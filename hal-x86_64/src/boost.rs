//! Which stepped instructions may end their slot with a `jmp` back instead of
//! a trap ("boost"), following Linux's `can_boost` and its
//! `twobyte_is_boostable` bitmap (arch/x86/kernel/kprobes/core.c).
//!
//! A boosted copy runs without a second trap, so nothing may need fixing
//! after it: no rip change (branches are simulated, never stepped), no flag
//! restore, no behaviour that differs between vendors or depends on where
//! the instruction sits. Linux's table is conservative (it also leaves out
//! the x87 escapes, opcode groups with reserved encodings, most SSE opcodes
//! of the 0f map and all three-byte maps); we keep it as it is, since a
//! refused boost only costs a second trap. Rip-relative operands do not
//! prevent boosting: the copy's displacement is fixed up and the `jmp` back
//! is as good as the trap.
//!
//! This module owns the raw layout of an instruction ([`Encoding`], [`Map`]),
//! which the decision in [`crate::decode`] reads too; it imports nothing
//! from `decode`, so the dependency goes one way.

/// Opcode maps, as far as the decision and the boost table need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Map {
    /// One-byte opcodes.
    One,
    /// `0f xx`.
    Two,
    /// `0f 38 xx`.
    Three38,
    /// `0f 3a xx`.
    Three3A,
    /// AMD 3DNow! (`0f 0f modrm … imm8`).
    Amd3DNow,
    /// VEX-encoded (c4/c5).
    Vex,
    /// EVEX-encoded (62).
    Evex,
}

/// The raw layout of an instruction: where its opcode is and which prefixes
/// matter to the decision. Only meaningful for bytes the decoder accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Encoding {
    pub(crate) map: Map,
    /// The opcode byte within its map (for VEX/EVEX: the prefix byte).
    pub(crate) opcode: u8,
    /// Offset of the first opcode byte (after legacy prefixes and REX).
    pub(crate) opcode_at: usize,
    /// A 0x2e (CS override / branch-not-taken hint) prefix is present.
    pub(crate) cs_prefix: bool,
    /// A 0x67 (address-size) prefix is present.
    pub(crate) address_size_prefix: bool,
}

impl Encoding {
    /// Skip legacy prefixes and REX and find the opcode map. `None` if the
    /// bytes end first.
    pub(crate) fn scan(bytes: &[u8]) -> Option<Self> {
        let mut i = 0;
        let mut cs_prefix = false;
        let mut address_size_prefix = false;
        loop {
            match *bytes.get(i)? {
                0x2e => cs_prefix = true,
                0x67 => address_size_prefix = true,
                0x26 | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0xf0 | 0xf2 | 0xf3 => {}
                0x40..=0x4f => {} // REX (ignored by the CPU if a legacy prefix follows)
                _ => break,
            }
            i += 1;
        }
        let first = bytes[i];
        let (map, opcode) = match first {
            0xc4 | 0xc5 => (Map::Vex, first),
            0x62 => (Map::Evex, first),
            0x0f => match *bytes.get(i + 1)? {
                0x38 => (Map::Three38, *bytes.get(i + 2)?),
                0x3a => (Map::Three3A, *bytes.get(i + 2)?),
                0x0f => (Map::Amd3DNow, 0x0f),
                b => (Map::Two, b),
            },
            b => (Map::One, b),
        };
        Some(Self {
            map,
            opcode,
            opcode_at: i,
            cs_prefix,
            address_size_prefix,
        })
    }

    /// The byte after a one- or two-byte opcode: its ModRM when it has one.
    pub(crate) fn byte_after_opcode(&self, bytes: &[u8]) -> Option<u8> {
        let at = match self.map {
            Map::One => self.opcode_at + 1,
            Map::Two => self.opcode_at + 2,
            _ => return None,
        };
        bytes.get(at).copied()
    }
}

/// A rule for a range of one-byte opcodes.
#[derive(Clone, Copy)]
enum Rule {
    /// Never boosted.
    Never,
    /// Boosted unless ModRM.reg is this value.
    RegNot(u8),
    /// Boosted only when ModRM.reg is one of these.
    RegIn(&'static [u8]),
}

/// One-byte opcodes that are not (always) boostable: `(first, last, rule)`.
/// Every other one-byte opcode is boostable. Rows for instructions we
/// simulate or refuse anyway are kept so the table reads like Linux's.
static ONE_BYTE: &[(u8, u8, Rule)] = &[
    (0x70, 0x7f, Rule::Never),             // jcc rel8 (simulated)
    (0x9a, 0x9a, Rule::Never),             // call far (invalid in 64-bit mode)
    (0xc0, 0xc1, Rule::RegNot(0b110)),     // group 2: /6 is SAL on AMD, reserved on Intel
    (0xcc, 0xce, Rule::Never),             // int3, int n, into (refused)
    (0xd0, 0xd3, Rule::RegNot(0b110)),     // group 2 again
    (0xd6, 0xd6, Rule::Never),             // undefined (salc)
    (0xd8, 0xdf, Rule::Never),             // x87 escapes
    (0xe0, 0xe3, Rule::Never),             // loop*, jrcxz (simulated)
    (0xe8, 0xe9, Rule::Never),             // call/jmp rel32 (simulated)
    (0xeb, 0xeb, Rule::Never),             // jmp rel8 (simulated)
    (0xf0, 0xf4, Rule::Never),             // lock/rep prefixes as opcodes, int1, hlt
    (0xf6, 0xf7, Rule::RegNot(0b001)),     // group 3: /1 is TEST on AMD, reserved on Intel
    (0xfe, 0xfe, Rule::RegIn(&[0, 1])),    // group 4: only inc and dec
    (0xff, 0xff, Rule::RegIn(&[0, 1, 4])), // group 5: inc, dec, jmp (call and push are not)
];

/// Linux's `W()` rows: one 16-bit row per high nibble, bit `n` for low nibble `n`.
const fn row(bits: [u8; 16]) -> u16 {
    let mut r = 0u16;
    let mut i = 0;
    while i < 16 {
        r |= (bits[i] as u16) << i;
        i += 1;
    }
    r
}

/// Two-byte opcodes (`0f xx`) that are boostable, copied from Linux's
/// `twobyte_is_boostable`.
static TWO_BYTE: [u16; 16] = [
    //   0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f
    row([0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0]), // 00
    row([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), // 10
    row([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), // 20
    row([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), // 30
    row([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]), // 40
    row([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), // 50
    row([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1]), // 60
    row([0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1]), // 70
    row([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), // 80
    row([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]), // 90
    row([1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1]), // a0
    row([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1]), // b0
    row([1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]), // c0
    row([0, 1, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1]), // d0
    row([0, 1, 1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1]), // e0
    row([0, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0]), // f0
];

/// Whether the stepped instruction `enc` (whose ModRM byte, when it has one,
/// is `modrm`) may be boosted.
pub(crate) fn can_boost(enc: &Encoding, modrm: Option<u8>) -> bool {
    // Linux: "Can't boost Address-size override prefix and CS override prefix".
    if enc.cs_prefix || enc.address_size_prefix {
        return false;
    }
    match enc.map {
        Map::One => one_byte(enc.opcode, modrm),
        Map::Two => TWO_BYTE[(enc.opcode >> 4) as usize] & (1 << (enc.opcode & 0xf)) != 0,
        // Linux boosts only one- and two-byte opcodes.
        Map::Three38 | Map::Three3A | Map::Amd3DNow => false,
        // Linux's decoder gives VEX/EVEX instructions a one-byte opcode and
        // boosts almost all of them; they are SIMD computations that never
        // touch rip or rflags.IF/TF, so we boost them all.
        Map::Vex | Map::Evex => true,
    }
}

fn one_byte(opcode: u8, modrm: Option<u8>) -> bool {
    let reg = modrm.map(|m| (m >> 3) & 7);
    match ONE_BYTE
        .iter()
        .find(|(first, last, _)| (*first..=*last).contains(&opcode))
    {
        None => true,
        Some((_, _, Rule::Never)) => false,
        Some((_, _, Rule::RegNot(r))) => reg.is_some_and(|g| g != *r),
        Some((_, _, Rule::RegIn(set))) => reg.is_some_and(|g| set.contains(&g)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(map: Map, opcode: u8) -> Encoding {
        Encoding {
            map,
            opcode,
            opcode_at: 0,
            cs_prefix: false,
            address_size_prefix: false,
        }
    }

    #[test]
    fn two_byte_rows_match_linux_spot_checks() {
        // boostable: cmovcc, setcc, rdtsc, nop hint 0f 1f, bswap, xadd
        for op in [
            0x40, 0x4f, 0x90, 0x9f, 0x31, 0x1f, 0xc8, 0xcf, 0xc0, 0xc1, 0xaf,
        ] {
            assert!(can_boost(&enc(Map::Two, op), None), "0f {op:02x}");
        }
        // not: group 6/7, syscall, ud2, SSE moves, jcc rel32, cpuid, wrmsr,
        // group 15, popcnt, ud1, group 8, cmpxchg8b group, ud0
        for op in [
            0x00, 0x01, 0x05, 0x0b, 0x10, 0x28, 0x80, 0x8f, 0xa2, 0x30, 0xae, 0xb8, 0xb9, 0xba,
            0xc7, 0xff,
        ] {
            assert!(!can_boost(&enc(Map::Two, op), None), "0f {op:02x}");
        }
        let count: u32 = TWO_BYTE.iter().map(|r| r.count_ones()).sum();
        assert_eq!(
            count, 126,
            "Linux's bitmap has 126 boostable two-byte opcodes"
        );
    }

    #[test]
    fn one_byte_rules() {
        assert!(can_boost(&enc(Map::One, 0x89), Some(0xc0))); // mov
        assert!(can_boost(&enc(Map::One, 0x9c), None)); // pushf (user mode)
        assert!(!can_boost(&enc(Map::One, 0xd9), Some(0xc0))); // x87
        assert!(can_boost(&enc(Map::One, 0xc1), Some(0xe0))); // shl /4
        assert!(!can_boost(&enc(Map::One, 0xc1), Some(0xf0))); // /6 (sal alias)
        assert!(can_boost(&enc(Map::One, 0xf7), Some(0xd8))); // neg /3
        assert!(!can_boost(&enc(Map::One, 0xf7), Some(0xc8))); // /1 (test alias)
        assert!(can_boost(&enc(Map::One, 0xfe), Some(0xc0))); // inc
        assert!(!can_boost(&enc(Map::One, 0xfe), Some(0xd0))); // /2 invalid
        assert!(can_boost(&enc(Map::One, 0xff), Some(0x00))); // inc [rax]
        assert!(can_boost(&enc(Map::One, 0xff), Some(0x08))); // dec [rax]
        assert!(!can_boost(&enc(Map::One, 0xff), Some(0x30))); // push [rax]
        assert!(!can_boost(&enc(Map::Three38, 0x00), Some(0xc0)));
        assert!(can_boost(&enc(Map::Vex, 0x6f), Some(0x05)));
    }

    #[test]
    fn cs_and_address_size_prefixes_prevent_boosting() {
        let mut e = enc(Map::One, 0x89);
        e.cs_prefix = true;
        assert!(!can_boost(&e, Some(0xc0)));
        let mut e = enc(Map::One, 0x89);
        e.address_size_prefix = true;
        assert!(!can_boost(&e, Some(0x00)));
    }
}
