//! A VEX instruction with a rip-relative operand, stepped out of line with
//! its displacement fixed up for the slot: `vpcmpeqb ymm1, ymm0,
//! [rip + x]` (AVX2; skipped on a CPU without it). Probed with a
//! pre-handler alone (boosted: one SIGTRAP per hit) and with a
//! post-handler too (two), the result must be the unprobed one.

use core::arch::global_asm;

use probe_hal::Handling;
use x86_64_linux::call::call;
use x86_64_linux::recorder::Recorder;
use x86_64_linux::report::Report;
use x86_64_linux::{ensure, ensure_eq};

use super::{decode, kprobe, CheckResult, Probes};
use crate::{signals, ENGINE};

global_asm!(
    r#"
.pushsection .text.x86_64_linux_vex,"ax",@progbits
.p2align 4
// u32 vx_cmp(): the byte mask of vx_a == vx_b (32 bytes each).
.globl vx_cmp, vx_cmp_site
vx_cmp:
    vmovdqu ymm0, ymmword ptr [rip + vx_a]
vx_cmp_site:
    vpcmpeqb ymm1, ymm0, ymmword ptr [rip + vx_b]
    vpmovmskb eax, ymm1
    vzeroupper
    ret
.popsection
.pushsection .rodata.x86_64_linux_vex,"a",@progbits
.p2align 5
vx_a:
    .byte 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
vx_b:
    .byte 0,255,2,255,4,255,6,255,8,255,10,255,12,255,14,255,16,255,18,255,20,255,22,255,24,255,26,255,28,255,30,255
.popsection
"#
);

extern "C" {
    fn vx_cmp();
    fn vx_cmp_site();
}

/// The even bytes are equal.
const WANT: u64 = 0x5555_5555;

fn invoke() -> u64 {
    // SAFETY: `vx_cmp` follows the System V ABI, takes no argument, reads
    // only its constants and clears the upper ymm state before returning;
    // the caller checked that the CPU has AVX2.
    unsafe { call(vx_cmp as *const () as usize, 0, 0, 0).ret & 0xffff_ffff }
}

fn rip_relative_vex() -> CheckResult {
    if !std::arch::is_x86_feature_detected!("avx2") {
        return Ok("skipped: this CPU has no AVX2".into());
    }
    let site = vx_cmp_site as *const () as usize;
    let d = decode(site)?;
    ensure!(
        matches!(d.handling, Handling::StepOutOfLine { .. }),
        "decoded as {:?}, not stepped",
        d.handling
    );
    ensure_eq!(invoke(), WANT, "unprobed mask");
    for post in [false, true] {
        let what = if post { "pre+post" } else { "pre only" };
        let rec = Recorder::leak();
        let mut probes = Probes::new();
        probes.add("vpcmpeqb", ENGINE.register_kprobe(&kprobe(site, rec, post)))?;
        let traps = signals::traps();
        let got = [invoke(), invoke()];
        let traps = signals::traps() - traps;
        probes.clear()?;
        ensure_eq!(got, [WANT, WANT], "{what}: probed mask");
        ensure_eq!(rec.hits(), 2, "{what}: pre-handler runs");
        ensure_eq!(
            traps,
            if post { 4 } else { 2 },
            "{what}: SIGTRAPs (boosted without a post-handler)"
        );
    }
    Ok(format!(
        "vpcmpeqb ymm1, ymm0, [rip + x] stepped with its displacement fixed up: mask {WANT:#x} as unprobed"
    ))
}

pub(super) fn run(r: &mut Report) {
    r.check(
        "stepped: a VEX instruction with a rip-relative operand (vpcmpeqb ymm, ymm, [rip + x])",
        rip_relative_vex,
    );
}
