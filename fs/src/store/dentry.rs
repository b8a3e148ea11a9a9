//! Directory entries: the dentry B+tree (root: superblock field `dentry_root`).
//!
//! ```text
//! key   = (directory inode, name key)                       2 x u64
//! value = [child inode, heap offset of the name,
//!          child type (S_IFMT bits) << 32 | name length]    3 x u64
//! name key = 1<<62 | (name_hash(name) >> 10) << 8 | k       k = 0..255
//! ```
//! The name key keeps 54 bits of the image's name hash (`name_hash`: SipHash-1-3 under the
//! image's key, or FNV-1a in older images); k tells apart names whose 54-bit hashes collide. Lookup is one tree seek plus a scan of the (almost always single) entry with
//! that hash: O(log n). The key doubles as readdir's cookie, so a cookie stays valid while
//! other entries come and go (as ext4's htree hash cookies); cookies below `FIRST_KEY` are "."
//! (1) and ".." (2), which are not stored. The name's bytes live in the heap, unterminated.

use super::btree::{Key, Tree, Value};
use super::{heap, name_hash};
use crate::error::{corrupt, errno, FsResult};
use crate::layout::superblock::field;
use rvm_core::Transaction;

/// The dentry tree.
pub const DENTRIES: Tree = Tree(field::DENTRY_ROOT);
/// Longest name, bytes.
pub const NAME_MAX: usize = 255;
/// Readdir cookies below this are "." (1) and ".." (2).
pub const FIRST_KEY: u64 = 1 << 62;

/// A directory entry.
#[derive(Clone, Copy, Debug)]
pub struct Dentry {
    pub key: Key,
    pub ino: u64,
    pub name_at: u64,
    pub name_len: u64,
    /// File type bits (S_IFMT) of the child.
    pub kind: u32,
}

impl Dentry {
    /// Decode a tree entry.
    pub fn decode(key: Key, v: Value) -> Dentry {
        Dentry {
            key,
            ino: v[0],
            name_at: v[1],
            name_len: v[2] & 0xffff_ffff,
            kind: (v[2] >> 32) as u32,
        }
    }
    /// The tree value of this entry.
    pub fn value(&self) -> Value {
        [
            self.ino,
            self.name_at,
            self.name_len | (self.kind as u64) << 32,
        ]
    }
    /// The entry's name, from the heap; `FsError::Corrupt` when longer than `NAME_MAX`.
    pub fn name<'b>(&self, bytes: &'b [u8]) -> FsResult<&'b [u8]> {
        if self.name_len > NAME_MAX as u64 {
            return corrupt(format!(
                "directory {}: entry with a {}-byte name",
                self.key.0, self.name_len
            ));
        }
        heap::load(bytes, self.name_at, self.name_len)
    }
}

/// The name key of `name` with k = 0 (its collision slots are `base..=base | 0xff`), under
/// the name hash of the region `bytes`.
pub fn base_key(bytes: &[u8], name: &[u8]) -> FsResult<u64> {
    Ok(key_of_hash(name_hash::hash(bytes, name)?))
}

/// The name key with k = 0 of a name whose hash is `hash`.
pub fn key_of_hash(hash: u64) -> u64 {
    FIRST_KEY | (hash >> 10) << 8
}

/// The entry `name` in directory `dir`.
pub fn lookup(bytes: &[u8], dir: u64, name: &[u8]) -> FsResult<Option<Dentry>> {
    match find(bytes, dir, name)? {
        Slot::Taken(d) => Ok(Some(d)),
        Slot::Free(_) => Ok(None),
    }
}

/// Where a name is in its directory, or where it would go.
#[derive(Clone, Copy, Debug)]
pub enum Slot {
    /// The name's entry.
    Taken(Dentry),
    /// Absent: the lowest free key under its hash, None when all 256 collision slots are taken.
    Free(Option<Key>),
}

/// Find `name` in directory `dir`, or the key a new entry for it would take: one scan of the
/// keys under its hash serves both, so a create descends the tree once to check and once to
/// insert, not once more to pick the slot.
pub fn find(bytes: &[u8], dir: u64, name: &[u8]) -> FsResult<Slot> {
    let base = base_key(bytes, name)?;
    let mut found = None;
    let mut used = [0u64; 4]; // bit k: slot base | k is taken
    DENTRIES.scan(bytes, (dir, base), (dir, base | 0xff), |k, v| {
        let d = Dentry::decode(k, v);
        if d.name(bytes)? == name {
            found = Some(d);
            return Ok(false);
        }
        let slot = (k.1 & 0xff) as usize;
        used[slot / 64] |= 1 << (slot % 64);
        Ok(true)
    })?;
    if let Some(d) = found {
        return Ok(Slot::Taken(d));
    }
    let free = (0..256u64).find(|&k| used[k as usize / 64] & (1 << (k % 64)) == 0);
    Ok(Slot::Free(free.map(|k| (dir, base | k))))
}

/// Add entry `name` -> `ino` (of type `kind`) to `dir`, its name stored in the heap. The caller
/// checked it is absent.
pub fn add(tx: &mut Transaction<'_>, dir: u64, name: &[u8], ino: u64, kind: u32) -> FsResult<()> {
    let base = base_key(tx.bytes(), name)?;
    let key = DENTRIES.free_slot(tx.bytes(), dir, base)?;
    add_at(tx, key, name, ino, kind)
}

/// Add entry `name` -> `ino` (of type `kind`) under `key`, a free key of its directory for the
/// name's hash ([`find`]'s `Slot::Free`); None (all 256 collision slots taken) is ENOSPC.
pub fn add_at(
    tx: &mut Transaction<'_>,
    key: Option<Key>,
    name: &[u8],
    ino: u64,
    kind: u32,
) -> FsResult<()> {
    let Some(key) = key else {
        // 256 names with one 54-bit hash: never by chance; crafted names can do it to FNV-1a
        // (older images), not to the keyed hash.
        return errno(libc::ENOSPC);
    };
    let name_at = heap::store(tx, name)?;
    let d = Dentry {
        key,
        ino,
        name_at,
        name_len: name.len() as u64,
        kind,
    };
    DENTRIES.insert(tx, key, d.value())?;
    Ok(())
}

/// Remove entry `d` from its directory, freeing its name.
pub fn remove(tx: &mut Transaction<'_>, d: &Dentry) -> FsResult<()> {
    DENTRIES.remove(tx, d.key)?;
    heap::free(tx, d.name_at, d.name_len)
}

/// Point existing entry `d` at another inode (rename over an existing name).
pub fn retarget(tx: &mut Transaction<'_>, d: &Dentry, ino: u64, kind: u32) -> FsResult<()> {
    let nd = Dentry { ino, kind, ..*d };
    DENTRIES.insert(tx, d.key, nd.value())?;
    Ok(())
}

/// Does `dir` have no entries?
pub fn is_empty(bytes: &[u8], dir: u64) -> FsResult<bool> {
    Ok(!matches!(DENTRIES.seek(bytes, (dir, 0))?, Some((k, _)) if k.0 == dir))
}

/// Visit the entries of `dir` whose cookie is greater than `after`, in cookie order.
pub fn list(
    bytes: &[u8],
    dir: u64,
    after: u64,
    mut visit: impl FnMut(&Dentry) -> FsResult<bool>,
) -> FsResult<()> {
    let from = after.saturating_add(1).max(FIRST_KEY);
    DENTRIES.scan(bytes, (dir, from), (dir, u64::MAX), |k, v| {
        visit(&Dentry::decode(k, v))
    })
}
