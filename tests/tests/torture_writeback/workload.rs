//! The workload: random file and metadata operations under `w/`, each recorded in the
//! model once its syscall returned. Files are created and closed, created and held open
//! mid-write, fsynced, overwritten, truncated, renamed, unlinked (never while open, so a
//! crash leaves no orphans of its making), chmodded and given an xattr.

use crate::model::{FileState, Model, Node, DIRS};
use crate::rng::Rng;
use rvmfs_tests::pattern;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

/// Offsets of writes stay below this (bytes); each write is at most [`MAX_WRITE`] bytes.
const MAX_OFFSET: u64 = 192 << 10;
const MAX_WRITE: u64 = 32 << 10;

pub struct Workload {
    pub model: Model,
    pub root: PathBuf,
    /// The writeback cache is on: a returned write is settled only by a close or fsync.
    pub writeback: bool,
    next_name: u64,
    /// write(2) calls that returned (the daemon's WRITE count must stay below it under the
    /// writeback cache, which merges and holds them).
    pub write_calls: u64,
    /// This cycle's operations, for a failure message.
    pub log: Vec<String>,
}

impl Workload {
    /// A workload under `root` (made here, with the fixed directories).
    pub fn new(root: PathBuf, writeback: bool) -> Workload {
        fs::create_dir(&root).unwrap();
        for d in DIRS {
            fs::create_dir(root.join(d)).unwrap();
        }
        Workload {
            model: Model::new(),
            root,
            writeback,
            next_name: 0,
            write_calls: 0,
            log: Vec::new(),
        }
    }

    /// One random operation; panics (with the cycle's log) if a syscall fails.
    pub fn step(&mut self, rng: &mut Rng) {
        let what = rng.below(100);
        let r = match what {
            0..=17 => self.create(rng, false),
            18..=29 => self.create(rng, true),
            30..=44 => self.write_held(rng),
            45..=51 => self.sync_held(rng),
            52..=59 => self.close_held(rng),
            60..=69 => self.overwrite_closed(rng),
            70..=76 => self.truncate(rng),
            77..=84 => self.rename(rng),
            85..=90 => self.unlink(rng),
            91..=95 => self.chmod(rng),
            _ => self.setxattr(rng),
        };
        if let Err(e) = r {
            panic!(
                "an operation failed: {e}\nthis cycle's operations:\n  {}",
                self.log.join("\n  ")
            );
        }
    }

    fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A name not in use, in a random directory (or `w/` itself).
    fn fresh_path(&mut self, rng: &mut Rng) -> String {
        self.next_name += 1;
        match rng.below(DIRS.len() as u64 + 1) as usize {
            0 => format!("f{}", self.next_name),
            d => format!("{}/f{}", DIRS[d - 1], self.next_name),
        }
    }

    /// Between `count.0` and `count.1` writes through `f`, recorded for file `id`.
    fn writes(
        &mut self,
        rng: &mut Rng,
        id: usize,
        f: &fs::File,
        count: (u64, u64),
    ) -> io::Result<()> {
        for _ in 0..rng.range(count.0, count.1) {
            let off = rng.below(MAX_OFFSET);
            let bytes = pattern(rng.next(), rng.range(1, MAX_WRITE) as usize);
            f.write_all_at(&bytes, off)?;
            self.write_calls += 1;
            self.model.wrote(id, off as usize, &bytes, !self.writeback);
            self.log
                .push(format!("  write {} bytes at {off}", bytes.len()));
        }
        Ok(())
    }

    /// Create a file and write to it; `hold`: keep it open (mid-write), else close it.
    fn create(&mut self, rng: &mut Rng, hold: bool) -> io::Result<()> {
        let path = self.fresh_path(rng);
        let perm = 0o600 | rng.below(0o100) as u32;
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(perm)
            .open(self.abs(&path))?;
        let id = self.model.files.len();
        self.model.files.push(FileState::new(perm));
        self.model.tree.insert(path.clone(), Node::File(id));
        self.log
            .push(format!("create {path} {perm:o} (hold: {hold})"));
        self.writes(rng, id, &f, (1, 4))?;
        if hold {
            self.model.open.push((id, f));
        } else {
            drop(f);
            self.model.settle(id);
        }
        Ok(())
    }

    /// A random held handle's index, if any.
    fn held(&self, rng: &mut Rng) -> Option<usize> {
        let n = self.model.open.len() as u64;
        (n > 0).then(|| rng.below(n) as usize)
    }

