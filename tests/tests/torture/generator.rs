//! The seeded random workload: which operation comes next.

use crate::model::*;
use crate::ops::*;
use crate::rng::*;
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

pub const XATTR_NAMES: [&str; 4] = [
    "user.a",
    "user.bb",
    "user.checksum",
    "user.long.name.with.dots",
];

pub struct Gen {
    pub names: Vec<String>,
}

impl Gen {
    pub fn random_perm(rng: &mut Rng, dir: bool) -> u32 {
        let p = rng.below(0o1000) as u32;
        if dir {
            p | 0o700
        } else {
            p | 0o600
        }
    }

    pub fn random_len(rng: &mut Rng, inflight: bool) -> u64 {
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

    pub fn op(&self, rng: &mut Rng, m: &Model, inflight: bool) -> Op {
        let entries = m.entries();
        let files: Vec<&String> = entries
            .iter()
            .filter(|(_, i)| matches!(m.node(*i).body, Body::File(_)))
            .map(|(p, _)| p)
            .collect();
        let dirs: Vec<String> = std::iter::once(String::new())
            .chain(
                entries
                    .iter()
                    .filter(|(_, i)| m.is_dir(*i))
                    .map(|(p, _)| p.clone()),
            )
            .collect();
        let shallow: Vec<&String> = dirs.iter().filter(|d| depth(d) < MAX_DEPTH).collect();
        let nondirs: Vec<&String> = entries
            .iter()
            .filter(|(_, i)| !m.is_dir(*i))
            .map(|(p, _)| p)
            .collect();
        let files_dirs: Vec<&String> = entries
            .iter()
            .filter(|(_, i)| !matches!(m.node(*i).body, Body::Symlink(_)))
            .map(|(p, _)| p)
            .collect();
        let crowded = entries.len() > 160;
        let nh = m.handles.len();

        let new_path = |rng: &mut Rng| {
            join(
                rng.pick::<&String>(&shallow),
                rng.pick::<String>(&self.names),
            )
        };
        // A target that often exists (renames and links over existing names).
        let any_path = |rng: &mut Rng| {
            if !entries.is_empty() && rng.chance(0.4) {
                let e = &rng.pick(&entries).0;
                if depth(e) <= MAX_DEPTH {
                    return e.clone();
                }
            }
            new_path(rng)
        };
        let file_target = |rng: &mut Rng| {
            if nh > 0 && (files.is_empty() || rng.chance(0.35)) {
                Some(Target::Handle(rng.below(nh as u64) as usize))
            } else if !files.is_empty() {
                Some(Target::Path(rng.pick(&files).to_string()))
            } else {
                None
            }
        };

        loop {
            let k = rng.below(100);
            let op = match k {
                // write 24%
                0..=23 => {
                    let Some(target) = file_target(rng) else {
                        continue;
                    };
                    let size = m.node(m.target_ino(&target).unwrap()).body.file_len();
                    let len = Self::random_len(rng, inflight);
                    let off = match rng.below(10) {
                        0..=2 => size,                     // append
                        3..=5 => rng.below(size.max(1)),   // overwrite (and maybe extend)
                        6 => size + rng.range(1, 200_000), // past EOF: a hole
                        _ => rng.below(256 << 10),         // anywhere
                    };
                    // In flight too: overwrites are copied on write, so an unanswered one must
                    // be all or nothing like any other operation.
                    let off = off.min(MAX_FILE - len);
                    let _ = inflight;
                    Op::Write {
                        target,
                        off,
                        len,
                        seed: rng.next(),
                    }
                }
                // create 9%
                24..=32 => {
                    if crowded {
                        continue;
                    }
                    Op::Create {
                        path: new_path(rng),
                        perm: Self::random_perm(rng, false),
                        keep: !inflight && nh < 6 && rng.chance(0.3),
                    }
                }
                // truncate 7%
                33..=39 => {
                    let Some(target) = file_target(rng) else {
                        continue;
                    };
                    let size = m.node(m.target_ino(&target).unwrap()).body.file_len();
                    let size = match rng.below(5) {
                        0 => 0,
                        1 | 2 => rng.below(size + 1),
                        3 => size + rng.range(1, 100_000),
                        _ => rng.below(512 << 10),
                    };
                    Op::Truncate {
                        target,
                        size: size.min(MAX_FILE),
                    }
                }
                // rename 11%
                40..=50 => {
                    if entries.is_empty() {
                        continue;
                    }
                    let from = rng.pick(&entries).0.clone();
                    Op::Rename {
                        from,
                        to: any_path(rng),
                    }
                }
                // link 5%
                51..=55 => {
                    if nondirs.is_empty() || crowded {
                        continue;
                    }
                    Op::Link {
                        from: rng.pick(&nondirs).to_string(),
                        to: any_path(rng),
                    }
                }
                // unlink 8% (often a file held open)
                56..=63 => {
                    let held: Vec<&String> = entries
                        .iter()
                        .filter(|(_, i)| m.handles.contains(i))
                        .map(|(p, _)| p)
                        .collect();
                    let path = if !held.is_empty() && rng.chance(0.4) {
                        rng.pick(&held).to_string()
                    } else if !nondirs.is_empty() && rng.chance(0.95) {
                        rng.pick(&nondirs).to_string()
                    } else if !entries.is_empty() {
                        rng.pick(&entries).0.clone()
                    } else {
                        continue;
                    };
                    Op::Unlink { path }
                }
                // mkdir 6%
                64..=69 => {
                    if crowded {
                        continue;
                    }
                    Op::Mkdir {
                        path: new_path(rng),
                        perm: Self::random_perm(rng, true),
                        keep: false,
                    }
                }
                // rmdir 5% (mostly empty directories)
                70..=74 => {
                    let empty: Vec<&String> = dirs[1..]
                        .iter()
                        .filter(|d| m.children(m.resolve(d).unwrap()).is_empty())
                        .collect();
                    let path = if !empty.is_empty() && rng.chance(0.6) {
                        rng.pick(&empty).to_string()
                    } else if dirs.len() > 1 && rng.chance(0.9) {
                        rng.pick(&dirs[1..]).clone()
                    } else if !entries.is_empty() {
                        rng.pick(&entries).0.clone()
                    } else {
                        continue;
                    };
                    Op::Rmdir { path }
                }
                // symlink 4%
                75..=78 => {
                    if crowded {
                        continue;
                    }
                    let target = match rng.below(4) {
                        0 => rng.pick(&self.names).clone(),
                        1 => format!("../{}/x", rng.pick(&self.names)),
                        2 => "/nonexistent/absolute/target".to_string(),
                        _ => "t".repeat(rng.range(1, 1000) as usize),
                    };
                    Op::Symlink {
                        target,
                        path: new_path(rng),
                    }
                }
                // setxattr 6%, removexattr 2%
                79..=86 => {
                    if files_dirs.is_empty() {
                        continue;
                    }
                    let path = rng.pick(&files_dirs).to_string();
                    let name = rng.pick(&XATTR_NAMES).to_string();
                    if k >= 85 {
                        Op::RemoveXattr { path, name }
                    } else {
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
                        Op::SetXattr {
                            path,
                            name,
                            value: pattern(rng.next(), len as usize),
                            flags,
                        }
                    }
                }
                // chmod 3%
                87..=89 => {
                    if files_dirs.is_empty() {
                        continue;
                    }
                    let path = rng.pick(&files_dirs).to_string();
                    let dir = m.is_dir(m.resolve(&path).unwrap());
                    Op::Chmod {
                        path,
                        perm: Self::random_perm(rng, dir),
                    }
                }
                // fsync / fdatasync 4%, fsyncdir 1%
                90..=93 => {
                    let Some(target) = file_target(rng) else {
                        continue;
                    };
                    Op::Fsync {
                        target,
                        data_only: rng.chance(0.5),
                    }
                }
                94 => Op::FsyncDir {
                    path: rng.pick(&dirs).clone(),
                },
                // open and hold 2%, close 2%, read back 1%
                95 | 96 => {
                    if inflight || files.is_empty() || nh >= 6 {
                        continue;
                    }
                    Op::OpenHold {
                        path: rng.pick(&files).to_string(),
                    }
                }
                97 | 98 => {
                    if inflight || nh == 0 {
                        continue;
                    }
                    Op::Close {
                        handle: rng.below(nh as u64) as usize,
                    }
                }
                _ => {
                    if inflight || files.is_empty() {
                        continue;
                    }
                    Op::Check {
                        path: rng.pick(&files).to_string(),
                    }
                }
            };
            return op;
        }
    }
}
