//! One kernel test function per simulated instruction (each conditional
//! branch taken and not taken, `jal`/`jalr` with and without a link,
//! `auipc`, and every compressed control-flow form), each probed on every
//! one of its instructions and compared with the unprobed call.

use super::report::check;
use super::{probe_each_kernel_insn, Case};
use crate::kernel::symbols::kernel_fn;

const NEG5: usize = -5isize as usize;

// Conditional branches: 1 when taken, 2 when not.
kernel_fn!(
    "t_beq",
    "norvc",
    ["beq a0, a1, 1f", "li a0, 2", "ret", "1:", "li a0, 1", "ret"]
);
kernel_fn!(
    "t_bne",
    "norvc",
    ["bne a0, a1, 1f", "li a0, 2", "ret", "1:", "li a0, 1", "ret"]
);
kernel_fn!(
    "t_blt",
    "norvc",
    ["blt a0, a1, 1f", "li a0, 2", "ret", "1:", "li a0, 1", "ret"]
);
kernel_fn!(
    "t_bge",
    "norvc",
    ["bge a0, a1, 1f", "li a0, 2", "ret", "1:", "li a0, 1", "ret"]
);
kernel_fn!(
    "t_bltu",
    "norvc",
    [
        "bltu a0, a1, 1f",
        "li a0, 2",
        "ret",
        "1:",
        "li a0, 1",
        "ret"
    ]
);
kernel_fn!(
    "t_bgeu",
    "norvc",
    [
        "bgeu a0, a1, 1f",
        "li a0, 2",
        "ret",
        "1:",
        "li a0, 1",
        "ret"
    ]
);

// sum(1..=a0) with a backward branch: taken a0 - 1 times, then not.
kernel_fn!(
    "t_loop",
    "norvc",
    [
        "li t0, 0",
        "1:",
        "add t0, t0, a0",
        "addi a0, a0, -1",
        "bnez a0, 1b",
        "mv a0, t0",
        "ret",
    ]
);

// jal with a link (a local call) and without (a jump).
kernel_fn!(
    "t_jal_link",
    "norvc",
    [
        "mv t0, ra",
        "jal ra, 1f",
        "addi a0, a0, 100",
        "mv ra, t0",
        "ret",
        "1:",
        "addi a0, a0, 1",
        "ret",
    ]
);
kernel_fn!(
    "t_jal_nolink",
    "norvc",
    ["j 1f", "li a0, 99", "1:", "addi a0, a0, 3", "ret"]
);

// Called at +0 (a0 + 1010) or +4 (a0 + 10).
kernel_fn!(
    "t_helper",
    "norvc",
    ["addi a0, a0, 1000", "addi a0, a0, 10", "ret"]
);

// jalr with a link and an offset, without a link, with rd == rs1, and `ret`.
kernel_fn!(
    "t_jalr_link",
    "norvc",
    [
        "mv t0, ra",
        "lla t1, t_helper",
        "jalr ra, 4(t1)",
        "mv ra, t0",
        "addi a0, a0, 1",
        "ret",
    ]
);
kernel_fn!(
    "t_jalr_nolink",
    "norvc",
    [
        "lla t1, 1f",
        "jalr zero, 0(t1)",
        "li a0, 99",
        "1:",
        "addi a0, a0, 5",
        "ret",
    ]
);
kernel_fn!(
    "t_jalr_same",
    "norvc",
    [
        "mv t0, ra",
        "lla ra, 1f",
        "jalr ra, 0(ra)",
        "addi a0, a0, 1000",
        "mv ra, t0",
        "ret",
        "1:",
        "addi a0, a0, 7",
        "ret",
    ]
);
kernel_fn!("t_ret", "norvc", ["addi a0, a0, 3", "ret"]);

// auipc: its own address plus 0x12345000, minus its own address.
kernel_fn!(
    "t_auipc",
    "norvc",
    [
        "1:",
        "auipc a0, 0x12345",
        "lla a1, 1b",
        "sub a0, a0, a1",
        "ret"
    ]
);

