//! Handler objects attached to live probes: perf-style attach, replace and
//! detach, in storage the caller owns.
//!
//! A probe's own handlers (`fn` pointers and one `&'static` datum) are fixed
//! at registration. Tracing layers attach programs after a probe exists
//! (Linux: `PERF_EVENT_IOC_SET_BPF`, several perf events on one kprobe);
//! an [`Attachment`] is one such program linked into a probe.
//!
//! **Storage.** The engine allocates nothing: the attachment itself is the
//! list node (intrusive, like Linux's `struct trace_event_call` list). It
//! is attached through `Pin<&Attachment>`, which promises that its memory
//! is not reused before its `Drop` runs, and its `Drop` detaches it and
//! waits for a grace period: so the engine never reaches a freed
//! attachment, and the caller needs no `unsafe`. A `static` attachment is
//! attached through [`core::pin::Pin::static_ref`]; a dynamic one lives in
//! `Box::pin` (or `core::pin::pin!` on a stack that outlives its use).
//!
//! **Dropping may block**: dropping an attached attachment takes the
//! registration lock and waits for a grace period (the same contexts as
//! `unregister`). Dropping one from inside a probe handler cannot wait, and
//! freeing it without waiting would let another CPU run freed code: that
//! aborts (a panic, which becomes an abort if it unwinds), and
//! [`crate::Engine::detach`] says [`ProbeErrorKind::InTrapContext`] instead.
//! Detach explicitly outside the handler, or keep the attachment alive.
//!
//! **The list.** Each probe record heads a singly linked list of attached
//! nodes, read by the trap path without a lock (Acquire loads) and changed
//! only under the registration lock: a node is published by one Release
//! store of its predecessor's link; an unlinked node keeps its own `next`
//! until a grace period has passed, so a CPU walking it goes on to the rest
//! of the list; only then is the node marked detached and reusable.

use core::cell::UnsafeCell;
use core::marker::{PhantomData, PhantomPinned};
use core::pin::Pin;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use probe_hal::{ProbeError, ProbeErrorKind, Registers};

use crate::spec::{PreAction, ProbeContext, ProbeId};

mod ops;

/// A handler object: what a tracing layer attaches to a live probe.
///
/// Both methods run in trap context (interrupts masked, like a probe's
/// pre-handler): they must not sleep, and calling back into registration
/// (`register_*`, `attach`, `detach`, …) fails there with
/// [`ProbeErrorKind::InTrapContext`].
///
/// ```
/// use probe_core::{PreAction, ProbeContext, ProbeHandler};
/// use probe_hal::Registers;
/// use core::sync::atomic::{AtomicU64, Ordering};
/// struct CountCalls(AtomicU64);
/// impl ProbeHandler for CountCalls {
///     fn on_hit(&self, _: &ProbeContext, _: &mut dyn Registers) -> PreAction {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         PreAction::Continue
///     }
/// }
/// ```
pub trait ProbeHandler: Sync {
    /// A kprobe was hit (after the probe's own pre-handler), with the pc at
    /// the probed address; or, for a kretprobe, its function was entered
    /// (the result is then ignored). Return
    /// [`PreAction::SkipInstruction`] after moving the pc to skip the
    /// probed instruction (e.g. an eBPF `bpf_override_return`); once one
    /// attached handler skips, the handlers after it do not run.
    fn on_hit(&self, _ctx: &ProbeContext, _regs: &mut dyn Registers) -> PreAction {
        PreAction::Continue
    }

    /// A kretprobe's function returned (registers at the return: the
    /// return value is readable and writable); `ctx.return_address` is the
    /// real return address. Never called for kprobes.
    fn on_return(&self, _ctx: &ProbeContext, _regs: &mut dyn Registers) {}
}

/// How an attached node reaches its handler (monomorphised per handler
/// type, so the node holds thin pointers only).
type HitFn = unsafe fn(*const (), &ProbeContext, &mut dyn Registers) -> PreAction;
type ReturnFn = unsafe fn(*const (), &ProbeContext, &mut dyn Registers);
/// How a dropped node finds the engine it is attached to.
type DetachFn = unsafe fn(*const (), &AttachNode);

/// The list node inside an [`Attachment`].
pub(crate) struct AttachNode {
    /// Next node of the probe's list (null: end).
    pub(crate) next: AtomicPtr<AttachNode>,
    /// The probe this node is attached to, as [`ProbeId`] bits (0: none).
    /// Changed only under the registration lock.
    pub(crate) probe: AtomicU64,
    /// The handler and the engine, set when attached (registration lock
    /// held, node not yet published) and read by the trap path only after
    /// the Acquire load that found the node.
    pub(crate) link: UnsafeCell<NodeLink>,
}

#[derive(Clone, Copy)]
pub(crate) struct NodeLink {
    pub(crate) handler: *const (),
    pub(crate) hit: HitFn,
    pub(crate) ret: ReturnFn,
    pub(crate) engine: *const (),
    pub(crate) detach: DetachFn,
}

// SAFETY: `link` is written only under the registration lock while the
// node is unpublished (not reachable from any list), and read only after
// an Acquire load that happens after that write; the handler it points to
// is `Sync` (`ProbeHandler: Sync`) and the engine is `Sync`.
unsafe impl Sync for AttachNode {}
// SAFETY: as above; the raw pointers name `Sync` objects.
unsafe impl Send for AttachNode {}

impl AttachNode {
    const fn new() -> Self {
        Self {
            next: AtomicPtr::new(ptr::null_mut()),
            probe: AtomicU64::new(0),
            link: UnsafeCell::new(NodeLink {
                handler: ptr::null(),
                hit: noop_hit,
                ret: noop_return,
                engine: ptr::null(),
                detach: noop_detach,
            }),
        }
    }

