//! Shared helpers for the end-to-end tests in `tests/tests/*.rs`.
//!
//! Every test mounts rvmfs for real through FUSE (`rvmfs -f IMAGE MNT` as a child process) and
//! uses it with ordinary programs (cp, tar, sha256sum, cargo) or through `std::fs`.
//!
//! * [`bin`] finds the built binaries: `$RVMFS_BIN_DIR` if set, else whichever of
//!   `<target>/release` and `<target>/debug` holds all three binaries and was built last.
//! * [`Mounted`] is a guard: a temporary directory holding `image` and `mnt`; `mkfs-rvmfs`;
//!   the daemon started in the foreground; on drop a clean `fusermount3 -u`, a wait for the
//!   daemon, and `SIGKILL` by PID only if it is still alive.
//! * [`Mounted::kill9`], [`Mounted::remount`], [`Mounted::fsck`], [`manifest`] and
//!   [`assert_same_tree`] (checksums through `sha256sum`).
//! * [`require_fuse!`] skips a test with a message when `/dev/fuse` or `fusermount3` is absent
//!   (and fails it when `CI=true`).
//!
//! Nothing here kills a process it did not start, and nothing kills by name.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

pub use tempfile;

/// Name of the daemon binary.
pub const RVMFS: &str = "rvmfs";
/// Name of the mkfs binary as cargo builds it (installed as `mkfs.rvmfs`).
pub const MKFS: &str = "mkfs-rvmfs";
/// Name of the fsck binary as cargo builds it (installed as `fsck.rvmfs`).
pub const FSCK: &str = "fsck-rvmfs";

/// How long a mount may take to appear in /proc/mounts.
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the daemon may take to exit after a clean unmount.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Locating things
// ---------------------------------------------------------------------------------------------

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo target directory: `$CARGO_TARGET_DIR`, else the one the running test binary was
/// built into (`<target>/<profile>/deps/<test>`), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        let d = PathBuf::from(d);
        return if d.is_absolute() {
            d
        } else {
            workspace_root().join(d)
        };
    }
    if let Ok(exe) = std::env::current_exe() {
        // <target>/<profile>/deps/<name>
        if let Some(t) = exe
            .parent()
            .and_then(|p| p.parent())
            .and_then(|p| p.parent())
        {
            if t.join("CACHEDIR.TAG").exists() {
                return t.to_path_buf();
            }
        }
    }
    workspace_root().join("target")
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for name in [RVMFS, MKFS, FSCK] {
        let m = fs::metadata(dir.join(name)).ok()?;
        if !m.is_file() {
            return None;
        }
        let t = m.modified().ok()?;
        newest = Some(match newest {
            Some(n) if n > t => n,
            _ => t,
        });
    }
    newest
}

/// The directory holding `rvmfs`, `mkfs-rvmfs` and `fsck-rvmfs`.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("RVMFS_BIN_DIR") {
            let d = PathBuf::from(d);
            assert!(
                newest_mtime(&d).is_some(),
                "RVMFS_BIN_DIR={} does not hold all of {RVMFS}, {MKFS}, {FSCK}",
                d.display()
            );
            return d;
        }
        let t = target_dir();
        let mut best: Option<(SystemTime, PathBuf)> = None;
        for profile in ["release", "debug"] {
            let d = t.join(profile);
            if let Some(m) = newest_mtime(&d) {
                if best.as_ref().is_none_or(|(b, _)| m > *b) {
                    best = Some((m, d));
                }
            }
        }
        match best {
            Some((_, d)) => {
                eprintln!("rvmfs-tests: using binaries in {}", d.display());
                d
            }
            None => panic!(
                "no built binaries ({RVMFS}, {MKFS}, {FSCK}) in {}/release or {}/debug: \
                 run `cargo build --release --workspace` first, or set RVMFS_BIN_DIR",
                t.display(),
                t.display()
            ),
        }
    })
}

/// Full path of one of the built binaries.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// `Ok` if FUSE mounts can be made here, else why not.
pub fn fuse_available() -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is absent".into());
    }
    if which("fusermount3").is_none() {
        return Err("fusermount3 is not installed (apt-get install fuse3)".into());
    }
    Ok(())
}

