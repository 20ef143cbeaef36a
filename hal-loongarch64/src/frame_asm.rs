//! Assembly shared by every code path that builds a [`crate::PtRegs`] on the
//! stack: this crate's return trampoline and a kernel's trap entry.

/// Assembly (one string, for `asm!`/`global_asm!`) that reloads r1, r2 and
/// r4–r31 from a [`crate::PtRegs`] at `$sp` (Linux layout: `regs[n]` at
/// `8 * n`). r0 is zero and r3 is the stack pointer itself: the caller
/// restores it last.
///
/// ```text
/// core::arch::global_asm!("…", probe_hal_loongarch64::restore_gprs_from_sp!(), "ld.d $sp, $sp, 24", "ertn");
/// ```
#[macro_export]
macro_rules! restore_gprs_from_sp {
    () => {
        concat!(
            "ld.d $r1, $sp, 8\n",
            "ld.d $r2, $sp, 16\n",
            "ld.d $r4, $sp, 32\n",
            "ld.d $r5, $sp, 40\n",
            "ld.d $r6, $sp, 48\n",
            "ld.d $r7, $sp, 56\n",
            "ld.d $r8, $sp, 64\n",
            "ld.d $r9, $sp, 72\n",
            "ld.d $r10, $sp, 80\n",
            "ld.d $r11, $sp, 88\n",
            "ld.d $r12, $sp, 96\n",
            "ld.d $r13, $sp, 104\n",
            "ld.d $r14, $sp, 112\n",
            "ld.d $r15, $sp, 120\n",
            "ld.d $r16, $sp, 128\n",
            "ld.d $r17, $sp, 136\n",
            "ld.d $r18, $sp, 144\n",
            "ld.d $r19, $sp, 152\n",
            "ld.d $r20, $sp, 160\n",
            "ld.d $r21, $sp, 168\n",
            "ld.d $r22, $sp, 176\n",
            "ld.d $r23, $sp, 184\n",
            "ld.d $r24, $sp, 192\n",
            "ld.d $r25, $sp, 200\n",
            "ld.d $r26, $sp, 208\n",
            "ld.d $r27, $sp, 216\n",
            "ld.d $r28, $sp, 224\n",
            "ld.d $r29, $sp, 232\n",
            "ld.d $r30, $sp, 240\n",
            "ld.d $r31, $sp, 248",
        )
    };
}
