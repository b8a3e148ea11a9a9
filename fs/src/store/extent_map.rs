//! Extent maps: which data blocks hold which part of a file. The extent B+tree (root:
//! superblock field `extent_root`) holds every file's map.
//!
//! ```text
//! key   = (inode, last logical block)                     2 x u64
//! value = [first logical block, first physical block,
//!          flags]                                         3 x u64   (flags: UNWRITTEN = 1,
//!                                                                    REMOTE = 2)
//! ```
//! An extent maps logical blocks [first, last] to physical blocks [phys, phys + len) of the
//! data area (block 0 = the header's `data_offset`). Keying by the last block lets one
//! `seek((ino, b))` find the extent holding block b, or else the next extent after the hole b
//! is in.

use super::btree::{Key, Tree, Value};
use super::superblock;
use crate::error::{corrupt, FsResult};
use crate::layout::superblock::field;
use rvm_core::Transaction;

/// The extent tree.
pub const EXTENTS: Tree = Tree(field::EXTENT_ROOT);
/// Flag: blocks are allocated but read as zeros (fallocate).
pub const UNWRITTEN: u64 = 1;
/// Flag (`object_data` images): `phys` is a virtual block of a data object in the bucket
/// (`objstore::ObjectId::of_vblock`, docs/format.md 11.4), not a local data block.
pub const REMOTE: u64 = 2;

/// A run of logical blocks [first, last] stored at physical blocks [phys, phys + len).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub first: u64,
    pub last: u64,
    pub phys: u64,
    pub flags: u64,
}

impl Extent {
    /// Decode a tree entry (key `(inode, last)`); the inode is the key's high word.
    pub fn decode(k: Key, v: Value) -> Extent {
        Extent {
            first: v[0],
            last: k.1,
            phys: v[1],
            flags: v[2],
        }
    }
    /// The tree value of this extent.
    pub fn value(&self) -> Value {
        [self.first, self.phys, self.flags]
    }
    #[allow(clippy::len_without_is_empty)] // an extent is never empty
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }
    /// Does it map to virtual blocks in the bucket ([`REMOTE`]), not local ones?
    pub fn is_remote(&self) -> bool {
        self.flags & REMOTE != 0
    }
    /// Physical block of logical block `b` (which must lie inside).
    pub fn phys_of(&self, b: u64) -> u64 {
        self.phys + (b - self.first)
    }
}

/// The extent of `ino` holding block `b`, or else the first one after it. Every extent a file
/// operation follows comes through here, so it is checked here: it must not end before it
/// starts, and its physical blocks must lie inside the data area, a [`REMOTE`] one's virtual
/// blocks inside one object of the superblock's `object_shift` (`FsError::Corrupt`
/// otherwise, naming the inode and block).
pub fn find(bytes: &[u8], ino: u64, b: u64) -> FsResult<Option<Extent>> {
    match EXTENTS.seek(bytes, (ino, b))? {
        Some((k, v)) if k.0 == ino => {
            if v[0] > k.1 {
                return corrupt(format!(
                    "inode {ino}: extent ends at {} before it starts at {}",
                    k.1, v[0]
                ));
            }
            let e = Extent::decode(k, v);
            let sb = superblock(bytes)?;
            if e.is_remote() {
                return check_remote(ino, e, sb.object_shift).map(Some);
            }
            let data_blocks = sb.data_blocks;
            let end = (e.last - e.first)
                .checked_add(1)
                .and_then(|n| e.phys.checked_add(n));
            if end.is_none_or(|end| end > data_blocks) {
                return corrupt(format!(
                    "inode {ino}: extent of blocks {}..={} at physical block {} lies outside \
                     the {data_blocks}-block data area",
                    e.first, e.last, e.phys
                ));
            }
            Ok(Some(e))
        }
        _ => Ok(None),
    }
}

/// A [`REMOTE`] extent must lie inside one object (objects of `1 << shift` blocks, the
/// superblock's `object_shift`: 0 on an image without `object_data`, where no extent may be
/// remote) of a nonzero epoch, and never be unwritten as well.
pub fn check_remote(ino: u64, e: Extent, shift: u32) -> FsResult<Extent> {
    let end = e.phys.checked_add(e.last - e.first);
    let one_object =
        (1..=20).contains(&shift) && end.is_some_and(|end| end >> shift == e.phys >> shift);
    if !one_object || e.phys >> 42 == 0 || e.flags & UNWRITTEN != 0 {
        return corrupt(format!(
            "inode {ino}: remote extent of blocks {}..={} at virtual block {:#x} (flags {}) \
             does not lie inside one data object",
            e.first, e.last, e.phys, e.flags
        ));
    }
    Ok(e)
}

/// Every extent of `ino`, in order.
pub fn all(bytes: &[u8], ino: u64) -> FsResult<Vec<Extent>> {
    let mut out = Vec::new();
    EXTENTS.scan(bytes, (ino, 0), (ino, u64::MAX), |k, v| {
        out.push(Extent::decode(k, v));
        Ok(true)
    })?;
    Ok(out)
}

/// Map extent `e` of `ino` (replacing an extent of `ino` ending at the same block).
pub fn put(tx: &mut Transaction<'_>, ino: u64, e: &Extent) -> FsResult<()> {
    EXTENTS.insert(tx, (ino, e.last), e.value())?;
    Ok(())
}

/// Unmap the extent of `ino` ending at block `last`.
pub fn remove(tx: &mut Transaction<'_>, ino: u64, last: u64) -> FsResult<()> {
    EXTENTS.remove(tx, (ino, last))?;
    Ok(())
}