    fn write_held(&mut self, rng: &mut Rng) -> io::Result<()> {
        let Some(h) = self.held(rng) else {
            return Ok(());
        };
        let (id, f) = self.model.open.swap_remove(h);
        self.log.push(format!("write held file {id}"));
        let r = self.writes(rng, id, &f, (1, 3));
        self.model.open.push((id, f));
        r
    }

    /// fsync or fdatasync a held file: settled.
    fn sync_held(&mut self, rng: &mut Rng) -> io::Result<()> {
        let Some(h) = self.held(rng) else {
            return Ok(());
        };
        let data_only = rng.chance(0.5);
        let (id, f) = &self.model.open[h];
        if data_only {
            f.sync_data()?;
        } else {
            f.sync_all()?;
        }
        let id = *id;
        self.model.settle(id);
        self.log.push(format!(
            "{} file {id}",
            if data_only { "fdatasync" } else { "fsync" }
        ));
        Ok(())
    }

    /// Close a held file: settled (close-to-open).
    fn close_held(&mut self, rng: &mut Rng) -> io::Result<()> {
        let Some(h) = self.held(rng) else {
            return Ok(());
        };
        let (id, f) = self.model.open.swap_remove(h);
        drop(f);
        self.model.settle(id);
        self.log.push(format!("close file {id}"));
        Ok(())
    }

    /// A linked file, not held open if `closed`.
    fn pick_file(&self, rng: &mut Rng, closed: bool) -> Option<(String, usize)> {
        let files: Vec<_> = self
            .model
            .linked()
            .into_iter()
            .filter(|(_, id)| !closed || !self.model.is_open(*id))
            .collect();
        (!files.is_empty()).then(|| rng.pick(&files).clone())
    }

    /// Open a closed file, write, close: settled with the new contents.
    fn overwrite_closed(&mut self, rng: &mut Rng) -> io::Result<()> {
        let Some((path, id)) = self.pick_file(rng, true) else {
            return Ok(());
        };
        self.log.push(format!("overwrite {path}"));
        let f = OpenOptions::new().write(true).open(self.abs(&path))?;
        self.writes(rng, id, &f, (1, 3))?;
        drop(f);
        self.model.settle(id);
        Ok(())
    }

    /// truncate(2) by path, open or not.
    fn truncate(&mut self, rng: &mut Rng) -> io::Result<()> {
        let Some((path, id)) = self.pick_file(rng, false) else {
            return Ok(());
        };
        let size = rng.below(MAX_OFFSET + MAX_WRITE);
        let c = crate::posix_common::c(self.abs(&path));
        // SAFETY: a NUL-terminated path.
        crate::posix_common::sys(unsafe { libc::truncate(c.as_ptr(), size as libc::off_t) })?;
        self.model.truncated(id, size as usize);
        self.log.push(format!("truncate {path} to {size}"));
        Ok(())
    }

    /// Rename a file (open or not) to a fresh name.
    fn rename(&mut self, rng: &mut Rng) -> io::Result<()> {
        let Some((from, id)) = self.pick_file(rng, false) else {
            return Ok(());
        };
        let to = self.fresh_path(rng);
        fs::rename(self.abs(&from), self.abs(&to))?;
        self.model.tree.remove(&from);
        self.model.tree.insert(to.clone(), Node::File(id));
        self.log.push(format!("rename {from} -> {to}"));
        Ok(())
    }

    /// Unlink a closed file.
    fn unlink(&mut self, rng: &mut Rng) -> io::Result<()> {
        let Some((path, _)) = self.pick_file(rng, true) else {
            return Ok(());
        };
        fs::remove_file(self.abs(&path))?;
        self.model.tree.remove(&path);
        self.log.push(format!("unlink {path}"));
        Ok(())
    }

    fn chmod(&mut self, rng: &mut Rng) -> io::Result<()> {
        let Some((path, id)) = self.pick_file(rng, false) else {
            return Ok(());
        };
        let perm = 0o600 | rng.below(0o200) as u32;
        fs::set_permissions(self.abs(&path), fs::Permissions::from_mode(perm))?;
        self.model.files[id].perm = perm;
        self.log.push(format!("chmod {path} {perm:o}"));
        Ok(())
    }

    /// setxattr user.k (a new random value).
    fn setxattr(&mut self, rng: &mut Rng) -> io::Result<()> {
        let Some((path, id)) = self.pick_file(rng, false) else {
            return Ok(());
        };
        let value = pattern(rng.next(), rng.range(1, 64) as usize);
        crate::posix_common::setxattr(&self.abs(&path), "user.k", &value, 0)?;
        self.model.files[id].xattr = Some(value);
        self.log.push(format!("setxattr {path} user.k"));
        Ok(())
    }
}
