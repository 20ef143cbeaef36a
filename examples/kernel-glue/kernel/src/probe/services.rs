//! The engine's kernel services, delegating to the kernel's own APIs.
//!
//! Not implemented (the defaults serve): `sync_icache` (the kernel's
//! `patch_text` and copy-on-write text writes flush), the symbol lookups
//! (answered from the kallsyms-like table `symbols` returns),
//! `kernel_slots_covered_by_grace_period` (the kernel's grace period does
//! not wait for preempted tasks, so no kernel probe is boosted and every
//! kernel step runs with interrupts masked), hence `may_fault` (it only
//! matters for boosting); modules (`lookup_module_symbol`); a `blacklist`
//! (a bare-metal kernel lists its trap entry and these services there, or
//! links them into `probe_trap_text`: docs/integration.md section 6).

use alloc::sync::Arc;

use probe_core::{KernelServices, MemoryFault, Space, SymbolTable, TaskState, TextPatchError};

use super::Isa;
use crate::mm::{self, AddrSpace};
use crate::{ksyms, platform, rcu, task};

/// The services (all state is the kernel's).
pub struct Services;

fn user(asid: usize, addr: usize) -> Result<Arc<AddrSpace>, usize> {
    mm::space(asid).ok_or(addr)
}

impl KernelServices<Isa> for Services {
    fn cpu_id(&self) -> usize {
        platform::get().cpu_id()
    }
    fn with_current_task<R>(&self, f: impl FnOnce(&TaskState<Isa>) -> R) -> Option<R> {
        task::current().map(|t| f(&t.probe))
    }
    fn current_space(&self) -> usize {
        task::current().map_or(0, |t| t.asid())
    }
    fn read(&self, space: Space, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        match space {
            Space::Kernel => mm::read_kernel(addr, buf),
            Space::User(s) => user(s, addr).and_then(|m| m.read(addr, buf)),
        }
        .map_err(|addr| MemoryFault { addr })
    }
    fn write_data(&self, space: Space, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
        match space {
            Space::Kernel => mm::write_kernel(addr, data),
            Space::User(s) => user(s, addr).and_then(|m| m.write(addr, data, false)),
        }
        .map_err(|addr| MemoryFault { addr })
    }
    fn write_text(&self, space: Space, addr: usize, bytes: &[u8]) -> Result<(), TextPatchError> {
        match space {
            Space::Kernel => mm::patch_text(addr, bytes),
            Space::User(s) => user(s, addr).and_then(|m| m.write(addr, bytes, true)),
        }
        .map_err(|_| TextPatchError)
    }
    fn alloc_slot_page(&self, space: Space, near: usize) -> Option<usize> {
        match space {
            Space::Kernel => mm::alloc_exec_page(near),
            Space::User(s) => mm::space(s)?.map_exec_page(near),
        }
    }
    fn free_slot_page(&self, space: Space, page: usize) {
        match space {
            Space::Kernel => mm::free_exec_page(page),
            Space::User(s) => mm::space(s).map_or((), |m| m.unmap(page)),
        }
    }
    fn synchronize(&self) {
        rcu::synchronize()
    }
    fn symbols(&self) -> Option<&dyn SymbolTable> {
        Some(ksyms::TABLE.get()?)
    }
}
