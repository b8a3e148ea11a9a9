//! Open handles: open (with O_TRUNC), create-and-open, opendir, release. The handle count of
//! each inode is volatile (`Fs::open`); an inode unlinked while open becomes an orphan and is
//! freed at its last release.

use super::inode::NewInode;
use super::{file, namespace, orphan, Fs};
use crate::error::{errno, FsResult};
use crate::layout::inode::Inode;

fn add_handle(fs: &mut Fs, ino: u64) {
    *fs.open.entry(ino).or_insert(0) += 1;
}

/// Open file `ino`. `truncate`: O_TRUNC (with FUSE_ATOMIC_O_TRUNC the kernel leaves it to
/// the filesystem), one transaction that empties a regular file; `kill_setid`: the opener
/// lacks CAP_FSETID, so the truncation clears set-user-ID (see `file::clear_setid`).
pub fn open(fs: &mut Fs, ino: u64, truncate: bool, kill_setid: bool) -> FsResult<()> {
    match fs.inode(ino) {
        Ok(node) if node.is_reg() && truncate => fs.transact_on("open O_TRUNC", ino, |op| {
            let mut node = file::truncate(op, ino, 0)?;
            if kill_setid && file::clear_setid(&mut node) {
                op.put_inode(ino, &node)?;
            }
            Ok(node)
        }),
        r => r,
    }?;
    add_handle(fs, ino);
    Ok(())
}

/// Create regular file `name` in `parent` (one transaction) and open it.
pub fn create(fs: &mut Fs, parent: u64, name: &[u8], new: NewInode) -> FsResult<(u64, Inode)> {
    let (ino, node) = fs.transact_on("create", parent, |op| {
        namespace::create(op, parent, name, new, None)
    })?;
    add_handle(fs, ino);
    Ok((ino, node))
}

/// Open directory `ino`; ENOTDIR when it is not one.
pub fn opendir(fs: &mut Fs, ino: u64) -> FsResult<()> {
    if !fs.inode(ino)?.is_dir() {
        return errno(libc::ENOTDIR);
    }
    add_handle(fs, ino);
    Ok(())
}

/// Drop one open handle of `ino`; free it if it was the last one of an orphan.
pub fn release(fs: &mut Fs, ino: u64) -> FsResult<()> {
    let left = match fs.open.get_mut(&ino) {
        Some(n) => {
            *n = n.saturating_sub(1);
            *n
        }
        None => 0,
    };
    if left == 0 {
        fs.open.remove(&ino);
        if matches!(fs.inode(ino), Ok(node) if node.nlink == 0) {
            fs.transact_on("release", ino, |op| orphan::reclaim(op, ino))?;
        }
    }
    Ok(())
}
