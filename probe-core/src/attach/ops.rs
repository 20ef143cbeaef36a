//! The engine's side of attachments: attach, replace, detach (registration
//! context, under the lock) and the trap path's walk of a probe's list.

use core::pin::Pin;
use core::ptr;
use core::sync::atomic::Ordering;

use lock_api::RawMutex;
use probe_hal::{Arch, ProbeError, Registers};

use super::{attach_error, detach_impossible, encode_id, AttachNode, Attachment, ProbeHandler};
use crate::engine::{Engine, Registry};
use crate::probe::ProbeRecord;
use crate::services::KernelServices;
use crate::spec::{PreAction, ProbeContext, ProbeId};

impl<
        A: Arch,
        L: RawMutex,
        K: KernelServices<A>,
        const PROBES: usize,
        const INSTANCES: usize,
        const CPUS: usize,
        const PAGES: usize,
        const DATA: usize,
    > Engine<A, L, K, PROBES, INSTANCES, CPUS, PAGES, DATA>
{
    /// Attach a handler object to the live probe `id`, after the handlers
    /// already attached (perf's `PERF_EVENT_IOC_SET_BPF`). It runs from the
    /// next hit on; see [`ProbeHandler`] for when.
    ///
    /// Errors: [`NoSuchProbe`](probe_hal::ProbeErrorKind::NoSuchProbe) for
    /// a stale id, [`InvalidRequest`](probe_hal::ProbeErrorKind::InvalidRequest)
    /// when `att` is attached already (here or elsewhere),
    /// [`InTrapContext`](probe_hal::ProbeErrorKind::InTrapContext) from a
    /// probe handler. Nothing changes on an error.
    ///
    /// ```
    /// # use probe_core::{Attachment, ProbeHandler};
    /// # use core::pin::Pin;
    /// # fn demo<E>(_: E) {}
    /// struct Program;
    /// impl ProbeHandler for Program {}
    /// static PROGRAM: Attachment<'static, Program> = Attachment::new(Program);
    /// // engine.attach(id, Pin::static_ref(&PROGRAM))?;
    /// // … later: engine.detach(Pin::static_ref(&PROGRAM))?;
    /// # let _ = Pin::static_ref(&PROGRAM);
    /// ```
    pub fn attach<'e, H: ProbeHandler>(
        &'e self,
        id: ProbeId,
        att: Pin<&Attachment<'e, H>>,
    ) -> Result<(), ProbeError> {
        let _reg = self.lock_registry()?;
        let rec = self.record(id)?;
        let (node, link) = att.node_and_link(self.as_erased(), Self::detach_on_drop);
        if node.attached_to().is_some() {
            return Err(attach_error("the attachment is attached already"));
        }
        // SAFETY: registration lock held and the node is in no list: no
        // reader can see this write before the Release store below.
        unsafe { *node.link.get() = link };
        node.next.store(ptr::null_mut(), Ordering::Relaxed);
        node.probe.store(encode_id(id), Ordering::Release);
        let tail = Self::tail_link(rec);
        tail.store(
            node as *const AttachNode as *mut AttachNode,
            Ordering::Release,
        );
        Ok(())
    }

    /// Put `new` in the place of the attached `old`, in one step: every
    /// hit runs exactly one of them. Waits for a grace period (like
    /// [`Engine::detach`]), after which `old` is detached and reusable.
    ///
    /// Errors as for [`Engine::attach`] and [`Engine::detach`]; nothing
    /// changes on an error.
    pub fn replace<'e, H: ProbeHandler, G: ProbeHandler>(
        &'e self,
        old: Pin<&Attachment<'e, H>>,
        new: Pin<&Attachment<'e, G>>,
    ) -> Result<(), ProbeError> {
        let _reg = self.lock_registry()?;
        let old_node = old.node();
        let id = self.attached_here(old_node)?;
        let rec = self.record(id)?;
        let (node, link) = new.node_and_link(self.as_erased(), Self::detach_on_drop);
        if node.attached_to().is_some() {
            return Err(attach_error("the new attachment is attached already"));
        }
        // SAFETY: as in `attach`: unpublished node, lock held.
        unsafe { *node.link.get() = link };
        node.next
            .store(old_node.next.load(Ordering::Relaxed), Ordering::Relaxed);
        node.probe.store(encode_id(id), Ordering::Release);
        let Some(pred) = Self::link_to(rec, old_node) else {
            node.probe.store(0, Ordering::Release);
            return Err(attach_error("the attachment is not in its probe's list"));
        };
        pred.store(
            node as *const AttachNode as *mut AttachNode,
            Ordering::Release,
        );
        self.services.synchronize();
        Self::mark_detached(old_node);
        Ok(())
    }

    /// Detach `att` from its probe and wait for a grace period: when this
    /// returns, no CPU runs its handler any more and it may be attached
    /// again or freed. Dropping an attached attachment does the same.
    ///
    /// Errors: [`InvalidRequest`](probe_hal::ProbeErrorKind::InvalidRequest)
    /// when it is not attached to a probe of this engine,
    /// [`InTrapContext`](probe_hal::ProbeErrorKind::InTrapContext) from a
    /// probe handler.
    pub fn detach<'e, H: ProbeHandler>(
        &'e self,
        att: Pin<&Attachment<'e, H>>,
    ) -> Result<(), ProbeError> {
        let mut reg = self.lock_registry()?;
        self.detach_locked(&mut reg, att.node())
    }

    /// Number of handler objects attached to probe `id`.
    pub fn attached_count(&self, id: ProbeId) -> Result<usize, ProbeError> {
        let _reg = self
            .lock_for_query()
            .ok_or(ProbeError::new(probe_hal::ProbeErrorKind::InTrapContext, 0))?;
        let rec = self.record(id)?;
        Ok(Self::count_attached(rec))
    }

    pub(crate) fn count_attached(rec: &ProbeRecord) -> usize {
        let mut n = 0;
        let mut cur = rec.attached.load(Ordering::Acquire);
        while !cur.is_null() && n <= PROBES * 64 {
            n += 1;
            // SAFETY: attached nodes stay valid until detached, which
            // needs the registration lock: callers hold it.
            cur = unsafe { &*cur }.next.load(Ordering::Acquire);
        }
        n
    }

    fn detach_locked(
        &self,
        _reg: &mut Registry<PAGES>,
        node: &AttachNode,
    ) -> Result<(), ProbeError> {
        let id = self.attached_here(node)?;
        let rec = self.record(id)?;
        let Some(pred) = Self::link_to(rec, node) else {
            return Err(attach_error("the attachment is not in its probe's list"));
        };
        pred.store(node.next.load(Ordering::Relaxed), Ordering::Release);
        self.services.synchronize();
        Self::mark_detached(node);
        Ok(())
    }

    /// The probe `node` is attached to, if it is attached through this
    /// engine (registration lock held).
    fn attached_here(&self, node: &AttachNode) -> Result<ProbeId, ProbeError> {
        match node.attached_to() {
            Some(id) if node.link().engine == self.as_erased() => Ok(id),
            _ => Err(attach_error(
                "the attachment is not attached to this engine",
            )),
        }
    }

    /// After a grace period: the node is out of every list and reusable.
    fn mark_detached(node: &AttachNode) {
        node.next.store(ptr::null_mut(), Ordering::Relaxed);
        node.probe.store(0, Ordering::Release);
    }

    /// Probe `rec` is being freed (unlinked, grace period passed): every
    /// node attached to it is detached (registration lock held).
    pub(crate) fn detach_all(rec: &ProbeRecord) {
        let mut cur = rec.attached.swap(ptr::null_mut(), Ordering::AcqRel);
        while !cur.is_null() {
            // SAFETY: an attached node is alive until it is marked
            // detached, which happens here, under the lock.
            let node = unsafe { &*cur };
            cur = node.next.load(Ordering::Relaxed);
            Self::mark_detached(node);
        }
    }

    /// The link that points at the end of `rec`'s list.
    fn tail_link(rec: &ProbeRecord) -> &core::sync::atomic::AtomicPtr<AttachNode> {
        let mut link = &rec.attached;
        loop {
            let cur = link.load(Ordering::Relaxed);
            if cur.is_null() {
                return link;
            }
            // SAFETY: a node in the list is alive (lock held: nobody
            // detaches it meanwhile).
            link = &unsafe { &*cur }.next;
        }
    }

    /// The link that points at `node` in `rec`'s list, if it is there.
    fn link_to<'a>(
        rec: &'a ProbeRecord,
        node: &AttachNode,
    ) -> Option<&'a core::sync::atomic::AtomicPtr<AttachNode>> {
        let mut link = &rec.attached;
        loop {
            let cur = link.load(Ordering::Relaxed);
            if cur.is_null() {
                return None;
            }
            if ptr::eq(cur, node) {
                return Some(link);
            }
            // SAFETY: as in `tail_link`.
            link = &unsafe { &*cur }.next;
        }
    }

    /// This engine as the thin pointer attachments keep.
    fn as_erased(&self) -> *const () {
        self as *const Self as *const ()
    }

    /// What an attachment's `Drop` calls (see [`Attachment`]).
    ///
    /// # Safety
    /// `engine` is an engine of this type that is still alive.
    unsafe fn detach_on_drop(engine: *const (), node: &AttachNode) {
        // SAFETY: the caller's promise.
        let engine = unsafe { &*(engine as *const Self) };
        let mut reg = match engine.lock_registry() {
            Ok(reg) => reg,
            Err(e) => detach_impossible(e),
        };
        // Unregistering the probe may have detached it meanwhile.
        if node.attached_to().is_some() {
            if let Err(e) = engine.detach_locked(&mut reg, node) {
                detach_impossible(e);
            }
        }
    }

    /// Run the `on_hit` of every handler attached to `rec`; stops at the
    /// first that skips the instruction.
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    pub(crate) fn run_attached_hits(
        rec: &ProbeRecord,
        ctx: &ProbeContext,
        regs: &mut dyn Registers,
    ) -> PreAction {
        let mut cur = rec.attached.load(Ordering::Acquire);
        while !cur.is_null() {
            // SAFETY: reached through Acquire loads from the probe's list
            // while in trap context: the node (and its handler) stays
            // alive until a grace period after it is unlinked.
            let node = unsafe { &*cur };
            let link = node.link();
            // SAFETY: `link` was made for this node's handler type.
            if unsafe { (link.hit)(link.handler, ctx, regs) } == PreAction::SkipInstruction {
                return PreAction::SkipInstruction;
            }
            cur = node.next.load(Ordering::Acquire);
        }
        PreAction::Continue
    }

    /// Run the `on_return` of every handler attached to `rec`.
    #[inline(always)]
    #[link_section = "probe_trap_text"]
    pub(crate) fn run_attached_returns(
        rec: &ProbeRecord,
        ctx: &ProbeContext,
        regs: &mut dyn Registers,
    ) {
        let mut cur = rec.attached.load(Ordering::Acquire);
        while !cur.is_null() {
            // SAFETY: as in `run_attached_hits`.
            let node = unsafe { &*cur };
            let link = node.link();
            // SAFETY: as in `run_attached_hits`.
            unsafe { (link.ret)(link.handler, ctx, regs) };
            cur = node.next.load(Ordering::Acquire);
        }
    }
}
