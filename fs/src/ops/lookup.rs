//! Reading the namespace: lookup, readdir (with its "." and ".." entries), readlink. No
//! transaction: these read the region under the daemon's lock.

use super::Geo;
use crate::error::{corrupt, errno, FsResult};
use crate::layout::inode::Inode;
use crate::store::dentry::{self, NAME_MAX};
use crate::store::heap;

/// The inode named `name` in directory `parent`: ENAMETOOLONG, ENOTDIR when `parent` is not a
/// directory, ENOENT when absent.
pub fn lookup(geo: &Geo, bytes: &[u8], parent: u64, name: &[u8]) -> FsResult<(u64, Inode)> {
    if name.len() > NAME_MAX {
        return errno(libc::ENAMETOOLONG);
    }
    let p = geo.inode(bytes, parent)?;
    if !p.is_dir() {
        return errno(libc::ENOTDIR);
    }
    match dentry::lookup(bytes, parent, name)? {
        Some(d) => Ok((d.ino, geo.inode(bytes, d.ino)?)),
        None => errno(libc::ENOENT),
    }
}

/// Visit the entries of directory `ino` whose cookie is greater than `after`: "." (cookie 1)
/// and ".." (cookie 2) first, then the stored entries in cookie order (`dentry::list`).
/// `visit(inode, cookie, type (S_IFMT bits), name)` returns false to stop (a full reply).
pub fn readdir(
    geo: &Geo,
    bytes: &[u8],
    ino: u64,
    after: u64,
    mut visit: impl FnMut(u64, u64, u32, &[u8]) -> bool,
) -> FsResult<()> {
    let node = geo.inode(bytes, ino)?;
    if after < 1 && !visit(ino, 1, libc::S_IFDIR, b".") {
        return Ok(());
    }
    if after < 2 && !visit(node.parent_or_target, 2, libc::S_IFDIR, b"..") {
        return Ok(());
    }
    dentry::list(bytes, ino, after, |d| {
        Ok(visit(d.ino, d.key.1, d.kind, d.name(bytes)?))
    })
}

/// The target of symlink `ino`; EINVAL when it is not a symlink.
pub fn readlink(geo: &Geo, bytes: &[u8], ino: u64) -> FsResult<Vec<u8>> {
    let node = geo.inode(bytes, ino)?;
    if !node.is_symlink() {
        return errno(libc::EINVAL);
    }
    if node.size > super::namespace::SYMLINK_MAX as u64 {
        return corrupt(format!("symlink {ino}: a {}-byte target", node.size));
    }
    heap::load(bytes, node.parent_or_target, node.size).map(<[u8]>::to_vec)
}
