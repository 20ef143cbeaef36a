//! Jump-optimised kprobes ("optprobes"): a kernel probe whose breakpoint is
//! replaced by a jump to a detour, so a hit costs a jump and a call instead
//! of a trap (Linux: `kernel/kprobes.c` optimizer and
//! `arch/x86/kernel/kprobes/opt.c`).
//!
//! The backend decides where a jump may go and writes the detour
//! ([`probe_hal::Arch::analyze_optimizable`], [`probe_hal::Arch::build_detour`]);
//! this module decides *whether* a point is optimised (the policy: kernel
//! space, the engine-wide switch, no post-handler, no opt-out, no other
//! probe in the displaced region, …), allocates detours
//! ([`detours`]), and installs and removes the jump with a protocol that
//! never lets a CPU execute a half-written jump ([`install`]). A detour
//! calls back into the engine through [`probe_hal::opthook`] ([`hit`]).
//!
//! **States of a point** (`ProbePoint::opt`): `NONE` (a breakpoint probe),
//! `STAGED` (the breakpoint is still there, or back, but its trap path
//! resumes in the detour's copy of the displaced region, so no CPU resumes
//! inside the region while the jump's bytes change), `ACTIVE` (the jump is
//! written). The breakpoint path reads the state with Acquire.

pub(crate) mod detours;
pub(crate) mod hit;
pub(crate) mod install;

use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use probe_hal::{OptRegion, SiteRule};

/// A breakpoint probe.
pub(crate) const NONE: u8 = 0;
/// The jump is being installed or removed: the breakpoint path resumes in
/// the detour.
pub(crate) const STAGED: u8 = 1;
/// The jump is in the text.
pub(crate) const ACTIVE: u8 = 2;

/// Whether a kernel probe is jump-optimised (in [`crate::ProbeInfo`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimization {
    /// Its breakpoint is replaced by a jump: a hit takes no trap.
    Optimized,
    /// It is a breakpoint probe, for this reason.
    NotOptimized(NotOptimized),
}

/// Why a probe is not jump-optimised. None of these is an error: the
/// probe works through its breakpoint.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotOptimized {
    /// Optimisation is switched off for the engine
    /// ([`crate::Engine::set_optimization`]; Linux's
    /// `debug.kprobes-optimization`).
    SwitchedOff,
    /// A probe at this address asked not to be optimised
    /// ([`crate::Kprobe::no_optimize`]).
    OptedOut,
    /// A probe at this address has a post-handler (alone or in an
    /// aggregate): a post-handler runs after a single step, which a jump
    /// has not. Linux refuses the same.
    PostHandler,
    /// No probe at this address is enabled.
    Disabled,
    /// A user-space probe (uprobes are not optimised, as in Linux).
    UserSpace,
    /// The optimised-hit hook is not installed for this engine
    /// ([`probe_hal::opthook::set_opt_hook`]): a detour would find no
    /// engine.
    HookMissing,
    /// The kernel's grace period does not wait for tasks preempted in
    /// kernel text ([`crate::KernelServices::kernel_slots_covered_by_grace_period`]):
    /// a task preempted inside the displaced region could resume into the
    /// middle of the jump (Linux waits with `synchronize_rcu_tasks`).
    GracePeriod,
    /// The kernel gave no detour memory within the jump's reach
    /// ([`crate::KernelServices::alloc_detour_page`]).
    NoDetourMemory,
    /// Another probe lies inside the displaced region, starting at `addr`.
    ProbeInRegion {
        /// That probe's address.
        addr: usize,
    },
    /// A text-patching site of the kernel (static key, alternative) lies
    /// inside the displaced region
    /// ([`crate::KernelServices::text_patch_site_in`]).
    TextPatchSite,
    /// The backend's rule for the site.
    Site(SiteRule),
    /// Writing the detour or the jump failed; the probe stayed a
    /// breakpoint probe.
    PatchFailed,
}

impl NotOptimized {
    /// A short name for the listing's `[unoptimized: …]`.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::SwitchedOff => "switched-off",
            Self::OptedOut => "opted-out",
            Self::PostHandler => "post-handler",
            Self::Disabled => "disabled",
            Self::UserSpace => "user-space",
            Self::HookMissing => "hook-missing",
            Self::GracePeriod => "grace-period",
            Self::NoDetourMemory => "no-detour-memory",
            Self::ProbeInRegion { .. } => "probe-in-region",
            Self::TextPatchSite => "text-patch-site",
            Self::PatchFailed => "patch-failed",
            Self::Site(rule) => match rule {
                SiteRule::NotSupported => "not-supported",
                SiteRule::FunctionSizeUnknown => "size-unknown",
                SiteRule::RegionPastFunction => "past-function-end",
                SiteRule::NotStepped { .. } => "not-boostable",
                SiteRule::MayFault { .. } => "may-fault",
                SiteRule::JumpIntoRegion { .. } => "jump-into-region",
                SiteRule::IndirectJump { .. } => "indirect-jump",
                SiteRule::Undecodable { .. } => "undecodable",
                SiteRule::NotInstructionBoundary { .. } => "not-boundary",
                SiteRule::OutOfReach => "out-of-reach",
                SiteRule::ReadFailed { .. } => "read-failed",
                SiteRule::BufferTooSmall { .. } => "detour-too-large",
                _ => "site",
            },
        }
    }
}