/// Whether we run under CI (`CI=true`, as GitHub Actions and most CI services set it): there,
/// a missing FUSE is a broken runner, not a reason to skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Skip the calling test (return early with a message) when FUSE is unavailable; under CI
/// ([`in_ci`]) fail it instead, so a runner without `/dev/fuse` or `fusermount3` cannot
/// pass the end-to-end tests without running them.
#[macro_export]
macro_rules! require_fuse {
    () => {
        if let Err(why) = $crate::fuse_available() {
            if $crate::in_ci() {
                panic!("CI=true but FUSE is unavailable: {}", why);
            }
            eprintln!("SKIPPED {}: {}", module_path!(), why);
            return;
        }
    };
}

/// Find a program in $PATH.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

// ---------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------

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

fn read_back(mut f: fs::File) -> String {
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

/// Run `mkfs-rvmfs ARGS IMAGE`.
pub fn mkfs(image: &Path, args: &[&str]) -> Outcome {
    run_timeout(cmd(bin(MKFS), args).arg(image), Duration::from_secs(300))
}

/// Run `fsck-rvmfs ARGS IMAGE`; returns (exit code, stdout+stderr).
pub fn fsck(image: &Path, args: &[&str]) -> (i32, String) {
    let o = run_timeout(cmd(bin(FSCK), args).arg(image), Duration::from_secs(600));
    if o.timed_out {
        return (-1, format!("fsck timed out after 600 s\n{}", o.output()));
    }
    (o.code(), o.output())
}

// ---------------------------------------------------------------------------------------------
// /proc/mounts
// ---------------------------------------------------------------------------------------------

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

fn wait_unmounted(mnt: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_fuse_mounted(mnt) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

// ---------------------------------------------------------------------------------------------
// The Mounted guard
// ---------------------------------------------------------------------------------------------

/// A temporary directory with an rvmfs image and a mountpoint, and (while mounted) the daemon
/// `rvmfs -f IMAGE MNT` running as our child.
pub struct Mounted {
    dir: tempfile::TempDir,
    image: PathBuf,
    mnt: PathBuf,
    log: PathBuf,
    daemon: Option<Child>,
    mount_opts: Vec<String>,
    daemon_env: Vec<(String, String)>,
    /// How long the last mount took to appear.
    pub last_mount_time: Duration,
}

impl Mounted {
    /// mkfs a 1 GiB (sparse) image with default settings and mount it.
    pub fn new() -> Self {
        Self::with_mkfs(&["-s", "1G"])
    }

    /// mkfs with `args` (e.g. `["-s", "2G", "-N", "100000"]`) and mount.
    pub fn with_mkfs(args: &[&str]) -> Self {
        let mut m = Self::unmounted(args);
        m.mount();
        m
    }

    /// mkfs with `args`, not mounted yet.
    pub fn unmounted(args: &[&str]) -> Self {
        let m = Self::empty();
        mkfs(&m.image, args).ok(&format!(
            "mkfs-rvmfs {} {}",
            args.join(" "),
            m.image.display()
        ));
        m
    }

    /// A temporary directory with a mountpoint and no image at all (`image()` does not exist).
    pub fn empty() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rvmfs-e2e.")
            .tempdir()
            .expect("tempdir");
        let image = dir.path().join("image");
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).expect("mkdir mnt");
        let log = dir.path().join("daemon.log");
        Mounted {
            dir,
            image,
            mnt,
            log,
            daemon: None,
            mount_opts: Vec::new(),
            daemon_env: Vec::new(),
            last_mount_time: Duration::ZERO,
        }
    }

    /// Extra `-o` options for later mounts.
    pub fn set_mount_options(&mut self, opts: &[&str]) {
        self.mount_opts = opts.iter().map(|s| s.to_string()).collect();
    }

    /// An environment variable for later daemons (e.g. `RUST_LOG=info`).
    pub fn set_daemon_env(&mut self, key: &str, value: &str) {
        self.daemon_env.push((key.into(), value.into()));
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn image(&self) -> &Path {
        &self.image
    }
    pub fn mnt(&self) -> &Path {
        &self.mnt
    }
    /// A path inside the mount.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.mnt.join(rel)
    }
    pub fn is_mounted(&self) -> bool {
        self.daemon.is_some()
    }
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(|c| c.id())
    }
    /// Everything the daemon(s) printed so far (all mounts of this guard).
    pub fn daemon_log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn spawn_daemon(&self, mnt: &Path) -> std::io::Result<Child> {
        use std::io::Write;
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut c = Command::new(bin(RVMFS));
        c.arg("-f");
        if !self.mount_opts.is_empty() {
            c.arg("-o").arg(self.mount_opts.join(","));
        }
        c.arg(&self.image).arg(mnt);
        writeln!(log, "==== {:?}", c)?;
        c.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("RUST_BACKTRACE", "1")
            .envs(self.daemon_env.iter().map(|(k, v)| (k, v)))
            .spawn()
    }

    /// Mount (the image must be unmounted). Panics with the daemon's output if the mount does
    /// not show up in /proc/mounts within 20 s.
    pub fn mount(&mut self) {
        assert!(self.daemon.is_none(), "already mounted");
        let start = Instant::now();
        let mut child = self.spawn_daemon(&self.mnt.clone()).expect("spawn rvmfs");
        let deadline = start + MOUNT_TIMEOUT;
        loop {
            if is_fuse_mounted(&self.mnt) {
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "rvmfs exited ({st}) before {} was mounted; its output:\n{}",
                    self.mnt.display(),
                    self.daemon_log()
                );
            }
            if Instant::now() >= deadline {
                signal_pid(child.id(), libc::SIGKILL);
                let _ = child.wait();
                let _ = fusermount_u(&self.mnt, true);
                panic!(
                    "{} did not appear in /proc/mounts within {:?}; rvmfs output:\n{}",
                    self.mnt.display(),
                    MOUNT_TIMEOUT,
                    self.daemon_log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.last_mount_time = start.elapsed();
        self.daemon = Some(child);
    }

    /// Try to mount the same image elsewhere (or anywhere) and return what happened. If the
    /// attempt unexpectedly mounts, it is unmounted again and the outcome says so
    /// (`status == None`, `timed_out == true`).
    pub fn try_mount_at(&self, mnt: &Path, timeout: Duration) -> Outcome {
        try_mount(&self.image, mnt, timeout)
    }

    /// Clean unmount with `fusermount3 -u` (retried while busy), then wait for the daemon to
    /// exit. Returns the daemon's exit status. Panics if it does not exit in time (it is then
    /// killed by PID and the mount removed lazily).
    pub fn unmount(&mut self) -> ExitStatus {
        let mut child = self.daemon.take().expect("not mounted");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let o = fusermount_u(&self.mnt, false);
            if o.success() || !is_fuse_mounted(&self.mnt) {
                break;
            }
            if Instant::now() >= deadline {
                signal_pid(child.id(), libc::SIGKILL);
                let _ = child.wait();
                let _ = fusermount_u(&self.mnt, true);
                panic!(
                    "fusermount3 -u {} kept failing: {}",
                    self.mnt.display(),
                    o.output()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        match wait_timeout(&mut child, EXIT_TIMEOUT) {
            Some(st) => st,
            None => {
                signal_pid(child.id(), libc::SIGKILL);
                let _ = child.wait();
                let _ = fusermount_u(&self.mnt, true);
                panic!(
                    "rvmfs did not exit within {:?} after fusermount3 -u; output:\n{}",
                    EXIT_TIMEOUT,
                    self.daemon_log()
                );
            }
        }
    }

    /// Clean unmount and assert the daemon exited 0.
    #[track_caller]
    pub fn unmount_ok(&mut self) {
        let st = self.unmount();
        assert!(
            st.success(),
            "rvmfs exited {st} after a clean unmount; output:\n{}",
            self.daemon_log()
        );
        assert!(!is_fuse_mounted(&self.mnt), "still mounted after unmount");
    }

    /// Send `sig` (e.g. SIGTERM) to the daemon and wait for it to exit; returns its status.
    /// The mount must be gone afterwards (panics otherwise, after removing it lazily).
    pub fn signal_and_wait(&mut self, sig: libc::c_int) -> ExitStatus {
        let mut child = self.daemon.take().expect("not mounted");
        signal_pid(child.id(), sig);
        let st = match wait_timeout(&mut child, EXIT_TIMEOUT) {
            Some(st) => st,
            None => {
                signal_pid(child.id(), libc::SIGKILL);
                let _ = child.wait();
                let _ = fusermount_u(&self.mnt, true);
                panic!(
                    "rvmfs did not exit within {:?} of signal {sig}; output:\n{}",
                    EXIT_TIMEOUT,
                    self.daemon_log()
                );
            }
        };
        if !wait_unmounted(&self.mnt, Duration::from_secs(5)) {
            let _ = fusermount_u(&self.mnt, true);
            panic!(
                "rvmfs exited ({st}) on signal {sig} but left {} mounted; output:\n{}",
                self.mnt.display(),
                self.daemon_log()
            );
        }
        st
    }

    /// `kill -9` the daemon (by its PID), reap it, and remove the dead mount with
    /// `fusermount3 -u -z`.
    pub fn kill9(&mut self) {
        let mut child = self.daemon.take().expect("not mounted");
        signal_pid(child.id(), libc::SIGKILL);
        let _ = child.wait();
        let o = fusermount_u(&self.mnt, true);
        assert!(
            wait_unmounted(&self.mnt, Duration::from_secs(10)),
            "dead mount {} still there after fusermount3 -u -z: {}",
            self.mnt.display(),
            o.output()
        );
    }

    /// Run `op` in a thread and `kill -9` the daemon `delay` after `op` calls the function it
    /// is given (when its request is about to start); then remove the dead mount and mount
    /// again. Returns what `op` returned (an error when the daemon died before answering).
    pub fn kill9_during<T: Send + 'static>(
        &mut self,
        delay: Duration,
        op: impl FnOnce(&dyn Fn()) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let started = std::sync::Arc::new(AtomicBool::new(false));
        let s2 = started.clone();
        let t = std::thread::spawn(move || op(&|| s2.store(true, Ordering::SeqCst)));
        while !started.load(Ordering::SeqCst) && !t.is_finished() {
            std::hint::spin_loop();
        }
        let t0 = Instant::now();
        while t0.elapsed() < delay {
            std::hint::spin_loop();
        }
        signal_pid(self.daemon_pid().expect("not mounted"), libc::SIGKILL);
        let res = t.join().expect("the operation's thread panicked");
        self.kill9();
        self.mount();
        res
    }

    /// Unmount cleanly (asserting exit 0) and mount again.
    pub fn remount(&mut self) {
        if self.daemon.is_some() {
            self.unmount_ok();
        }
        self.mount();
    }

    /// `fsck-rvmfs ARGS IMAGE` → (exit code, stdout+stderr).
    pub fn fsck(&self, args: &[&str]) -> (i32, String) {
        fsck(self.image(), args)
    }

    /// Assert `fsck -n` reports a clean image (exit 0).
    #[track_caller]
    pub fn assert_fsck_clean(&self) {
        let (code, out) = self.fsck(&["-n", "-f"]);
        assert_eq!(
            code,
            0,
            "fsck -n -f {} exited {code}:\n{out}",
            self.image.display()
        );
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            // Clean unmount first, a few tries while busy.
            for _ in 0..20 {
                if fusermount_u(&self.mnt, false).success() || !is_fuse_mounted(&self.mnt) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if wait_timeout(&mut child, EXIT_TIMEOUT).is_none() {
                signal_pid(child.id(), libc::SIGKILL);
                let _ = child.wait();
            }
        }
        if is_fuse_mounted(&self.mnt) {
            let _ = fusermount_u(&self.mnt, true);
            wait_unmounted(&self.mnt, Duration::from_secs(5));
        }
    }
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

// ---------------------------------------------------------------------------------------------
// Trees and checksums
// ---------------------------------------------------------------------------------------------

/// What one path in a tree is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File { size: u64, sha256: String },
    Dir,
    Symlink(PathBuf),
    Other(u32),
}

/// One entry of a [`manifest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits (mode & 0o7777).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub mtime: i64,
}

/// sha256 (lowercase hex) of many files, through the `sha256sum` program, in batches.
/// Panics if `sha256sum` cannot read one of them.
pub fn sha256_files(paths: &[PathBuf]) -> HashMap<PathBuf, String> {
    let mut out = HashMap::with_capacity(paths.len());
    for chunk in paths.chunks(256) {
        let o = run(Command::new("sha256sum").arg("-z").arg("--").args(chunk));
        assert!(o.success(), "sha256sum failed: {}", o.stderr);
        for rec in o
            .stdout
            .as_bytes()
            .split(|&b| b == 0)
            .filter(|r| !r.is_empty())
        {
            // "<64 hex><space><space or *><name>"
            assert!(
                rec.len() > 66,
                "odd sha256sum output {:?}",
                String::from_utf8_lossy(rec)
            );
            let hash = String::from_utf8_lossy(&rec[..64]).into_owned();
            let name = PathBuf::from(OsStr::from_bytes(&rec[66..]));
            out.insert(name, hash);
        }
    }
    // sha256sum's -z output carries names verbatim, but stdout went through lossy UTF-8;
    // recompute anything not found one by one.
    for p in paths {
        if !out.contains_key(p) {
            out.insert(p.clone(), sha256_file(p));
        }
    }
    out
}

/// sha256 of one file through `sha256sum`.
pub fn sha256_file(path: &Path) -> String {
    let o = run(Command::new("sha256sum").arg("--").arg(path));
    assert!(
        o.success(),
        "sha256sum {} failed: {}",
        path.display(),
        o.stderr
    );
    o.stdout.get(..64).unwrap_or_default().to_string()
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, fs::Metadata)>) {
    let dir = root.join(rel);
    let rd = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
    for ent in rd {
        let ent = ent.unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        let r = rel.join(ent.file_name());
        let md = fs::symlink_metadata(root.join(&r))
            .unwrap_or_else(|e| panic!("lstat {}: {e}", root.join(&r).display()));
        let is_dir = md.file_type().is_dir();
        out.push((r.clone(), md));
        if is_dir {
            walk(root, &r, out);
        }
    }
}

