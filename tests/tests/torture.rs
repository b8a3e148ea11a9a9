//! Issue 5 item 2: the `kill -9` torture test.
//!
//! A driver runs a random, seeded workload (create, write at random offsets and sizes,
//! truncate, rename of files and directories over existing targets, link, unlink, mkdir,
//! rmdir, symlink, setxattr/removexattr, chmod, fsync/fdatasync/fsyncdir, files held open and
//! unlinked while open) on a mounted rvmfs and keeps a model of what every *answered* request
//! did. Each request's outcome is also predicted by the model (success or errno) and must
//! agree. At a random moment of each cycle the daemon gets SIGKILL, sometimes while one more
//! operation is in flight from a second thread (that one may or may not be applied; a write in
//! flight may be torn byte by byte since data is overwritten in place before the transaction,
//! but its size is then the old one). Then: `fusermount3 -u -z`, `fsck.rvmfs -n` (exit 0, at
//! most orphans: at least the files still held open after their unlink), `fsck.rvmfs -p`
//! (1 when there were orphans, else 0), remount, and the whole tree under `w/` (names, types,
//! sizes, contents byte for byte, permission bits, link counts, hard-link identity, xattrs,
//! symlink targets) must equal the model. The workload continues on the remounted filesystem
//! (the model carries over).
//!
//! Environment: `TORTURE_SEED=S` replays a run (the seed is printed first; the kill timing of
//! in-flight operations is a race, so only those outcomes may differ), `TORTURE_CYCLES=N`
//! (default 50; the long mode is 1000), `TORTURE_VERBOSE=1` prints every operation.

use rvmfs_tests::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Random numbers (splitmix64: deterministic for a seed)
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x6a09_e667_f3bc_c909)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    /// Inclusive range.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

type Ino = u64;
const ROOT: Ino = 0;
/// Deepest directory level the workload creates (the root `w` is level 0).
const MAX_DEPTH: usize = 4;
/// Files never grow beyond this (keeps the per-cycle verification cheap).
const MAX_FILE: u64 = 2 << 20;
/// Writes in flight at the kill stay below this so the kernel sends one FUSE request.
const MAX_INFLIGHT_WRITE: u64 = 64 << 10;

#[derive(Clone, Debug, PartialEq)]
enum Body {
    File(Vec<u8>),
    Dir(BTreeMap<String, Ino>),
    Symlink(String),
}

#[derive(Clone, Debug)]
struct MNode {
    body: Body,
    perm: u32,
    /// Number of directory entries naming it (files and symlinks; 1 for a linked directory).
    nlink: u32,
    xattrs: BTreeMap<String, Vec<u8>>,
}

#[derive(Clone, Debug)]
struct Model {
    nodes: BTreeMap<Ino, MNode>,
    next_ino: Ino,
    /// The inode of each handle held open by the driver (same indices as its `Vec<File>`).
    handles: Vec<Ino>,
}

type Errno = i32;

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

fn depth(path: &str) -> usize {
    if path.is_empty() {
        0
    } else {
        path.matches('/').count() + 1
    }
}

