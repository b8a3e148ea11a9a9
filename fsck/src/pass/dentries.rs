//! Pass 2: directory entries. Every entry sits in a directory in use, names an inode in use of
//! the type it records, has a valid name inside the region and a key past the reserved ones
//! whose hash bits are its name's hash (the image's: keyed, or FNV-1a in older images).
//! Counts the names of each inode and the subdirectories of each directory for passes 3 and 4.

use crate::problem::Fix;
use crate::state::{Chunk, State};
use rvmfs::ops::Op;
use rvmfs::store::dentry::{self, DENTRIES};
use rvmfs::store::heap;
use rvmfs::FsResult;

/// One directory entry as stored in the dentry tree.
struct Entry {
    /// The directory holding it.
    parent: u64,
    /// Its key in the dentry tree.
    key: (u64, u64),
    /// The inode it names.
    ino: u64,
    /// Where its name lies in the heap, and its length in bytes.
    name_at: u64,
    name_len: u64,
    /// The file type it records (S_IF*).
    kind: u32,
}

/// Run pass 2; fills `s.links`, `s.subdirs`, `s.named_in` and claims each name's heap chunk.
pub(crate) fn check(s: &mut State, progress: &dyn Fn(&str, u64, u64)) -> FsResult<()> {
    progress("Pass 2: directory entries", 0, 1);
    let mut entry_problems = Vec::new();
    let bytes = s.bytes;
    DENTRIES.scan(bytes, (0, 0), (u64::MAX, u64::MAX), |k, v| {
        let e = Entry {
            parent: k.0,
            key: k,
            ino: v[0],
            name_at: v[1],
            name_len: v[2] & 0xffff_ffff,
            kind: (v[2] >> 32) as u32,
        };
        let remove = Fix::RemoveEntry {
            dir: e.parent,
            key: k,
        };
        let name = heap::load(bytes, e.name_at, e.name_len)
            .map(|n| String::from_utf8_lossy(n).into_owned());
        let Ok(name) = name else {
            entry_problems.push((
                format!(
                    "directory {}: an entry's name lies outside the region",
                    e.parent
                ),
                remove,
            ));
            return Ok(true);
        };
        if let Some(what) = bad_entry(s, &e, &name) {
            entry_problems.push((what, remove));
            return Ok(true);
        }
        if let Some(problem) = misfiled(bytes, &e, &name)? {
            entry_problems.push(problem);
        }
        record(s, &e, &name, remove);
        Ok(true)
    })?;
    for (what, fix) in entry_problems {
        s.report.add(what, fix);
    }
    Ok(())
}

/// Why entry `e` called `name` cannot stand, if it cannot.
fn bad_entry(s: &State, e: &Entry, name: &str) -> Option<String> {
    let (parent, d_ino) = (e.parent, e.ino);
    match (s.inodes.get(&parent), s.inodes.get(&d_ino)) {
        (None, _) => Some(format!("entry '{name}' is in free inode {parent}")),
        (Some(p), _) if !p.is_dir() => Some(format!(
            "entry '{name}' is in inode {parent}, which is not a directory"
        )),
        (_, None) => Some(format!(
            "entry '{name}' in directory {parent} names free inode {d_ino}"
        )),
        (_, Some(c)) if c.kind() != e.kind => Some(format!(
            "entry '{name}' in directory {parent}: type does not match inode {d_ino}"
        )),
        _ if e.name_len == 0 || e.name_len > dentry::NAME_MAX as u64 || name.contains('/') => Some(
            format!("directory {parent}: entry with an invalid name '{name}'"),
        ),
        _ if e.key.1 < dentry::FIRST_KEY => {
            Some(format!("directory {parent}: entry '{name}' has a bad key"))
        }
        _ => None,
    }
}

/// A problem if entry `e` called `name` is not filed under its name's hash.
fn misfiled(bytes: &[u8], e: &Entry, name: &str) -> FsResult<Option<(String, Fix)>> {
    let raw = heap::load(bytes, e.name_at, e.name_len)?;
    if e.key.1 & !0xff == dentry::base_key(bytes, raw)? {
        return Ok(None);
    }
    let what = format!(
        "directory {}: entry '{name}' is filed under a key that is not its name's hash \
         (lookups cannot find it)",
        e.parent
    );
    let fix = Fix::RekeyEntry {
        dir: e.parent,
        key: e.key,
    };
    Ok(Some((what, fix)))
}

/// Count a sound entry: its name's heap chunk, one more name for its inode and, for a
/// directory, one more subdirectory of its parent.
fn record(s: &mut State, e: &Entry, name: &str, remove: Fix) {
    s.heap_chunks.push(Chunk::new(
        e.name_at,
        e.name_len,
        format!("name of entry '{name}' in directory {}", e.parent),
        remove,
        1,
    ));
    *s.links.entry(e.ino).or_default() += 1;
    if e.kind == libc::S_IFDIR {
        *s.subdirs.entry(e.parent).or_default() += 1;
        s.named_in.entry(e.ino).or_default().push(e.parent);
    }
}

/// Repair [`Fix::RekeyEntry`]: move the entry at `key` to a free slot under its name's hash
/// (or drop it if its name is there already).
pub(crate) fn rekey(op: &mut Op<'_>, key: (u64, u64)) -> FsResult<()> {
    let Some(v) = DENTRIES.remove(&mut op.tx, key)? else {
        return Ok(());
    };
    let d = dentry::Dentry::decode(key, v);
    let name = d.name(op.bytes())?.to_vec();
    if dentry::lookup(op.bytes(), key.0, &name)?.is_some() {
        return heap::free(&mut op.tx, d.name_at, d.name_len);
    }
    let base = dentry::base_key(op.bytes(), &name)?;
    match DENTRIES.free_slot(op.bytes(), key.0, base)? {
        Some(new) => DENTRIES.insert(&mut op.tx, new, v).map(|_| ()),
        None => heap::free(&mut op.tx, d.name_at, d.name_len),
    }
}

/// Repair [`Fix::RemoveEntry`]: remove the entry at `key` from the dentry tree.
pub(crate) fn remove(op: &mut Op<'_>, key: (u64, u64)) -> FsResult<()> {
    DENTRIES.remove(&mut op.tx, key).map(|_| ())
}
