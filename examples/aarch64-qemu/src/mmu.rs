//! The MMU: one identity map through `TTBR0_EL1` (39-bit virtual
//! addresses, 4 KiB granule, the walk starting at level 1).
//!
//! - 0x0000_0000–0x3fff_ffff (level-1 block): device memory (UART, GIC,
//!   PSCI…), EL1 only, never executable;
//! - 0x4000_0000–0x4fff_ffff (2 MiB level-2 blocks): normal write-back
//!   memory, inner shareable (exclusives need it), EL1 read/write and
//!   executable, no EL0 access — except the one block of the user region
//!   (`USER_BASE`), which EL0 may read, write and execute (so EL1 may not
//!   execute it);
//! - the block of `guarded_text` is a guarded page (`GP` = 1, FEAT_BTI):
//!   an indirect branch into it must land on a `bti`/`paciasp`, so the
//!   checks there prove that a `brk` on a landing pad and the steps and
//!   return probes around it respect BTI;
//! - everything else faults (a translation fault the checks provoke).
//!
//! `SCTLR_EL1.SPAN` stays set, so taking an exception never sets
//! `PSTATE.PAN` and the trap handlers reach EL0 pages (the uprobe machinery
//! reads and writes user text and stacks).

use core::arch::asm;

#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut L1: Table = Table([0; 512]);
static mut L2: Table = Table([0; 512]);

/// Where the user region starts (one 2 MiB block; see `link.ld`).
pub const USER_BASE: usize = 0x4200_0000;
const RAM: usize = 0x4000_0000;
const RAM_MAPPED: usize = 256 << 20;
const BLOCK_2M: usize = 2 << 20;

// Descriptor bits (Arm ARM D8.3).
const VALID_BLOCK: u64 = 0b01;
const TABLE: u64 = 0b11;
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;
const AP_EL0_RW: u64 = 1 << 6;
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const GP: u64 = 1 << 50;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

/// MAIR: attribute 0 Device-nGnRnE, attribute 1 Normal write-back.
const MAIR: u64 = 0xff << 8;
/// TCR: T0SZ = 25, inner/outer write-back walks, inner shareable, 4 KiB
/// granule, TTBR1 walks disabled (EPD1), 40-bit physical addresses.
const TCR: u64 = 25 | 1 << 8 | 1 << 10 | 3 << 12 | 1 << 23 | 2 << 32;
/// SCTLR bits set: M (MMU), C, I (caches), SPAN, and EnIA (pointer
/// authentication with key A: `paciasp`/`autiasp` really sign and check).
const SCTLR_SET: u64 = 1 | 1 << 2 | 1 << 12 | 1 << 23 | 1 << 31;
/// SCTLR bits cleared: A (alignment checks), WXN.
const SCTLR_CLEAR: u64 = 1 << 1 | 1 << 19;

/// Build the tables (CPU 0, once, with the MMU still off).
pub fn build() {
    // SAFETY: CPU 0 builds the tables before any CPU uses them; nothing
    // else refers to them yet.
    unsafe {
        let l1 = &mut *core::ptr::addr_of_mut!(L1);
        let l2 = &mut *core::ptr::addr_of_mut!(L2);
        l1.0[0] = ATTR_DEVICE | AF | PXN | UXN | VALID_BLOCK;
        l1.0[1] = core::ptr::addr_of!(L2) as u64 | TABLE;
        let guarded = crate::kernel::linker_addr!(__guarded_start) & !(BLOCK_2M - 1);
        for i in 0..RAM_MAPPED / BLOCK_2M {
            let pa = (RAM + i * BLOCK_2M) as u64;
            let user = pa as usize == USER_BASE;
            let gp = if pa as usize == guarded { GP } else { 0 };
            l2.0[i] = pa
                | ATTR_NORMAL
                | SH_INNER
                | AF
                | VALID_BLOCK
                | gp
                | if user { AP_EL0_RW | PXN } else { UXN };
        }
    }
}

/// Turn the MMU and caches on for this CPU with the tables [`build`] made.
pub fn enable() {
    let ttbr = core::ptr::addr_of!(L1) as u64;
    // SAFETY: the identity map covers the running code, its stack and
    // data, so execution continues at the same addresses; the barriers
    // order the register writes and the TLB invalidation before the MMU
    // comes on.
    unsafe {
        asm!(
            "dsb sy",
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            "mrs {tmp}, sctlr_el1",
            "orr {tmp}, {tmp}, {set}",
            "bic {tmp}, {tmp}, {clear}",
            "msr sctlr_el1, {tmp}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) TCR,
            ttbr = in(reg) ttbr,
            set = in(reg) SCTLR_SET,
            clear = in(reg) SCTLR_CLEAR,
            tmp = out(reg) _,
            options(nostack)
        );
    }
}
