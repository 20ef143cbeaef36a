//! One probe per instruction: every simulated instruction (each branch
//! taken and not taken, each pc-relative form with a negative and a
//! positive offset) and a spread of stepped ones. Each case runs the test
//! function unprobed and probed with the same registers and memory and
//! compares everything: all 32 registers after it, the scratch memory, the
//! expected results, how often the handlers ran, the pc they saw, the
//! breakpoint while armed and the original word after unregistering.

use core::cell::UnsafeCell;

use probe_core::Kprobe;
use probe_hal_aarch64::slot::KPROBE_BRK;

use super::handlers::{post_count, pre_count, Seen};
use super::Report;
use crate::kernel::ENGINE;
use crate::runner::{self, Regs};
use crate::testfns::{addr, word_at};

/// Register numbers of the arguments and results.
const A0: usize = 0;
const A1: usize = 1;
const A2: usize = 2;
const A3: usize = 3;
const A4: usize = 4;

/// Where the pc is after the probed instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// At this address.
    At(usize),
    /// At the return address the pre-handler saw in `x30` (a `ret`).
    ReturnAddress,
}

/// One probed instruction and what it must do.
struct Case {
    what: &'static str,
    func: usize,
    offset: usize,
    args: [(usize, u64); 2],
    /// Register results (`usize::MAX`: unused entry).
    expect: [(usize, u64); 3],
    after: After,
    /// How often the instruction runs in one call.
    hits: u64,
}

impl Case {
    fn new(what: &'static str, func: usize, offset: usize) -> Self {
        Self {
            what,
            func,
            offset,
            args: [(usize::MAX, 0); 2],
            expect: [(usize::MAX, 0); 3],
            after: After::At(func + offset + 4),
            hits: 1,
        }
    }
    fn args(mut self, a0: u64, a1: u64) -> Self {
        self.args = [(A0, a0), (A1, a1)];
        self
    }
    fn expect(mut self, reg: usize, value: u64) -> Self {
        let i = self
            .expect
            .iter()
            .position(|e| e.0 == usize::MAX)
            .unwrap_or(0);
        self.expect[i] = (reg, value);
        self
    }
    fn after(mut self, after: After) -> Self {
        self.after = after;
        self
    }
    fn hits(mut self, n: u64) -> Self {
        self.hits = n;
        self
    }
}

/// Memory the load and store cases use (only CPU 0 touches it).
struct Scratch(UnsafeCell<[u64; 4]>);
// SAFETY: only the checks on CPU 0 and the test functions they call touch
// the buffer, one at a time.
unsafe impl Sync for Scratch {}
static SCRATCH: Scratch = Scratch(UnsafeCell::new([0; 4]));

const SCRATCH_INIT: [u64; 4] = [
    0x0123_4567_8000_0000,
    0x1122_3344_5566_7788,
    0x99aa_bbcc_ddee_ff00,
    0x0f0e_0d0c_0b0a_0908,
];

fn scratch_addr() -> u64 {
    SCRATCH.0.get() as u64
}

fn scratch_reset() {
    // SAFETY: no test function runs while the checks reset the buffer.
    unsafe { SCRATCH.0.get().write_volatile(SCRATCH_INIT) };
}

fn scratch_read() -> [u64; 4] {
    // SAFETY: no test function runs while the checks read the buffer.
    unsafe { SCRATCH.0.get().read_volatile() }
}

static SEEN: Seen = Seen::new();

/// Run `func` from the register pattern with `case`'s arguments.
fn run_once(case: &Case) -> (Regs, [u64; 4]) {
    let mut regs = runner::pattern();
    for &(r, v) in &case.args {
        if r != usize::MAX {
            regs[r] = v;
        }
    }
    scratch_reset();
    let out = runner::run(case.func, &regs);
    (out, scratch_read())
}

