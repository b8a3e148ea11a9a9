//! fuse2fs, the peer with rvmfs's architecture: e2fsprogs' FUSE daemon over one ext4 image
//! file. The image has the size of rvmfs's and lies in the same work directory (same disk);
//! made with `mkfs.ext4 -F -q`, mounted with `fuse2fs -f IMAGE MNT` as our child, so its pid
//! is ours and unmounting waits for it. Installed with `apt-get install -y fuse2fs` when
//! missing (Debian/Ubuntu).

use crate::mounts::{mounted_type, run};
use anyhow::{bail, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The fuse2fs program, installed with apt when missing; None (and a note) if impossible.
pub fn binary(notes: &mut Vec<String>) -> Option<PathBuf> {
    let find = || {
        ["/usr/bin/fuse2fs", "/usr/sbin/fuse2fs", "/bin/fuse2fs"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    };
    if let Some(p) = find() {
        return Some(p);
    }
    eprintln!("fuse2fs not found: apt-get install -y fuse2fs");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !apt(&["install", "-y", "fuse2fs"]) {
        let _ = apt(&["update"]);
        let _ = apt(&["install", "-y", "fuse2fs"]);
    }
    let found = find();
    if found.is_none() {
        notes.push("fuse2fs skipped: `apt-get install -y fuse2fs` did not provide it".into());
    }
    found
}

/// A fuse2fs daemon started by us in the foreground.
pub struct Fuse2fs {
    child: Option<Child>,
    pub mnt: PathBuf,
}

impl Fuse2fs {
    /// A fresh ext4 image of `size` (truncate(1) syntax, sparse) at `image`, mounted on `mnt`
    /// (daemon output to `log`); returns the mount and the time it took to appear.
    pub fn mkfs_and_mount(
        bin: &Path,
        image: &Path,
        size: &str,
        mnt: &Path,
        log: &Path,
    ) -> Result<(Self, Duration)> {
        let _ = std::fs::remove_file(image);
        run(Command::new("truncate").args(["-s", size]).arg(image))?;
        run(Command::new("mkfs.ext4").args(["-F", "-q"]).arg(image))?;
        std::fs::create_dir_all(mnt)?;
        let mnt = std::fs::canonicalize(mnt)?;
        if mounted_type(&mnt).is_some() {
            bail!("{} is already a mount point", mnt.display());
        }
        let out = File::create(log)?;
        let start = Instant::now();
        let child = Command::new(bin)
            .arg(image)
            .arg(&mnt)
            .arg("-f")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let mut me = Fuse2fs {
            child: Some(child),
            mnt: mnt.clone(),
        };
        while mounted_type(&mnt).is_none() {
            if let Some(Ok(Some(st))) = me.child.as_mut().map(Child::try_wait) {
                me.child = None;
                bail!(
                    "fuse2fs exited ({st}) before mounting; see {}",
                    log.display()
                );
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!("fuse2fs did not mount {} within 20 s", mnt.display());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok((me, start.elapsed()))
    }

    /// Unmount and wait for the daemon (it writes back its caches on the way out).
    pub fn unmount(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let r = run(Command::new("fusermount").arg("-u").arg(&self.mnt))
            .or_else(|_| run(Command::new("umount").arg(&self.mnt)));
        if r.is_err() {
            let _ = run(Command::new("umount").arg("-l").arg(&self.mnt));
        }
        let start = Instant::now();
        while !matches!(child.try_wait(), Ok(Some(_))) {
            if start.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("fuse2fs did not exit within 120 s of its unmount");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        r.map(|_| ())
    }
}

impl Drop for Fuse2fs {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
