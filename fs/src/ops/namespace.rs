//! The namespace: create (files, directories, special files, symlinks), mknod, link, unlink,
//! rmdir, rename, and the rules for new names. Each is one transaction over the inodes and
//! dentries it touches; the dentry format is `store::dentry`.

use super::inode::{self, NewInode};
use super::{orphan, Op};
use crate::error::{errno, FsResult};
use crate::layout::inode::Inode;
use crate::layout::superblock::ROOT_INO;
use crate::store::dentry::{self, Dentry, NAME_MAX};
use crate::store::heap;

/// Most links to one inode.
pub const LINK_MAX: u32 = 65000;
/// Longest symlink target, bytes (PATH_MAX).
pub const SYMLINK_MAX: usize = 4095;

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

fn dir_inode(op: &Op<'_>, ino: u64) -> FsResult<Inode> {
    let d = op.inode(ino)?;
    if !d.is_dir() {
        return errno(libc::ENOTDIR);
    }
    if d.nlink == 0 {
        return errno(libc::ENOENT); // a removed directory still open
    }
    Ok(d)
}

/// Create `name` in `parent`: a file, directory, special file, or (with `target`) a symlink.
pub fn create(
    op: &mut Op<'_>,
    parent: u64,
    name: &[u8],
    mut new: NewInode,
    target: Option<&[u8]>,
) -> FsResult<(u64, Inode)> {
    check_name(name)?;
    let mut p = dir_inode(op, parent)?;
    let dentry::Slot::Free(slot) = dentry::find(op.bytes(), parent, name)? else {
        return errno(libc::EEXIST);
    };
    let is_dir = new.mode & libc::S_IFMT == libc::S_IFDIR;
    if is_dir && p.nlink >= LINK_MAX {
        return errno(libc::EMLINK);
    }
    if p.mode & libc::S_ISGID != 0 {
        new.gid = p.gid; // BSD group semantics of a set-group-ID directory
        if is_dir {
            new.mode |= libc::S_ISGID;
        }
    }
    let (ino, mut node) = inode::alloc(op, new)?;
    if is_dir {
        node.parent_or_target = parent;
        p.nlink += 1;
    }
    if let Some(t) = target {
        if t.len() > SYMLINK_MAX {
            return errno(libc::ENAMETOOLONG);
        }
        node.parent_or_target = heap::store(&mut op.tx, t)?;
        node.size = t.len() as u64;
    }
    op.put_inode(ino, &node)?;
    // The slot stays free: nothing above changed the dentry tree.
    dentry::add_at(&mut op.tx, slot, name, ino, node.kind())?;
    inode::touch(&mut p, true);
    op.put_inode(parent, &p)?;
    Ok((ino, node))
}

/// mknod(2): create the regular, character or block special file, FIFO or socket `name` in
/// `parent`; EINVAL for any other file type.
pub fn mknod(op: &mut Op<'_>, parent: u64, name: &[u8], new: NewInode) -> FsResult<(u64, Inode)> {
    let kinds = [
        libc::S_IFREG,
        libc::S_IFCHR,
        libc::S_IFBLK,
        libc::S_IFIFO,
        libc::S_IFSOCK,
    ];
    if !kinds.contains(&(new.mode & libc::S_IFMT)) {
        return errno(libc::EINVAL);
    }
    create(op, parent, name, new, None)
}

/// Give inode `ino` the new name `name` in `parent`.
pub fn link(op: &mut Op<'_>, ino: u64, parent: u64, name: &[u8]) -> FsResult<Inode> {
    check_name(name)?;
    let mut node = op.inode(ino)?;
    if node.is_dir() {
        return errno(libc::EPERM);
    }
    if node.nlink >= LINK_MAX {
        return errno(libc::EMLINK);
    }
    let mut p = dir_inode(op, parent)?;
    if dentry::lookup(op.bytes(), parent, name)?.is_some() {
        return errno(libc::EEXIST);
    }
    dentry::add(&mut op.tx, parent, name, ino, node.kind())?;
    node.nlink += 1;
    inode::touch(&mut node, false);
    op.put_inode(ino, &node)?;
    inode::touch(&mut p, true);
    op.put_inode(parent, &p)?;
    Ok(node)
}

fn existing(op: &Op<'_>, parent: u64, name: &[u8]) -> FsResult<Dentry> {
    if name.len() > NAME_MAX {
        return errno(libc::ENAMETOOLONG);
    }
    match dentry::lookup(op.bytes(), parent, name)? {
        Some(d) => Ok(d),
        None => errno(libc::ENOENT),
    }
}

/// Remove the name `name` (not a directory) from `parent`.
pub fn unlink(op: &mut Op<'_>, parent: u64, name: &[u8]) -> FsResult<()> {
    let mut p = dir_inode(op, parent)?;
    let d = existing(op, parent, name)?;
    if d.kind == libc::S_IFDIR {
        return errno(libc::EISDIR);
    }
    dentry::remove(&mut op.tx, &d)?;
    orphan::drop_link(op, d.ino)?;
    inode::touch(&mut p, true);
    op.put_inode(parent, &p)
}

