//! Which instructions read or write the pc, decided from the disassembler's
//! text alone (never from our decoders), for the rule that none of them is
//! stepped out of line unchanged.

/// How an instruction uses the pc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcUse {
    /// Not at all.
    None,
    /// Reads it as an operand: a pc-relative address, a relative branch
    /// or call, a literal load.
    Relative,
    /// Writes it otherwise (indirect branch, call or return, exception
    /// return, trap): stepping it would never reach the step-end marker,
    /// or run from the slot's address.
    Transfer,
}

/// The disassembler's text split into mnemonic and operands.
fn split(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once(' ') {
        Some((m, ops)) => (m, ops.trim()),
        None => (text, ""),
    }
}

/// x86_64 (GNU objdump, AT&T syntax): `rip` operands, relative
/// branches, calls, `loop`s and `xbegin`; indirect ones and returns.
pub fn x86_64(text: &str) -> PcUse {
    const PREFIXES: &[&str] = &[
        "bnd", "notrack", "lock", "rep", "repz", "repe", "repnz", "repne", "data16", "data32",
        "addr32", "addr16", "cs", "ds", "es", "ss", "fs", "gs", "rex", "rex.w", "rex.b", "rex.x",
        "rex.r", "rex.wb", "rex.wx", "rex.wr", "rex.rb", "rex.xb", "rex.rx", "rex.wrb", "rex.wxb",
        "rex.wrx", "rex.rxb", "rex.wrxb", "xacquire", "xrelease", "{vex}", "{evex}",
    ];
    let text = text.split('#').next().unwrap_or(text);
    let mut tokens = text.split_whitespace();
    let mut mnemonic = "";
    for t in tokens.by_ref() {
        let lower = t.to_ascii_lowercase();
        if !PREFIXES.contains(&lower.as_str()) {
            mnemonic = t;
            break;
        }
    }
    let ops: Vec<&str> = tokens.collect();
    let ops = ops.join(" ");
    if ops.contains("%rip") || ops.contains("%eip") {
        return PcUse::Relative;
    }
    let m = mnemonic.to_ascii_lowercase();
    let branch =
        m.starts_with('j') || m.starts_with("call") || m.starts_with("loop") || m == "xbegin";
    if branch {
        return if ops.starts_with('*') || m.starts_with("ljmp") {
            PcUse::Transfer
        } else {
            PcUse::Relative
        };
    }
    let transfer = m.starts_with("ret")
        || m.starts_with("lret")
        || m.starts_with("lcall")
        || m.starts_with("iret")
        || m.starts_with("sysret")
        || m.starts_with("sysexit")
        || matches!(
            m.as_str(),
            "syscall" | "sysenter" | "int" | "int3" | "int1" | "icebp" | "into"
        );
    if transfer {
        PcUse::Transfer
    } else {
        PcUse::None
    }
}

/// riscv64 (GNU objdump `-M no-aliases`): `auipc`, `jal`, branches and
/// their compressed forms read the pc; `jalr`, `c.jr`, `c.jalr` write it
/// (and link); traps and trap returns.
pub fn riscv64(text: &str) -> PcUse {
    let (m, _) = split(text);
    match m {
        "auipc" | "jal" | "beq" | "bne" | "blt" | "bge" | "bltu" | "bgeu" | "c.j" | "c.jal"
        | "c.beqz" | "c.bnez" => PcUse::Relative,
        // jalr links pc + 4: reads it too, but its target is a register.
        "jalr" | "c.jr" | "c.jalr" | "ecall" | "ebreak" | "c.ebreak" | "mret" | "sret" | "uret"
        | "dret" => PcUse::Transfer,
        _ => PcUse::None,
    }
}

