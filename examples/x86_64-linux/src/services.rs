//! The kernel services of the harness: the process plays the kernel, its
//! own code is the "kernel text" (`Space::Kernel`).
//!
//! - memory is read and written directly, through a copy routine with an
//!   exception-table entry (as a kernel's `copy_from_kernel_nofault`): a
//!   fault in it lands in the SIGSEGV handler, which continues at the
//!   fix-up, so reading an unmapped address is an error, not a crash;
//! - text is patched by making its pages writable (`mprotect`), writing,
//!   and making them read-only again; `sync_icache` serialises every
//!   thread's instruction stream with `membarrier(SYNC_CORE)`;
//! - slot pages are mapped within ±2 GiB of the probed code with
//!   `MAP_FIXED_NOREPLACE` (a plain `mmap` lands too far from a PIE binary
//!   for rip-relative operands and the boost `jmp` back);
//! - CPUs are threads ([`crate::threads`]), and a grace period is every
//!   other thread interrupted by a signal outside the slot pages.

use core::arch::global_asm;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use probe_core::{KernelServices, Space, Symbol, TaskState, TextPatchError};
use probe_hal::MemoryFault;
use probe_hal_x86_64::X86_64;

use crate::threads;
use x86_64_linux::testfns;

/// Page size of slot pages (and of the text pages patched).
pub const PAGE: usize = 4096;
/// Most slot pages held at once.
const MAX_PAGES: usize = 16;
/// How far apart the candidate addresses for a slot page are.
const PROBE_STEP: usize = 64 * 1024;
/// How far from the probed code a slot page may be (well inside ±2 GiB).
const MAX_DISTANCE: usize = 1 << 30;

/// Base addresses of the slot pages handed out (0: free entry). Read by
/// the grace-period signal handler.
static SLOT_PAGES: [AtomicUsize; MAX_PAGES] = [const { AtomicUsize::new(0) }; MAX_PAGES];
/// Slot pages given out so far (diagnostics).
static PAGES_MAPPED: AtomicUsize = AtomicUsize::new(0);
/// `membarrier(PRIVATE_EXPEDITED_SYNC_CORE)` is registered and usable.
static SYNC_CORE: AtomicBool = AtomicBool::new(false);
/// Text writes (diagnostics).
static TEXT_WRITES: AtomicUsize = AtomicUsize::new(0);
/// Instruction-stream synchronisations.
static ICACHE_SYNCS: AtomicUsize = AtomicUsize::new(0);
/// Grace periods waited for.
static GRACE_PERIODS: AtomicUsize = AtomicUsize::new(0);
/// Detour pages mapped now (jump-optimised probes).
static DETOUR_PAGES: AtomicUsize = AtomicUsize::new(0);
/// While set, no detour memory is to be had (a check of the refusal).
static DETOURS_REFUSED: AtomicBool = AtomicBool::new(false);

/// Detour pages mapped now.
pub fn detour_pages_held() -> usize {
    DETOUR_PAGES.load(Ordering::Relaxed)
}

/// Make `alloc_detour_page` answer `None` (or work again).
pub fn refuse_detours(refuse: bool) {
    DETOURS_REFUSED.store(refuse, Ordering::Relaxed);
}

// The copy routine the services read and write memory with:
// `x86_64_linux_copy(dst, src, len)` returns the number of bytes not
// copied (0 on success). A fault on `rep movsb` leaves rcx = bytes left and
// rip at the instruction; the SIGSEGV handler finds it in the exception
// table below and continues at the fix-up, which returns rcx.
global_asm!(
    r#"
    .pushsection .text.x86_64_linux_copy,"ax",@progbits
    .p2align 4
    .globl x86_64_linux_copy
    .type x86_64_linux_copy,@function
x86_64_linux_copy:
    mov rcx, rdx
    .globl x86_64_linux_copy_insn
x86_64_linux_copy_insn:
    rep movsb
    xor eax, eax
    ret
    .globl x86_64_linux_copy_fixup
x86_64_linux_copy_fixup:
    mov rax, rcx
    ret
    .globl x86_64_linux_copy_end
x86_64_linux_copy_end:
    .size x86_64_linux_copy, x86_64_linux_copy_end - x86_64_linux_copy
    .popsection
"#
);

