//! Repairs: each fix is one RVM transaction, so a crash during fsck leaves an image that
//! recovers to a state between two fixes.

use crate::check::Fix;
use rvmfs::layout::pod;
use rvmfs::layout::superblock::{field, ROOT_INO};
use rvmfs::ops::inode::NewInode;
use rvmfs::ops::{namespace, orphan, Fs, Op};
use rvmfs::store::bitmap;
use rvmfs::store::btree::Tree;
use rvmfs::store::dentry::{self, DENTRIES};
use rvmfs::store::extent_map::EXTENTS;
use rvmfs::store::xattr::XATTRS;
use rvmfs::FsResult;

const LOST_FOUND: &[u8] = b"lost+found";

/// Apply one fix.
pub fn apply(fs: &mut Fs, fix: &Fix) -> FsResult<()> {
    fs.transact(|op| match *fix {
        Fix::ReclaimOrphan(ino) => orphan::reclaim(op, ino),
        Fix::SetLinks { ino, nlink } => update(op, ino, |n| n.nlink = nlink),
        Fix::SetBlocks { ino, blocks } => update(op, ino, |n| n.blocks = blocks),
        Fix::SetParent { ino, parent } => update(op, ino, |n| n.parent_or_target = parent),
        Fix::InodeBit { ino, used } => {
            let at = op.geo.inode_bitmap;
            bitmap::set_run(&mut op.tx, at, ino - 1, 1, used)
        }
        Fix::DataBits { start, len, used } => {
            let at = op.geo.data_bitmap;
            bitmap::set_run(&mut op.tx, at, start, len, used)
        }
        Fix::Counters {
            inodes_used,
            blocks_used,
        } => {
            pod::put(&mut op.tx, field::INODES_USED, &inodes_used)?;
            pod::put(&mut op.tx, field::BLOCKS_USED, &blocks_used)
        }
        Fix::RemoveEntry { key, .. } => DENTRIES.remove(&mut op.tx, key).map(|_| ()),
        Fix::RemoveExtent { ino, last } => EXTENTS.remove(&mut op.tx, (ino, last)).map(|_| ()),
        Fix::LostFound { ino } => lost_found(op, ino),
        Fix::ClearInode(ino) => {
            op.put_inode(ino, &rvmfs::layout::inode::Inode::default())?;
            let at = op.geo.inode_bitmap;
            bitmap::set_run(&mut op.tx, at, ino - 1, 1, false)
        }
        Fix::RemoveXattr { key, .. } => XATTRS.remove(&mut op.tx, key).map(|_| ()),
        Fix::ResetFreeList(class) => {
            pod::put(&mut op.tx, field::HEAP_FREE + 8 * class as u64, &0u64)
        }
        Fix::RebuildTree(root_field) => rebuild(op, Tree(root_field)),
        Fix::None => Ok(()),
    })
}

fn update(
    op: &mut Op<'_>,
    ino: u64,
    f: impl FnOnce(&mut rvmfs::layout::inode::Inode),
) -> FsResult<()> {
    let mut node = op.inode(ino)?;
    f(&mut node);
    op.put_inode(ino, &node)
}

/// Link unreachable inode `ino` into /lost+found as "#ino" (made if missing, as e2fsck does).
fn lost_found(op: &mut Op<'_>, ino: u64) -> FsResult<()> {
    let lf = match dentry::lookup(op.bytes(), ROOT_INO, LOST_FOUND)? {
        Some(d) if d.kind == libc::S_IFDIR => d.ino,
        _ => {
            let new = NewInode {
                mode: libc::S_IFDIR | 0o700,
                uid: 0,
                gid: 0,
                rdev: 0,
            };
            namespace::create(op, ROOT_INO, LOST_FOUND, new, None)?.0
        }
    };
    let mut node = op.inode(ino)?;
    let name = format!("#{ino}");
    dentry::add(&mut op.tx, lf, name.as_bytes(), ino, node.kind())?;
    if node.is_dir() {
        node.parent_or_target = lf;
        node.nlink = node.nlink.max(2);
        update(op, lf, |p| p.nlink += 1)?;
    } else {
        node.nlink = 1;
    }
    op.put_inode(ino, &node)
}

/// Rebuild a damaged tree from what its leaves still hold. Old nodes that still decode and sit
/// on a node boundary go back to the heap; anything else is left allocated (leaked) rather than
/// risk freeing bytes that belong to another chunk.
fn rebuild(op: &mut Op<'_>, tree: Tree) -> FsResult<()> {
    let entries = tree.salvage(op.bytes())?;
    let nodes: Vec<u64> = tree
        .reachable_nodes(op.bytes())?
        .into_iter()
        .filter(|n| n % 4096 == 0)
        .collect();
    tree.rebuild(&mut op.tx, &nodes, &entries)
}
