//! [`Mounted`], the guard every end-to-end test holds: a temporary directory with `image`
//! and `mnt`; `mkfs-rvmfs`; the daemon `rvmfs -f IMAGE MNT` started in the foreground as our
//! child; [`Mounted::kill9`], [`Mounted::remount`], [`Mounted::fsck`]; on drop a clean
//! `fusermount3 -u`, a wait for the daemon, and `SIGKILL` by PID only if it is still alive.

use crate::binaries::{bin, fsck, mkfs, RVMFS};
use crate::mounts::{fusermount_u, is_fuse_mounted, try_mount, wait_unmounted};
use crate::processes::{signal_pid, wait_timeout, Outcome};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a mount may take to appear in /proc/mounts.
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the daemon may take to exit after a clean unmount.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

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

    /// A fresh 1 GiB image mounted with `threads=N` (N FUSE threads serving at once).
    pub fn with_threads(threads: usize) -> Self {
        let mut m = Self::unmounted(&["-s", "1G"]);
        m.set_mount_options(&[&format!("threads={threads}")]);
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
    /// Where the daemon keeps the image's spool: `/dev/shm/rvmfs-<uuid>.spool`, named by the
    /// UUID in the image's header (bytes 16..32). Panics if the image cannot be read.
    pub fn spool_path(&self) -> PathBuf {
        let mut head = [0u8; 32];
        let mut f = fs::File::open(&self.image).expect("open the image");
        std::io::Read::read_exact(&mut f, &mut head).expect("read the image header");
        let hex: String = head[16..32].iter().map(|b| format!("{b:02x}")).collect();
        PathBuf::from(format!(
            "/dev/shm/rvmfs-{}-{}-{}-{}-{}.spool",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        ))
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
                give_up(&mut child, &self.mnt);
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
                give_up(&mut child, &self.mnt);
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
                give_up(&mut child, &self.mnt);
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
                give_up(&mut child, &self.mnt);
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

/// Kill a daemon of ours that misbehaved (by its PID), reap it and remove its mount lazily:
/// what every failure path does before it panics.
fn give_up(child: &mut Child, mnt: &Path) {
    signal_pid(child.id(), libc::SIGKILL);
    let _ = child.wait();
    let _ = fusermount_u(mnt, true);
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
