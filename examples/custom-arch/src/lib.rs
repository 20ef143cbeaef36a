//! # custom-arch: a backend nobody in this repository wrote
//!
//! The Toy ISA ([`isa`]) is made up and interpreted in software
//! ([`machine`]). [`arch::Toy`] implements `probe_hal::Arch` for it, and
//! [`world::World`] is a recording mock kernel implementing
//! `probe_core::KernelServices`. probe-core has no idea this ISA exists:
//! that is the point. The tests in `tests/` drive every engine feature
//! through it, deterministically (several CPUs are interleaved by hand).
//!
//! `docs/porting.md` walks through adding an ISA using this crate.

pub mod arch;
pub mod isa;
pub mod lock;
pub mod machine;
pub mod world;

/// The engine configured for the Toy ISA, with a registration lock that
/// panics instead of waiting ([`lock::NoWaitLock`]): `P` probes, 16 return
/// instances, 4 CPUs, 32 slot pages, 64 bytes of instance data.
pub type ToyEngine<const P: usize = 64> =
    probe_core::Engine<arch::Toy, lock::NoWaitLock, world::Kernel, P, 16, 4, 32, 64>;

/// A new engine over `world`, leaked to get the `'static` lifetime the
/// return trampoline needs.
pub fn leak_engine<const P: usize>(world: &'static world::World) -> &'static ToyEngine<P> {
    Box::leak(Box::new(ToyEngine::<P>::new(world::Kernel(world))))
}
