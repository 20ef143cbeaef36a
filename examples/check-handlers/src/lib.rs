//! # check-handlers: probe handlers the example kernels' checks share
//!
//! The loongarch64 and aarch64 QEMU kernels run the same checks on their
//! own test functions; the handlers those checks register, and what they
//! record, are one piece of code here. A kernel names its link register
//! once with [`set_link_register`] (what [`Seen::pre_ra`] records).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use probe_core::{EntryAction, PreAction, ProbeContext, Registers, Space};

/// CPUs the recorders count per CPU (the kernels assert theirs match).
pub const CPUS: usize = 2;

/// General register number of the link register, `usize::MAX` until set.
static LINK_REGISTER: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Name the ISA's link register (`ra` = 1 on loongarch64, `x30` on
/// aarch64) for [`Seen::pre_ra`].
pub fn set_link_register(n: usize) {
    LINK_REGISTER.store(n, Ordering::Relaxed);
}

/// What a counting probe saw.
pub struct Seen {
    /// Pre-handler runs.
    pub pre: AtomicU64,
    /// Post-handler runs.
    pub post: AtomicU64,
    /// Pre-handler runs per CPU.
    pub per_cpu: [AtomicU64; CPUS],
    /// pc the last pre-handler saw.
    pub pre_pc: AtomicUsize,
    /// The link register the last pre-handler saw (see
    /// [`set_link_register`]; 0 before it is set).
    pub pre_ra: AtomicUsize,
    /// The flags word (loongarch64 PRMD, aarch64 SPSR) the last pre-handler
    /// saw.
    pub pre_flags: AtomicUsize,
    /// The address space of the last hit (0 kernel, asid + 1 user).
    pub space: AtomicUsize,
    /// pc the last post-handler saw.
    pub post_pc: AtomicUsize,
}

impl Seen {
    /// Nothing seen.
    pub const fn new() -> Self {
        Self {
            pre: AtomicU64::new(0),
            post: AtomicU64::new(0),
            per_cpu: [const { AtomicU64::new(0) }; CPUS],
            pre_pc: AtomicUsize::new(0),
            pre_ra: AtomicUsize::new(0),
            pre_flags: AtomicUsize::new(0),
            space: AtomicUsize::new(usize::MAX),
            post_pc: AtomicUsize::new(0),
        }
    }

    /// Forget everything.
    pub fn reset(&self) {
        self.pre.store(0, Ordering::SeqCst);
        self.post.store(0, Ordering::SeqCst);
        for c in &self.per_cpu {
            c.store(0, Ordering::SeqCst);
        }
        self.pre_pc.store(0, Ordering::SeqCst);
        self.pre_ra.store(0, Ordering::SeqCst);
        self.pre_flags.store(0, Ordering::SeqCst);
        self.space.store(usize::MAX, Ordering::SeqCst);
        self.post_pc.store(0, Ordering::SeqCst);
    }

    /// (pre, post) counts.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.pre.load(Ordering::SeqCst),
            self.post.load(Ordering::SeqCst),
        )
    }
}

/// The `Seen` a probe was registered with.
pub fn seen(ctx: &ProbeContext) -> &'static Seen {
    ctx.data
        .downcast_ref::<Seen>()
        .expect("counting handlers are registered with a `Seen`")
}

fn space_code(space: Space) -> usize {
    match space {
        Space::Kernel => 0,
        Space::User(asid) => asid + 1,
    }
}

/// Counts and records the registers before the instruction.
pub fn pre_count(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let s = seen(ctx);
    s.pre.fetch_add(1, Ordering::SeqCst);
    s.per_cpu[ctx.cpu].fetch_add(1, Ordering::SeqCst);
    s.pre_pc.store(regs.pc(), Ordering::SeqCst);
    let link = LINK_REGISTER.load(Ordering::Relaxed);
    let ra = if link == usize::MAX {
        0
    } else {
        regs.gpr(link)
    };
    s.pre_ra.store(ra, Ordering::SeqCst);
    s.pre_flags.store(regs.flags(), Ordering::SeqCst);
    s.space.store(space_code(ctx.space), Ordering::SeqCst);
    PreAction::Continue
}