/// Remove the empty directory `name` from `parent`.
pub fn rmdir(op: &mut Op<'_>, parent: u64, name: &[u8]) -> FsResult<()> {
    if name == b"." {
        return errno(libc::EINVAL);
    }
    if name == b".." {
        return errno(libc::ENOTEMPTY);
    }
    let mut p = dir_inode(op, parent)?;
    let d = existing(op, parent, name)?;
    if d.kind != libc::S_IFDIR {
        return errno(libc::ENOTDIR);
    }
    if !dentry::is_empty(op.bytes(), d.ino)? {
        return errno(libc::ENOTEMPTY);
    }
    dentry::remove(&mut op.tx, &d)?;
    orphan::drop_link(op, d.ino)?;
    p.nlink -= 1;
    inode::touch(&mut p, true);
    op.put_inode(parent, &p)
}

/// Is `ino` the directory `ancestor` or below it? (Walks parent pointers up to the root.)
fn is_within(op: &Op<'_>, mut ino: u64, ancestor: u64) -> FsResult<bool> {
    for _ in 0..op.geo.inode_count {
        if ino == ancestor {
            return Ok(true);
        }
        if ino == ROOT_INO {
            return Ok(false);
        }
        ino = op.inode(ino)?.parent_or_target;
    }
    Ok(false)
}

/// rename(2) flags (renameat2).
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;

/// Move `name` in `parent` to `new_name` in `new_parent`, replacing what is there.
pub fn rename(
    op: &mut Op<'_>,
    parent: u64,
    name: &[u8],
    new_parent: u64,
    new_name: &[u8],
    flags: u32,
) -> FsResult<()> {
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
        || flags == RENAME_NOREPLACE | RENAME_EXCHANGE
    {
        return errno(libc::EINVAL);
    }
    dir_inode(op, parent)?;
    dir_inode(op, new_parent)?;
    let src = existing(op, parent, name)?;
    check_name(new_name)?;
    let dst = dentry::lookup(op.bytes(), new_parent, new_name)?;
    let src_dir = src.kind == libc::S_IFDIR;
    if src_dir && parent != new_parent && is_within(op, new_parent, src.ino)? {
        return errno(libc::EINVAL);
    }
    if flags & RENAME_EXCHANGE != 0 {
        let Some(dst) = dst else {
            return errno(libc::ENOENT);
        };
        if dst.kind == libc::S_IFDIR && parent != new_parent && is_within(op, parent, dst.ino)? {
            return errno(libc::EINVAL);
        }
        return exchange(op, parent, &src, new_parent, &dst);
    }
    if let Some(dst) = &dst {
        if dst.ino == src.ino {
            return Ok(()); // two names of one inode: POSIX says do nothing
        }
        if flags & RENAME_NOREPLACE != 0 {
            return errno(libc::EEXIST);
        }
        match (src_dir, dst.kind == libc::S_IFDIR) {
            (true, false) => return errno(libc::ENOTDIR),
            (false, true) => return errno(libc::EISDIR),
            (true, true) if !dentry::is_empty(op.bytes(), dst.ino)? => {
                return errno(libc::ENOTEMPTY)
            }
            _ => {}
        }
        dentry::retarget(&mut op.tx, dst, src.ino, src.kind)?;
        orphan::drop_link(op, dst.ino)?;
        if src_dir {
            let mut np = op.inode(new_parent)?;
            np.nlink -= 1; // the replaced directory's ".."
            op.put_inode(new_parent, &np)?;
        }
    } else {
        dentry::add(&mut op.tx, new_parent, new_name, src.ino, src.kind)?;
    }
    dentry::remove(&mut op.tx, &src)?;
    if src_dir && parent != new_parent {
        move_dir(op, src.ino, parent, new_parent)?;
    }
    touch_parents(op, parent, new_parent)?;
    let mut moved = op.inode(src.ino)?;
    inode::touch(&mut moved, false);
    op.put_inode(src.ino, &moved)
}

/// Point directory `ino`'s ".." at `to` and move one link count from `from` to `to`.
fn move_dir(op: &mut Op<'_>, ino: u64, from: u64, to: u64) -> FsResult<()> {
    let mut node = op.inode(ino)?;
    node.parent_or_target = to;
    op.put_inode(ino, &node)?;
    let mut f = op.inode(from)?;
    f.nlink -= 1;
    op.put_inode(from, &f)?;
    let mut t = op.inode(to)?;
    if t.nlink >= LINK_MAX {
        return errno(libc::EMLINK);
    }
    t.nlink += 1;
    op.put_inode(to, &t)
}

fn touch_parents(op: &mut Op<'_>, a: u64, b: u64) -> FsResult<()> {
    for p in if a == b { vec![a] } else { vec![a, b] } {
        let mut node = op.inode(p)?;
        inode::touch(&mut node, true);
        op.put_inode(p, &node)?;
    }
    Ok(())
}

/// RENAME_EXCHANGE: swap the inodes two entries name.
fn exchange(
    op: &mut Op<'_>,
    parent: u64,
    src: &Dentry,
    new_parent: u64,
    dst: &Dentry,
) -> FsResult<()> {
    dentry::retarget(&mut op.tx, src, dst.ino, dst.kind)?;
    dentry::retarget(&mut op.tx, dst, src.ino, src.kind)?;
    if parent != new_parent {
        if src.kind == libc::S_IFDIR {
            move_dir(op, src.ino, parent, new_parent)?;
        }
        if dst.kind == libc::S_IFDIR {
            move_dir(op, dst.ino, new_parent, parent)?;
        }
    }
    touch_parents(op, parent, new_parent)?;
    for ino in [src.ino, dst.ino] {
        let mut node = op.inode(ino)?;
        inode::touch(&mut node, false);
        op.put_inode(ino, &node)?;
    }
    Ok(())
}
