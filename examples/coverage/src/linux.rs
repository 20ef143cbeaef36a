//! What Linux's rules refuse, where no published figure exists to hold our
//! backend against: arm64 (`arch/arm64/kernel/probes/decode-insn.c`,
//! `aarch64_insn_is_steppable` and `arm_probe_decode_insn`, with the
//! masks of `arch/arm64/include/asm/insn.h` as of Linux 6.x, including
//! the steppable-hint list and the MOPS refusal), applied to each word.
//! The exclusive-monitor windows are Linux's rule too; they are counted
//! from our `check_sequence`, which implements the same look-back.

fn is(word: u32, mask: u32, bits: u32) -> bool {
    word & mask == bits
}

/// Whether Linux arm64 refuses to probe the word (neither steps nor
/// simulates it).
pub fn aarch64_refuses(bytes: &[u8]) -> bool {
    let Some(b) = bytes.get(..4) else {
        return true;
    };
    let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    // What arm_probe_decode_insn simulates when the word is not steppable.
    let simulated = is(w, 0xff00_0010, 0x5400_0000) // b.cond
        || is(w, 0x7e00_0000, 0x3400_0000) // cbz, cbnz
        || is(w, 0x7e00_0000, 0x3600_0000) // tbz, tbnz
        || is(w, 0x1f00_0000, 0x1000_0000) // adr, adrp
        || is(w, 0x7c00_0000, 0x1400_0000) // b, bl
        || is(w, 0xffff_fc1f, 0xd61f_0000) // br
        || is(w, 0xffff_fc1f, 0xd63f_0000) // blr
        || is(w, 0xffff_fc1f, 0xd65f_0000) // ret
        || is(w, 0xbf00_0000, 0x1800_0000) // ldr (literal)
        || is(w, 0xff00_0000, 0x9800_0000); // ldrsw (literal)
    !steppable(w) && !simulated
}

fn steppable(w: u32) -> bool {
    // AARCH64_INSN_CLS_BR_SYS: op0 = 101x.
    if (w >> 26) & 0x7 == 0b101 {
        let branch = is(w, 0x7c00_0000, 0x1400_0000) // b, bl
            || is(w, 0x7e00_0000, 0x3400_0000) // cbz, cbnz
            || is(w, 0x7e00_0000, 0x3600_0000) // tbz, tbnz
            || is(w, 0xff00_0010, 0x5400_0000) // b.cond
            || is(w, 0xff9f_fc1f, 0xd61f_0000) // br, blr, ret
            || is(w, 0xfeff_f800, 0xd61f_0800) // braa, brab, braaz, brabz
            || is(w, 0xfeff_f800, 0xd63f_0800) // blraa, blrab, blraaz, blrabz
            || is(w, 0xffff_fbff, 0xd65f_0bff) // retaa, retab
            || is(w, 0xffff_ffff, 0xd69f_03e0) // eret
            || is(w, 0xffff_fbff, 0xd69f_0bff); // eretaa, eretab
        let msr = is(w, 0xfff8_f01f, 0xd500_401f) || is(w, 0xfff0_0000, 0xd510_0000);
        let exception = is(w, 0xff00_0000, 0xd400_0000);
        if branch || msr || exception {
            return false;
        }
        if is(w, 0xfff0_0000, 0xd530_0000) {
            // mrs: all but DAIF.
            return (w & 0x1f_ffe0) >> 5 != 0xda11;
        }
        if is(w, 0xffff_f01f, 0xd503_201f) {
            // hint: nop, xpaclri, pacia1716, pacib1716, paciaz, paciasp,
            // pacibz, pacibsp, bti (all forms).
            let n = (w >> 5) & 0x7f;
            return matches!(n, 0 | 7 | 8 | 10 | 24 | 25 | 26 | 27 | 32 | 34 | 36 | 38);
        }
        return true;
    }
    let literal = is(w, 0xbf00_0000, 0x1800_0000) // ldr (literal)
        || is(w, 0xff00_0000, 0x9800_0000) // ldrsw (literal)
        || is(w, 0x1f00_0000, 0x1000_0000) // adr, adrp
        || is(w, 0xff00_0000, 0xd800_0000); // prfm (literal)
    let exclusive = is(w, 0x3f80_0000, 0x0800_0000);
    let mops = is(w, 0x3b20_0c00, 0x1900_0400);
    !(literal || exclusive || mops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuses(w: u32) -> bool {
        aarch64_refuses(&w.to_le_bytes())
    }

    #[test]
    fn linux_arm64_rules() {
        assert!(!refuses(0xd503_201f)); // nop
        assert!(!refuses(0xd503_233f)); // paciasp
        assert!(refuses(0xd503_23bf)); // autiasp
        assert!(refuses(0xd400_0001)); // svc #0
        assert!(refuses(0xd420_0000)); // brk #0
        assert!(!refuses(0x9400_0000)); // bl: simulated
        assert!(!refuses(0xd65f_03c0)); // ret: simulated
        assert!(refuses(0xd65f_0bff)); // retaa
        assert!(refuses(0x885f_7c40)); // ldxr w0, [x2]
        assert!(!refuses(0x88df_fc40)); // ldar w0, [x2]: stepped
        assert!(refuses(0xd800_0000)); // prfm (literal)
        assert!(!refuses(0x5800_0000)); // ldr x0, literal: simulated
        assert!(refuses(0xd53b_4220)); // mrs x0, daif
        assert!(!refuses(0xd53b_d040)); // mrs x0, tpidr_el0
        assert!(refuses(0xd51b_4220)); // msr daif, x0
        assert!(!refuses(0x0000_0000)); // udf #0: stepped (raises in the slot)
        assert!(!refuses(0x0420_e3e7)); // cntb x7 (SVE): stepped
    }
}
