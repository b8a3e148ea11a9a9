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
use rvm_core::{CommitMode, Lsn, Region, RestoreMode, Rvm, Storage, Transaction};
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
    /// Reads copy data blocks without the filesystem lock ([`file::read_planned`]): they
    /// hold this shared from before the lock is released until their reads are done, and
    /// freeing data blocks waits for it exclusively, so blocks a read was planned on can
    /// not be freed (and then reused by another file) while it reads them.
    pub read_gate: Arc<std::sync::RwLock<()>>,
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
            read_gate: Arc::default(),
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

/// Requests writing at most this many bytes log their new blocks' data (see [`DataLog`]).
pub const DATA_LOG_MAX_WRITE: usize = 64 << 10;
/// Data bytes logged between two requests for durability (fsync, `sync` commits) before new
/// blocks fall back to ordered writes.
pub const DATA_LOG_BUDGET: u64 = 8 << 20;

/// Data logging (ext4's data=journal, for small writes): the data of small writes into new
/// blocks goes into the transaction's redo record as well as in place
/// (`Transaction::log_external`), so a flush needs no sync to order it before the record;
/// one sync then makes an fsync durable. Data writes that are not logged call
/// `Rvm::note_unlogged_data`, so the next flush syncs them first (ordered data): the
/// flush's own log write is durable for the log range only.
///
/// Recovery replays the logged data of every live record; so while a record carrying a
/// block's data is live, every later write of that block is logged too (`hot`), and replay
/// ends with the block's last value.
#[derive(Default)]
pub struct DataLog {
    /// Data block -> Lsn of the last record carrying bytes of it.
    pub hot: HashMap<u64, Lsn>,
    /// Prune `hot` (drop entries of applied records) when it grows past this.
    prune_at: usize,
    /// Bytes logged since `Rvm::durability_requests` was `epoch`: the budget renews only
    /// when someone asks for durability (an fsync, a `sync` mount's commit), so a bulk
    /// writer that never fsyncs (tar) writes its data once, not into the log as well.
    used: u64,
    epoch: u64,
}

/// One operation in progress: its transaction plus what it needs to reach.
pub struct Op<'a> {
    pub tx: Transaction<'a>,
    pub geo: &'a Geo,
    pub hints: &'a mut Hints,
    /// Open handles per inode (files unlinked while open become orphans, not freed).
    pub open: &'a HashMap<u64, u32>,
    pub rvm: &'a Rvm,
    pub dlog: &'a mut DataLog,
    /// Data blocks (first, last) this transaction logged.
    pub logged: Vec<(u64, u64)>,
    /// `Rvm::applied_lsn` when first needed (older is safe: more blocks count as hot).
    applied: Option<Lsn>,
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

    /// Write `data` at absolute image offset `pos` in the data area. `fresh`: the blocks
    /// are new to the file (allocated or unwritten until now), so ordered data applies;
    /// `small`: part of a small request (see [`DataLog`]).
    pub fn write_data(&mut self, pos: u64, data: &[u8], fresh: bool, small: bool) -> FsResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        let bs = crate::layout::BLOCK_SIZE;
        let first = (pos - self.geo.data_offset) / bs;
        let last = (pos + data.len() as u64 - 1 - self.geo.data_offset) / bs;
        let hot = !self.dlog.hot.is_empty() && {
            let applied = *self.applied.get_or_insert_with(|| self.rvm.applied_lsn());
            (first..=last).any(|b| self.dlog.hot.get(&b).is_some_and(|&l| l >= applied))
        };
        let log = hot
            || (fresh && small && {
                let requests = self.rvm.durability_requests();
                if requests != self.dlog.epoch {
                    self.dlog.epoch = requests;
                    self.dlog.used = 0;
                }
                self.dlog.used + data.len() as u64 <= DATA_LOG_BUDGET
            });
        if log {
            self.tx.log_external(pos, data)?;
            self.dlog.used += data.len() as u64;
            self.logged.push((first, last));
        } else {
            self.geo.image.write_at(data, pos)?;
            // Every unlogged write is ordered before the next flush's records: new blocks
            // (their record points at them) and zeroed tails alike (a record that grows
            // the file must not make stale bytes visible after a power loss).
            self.rvm.note_unlogged_data();
        }
        Ok(())
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
    pub dlog: DataLog,
    /// Transactions committed since mount.
    pub commits: u64,
}