extern "C" {
    fn x86_64_linux_copy(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn x86_64_linux_copy_insn();
    fn x86_64_linux_copy_fixup();
    fn x86_64_linux_copy_end();
}

/// Where a fault at `pc` continues: the copy routine's own entry, then the
/// test functions' exception table. Called from the SIGSEGV handler.
#[link_section = "probe_trap_text"]
pub fn fixup_for(pc: usize) -> Option<usize> {
    if pc == x86_64_linux_copy_insn as *const () as usize {
        return Some(x86_64_linux_copy_fixup as *const () as usize);
    }
    testfns::fixup_for(pc)
}

/// The copy routine's code: the trap path runs it, so it must never be probed.
pub fn copy_routine() -> Range<usize> {
    x86_64_linux_copy as *const () as usize..x86_64_linux_copy_end as *const () as usize
}

/// Copy `len` bytes from `src` to `dst`; `Err(offset)` of the first byte
/// that could not be accessed.
#[link_section = "probe_trap_text"]
#[inline(always)]
fn copy(dst: usize, src: usize, len: usize) -> Result<(), usize> {
    // SAFETY: the routine touches only `src..src + len` and `dst..dst + len`;
    // an unmapped byte faults and is recovered through the exception table
    // (the SIGSEGV handler is installed before the engine runs).
    let left = unsafe { x86_64_linux_copy(dst as *mut u8, src as *const u8, len) };
    if left == 0 {
        Ok(())
    } else {
        Err(len - left)
    }
}

/// Copy `len` bytes from `src` to `dst`, where either may be unmapped:
/// `Err(offset)` of the first byte that could not be accessed.
pub fn copy_nofault(dst: usize, src: usize, len: usize) -> Result<(), usize> {
    copy(dst, src, len)
}

/// Whether `pc` lies in a slot page (grace-period handler; no lock).
#[link_section = "probe_trap_text"]
pub fn in_slot_area(pc: usize) -> bool {
    SLOT_PAGES.iter().any(|p| {
        let base = p.load(Ordering::Acquire);
        base != 0 && pc >= base && pc < base + PAGE
    })
}

/// Base of some slot page currently mapped, if any.
pub fn any_slot_page() -> Option<usize> {
    SLOT_PAGES
        .iter()
        .map(|p| p.load(Ordering::Acquire))
        .find(|&b| b != 0)
}

/// Slot pages currently mapped.
pub fn slot_pages_held() -> usize {
    SLOT_PAGES
        .iter()
        .filter(|p| p.load(Ordering::Acquire) != 0)
        .count()
}

/// Counters: (text writes, icache syncs, grace periods, slot pages mapped).
pub fn counters() -> (usize, usize, usize, usize) {
    (
        TEXT_WRITES.load(Ordering::Relaxed),
        ICACHE_SYNCS.load(Ordering::Relaxed),
        GRACE_PERIODS.load(Ordering::Relaxed),
        PAGES_MAPPED.load(Ordering::Relaxed),
    )
}

/// This process's id (the "user space" of the harness), read at start.
static PID: AtomicUsize = AtomicUsize::new(0);

/// The blacklist, built at the first registration.
static BLACKLIST: OnceLock<Vec<Range<usize>>> = OnceLock::new();

/// The glibc functions the trap handlers run (outside `probe_trap_text`):
/// errno is saved and restored around every handler; an adopted thread's
/// exit destructor is set with `pthread_setspecific`.
pub const GLIBC_TRAP_PATH: &[&str] = &["__errno_location", "pthread_setspecific"];

/// `[start, end)` of the dynamic symbol `name` (its ELF size), if found.
pub fn libc_function(name: &str) -> Option<Range<usize>> {
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: dlsym with RTLD_DEFAULT and a valid C string (it resolves an
    // IFUNC to the implementation selected for this CPU).
    let addr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, cname.as_ptr()) } as usize;
    if addr == 0 {
        return None;
    }
    Some(addr..addr + symbol_size(addr).unwrap_or(1))
}

