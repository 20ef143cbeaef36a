//! One probe per instruction: every simulated instruction (each branch
//! taken and not taken, each pc-relative form with a negative and a
//! positive offset) and a spread of stepped ones. Each case runs the test
//! function unprobed and probed with the same registers and memory and
//! compares everything: all 32 registers after it, the scratch memory, the
//! expected results, how often the handlers ran, the pc they saw, the
//! breakpoint while armed and the original word after unregistering.

use core::cell::UnsafeCell;

use probe_core::Kprobe;
use probe_hal_loongarch64::slot::KPROBE_BREAK;

use super::handlers::{post_count, pre_count, Seen};
use super::Report;
use crate::kernel::ENGINE;
use crate::runner::{self, Regs};
use crate::testfns::{addr, word_at};

/// Register numbers of the arguments and results.
const A0: usize = 4;
const A1: usize = 5;
const A2: usize = 6;
const A3: usize = 7;

/// Where the pc is after the probed instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// At this address.
    At(usize),
    /// At the return address the pre-handler saw in `ra` (a `ret`).
    ReturnAddress,
}

/// One probed instruction and what it must do.
struct Case {
    what: &'static str,
    func: usize,
    offset: usize,
    args: [(usize, u64); 2],
    /// Register results (register 0: unused entry).
    expect: [(usize, u64); 2],
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
            args: [(0, 0); 2],
            expect: [(0, 0); 2],
            after: After::At(func + offset + 4),
            hits: 1,
        }
    }
    fn args(mut self, a0: u64, a1: u64) -> Self {
        self.args = [(A0, a0), (A1, a1)];
        self
    }
    fn expect(mut self, reg: usize, value: u64) -> Self {
        let i = if self.expect[0].0 == 0 { 0 } else { 1 };
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
        if r != 0 {
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
        .filter(|(reg, _)| *reg != 0)
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
        && armed == KPROBE_BREAK
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
                        "r{i}: probed {:#x}, unprobed {:#x}",
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
    let branch = |what, f: usize, a0: u64, a1: u64, taken: bool| {
        Case::new(what, f, 0)
            .args(a0, a1)
            .expect(A2, if taken { 2 } else { 1 })
            .after(After::At(if taken { f + 12 } else { f + 4 }))
    };
    let (beq, bne, blt, bge) = (addr::t_beq(), addr::t_bne(), addr::t_blt(), addr::t_bge());
    let (bltu, bgeu, beqz, bnez) = (
        addr::t_bltu(),
        addr::t_bgeu(),
        addr::t_beqz(),
        addr::t_bnez(),
    );
    let (b, bl, jirl, jirl_same) = (
        addr::t_b(),
        addr::t_bl(),
        addr::t_jirl(),
        addr::t_jirl_same(),
    );
    let (pcaddi, pcalau12i) = (addr::t_pcaddi() as u64, addr::t_pcalau12i() as u64);
    let (pcaddu12i, pcaddu18i) = (addr::t_pcaddu12i() as u64, addr::t_pcaddu18i() as u64);
    let cases = [
        branch("beq (taken)", beq, 5, 5, true),
        branch("beq (not taken)", beq, 5, 6, false),
        branch("bne (taken)", bne, 5, 6, true),
        branch("bne (not taken)", bne, 5, 5, false),
        branch("blt (taken, signed)", blt, neg(3), 2, true),
        branch("blt (not taken, signed)", blt, 2, neg(3), false),
        branch("bge (taken, signed)", bge, 2, neg(3), true),
        branch("bge (not taken, signed)", bge, neg(3), 2, false),
        branch("bltu (taken, unsigned)", bltu, 2, neg(3), true),
        branch("bltu (not taken, unsigned)", bltu, neg(3), 2, false),
        branch("bgeu (taken, unsigned)", bgeu, neg(3), 2, true),
        branch("bgeu (not taken, unsigned)", bgeu, 2, neg(3), false),
        branch("beqz (taken)", beqz, 0, 0, true),
        branch("beqz (not taken)", beqz, 7, 0, false),
        branch("bnez (taken)", bnez, 7, 0, true),
        branch("bnez (not taken)", bnez, 0, 0, false),
        Case::new("bnez (backward, 5 times)", addr::t_bnez_loop(), 12)
            .args(5, 0)
            .expect(A2, 5)
            .expect(A0, 0)
            .hits(5)
            .after(After::At(addr::t_bnez_loop() + 16)),
        Case::new("b", b, 0).expect(A2, 2).after(After::At(b + 12)),
        Case::new("bl", bl, 4)
            .expect(A2, (bl + 8) as u64)
            .after(After::At(bl + 16)),
        Case::new("jirl (call, rd = ra)", jirl, 8)
            .expect(A2, (jirl + 12) as u64)
            .after(After::At(jirl + 20)),
        Case::new("jirl (rd = rj)", jirl_same, 8)
            .expect(A2, (jirl_same + 12) as u64)
            .after(After::At(jirl_same + 20)),
        Case::new("jirl (ret)", addr::t_add_d(), 4)
            .args(40, 2)
            .expect(A2, 42)
            .after(After::ReturnAddress),
        Case::new("pcaddi (negative)", pcaddi as usize, 0).expect(A2, pcaddi - 12),
        Case::new("pcaddi (positive)", pcaddi as usize, 4).expect(A3, pcaddi + 4 + 20),
        Case::new("pcalau12i (negative)", pcalau12i as usize, 0)
            .expect(A2, (pcalau12i - 4096) & !0xfff),
        Case::new("pcalau12i (positive)", pcalau12i as usize, 4)
            .expect(A3, (pcalau12i + 4 + 2 * 4096) & !0xfff),
        Case::new("pcaddu12i (negative)", pcaddu12i as usize, 0).expect(A2, pcaddu12i - 4096),
        Case::new("pcaddu12i (positive)", pcaddu12i as usize, 4)
            .expect(A3, pcaddu12i + 4 + 3 * 4096),
        Case::new("pcaddu18i (negative)", pcaddu18i as usize, 0).expect(A2, pcaddu18i - (1 << 18)),
        Case::new("pcaddu18i (positive)", pcaddu18i as usize, 4)
            .expect(A3, pcaddu18i + 4 + (1 << 18)),
    ];
    for c in &cases {
        run_case(r, "simulated", c);
    }
}

/// A spread of instructions stepped out of line.
pub fn run_stepped(r: &mut Report) {
    let s = scratch_addr();
    let f64b = |x: f64| x.to_bits();
    let lu = 0x7ff1_2345_ffff_e000;
    let cases = [
        Case::new("add.d", addr::t_add_d(), 0)
            .args(0x1234_5678_9abc, 0x1111)
            .expect(A2, 0x1234_5678_abcd),
        Case::new("sub.w (sign-extends)", addr::t_sub_w(), 0)
            .args(1, 2)
            .expect(A2, u64::MAX),
        Case::new("mul.d", addr::t_mul_d(), 0)
            .args(neg(7), 6)
            .expect(A2, neg(42)),
        Case::new("mulh.du", addr::t_mulh_du(), 0)
            .args(u64::MAX, 3)
            .expect(A2, 2),
        Case::new("div.d", addr::t_div_d(), 0)
            .args(neg(100), 7)
            .expect(A2, neg(14)),
        Case::new("mod.du", addr::t_mod_du(), 0)
            .args(100, 7)
            .expect(A2, 2),
        Case::new("slli.d", addr::t_slli_d(), 0)
            .args(3, 0)
            .expect(A2, 3 << 13),
        Case::new("srai.d", addr::t_srai_d(), 0)
            .args(neg(1024), 0)
            .expect(A2, neg(8)),
        Case::new("rotri.w", addr::t_rotri_w(), 0)
            .args(0x10, 0)
            .expect(A2, 0xffff_ffff_8000_0000),
        Case::new("sll.w", addr::t_sll_w(), 0)
            .args(0x4000_0001, 1)
            .expect(A2, 0xffff_ffff_8000_0002),
        Case::new("alsl.d", addr::t_alsl_d(), 0)
            .args(3, 100)
            .expect(A2, 124),
        Case::new("bstrpick.d", addr::t_bstrpick_d(), 0)
            .args(0x1234_5678_9abc_def0, 0)
            .expect(A2, 0x56_789a_bcde),
        Case::new("maskeqz", addr::t_maskeqz(), 0)
            .args(0xabc, 0)
            .expect(A2, 0),
        Case::new("sltui", addr::t_sltui(), 0)
            .args(99, 0)
            .expect(A2, 1),
        Case::new("lu12i.w", addr::t_lu(), 0).expect(A2, lu),
        Case::new("lu32i.d", addr::t_lu(), 4).expect(A2, lu),
        Case::new("lu52i.d", addr::t_lu(), 8).expect(A2, lu),
        Case::new("cpucfg", addr::t_cpucfg(), 0).args(1, 0),
        Case::new("ld.d", addr::t_ld_d(), 0)
            .args(s, 0)
            .expect(A2, SCRATCH_INIT[1]),
        Case::new("ld.b (sign-extends)", addr::t_ld_b(), 0)
            .args(s, 0)
            .expect(A2, neg(0x80)),
        Case::new("ldx.d", addr::t_ldx_d(), 0)
            .args(s, 16)
            .expect(A2, SCRATCH_INIT[2]),
        Case::new("st.d", addr::t_st_d(), 0).args(s, 0xdead_beef_cafe_f00d),
        Case::new("st.b", addr::t_st_b(), 0).args(s, 0x1ab),
        Case::new("addi.d $sp", addr::t_stack(), 0)
            .args(0x5151, 0)
            .expect(A2, 0x5151),
        Case::new("st.d to the stack", addr::t_stack(), 4)
            .args(0x5252, 0)
            .expect(A2, 0x5252),
        Case::new("ld.d from the stack", addr::t_stack(), 8)
            .args(0x5353, 0)
            .expect(A2, 0x5353),
        Case::new("movgr2fr.d", addr::t_fadd_d(), 0)
            .args(f64b(1.5), f64b(2.25))
            .expect(A2, f64b(3.75)),
        Case::new("fadd.d", addr::t_fadd_d(), 8)
            .args(f64b(1.5), f64b(2.25))
            .expect(A2, f64b(3.75)),
        Case::new("fmul.d", addr::t_fmul_d(), 8)
            .args(f64b(1.5), f64b(-4.0))
            .expect(A2, f64b(-6.0)),
        Case::new("ffint.d.l", addr::t_ffint(), 4)
            .args(neg(42), 0)
            .expect(A2, f64b(-42.0)),
        Case::new("fcmp.clt.d", addr::t_fcmp(), 8)
            .args(f64b(1.0), f64b(2.0))
            .expect(A2, 1),
        Case::new("movcf2gr", addr::t_fcmp(), 12)
            .args(f64b(3.0), f64b(2.0))
            .expect(A2, 0),
    ];
    for c in &cases {
        run_case(r, "stepped", c);
    }
    // The stores really stored (the comparison above is probed against
    // unprobed; this pins what both did).
    let (st, mem) = run_once(&Case::new("", addr::t_st_d(), 0).args(s, 7));
    r.check_eq(
        (st[A2], mem[2]),
        (runner::pattern()[A2], 7),
        format_args!("stepped st.d: the store lands in memory, a2 untouched"),
    );
}
