//! Persistent structures inside the region. Reads take `&[u8]` (the region's bytes); changes
//! take the operation's `Transaction`, so every byte they touch is declared.

pub mod bitmap;
pub mod btree;
pub mod heap;

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