    /// The node's handler and engine.
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    pub(crate) fn link(&self) -> NodeLink {
        // SAFETY: see the `Sync` impl: no write happens while the node is
        // reachable.
        unsafe { *self.link.get() }
    }

    /// The probe this node is attached to, if any.
    pub(crate) fn attached_to(&self) -> Option<ProbeId> {
        decode_id(self.probe.load(Ordering::Acquire))
    }
}

/// One handler object and the link that attaches it to a probe of an
/// engine that outlives it (`'e`).
///
/// See the module documentation for the storage rules. Dropping an
/// attached attachment detaches it and **may block** for a grace period.
///
/// ```
/// # use probe_core::{Attachment, PreAction, ProbeContext, ProbeHandler};
/// # use probe_hal::Registers;
/// struct Nop;
/// impl ProbeHandler for Nop {}
/// // A static attachment (attach it with `Pin::static_ref(&NOP)`):
/// static NOP: Attachment<'static, Nop> = Attachment::new(Nop);
/// assert!(!NOP.is_attached());
/// ```
pub struct Attachment<'e, H: ProbeHandler> {
    node: AttachNode,
    handler: H,
    /// Invariant in `'e`: the engine must outlive the attachment exactly
    /// (no shortening by covariance), since `Drop` calls into it.
    _engine: PhantomData<fn(&'e ()) -> &'e ()>,
    _pinned: PhantomPinned,
}

impl<'e, H: ProbeHandler> Attachment<'e, H> {
    /// A detached attachment of `handler`.
    pub const fn new(handler: H) -> Self {
        Self {
            node: AttachNode::new(),
            handler,
            _engine: PhantomData,
            _pinned: PhantomPinned,
        }
    }

    /// The handler object.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Whether it is attached to a probe right now.
    pub fn is_attached(&self) -> bool {
        self.node.attached_to().is_some()
    }

    /// The probe it is attached to, if any.
    pub fn probe(&self) -> Option<ProbeId> {
        self.node.attached_to()
    }

    /// The node and the link that attaches this handler through `engine`.
    pub(crate) fn node_and_link(
        self: Pin<&Self>,
        engine: *const (),
        detach: DetachFn,
    ) -> (&AttachNode, NodeLink) {
        let this = self.get_ref();
        let link = NodeLink {
            handler: &this.handler as *const H as *const (),
            hit: call_hit::<H>,
            ret: call_return::<H>,
            engine,
            detach,
        };
        (&this.node, link)
    }

    /// The node (to detach it).
    pub(crate) fn node(self: Pin<&Self>) -> &AttachNode {
        &self.get_ref().node
    }
}

impl<H: ProbeHandler> Drop for Attachment<'_, H> {
    fn drop(&mut self) {
        if self.node.attached_to().is_none() {
            return;
        }
        let link = self.node.link();
        // SAFETY: the node is attached, so `link.engine` is the engine it
        // was attached through, of the type `link.detach` was instantiated
        // for, and that engine outlives `'e` (the attach call borrowed it
        // for `'e`, and this attachment is invariant in `'e`).
        unsafe { (link.detach)(link.engine, &self.node) };
    }
}

/// The [`ProbeId`] bits kept in a node (0 never names a probe: every live
/// record has a generation of at least 1).
pub(crate) fn encode_id(id: ProbeId) -> u64 {
    ((id.generation as u64) << 32) | id.index as u64
}

fn decode_id(bits: u64) -> Option<ProbeId> {
    (bits != 0).then_some(ProbeId {
        index: bits as u32,
        generation: (bits >> 32) as u32,
    })
}

/// Abort when the caller of a detach cannot wait: a panic, turned into an
/// abort if it starts to unwind (a second panic during unwinding aborts),
/// so the attachment's memory is never freed while still linked.
#[cold]
pub(crate) fn detach_impossible(why: ProbeError) -> ! {
    struct AbortOnUnwind;
    impl Drop for AbortOnUnwind {
        fn drop(&mut self) {
            panic!("probe attachment freed while attached: aborting");
        }
    }
    let _guard = AbortOnUnwind;
    panic!("an attached probe handler was dropped where it cannot be detached: {why}");
}

/// The error for an attachment that is attached elsewhere (or not here).
pub(crate) fn attach_error(msg: &'static str) -> ProbeError {
    ProbeError::new(ProbeErrorKind::InvalidRequest(msg), 0)
}

// Not in `probe_trap_text`: these are the handler's side of the call (the
// trap path reaches them through a function pointer, like a probe's `fn`
// handlers), and the handler's own code, inlined here, is the kernel's.
unsafe fn call_hit<H: ProbeHandler>(
    h: *const (),
    ctx: &ProbeContext,
    regs: &mut dyn Registers,
) -> PreAction {
    // SAFETY: `h` points at the `H` inside a pinned, attached attachment
    // (`node_and_link`), alive until its detach has waited for a grace
    // period that this call (in trap context) holds back.
    unsafe { (*(h as *const H)).on_hit(ctx, regs) }
}

unsafe fn call_return<H: ProbeHandler>(h: *const (), ctx: &ProbeContext, regs: &mut dyn Registers) {
    // SAFETY: as for `call_hit`.
    unsafe { (*(h as *const H)).on_return(ctx, regs) }
}

fn noop_hit(_: *const (), _: &ProbeContext, _: &mut dyn Registers) -> PreAction {
    PreAction::Continue
}

fn noop_return(_: *const (), _: &ProbeContext, _: &mut dyn Registers) {}

fn noop_detach(_: *const (), _: &AttachNode) {}
