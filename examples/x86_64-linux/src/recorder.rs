//! What handlers saw: hit counters and register snapshots in atomics, so
//! handlers running in signal context (or in the tracer, on a child's
//! registers) record without locks or allocation.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use probe_core::{EntryAction, PreAction, ProbeContext, Space};
use probe_hal::Registers;

/// The registers one handler call saw.
#[derive(Debug, Default)]
pub struct Snapshot {
    gpr: [AtomicU64; 16],
    pc: AtomicU64,
    flags: AtomicU64,
}

/// A plain copy of a [`Snapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// General registers, 0 = rax … 15 = r15.
    pub gpr: [u64; 16],
    /// Program counter.
    pub pc: u64,
    /// rflags.
    pub flags: u64,
}

impl Seen {
    /// Stack pointer.
    pub fn sp(&self) -> u64 {
        self.gpr[probe_hal_x86_64::gpr::RSP]
    }
}

impl Snapshot {
    /// Record `regs`.
    pub fn store(&self, regs: &dyn Registers) {
        for (n, g) in self.gpr.iter().enumerate() {
            g.store(regs.gpr(n) as u64, Ordering::Relaxed);
        }
        self.pc.store(regs.pc() as u64, Ordering::Relaxed);
        self.flags.store(regs.flags() as u64, Ordering::Release);
    }

    /// What was recorded last.
    pub fn seen(&self) -> Seen {
        let flags = self.flags.load(Ordering::Acquire);
        Seen {
            gpr: core::array::from_fn(|n| self.gpr[n].load(Ordering::Relaxed)),
            pc: self.pc.load(Ordering::Relaxed),
            flags,
        }
    }
}

/// Space as a number for an atomic: 0 for the kernel, pid + 1 for a user space.
fn space_code(space: Space) -> u64 {
    match space {
        Space::Kernel => 0,
        Space::User(pid) => pid as u64 + 1,
    }
}

/// Per-probe record, handed to the handlers as their user data.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Pre-handler (or entry handler) calls.
    pub hits: AtomicU64,
    /// Post-handler (or return handler) calls.
    pub post_hits: AtomicU64,
    /// Registers at the last pre/entry handler call.
    pub pre: Snapshot,
    /// Registers at the last post/return handler call.
    pub post: Snapshot,
    /// Space of the last hit (0 kernel, pid + 1 user).
    pub space: AtomicU64,
    /// CPU of the last hit.
    pub cpu: AtomicUsize,
    /// Real return address the last return handler was told.
    pub return_address: AtomicUsize,
    /// Argument 0 at each entry and return value at each return, in order.
    pub log: Log,
    /// Added to the return value by [`ret_adjust`].
    pub adjust: AtomicU64,
}

impl Recorder {
    /// A fresh recorder that lives for the rest of the program (handlers
    /// need `'static` data).
    pub fn leak() -> &'static Recorder {
        Box::leak(Box::default())
    }

    /// Pre/entry handler calls.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Acquire)
    }

    /// Post/return handler calls.
    pub fn post_hits(&self) -> u64 {
        self.post_hits.load(Ordering::Acquire)
    }

    /// The space of the last hit.
    pub fn last_space(&self) -> Space {
        match self.space.load(Ordering::Acquire) {
            0 => Space::Kernel,
            n => Space::User(n as usize - 1),
        }
    }

    fn note(&self, ctx: &ProbeContext) {
        self.space.store(space_code(ctx.space), Ordering::Release);
        self.cpu.store(ctx.cpu, Ordering::Relaxed);
    }
}

/// An append-only log of up to 64 values.
#[derive(Debug)]
pub struct Log {
    n: AtomicUsize,
    entries: [AtomicU64; 64],
    /// The tag of each entry: [`ENTRY`], [`RETURN`], [`INSTANCE`] or
    /// [`RETURN_ADDRESS`].
    tags: [AtomicU64; 64],
}

impl Default for Log {
    fn default() -> Self {
        Self {
            n: AtomicUsize::new(0),
            entries: [const { AtomicU64::new(0) }; 64],
            tags: [const { AtomicU64::new(0) }; 64],
        }
    }
}