/// The ELF size of the dynamic symbol that starts at `addr`.
pub fn symbol_size(addr: usize) -> Option<usize> {
    // SAFETY: zeroed Dl_info is valid; dladdr1 fills it and `sym` (with
    // RTLD_DL_SYMENT = 1, a pointer to the symbol's ELF entry).
    unsafe {
        let mut info: libc::Dl_info = core::mem::zeroed();
        let mut sym: *const libc::Elf64_Sym = core::ptr::null();
        let r = libc::dladdr1(
            addr as *const libc::c_void,
            &mut info,
            (&mut sym as *mut *const libc::Elf64_Sym).cast(),
            1,
        );
        if r == 0 || sym.is_null() || info.dli_saddr as usize != addr {
            return None;
        }
        Some((*sym).st_size as usize).filter(|&s| s > 0)
    }
}

/// glibc functions chosen at load time (IFUNC): their implementations
/// have no dynamic symbol of their own, so they are known by their entry
/// (the address `dlsym` resolves the public name to).
const IFUNC_ENTRIES: &[&str] = &["memcpy", "memmove", "memset"];

/// The glibc symbol around `addr`: a dynamic symbol with its ELF size, or
/// the entry of an IFUNC implementation (then only its first byte is known
/// to be a function entry).
fn libc_symbol_containing(addr: usize) -> Option<Symbol> {
    // SAFETY: zeroed Dl_info is valid; dladdr1 fills it and `sym`.
    let found = unsafe {
        let mut info: libc::Dl_info = core::mem::zeroed();
        let mut sym: *const libc::Elf64_Sym = core::ptr::null();
        let r = libc::dladdr1(
            addr as *const libc::c_void,
            &mut info,
            (&mut sym as *mut *const libc::Elf64_Sym).cast(),
            1,
        );
        (r != 0 && !sym.is_null()).then(|| (info.dli_saddr as usize, (*sym).st_size as usize))
    };
    if let Some((start, size)) = found {
        if start != 0 && addr >= start && addr < start + size {
            return Some(Symbol { addr: start, size });
        }
    }
    IFUNC_ENTRIES
        .iter()
        .filter_map(|n| libc_function(n))
        .find(|r| r.start == addr)
        .map(|r| Symbol {
            addr: r.start,
            size: r.len(),
        })
}

/// Length of glibc's x86_64 `__restore_rt`: `mov rax, 15; syscall`.
const RESTORE_RT: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];

/// The signal-return trampoline's range, checked to be `__restore_rt`.
pub fn restorer_range() -> Option<Range<usize>> {
    let at = crate::signals::restorer();
    let mut buf = [0u8; RESTORE_RT.len()];
    copy(buf.as_mut_ptr() as usize, at, buf.len()).ok()?;
    (at != 0 && buf == RESTORE_RT).then_some(at..at + RESTORE_RT.len())
}

/// What must never be probed besides the engine's trap text: the copy
/// routine, the signal-return trampoline, the glibc functions the trap
/// handlers call. (The handlers themselves, the thread lookup and the
/// trap-path services are in the `probe_trap_text` section, which the
/// engine refuses by itself.)
fn blacklist() -> Vec<Range<usize>> {
    let mut list = vec![copy_routine()];
    list.extend(restorer_range());
    list.extend(GLIBC_TRAP_PATH.iter().filter_map(|n| libc_function(n)));
    list
}

/// Register for `membarrier(PRIVATE_EXPEDITED_SYNC_CORE)`; returns whether
/// the kernel supports it (without it `sync_icache` relies on x86's
/// coherent instruction fetch alone).
pub fn init() -> bool {
    // SAFETY: getpid has no preconditions.
    PID.store(unsafe { libc::getpid() } as usize, Ordering::Relaxed);
    // SAFETY: a plain system call with integer arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            libc::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
            0,
            0,
        )
    };
    SYNC_CORE.store(r == 0, Ordering::Release);
    r == 0
}

fn page_down(a: usize) -> usize {
    a & !(PAGE - 1)
}

