//! Directories: entries live in the dentry B+tree under key (directory inode, name key).
//!
//! The name key is `1<<62 | hash54(name)<<8 | k`, where k (0..255) tells apart names whose
//! 54-bit hashes collide. Lookup is one tree seek plus a scan of the (almost always single)
//! entry with that hash: O(log n). The key doubles as readdir's cookie, so a cookie stays
//! valid while other entries come and go (as ext4's htree hash cookies).

use super::Op;
use crate::error::{errno, FsResult};
use crate::layout::superblock::field;
use crate::store::btree::{Key, Tree, Value};
use crate::store::heap;

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
    fn from_entry(key: Key, v: Value) -> Dentry {
        Dentry {
            key,
            ino: v[0],
            name_at: v[1],
            name_len: v[2] & 0xffff_ffff,
            kind: (v[2] >> 32) as u32,
        }
    }
    fn value(&self) -> Value {
        [
            self.ino,
            self.name_at,
            self.name_len | (self.kind as u64) << 32,
        ]
    }
    /// The entry's name, from the heap.
    pub fn name<'b>(&self, bytes: &'b [u8]) -> FsResult<&'b [u8]> {
        heap::load(bytes, self.name_at, self.name_len)
    }
}

/// FNV-1a, 64-bit: a stable hash (it is stored on disk).
pub fn hash(name: &[u8]) -> u64 {
    name.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn base_key(name: &[u8]) -> u64 {
    FIRST_KEY | (hash(name) >> 10) << 8
}

/// Check a name for a new entry: not empty, no '/', not "." or "..", at most 255 bytes.
pub fn check_name(name: &[u8]) -> FsResult<()> {
    if name.len() > NAME_MAX {
        return errno(libc::ENAMETOOLONG);
    }
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return errno(libc::EINVAL);
    }
    if name == b"." || name == b".." {
        return errno(libc::EEXIST);
    }
    Ok(())
}

/// The entry `name` in directory `dir`.
pub fn lookup(bytes: &[u8], dir: u64, name: &[u8]) -> FsResult<Option<Dentry>> {
    let base = base_key(name);
    let mut found = None;
    DENTRIES.scan(bytes, (dir, base), (dir, base | 0xff), |k, v| {
        let d = Dentry::from_entry(k, v);
        if d.name(bytes)? == name {
            found = Some(d);
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok(found)
}

/// Add entry `name` -> `ino` (of type `kind`) to `dir`. The caller checked it is absent.
pub fn add(op: &mut Op<'_>, dir: u64, name: &[u8], ino: u64, kind: u32) -> FsResult<()> {
    let key = DENTRIES.free_slot(op.bytes(), dir, base_key(name))?;
    let Some(key) = key else {
        return errno(libc::ENOSPC); // 256 names with one 54-bit hash: never in practice
    };
    let name_at = heap::store(&mut op.tx, name)?;
    let d = Dentry {
        key,
        ino,
        name_at,
        name_len: name.len() as u64,
        kind,
    };
    DENTRIES.insert(&mut op.tx, key, d.value())?;
    Ok(())
}

/// Remove entry `d` from its directory, freeing its name.
pub fn remove(op: &mut Op<'_>, d: &Dentry) -> FsResult<()> {
    DENTRIES.remove(&mut op.tx, d.key)?;
    heap::free(&mut op.tx, d.name_at, d.name_len)
}

/// Point existing entry `d` at another inode (rename over an existing name).
pub fn retarget(op: &mut Op<'_>, d: &Dentry, ino: u64, kind: u32) -> FsResult<()> {
    let nd = Dentry { ino, kind, ..*d };
    DENTRIES.insert(&mut op.tx, d.key, nd.value())?;
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
        visit(&Dentry::from_entry(k, v))
    })
}
