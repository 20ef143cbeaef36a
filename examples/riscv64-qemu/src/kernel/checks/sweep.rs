//! The boundary sweep: a probe at each offset 0..=63 of a function mixing
//! 16- and 32-bit instructions is either refused (odd: misaligned; inside a
//! 32-bit instruction: not a boundary, naming the instruction) or accepted,
//! and then the probed call leaves exactly the unprobed registers.

use probe_core::{Kprobe, ProbeError, ProbeErrorKind, ProbeId};

use super::regfile::{self, RegFile};
use super::report::{check, ensure, ensure_eq, note, Fail, Outcome};
use super::seen::{post_count, pre_count, Seen};
use super::{boundaries, snapshot};
use crate::kernel::services::ENGINE;
use crate::kernel::symbols::{self, kernel_fn};

kernel_fn!(
    "t_sweep",
    "rvc",
    [
        "c.mv a2, a0",
        ".option push",
        ".option norvc",
        "addi a2, a2, 5",
        "xor a3, a2, a1",
        ".option pop",
        "c.slli a2, 3",
        "c.add a2, a3",
        ".option push",
        ".option norvc",
        "sub a2, a2, a1",
        ".option pop",
        "c.addi a3, 7",
        ".option push",
        ".option norvc",
        "mul a2, a2, a3",
        "srli a3, a2, 7",
        "or a2, a2, a3",
        ".option pop",
        "c.li a4, 9",
        "c.addw a2, a4",
        ".option push",
        ".option norvc",
        "andi a3, a2, 0x7ff",
        "addiw a2, a2, -17",
        ".option pop",
        "c.sub a2, a3",
        "c.xor a2, a1",
        ".option push",
        ".option norvc",
        "sltu a4, a3, a2",
        "add a2, a2, a4",
        ".option pop",
        "c.srli a2, 1",
        ".option push",
        ".option norvc",
        "lui a5, 0x7",
        "add a2, a2, a5",
        ".option pop",
        "c.mv a0, a2",
        ".option push",
        ".option norvc",
        "xori a0, a0, 0x155",
        ".option pop",
        "c.jr ra",
    ]
);

/// The instruction starts below 64, from the instruction sizes written
/// above (2 4 4 2 2 4 2 4 4 4 2 2 4 4 2 2 4 4 2 …), not from a decoder.
const STARTS: [usize; 21] = [
    0, 2, 6, 10, 12, 14, 18, 20, 24, 28, 32, 34, 36, 40, 44, 46, 48, 52, 56, 58, 62,
];

static S: Seen = Seen::new();

fn sweep() -> Outcome {
    let f = symbols::get("t_sweep");
    let walked: heapless::Vec<usize, 32> = boundaries(&f).into_iter().filter(|&o| o < 64).collect();
    ensure_eq!(
        walked[..],
        STARTS[..],
        "instruction starts found by the length decoder"
    );
    let input = RegFile::seeded(&[0x1234_5678, 0x9abc]);
    let want = regfile::call(f.start, &input);
    let before = snapshot(&f);
    let (mut probed, mut odd, mut inside) = (0, 0, 0);
    for off in 0..=63usize {
        let addr = f.start + off;
        S.reset();
        let result =
            ENGINE.register_kprobe(&Kprobe::at(addr).pre(pre_count).post(post_count).data(&S));
        if off % 2 == 1 {
            let e = refused(result, off)?;
            ensure_eq!(e.kind(), ProbeErrorKind::Misaligned { align: 2 }, "+{off}");
            odd += 1;
        } else if let Some(i) = STARTS.iter().position(|&s| s == off) {
            let id = result?;
            let got = regfile::call(f.start, &input);
            ENGINE.unregister(id)?;
            if let Some((r, g, w)) = got.first_difference(&want) {
                return Err(Fail::new(format_args!(
                    "probe at +{off}: x{r} = {g:#x}, unprobed {w:#x}"
                )));
            }
            ensure_eq!(
                (S.pre(), S.post(), S.bad()),
                (1, 1, 0),
                "pre, post, bad at +{off} (insn {i})"
            );
            probed += 1;
        } else {
            let e = refused(result, off)?;
            ensure_eq!(
                e.kind(),
                ProbeErrorKind::NotInsnBoundary {
                    insn_start: f.start + off - 2,
                    insn_len: 4
                },
                "+{off}"
            );
            inside += 1;
        }
        ensure!(snapshot(&f) == before, "bytes differ after offset {off}");
    }
    ensure_eq!(ENGINE.slot_usage(), (0, 0), "slots and pages held");
    note!("offsets 0..=63: {probed} probed and correct, {inside} inside a 32-bit instruction refused, {odd} odd refused")
}

/// The error of a registration that must fail (an accepted probe is
/// removed again and reported).
fn refused(result: Result<ProbeId, ProbeError>, off: usize) -> Result<ProbeError, Fail> {
    match result {
        Ok(id) => {
            let _ = ENGINE.unregister(id);
            Err(Fail::new(format_args!("+{off} accepted")))
        }
        Err(e) => Ok(e),
    }
}

/// Run the checks.
pub fn run() {
    check("boundary sweep, offsets 0..=63", sweep);
}
