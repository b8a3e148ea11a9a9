//! The seeded random workload: which operation comes next, with which arguments, drawn from
//! the model's current tree. The draws for a given seed never change: a seed replays a run.

use crate::model::{depth, join, Body, Ino, Model, MAX_DEPTH, MAX_FILE, MAX_INFLIGHT_WRITE};
use crate::ops::{Op, Target};
use crate::rng::Rng;
use rvmfs_tests::*;

/// Names used at every level: few, so that creates collide and renames replace targets.
pub fn names() -> Vec<String> {
    let mut v: Vec<String> = ["a", "b", "c", "d", "e", "f", "name with spaces", "ünïcödé"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.push("L".repeat(255)); // NAME_MAX
    v
}

const XATTR_NAMES: [&str; 4] = [
    "user.a",
    "user.bb",
    "user.checksum",
    "user.long.name.with.dots",
];

pub struct Gen {
    pub names: Vec<String>,
}

impl Gen {
    fn random_perm(rng: &mut Rng, dir: bool) -> u32 {
        let p = rng.below(0o1000) as u32;
        if dir {
            p | 0o700
        } else {
            p | 0o600
        }
    }

    fn random_len(rng: &mut Rng, inflight: bool) -> u64 {
        let len = match rng.below(10) {
            0..=6 => rng.range(1, 8192),
            7 | 8 => rng.range(8193, 64 << 10),
            _ => rng.range(64 << 10, 768 << 10),
        };
        if inflight {
            len.min(MAX_INFLIGHT_WRITE)
        } else {
            len
        }
    }

    /// The next operation for the model `m` (`inflight`: the one sent while the daemon is
    /// killed, so nothing that adds an open handle and writes of at most
    /// [`MAX_INFLIGHT_WRITE`]). Draws a kind by its share of 100, again while the kind has
    /// nothing to act on.
    pub fn op(&self, rng: &mut Rng, m: &Model, inflight: bool) -> Op {
        let c = Choices::new(m, &self.names, inflight);
        loop {
            let k = rng.below(100);
            let op = match k {
                // write 24%
                0..=23 => c.write(rng),
                // create 9%
                24..=32 => c.create(rng),
                // truncate 7%
                33..=39 => c.truncate(rng),
                // rename 11%
                40..=50 => c.rename(rng),
                // link 5%
                51..=55 => c.link(rng),
                // unlink 8% (often a file held open)
                56..=63 => c.unlink(rng),
                // mkdir 6%
                64..=69 => c.mkdir(rng),
                // rmdir 5% (mostly empty directories)
                70..=74 => c.rmdir(rng),
                // symlink 4%
                75..=78 => c.symlink(rng),
                // setxattr 6%, removexattr 2%
                79..=86 => c.xattr(rng, k >= 85),
                // chmod 3%
                87..=89 => c.chmod(rng),
                // fsync / fdatasync 4%, fsyncdir 1%
                90..=93 => c.fsync(rng),
                94 => Some(Op::FsyncDir {
                    path: rng.pick(&c.dirs).clone(),
                }),
                // open and hold 2%, close 2%, read back 1%
                95 | 96 => c.open_hold(rng),
                97 | 98 => c.close(rng),
                _ => c.check(rng),
            };
            if let Some(op) = op {
                return op;
            }
        }
    }
}

/// The model's tree as the lists an operation's arguments are drawn from. Each method draws
/// one kind of operation, or `None` when the tree offers nothing for it (the caller draws
/// again).
struct Choices<'a> {
    m: &'a Model,
    names: &'a [String],
    inflight: bool,
    /// Every entry under the root, parents before children.
    entries: Vec<(String, Ino)>,
    files: Vec<String>,
    /// The root ("") and every directory.
    dirs: Vec<String>,
    /// Directories new entries may go into (above [`MAX_DEPTH`]).
    shallow: Vec<String>,
    nondirs: Vec<String>,
    /// Files and directories (things that take xattrs and chmod here).
    files_dirs: Vec<String>,
    /// Over 160 entries: nothing more is created (keeps the per-cycle verification cheap).
    crowded: bool,
    /// Open handles held by the driver.
    nh: usize,
}

