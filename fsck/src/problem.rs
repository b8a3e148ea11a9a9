//! What a check reports: a [`Problem`] (a message and the [`Fix`] that repairs it) and the
//! [`Report`] of one whole check. Each `Fix` variant's repair sits in the pass that reports it;
//! `repair.rs` dispatches to them.

/// How a problem is repaired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fix {
    /// Free an orphan (an inode unlinked while open when the daemon died).
    ReclaimOrphan(u64),
    /// Set inode's link count.
    SetLinks { ino: u64, nlink: u32 },
    /// Set a file's block count.
    SetBlocks { ino: u64, blocks: u64 },
    /// Set a regular file's size, in bytes (a size past the largest file size becomes the
    /// end of its last extent, as e2fsck's "i_size is X, should be Y").
    SetSize { ino: u64, size: u64 },
    /// Set or clear one bit of the inode bitmap.
    InodeBit { ino: u64, used: bool },
    /// Set or clear a run of the data bitmap.
    DataBits { start: u64, len: u64, used: bool },
    /// Set the superblock's used-inode and used-block counters.
    Counters { inodes_used: u64, blocks_used: u64 },
    /// Remove a directory entry (dir, key).
    RemoveEntry { dir: u64, key: (u64, u64) },
    /// File a directory entry (dir, key) again under its name's hash (a key that does not
    /// match makes the name impossible to look up).
    RekeyEntry { dir: u64, key: (u64, u64) },
    /// Remove an extent (ino, last block) whose blocks are bad or owned twice.
    RemoveExtent { ino: u64, last: u64 },
    /// Put an unreachable inode into /lost+found.
    LostFound { ino: u64 },
    /// Set a directory's parent pointer.
    SetParent { ino: u64, parent: u64 },
    /// Clear an inode whose fields make no sense (e2fsck's "clear inode"); its entries,
    /// extents and blocks are cleaned up by the next round.
    ClearInode(u64),
    /// Make a new, empty root directory in inode 1 (e2fsck pass 3's "Root inode not
    /// allocated. Allocate?"): the entries filed under inode 1 in the dentry tree are its
    /// children again; the link counts follow in the next round.
    RecreateRoot,
    /// Remove an extended attribute entry (ino, key).
    RemoveXattr { ino: u64, key: (u64, u64) },
    /// Empty a heap free list whose chunks overlap live data (the chunks are leaked).
    ResetFreeList(usize),
    /// Rebuild a damaged B+tree (named by its root's superblock field) from its leaves.
    RebuildTree(u64),
    /// No automatic repair.
    None,
}

impl Fix {
    /// Safe without asking (fsck -p): changes no user-visible name or data.
    pub fn is_safe(&self) -> bool {
        matches!(
            self,
            Fix::ReclaimOrphan(_)
                | Fix::SetBlocks { .. }
                | Fix::InodeBit { .. }
                | Fix::DataBits { .. }
                | Fix::Counters { .. }
                | Fix::SetParent { .. }
                | Fix::RebuildTree(_)
                | Fix::ResetFreeList(_)
                | Fix::RekeyEntry { .. }
        )
    }
}

/// One finding.
#[derive(Clone, Debug)]
pub struct Problem {
    pub what: String,
    pub fix: Fix,
}

/// What the check found, and totals for the summary line.
#[derive(Default)]
pub struct Report {
    pub problems: Vec<Problem>,
    pub files: u64,
    pub dirs: u64,
    pub extents: u64,
    /// Regular files whose extents are not physically contiguous (each counted once): the
    /// summary line's "% non-contiguous" is these over the inodes in use, as e2fsck's.
    pub fragmented: u64,
    pub blocks_used: u64,
    pub orphans: u64,
}

impl Report {
    pub(crate) fn add(&mut self, what: String, fix: Fix) {
        self.problems.push(Problem { what, fix });
    }
}