fn run_case(r: &mut Report, kind: &str, case: &Case) {
    let at = case.func + case.offset;
    let (want, want_mem) = run_once(case);
    let orig = word_at(at);
    SEEN.reset();
    let id =
        match ENGINE.register_kprobe(&Kprobe::at(at).pre(pre_count).post(post_count).data(&SEEN)) {
            Ok(id) => id,
            Err(e) => {
                r.check(false, format_args!("{kind} {}: {e}", case.what));
                return;
            }
        };
    let armed = word_at(at);
    let (got, got_mem) = run_once(case);
    let unregistered = ENGINE.unregister(id);
    let restored = word_at(at);

    let results_ok = case
        .expect
        .iter()
        .filter(|(reg, _)| *reg != usize::MAX)
        .all(|&(reg, v)| got[reg] == v);
    let after = match case.after {
        After::At(pc) => pc,
        After::ReturnAddress => SEEN.pre_ra.load(core::sync::atomic::Ordering::SeqCst),
    };
    let (pre, post) = SEEN.counts();
    let pre_pc = SEEN.pre_pc.load(core::sync::atomic::Ordering::SeqCst);
    let post_pc = SEEN.post_pc.load(core::sync::atomic::Ordering::SeqCst);
    let ok = got == want
        && got_mem == want_mem
        && results_ok
        && (pre, post) == (case.hits, case.hits)
        && pre_pc == at
        && post_pc == after
        && armed == KPROBE_BRK
        && unregistered.is_ok()
        && restored == orig;
    r.check(
        ok,
        format_args!(
            "{kind} {}: same registers and memory as unprobed",
            case.what
        ),
    );
    if !ok {
        if got != want {
            for i in 0..32 {
                if got[i] != want[i] {
                    r.note(format_args!(
                        "x{i}: probed {:#x}, unprobed {:#x}",
                        got[i], want[i]
                    ));
                }
            }
        }
        if got_mem != want_mem {
            r.note(format_args!(
                "memory: probed {got_mem:x?}, unprobed {want_mem:x?}"
            ));
        }
        if !results_ok {
            r.note(format_args!("results: want {:x?}", case.expect));
        }
        r.note(format_args!(
            "hits {pre}/{post} (want {}), pc {pre_pc:#x} -> {post_pc:#x} (want {at:#x} -> {after:#x})",
            case.hits
        ));
        r.note(format_args!(
            "word {orig:#010x}, armed {armed:#010x}, after unregister {restored:#010x} ({unregistered:?})"
        ));
    }
}

/// Two's complement of `v` as a register value.
const fn neg(v: u64) -> u64 {
    v.wrapping_neg()
}

