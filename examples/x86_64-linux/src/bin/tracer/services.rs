//! The tracer's kernel services: every probe lives in a child's address
//! space (`Space::User(pid)`), reached through `/proc/PID/mem`.
//!
//! - the tracer is one thread: one CPU (`cpu_id` 0);
//! - the current task and space are those of the child whose trap is being
//!   handled ([`set_current`]);
//! - slot pages are the page each child mapped near its text at start;
//! - instruction caches: the child is stopped while its text changes, and
//!   the kernel's return to user mode serialises it before it runs again;
//! - grace period: the tracer (un)registers only while every child is
//!   stopped; `synchronize` checks that no stopped child sits in a slot.

use core::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use libc::pid_t;
use probe_core::{KernelServices, Space, Symbol, TaskState, TextPatchError};
use probe_hal::MemoryFault;
use probe_hal_x86_64::X86_64;
use x86_64_linux::testfns;

use crate::ptrace::{self, Memory};

const PAGE: usize = 4096;

struct Entry {
    pid: pid_t,
    page: usize,
    page_out: bool,
    task: &'static TaskState<X86_64>,
    mem: Memory,
}

static CHILDREN: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static GRACE_CHECKS: AtomicUsize = AtomicUsize::new(0);
static GRACE_VIOLATIONS: AtomicUsize = AtomicUsize::new(0);

/// Make `pid`'s slot page and memory known to the services.
pub fn add_child(pid: pid_t, page: usize, task: &'static TaskState<X86_64>) -> Result<(), String> {
    let mem = Memory::open(pid)?;
    CHILDREN.lock().unwrap().push(Entry {
        pid,
        page,
        page_out: false,
        task,
        mem,
    });
    Ok(())
}

/// Forget a child that ended or was detached.
pub fn remove_child(pid: pid_t) {
    CHILDREN.lock().unwrap().retain(|e| e.pid != pid);
}

/// The child whose trap the engine is handling.
pub fn set_current(pid: pid_t) {
    CURRENT.store(pid as usize, Ordering::Release);
}

/// (children checked in grace periods, found inside a slot page).
pub fn grace_record() -> (usize, usize) {
    (
        GRACE_CHECKS.load(Ordering::Acquire),
        GRACE_VIOLATIONS.load(Ordering::Acquire),
    )
}

fn with_child<T>(space: Space, f: impl FnOnce(&mut Entry) -> Option<T>) -> Option<T> {
    let Space::User(pid) = space else { return None };
    let mut children = CHILDREN.lock().unwrap();
    children
        .iter_mut()
        .find(|e| e.pid as usize == pid)
        .and_then(f)
}

/// The tracer's kernel services.
#[derive(Debug, Clone, Copy)]
pub struct TracerServices;

impl KernelServices<X86_64> for TracerServices {
    fn cpu_id(&self) -> usize {
        0
    }

    fn with_current_task<R>(&self, f: impl FnOnce(&TaskState<X86_64>) -> R) -> Option<R> {
        // A trap of a child the tracer does not know has no task.
        let pid = CURRENT.load(Ordering::Acquire);
        with_child(Space::User(pid), |e| Some(e.task)).map(f)
    }

    fn current_space(&self) -> usize {
        CURRENT.load(Ordering::Acquire)
    }

    fn read(&self, space: Space, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        with_child(space, |e| e.mem.read(addr, buf).then_some(())).ok_or(MemoryFault { addr })
    }

    fn write_data(&self, space: Space, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
        with_child(space, |e| e.mem.write(addr, data).then_some(())).ok_or(MemoryFault { addr })
    }

    fn write_text(&self, space: Space, addr: usize, bytes: &[u8]) -> Result<(), TextPatchError> {
        with_child(space, |e| e.mem.write(addr, bytes).then_some(())).ok_or(TextPatchError)
    }

    fn sync_icache(&self, _space: Space, _addr: usize, _len: usize) {
        // The child is stopped; returning to user mode serialises its core.
    }

    fn alloc_slot_page(&self, space: Space, near: usize) -> Option<usize> {
        with_child(space, |e| {
            let reach = near == 0 || e.page.abs_diff(near) < (1 << 31) - PAGE;
            if e.page_out || !reach {
                return None;
            }
            e.page_out = true;
            Some(e.page)
        })
    }

    fn free_slot_page(&self, space: Space, page: usize) {
        // The page stays mapped in the child (it was the child's own
        // mmap); it is free for the engine again.
        with_child(space, |e| {
            if e.page == page {
                e.page_out = false;
            }
            Some(())
        });
    }

    fn slot_page_size(&self) -> usize {
        PAGE
    }

    fn synchronize(&self) {
        let children = CHILDREN.lock().unwrap();
        for e in children.iter() {
            // A child that is not stopped under us (exited, detached) has
            // no slot of ours to be in.
            if let Ok(regs) = ptrace::getregs(e.pid) {
                GRACE_CHECKS.fetch_add(1, Ordering::AcqRel);
                let pc = regs.rip as usize;
                if pc >= e.page && pc < e.page + PAGE {
                    GRACE_VIOLATIONS.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
    }

    fn symbol_containing(&self, space: Space, addr: usize) -> Option<Symbol> {
        // Children are forks of the tracer: their test functions sit at
        // the tracer's own addresses.
        match space {
            Space::User(_) => testfns::func_containing(addr).map(|f| Symbol {
                addr: f.start,
                size: f.size,
            }),
            Space::Kernel => None,
        }
    }
}