impl fmt::Display for NotOptimized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SwitchedOff => f.write_str("optimisation is switched off"),
            Self::OptedOut => f.write_str("a probe here opted out"),
            Self::PostHandler => f.write_str("a probe here has a post-handler"),
            Self::Disabled => f.write_str("no probe here is enabled"),
            Self::UserSpace => f.write_str("user-space probes are not optimised"),
            Self::HookMissing => {
                f.write_str("the optimised-hit hook is not installed for this engine")
            }
            Self::GracePeriod => f.write_str("the grace period does not wait for preempted tasks"),
            Self::NoDetourMemory => f.write_str("no detour memory within reach"),
            Self::ProbeInRegion { addr } => {
                write!(f, "the probe at {addr:#x} is inside the displaced region")
            }
            Self::TextPatchSite => {
                f.write_str("a text-patching site is inside the displaced region")
            }
            Self::Site(rule) => rule.fmt(f),
            Self::PatchFailed => f.write_str("writing the detour or the jump failed"),
        }
    }
}

impl fmt::Display for Optimization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Optimized => f.write_str("optimized"),
            Self::NotOptimized(why) => write!(f, "not optimized: {why}"),
        }
    }
}

/// What the registration side keeps about a point's optimisation.
#[derive(Clone, Copy)]
pub(crate) struct OptData {
    /// The displaced region while a detour exists.
    pub(crate) region: Option<OptRegion>,
    /// The detour (0: none).
    pub(crate) detour: usize,
    /// Why the point is not optimised (`None` while it is).
    pub(crate) reason: Option<NotOptimized>,
}

impl OptData {
    /// A point that was never optimised.
    pub(crate) const fn unused() -> Self {
        Self {
            region: None,
            detour: 0,
            reason: Some(NotOptimized::Disabled),
        }
    }
}

/// A point's optimisation state.
pub(crate) struct OptSlot {
    /// `NONE`, `STAGED` or `ACTIVE`.
    pub(crate) state: AtomicU8,
    /// Where the breakpoint path resumes while the state is not `NONE`:
    /// the detour's copy of the displaced region.
    pub(crate) resume: AtomicUsize,
    /// The displaced region `[start, end)` while the state is not `NONE`,
    /// and the detour's first byte (for [`crate::Engine::in_optimized_code`],
    /// lock-free).
    pub(crate) region_start: AtomicUsize,
    pub(crate) region_end: AtomicUsize,
    pub(crate) detour: AtomicUsize,
    data: UnsafeCell<OptData>,
}

// SAFETY: `data` is read and written only under the registration lock;
// the trap path reads only the atomics.
unsafe impl Sync for OptSlot {}

impl OptSlot {
    pub(crate) const fn new() -> Self {
        Self {
            state: AtomicU8::new(NONE),
            resume: AtomicUsize::new(0),
            region_start: AtomicUsize::new(0),
            region_end: AtomicUsize::new(0),
            detour: AtomicUsize::new(0),
            data: UnsafeCell::new(OptData::unused()),
        }
    }

    /// The registration side's data.
    ///
    /// # Safety
    /// The registration lock is held.
    pub(crate) unsafe fn data(&self) -> OptData {
        // SAFETY: the caller holds the lock; writers hold it too.
        unsafe { *self.data.get() }
    }

    /// Change the registration side's data.
    ///
    /// # Safety
    /// The registration lock is held.
    pub(crate) unsafe fn set_data(&self, d: OptData) {
        // SAFETY: the caller holds the lock; readers hold it too.
        unsafe { *self.data.get() = d }
    }

    /// The displaced region whose original bytes the text holds a jump
    /// over, if any (lock held).
    ///
    /// # Safety
    /// The registration lock is held.
    pub(crate) unsafe fn patched_region(&self) -> Option<OptRegion> {
        if self.state.load(Ordering::Relaxed) == NONE {
            return None;
        }
        // SAFETY: the caller holds the lock.
        unsafe { self.data() }.region
    }
}
