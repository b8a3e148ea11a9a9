//! What the workload did, as its own syscalls' returns tell it: the tree under `w/` (every
//! answered metadata request) and each file's contents, with whether they are *settled*
//! (closed or fsynced since the last write, so the promise covers them) or may still sit in
//! the kernel's page cache.

use std::collections::BTreeMap;
use std::fs::File;

/// A file's state in the model, by its id (stable across renames).
pub struct FileState {
    /// Contents as the workload's answered writes and truncates left them.
    pub data: Vec<u8>,
    pub perm: u32,
    /// The value of `user.k`, if set.
    pub xattr: Option<Vec<u8>>,
    /// Closed or fsynced after its last write: must be intact after `kill -9`.
    pub settled: bool,
    /// The largest size it had since it was last settled (bytes): a bound for its size after
    /// `kill -9` when it is not settled.
    pub max_len: u64,
}

/// A name under `w/`: a fixed directory or a file (by id).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Node {
    Dir,
    File(usize),
}

/// The model: paths relative to `w/`, the files by id, and the handles held open.
pub struct Model {
    pub tree: BTreeMap<String, Node>,
    pub files: Vec<FileState>,
    /// (file id, handle opened read-write).
    pub open: Vec<(usize, File)>,
}

/// The fixed directories (made once, never removed).
pub const DIRS: [&str; 3] = ["d0", "d1", "d2"];

impl Model {
    pub fn new() -> Model {
        let tree = DIRS.iter().map(|d| (d.to_string(), Node::Dir)).collect();
        Model {
            tree,
            files: Vec::new(),
            open: Vec::new(),
        }
    }

    /// Every linked file id with its path.
    pub fn linked(&self) -> Vec<(String, usize)> {
        self.tree
            .iter()
            .filter_map(|(p, n)| match n {
                Node::File(id) => Some((p.clone(), *id)),
                Node::Dir => None,
            })
            .collect()
    }

    /// Whether file `id` has a handle held open.
    pub fn is_open(&self, id: usize) -> bool {
        self.open.iter().any(|(i, _)| *i == id)
    }

    /// Record an answered write of `bytes` at `off` to file `id`: not settled until closed
    /// or fsynced (in the default mode the daemon answered it, so it is settled at once).
    pub fn wrote(&mut self, id: usize, off: usize, bytes: &[u8], settled: bool) {
        let f = &mut self.files[id];
        if f.data.len() < off + bytes.len() {
            f.data.resize(off + bytes.len(), 0);
        }
        f.data[off..off + bytes.len()].copy_from_slice(bytes);
        f.unsettle_unless(settled);
    }

    /// Record an answered truncate of file `id` to `size` bytes.
    pub fn truncated(&mut self, id: usize, size: usize) {
        let f = &mut self.files[id];
        f.data.resize(size, 0);
        f.max_len = if f.settled {
            size as u64
        } else {
            f.max_len.max(size as u64)
        };
    }

    /// File `id` was closed or fsynced: its contents are now the daemon's.
    pub fn settle(&mut self, id: usize) {
        let f = &mut self.files[id];
        f.settled = true;
        f.max_len = f.data.len() as u64;
    }

    /// After the kill and the remount: no handles; every file as recovered (`found`, by id:
    /// its contents), settled again.
    pub fn after_recovery(&mut self, found: &BTreeMap<usize, Vec<u8>>) {
        self.open.clear();
        for (id, data) in found {
            self.files[*id].data = data.clone();
            self.settle(*id);
        }
    }
}

impl FileState {
    pub fn new(perm: u32) -> FileState {
        FileState {
            data: Vec::new(),
            perm,
            xattr: None,
            settled: true,
            max_len: 0,
        }
    }

    fn unsettle_unless(&mut self, settled: bool) {
        self.max_len = self.max_len.max(self.data.len() as u64);
        if !settled {
            self.settled = false;
        }
    }
}