/// Tag of an entry event in a [`Log`].
pub const ENTRY: u64 = 1;
/// Tag of a return event in a [`Log`].
pub const RETURN: u64 = 2;
/// Tag of the per-instance data (the entry's argument) seen at a return.
pub const INSTANCE: u64 = 3;
/// Tag of the real return address a return handler was told.
pub const RETURN_ADDRESS: u64 = 4;

impl Log {
    /// Append `(tag, value)`; dropped when full.
    pub fn push(&self, tag: u64, value: u64) {
        let i = self.n.fetch_add(1, Ordering::AcqRel);
        if let (Some(e), Some(t)) = (self.entries.get(i), self.tags.get(i)) {
            e.store(value, Ordering::Relaxed);
            t.store(tag, Ordering::Release);
        }
    }

    /// Values with `tag`, in order.
    pub fn values(&self, tag: u64) -> Vec<u64> {
        let n = self.n.load(Ordering::Acquire).min(self.entries.len());
        (0..n)
            .filter(|&i| self.tags[i].load(Ordering::Acquire) == tag)
            .map(|i| self.entries[i].load(Ordering::Relaxed))
            .collect()
    }
}

fn recorder(ctx: &ProbeContext) -> Option<&'static Recorder> {
    ctx.data.downcast_ref::<Recorder>()
}

/// Pre-handler: count, snapshot, continue.
pub fn pre_record(ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
    if let Some(r) = recorder(ctx) {
        r.pre.store(regs);
        r.note(ctx);
        r.hits.fetch_add(1, Ordering::AcqRel);
    }
    PreAction::Continue
}

/// Post-handler: count, snapshot.
pub fn post_record(ctx: &ProbeContext, regs: &mut dyn Registers) {
    if let Some(r) = recorder(ctx) {
        r.post.store(regs);
        r.post_hits.fetch_add(1, Ordering::AcqRel);
    }
}

/// Return-probe entry handler: count, snapshot, log argument 0, track.
pub fn entry_record(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) -> EntryAction {
    let arg = regs.arg(0).unwrap_or(0) as u64;
    if let Some(d) = data.get_mut(..8) {
        d.copy_from_slice(&arg.to_le_bytes());
    }
    if let Some(r) = recorder(ctx) {
        r.pre.store(regs);
        r.note(ctx);
        r.log.push(ENTRY, arg);
        r.hits.fetch_add(1, Ordering::AcqRel);
    }
    EntryAction::Track
}

/// Return-probe entry handler that declines calls with an odd argument.
pub fn entry_even_only(
    ctx: &ProbeContext,
    regs: &mut dyn Registers,
    data: &mut [u8],
) -> EntryAction {
    if regs.arg(0).unwrap_or(0) % 2 == 1 {
        return EntryAction::Decline;
    }
    entry_record(ctx, regs, data)
}

/// Return handler: count, snapshot, log the return value and the argument
/// its entry handler stored in the per-instance data.
pub fn ret_record(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) {
    let Some(r) = recorder(ctx) else { return };
    r.post.store(regs);
    r.return_address
        .store(ctx.return_address, Ordering::Relaxed);
    r.log.push(RETURN, regs.return_value() as u64);
    r.log.push(RETURN_ADDRESS, ctx.return_address as u64);
    if let Some(d) = data.get(..8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(d);
        r.log.push(INSTANCE, u64::from_le_bytes(b));
    }
    r.post_hits.fetch_add(1, Ordering::AcqRel);
}

/// Return handler: record, then add the recorder's `adjust` to the
/// return value.
pub fn ret_adjust(ctx: &ProbeContext, regs: &mut dyn Registers, data: &mut [u8]) {
    ret_record(ctx, regs, data);
    if let Some(r) = recorder(ctx) {
        let add = r.adjust.load(Ordering::Relaxed) as usize;
        regs.set_return_value(regs.return_value().wrapping_add(add));
    }
}
