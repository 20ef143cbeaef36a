//! Exceptions cannot be masked: `SIGTRAP` (and the other synchronous
//! signals the harness's trap entries use) are never blocked.
//!
//! A kernel takes a breakpoint exception whatever the interrupt state. A
//! process, though, can block `SIGTRAP`: glibc blocks every signal around
//! `clone` in `pthread_create` (and the new thread runs with them blocked
//! until it restores its mask), in `posix_spawn`'s child and elsewhere, and
//! a handler installed with a full `sa_mask` runs with them blocked. An
//! `int3` there is fatal: Linux forces the blocked `SIGTRAP`, which resets
//! it to its default action and kills the process.
//!
//! So the harness plays the kernel here too: a seccomp filter sends every
//! `rt_sigprocmask` that may block signals, and every `rt_sigaction`, made
//! from glibc's text to the `SIGSYS` handler below, which carries it out
//! with the synchronous signals taken out of the mask. The interrupted
//! context's mask is changed in its `uc_sigmask` (`sigreturn` installs it);
//! `rt_sigaction` is made from the harness's own system-call instruction,
//! which the filter lets through. Only calls from this process's glibc are
//! filtered: a program a child `exec`s has its own glibc elsewhere.

use core::arch::global_asm;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use libc::{c_int, siginfo_t};

use crate::services;

/// The signals no mask may hold: the exceptions (bit `n - 1` for signal n).
pub const UNMASKABLE: u64 = bit(libc::SIGTRAP)
    | bit(libc::SIGSEGV)
    | bit(libc::SIGBUS)
    | bit(libc::SIGILL)
    | bit(libc::SIGFPE)
    | bit(libc::SIGSYS)
    | bit(libc::SIGKILL)
    | bit(libc::SIGSTOP);

const fn bit(sig: c_int) -> u64 {
    1 << (sig - 1)
}

// `x86_64_linux_syscall4(nr, a, b, c, d)`: a system call from an
// instruction the filter always lets through.
global_asm!(
    r#"
    .pushsection .text.x86_64_linux_syscall4,"ax",@progbits
    .p2align 4
    .globl x86_64_linux_syscall4
x86_64_linux_syscall4:
    mov rax, rdi
    mov rdi, rsi
    mov rsi, rdx
    mov rdx, rcx
    mov r10, r8
    syscall
    ret
    .popsection
"#
);

extern "C" {
    fn x86_64_linux_syscall4(nr: i64, a: u64, b: u64, c: u64, d: u64) -> i64;
}

static INSTALLED: AtomicBool = AtomicBool::new(false);
/// Masks from which the filter took synchronous signals out.
static STRIPPED: AtomicU64 = AtomicU64::new(0);
/// Changes of the SIGSYS handler refused.
static KEPT: AtomicU64 = AtomicU64::new(0);
/// Calls the SIGSYS handler carried out.
static EMULATED: AtomicU64 = AtomicU64::new(0);

/// (installed, calls carried out, masks that had synchronous signals taken out).
pub fn record() -> (bool, u64, u64) {
    (
        INSTALLED.load(Ordering::Acquire),
        EMULATED.load(Ordering::Acquire),
        STRIPPED.load(Ordering::Acquire),
    )
}

fn strip(mask: u64) -> u64 {
    if mask & UNMASKABLE != 0 {
        STRIPPED.fetch_add(1, Ordering::Relaxed);
    }
    mask & !UNMASKABLE
}

fn read_u64(addr: usize) -> Option<u64> {
    let mut v = [0u8; 8];
    services::copy_nofault(v.as_mut_ptr() as usize, addr, 8).ok()?;
    Some(u64::from_ne_bytes(v))
}

const EFAULT: i64 = -14;
const EINVAL: i64 = -22;

/// `rt_sigprocmask` on behalf of the interrupted context: its mask is
/// `*uc_mask`, which `sigreturn` installs.
fn sigprocmask(uc_mask: &mut u64, how: u64, set: usize, old: usize, size: u64) -> i64 {
    if size != 8 {
        return EINVAL;
    }
    let before = *uc_mask;
    if set != 0 {
        let Some(s) = read_u64(set) else {
            return EFAULT;
        };
        let after = match how as c_int {
            libc::SIG_BLOCK => before | s,
            libc::SIG_UNBLOCK => before & !s,
            libc::SIG_SETMASK => s,
            _ => return EINVAL,
        };
        *uc_mask = strip(after);
    }
    if old != 0 && services::copy_nofault(old, before.to_ne_bytes().as_ptr() as usize, 8).is_err() {
        return EFAULT;
    }
    0
}

/// `rt_sigaction` with the synchronous signals out of the new `sa_mask`
/// (the kernel's `struct sigaction`: handler, flags, restorer, mask).
/// The `SIGSYS` handler itself stays (`posix_spawn`'s child resets every
/// handler before it `exec`s, and goes on changing masks after that).
fn sigaction(sig: u64, act: usize, old: usize, size: u64) -> i64 {
    let mut copy = [0u64; 4];
    let mut act_arg = 0u64;
    if act != 0 && sig == libc::SIGSYS as u64 {
        KEPT.fetch_add(1, Ordering::Relaxed);
    } else if act != 0 {
        if services::copy_nofault(copy.as_mut_ptr() as usize, act, 32).is_err() {
            return EFAULT;
        }
        copy[3] = strip(copy[3]);
        act_arg = copy.as_ptr() as u64;
    }
    // SAFETY: the system call reads the local copy and writes `old` (a
    // pointer of the caller's, checked by the kernel).
    unsafe { x86_64_linux_syscall4(libc::SYS_rt_sigaction, sig, act_arg, old as u64, size) }
}

