//! Extended attributes: xattr tree key (inode, name key as in `dir`) ->
//! `[name offset, value offset, name length << 32 | value length]`, names and values in the heap.

use super::{inode, Op};
use crate::error::{errno, FsResult};
use crate::layout::superblock::field;
use crate::store::btree::{Key, Tree, Value};
use crate::store::heap;

/// The xattr tree.
pub const XATTRS: Tree = Tree(field::XATTR_ROOT);
/// Longest name, bytes (XATTR_NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Largest value, bytes (XATTR_SIZE_MAX).
pub const VALUE_MAX: usize = 65536;
/// setxattr flags.
pub const XATTR_CREATE: i32 = 1;
pub const XATTR_REPLACE: i32 = 2;

struct Entry {
    key: Key,
    name_at: u64,
    name_len: u64,
    value_at: u64,
    value_len: u64,
}

impl Entry {
    fn from(key: Key, v: Value) -> Entry {
        Entry {
            key,
            name_at: v[0],
            value_at: v[1],
            name_len: v[2] >> 32,
            value_len: v[2] & 0xffff_ffff,
        }
    }
}

fn base_key(name: &[u8]) -> u64 {
    (super::dir::hash(name) >> 8) << 8
}

fn find(bytes: &[u8], ino: u64, name: &[u8]) -> FsResult<Option<Entry>> {
    let base = base_key(name);
    let mut found = None;
    XATTRS.scan(bytes, (ino, base), (ino, base | 0xff), |k, v| {
        let e = Entry::from(k, v);
        if heap::load(bytes, e.name_at, e.name_len)? == name {
            found = Some(e);
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok(found)
}

fn check_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() {
        return errno(libc::EINVAL);
    }
    if name.len() > NAME_MAX {
        return errno(libc::ERANGE);
    }
    let known = [&b"user."[..], b"trusted.", b"security."];
    if !known
        .iter()
        .any(|p| name.starts_with(p) && name.len() > p.len())
    {
        return errno(libc::EOPNOTSUPP);
    }
    Ok(())
}

/// The value of attribute `name` of `ino`; ENODATA when absent.
pub fn get(bytes: &[u8], ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
    match find(bytes, ino, name)? {
        Some(e) if e.value_len == 0 => Ok(Vec::new()),
        Some(e) => Ok(heap::load(bytes, e.value_at, e.value_len)?.to_vec()),
        None => errno(libc::ENODATA),
    }
}

/// Names of `ino`'s attributes, each followed by a NUL (listxattr's format).
pub fn list(bytes: &[u8], ino: u64) -> FsResult<Vec<u8>> {
    let mut out = Vec::new();
    XATTRS.scan(bytes, (ino, 0), (ino, u64::MAX), |k, v| {
        let e = Entry::from(k, v);
        out.extend_from_slice(heap::load(bytes, e.name_at, e.name_len)?);
        out.push(0);
        Ok(true)
    })?;
    Ok(out)
}

fn free_entry(op: &mut Op<'_>, e: &Entry) -> FsResult<()> {
    XATTRS.remove(&mut op.tx, e.key)?;
    heap::free(&mut op.tx, e.name_at, e.name_len)?;
    if e.value_len > 0 {
        heap::free(&mut op.tx, e.value_at, e.value_len)?;
    }
    Ok(())
}

/// Set attribute `name` of `ino` to `value` (flags: XATTR_CREATE, XATTR_REPLACE).
pub fn set(op: &mut Op<'_>, ino: u64, name: &[u8], value: &[u8], flags: i32) -> FsResult<()> {
    check_name(name)?;
    if value.len() > VALUE_MAX {
        return errno(libc::E2BIG);
    }
    let mut node = op.inode(ino)?;
    if name.starts_with(b"user.") && !(node.is_reg() || node.is_dir()) {
        return errno(libc::EPERM);
    }
    let old = find(op.bytes(), ino, name)?;
    match (&old, flags & (XATTR_CREATE | XATTR_REPLACE)) {
        (Some(_), XATTR_CREATE) => return errno(libc::EEXIST),
        (None, XATTR_REPLACE) => return errno(libc::ENODATA),
        _ => {}
    }
    let key = match &old {
        Some(e) => {
            free_entry(op, e)?;
            e.key
        }
        None => match XATTRS.free_slot(op.bytes(), ino, base_key(name))? {
            Some(k) => k,
            None => return errno(libc::ENOSPC),
        },
    };
    let name_at = heap::store(&mut op.tx, name)?;
    let value_at = if value.is_empty() {
        0
    } else {
        heap::store(&mut op.tx, value)?
    };
    XATTRS.insert(
        &mut op.tx,
        key,
        [
            name_at,
            value_at,
            (name.len() as u64) << 32 | value.len() as u64,
        ],
    )?;
    inode::touch(&mut node, false);
    op.put_inode(ino, &node)
}

/// Remove attribute `name` of `ino`; ENODATA when absent.
pub fn remove(op: &mut Op<'_>, ino: u64, name: &[u8]) -> FsResult<()> {
    let Some(e) = find(op.bytes(), ino, name)? else {
        return errno(libc::ENODATA);
    };
    free_entry(op, &e)?;
    let mut node = op.inode(ino)?;
    inode::touch(&mut node, false);
    op.put_inode(ino, &node)
}

/// Remove every attribute of `ino` (when the inode is freed).
pub fn remove_all(op: &mut Op<'_>, ino: u64) -> FsResult<()> {
    let mut entries = Vec::new();
    XATTRS.scan(op.bytes(), (ino, 0), (ino, u64::MAX), |k, v| {
        entries.push(Entry::from(k, v));
        Ok(true)
    })?;
    for e in &entries {
        free_entry(op, e)?;
    }
    Ok(())
}

/// Heap chunks owned by `ino`'s attributes: (offset, length, tree key), for fsck.
pub fn chunks(bytes: &[u8], ino: u64) -> FsResult<Vec<(u64, u64, Key)>> {
    let mut out = Vec::new();
    XATTRS.scan(bytes, (ino, 0), (ino, u64::MAX), |k, v| {
        let e = Entry::from(k, v);
        out.push((e.name_at, e.name_len, k));
        if e.value_len > 0 {
            out.push((e.value_at, e.value_len, k));
        }
        Ok(true)
    })?;
    Ok(out)
}
