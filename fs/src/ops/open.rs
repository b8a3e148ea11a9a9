//! Open handles: open (with O_TRUNC), create-and-open, release (directories hold none: the
//! daemon declines OPENDIR, `fuse::dir::opendir`). The handle count of
//! each inode is volatile (`Fs::open`); an inode unlinked while open becomes an orphan and is
//! freed at its last release. Counting a handle needs only a shared filesystem lock (the
//! counts have their own mutex); truncating and freeing an orphan need the exclusive one.

use super::inode::NewInode;
use super::{file, namespace, orphan, Fs};
use crate::error::FsResult;
use crate::layout::inode::Inode;

fn add_handle(fs: &Fs, ino: u64) {
    *fs.open_handles().entry(ino).or_insert(0) += 1;
}

/// Open `ino` without O_TRUNC (a shared lock is enough): count a handle if it exists.
pub fn open_shared(fs: &Fs, ino: u64) -> FsResult<()> {
    fs.inode(ino)?;
    add_handle(fs, ino);
    Ok(())
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

/// Drop one open handle of `ino` (a shared lock is enough). Returns whether it was the last
/// one of an orphan (unlinked inode): then [`reclaim_orphan`] must run.
pub fn drop_handle(fs: &Fs, ino: u64) -> bool {
    let mut open = fs.open_handles();
    let left = match open.get_mut(&ino) {
        Some(n) => {
            *n = n.saturating_sub(1);
            *n
        }
        None => 0,
    };
    if left > 0 {
        return false;
    }
    open.remove(&ino);
    drop(open);
    matches!(fs.inode(ino), Ok(node) if node.nlink == 0)
}

/// Free orphan `ino` after its last handle was dropped, unless it was opened again since
/// (between the shared and the exclusive lock) or is no orphan any more.
pub fn reclaim_orphan(fs: &mut Fs, ino: u64) -> FsResult<()> {
    if fs.open_handles().get(&ino).copied().unwrap_or(0) > 0 {
        return Ok(());
    }
    if matches!(fs.inode(ino), Ok(node) if node.nlink == 0) {
        fs.transact_on("release", ino, |op| orphan::reclaim(op, ino))?;
    }
    Ok(())
}

/// Drop one open handle of `ino`; free it if it was the last one of an orphan.
pub fn release(fs: &mut Fs, ino: u64) -> FsResult<()> {
    if drop_handle(fs, ino) {
        reclaim_orphan(fs, ino)?;
    }
    Ok(())
}
