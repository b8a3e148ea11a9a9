//! Persistent structures inside the region, and the on-region format of everything the
//! filesystem keeps in them. Reads take `&[u8]` (the region's bytes); changes take the
//! operation's `Transaction`, so every byte they touch is declared.
//!
//! The generic structures: `btree` (fixed 16-byte keys, 24-byte values), `heap` (variable-size
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
//! Name keys hash the name with `name_hash`. Data checksums (`csum`) are a flat table of one
//! CRC32C per data block, indexed by physical block.

pub mod bitmap;
pub mod btree;
pub mod csum;
pub mod dentry;
pub mod extent_map;
pub mod heap;
pub mod name_hash;
pub mod orphan;
pub mod xattr;

use crate::error::{corrupt, FsResult};
use crate::layout::pod;
use crate::layout::superblock::{Superblock, SB_MAGIC};

/// The superblock at region offset 0, checked for its magic number.
pub fn superblock(bytes: &[u8]) -> FsResult<Superblock> {
    let sb: Superblock = pod::get(bytes, 0)?;
    if sb.magic != SB_MAGIC {
        return corrupt("superblock magic number is wrong");
    }
    Ok(sb)
}