impl Model {
    fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            ROOT,
            MNode {
                body: Body::Dir(BTreeMap::new()),
                perm: 0o755,
                nlink: 1,
                xattrs: BTreeMap::new(),
            },
        );
        Model {
            nodes,
            next_ino: 1,
            handles: Vec::new(),
        }
    }

    fn node(&self, ino: Ino) -> &MNode {
        &self.nodes[&ino]
    }

    fn children(&self, ino: Ino) -> &BTreeMap<String, Ino> {
        match &self.node(ino).body {
            Body::Dir(c) => c,
            _ => panic!("model: inode {ino} is not a directory"),
        }
    }

    fn children_mut(&mut self, ino: Ino) -> &mut BTreeMap<String, Ino> {
        match &mut self.nodes.get_mut(&ino).unwrap().body {
            Body::Dir(c) => c,
            _ => panic!("model: inode {ino} is not a directory"),
        }
    }

    fn is_dir(&self, ino: Ino) -> bool {
        matches!(self.node(ino).body, Body::Dir(_))
    }

    /// Resolve a path (no symlinks are followed: the workload never goes through one).
    fn resolve(&self, path: &str) -> Result<Ino, Errno> {
        let mut cur = ROOT;
        if path.is_empty() {
            return Ok(cur);
        }
        for comp in path.split('/') {
            match &self.node(cur).body {
                Body::Dir(c) => match c.get(comp) {
                    Some(&i) => cur = i,
                    None => return Err(libc::ENOENT),
                },
                _ => return Err(libc::ENOTDIR),
            }
        }
        Ok(cur)
    }

    /// The directory that holds `path`'s last component, and that name.
    fn parent<'a>(&self, path: &'a str) -> Result<(Ino, &'a str), Errno> {
        let (p, name) = split(path);
        let pino = self.resolve(p)?;
        if !self.is_dir(pino) {
            return Err(libc::ENOTDIR);
        }
        Ok((pino, name))
    }

    fn new_node(&mut self, body: Body, perm: u32) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            MNode {
                body,
                perm,
                nlink: 1,
                xattrs: BTreeMap::new(),
            },
        );
        ino
    }

    /// One directory entry naming `ino` went away.
    fn drop_link(&mut self, ino: Ino) {
        let n = self.nodes.get_mut(&ino).unwrap();
        n.nlink -= 1;
        if n.nlink == 0 && !self.handles.contains(&ino) {
            self.nodes.remove(&ino);
        }
    }

    /// Every entry under the root: (path, inode), parents before children.
    fn entries(&self) -> Vec<(String, Ino)> {
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), ROOT)];
        while let Some((p, ino)) = stack.pop() {
            for (name, &c) in self.children(ino) {
                let cp = join(&p, name);
                out.push((cp.clone(), c));
                if self.is_dir(c) {
                    stack.push((cp, c));
                }
            }
        }
        out
    }

    fn file_data(&mut self, ino: Ino) -> &mut Vec<u8> {
        match &mut self.nodes.get_mut(&ino).unwrap().body {
            Body::File(d) => d,
            _ => panic!("model: inode {ino} is not a regular file"),
        }
    }

    fn target_ino(&self, t: &Target) -> Result<Ino, Errno> {
        match t {
            Target::Path(p) => self.resolve(p),
            Target::Handle(i) => Ok(self.handles[*i]),
        }
    }

    /// What the kernel/daemon must do: predict the outcome and, on success, apply it.
    fn apply(&mut self, op: &Op) -> Result<(), Errno> {
        match op {
            Op::Create { path, perm, keep } | Op::Mkdir { path, perm, keep } => {
                let (pino, name) = self.parent(path)?;
                if self.children(pino).contains_key(name) {
                    return Err(libc::EEXIST);
                }
                let is_dir = matches!(op, Op::Mkdir { .. });
                let body = if is_dir {
                    Body::Dir(BTreeMap::new())
                } else {
                    Body::File(Vec::new())
                };
                let ino = self.new_node(body, *perm);
                self.children_mut(pino).insert(name.to_string(), ino);
                if *keep && !is_dir {
                    self.handles.push(ino);
                }
                Ok(())
            }
            Op::Symlink { target, path } => {
                let (pino, name) = self.parent(path)?;
                if self.children(pino).contains_key(name) {
                    return Err(libc::EEXIST);
                }
                let ino = self.new_node(Body::Symlink(target.clone()), 0o777);
                self.children_mut(pino).insert(name.to_string(), ino);
                Ok(())
            }
            Op::Link { from, to } => {
                let src = self.resolve(from)?;
                let (pino, name) = self.parent(to)?;
                if self.children(pino).contains_key(name) {
                    return Err(libc::EEXIST);
                }
                if self.is_dir(src) {
                    return Err(libc::EPERM);
                }
                self.nodes.get_mut(&src).unwrap().nlink += 1;
                self.children_mut(pino).insert(name.to_string(), src);
                Ok(())
            }
            Op::Unlink { path } => {
                let ino = self.resolve(path)?;
                if self.is_dir(ino) {
                    return Err(libc::EISDIR);
                }
                let (pino, name) = self.parent(path)?;
                self.children_mut(pino).remove(name);
                self.drop_link(ino);
                Ok(())
            }
            Op::Rmdir { path } => {
                let ino = self.resolve(path)?;
                if !self.is_dir(ino) {
                    return Err(libc::ENOTDIR);
                }
                if !self.children(ino).is_empty() {
                    return Err(libc::ENOTEMPTY);
                }
                let (pino, name) = self.parent(path)?;
                self.children_mut(pino).remove(name);
                self.drop_link(ino);
                Ok(())
            }
            Op::Rename { from, to } => {
                let src = self.resolve(from)?;
                let (npino, nname) = self.parent(to)?;
                let (opino, oname) = self.parent(from)?;
                // Source an ancestor of the target: EINVAL; target an ancestor of the source:
                // ENOTEMPTY (the VFS checks both before the types).
                if to.starts_with(&format!("{from}/")) {
                    return Err(libc::EINVAL);
                }
                if from.starts_with(&format!("{to}/")) {
                    return Err(libc::ENOTEMPTY);
                }
                let dst = self.children(npino).get(nname).copied();
                if dst == Some(src) {
                    return Ok(()); // the same file (or the same hard-linked inode): a no-op
                }
                let src_dir = self.is_dir(src);
                if let Some(d) = dst {
                    match (src_dir, self.is_dir(d)) {
                        (true, false) => return Err(libc::ENOTDIR),
                        (false, true) => return Err(libc::EISDIR),
                        (true, true) if !self.children(d).is_empty() => {
                            return Err(libc::ENOTEMPTY)
                        }
                        _ => {}
                    }
                }
                self.children_mut(opino).remove(oname);
                if let Some(d) = self.children_mut(npino).insert(nname.to_string(), src) {
                    self.drop_link(d);
                }
                Ok(())
            }
            Op::Write {
                target,
                off,
                len,
                seed,
            } => {
                let ino = self.target_ino(target)?;
                let data = pattern(*seed, *len as usize);
                let d = self.file_data(ino);
                let end = (*off + *len) as usize;
                if d.len() < end {
                    d.resize(end, 0);
                }
                d[*off as usize..end].copy_from_slice(&data);
                Ok(())
            }
            Op::Truncate { target, size } => {
                let ino = self.target_ino(target)?;
                self.file_data(ino).resize(*size as usize, 0);
                Ok(())
            }
            Op::SetXattr {
                path,
                name,
                value,
                flags,
            } => {
                let ino = self.resolve(path)?;
                let n = self.nodes.get_mut(&ino).unwrap();
                let exists = n.xattrs.contains_key(name);
                if *flags == libc::XATTR_CREATE && exists {
                    return Err(libc::EEXIST);
                }
                if *flags == libc::XATTR_REPLACE && !exists {
                    return Err(libc::ENODATA);
                }
                n.xattrs.insert(name.clone(), value.clone());
                Ok(())
            }
            Op::RemoveXattr { path, name } => {
                let ino = self.resolve(path)?;
                match self.nodes.get_mut(&ino).unwrap().xattrs.remove(name) {
                    Some(_) => Ok(()),
                    None => Err(libc::ENODATA),
                }
            }
            Op::Chmod { path, perm } => {
                let ino = self.resolve(path)?;
                self.nodes.get_mut(&ino).unwrap().perm = *perm;
                Ok(())
            }
            Op::Fsync { target, .. } => self.target_ino(target).map(|_| ()),
            Op::FsyncDir { path } => self.resolve(path).map(|_| ()),
            Op::OpenHold { path } => {
                let ino = self.resolve(path)?;
                self.handles.push(ino);
                Ok(())
            }
            Op::Close { handle } => {
                let ino = self.handles.remove(*handle);
                if self.nodes[&ino].nlink == 0 && !self.handles.contains(&ino) {
                    self.nodes.remove(&ino);
                }
                Ok(())
            }
            Op::Check { path } => self.resolve(path).map(|_| ()),
        }
    }

    /// What the filesystem must look like after the daemon died: handles gone, files unlinked
    /// while open gone (fsck -p or the mount frees them).
    fn after_crash(&mut self) {
        self.handles.clear();
        self.nodes.retain(|_, n| n.nlink > 0);
    }

    /// Inodes unlinked while still held open (the orphans a crash now must leave).
    fn open_unlinked(&self) -> usize {
        self.nodes.values().filter(|n| n.nlink == 0).count()
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Target {
    Path(String),
    /// Index into the driver's open handles.
    Handle(usize),
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        path: String,
        perm: u32,
        keep: bool,
    },
    Mkdir {
        path: String,
        perm: u32,
        keep: bool,
    },
    Symlink {
        target: String,
        path: String,
    },
    Link {
        from: String,
        to: String,
    },
    Unlink {
        path: String,
    },
    Rmdir {
        path: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Write {
        target: Target,
        off: u64,
        len: u64,
        seed: u64,
    },
    Truncate {
        target: Target,
        size: u64,
    },
    SetXattr {
        path: String,
        name: String,
        value: Vec<u8>,
        flags: i32,
    },
    RemoveXattr {
        path: String,
        name: String,
    },
    Chmod {
        path: String,
        perm: u32,
    },
    Fsync {
        target: Target,
        data_only: bool,
    },
    FsyncDir {
        path: String,
    },
    OpenHold {
        path: String,
    },
    Close {
        handle: usize,
    },
    /// Read a file back and compare it with the model (no change).
    Check {
        path: String,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::SetXattr {
                path,
                name,
                value,
                flags,
            } => {
                write!(f, "SetXattr {{ path: {path:?}, name: {name:?}, value: {} bytes, flags: {flags} }}", value.len())
            }
            other => write!(f, "{other:?}"),
        }
    }
}