/// Counts and records the pc after the instruction.
pub fn post_count(ctx: &ProbeContext, regs: &mut dyn Registers) {
    let s = seen(ctx);
    s.post.fetch_add(1, Ordering::SeqCst);
    s.post_pc.store(regs.pc(), Ordering::SeqCst);
}

/// A fixed-capacity log of values, in the order they were pushed.
pub struct Log {
    len: AtomicUsize,
    values: [AtomicUsize; 16],
}

impl Log {
    /// Empty.
    pub const fn new() -> Self {
        Self {
            len: AtomicUsize::new(0),
            values: [const { AtomicUsize::new(0) }; 16],
        }
    }

    /// Append (dropped when full).
    pub fn push(&self, v: usize) {
        let i = self.len.fetch_add(1, Ordering::SeqCst);
        if let Some(slot) = self.values.get(i) {
            slot.store(v, Ordering::SeqCst);
        }
    }

    /// Empty again.
    pub fn clear(&self) {
        self.len.store(0, Ordering::SeqCst);
    }

    /// The values pushed so far.
    pub fn values(&self) -> Values {
        let n = self.len.load(Ordering::SeqCst).min(self.values.len());
        let mut out = Values::default();
        for v in &self.values[..n] {
            out.push(v.load(Ordering::SeqCst));
        }
        out
    }
}

/// Up to 16 values, comparable with a slice.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Values {
    len: usize,
    v: [usize; 16],
}

impl Values {
    /// Append (ignored when full).
    pub fn push(&mut self, x: usize) {
        if self.len < self.v.len() {
            self.v[self.len] = x;
            self.len += 1;
        }
    }

    /// The values.
    pub fn as_slice(&self) -> &[usize] {
        &self.v[..self.len]
    }
}

impl core::fmt::Debug for Values {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// What return probes record: entry arguments, return values, real return
/// addresses and the pc the return handler saw (the trampoline).
pub struct Returns {
    /// The first argument at each tracked entry.
    pub args: Log,
    /// The return value at each return.
    pub values: Log,
    /// The real return address of each return.
    pub return_addresses: Log,
    /// The pc each return handler saw.
    pub pcs: Log,
    /// The CPU of each return.
    pub per_cpu: [AtomicU64; CPUS],
}

impl Returns {
    /// Nothing recorded.
    pub const fn new() -> Self {
        Self {
            args: Log::new(),
            values: Log::new(),
            return_addresses: Log::new(),
            pcs: Log::new(),
            per_cpu: [const { AtomicU64::new(0) }; CPUS],
        }
    }

    /// Forget everything.
    pub fn reset(&self) {
        self.args.clear();
        self.values.clear();
        self.return_addresses.clear();
        self.pcs.clear();
        for c in &self.per_cpu {
            c.store(0, Ordering::SeqCst);
        }
    }
}

fn returns(ctx: &ProbeContext) -> &'static Returns {
    ctx.data
        .downcast_ref::<Returns>()
        .expect("return handlers are registered with a `Returns`")
}

/// Records the first argument.
pub fn entry_record(ctx: &ProbeContext, regs: &mut dyn Registers, _: &mut [u8]) -> EntryAction {
    returns(ctx).args.push(regs.arg(0).unwrap_or(usize::MAX));
    EntryAction::Track
}

/// Records the return value, the real return address and the pc.
pub fn ret_record(ctx: &ProbeContext, regs: &mut dyn Registers, _: &mut [u8]) {
    let r = returns(ctx);
    r.values.push(regs.return_value());
    r.return_addresses.push(ctx.return_address);
    r.pcs.push(regs.pc());
    r.per_cpu[ctx.cpu].fetch_add(1, Ordering::SeqCst);
}

impl Default for Seen {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for Log {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for Returns {
    fn default() -> Self {
        Self::new()
    }
}