/// Every path under `root` (relative, not including `root` itself), with kind, size, sha256
/// of regular files, symlink targets and ownership/permissions.
pub fn manifest(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut list = Vec::new();
    walk(root, Path::new(""), &mut list);
    manifest_of_list(root, list)
}

/// Like [`manifest`] of a directory that held only `entries` (paths sharing one parent):
/// keys start with each entry's name, and the entries themselves are included.
pub fn manifest_of_entries(entries: &[PathBuf]) -> BTreeMap<PathBuf, Entry> {
    let Some(first) = entries.first() else {
        return BTreeMap::new();
    };
    let root = first.parent().expect("entry has a parent").to_path_buf();
    let mut list = Vec::new();
    for e in entries {
        assert_eq!(
            e.parent(),
            Some(root.as_path()),
            "entries must share one parent"
        );
        let rel = PathBuf::from(e.file_name().unwrap());
        let md =
            fs::symlink_metadata(e).unwrap_or_else(|err| panic!("lstat {}: {err}", e.display()));
        let is_dir = md.file_type().is_dir();
        list.push((rel.clone(), md));
        if is_dir {
            walk(&root, &rel, &mut list);
        }
    }
    manifest_of_list(&root, list)
}

fn manifest_of_list(root: &Path, list: Vec<(PathBuf, fs::Metadata)>) -> BTreeMap<PathBuf, Entry> {
    let files: Vec<PathBuf> = list
        .iter()
        .filter(|(_, m)| m.file_type().is_file())
        .map(|(r, _)| root.join(r))
        .collect();
    let sums = sha256_files(&files);
    let mut out = BTreeMap::new();
    for (rel, md) in list {
        let ft = md.file_type();
        let kind = if ft.is_file() {
            Kind::File {
                size: md.len(),
                sha256: sums[&root.join(&rel)].clone(),
            }
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(fs::read_link(root.join(&rel)).expect("readlink"))
        } else {
            Kind::Other(md.mode() & libc::S_IFMT)
        };
        let e = Entry {
            kind,
            perm: md.permissions().mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            nlink: md.nlink(),
            mtime: md.mtime(),
        };
        if let Some(dup) = out.insert(rel.clone(), e) {
            panic!(
                "{} listed twice under {} ({dup:?})",
                rel.display(),
                root.display()
            );
        }
    }
    out
}

