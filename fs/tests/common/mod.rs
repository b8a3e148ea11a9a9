//! Shared setup of the `store` property tests: an in-memory RVM region (rvm-core's
//! `MemStorage`, no FUSE, no file) holding a superblock, a bitmap area and a heap, laid out as
//! `layout::geometry::plan` would but with sizes chosen by the test.
#![allow(dead_code)] // each test file uses a part

use rvm_core::{Area, CommitMode, MemStorage, Region, RestoreMode, Rvm, RvmOptions, Transaction};
use rvmfs::layout::pod;
use rvmfs::layout::superblock::{Superblock, HEAP_CLASSES, SB_MAGIC, SB_SIZE};
use rvmfs::FsResult;
use std::sync::Arc;

/// The redo log: storage offset 0, 8 MiB (room for a deep tree's biggest transaction).
const LOG: Area = Area {
    offset: 0,
    len: 8 << 20,
};
/// Region offset of the bitmap area (the superblock's `inode_bitmap`).
pub const BITMAP_AT: u64 = SB_SIZE;
/// Bytes of the bitmap area: 65536 bits.
pub const BITMAP_BYTES: u64 = 8192;
/// Region offset of the heap (`heap_start`), 4 KiB aligned as mkfs lays it out.
pub const HEAP_START: u64 = BITMAP_AT + BITMAP_BYTES;

/// Number of proptest cases: `PROPTEST_CASES` when set, else `default` (kept small so the
/// three store suites run in seconds in release).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An RVM region in memory: storage, the RVM instance and the mapped region.
pub struct MemRegion {
    pub storage: Arc<MemStorage>,
    pub rvm: Rvm,
    pub region: Region,
}

impl MemRegion {
    /// A fresh region with an empty superblock and a heap of `heap_len` bytes (a multiple of
    /// 4 KiB), committed.
    pub fn new(heap_len: u64) -> MemRegion {
        MemRegion::with_incompat(heap_len, 0)
    }

    /// As [`MemRegion::new`], with the superblock's incompat feature word `incompat` (e.g.
    /// `slotted_leaves`: the trees write slotted leaves).
    pub fn with_incompat(heap_len: u64, incompat: u32) -> MemRegion {
        let segment = Area {
            offset: LOG.len,
            len: HEAP_START + heap_len,
        };
        let storage = Arc::new(MemStorage::new((segment.offset + segment.len) as usize));
        Rvm::create_log(&*storage, LOG).expect("formatting an in-memory log");
        let mut mem = MemRegion::open(storage, segment);
        let sb = Superblock {
            magic: SB_MAGIC,
            inode_bitmap: BITMAP_AT,
            heap_start: HEAP_START,
            heap_end: HEAP_START + heap_len,
            heap_top: HEAP_START,
            heap_free: [0; HEAP_CLASSES],
            features: rvmfs::layout::features::Features {
                incompat,
                ..Default::default()
            },
            ..bytemuck::Zeroable::zeroed()
        };
        mem.commit(|tx| pod::put(tx, 0, &sb))
            .expect("writing the superblock");
        mem
    }

    fn open(storage: Arc<MemStorage>, segment: Area) -> MemRegion {
        let options = RvmOptions {
            log: LOG,
            ..RvmOptions::default()
        };
        let rvm = Rvm::initialize(storage.clone(), options).expect("opening the RVM log");
        let region = rvm.map(segment).expect("mapping the region");
        MemRegion {
            storage,
            rvm,
            region,
        }
    }

    /// Drop the region and RVM as a crash would (no flush, no truncation), then recover from
    /// the storage: the region holds exactly what was committed.
    pub fn reopen(self) -> MemRegion {
        let MemRegion {
            storage,
            rvm,
            region,
        } = self;
        let segment = region.area();
        drop(region);
        drop(rvm);
        MemRegion::open(storage, segment)
    }

    /// The region's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.region.bytes()
    }

    /// Run `f` in one transaction (Restore mode, as the filesystem's operations) and commit
    /// it durably when it succeeds; when it fails the transaction is aborted.
    pub fn commit<T>(
        &mut self,
        f: impl FnOnce(&mut Transaction<'_>) -> FsResult<T>,
    ) -> FsResult<T> {
        let mut tx = self.region.begin_transaction(RestoreMode::Restore);
        match f(&mut tx) {
            Ok(v) => {
                tx.end(CommitMode::Flush)?;
                Ok(v)
            }
            Err(e) => {
                tx.abort()?;
                Err(e)
            }
        }
    }

    /// Run `f` in a transaction, then abort it; returns what `f` returned.
    pub fn aborted<T>(&mut self, f: impl FnOnce(&mut Transaction<'_>) -> T) -> T {
        let mut tx = self.region.begin_transaction(RestoreMode::Restore);
        let v = f(&mut tx);
        tx.abort().expect("aborting a Restore-mode transaction");
        v
    }
}
