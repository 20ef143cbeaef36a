//! Events on live probes: an event is a handler object
//! ([`probe_core::ProbeHandler`]) attached to a probe the engine registered
//! for its definition.
//!
//! The kernel owns the storage, as for every attachment: it wraps an
//! [`EventHandler`] in a [`probe_core::Attachment`], pins it (a `static`
//! slot, or `Box::pin`), registers the probe with [`register_probe`] and
//! attaches. Deleting the event is dropping (or detaching) the attachment,
//! which waits for a grace period, then unregistering the probe. Enabling
//! and disabling are the engine's `enable`/`disable` of that probe.
//!
//! ```ignore
//! let ev = Box::pin(Attachment::new(EventHandler::new(index, def, &SINK)));
//! let id = probe_events::live::register_probe(&ENGINE, ev.handler().def())?;
//! ENGINE.attach(id, ev.as_ref())?;          // records from the next hit on
//! // … `echo '-:myopen' >> kprobe_events`:
//! drop(ev);                                  // detached after a grace period
//! ENGINE.unregister(id)?;
//! ```

use core::marker::PhantomData;
use core::sync::atomic::{AtomicU64, Ordering};

use lock_api::RawMutex;
use probe_core::{
    Engine, FileId, FileUprobe, KernelServices, Kprobe, Kretprobe, PreAction, ProbeContext,
    ProbeHandler, ProbeId, ProbeSpec,
};
use probe_hal::{Arch, ProbeError, ProbeErrorKind, Registers};

use crate::def::{EventDef, Point};
use crate::fetch::{fetch_all, flags, FetchEnv, Record};
use crate::format::{SymInfo, Symbolizer};
use crate::regs::RegisterNames;

/// The kernel's own address-to-name lookup
/// ([`KernelServices::symbol_name`]) as the formatter's [`Symbolizer`].
pub struct ServicesSymbols<'k, A, K> {
    services: &'k K,
    _isa: PhantomData<fn() -> A>,
}

impl<'k, A: Arch, K: KernelServices<A>> ServicesSymbols<'k, A, K> {
    /// Names from `services` (e.g. `ENGINE.services()`).
    pub fn new(services: &'k K) -> Self {
        Self {
            services,
            _isa: PhantomData,
        }
    }
}

impl<A: Arch, K: KernelServices<A>> Symbolizer for ServicesSymbols<'_, A, K> {
    fn lookup(&self, addr: usize) -> Option<SymInfo<'_>> {
        let (name, sym) = self.services.symbol_name(addr)?;
        Some(SymInfo {
            name,
            offset: addr.checked_sub(sym.addr)?,
            size: sym.size,
        })
    }
}

/// Words of the largest encoded record an event writes.
pub const RECORD_WORDS: usize = 64;

/// What events need from the kernel when they fire (trap context: nothing
/// here may sleep or take a lock the interrupted code may hold).
pub trait EventSink: Sync {
    /// The ISA's register names (the ones the definitions were parsed with).
    fn names(&self) -> &dyn RegisterNames;
    /// Fault-safe memory for the fetch arguments.
    fn env(&self) -> &dyn FetchEnv;
    /// Write an encoded record into CPU `cpu`'s ring; false when it was
    /// dropped (a full ring in drop-newest mode).
    fn write(&self, cpu: usize, words: &[u64]) -> bool;
    /// Nanoseconds since boot, if the kernel has a clock.
    fn timestamp_ns(&self) -> Option<u64> {
        None
    }
    /// The current task's id, if there is one.
    fn pid(&self) -> Option<u32> {
        None
    }
    /// The [`flags`] column (default: interrupts off, as every probe
    /// handler runs).
    fn trace_flags(&self) -> u8 {
        flags::IRQS_OFF
    }
}

/// One event's handler: fetches its arguments and writes a record on every
/// hit (entry events) or return (return events).
pub struct EventHandler<'s, S: EventSink + ?Sized> {
    index: u16,
    def: EventDef,
    sink: &'s S,
    hits: AtomicU64,
    dropped: AtomicU64,
}