/// Set the protection of the pages covering `addr..addr + len`.
fn protect(addr: usize, len: usize, prot: libc::c_int) -> bool {
    let start = page_down(addr);
    let end = page_down(addr + len + PAGE - 1);
    // SAFETY: changes only the protection of pages of this process that
    // hold text or slots; nothing here unmaps or moves memory.
    unsafe { libc::mprotect(start as *mut libc::c_void, end - start, prot) == 0 }
}

/// Map one page at exactly `at`, or give `None` if something is there.
fn map_at(at: usize) -> Option<usize> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping, so
    // this cannot clobber memory in use; a kernel that ignores the flag
    // returns another address, which is unmapped again below.
    let p = unsafe {
        libc::mmap(
            at as *mut libc::c_void,
            PAGE,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    if p as usize != at {
        // SAFETY: `p` is the page this call just mapped and nobody uses it.
        unsafe { libc::munmap(p, PAGE) };
        return None;
    }
    Some(at)
}

/// A page within `MAX_DISTANCE` of `near`, trying below first (below a PIE
/// binary's text there is usually room), then above.
pub fn map_near(near: usize) -> Option<usize> {
    let base = page_down(near);
    let steps = MAX_DISTANCE / PROBE_STEP;
    for i in 1..=steps {
        let d = i * PROBE_STEP;
        for at in [base.checked_sub(d), base.checked_add(d)]
            .into_iter()
            .flatten()
        {
            if at == 0 {
                continue;
            }
            if let Some(p) = map_at(at) {
                return Some(p);
            }
        }
    }
    None
}

/// The harness's kernel services (all state is in statics so the engine
/// can be built in a `const`).
#[derive(Debug, Clone, Copy)]
pub struct Services;

impl KernelServices<X86_64> for Services {
    #[link_section = "probe_trap_text"]
    fn cpu_id(&self) -> usize {
        threads::cpu_index()
    }

    #[link_section = "probe_trap_text"]
    fn with_current_task<R>(&self, f: impl FnOnce(&TaskState<X86_64>) -> R) -> Option<R> {
        Some(f(threads::task_state()))
    }

    #[link_section = "probe_trap_text"]
    fn current_space(&self) -> usize {
        // Only kernel-mode traps happen in the harness; a user space would
        // be the process itself (its pid, read once at start: the trap path
        // calls no libc function it does not blacklist).
        PID.load(Ordering::Relaxed)
    }

    #[link_section = "probe_trap_text"]
    fn read(&self, space: Space, addr: usize, buf: &mut [u8]) -> Result<(), MemoryFault> {
        if space != Space::Kernel {
            return Err(MemoryFault { addr });
        }
        copy(buf.as_mut_ptr() as usize, addr, buf.len())
            .map_err(|at| MemoryFault { addr: addr + at })
    }

    #[link_section = "probe_trap_text"]
    fn write_data(&self, space: Space, addr: usize, data: &[u8]) -> Result<(), MemoryFault> {
        if space != Space::Kernel {
            return Err(MemoryFault { addr });
        }
        copy(addr, data.as_ptr() as usize, data.len()).map_err(|at| MemoryFault { addr: addr + at })
    }

    fn write_text(&self, space: Space, addr: usize, bytes: &[u8]) -> Result<(), TextPatchError> {
        if space != Space::Kernel {
            return Err(TextPatchError);
        }
        let rx = libc::PROT_READ | libc::PROT_EXEC;
        if !protect(addr, bytes.len(), rx | libc::PROT_WRITE) {
            return Err(TextPatchError);
        }
        // Other threads may execute these bytes meanwhile: the engine only
        // writes a single-byte int3 or the original byte over live code
        // (atomic for instruction fetch), and whole slots before they are
        // published.
        let r = copy(addr, bytes.as_ptr() as usize, bytes.len());
        let restored = protect(addr, bytes.len(), rx);
        TEXT_WRITES.fetch_add(1, Ordering::Relaxed);
        if r.is_err() || !restored {
            return Err(TextPatchError);
        }
        Ok(())
    }

    fn sync_icache(&self, _space: Space, _addr: usize, _len: usize) {
        // x86 keeps instruction fetch coherent with stores; what remains is
        // to make every thread's core serialise before it runs the new
        // bytes (Intel SDM Vol. 3 §8.1.3, cross-modifying code).
        ICACHE_SYNCS.fetch_add(1, Ordering::Relaxed);
        if SYNC_CORE.load(Ordering::Acquire) {
            // SAFETY: a plain system call with integer arguments.
            unsafe {
                libc::syscall(
                    libc::SYS_membarrier,
                    libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE,
                    0,
                    0,
                )
            };
        }
    }

    fn alloc_slot_page(&self, space: Space, near: usize) -> Option<usize> {
        if space != Space::Kernel {
            return None;
        }
        let near = if near == 0 {
            testfns::func("tf_alu").start
        } else {
            near
        };
        let free = SLOT_PAGES.iter().find(|p| p.load(Ordering::Acquire) == 0)?;
        let page = map_near(near)?;
        free.store(page, Ordering::Release);
        PAGES_MAPPED.fetch_add(1, Ordering::Relaxed);
        Some(page)
    }

    fn free_slot_page(&self, _space: Space, page: usize) {
        if let Some(p) = SLOT_PAGES
            .iter()
            .find(|p| p.load(Ordering::Acquire) == page)
        {
            p.store(0, Ordering::Release);
            // SAFETY: the engine gives a page back only after a grace
            // period, when no thread runs in it; it was mapped by
            // `alloc_slot_page` and is unmapped once.
            unsafe { libc::munmap(page as *mut libc::c_void, PAGE) };
        }
    }

    fn slot_page_size(&self) -> usize {
        PAGE
    }

    fn alloc_detour_page(&self, near: usize, reach: usize) -> Option<usize> {
        if DETOURS_REFUSED.load(Ordering::Relaxed) {
            return None;
        }
        let page = map_near(near)?;
        if page.abs_diff(near) + PAGE > reach {
            // SAFETY: just mapped by `map_near`, never handed out.
            unsafe { libc::munmap(page as *mut libc::c_void, PAGE) };
            return None;
        }
        DETOUR_PAGES.fetch_add(1, Ordering::Relaxed);
        Some(page)
    }

    fn free_detour_page(&self, page: usize) {
        DETOUR_PAGES.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: the engine gives a detour page back after a grace period
        // (no thread runs in it); it was mapped by `alloc_detour_page`.
        unsafe { libc::munmap(page as *mut libc::c_void, PAGE) };
    }

    fn detours_mask_interrupts(&self) -> bool {
        // The "kernel" runs in user mode here, where `cli` faults; its
        // interrupts are signals, which a probe hit in a detour handles as
        // re-entry (counted as missed).
        false
    }

    fn synchronize(&self) {
        GRACE_PERIODS.fetch_add(1, Ordering::Relaxed);
        threads::synchronize();
    }

    fn kernel_slots_covered_by_grace_period(&self) -> bool {
        // `threads::synchronize` interrupts every registered thread and
        // waits until one is caught outside the slot pages: a thread the
        // host preempted inside a boosted slot is waited for.
        true
    }

    fn lookup_symbol(&self, name: &str) -> Option<Symbol> {
        testfns::functions()
            .find(|f| f.name == name)
            .map(|f| Symbol {
                addr: f.start,
                size: f.size,
            })
            .or_else(|| {
                libc_function(name).map(|r| Symbol {
                    addr: r.start,
                    size: r.len(),
                })
            })
    }

    fn symbol_containing(&self, space: Space, addr: usize) -> Option<Symbol> {
        if space != Space::Kernel {
            return None;
        }
        testfns::func_containing(addr)
            .map(|f| Symbol {
                addr: f.start,
                size: f.size,
            })
            .or_else(|| libc_symbol_containing(addr))
    }

    fn may_fault(&self, addr: usize) -> bool {
        fixup_for(addr).is_some()
    }

    fn blacklist(&self) -> &[Range<usize>] {
        BLACKLIST.get_or_init(blacklist).as_slice()
    }
}
