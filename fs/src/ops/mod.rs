//! File operations. Each one that changes metadata runs as exactly one RVM transaction
//! (`Fs::transact`): it declares every byte it changes, commits as one redo record, and on any
//! error is aborted, restoring the region as it was (LRVM §4.1 restore mode).

pub mod attr;
pub mod dir;
pub mod extent;
pub mod file;
pub mod inode;
pub mod namespace;
pub mod orphan;
pub mod space;
pub mod xattr;

use crate::error::{errno, FsResult};
use crate::layout::header::Header;
use crate::layout::inode::{Inode, INODE_SIZE};
use crate::layout::pod;
use crate::layout::superblock::Superblock;
use crate::store::superblock;
use rvm_core::{CommitMode, Region, RestoreMode, Rvm, Storage, Transaction};
use std::collections::HashMap;
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
}

impl Geo {
    fn new(header: &Header, sb: &Superblock, image: Arc<dyn Storage>) -> Geo {
        Geo {
            inode_count: sb.inode_count,
            inode_bitmap: sb.inode_bitmap,
            inode_table: sb.inode_table,
            data_bitmap: sb.data_bitmap,
            data_blocks: sb.data_blocks,
            data_offset: header.data_offset,
            image,
        }
    }

    /// Region offset of inode `ino`'s slot; ENOENT for numbers outside the table.
    pub fn inode_offset(&self, ino: u64) -> FsResult<u64> {
        if ino == 0 || ino > self.inode_count {
            return errno(libc::ENOENT);
        }
        Ok(self.inode_table + (ino - 1) * INODE_SIZE)
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
}

/// One operation in progress: its transaction plus what it needs to reach.
pub struct Op<'a> {
    pub tx: Transaction<'a>,
    pub geo: &'a Geo,
    pub hints: &'a mut Hints,
    /// Open handles per inode (files unlinked while open become orphans, not freed).
    pub open: &'a HashMap<u64, u32>,
}

impl Op<'_> {
    pub fn bytes(&self) -> &[u8] {
        self.tx.bytes()
    }
    pub fn inode(&self, ino: u64) -> FsResult<Inode> {
        self.geo.inode(self.tx.bytes(), ino)
    }
    pub fn put_inode(&mut self, ino: u64, inode: &Inode) -> FsResult<()> {
        let at = self.geo.inode_offset(ino)?;
        pod::put(&mut self.tx, at, inode)
    }
    pub fn superblock(&self) -> FsResult<Superblock> {
        superblock(self.tx.bytes())
    }
}

/// Durability of each operation's commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Commit to the spool: survives kill -9 of the daemon; disk within the commit interval.
    Spool,
    /// Commit with flush: durable on disk before the reply (the `sync` mount option).
    Sync,
}

/// The mounted filesystem's state, behind the daemon's lock.
pub struct Fs {
    pub region: Region,
    pub rvm: Arc<Rvm>,
    pub header: Header,
    pub geo: Geo,
    pub hints: Hints,
    pub open: HashMap<u64, u32>,
    pub durability: Durability,
}

impl Fs {
    /// Wrap a mapped region (after recovery).
    pub fn new(
        region: Region,
        rvm: Arc<Rvm>,
        header: Header,
        image: Arc<dyn Storage>,
    ) -> FsResult<Fs> {
        let sb = superblock(region.bytes())?;
        let geo = Geo::new(&header, &sb, image);
        Ok(Fs {
            region,
            rvm,
            header,
            geo,
            hints: Hints::default(),
            open: HashMap::new(),
            durability: Durability::Spool,
        })
    }

    /// The region's bytes, for read-only operations.
    pub fn bytes(&self) -> &[u8] {
        self.region.bytes()
    }

    /// Run `f` as one transaction: commit on Ok, abort (restoring every byte) on Err.
    pub fn transact<T>(&mut self, f: impl FnOnce(&mut Op<'_>) -> FsResult<T>) -> FsResult<T> {
        let mut op = Op {
            tx: self.region.begin_transaction(RestoreMode::Restore),
            geo: &self.geo,
            hints: &mut self.hints,
            open: &self.open,
        };
        match f(&mut op) {
            Ok(value) => {
                let mode = match self.durability {
                    Durability::Spool => CommitMode::NoFlush,
                    Durability::Sync => CommitMode::Flush,
                };
                op.tx.end(mode)?;
                Ok(value)
            }
            Err(e) => {
                if let Err(abort) = op.tx.abort() {
                    log::error!("abort after {e} failed: {abort}");
                }
                Err(e)
            }
        }
    }

    /// Inode `ino` (read-only).
    pub fn inode(&self, ino: u64) -> FsResult<Inode> {
        self.geo.inode(self.region.bytes(), ino)
    }
}