impl<'s, S: EventSink + ?Sized> EventHandler<'s, S> {
    /// The handler of event number `index` (the record's event field: the
    /// index the kernel's reader uses to find `def` again).
    pub fn new(index: u16, def: EventDef, sink: &'s S) -> Self {
        Self {
            index,
            def,
            sink,
            hits: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// The definition.
    pub fn def(&self) -> &EventDef {
        &self.def
    }

    /// Records written (`kprobe_profile`'s hit column counts these).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Records the ring refused.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn emit(&self, ctx: &ProbeContext, regs: &dyn Registers, ip: usize, func: usize) {
        let mut rec = Record {
            event: self.index,
            cpu: ctx.cpu as u16,
            flags: self.sink.trace_flags(),
            pid: self.sink.pid(),
            timestamp_ns: self.sink.timestamp_ns(),
            comm: self.sink.env().comm(),
            ip: ip as u64,
            func: func as u64,
            ..Default::default()
        };
        fetch_all(
            &self.def,
            regs,
            self.sink.names(),
            self.sink.env(),
            &mut rec,
        );
        let mut words = [0u64; RECORD_WORDS];
        let written = rec
            .encode(&mut words)
            .is_some_and(|n| self.sink.write(ctx.cpu, &words[..n]));
        if written {
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<S: EventSink + ?Sized> ProbeHandler for EventHandler<'_, S> {
    fn on_hit(&self, ctx: &ProbeContext, regs: &mut dyn Registers) -> PreAction {
        if !self.def.is_return {
            self.emit(ctx, regs, ctx.addr, 0);
        }
        PreAction::Continue
    }

    fn on_return(&self, ctx: &ProbeContext, regs: &mut dyn Registers) {
        if self.def.is_return {
            self.emit(ctx, regs, ctx.return_address, ctx.addr);
        }
    }
}

/// Register the probe `def` needs (enabled, no handlers of its own: the
/// event's [`EventHandler`] is attached to it afterwards): a kprobe at
/// `[MOD:]SYM+offs` or `MEMADDR`, or a kretprobe (`maxactive` as
/// written, the engine's default for 0). Errors as the engine's
/// registration gives them (e.g. `UnknownSymbol` for an inlined-away
/// symbol); nothing is registered on an error. Uprobes by file
/// (`PATH:OFFSET`) need file-keyed probes, which the engine does not have
/// yet: `InvalidRequest`.
pub fn register_probe<
    A: Arch,
    L: RawMutex,
    K: KernelServices<A>,
    const PROBES: usize,
    const INSTANCES: usize,
    const CPUS: usize,
    const PAGES: usize,
    const DATA: usize,
>(
    engine: &Engine<A, L, K, PROBES, INSTANCES, CPUS, PAGES, DATA>,
    def: &EventDef,
) -> Result<ProbeId, ProbeError> {
    match (&def.point, def.is_return) {
        (Point::Symbol { sym, offset }, false) => {
            engine.register_kprobe(&Kprobe::symbol(sym, *offset as usize))
        }
        (Point::Addr(a), false) => engine.register_kprobe(&Kprobe::at(*a as usize)),
        (Point::Symbol { sym, offset: 0 }, true) => {
            let mut p = Kretprobe::symbol(sym);
            if def.maxactive != 0 {
                p = p.maxactive(def.maxactive as usize);
            }
            engine.register_kretprobe(&p)
        }
        (Point::Addr(a), true) => {
            let mut p = Kretprobe::at(*a as usize);
            if def.maxactive != 0 {
                p = p.maxactive(def.maxactive as usize);
            }
            engine.register_kretprobe(&p)
        }
        (Point::Symbol { .. }, true) => Err(ProbeError::new(
            ProbeErrorKind::InvalidRequest("a return probe goes on a function entry (SYM+0)"),
            0,
        )),
        (Point::File { .. }, _) => Err(ProbeError::new(
            ProbeErrorKind::InvalidRequest(
                "a PATH:OFFSET event is a uprobe by file: use file_uprobe and FileUprobes",
            ),
            0,
        )),
    }
}

/// The [`FileUprobe`] a `PATH:OFFSET[(REF_CTR_OFFSET)]` definition needs,
/// for [`probe_core::FileUprobes::register`]: `file` is the kernel's
/// identity of `PATH` (it resolves the path), `spec` the probe placed in
/// each space (its handlers and data: e.g. a pre-handler with the event
/// as data; a return event needs a [`probe_core::Kretprobe`]). A
/// definition that is not `PATH:OFFSET`, or whose kind does not match
/// `spec`'s, is an `InvalidRequest`.
pub fn file_uprobe(
    def: &EventDef,
    file: FileId,
    spec: ProbeSpec<'static>,
) -> Result<FileUprobe, ProbeError> {
    let Point::File {
        offset, ref_ctr, ..
    } = &def.point
    else {
        return Err(ProbeError::new(
            ProbeErrorKind::InvalidRequest("not a PATH:OFFSET definition"),
            0,
        ));
    };
    if def.is_return != matches!(spec, ProbeSpec::Kretprobe(_)) {
        return Err(ProbeError::new(
            ProbeErrorKind::InvalidRequest(
                "a return event needs a Kretprobe spec, an entry event a Kprobe",
            ),
            0,
        ));
    }
    Ok(FileUprobe {
        file,
        offset: *offset,
        ref_ctr: *ref_ctr,
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::def::{parse, Command, Flavor};
    use crate::regs::{RegRef, RegisterNames};

    struct NoNames;
    impl RegisterNames for NoNames {
        fn lookup(&self, _: &str) -> Option<RegRef> {
            None
        }
    }

    fn def(line: &str) -> EventDef {
        match parse(line, Flavor::Uprobe, &NoNames) {
            Ok(Command::Define(d)) => d,
            other => panic!("{line}: {other:?}"),
        }
    }

    const FILE: FileId = FileId { dev: 1, ino: 2 };

    #[test]
    fn a_path_offset_definition_becomes_a_file_uprobe() {
        let entry = ProbeSpec::Kprobe(Kprobe::at(0));
        let p = file_uprobe(&def("p:g/e /bin/sh:0x1234(0x40)"), FILE, entry).unwrap();
        assert_eq!((p.file, p.offset, p.ref_ctr), (FILE, 0x1234, Some(0x40)));
        let r = def("r:g/r /bin/sh:0x1234");
        assert!(
            file_uprobe(&r, FILE, entry).is_err(),
            "a return event with a Kprobe spec"
        );
        let ret = ProbeSpec::Kretprobe(Kretprobe::at(0));
        assert_eq!(file_uprobe(&r, FILE, ret).unwrap().ref_ctr, None);
        let k = match parse("p:g/k do_sys_open", Flavor::Kprobe, &NoNames) {
            Ok(Command::Define(d)) => d,
            other => panic!("{other:?}"),
        };
        assert!(file_uprobe(&k, FILE, entry).is_err(), "not PATH:OFFSET");
    }
}
