//! A perf-event skeleton: `perf_event_open` for probe events, an fd
//! table, `PERF_EVENT_IOC_SET_BPF` and close. Programs are plain closures
//! over the Linux `pt_regs` view the probe glue gives them (a stand-in for
//! an eBPF VM).

use alloc::boxed::Box;
use alloc::vec::Vec;

/// The context programs of probe events read.
pub type Ctx = crate::probe::PtRegs; // probe hook

/// A "BPF program": runs on the context, returns a value.
pub type Program = Box<dyn Fn(&mut Ctx) -> u64 + Send + Sync>;

/// What a probe event is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerfKind {
    /// Function entry or an offset in it (kernel).
    Kprobe,
    /// Function return (kernel).
    Kretprobe,
    /// A user address.
    Uprobe,
    /// A user function's return.
    Uretprobe,
}

/// `perf_event_attr`, the parts a probe event uses.
#[derive(Debug, Clone, Copy)]
pub struct PerfAttr<'a> {
    /// The kind.
    pub kind: PerfKind,
    /// Kernel symbol (`MOD:SYM` accepted), or empty for `addr`.
    pub symbol: &'a str,
    /// Offset into the symbol, or the address.
    pub addr: usize,
    /// The user address space (uprobes).
    pub asid: usize,
}

/// An open perf event.
pub trait PerfEvent: Send + Sync {
    /// Attach a program (`PERF_EVENT_IOC_SET_BPF`).
    fn set_bpf(&mut self, prog: Program) -> Result<(), i32>;
    /// Detach the program (may block for a grace period).
    fn clear_bpf(&mut self);
}

type Slot = Option<Box<dyn PerfEvent>>;
static EVENTS: spin::Mutex<Vec<Slot>> = spin::Mutex::new(Vec::new());

/// `perf_event_open`: a new fd, or a negative errno.
pub fn open(attr: &PerfAttr<'_>) -> Result<usize, i32> {
    let ev = crate::probe::perf::open(attr)?; // probe hook
    let mut t = EVENTS.lock();
    t.push(Some(ev));
    Ok(t.len() - 1)
}

fn with_event<R>(fd: usize, f: impl FnOnce(&mut dyn PerfEvent) -> R) -> Result<R, i32> {
    let mut t = EVENTS.lock();
    let ev = t.get_mut(fd).and_then(|e| e.as_mut()).ok_or(-9)?;
    Ok(f(ev.as_mut()))
}

/// `ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog)`.
pub fn set_bpf(fd: usize, prog: Program) -> Result<(), i32> {
    with_event(fd, |e| e.set_bpf(prog))?
}

/// Detach the program of `fd` (the bpf link's fd closed).
pub fn clear_bpf(fd: usize) -> Result<(), i32> {
    with_event(fd, |e| e.clear_bpf())
}

/// `close(fd)`: the event and its probe go (may block).
pub fn close(fd: usize) -> Result<(), i32> {
    let ev = EVENTS.lock().get_mut(fd).and_then(Option::take).ok_or(-9)?;
    drop(ev);
    Ok(())
}
