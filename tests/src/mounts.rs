//! Mounts seen from outside: `/proc/mounts` ([`mount_type`], [`is_fuse_mounted`]),
//! `fusermount3 -u [-z]`, and [`try_mount`], a mount attempt that is expected to fail.

use crate::binaries::{bin, RVMFS};
use crate::processes::{read_back, run_timeout, signal_pid, wait_timeout, Outcome};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn unescape_mount_field(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The filesystem type of whatever is mounted at `mnt` (the last mount there), if anything.
pub fn mount_type(mnt: &Path) -> Option<String> {
    let text = fs::read_to_string("/proc/mounts").ok()?;
    let want = mnt.as_os_str().as_bytes();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let _src = f.next()?;
            let target = f.next()?;
            let ty = f.next()?;
            (unescape_mount_field(target) == want).then(|| ty.to_string())
        })
        .next_back()
}

/// Is a FUSE filesystem mounted at `mnt`?
pub fn is_fuse_mounted(mnt: &Path) -> bool {
    mount_type(mnt).is_some_and(|t| t.starts_with("fuse"))
}

/// `fusermount3 -u [-z] MNT`.
pub fn fusermount_u(mnt: &Path, lazy: bool) -> Outcome {
    let mut c = Command::new("fusermount3");
    c.arg("-u");
    if lazy {
        c.arg("-z");
    }
    c.arg(mnt);
    run_timeout(&mut c, Duration::from_secs(60))
}

pub(crate) fn wait_unmounted(mnt: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_fuse_mounted(mnt) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Try `rvmfs -f IMAGE MNT`. If it fails, returns its outcome. If it mounts (or is still running
/// after `timeout`), it is unmounted / killed by PID again and the outcome has
/// `timed_out == true` and `status == None`, with "MOUNTED" in `stderr` when it did mount.
pub fn try_mount(image: &Path, mnt: &Path, timeout: Duration) -> Outcome {
    let out = tempfile::tempfile().expect("tempfile");
    let err = tempfile::tempfile().expect("tempfile");
    let start = Instant::now();
    let mut child = Command::new(bin(RVMFS))
        .arg("-f")
        .arg(image)
        .arg(mnt)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .expect("spawn rvmfs");
    let deadline = start + timeout;
    let mut mounted = false;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if is_fuse_mounted(mnt) {
            mounted = true;
            break None;
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if status.is_none() {
        if mounted {
            let _ = fusermount_u(mnt, false);
        }
        if wait_timeout(&mut child, Duration::from_secs(10)).is_none() {
            signal_pid(child.id(), libc::SIGKILL);
            let _ = child.wait();
        }
        if is_fuse_mounted(mnt) {
            let _ = fusermount_u(mnt, true);
        }
    }
    // A mount that failed must leave nothing behind.
    let leftover = is_fuse_mounted(mnt);
    if leftover {
        let _ = fusermount_u(mnt, true);
    }
    let mut stderr = read_back(err);
    if mounted || leftover {
        stderr.push_str("\n[rvmfs-tests] MOUNTED\n");
    }
    Outcome {
        status,
        stdout: read_back(out),
        stderr,
        timed_out: status.is_none(),
        elapsed: start.elapsed(),
    }
}