/// What a performed operation gave back besides success.
enum Done {
    Unit,
    File(File),
    Data(Vec<u8>),
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn check_rc(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn handle(files: &[File], i: usize) -> &File {
    &files[i]
}

/// Do `op` on the real filesystem under `root`.
fn perform(op: &Op, root: &Path, files: &[File]) -> io::Result<Done> {
    let p = |s: &str| root.join(s);
    match op {
        Op::Create { path, perm, keep } => {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(*perm)
                .open(p(path))?;
            Ok(if *keep { Done::File(f) } else { Done::Unit })
        }
        Op::Mkdir { path, perm, .. } => fs::DirBuilder::new()
            .mode(*perm)
            .create(p(path))
            .map(|_| Done::Unit),
        Op::Symlink { target, path } => {
            std::os::unix::fs::symlink(target, p(path)).map(|_| Done::Unit)
        }
        Op::Link { from, to } => fs::hard_link(p(from), p(to)).map(|_| Done::Unit),
        Op::Unlink { path } => fs::remove_file(p(path)).map(|_| Done::Unit),
        Op::Rmdir { path } => fs::remove_dir(p(path)).map(|_| Done::Unit),
        Op::Rename { from, to } => fs::rename(p(from), p(to)).map(|_| Done::Unit),
        Op::Write {
            target,
            off,
            len,
            seed,
        } => {
            let data = pattern(*seed, *len as usize);
            match target {
                Target::Path(t) => {
                    let f = OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(p(t))?;
                    f.write_all_at(&data, *off)?;
                }
                Target::Handle(i) => handle(files, *i).write_all_at(&data, *off)?,
            }
            Ok(Done::Unit)
        }
        Op::Truncate { target, size } => {
            match target {
                Target::Path(t) => check_rc(unsafe {
                    libc::truncate(cpath(&p(t)).as_ptr(), *size as libc::off_t)
                })?,
                Target::Handle(i) => handle(files, *i).set_len(*size)?,
            }
            Ok(Done::Unit)
        }
        Op::SetXattr {
            path,
            name,
            value,
            flags,
        } => {
            let n = CString::new(name.as_str()).unwrap();
            // SAFETY: valid C strings and a buffer of the given length.
            check_rc(unsafe {
                libc::lsetxattr(
                    cpath(&p(path)).as_ptr(),
                    n.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    *flags,
                )
            })
            .map(|_| Done::Unit)
        }
        Op::RemoveXattr { path, name } => {
            let n = CString::new(name.as_str()).unwrap();
            // SAFETY: valid C strings.
            check_rc(unsafe { libc::lremovexattr(cpath(&p(path)).as_ptr(), n.as_ptr()) })
                .map(|_| Done::Unit)
        }
        Op::Chmod { path, perm } => {
            fs::set_permissions(p(path), fs::Permissions::from_mode(*perm)).map(|_| Done::Unit)
        }
        Op::Fsync { target, data_only } => {
            let owned;
            let f = match target {
                Target::Path(t) => {
                    owned = File::open(p(t))?;
                    &owned
                }
                Target::Handle(i) => handle(files, *i),
            };
            if *data_only {
                f.sync_data()?;
            } else {
                f.sync_all()?;
            }
            Ok(Done::Unit)
        }
        Op::FsyncDir { path } => File::open(p(path))?.sync_all().map(|_| Done::Unit),
        Op::OpenHold { path } => OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(p(path))
            .map(Done::File),
        Op::Close { .. } => Ok(Done::Unit), // the driver drops the handle
        Op::Check { path } => fs::read(p(path)).map(Done::Data),
    }
}

/// [`perform`] for the operation in flight at the kill: a write is one `pwrite` (not retried
/// after a short write, so what was answered is known) and returns the bytes written.
fn perform_inflight(op: &Op, root: &Path, files: &[File]) -> io::Result<Option<usize>> {
    let Op::Write {
        target,
        off,
        len,
        seed,
    } = op
    else {
        return perform(op, root, files).map(|_| None);
    };
    let data = pattern(*seed, *len as usize);
    let n = match target {
        Target::Path(t) => OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(root.join(t))?
            .write_at(&data, *off)?,
        Target::Handle(i) => files[*i].write_at(&data, *off)?,
    };
    Ok(Some(n))
}

fn errno_of(e: &io::Error) -> Errno {
    e.raw_os_error().unwrap_or(-1)
}

fn errno_name(e: Errno) -> String {
    let s = unsafe { std::ffi::CStr::from_ptr(libc::strerror(e)) };
    format!("{e} ({})", s.to_string_lossy())
}

// ---------------------------------------------------------------------------------------------
// Generating operations
// ---------------------------------------------------------------------------------------------

/// Names used at every level: few, so that creates collide and renames replace targets.
fn names() -> Vec<String> {
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

struct Gen {
    names: Vec<String>,
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

    fn op(&self, rng: &mut Rng, m: &Model, inflight: bool) -> Op {
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

impl Body {
    fn file_len(&self) -> u64 {
        match self {
            Body::File(d) => d.len() as u64,
            _ => 0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing the real tree with the model
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Seen {
    body: Body,
    perm: u32,
    nlink: u64,
    ino: u64,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn xattr_list(path: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let c = cpath(path);
    let mut out = BTreeMap::new();
    // SAFETY: size query with a null buffer.
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; n as usize + 1];
    // SAFETY: a buffer of buf.len() bytes.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    for name in buf[..n as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
    {
        let cn = CString::new(name).unwrap();
        let mut val = vec![0u8; 70_000];
        // SAFETY: a buffer of val.len() bytes.
        let v =
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if v < 0 {
            return Err(io::Error::last_os_error());
        }
        val.truncate(v as usize);
        out.insert(String::from_utf8_lossy(name).into_owned(), val);
    }
    Ok(out)
}

fn scan(root: &Path, rel: &str, out: &mut BTreeMap<String, Seen>) {
    let dir = root.join(rel);
    let rd = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
    for ent in rd {
        let ent = ent.unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        let name = ent.file_name().into_string().expect("UTF-8 name");
        let r = join(rel, &name);
        let p = root.join(&r);
        let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
        let ft = md.file_type();
        let body = if ft.is_file() {
            Body::File(fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
        } else if ft.is_dir() {
            Body::Dir(BTreeMap::new())
        } else if ft.is_symlink() {
            Body::Symlink(
                fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_string()
                    .unwrap(),
            )
        } else {
            panic!("{}: unexpected file type {:o}", p.display(), md.mode());
        };
        let xattrs = xattr_list(&p).unwrap_or_else(|e| panic!("listxattr {}: {e}", p.display()));
        let is_dir = ft.is_dir();
        out.insert(
            r.clone(),
            Seen {
                body,
                perm: md.mode() & 0o7777,
                nlink: md.nlink(),
                ino: md.ino(),
                xattrs,
            },
        );
        if is_dir {
            scan(root, &r, out);
        }
    }
}

/// Differences between the model and the scanned tree, one line each.
fn differences(m: &Model, seen: &BTreeMap<String, Seen>) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut ino_map: HashMap<Ino, u64> = HashMap::new();
    let mut real_map: HashMap<u64, Ino> = HashMap::new();
    let mut want_paths = BTreeSet::new();
    for (path, ino) in m.entries() {
        want_paths.insert(path.clone());
        let n = m.node(ino);
        let Some(s) = seen.get(&path) else {
            diffs.push(format!("missing: {path:?} ({})", kind_name(&n.body)));
            continue;
        };
        match (&n.body, &s.body) {
            (Body::File(w), Body::File(g)) => {
                if let Some(d) = bytes_diff(g, w) {
                    diffs.push(format!("{path:?}: content: {d}"));
                }
            }
            (Body::Dir(_), Body::Dir(_)) => {}
            (Body::Symlink(w), Body::Symlink(g)) => {
                if w != g {
                    diffs.push(format!("{path:?}: symlink target want {w:?} got {g:?}"));
                }
            }
            (w, g) => {
                diffs.push(format!(
                    "{path:?}: want a {}, got a {}",
                    kind_name(w),
                    kind_name(g)
                ));
                continue;
            }
        }
        if n.perm != s.perm {
            diffs.push(format!("{path:?}: mode want {:o} got {:o}", n.perm, s.perm));
        }
        let want_nlink = match &n.body {
            Body::Dir(c) => 2 + c.values().filter(|&&i| m.is_dir(i)).count() as u64,
            _ => n.nlink as u64,
        };
        if want_nlink != s.nlink {
            diffs.push(format!("{path:?}: nlink want {want_nlink} got {}", s.nlink));
        }
        if n.xattrs != s.xattrs {
            let show = |x: &BTreeMap<String, Vec<u8>>| {
                x.iter()
                    .map(|(k, v)| format!("{k}={}B", v.len()))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            diffs.push(format!(
                "{path:?}: xattrs want [{}] got [{}]",
                show(&n.xattrs),
                show(&s.xattrs)
            ));
        }
        // Hard links: the same model inode is the same real inode, and different ones differ.
        if let Some(&r) = ino_map.get(&ino) {
            if r != s.ino {
                diffs.push(format!(
                    "{path:?}: hard link to model inode {ino} is real inode {} instead of {r}",
                    s.ino
                ));
            }
        } else {
            ino_map.insert(ino, s.ino);
            if let Some(other) = real_map.insert(s.ino, ino) {
                diffs.push(format!(
                    "{path:?}: real inode {} also holds model inode {other}",
                    s.ino
                ));
            }
        }
    }
    for p in seen.keys() {
        if !want_paths.contains(p) {
            diffs.push(format!("unexpected: {p:?} ({})", kind_name(&seen[p].body)));
        }
    }
    diffs
}

fn kind_name(b: &Body) -> &'static str {
    match b {
        Body::File(_) => "file",
        Body::Dir(_) => "directory",
        Body::Symlink(_) => "symlink",
    }
}

/// Diagnosis of a failure: is the tree `before` except that the file an unanswered write
/// went to kept its old size but holds some of the new bytes (written in place before the
/// daemon died and before its transaction committed)? Returns that model and a description.
fn torn_write(
    before: &Model,
    op: &Op,
    ino: Ino,
    seen: &BTreeMap<String, Seen>,
) -> Option<(Model, String)> {
    let Op::Write { off, len, seed, .. } = op else {
        return None;
    };
    let Body::File(old) = &before.nodes.get(&ino)?.body else {
        return None;
    };
    let new = pattern(*seed, *len as usize);
    // The file's contents as seen through any of its names.
    let path = before.entries().into_iter().find(|(_, i)| *i == ino)?.0;
    let Body::File(got) = &seen.get(&path)?.body else {
        return None;
    };
    if got.len() != old.len() {
        return None;
    }
    let (mut changed, mut first, mut last) = (0u64, u64::MAX, 0u64);
    for (i, (&g, &o)) in got.iter().zip(old.iter()).enumerate() {
        let i = i as u64;
        let in_range = i >= *off && i < off + len;
        if g != o {
            if !(in_range && g == new[(i - off) as usize]) {
                return None;
            }
            changed += 1;
            first = first.min(i);
            last = i;
        }
    }
    let mut m = before.clone();
    *m.file_data(ino) = got.clone();
    if !differences(&m, seen).is_empty() {
        return None;
    }
    let overlap = (off + len).min(old.len() as u64).saturating_sub(*off);
    let how = format!(
        "{path:?} kept its old size {} (the write would make it {}) but {changed} of the {overlap} bytes it \
         overwrote in place are new (offsets {first}..={last})",
        old.len(),
        old.len().max((off + len) as usize)
    );
    Some((m, how))
}

// ---------------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Stats {
    ops: u64,
    ops_failed_as_predicted: u64,
    inflight: u64,
    inflight_answered: u64,
    /// Requests the kernel had sent and the dead daemon never answered (ECONNABORTED).
    inflight_aborted: u64,
    /// Unanswered writes found applied up to the end of their first FUSE request.
    inflight_first_request: u64,
    inflight_applied: u64,
    inflight_not_applied: u64,
    orphans: u64,
    fsck_n_time: Duration,
    fsck_p_time: Duration,
    mount_time: Duration,
    verify_time: Duration,
    clean_remounts: u64,
    max_entries: usize,
    max_bytes: u64,
}

struct Driver {
    m: Mounted,
    root: PathBuf,
    model: Model,
    files: Vec<File>,
    gen: Gen,
    seed: u64,
    cycle: u64,
    log: Vec<String>,
    verbose: bool,
    stats: Stats,
    /// Inodes unlinked while open in this cycle (an upper bound for the orphans found).
    unlinked_open: usize,
}

impl Driver {
    fn fail(&self, what: &str) -> ! {
        let tail: Vec<&String> = self
            .log
            .iter()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        panic!(
            "TORTURE FAILURE (seed {seed}, cycle {c}; replay with TORTURE_SEED={seed} TORTURE_CYCLES={n}):\n{what}\n\
             last operations of this cycle ({} in all):\n  {}\ndaemon log tail:\n{}",
            self.log.len(),
            tail.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  "),
            tail_of(&self.m.daemon_log(), 3000),
            seed = self.seed,
            c = self.cycle,
            n = self.cycle + 1,
        );
    }

    fn note(&mut self, s: String) {
        if self.verbose {
            eprintln!("  [{}] {s}", self.cycle);
        }
        self.log.push(s);
    }

    /// One operation from this thread: answered, so it must match the model's prediction.
    fn step(&mut self, op: Op) {
        let nlink0_before = self.model.open_unlinked();
        let predicted = self.model.apply(&op);
        let got = perform(&op, &self.root, &self.files);
        self.stats.ops += 1;
        let res = match &got {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error {}", errno_name(errno_of(e))),
        };
        self.note(format!("{op} -> {res}"));
        match (predicted, got) {
            (Ok(()), Ok(done)) => match (done, &op) {
                (Done::File(f), _) => self.files.push(f),
                (Done::Data(d), Op::Check { path }) => {
                    let ino = self.model.resolve(path).unwrap();
                    if let Body::File(w) = &self.model.node(ino).body {
                        if let Some(diff) = bytes_diff(&d, w) {
                            self.fail(&format!(
                                "read back of {path:?} before any crash differs: {diff}"
                            ));
                        }
                    }
                }
                _ => {}
            },
            (Err(w), Err(e)) if w == errno_of(&e) => self.stats.ops_failed_as_predicted += 1,
            (w, g) => {
                let g = g.map(|_| ()).map_err(|e| errno_name(errno_of(&e)));
                self.fail(&format!(
                    "{op}: the model predicts {:?}, the filesystem answered {g:?}",
                    w.map_err(errno_name)
                ));
            }
        }
        if let Op::Close { handle } = op {
            self.files.remove(handle);
        }
        if self.model.open_unlinked() > nlink0_before {
            self.unlinked_open += self.model.open_unlinked() - nlink0_before;
        }
    }

    fn cycle(&mut self, rng: &mut Rng) {
        self.log.clear();
        self.unlinked_open = self.model.open_unlinked();
        let nops = rng.range(20, 200);
        for _ in 0..nops {
            let op = self.gen.op(rng, &self.model, false);
            self.step(op);
        }
        let entries = self.model.entries().len();
        self.stats.max_entries = self.stats.max_entries.max(entries);
        let bytes: u64 = self.model.nodes.values().map(|n| n.body.file_len()).sum();
        self.stats.max_bytes = self.stats.max_bytes.max(bytes);

        // The kill, sometimes with one operation in flight from a second thread.
        let pid = self.m.daemon_pid().expect("mounted");
        let mut candidates: Vec<(&'static str, Model)> = Vec::new();
        let mut inflight_op = None;
        if rng.chance(0.5) {
            let op = self.gen.op(rng, &self.model, true);
            let before = self.model.clone();
            let mut after = self.model.clone();
            let predicted = after.apply(&op);
            let files: Vec<File> = self
                .files
                .iter()
                .map(|f| f.try_clone().expect("dup"))
                .collect();
            let root = self.root.clone();
            let op2 = op.clone();
            // The kill comes 0-250 µs (sometimes up to 3 ms) after the thread starts its
            // system call: most FUSE requests take about that long.
            let delay = Duration::from_micros(match rng.below(8) {
                0 => 0,
                1 => rng.below(3000),
                _ => rng.below(250),
            });
            let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let started2 = started.clone();
            let t = std::thread::spawn(move || {
                started2.store(true, std::sync::atomic::Ordering::SeqCst);
                perform_inflight(&op2, &root, &files)
            });
            while !started.load(std::sync::atomic::Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            let t0 = Instant::now();
            while t0.elapsed() < delay {
                std::hint::spin_loop();
            }
            signal_pid(pid, libc::SIGKILL);
            let got = t.join().expect("in-flight thread");
            self.stats.inflight += 1;
            self.stats.ops += 1;
            let res = match &got {
                Ok(None) => "ok".to_string(),
                Ok(Some(n)) => format!("ok, {n} bytes written"),
                Err(e) => format!("error {}", errno_name(errno_of(e))),
            };
            // A write(2) may be sent as two FUSE requests: the kernel ends a request after
            // a partial page that is not in its cache, so a write starting inside such a page
            // goes as [off, next page boundary) and then the rest (64 KiB stay within
            // max_pages otherwise). The first may be answered (a short write, reported) or
            // committed with its answer lost to the kill.
            let (w_len, prefix_model) = match &op {
                Op::Write {
                    target,
                    off,
                    len,
                    seed,
                } => {
                    let t = target.clone();
                    let (off, seed) = (*off, *seed);
                    let before = before.clone();
                    (
                        *len,
                        Some(move |n: u64| {
                            let mut m = before.clone();
                            m.apply(&Op::Write {
                                target: t.clone(),
                                off,
                                len: n,
                                seed,
                            })
                            .expect("a prefix of a predicted write");
                            m
                        }),
                    )
                }
                _ => (0, None),
            };
            let first_request = match &op {
                Op::Write { off, len, .. } => ((off / 4096 + 1) * 4096 - off).min(*len),
                _ => 0,
            };
            self.note(format!(
                "IN FLIGHT at the kill (after {delay:?}): {op} -> {res}"
            ));
            match (predicted, got) {
                (Ok(()), Ok(Some(n))) if (n as u64) < w_len => {
                    self.stats.inflight_answered += 1;
                    if n as u64 != first_request {
                        self.fail(&format!(
                            "in-flight {op}: a short write of {n} bytes (want {first_request}, up to the first page boundary)"
                        ));
                    }
                    candidates.push((
                        "in-flight write answered in part (a short write)",
                        prefix_model.as_ref().unwrap()(n as u64),
                    ));
                }
                (Ok(()), Ok(_)) => {
                    self.stats.inflight_answered += 1;
                    candidates.push(("in-flight op answered", after));
                }
                (Err(w), Err(e)) if w == errno_of(&e) => {
                    self.stats.inflight_answered += 1;
                    candidates.push(("in-flight op answered with an error", before));
                }
                (p, Err(e)) if matches!(errno_of(&e), libc::ECONNABORTED | libc::ENOTCONN) => {
                    if errno_of(&e) == libc::ECONNABORTED {
                        self.stats.inflight_aborted += 1;
                    }
                    if p.is_ok() {
                        candidates.push(("in-flight op applied", after));
                        if let Some(pm) = &prefix_model {
                            if first_request < w_len {
                                candidates.push((
                                    "in-flight write applied up to its first page boundary",
                                    pm(first_request),
                                ));
                            }
                        }
                    }
                    candidates.push(("in-flight op not applied", before));
                    if let Op::Write { target, .. } = &op {
                        inflight_op = Some((op.clone(), self.model.target_ino(target).unwrap()));
                    }
                }
                (w, g) => self.fail(&format!(
                    "in-flight {op}: the model predicts {:?}, the filesystem answered {:?}",
                    w.map_err(errno_name),
                    g.map(|_| ()).map_err(|e| errno_name(errno_of(&e)))
                )),
            }
        } else {
            signal_pid(pid, libc::SIGKILL);
            self.note("KILL".into());
            candidates.push(("no op in flight", self.model.clone()));
        }
        // Orphans the crash must leave: every file still held open after its unlink.
        let min_orphans = candidates
            .iter()
            .map(|(_, c)| c.open_unlinked())
            .min()
            .unwrap();
        let max_orphans = self.unlinked_open + 1;
        self.m.kill9(); // reaps the (already killed) daemon and runs fusermount3 -u -z
        self.files.clear();
        for (_, c) in candidates.iter_mut() {
            c.after_crash();
        }

        // fsck -n: nothing but orphans; fsck -p: frees them.
        let t = Instant::now();
        let (code, out) = self.m.fsck(&["-n"]);
        self.stats.fsck_n_time += t.elapsed();
        let orphans = out.lines().filter(|l| l.contains("orphan inode")).count();
        if code != 0 {
            self.fail(&format!(
                "fsck.rvmfs -n after kill -9 exited {code} (want 0):\n{out}"
            ));
        }
        if orphans < min_orphans || orphans > max_orphans {
            self.fail(&format!(
                "fsck.rvmfs -n found {orphans} orphans, want between {min_orphans} (files held open after their unlink) and {max_orphans}:\n{out}"
            ));
        }
        self.stats.orphans += orphans as u64;
        let t = Instant::now();
        let (pcode, pout) = self.m.fsck(&["-p"]);
        self.stats.fsck_p_time += t.elapsed();
        let want_p = if orphans > 0 { 1 } else { 0 };
        if pcode != want_p {
            self.fail(&format!("fsck.rvmfs -p after kill -9 exited {pcode}, want {want_p} ({orphans} orphans):\n{pout}"));
        }

        self.m.mount();
        self.stats.mount_time += self.m.last_mount_time;
        let t = Instant::now();
        self.check_mount_root();
        let mut seen = BTreeMap::new();
        scan(&self.root, "", &mut seen);
        let mut chosen = None;
        for (what, c) in &candidates {
            if differences(c, &seen).is_empty() {
                chosen = Some((*what, c.clone()));
                break;
            }
        }
        let Some((what, model)) = chosen else {
            let mut msg = String::from("after kill -9, fsck and remount the tree differs from the model of answered requests\n");
            if let Some((op, ino)) = &inflight_op {
                if let Some((_, before)) = candidates
                    .iter()
                    .find(|(w, _)| *w == "in-flight op not applied")
                {
                    if let Some((_, how)) = torn_write(before, op, *ino, &seen) {
                        msg.push_str(&format!(
                            "  THE UNANSWERED IN-FLIGHT WRITE IS TORN (see \
                             kill9_unanswered_overwrite_is_all_or_nothing): {how}\n"
                        ));
                    }
                }
            }
            for (what, c) in &candidates {
                let d = differences(c, &seen);
                msg.push_str(&format!(
                    "  against the model with {what}: {} differences:\n    {}\n",
                    d.len(),
                    d.iter()
                        .take(30)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n    ")
                ));
            }
            self.fail(&msg);
        };
        self.stats.verify_time += t.elapsed();
        match what {
            "in-flight op applied" => self.stats.inflight_applied += 1,
            "in-flight write applied up to its first page boundary" => {
                self.stats.inflight_first_request += 1
            }
            "in-flight op not applied" => self.stats.inflight_not_applied += 1,
            _ => {}
        }
        self.note(format!("verified: {what}; {orphans} orphans"));
        self.model = model;
        eprintln!(
            "cycle {:>4}: {nops:>3} ops, {entries:>3} entries, {:>7} bytes, {}, {orphans} orphans, fsck -n {code} / -p {pcode}, mount {:.0?}",
            self.cycle,
            bytes,
            what,
            self.m.last_mount_time
        );
    }

    /// The mount's root holds only `w` (and lost+found if mkfs made one).
    fn check_mount_root(&self) {
        for e in fs::read_dir(self.m.mnt()).unwrap() {
            let n = e.unwrap().file_name();
            if n != "w" && n != "lost+found" {
                self.fail(&format!("unexpected {n:?} at the root of the mount"));
            }
        }
    }

    /// Close everything, unmount cleanly, fsck must be clean, mount again, compare.
    fn clean_remount(&mut self) {
        while !self.model.handles.is_empty() {
            self.step(Op::Close { handle: 0 });
        }
        self.m.unmount_ok();
        let (code, out) = self.m.fsck(&["-n"]);
        if code != 0 || out.contains("orphan inode") {
            self.fail(&format!(
                "fsck.rvmfs -n after a clean unmount exited {code}:\n{out}"
            ));
        }
        self.m.mount();
        let mut seen = BTreeMap::new();
        scan(&self.root, "", &mut seen);
        let d = differences(&self.model, &seen);
        if !d.is_empty() {
            self.fail(&format!(
                "after a clean unmount and mount: {} differences:\n  {}",
                d.len(),
                d.join("\n  ")
            ));
        }
        self.stats.clean_remounts += 1;
        self.note("clean unmount, fsck, mount: verified".into());
    }
}

fn tail_of(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

#[test]
fn kill9_torture() {
    require_fuse!();
    let seed = env_u64("TORTURE_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        t.as_nanos() as u64 ^ (std::process::id() as u64) << 32
    });
    let cycles = env_u64("TORTURE_CYCLES").unwrap_or(50);
    let verbose = std::env::var_os("TORTURE_VERBOSE").is_some_and(|v| v != "0");
    eprintln!("torture: seed {seed} (replay with TORTURE_SEED={seed}), {cycles} cycles");
    // Modes are exactly what the workload asks for.
    // SAFETY: umask(2) cannot fail; this test binary runs only this test.
    unsafe { libc::umask(0) };

    let start = Instant::now();
    let m = Mounted::with_mkfs(&["-s", "1G"]);
    let root = m.path("w");
    fs::DirBuilder::new().mode(0o755).create(&root).unwrap();
    let mut d = Driver {
        m,
        root,
        model: Model::new(),
        files: Vec::new(),
        gen: Gen { names: names() },
        seed,
        cycle: 0,
        log: Vec::new(),
        verbose,
        stats: Stats::default(),
        unlinked_open: 0,
    };
    let mut rng = Rng::new(seed);
    for c in 0..cycles {
        d.cycle = c;
        if c > 0 && rng.chance(0.04) {
            d.clean_remount();
        }
        d.cycle(&mut rng);
    }
    // The end: a clean unmount leaves a clean image holding exactly the model.
    d.clean_remount();
    d.m.unmount_ok();
    d.m.assert_fsck_clean();
    let s = &d.stats;
    let n = cycles.max(1) as u32;
    eprintln!(
        "torture: seed {seed}: {cycles} kill -9 cycles, {} operations ({} failed as the model predicted), 0 lost answered \
         requests, 0 fsck errors, in {:.1?}\n  in flight at the kill: {} ({} answered before it; unanswered: {} of them aborted mid-request, \
         {} found applied, {} applied up to their first FUSE request, {} not applied); {} orphans reclaimed; {} clean remounts; largest tree {} entries, {:.1} MiB\n  per cycle: fsck -n {:.0?}, \
         fsck -p {:.0?}, mount {:.0?}, verify {:.0?}",
        s.ops,
        s.ops_failed_as_predicted,
        start.elapsed(),
        s.inflight,
        s.inflight_answered,
        s.inflight_aborted,
        s.inflight_applied,
        s.inflight_first_request,
        s.inflight_not_applied,
        s.orphans,
        s.clean_remounts,
        s.max_entries,
        s.max_bytes as f64 / 1048576.0,
        s.fsck_n_time / n,
        s.fsck_p_time / n,
        s.mount_time / n,
        s.verify_time / n,
    );
}

/// An overwrite the daemon never answered is all or nothing after `kill -9`. (The daemon once
/// wrote an overwrite's bytes in place into the file's existing blocks before it committed, so
/// a kill in between left an unanswered write partly applied; overwrites are now copied on
/// write.) This test kills the daemon repeatedly while a single-request write is in flight
/// (124 KiB at offset 4096 of an 8 KiB file: 4 KiB overwritten, 120 KiB appended; 31 pages,
/// so the kernel sends one FUSE request) and demands all or nothing. It stops at the first
/// torn result.
#[test]
fn kill9_unanswered_overwrite_is_all_or_nothing() {
    require_fuse!();
    let attempts = env_u64("TORTURE_TORN_ATTEMPTS").unwrap_or(300);
    let seed = env_u64("TORTURE_SEED").unwrap_or(7);
    let mut rng = Rng::new(seed);
    let mut m = Mounted::new();
    // The old contents go in with one 128 KiB write (larger than the daemon's data-logging
    // limit for small writes, so its blocks are written in place, not logged), cut to 8 KiB.
    let big = pattern(seed, 128 << 10);
    let old = big[..8192].to_vec();
    let (mut applied, mut not_applied, mut answered) = (0, 0, 0);
    let mut torn = Vec::new();
    for a in 0..attempts {
        let path = m.path("f");
        let _ = fs::remove_file(&path);
        let f = File::create(&path).unwrap();
        f.write_all_at(&big, 0).unwrap();
        f.set_len(8192).unwrap();
        drop(f);
        let new = pattern(seed ^ (a + 1), 124 << 10);
        let mut want_applied = old[..4096].to_vec();
        want_applied.extend_from_slice(&new);
        let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s2, p2, n2) = (started.clone(), path.clone(), new.clone());
        let t = std::thread::spawn(move || {
            let f = OpenOptions::new().write(true).open(&p2)?;
            s2.store(true, std::sync::atomic::Ordering::SeqCst);
            f.write_all_at(&n2, 4096)
        });
        while !started.load(std::sync::atomic::Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        let delay = Duration::from_micros(rng.below(400));
        let t0 = Instant::now();
        while t0.elapsed() < delay {
            std::hint::spin_loop();
        }
        signal_pid(m.daemon_pid().unwrap(), libc::SIGKILL);
        let res = t.join().unwrap();
        m.kill9();
        m.mount();
        let got = fs::read(&path).unwrap();
        if res.is_ok() {
            answered += 1;
            assert!(
                bytes_diff(&got, &want_applied).is_none(),
                "attempt {a}: an answered write was lost"
            );
        } else if got == want_applied {
            applied += 1;
        } else if got == old {
            not_applied += 1;
        } else {
            let changed: Vec<usize> = (0..got.len().min(old.len()))
                .filter(|&i| got[i] != old[i])
                .collect();
            torn.push(format!(
                "attempt {a} (kill {delay:?} after the write started, the write returned {}): size {} (old {}, \
                 all-applied {}), {} bytes of the overwritten range 4096..8192 are new (offsets {:?}..={:?})",
                res.as_ref().err().map_or("ok".into(), |e| errno_name(errno_of(e))),
                got.len(),
                old.len(),
                want_applied.len(),
                changed.len(),
                changed.first(),
                changed.last()
            ));
            break;
        }
    }
    eprintln!(
        "unanswered-overwrite test (seed {seed}): {answered} answered before the kill, {applied} applied, \
         {not_applied} not applied, {} torn",
        torn.len()
    );
    m.unmount_ok();
    m.assert_fsck_clean();
    assert!(
        torn.is_empty(),
        "a write that the daemon never answered is partly applied after kill -9 (the README promises the \
         state after the last answered request and never a partially applied operation):\n  {}",
        torn.join("\n  ")
    );
}