/// aarch64 (GNU objdump): `adr`, `adrp`, literal loads and prefetches
/// (an operand that is an address, not `[...]`), immediate branches; the
/// register branches, returns, exception generation and returns.
pub fn aarch64(text: &str) -> PcUse {
    let (m, ops) = split(text);
    match m {
        "adr" | "adrp" | "b" | "bl" | "cbz" | "cbnz" | "tbz" | "tbnz" => return PcUse::Relative,
        "br" | "blr" | "ret" | "braa" | "brab" | "braaz" | "brabz" | "blraa" | "blrab"
        | "blraaz" | "blrabz" | "retaa" | "retab" | "eret" | "eretaa" | "eretab" | "svc"
        | "hvc" | "smc" | "brk" | "hlt" | "dcps1" | "dcps2" | "dcps3" | "drps" => {
            return PcUse::Transfer
        }
        _ => {}
    }
    if m.starts_with("b.") || m.starts_with("bc.") {
        return PcUse::Relative;
    }
    if matches!(m, "ldr" | "ldrsw" | "prfm") {
        // The literal form: `ldr x0, 4000 <sym+0x10>`; others use `[...]`.
        if let Some((_, second)) = ops.split_once(',') {
            if !second.trim_start().starts_with('[') {
                return PcUse::Relative;
            }
        }
    }
    PcUse::None
}

/// loongarch64 (nightly llvm-objdump): the `pcadd*`/`pcalau12i` family,
/// branches (with LLVM's aliases) read the pc; `jirl` (and its `jr`,
/// `ret` aliases) writes it; traps and `ertn`.
pub fn loongarch64(text: &str) -> PcUse {
    let (m, _) = split(text);
    match m {
        "pcaddi" | "pcalau12i" | "pcaddu12i" | "pcaddu18i" | "b" | "bl" | "beq" | "bne" | "blt"
        | "bge" | "bltu" | "bgeu" | "beqz" | "bnez" | "bceqz" | "bcnez" | "bgt" | "ble"
        | "bgtu" | "bleu" | "bltz" | "bgtz" | "blez" | "bgez" => PcUse::Relative,
        "jirl" | "jr" | "ret" | "ertn" | "syscall" | "break" | "dbcl" => PcUse::Transfer,
        _ => PcUse::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_64_classes() {
        assert_eq!(x86_64("lea 0x0(%rip),%rdx # 26 <x+0x26>"), PcUse::Relative);
        assert_eq!(x86_64("jne 1234 <f+0x4>"), PcUse::Relative);
        assert_eq!(x86_64("bnd jmp 1234 <f>"), PcUse::Relative);
        assert_eq!(x86_64("call *0x10(%rax)"), PcUse::Transfer);
        assert_eq!(x86_64("notrack jmp *%rax"), PcUse::Transfer);
        assert_eq!(x86_64("ret"), PcUse::Transfer);
        assert_eq!(x86_64("mov %rsp,%rbp"), PcUse::None);
        assert_eq!(x86_64("nopw 0x0(%rax,%rax,1)"), PcUse::None);
    }

    #[test]
    fn riscv64_classes() {
        assert_eq!(riscv64("auipc a0,0x0"), PcUse::Relative);
        assert_eq!(riscv64("c.bnez a0,10 <f+0x10>"), PcUse::Relative);
        assert_eq!(riscv64("jalr zero,0(ra)"), PcUse::Transfer);
        assert_eq!(riscv64("addi sp,sp,-16"), PcUse::None);
    }

    #[test]
    fn aarch64_classes() {
        assert_eq!(aarch64("ldr x0, 4000 <f+0x10>"), PcUse::Relative);
        assert_eq!(aarch64("ldr x0, [x1, #8]"), PcUse::None);
        assert_eq!(aarch64("b.ne 40 <f+0x40> // b.any"), PcUse::Relative);
        assert_eq!(aarch64("adrp x0, 0 <f>"), PcUse::Relative);
        assert_eq!(aarch64("ret"), PcUse::Transfer);
        assert_eq!(aarch64("bl 0 <g>"), PcUse::Relative);
        assert_eq!(aarch64("blr x8"), PcUse::Transfer);
    }

    #[test]
    fn loongarch64_classes() {
        assert_eq!(loongarch64("pcalau12i $a0, 0"), PcUse::Relative);
        assert_eq!(
            loongarch64("bgeu $a7, $a6, 760 <.L0 +0xa8>"),
            PcUse::Relative
        );
        assert_eq!(loongarch64("jirl $zero, $ra, 0"), PcUse::Transfer);
        assert_eq!(loongarch64("addi.d $sp, $sp, -16"), PcUse::None);
    }
}