// Compressed control flow.
kernel_fn!(
    "t_cj",
    "rvc",
    ["c.j 1f", "c.li a0, 9", "1:", "c.addi a0, 3", "c.jr ra"]
);
kernel_fn!(
    "t_cjr",
    "rvc",
    [
        "lla t1, 1f",
        "c.jr t1",
        "c.li a0, 9",
        "1:",
        "c.addi a0, 5",
        "c.jr ra"
    ]
);
kernel_fn!(
    "t_cjalr",
    "rvc",
    [
        "c.mv t0, ra",
        "lla t1, t_helper",
        "c.jalr t1",
        "c.mv ra, t0",
        "c.jr ra"
    ]
);
kernel_fn!(
    "t_cbeqz",
    "rvc",
    [
        "c.beqz a0, 1f",
        "c.li a0, 2",
        "c.jr ra",
        "1:",
        "c.li a0, 1",
        "c.jr ra"
    ]
);
kernel_fn!(
    "t_cbnez",
    "rvc",
    [
        "c.bnez a0, 1f",
        "c.li a0, 2",
        "c.jr ra",
        "1:",
        "c.li a0, 1",
        "c.jr ra"
    ]
);
kernel_fn!("t_cret", "rvc", ["c.addi a0, 3", "c.jr ra"]);

const fn sim(
    label: &'static str,
    func: &'static str,
    args: &'static [usize],
    want: usize,
    key: &'static str,
) -> Case {
    Case {
        label,
        func,
        args,
        want,
        key,
        key_hits: 1,
        simulated: true,
    }
}

const CASES: &[Case] = &[
    sim("simulate beq, taken", "t_beq", &[7, 7], 1, "beq"),
    sim("simulate beq, not taken", "t_beq", &[7, 8], 2, "beq"),
    sim("simulate bne, taken", "t_bne", &[7, 8], 1, "bne"),
    sim("simulate bne, not taken", "t_bne", &[7, 7], 2, "bne"),
    sim(
        "simulate blt, taken (signed)",
        "t_blt",
        &[NEG5, 3],
        1,
        "blt",
    ),
    sim("simulate blt, not taken", "t_blt", &[3, NEG5], 2, "blt"),
    sim(
        "simulate bge, taken (signed)",
        "t_bge",
        &[3, NEG5],
        1,
        "bge",
    ),
    sim("simulate bge, not taken", "t_bge", &[NEG5, 3], 2, "bge"),
    sim(
        "simulate bltu, taken (unsigned)",
        "t_bltu",
        &[3, NEG5],
        1,
        "bltu",
    ),
    sim("simulate bltu, not taken", "t_bltu", &[NEG5, 3], 2, "bltu"),
    sim(
        "simulate bgeu, taken (unsigned)",
        "t_bgeu",
        &[NEG5, 3],
        1,
        "bgeu",
    ),
    sim("simulate bgeu, not taken", "t_bgeu", &[3, NEG5], 2, "bgeu"),
    Case {
        key_hits: 5,
        ..sim("simulate bne backward (loop)", "t_loop", &[5], 15, "bne")
    },
    sim("simulate jal with link", "t_jal_link", &[5], 106, "jal"),
    sim("simulate jal without link", "t_jal_nolink", &[5], 8, "jal"),
    sim(
        "simulate jalr with link and offset",
        "t_jalr_link",
        &[5],
        16,
        "jalr",
    ),
    sim(
        "simulate jalr without link",
        "t_jalr_nolink",
        &[5],
        10,
        "jalr",
    ),
    sim(
        "simulate jalr with rd == rs1",
        "t_jalr_same",
        &[5],
        1012,
        "jalr",
    ),
    sim("simulate ret (jalr x0, 0(ra))", "t_ret", &[5], 8, "jalr"),
    sim("simulate auipc", "t_auipc", &[0], 0x1234_5000, "auipc"),
    sim("simulate c.j", "t_cj", &[4], 7, "c.j"),
    sim("simulate c.jr", "t_cjr", &[4], 9, "c.jr"),
    sim("simulate c.jalr", "t_cjalr", &[4], 1014, "c.jalr"),
    sim("simulate c.beqz, taken", "t_cbeqz", &[0], 1, "c.beqz"),
    sim("simulate c.beqz, not taken", "t_cbeqz", &[5], 2, "c.beqz"),
    sim("simulate c.bnez, taken", "t_cbnez", &[5], 1, "c.bnez"),
    sim("simulate c.bnez, not taken", "t_cbnez", &[0], 2, "c.bnez"),
    sim(
        "simulate c.jr ra (compressed ret)",
        "t_cret",
        &[4],
        7,
        "c.jr",
    ),
];

/// Run the checks.
pub fn run() {
    for case in CASES {
        check(case.label, || probe_each_kernel_insn(case));
    }
}
