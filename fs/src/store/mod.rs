//! Persistent structures inside the region, and the on-region format of everything the
//! filesystem keeps in them. Reads take `&[u8]` (the region's bytes); changes take the
//! operation's `Transaction`, so every byte they touch is declared.
//!
//! The generic structures: `btree` (fixed 16-byte keys, 24-byte values; `node` the node
//! layouts, `leaf` the changes of a leaf, `slotted` the slotted leaf), `heap` (variable-size
//! chunks), `bitmap` (the inode and data-block maps). The four B+trees and what their entries
//! mean (every tree's root is a superblock field; each file gives the byte layout):
//!
//! | tree       | module       | key                           | value                          |
//! |------------|--------------|-------------------------------|--------------------------------|
//! | dentries   | `dentry`     | (directory, name key)         | child, name offset, type + len |
//! | extents    | `extent_map` | (inode, last logical block)   | first block, physical, flags   |
//! | xattrs     | `xattr`      | (inode, name key)             | name offset, value offset, lens|
//! | orphans    | `orphan`     | (inode, 0)                    | unused                         |
//!
//! Name keys hash the name with `name_hash`; `names` indexes every name at once (inode to paths). Data checksums (`csum`) are a flat table of one
//! CRC32C per data block, indexed by physical block.
//!
//! `local_data` judges a region for `rvmfs-admin restore` of an `object_data` image: does a
//! written extent still point at a local block (data that may never have reached the bucket)?

pub mod bitmap;
pub mod btree;
pub mod csum;
pub mod dentry;
pub mod extent_map;
pub mod heap;
mod leaf;
pub mod local_data;
pub mod name_hash;
pub mod names;
mod node;
pub mod orphan;
mod slotted;
pub mod xattr;

use crate::error::{corrupt, FsResult};
use crate::layout::inode::INODE_SIZE;
use crate::layout::pod;
use crate::layout::superblock::{Superblock, SB_MAGIC, SB_SIZE};

/// The superblock at region offset 0, checked for its magic number.
pub fn superblock(bytes: &[u8]) -> FsResult<Superblock> {
    let sb: Superblock = pod::get(bytes, 0)?;
    if sb.magic != SB_MAGIC {
        return corrupt("superblock magic number is wrong");
    }
    Ok(sb)
}

/// Check the region's layout as the superblock names it, before anything follows it (a
/// hostile image): superblock, inode bitmap, inode table, data bitmap and heap in this order
/// without overlap inside the `bytes.len()`-byte region, the heap's bump pointer inside it,
/// and no more data blocks than the header's `data_blocks`. Checked arithmetic: corrupt
/// counts cannot overflow. `FsError::Corrupt` names the first field out of place.
pub fn check_layout(bytes: &[u8], sb: &Superblock, data_blocks: u64) -> FsResult<()> {
    let region = bytes.len() as u64;
    let end = |at: u64, len: Option<u64>| len.and_then(|l| at.checked_add(l));
    let inode_bitmap_end = end(sb.inode_bitmap, Some(sb.inode_count.div_ceil(8)));
    let inode_table_end = end(sb.inode_table, sb.inode_count.checked_mul(INODE_SIZE));
    let data_bitmap_end = end(sb.data_bitmap, Some(sb.data_blocks.div_ceil(8)));
    let checks = [
        (
            "inode bitmap",
            sb.inode_bitmap >= SB_SIZE && sb.inode_count > 0,
        ),
        (
            "inode table",
            inode_bitmap_end.is_some_and(|e| e <= sb.inode_table),
        ),
        (
            "data bitmap",
            inode_table_end.is_some_and(|e| e <= sb.data_bitmap),
        ),
        ("data block count", sb.data_blocks <= data_blocks),
        (
            "heap start",
            data_bitmap_end.is_some_and(|e| e <= sb.heap_start),
        ),
        (
            "heap top",
            sb.heap_start <= sb.heap_top && sb.heap_top <= sb.heap_end,
        ),
        ("heap end", sb.heap_end <= region),
    ];
    match checks.iter().find(|(_, ok)| !ok) {
        Some((what, _)) => corrupt(format!("superblock: the {what} is out of place")),
        None => Ok(()),
    }
}
