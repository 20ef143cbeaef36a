//! What a user asks for: probe descriptions, handlers and identities.

use core::any::Any;

use probe_hal::Registers;

use crate::services::Space;

/// User data attached to a probe, handed back to its handlers.
pub type UserData = &'static (dyn Any + Send + Sync);

/// Data for probes registered without any.
pub static NO_DATA: () = ();

/// What a pre-handler asks the engine to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreAction {
    /// Execute the probed instruction and run the post-handlers.
    Continue,
    /// The handler moved the pc: skip the probed instruction and the
    /// post-handlers and resume at the new pc.
    SkipInstruction,
}

/// What a return probe's entry handler decides about this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryAction {
    /// Track this call: the return handler runs when it returns.
    Track,
    /// Do not track this call (its instance goes back to the pool).
    Decline,
}

/// Runs before the probed instruction, with the pc at the probed address
/// (on every ISA). Return [`PreAction::SkipInstruction`] after moving the pc
/// elsewhere to skip the instruction.
pub type PreHandler = fn(&ProbeContext, &mut dyn Registers) -> PreAction;
/// Runs after the probed instruction.
pub type PostHandler = fn(&ProbeContext, &mut dyn Registers);
/// Runs at the entry of a function with a return probe; `data` is this
/// call's per-instance data.
pub type EntryHandler = fn(&ProbeContext, &mut dyn Registers, data: &mut [u8]) -> EntryAction;
/// Runs when a function with a return probe returns; the registers are the
/// ones at return (return value readable and writable).
pub type ReturnHandler = fn(&ProbeContext, &mut dyn Registers, data: &mut [u8]);

/// Identifies a registered probe. Stale after unregister: every use then
/// fails with `NoSuchProbe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl ProbeId {
    /// Both halves in one word (one comparison on the hit path).
    #[inline(always)]
    pub(crate) fn key(self) -> u64 {
        u64::from(self.index) | u64::from(self.generation) << 32
    }

    /// An id that never names a probe (to fill an array before
    /// [`crate::Engine::register_batch`] writes it).
    pub const NONE: ProbeId = ProbeId {
        index: u32::MAX,
        generation: 0,
    };
}

/// What a handler learns about the hit.
#[derive(Clone, Copy)]
pub struct ProbeContext {
    /// The probe that fired.
    pub id: ProbeId,
    /// The probed address.
    pub addr: usize,
    /// The probe's user data.
    pub data: UserData,
    /// The CPU the hit happened on.
    pub cpu: usize,
    /// The address space of the probed code.
    pub space: Space,
    /// For return handlers, the real return address; 0 otherwise.
    pub return_address: usize,
    /// The probe's kind: a handler object attached to a kretprobe learns
    /// here that a hit is the function's entry (Linux runs a kretprobe
    /// event's program at the return only).
    pub kind: ProbeKind,
}

impl core::fmt::Debug for ProbeContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ProbeContext")
            .field("id", &self.id)
            .field("addr", &format_args!("{:#x}", self.addr))
            .field("cpu", &self.cpu)
            .field("space", &self.space)
            .finish_non_exhaustive()
    }
}

/// Where a probe goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// An absolute address.
    Addr(usize),
    /// A kernel symbol plus an offset (resolved through the kernel services).
    Symbol {
        /// Symbol name, or `MOD:SYM` for symbol `SYM` of module `MOD`
        /// (resolved with [`crate::KernelServices::lookup_module_symbol`]).
        name: &'a str,
        /// Offset into the symbol.
        offset: usize,
    },
}

impl<'a> Target<'a> {
    /// A target as a perf probe event names it (Linux's
    /// `perf_event_attr` for the kprobe PMU: `kprobe_func` with
    /// `probe_offset`, or, when the name is empty, `kprobe_addr`): `name`
    /// plus `value` as an offset, or `value` as an address.
    ///
    /// ```
    /// use probe_core::Target;
    /// assert_eq!(Target::symbol_or_addr("vfs_read", 4), Target::Symbol { name: "vfs_read", offset: 4 });
    /// assert_eq!(Target::symbol_or_addr("", 0x1000), Target::Addr(0x1000));
    /// ```
    pub const fn symbol_or_addr(name: &'a str, value: usize) -> Self {
        if name.is_empty() {
            Target::Addr(value)
        } else {
            Target::Symbol {
                name,
                offset: value,
            }
        }
    }
}