impl<'a> Choices<'a> {
    fn new(m: &'a Model, names: &'a [String], inflight: bool) -> Self {
        let entries = m.entries();
        let paths = |keep: &dyn Fn(Ino) -> bool| -> Vec<String> {
            entries
                .iter()
                .filter(|(_, i)| keep(*i))
                .map(|(p, _)| p.clone())
                .collect()
        };
        let files = paths(&|i| matches!(m.node(i).body, Body::File(_)));
        let dirs: Vec<String> = std::iter::once(String::new())
            .chain(paths(&|i| m.is_dir(i)))
            .collect();
        let shallow = dirs
            .iter()
            .filter(|d| depth(d) < MAX_DEPTH)
            .cloned()
            .collect();
        let nondirs = paths(&|i| !m.is_dir(i));
        let files_dirs = paths(&|i| !matches!(m.node(i).body, Body::Symlink(_)));
        Choices {
            m,
            names,
            inflight,
            crowded: entries.len() > 160,
            nh: m.handles.len(),
            entries,
            files,
            dirs,
            shallow,
            nondirs,
            files_dirs,
        }
    }

    fn new_path(&self, rng: &mut Rng) -> String {
        join(
            rng.pick::<String>(&self.shallow),
            rng.pick::<String>(self.names),
        )
    }

    /// A target that often exists (renames and links over existing names).
    fn any_path(&self, rng: &mut Rng) -> String {
        if !self.entries.is_empty() && rng.chance(0.4) {
            let e = &rng.pick(&self.entries).0;
            if depth(e) <= MAX_DEPTH {
                return e.clone();
            }
        }
        self.new_path(rng)
    }

    fn file_target(&self, rng: &mut Rng) -> Option<Target> {
        if self.nh > 0 && (self.files.is_empty() || rng.chance(0.35)) {
            Some(Target::Handle(rng.below(self.nh as u64) as usize))
        } else if !self.files.is_empty() {
            Some(Target::Path(rng.pick(&self.files).to_string()))
        } else {
            None
        }
    }

    fn write(&self, rng: &mut Rng) -> Option<Op> {
        let target = self.file_target(rng)?;
        let m = self.m;
        let size = m.node(m.target_ino(&target).unwrap()).body.file_len();
        let len = Gen::random_len(rng, self.inflight);
        let off = match rng.below(10) {
            0..=2 => size,                     // append
            3..=5 => rng.below(size.max(1)),   // overwrite (and maybe extend)
            6 => size + rng.range(1, 200_000), // past EOF: a hole
            _ => rng.below(256 << 10),         // anywhere
        };
        // In flight too: overwrites are copied on write, so an unanswered one must be all or
        // nothing like any other operation.
        let off = off.min(MAX_FILE - len);
        Some(Op::Write {
            target,
            off,
            len,
            seed: rng.next(),
        })
    }

    fn create(&self, rng: &mut Rng) -> Option<Op> {
        if self.crowded {
            return None;
        }
        Some(Op::Create {
            path: self.new_path(rng),
            perm: Gen::random_perm(rng, false),
            keep: !self.inflight && self.nh < 6 && rng.chance(0.3),
        })
    }

    fn truncate(&self, rng: &mut Rng) -> Option<Op> {
        let target = self.file_target(rng)?;
        let m = self.m;
        let size = m.node(m.target_ino(&target).unwrap()).body.file_len();
        let size = match rng.below(5) {
            0 => 0,
            1 | 2 => rng.below(size + 1),
            3 => size + rng.range(1, 100_000),
            _ => rng.below(512 << 10),
        };
        Some(Op::Truncate {
            target,
            size: size.min(MAX_FILE),
        })
    }

    fn rename(&self, rng: &mut Rng) -> Option<Op> {
        if self.entries.is_empty() {
            return None;
        }
        let from = rng.pick(&self.entries).0.clone();
        Some(Op::Rename {
            from,
            to: self.any_path(rng),
        })
    }

    fn link(&self, rng: &mut Rng) -> Option<Op> {
        if self.nondirs.is_empty() || self.crowded {
            return None;
        }
        Some(Op::Link {
            from: rng.pick(&self.nondirs).to_string(),
            to: self.any_path(rng),
        })
    }

