//! The checks the kernel runs, one line each.
//!
//! Every check mirrors a host test of `examples/custom-arch` on real
//! emulation: test functions are real RV64GC code (`global_asm!`), probes
//! hit real `ebreak`s, steps run in real slots.

pub mod regfile;
pub mod report;
pub mod seen;

mod events;
mod fault;
mod manage;
mod optimized;
mod refused;
mod returns;
mod simulated;
mod stepped;
mod sweep;
mod system;
mod two_harts;
mod user_mode;

use probe_core::{Kprobe, Space};
use probe_hal_riscv64::decode::{self, Verdict};

use self::regfile::RegFile;
use self::report::{ensure, ensure_eq, note, Outcome};
use self::seen::{post_count, pre_count, Seen};
use super::services::ENGINE;
use super::symbols::{self, TestFn};
use super::{slots, user};

/// Longest test function the helpers handle.
pub const MAX_FN_LEN: usize = 256;

/// Run every check.
pub fn run_all() {
    // First: the probe-events trace is what a newcomer sees first.
    events::run();
    simulated::run();
    stepped::run();
    system::run();
    returns::run();
    manage::run();
    refused::run();
    sweep::run();
    fault::run();
    user_mode::run();
    two_harts::run();
    optimized::run();
}

/// Offsets of the instruction boundaries of `f`, walking forward with the
/// backend's length decoder.
pub fn boundaries(f: &TestFn) -> heapless::Vec<usize, 128> {
    let bytes = f.bytes();
    let mut out = heapless::Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let _ = out.push(at);
        at += decode::insn_len(&bytes[at..]).unwrap_or(2);
    }
    out
}

/// The decoder's decision about the instruction at `addr`.
pub fn decision_at(addr: usize) -> Option<decode::Decision> {
    let mut b = [0u8; 4];
    for (i, byte) in b.iter_mut().enumerate() {
        // SAFETY: test functions lie in RAM S-mode may read, and are followed
        // by more code or data (reading 2 bytes past a final 16-bit
        // instruction stays in RAM).
        *byte = unsafe { core::ptr::read_volatile((addr + i) as *const u8) };
    }
    decode::decode_insn(&b)
}

/// The mnemonic of the instruction at `addr`.
pub fn mnemonic_at(addr: usize) -> &'static str {
    decision_at(addr).map_or("?", |d| d.mnemonic)
}

/// A copy of a function's bytes.
pub fn snapshot(f: &TestFn) -> heapless::Vec<u8, MAX_FN_LEN> {
    let mut v = heapless::Vec::new();
    let _ = v.extend_from_slice(&f.bytes()[..f.size().min(MAX_FN_LEN)]);
    v
}

/// One probed-call case: call `func(args)` (result `want`) with a probe on
/// each of its instructions in turn.
pub struct Case {
    /// Check name.
    pub label: &'static str,
    /// Test function.
    pub func: &'static str,
    /// Arguments (a0, a1, …).
    pub args: &'static [usize],
    /// Its result (a0) unprobed.
    pub want: usize,
    /// Mnemonic of the instruction the case is about (its first
    /// occurrence).
    pub key: &'static str,
    /// How often that instruction runs in one call.
    pub key_hits: usize,
    /// Whether the backend simulates it (else it is stepped out of line).
    pub simulated: bool,
}

static SEEN: Seen = Seen::new();

/// The key instruction of `case` in `f`: its offset, checked to be what
/// the case says (mnemonic and handling).
fn key_offset(case: &Case, f: &TestFn) -> Result<usize, report::Fail> {
    let Some(off) = boundaries(f)
        .into_iter()
        .find(|&o| mnemonic_at(f.start + o) == case.key)
    else {
        return Err(report::Fail::new(format_args!(
            "no `{}` in {} (the assembler chose another encoding)",
            case.key, case.func
        )));
    };
    let simulated = matches!(
        decision_at(f.start + off).map(|d| d.verdict),
        Some(Verdict::Simulate(_))
    );
    ensure_eq!(simulated, case.simulated, "`{}` is simulated", case.key);
    Ok(off)
}