/// Which attributes [`compare_manifests`] compares besides kind, size, content and targets.
#[derive(Clone, Copy, Debug)]
pub struct Compare {
    pub perm: bool,
    pub owner: bool,
    /// link counts of regular files (directories' counts are conventions that vary).
    pub nlink: bool,
    /// mtime of regular files and directories (never of symlinks).
    pub mtime: bool,
}

impl Compare {
    pub const CONTENT: Compare = Compare {
        perm: false,
        owner: false,
        nlink: false,
        mtime: false,
    };
    /// Content, permissions, owner and mtime: what `cp -a` and `tar -xp` preserve.
    pub const ALL: Compare = Compare {
        perm: true,
        owner: true,
        nlink: false,
        mtime: true,
    };
    /// Everything, link counts included: for a tree compared with itself across a remount.
    pub const EXACT: Compare = Compare {
        perm: true,
        owner: true,
        nlink: true,
        mtime: true,
    };
}

/// Differences between two manifests, one line each (empty when they agree).
pub fn compare_manifests(
    want: &BTreeMap<PathBuf, Entry>,
    got: &BTreeMap<PathBuf, Entry>,
    how: Compare,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (p, w) in want {
        let Some(g) = got.get(p) else {
            diffs.push(format!("missing: {}", p.display()));
            continue;
        };
        if w.kind != g.kind {
            let short = |k: &Kind| match k {
                Kind::File { size, sha256 } => format!("file size {size} sha256 {}", &sha256[..16]),
                other => format!("{other:?}"),
            };
            diffs.push(format!(
                "{}: want {}, got {}",
                p.display(),
                short(&w.kind),
                short(&g.kind)
            ));
            continue;
        }
        if how.perm && w.perm != g.perm {
            diffs.push(format!(
                "{}: mode want {:o} got {:o}",
                p.display(),
                w.perm,
                g.perm
            ));
        }
        if how.owner && (w.uid, w.gid) != (g.uid, g.gid) {
            diffs.push(format!(
                "{}: owner want {}:{} got {}:{}",
                p.display(),
                w.uid,
                w.gid,
                g.uid,
                g.gid
            ));
        }
        if how.nlink && matches!(w.kind, Kind::File { .. }) && w.nlink != g.nlink {
            diffs.push(format!(
                "{}: nlink want {} got {}",
                p.display(),
                w.nlink,
                g.nlink
            ));
        }
        if how.mtime && !matches!(w.kind, Kind::Symlink(_)) && w.mtime != g.mtime {
            diffs.push(format!(
                "{}: mtime want {} got {}",
                p.display(),
                w.mtime,
                g.mtime
            ));
        }
    }
    for p in got.keys() {
        if !want.contains_key(p) {
            diffs.push(format!("unexpected: {}", p.display()));
        }
    }
    diffs
}