/// Every simulated instruction.
pub fn run_simulated(r: &mut Report) {
    // t_b<cond>: cmp x0, x1 at +0, the branch at +4 to +16.
    let bcond = |what, f: usize, a0: u64, a1: u64, taken: bool| {
        Case::new(what, f, 4)
            .args(a0, a1)
            .expect(A2, if taken { 2 } else { 1 })
            .after(After::At(if taken { f + 16 } else { f + 8 }))
    };
    // cbz … tbnz: the branch at +0 to +12.
    let branch = |what, f: usize, a0: u64, taken: bool| {
        Case::new(what, f, 0)
            .args(a0, 0)
            .expect(A2, if taken { 2 } else { 1 })
            .after(After::At(if taken { f + 12 } else { f + 4 }))
    };
    let min = i64::MIN as u64;
    let (b, bl, br, blr) = (addr::t_b(), addr::t_bl(), addr::t_br(), addr::t_blr());
    let (adr, adrp, lit) = (
        addr::t_adr() as u64,
        addr::t_adrp() as u64,
        addr::t_ldr_lit(),
    );
    let cases = [
        bcond("b.eq (taken)", addr::t_beq(), 5, 5, true),
        bcond("b.eq (not taken)", addr::t_beq(), 5, 6, false),
        bcond("b.ne (taken)", addr::t_bne(), 5, 6, true),
        bcond("b.ne (not taken)", addr::t_bne(), 5, 5, false),
        bcond("b.cs (taken)", addr::t_bcs(), 6, 5, true),
        bcond("b.cs (not taken)", addr::t_bcs(), 5, 6, false),
        bcond("b.cc (taken)", addr::t_bcc(), 5, 6, true),
        bcond("b.cc (not taken)", addr::t_bcc(), 6, 5, false),
        bcond("b.mi (taken)", addr::t_bmi(), 5, 6, true),
        bcond("b.mi (not taken)", addr::t_bmi(), 6, 5, false),
        bcond("b.pl (taken)", addr::t_bpl(), 6, 5, true),
        bcond("b.pl (not taken)", addr::t_bpl(), 5, 6, false),
        bcond("b.vs (taken)", addr::t_bvs(), min, 1, true),
        bcond("b.vs (not taken)", addr::t_bvs(), 5, 6, false),
        bcond("b.vc (taken)", addr::t_bvc(), 5, 6, true),
        bcond("b.vc (not taken)", addr::t_bvc(), min, 1, false),
        bcond("b.hi (taken)", addr::t_bhi(), 6, 5, true),
        bcond("b.hi (not taken)", addr::t_bhi(), 5, 5, false),
        bcond("b.ls (taken)", addr::t_bls(), 5, 5, true),
        bcond("b.ls (not taken)", addr::t_bls(), 6, 5, false),
        bcond("b.ge (taken)", addr::t_bge(), 2, neg(3), true),
        bcond("b.ge (not taken)", addr::t_bge(), neg(3), 2, false),
        bcond("b.lt (taken)", addr::t_blt(), neg(3), 2, true),
        bcond("b.lt (not taken)", addr::t_blt(), 2, neg(3), false),
        bcond("b.gt (taken)", addr::t_bgt(), 2, neg(3), true),
        bcond("b.gt (not taken)", addr::t_bgt(), 5, 5, false),
        bcond("b.le (taken)", addr::t_ble(), 5, 5, true),
        bcond("b.le (not taken)", addr::t_ble(), 2, neg(3), false),
        branch("cbz x (taken)", addr::t_cbz_x(), 0, true),
        branch("cbz x (not taken)", addr::t_cbz_x(), 1 << 40, false),
        branch(
            "cbz w (taken: the upper half is ignored)",
            addr::t_cbz_w(),
            1 << 32,
            true,
        ),
        branch("cbz w (not taken)", addr::t_cbz_w(), 1, false),
        branch("cbnz x (taken)", addr::t_cbnz_x(), 1 << 40, true),
        branch("cbnz x (not taken)", addr::t_cbnz_x(), 0, false),
        branch("cbnz w (taken)", addr::t_cbnz_w(), 1, true),
        branch("cbnz w (not taken)", addr::t_cbnz_w(), 1 << 32, false),
        branch("tbz #33 (taken)", addr::t_tbz_hi(), 0, true),
        branch("tbz #33 (not taken)", addr::t_tbz_hi(), 1 << 33, false),
        branch("tbnz #33 (taken)", addr::t_tbnz_hi(), 1 << 33, true),
        branch("tbnz #33 (not taken)", addr::t_tbnz_hi(), 0, false),
        branch("tbz w #3 (taken)", addr::t_tbz_w(), 0, true),
        branch("tbz w #3 (not taken)", addr::t_tbz_w(), 8, false),
        branch("tbnz w #3 (taken)", addr::t_tbnz_w(), 8, true),
        branch("tbnz w #3 (not taken)", addr::t_tbnz_w(), 0, false),
        Case::new("cbnz (backward, 5 times)", addr::t_cbnz_loop(), 12)
            .args(5, 0)
            .expect(A2, 5)
            .expect(A0, 0)
            .hits(5)
            .after(After::At(addr::t_cbnz_loop() + 16)),
        Case::new("b", b, 0).expect(A2, 2).after(After::At(b + 12)),
        Case::new("bl", bl, 4)
            .expect(A2, (bl + 8) as u64)
            .after(After::At(bl + 16)),
        Case::new("br", br, 4)
            .expect(A2, 2)
            .after(After::At(br + 16)),
        Case::new("blr", blr, 8)
            .expect(A2, (blr + 12) as u64)
            .after(After::At(blr + 20)),
        Case::new("ret", addr::t_add(), 4)
            .args(40, 2)
            .expect(A2, 42)
            .after(After::ReturnAddress),
        Case::new("adr (negative)", adr as usize, 0).expect(A2, adr - 12),
        Case::new("adr (positive, odd)", adr as usize, 4).expect(A3, adr + 4 + 21),
        Case::new("adrp (negative page)", adrp as usize, 0).expect(A2, (adrp - 0x1000) & !0xfff),
        Case::new("adrp (positive page)", adrp as usize, 4)
            .expect(A3, (adrp + 4 + 0x3000) & !0xfff),
        Case::new("ldr w (literal)", lit, 0).expect(A2, 0x8bad_f00d),
        Case::new("ldr x (literal)", lit, 4).expect(A3, 0x1122_3344_5566_7788),
        Case::new("ldrsw (literal)", lit, 8).expect(A4, 0xffff_ffff_8bad_f00d),
        Case::new("prfm (literal)", lit, 12),
    ];
    for c in &cases {
        run_case(r, "simulated", c);
    }
}