extern "C" fn on_sigsys(_sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    // SAFETY: `info` and `ctx` are this SA_SIGINFO handler's arguments; the
    // registers and the mask are plain fields of the live ucontext, edited
    // in place for sigreturn.
    unsafe {
        let uc = &mut *(ctx as *mut libc::ucontext_t);
        let g = &mut uc.uc_mcontext.gregs;
        let nr = (*info).si_syscall() as i64;
        let (a, b, c, d) = (
            g[libc::REG_RDI as usize] as u64,
            g[libc::REG_RSI as usize] as u64,
            g[libc::REG_RDX as usize] as u64,
            g[libc::REG_R10 as usize] as u64,
        );
        let mask = &mut *core::ptr::addr_of_mut!(uc.uc_sigmask).cast::<u64>();
        // Nothing below runs while a probe's step is in flight on this
        // thread: steps run with every asynchronous signal blocked, and
        // SIGSYS comes only from a system call outside the slots.
        let r = match nr {
            libc::SYS_rt_sigprocmask => sigprocmask(mask, a, b as usize, c as usize, d),
            libc::SYS_rt_sigaction => sigaction(a, b as usize, c as usize, d),
            _ => -38, // ENOSYS: the filter sends nothing else
        };
        g[libc::REG_RAX as usize] = r;
    }
    EMULATED.fetch_add(1, Ordering::Relaxed);
}

/// glibc's text (the `r-xp` mapping of `libc.so.6`).
fn libc_text() -> Option<(u64, u64)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter(|l| l.contains("r-xp") && l.contains("/libc.so"))
        .find_map(|l| {
            let (lo, rest) = l.split_once('-')?;
            let hi = rest.split_whitespace().next()?;
            Some((
                u64::from_str_radix(lo, 16).ok()?,
                u64::from_str_radix(hi, 16).ok()?,
            ))
        })
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Install the `SIGSYS` handler and the filter (before any other thread
/// exists: threads and children inherit both). Returns why not, if not.
pub fn install() -> Result<(), String> {
    let (lo, hi) = libc_text().ok_or("no libc text mapping found")?;
    if lo >> 32 != (hi - 1) >> 32 {
        return Err("libc's text crosses a 4 GiB boundary".into());
    }
    // SAFETY: a zeroed sigaction is valid; the handler has the SA_SIGINFO
    // signature; it runs with every asynchronous signal blocked.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigfillset(&mut sa.sa_mask);
        for s in [
            libc::SIGTRAP,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
        ] {
            libc::sigdelset(&mut sa.sa_mask, s);
        }
        if libc::sigaction(libc::SIGSYS, &sa, core::ptr::null_mut()) != 0 {
            return Err("sigaction(SIGSYS)".into());
        }
    }
    const LD: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    const TRAP: u32 = 0x0003_0000;
    const ALLOW: u32 = 0x7fff_0000;
    // seccomp_data: nr @0, arch @4, instruction_pointer @8, args @16.
    let prog = [
        /* 0 */ stmt(LD, 4),
        /* 1 */ jump(JEQ, 0xc000_003e, 0, 17), // x86_64, else allow
        /* 2 */ stmt(LD, 0),
        /* 3 */ jump(JEQ, libc::SYS_rt_sigprocmask as u32, 1, 0),
        /* 4 */ jump(JEQ, libc::SYS_rt_sigaction as u32, 0, 14),
        /* 5 */ stmt(LD, 12),
        /* 6 */ jump(JEQ, (lo >> 32) as u32, 0, 12), // not glibc: allow
        /* 7 */ stmt(LD, 8),
        /* 8 */ jump(JGE, lo as u32, 0, 10),
        /* 9 */ jump(JGE, hi as u32, 9, 0),
        /* 10 */ stmt(LD, 0),
        /* 11 */ jump(JEQ, libc::SYS_rt_sigaction as u32, 2, 0),
        /* 12 */ stmt(LD, 16),
        /* 13 */ jump(JEQ, libc::SIG_UNBLOCK as u32, 5, 0),
        /* 14 */ stmt(LD, 24),
        /* 15 */ jump(JEQ, 0, 0, 2), // set != NULL: trap
        /* 16 */ stmt(LD, 28),
        /* 17 */ jump(JEQ, 0, 1, 0), // NULL set or action: a query, allow
        /* 18 */ stmt(RET, TRAP),
        /* 19 */ stmt(RET, ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with integer arguments, then with a valid filter
    // program that outlives the call (the kernel copies it).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!(
                "PR_SET_NO_NEW_PRIVS: {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog) != 0 {
            return Err(format!(
                "seccomp filter: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    INSTALLED.store(true, Ordering::Release);
    Ok(())
}