/// Assert two manifests agree; the message lists the first 30 differences.
#[track_caller]
pub fn assert_manifests_equal(
    want: &BTreeMap<PathBuf, Entry>,
    got: &BTreeMap<PathBuf, Entry>,
    how: Compare,
    what: &str,
) {
    let d = compare_manifests(want, got, how);
    assert!(
        d.is_empty(),
        "{what}: {} differences (of {} entries), first ones:\n  {}",
        d.len(),
        want.len(),
        d.iter().take(30).cloned().collect::<Vec<_>>().join("\n  ")
    );
}

/// Assert the trees under `src` and `dst` have the same paths, kinds, sizes, contents
/// (sha256) and symlink targets, plus what `how` asks for.
#[track_caller]
pub fn assert_same_tree(src: &Path, dst: &Path, how: Compare) -> BTreeMap<PathBuf, Entry> {
    let want = manifest(src);
    let got = manifest(dst);
    assert_manifests_equal(
        &want,
        &got,
        how,
        &format!("{} vs {}", src.display(), dst.display()),
    );
    want
}

/// Number of regular files and their total bytes in a manifest.
pub fn totals(m: &BTreeMap<PathBuf, Entry>) -> (usize, u64) {
    m.values().fold((0, 0), |(n, b), e| match e.kind {
        Kind::File { size, .. } => (n + 1, b + size),
        _ => (n, b),
    })
}

