//! Tree manifests: every path under a directory with its kind, size, sha256 (through the
//! ordinary `sha256sum` program), symlink target, permissions, owner, link count and mtime;
//! and their comparison ([`compare_manifests`], [`assert_same_tree`]).

use crate::processes::run;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

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
