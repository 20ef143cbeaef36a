//! The traced child processes: how they start, and the protocol the tracer
//! drives them with.
//!
//! A child is a `fork` of the tracer (same binary, same addresses). It asks
//! to be traced (`PTRACE_TRACEME`), maps one executable page near its own
//! text for the engine's slots (the tracer cannot map memory in it without
//! injecting a system call, so the child does it and says where), reports
//! the page through a pipe and stops with `SIGSTOP`. Then it serves
//! commands from a pipe: call a test function, write the result back, stop
//! again; or exit.

use core::sync::atomic::{AtomicU64, Ordering};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use libc::pid_t;
use probe_core::TaskState;
use probe_hal_x86_64::X86_64;
use x86_64_linux::call::call;
use x86_64_linux::testfns;

use crate::ptrace::{self, Memory, Status};

/// Reply, then stop with SIGSTOP until the tracer continues.
pub const STOP_AFTER: u64 = 1;
/// After the reply, run [`finish`] untraced and exit with its count of
/// wrong results.
pub const FINISH: u64 = 2;

/// One command: call `func` (0: exit) with `args`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Command {
    /// Function address, or 0 to exit.
    pub func: u64,
    /// rdi, rsi, rdx.
    pub args: [u64; 3],
    /// [`STOP_AFTER`], [`FINISH`].
    pub flags: u64,
}

/// The tracer's handle on a child.
pub struct Child {
    /// Process id (its address space id for the engine).
    pub pid: pid_t,
    /// The page the child mapped for slots.
    pub slot_page: usize,
    /// Its probe state (one thread: one task).
    pub task: &'static TaskState<X86_64>,
    /// Its memory.
    pub mem: Memory,
    commands: OwnedFd,
    replies: OwnedFd,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) with a valid two-element array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here only.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn write_all(fd: i32, bytes: &[u8]) -> bool {
    // SAFETY: writing from a valid buffer to a descriptor we own.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) == bytes.len() as isize }
}

fn read_exact(fd: i32, bytes: &mut [u8]) -> bool {
    let mut got = 0;
    while got < bytes.len() {
        // SAFETY: reading into the unfilled part of a valid buffer.
        let n = unsafe { libc::read(fd, bytes[got..].as_mut_ptr().cast(), bytes.len() - got) };
        if n <= 0 {
            return false;
        }
        got += n as usize;
    }
    true
}

/// What the child's last signal handler computed (`tf_cold(5)` for
/// SIGUSR1, `tf_cold(6)` for SIGUSR2); the tracer reads and resets it in
/// the child's memory (the child is a fork: same address).
pub static HANDLER_RESULT: AtomicU64 = AtomicU64::new(0);

/// SIGUSR1 in the child: call a test function (the tracer may probe it).
extern "C" fn on_usr1(_sig: libc::c_int) {
    // SAFETY: tf_cold takes one integer.
    let r = unsafe { call(testfns::func("tf_cold").start, 5, 0, 0) }.ret;
    HANDLER_RESULT.store(r, Ordering::Release);
}

/// SIGUSR2 in the child: the same, then stop inside the handler so the
/// tracer can act while the child is in it.
extern "C" fn on_usr2(_sig: libc::c_int) {
    // SAFETY: tf_cold takes one integer.
    let r = unsafe { call(testfns::func("tf_cold").start, 6, 0, 0) }.ret;
    HANDLER_RESULT.store(r, Ordering::Release);
    // SAFETY: raise has no preconditions.
    unsafe { libc::raise(libc::SIGSTOP) };
}

fn install_handlers() {
    for (sig, h) in [
        (libc::SIGUSR1, on_usr1 as extern "C" fn(libc::c_int)),
        (libc::SIGUSR2, on_usr2),
    ] {
        // SAFETY: a zeroed sigaction is valid; a plain handler with
        // SA_RESTART, installed in the child before it runs anything else.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = h as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, core::ptr::null_mut());
        }
    }
}

/// The functions the child runs untraced after a detach, with what they
/// must return.
const FINISH_SCRIPT: &[(&str, [u64; 3], u64)] = &[
    ("tf_alu", [10, 32, 0], 1396),
    ("tf_fact", [6, 0, 0], 720),
    ("tf_call", [21, 0, 0], 43),
    ("tf_loop", [5, 0, 0], 20),
    ("tf_jcc", [1, 2, 0], 101),
];

/// Run the finishing script; the number of wrong results.
fn finish() -> i32 {
    let mut wrong = 0;
    for &(name, [a, b, c], want) in FINISH_SCRIPT {
        // SAFETY: test functions with the arguments they take.
        if unsafe { call(testfns::func(name).start, a, b, c) }.ret != want {
            wrong += 1;
        }
    }
    wrong
}

