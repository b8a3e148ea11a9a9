//! Where things are (`Geo`, fixed at mkfs, read once at mount) and where the last allocation
//! ended (`Hints`).

use crate::error::{corrupt, errno, FsResult};
use crate::layout::features::INCOMPAT_DEFERRED_RANGES;
use crate::layout::header::Header;
use crate::layout::inode::{Inode, INODE_SIZE};
use crate::layout::pod;
use crate::layout::superblock::Superblock;
use crate::store::csum;
use rvm_core::Storage;
use std::sync::Arc;

/// Where things are: fixed at mkfs, read once at mount.
pub struct Geo {
    pub inode_count: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub data_bitmap: u64,
    pub data_blocks: u64,
    /// Byte offset of data block 0 in the image.
    pub data_offset: u64,
    /// The image, for data-area reads and writes (the same storage the log lives on, so a
    /// crash simulator under it sees data and log writes in their real order).
    pub image: Arc<dyn Storage>,
    /// Reads copy data blocks without the filesystem lock ([`super::file::read_planned`]): they
    /// hold this shared from before the lock is released until their reads are done, and
    /// freeing data blocks waits for it exclusively, so blocks a read was planned on can
    /// not be freed (and then reused by another file) while it reads them.
    pub read_gate: Arc<std::sync::RwLock<()>>,
    /// The image's data checksum table (`store::csum`), None on images without one.
    pub csums: Option<csum::Table>,
    /// The mount option `nodatasum`: neither compute nor verify data checksums; files written
    /// get `csum::NODATASUM`.
    pub nodatasum: bool,
    /// Blocks extents own that the data bitmap calls free (`bitmap_guard`, checked at
    /// mount): the allocator never hands them out.
    pub unmarked: super::bitmap_guard::Unmarked,
    /// The image has the incompat feature `deferred_ranges`: small overwrites may be logged
    /// (`ops::logged_overwrite`), since no build that would lose such records opens it.
    pub deferred_ranges: bool,
    /// An `object_data` image's blocks in the bucket (`remote::Blocks`): reads of `REMOTE`
    /// extents, the dirty inodes. None otherwise (and in tools, which then answer EIO for
    /// `REMOTE` blocks).
    pub remote: Option<Arc<crate::remote::Blocks>>,
}

impl Geo {
    /// Errors: `FsError::Corrupt` when the checksum table lies outside its place.
    pub(super) fn new(header: &Header, sb: &Superblock, image: Arc<dyn Storage>) -> FsResult<Geo> {
        Ok(Geo {
            inode_count: sb.inode_count,
            inode_bitmap: sb.inode_bitmap,
            inode_table: sb.inode_table,
            data_bitmap: sb.data_bitmap,
            data_blocks: sb.data_blocks,
            data_offset: header.data_offset,
            image,
            read_gate: Arc::default(),
            csums: csum::Table::of(sb)?,
            nodatasum: false,
            unmarked: Default::default(),
            deferred_ranges: sb.features.has_incompat(INCOMPAT_DEFERRED_RANGES),
            remote: None,
        })
    }

    /// The checksum table to keep for a file with inode `node`: None when the image has none,
    /// the mount is `nodatasum` or the file is `NODATASUM`.
    pub fn sums_for(&self, node: &Inode) -> Option<csum::Table> {
        self.csums
            .filter(|_| !self.nodatasum && node.flags & csum::NODATASUM == 0)
    }

    /// Region offset of inode `ino`'s slot; ENOENT for numbers outside the table.
    pub fn inode_offset(&self, ino: u64) -> FsResult<u64> {
        if ino == 0 || ino > self.inode_count {
            return errno(libc::ENOENT);
        }
        // Checked: a damaged superblock's inode count or table offset must not overflow.
        match (ino - 1)
            .checked_mul(INODE_SIZE)
            .and_then(|o| o.checked_add(self.inode_table))
        {
            Some(at) => Ok(at),
            None => corrupt(format!("inode {ino} lies past the end of the region")),
        }
    }

    /// Inode `ino`; ENOENT if the slot is free (a stale handle).
    pub fn inode(&self, bytes: &[u8], ino: u64) -> FsResult<Inode> {
        let inode: Inode = pod::get(bytes, self.inode_offset(ino)?)?;
        if inode.is_free() {
            return errno(libc::ENOENT);
        }
        Ok(inode)
    }
}

/// Allocation hints: where the last allocation ended (volatile, not logged).
#[derive(Default)]
pub struct Hints {
    pub next_block: u64,
    pub next_inode: u64,
    /// The request being served is not root's: data block allocation leaves the
    /// superblock's `reserved_blocks` alone (ENOSPC instead). False (root, fsck, tools)
    /// unless the FUSE layer sets it for one request ([`crate::ops::Fs::as_caller`]).
    pub unprivileged: bool,
}
