//! Extended attributes: the xattr B+tree (root: superblock field `xattr_root`).
//!
//! ```text
//! key   = (inode, name key)                                  2 x u64
//! value = [heap offset of the name, heap offset of the value
//!          (0 when the value is empty),
//!          name length << 32 | value length]                 3 x u64
//! name key = (name_hash(name) >> 8) << 8 | k                 k = 0..255
//! ```
//! The name hash is the dentry tree's (`name_hash`: keyed in images with `keyed_hash`). As in
//! the dentry tree, k tells apart names whose kept hash bits (56 here) collide. Names and
//! values live in the heap, unterminated.

use super::btree::{Key, Tree, Value};
use super::{heap, name_hash};
use crate::error::{corrupt, errno, FsResult};
use crate::layout::superblock::field;
use rvm_core::Transaction;

/// The xattr tree.
pub const XATTRS: Tree = Tree(field::XATTR_ROOT);

/// One attribute's entry.
pub struct Entry {
    pub key: Key,
    pub name_at: u64,
    pub name_len: u64,
    pub value_at: u64,
    pub value_len: u64,
}

impl Entry {
    /// Decode a tree entry.
    pub fn decode(key: Key, v: Value) -> Entry {
        Entry {
            key,
            name_at: v[0],
            value_at: v[1],
            name_len: v[2] >> 32,
            value_len: v[2] & 0xffff_ffff,
        }
    }
    /// The attribute's name, from the heap.
    pub fn name<'b>(&self, bytes: &'b [u8]) -> FsResult<&'b [u8]> {
        if self.name_len > 255 {
            return corrupt(format!("xattr with a {}-byte name", self.name_len));
        }
        heap::load(bytes, self.name_at, self.name_len)
    }
}

/// The name key of `name` with k = 0 (its collision slots are `base..=base | 0xff`), under
/// the name hash of the region `bytes` (as the dentry tree's).
pub fn base_key(bytes: &[u8], name: &[u8]) -> FsResult<u64> {
    Ok((name_hash::hash(bytes, name)? >> 8) << 8)
}

/// The entry of attribute `name` of `ino`.
pub fn find(bytes: &[u8], ino: u64, name: &[u8]) -> FsResult<Option<Entry>> {
    let base = base_key(bytes, name)?;
    let mut found = None;
    XATTRS.scan(bytes, (ino, base), (ino, base | 0xff), |k, v| {
        let e = Entry::decode(k, v);
        if e.name(bytes)? == name {
            found = Some(e);
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok(found)
}

/// Every attribute entry of `ino`, in key order.
pub fn entries(bytes: &[u8], ino: u64) -> FsResult<Vec<Entry>> {
    let mut entries = Vec::new();
    XATTRS.scan(bytes, (ino, 0), (ino, u64::MAX), |k, v| {
        entries.push(Entry::decode(k, v));
        Ok(true)
    })?;
    Ok(entries)
}

/// A free key for a new attribute `name` of `ino`; ENOSPC when its 256 slots are taken.
pub fn free_key(bytes: &[u8], ino: u64, name: &[u8]) -> FsResult<Key> {
    match XATTRS.free_slot(bytes, ino, base_key(bytes, name)?)? {
        Some(k) => Ok(k),
        None => errno(libc::ENOSPC),
    }
}

/// Store attribute `name` = `value` under `key`, name and value in the heap.
pub fn insert(tx: &mut Transaction<'_>, key: Key, name: &[u8], value: &[u8]) -> FsResult<()> {
    let name_at = heap::store(tx, name)?;
    let value_at = if value.is_empty() {
        0
    } else {
        heap::store(tx, value)?
    };
    XATTRS.insert(
        tx,
        key,
        [
            name_at,
            value_at,
            (name.len() as u64) << 32 | value.len() as u64,
        ],
    )?;
    Ok(())
}

/// Remove entry `e`, freeing its name and value.
pub fn remove(tx: &mut Transaction<'_>, e: &Entry) -> FsResult<()> {
    XATTRS.remove(tx, e.key)?;
    heap::free(tx, e.name_at, e.name_len)?;
    if e.value_len > 0 {
        heap::free(tx, e.value_at, e.value_len)?;
    }
    Ok(())
}

/// Heap chunks owned by `ino`'s attributes: (offset, length, tree key), for fsck.
pub fn chunks(bytes: &[u8], ino: u64) -> FsResult<Vec<(u64, u64, Key)>> {
    let mut out = Vec::new();
    XATTRS.scan(bytes, (ino, 0), (ino, u64::MAX), |k, v| {
        let e = Entry::decode(k, v);
        out.push((e.name_at, e.name_len, k));
        if e.value_len > 0 {
            out.push((e.value_at, e.value_len, k));
        }
        Ok(true)
    })?;
    Ok(out)
}