/// The child's side: never returns.
fn child_main(commands: OwnedFd, replies: OwnedFd) -> ! {
    let (cmd, rep) = (commands.as_raw_fd(), replies.as_raw_fd());
    install_handlers();
    // SAFETY: PTRACE_TRACEME takes no pointers.
    unsafe {
        libc::ptrace(
            libc::PTRACE_TRACEME,
            0,
            core::ptr::null_mut::<libc::c_void>(),
            core::ptr::null_mut::<libc::c_void>(),
        )
    };
    let page = map_slot_page_near(testfns::func("tf_alu").start).unwrap_or(0);
    write_all(rep, &(page as u64).to_ne_bytes());
    // SAFETY: raise has no preconditions.
    unsafe { libc::raise(libc::SIGSTOP) };
    loop {
        let mut buf = [0u8; core::mem::size_of::<Command>()];
        if !read_exact(cmd, &mut buf) {
            // SAFETY: leaving the child process.
            unsafe { libc::_exit(3) };
        }
        // SAFETY: `buf` holds the bytes of a Command written by the tracer.
        let c: Command = unsafe { core::ptr::read_unaligned(buf.as_ptr().cast()) };
        if c.func == 0 {
            // SAFETY: leaving the child process.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: the tracer sends only test functions with valid arguments.
        let r = unsafe { call(c.func as usize, c.args[0], c.args[1], c.args[2]) }.ret;
        write_all(rep, &r.to_ne_bytes());
        if c.flags & FINISH != 0 {
            let wrong = finish();
            // SAFETY: leaving the child process.
            unsafe { libc::_exit(wrong) };
        }
        if c.flags & STOP_AFTER != 0 {
            // SAFETY: raise has no preconditions.
            unsafe { libc::raise(libc::SIGSTOP) };
        }
    }
}

/// Map a read+execute page within ±1 GiB of `near` (a plain mmap lands too
/// far from a PIE binary for rip-relative operands).
fn map_slot_page_near(near: usize) -> Option<usize> {
    const STEP: usize = 64 * 1024;
    let base = near & !0xfff;
    for i in 1..(1usize << 30) / STEP {
        for at in [base.checked_sub(i * STEP), base.checked_add(i * STEP)]
            .into_iter()
            .flatten()
        {
            // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
            let p = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    4096,
                    libc::PROT_READ | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED && p as usize == at {
                return Some(at);
            }
            if p != libc::MAP_FAILED {
                // SAFETY: unmapping the page this loop just mapped elsewhere.
                unsafe { libc::munmap(p, 4096) };
            }
        }
    }
    None
}

/// A command function: fork (the new process goes on serving commands
/// from the same pipes); the new process's id in the parent, 0 in it.
pub extern "C" fn fork_here(_: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the child is single-threaded.
    unsafe { libc::fork() as i64 as u64 }
}

impl Child {
    /// Fork a child and wait for its first stop.
    pub fn spawn() -> Result<Child, String> {
        let (cmd_r, cmd_w) = pipe()?;
        let (rep_r, rep_w) = pipe()?;
        // SAFETY: the tracer is single-threaded, so the child may run
        // arbitrary code after fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            drop((cmd_w, rep_r));
            child_main(cmd_r, rep_w);
        }
        drop((cmd_r, rep_w));
        match ptrace::wait(pid)? {
            Status::Stopped(libc::SIGSTOP) => {}
            other => return Err(format!("child {pid} did not stop at start: {other:?}")),
        }
        ptrace::set_exit_kill(pid)?;
        let mut page = [0u8; 8];
        if !read_exact(rep_r.as_raw_fd(), &mut page) {
            return Err(format!("child {pid} sent no slot page"));
        }
        let slot_page = u64::from_ne_bytes(page) as usize;
        if slot_page == 0 {
            return Err(format!("child {pid} found no page near its text"));
        }
        Ok(Child {
            pid,
            slot_page,
            task: Box::leak(Box::new(TaskState::new())),
            mem: Memory::open(pid)?,
            commands: cmd_w,
            replies: rep_r,
        })
    }

    /// The tracer's handle on `pid`, a fork of `parent` stopped at its
    /// start (it inherited `parent`'s pipes and slot page; the tracer
    /// drives one of the two at a time, so each command reaches the one it
    /// was meant for).
    pub fn forked_from(parent: &Child, pid: pid_t) -> Result<Child, String> {
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("dup: {e}"));
        Ok(Child {
            pid,
            slot_page: parent.slot_page,
            task: Box::leak(Box::new(TaskState::new())),
            mem: Memory::open(pid)?,
            commands: dup(&parent.commands)?,
            replies: dup(&parent.replies)?,
        })
    }

    /// Send a command (the child reads it once continued).
    pub fn send(&self, c: &Command) -> Result<(), String> {
        // SAFETY: a Command is plain data; viewing it as bytes is sound.
        let bytes = unsafe {
            core::slice::from_raw_parts(
                (c as *const Command).cast::<u8>(),
                core::mem::size_of::<Command>(),
            )
        };
        if write_all(self.commands.as_raw_fd(), bytes) {
            Ok(())
        } else {
            Err(format!("child {}: command pipe closed", self.pid))
        }
    }

    /// Read one reply.
    pub fn reply(&self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        if read_exact(self.replies.as_raw_fd(), &mut b) {
            Ok(u64::from_ne_bytes(b))
        } else {
            Err(format!("child {}: no reply", self.pid))
        }
    }
}