/// Every this many commits, region pages whose changes truncation has applied are given back
/// (`Region::release_applied_pages`) and pages only read are unmapped
/// (`Region::release_clean_pages`), so the daemon's memory does not grow with the image.
const RELEASE_EVERY: u64 = 512;

/// Bytes of changed region pages (private copies) above which a truncation is requested,
/// so the next release can give them back: bounds the daemon's memory (issue 6).
const DIRTY_BUDGET: u64 = 16 << 20;

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
        // New data blocks are either logged or noted (`DataLog`): flushes sync first only
        // after noted ones.
        rvm.set_ordered_on_demand(true);
        Ok(Fs {
            region,
            rvm,
            header,
            geo,
            hints: Hints::default(),
            open: HashMap::new(),
            durability: Durability::Spool,
            dlog: DataLog::default(),
            commits: 0,
        })
    }

    /// The region's bytes, for read-only operations.
    pub fn bytes(&self) -> &[u8] {
        self.region.bytes()
    }

    /// Run `f` as one transaction: commit on Ok, abort (restoring every byte) on Err.
    pub fn transact<T>(&mut self, f: impl FnOnce(&mut Op<'_>) -> FsResult<T>) -> FsResult<T> {
        let result = {
            let mut op = Op {
                tx: self.region.begin_transaction(RestoreMode::Restore),
                geo: &self.geo,
                hints: &mut self.hints,
                open: &self.open,
                rvm: &self.rvm,
                dlog: &mut self.dlog,
                logged: Vec::new(),
                applied: None,
            };
            match f(&mut op) {
                Ok(value) => {
                    let mode = match self.durability {
                        Durability::Spool => CommitMode::NoFlush,
                        Durability::Sync => CommitMode::Flush,
                    };
                    let Op {
                        tx,
                        logged,
                        applied,
                        dlog: d,
                        rvm,
                        ..
                    } = op;
                    // A failed commit may still have queued the record: its blocks stay hot
                    // until restart (conservative).
                    let lsn = tx.end(mode);
                    if !logged.is_empty() {
                        let lsn = match &lsn {
                            Ok(l) => *l,
                            Err(_) => Lsn::MAX,
                        };
                        for (first, last) in logged {
                            for b in first..=last {
                                d.hot.insert(b, lsn);
                            }
                        }
                        if d.hot.len() > d.prune_at {
                            let applied = applied.unwrap_or(0).max(rvm.applied_lsn());
                            d.hot.retain(|_, l| *l >= applied);
                            d.prune_at = (d.hot.len() * 2).max(4096);
                        }
                    }
                    lsn?;
                    Ok(value)
                }
                Err(e) => {
                    if let Err(abort) = op.tx.abort() {
                        log::error!("abort after {e} failed: {abort}");
                    }
                    Err(e)
                }
            }
        };
        self.commits += 1;
        if self.commits % RELEASE_EVERY == 0 {
            self.region.release_applied_pages();
            // Pages only read stay mapped too (lookups in a big directory touch every leaf
            // over time, and each fault maps its neighbours as well): unmap them, the page
            // cache keeps them.
            self.region.release_clean_pages();
            if self.region.dirty_bytes() > DIRTY_BUDGET {
                // Changed pages stay private until truncation applies their records: ask
                // for one early rather than let them pile up until the log is half full.
                self.rvm.request_truncation();
            }
        }
        result
    }

    /// Inode `ino` (read-only).
    pub fn inode(&self, ino: u64) -> FsResult<Inode> {
        self.geo.inode(self.region.bytes(), ino)
    }
}
