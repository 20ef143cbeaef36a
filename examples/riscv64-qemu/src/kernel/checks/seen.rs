//! What probe handlers saw: counters the checks read back, and the
//! handlers that fill them.

use core::sync::atomic::{AtomicUsize, Ordering};

use probe_core::{EntryAction, PreAction, ProbeContext, Space};
use probe_hal::Registers;

use crate::kernel::layout::MAX_HARTS;
use crate::kernel::trap::{hart_id, SSTATUS_SPP};

/// Counters of one probe's handlers.
pub struct Seen {
    /// Pre-handler runs.
    pub pre: AtomicUsize,
    /// Post-handler runs.
    pub post: AtomicUsize,
    /// Pre-handler runs per hart.
    pub per_hart: [AtomicUsize; MAX_HARTS],
    /// Handler runs that saw something wrong: pc not the probed address,
    /// the wrong privilege mode in `sstatus.SPP`, a hart id other than the
    /// running one.
    pub bad: AtomicUsize,
    /// a0 when the pre-handler last ran.
    pub a0_pre: AtomicUsize,
    /// a0 when the post-handler last ran.
    pub a0_post: AtomicUsize,
}

impl Seen {
    /// All zero.
    pub const fn new() -> Self {
        Self {
            pre: AtomicUsize::new(0),
            post: AtomicUsize::new(0),
            per_hart: [const { AtomicUsize::new(0) }; MAX_HARTS],
            bad: AtomicUsize::new(0),
            a0_pre: AtomicUsize::new(0),
            a0_post: AtomicUsize::new(0),
        }
    }

    /// Back to zero.
    pub fn reset(&self) {
        for c in [
            &self.pre,
            &self.post,
            &self.bad,
            &self.a0_pre,
            &self.a0_post,
        ] {
            c.store(0, Ordering::SeqCst);
        }
        for c in &self.per_hart {
            c.store(0, Ordering::SeqCst);
        }
    }

    /// Pre-handler runs.
    pub fn pre(&self) -> usize {
        self.pre.load(Ordering::SeqCst)
    }

    /// Post-handler runs.
    pub fn post(&self) -> usize {
        self.post.load(Ordering::SeqCst)
    }

    /// Handler runs that saw something wrong.
    pub fn bad(&self) -> usize {
        self.bad.load(Ordering::SeqCst)
    }

    /// Pre-handler runs on hart `h`.
    pub fn on_hart(&self, h: usize) -> usize {
        self.per_hart[h].load(Ordering::SeqCst)
    }
}

/// The `Seen` a probe was registered with.
pub fn seen_of(ctx: &ProbeContext) -> &'static Seen {
    ctx.data
        .downcast_ref::<Seen>()
        .expect("probe data is a Seen")
}

/// Whether the frame and context agree on where the hit happened.
fn consistent(ctx: &ProbeContext, regs: &dyn Registers, at_probe: bool) -> bool {
    let from_kernel = regs.flags() & SSTATUS_SPP != 0;
    (!at_probe || regs.pc() == ctx.addr)
        && from_kernel == (ctx.space == Space::Kernel)
        && ctx.cpu == hart_id()
}

/// Pre-handler: count, and check pc, mode and hart.
pub fn pre_count(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let s = seen_of(ctx);
    if !consistent(ctx, regs, true) {
        s.bad.fetch_add(1, Ordering::SeqCst);
    }
    s.a0_pre.store(regs.gpr(10), Ordering::SeqCst);
    s.per_hart[ctx.cpu.min(MAX_HARTS - 1)].fetch_add(1, Ordering::SeqCst);
    s.pre.fetch_add(1, Ordering::SeqCst);
    PreAction::Continue
}

/// A second pre-handler (another function: not a duplicate registration).
pub fn pre_count_b(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    pre_count(ctx, regs)
}

/// Post-handler: count, and check mode and hart.
pub fn post_count(ctx: &ProbeContext, regs: &mut dyn Registers) {
    let s = seen_of(ctx);
    if !consistent(ctx, regs, false) {
        s.bad.fetch_add(1, Ordering::SeqCst);
    }
    s.a0_post.store(regs.gpr(10), Ordering::SeqCst);
    s.post.fetch_add(1, Ordering::SeqCst);
}

/// Most return values a [`Returns`] records.
pub const MAX_RECORDED: usize = 16;

