//! The model of the expected tree under `w/`: inodes, directory entries, link counts, open
//! handles; what every *answered* request did.

use crate::ops::Target;
use std::collections::BTreeMap;

pub type Ino = u64;
const ROOT: Ino = 0;
/// Deepest directory level the workload creates (the root `w` is level 0).
pub const MAX_DEPTH: usize = 4;
/// Files never grow beyond this (keeps the per-cycle verification cheap).
pub const MAX_FILE: u64 = 2 << 20;
/// Writes in flight at the kill stay below this so the kernel sends one FUSE request.
pub const MAX_INFLIGHT_WRITE: u64 = 64 << 10;

/// What an inode holds: a file's bytes, a directory's entries (name -> inode), a symlink's
/// target.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    File(Vec<u8>),
    Dir(BTreeMap<String, Ino>),
    Symlink(String),
}

impl Body {
    /// A file's size in bytes (0 for anything else).
    pub fn file_len(&self) -> u64 {
        match self {
            Body::File(d) => d.len() as u64,
            _ => 0,
        }
    }
}

/// One inode of the model.
#[derive(Clone, Debug)]
pub struct MNode {
    pub body: Body,
    pub perm: u32,
    /// Number of directory entries naming it (files and symlinks; 1 for a linked directory).
    pub nlink: u32,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// The expected tree: model inodes (numbered from [`ROOT`], unrelated to the real ones) and
/// the handles the driver holds open.
#[derive(Clone, Debug)]
pub struct Model {
    pub nodes: BTreeMap<Ino, MNode>,
    pub next_ino: Ino,
    /// The inode of each handle held open by the driver (same indices as its `Vec<File>`).
    pub handles: Vec<Ino>,
}

pub type Errno = i32;

/// `parent/name` ("" is the root `w`).
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// (parent, last component) of a path relative to `w`.
pub fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// Directory level of a path (the root `w` is 0).
pub fn depth(path: &str) -> usize {
    if path.is_empty() {
        0
    } else {
        path.matches('/').count() + 1
    }
}

impl Model {
    pub fn new() -> Self {
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

    pub fn node(&self, ino: Ino) -> &MNode {
        &self.nodes[&ino]
    }

    pub fn children(&self, ino: Ino) -> &BTreeMap<String, Ino> {
        match &self.node(ino).body {
            Body::Dir(c) => c,
            _ => panic!("model: inode {ino} is not a directory"),
        }
    }

    pub fn children_mut(&mut self, ino: Ino) -> &mut BTreeMap<String, Ino> {
        match &mut self.nodes.get_mut(&ino).unwrap().body {
            Body::Dir(c) => c,
            _ => panic!("model: inode {ino} is not a directory"),
        }
    }

    pub fn is_dir(&self, ino: Ino) -> bool {
        matches!(self.node(ino).body, Body::Dir(_))
    }

    /// Resolve a path (no symlinks are followed: the workload never goes through one).
    pub fn resolve(&self, path: &str) -> Result<Ino, Errno> {
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
    pub fn parent<'a>(&self, path: &'a str) -> Result<(Ino, &'a str), Errno> {
        let (p, name) = split(path);
        let pino = self.resolve(p)?;
        if !self.is_dir(pino) {
            return Err(libc::ENOTDIR);
        }
        Ok((pino, name))
    }

    pub fn new_node(&mut self, body: Body, perm: u32) -> Ino {
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
    pub fn drop_link(&mut self, ino: Ino) {
        let n = self.nodes.get_mut(&ino).unwrap();
        n.nlink -= 1;
        if n.nlink == 0 && !self.handles.contains(&ino) {
            self.nodes.remove(&ino);
        }
    }

    /// Every entry under the root: (path, inode), parents before children.
    pub fn entries(&self) -> Vec<(String, Ino)> {
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

    pub fn file_data(&mut self, ino: Ino) -> &mut Vec<u8> {
        match &mut self.nodes.get_mut(&ino).unwrap().body {
            Body::File(d) => d,
            _ => panic!("model: inode {ino} is not a regular file"),
        }
    }

    pub fn target_ino(&self, t: &Target) -> Result<Ino, Errno> {
        match t {
            Target::Path(p) => self.resolve(p),
            Target::Handle(i) => Ok(self.handles[*i]),
        }
    }

    /// What the filesystem must look like after the daemon died: handles gone, files unlinked
    /// while open gone (fsck -p or the mount frees them).
    pub fn after_crash(&mut self) {
        self.handles.clear();
        self.nodes.retain(|_, n| n.nlink > 0);
    }

    /// Inodes unlinked while still held open (the orphans a crash now must leave).
    pub fn open_unlinked(&self) -> usize {
        self.nodes.values().filter(|n| n.nlink == 0).count()
    }
}
