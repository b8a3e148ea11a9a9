//! Logged overwrites (ext4's data=journal for small overwrites): a small overwrite of a
//! file's written blocks goes into the redo record only (`Transaction::log_deferred`), not
//! into the blocks, so the fsync that follows costs one log write and one sync: no copy on
//! write (no new block, no extent split, no free) and no random data write before the
//! record. The blocks keep their old bytes until truncation writes the new ones in place,
//! after the record is durable (recovery writes them too, from every live record); a crash
//! before that leaves the old bytes whole, and the old checksums match them.
//!
//! Until a truncation has applied its record, a block's new bytes live here
//! ([`PendingData`]), and every read of the data area goes through it (it wraps the image as
//! `Geo::image`), so reads, copy on write and checksum updates see them. While a block is
//! pending every later write of it is deferred too (`Op::write_data`): an in-place write
//! would be overwritten by the truncation.

use crate::layout::BLOCK_SIZE;
use memmap2::MmapMut;
use rvm_core::{Area, Lsn, Storage};
use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Pending bytes above which a truncation is asked for early (bounds the memory they hold).
pub const PENDING_BUDGET: u64 = 16 << 20;

/// Image offset of a block's first byte -> (Lsn of the record carrying its newest bytes,
/// the whole block).
type Blocks = BTreeMap<u64, (Lsn, Arc<[u8]>)>;

/// The image, with the new bytes of blocks written deferred served from memory until
/// truncation has written them (see the module docs).
pub struct PendingData {
    inner: Arc<dyn Storage>,
    blocks: Mutex<Blocks>,
    /// `applied` of the last [`PendingData::prune`] (nothing more to forget until it moves).
    pruned: AtomicU64,
    /// A truncation was asked for ([`PendingData::over_budget`]) and has not applied
    /// anything since: asking again would only run truncations back to back.
    asked: AtomicBool,
}

impl PendingData {
    /// Wrap `inner` (the image).
    pub fn new(inner: Arc<dyn Storage>) -> Arc<PendingData> {
        Arc::new(PendingData {
            inner,
            blocks: Mutex::default(),
            pruned: AtomicU64::new(0),
            asked: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Blocks> {
        self.blocks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a block holding some byte of image offsets [from, to) is pending.
    pub fn any(&self, from: u64, to: u64) -> bool {
        self.first_in(from, to).is_some()
    }

    /// The image offset of the first pending block holding some byte of [from, to).
    pub fn first_in(&self, from: u64, to: u64) -> Option<u64> {
        let start = from.saturating_sub(BLOCK_SIZE - 1);
        self.lock().range(start..to).next().map(|(&p, _)| p)
    }

    /// The image offsets of the pending blocks, in order.
    pub fn offsets(&self) -> Vec<u64> {
        self.lock().keys().copied().collect()
    }

    /// Blocks pending, and their bytes.
    pub fn len(&self) -> usize {
        self.lock().len()
    }
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
    pub fn bytes(&self) -> u64 {
        self.len() as u64 * BLOCK_SIZE
    }

    /// After the commit at `lsn` of deferred writes `writes` (image offset of whole blocks,
    /// their bytes): those blocks read so until that record is applied.
    pub(super) fn insert(&self, writes: Vec<(u64, Vec<u8>)>, lsn: Lsn) {
        let mut map = self.lock();
        for (pos, data) in writes {
            for (i, blk) in data.chunks(BLOCK_SIZE as usize).enumerate() {
                map.insert(pos + i as u64 * BLOCK_SIZE, (lsn, Arc::from(blk)));
            }
        }
    }

    /// Forget the blocks whose record truncation has applied (Lsn below `applied`,
    /// `Rvm::applied_lsn`): their bytes are in place.
    pub(super) fn prune(&self, applied: Lsn) {
        if self.pruned.swap(applied, Ordering::Relaxed) == applied {
            return;
        }
        self.asked.store(false, Ordering::Relaxed);
        self.lock().retain(|_, (lsn, _)| *lsn >= applied);
    }
}

impl PendingData {
    /// Whether a truncation should be asked for now: more than [`PENDING_BUDGET`] bytes
    /// pending, and none asked for since the last one applied something.
    pub(super) fn over_budget(&self) -> bool {
        self.bytes() > PENDING_BUDGET && !self.asked.swap(true, Ordering::Relaxed)
    }
}

impl Storage for PendingData {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        // The pending blocks first: if one is applied and forgotten while the image is read,
        // its copy here is the same bytes.
        let end = offset + buf.len() as u64;
        let hits: Vec<(u64, Arc<[u8]>)> = {
            let map = self.lock();
            let start = offset.saturating_sub(BLOCK_SIZE - 1);
            map.range(start..end)
                .map(|(&p, (_, d))| (p, d.clone()))
                .collect()
        };
        self.inner.read_at(buf, offset)?;
        for (p, data) in hits {
            let from = p.max(offset);
            let to = (p + data.len() as u64).min(end);
            if from < to {
                buf[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&data[(from - p) as usize..(to - p) as usize]);
            }
        }
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }
    fn write_durable_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_durable_at(buf, offset)
    }
    fn maps_file(&self) -> bool {
        self.inner.maps_file()
    }
    fn map_private(&self, area: Area) -> io::Result<MmapMut> {
        self.inner.map_private(area)
    }
}
