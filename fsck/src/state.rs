//! What the passes learn and hand on to the later passes (e2fsck keeps the same in its
//! `e2fsck_t`: inode maps, block owners, link counts seen).

use crate::problem::{Fix, Report};
use rvmfs::layout::inode::Inode;
use rvmfs::layout::superblock::Superblock;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One chunk of the recoverable heap that something claims, for the heap pass's overlap check.
pub(crate) struct Chunk {
    /// Offset in the region.
    pub at: u64,
    /// Length in bytes.
    pub len: u64,
    /// What owns it, for messages.
    pub what: String,
    /// The fix if this chunk is to blame.
    pub fix: Fix,
    /// Blame priority: of two overlapping chunks, the one with the higher (or equal) priority
    /// is blamed; 0 tree nodes, 1 names, symlink targets and xattrs, 2 free chunks.
    pub blame: u8,
}

impl Chunk {
    /// A claim on `len` bytes at `at`, owned by `what`, repaired by `fix` if blamed.
    pub fn new(at: u64, len: u64, what: String, fix: Fix, blame: u8) -> Self {
        Chunk {
            at,
            len,
            what,
            fix,
            blame,
        }
    }
}

/// The state of one check over a region.
pub(crate) struct State<'a> {
    /// The whole region.
    pub bytes: &'a [u8],
    /// Its superblock (layout checked before pass 0).
    pub sb: Superblock,
    /// The findings so far and the totals.
    pub report: Report,
    /// Pass 1: the inodes in use (by the table; a bitmap disagreement is reported), by number.
    pub inodes: BTreeMap<u64, Inode>,
    /// Pass 1b: one bit per data block owned by an extent.
    pub owned: Vec<u64>,
    /// Pass 1b: blocks counted per inode from its extents.
    pub blocks_of: HashMap<u64, u64>,
    /// Pass 2: names seen per inode.
    pub links: HashMap<u64, u32>,
    /// Pass 2: subdirectories seen per directory.
    pub subdirs: HashMap<u64, u32>,
    /// Pass 2: directory inode -> the directories naming it.
    pub named_in: HashMap<u64, Vec<u64>>,
    /// Pass 2, the xattr pass and the heap pass: heap chunks claimed, checked for overlaps by
    /// the heap pass.
    pub heap_chunks: Vec<Chunk>,
    /// Pass 3: the inodes on the orphan list.
    pub orphans: HashSet<u64>,
}

impl<'a> State<'a> {
    /// A fresh state for region `bytes` with superblock `sb`.
    pub fn new(bytes: &'a [u8], sb: Superblock) -> Self {
        let owned = vec![0u64; sb.data_blocks.div_ceil(64) as usize];
        State {
            bytes,
            sb,
            report: Report::default(),
            inodes: BTreeMap::new(),
            owned,
            blocks_of: HashMap::new(),
            links: HashMap::new(),
            subdirs: HashMap::new(),
            named_in: HashMap::new(),
            heap_chunks: Vec::new(),
            orphans: HashSet::new(),
        }
    }

    /// Whether data block `b` is owned by an extent seen so far.
    pub fn owns(&self, b: u64) -> bool {
        self.owned[(b / 64) as usize] & (1 << (b % 64)) != 0
    }

    /// Mark data block `b` owned.
    pub fn claim(&mut self, b: u64) {
        self.owned[(b / 64) as usize] |= 1 << (b % 64);
    }
}
