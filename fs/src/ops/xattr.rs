//! Extended attributes: get, list, set, remove. Their format (the xattr tree, its key and
//! value) is `store::xattr`.

use super::{inode, Op};
use crate::error::{corrupt, errno, FsResult};
use crate::store::heap;
use crate::store::xattr::{self as format, Entry};

/// Longest name, bytes (XATTR_NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Largest value, bytes (XATTR_SIZE_MAX).
pub const VALUE_MAX: usize = 65536;
/// setxattr flags.
pub const XATTR_CREATE: i32 = 1;
pub const XATTR_REPLACE: i32 = 2;

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
    match format::find(bytes, ino, name)? {
        Some(e) if e.value_len == 0 => Ok(Vec::new()),
        Some(e) if e.value_len > VALUE_MAX as u64 => {
            corrupt(format!("inode {ino}: xattr value of {} bytes", e.value_len))
        }
        Some(e) => Ok(heap::load(bytes, e.value_at, e.value_len)?.to_vec()),
        None => errno(libc::ENODATA),
    }
}

/// Names of `ino`'s attributes, each followed by a NUL (listxattr's format).
pub fn list(bytes: &[u8], ino: u64) -> FsResult<Vec<u8>> {
    let mut out = Vec::new();
    for e in format::entries(bytes, ino)? {
        out.extend_from_slice(e.name(bytes)?);
        out.push(0);
    }
    Ok(out)
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
    let old = format::find(op.bytes(), ino, name)?;
    match (&old, flags & (XATTR_CREATE | XATTR_REPLACE)) {
        (Some(_), XATTR_CREATE) => return errno(libc::EEXIST),
        (None, XATTR_REPLACE) => return errno(libc::ENODATA),
        _ => {}
    }
    let key = match &old {
        Some(e) => {
            format::remove(&mut op.tx, e)?;
            e.key
        }
        None => format::free_key(op.bytes(), ino, name)?,
    };
    format::insert(&mut op.tx, key, name, value)?;
    inode::touch(&mut node, false);
    op.put_inode(ino, &node)
}

/// Remove attribute `name` of `ino`; ENODATA when absent.
pub fn remove(op: &mut Op<'_>, ino: u64, name: &[u8]) -> FsResult<()> {
    let Some(e) = format::find(op.bytes(), ino, name)? else {
        return errno(libc::ENODATA);
    };
    format::remove(&mut op.tx, &e)?;
    let mut node = op.inode(ino)?;
    inode::touch(&mut node, false);
    op.put_inode(ino, &node)
}

/// The file-capability attribute (capabilities(7)), removed when the file changes.
pub const CAPABILITY: &[u8] = b"security.capability";

/// Remove `security.capability` of `ino` if it has one, as Linux does on every write,
/// truncate and chown of a file (`file_remove_privs` / `cap_inode_killpriv`): a rewritten or
/// given-away program must not keep its capabilities. The kernel leaves this to the
/// filesystem once FUSE_HANDLE_KILLPRIV_V2 is negotiated (see `fuse/killpriv.rs`). The caller
/// updates ctime (it changes the inode anyway).
pub fn drop_capability(op: &mut Op<'_>, ino: u64) -> FsResult<()> {
    if let Some(e) = format::find(op.bytes(), ino, CAPABILITY)? {
        format::remove(&mut op.tx, &e)?;
    }
    Ok(())
}

/// Remove every attribute of `ino` (when the inode is freed).
pub fn remove_all(op: &mut Op<'_>, ino: u64) -> FsResult<()> {
    let entries: Vec<Entry> = format::entries(op.bytes(), ino)?;
    for e in &entries {
        format::remove(&mut op.tx, e)?;
    }
    Ok(())
}
