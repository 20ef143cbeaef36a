//! Thin wrappers over `ptrace(2)`, `waitpid(2)` and `/proc/PID/mem`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

use libc::{c_int, pid_t, user_regs_struct};

/// How a traced child stopped or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// In a signal-delivery stop for this signal.
    Stopped(c_int),
    /// Exited with this code.
    Exited(c_int),
    /// Killed by this signal.
    Killed(c_int),
}

fn check(r: libc::c_long, what: &str, pid: pid_t) -> Result<(), String> {
    if r == -1 {
        Err(format!(
            "{what}({pid}): {}",
            std::io::Error::last_os_error()
        ))
    } else {
        Ok(())
    }
}

/// The child's registers.
pub fn getregs(pid: pid_t) -> Result<user_regs_struct, String> {
    // SAFETY: a zeroed user_regs_struct is valid; PTRACE_GETREGS fills it.
    let mut regs: user_regs_struct = unsafe { core::mem::zeroed() };
    // SAFETY: `regs` is a live user_regs_struct the kernel writes into.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGS,
            pid,
            core::ptr::null_mut::<libc::c_void>(),
            &mut regs as *mut user_regs_struct,
        )
    };
    check(r, "PTRACE_GETREGS", pid)?;
    Ok(regs)
}

/// Set the child's registers.
pub fn setregs(pid: pid_t, regs: &user_regs_struct) -> Result<(), String> {
    // SAFETY: `regs` is a valid user_regs_struct the kernel reads.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGS,
            pid,
            core::ptr::null_mut::<libc::c_void>(),
            regs as *const user_regs_struct,
        )
    };
    check(r, "PTRACE_SETREGS", pid)
}

/// Resume a stopped child, delivering `sig` (0: none).
pub fn cont(pid: pid_t, sig: c_int) -> Result<(), String> {
    // SAFETY: plain integer arguments.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_CONT,
            pid,
            core::ptr::null_mut::<libc::c_void>(),
            sig as libc::c_long,
        )
    };
    check(r, "PTRACE_CONT", pid)
}

/// Let a stopped child execute one instruction, then stop with SIGTRAP.
pub fn singlestep(pid: pid_t) -> Result<(), String> {
    // SAFETY: plain integer arguments.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_SINGLESTEP,
            pid,
            core::ptr::null_mut::<libc::c_void>(),
            0 as libc::c_long,
        )
    };
    check(r, "PTRACE_SINGLESTEP", pid)
}

/// Stop tracing a stopped child and let it run on, delivering `sig`.
pub fn detach(pid: pid_t, sig: c_int) -> Result<(), String> {
    // SAFETY: plain integer arguments.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_DETACH,
            pid,
            core::ptr::null_mut::<libc::c_void>(),
            sig as libc::c_long,
        )
    };
    check(r, "PTRACE_DETACH", pid)
}

/// Kill the child if the tracer dies.
pub fn set_exit_kill(pid: pid_t) -> Result<(), String> {
    set_options(pid, libc::PTRACE_O_EXITKILL)
}

/// Set the tracing options of a stopped child (`PTRACE_O_*`).
pub fn set_options(pid: pid_t, options: c_int) -> Result<(), String> {
    // SAFETY: plain integer arguments.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_SETOPTIONS,
            pid,
            core::ptr::null_mut::<libc::c_void>(),
            options as libc::c_long,
        )
    };
    check(r, "PTRACE_SETOPTIONS", pid)
}

/// The message of the child's last `PTRACE_EVENT_*` stop (for a fork:
/// the new process's id).
pub fn event_msg(pid: pid_t) -> Result<u64, String> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: `msg` is a live c_ulong the kernel writes into.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETEVENTMSG,
            pid,
            core::ptr::null_mut::<libc::c_void>(),
            &mut msg as *mut libc::c_ulong,
        )
    };
    check(r, "PTRACE_GETEVENTMSG", pid)?;
    Ok(msg as u64)
}

/// Wait for the next stop or end of `pid` (a child, or a process the
/// tracer follows through `PTRACE_O_TRACEFORK`): the raw status.
pub fn wait_raw(pid: pid_t) -> Result<c_int, String> {
    let mut status = 0;
    // SAFETY: waiting for a tracee with a valid status pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    if r != pid {
        return Err(format!(
            "waitpid({pid}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(status)
}

/// Wait for the child's next stop or its end.
pub fn wait(pid: pid_t) -> Result<Status, String> {
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid status pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    if r != pid {
        return Err(format!(
            "waitpid({pid}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(if libc::WIFSTOPPED(status) {
        Status::Stopped(libc::WSTOPSIG(status))
    } else if libc::WIFEXITED(status) {
        Status::Exited(libc::WEXITSTATUS(status))
    } else {
        Status::Killed(libc::WTERMSIG(status))
    })
}

/// A child's memory, through `/proc/PID/mem` (a tracer may write even
/// read-only text there, as debuggers do).
pub struct Memory(File);

impl Memory {
    /// Open the memory of traced child `pid`.
    pub fn open(pid: pid_t) -> Result<Self, String> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .map(Memory)
            .map_err(|e| format!("/proc/{pid}/mem: {e}"))
    }

    /// Read `buf.len()` bytes at `addr`.
    pub fn read(&self, addr: usize, buf: &mut [u8]) -> bool {
        self.0.read_exact_at(buf, addr as u64).is_ok()
    }

    /// Write `data` at `addr`.
    pub fn write(&self, addr: usize, data: &[u8]) -> bool {
        self.0.write_all_at(data, addr as u64).is_ok()
    }
}
