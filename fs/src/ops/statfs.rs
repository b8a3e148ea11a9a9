//! statfs: the superblock's counters as statfs(2) reports them.

use crate::error::FsResult;
use crate::layout::BLOCK_SIZE;
use crate::store::dentry::NAME_MAX;
use crate::store::superblock;

/// What statfs(2) reports (counts of 4 KiB blocks and of inodes).
#[derive(Clone, Copy, Debug)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    /// Free blocks for unprivileged users: `bfree` less the blocks reserved for root.
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    /// Block size, bytes.
    pub bsize: u32,
    /// Longest name, bytes.
    pub namelen: u32,
    /// Fragment size, bytes.
    pub frsize: u32,
}

/// The filesystem's counters, from the superblock in `bytes`.
pub fn statfs(bytes: &[u8]) -> FsResult<StatFs> {
    let sb = superblock(bytes)?;
    let bfree = sb.data_blocks.saturating_sub(sb.blocks_used);
    let bsize = BLOCK_SIZE as u32;
    Ok(StatFs {
        blocks: sb.data_blocks,
        bfree,
        bavail: bfree.saturating_sub(sb.reserved_blocks),
        files: sb.inode_count,
        ffree: sb.inode_count.saturating_sub(sb.inodes_used),
        bsize,
        namelen: NAME_MAX as u32,
        frsize: bsize,
    })
}