/// Probe every instruction of a kernel function in turn (pre- and
/// post-handler); each probed call must leave exactly the registers of the
/// unprobed call, and the key instruction must hit `key_hits` times.
pub fn probe_each_kernel_insn(case: &Case) -> Outcome {
    let f = symbols::get(case.func);
    let input = RegFile::seeded(case.args);
    let want = regfile::call(f.start, &input);
    ensure_eq!(want.a0(), case.want, "unprobed {}", case.func);
    let key = key_offset(case, &f)?;
    let before = snapshot(&f);
    let offsets = boundaries(&f);
    for &off in &offsets {
        let addr = f.start + off;
        SEEN.reset();
        let id = ENGINE
            .register_kprobe(&Kprobe::at(addr).pre(pre_count).post(post_count).data(&SEEN))?;
        let got = regfile::call(f.start, &input);
        ENGINE.unregister(id)?;
        if let Some((r, g, w)) = got.first_difference(&want) {
            return Err(report::Fail::new(format_args!(
                "probe at +{off:#x} (`{}`): x{r} = {g:#x}, unprobed {w:#x}",
                mnemonic_at(addr)
            )));
        }
        ensure_eq!(SEEN.post(), SEEN.pre(), "post-handler runs at +{off:#x}");
        ensure_eq!(
            SEEN.bad(),
            0,
            "handler runs with a wrong pc, mode or hart at +{off:#x}"
        );
        if off == key {
            ensure_eq!(
                SEEN.pre(),
                case.key_hits,
                "hits on `{}` at +{off:#x}",
                case.key
            );
        }
    }
    ensure!(
        snapshot(&f) == before,
        "{}: bytes differ after unregistering",
        case.func
    );
    ensure_eq!(ENGINE.slot_usage(), (0, 0), "slots and slot pages held");
    note!(
        "{} probe points, `{}` at +{:#x} hit {}x, all registers as unprobed",
        offsets.len(),
        case.key,
        key,
        case.key_hits
    )
}

/// Probe every instruction of a U-mode function in turn (uprobes with pre-
/// and post-handlers); each probed run must return the unprobed result.
pub fn probe_each_user_insn(case: &Case) -> Outcome {
    let f = symbols::get(case.func);
    ensure!(f.is_user(), "{} is not in the user region", case.func);
    let (a0, a1) = (
        case.args.first().copied().unwrap_or(0),
        case.args.get(1).copied().unwrap_or(0),
    );
    let want = user::run(f.start, a0, a1);
    ensure_eq!(want, case.want, "unprobed U-mode {}", case.func);
    let key = key_offset(case, &f)?;
    let before = snapshot(&f);
    let offsets = boundaries(&f);
    let space = Space::User(user::ASID);
    for &off in &offsets {
        let addr = f.start + off;
        SEEN.reset();
        let id = ENGINE.register_kprobe(
            &Kprobe::at(addr)
                .in_space(space)
                .pre(pre_count)
                .post(post_count)
                .data(&SEEN),
        )?;
        let got = user::run(f.start, a0, a1);
        ENGINE.unregister(id)?;
        ensure_eq!(
            got,
            want,
            "a0 with a uprobe at +{off:#x} (`{}`)",
            mnemonic_at(addr)
        );
        ensure_eq!(SEEN.post(), SEEN.pre(), "post-handler runs at +{off:#x}");
        ensure_eq!(
            SEEN.bad(),
            0,
            "handler runs with a wrong pc, mode or hart at +{off:#x}"
        );
        if off == key {
            ensure_eq!(
                SEEN.pre(),
                case.key_hits,
                "hits on `{}` at +{off:#x}",
                case.key
            );
        }
    }
    ensure!(
        snapshot(&f) == before,
        "{}: bytes differ after unregistering",
        case.func
    );
    ensure_eq!(ENGINE.slot_usage(), (0, 0), "slots and slot pages held");
    ensure_eq!(slots::USER.in_use(), 0, "user slot pages held");
    note!(
        "{} uprobe points in U-mode, `{}` at +{:#x} hit {}x, results as unprobed",
        offsets.len(),
        case.key,
        key,
        case.key_hits
    )
}