/// A kprobe (or, with [`Kprobe::in_space`], a uprobe).
///
/// ```
/// use probe_core::{Kprobe, PreAction, ProbeContext};
/// use probe_hal::Registers;
/// fn count(_: &ProbeContext, _: &mut dyn Registers) -> PreAction { PreAction::Continue }
/// let p = Kprobe::symbol("do_sys_open", 0).pre(count);
/// assert!(p.enabled);
/// ```
#[derive(Clone, Copy)]
pub struct Kprobe<'a> {
    /// Where.
    pub target: Target<'a>,
    /// In which address space.
    pub space: Space,
    /// Runs before the instruction.
    pub pre: Option<PreHandler>,
    /// Runs after the instruction.
    pub post: Option<PostHandler>,
    /// Handed to the handlers.
    pub data: UserData,
    /// Armed when registered.
    pub enabled: bool,
    /// Whether its address may be jump-optimised (default: yes).
    pub optimize: bool,
}

impl<'a> Kprobe<'a> {
    /// A kprobe at `addr`, enabled, no handlers yet.
    pub fn at(addr: usize) -> Self {
        Self::new(Target::Addr(addr))
    }
    /// A kprobe at `name + offset`.
    pub fn symbol(name: &'a str, offset: usize) -> Self {
        Self::new(Target::Symbol { name, offset })
    }
    fn new(target: Target<'a>) -> Self {
        Self {
            target,
            space: Space::Kernel,
            pre: None,
            post: None,
            data: &NO_DATA,
            enabled: true,
            optimize: true,
        }
    }
    /// Never jump-optimised: every hit takes the breakpoint trap (Linux
    /// has no such flag; its `debug.kprobes-optimization` is engine-wide,
    /// here [`crate::Engine::set_optimization`]).
    pub fn no_optimize(mut self) -> Self {
        self.optimize = false;
        self
    }
    /// With a pre-handler.
    pub fn pre(mut self, h: PreHandler) -> Self {
        self.pre = Some(h);
        self
    }
    /// With a post-handler.
    pub fn post(mut self, h: PostHandler) -> Self {
        self.post = Some(h);
        self
    }
    /// With user data.
    pub fn data(mut self, data: UserData) -> Self {
        self.data = data;
        self
    }
    /// Registered disabled (no breakpoint until enabled).
    pub fn disabled(mut self) -> Self {
        self.enabled = false;
        self
    }
    /// In a user address space: a uprobe.
    pub fn in_space(mut self, space: Space) -> Self {
        self.space = space;
        self
    }
}

/// A return probe (kretprobe, or with [`Kretprobe::in_space`] a uretprobe).
#[derive(Clone, Copy)]
pub struct Kretprobe<'a> {
    /// The function entry.
    pub target: Target<'a>,
    /// In which address space.
    pub space: Space,
    /// Runs at entry; may decline the call.
    pub entry: Option<EntryHandler>,
    /// Runs at return.
    pub ret: Option<ReturnHandler>,
    /// At most this many calls tracked at once; more are counted as missed.
    pub maxactive: usize,
    /// Bytes of per-instance data the handlers get (at most the engine's
    /// instance data size).
    pub data_size: usize,
    /// Handed to the handlers.
    pub data: UserData,
    /// Armed when registered.
    pub enabled: bool,
    /// Whether its address may be jump-optimised (default: yes).
    pub optimize: bool,
}

impl<'a> Kretprobe<'a> {
    /// A return probe on the function at `addr`.
    pub fn at(addr: usize) -> Self {
        Self::new(Target::Addr(addr))
    }
    /// A return probe on the function `name`.
    pub fn symbol(name: &'a str) -> Self {
        Self::new(Target::Symbol { name, offset: 0 })
    }
    fn new(target: Target<'a>) -> Self {
        Self {
            target,
            space: Space::Kernel,
            entry: None,
            ret: None,
            maxactive: 0,
            data_size: 0,
            data: &NO_DATA,
            enabled: true,
            optimize: true,
        }
    }
    /// Never jump-optimised: every entry takes the breakpoint trap.
    pub fn no_optimize(mut self) -> Self {
        self.optimize = false;
        self
    }
    /// With an entry handler.
    pub fn entry(mut self, h: EntryHandler) -> Self {
        self.entry = Some(h);
        self
    }
    /// With a return handler.
    pub fn ret(mut self, h: ReturnHandler) -> Self {
        self.ret = Some(h);
        self
    }
    /// At most `n` calls tracked at once (0: the default, max(10, 2 × CPUs)).
    pub fn maxactive(mut self, n: usize) -> Self {
        self.maxactive = n;
        self
    }
    /// `n` bytes of per-instance data.
    pub fn data_size(mut self, n: usize) -> Self {
        self.data_size = n;
        self
    }
    /// With user data.
    pub fn data(mut self, data: UserData) -> Self {
        self.data = data;
        self
    }
    /// Registered disabled.
    pub fn disabled(mut self) -> Self {
        self.enabled = false;
        self
    }
    /// In a user address space: a uretprobe.
    pub fn in_space(mut self, space: Space) -> Self {
        self.space = space;
        self
    }
}

