//! How the file layer reaches an engine: [`UprobeHost`], object-safe, and
//! its implementation for [`Engine`].

use lock_api::RawMutex;
use probe_hal::{Arch, ProbeError};

use crate::engine::Engine;
use crate::services::{KernelServices, Space};
use crate::spec::{ProbeId, ProbeSpec};

/// What the file layer needs from an engine, object-safe so that its
/// methods need not name the engine's eight type parameters.
pub trait UprobeHost {
    /// Register a probe.
    fn register(&self, spec: &ProbeSpec<'_>) -> Result<ProbeId, ProbeError>;
    /// Unregister a probe.
    fn unregister(&self, id: ProbeId) -> Result<(), ProbeError>;
    /// Enable or disable a probe.
    fn set_enabled(&self, id: ProbeId, on: bool) -> Result<(), ProbeError>;
    /// Read user memory.
    fn read(&self, space: usize, addr: usize, buf: &mut [u8]) -> bool;
    /// Write user memory (breaking copy-on-write).
    fn write(&self, space: usize, addr: usize, data: &[u8]) -> bool;
    /// Whether the caller runs in a probe handler or the trap path.
    fn in_trap_context(&self) -> bool;
}

impl<
        A: Arch,
        L: RawMutex,
        K: KernelServices<A>,
        const PROBES: usize,
        const INSTANCES: usize,
        const CPUS: usize,
        const PAGES: usize,
        const DATA: usize,
    > UprobeHost for Engine<A, L, K, PROBES, INSTANCES, CPUS, PAGES, DATA>
{
    fn register(&self, spec: &ProbeSpec<'_>) -> Result<ProbeId, ProbeError> {
        match spec {
            ProbeSpec::Kprobe(p) => self.register_kprobe(p),
            ProbeSpec::Kretprobe(p) => self.register_kretprobe(p),
        }
    }
    fn unregister(&self, id: ProbeId) -> Result<(), ProbeError> {
        Engine::unregister(self, id)
    }
    fn set_enabled(&self, id: ProbeId, on: bool) -> Result<(), ProbeError> {
        if on {
            self.enable(id)
        } else {
            self.disable(id)
        }
    }
    fn read(&self, space: usize, addr: usize, buf: &mut [u8]) -> bool {
        self.services().read(Space::User(space), addr, buf).is_ok()
    }
    fn write(&self, space: usize, addr: usize, data: &[u8]) -> bool {
        self.services()
            .write_data(Space::User(space), addr, data)
            .is_ok()
    }
    fn in_trap_context(&self) -> bool {
        Engine::in_trap_context(self)
    }
}
