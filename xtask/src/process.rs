//! Running a command with a wall-clock timeout.
//!
//! Every command the xtask starts goes through here, so nothing it runs can
//! hang CI: when the time is up the command and every process it started
//! (cargo's rustc and test binaries, a QEMU under `cargo run`, …) are killed.

use std::fmt;
use std::fs;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How a command failed.
#[derive(Debug)]
pub enum RunError {
    /// It could not be started (usually: the program is not installed).
    Spawn(String, std::io::Error),
    /// It ran and exited unsuccessfully (or was killed by a signal).
    Failed(String, ExitStatus),
    /// It ran longer than its time limit and was killed.
    TimedOut(String, Duration),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Spawn(cmd, e) => write!(f, "could not start `{cmd}`: {e}"),
            RunError::Failed(cmd, status) => match status.code() {
                Some(code) => write!(f, "`{cmd}` exited with status {code}"),
                None => write!(f, "`{cmd}` was killed by a signal ({status})"),
            },
            RunError::TimedOut(cmd, limit) => write!(
                f,
                "`{cmd}` did not finish within {} s and was killed",
                limit.as_secs()
            ),
        }
    }
}

/// What a captured command printed.
pub struct Captured {
    /// Its exit status.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// A command line as a user would type it, for messages.
pub fn display(cmd: &Command) -> String {
    let mut s = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            s.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    s.push_str(&cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Run `cmd` with its output going to ours; fail if it fails or runs longer
/// than `limit`. Standard input is closed (CI has none).
pub fn run(cmd: &mut Command, limit: Duration) -> Result<(), RunError> {
    let text = display(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| RunError::Spawn(text.clone(), e))?;
    let status = wait_or_kill(&mut child, limit).ok_or(RunError::TimedOut(text.clone(), limit))?;
    if status.success() {
        Ok(())
    } else {
        Err(RunError::Failed(text, status))
    }
}

/// Run `cmd` capturing its output, killing it after `limit`. An unsuccessful
/// exit is not an error here: callers look at the status themselves.
pub fn capture(cmd: &mut Command, limit: Duration) -> Result<Captured, RunError> {
    let text = display(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::Spawn(text.clone(), e))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_or_kill(&mut child, limit);
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Captured {
            status,
            stdout,
            stderr,
        }),
        None => Err(RunError::TimedOut(text, limit)),
    }
}

/// Read a pipe to its end on a thread, so a chatty command never blocks on
/// a full pipe while we wait for it.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Wait for `child`; after `limit`, kill it with all its descendants and
/// return `None`.
fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return child.wait().ok(),
        }
        if start.elapsed() >= limit {
            kill_tree(child);
            return None;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

extern "C" {
    /// POSIX `kill(2)`, from the C library std already links.
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIGKILL: i32 = 9;

/// Kill `child` and every process below it. The whole tree is collected
/// first: once a parent dies its children are re-parented and can no longer
/// be found through it.
fn kill_tree(child: &mut Child) {
    let root = child.id();
    let mut tree = vec![root];
    let mut next = 0;
    let parents = parent_table();
    while next < tree.len() {
        let parent = tree[next];
        tree.extend(
            parents
                .iter()
                .filter(|&&(_, ppid)| ppid == parent)
                .map(|&(pid, _)| pid),
        );
        next += 1;
    }
    for pid in tree {
        let Ok(pid) = i32::try_from(pid) else {
            continue;
        };
        // SAFETY: `kill` only sends a signal; every pid here is a positive
        // process id we found below our own child, so no process group or
        // "every process" form of kill(2) is reached.
        unsafe {
            kill(pid, SIGKILL);
        }
    }
    let _ = child.wait();
}

/// (pid, parent pid) of every process, read from /proc.
fn parent_table() -> Vec<(u32, u32)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "pid (comm) state ppid …"; comm may hold spaces and parentheses.
            let after_comm = &stat[stat.rfind(')')? + 1..];
            let ppid = after_comm.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_succeeds_is_ok() {
        assert!(run(&mut Command::new("true"), Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn a_failing_command_reports_its_status() {
        let err = run(&mut Command::new("false"), Duration::from_secs(10)).unwrap_err();
        assert_eq!(err.to_string(), "`false` exited with status 1");
    }

    #[test]
    fn a_missing_program_is_named() {
        let err = run(
            &mut Command::new("no-such-program-xtask"),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(matches!(err, RunError::Spawn(ref cmd, _) if cmd == "no-such-program-xtask"));
    }

    #[test]
    fn a_hanging_command_and_its_children_are_killed() {
        // The shell starts a grandchild that would outlive a plain kill of
        // the shell and keep the pipe open.
        let start = Instant::now();
        let err = capture(
            Command::new("sh").args(["-c", "sleep 30 & sleep 30; echo late"]),
            Duration::from_millis(300),
        )
        .err()
        .expect("timed out");
        assert!(matches!(err, RunError::TimedOut(_, _)));
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn capture_returns_both_streams() {
        let out = capture(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn display_shows_env_program_and_args() {
        let mut cmd = Command::new("cargo");
        cmd.args(["build", "-p", "x"]).env("A", "1");
        assert_eq!(display(&cmd), "A=1 cargo build -p x");
    }
}