/// A spread of instructions stepped out of line.
pub fn run_stepped(r: &mut Report) {
    let s = scratch_addr();
    let f64b = |x: f64| x.to_bits();
    let cases = [
        Case::new("add", addr::t_add(), 0)
            .args(0x1234_5678_9abc, 0x1111)
            .expect(A2, 0x1234_5678_abcd),
        Case::new("sub w (zero-extends)", addr::t_sub_w(), 0)
            .args(1, 2)
            .expect(A2, 0xffff_ffff),
        Case::new("mul", addr::t_mul(), 0)
            .args(neg(7), 6)
            .expect(A2, neg(42)),
        Case::new("umulh", addr::t_umulh(), 0)
            .args(u64::MAX, 3)
            .expect(A2, 2),
        Case::new("sdiv", addr::t_sdiv(), 0)
            .args(neg(100), 7)
            .expect(A2, neg(14)),
        Case::new("udiv", addr::t_udiv(), 0)
            .args(100, 7)
            .expect(A2, 14),
        Case::new("lsl", addr::t_lsl(), 0)
            .args(3, 0)
            .expect(A2, 3 << 13),
        Case::new("asr", addr::t_asr(), 0)
            .args(neg(1024), 0)
            .expect(A2, neg(8)),
        Case::new("ror w", addr::t_ror_w(), 0)
            .args(0x10, 0)
            .expect(A2, 0x8000_0000),
        Case::new("ubfx", addr::t_ubfx(), 0)
            .args(0x1234_5678_9abc_def0, 0)
            .expect(A2, 0x56_789a_bcde),
        Case::new("bfi", addr::t_bfi(), 0).args(0xab, 0),
        Case::new("clz", addr::t_clz(), 0)
            .args(1 << 40, 0)
            .expect(A2, 23),
        Case::new("rev", addr::t_rev(), 0)
            .args(0x0102_0304_0506_0708, 0)
            .expect(A2, 0x0807_0605_0403_0201),
        Case::new("adds (sets the flags of the next cset)", addr::t_adds(), 0)
            .args(u64::MAX, 1)
            .expect(A2, 0)
            .expect(A3, 1),
        Case::new("cset (reads the flags)", addr::t_adds(), 4)
            .args(u64::MAX, 1)
            .expect(A3, 1),
        Case::new("csel (reads the flags of cmp)", addr::t_csel(), 4)
            .args(neg(3), 2)
            .expect(A2, neg(3)),
        Case::new("movz", addr::t_mov(), 0).expect(A2, 0x1234_0000_abcd),
        Case::new("movk", addr::t_mov(), 4).expect(A2, 0x1234_0000_abcd),
        Case::new("movn", addr::t_mov(), 8).expect(A3, u64::MAX),
        Case::new("nop", addr::t_hints(), 0),
        Case::new("bti c", addr::t_hints(), 4),
        Case::new("paciasp", addr::t_hints(), 8),
        Case::new("xpaclri", addr::t_hints(), 12),
        Case::new("mrs tpidr_el0", addr::t_mrs(), 0),
        Case::new("ldr", addr::t_ldr(), 0)
            .args(s, 0)
            .expect(A2, SCRATCH_INIT[1]),
        Case::new("ldrsb (sign-extends)", addr::t_ldrsb(), 0)
            .args(s, 0)
            .expect(A2, neg(0x80)),
        Case::new("ldr (register offset)", addr::t_ldr_reg(), 0)
            .args(s, 16)
            .expect(A2, SCRATCH_INIT[2]),
        Case::new("str", addr::t_str(), 0).args(s, 0xdead_beef_cafe_f00d),
        Case::new("strb", addr::t_strb(), 0).args(s, 0x1ab),
        Case::new("ldr (pre-index)", addr::t_pre_post(), 4)
            .args(s, 0)
            .expect(A2, SCRATCH_INIT[1])
            .expect(A4, 16),
        Case::new("ldr (post-index)", addr::t_pre_post(), 8)
            .args(s, 0)
            .expect(A3, SCRATCH_INIT[1])
            .expect(A4, 16),
        Case::new("stp (pre-index, sp)", addr::t_ldp_stp(), 0)
            .args(0x5151, 0x5252)
            .expect(A2, 0x5151)
            .expect(A3, 0x5252),
        Case::new("ldp (post-index, sp)", addr::t_ldp_stp(), 4)
            .args(0x5151, 0x5252)
            .expect(A2, 0x5151)
            .expect(A3, 0x5252),
        Case::new("sub sp", addr::t_stack(), 0)
            .args(0x5353, 0)
            .expect(A2, 0x5353),
        Case::new("str to the stack", addr::t_stack(), 4)
            .args(0x5454, 0)
            .expect(A2, 0x5454),
        Case::new("ldr from the stack", addr::t_stack(), 8)
            .args(0x5555, 0)
            .expect(A2, 0x5555),
        Case::new("ldadd (LSE)", addr::t_ldadd(), 0)
            .args(s, 5)
            .expect(A2, SCRATCH_INIT[0]),
        Case::new("swp (LSE)", addr::t_swp(), 0)
            .args(s, 7)
            .expect(A2, SCRATCH_INIT[0]),
        Case::new("cas (LSE)", addr::t_cas(), 4)
            .args(s, 9)
            .expect(A2, SCRATCH_INIT[0]),
        Case::new("ldar", addr::t_ldar(), 0)
            .args(s, 0)
            .expect(A2, SCRATCH_INIT[0]),
        Case::new("fmov d0, x0", addr::t_fadd(), 0)
            .args(f64b(1.5), f64b(2.25))
            .expect(A2, f64b(3.75)),
        Case::new("fadd", addr::t_fadd(), 8)
            .args(f64b(1.5), f64b(2.25))
            .expect(A2, f64b(3.75)),
        Case::new("fmul", addr::t_fmul(), 8)
            .args(f64b(1.5), f64b(-4.0))
            .expect(A2, f64b(-6.0)),
        Case::new("scvtf", addr::t_scvtf(), 0)
            .args(neg(42), 0)
            .expect(A2, f64b(-42.0)),
        Case::new("fcmp (sets NZCV)", addr::t_fcmp(), 8)
            .args(f64b(1.0), f64b(2.0))
            .expect(A2, 1),
        Case::new("cset after fcmp", addr::t_fcmp(), 12)
            .args(f64b(3.0), f64b(2.0))
            .expect(A2, 0),
        Case::new("add v.2d (SIMD)", addr::t_simd(), 8)
            .args(1, 2)
            .expect(A2, 3),
    ];
    for c in &cases {
        run_case(r, "stepped", c);
    }
    // The stores really stored (the comparison above is probed against
    // unprobed; this pins what both did).
    let (st, mem) = run_once(&Case::new("", addr::t_str(), 0).args(s, 7));
    r.check_eq(
        (st[A2], mem[2]),
        (runner::pattern()[A2], 7),
        format_args!("stepped str: the store lands in memory, x2 untouched"),
    );
}