// ---------------------------------------------------------------------------------------------
// Real trees to copy
// ---------------------------------------------------------------------------------------------

/// The Python standard library directory of `python3` (sysconfig's "stdlib"), falling back to
/// Debian's /usr/lib/python3.N.
pub fn python_stdlib() -> Option<PathBuf> {
    let o = run_timeout(
        Command::new("python3").args([
            "-c",
            "import sysconfig;print(sysconfig.get_paths()['stdlib'])",
        ]),
        Duration::from_secs(30),
    );
    if o.success() {
        let p = PathBuf::from(o.stdout.trim());
        if p.join("os.py").is_file() {
            return Some(p);
        }
    }
    let mut cands: Vec<PathBuf> = fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python3."))
                && p.join("os.py").is_file()
        })
        .collect();
    cands.sort();
    cands.pop()
}

/// The top-level entries of the Python standard library, without third-party packages
/// (`site-packages`, `dist-packages`) and without whatever else is named in `also_skip`
/// (e.g. `"test"`, the biggest package).
pub fn python_stdlib_entries(also_skip: &[&str]) -> Vec<PathBuf> {
    let root = python_stdlib().expect("no Python standard library found (python3)");
    let mut v: Vec<PathBuf> = fs::read_dir(&root)
        .expect("read stdlib")
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n != "site-packages" && n != "dist-packages" && !also_skip.contains(&n.as_ref())
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// `cp -a SOURCES... DEST/` (DEST must exist).
pub fn cp_a(sources: &[PathBuf], dest: &Path) -> Outcome {
    run(Command::new("cp")
        .arg("-a")
        .arg("-t")
        .arg(dest)
        .args(sources))
}

/// Copy a tree by piping `tar -C src -cf - PATHS...` into `tar -C dst -xf -`.
pub fn tar_pipe(src: &Path, paths: &[&str], dst: &Path) -> Outcome {
    let start = Instant::now();
    let mut c = Command::new("tar")
        .arg("-C")
        .arg(src)
        .arg("-cf")
        .arg("-")
        .args(paths)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tar c");
    let pipe = c.stdout.take().unwrap();
    let x = Command::new("tar")
        .arg("-C")
        .arg(dst)
        .arg("-xpf")
        .arg("-")
        .stdin(pipe)
        .output()
        .expect("run tar x");
    let co = c.wait_with_output().expect("wait tar c");
    Outcome {
        status: Some(if !x.status.success() {
            x.status
        } else {
            co.status
        }),
        stdout: String::from_utf8_lossy(&x.stdout).into_owned(),
        stderr: format!(
            "tar c: {}{}\ntar x: {}{}",
            co.status,
            String::from_utf8_lossy(&co.stderr),
            x.status,
            String::from_utf8_lossy(&x.stderr)
        ),
        timed_out: false,
        elapsed: start.elapsed(),
    }
}

/// Deterministic pseudo-random bytes (xorshift), for file contents.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// MiB/s for a byte count and a duration.
pub fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1048576.0 / d.as_secs_f64().max(1e-9)
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

/// Describe how two byte strings differ (lengths, first differing offset, a short excerpt)
/// without printing megabytes; `None` if they are equal.
pub fn bytes_diff(got: &[u8], want: &[u8]) -> Option<String> {
    if got == want {
        return None;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let excerpt = |v: &[u8]| {
        let end = (first + 16).min(v.len());
        format!("{:02x?}", &v[first.min(v.len())..end])
    };
    Some(format!(
        "got {} bytes, want {}; first difference at offset {first}: got {} want {}",
        got.len(),
        want.len(),
        excerpt(got),
        excerpt(want)
    ))
}

/// Assert a file's content, reporting only where it differs.
#[track_caller]
pub fn assert_file(path: impl AsRef<Path>, want: impl AsRef<[u8]>) {
    let path = path.as_ref();
    let got = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    if let Some(d) = bytes_diff(&got, want.as_ref()) {
        panic!("{}: {d}", path.display());
    }
}

/// Bytes in use on the filesystem holding `path` (statvfs: (blocks - free) * fragment size).
pub fn fs_used_bytes(path: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some((s.f_blocks as u64).saturating_sub(s.f_bfree as u64) * s.f_frsize as u64)
}

/// Wait until a background writer into `mnt` has added `bytes` bytes (per statvfs), or has
/// exited, or `max` has passed. If the filesystem's usage does not move within the first
/// second, falls back to sleeping `fallback` in all. Returns how long it waited.
pub fn wait_for_progress(
    mnt: &Path,
    writer: &mut ChildGuard,
    bytes: u64,
    fallback: Duration,
    max: Duration,
) -> Duration {
    let start = Instant::now();
    let base = fs_used_bytes(mnt).unwrap_or(0);
    loop {
        let el = start.elapsed();
        if !writer.is_running() || el >= max {
            return el;
        }
        let used = fs_used_bytes(mnt).unwrap_or(base);
        if used.saturating_sub(base) >= bytes {
            return el;
        }
        if used == base && el >= Duration::from_secs(1) {
            if fallback > el {
                std::thread::sleep(fallback - el);
            }
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
