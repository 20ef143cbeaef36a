//! Control and status registers this kernel uses (LoongArch Reference
//! Manual vol. 1, chapter 7), and reading/writing them.

/// Current mode: PLV, IE, DA, PG.
pub const CRMD: u32 = 0x0;
/// Pre-exception mode: PPLV, PIE.
pub const PRMD: u32 = 0x1;
/// Extended unit enable: FPE.
pub const EUEN: u32 = 0x2;
/// Exception configuration: interrupt enables, vector spacing.
pub const ECFG: u32 = 0x4;
/// Exception status: Ecode, EsubCode.
pub const ESTAT: u32 = 0x5;
/// Exception return address.
pub const ERA: u32 = 0x6;
/// Bad virtual address.
pub const BADV: u32 = 0x7;
/// Exception entry (4 KiB aligned).
pub const EENTRY: u32 = 0xc;
/// CPU number.
pub const CPUID: u32 = 0x20;
/// Scratch: t0 during the trap entry.
pub const SAVE0: u32 = 0x30;
/// Scratch: the kernel stack a trap from PLV3 starts on.
pub const SAVE1: u32 = 0x31;
/// Scratch: the user stack pointer during the trap entry.
pub const SAVE2: u32 = 0x32;
/// TLB refill exception entry.
pub const TLBRENTRY: u32 = 0x88;
/// Direct mapping window 0.
pub const DMW0: u32 = 0x180;
/// Direct mapping window 1.
pub const DMW1: u32 = 0x181;

/// `CRMD`/`PRMD` privilege level field.
pub const PLV_MASK: usize = 0b11;
/// `CRMD.PG`: paging (mapped) mode.
pub const CRMD_PG: usize = 1 << 4;

/// Mapping windows (vol. 1 §5.2.1): `VSEG` in bits 63:60, `PLV0`..`PLV3` in
/// bits 0..3, `MAT` in bits 5:4 (0 strongly-ordered uncached, 1 coherent
/// cached).
///
/// DMW0: the low window (VSEG 0) one to one, cached, for PLV0 and PLV3, so
/// kernel and user code run at their link addresses.
pub const DMW0_IDENTITY: usize = 0x19;
/// DMW1: VSEG 8 (`0x8000_...`) uncached, PLV0 only: device registers.
pub const DMW1_UNCACHED: usize = 0x8000_0000_0000_0001;
/// Where DMW1 puts physical address 0.
pub const UNCACHED_BASE: usize = 0x8000_0000_0000_0000;

/// `ESTAT.Ecode` (bits 21:16).
pub const fn ecode(estat: usize) -> usize {
    (estat >> 16) & 0x3f
}

/// `ESTAT.EsubCode` (bits 30:22).
pub const fn esubcode(estat: usize) -> usize {
    (estat >> 22) & 0x1ff
}

/// Read CSR `N`.
#[inline(always)]
pub fn read<const N: u32>() -> usize {
    let v: usize;
    // SAFETY: `csrrd` reads a control register without side effects on the
    // CSRs this kernel names; it touches no memory.
    unsafe {
        core::arch::asm!("csrrd {v}, {n}", v = out(reg) v, n = const N, options(nomem, nostack))
    };
    v
}

/// Write CSR `N`.
///
/// # Safety
/// Changing a CSR changes how the CPU runs and traps: the caller knows the
/// new value is right for this point of the boot.
#[inline(always)]
pub unsafe fn write<const N: u32>(value: usize) {
    // SAFETY: the caller vouches for the value (see `# Safety`).
    unsafe {
        core::arch::asm!("csrwr {v}, {n}", v = inout(reg) value => _, n = const N, options(nostack))
    };
}

/// The number of the CPU running this code.
#[inline(always)]
pub fn cpu_id() -> usize {
    read::<CPUID>() & 0x1ff
}

/// Make earlier stores visible to instruction fetch on this CPU
/// (`dbar 0` orders the stores, `ibar 0` discards stale fetched
/// instructions; vol. 1 §2.2.8).
#[inline(always)]
pub fn sync_instruction_fetch() {
    // SAFETY: barriers only; they touch no register or memory contents.
    unsafe { core::arch::asm!("dbar 0", "ibar 0", options(nostack)) };
}
