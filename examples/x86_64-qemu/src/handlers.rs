//! Probe handlers shared by the checks, and what they record.
//!
//! Each probe gets its own [`Seen`] (from a static pool) as user data; the
//! handlers find it again through `ProbeContext::data`.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use probe_core::{EntryAction, PreAction, ProbeContext, Registers};

/// What the handlers of one probe saw.
pub struct Seen {
    /// Pre-handler (or entry-handler) runs.
    pub pre: AtomicU64,
    /// Post-handler (or return-handler) runs.
    pub post: AtomicU64,
    /// rax at the last pre-handler run.
    pub pre_rax: AtomicU64,
    /// rax at the last post-handler run.
    pub post_rax: AtomicU64,
    /// rflags at the last pre-handler run.
    pub pre_flags: AtomicU64,
    /// rflags at the last post-handler run.
    pub post_flags: AtomicU64,
    /// pc at the last pre-handler run.
    pub pre_pc: AtomicU64,
    /// A value a handler computed (see the handler).
    pub value: AtomicU64,
}

impl Seen {
    const fn new() -> Self {
        Self {
            pre: AtomicU64::new(0),
            post: AtomicU64::new(0),
            pre_rax: AtomicU64::new(0),
            post_rax: AtomicU64::new(0),
            pre_flags: AtomicU64::new(0),
            post_flags: AtomicU64::new(0),
            pre_pc: AtomicU64::new(0),
            value: AtomicU64::new(0),
        }
    }

    /// Pre-handler runs.
    pub fn pre(&self) -> u64 {
        self.pre.load(Ordering::SeqCst)
    }

    /// Post-handler runs.
    pub fn post(&self) -> u64 {
        self.post.load(Ordering::SeqCst)
    }

    /// Load one of the fields.
    pub fn get(field: &AtomicU64) -> u64 {
        field.load(Ordering::SeqCst)
    }
}

const POOL: usize = 64;
static SEEN: [Seen; POOL] = [const { Seen::new() }; POOL];
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh record for one probe.
pub fn fresh() -> &'static Seen {
    let i = NEXT.fetch_add(1, Ordering::SeqCst);
    SEEN.get(i)
        .expect("more probes than Seen records: raise POOL")
}

/// The record of the probe that fired.
pub fn seen(ctx: &ProbeContext) -> &'static Seen {
    ctx.data
        .downcast_ref::<Seen>()
        .expect("every probe of this kernel carries a Seen")
}

/// Count and record registers before the instruction.
pub fn count_pre(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    let s = seen(ctx);
    s.pre.fetch_add(1, Ordering::SeqCst);
    s.pre_rax.store(regs.gpr(0) as u64, Ordering::SeqCst);
    s.pre_flags.store(regs.flags() as u64, Ordering::SeqCst);
    s.pre_pc.store(regs.pc() as u64, Ordering::SeqCst);
    PreAction::Continue
}

/// Count and record registers after the instruction.
pub fn count_post(ctx: &ProbeContext, regs: &mut dyn Registers) {
    let s = seen(ctx);
    s.post.fetch_add(1, Ordering::SeqCst);
    s.post_rax.store(regs.gpr(0) as u64, Ordering::SeqCst);
    s.post_flags.store(regs.flags() as u64, Ordering::SeqCst);
}

/// Return-probe entry: count, keep the first argument in the instance data.
pub fn entry_keep_arg(
    ctx: &ProbeContext,
    regs: &mut dyn Registers,
    data: &mut [u8],
) -> EntryAction {
    seen(ctx).pre.fetch_add(1, Ordering::SeqCst);
    let arg = regs.arg(0).unwrap_or(0) as u64;
    data[..8].copy_from_slice(&arg.to_le_bytes());
    EntryAction::Track
}

/// One return seen by [`ret_log`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Return {
    /// The argument the entry handler kept.
    pub arg: u64,
    /// The return value.
    pub value: u64,
    /// Where the function really returns to.
    pub to: u64,
    /// The pc the return handler saw (the trampoline).
    pub pc: u64,
}

const LOG: usize = 16;
static LOG_LEN: AtomicUsize = AtomicUsize::new(0);
static LOG_ARGS: [AtomicU64; LOG] = [const { AtomicU64::new(0) }; LOG];
static LOG_VALUES: [AtomicU64; LOG] = [const { AtomicU64::new(0) }; LOG];
static LOG_TO: [AtomicU64; LOG] = [const { AtomicU64::new(0) }; LOG];
static LOG_PC: [AtomicU64; LOG] = [const { AtomicU64::new(0) }; LOG];

/// Forget the logged returns.
pub fn clear_returns() {
    LOG_LEN.store(0, Ordering::SeqCst);
}

/// The returns logged since [`clear_returns`], oldest first.
pub fn returns() -> ([Return; LOG], usize) {
    let n = LOG_LEN.load(Ordering::SeqCst).min(LOG);
    let mut out = [Return::default(); LOG];
    for (i, r) in out.iter_mut().enumerate().take(n) {
        *r = Return {
            arg: LOG_ARGS[i].load(Ordering::SeqCst),
            value: LOG_VALUES[i].load(Ordering::SeqCst),
            to: LOG_TO[i].load(Ordering::SeqCst),
            pc: LOG_PC[i].load(Ordering::SeqCst),
        };
    }
    (out, n)
}

/// Return probe: count and log argument, value, real return address, pc.
pub fn ret_log(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) {
    seen(ctx).post.fetch_add(1, Ordering::SeqCst);
    let i = LOG_LEN.fetch_add(1, Ordering::SeqCst);
    if i < LOG {
        let mut arg = [0u8; 8];
        if data.len() >= 8 {
            arg.copy_from_slice(&data[..8]);
        }
        LOG_ARGS[i].store(u64::from_le_bytes(arg), Ordering::SeqCst);
        LOG_VALUES[i].store(regs.return_value() as u64, Ordering::SeqCst);
        LOG_TO[i].store(ctx.return_address as u64, Ordering::SeqCst);
        LOG_PC[i].store(regs.pc() as u64, Ordering::SeqCst);
    }
}

/// Return probe: add 1000 to the return value.
pub fn ret_add_1000(ctx: &ProbeContext, regs: &mut dyn Registers, _data: &mut [u8]) {
    seen(ctx).post.fetch_add(1, Ordering::SeqCst);
    let v = regs.return_value();
    regs.set_return_value(v + 1000);
}

/// Whether interrupts were enabled the last time [`ret_note_if`] ran
/// (1: enabled, 0: masked, 2: never ran).
pub static RET_IF: AtomicU64 = AtomicU64::new(2);

/// A return handler noting whether it runs with interrupts masked.
pub fn ret_note_if(ctx: &ProbeContext, _regs: &mut dyn Registers, _data: &mut [u8]) {
    seen(ctx).post.fetch_add(1, Ordering::SeqCst);
    RET_IF.store(crate::cpu::interrupts_enabled() as u64, Ordering::SeqCst);
}
