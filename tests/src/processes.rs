//! Running child processes: a command to completion with a deadline and captured output
//! ([`run_timeout`], [`Outcome`]), waiting with a deadline, signals by PID only
//! ([`signal_pid`]), and [`ChildGuard`], which kills a background child if a test panics.
//!
//! Nothing here kills a process it did not start, and nothing kills by name.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a finished (or timed-out) command did.
#[derive(Debug)]
pub struct Outcome {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Outcome {
    /// Exit code; a death by signal N is reported as 128+N, a timeout as -1.
    pub fn code(&self) -> i32 {
        match self.status {
            None => -1,
            Some(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        }
    }
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
    /// stdout and stderr together, for messages.
    /// The exit code and the output together (see [`Outcome::output`]).
    pub fn code_and_output(&self) -> (i32, String) {
        (self.code(), self.output())
    }

    pub fn output(&self) -> String {
        let mut s = self.stdout.clone();
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&self.stderr);
        s
    }
    /// Panic with the command's output unless it exited 0.
    #[track_caller]
    pub fn ok(self, what: &str) -> Self {
        assert!(
            self.success(),
            "{what} failed (exit {}{}):\n{}",
            self.code(),
            if self.timed_out { ", timed out" } else { "" },
            self.output()
        );
        self
    }
}

pub(crate) fn read_back(mut f: fs::File) -> String {
    let mut v = Vec::new();
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.read_to_end(&mut v);
    String::from_utf8_lossy(&v).into_owned()
}

/// Wait for a child with a deadline; `None` if it is still running at the deadline.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) => {}
            Err(_) => return None,
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send `sig` to a process we started, by its PID.
pub fn signal_pid(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a PID of a child of ours.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Run a command to completion (stdin closed, output captured through temporary files so a
/// chatty program cannot block), killing it by PID after `timeout`.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Outcome {
    let out = tempfile::tempfile().expect("tempfile");
    let err = tempfile::tempfile().expect("tempfile");
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd));
    let status = wait_timeout(&mut child, timeout);
    let timed_out = status.is_none();
    if timed_out {
        signal_pid(child.id(), libc::SIGKILL);
        let _ = child.wait();
    }
    Outcome {
        status,
        stdout: read_back(out),
        stderr: read_back(err),
        timed_out,
        elapsed: start.elapsed(),
    }
}

/// Run a command with a 10-minute limit.
pub fn run(cmd: &mut Command) -> Outcome {
    run_timeout(cmd, Duration::from_secs(600))
}

/// `Command::new(prog).args(args)`.
pub fn cmd<S: AsRef<OsStr>>(prog: impl AsRef<OsStr>, args: &[S]) -> Command {
    let mut c = Command::new(prog);
    c.args(args);
    c
}

/// A child process of ours that is killed (by its PID) and reaped if still running when the
/// guard is dropped, e.g. when a test panics while a background `cp` runs.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
    pub fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
    /// Wait up to `timeout`, then kill by PID; returns the exit status if it exited by itself.
    pub fn finish(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let st = wait_timeout(&mut self.0, timeout);
        if st.is_none() {
            signal_pid(self.0.id(), libc::SIGKILL);
            let _ = self.0.wait();
        }
        st
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            signal_pid(self.0.id(), libc::SIGKILL);
            let _ = self.0.wait();
        }
    }
}