/// What a return probe's handlers saw.
pub struct Returns {
    /// Entry-handler runs.
    pub entries: AtomicUsize,
    /// Return-handler runs.
    pub returns: AtomicUsize,
    /// Entry- and return-handler runs per hart.
    pub per_hart: [AtomicUsize; MAX_HARTS],
    /// Return values, in order (the first `MAX_RECORDED`).
    pub values: [AtomicUsize; MAX_RECORDED],
    /// The argument saved at entry in the instance data, in return order.
    pub args: [AtomicUsize; MAX_RECORDED],
    /// Real return addresses, in return order.
    pub return_addresses: [AtomicUsize; MAX_RECORDED],
    /// pc of the frame the return handler got (the trampoline).
    pub trampoline_pc: AtomicUsize,
    /// Handler runs that saw the wrong mode or hart.
    pub bad: AtomicUsize,
}

impl Returns {
    /// All zero.
    pub const fn new() -> Self {
        Self {
            entries: AtomicUsize::new(0),
            returns: AtomicUsize::new(0),
            per_hart: [const { AtomicUsize::new(0) }; MAX_HARTS],
            values: [const { AtomicUsize::new(0) }; MAX_RECORDED],
            args: [const { AtomicUsize::new(0) }; MAX_RECORDED],
            return_addresses: [const { AtomicUsize::new(0) }; MAX_RECORDED],
            trampoline_pc: AtomicUsize::new(0),
            bad: AtomicUsize::new(0),
        }
    }

    /// Back to zero.
    pub fn reset(&self) {
        self.entries.store(0, Ordering::SeqCst);
        self.returns.store(0, Ordering::SeqCst);
        self.trampoline_pc.store(0, Ordering::SeqCst);
        self.bad.store(0, Ordering::SeqCst);
        for c in self
            .per_hart
            .iter()
            .chain(&self.values)
            .chain(&self.args)
            .chain(&self.return_addresses)
        {
            c.store(0, Ordering::SeqCst);
        }
    }

    /// The first `n` recorded return values.
    pub fn values(&self, n: usize) -> heapless::Vec<usize, MAX_RECORDED> {
        self.values
            .iter()
            .take(n)
            .map(|v| v.load(Ordering::SeqCst))
            .collect()
    }

    /// The first `n` recorded entry arguments.
    pub fn args(&self, n: usize) -> heapless::Vec<usize, MAX_RECORDED> {
        self.args
            .iter()
            .take(n)
            .map(|v| v.load(Ordering::SeqCst))
            .collect()
    }

    /// Return-handler runs.
    pub fn returns(&self) -> usize {
        self.returns.load(Ordering::SeqCst)
    }

    /// Entry-handler runs.
    pub fn entries(&self) -> usize {
        self.entries.load(Ordering::SeqCst)
    }
}

/// The `Returns` a return probe was registered with.
pub fn returns_of(ctx: &ProbeContext) -> &'static Returns {
    ctx.data
        .downcast_ref::<Returns>()
        .expect("return probe data is a Returns")
}

/// Entry handler: count, save a0 in the instance data, track the call.
pub fn entry_save_arg(
    ctx: &ProbeContext,
    regs: &mut dyn Registers,
    data: &mut [u8],
) -> EntryAction {
    let r = returns_of(ctx);
    if !consistent(ctx, regs, true) {
        r.bad.fetch_add(1, Ordering::SeqCst);
    }
    r.entries.fetch_add(1, Ordering::SeqCst);
    r.per_hart[ctx.cpu.min(MAX_HARTS - 1)].fetch_add(1, Ordering::SeqCst);
    let arg = regs.arg(0).unwrap_or(0);
    if data.len() >= 8 {
        data[..8].copy_from_slice(&arg.to_le_bytes());
    }
    EntryAction::Track
}

/// Return handler: record the return value, the saved argument, the real
/// return address and the trampoline pc.
pub fn ret_record(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) {
    let r = returns_of(ctx);
    // The kernel trampoline's frame is no trap frame (its status is 0):
    // only the hart is checked here.
    if ctx.cpu != hart_id() {
        r.bad.fetch_add(1, Ordering::SeqCst);
    }
    let i = r.returns.fetch_add(1, Ordering::SeqCst);
    if i < MAX_RECORDED {
        r.values[i].store(regs.return_value(), Ordering::SeqCst);
        let arg = data
            .get(..8)
            .map(|b| usize::from_le_bytes(b.try_into().expect("8 bytes")))
            .unwrap_or(0);
        r.args[i].store(arg, Ordering::SeqCst);
        r.return_addresses[i].store(ctx.return_address, Ordering::SeqCst);
    }
    r.trampoline_pc.store(regs.pc(), Ordering::SeqCst);
}

/// Return handler: double the return value.
pub fn ret_double(ctx: &ProbeContext, regs: &mut dyn Registers, _data: &mut [u8]) {
    returns_of(ctx).returns.fetch_add(1, Ordering::SeqCst);
    regs.set_return_value(regs.return_value().wrapping_mul(2));
}
