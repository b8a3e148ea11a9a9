//! Before pass 0: the superblock's layout (e2fsck's `check_super_block`). The areas must lie in
//! order inside the region (the data checksum table, if any, between the data bitmap and the
//! heap), or nothing else can be read; there is no repair.

use rvmfs::layout::inode::INODE_SIZE;
use rvmfs::layout::superblock::Superblock;
use rvmfs::{FsError, FsResult};

/// Check that `sb`'s areas lie in order inside the region `bytes`.
///
/// Errors: `FsError::Corrupt` if they do not.
pub(crate) fn check(bytes: &[u8], sb: &Superblock) -> FsResult<()> {
    let region = bytes.len() as u64;
    let ordered = sb.inode_bitmap < sb.inode_table
        && sb.inode_table + sb.inode_count * INODE_SIZE <= sb.data_bitmap
        && sb.data_bitmap + sb.data_blocks.div_ceil(8) <= sb.heap_start
        && sb.heap_start <= sb.heap_top
        && sb.heap_top <= sb.heap_end
        && sb.heap_end <= region;
    if !ordered || rvmfs::store::csum::Table::of(sb).is_err() {
        return Err(FsError::Corrupt(
            "the superblock's layout is inconsistent".into(),
        ));
    }
    Ok(())
}
