//! The benchmark loop with no engine behind it: the same round-robin loop,
//! frame edits and checks as a hit, with two trivial out-of-line "trap
//! entry points" that only move rip. Its instructions per hit are the part
//! of both engines' figures that is not engine code.

use std::hint::black_box;

use probe_hal_x86_64::PtRegs;

use crate::region::{Region, INSN_LEN};

/// The loop over `probes` instructions of a region, no engine.
pub struct Bench {
    region: Region,
    probes: usize,
}

impl Bench {
    /// A region with `probes` instructions and nothing registered.
    pub fn setup(probes: usize) -> Self {
        Self {
            region: Region::leak(probes, 0),
            probes,
        }
    }

    /// `hits` empty hits spread round-robin over the instructions.
    pub fn run(&self, hits: usize) {
        let mut regs = PtRegs::zeroed();
        let mut i = 0;
        for _ in 0..hits {
            hit(black_box(&mut regs), self.region.probe_addr(i));
            i += 1;
            if i == self.probes {
                i = 0;
            }
        }
    }
}

/// Stands in for a trap entry point: moves rip, reports "handled".
#[inline(never)]
fn trap(regs: &mut PtRegs, to: u64) -> bool {
    regs.rip = black_box(to);
    true
}

#[inline(never)]
fn hit(regs: &mut PtRegs, addr: usize) {
    regs.rip = (addr + 1) as u64;
    let first = trap(regs, 0x1000);
    regs.rip += INSN_LEN as u64 + 1;
    let second = trap(regs, (addr + INSN_LEN) as u64);
    assert!(
        first && second && regs.rip == (addr + INSN_LEN) as u64,
        "hit at {addr:#x} did not end after the instruction"
    );
}