/// A probe of either kind (an entry of a batch registration, or what
/// [`crate::Engine::register`] takes).
#[derive(Clone, Copy)]
pub enum ProbeSpec<'a> {
    /// A kprobe or uprobe.
    Kprobe(Kprobe<'a>),
    /// A kretprobe or uretprobe.
    Kretprobe(Kretprobe<'a>),
}

impl<'a> ProbeSpec<'a> {
    /// A probe of `kind` at `target` in `space`, enabled, with no handlers
    /// of its own (attach handler objects to it, or set them on the
    /// variant): what a perf or trace-event layer opens.
    ///
    /// ```
    /// use probe_core::{ProbeKind, ProbeSpec, Space, Target};
    /// let s = ProbeSpec::at(Target::Symbol { name: "do_sys_open", offset: 0 }, Space::Kernel, ProbeKind::Kretprobe);
    /// assert!(matches!(s, ProbeSpec::Kretprobe(_)));
    /// ```
    pub fn at(target: Target<'a>, space: Space, kind: ProbeKind) -> Self {
        match kind {
            ProbeKind::Kprobe => ProbeSpec::Kprobe(Kprobe::new(target).in_space(space)),
            ProbeKind::Kretprobe => ProbeSpec::Kretprobe(Kretprobe::new(target).in_space(space)),
        }
    }
}

/// What kind a listed probe is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// Kprobe or uprobe.
    Kprobe,
    /// Kretprobe or uretprobe.
    Kretprobe,
}

/// A probe as the listing shows it. Its `Display` is one line of a
/// listing: address, kind (`k`, `r`, `u`, `ur`), space, state and counters.
///
/// ```
/// # use probe_core::{ProbeInfo, ProbeKind, Space, ProbeId};
/// # use probe_core::{NotOptimized, Optimization};
/// let p = ProbeInfo { id: ProbeId::NONE, addr: 0x1000, space: Space::User(7), kind: ProbeKind::Kretprobe,
///     enabled: false, hits: 3, missed: 1, attached: 2,
///     optimization: Optimization::NotOptimized(NotOptimized::UserSpace) };
/// assert_eq!(p.to_string(), "0x1000 ur space=7 [DISABLED] hits=3 missed=1 attached=2");
/// let k = ProbeInfo { space: Space::Kernel, kind: ProbeKind::Kprobe, enabled: true,
///     optimization: Optimization::NotOptimized(NotOptimized::PostHandler), ..p };
/// assert_eq!(k.to_string(), "0x1000 k kernel hits=3 missed=1 attached=2 [unoptimized: post-handler]");
/// let o = ProbeInfo { optimization: Optimization::Optimized, ..k };
/// assert_eq!(o.to_string(), "0x1000 k kernel hits=3 missed=1 attached=2 [OPTIMIZED]");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeInfo {
    /// Its id.
    pub id: ProbeId,
    /// The probed address.
    pub addr: usize,
    /// The address space.
    pub space: Space,
    /// Kprobe or kretprobe.
    pub kind: ProbeKind,
    /// Whether it fires.
    pub enabled: bool,
    /// Times its handlers ran (for a return probe: calls tracked).
    pub hits: u64,
    /// Times it was hit but ran no handler (re-entry, no free instance).
    pub missed: u64,
    /// Handler objects attached to it ([`crate::Engine::attach`]).
    pub attached: usize,
    /// Whether its address is jump-optimised, and if not, why.
    pub optimization: crate::Optimization,
}

impl core::fmt::Display for ProbeInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kind = match (self.space, self.kind) {
            (Space::Kernel, ProbeKind::Kprobe) => "k",
            (Space::Kernel, ProbeKind::Kretprobe) => "r",
            (Space::User(_), ProbeKind::Kprobe) => "u",
            (Space::User(_), ProbeKind::Kretprobe) => "ur",
        };
        write!(f, "{:#x} {kind}", self.addr)?;
        match self.space {
            Space::Kernel => f.write_str(" kernel")?,
            Space::User(s) => write!(f, " space={s}")?,
        }
        if !self.enabled {
            f.write_str(" [DISABLED]")?;
        }
        write!(
            f,
            " hits={} missed={} attached={}",
            self.hits, self.missed, self.attached
        )?;
        match (self.space, self.optimization) {
            (Space::Kernel, crate::Optimization::Optimized) => f.write_str(" [OPTIMIZED]"),
            (Space::Kernel, crate::Optimization::NotOptimized(why)) if self.enabled => {
                write!(f, " [unoptimized: {}]", why.code())
            }
            _ => Ok(()),
        }
    }
}