    fn unlink(&self, rng: &mut Rng) -> Option<Op> {
        let held: Vec<&String> = self
            .entries
            .iter()
            .filter(|(_, i)| self.m.handles.contains(i))
            .map(|(p, _)| p)
            .collect();
        let path = if !held.is_empty() && rng.chance(0.4) {
            rng.pick(&held).to_string()
        } else if !self.nondirs.is_empty() && rng.chance(0.95) {
            rng.pick(&self.nondirs).to_string()
        } else if !self.entries.is_empty() {
            rng.pick(&self.entries).0.clone()
        } else {
            return None;
        };
        Some(Op::Unlink { path })
    }

    fn mkdir(&self, rng: &mut Rng) -> Option<Op> {
        if self.crowded {
            return None;
        }
        Some(Op::Mkdir {
            path: self.new_path(rng),
            perm: Gen::random_perm(rng, true),
            keep: false,
        })
    }

    fn rmdir(&self, rng: &mut Rng) -> Option<Op> {
        let m = self.m;
        let dirs = &self.dirs;
        let empty: Vec<&String> = dirs[1..]
            .iter()
            .filter(|d| m.children(m.resolve(d).unwrap()).is_empty())
            .collect();
        let path = if !empty.is_empty() && rng.chance(0.6) {
            rng.pick(&empty).to_string()
        } else if dirs.len() > 1 && rng.chance(0.9) {
            rng.pick(&dirs[1..]).clone()
        } else if !self.entries.is_empty() {
            rng.pick(&self.entries).0.clone()
        } else {
            return None;
        };
        Some(Op::Rmdir { path })
    }

    fn symlink(&self, rng: &mut Rng) -> Option<Op> {
        if self.crowded {
            return None;
        }
        let target = match rng.below(4) {
            0 => rng.pick(self.names).clone(),
            1 => format!("../{}/x", rng.pick(self.names)),
            2 => "/nonexistent/absolute/target".to_string(),
            _ => "t".repeat(rng.range(1, 1000) as usize),
        };
        Some(Op::Symlink {
            target,
            path: self.new_path(rng),
        })
    }

    /// setxattr, or removexattr when `remove`.
    fn xattr(&self, rng: &mut Rng, remove: bool) -> Option<Op> {
        if self.files_dirs.is_empty() {
            return None;
        }
        let path = rng.pick(&self.files_dirs).to_string();
        let name = rng.pick(&XATTR_NAMES).to_string();
        if remove {
            return Some(Op::RemoveXattr { path, name });
        }
        let len = if rng.chance(0.1) {
            rng.range(1000, 6000)
        } else {
            rng.below(200)
        };
        let flags = match rng.below(6) {
            0 => libc::XATTR_CREATE,
            1 => libc::XATTR_REPLACE,
            _ => 0,
        };
        Some(Op::SetXattr {
            path,
            name,
            value: pattern(rng.next(), len as usize),
            flags,
        })
    }

    fn chmod(&self, rng: &mut Rng) -> Option<Op> {
        if self.files_dirs.is_empty() {
            return None;
        }
        let path = rng.pick(&self.files_dirs).to_string();
        let dir = self.m.is_dir(self.m.resolve(&path).unwrap());
        Some(Op::Chmod {
            path,
            perm: Gen::random_perm(rng, dir),
        })
    }

    fn fsync(&self, rng: &mut Rng) -> Option<Op> {
        let target = self.file_target(rng)?;
        Some(Op::Fsync {
            target,
            data_only: rng.chance(0.5),
        })
    }

    fn open_hold(&self, rng: &mut Rng) -> Option<Op> {
        if self.inflight || self.files.is_empty() || self.nh >= 6 {
            return None;
        }
        Some(Op::OpenHold {
            path: rng.pick(&self.files).to_string(),
        })
    }

    fn close(&self, rng: &mut Rng) -> Option<Op> {
        if self.inflight || self.nh == 0 {
            return None;
        }
        Some(Op::Close {
            handle: rng.below(self.nh as u64) as usize,
        })
    }

    fn check(&self, rng: &mut Rng) -> Option<Op> {
        if self.inflight || self.files.is_empty() {
            return None;
        }
        Some(Op::Check {
            path: rng.pick(&self.files).to_string(),
        })
    }
}
